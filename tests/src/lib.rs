//! End-to-end test harness: start the real `ringway` binary on port 0 with a
//! config written to a temp dir, read its listening address from its log,
//! and run real backends (a tungstenite WebSocket echo server) beside it.
//!
//! Every wait is bounded; nothing sleeps to synchronise.

pub mod forwarded;
pub mod haproxy;
pub mod hostile;
pub mod http1;
pub mod logs;
pub mod nginx;
pub mod numbered;
pub mod prom;
pub mod recorder;
pub mod switch;
pub mod tls_support;
pub mod tunnel;
pub mod upgrade;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::Message;

/// The two drivers every end-to-end test runs on, and the io_uring
/// driver's fallback tunnel relay (what a kernel before 5.19 runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    IoUring,
    Epoll,
    /// io_uring with `tunnel_relay = "syscall"`: readiness waits and
    /// recv/send/splice, as on a kernel without provided buffer rings.
    IoUringSyscallRelay,
}

impl Driver {
    /// The `runtime.driver` value.
    pub fn name(self) -> &'static str {
        match self {
            Driver::IoUring | Driver::IoUringSyscallRelay => "io_uring",
            Driver::Epoll => "epoll",
        }
    }

    /// The tunnel relay ringway must log for this driver here: the ring
    /// relay on io_uring from Linux 5.19, the syscall relay otherwise.
    pub fn relay(self) -> &'static str {
        match self {
            Driver::IoUring if kernel_at_least(5, 19) => "ring",
            _ => "syscall",
        }
    }

    fn runtime_lines(self) -> &'static str {
        match self {
            Driver::IoUringSyscallRelay => "tunnel_relay = \"syscall\"\n",
            _ => "",
        }
    }
}

/// Whether the running kernel is at least `major.minor`.
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut it = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0)) >= (major, minor)
}

/// Generate `io_uring::NAME`, `epoll::NAME` and `io_uring_syscall_relay::NAME`
/// tests from `fn NAME(driver: Driver)`: for tests of the tunnel, whose
/// io_uring relay has a fallback.
#[macro_export]
macro_rules! every_relay {
    ($($name:ident),* $(,)?) => {
        $crate::both_drivers!($($name),*);
        mod io_uring_syscall_relay {
            $(#[test] fn $name() { super::$name($crate::Driver::IoUringSyscallRelay) })*
        }
    };
}

/// Generate `NAME_io_uring` and `NAME_epoll` tests from `fn NAME(driver: Driver)`.
#[macro_export]
macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod io_uring {
            $(#[test] fn $name() { super::$name($crate::Driver::IoUring) })*
        }
        mod epoll {
            $(#[test] fn $name() { super::$name($crate::Driver::Epoll) })*
        }
    };
}

/// Where the binary is: $RINGWAY_BIN, else target/<profile>/ringway next to
/// this test executable.
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("RINGWAY_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-exe>
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = profile_dir.join("ringway");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build --bin ringway) or set RINGWAY_BIN",
        bin.display()
    );
    bin
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under this process's temp root. The root,
/// `ringway-test-<pid>` in the system temp dir, is removed when the test
/// process exits; a root left by a process that was killed is removed by
/// the next one that starts.
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = temp_root().join(format!("{tag}-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn temp_root() -> &'static PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let base = std::env::temp_dir();
        remove_stale_roots(&base);
        let root = base.join(format!("ringway-test-{}", std::process::id()));
        std::fs::create_dir_all(&root).expect("create temp root");
        extern "C" fn remove_root() {
            if let Some(root) = ROOT.get() {
                let _ = std::fs::remove_dir_all(root);
            }
        }
        // SAFETY: registers a plain function with no arguments; it only
        // reads a OnceLock that is set before the registration.
        unsafe { libc::atexit(remove_root) };
        root
    })
}

/// Remove `ringway-test-<pid>…` entries whose process is gone.
fn remove_stale_roots(base: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("ringway-test-")) else {
            continue;
        };
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let Ok(pid) = digits.parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Close a WebSocket from the client side and read until the peer's close
/// arrives and the connection ends (messages still in flight are skipped,
/// at most 10,000 of them; the socket's read timeout bounds each read).
pub fn close_websocket<S: Read + Write>(ws: &mut tungstenite::WebSocket<S>) {
    ws.close(None).unwrap();
    for _ in 0..10_000 {
        match ws.read() {
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => return,
            Err(e) => panic!("closing the websocket: {e}"),
        }
    }
    panic!("closing the websocket: no close after 10,000 messages");
}

/// Lines a child wrote to stderr, with a condvar to wait for new ones.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    /// When each line arrived (same index; locked after `lines`).
    at: Mutex<Vec<Instant>>,
    cv: Condvar,
}

/// How long `ringway upgrade` may run before the harness kills it.
pub const UPGRADE_WITHIN: Duration = Duration::from_secs(60);

/// A running ringway.
///
/// After an [`upgrade`](Ringway::upgrade) the process serving is the new
/// one (not a child of the test): [`pid`](Ringway::pid),
/// [`signal`](Ringway::signal), [`wait_exit`](Ringway::wait_exit) and
/// Drop act on it; the process the harness started stays the `Child`
/// to reap. Drop kills every process that runs this ringway's config.
pub struct Ringway {
    child: Child,
    /// The process serving now: the child's, or the last upgrade's new one.
    pid: u32,
    /// The new processes of the upgrades so far, oldest first.
    upgraded: Vec<u32>,
    log: Arc<Lines>,
    addrs: HashMap<String, SocketAddr>,
    pub config_path: PathBuf,
}

impl Ringway {
    /// Start ringway with `config` (TOML without a [runtime] table: the
    /// harness writes one with the driver and one worker unless
    /// `runtime_extra` lines are given in `config` itself under
    /// `#runtime:` — keep it simple: use `start_with_runtime`).
    pub fn start(config: &str, driver: Driver) -> Ringway {
        Self::start_with_runtime(config, driver, "")
    }

    /// Like `start`, with extra `[runtime]` lines (e.g. `shutdown_timeout = "1s"`,
    /// or `workers = 2` instead of the one worker).
    pub fn start_with_runtime(config: &str, driver: Driver, runtime_extra: &str) -> Ringway {
        Self::start_with_log(config, driver, runtime_extra, "off")
    }

    /// Like `start_with_runtime`, with `[log] access_log` set to `access_log`
    /// ("off", "stdout" or a file path).
    pub fn start_with_log(
        config: &str,
        driver: Driver,
        runtime_extra: &str,
        access_log: &str,
    ) -> Ringway {
        Self::start_with_env(config, driver, runtime_extra, access_log, &[])
    }

    /// Like `start_with_log`, with extra environment variables for the
    /// process (e.g. `NOTIFY_SOCKET`).
    pub fn start_with_env(
        config: &str,
        driver: Driver,
        runtime_extra: &str,
        access_log: &str,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Ringway {
        Self::start_full(config, driver, runtime_extra, access_log, env, None)
    }

    /// Like `start_with_runtime`, with the open-file limit (soft and hard)
    /// set to `nofile` before ringway runs (out-of-descriptor tests).
    pub fn start_with_nofile(
        config: &str,
        driver: Driver,
        runtime_extra: &str,
        nofile: u64,
    ) -> Ringway {
        Self::start_full(config, driver, runtime_extra, "off", &[], Some(nofile))
    }

    fn start_full(
        config: &str,
        driver: Driver,
        runtime_extra: &str,
        access_log: &str,
        env: &[(&str, &std::ffi::OsStr)],
        nofile: Option<u64>,
    ) -> Ringway {
        let dir = temp_dir("rw");
        let path = dir.join("ringway.toml");
        // One worker unless `runtime_extra` sets `workers`.
        let workers = if runtime_extra.contains("workers") {
            ""
        } else {
            "workers = 1\n"
        };
        let full = format!(
            "[runtime]\n{workers}driver = \"{}\"\n{}{runtime_extra}\n[log]\nlevel = \"info\"\naccess_log = {access_log:?}\n\n{config}",
            driver.name(),
            driver.runtime_lines(),
        );
        std::fs::write(&path, full).expect("write config");
        let mut cmd = Command::new(binary());
        cmd.arg("-c")
            .arg(&path)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs
            // between fork and exec here.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn ringway");
        let log = Arc::new(Lines::default());
        let stderr = child.stderr.take().expect("stderr");
        let l2 = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[ringway] {line}");
                let mut lines = l2.lines.lock().unwrap();
                lines.push(line);
                l2.at.lock().unwrap().push(Instant::now());
                drop(lines);
                l2.cv.notify_all();
            }
        });
        let mut rw = Ringway {
            pid: child.id(),
            upgraded: Vec::new(),
            child,
            log,
            addrs: HashMap::new(),
            config_path: path,
        };
        let started = rw.wait_for_log("worker started", Duration::from_secs(10));
        assert!(
            started.contains(&format!("driver={}", driver.name())),
            "worker runs the wrong driver: {started}"
        );
        let relay = rw.wait_for_log("tunnel relay", Duration::from_secs(10));
        assert!(
            relay.contains(&format!("relay=\"{}\"", driver.relay())),
            "worker runs the wrong tunnel relay for {driver:?}: {relay}"
        );
        for line in rw.log.lines.lock().unwrap().iter() {
            if line.contains(" listening") {
                let server = field(line, "server").expect("server= in listening line");
                let addr = field(line, "addr").expect("addr= in listening line");
                if addr.starts_with("unix:") {
                    continue;
                }
                rw.addrs
                    .insert(server, addr.parse().expect("listening addr"));
            }
        }
        assert!(!rw.addrs.is_empty(), "no listening line in the log");
        rw
    }

    /// The address `[servers.NAME]` listens on.
    pub fn addr(&self, server: &str) -> SocketAddr {
        *self
            .addrs
            .get(server)
            .unwrap_or_else(|| panic!("no listener for server {server}: {:?}", self.addrs))
    }

    /// Every server's address, by server name.
    pub fn addrs(&self) -> &HashMap<String, SocketAddr> {
        &self.addrs
    }

    /// A raw TCP client of `[servers.NAME]`, reads timing out after 10 s.
    pub fn client(&self, server: &str) -> TcpStream {
        let s = TcpStream::connect(self.addr(server)).expect("connect to ringway");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    pub fn logs(&self) -> String {
        self.log.lines.lock().unwrap().join("\n")
    }

    /// Wait (bounded) for a log line containing `needle`; returns it.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut lines = self.log.lines.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no log line with {needle:?} within {timeout:?}; log:\n{}",
                lines.join("\n")
            );
            lines = self.log.cv.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Wait (bounded) until `n` log lines contain `needle`.
    pub fn wait_for_log_count(&self, needle: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut lines = self.log.lines.lock().unwrap();
        loop {
            if lines.iter().filter(|l| l.contains(needle)).count() >= n {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "fewer than {n} log lines with {needle:?} within {timeout:?}; log:\n{}",
                lines.join("\n")
            );
            lines = self.log.cv.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Replace the configuration after the harness's [runtime]/[log]
    /// preamble with `config`, send SIGHUP and wait for the `n`-th reload.
    pub fn reload(&self, config: &str, n: usize) {
        let old = std::fs::read_to_string(&self.config_path).unwrap();
        // The preamble ends with the blank line after `access_log = ...`.
        let keep_to = old
            .find("access_log = ")
            .and_then(|i| old[i..].find("\n\n").map(|j| i + j + 2))
            .expect("the harness's preamble");
        std::fs::write(&self.config_path, format!("{}{config}", &old[..keep_to])).unwrap();
        self.signal(libc::SIGHUP);
        self.wait_for_log_count("configuration reloaded", n, Duration::from_secs(10));
    }

    /// The process serving now (after an upgrade: the new one).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The process the harness started (after an upgrade: no longer the
    /// one serving).
    pub fn first_pid(&self) -> u32 {
        self.child.id()
    }

    /// Send `sig` to the process serving now.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of the ringway this harness runs.
        let r = unsafe { libc::kill(self.pid as i32, sig) };
        assert_eq!(r, 0, "kill failed");
    }

    /// Wait (bounded) for the process serving now to exit. After an
    /// upgrade it is not a child of the test, so its status cannot be
    /// read: it is reported as a success once the process is gone.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        use std::os::unix::process::ExitStatusExt;
        let pid = self.pid;
        if pid == self.child.id() {
            return self.wait_child(timeout);
        }
        self.wait_gone(pid, timeout)
            .map(|_| ExitStatus::from_raw(0))
    }

    fn wait_child(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            // Polling a child's exit has no blocking-with-timeout call in std.
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait (bounded) until process `pid` (the harness's child or one an
    /// upgrade started) is gone; when it was seen gone (polled every 5 ms).
    pub fn wait_gone(&mut self, pid: u32, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let gone = if pid == self.child.id() {
                self.child.try_wait().expect("try_wait").is_some()
            } else {
                !alive(pid)
            };
            if gone {
                return Some(Instant::now());
            }
            if Instant::now() >= deadline {
                return None;
            }
            // Polling another process's exit: no call waits on a non-child.
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// `ringway upgrade -c CONFIG [--binary BINARY]` (the command from
    /// [`binary()`]), bounded by [`UPGRADE_WITHIN`]. On exit 0: its
    /// stdout, and from then on the new process (`new pid Q` in it) is
    /// the one this harness serves with, signals and kills. Otherwise
    /// its stderr (its exit status goes to the test's stderr), or why it
    /// did not finish.
    pub fn upgrade(&mut self, new_binary: Option<&Path>) -> Result<String, String> {
        let mut cmd = Command::new(binary());
        cmd.arg("upgrade").arg("-c").arg(&self.config_path);
        if let Some(b) = new_binary {
            cmd.arg("--binary").arg(b);
        }
        let (status, stdout, stderr) = run_bounded(cmd, UPGRADE_WITHIN)?;
        if !status.success() {
            eprintln!("ringway upgrade: {status}");
            if stderr.trim().is_empty() {
                return Err(format!("({status}, nothing on stderr)"));
            }
            return Err(stderr);
        }
        let report = upgrade::Report::parse(&stdout).unwrap_or_else(|| {
            panic!("ringway upgrade exited 0 without its report: {stdout:?} {stderr:?}")
        });
        assert_eq!(
            report.old_pid, self.pid,
            "the upgrade replaced another process than the one serving: {stdout}"
        );
        self.upgraded.push(report.new_pid);
        self.pid = report.new_pid;
        Ok(stdout)
    }

    /// The config file's text.
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(&self.config_path).expect("read config")
    }

    /// Replace the config file's text (nothing is signalled).
    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config_path, text).expect("write config");
    }

    /// Rewrite the harness preamble's `driver` (and `tunnel_relay`)
    /// lines for `driver` (nothing is signalled: for an upgrade).
    pub fn set_driver(&self, driver: Driver) {
        let old = self.config_text();
        let mut out = String::new();
        let mut done = false;
        for line in old.split_inclusive('\n') {
            if !done && line.starts_with("driver = ") {
                out.push_str(&format!(
                    "driver = \"{}\"\n{}",
                    driver.name(),
                    driver.runtime_lines()
                ));
                done = true;
            } else if !line.starts_with("tunnel_relay = ") {
                out.push_str(line);
            }
        }
        assert!(done, "no driver line in the preamble:\n{old}");
        self.write_config(&out);
    }

    /// How many log lines have come so far (for [`wait_for_log_since`](Ringway::wait_for_log_since)).
    pub fn log_mark(&self) -> usize {
        self.log.lines.lock().unwrap().len()
    }

    /// Wait (bounded) for a log line containing `needle` among those that
    /// came after `mark` lines; returns it.
    pub fn wait_for_log_since(&self, mark: usize, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut lines = self.log.lines.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().skip(mark).find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no log line with {needle:?} after line {mark} within {timeout:?}; log:\n{}",
                lines.join("\n")
            );
            lines = self.log.cv.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// The first log line after `mark` lines containing `needle` and when
    /// the harness read it.
    pub fn log_line_at(&self, mark: usize, needle: &str) -> Option<(String, Instant)> {
        let lines = self.log.lines.lock().unwrap();
        let at = self.log.at.lock().unwrap();
        lines
            .iter()
            .zip(at.iter())
            .skip(mark)
            .find(|(l, _)| l.contains(needle))
            .map(|(l, t)| (l.clone(), *t))
    }
}

impl Drop for Ringway {
    /// Kill the process serving, every process an upgrade started and any
    /// other that runs this config (never leave one behind), and reap the
    /// child.
    fn drop(&mut self) {
        let mut pids: Vec<u32> = self.upgraded.clone();
        pids.push(self.pid);
        pids.extend(pids_with_config(&self.config_path));
        pids.sort_unstable();
        pids.dedup();
        let child = self.child.id();
        for &pid in &pids {
            if pid != child && runs_config(pid, &self.config_path) {
                // SAFETY: kill(2) on a process that runs this test's
                // config (its command line names the temp config file).
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while pids.iter().any(|&p| p != child && alive(p)) && Instant::now() < deadline {
            // Polling non-children's exit (bounded).
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Run `cmd` with its stdout and stderr captured, killed after `limit`:
/// (status, stdout, stderr), or why it did not finish.
fn run_bounded(mut cmd: Command, limit: Duration) -> Result<(ExitStatus, String, String), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {cmd:?}: {e}"))?;
    let read_all = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = read_all(Box::new(child.stdout.take().unwrap()));
    let err = read_all(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        // Polling a child's exit has no blocking-with-timeout call in std.
        thread::sleep(Duration::from_millis(5));
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    match status {
        Some(st) => Ok((st, out, err)),
        None => Err(format!(
            "{cmd:?} did not finish within {limit:?} (killed); stdout {out:?}, stderr {err:?}"
        )),
    }
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid as i32, 0) } != 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// Whether live process `pid`'s command line names `config` (one argument
/// equal to its path).
pub fn runs_config(pid: u32, config: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let want = config.as_os_str().as_bytes();
    alive(pid) && cmdline.split(|&b| b == 0).any(|arg| arg == want)
}

/// The live processes that run `config` (ringway's, and a `ringway
/// upgrade` command's), by pid; the test process itself is left out.
pub fn pids_with_config(config: &Path) -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && runs_config(pid, config))
        .collect();
    pids.sort_unstable();
    pids
}

/// The ringway processes (not `ringway upgrade` commands) that run
/// `config`, by pid.
pub fn servers_with_config(config: &Path) -> Vec<u32> {
    pids_with_config(config)
        .into_iter()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            !cmdline.split(|&b| b == 0).any(|a| a == b"upgrade")
        })
        .collect()
}

/// Process `pid`'s resident set size in KiB (`VmRSS` of
/// `/proc/PID/status`), `None` when it is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Whether this kernel lets the test process set up an io_uring (not
/// disabled by `kernel.io_uring_disabled` or a seccomp filter).
pub fn io_uring_available() -> bool {
    // struct io_uring_params is 120 bytes; zero asks for the defaults.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup(2) with a valid, writable params buffer.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 2u32, params.as_mut_ptr()) };
    if fd < 0 {
        return false;
    }
    // SAFETY: closing the descriptor the call just returned.
    unsafe { libc::close(fd as i32) };
    true
}

/// `key=value` from a tracing log line (value up to the next space).
fn field(line: &str, key: &str) -> Option<String> {
    let pat = format!(" {key}=");
    let start = line.find(&pat)? + pat.len();
    let rest = &line[start..];
    let end = rest.find(' ').unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"').to_string())
}

/// `ringway -t -c FILE` on `config`: (exit code, stdout + stderr, path).
pub fn config_test(config: &str) -> (i32, String, PathBuf) {
    config_test_bytes(config.as_bytes())
}

/// `config_test` on raw bytes (for files that are not UTF-8).
pub fn config_test_bytes(config: &[u8]) -> (i32, String, PathBuf) {
    let dir = temp_dir("t");
    let path = dir.join("ringway.toml");
    std::fs::write(&path, config).expect("write config");
    let out = Command::new(binary())
        .arg("-t")
        .arg("-c")
        .arg(&path)
        .output()
        .expect("run ringway -t");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text, path)
}

/// One handshake request as the backend saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A real WebSocket echo backend (tungstenite, a thread per connection).
///
/// Paths ending in `/deny` get `403 forbidden`; paths ending in `/bye`
/// complete the handshake, then send a close frame and close.
pub struct Backend {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<SeenRequest>>>,
    stop: Arc<AtomicBool>,
    pub connections: Arc<AtomicUsize>,
    accept_thread: Option<thread::JoinHandle<()>>,
    /// The connections being served, to cut them all (`kill`).
    live: Arc<Mutex<HashMap<usize, TcpStream>>>,
}

pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig {
        max_message_size: Some(64 << 20),
        max_frame_size: Some(64 << 20),
        ..Default::default()
    }
}

impl Backend {
    pub fn start() -> Backend {
        Self::start_on("127.0.0.1:0".parse().unwrap())
    }

    /// Start on a given address (to restart a stopped backend on its port).
    pub fn start_on(addr: SocketAddr) -> Backend {
        Self::start_with(addr, true)
    }

    /// `start_on` without keeping the handshakes seen (a long soak opens
    /// hundreds of thousands).
    pub fn start_unrecorded(addr: SocketAddr) -> Backend {
        Self::start_with(addr, false)
    }

    fn start_with(addr: SocketAddr, record: bool) -> Backend {
        let listener = TcpListener::bind(addr).expect("bind backend");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let live: Arc<Mutex<HashMap<usize, TcpStream>>> = Arc::default();
        let (s2, stop2, c2, l2) = (
            seen.clone(),
            stop.clone(),
            connections.clone(),
            live.clone(),
        );
        let accept_thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let id = c2.fetch_add(1, Ordering::SeqCst);
                if let Ok(c) = conn.try_clone() {
                    l2.lock().unwrap().insert(id, c);
                }
                let (seen, live) = (record.then(|| s2.clone()), l2.clone());
                thread::spawn(move || {
                    serve_ws(conn, seen);
                    live.lock().unwrap().remove(&id);
                });
            }
        });
        Backend {
            addr,
            seen,
            stop,
            connections,
            accept_thread: Some(accept_thread),
            live,
        }
    }

    /// Stop as a crashed or restarted server would: stop listening and
    /// cut every connection it is serving.
    pub fn kill(self) {
        let live = self.live.clone();
        // Drop first: the listener is closed and the accept thread joined,
        // so no connection is added after the drain below.
        drop(self);
        let conns: Vec<TcpStream> = live.lock().unwrap().drain().map(|(_, c)| c).collect();
        for c in conns {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Backend {
    /// Stop listening (the port is closed when this returns); connections
    /// already accepted carry on until their peers close them.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag, then wait for it to
        // drop the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
    }
}

// tungstenite's callback signature fixes the error type.
#[allow(clippy::result_large_err)]
fn serve_ws(conn: TcpStream, seen: Option<Arc<Mutex<Vec<SeenRequest>>>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut path = String::new();
    let cb = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        path = req.uri().to_string();
        let headers = req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        if let Some(seen) = &seen {
            seen.lock().unwrap().push(SeenRequest {
                path: path.clone(),
                headers,
            });
        }
        if req.uri().path().ends_with("/deny") {
            let mut e = ErrorResponse::new(Some("forbidden".to_string()));
            *e.status_mut() = tungstenite::http::StatusCode::FORBIDDEN;
            return Err(e);
        }
        if let Some(p) = req.headers().get("sec-websocket-protocol") {
            let first = p
                .to_str()
                .unwrap_or("")
                .split(',')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            resp.headers_mut()
                .insert("sec-websocket-protocol", first.parse().unwrap());
        }
        Ok(resp)
    };
    let Ok(mut ws) = tungstenite::accept_hdr_with_config(conn, cb, Some(ws_config())) else {
        return;
    };
    if path.ends_with("/bye") {
        // Say goodbye and hang up without waiting for the client's answer.
        let _ = ws.close(None);
        let _ = ws.flush();
        let _ = ws.get_mut().shutdown(std::net::Shutdown::Both);
        return;
    }
    loop {
        match ws.read() {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(m).is_err() {
                    return;
                }
            }
            Ok(Message::Close(_)) => {
                // tungstenite queued the close reply; flush it.
                let _ = ws.flush();
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// A TCP connection to `addr` from the source address `src` (any port).
pub fn connect_from(src: std::net::IpAddr, addr: SocketAddr) -> TcpStream {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.bind(&SocketAddr::new(src, 0).into())
        .expect("bind source address");
    s.connect_timeout(&addr.into(), Duration::from_secs(10))
        .expect("connect");
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// A WebSocket client handshake over `stream` (panics on failure).
pub fn ws_handshake(stream: TcpStream, url: &str) -> tungstenite::WebSocket<TcpStream> {
    tungstenite::client::client_with_config(url, stream, Some(ws_config()))
        .map_err(|e| format!("{e}"))
        .expect("websocket handshake through ringway")
        .0
}

/// A free port with nothing listening (connects are refused).
pub fn refused_addr() -> SocketAddr {
    // Not on 127.0.0.1, where every test proxy and backend listens: a port
    // freed here could be taken by another test's ringway at once, which
    // would then proxy to itself until it runs out of descriptors.
    let l = TcpListener::bind("127.0.0.251:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

/// A port on 127.0.0.1 held for a test to write into a configuration
/// (a reload that adds a listen address): the socket is bound with
/// SO_REUSEPORT, so ringway (same user) can bind the port beside it, and
/// does not listen, so it takes no connection — a connect reaches
/// ringway's listener or is refused. While it is held no port-0 bind
/// (another test's ringway or backend) gets the port.
pub struct ReservedPort {
    pub addr: SocketAddr,
    _socket: socket2::Socket,
}

pub fn reserve_port() -> ReservedPort {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.set_reuse_port(true).expect("SO_REUSEPORT");
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind a port to reserve");
    let addr = s
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("reserved address");
    ReservedPort { addr, _socket: s }
}

/// Connecting to `addr` is refused: nothing listens there.
pub fn assert_refused(addr: SocketAddr) {
    match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
        Ok(_) => panic!("{addr} accepted a connection"),
        Err(e) => assert_eq!(
            e.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "connect to {addr}: {e}"
        ),
    }
}

/// A listener whose accept queue is full, so new connects hang (SYNs are
/// dropped). `None` when the kernel does not behave so.
pub struct Blackhole {
    pub addr: SocketAddr,
    _listener: TcpListener,
    _fillers: Vec<TcpStream>,
}

pub fn blackhole() -> Option<Blackhole> {
    // SAFETY: plain socket calls on a descriptor we own.
    let listener = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        sa.sin_port = 0;
        let r = libc::bind(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        assert_eq!(r, 0);
        assert_eq!(libc::listen(fd, 0), 0);
        use std::os::fd::FromRawFd;
        TcpListener::from_raw_fd(fd)
    };
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => fillers.push(s),
            Err(_) => {
                return Some(Blackhole {
                    addr,
                    _listener: listener,
                    _fillers: fillers,
                })
            }
        }
    }
    None
}

/// Send raw bytes and read the whole answer until EOF or `timeout`.
/// The next read sees the end of the stream (EOF or a reset): the peer
/// closed.
pub fn assert_closed(s: &mut TcpStream) {
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => {}
        Ok(n) => panic!(
            "expected the connection closed, got {:?}",
            String::from_utf8_lossy(&b[..n])
        ),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("expected the connection closed: {e}"),
    }
}

pub fn raw_exchange(addr: SocketAddr, request: &[u8], timeout: Duration) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(timeout)).unwrap();
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Read one HTTP response (head + Content-Length body) from `s`, reading
/// no byte past it (pipelined responses that follow stay in the socket).
pub fn read_response(s: &mut TcpStream) -> (String, String) {
    let (head, body) = read_response_from(s);
    (head, String::from_utf8_lossy(&body).into_owned())
}

/// `read_response` over any reader (a TLS stream too), the body as bytes.
pub fn read_response_from(r: &mut impl Read) -> (String, Vec<u8>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = r.read(&mut byte).expect("read response head");
        assert!(
            n > 0,
            "EOF before a response head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
        assert!(head.len() < 64 * 1024, "response head too large");
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).expect("read response body");
    (head, body)
}

/// A request head as a backend saw it: (method, request).
pub fn seen_head(head: &[u8]) -> (String, SeenRequest) {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    (method, SeenRequest { path, headers })
}

/// A plain HTTP/1.1 backend (a thread per connection, keep-alive). It
/// answers every request with a line describing what it got: method, path,
/// the Host and Connection it saw, and the body length; a request to a path
/// ending in `/chunked` is answered with a chunked body that echoes the
/// request body in three chunks; an Upgrade request becomes a WebSocket
/// echo (socket.io serves polling and WebSocket on one port).
pub struct HttpBackend {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<SeenRequest>>>,
}

impl HttpBackend {
    pub fn start() -> HttpBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind http backend");
        let addr = listener.local_addr().unwrap();
        let (connections, seen) = serve_http_on(
            std::iter::from_fn(move || Some(listener.accept().map(|(c, _)| c))),
            |c: &TcpStream| {
                c.set_read_timeout(Some(Duration::from_secs(30))).ok();
            },
        );
        HttpBackend {
            addr,
            connections,
            seen,
        }
    }
}

type Seen = Arc<Mutex<Vec<SeenRequest>>>;

/// Serve [`serve_http`] on each connection `incoming` yields (after
/// `prepare`), a thread each; the connection count and the requests seen.
fn serve_http_on<S: Read + Write + Send + 'static>(
    incoming: impl Iterator<Item = std::io::Result<S>> + Send + 'static,
    prepare: fn(&S),
) -> (Arc<AtomicUsize>, Seen) {
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (c2, s2) = (connections.clone(), seen.clone());
    thread::spawn(move || {
        for conn in incoming {
            let Ok(conn) = conn else { continue };
            c2.fetch_add(1, Ordering::SeqCst);
            let seen = s2.clone();
            thread::spawn(move || {
                prepare(&conn);
                let _ = serve_http(conn, seen);
            });
        }
    });
    (connections, seen)
}

/// [`HttpBackend`] on a unix stream socket at `path` (nginx's
/// `server unix:/path`): the same answers, WebSocket echo included.
pub struct UnixHttpBackend {
    pub path: PathBuf,
    pub connections: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<SeenRequest>>>,
}

impl UnixHttpBackend {
    pub fn start(path: PathBuf) -> UnixHttpBackend {
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind unix backend");
        let (connections, seen) = serve_http_on(
            std::iter::from_fn(move || Some(listener.accept().map(|(c, _)| c))),
            |c: &std::os::unix::net::UnixStream| {
                c.set_read_timeout(Some(Duration::from_secs(30))).ok();
            },
        );
        UnixHttpBackend {
            path,
            connections,
            seen,
        }
    }
}

fn serve_http<S: Read + Write>(
    mut conn: S,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = conn.read(&mut tmp)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let (method, req) = seen_head(&buf[..head_end]);
        buf.drain(..head_end);
        let path = req.path.clone();
        let chunked = req
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length: usize = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body = if chunked {
            read_chunked(&mut conn, &mut buf)?
        } else {
            while buf.len() < length {
                let n = conn.read(&mut tmp)?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            buf.drain(..length).collect()
        };
        if req
            .header("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        {
            // The same port upgrades too (socket.io serves polling and
            // WebSocket on one path): answer 101, then echo frames.
            let key = req.header("sec-websocket-key").unwrap_or("").to_string();
            seen.lock().unwrap().push(req);
            let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
            conn.write_all(
                format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n")
                    .as_bytes(),
            )?;
            let mut ws = tungstenite::WebSocket::from_raw_socket(
                conn,
                tungstenite::protocol::Role::Server,
                Some(ws_config()),
            );
            while let Ok(m) = ws.read() {
                if (m.is_text() || m.is_binary()) && ws.send(m).is_err() {
                    break;
                }
            }
            return Ok(());
        }
        let close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let info = format!(
            "{method} {path} host={} connection={} body={}",
            req.header("host").unwrap_or("-"),
            req.header("connection").unwrap_or("-"),
            body.len()
        );
        seen.lock().unwrap().push(req);
        let mut out = Vec::new();
        if path.ends_with("/chunked") {
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
            let third = body.len().div_ceil(3).max(1);
            for part in body.chunks(third) {
                out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                out.extend_from_slice(part);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        } else {
            out.extend_from_slice(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                    info.len()
                )
                .as_bytes(),
            );
            if method != "HEAD" {
                out.extend_from_slice(info.as_bytes());
            }
        }
        conn.write_all(&out)?;
        if close {
            return Ok(());
        }
    }
}

fn read_chunked(conn: &mut impl Read, buf: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut tmp = [0u8; 8192];
    let mut fill = |buf: &mut Vec<u8>| -> std::io::Result<()> {
        let n = conn.read(&mut tmp)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&tmp[..n]);
        Ok(())
    };
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            fill(buf)?;
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| std::io::Error::other("bad chunk size"))?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    let empty = i == 0;
                    buf.drain(..i + 2);
                    if empty {
                        return Ok(body);
                    }
                } else {
                    fill(buf)?;
                }
            }
        }
        while buf.len() < size + 2 {
            fill(buf)?;
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

/// A TCP stream that counts the bytes through it (what a tunnel's log line
/// and metrics must report).
pub struct Counted {
    pub s: TcpStream,
    pub read: Arc<std::sync::atomic::AtomicU64>,
    pub written: Arc<std::sync::atomic::AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.s.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.s.write(buf)?;
        self.written.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.s.flush()
    }
}

/// One GET of `path` on a fresh connection (`Host: host`, the `extra`
/// header lines, `Connection: close`): (status, response head, body).
pub fn get_once(addr: SocketAddr, host: &str, path: &str, extra: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
    )
    .expect("write");
    let (head, body) = read_response(&mut s);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, body)
}

/// An HTTP/1.1 upstream made of one function: for each request head
/// (request line and fields, without the blank line; a body by
/// Content-Length is read and dropped) `answer` gives the bytes to write
/// and whether to close the connection after them. Keep-alive otherwise;
/// a thread per connection.
pub fn answering_backend(
    answer: impl Fn(&str) -> (String, bool) + Send + Sync + 'static,
) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let answer = Arc::new(answer);
    thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { continue };
            let answer = answer.clone();
            thread::spawn(move || {
                conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let mut w = conn.try_clone().unwrap();
                let mut r = std::io::BufReader::new(conn);
                loop {
                    let mut head = String::new();
                    let mut length = 0usize;
                    let mut line = String::new();
                    for _ in 0..100 {
                        line.clear();
                        match std::io::BufRead::read_line(&mut r, &mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        head.push_str(&line);
                    }
                    let mut body = vec![0u8; length];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    let (bytes, close) = answer(&head);
                    if w.write_all(bytes.as_bytes()).is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// One request (`method`, `path`, Host `app`, `body` by Content-Length)
/// on a fresh connection: (status, head, body). A HEAD answer's head is
/// read to the close (no body follows, whatever its Content-Length).
pub fn request_once(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: app\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let (head, body) = if method == "HEAD" {
        let mut all = String::new();
        let _ = s.read_to_string(&mut all);
        (all.trim_end().to_string(), String::new())
    } else {
        read_response(&mut s)
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, body)
}

/// The path of a request head's request line ("/" when it has none).
pub fn path_of(head: &str) -> &str {
    head.split(' ').nth(1).unwrap_or("/")
}

/// One WebSocket text message through `addr` at `path` (Host `app`): the
/// handshake, `text` sent, the echo read, a clean close; returns the echo.
pub fn ws_echo_text(addr: SocketAddr, path: &str, text: &str) -> String {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut ws = ws_handshake(stream, &format!("ws://app{path}"));
    ws.send(tungstenite::Message::text(text)).unwrap();
    let got = ws.read().unwrap().into_text().unwrap().to_string();
    close_websocket(&mut ws);
    got
}

/// The values of every `name` field (any case) of a response head, trimmed.
pub fn field_values(head: &str, name: &str) -> Vec<String> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}
