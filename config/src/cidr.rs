//! An address block — `10.0.0.0/8`, `192.168.1.7` (a /32), `::1`,
//! `2001:db8::/32` — as `set_real_ip_from` takes it, and whether an
//! address falls inside one. Pure: parsing and matching only.
//!
//! Matched with nginx (`ngx_ptocidr`, `ngx_cidr_match` in
//! src/core/ngx_inet.c):
//! - host bits set below the prefix (`10.1.2.3/8`) are masked off, not an
//!   error (nginx warns "low address bits are meaningless" and does the
//!   same);
//! - an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack `[::]`
//!   listener reports for an IPv4 client) is matched as the IPv4 address
//!   against IPv4 blocks, and so never matches an IPv6 block (not even
//!   `::/0`); a plain IPv4 address never matches an IPv6 block either.
//!
//! Stricter than nginx: an IPv4 octet with a leading zero (`010.0.0.1`,
//! which nginx reads as decimal 10) is refused as ambiguous, and so is a
//! prefix with a sign or spaces. Host names (nginx resolves them at
//! start) are not accepted.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 or IPv6 address block; the address has no bits set below the
/// prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `a.b.c.d/n` (n ≤ 32), `a.b.c.d` (/32), `v6/n` (n ≤ 128), `v6`
    /// (/128). Host bits below the prefix are masked off. The error says
    /// what is wrong with `s`.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?;
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix_text {
            None => max,
            Some(p) => {
                // Digits only ("+8", " 8", "" are refused); at most three
                // of them, so the number cannot overflow.
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("{s:?}: the prefix length {p:?} is not a number"));
                }
                let n: u8 = p.parse().map_err(|_| format!("{s:?}: bad prefix"))?;
                if n > max {
                    return Err(format!(
                        "{s:?}: the prefix length {n} is longer than {max} bits"
                    ));
                }
                n
            }
        };
        Ok(Cidr {
            network: mask(addr, prefix),
            prefix,
        })
    }

    /// The block's first address (host bits zero).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length in bits (32 or 128 for a single address).
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside the block. An IPv4-mapped IPv6 address is
    /// taken as its IPv4 address (as nginx does), so it matches IPv4
    /// blocks and no IPv6 block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix) == self.network
            }
            _ => false,
        }
    }
}

/// `addr` with every bit below `prefix` cleared.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & m))
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & m))
        }
    }
}

impl fmt::Display for Cidr {
    /// Always with the prefix: `10.0.0.0/8`, `192.168.1.7/32`, `::1/128`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        Cidr::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidr(s: &str) -> Cidr {
        Cidr::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_blocks_and_single_addresses() {
        let c = cidr("10.0.0.0/8");
        assert_eq!((c.network(), c.prefix_len()), (ip("10.0.0.0"), 8));
        let c = cidr("192.168.1.7");
        assert_eq!((c.network(), c.prefix_len()), (ip("192.168.1.7"), 32));
        let c = cidr("::1");
        assert_eq!((c.network(), c.prefix_len()), (ip("::1"), 128));
        let c = cidr("2001:db8::/32");
        assert_eq!((c.network(), c.prefix_len()), (ip("2001:db8::"), 32));
        assert_eq!(cidr("0.0.0.0/0").prefix_len(), 0);
        assert_eq!(cidr("::/0").prefix_len(), 0);
        assert_eq!(cidr("1.2.3.4/32").prefix_len(), 32);
        assert_eq!(cidr("::/128").prefix_len(), 128);
        assert_eq!(
            cidr("10.0.0.0/08").prefix_len(),
            8,
            "leading zero in the prefix, as ngx_atoi"
        );
        assert_eq!("10.0.0.0/8".parse::<Cidr>(), Ok(cidr("10.0.0.0/8")));
    }

    #[test]
    fn host_bits_are_masked_not_refused() {
        assert_eq!(cidr("10.1.2.3/8"), cidr("10.0.0.0/8"));
        assert_eq!(cidr("192.168.1.255/25").network(), ip("192.168.1.128"));
        assert_eq!(cidr("255.255.255.255/0").network(), ip("0.0.0.0"));
        assert_eq!(cidr("2001:db8:ffff::1/32"), cidr("2001:db8::/32"));
        assert_eq!(cidr("2001:db8::ff/121").network(), ip("2001:db8::80"));
        assert_eq!(cidr("ffff::/0").network(), ip("::"));
    }

    #[test]
    fn refuses_bad_text() {
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/255",
            "10.0.0.0/1000",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "10.0.0.0 /8",
            " 10.0.0.0/8",
            "10.0.0.0/8/8",
            "10.0.0/8",
            "10.0.0.256",
            "010.0.0.1",
            "10.0.0.0.0",
            "::/129",
            "2001:db8::/x",
            "[::1]",
            "[::1]/128",
            "fe80::1%eth0",
            "localhost",
            "10.0.0.1:80",
            "all",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn contains_v4() {
        let c = cidr("10.0.0.0/8");
        assert!(c.contains(ip("10.0.0.0")));
        assert!(c.contains(ip("10.255.255.255")));
        assert!(!c.contains(ip("11.0.0.0")));
        assert!(!c.contains(ip("9.255.255.255")));
        let one = cidr("192.168.1.7");
        assert!(one.contains(ip("192.168.1.7")));
        assert!(!one.contains(ip("192.168.1.8")));
        let all = cidr("0.0.0.0/0");
        assert!(all.contains(ip("1.2.3.4")));
        assert!(all.contains(ip("255.255.255.255")));
        assert!(
            !all.contains(ip("::1")),
            "a v4 block never holds a v6 address"
        );
    }

    #[test]
    fn contains_v6() {
        let c = cidr("2001:db8::/32");
        assert!(c.contains(ip("2001:db8::1")));
        assert!(c.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(!c.contains(ip("2001:db9::")));
        assert!(cidr("::1").contains(ip("::1")));
        assert!(!cidr("::1").contains(ip("::2")));
        assert!(cidr("::/0").contains(ip("fe80::1")));
        assert!(
            !cidr("::/0").contains(ip("1.2.3.4")),
            "a v6 block never holds a v4 address"
        );
    }

    #[test]
    fn v4_mapped_matches_v4_blocks_only() {
        let mapped = ip("::ffff:10.1.2.3");
        assert!(cidr("10.0.0.0/8").contains(mapped));
        assert!(cidr("10.1.2.3").contains(mapped));
        assert!(cidr("0.0.0.0/0").contains(mapped));
        assert!(!cidr("11.0.0.0/8").contains(mapped));
        // nginx switches the family to AF_INET before matching: v6 blocks,
        // even ::/0 and ::ffff:0:0/96, do not hold a mapped address.
        assert!(!cidr("::/0").contains(mapped));
        assert!(!cidr("::ffff:0:0/96").contains(mapped));
        // A v4-compatible (deprecated ::a.b.c.d) address is plain IPv6.
        assert!(!cidr("10.0.0.0/8").contains(ip("::10.1.2.3")));
    }

    #[test]
    fn display_always_has_the_prefix() {
        assert_eq!(cidr("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("192.168.1.7").to_string(), "192.168.1.7/32");
        assert_eq!(cidr("::1").to_string(), "::1/128");
        assert_eq!(cidr("2001:db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        for s in ["10.0.0.0/8", "2001:db8::/32", "::/0", "1.2.3.4/32"] {
            assert_eq!(cidr(&cidr(s).to_string()), cidr(s), "round trip {s}");
        }
    }
}
