//! The client's real address behind a balancer (nginx's
//! ngx_http_realip_module): from a PROXY protocol header
//! ([`proxy_protocol`]) or from `X-Forwarded-For` / `X-Real-IP` when the
//! peer is a trusted proxy ([`forwarded_addr`]). Pure functions on bytes
//! and addresses; the connection code decides when to call them.

pub mod proxy_protocol;

use std::net::IpAddr;

use ringway_config::Cidr;

/// The client address that `real_ip_header` gives, as nginx computes it
/// (`ngx_http_get_forwarded_addr` / `_internal` in
/// src/http/ngx_http_core_module.c, `ngx_parse_addr_port` and
/// `ngx_cidr_match` in src/core/ngx_inet.c).
///
/// `xff_values` are the values of the header's fields in the order they
/// came; `remote` is the peer's address (after PROXY protocol, if any).
///
/// - `remote` outside `trusted`: `remote`, the header unread.
/// - Otherwise the fields are read as one list, from the rightmost
///   address leftwards. Without `recursive` the rightmost address is the
///   answer (trusted or not). With `recursive`, addresses that are
///   themselves trusted are passed over and the first untrusted one from
///   the right is the answer; when all are trusted, the leftmost one.
/// - An entry that is not an address stops the walk: the answer is the
///   last address read before it (a trusted one), or `remote` when it was
///   the rightmost.
///
/// What exactly is matched, byte for byte:
/// - Entries are separated by any run of spaces and commas (`a, b`,
///   `a,b`, `a b`, `a ,, b` are two entries); trailing ones are skipped.
///   Other whitespace (a tab) is part of an entry and makes it invalid.
///   The first byte of a field is never taken as a separator, so a field
///   that begins with `,` has an invalid leftmost entry (nginx's walk
///   stops at the field's first byte the same way; HTTP parsers already
///   strip leading spaces).
/// - An entry is an IPv4 or IPv6 address, or one with a port:
///   `a.b.c.d:port`, `[v6]:port` (`[a.b.c.d]:port` too), port 1-65535 in
///   decimal — nginx has taken ports here since 1.11.0; the port is
///   dropped. `[v6]` without a port, port 0 and a signed or empty port
///   are invalid, as in nginx.
/// - Several fields: nginx reads them last to first. Without `recursive`
///   it reads only the last field, so a last field with no valid
///   rightmost entry (empty, `,`, junk) gives `remote` even when earlier
///   fields hold addresses; with `recursive` the fields chain exactly as
///   one comma-separated list.
/// - An IPv4-mapped address (`::ffff:a.b.c.d`) is trusted by IPv4 blocks
///   (see [`Cidr::contains`]) and is returned as written.
///
/// Stricter than nginx: addresses are parsed by the standard library, so
/// an IPv4 octet with a leading zero (`010.0.0.1`, decimal 10 to nginx)
/// or an empty octet is invalid.
///
/// For `X-Real-IP` (or any header other than X-Forwarded-For) pass the
/// value of the first such field only, as nginx reads only the first;
/// nginx passes `real_ip_recursive` there too, which makes no difference
/// to a value that holds one address.
pub fn forwarded_addr(
    remote: IpAddr,
    xff_values: &[&[u8]],
    trusted: &[Cidr],
    recursive: bool,
) -> IpAddr {
    let mut addr = remote;
    for value in xff_values.iter().rev() {
        if !walk(&mut addr, value, trusted, recursive) || !recursive {
            break;
        }
    }
    addr
}

fn is_trusted(ip: IpAddr, trusted: &[Cidr]) -> bool {
    trusted.iter().any(|c| c.contains(ip))
}

fn is_separator(b: u8) -> bool {
    b == b' ' || b == b','
}

/// One field, right to left, starting from `addr` (the peer, or the
/// leftmost address of the field after this one). Each step: stop unless
/// `addr` is trusted; take the rightmost entry left; stop if it is not an
/// address, else it becomes `addr`. True when the field was read to its
/// first entry (with `recursive`) or its last entry was taken (without):
/// then an earlier field may go on.
fn walk(addr: &mut IpAddr, field: &[u8], trusted: &[Cidr], recursive: bool) -> bool {
    let mut len = field.len();
    loop {
        if !is_trusted(*addr, trusted) || len == 0 {
            return false;
        }
        // Skip trailing separators (never looking at byte 0), then back
        // up to the entry's first byte.
        let mut p = len - 1;
        while p > 0 && is_separator(field[p]) {
            p -= 1;
        }
        let end = p + 1;
        while p > 0 {
            if is_separator(field[p]) {
                p += 1;
                break;
            }
            p -= 1;
        }
        let start = p;
        match parse_entry(&field[start..end]) {
            Some(ip) => *addr = ip,
            None => return false,
        }
        if !recursive || start == 0 {
            return true;
        }
        len = start - 1;
    }
}

/// `addr`, `a.b.c.d:port` or `[addr]:port` (nginx's
/// `ngx_parse_addr_port`); the port must be 1-65535 and is dropped.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?;
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']')?;
            (host, after.strip_prefix(':')?)
        }
        None => text.split_once(':')?,
    };
    let port_ok = !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && (1..=65535).contains(&port.parse::<u32>().ok()?);
    if !port_ok {
        return None;
    }
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| Cidr::parse(s).unwrap()).collect()
    }

    const PEER: &str = "10.0.0.9";

    /// `forwarded_addr` from the trusted peer 10.0.0.9 with 10.0.0.0/8
    /// trusted.
    fn real(values: &[&str], recursive: bool) -> IpAddr {
        let values: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
        forwarded_addr(ip(PEER), &values, &cidrs(&["10.0.0.0/8"]), recursive)
    }

    #[test]
    fn untrusted_peer_keeps_its_address() {
        let values: &[&[u8]] = &[b"1.1.1.1"];
        let trusted = cidrs(&["192.168.0.0/16"]);
        for recursive in [false, true] {
            assert_eq!(
                forwarded_addr(ip(PEER), values, &trusted, recursive),
                ip(PEER)
            );
            assert_eq!(forwarded_addr(ip(PEER), values, &[], recursive), ip(PEER));
        }
    }

    #[test]
    fn no_header_keeps_the_peer() {
        assert_eq!(real(&[], false), ip(PEER));
        assert_eq!(real(&[], true), ip(PEER));
    }

    #[test]
    fn non_recursive_takes_the_rightmost() {
        assert_eq!(real(&["1.1.1.1"], false), ip("1.1.1.1"));
        assert_eq!(real(&["1.1.1.1, 2.2.2.2"], false), ip("2.2.2.2"));
        // Even when the rightmost is itself trusted.
        assert_eq!(real(&["1.1.1.1, 10.0.0.3"], false), ip("10.0.0.3"));
    }

    #[test]
    fn recursive_skips_trusted_addresses() {
        assert_eq!(real(&["1.1.1.1, 10.0.0.3"], true), ip("1.1.1.1"));
        assert_eq!(
            real(&["1.1.1.1, 2.2.2.2, 10.0.0.3, 10.0.0.4"], true),
            ip("2.2.2.2")
        );
        assert_eq!(real(&["2.2.2.2"], true), ip("2.2.2.2"));
        // All trusted: the leftmost.
        assert_eq!(
            real(&["10.0.0.1, 10.0.0.2, 10.0.0.3"], true),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn several_fields_are_one_list() {
        assert_eq!(real(&["1.1.1.1, 2.2.2.2", "10.0.0.3"], true), ip("2.2.2.2"));
        assert_eq!(
            real(&["1.1.1.1", "10.0.0.2", "10.0.0.3"], true),
            ip("1.1.1.1")
        );
        assert_eq!(
            real(&["10.0.0.1, 10.0.0.2", "10.0.0.3"], true),
            ip("10.0.0.1")
        );
        assert_eq!(real(&["1.1.1.1", "2.2.2.2, 10.0.0.3"], true), ip("2.2.2.2"));
        assert_eq!(
            real(&["1.1.1.1, 2.2.2.2", "10.0.0.3"], false),
            ip("10.0.0.3")
        );
        assert_eq!(real(&["1.1.1.1", "2.2.2.2"], false), ip("2.2.2.2"));
        // An invalid entry in an earlier field stops the walk there.
        assert_eq!(real(&["1.1.1.1, junk", "10.0.0.3"], true), ip("10.0.0.3"));
        assert_eq!(real(&["junk", "10.0.0.2, 10.0.0.3"], true), ip("10.0.0.2"));
        // nginx, non-recursive, reads only the last field.
        assert_eq!(real(&["1.1.1.1", ""], false), ip(PEER));
        assert_eq!(real(&["1.1.1.1", "junk"], false), ip(PEER));
        // Recursive: an empty last field is an invalid entry.
        assert_eq!(real(&["1.1.1.1", ""], true), ip(PEER));
    }

    #[test]
    fn invalid_entry_stops_the_walk() {
        assert_eq!(real(&["junk"], false), ip(PEER));
        assert_eq!(real(&["junk"], true), ip(PEER));
        assert_eq!(real(&["1.1.1.1, junk"], false), ip(PEER));
        assert_eq!(real(&["1.1.1.1, junk"], true), ip(PEER));
        assert_eq!(real(&["1.1.1.1, junk, 10.0.0.3"], true), ip("10.0.0.3"));
        assert_eq!(
            real(&["1.1.1.1, junk, 10.0.0.2, 10.0.0.3"], true),
            ip("10.0.0.2")
        );
        // An untrusted address ends the walk before the junk matters.
        assert_eq!(real(&["junk, 2.2.2.2"], true), ip("2.2.2.2"));
        for junk in [
            "",
            " ",
            ",",
            " , ",
            "unknown",
            "1.1.1",
            "1.1.1.256",
            "010.1.1.1",
            "1..1.1",
        ] {
            assert_eq!(real(&[junk], true), ip(PEER), "{junk:?}");
        }
    }

    #[test]
    fn separators_are_spaces_and_commas() {
        assert_eq!(real(&["1.1.1.1,2.2.2.2"], false), ip("2.2.2.2"));
        assert_eq!(real(&["1.1.1.1 2.2.2.2"], false), ip("2.2.2.2"));
        assert_eq!(real(&["1.1.1.1 ,, 2.2.2.2 , ,"], false), ip("2.2.2.2"));
        assert_eq!(real(&["1.1.1.1 ,, 10.0.0.2 , ,"], true), ip("1.1.1.1"));
        assert_eq!(real(&["   10.0.0.2"], true), ip("10.0.0.2"));
        // A tab is not a separator.
        assert_eq!(real(&["1.1.1.1,\t2.2.2.2"], false), ip(PEER));
        // The field's first byte is never a separator (as nginx).
        assert_eq!(real(&[",1.1.1.1"], false), ip(PEER));
        assert_eq!(real(&[", 1.1.1.1"], false), ip("1.1.1.1"));
        assert_eq!(real(&[", 10.0.0.2"], true), ip("10.0.0.2"));
    }

    #[test]
    fn ports_as_nginx_takes_them() {
        assert_eq!(real(&["1.1.1.1:8080"], false), ip("1.1.1.1"));
        assert_eq!(real(&["1.1.1.1:1"], false), ip("1.1.1.1"));
        assert_eq!(real(&["1.1.1.1:65535"], false), ip("1.1.1.1"));
        assert_eq!(real(&["[2001:db8::1]:443"], false), ip("2001:db8::1"));
        assert_eq!(real(&["[1.1.1.1]:443"], false), ip("1.1.1.1"));
        assert_eq!(real(&["2001:db8::1"], false), ip("2001:db8::1"));
        assert_eq!(real(&["1.1.1.1, 10.0.0.2:80"], true), ip("1.1.1.1"));
        for bad in [
            "1.1.1.1:0",
            "1.1.1.1:65536",
            "1.1.1.1:",
            "1.1.1.1:+80",
            "1.1.1.1:80:80",
            "1.1.1.1:0x50",
            "[2001:db8::1]",
            "[2001:db8::1]:",
            "[2001:db8::1]x:80",
            "[2001:db8::1",
            "[junk]:80",
            ":80",
        ] {
            assert_eq!(real(&[bad], false), ip(PEER), "{bad:?}");
        }
    }

    #[test]
    fn v4_mapped_peer_and_entries() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        let values: &[&[u8]] = &[b"1.1.1.1"];
        assert_eq!(
            forwarded_addr(ip("::ffff:10.0.0.9"), values, &trusted, false),
            ip("1.1.1.1")
        );
        let values: &[&[u8]] = &[b"1.1.1.1, ::ffff:10.0.0.3"];
        assert_eq!(
            forwarded_addr(ip(PEER), values, &trusted, true),
            ip("1.1.1.1")
        );
        assert_eq!(
            forwarded_addr(ip(PEER), values, &trusted, false),
            ip("::ffff:10.0.0.3"),
            "returned as written"
        );
        // An IPv6 block does not trust a mapped peer (nginx).
        let v6 = cidrs(&["::/0"]);
        assert_eq!(
            forwarded_addr(ip("::ffff:10.0.0.9"), values, &v6, false),
            ip("::ffff:10.0.0.9")
        );
    }

    #[test]
    fn x_real_ip() {
        let trusted = cidrs(&["10.0.0.0/8", "2001:db8::/32"]);
        let value: &[&[u8]] = &[b"203.0.113.7"];
        assert_eq!(
            forwarded_addr(ip(PEER), value, &trusted, false),
            ip("203.0.113.7")
        );
        assert_eq!(
            forwarded_addr(ip("2001:db8::5"), value, &trusted, false),
            ip("203.0.113.7")
        );
        assert_eq!(
            forwarded_addr(ip("192.0.2.1"), value, &trusted, false),
            ip("192.0.2.1")
        );
        let value: &[&[u8]] = &[b"2001:db8:1::7"];
        assert_eq!(
            forwarded_addr(ip(PEER), value, &trusted, false),
            ip("2001:db8:1::7")
        );
        let value: &[&[u8]] = &[b"not-an-ip"];
        assert_eq!(forwarded_addr(ip(PEER), value, &trusted, false), ip(PEER));
        let value: &[&[u8]] = &[b"\xff\xfe"];
        assert_eq!(forwarded_addr(ip(PEER), value, &trusted, false), ip(PEER));
    }
}
