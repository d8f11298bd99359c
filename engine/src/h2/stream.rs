//! One HTTP/2 stream's state as the server connection keeps it (RFC 9113
//! §5.1 states, §5.2 and §6.9 flow-control windows, §8.1.1 the declared
//! content length), the compact map of open streams, and the short memory
//! of recently closed ones.
//!
//! Only streams in "open" and the two "half-closed" states are kept
//! (§5.1): "idle" ones are every client id above the highest seen (§5.1.1),
//! "closed" ones every id at or below it that is not in the map. A stream
//! is a fixed 32-byte record with no allocation: a stream with nothing
//! pending holds no buffer; the bytes in flight are the caller's.
//!
//! The map is a `Vec` sorted by id: a client opens streams in increasing
//! order (§5.1.1), so a new one goes at the end and a lookup is a binary
//! search over at most `max_concurrent_streams` entries. It frees its
//! buffer when the last stream closes.
//!
//! [`Recent`] remembers the last [`RECENT`] closed ids and whether ringway
//! reset them: after sending RST_STREAM an endpoint must ignore frames the
//! peer had in flight (§5.1 "closed"), while other frames on a closed
//! stream are STREAM_CLOSED errors.

/// A stream's state (§5.1) while it is in the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Both sides may send.
    Open,
    /// The client sent END_STREAM; ringway may still send.
    HalfClosedRemote,
    /// ringway sent END_STREAM; the client may still send.
    HalfClosedLocal,
}

/// [`Stream::flags`]: the caller could not send all it offered; tell it
/// when the window opens ([`super::conn::Event::WindowOpened`]).
pub(crate) const WANTS_WINDOW: u8 = 0x1;

/// [`Stream::remaining`] when the request declared no content-length.
pub(crate) const NO_LENGTH: u64 = u64::MAX;

/// One open or half-closed stream.
#[derive(Debug, Clone)]
pub(crate) struct Stream {
    pub(crate) id: u32,
    pub(crate) state: State,
    pub(crate) flags: u8,
    /// What ringway may still send (§6.9.1); negative after the client
    /// lowers SETTINGS_INITIAL_WINDOW_SIZE (§6.9.2).
    pub(crate) send_window: i32,
    /// What the client may still send before a WINDOW_UPDATE.
    pub(crate) recv_window: u32,
    /// Received bytes the caller released that no WINDOW_UPDATE has
    /// announced yet.
    pub(crate) released: u32,
    /// When a send last fell short of what the caller offered, in
    /// milliseconds since the connection's start plus one; 0 when the
    /// caller is not waiting on the window.
    pub(crate) blocked_since: u32,
    /// DATA still to come per content-length (§8.1.1), or [`NO_LENGTH`].
    pub(crate) remaining: u64,
}

impl Stream {
    pub(crate) fn new(id: u32, end_stream: bool, send_window: i32, recv_window: u32) -> Self {
        Stream {
            id,
            state: if end_stream {
                State::HalfClosedRemote
            } else {
                State::Open
            },
            flags: 0,
            send_window,
            recv_window,
            released: 0,
            blocked_since: 0,
            remaining: NO_LENGTH,
        }
    }

    /// The client may still send on it (DATA, trailers).
    pub(crate) fn remote_open(&self) -> bool {
        matches!(self.state, State::Open | State::HalfClosedLocal)
    }

    /// ringway may still send on it.
    pub(crate) fn local_open(&self) -> bool {
        matches!(self.state, State::Open | State::HalfClosedRemote)
    }

    /// Received bytes the caller has not released, given the window each
    /// stream starts with.
    pub(crate) fn unreleased(&self, initial: u32) -> u32 {
        initial
            .saturating_sub(self.recv_window)
            .saturating_sub(self.released)
    }

    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// The open and half-closed streams, sorted by id.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    list: Vec<Stream>,
}

impl Streams {
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn index(&self, id: u32) -> Option<usize> {
        self.list.binary_search_by_key(&id, |s| s.id).ok()
    }

    pub(crate) fn get(&self, id: u32) -> Option<&Stream> {
        self.index(id).map(|i| &self.list[i])
    }

    pub(crate) fn get_mut(&mut self, id: u32) -> Option<&mut Stream> {
        self.index(id).map(|i| &mut self.list[i])
    }

    /// Adds a stream whose id is above every id in the map (§5.1.1).
    pub(crate) fn push(&mut self, stream: Stream) {
        debug_assert!(self.list.last().is_none_or(|s| s.id < stream.id));
        self.list.push(stream);
    }

    /// Takes a stream out; the buffer goes with the last stream and
    /// shrinks when it is mostly empty.
    pub(crate) fn remove(&mut self, id: u32) -> Option<Stream> {
        let stream = self.list.remove(self.index(id)?);
        if self.list.is_empty() {
            self.list = Vec::new();
        } else if self.list.capacity() >= 16 && self.list.len() * 4 <= self.list.capacity() {
            self.list.shrink_to(self.list.len() * 2);
        }
        Some(stream)
    }

    pub(crate) fn iter_mut(&mut self) -> std::slice::IterMut<'_, Stream> {
        self.list.iter_mut()
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Stream> {
        self.list.iter()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.list.capacity() * std::mem::size_of::<Stream>()
    }
}

/// How many closed stream ids [`Recent`] remembers.
pub(crate) const RECENT: usize = 16;

/// The high bit of a remembered id (stream ids have 31 bits): ringway
/// reset the stream (or refused it).
const RESET_BY_US: u32 = 0x8000_0000;

/// The last [`RECENT`] closed stream ids, oldest overwritten first.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    ids: [u32; RECENT],
    next: u8,
}

/// How a recently closed stream closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// ringway sent RST_STREAM: frames the client had in flight are
    /// ignored.
    ResetByUs,
    /// Both sides ended it, or the client reset it.
    Other,
}

impl Recent {
    pub(crate) fn push(&mut self, id: u32, how: Closed) {
        let flag = if how == Closed::ResetByUs {
            RESET_BY_US
        } else {
            0
        };
        self.ids[usize::from(self.next)] = id | flag;
        self.next = ((usize::from(self.next) + 1) % RECENT) as u8;
    }

    /// How `id` closed, if it is among the remembered (0 is never a stream
    /// id, so an empty slot never matches).
    pub(crate) fn find(&self, id: u32) -> Option<Closed> {
        self.ids
            .iter()
            .find(|&&e| e & !RESET_BY_US == id)
            .map(|&e| {
                if e & RESET_BY_US != 0 {
                    Closed::ResetByUs
                } else {
                    Closed::Other
                }
            })
    }

    /// `id` is now reset by ringway (remembered anew if it was not).
    pub(crate) fn mark_reset(&mut self, id: u32) {
        match self.ids.iter_mut().find(|e| **e & !RESET_BY_US == id) {
            Some(e) => *e |= RESET_BY_US,
            None => self.push(id, Closed::ResetByUs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_small() {
        assert!(std::mem::size_of::<Stream>() <= 32);
    }

    #[test]
    fn map_keeps_order_and_frees_when_empty() {
        let mut m = Streams::default();
        for id in (1..200).step_by(2) {
            m.push(Stream::new(id, false, 0, 0));
        }
        assert_eq!(m.get(51).unwrap().id, 51);
        assert!(m.get(52).is_none());
        for id in (1..199).step_by(2) {
            assert!(m.remove(id).is_some());
        }
        assert!(m.heap_bytes() <= 16 * std::mem::size_of::<Stream>());
        assert!(m.remove(199).is_some());
        assert_eq!(m.heap_bytes(), 0);
        assert!(m.remove(199).is_none());
    }

    #[test]
    fn recent_remembers_the_last_ids() {
        let mut r = Recent::default();
        assert_eq!(r.find(1), None);
        r.push(1, Closed::Other);
        r.push(3, Closed::ResetByUs);
        assert_eq!(r.find(1), Some(Closed::Other));
        assert_eq!(r.find(3), Some(Closed::ResetByUs));
        r.mark_reset(1);
        assert_eq!(r.find(1), Some(Closed::ResetByUs));
        for id in (5..5 + 2 * RECENT as u32).step_by(2) {
            r.push(id, Closed::Other);
        }
        assert_eq!(r.find(1), None);
        assert_eq!(r.find(3), None);
        r.mark_reset(0x7fff_ffff);
        assert_eq!(r.find(0x7fff_ffff), Some(Closed::ResetByUs));
    }
}
