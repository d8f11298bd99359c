//! HAProxy beside ringway, for the tests that compare ringway's behaviour
//! with HAProxy's on the same backends (active health checks: nginx OSS
//! has none, HAProxy is the reference).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::{reserve_port, temp_dir, ReservedPort};

/// How many ports `HaProxy::start` tries before it gives up (another
/// process may take a port between the choice and HAProxy's bind).
const PORT_TRIES: usize = 5;

/// The haproxy binary on `PATH` or in `/usr/sbin`, if installed.
pub fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("haproxy"))
        .find(|p| p.is_file())
}

/// Lines HAProxy wrote to stderr, each with when it was read.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<(Instant, String)>>,
    cv: Condvar,
}

/// HAProxy in the foreground (`-db`), one thread, killed on drop. Its
/// stderr (alerts and warnings: a server marked DOWN or UP by its check)
/// is kept, each line with the time it came.
pub struct HaProxy {
    child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    log: Arc<Lines>,
    _port: ReservedPort,
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HaProxy {
    /// Start `bin` on `conf`: the sections after `global` (`defaults`,
    /// `frontend`, `backend` …), where `{LISTEN}` is the address to bind
    /// (a free port on 127.0.0.1). Waits (bounded) until it accepts there;
    /// a port HAProxy could not bind is replaced by another, a bounded
    /// number of times.
    pub fn start(bin: &std::path::Path, tag: &str, conf: &str) -> HaProxy {
        let mut failures = Vec::new();
        for _ in 0..PORT_TRIES {
            // The port is held (SO_REUSEPORT, not listening) until HAProxy
            // has bound it beside the reservation (HAProxy sets
            // SO_REUSEPORT on its listeners): no port-0 bind elsewhere
            // takes it in between.
            let port = reserve_port();
            let dir = temp_dir(tag);
            let full = format!(
                "global\n  nbthread 1\n\n{}\n",
                conf.replace("{LISTEN}", &port.addr.to_string())
            );
            let cfg = dir.join("haproxy.cfg");
            std::fs::write(&cfg, full).expect("write haproxy.cfg");
            let mut child = Command::new(bin)
                .arg("-f")
                .arg(&cfg)
                .arg("-db")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn haproxy");
            let log = Arc::new(Lines::default());
            let stderr = child.stderr.take().expect("stderr");
            let l2 = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    eprintln!("[haproxy] {line}");
                    l2.lines.lock().unwrap().push((Instant::now(), line));
                    l2.cv.notify_all();
                }
            });
            let mut hp = HaProxy {
                child,
                addr: port.addr,
                dir,
                log,
                _port: port,
            };
            match hp.wait_accepting() {
                Ok(()) => return hp,
                Err(why) => failures.push(why),
            }
        }
        panic!(
            "haproxy did not start in {PORT_TRIES} tries:\n{}",
            failures.join("\n---\n")
        );
    }

    /// Wait (bounded) until HAProxy accepts on its address; the reason
    /// (with its stderr) when it exits or the wait ends first.
    fn wait_accepting(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(self.addr).is_ok() {
                return Ok(());
            }
            let exited = self.child.try_wait().expect("try_wait");
            if exited.is_some() || Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!(
                    "haproxy on {} {}:\n{}",
                    self.addr,
                    match exited {
                        Some(st) => format!("exited ({st})"),
                        None => "did not accept within 10 s".to_string(),
                    },
                    self.logs()
                ));
            }
            // Bounded poll of a process that says nothing when it is ready.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// HAProxy's stderr so far.
    pub fn logs(&self) -> String {
        self.log
            .lines
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Wait (bounded) for a line of stderr containing `needle` that came
    /// at or after `since`: the line and when it came (`None` when none
    /// came within `timeout`).
    pub fn wait_for_log_since(
        &self,
        needle: &str,
        since: Instant,
        timeout: Duration,
    ) -> Option<(Instant, String)> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.log.lines.lock().unwrap();
        loop {
            if let Some(l) = lines
                .iter()
                .find(|(at, l)| *at >= since && l.contains(needle))
            {
                return Some(l.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            lines = self.log.cv.wait_timeout(lines, left).unwrap().0;
        }
    }
}

/// "HAProxy 2.6.12-1+deb12u4", from the first line of `haproxy -v`
/// ("HAProxy version 2.6.12-1+deb12u4 2026/10/17 - …"), for reports.
pub fn version(bin: &std::path::Path) -> String {
    let out = Command::new(bin).arg("-v").output().ok();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let v = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "version").nth(1));
    format!("HAProxy {}", v.unwrap_or("(version unknown)"))
}
