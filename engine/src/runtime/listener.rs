//! Listening sockets: one per (address, worker), SO_REUSEPORT, so the
//! kernel spreads new connections across workers with no shared accept
//! queue. Port 0 is resolved once by the first socket and reused by the
//! others (tests listen on port 0).

use std::net::SocketAddr;

use ringway_config::Config;
use socket2::{Domain, Protocol, Socket, Type};

use super::StartError;

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

pub fn bind_all(config: &Config, workers: usize) -> Result<Bound, StartError> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for s in &config.servers {
        for a in &s.listen {
            if !addrs.contains(a) {
                addrs.push(*a);
            }
        }
    }
    let mut by_addr = Vec::new();
    let mut per_worker: Vec<Vec<_>> = (0..workers).map(|_| Vec::new()).collect();
    for configured in addrs {
        let mut actual = configured;
        for slot in per_worker.iter_mut() {
            let l = bind_one(actual).map_err(|source| StartError::Listen {
                addr: configured,
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
    Ok(Bound {
        by_addr,
        per_worker,
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
