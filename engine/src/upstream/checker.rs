//! The active health checker: one thread per process (not one per
//! worker), with a small epoll runtime of its own and one task per
//! checked server. Each task checks its server at once, then after every
//! `interval` (plus up to `jitter`); `fails` failures in a row mark it
//! down and `passes` passes in a row up ([`check::Streak`]). A change is
//! written to the server's [`Verdict`], which every worker reads at its
//! next pick, and logged once.
//!
//! A reload hands the checker the new configuration: servers that keep
//! the same check keep their task and state, changed ones restart from
//! the state they had, removed ones stop, and a server no longer checked
//! is up again as far as checks go.

use std::cell::Cell;
use std::collections::HashMap;
use std::io;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringway_config::{CheckKind, Config, HealthCheck, UpstreamAddr};
use tracing::{debug, info, warn};

use super::check::{self, Judged, Streak};
use super::resolver::{members, Members};
use super::verdict::{Verdict, Verdicts};
use crate::metrics::{CheckStats, Histogram, LATENCY_BUCKETS};
use crate::transport::Transport;

type Rows = Arc<Mutex<HashMap<(String, String), CheckStats>>>;

/// The running checker: where new configurations go, and its figures.
pub struct Checker {
    tx: flume::Sender<Update>,
    rows: Rows,
}

/// What the checker is told.
enum Update {
    Config(Arc<Config>),
    Members(Arc<Members>),
}

impl Checker {
    /// Start the checker thread on `config`.
    pub fn start(
        config: Arc<Config>,
        members: Arc<Members>,
        verdicts: Arc<Verdicts>,
    ) -> io::Result<Checker> {
        let (tx, rx) = flume::unbounded();
        let rows: Rows = Arc::default();
        let thread_rows = rows.clone();
        let _ = tx.send(Update::Members(members));
        let _ = tx.send(Update::Config(config));
        std::thread::Builder::new()
            .name("ringway-health".into())
            .spawn(move || {
                let rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                    .enable_timer()
                    .build();
                match rt {
                    Ok(mut rt) => rt.block_on(serve(rx, verdicts, thread_rows)),
                    Err(e) => warn!(error = %e, "health checks: cannot start their runtime"),
                }
            })?;
        Ok(Checker { tx, rows })
    }

    /// Check what `config` asks from now on.
    pub fn reconfigure(&self, config: Arc<Config>) {
        let _ = self.tx.send(Update::Config(config));
    }

    /// Check the members of resolved servers `members` has from now on.
    pub fn set_members(&self, members: Arc<Members>) {
        let _ = self.tx.send(Update::Members(members));
    }

    /// Each checked server's figures, by group and server.
    pub fn rows(&self) -> Vec<CheckStats> {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<CheckStats> = rows.values().cloned().collect();
        out.sort_by(|a, b| (&a.upstream, &a.server).cmp(&(&b.upstream, &b.server)));
        out
    }
}

/// What one server's task checks.
#[derive(Clone, PartialEq)]
struct Target {
    group: String,
    /// The member's key (the server as written, or a resolved address):
    /// its name in logs and metrics.
    server: String,
    /// The server as written: the check's `Host:`.
    host: String,
    addrs: Vec<UpstreamAddr>,
    check: HealthCheck,
}

struct Running {
    target: Target,
    stop: Rc<Cell<bool>>,
    verdict: Arc<Verdict>,
}

async fn serve(rx: flume::Receiver<Update>, verdicts: Arc<Verdicts>, rows: Rows) {
    let mut running: HashMap<(String, String), Running> = HashMap::new();
    let mut config: Option<Arc<Config>> = None;
    let mut members = Arc::new(Members::default());
    while let Ok(update) = rx.recv_async().await {
        match update {
            Update::Config(c) => config = Some(c),
            Update::Members(m) => members = m,
        }
        let Some(config) = &config else { continue };
        let wanted = targets(config, &members);
        running.retain(|key, r| {
            let keep = wanted.get(key) == Some(&r.target);
            if !keep {
                r.stop.set(true);
                if !wanted.contains_key(key) {
                    // No longer checked: the checks no longer hold it down
                    // (its own verdict: a lookup would make a new one).
                    r.verdict.set_up(true);
                    rows.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
                }
            }
            keep
        });
        for (key, target) in wanted {
            if running.contains_key(&key) {
                continue;
            }
            let stop = Rc::new(Cell::new(false));
            let verdict = verdicts.get(&target.group, &target.server);
            monoio::spawn(watch(
                target.clone(),
                verdict.clone(),
                stop.clone(),
                rows.clone(),
            ));
            running.insert(
                key,
                Running {
                    target,
                    stop,
                    verdict,
                },
            );
        }
        let n = running.len();
        if n > 0 {
            debug!(servers = n, "health checks configured");
        }
    }
    for r in running.values() {
        r.stop.set(true);
    }
}

/// Every server `config` checks (`down = true` ones are never used, so
/// never checked), by group and server.
fn targets(config: &Config, resolved: &Members) -> HashMap<(String, String), Target> {
    let mut out = HashMap::new();
    for up in config.upstreams.values() {
        let Some(check) = &up.health_check else {
            continue;
        };
        for m in members(up, resolved).into_iter().filter(|m| !m.server.down) {
            out.insert(
                (up.name.clone(), m.key.clone()),
                Target {
                    group: up.name.clone(),
                    server: m.key,
                    host: m.server.addr_text.clone(),
                    addrs: m.addrs,
                    check: check.clone(),
                },
            );
        }
    }
    out
}

/// Check one server until told to stop.
async fn watch(t: Target, verdict: Arc<Verdict>, stop: Rc<Cell<bool>>, rows: Rows) {
    let key = (t.group.clone(), t.server.clone());
    let mut streak = Streak::new(verdict.is_up());
    loop {
        let started = Instant::now();
        let deadline = started + t.check.timeout;
        let result = match monoio::time::timeout(t.check.timeout, probe(&t, deadline)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", t.check.timeout)),
        };
        let took = started.elapsed();
        if stop.get() {
            return;
        }
        let pass = result.is_ok();
        let changed = streak.record(pass, t.check.fails, t.check.passes);
        if let Some(up) = changed {
            verdict.set_up(up);
            if up {
                info!(upstream = %t.group, server = %t.server, check = t.check.kind.name(), passes = t.check.passes, "upstream server marked up by health check");
            } else {
                warn!(upstream = %t.group, server = %t.server, check = t.check.kind.name(), fails = t.check.fails, reason = %result.as_ref().err().map_or("", String::as_str), "upstream server marked down by health check");
            }
        } else if let Err(why) = &result {
            debug!(upstream = %t.group, server = %t.server, reason = %why, "health check failed");
        }
        {
            let mut rows = rows.lock().unwrap_or_else(|e| e.into_inner());
            let row = rows.entry(key.clone()).or_insert_with(|| CheckStats {
                upstream: t.group.clone(),
                server: t.server.clone(),
                up: true,
                passes: 0,
                fails: 0,
                duration: Histogram::new(LATENCY_BUCKETS),
            });
            row.up = streak.up;
            if pass {
                row.passes += 1;
            } else {
                row.fails += 1;
            }
            row.duration.observe(took);
        }
        monoio::time::sleep(wait(&t.check)).await;
        if stop.get() {
            return;
        }
    }
}

/// `interval` plus a random part of `jitter`.
fn wait(c: &HealthCheck) -> Duration {
    let jitter = c.jitter.as_nanos() as u64;
    let extra = if jitter == 0 {
        0
    } else {
        crate::h2::websocket::random_u64() % (jitter + 1)
    };
    c.interval + Duration::from_nanos(extra)
}

/// One check of `t` (the caller bounds it by the timeout): `Err` says
/// why it failed.
async fn probe(t: &Target, deadline: Instant) -> Result<(), String> {
    let c = &t.check;
    let mut last = String::from("no address");
    let mut stream = None;
    for addr in &t.addrs {
        let r = match addr {
            UpstreamAddr::Inet(a) => {
                let mut a = *a;
                if let Some(p) = c.port {
                    a.set_port(p);
                }
                crate::proxy::connect::connect_one(a, c.timeout).await
            }
            UpstreamAddr::Unix(p) => crate::proxy::connect::connect_unix(p, c.timeout).await,
        };
        match r {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("connect to {addr}: {e}"),
        }
    }
    let Some(s) = stream else {
        return Err(last);
    };
    if c.kind == CheckKind::Tcp {
        return Ok(());
    }
    let ws_key = (c.kind == CheckKind::WebSocket)
        .then(|| crate::h2::websocket::key(&crate::h2::websocket::random16()));
    let request = check::request(c, &t.host, ws_key.as_ref());
    s.write_all(&request, c.timeout)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let n = s
            .read_append(&mut buf, check::MAX_HEAD + check::MAX_BODY)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let eof = n == 0;
        match check::judge(c, ws_key.as_ref(), &buf, eof) {
            Judged::More if !eof => continue,
            Judged::More => return Err("answer cut short".into()),
            Judged::Fail(why) => return Err(why),
            Judged::Pass => break,
        }
    }
    if c.kind == CheckKind::WebSocket {
        // Close the WebSocket as a client does (RFC 6455 §7.1.2): our
        // close frame, then the server's close (or its end), briefly.
        if s.write_all(&check::CLOSE_1000, c.timeout).await.is_ok() {
            s.shutdown_write(c.timeout).await;
            let mut rest = [0u8; 512];
            // Within the check's own time: a slow close never turns a
            // passed check into a timeout.
            let until = (Instant::now() + CLOSE_WAIT).min(deadline - CLOSE_MARGIN);
            while let Ok(n) = crate::transport::read_timeout(
                &s,
                &mut rest,
                until.saturating_duration_since(Instant::now()),
            )
            .await
            {
                if n == 0 || Instant::now() >= until {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// How long a passed websocket check waits for the server's close.
const CLOSE_WAIT: Duration = Duration::from_millis(500);
/// What the close leaves of the check's time.
const CLOSE_MARGIN: Duration = Duration::from_millis(5);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        ringway_config::parse_str(text, std::path::Path::new("t.toml")).unwrap()
    }

    #[test]
    fn targets_are_the_checked_groups_servers_but_down_ones() {
        let c = config(
            r#"
[upstreams.chat]
servers = [{ addr = "127.0.0.1:1" }, { addr = "127.0.0.1:2", down = true }, { addr = "127.0.0.1:3", backup = true }]
[upstreams.chat.health_check]
type = "tcp"
[upstreams.plain]
servers = [{ addr = "127.0.0.1:4" }]
[servers.s]
listen = ["127.0.0.1:0"]
[servers.s.locations."/"]
proxy_pass = "http://chat"
[servers.s.locations."/p"]
proxy_pass = "http://plain"
"#,
        );
        let mut keys: Vec<_> = targets(&c, &Members::default()).into_keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                ("chat".to_string(), "127.0.0.1:1".to_string()),
                ("chat".to_string(), "127.0.0.1:3".to_string())
            ]
        );
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        let mut c = config(
            r#"
[upstreams.chat]
servers = [{ addr = "127.0.0.1:1" }]
[upstreams.chat.health_check]
interval = "1s"
jitter = "100ms"
[servers.s]
listen = ["127.0.0.1:0"]
[servers.s.locations."/"]
proxy_pass = "http://chat"
"#,
        )
        .upstreams["chat"]
            .health_check
            .clone()
            .unwrap();
        let waits: Vec<Duration> = (0..200).map(|_| wait(&c)).collect();
        assert!(waits
            .iter()
            .all(|w| *w >= Duration::from_secs(1) && *w <= Duration::from_millis(1100)));
        assert!(waits.iter().any(|w| *w != waits[0]), "the waits vary");
        c.jitter = Duration::ZERO;
        assert_eq!(wait(&c), Duration::from_secs(1));
    }
}
