//! Admission: the `limit_req` and `limit_conn` zones of a configuration,
//! shared by every worker (an address's connections land on every core
//! through SO_REUSEPORT, so per-core shares would be wrong), and the one
//! check a routed request passes through before its phase runs.
//!
//! The zones' tables (`crate::limit`) are built on the control thread at
//! start and at each reload; a zone whose name, rate and size did not
//! change keeps its table (and so its counts) across a reload, as nginx
//! keeps shared zones. A table is touched once per request (and a
//! connection permit once more when it ends), never per byte.

use std::sync::Arc;
use std::time::Duration;

use ringway_config::{Config, LimitDelay, Location};

use crate::limit::{self, ConnPermit, ConnZone, Delay, ReqZone, Verdict};
use crate::metrics::LimitKind;

/// The zones of one configuration, indexed as `Config::limit_*_zones`.
#[derive(Default)]
pub struct LimitSet {
    pub req: Vec<Arc<ReqZone>>,
    pub conn: Vec<Arc<ConnZone>>,
}

impl LimitSet {
    /// The zones of `config`, reusing `previous`'s where unchanged.
    pub fn build(config: &Config, previous: Option<&LimitSet>) -> LimitSet {
        let req = config
            .limit_req_zones
            .iter()
            .map(|z| {
                previous
                    .and_then(|p| {
                        p.req.iter().find(|old| {
                            old.name() == z.name && old.same_shape(z.rate_milli, z.size as usize)
                        })
                    })
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(ReqZone::new(&z.name, z.rate_milli, z.size as usize))
                    })
            })
            .collect();
        let conn = config
            .limit_conn_zones
            .iter()
            .map(|z| {
                previous
                    .and_then(|p| {
                        p.conn
                            .iter()
                            .find(|old| old.name() == z.name && old.same_shape(z.size as usize))
                    })
                    .cloned()
                    .unwrap_or_else(|| Arc::new(ConnZone::new(&z.name, z.size as usize)))
            })
            .collect();
        LimitSet { req, conn }
    }
}

/// What the limits decide for one request.
pub enum Admit {
    /// Go on, holding this connection slot (if a `limit_conn` applies)
    /// for as long as the request (or its tunnel) lives.
    Pass(Option<ConnPermit>),
    /// Go on after this delay (`limit_req` without `nodelay`).
    Delay(Duration, Option<ConnPermit>),
    /// Refused: answer with this status; which kind of zone, and its name.
    Refuse(u16, LimitKind, String),
}

/// Check `loc`'s limits for the request whose zone keys render with
/// `key` (a zone's key template rendered for this request; an empty key
/// is not limited, as nginx).
pub fn admit(
    set: &LimitSet,
    config: &Config,
    loc: &Location,
    key: &mut dyn FnMut(&ringway_config::Template) -> Vec<u8>,
) -> Admit {
    let mut delay = Duration::ZERO;
    if let Some(lr) = &loc.limit_req {
        let zone = &set.req[lr.zone];
        let k = key(&config.limit_req_zones[lr.zone].key);
        if !k.is_empty() {
            let d = match lr.delay {
                LimitDelay::All => Delay::All,
                LimitDelay::None => Delay::None,
                LimitDelay::After(n) => Delay::After(n),
            };
            match zone.check(&k, lr.burst, d, limit::monotonic_ms()) {
                Verdict::Pass => {}
                Verdict::Delay(d) => delay = d,
                Verdict::Reject => {
                    return Admit::Refuse(
                        loc.limit_req_status,
                        LimitKind::Req,
                        zone.name().to_string(),
                    )
                }
            }
        }
    }
    let mut permit = None;
    if let Some(lc) = &loc.limit_conn {
        let zone = &set.conn[lc.zone];
        let k = key(&config.limit_conn_zones[lc.zone].key);
        if !k.is_empty() {
            match zone.acquire(&k, lc.max) {
                Ok(p) => permit = Some(p),
                Err(_) => {
                    return Admit::Refuse(
                        loc.limit_conn_status,
                        LimitKind::Conn,
                        zone.name().to_string(),
                    )
                }
            }
        }
    }
    if delay.is_zero() {
        Admit::Pass(permit)
    } else {
        Admit::Delay(delay, permit)
    }
}
