//! The configuration one connection runs with, plus what a worker derives
//! from it: the servers of each listen address, and this worker's state of
//! each upstream group (balancing, passive health, keep-alive pool),
//! indexed as `Config::upstreams` is so a `proxy_pass` finds its group by
//! the index validation resolved.
//!
//! A reload builds a new snapshot from the previous one: upstream servers
//! that stay keep their health, active counts and pooled connections; the
//! pools of groups that are gone are retired (idle connections closed at
//! once, in-use ones when their exchange or tunnel ends). Connections keep
//! the snapshot they started with.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use ringway_config::Config;

use crate::admission::LimitSet;
use crate::route::ServerGroup;
use crate::tls::TlsSet;
use crate::upstream;

pub struct Snapshot {
    pub config: Arc<Config>,
    /// The configuration's certificates and TLS settings.
    pub tls: Arc<TlsSet>,
    /// The limit zones (shared by every worker).
    pub limits: Arc<LimitSet>,
    /// Servers per configured listen address.
    pub groups: HashMap<SocketAddr, Rc<ServerGroup>>,
    /// Servers per unix listen socket path.
    pub unix_groups: HashMap<std::path::PathBuf, Rc<ServerGroup>>,
    /// This worker's state of each upstream group, by index.
    pub upstreams: Vec<Rc<upstream::Group>>,
}

impl Snapshot {
    pub fn new(
        config: Arc<Config>,
        tls: Arc<TlsSet>,
        limits: Arc<LimitSet>,
        previous: Option<&Snapshot>,
        verdicts: &upstream::verdict::Verdicts,
        members: &upstream::resolver::Members,
    ) -> Self {
        let mut groups: HashMap<SocketAddr, ServerGroup> = HashMap::new();
        for (i, server) in config.servers.iter().enumerate() {
            for addr in &server.listen {
                groups
                    .entry(*addr)
                    .or_insert_with(|| ServerGroup {
                        servers: Vec::new(),
                    })
                    .servers
                    .push(i);
            }
        }
        let mut unix_groups: HashMap<std::path::PathBuf, ServerGroup> = HashMap::new();
        for (i, server) in config.servers.iter().enumerate() {
            for path in &server.listen_unix {
                unix_groups
                    .entry(path.clone())
                    .or_insert_with(|| ServerGroup {
                        servers: Vec::new(),
                    })
                    .servers
                    .push(i);
            }
        }
        let before = |name: &str| previous.and_then(|p| p.upstream(name));
        let upstreams: Vec<Rc<upstream::Group>> = config
            .upstreams
            .values()
            .map(|up| {
                Rc::new(upstream::Group::new(
                    up,
                    before(&up.name).map(|g| &**g),
                    Some(verdicts),
                    members,
                ))
            })
            .collect();
        if let Some(p) = previous {
            for old in &p.upstreams {
                if !config.upstreams.contains_key(&old.name) {
                    old.pool.retire();
                }
            }
        }
        Snapshot {
            groups: groups.into_iter().map(|(k, v)| (k, Rc::new(v))).collect(),
            unix_groups: unix_groups
                .into_iter()
                .map(|(k, v)| (k, Rc::new(v)))
                .collect(),
            upstreams,
            config,
            tls,
            limits,
        }
    }

    /// The group named `name`, if the configuration has one.
    pub fn upstream(&self, name: &str) -> Option<&Rc<upstream::Group>> {
        self.upstreams.iter().find(|g| g.name == name)
    }
}
