//! The handoff socket's messages ([`Message`]) and the tunnel record
//! ([`TunnelRecord`]) as bytes: a pure codec, no I/O. One message is one
//! SOCK_SEQPACKET packet; its descriptors travel beside it (`sys::fdpass`).
//!
//! Format (everything the decoder reads is bounded by the input it holds,
//! and nothing is allocated from a length the input cannot back):
//!
//! - a message is one type byte ([`Message::Hello`] 1, `Listeners` 2,
//!   `Ready` 3, `Refuse` 4, `Tunnels` 5, `Done` 6), then its fields, and
//!   nothing after them;
//! - integers are little-endian, fixed width; `bool` is one byte, 0 or 1;
//! - strings and byte strings: a u32 length, then the bytes (strings are
//!   UTF-8; a path is its `OsStr` bytes);
//! - `Option`: one byte 0 (None) or 1 (Some), then the value;
//! - `Vec`: a u32 count, then the items; arrays (`bytes`, `carry`): their
//!   items, no count;
//! - `SocketAddr`: a family byte 4 (ip 4 bytes, port u16) or 6 (ip 16
//!   bytes, port u16, flowinfo u32, scope id u32); `IpAddr` the same
//!   without the port and the v6 extras;
//! - enums ([`ListenerItem`], [`KeyRecord`]): a tag byte, then the fields;
//! - `Tunnels`: the record version u16 first, checked against
//!   [`RECORD_VERSION`] before any record is read, then `Vec<TunnelRecord>`.
//!
//! A record's fields go in the order [`TunnelRecord`] declares them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use super::{KeyRecord, ListenerItem, LogRecord, Message, TunnelRecord, RECORD_VERSION};

/// Why bytes are not a [`Message`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input ends inside a fixed-width field (or is empty).
    #[error("handoff message truncated")]
    Truncated,
    /// The first byte names no message.
    #[error("unknown handoff message type {0}")]
    UnknownType(u8),
    /// A tag, `bool` or `Option` byte, or an address family, out of range.
    #[error("bad {what} byte {byte} in handoff message")]
    BadTag { what: &'static str, byte: u8 },
    /// A string is not UTF-8.
    #[error("handoff message string is not UTF-8")]
    BadUtf8,
    /// A length or count larger than the rest of the input can hold (a
    /// truncated or corrupt message).
    #[error("handoff message length {len} exceeds the {left} bytes left")]
    TooLong { len: u64, left: usize },
    /// `Tunnels` records of a version this build does not read.
    #[error("unsupported tunnel record version {0} (this build reads {RECORD_VERSION})")]
    UnsupportedVersion(u16),
    /// Bytes after the end of the message.
    #[error("{0} trailing bytes after the handoff message")]
    Trailing(usize),
}

const HELLO: u8 = 1;
const LISTENERS: u8 = 2;
const READY: u8 = 3;
const REFUSE: u8 = 4;
const TUNNELS: u8 = 5;
const DONE: u8 = 6;
const REARM: u8 = 7;
const ADOPTED: u8 = 8;

const LISTENER_TCP: u8 = 1;
const LISTENER_UNIX: u8 = 2;
const LISTENER_METRICS: u8 = 3;

const KEY_IP: u8 = 1;
const KEY_RING: u8 = 2;

/// The bytes of a `Tunnels` message before its first record: type,
/// version, count.
pub const TUNNELS_HEADER_LEN: usize = 1 + 2 + 4;

/// The largest encoded `Option<SocketAddr>`: the option byte, family, a
/// v6 address, port, flowinfo, scope id.
const MAX_OPT_ADDR: usize = 1 + 1 + 16 + 2 + 4 + 4;

/// `msg` as bytes.
///
/// # Panics
///
/// If a string or list holds more than `u32::MAX` bytes or items (nothing
/// in a handoff comes near: a message is one packet).
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64));
    match msg {
        Message::Hello { pid, versions } => {
            w.u8(HELLO);
            w.u32(*pid);
            w.u16(versions.0);
            w.u16(versions.1);
        }
        Message::Listeners { items, last } => {
            w.u8(LISTENERS);
            w.len(items.len());
            for item in items {
                w.listener(item);
            }
            w.bool(*last);
        }
        Message::Ready => w.u8(READY),
        Message::Rearm => w.u8(REARM),
        Message::Adopted { count } => {
            w.u8(ADOPTED);
            w.u64(*count);
        }
        Message::Refuse { why } => {
            w.u8(REFUSE);
            w.bytes(why.as_bytes());
        }
        Message::Tunnels { version, records } => {
            let size = records.iter().map(encoded_len_hint).sum::<usize>();
            w.0.reserve(TUNNELS_HEADER_LEN + size);
            w.u8(TUNNELS);
            w.u16(*version);
            w.len(records.len());
            for r in records {
                w.record(r);
            }
        }
        Message::Done { handed } => {
            w.u8(DONE);
            w.u64(*handed);
        }
    }
    w.0
}

/// The message `bytes` hold, all of them.
pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
    let mut r = Reader(bytes);
    let msg = match r.u8()? {
        HELLO => Message::Hello {
            pid: r.u32()?,
            versions: (r.u16()?, r.u16()?),
        },
        LISTENERS => {
            // The shortest item: a tag and an empty path.
            let n = r.count(1 + 4)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(r.listener()?);
            }
            Message::Listeners {
                items,
                last: r.bool()?,
            }
        }
        READY => Message::Ready,
        REARM => Message::Rearm,
        ADOPTED => Message::Adopted { count: r.u64()? },
        REFUSE => Message::Refuse { why: r.string()? },
        TUNNELS => {
            let version = r.u16()?;
            if version != RECORD_VERSION {
                return Err(WireError::UnsupportedVersion(version));
            }
            let n = r.count(MIN_RECORD)?;
            let mut records = Vec::with_capacity(n);
            for _ in 0..n {
                records.push(r.record()?);
            }
            Message::Tunnels { version, records }
        }
        DONE => Message::Done { handed: r.u64()? },
        t => return Err(WireError::UnknownType(t)),
    };
    if !r.0.is_empty() {
        return Err(WireError::Trailing(r.0.len()));
    }
    Ok(msg)
}

/// The most bytes `r` takes in a `Tunnels` message (exact but for
/// addresses, counted at their v6 size), to batch records into messages
/// of a bounded size: a message of records is at most
/// [`TUNNELS_HEADER_LEN`] plus the sum of their hints.
pub fn encoded_len_hint(r: &TunnelRecord) -> usize {
    let s = |n: usize| 4 + n;
    let opt_s = |o: Option<usize>| 1 + o.map_or(0, s);
    let log = r.log.as_ref().map_or(1, |l| {
        1 + MAX_OPT_ADDR
            + s(l.method.len())
            + s(l.target.len())
            + 1
            + 4
            + l.headers
                .iter()
                .map(|(n, v)| s(n.len()) + s(v.len()))
                .sum::<usize>()
            + 1
            + l.uri
                .as_ref()
                .map_or(0, |(p, a)| s(p.len()) + opt_s(a.as_ref().map(String::len)))
    });
    s(r.server.len())
        + MAX_OPT_ADDR
        + opt_s(r.group.as_ref().map(String::len))
        + s(r.upstream_addr.len())
        + opt_s(r.member.as_ref().map(String::len))
        + 1
        + r.balance_key.map_or(0, |_| 1 + 1 + 16)
        + 4 * 8
        + 2 * 8
        + opt_s(r.frames.as_ref().map(Vec::len))
        + s(r.carry[0].len())
        + s(r.carry[1].len())
        + 1
        + r.limit_conn
            .as_ref()
            .map_or(0, |(z, k)| s(z.len()) + s(k.len()))
        + log
}

/// The fewest bytes a record takes: every string empty, every option
/// None.
const MIN_RECORD: usize = 4 // server
    + 1 // peer
    + 1 // group
    + 4 // upstream_addr
    + 1 // member
    + 1 // balance_key
    + 4 * 8 // timeouts and times
    + 2 * 8 // bytes
    + 1 // frames
    + 2 * 4 // carry
    + 1 // limit_conn
    + 1; // log

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }

    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).expect("a handoff length fits in u32"));
    }

    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }

    fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
        }
    }

    fn opt_bytes(&mut self, v: Option<&[u8]>) {
        self.opt(v, Self::bytes);
    }

    fn ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(a) => {
                self.u8(4);
                self.0.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                self.u8(6);
                self.0.extend_from_slice(&a.octets());
            }
        }
    }

    fn addr(&mut self, a: SocketAddr) {
        self.ip(a.ip());
        self.u16(a.port());
        if let SocketAddr::V6(a) = a {
            self.u32(a.flowinfo());
            self.u32(a.scope_id());
        }
    }

    fn listener(&mut self, item: &ListenerItem) {
        match item {
            ListenerItem::Tcp { configured } => {
                self.u8(LISTENER_TCP);
                self.addr(*configured);
            }
            ListenerItem::Unix { path } => {
                self.u8(LISTENER_UNIX);
                self.bytes(path.as_os_str().as_bytes());
            }
            ListenerItem::Metrics { addr } => {
                self.u8(LISTENER_METRICS);
                self.addr(*addr);
            }
        }
    }

    fn record(&mut self, r: &TunnelRecord) {
        self.bytes(r.server.as_bytes());
        self.opt(r.peer, Self::addr);
        self.opt_bytes(r.group.as_deref().map(str::as_bytes));
        self.bytes(r.upstream_addr.as_bytes());
        self.opt_bytes(r.member.as_deref().map(str::as_bytes));
        self.opt(r.balance_key, |w, k| match k {
            KeyRecord::Ip(ip) => {
                w.u8(KEY_IP);
                w.ip(ip);
            }
            KeyRecord::Ring(h) => {
                w.u8(KEY_RING);
                w.u64(h);
            }
        });
        self.u64(r.idle_timeout_ms);
        self.u64(r.send_timeout_ms);
        self.u64(r.idle_for_ms);
        self.u64(r.age_ms);
        self.u64(r.bytes[0]);
        self.u64(r.bytes[1]);
        self.opt_bytes(r.frames.as_deref());
        self.bytes(&r.carry[0]);
        self.bytes(&r.carry[1]);
        self.opt(r.limit_conn.as_ref(), |w, (zone, key)| {
            w.bytes(zone.as_bytes());
            w.bytes(key);
        });
        self.opt(r.log.as_ref(), Self::log);
    }

    fn log(&mut self, l: &LogRecord) {
        self.opt(l.peer, Self::addr);
        self.bytes(l.method.as_bytes());
        self.bytes(l.target.as_bytes());
        self.u8(l.minor_version);
        self.len(l.headers.len());
        for (name, value) in &l.headers {
            self.bytes(name.as_bytes());
            self.bytes(value);
        }
        self.opt(l.uri.as_ref(), |w, (path, args)| {
            w.bytes(path.as_bytes());
            w.opt_bytes(args.as_deref().map(str::as_bytes));
        });
    }
}

/// The input not read yet.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.0.len() {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    fn tag(&mut self, what: &'static str, max: u8) -> Result<u8, WireError> {
        match self.u8()? {
            b if b <= max => Ok(b),
            byte => Err(WireError::BadTag { what, byte }),
        }
    }

    fn bool(&mut self) -> Result<bool, WireError> {
        Ok(self.tag("bool", 1)? == 1)
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        self.array().map(u64::from_le_bytes)
    }

    /// A length of bytes that follow, checked against what is left.
    fn len(&mut self) -> Result<usize, WireError> {
        self.count(1)
    }

    /// A count of items that each take at least `min` bytes, checked
    /// against what is left (so it bounds an allocation).
    fn count(&mut self, min: usize) -> Result<usize, WireError> {
        let n = self.u32()?;
        let left = self.0.len();
        match usize::try_from(n) {
            Ok(n) if n.checked_mul(min).is_some_and(|need| need <= left) => Ok(n),
            _ => Err(WireError::TooLong {
                len: u64::from(n),
                left,
            }),
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.len()?;
        self.take(n)
    }

    fn byte_vec(&mut self) -> Result<Vec<u8>, WireError> {
        self.bytes().map(<[u8]>::to_vec)
    }

    fn string(&mut self) -> Result<String, WireError> {
        let b = self.bytes()?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| WireError::BadUtf8)
    }

    fn opt<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, WireError>,
    ) -> Result<Option<T>, WireError> {
        match self.tag("option", 1)? {
            0 => Ok(None),
            _ => f(self).map(Some),
        }
    }

    fn ip(&mut self) -> Result<IpAddr, WireError> {
        match self.u8()? {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(self.array::<4>()?))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(self.array::<16>()?))),
            byte => Err(WireError::BadTag {
                what: "address family",
                byte,
            }),
        }
    }

    fn addr(&mut self) -> Result<SocketAddr, WireError> {
        let ip = self.ip()?;
        let port = self.u16()?;
        Ok(match ip {
            IpAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(a, port)),
            IpAddr::V6(a) => {
                let flowinfo = self.u32()?;
                let scope = self.u32()?;
                SocketAddr::V6(SocketAddrV6::new(a, port, flowinfo, scope))
            }
        })
    }

    fn listener(&mut self) -> Result<ListenerItem, WireError> {
        match self.u8()? {
            LISTENER_TCP => Ok(ListenerItem::Tcp {
                configured: self.addr()?,
            }),
            LISTENER_UNIX => Ok(ListenerItem::Unix {
                path: PathBuf::from(std::ffi::OsString::from_vec(self.byte_vec()?)),
            }),
            LISTENER_METRICS => Ok(ListenerItem::Metrics { addr: self.addr()? }),
            byte => Err(WireError::BadTag {
                what: "listener",
                byte,
            }),
        }
    }

    fn record(&mut self) -> Result<TunnelRecord, WireError> {
        Ok(TunnelRecord {
            server: self.string()?,
            peer: self.opt(Self::addr)?,
            group: self.opt(Self::string)?,
            upstream_addr: self.string()?,
            member: self.opt(Self::string)?,
            balance_key: self.opt(|r| match r.u8()? {
                KEY_IP => Ok(KeyRecord::Ip(r.ip()?)),
                KEY_RING => Ok(KeyRecord::Ring(r.u64()?)),
                byte => Err(WireError::BadTag {
                    what: "balance key",
                    byte,
                }),
            })?,
            idle_timeout_ms: self.u64()?,
            send_timeout_ms: self.u64()?,
            idle_for_ms: self.u64()?,
            age_ms: self.u64()?,
            bytes: [self.u64()?, self.u64()?],
            frames: self.opt(Self::byte_vec)?,
            carry: [self.byte_vec()?, self.byte_vec()?],
            limit_conn: self.opt(|r| Ok((r.string()?, r.byte_vec()?)))?,
            log: self.opt(Self::log)?,
        })
    }

    fn log(&mut self) -> Result<LogRecord, WireError> {
        let peer = self.opt(Self::addr)?;
        let method = self.string()?;
        let target = self.string()?;
        let minor_version = self.u8()?;
        // The shortest header: two empty strings.
        let n = self.count(4 + 4)?;
        let mut headers = Vec::with_capacity(n);
        for _ in 0..n {
            headers.push((self.string()?, self.byte_vec()?));
        }
        let uri = self.opt(|r| Ok((r.string()?, r.opt(Self::string)?)))?;
        Ok(LogRecord {
            peer,
            method,
            target,
            minor_version,
            headers,
            uri,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_record() -> TunnelRecord {
        TunnelRecord {
            server: "main".into(),
            peer: Some("203.0.113.7:51234".parse().unwrap()),
            group: Some("backends".into()),
            upstream_addr: "10.0.0.2:8080".into(),
            member: Some("backend-2.internal:8080".into()),
            balance_key: Some(KeyRecord::Ip("2001:db8::1".parse().unwrap())),
            idle_timeout_ms: 60_000,
            send_timeout_ms: 30_000,
            idle_for_ms: 1234,
            age_ms: 987_654_321,
            bytes: [u64::MAX, 0],
            frames: Some(vec![0xAB; 49]),
            carry: [b"\x81\x85\x01\x02\x03\x04hel".to_vec(), vec![0; 70_000]],
            limit_conn: Some(("perip".into(), vec![203, 0, 113, 7])),
            log: Some(LogRecord {
                peer: Some("[fe80::1%3]:443".parse().unwrap()),
                method: "GET".into(),
                target: "/chat?room=ü".into(),
                minor_version: 1,
                headers: vec![
                    ("user-agent".into(), b"curl/8.5".to_vec()),
                    ("x-empty".into(), Vec::new()),
                    ("x-bin".into(), vec![0xff, 0x00, 0x80]),
                ],
                uri: Some(("/ws/chat".into(), Some("room=1".into()))),
            }),
        }
    }

    fn all_messages() -> Vec<Message> {
        let v6: SocketAddr =
            SocketAddr::V6(SocketAddrV6::new("fe80::abcd".parse().unwrap(), 8443, 7, 2));
        let mut sparse = full_record();
        sparse.peer = Some(v6);
        sparse.balance_key = Some(KeyRecord::Ring(0xDEAD_BEEF_0123_4567));
        sparse.log = Some(LogRecord {
            uri: Some((String::new(), None)),
            ..LogRecord::default()
        });
        vec![
            Message::Hello {
                pid: 4242,
                versions: (1, 1),
            },
            Message::Hello {
                pid: u32::MAX,
                versions: (0, u16::MAX),
            },
            Message::Listeners {
                items: vec![
                    ListenerItem::Tcp {
                        configured: "0.0.0.0:0".parse().unwrap(),
                    },
                    ListenerItem::Tcp {
                        configured: "[::]:80".parse().unwrap(),
                    },
                    ListenerItem::Unix {
                        path: "/run/ringway/ringway.sock".into(),
                    },
                    ListenerItem::Unix {
                        path: PathBuf::from(std::ffi::OsString::from_vec(vec![b'/', 0xff])),
                    },
                    ListenerItem::Metrics { addr: v6 },
                ],
                last: true,
            },
            Message::Listeners {
                items: Vec::new(),
                last: false,
            },
            Message::Ready,
            Message::Rearm,
            Message::Adopted { count: 126 },
            Message::Refuse {
                why: "config: unknown key `foo` — über".into(),
            },
            Message::Refuse { why: String::new() },
            Message::Tunnels {
                version: RECORD_VERSION,
                records: vec![full_record(), TunnelRecord::default(), sparse],
            },
            Message::Tunnels {
                version: RECORD_VERSION,
                records: Vec::new(),
            },
            Message::Done { handed: 0 },
            Message::Done { handed: u64::MAX },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for msg in all_messages() {
            let bytes = encode(&msg);
            assert_eq!(decode(&bytes), Ok(msg.clone()), "{msg:?}");
        }
    }

    #[test]
    fn every_prefix_is_an_error() {
        for msg in all_messages() {
            let bytes = encode(&msg);
            for n in 0..bytes.len() {
                assert!(decode(&bytes[..n]).is_err(), "{msg:?} cut at {n}");
            }
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        for msg in all_messages() {
            let mut bytes = encode(&msg);
            bytes.extend_from_slice(&[0, 0, 0]);
            assert_eq!(decode(&bytes), Err(WireError::Trailing(3)), "{msg:?}");
        }
    }

    #[test]
    fn unknown_type_and_bad_tags() {
        assert_eq!(decode(&[]), Err(WireError::Truncated));
        assert_eq!(decode(&[0]), Err(WireError::UnknownType(0)));
        assert_eq!(decode(&[99, 1, 2]), Err(WireError::UnknownType(99)));
        // `last` is a bool: 2 is not one.
        assert_eq!(
            decode(&[LISTENERS, 0, 0, 0, 0, 2]),
            Err(WireError::BadTag {
                what: "bool",
                byte: 2
            })
        );
        // A TCP listener with address family 5.
        assert!(matches!(
            decode(&[LISTENERS, 1, 0, 0, 0, LISTENER_TCP, 5, 0, 0, 0, 0, 0, 0, 1]),
            Err(WireError::BadTag {
                what: "address family",
                ..
            })
        ));
        let mut bad = encode(&Message::Refuse { why: "ok".into() });
        *bad.last_mut().unwrap() = 0xff;
        assert_eq!(decode(&bad), Err(WireError::BadUtf8));
    }

    #[test]
    fn other_record_versions_are_refused_before_the_records() {
        for version in [0, RECORD_VERSION + 1, u16::MAX] {
            let msg = Message::Tunnels {
                version,
                records: vec![full_record()],
            };
            let bytes = encode(&msg);
            assert_eq!(decode(&bytes), Err(WireError::UnsupportedVersion(version)));
            // Even when what follows is not a record at all.
            let mut junk = bytes[..3].to_vec();
            junk.extend_from_slice(&[0xff; 9]);
            assert_eq!(decode(&junk), Err(WireError::UnsupportedVersion(version)));
        }
    }

    #[test]
    fn lengths_beyond_the_input_allocate_nothing() {
        // A count of 4 billion records in an 11-byte message.
        let mut b = vec![TUNNELS];
        b.extend_from_slice(&RECORD_VERSION.to_le_bytes());
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        assert_eq!(
            decode(&b),
            Err(WireError::TooLong {
                len: u64::from(u32::MAX),
                left: 4
            })
        );
        // A 3-byte string that says 4 GiB.
        let b = [REFUSE, 0xff, 0xff, 0xff, 0xff, b'a', b'b', b'c'];
        assert!(matches!(
            decode(&b),
            Err(WireError::TooLong { left: 3, .. })
        ));
    }

    #[test]
    fn corrupt_bytes_never_panic() {
        // Every single-byte change of every message decodes or errs.
        for msg in all_messages() {
            let bytes = encode(&msg);
            if bytes.len() > 4096 {
                continue;
            }
            for i in 0..bytes.len() {
                for v in [0u8, 1, 2, 4, 6, 0x7f, 0xff] {
                    let mut b = bytes.clone();
                    b[i] = v;
                    let _ = decode(&b);
                }
            }
        }
    }

    #[test]
    fn the_hint_bounds_a_record() {
        let mut v4 = full_record();
        v4.log.as_mut().unwrap().peer = Some("192.0.2.1:1".parse().unwrap());
        for r in [full_record(), TunnelRecord::default(), v4] {
            let one = encode(&Message::Tunnels {
                version: RECORD_VERSION,
                records: vec![r.clone()],
            });
            let exact = one.len() - TUNNELS_HEADER_LEN;
            let hint = encoded_len_hint(&r);
            assert!(hint >= exact, "hint {hint} < {exact}");
            assert!(
                hint <= exact + 2 * (MAX_OPT_ADDR - 1),
                "hint {hint} ≫ {exact}"
            );
        }
        let empty = encode(&Message::Tunnels {
            version: RECORD_VERSION,
            records: vec![TunnelRecord::default()],
        });
        assert_eq!(empty.len(), TUNNELS_HEADER_LEN + MIN_RECORD);
    }
}
