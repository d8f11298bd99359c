//! The ring relay: plain tunnels on an io_uring worker whose kernel has
//! provided buffer rings, `IORING_RECVSEND_POLL_FIRST` and cancel by
//! descriptor (Linux 5.19).
//!
//! Each direction of a tunnel keeps one recv SQE armed on its source,
//! with buffer selection: bytes land in a buffer the kernel picks from the
//! worker's provided buffer ring only when they arrive, so an idle tunnel
//! holds no buffer and no task wake-up — just two armed requests in the
//! kernel. Each completion is answered with a send SQE of the same buffer
//! to the other socket and a new recv SQE, both queued into the runtime's
//! ring and flushed with its next `io_uring_enter`; the buffer goes back
//! to the ring when the send completes. So a relayed message costs no
//! `recv`, `send` or poll system call of its own: every message of one
//! loop turn shares one `io_uring_enter` (bench/TARGETS.md has the counts).
//!
//! One task per worker (`Relay::drive`) takes the completions and moves
//! every tunnel's bytes; a tunnel's own task only registers the tunnel and
//! waits for its end (`run`), so a message wakes no per-tunnel future.
//! The semantics are the other relays': half-close passed on
//! (`shutdown(SHUT_WR)` after the last byte), the idle timeout and the
//! send timeout checked by the worker's periodic sweep (`Relay::sweep`)
//! against a clock read once per batch of completions, and backpressure:
//! no recv is armed while a received buffer waits behind the one being
//! sent, so at most [`MAX_OUT_PER_DIRECTION`] buffers are out behind a
//! receiver that stops reading. A recv that fills a whole buffer hands the
//! rest of the burst to splice(2) through a pooled pipe (no user-space
//! copy), as the syscall relay does. Each direction counts the bytes its
//! sends and splices delivered in its slot (a plain add in the batch
//! that completes them), where a scrape reads them while the tunnel is
//! open (`Relay::live_bytes`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use tracing::{debug, warn};

use super::stats::{End, Stats};
use crate::metrics::SeriesId;
use crate::proxy::frames::Frames;
use crate::proxy::idle::{Drain, DrainPlan};
use crate::proxy::pool::{Pipe, PipePool};
use crate::sys::uring::{self as ring, BufRing, Completion, FileTable, Sock, TAG};
use crate::sys::{self, would_block};

/// Bytes moved per splice call (the default pipe size).
const SPLICE_CHUNK: usize = 64 * 1024;
/// Splice calls one burst makes before it lets other tunnels run (it
/// goes on through a recv that finds the socket still readable).
const SPLICE_TURN: usize = 16;
/// Spare pipes the relay keeps.
const SPARE_PIPES: usize = 64;

/// The most buffers a direction holds behind a receiver that stops
/// reading: the one being sent and one received behind it.
pub const MAX_OUT_PER_DIRECTION: usize = 2;

const OP_RECV: u64 = 1;
const OP_SEND: u64 = 2;
const OP_CANCEL: u64 = 3;
const OP_POLL_OUT: u64 = 4;

fn user_data(slot: u32, dir: usize, op: u64) -> u64 {
    TAG | (slot as u64) << 8 | (dir as u64) << 4 | op
}

fn decode(ud: u64) -> (usize, usize, u64) {
    (
        ((ud & !TAG) >> 8) as u32 as usize,
        ((ud >> 4) & 1) as usize,
        ud & 0xf,
    )
}

/// Whether this worker relays plain tunnels on its ring, and why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Ring,
    /// The readiness + syscall relay (`splice`), with the reason.
    Syscall(&'static str),
}

/// The relay a worker uses, from the configured wish, the driver and the
/// kernel version: the ring needs an io_uring worker on Linux 5.19. RHEL
/// 9's 5.14 and the epoll driver keep the syscall relay.
pub fn choose(
    wish: ringway_config::TunnelRelay,
    uring: bool,
    kernel: Option<(u32, u32)>,
) -> Choice {
    use ringway_config::TunnelRelay;
    match wish {
        TunnelRelay::Syscall => Choice::Syscall("configured"),
        _ if !uring => Choice::Syscall("epoll driver"),
        _ => match kernel {
            Some(v) if v >= (5, 19) => Choice::Ring,
            _ => Choice::Syscall("kernel older than 5.19 (no provided buffer rings)"),
        },
    }
}

#[derive(Default)]
struct Dir {
    /// A recv is armed (counted in `inflight`).
    armed: bool,
    /// Waiting for a buffer to come back to the ring (ENOBUFS).
    starved: bool,
    /// The source said end of stream.
    eof: bool,
    /// End of stream passed on (SHUT_WR on the destination).
    done: bool,
    /// The buffer being sent: (bid, sent so far, length, since).
    sending: Option<(u16, u32, u32, Instant)>,
    /// Waiting for the destination to be writable before resending.
    polling: bool,
    /// Buffers received behind the one being sent: (bid, length).
    queue: VecDeque<(u16, u32)>,
    bytes: u64,
    /// A recv filled a whole buffer: once it is sent, move the rest of
    /// the burst with splice(2) instead of re-arming the recv.
    bulk_next: bool,
    /// The pipe of a splice burst, and the bytes in it.
    pipe: Option<(Pipe, usize)>,
    /// A splice burst waits for the destination since.
    bulk_since: Option<Instant>,
}

struct Slot {
    /// [client, upstream]; direction d reads fds[d] and writes fds[1 - d].
    fds: [RawFd; 2],
    /// The same sockets as the SQEs name them: registered file slots
    /// `2i` and `2i + 1` when the file table has room, else descriptors.
    socks: [Sock; 2],
    dirs: [Dir; 2],
    /// SQEs whose last completion has not been taken.
    inflight: u32,
    end: Option<End>,
    waker: Option<Waker>,
    idle_timeout: Duration,
    send_timeout: Duration,
    last: Instant,
    /// The tunnel's task went away; free the slot when `inflight` is 0.
    orphan: bool,
    /// Frame trackers, for a WebSocket tunnel.
    frames: Option<Box<Frames>>,
    drain: Drain,
    /// The relay's configuration generation when the tunnel started.
    generation: u32,
    /// The upstream server's tag (`upstream::verdict`), or `NO_TAG`.
    upstream: u32,
    /// Its number on this worker, in the order tunnels started.
    seq: u32,
    /// The tunnel's series in the worker's metrics, under which a scrape
    /// reads `dirs[d].bytes` while the tunnel is open.
    series: SeriesId,
    /// To be handed to a new process at its next quiet moment (binary
    /// upgrade).
    handoff: bool,
    /// Handed over: bytes a cancelled recv brought in anyway, by
    /// direction (the new process writes them first).
    carry: Option<Box<[Vec<u8>; 2]>>,
}

impl Slot {
    /// The tunnel's task owns both sockets and keeps them open until the
    /// slot is released, which waits for `inflight` to reach 0.
    fn fd(&self, i: usize) -> BorrowedFd<'_> {
        crate::sys::borrow_raw(self.fds[i])
    }

    /// Socket `i` as this tunnel's SQEs name it.
    fn sock(&self, i: usize) -> Sock {
        self.socks[i]
    }

    fn finished(&self) -> bool {
        self.end.is_some() && self.inflight == 0
    }

    /// Direction `d` waits on its armed recv with all it read sent (or
    /// its end passed on).
    fn idle(&self, d: usize) -> bool {
        let dir = &self.dirs[d];
        dir.done
            || (dir.sending.is_none()
                && dir.queue.is_empty()
                && dir.pipe.is_none()
                && !dir.polling
                && !dir.bulk_next)
    }

    /// Whether a tunnel marked for handoff is quiet now: both directions
    /// wait on their recv with all they read sent, and neither has seen
    /// its end of stream (a closing tunnel finishes here).
    fn handoff_ready(&self) -> bool {
        self.handoff
            && self.end.is_none()
            && self.idle(0)
            && self.idle(1)
            && !self.dirs.iter().any(|d| d.eof || d.done)
    }

    /// Whether a drained tunnel may close now, and how.
    fn drain_ready(&self) -> Option<End> {
        if self.end.is_some() {
            return None;
        }
        let quiet = self.idle(0) && self.idle(1);
        self.drain
            .verdict(self.frames.as_deref(), quiet)
            .map(End::Drain)
    }

    /// Payload bytes direction `d` may splice unseen.
    fn payload_left(&self, d: usize) -> u64 {
        self.frames.as_ref().map_or(u64::MAX, |f| f.payload_left(d))
    }
}

/// A worker's ring relay: the buffer ring and every tunnel it moves.
pub struct Relay {
    bufs: BufRing,
    slots: RefCell<Vec<Option<Slot>>>,
    free: RefCell<Vec<u32>>,
    /// Directions waiting for a buffer: (slot, dir).
    starved: RefCell<Vec<(u32, usize)>>,
    live: Cell<usize>,
    driving: Cell<bool>,
    /// A buffer went back to the ring since starved directions were fed.
    returned: Cell<bool>,
    /// Buffers taken by completions and not yet given back.
    out: Cell<usize>,
    /// `runtime.splice`: long bursts move through a pipe.
    splice: bool,
    /// Registered file slots for the tunnels' sockets, when the ring took
    /// a table.
    files: Option<FileTable>,
    pipes: PipePool,
    /// Bumped by each reload: tunnels remember the one they started in.
    pub generation: Cell<u32>,
    /// A binary upgrade hands tunnels over: those registered from now on
    /// are marked as they start.
    handing_over: Cell<bool>,
}

impl Relay {
    /// Register `count` buffers of `size` bytes with this worker's ring.
    pub fn new(count: u16, size: usize, splice: bool, file_slots: u32) -> io::Result<Rc<Relay>> {
        let files = match FileTable::register(file_slots) {
            Ok(t) => Some(t),
            Err(e) => {
                warn!(error = %e, slots = file_slots, "no registered file table; tunnel SQEs name descriptors");
                None
            }
        };
        Ok(Rc::new(Relay {
            files,
            bufs: BufRing::register(0, count, size)?,
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            starved: RefCell::new(Vec::new()),
            live: Cell::new(0),
            driving: Cell::new(false),
            returned: Cell::new(false),
            out: Cell::new(0),
            splice,
            pipes: PipePool::new(SPARE_PIPES),
            generation: Cell::new(0),
            handing_over: Cell::new(false),
        }))
    }

    /// Buffers out of the ring now (received, not yet sent): bounded per
    /// moving direction by the backpressure, and 0 when every tunnel idles.
    pub fn buffers_out(&self) -> usize {
        self.out.get()
    }

    /// Tunnels this relay moves now.
    pub fn live(&self) -> usize {
        self.live.get()
    }

    /// Each tunnel's series and bytes so far (client to upstream,
    /// upstream to client: what its sends completed), for a scrape. A
    /// tunnel is here until its task takes its totals
    /// ([`run`]), which its close then counts.
    pub fn live_bytes(&self, f: &mut dyn FnMut(SeriesId, u64, u64)) {
        for s in self.slots.borrow().iter().flatten() {
            f(s.series, s.dirs[0].bytes, s.dirs[1].bytes);
        }
    }

    /// End every tunnel idle past its timeout, whose send has waited past
    /// the send timeout, or whose drain ran past its deadline (without
    /// close frames when a frame is still in flight). Called by the
    /// worker's periodic sweep.
    pub fn sweep(&self, now: Instant) {
        let mut slots = self.slots.borrow_mut();
        for (i, s) in slots.iter_mut().enumerate() {
            let Some(s) = s else { continue };
            if s.end.is_some() {
                continue;
            }
            if s.drain.overdue(now) {
                self.end_if_drained(i as u32, s);
                continue;
            }
            if now.saturating_duration_since(s.last) >= s.idle_timeout {
                self.fail(i as u32, s, End::Idle);
            } else if s.dirs.iter().any(|d| {
                let since = d.sending.map(|(.., since)| since).or(d.bulk_since);
                since.is_some_and(|since| now.saturating_duration_since(since) >= s.send_timeout)
            }) {
                debug!("tunnel send timed out");
                self.fail(i as u32, s, End::Error);
            }
            if s.finished() {
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
            }
        }
    }

    /// Schedule `plan`'s drain of the live tunnels; returns how many.
    pub fn schedule_drain(&self, plan: DrainPlan) -> usize {
        let mut slots = self.slots.borrow_mut();
        let tunnels = slots
            .iter_mut()
            .flatten()
            .filter(|s| s.end.is_none())
            .map(|s| (s.generation, s.upstream, &mut s.drain));
        Drain::schedule(tunnels, plan)
    }

    /// Schedule the drains of the `n` newest tunnels to server `tag`
    /// (`rebalance`); returns how many.
    pub fn schedule_newest(&self, tag: u32, n: usize, plan: DrainPlan) -> usize {
        let mut slots = self.slots.borrow_mut();
        let tunnels = slots
            .iter_mut()
            .flatten()
            .filter(|s| s.end.is_none())
            .map(|s| (s.seq, s.upstream, &mut s.drain));
        Drain::schedule_newest(tunnels, tag, n, plan)
    }

    /// Schedule the drains of the tunnels to server `tag` numbered `ids`
    /// (`rebalance` with a key; `ids` sorted); returns how many were not
    /// draining yet.
    pub fn schedule_ids(&self, tag: u32, ids: &[u32], plan: DrainPlan) -> usize {
        let mut slots = self.slots.borrow_mut();
        let tunnels = slots
            .iter_mut()
            .flatten()
            .filter(|s| s.end.is_none() && s.upstream == tag && ids.binary_search(&s.seq).is_ok())
            .map(|s| (0, s.upstream, &mut s.drain));
        Drain::schedule(tunnels, plan)
    }

    /// Count the tunnels draining, by server tag, into `out`.
    pub fn draining_by_tag(&self, out: &mut std::collections::HashMap<u32, u32>) {
        for s in self.slots.borrow().iter().flatten() {
            if s.end.is_none() && s.drain != Drain::No {
                *out.entry(s.upstream).or_default() += 1;
            }
        }
    }

    /// Start the drains whose turn has come (ending the tunnels already
    /// idle between frames); returns how many still wait for their turn.
    pub fn drain_due(&self, now: Instant) -> usize {
        let mut pending = 0;
        let mut slots = self.slots.borrow_mut();
        for (i, s) in slots.iter_mut().enumerate() {
            let Some(s) = s else { continue };
            if s.drain.start_if_due(now, &mut pending) {
                self.end_if_drained(i as u32, s);
            }
        }
        pending
    }

    /// Binary upgrade: hand every tunnel over at its next quiet moment
    /// (those quiet now at once), and those that start from now on.
    /// Returns how many are marked.
    pub fn hand_over(&self) -> usize {
        self.handing_over.set(true);
        let mut slots = self.slots.borrow_mut();
        let mut n = 0;
        for (i, s) in slots.iter_mut().enumerate() {
            let Some(s) = s else { continue };
            if s.end.is_none() {
                s.handoff = true;
                n += 1;
                self.end_if_handed(i as u32, s);
            }
        }
        n
    }

    /// The new process takes no more tunnels: hand none over from now on
    /// (those already ended for it come back to be adopted here).
    pub fn stop_handing_over(&self) {
        self.handing_over.set(false);
        for s in self.slots.borrow_mut().iter_mut().flatten() {
            s.handoff = false;
        }
    }

    /// End a tunnel marked for handoff once it is quiet: its recvs are
    /// cancelled, and its task hands it over once they are in.
    fn end_if_handed(&self, i: u32, s: &mut Slot) {
        if s.handoff_ready() {
            s.carry = Some(Box::default());
            self.fail(i, s, End::Handoff);
            if s.finished() {
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
            }
        }
    }

    /// End a draining tunnel once both directions idle between frames.
    fn end_if_drained(&self, i: u32, s: &mut Slot) {
        if let Some(end) = s.drain_ready() {
            self.fail(i, s, end);
            if s.finished() {
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
            }
        }
    }

    fn register(
        self: &Rc<Self>,
        fds: [RawFd; 2],
        idle: Duration,
        send: Duration,
        frames: Option<Box<Frames>>,
        names: super::stats::Names,
    ) -> u32 {
        if !self.driving.replace(true) {
            monoio::spawn(Self::drive(Rc::downgrade(self)));
        }
        let slot = Slot {
            fds,
            socks: [Sock::Fd(fds[0]), Sock::Fd(fds[1])],
            dirs: Default::default(),
            inflight: 0,
            end: None,
            waker: None,
            idle_timeout: idle,
            send_timeout: send,
            last: Instant::now()
                .checked_sub(names.idle_for)
                .unwrap_or_else(Instant::now),
            orphan: false,
            frames,
            drain: Drain::No,
            generation: self.generation.get(),
            upstream: names.upstream,
            seq: names.id,
            series: names.series,
            handoff: self.handing_over.get(),
            carry: None,
        };
        let mut slots = self.slots.borrow_mut();
        let i = match self.free.borrow_mut().pop() {
            Some(i) => {
                slots[i as usize] = Some(slot);
                i
            }
            None => {
                slots.push(Some(slot));
                (slots.len() - 1) as u32
            }
        };
        self.live.set(self.live.get() + 1);
        let s = slots[i as usize].as_mut().expect("just placed");
        if let Some(t) = &self.files {
            if 2 * i + 1 < t.slots() && t.set(2 * i, &fds).is_ok() {
                s.socks = [Sock::Fixed(2 * i), Sock::Fixed(2 * i + 1)];
            }
        }
        for d in 0..2 {
            self.arm(i, s, d);
        }
        // Started while the worker hands its tunnels over: it may be
        // quiet already, and nothing else would look.
        if s.handoff {
            self.end_if_handed(i, s);
        }
        i
    }

    fn release(&self, i: u32) -> Option<Slot> {
        let s = self.slots.borrow_mut()[i as usize].take();
        if let (Some(s), Some(t)) = (&s, &self.files) {
            if matches!(s.socks[0], Sock::Fixed(_)) {
                t.clear(2 * i, 2);
            }
        }
        if s.is_some() {
            self.free.borrow_mut().push(i);
            self.live.set(self.live.get() - 1);
        }
        s
    }

    /// The worker's completion loop: runs for as long as the relay.
    async fn drive(relay: std::rc::Weak<Self>) {
        let mut batch: Vec<Completion> = Vec::with_capacity(256);
        let mut orphans: Vec<u32> = Vec::new();
        loop {
            let r = poll_fn(|cx| monoio::ring::poll_completions(cx, &mut batch)).await;
            if let Err(e) = r {
                warn!(error = %e, "ring relay stopped");
                return;
            }
            let Some(this) = relay.upgrade() else { return };
            let this = &*this;
            // One clock read per batch: activity and send start times are
            // this coarse, which the sweeps (≥ 100 ms) do not notice.
            let now = Instant::now();
            // One borrow of the tunnels per batch, not per completion.
            let mut slots = this.slots.borrow_mut();
            for c in batch.drain(..) {
                let (i, d, op) = decode(c.user_data);
                if this.complete(&mut slots, i as u32, d, op, c, now) {
                    orphans.push(i as u32);
                }
            }
            drop(slots);
            // Orphans whose last request is in.
            for i in orphans.drain(..) {
                this.release(i);
            }
            if this.returned.replace(false) {
                this.feed_starved();
            }
        }
    }

    /// Handle one completion of tunnel `i`; true when the tunnel is an
    /// orphan whose last request just completed (release it).
    fn complete(
        &self,
        slots: &mut [Option<Slot>],
        i: u32,
        d: usize,
        op: u64,
        c: Completion,
        now: Instant,
    ) -> bool {
        let Some(s) = slots.get_mut(i as usize).and_then(Option::as_mut) else {
            // Not expected (a slot outlives its requests); keep the buffer.
            if let Some(bid) = ring::completion_buffer(c.flags) {
                self.bufs.give_back(bid);
            }
            return false;
        };
        match op {
            OP_RECV => self.on_recv(i, s, d, c, now),
            OP_SEND => self.on_send(i, s, d, c.result, now),
            OP_POLL_OUT => {
                s.inflight -= 1;
                s.dirs[d].polling = false;
                s.dirs[d].bulk_since = None;
                if s.end.is_some() {
                    if let Some((bid, ..)) = s.dirs[d].sending.take() {
                        self.give(bid);
                    }
                } else if s.dirs[d].pipe.is_some() {
                    self.bulk(i, s, d, now);
                } else {
                    self.resend(i, s, d);
                }
            }
            _ => s.inflight -= 1,
        }
        if matches!(s.drain, Drain::Now { .. }) {
            self.end_if_drained(i, s);
        }
        if s.handoff {
            self.end_if_handed(i, s);
        }
        if !s.finished() {
            return false;
        }
        if s.orphan {
            return true;
        }
        if let Some(w) = s.waker.take() {
            w.wake();
        }
        false
    }

    fn give(&self, bid: u16) {
        self.bufs.give_back(bid);
        self.returned.set(true);
        self.out.set(self.out.get() - 1);
    }

    /// Re-arm directions that ran out of buffers, now that some came back.
    fn feed_starved(&self) {
        if self.starved.borrow().is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut *self.starved.borrow_mut());
        let mut slots = self.slots.borrow_mut();
        for (i, d) in waiting {
            if let Some(Some(s)) = slots.get_mut(i as usize) {
                s.dirs[d].starved = false;
                self.arm(i, s, d);
            }
        }
    }

    /// Arm direction `d`'s recv unless it is armed, ended or held back.
    /// One recv at a time, armed while one buffer is being sent but not
    /// while another waits behind it: at most [`MAX_OUT_PER_DIRECTION`]
    /// buffers are out behind a slow receiver. (A multishot recv saved
    /// 5–7 % of proxy CPU per message here, but it delivers up to 32
    /// buffers per wake-up before a cancel can stop it — 11 to 61 out
    /// behind one receiver that stopped reading, in the core_io
    /// backpressure test — so a few stuck clients could drain a worker's
    /// buffer ring; bench/TARGETS.md.)
    fn arm(&self, i: u32, s: &mut Slot, d: usize) {
        let dir = &s.dirs[d];
        if dir.armed
            || dir.eof
            || dir.starved
            || dir.bulk_next
            || dir.pipe.is_some()
            || !dir.queue.is_empty()
            || s.end.is_some()
        {
            return;
        }
        match ring::recv_select(s.sock(d), self.bufs.group(), user_data(i, d, OP_RECV)) {
            Ok(()) => {
                s.dirs[d].armed = true;
                s.inflight += 1;
            }
            Err(e) => {
                warn!(error = %e, "cannot queue a tunnel recv");
                self.fail(i, s, End::Error);
            }
        }
    }

    fn on_recv(&self, i: u32, s: &mut Slot, d: usize, c: Completion, now: Instant) {
        s.dirs[d].armed = false;
        s.inflight -= 1;
        let bid = ring::completion_buffer(c.flags);
        if bid.is_some() {
            self.out.set(self.out.get() + 1);
        }
        if s.end.is_some() {
            if let Some(bid) = bid {
                // A handed-over tunnel's recv that completed with bytes
                // before its cancel: they cross over with the record.
                if let (Some(carry), n @ 1..) = (s.carry.as_mut(), c.result) {
                    carry[d].extend_from_slice(self.bufs.bytes(bid, n as usize));
                }
                self.give(bid);
            }
            return;
        }
        match c.result {
            n if n > 0 => {
                let Some(bid) = bid else {
                    self.fail(i, s, End::Error);
                    return;
                };
                s.last = now;
                let dir = &mut s.dirs[d];
                dir.queue.push_back((bid, n as u32));
                // A full buffer: more is waiting, splice it after this one.
                dir.bulk_next |= self.splice && n as usize == self.bufs.buffer_size();
            }
            0 => s.dirs[d].eof = true,
            e => match -e {
                libc::ENOBUFS => {
                    s.dirs[d].starved = true;
                    self.starved.borrow_mut().push((i, d));
                }
                libc::ECANCELED | libc::EAGAIN | libc::EINTR => {}
                _ => {
                    debug!(error = %io::Error::from_raw_os_error(-e), "tunnel recv failed");
                    self.fail(i, s, End::Error);
                    return;
                }
            },
        }
        self.next_step(i, s, d, now);
    }

    /// What direction `d` does next: send what is queued, pass the end of
    /// stream on once all is sent, start a splice burst once the recv has
    /// stopped and all is sent, or re-arm the recv.
    fn next_step(&self, i: u32, s: &mut Slot, d: usize, now: Instant) {
        if s.end.is_some() {
            return;
        }
        let dir = &mut s.dirs[d];
        if dir.sending.is_none() {
            if let Some((bid, n)) = dir.queue.pop_front() {
                self.send(i, s, d, bid, 0, n, now);
            }
        }
        let dir = &mut s.dirs[d];
        if dir.sending.is_none() && dir.queue.is_empty() {
            if dir.queue.capacity() > 4 {
                dir.queue = VecDeque::new();
            }
            if dir.eof {
                Self::pass_eof(s, d);
                return;
            }
            if dir.bulk_next && !dir.armed {
                dir.bulk_next = false;
                self.bulk(i, s, d, now);
                return;
            }
        }
        self.arm(i, s, d);
    }

    #[allow(clippy::too_many_arguments)]
    fn send(&self, i: u32, s: &mut Slot, d: usize, bid: u16, off: u32, len: u32, now: Instant) {
        s.dirs[d].sending = Some((bid, off, len, now));
        let r = ring::send(
            s.sock(1 - d),
            &self.bufs,
            bid,
            off as usize,
            (len - off) as usize,
            user_data(i, d, OP_SEND),
        );
        match r {
            Ok(()) => s.inflight += 1,
            Err(e) => {
                warn!(error = %e, "cannot queue a tunnel send");
                self.fail(i, s, End::Error);
            }
        }
    }

    /// Send the rest of the current buffer again (after a short send or
    /// a writability wait).
    fn resend(&self, i: u32, s: &mut Slot, d: usize) {
        if let Some((bid, off, len, since)) = s.dirs[d].sending {
            self.send(i, s, d, bid, off, len, since);
        }
    }

    fn on_send(&self, i: u32, s: &mut Slot, d: usize, res: i32, now: Instant) {
        s.inflight -= 1;
        let Some((bid, off, len, since)) = s.dirs[d].sending else {
            return;
        };
        if s.end.is_some() {
            s.dirs[d].sending = None;
            self.give(bid);
            return;
        }
        if res < 0 {
            if -res == libc::EAGAIN {
                // The socket is non-blocking: wait for room, then resend.
                self.wait_writable(i, s, d);
                return;
            }
            debug!(error = %io::Error::from_raw_os_error(-res), "tunnel send failed");
            s.dirs[d].sending = None;
            self.give(bid);
            self.fail(i, s, End::Error);
            return;
        }
        let off = off + res as u32;
        if off < len {
            s.dirs[d].sending = Some((bid, off, len, since));
            self.resend(i, s, d);
            return;
        }
        if let Some(f) = s.frames.as_mut() {
            f.feed(d, self.bufs.bytes(bid, len as usize));
        }
        let dir = &mut s.dirs[d];
        dir.sending = None;
        dir.bytes += len as u64;
        self.give(bid);
        self.next_step(i, s, d, now);
    }

    /// Move direction `d`'s burst through a pipe with non-blocking
    /// splice(2) until the source is drained (then re-arm the recv), the
    /// destination is full (then wait for it on the ring), the source
    /// ends, or [`SPLICE_TURN`] calls (then wait for the destination on
    /// the ring, at once ready, so other tunnels get their turn).
    fn bulk(&self, i: u32, s: &mut Slot, d: usize, now: Instant) {
        let (pipe, mut in_pipe) = match s.dirs[d].pipe.take() {
            Some(p) => p,
            None => match self.pipes.take() {
                Ok(p) => (p, 0),
                Err(e) => {
                    warn!(error = %e, "cannot make a splice pipe");
                    self.fail(i, s, End::Error);
                    return;
                }
            },
        };
        let (src, dst) = (sys::borrow_raw(s.fds[d]), sys::borrow_raw(s.fds[1 - d]));
        for _ in 0..SPLICE_TURN {
            while in_pipe > 0 {
                match sys::splice(pipe.read_end(), dst, in_pipe) {
                    Ok(n) => {
                        in_pipe -= n;
                        s.dirs[d].bytes += n as u64;
                    }
                    Err(e) if would_block(&e) => {
                        s.dirs[d].pipe = Some((pipe, in_pipe));
                        s.dirs[d].bulk_since = Some(now);
                        self.wait_writable(i, s, d);
                        return;
                    }
                    Err(e) => {
                        debug!(error = %e, "tunnel splice failed");
                        self.fail(i, s, End::Error);
                        return;
                    }
                }
            }
            // A WebSocket frame's payload passes unseen; its next header
            // comes through the recv.
            let room = s.payload_left(d).min(SPLICE_CHUNK as u64) as usize;
            if room == 0 {
                break;
            }
            // The pipe is empty here, so EAGAIN means the socket is drained.
            match sys::splice(src, pipe.write_end(), room) {
                Ok(0) => {
                    self.pipes.give(pipe);
                    s.dirs[d].eof = true;
                    Self::pass_eof(s, d);
                    return;
                }
                Ok(n) => {
                    in_pipe = n;
                    s.last = now;
                    if let Some(f) = s.frames.as_mut() {
                        f.skip(d, n as u64);
                    }
                }
                Err(e) if would_block(&e) => break,
                Err(e) => {
                    debug!(error = %e, "tunnel splice failed");
                    self.fail(i, s, End::Error);
                    return;
                }
            }
        }
        if in_pipe > 0 {
            // The turn ended with bytes in the pipe: go on from the ring
            // (the send timeout runs from here).
            s.dirs[d].pipe = Some((pipe, in_pipe));
            s.dirs[d].bulk_since = Some(now);
            self.wait_writable(i, s, d);
            return;
        }
        self.pipes.give(pipe);
        self.arm(i, s, d);
    }

    /// Wait on the ring for direction `d`'s destination to take bytes.
    fn wait_writable(&self, i: u32, s: &mut Slot, d: usize) {
        s.dirs[d].polling = true;
        match ring::poll_writable(s.sock(1 - d), user_data(i, d, OP_POLL_OUT)) {
            Ok(()) => s.inflight += 1,
            Err(_) => self.fail(i, s, End::Error),
        }
    }

    /// After the source's end of stream and its last byte sent, shut the
    /// destination's write side; both directions done ends the tunnel.
    fn pass_eof(s: &mut Slot, d: usize) {
        let dir = &mut s.dirs[d];
        if dir.done || dir.sending.is_some() || !dir.queue.is_empty() {
            return;
        }
        dir.done = true;
        crate::sys::shutdown_write(s.fd(1 - d));
        if s.dirs.iter().all(|d| d.done) {
            // Who began the WebSocket closing handshake, when one passed;
            // else: direction d ended last, and direction 0 reads the
            // client.
            let client_first = s
                .frames
                .as_ref()
                .and_then(|f| f.client_closed_first())
                .unwrap_or(d == 1);
            s.end = Some(if client_first {
                End::ClientClosed
            } else {
                End::UpstreamClosed
            });
        }
    }

    /// End the tunnel: cancel every request on both sockets; the slot is
    /// finished when their last completions are in.
    fn fail(&self, i: u32, s: &mut Slot, end: End) {
        if s.end.is_some() {
            return;
        }
        s.end = Some(end);
        // A buffer being sent goes back when its send completes; a pipe
        // that may hold bytes is closed, not pooled.
        for dir in &mut s.dirs {
            dir.pipe = None;
            for (bid, _) in dir.queue.drain(..) {
                self.give(bid);
            }
        }
        if s.inflight > 0 {
            for k in 0..2 {
                match ring::cancel_all(s.sock(k), user_data(i, k, OP_CANCEL)) {
                    Ok(()) => s.inflight += 1,
                    Err(e) => warn!(error = %e, "cannot cancel a tunnel's requests"),
                }
            }
        }
    }
}

/// Relay `client` ⇄ `upstream` on the worker's ring until the tunnel ends.
pub async fn run(
    relay: &Rc<Relay>,
    client: &TcpStream,
    upstream: &TcpStream,
    idle_timeout: Duration,
    send_timeout: Duration,
    frames: Option<Box<Frames>>,
    names: super::stats::Names,
) -> Stats {
    let i = relay.register(
        [client.as_raw_fd(), upstream.as_raw_fd()],
        idle_timeout,
        send_timeout,
        frames,
        names,
    );
    // If this task goes away first, the slot ends the tunnel and frees
    // itself once the kernel has let go of the sockets... which it cannot
    // do after they are closed, so the guard also keeps them: see Drop.
    let guard = Guard {
        relay,
        i,
        done: false,
    };
    let stats = poll_fn(|cx| {
        let mut slots = relay.slots.borrow_mut();
        let s = slots[i as usize].as_mut().expect("tunnel slot");
        if s.finished() {
            let end = s.end.unwrap_or(End::Error);
            let handed = (end == End::Handoff).then(|| {
                Box::new(crate::proxy::idle::Handed {
                    frames: s.frames.as_deref().copied(),
                    carry: s.carry.take().map(|c| *c).unwrap_or_default(),
                    idle_for: s.last.elapsed(),
                })
            });
            return Poll::Ready(Stats {
                end,
                client_to_upstream: s.dirs[0].bytes,
                upstream_to_client: s.dirs[1].bytes,
                handed,
            });
        }
        if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    })
    .await;
    let mut guard = guard;
    guard.done = true;
    relay.release(i);
    stats
}

struct Guard<'a> {
    relay: &'a Rc<Relay>,
    i: u32,
    done: bool,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // The tunnel's task is dropped mid-tunnel (worker shutdown): end
        // it; the slot is freed by the completion loop once every request
        // is in. Requests hold their own reference to the sockets' files,
        // so closing the descriptors meanwhile cannot redirect them.
        let mut slots = self.relay.slots.borrow_mut();
        if let Some(s) = slots[self.i as usize].as_mut() {
            self.relay.fail(self.i, s, End::Error);
            if s.finished() {
                drop(slots);
                self.relay.release(self.i);
            } else {
                s.orphan = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    // By path, not `super::*`: tests/layering.rs reads `super` as this
    // file's parent module.
    use crate::proxy::tunnel::ring::*;
    use ringway_config::TunnelRelay;

    #[test]
    fn user_data_round_trips() {
        for (slot, dir, op) in [
            (0u32, 0usize, OP_RECV),
            (123_456, 1, OP_SEND),
            (u32::MAX >> 1, 1, OP_CANCEL),
        ] {
            let ud = user_data(slot, dir, op);
            assert_ne!(ud & TAG, 0);
            assert_eq!(decode(ud), (slot as usize, dir, op));
        }
    }

    #[test]
    fn the_ring_needs_io_uring_and_linux_5_19() {
        let auto = TunnelRelay::Auto;
        assert_eq!(choose(auto, true, Some((6, 18))), Choice::Ring);
        assert_eq!(choose(auto, true, Some((5, 19))), Choice::Ring);
        assert!(matches!(
            choose(auto, true, Some((5, 14))),
            Choice::Syscall(_)
        ));
        assert!(matches!(
            choose(auto, true, Some((5, 18))),
            Choice::Syscall(_)
        ));
        assert!(matches!(choose(auto, true, None), Choice::Syscall(_)));
        assert!(matches!(
            choose(auto, false, Some((6, 18))),
            Choice::Syscall(_)
        ));
        assert!(matches!(
            choose(TunnelRelay::Syscall, true, Some((6, 18))),
            Choice::Syscall("configured")
        ));
    }
}
