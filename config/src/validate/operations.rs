//! The operations keys: `limit_req_zones` / `limit_conn_zones`, the `limit_req` /
//! `limit_conn` tables of servers and locations (nginx's
//! ngx_http_limit_req_module and ngx_http_limit_conn_module), `[real_ip]`
//! (checked against the PROXY protocol listens) and the `[runtime]` drain
//! keys.

use std::time::Duration;

use crate::defaults::*;
use crate::error::{ConfigError, ErrorKind};
use crate::model::*;
use crate::raw::*;

use super::{k, type_err, Ctx};

/// Zones are at least this large (nginx: 32 KiB, enough for a few hundred
/// keys).
const MIN_ZONE_SIZE: u64 = 32 * 1024;

pub(super) fn req_zones(cx: &Ctx, raw: &Raw) -> Result<Vec<LimitReqZone>, ConfigError> {
    let mut out = Vec::new();
    for (name, z) in &raw.limit_req_zones {
        let key = format!("limit_req_zones.{}", k(name));
        let r = z.get_ref();
        let (template, size) = zone_common(cx, &key, z.span(), r.key.as_ref(), r.size.as_ref())?;
        let Some(rv) = &z.get_ref().rate else {
            return Err(cx.err(
                Some(z.span()),
                &format!("{key}.rate"),
                ErrorKind::Invalid("a limit_req zone needs a rate (\"10r/s\" or \"30r/m\")".into()),
            ));
        };
        let rk = format!("{key}.rate");
        let text = cx.string(rv, &rk)?;
        let rate_milli = parse_rate(&text).ok_or_else(|| {
            cx.at(
                rv,
                &rk,
                ErrorKind::Invalid(format!(
                    "bad rate `{text}` (requests per second or minute: \"10r/s\", \"30r/m\")"
                )),
            )
        })?;
        out.push(LimitReqZone {
            name: name.clone(),
            key: template,
            rate_milli,
            size,
        });
    }
    Ok(out)
}

pub(super) fn conn_zones(cx: &Ctx, raw: &Raw) -> Result<Vec<LimitConnZone>, ConfigError> {
    let mut out = Vec::new();
    for (name, z) in &raw.limit_conn_zones {
        let key = format!("limit_conn_zones.{}", k(name));
        let r = z.get_ref();
        let (key, size) = zone_common(cx, &key, z.span(), r.key.as_ref(), r.size.as_ref())?;
        out.push(LimitConnZone {
            name: name.clone(),
            key,
            size,
        });
    }
    Ok(out)
}

fn zone_common(
    cx: &Ctx,
    key: &str,
    span: std::ops::Range<usize>,
    key_v: Option<&V>,
    size_v: Option<&V>,
) -> Result<(Template, u64), ConfigError> {
    let Some(kv) = key_v else {
        return Err(cx.err(
            Some(span),
            &format!("{key}.key"),
            ErrorKind::Invalid("a zone needs a key (e.g. \"$binary_remote_addr\")".into()),
        ));
    };
    let template = cx.template(kv, &format!("{key}.key"))?;
    if template.parts.is_empty() {
        return Err(cx.at(
            kv,
            &format!("{key}.key"),
            ErrorKind::Invalid("the key is empty".into()),
        ));
    }
    let sk = format!("{key}.size");
    let size = cx.size(size_v, &sk, DEFAULT_LIMIT_ZONE_SIZE)?;
    if let (Some(v), true) = (size_v, size < MIN_ZONE_SIZE) {
        return Err(cx.at(v, &sk, ErrorKind::Invalid("must be at least 32k".into())));
    }
    Ok((template, size))
}

/// "10r/s" → 10,000; "30r/m" → 500 (thousandths of a request per second,
/// as nginx keeps it). None when malformed or zero.
pub fn parse_rate(s: &str) -> Option<u64> {
    let s = s.trim();
    let (n, per) = if let Some(n) = s.strip_suffix("r/s") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix("r/m") {
        (n, 60)
    } else {
        return None;
    };
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = n.parse().ok()?;
    let milli = n.checked_mul(1000)? / per;
    (milli > 0 && n <= 1_000_000).then_some(milli)
}

/// The keys of a `limit_req` table (checked here, not by serde).
pub(crate) const LIMIT_REQ_KEYS: &[&str] = &["zone", "burst", "nodelay", "delay"];
/// The keys of a `limit_conn` table.
pub(crate) const LIMIT_CONN_KEYS: &[&str] = &["zone", "max"];

/// A `limit_req` table of a server or location.
pub(super) fn limit_req(
    cx: &Ctx,
    key: &str,
    v: Option<&V>,
    zones: &[LimitReqZone],
) -> Result<Option<LimitReq>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    let key = format!("{key}.limit_req");
    let t = table(cx, v, &key)?;
    known_keys(cx, v, &key, t, LIMIT_REQ_KEYS)?;
    let mut zone = None;
    let (mut burst, mut nodelay, mut delay) = (0u32, false, None);
    for (name, val) in t {
        let sub = format!("{key}.{}", k(name));
        match (name.as_str(), val) {
            ("zone", toml::Value::String(z)) => {
                zone = Some(zones.iter().position(|x| &x.name == z).ok_or_else(|| {
                    cx.at(
                        v,
                        &sub,
                        ErrorKind::Invalid(format!("no [limit_req_zones.{z}] is defined")),
                    )
                })?)
            }
            ("burst", toml::Value::Integer(n)) if (0..=1_000_000).contains(n) => burst = *n as u32,
            ("nodelay", toml::Value::Boolean(b)) => nodelay = *b,
            ("delay", toml::Value::Integer(n)) if (0..=1_000_000).contains(n) => {
                delay = Some(*n as u32)
            }
            ("zone" | "burst" | "nodelay" | "delay", other) => {
                return Err(cx.at(v, &sub, type_err(expected(name), other)))
            }
            _ => {} // known_keys above
        }
    }
    let zone = zone.ok_or_else(|| {
        cx.at(
            v,
            &format!("{key}.zone"),
            ErrorKind::Invalid("limit_req needs a zone".into()),
        )
    })?;
    let delay = match (nodelay, delay) {
        (true, Some(_)) => {
            return Err(cx.at(
                v,
                &key,
                ErrorKind::Invalid("nodelay and delay cannot both be set".into()),
            ))
        }
        (true, None) => LimitDelay::None,
        (false, Some(n)) => LimitDelay::After(n),
        (false, None) => LimitDelay::All,
    };
    Ok(Some(LimitReq { zone, burst, delay }))
}

/// A `limit_conn` table of a server or location.
pub(super) fn limit_conn(
    cx: &Ctx,
    key: &str,
    v: Option<&V>,
    zones: &[LimitConnZone],
) -> Result<Option<LimitConn>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    let key = format!("{key}.limit_conn");
    let t = table(cx, v, &key)?;
    known_keys(cx, v, &key, t, LIMIT_CONN_KEYS)?;
    let (mut zone, mut max) = (None, None);
    for (name, val) in t {
        let sub = format!("{key}.{}", k(name));
        match (name.as_str(), val) {
            ("zone", toml::Value::String(z)) => {
                zone = Some(zones.iter().position(|x| &x.name == z).ok_or_else(|| {
                    cx.at(
                        v,
                        &sub,
                        ErrorKind::Invalid(format!("no [limit_conn_zones.{z}] is defined")),
                    )
                })?)
            }
            ("max", toml::Value::Integer(n)) if (1..=1_000_000_000).contains(n) => {
                max = Some(*n as u32)
            }
            ("zone" | "max", other) => return Err(cx.at(v, &sub, type_err(expected(name), other))),
            _ => {} // known_keys above
        }
    }
    match (zone, max) {
        (Some(zone), Some(max)) => Ok(Some(LimitConn { zone, max })),
        (None, _) => Err(cx.at(
            v,
            &format!("{key}.zone"),
            ErrorKind::Invalid("limit_conn needs a zone".into()),
        )),
        (_, None) => Err(cx.at(
            v,
            &format!("{key}.max"),
            ErrorKind::Invalid("limit_conn needs max (connections per key)".into()),
        )),
    }
}

fn expected(name: &str) -> &'static str {
    match name {
        "zone" => "a zone name",
        "nodelay" => "true or false",
        "max" => "an integer of at least 1",
        _ => "a non-negative integer",
    }
}

/// A table checked by hand (serde sees a plain value) takes only `keys`:
/// any other is refused before its values are looked at, with the closest
/// of `keys` suggested.
pub(super) fn known_keys(
    cx: &Ctx,
    v: &V,
    key: &str,
    t: &toml::Table,
    keys: &[&str],
) -> Result<(), ConfigError> {
    match t.keys().find(|name| !keys.contains(&name.as_str())) {
        None => Ok(()),
        Some(name) => Err(cx.at(
            v,
            &format!("{key}.{}", k(name)),
            crate::locate::unknown_key(name, keys.to_vec()),
        )),
    }
}

fn table<'v>(cx: &Ctx, v: &'v V, key: &str) -> Result<&'v toml::Table, ConfigError> {
    match v.get_ref() {
        toml::Value::Table(t) => Ok(t),
        other => Err(cx.at(
            v,
            key,
            type_err("a table like { zone = \"name\", ... }", other),
        )),
    }
}

/// `limit_req_status` / `limit_conn_status`: 400..=599 (nginx).
pub(super) fn status(
    cx: &Ctx,
    v: Option<&V>,
    key: &str,
    inherited: u16,
) -> Result<u16, ConfigError> {
    Ok(cx.int(v, key, u64::from(inherited), 400, 599)? as u16)
}

/// `runtime.drain_spread` (capped by the shutdown timeout) and
/// `runtime.drain_old_tunnels_after`.
pub(super) fn drain(
    cx: &Ctx,
    r: &RawRuntime,
    shutdown_timeout: Duration,
) -> Result<(Duration, Option<Duration>), ConfigError> {
    let spread = cx.duration(
        r.drain_spread.as_ref(),
        "runtime.drain_spread",
        DEFAULT_DRAIN_SPREAD.min(shutdown_timeout),
    )?;
    if let (Some(v), true) = (&r.drain_spread, spread > shutdown_timeout) {
        return Err(cx.at(
            v,
            "runtime.drain_spread",
            ErrorKind::Invalid(format!(
                "must not exceed shutdown_timeout ({}s): tunnels still open then are closed at once",
                shutdown_timeout.as_secs_f64()
            )),
        ));
    }
    let old = match &r.drain_old_tunnels_after {
        None => None,
        Some(v) if matches!(v.get_ref(), toml::Value::String(s) if s == "off") => None,
        Some(v) => Some(cx.duration(Some(v), "runtime.drain_old_tunnels_after", Duration::ZERO)?),
    };
    Ok((spread, old))
}

/// `[real_ip]`, checked against the listens: a PROXY protocol listen
/// needs trusted addresses to take headers from.
pub(super) fn real_ip(
    cx: &Ctx,
    raw: &Raw,
    proxy_protocol: &[std::net::SocketAddr],
) -> Result<RealIp, ConfigError> {
    let Some(t) = &raw.real_ip else {
        if let Some(addr) = proxy_protocol.first() {
            return Err(cx.err(
                None,
                "real_ip.set_real_ip_from",
                ErrorKind::Invalid(format!(
                    "listen {addr} has proxy_protocol = true: name the balancers it accepts headers from in [real_ip] set_real_ip_from"
                )),
            ));
        }
        return Ok(RealIp {
            proxy_protocol_timeout: DEFAULT_PROXY_PROTOCOL_TIMEOUT,
            ..RealIp::default()
        });
    };
    let r = t.get_ref();
    let mut from = Vec::new();
    if let Some(v) = &r.set_real_ip_from {
        for c in cx.strings(v, "real_ip.set_real_ip_from")? {
            from.push(crate::Cidr::parse(&c).map_err(|why| {
                cx.at(
                    v,
                    "real_ip.set_real_ip_from",
                    ErrorKind::Invalid(format!("`{c}`: {why}")),
                )
            })?);
        }
    }
    if from.is_empty() {
        return Err(cx.err(
            Some(t.span()),
            "real_ip.set_real_ip_from",
            ErrorKind::Invalid(
                "[real_ip] needs set_real_ip_from (the balancers' addresses or CIDRs)".into(),
            ),
        ));
    }
    let header = match &r.header {
        None => None,
        Some(v) => {
            let h = cx.string(v, "real_ip.header")?;
            if h.eq_ignore_ascii_case("proxy_protocol") {
                Some(RealIpHeader::ProxyProtocol)
            } else if !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                Some(RealIpHeader::Field(h.to_ascii_lowercase()))
            } else {
                return Err(cx.at(
                    v,
                    "real_ip.header",
                    ErrorKind::Invalid(format!(
                        "`{h}`: \"proxy_protocol\" or a header name such as \"X-Forwarded-For\""
                    )),
                ));
            }
        }
    };
    if header == Some(RealIpHeader::ProxyProtocol) && proxy_protocol.is_empty() {
        let v = r.header.as_ref().expect("set");
        return Err(cx.at(
            v,
            "real_ip.header",
            ErrorKind::Invalid(
                "\"proxy_protocol\" needs a listen with proxy_protocol = true".into(),
            ),
        ));
    }
    Ok(RealIp {
        set_real_ip_from: from,
        header,
        recursive: cx.bool(r.recursive.as_ref(), "real_ip.recursive", false)?,
        proxy_protocol_timeout: cx.duration(
            r.proxy_protocol_timeout.as_ref(),
            "real_ip.proxy_protocol_timeout",
            DEFAULT_PROXY_PROTOCOL_TIMEOUT,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_rate;
    use crate::{LimitDelay, RealIpHeader};
    use std::path::Path;

    const SERVER: &str = "[servers.a]\nlisten = \"127.0.0.1:0\"\n";

    fn load(text: &str) -> Result<crate::Config, String> {
        crate::parse_str(text, Path::new("/etc/ringway/ringway.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn limits_are_resolved_and_inherited() {
        let c = load(&format!(
            "[limit_req_zones.r]\nkey = \"$binary_remote_addr\"\nrate = \"30r/m\"\nsize = \"1m\"\n\
             [limit_conn_zones.c]\nkey = \"$http_x_key\"\n\
             {SERVER}limit_req = {{ zone = \"r\", burst = 5, nodelay = true }}\nlimit_req_status = 429\n\
             [servers.a.locations.\"/a/\"]\nreturn = {{ status = 200 }}\n\
             [servers.a.locations.\"/b/\"]\nreturn = {{ status = 200 }}\nlimit_req = {{ zone = \"r\", delay = 2 }}\n\
             limit_conn = {{ zone = \"c\", max = 3 }}\nlimit_conn_status = 503\n"
        ))
        .unwrap();
        assert_eq!(c.limit_req_zones[0].rate_milli, 500);
        assert_eq!(c.limit_req_zones[0].size, 1 << 20);
        let [a, b] = &c.servers[0].locations[..] else {
            panic!()
        };
        let ar = a.limit_req.as_ref().unwrap();
        assert_eq!((ar.zone, ar.burst, ar.delay), (0, 5, LimitDelay::None));
        assert_eq!(a.limit_req_status, 429);
        assert!(a.limit_conn.is_none());
        assert_eq!(b.limit_req.as_ref().unwrap().delay, LimitDelay::After(2));
        assert_eq!(b.limit_req_status, 429, "the server's status is inherited");
        assert_eq!(b.limit_conn.as_ref().unwrap().max, 3);
    }

    #[test]
    fn limit_errors_name_the_line_and_key() {
        let e = load(&format!(
            "{SERVER}[servers.a.locations.\"/\"]\nreturn = {{ status = 200 }}\nlimit_req = {{ zone = \"nope\" }}\n"
        ))
        .unwrap_err();
        assert!(
            e.contains(":5: servers.a.locations.\"/\".limit_req.zone: no [limit_req_zones.nope]"),
            "{e}"
        );
        let e = load(&format!(
            "[limit_req_zones.r]\nkey = \"$remote_addr\"\nrate = \"10r/h\"\n{SERVER}"
        ))
        .unwrap_err();
        assert!(e.contains(":3: limit_req_zones.r.rate: bad rate"), "{e}");
        let e = load(&format!("[limit_conn_zones.c]\nkey = \"$remote_addr\"\n{SERVER}limit_conn = {{ zone = \"c\" }}\n"))
            .unwrap_err();
        assert!(e.contains("limit_conn.max: limit_conn needs max"), "{e}");
        let e = load(&format!(
            "{SERVER}[servers.a.locations.\"/\"]\nreturn = {{ status = 200 }}\n[servers.a.locations.\"/\".proxy_set_header]\nX = \"$binary_remote_addr\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("limit zone keys only"), "{e}");
    }

    #[test]
    fn real_ip_and_proxy_protocol() {
        let ok = load(
            "[real_ip]\nset_real_ip_from = [\"10.0.0.0/8\", \"::1\"]\nheader = \"proxy_protocol\"\n\
             [servers.a]\nlisten = [{ addr = \"127.0.0.1:0\", proxy_protocol = true }, \"127.0.0.2:0\"]\n",
        )
        .unwrap();
        assert_eq!(ok.proxy_protocol, vec!["127.0.0.1:0".parse().unwrap()]);
        assert_eq!(ok.servers[0].listen.len(), 2);
        assert_eq!(ok.real_ip.header, Some(RealIpHeader::ProxyProtocol));
        assert_eq!(ok.real_ip.set_real_ip_from.len(), 2);

        let xff = load(&format!(
            "[real_ip]\nset_real_ip_from = \"127.0.0.1\"\nheader = \"X-Forwarded-For\"\nrecursive = true\n{SERVER}"
        ))
        .unwrap();
        assert_eq!(
            xff.real_ip.header,
            Some(RealIpHeader::Field("x-forwarded-for".into()))
        );
        assert!(xff.real_ip.recursive);

        let e = load("[servers.a]\nlisten = [{ addr = \"127.0.0.1:0\", proxy_protocol = true }]\n")
            .unwrap_err();
        assert!(
            e.contains("real_ip.set_real_ip_from: listen 127.0.0.1:0 has proxy_protocol"),
            "{e}"
        );
        let e = load(&format!(
            "[real_ip]\nset_real_ip_from = [\"10.0.0.0/33\"]\n{SERVER}"
        ))
        .unwrap_err();
        assert!(
            e.contains(":2: real_ip.set_real_ip_from: `10.0.0.0/33`"),
            "{e}"
        );
        let e = load(&format!(
            "[real_ip]\nset_real_ip_from = [\"10.0.0.0/8\"]\nheader = \"proxy_protocol\"\n{SERVER}"
        ))
        .unwrap_err();
        assert!(
            e.contains("needs a listen with proxy_protocol = true"),
            "{e}"
        );
        let e =
            load("[servers.a]\nlisten = [{ addr = \"127.0.0.1:0\", tls = true }]\n").unwrap_err();
        assert!(
            e.contains(
                ":2: servers.a.listen[0].tls: unknown key here (it belongs in servers.NAME)"
            ),
            "{e}"
        );
    }

    #[test]
    fn drain_and_log_format() {
        let c = load(&format!(
            "[runtime]\nshutdown_timeout = \"20s\"\ndrain_spread = \"5s\"\ndrain_old_tunnels_after = \"1h\"\n\
             [log]\nlog_format = \"$remote_addr $status\"\n{SERVER}"
        ))
        .unwrap();
        assert_eq!(c.runtime.drain_spread, std::time::Duration::from_secs(5));
        assert_eq!(
            c.runtime.drain_old_tunnels_after,
            Some(std::time::Duration::from_secs(3600))
        );
        assert!(matches!(c.log.format, crate::LogFormat::Custom(_)));
        let d = load(&format!("[runtime]\nshutdown_timeout = \"3s\"\n{SERVER}")).unwrap();
        assert_eq!(
            d.runtime.drain_spread,
            std::time::Duration::from_secs(3),
            "capped"
        );
        let e = load(&format!(
            "[runtime]\nshutdown_timeout = \"3s\"\ndrain_spread = \"5s\"\n{SERVER}"
        ))
        .unwrap_err();
        assert!(
            e.contains(":3: runtime.drain_spread: must not exceed shutdown_timeout"),
            "{e}"
        );
        let e = load(&format!("[log]\nlog_format = \"$nope\"\n{SERVER}")).unwrap_err();
        assert!(
            e.contains(":2: log.log_format: unknown variable `$nope`"),
            "{e}"
        );
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10r/s"), Some(10_000));
        assert_eq!(parse_rate("1r/s"), Some(1000));
        assert_eq!(parse_rate("30r/m"), Some(500));
        assert_eq!(parse_rate("1r/m"), Some(16));
        for bad in ["", "r/s", "10", "10r/h", "-1r/s", "0r/s", "1.5r/s", " r/m"] {
            assert_eq!(parse_rate(bad), None, "{bad}");
        }
    }

    #[test]
    fn access_rules_are_ordered_and_a_level_with_any_replaces_the_servers() {
        let c = load(&format!(
            "{SERVER}access = [\"allow 10.0.0.0/8\", \"deny all\"]\n\
             [servers.a.locations.\"/a/\"]\nreturn = {{ status = 200 }}\n\
             [servers.a.locations.\"/b/\"]\nreturn = {{ status = 200 }}\naccess = [\"deny 10.1.2.3\", \"allow ::1\"]\n\
             [servers.a.locations.\"/c/\"]\nreturn = {{ status = 200 }}\naccess = []\n"
        ))
        .unwrap();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let [a, b, cc] = &c.servers[0].locations[..] else {
            panic!()
        };
        let allows = |l: &crate::Location, s: &str| crate::AccessRule::allows(&l.access, ip(s));
        // Inherited: the server's two rules, first match wins.
        assert!(allows(a, "10.9.9.9"));
        assert!(
            allows(a, "::ffff:10.9.9.9"),
            "an IPv4-mapped client is its IPv4 address"
        );
        assert!(!allows(a, "192.168.1.1"));
        assert!(!allows(a, "::1"));
        // Its own: the server's `deny all` is gone, and no match passes.
        assert!(!allows(b, "10.1.2.3"));
        assert!(allows(b, "10.1.2.4"));
        assert!(allows(b, "192.168.1.1"));
        // `[]`: its own empty list, everyone passes.
        assert!(allows(cc, "192.168.1.1"));
        for (bad, says) in [
            (
                "\"permit all\"",
                "`permit`: a rule starts with `allow` or `deny`",
            ),
            ("\"allow\"", "write `allow WHO`"),
            ("\"deny 10.0.0.0/33\"", "servers.a.access"),
            ("\"allow all now\"", "write `allow WHO`"),
            ("\"allow example.com\"", "`allow example.com`"),
        ] {
            let e = load(&format!("{SERVER}access = [{bad}]\n")).unwrap_err();
            assert!(
                e.contains(says) && e.contains("ringway.toml:3: servers.a.access"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn expires_takes_nginx_times() {
        use crate::Expires;
        for (text, want) in [
            ("off", None),
            ("epoch", Some(Expires::Epoch)),
            ("max", Some(Expires::Max)),
            ("0", Some(Expires::In(0))),
            ("30d", Some(Expires::In(30 * 86_400))),
            ("1M", Some(Expires::In(30 * 86_400))),
            ("1y", Some(Expires::In(365 * 86_400))),
            ("2w", Some(Expires::In(14 * 86_400))),
            ("-1", Some(Expires::In(-1))),
            ("+90m", Some(Expires::In(5_400))),
        ] {
            assert_eq!(Expires::parse(text), Ok(want), "{text}");
        }
        for bad in ["", "1h 30m", "@15h30m", "modified +1h", "10x", "-", "101y"] {
            assert!(Expires::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Expires::In(3_600).fields(1_000),
            (4_600, "max-age=3600".into())
        );
        assert_eq!(Expires::In(-1).fields(1_000), (999, "no-cache".into()));
        assert_eq!(Expires::Epoch.fields(1_000), (1, "no-cache".into()));
        assert_eq!(Expires::Max.fields(1_000).1, "max-age=315360000");
        let c = load(&format!(
            "{SERVER}[servers.a.locations.\"/\"]\nreturn = {{ status = 200 }}\nexpires = 60\n"
        ))
        .unwrap();
        assert_eq!(c.servers[0].locations[0].expires, Some(Expires::In(60)));
        let e = load(&format!(
            "{SERVER}[servers.a.locations.\"/\"]\nreturn = {{ status = 200 }}\nexpires = \"1 h\"\n"
        ))
        .unwrap_err();
        assert!(e.contains(":5: servers.a.locations.\"/\".expires"), "{e}");
    }
}
