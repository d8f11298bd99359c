//! Raw file structs → validated [`Config`]: defaults applied, every value
//! checked, names resolved, errors located (file, line, key).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;

use crate::defaults::*;
use crate::error::{ConfigError, ErrorKind};
// A table key quoted for error paths the way TOML would need it.
use crate::locate::quote_key as k;
use crate::model::*;
use crate::raw::*;
use crate::template;
use crate::units::{parse_duration, parse_size};

mod operations;
use operations as limits;

/// What servers and locations refer to by name.
struct Zones {
    req: Vec<LimitReqZone>,
    conn: Vec<LimitConnZone>,
}

struct Ctx<'a> {
    text: &'a str,
    file: &'a Path,
    resolve: crate::Resolve,
    warnings: std::cell::RefCell<Vec<String>>,
    /// The variables the configuration makes: `set` names and named
    /// captures of location and `rewrite` regexes (nginx's variables are
    /// global: one set anywhere is known everywhere).
    named: std::collections::BTreeSet<String>,
}

impl Ctx<'_> {
    fn line_of(&self, offset: usize) -> usize {
        crate::locate::line_of(self.text, offset)
    }

    fn err(&self, span: Option<std::ops::Range<usize>>, key: &str, kind: ErrorKind) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: span.map(|s| self.line_of(s.start)),
            column: None,
            key: key.to_string(),
            kind,
        }
    }

    fn at(&self, v: &V, key: &str, kind: ErrorKind) -> ConfigError {
        self.err(Some(v.span()), key, kind)
    }

    /// Note something suspicious at `v` that does not stop the config.
    fn warn(&self, v: &V, key: &str, what: String) {
        self.warnings.borrow_mut().push(format!(
            "{}:{}: {key}: {what}",
            self.file.display(),
            self.line_of(v.span().start)
        ));
    }

    fn string(&self, v: &V, key: &str) -> Result<String, ConfigError> {
        match v.get_ref() {
            toml::Value::String(s) => Ok(s.clone()),
            other => Err(self.at(v, key, type_err("a string", other))),
        }
    }

    fn bool(&self, v: Option<&V>, key: &str, default: bool) -> Result<bool, ConfigError> {
        match v {
            None => Ok(default),
            Some(v) => match v.get_ref() {
                toml::Value::Boolean(b) => Ok(*b),
                other => Err(self.at(v, key, type_err("true or false", other))),
            },
        }
    }

    /// `http2`: `true`, `false` or `"h2c"`.
    fn http2(&self, v: Option<&V>, key: &str) -> Result<Http2, ConfigError> {
        match v {
            None => Ok(Http2::Off),
            Some(v) => match v.get_ref() {
                toml::Value::Boolean(true) => Ok(Http2::Tls),
                toml::Value::Boolean(false) => Ok(Http2::Off),
                toml::Value::String(s) if s.eq_ignore_ascii_case("h2c") => Ok(Http2::H2c),
                toml::Value::String(s) => Err(self.at(
                    v,
                    key,
                    ErrorKind::Invalid(format!("{s:?} is not true, false or \"h2c\"")),
                )),
                other => Err(self.at(v, key, type_err("true, false or \"h2c\"", other))),
            },
        }
    }

    fn int(
        &self,
        v: Option<&V>,
        key: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        match v {
            None => Ok(default),
            Some(v) => match v.get_ref() {
                toml::Value::Integer(n) if *n >= min as i64 && (*n as u64) <= max => Ok(*n as u64),
                toml::Value::Integer(n) => Err(self.at(
                    v,
                    key,
                    ErrorKind::Invalid(format!("{n} is out of range ({min}..={max})")),
                )),
                other => Err(self.at(v, key, type_err("an integer", other))),
            },
        }
    }

    fn duration(
        &self,
        v: Option<&V>,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        let text = match v.get_ref() {
            toml::Value::Integer(n) if *n >= 0 => return Ok(Duration::from_secs(*n as u64)),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::String(s) => s.clone(),
            other => return Err(self.at(v, key, type_err("a duration", other))),
        };
        parse_duration(&text).ok_or_else(|| self.at(v, key, ErrorKind::BadDuration { value: text }))
    }

    /// [`Ctx::duration`] that, when given, must lie in `range`; `why` is
    /// the error's text.
    fn duration_within(
        &self,
        v: Option<&V>,
        key: &str,
        default: Duration,
        range: std::ops::RangeInclusive<Duration>,
        why: &str,
    ) -> Result<Duration, ConfigError> {
        let d = self.duration(v, key, default)?;
        match v {
            Some(v) if !range.contains(&d) => {
                Err(self.at(v, key, ErrorKind::Invalid(why.to_string())))
            }
            _ => Ok(d),
        }
    }

    fn size(&self, v: Option<&V>, key: &str, default: u64) -> Result<u64, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        let text = match v.get_ref() {
            toml::Value::Integer(n) if *n >= 0 => return Ok(*n as u64),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::String(s) => s.clone(),
            other => return Err(self.at(v, key, type_err("a size", other))),
        };
        parse_size(&text).ok_or_else(|| self.at(v, key, ErrorKind::BadSize { value: text }))
    }

    /// A string or an array of strings.
    fn strings(&self, v: &V, key: &str) -> Result<Vec<String>, ConfigError> {
        match v.get_ref() {
            toml::Value::String(s) => Ok(vec![s.clone()]),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => Err(self.at(v, key, type_err("an array of strings", other))),
                })
                .collect(),
            other => Err(self.at(v, key, type_err("a string or an array of strings", other))),
        }
    }

    fn template(&self, v: &V, key: &str) -> Result<Template, ConfigError> {
        let s = self.string(v, key)?;
        self.parse_template(&s)
            .map_err(|name| self.at(v, key, ErrorKind::UnknownVariable { name }))
    }

    fn parse_template(&self, s: &str) -> Result<Template, String> {
        template::parse_with(s, &|n| self.named.contains(n))
    }

    /// A template rendered into a header value: no control characters
    /// (a CR or LF there would end the field, or the head, early).
    fn header_template(&self, v: &V, key: &str) -> Result<Template, ConfigError> {
        let s = self.string(v, key)?;
        if s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(self.at(
                v,
                key,
                ErrorKind::Invalid("a header value cannot contain control characters".into()),
            ));
        }
        let t = self.template(v, key)?;
        if t.parts.contains(&Part::Var(Var::BinaryRemoteAddr)) {
            return Err(self.at(
                v,
                key,
                ErrorKind::Invalid(
                    "$binary_remote_addr is raw bytes, for limit zone keys only (use $remote_addr)"
                        .into(),
                ),
            ));
        }
        Ok(t)
    }
}

fn type_err(expected: &'static str, found: &toml::Value) -> ErrorKind {
    ErrorKind::Type {
        expected,
        found: found.to_string(),
    }
}

pub fn validate(text: &str, file: &Path, resolve: crate::Resolve) -> Result<Config, ConfigError> {
    // The document first, for syntax errors and for the key paths of the
    // errors serde reports against it.
    let doc = toml_edit::ImDocument::parse(text)
        .map_err(|e| crate::locate::syntax_error(text, file, &e))?;
    let raw: Raw =
        toml::from_str(text).map_err(|e| crate::locate::serde_error(text, file, &doc, &e))?;
    let cx = Ctx {
        text,
        file,
        resolve,
        warnings: Default::default(),
        named: named_variables(&raw),
    };

    let runtime = runtime(&cx, &raw.runtime)?;
    let log = log(&cx, &raw.log)?;
    let metrics = match &raw.metrics {
        None => None,
        Some(m) => match &m.listen {
            None => None,
            Some(v) => Some(Metrics {
                listen: listen_addr(&cx, v, "metrics.listen", &cx.string(v, "metrics.listen")?)?,
            }),
        },
    };
    let mut upstreams = IndexMap::new();
    for (name, up) in &raw.upstreams {
        upstreams.insert(name.clone(), upstream(&cx, name, up)?);
    }
    let zones = Zones {
        req: limits::req_zones(&cx, &raw)?,
        conn: limits::conn_zones(&cx, &raw)?,
    };
    let mut servers = Vec::new();
    let mut proxy_protocol = Vec::new();
    for (name, s) in &raw.servers {
        servers.push(server(
            &cx,
            name,
            s,
            &upstreams,
            &zones,
            &mut proxy_protocol,
        )?);
    }
    if servers.is_empty() {
        // nginx starts with no server and answers nothing; a proxy with
        // nothing to listen on is a mistake in the file, not a choice.
        return Err(cx.err(
            None,
            "servers",
            ErrorKind::Invalid("no server is configured (add a [servers.NAME] table)".into()),
        ));
    }
    check_listen_names(&cx, &raw, &servers)?;
    let real_ip = limits::real_ip(&cx, &raw, &proxy_protocol)?;
    Ok(Config {
        runtime,
        log,
        metrics,
        upstreams,
        servers,
        limit_req_zones: zones.req,
        limit_conn_zones: zones.conn,
        proxy_protocol,
        real_ip,
        warnings: cx.warnings.take(),
    })
}

fn runtime(cx: &Ctx, r: &RawRuntime) -> Result<Runtime, ConfigError> {
    let workers = match &r.workers {
        None => Workers::Auto,
        Some(v) => match v.get_ref() {
            toml::Value::String(s) if s == "auto" => Workers::Auto,
            toml::Value::Integer(n) if (1..=1024).contains(n) => Workers::Count(*n as usize),
            other => {
                return Err(cx.at(
                    v,
                    "runtime.workers",
                    type_err("\"auto\" or a count from 1 to 1024", other),
                ))
            }
        },
    };
    let driver = match &r.driver {
        None => DriverChoice::Auto,
        Some(v) => match cx.string(v, "runtime.driver")?.as_str() {
            "auto" => DriverChoice::Auto,
            "io_uring" => DriverChoice::IoUring,
            "epoll" => DriverChoice::Epoll,
            other => {
                return Err(cx.at(
                    v,
                    "runtime.driver",
                    ErrorKind::Invalid(format!(
                        "unknown driver `{other}` (auto, io_uring or epoll)"
                    )),
                ))
            }
        },
    };
    let tunnel_buffer = cx.size(
        r.tunnel_buffer.as_ref(),
        "runtime.tunnel_buffer",
        DEFAULT_TUNNEL_BUFFER,
    )?;
    if !(1024..=16 << 20).contains(&tunnel_buffer) {
        let v = r.tunnel_buffer.as_ref().expect("a default is in range");
        return Err(cx.at(
            v,
            "runtime.tunnel_buffer",
            ErrorKind::Invalid("must be from 1k to 16m".into()),
        ));
    }
    let tunnel_relay = match &r.tunnel_relay {
        None => TunnelRelay::Auto,
        Some(v) => match cx.string(v, "runtime.tunnel_relay")?.as_str() {
            "auto" => TunnelRelay::Auto,
            "syscall" => TunnelRelay::Syscall,
            other => {
                return Err(cx.at(
                    v,
                    "runtime.tunnel_relay",
                    ErrorKind::Invalid(format!("unknown relay `{other}` (auto or syscall)")),
                ))
            }
        },
    };
    let relay_buffers = cx.int(
        r.relay_buffers.as_ref(),
        "runtime.relay_buffers",
        DEFAULT_RELAY_BUFFERS,
        16,
        32768,
    )?;
    if !relay_buffers.is_power_of_two() {
        let v = r
            .relay_buffers
            .as_ref()
            .expect("the default is a power of two");
        return Err(cx.at(
            v,
            "runtime.relay_buffers",
            ErrorKind::Invalid("must be a power of two".into()),
        ));
    }
    let shutdown_timeout = cx.duration(
        r.shutdown_timeout.as_ref(),
        "runtime.shutdown_timeout",
        DEFAULT_SHUTDOWN_TIMEOUT,
    )?;
    let (drain_spread, drain_old_tunnels_after) = limits::drain(cx, r, shutdown_timeout)?;
    Ok(Runtime {
        workers,
        pin_cores: cx.bool(r.pin_cores.as_ref(), "runtime.pin_cores", DEFAULT_PIN_CORES)?,
        driver,
        max_connections: cx.int(
            r.max_connections.as_ref(),
            "runtime.max_connections",
            DEFAULT_MAX_CONNECTIONS,
            1,
            100_000_000,
        )? as usize,
        shutdown_timeout,
        drain_spread,
        drain_old_tunnels_after,
        tunnel_buffer: tunnel_buffer as usize,
        splice: cx.bool(r.splice.as_ref(), "runtime.splice", DEFAULT_SPLICE)?,
        tunnel_relay,
        relay_buffers: relay_buffers as u16,
        resolver: match &r.resolver {
            None => Vec::new(),
            Some(v) => {
                let mut out = Vec::new();
                for text in cx.strings(v, "runtime.resolver")? {
                    match resolver_addr(&text) {
                        Some(a) => out.push(a),
                        None => {
                            return Err(cx.at(
                                v,
                                "runtime.resolver",
                                ErrorKind::BadAddress {
                                    value: text,
                                    reason: "a resolver is an IP address with an optional port (\"10.0.0.2\", \"127.0.0.1:5353\", \"[::1]:53\")".into(),
                                },
                            ))
                        }
                    }
                }
                out
            }
        },
        resolver_valid: cx.duration_within(
            r.resolver_valid.as_ref(),
            "runtime.resolver_valid",
            DEFAULT_RESOLVER_VALID,
            Duration::from_millis(100)..=Duration::from_secs(86_400),
            "must be between 100ms and 1d",
        )?,
        upgrade_timeout: cx.duration_within(
            r.upgrade_timeout.as_ref(),
            "runtime.upgrade_timeout",
            DEFAULT_UPGRADE_TIMEOUT,
            Duration::from_millis(100)..=Duration::from_secs(3600),
            "must be between 100ms and 1h",
        )?,
    })
}

/// A `resolver` entry: an IP address, with a port or 53 (nginx's form).
fn resolver_addr(text: &str) -> Option<SocketAddr> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Some(a);
    }
    let ip = text.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 53))
}

/// `log.level`: a tracing filter, comma-separated directives, each a level
/// or `target=level` (`target[span]=level` too). A bare word that is not a
/// level would be read by tracing as a target filter and silently log
/// nothing useful, so it is refused here (it is nearly always a typo).
fn log_filter(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |w: &str| LEVELS.iter().any(|l| l.eq_ignore_ascii_case(w.trim()));
    for d in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let ok = match d.rsplit_once('=') {
            Some((target, level)) => !target.trim().is_empty() && is_level(level),
            None => is_level(d),
        };
        if !ok {
            return Err(format!(
                "`{d}` is not a level ({}) nor a `target=level` directive, e.g. \"info,ringway=debug\"",
                LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

fn log(cx: &Ctx, r: &RawLog) -> Result<Log, ConfigError> {
    let level = match &r.level {
        None => DEFAULT_LOG_LEVEL.to_string(),
        Some(v) => {
            let level = cx.string(v, "log.level")?;
            if let Err(why) = log_filter(&level) {
                return Err(cx.at(v, "log.level", ErrorKind::Invalid(why)));
            }
            level
        }
    };
    let access_log = match &r.access_log {
        None => AccessLog::Stdout,
        Some(v) => match cx.string(v, "log.access_log")?.as_str() {
            "off" => AccessLog::Off,
            "stdout" => AccessLog::Stdout,
            "" => return Err(cx.at(v, "log.access_log", ErrorKind::Invalid("empty path".into()))),
            path => AccessLog::File(PathBuf::from(path)),
        },
    };
    let format = match &r.log_format {
        None => crate::LogFormat::default(),
        Some(v) => {
            let text = cx.string(v, "log.log_format")?;
            crate::log_format::parse(&text)
                .map_err(|name| cx.at(v, "log.log_format", ErrorKind::UnknownVariable { name }))?
        }
    };
    Ok(Log {
        level,
        access_log,
        format,
    })
}

fn upstream(
    cx: &Ctx,
    name: &str,
    up: &toml::Spanned<RawUpstream>,
) -> Result<Upstream, ConfigError> {
    let key = format!("upstreams.{}", k(name));
    let u = up.get_ref();
    let balance = match &u.balance {
        None => Balance::RoundRobin,
        Some(v) => match cx.string(v, &format!("{key}.balance"))?.as_str() {
            "round_robin" => Balance::RoundRobin,
            "ip_hash" => Balance::IpHash,
            "least_conn" => Balance::LeastConn,
            "hash" => Balance::Hash,
            other => {
                return Err(cx.at(
                    v,
                    &format!("{key}.balance"),
                    ErrorKind::Invalid(format!(
                        "unknown balance `{other}` (round_robin, ip_hash, least_conn or hash)"
                    )),
                ))
            }
        },
    };
    let hash_key = match (&u.hash_key, balance) {
        (Some(v), Balance::Hash) => Some(cx.template(v, &format!("{key}.hash_key"))?),
        (Some(v), _) => {
            return Err(cx.at(
                v,
                &format!("{key}.hash_key"),
                ErrorKind::Invalid("hash_key needs balance = \"hash\"".into()),
            ))
        }
        (None, Balance::Hash) => {
            return Err(cx.err(
                Some(up.span()),
                &format!("{key}.hash_key"),
                ErrorKind::Invalid("balance = \"hash\" needs a hash_key".into()),
            ))
        }
        (None, _) => None,
    };
    let Some(list) = &u.servers else {
        return Err(cx.err(
            Some(up.span()),
            &format!("{key}.servers"),
            ErrorKind::Invalid("an upstream needs servers".into()),
        ));
    };
    if list.get_ref().is_empty() {
        return Err(cx.err(
            Some(list.span()),
            &format!("{key}.servers"),
            ErrorKind::Invalid("an upstream needs servers".into()),
        ));
    }
    let mut servers = Vec::new();
    for (i, s) in list.get_ref().iter().enumerate() {
        let skey = format!("{key}.servers[{i}]");
        let raw = s.get_ref();
        let Some(addr_v) = &raw.addr else {
            return Err(cx.err(
                Some(s.span()),
                &format!("{skey}.addr"),
                ErrorKind::Invalid("missing addr".into()),
            ));
        };
        let addr_text = cx.string(addr_v, &format!("{skey}.addr"))?;
        let re_resolve = cx.bool(raw.resolve.as_ref(), &format!("{skey}.resolve"), false)?;
        let addrs = match addr_text.strip_prefix("unix:") {
            Some(path) => vec![unix_socket(cx, addr_v, &format!("{skey}.addr"), path)?],
            // Resolved while running (the members come from DNS): only
            // the form is checked here.
            None if re_resolve => {
                let named = split_host_port(&addr_text).filter(|(h, p)| {
                    p.is_some() && !h.starts_with('[') && h.parse::<std::net::IpAddr>().is_err()
                });
                if named.is_none() {
                    return Err(cx.at(
                        raw.resolve.as_ref().unwrap_or(addr_v),
                        &format!("{skey}.resolve"),
                        ErrorKind::Invalid(format!(
                            "resolve = true needs a host name with a port (\"app.internal:3000\"), not {addr_text:?}"
                        )),
                    ));
                }
                Vec::new()
            }
            None => resolve(cx, addr_v, &format!("{skey}.addr"), &addr_text, None)?
                .into_iter()
                .map(UpstreamAddr::Inet)
                .collect(),
        };
        if re_resolve && addr_text.starts_with("unix:") {
            return Err(cx.at(
                raw.resolve.as_ref().unwrap_or(addr_v),
                &format!("{skey}.resolve"),
                ErrorKind::Invalid("a unix socket is not resolved".into()),
            ));
        }
        servers.push(UpstreamServer {
            addr_text,
            addrs,
            weight: cx.int(
                raw.weight.as_ref(),
                &format!("{skey}.weight"),
                DEFAULT_WEIGHT,
                1,
                1000,
            )? as u32,
            backup: cx.bool(raw.backup.as_ref(), &format!("{skey}.backup"), false)?,
            down: cx.bool(raw.down.as_ref(), &format!("{skey}.down"), false)?,
            resolve: re_resolve,
        });
    }
    Ok(Upstream {
        name: name.to_string(),
        balance,
        hash_key,
        servers,
        max_fails: cx.int(
            u.max_fails.as_ref(),
            &format!("{key}.max_fails"),
            DEFAULT_MAX_FAILS,
            0,
            1_000_000,
        )? as u32,
        fail_timeout: cx.duration(
            u.fail_timeout.as_ref(),
            &format!("{key}.fail_timeout"),
            DEFAULT_FAIL_TIMEOUT,
        )?,
        keepalive: cx.int(
            u.keepalive.as_ref(),
            &format!("{key}.keepalive"),
            DEFAULT_UPSTREAM_KEEPALIVE,
            0,
            100_000,
        )? as usize,
        keepalive_timeout: cx.duration(
            u.keepalive_timeout.as_ref(),
            &format!("{key}.keepalive_timeout"),
            DEFAULT_UPSTREAM_KEEPALIVE_TIMEOUT,
        )?,
        health_check: match &u.health_check {
            Some(h) => Some(health_check(cx, &format!("{key}.health_check"), h)?),
            None => None,
        },
        on_down: on_change(cx, u.on_down.as_ref(), &format!("{key}.on_down"))?,
        on_remove: on_change(cx, u.on_remove.as_ref(), &format!("{key}.on_remove"))?,
        slow_start: {
            let d = cx.duration(
                u.slow_start.as_ref(),
                &format!("{key}.slow_start"),
                Duration::ZERO,
            )?;
            match &u.slow_start {
                Some(v) if !d.is_zero() && matches!(balance, Balance::Hash | Balance::IpHash) => {
                    return Err(cx.at(
                        v,
                        &format!("{key}.slow_start"),
                        ErrorKind::Invalid(
                            "slow_start works with round_robin and least_conn (nginx refuses it with hash and ip_hash too)".into(),
                        ),
                    ))
                }
                Some(v) if d > Duration::from_secs(3600) => {
                    return Err(cx.at(v, &format!("{key}.slow_start"), ErrorKind::Invalid("at most 1h".into())))
                }
                _ => d,
            }
        },
        rebalance: match &u.rebalance {
            None => None,
            Some(r) => Some(rebalance(cx, &format!("{key}.rebalance"), r)?),
        },
    })
}

/// `rebalance = { max_skew = 0.2, rate = "50/s" }`.
fn rebalance(
    cx: &Ctx,
    key: &str,
    r: &toml::Spanned<RawRebalance>,
) -> Result<Rebalance, ConfigError> {
    let raw = r.get_ref();
    let max_skew = match &raw.max_skew {
        None => 0.2,
        Some(v) => {
            let x = match v.get_ref() {
                toml::Value::Float(f) => *f,
                toml::Value::Integer(n) => *n as f64,
                other => {
                    return Err(cx.at(v, &format!("{key}.max_skew"), type_err("a number", other)))
                }
            };
            if !(0.01..=10.0).contains(&x) {
                return Err(cx.at(
                    v,
                    &format!("{key}.max_skew"),
                    ErrorKind::Invalid(format!("{x} is out of range (0.01..=10: the share over the mean a server may hold)")),
                ));
            }
            x
        }
    };
    let rate_per_sec = match &raw.rate {
        None => 50,
        Some(v) => {
            let text = cx.string(v, &format!("{key}.rate"))?;
            let n = text
                .strip_suffix("/s")
                .and_then(|n| n.trim().parse::<u32>().ok())
                .filter(|n| (1..=100_000).contains(n));
            match n {
                Some(n) => n,
                None => {
                    return Err(cx.at(
                        v,
                        &format!("{key}.rate"),
                        ErrorKind::Invalid(format!(
                            "bad rate `{text}` (tunnels closed per second: \"50/s\", 1 to 100000)"
                        )),
                    ))
                }
            }
        }
    };
    Ok(Rebalance {
        max_skew,
        rate_per_sec,
    })
}

/// `on_down` / `on_remove`: `"keep"` or `"close"`.
fn on_change(cx: &Ctx, v: Option<&V>, key: &str) -> Result<OnChange, ConfigError> {
    let Some(v) = v else {
        return Ok(OnChange::Keep);
    };
    match cx.string(v, key)?.as_str() {
        "keep" => Ok(OnChange::Keep),
        "close" => Ok(OnChange::Close),
        other => Err(cx.at(
            v,
            key,
            ErrorKind::Invalid(format!("`{other}` is not \"keep\" or \"close\"")),
        )),
    }
}

/// `[upstreams.NAME.health_check]`.
fn health_check(
    cx: &Ctx,
    key: &str,
    h: &toml::Spanned<RawHealthCheck>,
) -> Result<HealthCheck, ConfigError> {
    let raw = h.get_ref();
    let kind = match &raw.kind {
        None => CheckKind::Http,
        Some(v) => match cx.string(v, &format!("{key}.type"))?.as_str() {
            "http" => CheckKind::Http,
            "tcp" => CheckKind::Tcp,
            "websocket" => CheckKind::WebSocket,
            other => {
                return Err(cx.at(
                    v,
                    &format!("{key}.type"),
                    ErrorKind::Invalid(format!(
                        "unknown check type `{other}` (http, tcp or websocket)"
                    )),
                ))
            }
        },
    };
    let only_http = |v: &Option<V>, name: &str, kinds: &[CheckKind]| match v {
        Some(v) if !kinds.contains(&kind) => Err(cx.at(
            v,
            &format!("{key}.{name}"),
            ErrorKind::Invalid(format!("a {} check has no {name}", kind.name())),
        )),
        _ => Ok(()),
    };
    only_http(&raw.uri, "uri", &[CheckKind::Http, CheckKind::WebSocket])?;
    only_http(&raw.expect_status, "expect_status", &[CheckKind::Http])?;
    only_http(&raw.expect_body, "expect_body", &[CheckKind::Http])?;
    let uri = match &raw.uri {
        None => "/".to_string(),
        Some(v) => {
            let uri = cx.string(v, &format!("{key}.uri"))?;
            if !uri.starts_with('/') || uri.bytes().any(|b| b <= b' ' || b == 0x7f) {
                return Err(cx.at(
                    v,
                    &format!("{key}.uri"),
                    ErrorKind::Invalid(format!(
                        "{uri:?} is not a request target (a path starting with /, no spaces or control characters)"
                    )),
                ));
            }
            uri
        }
    };
    let expect_status = match &raw.expect_status {
        None => Vec::new(),
        Some(v) => {
            let bad =
                |what: String| cx.at(v, &format!("{key}.expect_status"), ErrorKind::Invalid(what));
            let items = match v.get_ref() {
                toml::Value::Integer(n) => vec![*n],
                toml::Value::Array(a) if !a.is_empty() => a
                    .iter()
                    .map(|i| {
                        i.as_integer()
                            .ok_or_else(|| bad("expect_status is an array of statuses".into()))
                    })
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(bad(
                        "expect_status is an array of statuses, e.g. [200, 204]".into(),
                    ))
                }
            };
            items
                .into_iter()
                .map(|n| match u16::try_from(n) {
                    Ok(s) if (100..=599).contains(&s) => Ok(s),
                    _ => Err(bad(format!("{n} is not a status (100..=599)"))),
                })
                .collect::<Result<Vec<u16>, _>>()?
        }
    };
    let expect_body = match &raw.expect_body {
        None => None,
        Some(v) => {
            let body = cx.string(v, &format!("{key}.expect_body"))?;
            if body.is_empty() {
                return Err(cx.at(
                    v,
                    &format!("{key}.expect_body"),
                    ErrorKind::Invalid(
                        "expect_body is empty (leave it out to check the status alone)".into(),
                    ),
                ));
            }
            Some(body)
        }
    };
    const HOUR: Duration = Duration::from_secs(3600);
    let interval = cx.duration_within(
        raw.interval.as_ref(),
        &format!("{key}.interval"),
        DEFAULT_CHECK_INTERVAL,
        Duration::from_millis(50)..=HOUR,
        "interval must be between 50ms and 1h",
    )?;
    let jitter = cx.duration_within(
        raw.jitter.as_ref(),
        &format!("{key}.jitter"),
        Duration::ZERO,
        Duration::ZERO..=HOUR,
        "jitter must be between 0ms and 1h",
    )?;
    let timeout = cx.duration_within(
        raw.timeout.as_ref(),
        &format!("{key}.timeout"),
        DEFAULT_CHECK_TIMEOUT.min(interval),
        Duration::from_millis(10)..=HOUR,
        "timeout must be between 10ms and 1h",
    )?;
    let port = match &raw.port {
        None => None,
        Some(v) => Some(cx.int(Some(v), &format!("{key}.port"), 0, 1, 65535)? as u16),
    };
    Ok(HealthCheck {
        kind,
        uri,
        expect_status,
        expect_body,
        interval,
        jitter,
        timeout,
        fails: cx.int(
            raw.fails.as_ref(),
            &format!("{key}.fails"),
            DEFAULT_CHECK_FAILS,
            1,
            1000,
        )? as u32,
        passes: cx.int(
            raw.passes.as_ref(),
            &format!("{key}.passes"),
            DEFAULT_CHECK_PASSES,
            1,
            1000,
        )? as u32,
        port,
    })
}

/// A unix socket path (`unix:PATH`): absolute, and short enough for
/// `sockaddr_un` (107 bytes). Whether it exists is the connect's business
/// (the backend may start after ringway, as over TCP).
fn unix_socket(cx: &Ctx, v: &V, key: &str, path: &str) -> Result<UpstreamAddr, ConfigError> {
    let bad = |reason: &str| {
        cx.at(
            v,
            key,
            ErrorKind::BadAddress {
                value: format!("unix:{path}"),
                reason: reason.to_string(),
            },
        )
    };
    if !path.starts_with('/') {
        return Err(bad(
            "a unix socket path must be absolute (unix:/run/app.sock)",
        ));
    }
    if path.len() > 107 || path.contains('\0') {
        return Err(bad("a unix socket path holds at most 107 bytes, no NUL"));
    }
    Ok(UpstreamAddr::Unix(std::path::Path::new(path).into()))
}

/// Resolve "host:port" (port required unless `default_port`).
fn resolve(
    cx: &Ctx,
    v: &V,
    key: &str,
    text: &str,
    default_port: Option<u16>,
) -> Result<Vec<SocketAddr>, ConfigError> {
    let bad = |reason: String| {
        cx.at(
            v,
            key,
            ErrorKind::BadAddress {
                value: text.to_string(),
                reason,
            },
        )
    };
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(vec![a]);
    }
    let (host, port) = split_host_port(text).ok_or_else(|| bad("expected host:port".into()))?;
    let port = match (port, default_port) {
        (Some(p), _) => p,
        (None, Some(d)) => d,
        (None, None) => return Err(bad("missing port".into())),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if cx.resolve == crate::Resolve::Loopback {
        return Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]);
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| bad(format!("cannot resolve: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(bad("resolves to no address".into()));
    }
    Ok(addrs)
}

/// "host:port" → (host, Some(port)); "host" → (host, None); IPv6 in brackets.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if s.is_empty() {
        return None;
    }
    if s.starts_with('[') {
        let end = s.find(']')?;
        let rest = &s[end + 1..];
        return match rest.strip_prefix(':') {
            Some(p) => Some((&s[..=end], Some(p.parse().ok()?))),
            None if rest.is_empty() => Some((&s[..=end], None)),
            None => None,
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, Some(p.parse().ok()?))),
        Some(_) => None,
        None => Some((s, None)),
    }
}

fn listen_addr(cx: &Ctx, v: &V, key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    s.parse::<SocketAddr>().map_err(|_| {
        cx.at(
            v,
            key,
            ErrorKind::BadAddress {
                value: s.to_string(),
                reason: "expected IP:port, [IPv6]:port or a port".into(),
            },
        )
    })
}

fn server(
    cx: &Ctx,
    name: &str,
    s: &toml::Spanned<RawServer>,
    upstreams: &IndexMap<String, Upstream>,
    zones: &Zones,
    proxy_protocol: &mut Vec<SocketAddr>,
) -> Result<Server, ConfigError> {
    let key = format!("servers.{}", k(name));
    let r = s.get_ref();
    let Some(listen_v) = &r.listen else {
        return Err(cx.err(
            Some(s.span()),
            &format!("{key}.listen"),
            ErrorKind::Invalid("a server needs listen".into()),
        ));
    };
    let lkey = format!("{key}.listen");
    let mut listen = Vec::new();
    let mut listen_unix = Vec::new();
    for (a, pp) in listen_entries(cx, listen_v, &lkey)? {
        if let Some(path) = a.strip_prefix("unix:") {
            let bad = |why: &str| {
                cx.at(
                    listen_v,
                    &lkey,
                    ErrorKind::BadAddress {
                        value: a.clone(),
                        reason: why.into(),
                    },
                )
            };
            if !path.starts_with('/') {
                return Err(bad("a unix socket is `unix:` and an absolute path"));
            }
            if pp {
                return Err(bad("proxy_protocol is not supported on a unix listener"));
            }
            if r.tls.is_some() {
                return Err(bad(
                    "a unix listener takes plain HTTP; this server has tls (end TLS on a TCP listen address)",
                ));
            }
            let path = std::path::PathBuf::from(path);
            if !listen_unix.contains(&path) {
                listen_unix.push(path);
            }
            continue;
        }
        let addr = listen_addr(cx, listen_v, &lkey, &a)?;
        if !listen.contains(&addr) {
            listen.push(addr);
        }
        if pp && !proxy_protocol.contains(&addr) {
            proxy_protocol.push(addr);
        }
    }
    if listen.is_empty() && listen_unix.is_empty() {
        return Err(cx.at(
            listen_v,
            &lkey,
            ErrorKind::Invalid("listen is empty".into()),
        ));
    }
    let mut server_names = Vec::new();
    if let Some(v) = &r.server_name {
        for n in cx.strings(v, &format!("{key}.server_name"))? {
            let n = n.to_ascii_lowercase();
            if n == "_" || n.is_empty() {
                continue;
            }
            server_names.push(if let Some(rest) = n.strip_prefix('*') {
                ServerName::WildcardStart(rest.to_string())
            } else if let Some(rest) = n.strip_suffix('*') {
                ServerName::WildcardEnd(rest.to_string())
            } else {
                ServerName::Exact(n)
            });
        }
    }
    let tls = match &r.tls {
        None => None,
        Some(t) => {
            let tk = format!("{key}.tls");
            let raw = t.get_ref();
            let reject = cx.bool(
                raw.reject_handshake.as_ref(),
                &format!("{tk}.reject_handshake"),
                false,
            )?;
            let file =
                |v: Option<&V>, which: &'static str| -> Result<Option<PathBuf>, ConfigError> {
                    let k = format!("{tk}.{which}");
                    match (v, reject) {
                        (Some(v), false) => Ok(Some(cx.string(v, &k)?.into())),
                        (None, false) => {
                            Err(cx.err(Some(t.span()), &k, ErrorKind::MissingTlsFile { which }))
                        }
                        (Some(v), true) => Err(cx.at(
                            v,
                            &k,
                            ErrorKind::Invalid(
                                "a server with reject_handshake = true has no certificate".into(),
                            ),
                        )),
                        (None, true) => Ok(None),
                    }
                };
            let cert = file(raw.cert.as_ref(), "cert")?;
            let keyf = file(raw.key.as_ref(), "key")?;
            let version = |v: &V, k: &str, text: &str| -> Result<TlsVersion, ConfigError> {
                match text.trim_start_matches("TLSv") {
                    "1.2" => Ok(TlsVersion::V1_2),
                    "1.3" => Ok(TlsVersion::V1_3),
                    other => Err(cx.at(
                        v,
                        k,
                        ErrorKind::Invalid(format!(
                            "`{other}`: ringway speaks TLS 1.2 and 1.3 (rustls has no TLS 1.0, 1.1 or SSL, which are broken; drop them)"
                        )),
                    )),
                }
            };
            let (min_version, max_version) = match (&raw.min_version, &raw.protocols) {
                (Some(v), Some(_)) => {
                    return Err(cx.at(
                        v,
                        &format!("{tk}.min_version"),
                        ErrorKind::Invalid("set `protocols` or `min_version`, not both".into()),
                    ))
                }
                (None, None) => (DEFAULT_TLS_MIN_VERSION, TlsVersion::V1_3),
                (Some(v), None) => {
                    let mk = format!("{tk}.min_version");
                    (version(v, &mk, &cx.string(v, &mk)?)?, TlsVersion::V1_3)
                }
                (None, Some(v)) => {
                    let pk = format!("{tk}.protocols");
                    let mut all = Vec::new();
                    for p in cx.strings(v, &pk)? {
                        all.push(version(v, &pk, &p)?);
                    }
                    let (Some(lo), Some(hi)) = (all.iter().min(), all.iter().max()) else {
                        return Err(cx.at(
                            v,
                            &pk,
                            ErrorKind::Invalid("name at least one version".into()),
                        ));
                    };
                    (*lo, *hi)
                }
            };
            let ciphers = match &raw.ciphers {
                None => None,
                Some(v) => {
                    let ck = format!("{tk}.ciphers");
                    let (names, warnings) = map_ciphers(&cx.string(v, &ck)?)
                        .map_err(|why| cx.at(v, &ck, ErrorKind::Invalid(why)))?;
                    for w in warnings {
                        cx.warn(v, &ck, w);
                    }
                    Some(names)
                }
            };
            Some(Tls {
                cert,
                key: keyf,
                min_version,
                max_version,
                ciphers,
                session_tickets: cx.bool(
                    raw.session_tickets.as_ref(),
                    &format!("{tk}.session_tickets"),
                    true,
                )?,
                session_timeout: cx.duration(
                    raw.session_timeout.as_ref(),
                    &format!("{tk}.session_timeout"),
                    DEFAULT_TLS_SESSION_TIMEOUT,
                )?,
                session_cache: cx.bool(
                    raw.session_cache.as_ref(),
                    &format!("{tk}.session_cache"),
                    true,
                )?,
                reject_handshake: reject,
                handshake_timeout: cx.duration(
                    raw.handshake_timeout.as_ref(),
                    &format!("{tk}.handshake_timeout"),
                    DEFAULT_TLS_HANDSHAKE_TIMEOUT,
                )?,
                line: cx.line_of(t.span().start),
                cert_line: raw.cert.as_ref().map_or(0, |c| cx.line_of(c.span().start)),
                key_line: raw.key.as_ref().map_or(0, |c| cx.line_of(c.span().start)),
            })
        }
    };
    let limits = ServerLimits {
        req: limits::limit_req(cx, &key, r.limit_req.as_ref(), &zones.req)?,
        req_status: limits::status(
            cx,
            r.limit_req_status.as_ref(),
            &format!("{key}.limit_req_status"),
            DEFAULT_LIMIT_STATUS as u16,
        )?,
        conn: limits::limit_conn(cx, &key, r.limit_conn.as_ref(), &zones.conn)?,
        conn_status: limits::status(
            cx,
            r.limit_conn_status.as_ref(),
            &format!("{key}.limit_conn_status"),
            DEFAULT_LIMIT_STATUS as u16,
        )?,
        access: access_rules(cx, r.access.as_ref(), &format!("{key}.access"))?.unwrap_or_default(),
        default_type: default_type(cx, r.default_type.as_ref(), &format!("{key}.default_type"))?,
        etag: r
            .etag
            .as_ref()
            .map(|v| cx.bool(Some(v), &format!("{key}.etag"), true))
            .transpose()?,
        add_header: add_headers(cx, r.add_header.as_ref(), &format!("{key}.add_header"))?
            .unwrap_or_default(),
        hide: header_names(
            cx,
            r.proxy_hide_header.as_ref(),
            &format!("{key}.proxy_hide_header"),
        )?,
        pass: header_names(
            cx,
            r.proxy_pass_header.as_ref(),
            &format!("{key}.proxy_pass_header"),
        )?,
        error_page: error_pages(cx, r.error_page.as_ref(), &format!("{key}.error_page"))?
            .unwrap_or_default(),
        gzip: gzip_settings(
            cx,
            &key,
            [
                r.gzip.as_ref(),
                r.gzip_types.as_ref(),
                r.gzip_min_length.as_ref(),
                r.gzip_comp_level.as_ref(),
                r.gzip_vary.as_ref(),
                r.gzip_proxied.as_ref(),
                r.gzip_disable.as_ref(),
                r.gzip_static.as_ref(),
            ],
            &Gzip::nginx_default(),
        )?,
        body_timeout: cx.duration(
            r.client_body_timeout.as_ref(),
            &format!("{key}.client_body_timeout"),
            DEFAULT_CLIENT_BODY_TIMEOUT,
        )?,
        intercept: r
            .proxy_intercept_errors
            .as_ref()
            .map(|v| cx.bool(Some(v), &format!("{key}.proxy_intercept_errors"), false))
            .transpose()?,
    };
    let mut locations = Vec::new();
    for (lk, l) in &r.locations {
        locations.push(location(
            cx,
            &format!("{key}.locations.{}", k(lk)),
            lk,
            l,
            upstreams,
            zones,
            &limits,
        )?);
    }
    // A `try_files` fallback to `@name` must name a location of this
    // server (nginx refuses an unknown one only when a request gets
    // there; a configuration test should say so first).
    for (l, (lk, raw)) in locations.iter().zip(&r.locations) {
        let Action::Static(sf) = &l.action else {
            continue;
        };
        let Some(last) = sf.try_files.last() else {
            continue;
        };
        let Some(name) = last.literal().and_then(|t| t.strip_prefix('@')) else {
            continue;
        };
        let known = locations
            .iter()
            .any(|m| matches!(&m.matcher, LocationMatch::Named(n) if n == name));
        if !known {
            let v = raw
                .get_ref()
                .try_files
                .as_ref()
                .expect("try_files was parsed");
            return Err(cx.at(
                v,
                &format!("{key}.locations.{}.try_files", k(lk)),
                ErrorKind::Invalid(format!(
                    "no location \"@{name}\" in this server for the fallback"
                )),
            ));
        }
    }
    // An `error_page` target `@name` must name a location of this server.
    let named = |name: &str| {
        locations
            .iter()
            .any(|m| matches!(&m.matcher, LocationMatch::Named(n) if n == name))
    };
    let server_pages = (r.error_page.as_ref(), format!("{key}.error_page"));
    let location_pages = r.locations.iter().map(|(lk, raw)| {
        (
            raw.get_ref().error_page.as_ref(),
            format!("{key}.locations.{}.error_page", k(lk)),
        )
    });
    for (v, ek) in std::iter::once(server_pages).chain(location_pages) {
        let Some(v) = v else { continue };
        for page in error_pages(cx, Some(v), &ek)?.unwrap_or_default() {
            if let ErrorTarget::Named(n) = &page.target {
                if !named(n) {
                    return Err(cx.at(
                        v,
                        &ek,
                        ErrorKind::Invalid(format!("no location \"@{n}\" in this server")),
                    ));
                }
            }
        }
    }
    // nginx's `large_client_header_buffers N SIZE`: N buffers of SIZE for
    // the head, no line longer than SIZE.
    let (large, header_line_max) = match &r.large_client_header_buffers {
        None => (None, None),
        Some(v) => {
            let lk = format!("{key}.large_client_header_buffers");
            if r.client_header_buffer_size.is_some() {
                return Err(cx.at(
                    v,
                    &lk,
                    ErrorKind::Invalid(
                        "set `large_client_header_buffers` or `client_header_buffer_size`, not both"
                            .into(),
                    ),
                ));
            }
            let text = cx.string(v, &lk)?;
            let parsed = text.split_once(char::is_whitespace).and_then(|(n, size)| {
                let n: usize = n.trim().parse().ok()?;
                let size = parse_size(size.trim())? as usize;
                (n >= 1 && size >= 1024).then_some((n, size))
            });
            let Some((n, size)) = parsed else {
                return Err(cx.at(
                    v,
                    &lk,
                    ErrorKind::Invalid(format!(
                        "`{text}`: write \"NUMBER SIZE\", as nginx's \"4 8k\" (SIZE at least 1k)"
                    )),
                ));
            };
            // nginx's 1k first buffer and the large ones.
            (Some(1024 + n * size), Some((n, size)))
        }
    };
    let client_header_buffer_size = match large {
        Some(total) => total as u64,
        None => cx.size(
            r.client_header_buffer_size.as_ref(),
            &format!("{key}.client_header_buffer_size"),
            DEFAULT_CLIENT_HEADER_BUFFER_SIZE,
        )?,
    };
    if !(1024..=1 << 20).contains(&client_header_buffer_size) {
        let v = r
            .client_header_buffer_size
            .as_ref()
            .or(r.large_client_header_buffers.as_ref())
            .expect("the default is in range");
        return Err(cx.at(
            v,
            &format!("{key}.client_header_buffer_size"),
            ErrorKind::Invalid("must be from 1k to 1m".into()),
        ));
    }
    let http2 = cx.http2(r.http2.as_ref(), &format!("{key}.http2"))?;
    match (http2, &r.http2, tls.is_some()) {
        (Http2::Tls, Some(v), false) => cx.warn(
            v,
            &format!("{key}.http2"),
            "true offers HTTP/2 through TLS ALPN and this server has no tls: it speaks HTTP/1.1 (\"h2c\" serves cleartext HTTP/2)".into(),
        ),
        (Http2::H2c, Some(v), true) => cx.warn(
            v,
            &format!("{key}.http2"),
            "\"h2c\" is cleartext HTTP/2 and this server's listeners are TLS: it speaks HTTP/1.1 (true offers h2 through ALPN)".into(),
        ),
        _ => {}
    }
    Ok(Server {
        name: name.to_string(),
        listen,
        listen_unix,
        server_names,
        tls,
        http2,
        http2_max_concurrent_streams: cx.int(
            r.http2_max_concurrent_streams.as_ref(),
            &format!("{key}.http2_max_concurrent_streams"),
            DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS as u64,
            1,
            1 << 16,
        )? as u32,
        http2_websocket: cx.bool(
            r.http2_websocket.as_ref(),
            &format!("{key}.http2_websocket"),
            true,
        )?,
        http2_line: r.http2.as_ref().map(|v| cx.line_of(v.span().start)),
        error_page: limits.error_page.clone(),
        rewrites: rewrite_rules(cx, r.set.as_ref(), r.rewrite.as_ref(), &key)?,
        locations,
        client_header_buffer_size: client_header_buffer_size as usize,
        header_line_max,
        max_headers: cx.int(
            r.max_headers.as_ref(),
            &format!("{key}.max_headers"),
            DEFAULT_MAX_HEADERS,
            1,
            1000,
        )? as usize,
        client_header_timeout: cx.duration(
            r.client_header_timeout.as_ref(),
            &format!("{key}.client_header_timeout"),
            DEFAULT_CLIENT_HEADER_TIMEOUT,
        )?,
        keepalive_timeout: cx.duration(
            r.keepalive_timeout.as_ref(),
            &format!("{key}.keepalive_timeout"),
            DEFAULT_KEEPALIVE_TIMEOUT,
        )?,
        server_tokens: cx.bool(
            r.server_tokens.as_ref(),
            &format!("{key}.server_tokens"),
            false,
        )?,
        keepalive_requests: cx.int(
            r.keepalive_requests.as_ref(),
            &format!("{key}.keepalive_requests"),
            1000,
            1,
            u64::from(u32::MAX),
        )? as u32,
        send_timeout: cx.duration(
            r.send_timeout.as_ref(),
            &format!("{key}.send_timeout"),
            DEFAULT_SEND_TIMEOUT,
        )?,
        underscores_in_headers: cx.bool(
            r.underscores_in_headers.as_ref(),
            &format!("{key}.underscores_in_headers"),
            DEFAULT_UNDERSCORES_IN_HEADERS,
        )?,
        limit_conn: limits.conn,
        limit_conn_status: limits.conn_status,
    })
}

/// A server's limits and access rules, which its locations inherit when
/// they set none.
struct ServerLimits {
    req: Option<LimitReq>,
    req_status: u16,
    conn: Option<LimitConn>,
    conn_status: u16,
    access: Vec<AccessRule>,
    default_type: Option<String>,
    etag: Option<bool>,
    add_header: Vec<AddHeader>,
    hide: Option<Vec<String>>,
    pass: Option<Vec<String>>,
    error_page: Vec<ErrorPage>,
    intercept: Option<bool>,
    body_timeout: Duration,
    gzip: Gzip,
}

/// `add_header`: a table of name → value, or name →
/// `{ value = "...", always = true }`; `None` when the level sets none.
fn add_headers(
    cx: &Ctx,
    map: Option<&IndexMap<String, V>>,
    key: &str,
) -> Result<Option<Vec<AddHeader>>, ConfigError> {
    let Some(map) = map else { return Ok(None) };
    let mut out = Vec::new();
    for (name, v) in map {
        let hk = format!("{key}.{}", k(name));
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(cx.at(
                v,
                &hk,
                ErrorKind::Invalid(format!("`{name}` is not a valid header name")),
            ));
        }
        let (value, always) = match v.get_ref() {
            toml::Value::Table(t) => {
                for field in t.keys() {
                    if field != "value" && field != "always" {
                        return Err(cx.at(
                            v,
                            &format!("{hk}.{field}"),
                            ErrorKind::UnknownKey {
                                suggestion: None,
                                elsewhere: None,
                                expected: vec!["value".into(), "always".into()],
                            },
                        ));
                    }
                }
                let Some(value) = t.get("value") else {
                    return Err(cx.at(
                        v,
                        &format!("{hk}.value"),
                        ErrorKind::Invalid("missing: the field's value".into()),
                    ));
                };
                let value = toml::Spanned::new(v.span(), value.clone());
                let always = match t.get("always") {
                    None => false,
                    Some(toml::Value::Boolean(b)) => *b,
                    Some(other) => {
                        return Err(cx.at(v, &format!("{hk}.always"), type_err("a boolean", other)))
                    }
                };
                (cx.header_template(&value, &format!("{hk}.value"))?, always)
            }
            _ => (cx.header_template(v, &hk)?, false),
        };
        out.push(AddHeader {
            name: name.clone(),
            value,
            always,
        });
    }
    Ok(Some(out))
}

/// The `gzip*` keys of a level, in order (`gzip`, `gzip_types`,
/// `gzip_min_length`, `gzip_comp_level`, `gzip_vary`, `gzip_proxied`,
/// `gzip_disable`, `gzip_static`); each one unset keeps `parent`'s.
fn gzip_settings(
    cx: &Ctx,
    key: &str,
    v: [Option<&V>; 8],
    parent: &Gzip,
) -> Result<Gzip, ConfigError> {
    let k = |name: &str| format!("{key}.{name}");
    let mut g = parent.clone();
    g.on = cx.bool(v[0], &k("gzip"), parent.on)?;
    if let Some(t) = v[1] {
        let mut types = vec!["text/html".to_string()];
        for ty in cx.strings(t, &k("gzip_types"))? {
            let ty = ty.to_ascii_lowercase();
            if ty != "*" && !ty.contains('/') {
                return Err(cx.at(
                    t,
                    &k("gzip_types"),
                    ErrorKind::Invalid(format!(
                        "`{ty}` is not a media type (type/subtype, or \"*\")"
                    )),
                ));
            }
            if !types.contains(&ty) {
                types.push(ty);
            }
        }
        g.types = types;
    }
    g.min_length = cx.size(v[2], &k("gzip_min_length"), parent.min_length)?;
    g.level = cx.int(v[3], &k("gzip_comp_level"), parent.level as u64, 1, 9)? as u32;
    g.vary = cx.bool(v[4], &k("gzip_vary"), parent.vary)?;
    if let Some(p) = v[5] {
        let list = cx.strings(p, &k("gzip_proxied"))?;
        const KNOWN: &[&str] = &[
            "off",
            "expired",
            "no-cache",
            "no-store",
            "private",
            "no_last_modified",
            "no_etag",
            "auth",
            "any",
        ];
        if let Some(bad) = list.iter().find(|x| !KNOWN.contains(&x.as_str())) {
            return Err(cx.at(
                p,
                &k("gzip_proxied"),
                ErrorKind::Invalid(format!("`{bad}`: the values are {}", KNOWN.join(", "))),
            ));
        }
        g.proxied = list;
    }
    if let Some(d) = v[6] {
        let mut out = Vec::new();
        for re in cx.strings(d, &k("gzip_disable"))? {
            // nginx's "msie6" is a fixed test for old Internet Explorers.
            let pattern = if re == "msie6" {
                r"MSIE [4-6]\.".to_string()
            } else {
                re.clone()
            };
            out.push(regex::Regex::new(&format!("(?i){pattern}")).map_err(|e| {
                cx.at(
                    d,
                    &k("gzip_disable"),
                    ErrorKind::InvalidRegex(e.to_string()),
                )
            })?);
        }
        g.disable = out;
    }
    g.static_files = cx.bool(v[7], &k("gzip_static"), parent.static_files)?;
    Ok(g)
}

/// `proxy_redirect`: `"default"` (the default), `"off"`, or an array of
/// `"FROM TO"` lines and `"default"`. nginx's default replaces the
/// `proxy_pass` URL (with its URI part, `/` without) by the location's
/// prefix (`/` without a URI part).
fn proxy_redirect(
    cx: &Ctx,
    v: Option<&V>,
    key: &str,
    matcher: &LocationMatch,
    action: &Action,
) -> Result<Vec<(String, String)>, ConfigError> {
    let Action::Proxy(pp) = action else {
        return Ok(Vec::new());
    };
    let rk = format!("{key}.proxy_redirect");
    let default = || -> Option<(String, String)> {
        let scheme = if pp.tls { "https://" } else { "http://" };
        let after = pp.text.split_once("://").map_or("", |(_, r)| r);
        let authority = match &pp.uri {
            Some(u) => after.strip_suffix(u.as_str()).unwrap_or(after),
            None => after,
        };
        let prefix = match matcher {
            LocationMatch::Exact(p) | LocationMatch::Prefix { path: p, .. } => Some(p.as_str()),
            _ => None,
        };
        match (&pp.uri, prefix) {
            (Some(u), Some(p)) => Some((format!("{scheme}{authority}{u}"), p.to_string())),
            (Some(_), None) => None,
            (None, _) => Some((format!("{scheme}{authority}/"), "/".to_string())),
        }
    };
    let lines = match v {
        None => vec!["default".to_string()],
        Some(v) => match v.get_ref() {
            toml::Value::String(s) => vec![s.clone()],
            _ => cx.strings(v, &rk)?,
        },
    };
    let mut out = Vec::new();
    for line in &lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["off"] if lines.len() == 1 => return Ok(Vec::new()),
            ["default"] => match default() {
                Some(d) => out.push(d),
                // nginx refuses `proxy_redirect default` on a regex
                // location whose proxy_pass has a URI part; as a default
                // it is simply none there.
                None if v.is_none() => {}
                None => {
                    return Err(cx.at(
                        v.expect("written"),
                        &rk,
                        ErrorKind::Invalid(
                            "`default` needs a location prefix to put back (not a regex or named location with a proxy_pass URI part)".into(),
                        ),
                    ))
                }
            },
            [from, to] if !from.starts_with('~') => out.push((from.to_string(), to.to_string())),
            _ => {
                return Err(cx.at(
                    v.expect("the default parses"),
                    &rk,
                    ErrorKind::Invalid(format!(
                        "`{line}`: write \"default\", \"off\" or \"FROM TO\" (prefixes; regex forms are not supported)"
                    )),
                ))
            }
        }
    }
    Ok(out)
}

/// `error_page`: an array of nginx `error_page` lines; `None` when the
/// level sets none.
fn error_pages(cx: &Ctx, v: Option<&V>, key: &str) -> Result<Option<Vec<ErrorPage>>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    let mut out = Vec::new();
    for line in cx.strings(v, key)? {
        out.push(
            ErrorPage::parse(&line)
                .map_err(|why| cx.at(v, key, ErrorKind::Invalid(format!("`{line}`: {why}"))))?,
        );
    }
    Ok(Some(out))
}

/// `proxy_hide_header` / `proxy_pass_header`: an array of field names,
/// stored lowercase; `None` when the level sets none.
fn header_names(cx: &Ctx, v: Option<&V>, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    let toml::Value::Array(items) = v.get_ref() else {
        return Err(cx.at(v, key, type_err("an array of header names", v.get_ref())));
    };
    let mut out = Vec::new();
    for item in items {
        let toml::Value::String(name) = item else {
            return Err(cx.at(v, key, type_err("an array of header names", item)));
        };
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(cx.at(
                v,
                key,
                ErrorKind::Invalid(format!("`{name}` is not a valid header name")),
            ));
        }
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "content-length" | "transfer-encoding" | "connection" | "upgrade" | "keep-alive"
        ) {
            return Err(cx.at(
                v,
                key,
                ErrorKind::Invalid(format!(
                    "`{name}` is framing or hop-by-hop: ringway decides it, not the upstream"
                )),
            ));
        }
        out.push(lower);
    }
    Ok(Some(out))
}

/// The hidden upstream fields: nginx's defaults and `hide`, less `pass`.
fn proxy_hide(hide: Vec<String>, pass: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = DEFAULT_PROXY_HIDE.iter().map(|s| s.to_string()).collect();
    for h in hide {
        if !out.contains(&h) {
            out.push(h);
        }
    }
    out.retain(|h| !pass.contains(h));
    out
}

/// `default_type`: a media type as `Content-Type` takes it
/// (`type/subtype`, parameters allowed), nothing a header value cannot
/// hold.
fn default_type(cx: &Ctx, v: Option<&V>, key: &str) -> Result<Option<String>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    let t = cx.string(v, key)?;
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let essence = t.split(';').next().unwrap_or_default().trim();
    let ok = essence
        .split_once('/')
        .is_some_and(|(a, b)| token(a) && token(b))
        && t.bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic());
    if !ok {
        return Err(cx.at(
            v,
            key,
            ErrorKind::Invalid(format!(
                "`{t}`: a media type such as \"application/json\" or \"text/html; charset=utf-8\""
            )),
        ));
    }
    Ok(Some(t))
}

/// `access`: an array of nginx `allow` / `deny` lines, in order
/// (`["allow 10.0.0.0/8", "deny all"]`). `None` when the key is absent.
fn access_rules(
    cx: &Ctx,
    v: Option<&V>,
    key: &str,
) -> Result<Option<Vec<AccessRule>>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    let mut rules = Vec::new();
    for line in cx.strings(v, key)? {
        let rule = AccessRule::parse(&line)
            .map_err(|why| cx.at(v, key, ErrorKind::Invalid(format!("`{line}`: {why}"))))?;
        rules.push(rule);
    }
    Ok(Some(rules))
}

/// `listen`: "addr", or an array of "addr" and `{ addr = "...",
/// proxy_protocol = true }` tables. Returns (address text, proxy_protocol).
fn listen_entries(cx: &Ctx, v: &V, key: &str) -> Result<Vec<(String, bool)>, ConfigError> {
    // `key` of an entry: `listen[0]` in an array, `listen` alone.
    let entry = |i: &toml::Value, key: &str| -> Result<(String, bool), ConfigError> {
        match i {
            toml::Value::String(s) => Ok((s.clone(), false)),
            toml::Value::Table(t) => {
                limits::known_keys(cx, v, key, t, LISTEN_KEYS)?;
                let mut addr = None;
                let mut pp = false;
                for (name, val) in t {
                    match (name.as_str(), val) {
                        ("addr", toml::Value::String(s)) => addr = Some(s.clone()),
                        ("proxy_protocol", toml::Value::Boolean(b)) => pp = *b,
                        ("addr", other) => {
                            return Err(cx.at(
                                v,
                                &format!("{key}.addr"),
                                type_err("a string", other),
                            ))
                        }
                        ("proxy_protocol", other) => {
                            return Err(cx.at(
                                v,
                                &format!("{key}.proxy_protocol"),
                                type_err("true or false", other),
                            ))
                        }
                        _ => {} // known_keys above
                    }
                }
                let addr = addr.ok_or_else(|| {
                    cx.at(
                        v,
                        &format!("{key}.addr"),
                        ErrorKind::Invalid("a listen table needs addr".into()),
                    )
                })?;
                Ok((addr, pp))
            }
            other => Err(cx.at(
                v,
                key,
                type_err(
                    "an address, a { addr = ... } table, or an array of them",
                    other,
                ),
            )),
        }
    };
    match v.get_ref() {
        toml::Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(n, i)| entry(i, &format!("{key}[{n}]")))
            .collect(),
        one => Ok(vec![entry(one, key)?]),
    }
}

/// The keys of a `listen` table (checked here, not by serde).
pub(crate) const LISTEN_KEYS: &[&str] = &["addr", "proxy_protocol"];

fn location(
    cx: &Ctx,
    key: &str,
    lkey: &str,
    l: &toml::Spanned<RawLocation>,
    upstreams: &IndexMap<String, Upstream>,
    zones: &Zones,
    inherited: &ServerLimits,
) -> Result<Location, ConfigError> {
    let here = Some(l.span());
    let span_start = l.span().start;
    let r = l.get_ref();
    let invalid = |msg: String| cx.err(here.clone(), key, ErrorKind::Invalid(msg));
    let matcher = if let Some(name) = lkey.strip_prefix('@') {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
        {
            return Err(invalid(format!(
                "location `{lkey}`: a named location is `@` and a name of letters, digits, `_` and `-`"
            )));
        }
        LocationMatch::Named(name.to_string())
    } else if let Some(p) = lkey.strip_prefix("= ") {
        LocationMatch::Exact(p.trim().to_string())
    } else if let Some(p) = lkey.strip_prefix("^~ ") {
        LocationMatch::Prefix {
            path: p.trim().to_string(),
            no_regex: true,
        }
    } else if let Some(re) = lkey.strip_prefix("~* ") {
        LocationMatch::Regex {
            regex: regex::Regex::new(&format!("(?i){}", re.trim()))
                .map_err(|e| cx.err(here.clone(), key, ErrorKind::InvalidRegex(e.to_string())))?,
            case_insensitive: true,
        }
    } else if let Some(re) = lkey.strip_prefix("~ ") {
        LocationMatch::Regex {
            regex: regex::Regex::new(re.trim())
                .map_err(|e| cx.err(here.clone(), key, ErrorKind::InvalidRegex(e.to_string())))?,
            case_insensitive: false,
        }
    } else {
        LocationMatch::Prefix {
            path: lkey.trim().to_string(),
            no_regex: false,
        }
    };
    if let LocationMatch::Regex { regex, .. } = &matcher {
        check_capture_names(regex).map_err(invalid)?;
    }
    match &matcher {
        LocationMatch::Exact(p) | LocationMatch::Prefix { path: p, .. } if !p.starts_with('/') => {
            return Err(invalid(format!(
                "location `{lkey}`: a path must start with '/' (use \"= /x\", \"/x/\", \"^~ /x/\", \"~ regex\" or \"~* regex\")"
            )))
        }
        _ => {}
    }

    let actions = [
        r.return_.is_some(),
        r.proxy_pass.is_some(),
        r.root.is_some(),
        r.alias.is_some(),
    ];
    let n = actions.iter().filter(|&&a| a).count();
    let rewrites = rewrite_rules(cx, r.set.as_ref(), r.rewrite.as_ref(), key)?;
    if n == 0 && !rewrites.rewrite.is_empty() {
        // nginx's `location /old/ { rewrite ^ /new/ permanent; }`: a
        // request no line takes gets 404 (nginx would look in its default
        // root), through `error_page`.
    } else if n == 0 {
        return Err(invalid(
            "a location needs one of return, proxy_pass, root or alias".into(),
        ));
    }
    if n > 1 {
        return Err(invalid(
            "a location takes only one of return, proxy_pass, root or alias".into(),
        ));
    }
    let action = if n == 0 {
        Action::Return {
            status: 404,
            body: None,
            location: None,
        }
    } else if let Some(ret) = &r.return_ {
        let rk = format!("{key}.return");
        let rr = ret.get_ref();
        let Some(sv) = &rr.status else {
            return Err(cx.err(
                Some(ret.span()),
                &format!("{rk}.status"),
                ErrorKind::Invalid("return needs a status".into()),
            ));
        };
        let status = cx.int(Some(sv), &format!("{rk}.status"), 200, 100, 599)? as u16;
        let body = rr
            .body
            .as_ref()
            .map(|v| cx.template(v, &format!("{rk}.body")))
            .transpose()?;
        let location = rr
            .location
            .as_ref()
            .map(|v| cx.header_template(v, &format!("{rk}.location")))
            .transpose()?;
        if matches!(status, 301 | 302 | 303 | 307 | 308) && location.is_none() {
            return Err(cx.at(
                sv,
                &format!("{rk}.location"),
                ErrorKind::Invalid(format!("a {status} redirect needs a location")),
            ));
        }
        Action::Return {
            status,
            body,
            location,
        }
    } else if let Some(v) = &r.proxy_pass {
        let pk = format!("{key}.proxy_pass");
        let pp = proxy_pass(cx, v, &pk, upstreams)?;
        if pp.uri.is_some()
            && pp.uri_vars.is_none()
            && matches!(matcher, LocationMatch::Regex { .. })
        {
            return Err(cx.at(
                v,
                &pk,
                ErrorKind::Invalid("proxy_pass cannot have a URI part in a regex location".into()),
            ));
        }
        Action::Proxy(pp)
    } else {
        let (v, rk) = match (&r.root, &r.alias) {
            (Some(v), _) => (v, format!("{key}.root")),
            (_, Some(v)) => (v, format!("{key}.alias")),
            _ => unreachable!("one action is present"),
        };
        let text = cx.string(v, &rk)?;
        // With variables: the fixed directory before the first one bounds
        // what can be served.
        let (dir, root_vars) = match text.find('$') {
            None => (text.clone(), None),
            Some(i) => {
                let Some(slash) = text[..i].rfind('/') else {
                    return Err(cx.at(
                        v,
                        &rk,
                        ErrorKind::Invalid(
                            "a path with variables must start with a fixed directory (`/srv/rooms/$1`)"
                                .into(),
                        ),
                    ));
                };
                (text[..=slash].to_string(), Some(cx.template(v, &rk)?))
            }
        };
        let root = if r.root.is_some() {
            StaticRoot::Root(dir.into())
        } else {
            StaticRoot::Alias(dir.into())
        };
        if root_vars.is_some()
            && r.alias.is_some()
            && r.try_files.is_some()
            && matches!(matcher, LocationMatch::Regex { .. })
        {
            return Err(cx.at(
                v,
                &rk,
                ErrorKind::Invalid(
                    "an alias with variables in a regex location names the file itself: try_files cannot be used with it".into(),
                ),
            ));
        }
        // A warning, not an error (nginx checks nothing here): a deploy may
        // create or mount the directory after the config is tested, but a
        // typo would otherwise show only as 404s.
        let (StaticRoot::Root(dir) | StaticRoot::Alias(dir)) = &root;
        if !dir.is_dir() {
            cx.warn(
                v,
                &rk,
                format!(
                    "`{}` is not a directory (requests here will get 404)",
                    dir.display()
                ),
            );
        }
        let index = match &r.index {
            None => vec![DEFAULT_INDEX.to_string()],
            Some(v) => cx.strings(v, &format!("{key}.index"))?,
        };
        let mut try_files = Vec::new();
        if let Some(v) = &r.try_files {
            let tk = format!("{key}.try_files");
            for t in cx.strings(v, &tk)? {
                try_files.push(
                    cx.parse_template(&t)
                        .map_err(|name| cx.at(v, &tk, ErrorKind::UnknownVariable { name }))?,
                );
            }
        }
        Action::Static(StaticFiles {
            root,
            root_vars,
            index,
            try_files,
        })
    };
    warn_unused_keys(cx, r, key, &action);
    let headers = |map: &Option<IndexMap<String, V>>,
                   what: &str|
     -> Result<Vec<(String, Template)>, ConfigError> {
        let mut out = Vec::new();
        if let Some(map) = map {
            for (name, v) in map {
                let hk = format!("{key}.{what}.{}", k(name));
                if name.is_empty() || !name.bytes().all(is_tchar) {
                    return Err(cx.at(
                        v,
                        &hk,
                        ErrorKind::Invalid(format!("`{name}` is not a valid header name")),
                    ));
                }
                out.push((name.clone(), cx.header_template(v, &hk)?));
            }
        }
        Ok(out)
    };
    let redirect = proxy_redirect(cx, r.proxy_redirect.as_ref(), key, &matcher, &action)?;
    Ok(Location {
        key: lkey.to_string(),
        proxy_redirect: redirect,
        matcher,
        proxy_connect_timeout: cx.duration(
            r.proxy_connect_timeout.as_ref(),
            &format!("{key}.proxy_connect_timeout"),
            DEFAULT_PROXY_CONNECT_TIMEOUT,
        )?,
        proxy_read_timeout: cx.duration(
            r.proxy_read_timeout.as_ref(),
            &format!("{key}.proxy_read_timeout"),
            DEFAULT_PROXY_READ_TIMEOUT,
        )?,
        proxy_send_timeout: cx.duration(
            r.proxy_send_timeout.as_ref(),
            &format!("{key}.proxy_send_timeout"),
            DEFAULT_PROXY_SEND_TIMEOUT,
        )?,
        proxy_buffering: cx.bool(
            r.proxy_buffering.as_ref(),
            &format!("{key}.proxy_buffering"),
            DEFAULT_PROXY_BUFFERING,
        )?,
        proxy_buffers: {
            let k = format!("{key}.proxy_buffers");
            let n = cx.size(r.proxy_buffers.as_ref(), &k, DEFAULT_PROXY_BUFFERS)?;
            if !(1024..=64 << 20).contains(&n) {
                let v = r.proxy_buffers.as_ref().expect("the default is in range");
                return Err(cx.at(v, &k, ErrorKind::Invalid("must be from 1k to 64m".into())));
            }
            n as usize
        },
        proxy_set_header: headers(&r.proxy_set_header, "proxy_set_header")?,
        client_max_body_size: cx.size(
            r.client_max_body_size.as_ref(),
            &format!("{key}.client_max_body_size"),
            DEFAULT_CLIENT_MAX_BODY_SIZE,
        )?,
        proxy_request_buffering: {
            let bk = format!("{key}.proxy_request_buffering");
            let on = cx.bool(r.proxy_request_buffering.as_ref(), &bk, false)?;
            let max = cx.size(
                r.client_max_body_size.as_ref(),
                &format!("{key}.client_max_body_size"),
                DEFAULT_CLIENT_MAX_BODY_SIZE,
            )?;
            if on && !(1..=16 << 20).contains(&max) {
                let v = r.proxy_request_buffering.as_ref().expect("set when on");
                return Err(cx.at(
                    v,
                    &bk,
                    ErrorKind::Invalid(
                        "buffers the body in memory: client_max_body_size must be from 1 byte to 16m here"
                            .into(),
                    ),
                ));
            }
            on
        },
        next_upstream: {
            let nk = format!("{key}.proxy_next_upstream");
            let mut n = match &r.proxy_next_upstream {
                None => NextUpstream::nginx_default(),
                Some(v) => NextUpstream::parse_conditions(&cx.strings(v, &nk)?)
                    .map_err(|why| cx.at(v, &nk, ErrorKind::Invalid(why)))?,
            };
            n.tries = cx.int(
                r.proxy_next_upstream_tries.as_ref(),
                &format!("{key}.proxy_next_upstream_tries"),
                0,
                0,
                1000,
            )? as u32;
            n.within = cx.duration(
                r.proxy_next_upstream_timeout.as_ref(),
                &format!("{key}.proxy_next_upstream_timeout"),
                Duration::ZERO,
            )?;
            n
        },
        client_body_timeout: cx.duration(
            r.client_body_timeout.as_ref(),
            &format!("{key}.client_body_timeout"),
            inherited.body_timeout,
        )?,
        proxy_ssl: UpstreamTls {
            verify: cx.bool(
                r.proxy_ssl_verify.as_ref(),
                &format!("{key}.proxy_ssl_verify"),
                DEFAULT_PROXY_SSL_VERIFY,
            )?,
            trusted_certificate: r
                .proxy_ssl_trusted_certificate
                .as_ref()
                .map(|v| cx.string(v, &format!("{key}.proxy_ssl_trusted_certificate")))
                .transpose()?
                .map(PathBuf::from),
            server_name: cx.bool(
                r.proxy_ssl_server_name.as_ref(),
                &format!("{key}.proxy_ssl_server_name"),
                DEFAULT_PROXY_SSL_SERVER_NAME,
            )?,
            name: r
                .proxy_ssl_name
                .as_ref()
                .map(|v| cx.string(v, &format!("{key}.proxy_ssl_name")))
                .transpose()?,
            line: cx.line_of(span_start),
        },
        add_header: add_headers(cx, r.add_header.as_ref(), &format!("{key}.add_header"))?
            .unwrap_or_else(|| inherited.add_header.clone()),
        proxy_hide: {
            let hide = header_names(
                cx,
                r.proxy_hide_header.as_ref(),
                &format!("{key}.proxy_hide_header"),
            )?;
            let pass = header_names(
                cx,
                r.proxy_pass_header.as_ref(),
                &format!("{key}.proxy_pass_header"),
            )?;
            // nginx inherits the two together: a location that sets
            // either takes neither from the server.
            if hide.is_none() && pass.is_none() {
                proxy_hide(
                    inherited.hide.clone().unwrap_or_default(),
                    inherited.pass.clone().unwrap_or_default(),
                )
            } else {
                proxy_hide(hide.unwrap_or_default(), pass.unwrap_or_default())
            }
        },
        limit_req: limits::limit_req(cx, key, r.limit_req.as_ref(), &zones.req)?
            .or_else(|| inherited.req.clone()),
        limit_req_status: limits::status(
            cx,
            r.limit_req_status.as_ref(),
            &format!("{key}.limit_req_status"),
            inherited.req_status,
        )?,
        limit_conn: limits::limit_conn(cx, key, r.limit_conn.as_ref(), &zones.conn)?
            .or_else(|| inherited.conn.clone()),
        limit_conn_status: limits::status(
            cx,
            r.limit_conn_status.as_ref(),
            &format!("{key}.limit_conn_status"),
            inherited.conn_status,
        )?,
        upgrade: upgrade_protocols(
            cx,
            r.upgrade.as_ref(),
            &format!("{key}.upgrade"),
            matches!(action, Action::Proxy(_)),
        )?,
        // nginx: a level with any rule replaces the rules above it.
        access: access_rules(cx, r.access.as_ref(), &format!("{key}.access"))?
            .unwrap_or_else(|| inherited.access.clone()),
        default_type: default_type(cx, r.default_type.as_ref(), &format!("{key}.default_type"))?
            .or_else(|| inherited.default_type.clone()),
        etag: cx.bool(
            r.etag.as_ref(),
            &format!("{key}.etag"),
            inherited.etag.unwrap_or(true),
        )?,
        internal: cx.bool(r.internal.as_ref(), &format!("{key}.internal"), false)?,
        rewrites,
        gzip: gzip_settings(
            cx,
            key,
            [
                r.gzip.as_ref(),
                r.gzip_types.as_ref(),
                r.gzip_min_length.as_ref(),
                r.gzip_comp_level.as_ref(),
                r.gzip_vary.as_ref(),
                r.gzip_proxied.as_ref(),
                r.gzip_disable.as_ref(),
                r.gzip_static.as_ref(),
            ],
            &inherited.gzip,
        )?,
        error_page: error_pages(cx, r.error_page.as_ref(), &format!("{key}.error_page"))?
            .unwrap_or_else(|| inherited.error_page.clone()),
        proxy_intercept_errors: cx.bool(
            r.proxy_intercept_errors.as_ref(),
            &format!("{key}.proxy_intercept_errors"),
            inherited.intercept.unwrap_or(false),
        )?,
        expires: match &r.expires {
            None => None,
            Some(v) => {
                let ek = format!("{key}.expires");
                let text = match v.get_ref() {
                    toml::Value::Integer(n) => n.to_string(),
                    _ => cx.string(v, &ek)?,
                };
                Expires::parse(&text).map_err(|why| cx.at(v, &ek, ErrorKind::Invalid(why)))?
            }
        },
        action,
    })
}

/// The `set` and `rewrite` lines of a server or location (`key`).
fn rewrite_rules(
    cx: &Ctx,
    set: Option<&V>,
    rewrite: Option<&V>,
    key: &str,
) -> Result<RewriteRules, ConfigError> {
    let mut rules = RewriteRules::default();
    if let Some(v) = set {
        let sk = format!("{key}.set");
        for line in cx.strings(v, &sk)? {
            let bad = |why: String| cx.at(v, &sk, ErrorKind::Invalid(why));
            let (name, value) = set_line(&line).map_err(bad)?;
            if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return Err(bad(format!(
                    "`{line}`: a value cannot contain control characters"
                )));
            }
            let value = cx
                .parse_template(value)
                .map_err(|name| cx.at(v, &sk, ErrorKind::UnknownVariable { name }))?;
            rules.set.push(SetVar {
                name: name.to_string(),
                value,
            });
        }
    }
    if let Some(v) = rewrite {
        let rk = format!("{key}.rewrite");
        for line in cx.strings(v, &rk)? {
            let bad = |why: String| cx.at(v, &rk, ErrorKind::Invalid(why));
            let (re, to, flag) = rewrite_line(&line).map_err(bad)?;
            let regex = regex::Regex::new(re)
                .map_err(|e| cx.at(v, &rk, ErrorKind::InvalidRegex(e.to_string())))?;
            check_capture_names(&regex).map_err(bad)?;
            if to.bytes().any(|b| b < 0x20 || b == 0x7f) {
                return Err(bad(format!(
                    "`{line}`: a replacement cannot contain control characters"
                )));
            }
            let flag = match flag {
                None | Some("last") | Some("break")
                    if ["http://", "https://", "$scheme"]
                        .iter()
                        .any(|p| to.starts_with(p)) =>
                {
                    RewriteFlag::Redirect
                }
                None => RewriteFlag::Next,
                Some("last") => RewriteFlag::Last,
                Some("break") => RewriteFlag::Break,
                Some("redirect") => RewriteFlag::Redirect,
                Some("permanent") => RewriteFlag::Permanent,
                Some(f) => {
                    return Err(bad(format!(
                        "`{line}`: unknown flag `{f}` (last, break, redirect or permanent)"
                    )))
                }
            };
            let to = cx
                .parse_template(to)
                .map_err(|name| cx.at(v, &rk, ErrorKind::UnknownVariable { name }))?;
            rules.rewrite.push(Rewrite {
                line: line.clone(),
                regex,
                to,
                flag,
            });
        }
    }
    Ok(rules)
}

/// A `set` line, `$name VALUE` → (name, value); the value may be empty.
fn set_line(line: &str) -> Result<(&str, &str), String> {
    let line = line.trim();
    let form = || format!("`{line}`: a set line is `$name VALUE`");
    let rest = line.strip_prefix('$').ok_or_else(form)?;
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (name, value) = (&rest[..end], rest[end..].trim());
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(form());
    }
    if template::variable(name).is_some() {
        return Err(format!(
            "`{line}`: ${name} is a built-in variable; set makes a variable of its own"
        ));
    }
    Ok((name, value))
}

/// A `rewrite` line, `REGEX REPLACEMENT [FLAG]`, split at whitespace (a
/// regex with a space writes it `\s` or `\x20`).
fn rewrite_line(line: &str) -> Result<(&str, &str, Option<&str>), String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words[..] {
        [re, to] => Ok((re, to, None)),
        [re, to, flag] => Ok((re, to, Some(flag))),
        _ => Err(format!(
            "`{line}`: a rewrite line is `REGEX REPLACEMENT [last|break|redirect|permanent]`"
        )),
    }
}

/// A regex's named captures become variables: none may take a built-in
/// variable's name.
fn check_capture_names(regex: &regex::Regex) -> Result<(), String> {
    for name in regex.capture_names().flatten() {
        if template::variable(name).is_some() {
            return Err(format!(
                "the named capture `{name}` would hide the built-in variable ${name}"
            ));
        }
    }
    Ok(())
}

/// The variables a configuration makes, found before any template is
/// read: `set` names and the named captures of location and `rewrite`
/// regexes. Lines that do not parse are left to their own check.
fn named_variables(raw: &Raw) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut from = |set: Option<&V>, rewrite: Option<&V>, regexes: &mut Vec<String>| {
        let lines = |v: Option<&V>| -> Vec<String> {
            match v.map(|v| v.get_ref()) {
                Some(toml::Value::String(s)) => vec![s.clone()],
                Some(toml::Value::Array(a)) => a
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            }
        };
        for l in lines(set) {
            if let Ok((name, _)) = set_line(&l) {
                names.insert(name.to_string());
            }
        }
        for l in lines(rewrite) {
            if let Ok((re, _, _)) = rewrite_line(&l) {
                regexes.push(re.to_string());
            }
        }
    };
    let mut regexes = Vec::new();
    for s in raw.servers.values() {
        let s = s.get_ref();
        from(s.set.as_ref(), s.rewrite.as_ref(), &mut regexes);
        for (lk, l) in &s.locations {
            let l = l.get_ref();
            from(l.set.as_ref(), l.rewrite.as_ref(), &mut regexes);
            if let Some(re) = lk.strip_prefix("~* ").or_else(|| lk.strip_prefix("~ ")) {
                regexes.push(re.trim().to_string());
            }
        }
    }
    for re in regexes {
        if let Ok(re) = regex::Regex::new(&re) {
            names.extend(re.capture_names().flatten().map(str::to_string));
        }
    }
    names.retain(|n| template::variable(n).is_none());
    names
}

/// `upgrade`: an array of RFC 9110 §7.8 protocols (`name` or
/// `name/version`, tokens), stored lowercase. `h2c` is a warning: a tunnel
/// to an h2c backend carries HTTP/2 requests ringway never routes, limits
/// or logs.
fn upgrade_protocols(
    cx: &Ctx,
    v: Option<&V>,
    key: &str,
    proxied: bool,
) -> Result<Vec<String>, ConfigError> {
    let Some(v) = v else {
        return Ok(DEFAULT_UPGRADE.iter().map(|p| p.to_string()).collect());
    };
    let toml::Value::Array(items) = v.get_ref() else {
        return Err(cx.at(v, key, type_err("an array of protocol names", v.get_ref())));
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let toml::Value::String(p) = item else {
            return Err(cx.at(v, key, type_err("an array of protocol names", item)));
        };
        let token = |t: &str| !t.is_empty() && t.bytes().all(is_tchar);
        let valid = match p.split_once('/') {
            Some((name, version)) => token(name) && token(version),
            None => token(p),
        };
        if !valid {
            return Err(cx.at(
                v,
                key,
                ErrorKind::Invalid(format!(
                    "`{p}` is not a protocol name (a token, or token/version, as in `Upgrade: websocket`)"
                )),
            ));
        }
        let p = p.to_ascii_lowercase();
        if out.contains(&p) {
            return Err(cx.at(v, key, ErrorKind::Invalid(format!("`{p}` is listed twice"))));
        }
        out.push(p);
    }
    if out.iter().any(|p| p == "h2c" || p.starts_with("h2c/")) {
        cx.warn(
            v,
            key,
            "h2c upgrades are forwarded here: the tunnel carries HTTP/2 requests straight to the \
             backend, past every location, limit and log line of this server"
                .into(),
        );
    }
    if !proxied {
        cx.warn(v, key, "has no effect without proxy_pass".into());
    }
    Ok(out)
}

/// A key set on a location whose action never reads it (a proxy timeout on
/// a `return`, `try_files` beside `proxy_pass`) is a warning: nginx accepts
/// it too, but it is nearly always a key put in the wrong location.
/// (`upgrade` warns on its own.)
fn warn_unused_keys(cx: &Ctx, r: &RawLocation, key: &str, action: &Action) {
    let (what, unused): (&str, Vec<(&str, Option<&V>)>) = match action {
        Action::Proxy(_) => (
            "this location proxies (it serves no files)",
            vec![
                ("index", r.index.as_ref()),
                ("try_files", r.try_files.as_ref()),
            ],
        ),
        Action::Return { .. } | Action::Static(_) => (
            "this location does not proxy (no proxy_pass)",
            vec![
                ("proxy_connect_timeout", r.proxy_connect_timeout.as_ref()),
                ("proxy_read_timeout", r.proxy_read_timeout.as_ref()),
                ("proxy_send_timeout", r.proxy_send_timeout.as_ref()),
                ("proxy_buffering", r.proxy_buffering.as_ref()),
                ("proxy_buffers", r.proxy_buffers.as_ref()),
                ("proxy_ssl_verify", r.proxy_ssl_verify.as_ref()),
                (
                    "proxy_ssl_trusted_certificate",
                    r.proxy_ssl_trusted_certificate.as_ref(),
                ),
                ("proxy_ssl_server_name", r.proxy_ssl_server_name.as_ref()),
                ("proxy_ssl_name", r.proxy_ssl_name.as_ref()),
                (
                    "proxy_set_header",
                    r.proxy_set_header.as_ref().and_then(|m| m.values().next()),
                ),
            ],
        ),
    };
    let static_keys = matches!(action, Action::Return { .. })
        .then(|| {
            [
                ("index", r.index.as_ref()),
                ("try_files", r.try_files.as_ref()),
            ]
        })
        .into_iter()
        .flatten();
    for (name, v) in unused.into_iter().chain(static_keys) {
        if let Some(v) = v {
            let what = match name {
                "index" | "try_files" if matches!(action, Action::Return { .. }) => {
                    "this location answers with return (it serves no files)"
                }
                _ => what,
            };
            cx.warn(
                v,
                &format!("{key}.{name}"),
                format!("has no effect: {what}"),
            );
        }
    }
}

/// RFC 9110 §5.6.2 token characters (the engine's header code uses this
/// one too).
#[inline]
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn proxy_pass(
    cx: &Ctx,
    v: &V,
    key: &str,
    upstreams: &IndexMap<String, Upstream>,
) -> Result<ProxyPass, ConfigError> {
    let text = cx.string(v, key)?;
    let bad = |reason: &str| {
        cx.at(
            v,
            key,
            ErrorKind::BadAddress {
                value: text.clone(),
                reason: reason.to_string(),
            },
        )
    };
    let (rest, tls) = match (text.strip_prefix("http://"), text.strip_prefix("https://")) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => return Err(bad("must start with http:// or https://")),
    };
    let default_port = if tls { 443 } else { 80 };
    // nginx: `http://unix:/path/to.sock:/uri` — the socket path ends at
    // the first `:` after it; `$proxy_host` is "localhost".
    if let Some(after) = rest.strip_prefix("unix:") {
        let (path, uri) = match after.find(':') {
            // `unix:/path:` with nothing after the colon: no URI part.
            Some(i) if i + 1 == after.len() => (&after[..i], None),
            Some(i) => (&after[..i], Some(after[i + 1..].to_string())),
            None => (after, None),
        };
        if uri.as_deref().is_some_and(|u| !u.starts_with('/')) {
            return Err(bad(
                "the URI after a unix socket starts with / (http://unix:/run/app.sock:/uri)",
            ));
        }
        let uri_vars = uri_template(cx, v, key, uri.as_deref())?;
        return Ok(ProxyPass {
            text: text.clone(),
            tls,
            target: ProxyTarget::Address {
                host: "localhost".into(),
                addrs: vec![unix_socket(cx, v, key, path)?],
            },
            uri,
            uri_vars,
        });
    }
    let (authority, uri) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i..].to_string())),
        None => (rest, None),
    };
    if authority.contains('$') {
        return Err(bad(
            "variables in the host are not supported (an upstream group, or a literal address)",
        ));
    }
    let uri_vars = uri_template(cx, v, key, uri.as_deref())?;
    let (host, port) =
        split_host_port(authority).ok_or_else(|| bad("expected http[s]://host[:port][/uri]"))?;
    if let Some((index, _, up)) = upstreams.get_full(host) {
        if port.is_some() {
            return Err(bad("an upstream name takes no port"));
        }
        return Ok(ProxyPass {
            text: text.clone(),
            tls,
            target: ProxyTarget::Upstream {
                name: host.to_string(),
                index,
                hash_key: up.hash_key.clone(),
            },
            uri,
            uri_vars,
        });
    }
    let looks_like_name =
        !host.contains('.') && !host.starts_with('[') && host != "localhost" && port.is_none();
    if looks_like_name {
        return Err(cx.at(
            v,
            key,
            ErrorKind::UndefinedUpstream {
                name: host.to_string(),
            },
        ));
    }
    let port = port.unwrap_or(default_port);
    let addrs = resolve(cx, v, key, &format!("{host}:{port}"), None)?
        .into_iter()
        .map(UpstreamAddr::Inet)
        .collect();
    let proxy_host = if port == default_port {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    Ok(ProxyPass {
        text: text.clone(),
        tls,
        target: ProxyTarget::Address {
            host: proxy_host,
            addrs,
        },
        uri,
        uri_vars,
    })
}

/// A `proxy_pass` URI part with `$variables`, parsed (`None` without).
fn uri_template(
    cx: &Ctx,
    v: &V,
    key: &str,
    uri: Option<&str>,
) -> Result<Option<Template>, ConfigError> {
    match uri {
        Some(u) if u.contains('$') => cx
            .parse_template(u)
            .map(Some)
            .map_err(|name| cx.at(v, key, ErrorKind::UnknownVariable { name })),
        _ => Ok(None),
    }
}

fn check_listen_names(cx: &Ctx, raw: &Raw, servers: &[Server]) -> Result<(), ConfigError> {
    use std::collections::HashMap;
    // An error at `servers.NAME.FIELD`, located at the span `at` picks
    // from the server's table.
    let at_server =
        |s: &Server, field: &str, at: fn(&RawServer) -> Option<std::ops::Range<usize>>, kind| {
            let span = raw.servers.get(&s.name).and_then(|r| at(r.get_ref()));
            cx.err(span, &format!("servers.{}.{field}", k(&s.name)), kind)
        };
    // One listen address speaks TLS or plain HTTP, not both (nginx's
    // `listen ... ssl` is per address too).
    let mut tls_of: HashMap<SocketAddr, &Server> = HashMap::new();
    for s in servers {
        for addr in &s.listen {
            let first = *tls_of.entry(*addr).or_insert(s);
            if first.tls.is_some() != s.tls.is_some() {
                let (with, without) = if s.tls.is_some() {
                    (s, first)
                } else {
                    (first, s)
                };
                return Err(at_server(
                    s,
                    "listen",
                    |r| r.listen.as_ref().map(|v| v.span()),
                    ErrorKind::Invalid(format!(
                        "{addr} mixes TLS (server `{}`) and plain HTTP (server `{}`); give every server on one address a `tls` table, or none",
                        with.name, without.name
                    )),
                ));
            }
        }
    }
    // The protocols, suites and tickets of a TLS address are one rustls
    // configuration: the servers sharing it (but a rejecting default,
    // which completes no handshake) must agree on them.
    let mut tls_first: HashMap<SocketAddr, &Server> = HashMap::new();
    for s in servers {
        let Some(t) = s.tls.as_ref().filter(|t| !t.reject_handshake) else {
            continue;
        };
        for addr in &s.listen {
            let first = *tls_first.entry(*addr).or_insert(s);
            let f = first.tls.as_ref().expect("a TLS server");
            let resumption = |t: &Tls| (t.session_tickets, t.session_timeout, t.session_cache);
            if (f.max_version, &f.ciphers, resumption(f))
                != (t.max_version, &t.ciphers, resumption(t))
            {
                return Err(at_server(
                    s,
                    "tls",
                    |r| r.tls.as_ref().map(|t| t.span()),
                    ErrorKind::Invalid(format!(
                        "{addr} is shared with server `{}`, whose protocols, ciphers or session settings (session_tickets, session_timeout, session_cache) differ: one address has one TLS configuration (give them the same, or another address)",
                        first.name
                    )),
                ));
            }
        }
    }
    let mut seen: HashMap<(SocketAddr, String), &str> = HashMap::new();
    for s in servers {
        let names: Vec<String> = if s.server_names.is_empty() {
            vec!["_".to_string()]
        } else {
            s.server_names
                .iter()
                .map(|n| match n {
                    ServerName::Exact(e) => e.clone(),
                    ServerName::WildcardStart(w) => format!("*{w}"),
                    ServerName::WildcardEnd(w) => format!("{w}*"),
                })
                .collect()
        };
        for addr in &s.listen {
            for n in &names {
                if let Some(other) = seen.insert((*addr, n.clone()), &s.name) {
                    return Err(at_server(
                        s,
                        "server_name",
                        |r| {
                            r.server_name
                                .as_ref()
                                .or(r.listen.as_ref())
                                .map(|v| v.span())
                        },
                        ErrorKind::DuplicateListen {
                            addr: addr.to_string(),
                            name: n.clone(),
                            other: other.to_string(),
                        },
                    ));
                }
            }
        }
    }
    Ok(())
}
