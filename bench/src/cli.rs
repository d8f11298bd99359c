//! Flag values the bench binaries share (lexopt reads the flags):
//! durations ("500ms", "10s", "5m", "1h", a bare number is seconds, as in
//! ringway.toml) and source-address lists ("127.0.0.2-127.0.0.40,10.0.0.1").

use std::net::Ipv4Addr;
use std::time::Duration;

/// "500ms", "10s", "1.5s", "5m", "1h"; a bare number means seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| "expected a number".to_string())?;
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("unknown unit {unit:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(n * scale).map_err(|e| e.to_string())
}

/// A comma-separated list of IPv4 addresses and inclusive ranges `A-B`.
pub fn parse_sources(s: &str) -> Result<Vec<Ipv4Addr>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let ip = |x: &str| {
            x.trim()
                .parse::<Ipv4Addr>()
                .map_err(|e| format!("{x}: {e}"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (u32::from(ip(a)?), u32::from(ip(b)?));
                if b < a || b - a >= 1 << 16 {
                    return Err(format!("bad range {part}"));
                }
                out.extend((a..=b).map(Ipv4Addr::from));
            }
            None => out.push(ip(part)?),
        }
    }
    if out.is_empty() {
        return Err("no addresses".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn sources() {
        let v = parse_sources("127.0.0.2-127.0.0.4,10.0.0.1").unwrap();
        assert_eq!(
            v,
            ["127.0.0.2", "127.0.0.3", "127.0.0.4", "10.0.0.1"]
                .map(|s| s.parse::<Ipv4Addr>().unwrap())
        );
        assert!(parse_sources("127.0.0.4-127.0.0.2").is_err());
        assert!(parse_sources("").is_err());
        assert!(parse_sources("localhost").is_err());
    }
}
