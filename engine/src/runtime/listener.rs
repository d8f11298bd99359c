//! Listening sockets: one per (address, worker), SO_REUSEPORT, so the
//! kernel spreads new connections across workers with no shared accept
//! queue. Port 0 is resolved once by the first socket and reused by the
//! others (tests listen on port 0).
//!
//! The set of addresses is the configuration's: at start every address is
//! bound here (`bind_all`); a reload binds only the addresses it adds
//! (`Change::between`, then `bind`) before it switches, and the workers
//! close the listeners of the addresses it removes at the switch. A kept
//! address keeps its sockets (and their accept queues). Sockets are keyed
//! by the address as configured (`127.0.0.1:0` stays `127.0.0.1:0`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ringway_config::Config;
use socket2::{Domain, Protocol, Socket, Type};

use super::StartError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundAddr {
    /// As written in the config (may have port 0).
    pub configured: SocketAddr,
    /// What the kernel gave us.
    pub actual: SocketAddr,
}

pub struct Bound {
    pub by_addr: Vec<BoundAddr>,
    /// For each worker, its sockets with the configured address they serve.
    pub per_worker: Vec<Vec<(std::net::TcpListener, SocketAddr)>>,
}

const BACKLOG: i32 = 4096;

/// The listen addresses of `config`, each once, in file order.
pub fn addresses(config: &Config) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for s in &config.servers {
        for a in &s.listen {
            if !addrs.contains(a) {
                addrs.push(*a);
            }
        }
    }
    addrs
}

/// Every listen address of `config`, once per worker.
pub fn bind_all(config: &Config, workers: usize) -> Result<Bound, StartError> {
    bind(&addresses(config), workers)
}

/// Every listen address of `config`, once per worker, taking the sockets
/// an older process handed over (binary upgrade) first: an address's
/// inherited sockets are spread over the workers (a worker may get
/// several: none is closed, so no accept queue is dropped), and workers
/// left without one bind their own (SO_REUSEPORT joins them to the
/// same port). Returns the inherited sockets of addresses `config` no
/// longer has too: the old process still holds them until it exits, so
/// they stop listening once the upgrade is committed (`upgrade::adopt`).
#[allow(clippy::type_complexity)]
pub fn bind_inherited(
    config: &Config,
    workers: usize,
    inherited: Vec<(SocketAddr, std::net::TcpListener)>,
) -> Result<(Bound, Vec<(SocketAddr, std::net::TcpListener)>), StartError> {
    bind_taking(&addresses(config), workers, inherited)
}

/// `addrs`, once per worker. On an error, the sockets bound so far are
/// closed (dropped) before it returns: nothing stays listening.
pub fn bind(addrs: &[SocketAddr], workers: usize) -> Result<Bound, StartError> {
    bind_taking(addrs, workers, Vec::new()).map(|(bound, _)| bound)
}

/// `addrs`, once per worker, taking the sockets of `inherited` (by the
/// address as configured) first; returns the inherited sockets of other
/// addresses too.
#[allow(clippy::type_complexity)]
fn bind_taking(
    addrs: &[SocketAddr],
    workers: usize,
    mut inherited: Vec<(SocketAddr, std::net::TcpListener)>,
) -> Result<(Bound, Vec<(SocketAddr, std::net::TcpListener)>), StartError> {
    let mut by_addr = Vec::new();
    let mut per_worker: Vec<Vec<_>> = (0..workers).map(|_| Vec::new()).collect();
    for &configured in addrs {
        let mut mine = Vec::new();
        let mut k = 0;
        while k < inherited.len() {
            if inherited[k].0 == configured {
                mine.push(inherited.swap_remove(k).1);
            } else {
                k += 1;
            }
        }
        let mut actual = match mine.first() {
            Some(l) => l.local_addr().map_err(|source| StartError::Listen {
                addr: configured,
                source,
            })?,
            None => configured,
        };
        let n = mine.len();
        for (k, l) in mine.into_iter().enumerate() {
            per_worker[k % workers].push((l, configured));
        }
        for slot in per_worker.iter_mut().skip(n) {
            let l = bind_one(actual).map_err(|source| StartError::Listen {
                addr: actual,
                source,
            })?;
            if actual.port() == 0 {
                actual = l.local_addr().map_err(|source| StartError::Listen {
                    addr: configured,
                    source,
                })?;
            }
            slot.push((l, configured));
        }
        by_addr.push(BoundAddr { configured, actual });
    }
    Ok((
        Bound {
            by_addr,
            per_worker,
        },
        inherited,
    ))
}

/// What a reload changes in the set of listen addresses, each list in
/// the order of the configuration that has them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// To bind before the switch.
    pub added: Vec<SocketAddr>,
    /// To stop accepting on at the switch.
    pub removed: Vec<SocketAddr>,
}

impl Change {
    /// From the addresses served now (`running`, as configured) to
    /// `new`'s.
    pub fn between(running: &[SocketAddr], new: &Config) -> Change {
        let next = addresses(new);
        Change {
            added: next
                .iter()
                .filter(|a| !running.contains(a))
                .copied()
                .collect(),
            removed: running
                .iter()
                .filter(|a| !next.contains(a))
                .copied()
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// The unix socket paths `config` listens on, each once, in file order.
pub fn unix_paths(config: &Config) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for s in &config.servers {
        for p in &s.listen_unix {
            if !paths.contains(p) {
                paths.push(p.clone());
            }
        }
    }
    paths
}

/// A bound unix listener: one socket for every worker (Linux spreads no
/// AF_UNIX connections by SO_REUSEPORT; the workers share its queue), and
/// the socket file's identity, so only that file is removed at exit.
pub struct UnixBound {
    pub path: PathBuf,
    pub listener: std::os::unix::net::UnixListener,
    id: (u64, u64),
}

impl UnixBound {
    /// A unix listen socket an older process handed over (binary
    /// upgrade), bound at `path`.
    pub fn inherited(
        path: PathBuf,
        listener: std::os::unix::net::UnixListener,
    ) -> Result<UnixBound, StartError> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(&path).map_err(|source| StartError::ListenUnix {
            path: path.clone(),
            source,
        })?;
        Ok(UnixBound {
            path,
            listener,
            id: (m.dev(), m.ino()),
        })
    }

    /// Remove the socket file, if it is still the one bound here (not one
    /// a later process put there).
    pub fn remove_file(&self) {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if (m.dev(), m.ino()) == self.id {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Bind the unix socket at `path`. A socket file left by a process that
/// is gone (nothing accepts on it) is replaced; one that answers, or a
/// file that is no socket, is an error.
pub fn bind_unix(path: &Path) -> Result<UnixBound, StartError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let err = |source| StartError::ListenUnix {
        path: path.to_path_buf(),
        source,
    };
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            )));
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another process accepts on it",
                )))
            }
            Err(_) => std::fs::remove_file(path).map_err(err)?,
        }
    }
    let s = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(err)?;
    s.set_cloexec(true).map_err(err)?;
    s.bind(&socket2::SockAddr::unix(path).map_err(err)?)
        .map_err(err)?;
    s.listen(BACKLOG).map_err(err)?;
    let m = std::fs::symlink_metadata(path).map_err(err)?;
    Ok(UnixBound {
        path: path.to_path_buf(),
        listener: std::os::unix::net::UnixListener::from(std::os::fd::OwnedFd::from(s)),
        id: (m.dev(), m.ino()),
    })
}

fn bind_one(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        // nginx's default: "[::]:80" does not also take IPv4.
        s.set_only_v6(true)?;
    }
    s.set_cloexec(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(listens: &[&str]) -> Config {
        let mut text = String::from("[real_ip]\nset_real_ip_from = [\"127.0.0.1\"]\n");
        for (i, l) in listens.iter().enumerate() {
            text.push_str(&format!(
                "[servers.s{i}]\nlisten = [{l}]\nserver_name = [\"s{i}.test\"]\n[servers.s{i}.locations.\"/\"]\nreturn = {{ status = 204 }}\n"
            ));
        }
        ringway_config::parse_str(&text, Path::new("t.toml")).unwrap()
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_are_deduplicated_in_file_order() {
        let c = config(&[
            "\"127.0.0.1:8081\", \"127.0.0.1:8080\"",
            "\"127.0.0.1:8080\", \"[::1]:8080\"",
        ]);
        assert_eq!(
            addresses(&c),
            [a("127.0.0.1:8081"), a("127.0.0.1:8080"), a("[::1]:8080")]
        );
    }

    #[test]
    fn change_lists_what_is_added_and_removed() {
        let running = [a("127.0.0.1:8080"), a("127.0.0.1:8081")];
        let c = config(&["\"127.0.0.1:8082\", \"127.0.0.1:8080\""]);
        assert_eq!(
            Change::between(&running, &c),
            Change {
                added: vec![a("127.0.0.1:8082")],
                removed: vec![a("127.0.0.1:8081")],
            }
        );
        // A listen entry's other settings do not make it a new address.
        let c =
            config(&["{ addr = \"127.0.0.1:8080\", proxy_protocol = true }, \"127.0.0.1:8081\""]);
        assert!(Change::between(&running, &c).is_empty());
        // Port 0 is an address like any other: kept while it stays.
        let c = config(&["\"127.0.0.1:0\""]);
        assert!(Change::between(&[a("127.0.0.1:0")], &c).is_empty());
    }

    #[test]
    fn port_zero_is_resolved_once_for_every_worker() {
        let b = bind(&[a("127.0.0.1:0")], 3).unwrap();
        let port = b.by_addr[0].actual.port();
        assert_ne!(port, 0);
        for sockets in &b.per_worker {
            assert_eq!(sockets.len(), 1);
            assert_eq!(sockets[0].0.local_addr().unwrap().port(), port);
            assert_eq!(sockets[0].1, a("127.0.0.1:0"));
        }
    }

    #[test]
    fn inherited_sockets_are_spread_and_missing_ones_bound() {
        let old = bind(&[a("127.0.0.1:0"), a("127.0.0.2:0")], 3).unwrap();
        let port = old.by_addr[0].actual.port();
        let mut handed: Vec<(SocketAddr, std::net::TcpListener)> = old
            .per_worker
            .into_iter()
            .flatten()
            .map(|(l, c)| (c, l))
            .collect();
        // The second address is gone from the new configuration.
        handed.retain(|(c, _)| *c == a("127.0.0.1:0"));
        let c = config(&["\"127.0.0.1:0\""]);
        // Fewer workers than sockets: one worker takes two.
        let (two, left) = bind_inherited(&c, 2, handed).unwrap();
        assert!(left.is_empty());
        assert_eq!(two.by_addr[0].actual.port(), port);
        let counts: Vec<usize> = two.per_worker.iter().map(Vec::len).collect();
        assert_eq!(counts, [2, 1]);
        // More workers than sockets: the rest bind the same port.
        let handed: Vec<_> = two
            .per_worker
            .into_iter()
            .flatten()
            .map(|(l, c)| (c, l))
            .collect();
        let (five, _) = bind_inherited(&c, 5, handed).unwrap();
        for sockets in &five.per_worker {
            assert_eq!(sockets.len(), 1);
            assert_eq!(sockets[0].0.local_addr().unwrap().port(), port);
        }
    }

    #[test]
    fn a_taken_address_fails_and_closes_what_was_bound() {
        // A listener without SO_REUSEPORT: ringway's bind must fail.
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = holder.local_addr().unwrap();
        // A free port for the first address, held by a socket that shares
        // it (SO_REUSEPORT) without listening.
        let hold = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        hold.set_reuse_port(true).unwrap();
        hold.bind(&a("127.0.0.1:0").into()).unwrap();
        let free = hold.local_addr().unwrap().as_socket().unwrap();

        let err = match bind(&[free, taken], 2) {
            Ok(_) => panic!("bound a taken address"),
            Err(e) => e,
        };
        match &err {
            StartError::Listen { addr, source } => {
                assert_eq!(*addr, taken);
                assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
            }
            other => panic!("unexpected error {other}"),
        }
        // The first address's sockets are closed again: nothing listens.
        let refused = std::net::TcpStream::connect(free).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
