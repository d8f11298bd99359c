//! WebSocket frame boundaries as bytes pass a tunnel (RFC 6455 §5.2), so a
//! drain can close a tunnel between frames with a close frame of its own
//! (§5.5.1, code 1001 "going away", §7.4.1) instead of cutting one in two.
//!
//! A [`Tracker`] is fed the bytes one direction has *written* to its
//! destination, in order; it keeps the part of a frame header seen so far
//! (a header is 2 to 14 bytes and may be split across reads) and how many
//! payload bytes of the current frame remain, which pass without being
//! looked at ([`Tracker::skip`]: what a splice burst moves). A control
//! frame may come between the fragments of a message (§5.4), so a frame
//! boundary is a place a close frame may go. A stream that does not frame
//! as WebSocket (a reserved opcode, a long or fragmented control frame, a
//! 64-bit length with its top bit set, masking wrong for the direction)
//! makes the tracker [`lost`](Tracker::is_lost): the drain then closes
//! that tunnel without close frames.
//!
//! The rule for every close frame ringway writes into a tunnel (a drain on
//! TERM, `drain_old_tunnels_after`, and whatever else ends tunnels early):
//! it goes out only at a frame boundary both ways, and past the drain's
//! deadline the connection is closed without one. The close frames exist
//! only behind an [`AtBoundary`], which [`drain_verdict`] alone makes, from
//! trackers that have seen every byte of the tunnel — those that went out
//! with the 101 and those the client sent behind its upgrade request
//! included.
//!
//! 24 bytes per direction; the tunnel's slot keeps two.

/// The longest frame header: 2 + 8 (64-bit length) + 4 (mask key).
const MAX_HEADER: usize = 14;

/// One direction's position in the frame stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracker {
    /// Payload bytes of the current frame still to pass.
    left: u64,
    /// Header bytes seen of the next frame (at most 14).
    head: [u8; MAX_HEADER],
    /// How many of `head` are filled.
    have: u8,
    /// Frames from the client are masked, from the server not (§5.1).
    masked: bool,
    lost: bool,
    /// A close frame (opcode 8) has passed.
    closed: bool,
}

impl Tracker {
    /// A tracker for frames the client sends (`masked`) or the server
    /// sends (unmasked).
    pub fn new(masked: bool) -> Tracker {
        Tracker {
            left: 0,
            head: [0; MAX_HEADER],
            have: 0,
            masked,
            lost: false,
            closed: false,
        }
    }

    /// Between two frames (and not lost).
    pub fn at_boundary(&self) -> bool {
        !self.lost && self.left == 0 && self.have == 0
    }

    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// A close frame has passed this way (its sender began the closing
    /// handshake, RFC 6455 §7.1.2, if the other way has not).
    pub fn saw_close(&self) -> bool {
        self.closed
    }

    /// Payload bytes that may pass unseen (0 while a header is due).
    pub fn payload_left(&self) -> u64 {
        if self.lost {
            u64::MAX
        } else {
            self.left
        }
    }

    /// `n` payload bytes passed unseen (`n <= payload_left()`).
    pub fn skip(&mut self, n: u64) {
        if !self.lost {
            debug_assert!(n <= self.left, "skipped past the frame");
            self.left = self.left.saturating_sub(n);
        }
    }

    /// Bytes that passed, in order.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.lost {
            if self.left > 0 {
                let n = (bytes.len() as u64).min(self.left);
                self.left -= n;
                bytes = &bytes[n as usize..];
                continue;
            }
            // A header byte: the first two say how long the header is.
            let need = self.header_len().unwrap_or(2);
            let take = (need - self.have as usize).min(bytes.len());
            let at = self.have as usize;
            self.head[at..at + take].copy_from_slice(&bytes[..take]);
            self.have += take as u8;
            bytes = &bytes[take..];
            if let Some(len) = self.header_len() {
                if self.have as usize == len {
                    self.start_frame(len);
                }
            }
        }
    }

    /// The whole header's length once its first two bytes are in.
    fn header_len(&self) -> Option<usize> {
        if self.have < 2 {
            return None;
        }
        let b1 = self.head[1];
        let ext = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
        Some(2 + ext + mask)
    }

    /// A complete header of `len` bytes is in `head`: check it, start its
    /// payload.
    fn start_frame(&mut self, len: usize) {
        let (b0, b1) = (self.head[0], self.head[1]);
        let opcode = b0 & 0x0f;
        let fin = b0 & 0x80 != 0;
        let payload = match b1 & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.head[2], self.head[3]])),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.head[2..10]);
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        };
        let control = opcode & 0x08 != 0;
        let valid = b0 & 0x70 == 0 // no extension negotiated through us sets RSV
            || (b0 & 0x70 == 0x40 && !control); // permessage-deflate's RSV1
        let ok = valid
            && matches!(opcode, 0x0..=0x2 | 0x8..=0xA)
            && (!control || (fin && payload <= 125))
            && payload >> 63 == 0
            && (b1 & 0x80 != 0) == self.masked
            && len <= MAX_HEADER;
        if !ok {
            self.lost = true;
            return;
        }
        self.have = 0;
        self.left = payload;
        self.closed |= opcode == 0x8;
    }
}

/// The direction of the client's bytes (masked frames).
pub const FROM_CLIENT: usize = 0;
/// The direction of the upstream's bytes.
pub const FROM_UPSTREAM: usize = 1;

/// Both directions of a WebSocket tunnel ([`FROM_CLIENT`],
/// [`FROM_UPSTREAM`]) and which sent the first close frame: what a
/// tunnel's slot keeps, in the idle sweep or the ring relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frames {
    track: [Tracker; 2],
    first_close: Option<u8>,
}

impl Default for Frames {
    fn default() -> Frames {
        Frames {
            track: [Tracker::new(true), Tracker::new(false)],
            first_close: None,
        }
    }
}

impl Frames {
    /// Bytes direction `dir` has passed, in order.
    pub fn feed(&mut self, dir: usize, bytes: &[u8]) {
        self.track[dir].feed(bytes);
        if self.first_close.is_none() && self.track[dir].saw_close() {
            self.first_close = Some(dir as u8);
        }
    }

    /// `n` payload bytes of direction `dir` passed unseen.
    pub fn skip(&mut self, dir: usize, n: u64) {
        self.track[dir].skip(n);
    }

    pub fn payload_left(&self, dir: usize) -> u64 {
        self.track[dir].payload_left()
    }

    /// A close frame has passed in direction `dir`.
    pub fn saw_close(&self, dir: usize) -> bool {
        self.track[dir].saw_close()
    }

    /// Once a close frame passed: true when the client sent the first
    /// (it began the closing handshake, RFC 6455 §7.1.2).
    pub fn client_closed_first(&self) -> Option<bool> {
        self.first_close.map(|d| d == 0)
    }

    /// The state as bytes, to cross a binary upgrade (`handoff`): per
    /// direction ([`FROM_CLIENT`] first) `left` u64 little-endian, the 14
    /// header bytes, how many of them are filled, a flags byte
    /// ([`FLAG_MASKED`], [`FLAG_LOST`], [`FLAG_CLOSED`]); then the
    /// direction that sent the first close frame, 0xff for none.
    pub fn to_bytes(&self) -> [u8; STATE_LEN] {
        let mut b = [0u8; STATE_LEN];
        for (t, out) in self.track.iter().zip(b.chunks_exact_mut(TRACKER_LEN)) {
            out[..8].copy_from_slice(&t.left.to_le_bytes());
            out[8..8 + MAX_HEADER].copy_from_slice(&t.head);
            out[8 + MAX_HEADER] = t.have;
            let flag = |on: bool, bit: u8| if on { bit } else { 0 };
            out[9 + MAX_HEADER] =
                flag(t.masked, FLAG_MASKED) | flag(t.lost, FLAG_LOST) | flag(t.closed, FLAG_CLOSED);
        }
        b[STATE_LEN - 1] = self.first_close.unwrap_or(0xff);
        b
    }

    /// The state [`to_bytes`](Frames::to_bytes) wrote, or `None` for bytes
    /// it cannot have written: a wrong length, more than 14 header bytes,
    /// unknown flag bits, a direction masked the wrong way, header bytes
    /// past the header they begin or beside payload still to pass (unless
    /// lost), a first close from a direction neither 0 nor 1 (nor 0xff).
    /// What it returns is safe to feed, whatever the input.
    pub fn from_bytes(b: &[u8]) -> Option<Frames> {
        let b: &[u8; STATE_LEN] = b.try_into().ok()?;
        let mut track = [Tracker::new(true), Tracker::new(false)];
        for (dir, (t, raw)) in track
            .iter_mut()
            .zip(b.chunks_exact(TRACKER_LEN))
            .enumerate()
        {
            let flags = raw[9 + MAX_HEADER];
            if flags & !(FLAG_MASKED | FLAG_LOST | FLAG_CLOSED) != 0 {
                return None;
            }
            let masked = flags & FLAG_MASKED != 0;
            if masked != (dir == FROM_CLIENT) {
                return None;
            }
            t.left = u64::from_le_bytes(raw[..8].try_into().ok()?);
            t.head.copy_from_slice(&raw[8..8 + MAX_HEADER]);
            t.have = raw[8 + MAX_HEADER];
            t.lost = flags & FLAG_LOST != 0;
            t.closed = flags & FLAG_CLOSED != 0;
            if t.have as usize > MAX_HEADER {
                return None;
            }
            // A header is started only between payloads, and a whole one
            // starts its frame at once (`feed` relies on both; a lost
            // tracker keeps the header it failed on and reads no more).
            if !t.lost
                && ((t.have > 0 && t.left > 0)
                    || t.header_len().is_some_and(|len| t.have as usize >= len))
            {
                return None;
            }
        }
        let first_close = match b[STATE_LEN - 1] {
            0xff => None,
            d @ (0 | 1) => Some(d),
            _ => return None,
        };
        Some(Frames { track, first_close })
    }
}

/// The bytes of one [`Tracker`] in [`Frames::to_bytes`].
const TRACKER_LEN: usize = 8 + MAX_HEADER + 1 + 1;

/// The length of [`Frames::to_bytes`]: two trackers and the first close.
pub const STATE_LEN: usize = 2 * TRACKER_LEN + 1;

/// Flag bits of a tracker in [`Frames::to_bytes`]: its direction's
/// frames are masked (the client's).
pub const FLAG_MASKED: u8 = 1;
/// Its direction does not frame as WebSocket.
pub const FLAG_LOST: u8 = 2;
/// A close frame passed its way.
pub const FLAG_CLOSED: u8 = 4;

/// How a drained tunnel ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goodbye {
    /// Between frames both ways: a close frame 1001 to each side, then a
    /// clean shutdown.
    CloseFrames(AtBoundary),
    /// Not WebSocket (or not WebSocket framing): a clean shutdown, no
    /// frames.
    Shutdown,
    /// A frame was still in flight at the drain's deadline: closed at
    /// once, without a close frame.
    Cut,
}

/// Both directions of a tunnel were between frames, with every byte read
/// written, when its relay ended: the only way to the close frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtBoundary(());

impl AtBoundary {
    /// The close frame to the client: 1001, unmasked.
    pub fn to_client(self) -> [u8; 4] {
        CLOSE_TO_CLIENT
    }

    /// The close frame to the upstream: 1001, masked as a client's frame
    /// is (§5.3), with a fresh key.
    pub fn to_upstream(self) -> [u8; 8] {
        close_to_upstream(mask_key())
    }
}

/// How a drained tunnel whose two directions both wait, all they read
/// written, may end now: with close frames between frames both ways,
/// without when it is not tracked or not WebSocket framing, `None` while
/// a frame is still in flight.
pub fn drain_verdict(frames: Option<&Frames>) -> Option<Goodbye> {
    match frames {
        None => Some(Goodbye::Shutdown),
        Some(f) if f.track.iter().any(Tracker::is_lost) => Some(Goodbye::Shutdown),
        Some(f) if f.track.iter().all(Tracker::at_boundary) => {
            Some(Goodbye::CloseFrames(AtBoundary(())))
        }
        Some(_) => None,
    }
}

/// The close frame ringway sends a client on a drain: 1001, unmasked.
const CLOSE_TO_CLIENT: [u8; 4] = [0x88, 0x02, 0x03, 0xE9];

/// The close frame ringway sends an upstream on a drain (1001): a client's
/// frame is masked (§5.3), with `key`.
fn close_to_upstream(key: [u8; 4]) -> [u8; 8] {
    let code = [0x03, 0xE9];
    [
        0x88,
        0x82,
        key[0],
        key[1],
        key[2],
        key[3],
        code[0] ^ key[0],
        code[1] ^ key[1],
    ]
}

/// A masking key nobody on the wire can predict well enough to matter
/// here (the close frame's payload is fixed): the clock's nanoseconds
/// mixed with a per-call counter (SplitMix64).
fn mask_key() -> [u8; 4] {
    use std::cell::Cell;
    thread_local!(static STATE: Cell<u64> = const { Cell::new(0) });
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let x = STATE.with(|s| {
        let v = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15) ^ nanos;
        s.set(v);
        v
    });
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z as u32).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as a peer would write it.
    fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut f = vec![(u8::from(fin) << 7) | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => f.push(m | n as u8),
            n if n <= 0xffff => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(k) => {
                f.extend_from_slice(&k);
                f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => f.extend_from_slice(payload),
        }
        f
    }

    fn stream(masked: bool) -> (Vec<u8>, Vec<usize>) {
        let mask = masked.then_some([1, 2, 3, 4]);
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for f in [
            frame(true, 1, b"hello", mask),
            frame(false, 2, &[7u8; 300], mask), // 16-bit length, first fragment
            frame(true, 9, b"ping", mask),      // control between fragments
            frame(true, 0, &[8u8; 70_000], mask), // 64-bit length, last fragment
            frame(true, 1, b"", mask),
        ] {
            bytes.extend_from_slice(&f);
            ends.push(bytes.len());
        }
        (bytes, ends)
    }

    #[test]
    fn boundaries_of_every_length_form_split_anywhere() {
        for masked in [false, true] {
            let (bytes, ends) = stream(masked);
            // Fed in pieces of every size from 1 to 20 bytes.
            for piece in 1..=20 {
                let mut t = Tracker::new(masked);
                let mut at = 0;
                for chunk in bytes.chunks(piece) {
                    t.feed(chunk);
                    at += chunk.len();
                    assert_eq!(
                        t.at_boundary(),
                        ends.contains(&at) || at == 0,
                        "masked={masked} piece={piece} at={at}"
                    );
                }
                assert!(t.at_boundary());
            }
        }
    }

    /// A frame's header and the first part of its payload in one read
    /// (what arrives behind a 101): mid-frame until the rest passes, by
    /// feed or by skip.
    #[test]
    fn header_and_payload_in_one_read() {
        for masked in [false, true] {
            let f = frame(true, 2, &[5u8; 1 << 20], masked.then_some([9, 8, 7, 6]));
            let header = if masked { 14 } else { 10 };
            let mut t = Tracker::new(masked);
            t.feed(&f[..header + 1000]);
            assert!(!t.at_boundary());
            assert_eq!(t.payload_left(), (1 << 20) - 1000);
            let mut fed = t;
            fed.feed(&f[header + 1000..]);
            assert!(fed.at_boundary());
            t.skip((1 << 20) - 1000);
            assert!(t.at_boundary());
            // A whole frame and the next one's first header byte.
            let mut t = Tracker::new(masked);
            let mut two = f.clone();
            two.push(0x81);
            t.feed(&two);
            assert!(!t.at_boundary() && t.payload_left() == 0);
        }
        let mut frames = Frames::default();
        let f = frame(true, 2, &[5u8; 70_000], None);
        frames.feed(FROM_UPSTREAM, &f[..1010]);
        assert_eq!(drain_verdict(Some(&frames)), None, "mid-frame: no close");
        frames.feed(FROM_UPSTREAM, &f[1010..]);
        assert!(matches!(
            drain_verdict(Some(&frames)),
            Some(Goodbye::CloseFrames(_))
        ));
    }

    #[test]
    fn verdicts() {
        assert_eq!(drain_verdict(None), Some(Goodbye::Shutdown));
        let mut lost = Frames::default();
        lost.feed(FROM_CLIENT, b"GET / HTTP/1.1\r\n");
        assert_eq!(drain_verdict(Some(&lost)), Some(Goodbye::Shutdown));
        let mut mid = Frames::default();
        mid.feed(FROM_CLIENT, &[0x81, 0x85, 1, 2, 3, 4, b'h' ^ 1]);
        assert_eq!(drain_verdict(Some(&mid)), None);
        let fresh = Frames::default();
        let Some(Goodbye::CloseFrames(at)) = drain_verdict(Some(&fresh)) else {
            panic!("a fresh tunnel is between frames");
        };
        assert_eq!(at.to_client(), CLOSE_TO_CLIENT);
        assert_eq!(at.to_upstream()[..2], [0x88, 0x82]);
    }

    #[test]
    fn payload_can_pass_unseen() {
        let f = frame(true, 2, &[0u8; 100_000], None);
        let mut t = Tracker::new(false);
        t.feed(&f[..10]); // the 10-byte header
        assert_eq!(t.payload_left(), 100_000);
        t.skip(60_000);
        assert_eq!(t.payload_left(), 40_000);
        t.feed(&f[10 + 60_000..]);
        assert!(t.at_boundary());
        assert_eq!(t.payload_left(), 0);
    }

    #[test]
    fn what_is_not_websocket_is_lost() {
        let cases: [(&[u8], bool); 6] = [
            (&[0x83, 0x00], false),             // reserved opcode 3
            (&[0x09, 0x00], false),             // fragmented ping
            (&[0x89, 0x7e, 0x00, 0x80], false), // ping of 128 bytes
            (&[0x81, 0x05], true),              // unmasked from a client
            (&[0x81, 0x85, 0, 0, 0, 0], false), // masked from a server
            (b"GET / HTTP/1.1\r\n", false),     // not frames at all
        ];
        for (bytes, masked) in cases {
            let mut t = Tracker::new(masked);
            t.feed(bytes);
            assert!(t.is_lost(), "{bytes:?}");
            assert!(!t.at_boundary());
            assert_eq!(t.payload_left(), u64::MAX);
        }
        let mut t = Tracker::new(false);
        let mut top = vec![0x82, 0x7f];
        top.extend_from_slice(&(1u64 << 63).to_be_bytes());
        t.feed(&top);
        assert!(t.is_lost(), "a 64-bit length with its top bit set");
        // permessage-deflate's RSV1 on a data frame is fine.
        let mut t = Tracker::new(false);
        t.feed(&[0xC1, 0x01, 0xAA]);
        assert!(t.at_boundary());
    }

    /// Both see the same bytes from here on and stay the same.
    fn assert_twins(a: &Frames, b: &Frames) {
        assert_eq!(a, b);
        for dir in [FROM_CLIENT, FROM_UPSTREAM] {
            assert_eq!(a.payload_left(dir), b.payload_left(dir));
            assert_eq!(a.saw_close(dir), b.saw_close(dir));
        }
        assert_eq!(a.client_closed_first(), b.client_closed_first());
        assert_eq!(drain_verdict(Some(a)), drain_verdict(Some(b)));
    }

    #[test]
    fn state_crosses_as_bytes_at_any_point() {
        // Each direction's stream, ending in a close frame from each side.
        let mut client = stream(true).0;
        client.extend_from_slice(&close_to_upstream([5, 6, 7, 8]));
        let mut upstream = stream(false).0;
        upstream.extend_from_slice(&CLOSE_TO_CLIENT);
        // Split points: 0, mid-header (first byte, inside a 16/64-bit
        // length, inside a mask key), mid-payload, at a boundary.
        let cuts = [0, 1, 3, 7, 9, 10, 12, 15, 200, 311, 320, 337, 2000, 50_000];
        for &cut in &cuts {
            for &ucut in &cuts {
                let mut orig = Frames::default();
                orig.feed(FROM_CLIENT, &client[..cut]);
                orig.feed(FROM_UPSTREAM, &upstream[..ucut]);
                let bytes = orig.to_bytes();
                assert_eq!(bytes.len(), STATE_LEN);
                let mut back = Frames::from_bytes(&bytes).expect("its own bytes");
                assert_twins(&orig, &back);
                assert_eq!(back.to_bytes(), bytes);
                // The rest in uneven pieces, the same to both.
                let (mut c, mut u) = (cut, ucut);
                let mut step = 1;
                while c < client.len() || u < upstream.len() {
                    let cn = (c + step).min(client.len());
                    let un = (u + step * 3).min(upstream.len());
                    for f in [&mut orig, &mut back] {
                        f.feed(FROM_CLIENT, &client[c..cn]);
                        f.feed(FROM_UPSTREAM, &upstream[u..un]);
                    }
                    (c, u) = (cn, un);
                    assert_twins(&orig, &back);
                    step = step * 7 % 997 + 1;
                }
                assert!(back.saw_close(FROM_CLIENT) && back.saw_close(FROM_UPSTREAM));
                assert!(matches!(
                    drain_verdict(Some(&back)),
                    Some(Goodbye::CloseFrames(_))
                ));
            }
        }
        // A lost tracker stays lost.
        let mut lost = Frames::default();
        lost.feed(FROM_CLIENT, b"GET / HTTP/1.1\r\n");
        let back = Frames::from_bytes(&lost.to_bytes()).unwrap();
        assert_twins(&lost, &back);
        assert_eq!(back.payload_left(FROM_CLIENT), u64::MAX);
    }

    #[test]
    fn state_bytes_it_cannot_have_written_are_refused() {
        let mut f = Frames::default();
        f.feed(FROM_UPSTREAM, &[0x82, 0x7e, 0x01]); // mid 16-bit length
        let good = f.to_bytes();
        assert!(Frames::from_bytes(&good).is_some());
        assert!(Frames::from_bytes(&good[..STATE_LEN - 1]).is_none());
        assert!(Frames::from_bytes(&[good.as_slice(), &[0]].concat()).is_none());
        assert!(Frames::from_bytes(&[]).is_none());
        let up = TRACKER_LEN; // the upstream tracker's offset
        let have = 8 + MAX_HEADER;
        let flags = have + 1;
        let mut bad = good;
        bad[up + have] = 15;
        assert!(Frames::from_bytes(&bad).is_none(), "have > 14");
        let mut bad = good;
        bad[up + have] = 4; // a 4-byte header is whole: not "in progress"
        assert!(Frames::from_bytes(&bad).is_none(), "have past its header");
        let mut bad = good;
        bad[up] = 1; // payload left beside a started header
        assert!(Frames::from_bytes(&bad).is_none(), "left and have");
        let mut bad = good;
        bad[up + flags] |= 8;
        assert!(Frames::from_bytes(&bad).is_none(), "unknown flag");
        let mut bad = good;
        bad[up + flags] |= FLAG_MASKED;
        assert!(Frames::from_bytes(&bad).is_none(), "upstream masked");
        let mut bad = good;
        bad[flags] &= !FLAG_MASKED;
        assert!(Frames::from_bytes(&bad).is_none(), "client unmasked");
        for (v, ok) in [
            (0, true),
            (1, true),
            (0xff, true),
            (2, false),
            (0x80, false),
        ] {
            let mut b = good;
            b[STATE_LEN - 1] = v;
            assert_eq!(Frames::from_bytes(&b).is_some(), ok, "first_close {v}");
        }
        // Whatever the bytes, nothing panics, and what decodes can be fed.
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..20_000 {
            let mut b = good;
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b[(x % STATE_LEN as u64) as usize] = (x >> 32) as u8;
            }
            if let Some(mut f) = Frames::from_bytes(&b) {
                f.feed(FROM_CLIENT, &[0x81, 0xfe, 0, 2, 1, 2, 3, 4, 0, 0, 0x88]);
                f.feed(FROM_UPSTREAM, &[0x81, 0x7f, 0, 0, 0, 0, 0, 0, 0, 1, 0x89]);
            }
        }
    }

    #[test]
    fn close_frames_parse_as_1001() {
        let mut t = Tracker::new(false);
        assert!(!t.saw_close());
        t.feed(&CLOSE_TO_CLIENT);
        assert!(t.at_boundary());
        assert!(t.saw_close());
        let key = mask_key();
        let f = close_to_upstream(key);
        let mut t = Tracker::new(true);
        t.feed(&f);
        assert!(t.at_boundary());
        let code = [f[6] ^ key[0], f[7] ^ key[1]];
        assert_eq!(u16::from_be_bytes(code), 1001);
        assert_ne!(mask_key(), mask_key());
        assert!(std::mem::size_of::<Tracker>() <= 32);
    }
}
