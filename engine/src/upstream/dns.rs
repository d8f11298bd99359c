//! DNS messages for `resolve = true` upstream names, the pure part
//! (RFC 1035 §4): the A or AAAA query a resolver thread sends over UDP,
//! and what the answer says — the addresses, their smallest TTL, or why
//! there is no usable answer. The resolver thread (`upstream::resolver`)
//! does the I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Record types asked for.
pub const A: u16 = 1;
pub const AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// The most a UDP answer may hold without EDNS (RFC 1035 §2.3.4).
pub const MAX_UDP: usize = 512;

/// The UDP answer size a query offers with EDNS(0) (RFC 6891 §6.2.5):
/// room for a name's many addresses (a headless service with dozens of
/// pods) without falling back to TCP.
pub const EDNS_UDP: u16 = 4096;

/// Record type OPT (RFC 6891 §6.1.1).
const OPT: u16 = 41;
/// The bytes of the OPT record ending a query.
const OPT_LEN: usize = 11;

/// A query for `name`'s records of type `qtype`, recursion desired, with
/// an EDNS(0) OPT record offering [`EDNS_UDP`]-byte answers.
/// `None` when `name` is not a valid domain name (a label over 63 bytes,
/// an empty label, over 253 bytes in all).
pub fn query(id: u16, name: &str, qtype: u16) -> Option<Vec<u8>> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    let mut out = Vec::with_capacity(18 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]); // 1 question, 1 additional (OPT)
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    // OPT: root name, type, the UDP size as class, TTL 0 (extended
    // RCODE, version 0, no flags), no options.
    out.push(0);
    out.extend_from_slice(&OPT.to_be_bytes());
    out.extend_from_slice(&EDNS_UDP.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    Some(out)
}

/// What an answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The name's addresses of the asked type (maybe none: NODATA), and
    /// the smallest TTL among them (none without records).
    Found {
        addrs: Vec<IpAddr>,
        ttl: Option<u32>,
    },
    /// NXDOMAIN: the name does not exist.
    NoSuchName,
}

/// Why an answer is not used (the last good addresses are kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// Not the answer to our query (another id, not a response): ignored.
    NotOurs,
    /// SERVFAIL, REFUSED and the like.
    Failed(u8),
    /// Truncated (TC): the records that fit may not be all of them.
    Truncated,
    Malformed(&'static str),
}

/// Read the answer `msg` to `query` (as [`query`] made it): one with
/// another id, or that does not repeat the question, is not ours
/// (RFC 5452 §9.1: the name compared without regard to case).
pub fn parse(msg: &[u8], query: &[u8]) -> Result<Answer, Unusable> {
    if msg.len() < 12 {
        return Err(Unusable::Malformed("shorter than a header"));
    }
    let be = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
    let flags = be(2);
    if msg[..2] != query[..2] || flags & 0x8000 == 0 {
        return Err(Unusable::NotOurs);
    }
    // The question: our name, type and class, right after the header.
    let question = &query[12..query.len() - OPT_LEN];
    let echoed = be(4) == 1
        && msg
            .get(12..12 + question.len())
            .is_some_and(|q| q.eq_ignore_ascii_case(question));
    if !echoed {
        return Err(Unusable::NotOurs);
    }
    if flags & 0x0200 != 0 {
        return Err(Unusable::Truncated);
    }
    match (flags & 0x000f) as u8 {
        0 => {}
        3 => return Ok(Answer::NoSuchName),
        code => return Err(Unusable::Failed(code)),
    }
    let (questions, answers) = (be(4), be(6));
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(msg, at)? + 4;
    }
    let mut addrs = Vec::new();
    let mut ttl: Option<u32> = None;
    for _ in 0..answers {
        at = skip_name(msg, at)?;
        let fixed = msg
            .get(at..at + 10)
            .ok_or(Unusable::Malformed("record cut short"))?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let rttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        at += 10;
        let data = msg
            .get(at..at + len)
            .ok_or(Unusable::Malformed("record data cut short"))?;
        at += len;
        let addr = match (rtype, class, len) {
            (A, CLASS_IN, 4) => IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
            (AAAA, CLASS_IN, 16) => {
                let mut o = [0u8; 16];
                o.copy_from_slice(data);
                IpAddr::V6(Ipv6Addr::from(o))
            }
            // CNAMEs on the way, and anything else: their targets'
            // records follow in the same section.
            _ => continue,
        };
        // RFC 2181 §8: a TTL with the top bit set counts as zero.
        let rttl = if rttl > i32::MAX as u32 { 0 } else { rttl };
        ttl = Some(ttl.map_or(rttl, |t| t.min(rttl)));
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    Ok(Answer::Found { addrs, ttl })
}

/// The offset after the name at `at` (labels, or a compression pointer,
/// RFC 1035 §4.1.4); never follows pointers (only their length counts).
fn skip_name(msg: &[u8], mut at: usize) -> Result<usize, Unusable> {
    for _ in 0..128 {
        let len = *msg.get(at).ok_or(Unusable::Malformed("name cut short"))?;
        match len {
            0 => return Ok(at + 1),
            l if l & 0xc0 == 0xc0 => {
                if at + 2 > msg.len() {
                    return Err(Unusable::Malformed("pointer cut short"));
                }
                return Ok(at + 2);
            }
            l if l & 0xc0 != 0 => return Err(Unusable::Malformed("bad label type")),
            l => at += 1 + usize::from(l),
        }
    }
    Err(Unusable::Malformed("name too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `q` with `records` (type, ttl, data), each owned by
    /// a pointer to the question's name.
    fn response(q: &[u8], rcode: u16, tc: bool, records: &[(u16, u32, Vec<u8>)]) -> Vec<u8> {
        // The question only (no OPT: the answers come right after it).
        let mut m = q[..q.len() - 11].to_vec();
        m[10..12].copy_from_slice(&[0, 0]);
        let flags = 0x8180 | rcode | if tc { 0x0200 } else { 0 };
        m[2..4].copy_from_slice(&flags.to_be_bytes());
        m[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
        for (t, ttl, data) in records {
            m.extend_from_slice(&[0xc0, 12]);
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&CLASS_IN.to_be_bytes());
            m.extend_from_slice(&ttl.to_be_bytes());
            m.extend_from_slice(&(data.len() as u16).to_be_bytes());
            m.extend_from_slice(data);
        }
        m
    }

    #[test]
    fn query_is_rfc_1035_wire_format() {
        let q = query(0xbeef, "chat.test.", A).unwrap();
        assert_eq!(
            q,
            [
                0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1, 4, b'c', b'h', b'a', b't', 4, b't',
                b'e', b's', b't', 0, 0, 1, 0, 1, 0, 0, 41, 0x10, 0x00, 0, 0, 0, 0, 0, 0
            ]
        );
        let six = query(0xbeef, "chat.test", AAAA).unwrap();
        // The question ends 11 bytes (the OPT record) before the end.
        let qend = q.len() - 11;
        assert_eq!(
            six[..qend - 4],
            q[..qend - 4],
            "no trailing dot is the same name"
        );
        assert_eq!(six[qend - 4..qend], [0, 28, 0, 1]);
        assert_eq!(six[qend..], q[qend..], "the same OPT record");
        assert!(query(1, "a..b", A).is_none());
        assert!(query(1, &"x".repeat(64), A).is_none());
        assert!(query(1, "", A).is_none());
    }

    #[test]
    fn answers_give_addresses_and_the_smallest_ttl() {
        let q = query(7, "chat.test", A).unwrap();
        let cname = (5u16, 300u32, vec![3, b'a', b'b', b'c', 0xc0, 12]);
        let r = response(
            &q,
            0,
            false,
            &[
                cname,
                (A, 30, vec![127, 0, 0, 2]),
                (A, 10, vec![127, 0, 0, 3]),
                (A, 10, vec![127, 0, 0, 2]),
            ],
        );
        assert_eq!(
            parse(&r, &q),
            Ok(Answer::Found {
                addrs: vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()],
                ttl: Some(10)
            })
        );
        let q6 = query(8, "chat.test", AAAA).unwrap();
        let mut six = vec![0u8; 16];
        six[15] = 1;
        let r6 = response(&q6, 0, false, &[(AAAA, 0x8000_0000, six)]);
        assert_eq!(
            parse(&r6, &q6),
            Ok(Answer::Found {
                addrs: vec!["::1".parse().unwrap()],
                ttl: Some(0)
            })
        );
        let nodata = response(&q, 0, false, &[]);
        assert_eq!(
            parse(&nodata, &q),
            Ok(Answer::Found {
                addrs: vec![],
                ttl: None
            })
        );
    }

    #[test]
    fn failures_are_told_apart() {
        let q = query(9, "chat.test", A).unwrap();
        assert_eq!(
            parse(&response(&q, 3, false, &[]), &q),
            Ok(Answer::NoSuchName)
        );
        assert_eq!(
            parse(&response(&q, 2, false, &[]), &q),
            Err(Unusable::Failed(2))
        );
        assert_eq!(
            parse(&response(&q, 5, false, &[]), &q),
            Err(Unusable::Failed(5))
        );
        assert_eq!(
            parse(&response(&q, 0, true, &[]), &q),
            Err(Unusable::Truncated)
        );
        assert_eq!(
            parse(
                &response(&q, 0, false, &[]),
                &query(10, "chat.test", A).unwrap()
            ),
            Err(Unusable::NotOurs)
        );
        assert_eq!(
            parse(&q, &q),
            Err(Unusable::NotOurs),
            "a query is not an answer"
        );
        let good = response(&q, 0, false, &[(A, 5, vec![10, 0, 0, 1])]);
        for cut in 0..good.len() - 1 {
            assert!(parse(&good[..cut], &q).is_err(), "cut at {cut}");
        }
        let mut bad_len = good.clone();
        let n = bad_len.len();
        bad_len[n - 5] = 9; // rdlength 4 → 9
        assert!(matches!(parse(&bad_len, &q), Err(Unusable::Malformed(_))));
    }
}
