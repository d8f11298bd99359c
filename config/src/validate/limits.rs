//! `limit_req_zones` / `limit_conn_zones` and the `limit_req` /
//! `limit_conn` tables of servers and locations (nginx's
//! ngx_http_limit_req_module and ngx_http_limit_conn_module), and the
//! `[runtime]` drain keys.

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
        let (template, size) = zone_common(cx, &key, z)?;
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
        if let Some(rv) = &z.get_ref().rate {
            return Err(cx.at(
                rv,
                &format!("{key}.rate"),
                ErrorKind::Invalid("a limit_conn zone has no rate (it counts connections)".into()),
            ));
        }
        let (key, size) = zone_common(cx, &key, z)?;
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
    z: &toml::Spanned<RawLimitZone>,
) -> Result<(Template, u64), ConfigError> {
    let r = z.get_ref();
    let Some(kv) = &r.key else {
        return Err(cx.err(
            Some(z.span()),
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
    let size = cx.size(r.size.as_ref(), &sk, DEFAULT_LIMIT_ZONE_SIZE)?;
    if let (Some(v), true) = (&r.size, size < MIN_ZONE_SIZE) {
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
    let mut zone = None;
    let (mut burst, mut nodelay, mut delay) = (0u32, false, None);
    for (name, val) in t {
        let sub = format!("{key}.{name}");
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
            _ => {
                return Err(cx.at(
                    v,
                    &sub,
                    ErrorKind::Invalid(format!(
                        "unknown key `{name}` (zone, burst, nodelay, delay)"
                    )),
                ))
            }
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
    let (mut zone, mut max) = (None, None);
    for (name, val) in t {
        let sub = format!("{key}.{name}");
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
            _ => {
                return Err(cx.at(
                    v,
                    &sub,
                    ErrorKind::Invalid(format!("unknown key `{name}` (zone, max)")),
                ))
            }
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
}
