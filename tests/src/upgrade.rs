//! What the binary-upgrade tests need beside [`Ringway::upgrade`]: the
//! command's report, a "new" binary (a copy of ringway's, or a script that
//! fails), a thread that keeps opening fresh WebSocket connections and
//! counts those that fail, and the processes' memory sampled while the
//! upgrade runs.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::Message;

use crate::{binary, rss_kib, servers_with_config, temp_dir, ws_config, Ringway};

/// `ringway upgrade`'s line: `upgrade: handed over N tunnels, drained M,
/// still held K (old pid P, new pid Q)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub handed: usize,
    pub drained: usize,
    pub held: usize,
    pub old_pid: u32,
    pub new_pid: u32,
}

impl Report {
    /// The report in `stdout` (its first line starting `upgrade:`).
    pub fn parse(stdout: &str) -> Option<Report> {
        let line = stdout.lines().find(|l| l.starts_with("upgrade:"))?;
        let after = |key: &str| -> Option<u64> {
            let rest = &line[line.find(key)? + key.len()..];
            let digits: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            digits.parse().ok()
        };
        Some(Report {
            handed: after("handed over")? as usize,
            drained: after("drained")? as usize,
            held: after("still held")? as usize,
            old_pid: after("old pid")? as u32,
            new_pid: after("new pid")? as u32,
        })
    }
}

/// A copy of the ringway binary in a fresh temp dir (a "new" binary
/// file), named `ringway`.
pub fn copy_of_binary() -> PathBuf {
    let path = temp_dir("new-bin").join("ringway");
    std::fs::copy(binary(), &path).expect("copy the ringway binary");
    path
}

/// An executable shell script that exits with `code` at once (a new
/// binary that crashes).
pub fn exiting_binary(code: i32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = temp_dir("bad-bin").join("ringway");
    std::fs::write(&path, format!("#!/bin/sh\nexit {code}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// One fresh WebSocket through `proxy` at `path` (Host `app`): connect,
/// handshake, one text echoed, a clean close; what went wrong otherwise.
pub fn fresh_echo(proxy: SocketAddr, path: &str) -> Result<(), String> {
    let s = TcpStream::connect_timeout(&proxy, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.set_write_timeout(Some(Duration::from_secs(10))).ok();
    let (mut ws, _) =
        tungstenite::client::client_with_config(format!("ws://app{path}"), s, Some(ws_config()))
            .map_err(|e| format!("handshake: {e}"))?;
    ws.send(Message::text(path))
        .map_err(|e| format!("send: {e}"))?;
    match ws.read() {
        Ok(Message::Text(t)) if t.as_str() == path => {}
        other => return Err(format!("instead of the echo: {other:?}")),
    }
    ws.close(None).map_err(|e| format!("close: {e}"))?;
    for _ in 0..100 {
        match ws.read() {
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => return Ok(()),
            Err(e) => return Err(format!("closing: {}", crate::tunnel::ended(&e))),
        }
    }
    Err("no close reply".into())
}

/// One fresh connection's outcome: when it started and ended, and what
/// went wrong.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub started: Instant,
    pub ended: Instant,
    pub result: Result<(), String>,
}

/// A thread that opens fresh WebSocket connections through a proxy in a
/// loop ([`fresh_echo`] at `/fresh/N`, on a plain echo path of a
/// [`NumberedBackend`](crate::numbered::NumberedBackend)), one every
/// few ms, until stopped.
pub struct Churn {
    stop: Arc<AtomicBool>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Churn {
    pub fn start(proxy: SocketAddr) -> Churn {
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let (s2, a2) = (stop.clone(), attempts.clone());
        let thread = thread::spawn(move || {
            let mut n = 0usize;
            while !s2.load(Ordering::SeqCst) {
                let started = Instant::now();
                let result = fresh_echo(proxy, &format!("/fresh/{n}"));
                a2.lock().unwrap().push(Attempt {
                    started,
                    ended: Instant::now(),
                    result,
                });
                n += 1;
                // Pacing: a few hundred connections a second at most (not
                // a synchronisation).
                thread::sleep(Duration::from_millis(3));
            }
        });
        Churn {
            stop,
            attempts,
            thread: Some(thread),
        }
    }

    /// Stop (after the attempt under way) and return every attempt.
    pub fn stop(mut self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            if let Err(e) = t.join() {
                std::panic::resume_unwind(e);
            }
        }
        std::mem::take(&mut *self.attempts.lock().unwrap())
    }
}

impl Drop for Churn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The most VmRSS (KiB) of the old process and of the new one (found by
/// its command line naming the config), sampled every 10 ms while an
/// upgrade runs.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<RssPeak>>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RssPeak {
    /// The old process's VmRSS when sampling began, and its most.
    pub old_before: u64,
    pub old_max: u64,
    /// The new process's pid and its most VmRSS (0: never seen).
    pub new_pid: u32,
    pub new_max: u64,
    pub samples: usize,
}

impl RssSampler {
    pub fn start(rw: &Ringway) -> RssSampler {
        let old = rw.pid();
        let config = rw.config_path.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = thread::spawn(move || {
            let mut peak = RssPeak {
                old_before: rss_kib(old).unwrap_or(0),
                ..RssPeak::default()
            };
            while !s2.load(Ordering::SeqCst) {
                peak.samples += 1;
                if let Some(r) = rss_kib(old) {
                    peak.old_max = peak.old_max.max(r);
                }
                if peak.new_pid == 0 {
                    peak.new_pid = new_server(&config, old).unwrap_or(0);
                }
                if peak.new_pid != 0 {
                    if let Some(r) = rss_kib(peak.new_pid) {
                        peak.new_max = peak.new_max.max(r);
                    }
                }
                // The sampling period.
                thread::sleep(Duration::from_millis(10));
            }
            peak
        });
        RssSampler {
            stop,
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) -> RssPeak {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .map(|t| t.join().expect("rss sampler"))
            .unwrap_or_default()
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A ringway process other than `old` that runs `config`.
fn new_server(config: &Path, old: u32) -> Option<u32> {
    servers_with_config(config).into_iter().find(|&p| p != old)
}
