//! DNS discovery for `resolve = true` upstream servers: one resolver
//! thread per process, off the workers. Each name is resolved again after
//! its answer's TTL (never sooner than `runtime.resolver_valid`), through
//! the configured `resolver` addresses (A and AAAA over UDP, `dns`), or
//! the system's resolver every `resolver_valid` when none is configured.
//!
//! Each address is a member of its group with the server's parameters
//! ([`members`]). When a name's set changes the thread publishes the
//! whole table ([`Members`]) to every worker and the health checker;
//! a worker rebuilds its groups from it as a reload does, so members that
//! stay keep their state and those that left have their tunnels follow
//! `on_remove`. A failed resolution keeps the last good set (logged once
//! per change of error); an answer with no address empties it.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringway_config::{Config, Upstream, UpstreamAddr, UpstreamServer};
use tracing::{info, warn};

use super::dns::{self, Answer, Unusable};

/// Every `resolve = true` server's addresses, by the server as written
/// (`"chat.internal:3000"`); a server not resolved yet is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members {
    by_server: BTreeMap<String, Vec<SocketAddr>>,
}

impl Members {
    pub fn get(&self, server: &str) -> Option<&[SocketAddr]> {
        self.by_server.get(server).map(Vec::as_slice)
    }
}

/// One member of a group: a server as written, or one address of a
/// resolved one.
pub struct Member<'a> {
    /// What names it: the server as written, or a resolved one's address
    /// (`"127.0.0.2:3000"`) — its key for health, pools and logs.
    pub key: String,
    pub addrs: Vec<UpstreamAddr>,
    /// The configured server it comes from (its parameters, and the
    /// `Host:` of its health checks).
    pub server: &'a UpstreamServer,
}

/// The members of `up`: each server as written, each resolved server as
/// one member per address (in address order, so every worker and process
/// sees the same list); an address already a member is not repeated.
pub fn members<'a>(up: &'a Upstream, resolved: &Members) -> Vec<Member<'a>> {
    let mut out: Vec<Member<'a>> = Vec::with_capacity(up.servers.len());
    let written: Vec<&str> = up
        .servers
        .iter()
        .filter(|s| !s.resolve)
        .map(|s| s.addr_text.as_str())
        .collect();
    for s in &up.servers {
        if !s.resolve {
            out.push(Member {
                key: s.addr_text.clone(),
                addrs: s.addrs.clone(),
                server: s,
            });
            continue;
        }
        let mut addrs = resolved.get(&s.addr_text).unwrap_or_default().to_vec();
        addrs.sort();
        for a in addrs {
            let key = a.to_string();
            if !written.contains(&key.as_str()) && !out.iter().any(|m| m.key == key) {
                out.push(Member {
                    key,
                    addrs: vec![UpstreamAddr::Inet(a)],
                    server: s,
                });
            }
        }
    }
    out
}

/// Where a new table goes (every worker, the checker).
pub type Publish = Box<dyn Fn(Arc<Members>) + Send>;

/// The running resolver thread: where new configurations go.
pub struct Resolver {
    tx: flume::Sender<(Arc<Config>, flume::Sender<Arc<Members>>)>,
}

/// The most the names are resolved for before the workers start.
const START_WAIT: Duration = Duration::from_secs(5);

/// The longest an answer is kept, whatever its TTL.
const MAX_TTL: u32 = 86_400;

/// How long each resolver address gets to answer one name.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

impl Resolver {
    /// Resolve `config`'s names now (the workers start with the table
    /// this returns), then keep them resolved from a thread of their own.
    pub fn start(config: Arc<Config>, publish: Publish) -> io::Result<(Resolver, Arc<Members>)> {
        let mut state = State::default();
        state.reconfigure(&config);
        // Bounded: names still unresolved then are the thread's first
        // work, and reach the workers as soon as they resolve.
        state.resolve_due(Instant::now(), Some(Instant::now() + START_WAIT));
        let first = Arc::new(state.table());
        let (tx, rx) = flume::unbounded::<(Arc<Config>, flume::Sender<Arc<Members>>)>();
        std::thread::Builder::new()
            .name("ringway-dns".into())
            .spawn(move || loop {
                let wait = state
                    .next_due()
                    .map(|t| t.saturating_duration_since(Instant::now()));
                let got = match wait {
                    Some(w) => rx.recv_timeout(w),
                    None => rx.recv().map_err(|_| flume::RecvTimeoutError::Disconnected),
                };
                match got {
                    // A reload: its new names resolved at once, the
                    // table to the caller (the workers get it with the
                    // new configuration, so they never run it without
                    // its members).
                    Ok((config, reply)) => {
                        state.reconfigure(&config);
                        state.resolve_due(Instant::now(), None);
                        let table = Arc::new(state.table());
                        // The reload stopped waiting: the table goes the
                        // usual way, or its new members would never reach
                        // the workers (the next answers find no change).
                        if let Err(flume::SendError(table)) = reply.send(table) {
                            publish(table);
                        }
                    }
                    Err(flume::RecvTimeoutError::Disconnected) => return,
                    Err(flume::RecvTimeoutError::Timeout) => {
                        if state.resolve_due(Instant::now(), None) {
                            publish(Arc::new(state.table()));
                        }
                    }
                }
            })?;
        Ok((Resolver { tx }, first))
    }

    /// Follow the names `config` has from now on: those due (new ones
    /// included) are resolved before this returns the table (bounded by
    /// the query timeout per resolver; `None` past `wait`).
    pub fn reconfigure(&self, config: Arc<Config>, wait: Duration) -> Option<Arc<Members>> {
        let (tx, rx) = flume::bounded(1);
        self.tx.send((config, tx)).ok()?;
        rx.recv_timeout(wait).ok()
    }
}

#[derive(Default)]
struct State {
    servers: Vec<SocketAddr>,
    valid: Duration,
    names: HashMap<String, Name>,
}

struct Name {
    host: String,
    port: u16,
    addrs: Option<Vec<SocketAddr>>,
    due: Instant,
    /// The error the last resolution failed with (logged once).
    failing: Option<String>,
}

impl State {
    fn reconfigure(&mut self, config: &Config) {
        self.servers = config.runtime.resolver.clone();
        self.valid = config.runtime.resolver_valid;
        let wanted: Vec<&str> = config
            .upstreams
            .values()
            .flat_map(|u| u.servers.iter())
            .filter(|s| s.resolve)
            .map(|s| s.addr_text.as_str())
            .collect();
        self.names.retain(|k, _| wanted.contains(&k.as_str()));
        let now = Instant::now();
        for text in wanted {
            if self.names.contains_key(text) {
                continue;
            }
            let Some((host, port)) = text
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
            else {
                continue;
            };
            self.names.insert(
                text.to_string(),
                Name {
                    host,
                    port,
                    addrs: None,
                    due: now,
                    failing: None,
                },
            );
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.names.values().map(|n| n.due).min()
    }

    /// Resolve the names whose time has come (those left when `until`
    /// passes stay due); true when a set changed.
    fn resolve_due(&mut self, now: Instant, until: Option<Instant>) -> bool {
        let mut changed = false;
        let (servers, valid) = (self.servers.clone(), self.valid);
        for (text, n) in self.names.iter_mut().filter(|(_, n)| n.due <= now) {
            if until.is_some_and(|u| Instant::now() >= u) {
                break;
            }
            match resolve(&n.host, n.port, &servers) {
                Ok((mut addrs, ttl)) => {
                    addrs.sort();
                    addrs.dedup();
                    let keep = ttl.map_or(valid, |t| {
                        valid.max(Duration::from_secs(t.min(MAX_TTL).into()))
                    });
                    n.due = Instant::now() + keep;
                    if let Some(was) = n.failing.take() {
                        info!(name = %text, error_was = %was, "upstream name resolves again");
                    }
                    if n.addrs.as_ref() != Some(&addrs) {
                        let before = n.addrs.take().unwrap_or_default();
                        let added: Vec<String> = addrs
                            .iter()
                            .filter(|a| !before.contains(a))
                            .map(|a| a.to_string())
                            .collect();
                        let removed: Vec<String> = before
                            .iter()
                            .filter(|a| !addrs.contains(a))
                            .map(|a| a.to_string())
                            .collect();
                        info!(name = %text, addresses = addrs.len(), added = ?added, removed = ?removed, next_in = ?keep, "upstream name resolved: members changed");
                        n.addrs = Some(addrs);
                        changed = true;
                    }
                }
                Err(e) => {
                    n.due = Instant::now() + valid;
                    if n.failing.as_deref() != Some(e.as_str()) {
                        let kept = n.addrs.as_ref().map_or(0, Vec::len);
                        warn!(name = %text, error = %e, kept, "cannot resolve upstream name: keeping the last addresses");
                        n.failing = Some(e);
                    }
                }
            }
        }
        changed
    }

    fn table(&self) -> Members {
        Members {
            by_server: self
                .names
                .iter()
                .filter_map(|(k, n)| Some((k.clone(), n.addrs.clone()?)))
                .collect(),
        }
    }
}

/// `host`'s addresses with `port`, and the smallest TTL when known.
fn resolve(
    host: &str,
    port: u16,
    servers: &[SocketAddr],
) -> Result<(Vec<SocketAddr>, Option<u32>), String> {
    if servers.is_empty() {
        return (host, port)
            .to_socket_addrs()
            .map(|a| (a.collect(), None))
            .map_err(|e| e.to_string());
    }
    let mut last = String::new();
    for server in servers {
        match ask(server, host) {
            Ok((ips, ttl)) => {
                return Ok((
                    ips.into_iter()
                        .map(|ip| SocketAddr::new(ip, port))
                        .collect(),
                    ttl,
                ))
            }
            Err(e) => last = format!("{server}: {e}"),
        }
    }
    Err(last)
}

/// Ask `server` for `host`'s A and AAAA records over UDP.
fn ask(server: &SocketAddr, host: &str) -> Result<(Vec<std::net::IpAddr>, Option<u32>), String> {
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local).map_err(|e| e.to_string())?;
    sock.connect(server).map_err(|e| e.to_string())?;
    let base = crate::h2::websocket::random_u64() as u16;
    let mut queries: Vec<Vec<u8>> = Vec::with_capacity(2);
    for (id, qtype) in [(base, dns::A), (base.wrapping_add(1), dns::AAAA)] {
        let q = dns::query(id, host, qtype).ok_or("not a valid domain name")?;
        sock.send(&q).map_err(|e| e.to_string())?;
        queries.push(q);
    }
    let deadline = Instant::now() + QUERY_TIMEOUT;
    // Each query's answer, or why it has none.
    let mut answers: [Option<Result<Answer, String>>; 2] = [None, None];
    let mut buf = [0u8; dns::MAX_UDP * 8];
    while answers.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            // A receive with a timeout is not restarted after a signal
            // (or a task notification): try again, within the deadline.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => return Err(e.to_string()),
        };
        for (slot, q) in answers.iter_mut().zip(&queries) {
            match dns::parse(&buf[..n], q) {
                Err(Unusable::NotOurs) => {}
                Ok(a) => *slot = Some(Ok(a)),
                Err(Unusable::Failed(code)) => *slot = Some(Err(format!("answer code {code}"))),
                Err(Unusable::Truncated) => {
                    *slot = Some(Err("truncated answer (TCP is not used)".into()))
                }
                Err(Unusable::Malformed(why)) => {
                    *slot = Some(Err(format!("malformed answer: {why}")))
                }
            }
        }
    }
    combine(answers)
}

/// The addresses of the A and AAAA answers: both must have answered,
/// except that addresses of one type are enough when the other type's
/// query failed (a resolver that refuses AAAA still serves A).
fn combine(
    answers: [Option<Result<Answer, String>>; 2],
) -> Result<(Vec<std::net::IpAddr>, Option<u32>), String> {
    let mut ips = Vec::new();
    let mut ttl: Option<u32> = None;
    let mut failure: Option<String> = None;
    for a in answers {
        match a {
            None => failure = Some("no answer".into()),
            Some(Err(e)) => failure = Some(e),
            Some(Ok(Answer::NoSuchName)) => {}
            Some(Ok(Answer::Found { addrs, ttl: t })) => {
                ips.extend(addrs);
                if let Some(t) = t {
                    ttl = Some(ttl.map_or(t, |x| x.min(t)));
                }
            }
        }
    }
    match failure {
        Some(e) if ips.is_empty() => Err(e),
        _ => Ok((ips, ttl)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        ringway_config::parse_str(text, std::path::Path::new("t.toml")).unwrap()
    }

    const GROUP: &str = r#"
[upstreams.chat]
servers = [{ addr = "chat.test:3000", resolve = true, weight = 2 }, { addr = "127.0.0.9:4000" }]
[servers.s]
listen = ["127.0.0.1:0"]
[servers.s.locations."/"]
proxy_pass = "http://chat"
"#;

    #[test]
    fn each_address_is_a_member_with_the_servers_parameters() {
        let c = config(GROUP);
        let up = &c.upstreams["chat"];
        let none = members(up, &Members::default());
        assert_eq!(none.len(), 1, "not resolved yet: only the literal server");
        let mut table = Members::default();
        table.by_server.insert(
            "chat.test:3000".into(),
            vec![
                "127.0.0.3:3000".parse().unwrap(),
                "127.0.0.2:3000".parse().unwrap(),
                "127.0.0.9:4000".parse().unwrap(),
            ],
        );
        let m = members(up, &table);
        let keys: Vec<&str> = m.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(
            keys,
            ["127.0.0.2:3000", "127.0.0.3:3000", "127.0.0.9:4000"],
            "sorted, no member twice"
        );
        assert!(m[..2]
            .iter()
            .all(|m| m.server.weight == 2 && m.server.addr_text == "chat.test:3000"));
        assert_eq!(
            m[2].server.addr_text, "127.0.0.9:4000",
            "the literal server kept its own entry"
        );
    }

    #[test]
    fn a_dead_resolver_fails_and_the_system_one_reads_hosts() {
        // A UDP port nothing listens on: refused or no answer, an error.
        let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = dead.local_addr().unwrap();
        drop(dead);
        assert!(resolve("chat.test", 80, &[addr]).is_err());
        let (local, ttl) = resolve("localhost", 80, &[]).unwrap();
        assert!(local.iter().all(|a| a.ip().is_loopback() && a.port() == 80) && !local.is_empty());
        assert_eq!(ttl, None);
    }

    #[test]
    fn one_failed_type_is_enough_only_with_addresses_of_the_other() {
        let v4 = || {
            Some(Ok(Answer::Found {
                addrs: vec!["127.0.0.2".parse().unwrap()],
                ttl: Some(5),
            }))
        };
        let refused = || Some(Err("answer code 5".to_string()));
        assert_eq!(combine([v4(), refused()]).unwrap().0.len(), 1);
        assert_eq!(combine([v4(), None]).unwrap().1, Some(5));
        assert!(combine([Some(Ok(Answer::NoSuchName)), refused()]).is_err());
        assert!(combine([None, None]).is_err());
        assert_eq!(
            combine([Some(Ok(Answer::NoSuchName)), Some(Ok(Answer::NoSuchName))]),
            Ok((vec![], None)),
            "NXDOMAIN both ways: no address"
        );
    }

    #[test]
    fn state_follows_the_configured_names() {
        let mut s = State::default();
        s.reconfigure(&config(GROUP));
        assert_eq!(s.names.len(), 1);
        assert_eq!(s.names["chat.test:3000"].port, 3000);
        assert!(
            s.next_due().is_some_and(|t| t <= Instant::now()),
            "a new name is due at once"
        );
        s.reconfigure(&config(
            &GROUP.replace("chat.test:3000\", resolve = true", "127.0.0.5:3000\""),
        ));
        assert!(s.names.is_empty() && s.next_due().is_none());
    }
}
