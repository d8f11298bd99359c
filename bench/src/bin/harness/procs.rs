//! Processes the harness starts (echo backend, proxies, load runs,
//! strace) and what it reads of them: from /proc, user and system CPU
//! seconds, RSS, descriptors, io_uring worker threads; from `strace -c`,
//! system calls by name.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A child that is stopped (TERM, then KILL after 5 s) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
    /// Lines of its stdout and stderr, as they come.
    lines: mpsc::Receiver<String>,
    /// Every line seen so far.
    pub seen: Vec<String>,
}

/// Pin the command to `cpus` (empty: leave it alone).
pub fn pinned(mut cmd: Command, cpus: &[usize]) -> Command {
    if cpus.is_empty() {
        return cmd;
    }
    let cpus = cpus.to_vec();
    // SAFETY: sched_setaffinity on the child itself between fork and exec;
    // no allocation, no locks.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &c in &cpus {
                libc::CPU_SET(c, &mut set);
            }
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> anyhow::Result<Proc> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("start {name}"))?;
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        let tx2 = tx.clone();
        thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if tx2.send(l).is_err() {
                    break;
                }
            }
        });
        Ok(Proc {
            child,
            name: name.to_string(),
            lines: rx,
            seen: Vec::new(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait (bounded) for a line containing `needle`; return it.
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        self.wait_lines(needle, 1, timeout)
    }

    /// Wait (bounded) for the `n`th line containing `needle` (counting
    /// those seen already); return it.
    pub fn wait_lines(
        &mut self,
        needle: &str,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let mut found = self.seen.iter().filter(|l| l.contains(needle));
        if let Some(l) = found.nth(n.max(1) - 1) {
            return Ok(l.clone());
        }
        let mut count = self.seen.iter().filter(|l| l.contains(needle)).count();
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        count += 1;
                        if count >= n {
                            return Ok(l);
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                    "{}: {count} of {n} line(s) with {needle:?} within {timeout:?}; output:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok();
                    bail!(
                        "{} ended ({status:?}) before printing {needle:?}; output:\n{}",
                        self.name,
                        self.seen.join("\n")
                    )
                }
            }
        }
    }

    /// Wait (bounded) for the process to exit; all its output is in `seen`.
    pub fn finish(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Ok(l) = self.lines.try_recv() {
                self.seen.push(l);
            }
            if let Some(st) = self.child.try_wait()? {
                // Drain what the reader threads still hold.
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(l);
                }
                return Ok(st);
            }
            if Instant::now() >= deadline {
                bail!("{} still running after {timeout:?}", self.name);
            }
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(50)) {
                self.seen.push(l);
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound then released; the proxy binds it next).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Wait (bounded) until something accepts on `addr`.
pub fn wait_listening(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(20));
    }
    bail!("nothing listens on {addr} after {timeout:?}")
}

/// The address in a `... addr=IP:PORT ...` line (ANSI colours removed).
pub fn addr_in(line: &str) -> Option<SocketAddr> {
    let clean: String = strip_ansi(line);
    let at = clean.find("addr=")? + 5;
    let rest = &clean[at..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == ',')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What a set of processes has used, read from /proc.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// User-space CPU seconds (utime).
    pub user_secs: f64,
    /// Kernel CPU seconds on the processes' behalf (stime).
    pub sys_secs: f64,
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Open descriptors.
    pub fds: u64,
    /// io_uring io-wq worker threads.
    pub iou_wrk: u64,
    /// Other threads.
    pub threads: u64,
}

/// Clock ticks per second, the unit of /proc/PID/stat's CPU times.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64
}

/// Sum the usage of `pids`.
pub fn usage(pids: &[u32]) -> Usage {
    let tick = clock_ticks() as f64;
    let mut u = Usage::default();
    for &pid in pids {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        if let Ok(stat) = std::fs::read_to_string(dir.join("stat")) {
            if let Some((ut, st)) = cpu_ticks(&stat) {
                u.user_secs += ut as f64 / tick;
                u.sys_secs += st as f64 / tick;
            }
        }
        if let Ok(status) = std::fs::read_to_string(dir.join("status")) {
            u.rss_kib += status_kib(&status, "VmRSS:").unwrap_or(0);
        }
        u.fds += count_dir(&dir.join("fd"));
        if let Ok(tasks) = std::fs::read_dir(dir.join("task")) {
            for t in tasks.flatten() {
                let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                if comm.starts_with("iou-wrk") {
                    u.iou_wrk += 1;
                } else {
                    u.threads += 1;
                }
            }
        }
    }
    u
}

/// utime and stime (fields 14 and 15) of a /proc/PID/stat line.
pub fn cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    // The command name may hold spaces: fields count from after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 → index 11.
    Some((f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?))
}

/// A `Key:   123 kB` line of /proc/PID/status.
pub fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn count_dir(p: &Path) -> u64 {
    std::fs::read_dir(p).map_or(0, |d| d.count() as u64)
}

/// Children of `pid` (nginx's workers under its master).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 2..].split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// `strace -c -f` attached to running processes: counts their system
/// calls (every thread's, and those of threads started meanwhile) until
/// stopped. It slows them down a lot, so nothing timed may run alongside.
pub struct Strace {
    proc: Proc,
    out: PathBuf,
    /// When the last process was attached.
    since: Instant,
}

/// What a stopped [`Strace`] counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Traced {
    /// (syscall, calls), `total` included.
    pub calls: Vec<(String, u64)>,
    /// From attaching to every process to the signal to detach.
    pub secs: f64,
}

impl Strace {
    /// Attach to `pids` and all their threads, pinned to `cpus`, writing
    /// the summary to `out`; returns once strace says it has attached to
    /// every process.
    pub fn attach(pids: &[u32], cpus: &[usize], out: &Path) -> anyhow::Result<Strace> {
        if pids.is_empty() {
            bail!("no process to trace");
        }
        let mut c = Command::new("strace");
        c.args(["-c", "-f", "-o"]).arg(out);
        for p in pids {
            c.arg("-p").arg(p.to_string());
        }
        let mut proc = Proc::spawn("strace", pinned(c, cpus))?;
        // One line a process: "Process N attached with 2 threads".
        proc.wait_lines("attached", pids.len(), Duration::from_secs(10))?;
        Ok(Strace {
            proc,
            out: out.to_path_buf(),
            since: Instant::now(),
        })
    }

    /// Detach (SIGINT makes strace write its summary) and read the counts.
    pub fn stop(mut self) -> anyhow::Result<Traced> {
        let secs = self.since.elapsed().as_secs_f64();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.proc.pid() as i32, libc::SIGINT) };
        self.proc.finish(Duration::from_secs(10))?;
        let text = std::fs::read_to_string(&self.out)
            .with_context(|| format!("strace wrote no summary: {}", self.proc.seen.join("\n")))?;
        let calls = strace_counts(&text);
        if calls.is_empty() {
            bail!("no counts in strace's summary:\n{text}");
        }
        Ok(Traced { calls, secs })
    }
}

/// The rows of a `strace -c` summary: (syscall, calls), `total` included.
///
/// ```text
/// % time     seconds  usecs/call     calls    errors syscall
/// ------ ----------- ----------- --------- --------- ----------------
///  61.55    0.412345           3    120000           sendto
///  30.12    0.201234           1    120001        12 recvfrom
/// ```
pub fn strace_counts(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if !(5..=6).contains(&f.len()) || f[0].parse::<f64>().is_err() {
                return None;
            }
            Some((f[f.len() - 1].to_string(), f[3].parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_fields() {
        let stat = "1234 (ringway worker) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(cpu_ticks(stat), Some((250, 75)));
        let status = "Name:\tringway\nVmHWM:\t  9000 kB\nVmRSS:\t  8123 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(8123));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn finds_addresses_in_log_lines() {
        let l = "\u{1b}[32m INFO\u{1b}[0m listening server=ws addr=127.0.0.1:40123";
        assert_eq!(addr_in(l), Some("127.0.0.1:40123".parse().unwrap()));
        assert_eq!(
            addr_in("listening addr=127.0.0.1:9 threads=1"),
            Some("127.0.0.1:9".parse().unwrap())
        );
        assert_eq!(addr_in("nothing here"), None);
    }

    #[test]
    fn reads_strace_summaries() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n\
------ ----------- ----------- --------- --------- ----------------\n\
 61.55    0.412345           3    120000           sendto\n\
 30.12    0.201234           1    120001        12 recvfrom\n\
  0.01    0.000010           0        40           io_uring_enter\n\
------ ----------- ----------- --------- --------- ----------------\n\
100.00    0.613589           2    240041        12 total\n";
        let c = strace_counts(text);
        assert_eq!(
            c,
            [
                ("sendto".to_string(), 120000),
                ("recvfrom".to_string(), 120001),
                ("io_uring_enter".to_string(), 40),
                ("total".to_string(), 240041)
            ]
        );
        assert!(strace_counts("strace: Process 12 attached").is_empty());
    }

    #[test]
    fn own_usage_is_readable() {
        let u = usage(&[std::process::id()]);
        assert!(u.rss_kib > 0 && u.fds > 0 && u.threads > 0, "{u:?}");
    }
}
