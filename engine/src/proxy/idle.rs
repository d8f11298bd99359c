//! Idle timeouts for tunnels: a coarse last-activity sweep per worker.
//!
//! A tunnel registers once and records activity with `touch` (a flag set
//! in its slot — no clock read per burst); a sweep task wakes every
//! `period`, stamps the tunnels that were active since the last sweep with
//! the sweep's own clock read, and marks expired and wakes those idle for
//! longer than their timeout. So a timeout fires up to one period late (a
//! quarter of the shortest timeout, at most 1 s). No timer is armed per
//! tunnel or per message, and an idle tunnel costs one slot here (~48
//! bytes) instead of a timer entry in its own task.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use super::frames::{self, Frames, Goodbye};
use crate::metrics::SeriesId;

/// Why a tunnel's wait on its slot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Idle past its timeout.
    Idle,
    /// Drained: how the tunnel says goodbye (`frames::Goodbye`).
    Drain(Goodbye),
    /// Quiet, and to be handed to a new process (binary upgrade).
    Handoff,
}

/// A tunnel's drain, as its slot knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Drain {
    #[default]
    No,
    /// Asked to drain at `turn` (a spread drain's), and to be gone by
    /// `by`.
    At { turn: Instant, by: Instant },
    /// Its turn came: close at the next point where both directions are
    /// quiet (all they read written) and between frames, until `by`.
    Now { by: Instant },
    /// `by` passed with a frame still in flight (or bytes still moving):
    /// end now, without close frames.
    Overdue,
}

/// One drain's schedule: the tunnels started before configuration
/// generation `before` (all: `u32::MAX`) — and, with `upstream`, only
/// those to the server of that tag (`upstream::verdict`) — take turns
/// from `start`, spread evenly over `spread`, and are gone by `deadline`.
#[derive(Debug, Clone, Copy)]
pub struct DrainPlan {
    pub before: u32,
    pub upstream: Option<u32>,
    pub start: Instant,
    pub spread: Duration,
    pub deadline: Instant,
}

impl Drain {
    /// Schedule the drains of `tunnels` (each its generation and drain
    /// state) that `plan` takes and that are not draining yet: tunnel k
    /// of n at `start + k·spread/n`. Returns n.
    pub fn schedule<'a>(
        tunnels: impl Iterator<Item = (u32, u32, &'a mut Drain)>,
        plan: DrainPlan,
    ) -> usize {
        let picked: Vec<&mut Drain> = tunnels
            .filter(|(generation, tag, d)| {
                *generation < plan.before
                    && plan.upstream.is_none_or(|t| t == *tag)
                    && **d == Drain::No
            })
            .map(|(_, _, d)| d)
            .collect();
        Self::assign(picked, plan)
    }

    /// Schedule the drains of the `n` newest (highest sequence number)
    /// tunnels to server `tag` among `tunnels` (each its sequence number,
    /// server tag and drain state) not draining yet: `rebalance` moves
    /// those, which hold the least state. Returns how many it took.
    pub fn schedule_newest<'a>(
        tunnels: impl Iterator<Item = (u32, u32, &'a mut Drain)>,
        tag: u32,
        n: usize,
        plan: DrainPlan,
    ) -> usize {
        let mut picked: Vec<(u32, &mut Drain)> = tunnels
            .filter(|(_, t, d)| *t == tag && **d == Drain::No)
            .map(|(seq, _, d)| (seq, d))
            .collect();
        picked.sort_unstable_by_key(|(seq, _)| std::cmp::Reverse(*seq));
        picked.truncate(n);
        Self::assign(picked.into_iter().map(|(_, d)| d).collect(), plan)
    }

    /// Tunnel k of n drains at `start + k·spread/n`.
    fn assign(picked: Vec<&mut Drain>, plan: DrainPlan) -> usize {
        let n = picked.len();
        for (k, d) in picked.into_iter().enumerate() {
            let turn = (plan.start + spread_at(plan.spread, k, n)).min(plan.deadline);
            *d = Drain::At {
                turn,
                by: plan.deadline,
            };
        }
        n
    }

    /// At `now`: true when this drain's turn has just come (it is `Now`
    /// from here); `pending` counts those whose turn is still to come.
    pub fn start_if_due(&mut self, now: Instant, pending: &mut usize) -> bool {
        match *self {
            Drain::At { turn, by } if turn <= now => {
                *self = Drain::Now { by };
                true
            }
            Drain::At { .. } => {
                *pending += 1;
                false
            }
            _ => false,
        }
    }

    /// At `now`: true when a drain under way has just run past its
    /// deadline (it is `Overdue` from here).
    pub fn overdue(&mut self, now: Instant) -> bool {
        match *self {
            Drain::At { by, .. } | Drain::Now { by } if by <= now => {
                *self = Drain::Overdue;
                true
            }
            _ => false,
        }
    }

    /// Whether a draining tunnel may end now, and how: once its turn came
    /// and both directions are `quiet` (waiting for their source, all
    /// they read written), at a frame boundary with close frames
    /// (`frames::drain_verdict`); past its deadline without, at once.
    pub fn verdict(&self, frames: Option<&Frames>, quiet: bool) -> Option<Goodbye> {
        let overdue = match self {
            Drain::Now { .. } => false,
            Drain::Overdue => true,
            _ => return None,
        };
        let verdict = if quiet {
            frames::drain_verdict(frames)
        } else {
            None
        };
        verdict.or(overdue.then_some(Goodbye::Cut))
    }
}

/// A handed-over tunnel's state as its relay knew it: what crosses to the
/// new process beside the sockets.
#[derive(Debug, Default)]
pub struct Handed {
    pub frames: Option<Frames>,
    /// Bytes read from each direction's source and not written yet (a
    /// receive that completed while the handoff cancelled it).
    pub carry: [Vec<u8>; 2],
    /// Since the tunnel last moved a byte.
    pub idle_for: std::time::Duration,
}

struct Entry {
    /// The sweep that last saw activity (or the registration).
    last: Instant,
    /// Touched since the last sweep.
    active: bool,
    timeout: Duration,
    expired: bool,
    waker: Option<Waker>,
    /// Frame trackers, for a WebSocket tunnel.
    frames: Option<Frames>,
    /// Each direction waits for its source, having written all it read.
    waiting: [bool; 2],
    drain: Drain,
    /// The worker's configuration generation when the tunnel started.
    generation: u32,
    /// The upstream server's tag (`upstream::verdict`), or `NO_TAG`.
    upstream: u32,
    /// Its number on this worker, in the order tunnels started.
    seq: u32,
    /// The tunnel's series in the worker's metrics.
    series: SeriesId,
    /// Bytes relayed each way (index: the direction), counted where they
    /// are fed to the trackers: no counter of the relay's own.
    bytes: [u64; 2],
    /// Both sides are plain sockets: a binary upgrade may hand it over.
    plain: bool,
    /// To be handed over at its next quiet moment.
    handoff: bool,
}

impl Entry {
    /// Whether a drained tunnel may close now, and how.
    fn drain_ready(&self) -> Option<Wake> {
        let quiet = self.waiting.iter().all(|&w| w);
        self.drain
            .verdict(self.frames.as_ref(), quiet)
            .map(Wake::Drain)
            .or_else(|| (self.handoff && quiet).then_some(Wake::Handoff))
    }
}

#[derive(Default)]
pub struct IdleSweep {
    slots: RefCell<Vec<Option<Entry>>>,
    free: RefCell<Vec<usize>>,
    live: Cell<usize>,
    /// Bumped by each reload: tunnels remember the one they started in.
    pub generation: Cell<u32>,
    /// A binary upgrade hands plain tunnels over: those registered from
    /// now on are marked as they start.
    handing_over: Cell<bool>,
}

impl IdleSweep {
    /// A tunnel's slot; `frames`: a WebSocket tunnel's trackers, which
    /// have seen every byte relayed before the tunnel started (so a drain
    /// can close it between frames); `series`: its metrics series, for
    /// [`IdleSweep::live_bytes`]; `upstream`: the tag of the server it
    /// runs to (a drain may pick its server's tunnels); `seq`: its number
    /// on the worker; `plain`: both sides are plain sockets (a binary
    /// upgrade may hand it over).
    pub fn register(
        &self,
        timeout: Duration,
        frames: Option<Box<Frames>>,
        series: SeriesId,
        upstream: u32,
        seq: u32,
        plain: bool,
    ) -> usize {
        let e = Entry {
            last: Instant::now(),
            active: false,
            timeout,
            expired: false,
            waker: None,
            frames: frames.map(|f| *f),
            waiting: [false; 2],
            drain: Drain::No,
            generation: self.generation.get(),
            upstream,
            seq,
            series,
            bytes: [0; 2],
            plain,
            handoff: plain && self.handing_over.get(),
        };
        self.live.set(self.live.get() + 1);
        let mut slots = self.slots.borrow_mut();
        match self.free.borrow_mut().pop() {
            Some(i) => {
                slots[i] = Some(e);
                i
            }
            None => {
                slots.push(Some(e));
                slots.len() - 1
            }
        }
    }

    /// An adopted tunnel (binary upgrade) was idle for `idle_for` in the
    /// process it came from: its idle timeout goes on from there.
    pub fn backdate(&self, key: usize, idle_for: Duration) {
        if let Some(Some(e)) = self.slots.borrow_mut().get_mut(key) {
            e.last = e.last.checked_sub(idle_for).unwrap_or(e.last);
        }
    }

    /// Binary upgrade: hand every plain tunnel over at its next quiet
    /// moment, and those that start from now on. Returns how many are
    /// marked now.
    pub fn hand_over(&self) -> usize {
        self.handing_over.set(true);
        let mut woken = Vec::new();
        let mut n = 0;
        for e in self.slots.borrow_mut().iter_mut().flatten() {
            if e.plain {
                e.handoff = true;
                n += 1;
                woken.extend(e.waker.take());
            }
        }
        for w in woken {
            w.wake();
        }
        n
    }

    /// The new process takes no more tunnels: hand none over from now on.
    pub fn stop_handing_over(&self) {
        self.handing_over.set(false);
        for e in self.slots.borrow_mut().iter_mut().flatten() {
            e.handoff = false;
        }
    }

    /// Plain tunnels still here (a binary upgrade waits for them).
    pub fn plain_live(&self) -> usize {
        self.slots
            .borrow()
            .iter()
            .flatten()
            .filter(|e| e.plain)
            .count()
    }

    /// What a handed-over tunnel's slot knows, for its record.
    pub fn handed(&self, key: usize) -> Handed {
        match self.slots.borrow().get(key) {
            Some(Some(e)) => Handed {
                frames: e.frames,
                carry: Default::default(),
                idle_for: if e.active {
                    Duration::ZERO
                } else {
                    e.last.elapsed()
                },
            },
            _ => Default::default(),
        }
    }

    /// Free the tunnel's slot; returns the bytes it relayed each way
    /// (`[client to upstream, upstream to client]`).
    pub fn unregister(&self, key: usize) -> [u64; 2] {
        let mut slots = self.slots.borrow_mut();
        match slots.get_mut(key).and_then(Option::take) {
            Some(e) => {
                self.free.borrow_mut().push(key);
                self.live.set(self.live.get() - 1);
                e.bytes
            }
            None => [0; 2],
        }
    }

    /// Each live tunnel's series and bytes so far (client to upstream,
    /// upstream to client), for a scrape.
    pub fn live_bytes(&self, f: &mut dyn FnMut(SeriesId, u64, u64)) {
        for e in self.slots.borrow().iter().flatten() {
            f(e.series, e.bytes[0], e.bytes[1]);
        }
    }

    /// Record activity (seen by the next sweep).
    #[inline]
    pub fn touch(&self, key: usize) {
        if let Some(Some(e)) = self.slots.borrow_mut().get_mut(key) {
            e.active = true;
        }
    }

    pub fn live(&self) -> usize {
        self.live.get()
    }

    /// Bytes a direction has written, in order: counted, and fed to a
    /// WebSocket tunnel's trackers. A direction is named by `slot`: its
    /// tunnel's key times two, plus 0 for the client's bytes or 1 for
    /// the upstream's.
    #[inline]
    pub fn written(&self, slot: usize, bytes: &[u8]) {
        let (key, dir) = (slot >> 1, slot & 1);
        if let Some(Some(e)) = self.slots.borrow_mut().get_mut(key) {
            e.bytes[dir] += bytes.len() as u64;
            if let Some(f) = &mut e.frames {
                f.feed(dir, bytes);
            }
        }
    }

    /// For a WebSocket tunnel whose closing handshake passed: true when
    /// the client began it, false when the upstream did.
    pub fn client_closed_first(&self, key: usize) -> Option<bool> {
        match self.slots.borrow().get(key) {
            Some(Some(Entry {
                frames: Some(f), ..
            })) => f.client_closed_first(),
            _ => None,
        }
    }

    /// A WebSocket close frame has passed in direction `dir` (0: from the
    /// client) of tunnel `key`.
    pub fn saw_close(&self, key: usize, dir: usize) -> bool {
        match self.slots.borrow().get(key) {
            Some(Some(Entry {
                frames: Some(f), ..
            })) => f.saw_close(dir),
            _ => false,
        }
    }

    /// Payload bytes direction `dir` may move unseen (a splice burst):
    /// the rest of the current frame; unbounded when not tracked.
    pub fn payload_left(&self, slot: usize) -> u64 {
        let (key, dir) = (slot >> 1, slot & 1);
        match self.slots.borrow().get(key) {
            Some(Some(Entry {
                frames: Some(f), ..
            })) => f.payload_left(dir),
            _ => u64::MAX,
        }
    }

    /// `n` bytes of direction `dir` moved unseen (spliced): counted, and
    /// skipped by a WebSocket tunnel's trackers (payload bytes).
    #[inline]
    pub fn skipped(&self, slot: usize, n: u64) {
        let (key, dir) = (slot >> 1, slot & 1);
        if let Some(Some(e)) = self.slots.borrow_mut().get_mut(key) {
            e.bytes[dir] += n;
            if let Some(f) = &mut e.frames {
                f.skip(dir, n);
            }
        }
    }

    /// Direction `dir` waits for its source (true) with all it read
    /// written, or moves again (false).
    #[inline]
    pub fn waiting(&self, slot: usize, waiting: bool) {
        let (key, dir) = (slot >> 1, slot & 1);
        if let Some(Some(e)) = self.slots.borrow_mut().get_mut(key) {
            e.waiting[dir] = waiting;
        }
    }

    /// Completes when the sweep finds this entry idle past its timeout, or
    /// when its drain may close it.
    pub async fn expired(&self, key: usize) -> Wake {
        poll_fn(|cx| {
            let mut slots = self.slots.borrow_mut();
            match slots.get_mut(key) {
                Some(Some(e)) if e.expired => Poll::Ready(Wake::Idle),
                Some(Some(e)) => {
                    if let Some(w) = e.drain_ready() {
                        return Poll::Ready(w);
                    }
                    if !e.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        e.waker = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
                _ => Poll::Ready(Wake::Idle),
            }
        })
        .await
    }

    /// Schedule `plan`'s drain of the live tunnels; returns how many.
    pub fn schedule_drain(&self, plan: DrainPlan) -> usize {
        let mut slots = self.slots.borrow_mut();
        let tunnels = slots
            .iter_mut()
            .flatten()
            .map(|e| (e.generation, e.upstream, &mut e.drain));
        Drain::schedule(tunnels, plan)
    }

    /// Schedule the drains of the `n` newest tunnels to server `tag`
    /// (`rebalance`); returns how many.
    pub fn schedule_newest(&self, tag: u32, n: usize, plan: DrainPlan) -> usize {
        let mut slots = self.slots.borrow_mut();
        let tunnels = slots
            .iter_mut()
            .flatten()
            .map(|e| (e.seq, e.upstream, &mut e.drain));
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
            .filter(|e| e.upstream == tag && ids.binary_search(&e.seq).is_ok())
            .map(|e| (0, e.upstream, &mut e.drain));
        Drain::schedule(tunnels, plan)
    }

    /// Count the tunnels draining, by server tag, into `out`.
    pub fn draining_by_tag(&self, out: &mut std::collections::HashMap<u32, u32>) {
        for e in self.slots.borrow().iter().flatten() {
            if e.drain != Drain::No {
                *out.entry(e.upstream).or_default() += 1;
            }
        }
    }

    /// Start the drains whose turn has come; returns how many are still
    /// waiting for theirs.
    pub fn drain_due(&self, now: Instant) -> usize {
        let mut woken = Vec::new();
        let mut pending = 0;
        {
            let mut slots = self.slots.borrow_mut();
            for e in slots.iter_mut().flatten() {
                if e.drain.start_if_due(now, &mut pending) {
                    woken.extend(e.waker.take());
                }
            }
        }
        for w in woken {
            w.wake();
        }
        pending
    }

    /// Mark and wake every entry idle past its timeout at `now`, and
    /// every drain past its deadline.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut woken = Vec::new();
        {
            let mut slots = self.slots.borrow_mut();
            for e in slots.iter_mut().flatten() {
                if e.drain.overdue(now) {
                    woken.extend(e.waker.take());
                }
                if std::mem::take(&mut e.active) {
                    e.last = now;
                } else if !e.expired && now.saturating_duration_since(e.last) >= e.timeout {
                    e.expired = true;
                    if let Some(w) = e.waker.take() {
                        woken.push(w);
                    }
                }
            }
        }
        let n = woken.len();
        for w in woken {
            w.wake();
        }
        n
    }
}

/// When the k-th of n drained tunnels closes, from the drain's start:
/// evenly over `spread` (the first at once, the last at
/// `spread · (n-1)/n`).
pub fn spread_at(spread: Duration, k: usize, n: usize) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    spread.mul_f64(k as f64 / n as f64)
}

/// How often to sweep for timeouts as short as `shortest`: a quarter of it,
/// between 100 ms and 1 s (so a 3600 s timeout fires within a second of
/// its deadline, a 1 s one within 250 ms).
pub fn sweep_period(shortest: Duration) -> Duration {
    (shortest / 4).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> Option<Box<Frames>> {
        Some(Box::default())
    }

    fn plan(before: u32, start: Instant, spread: Duration, deadline: Instant) -> DrainPlan {
        DrainPlan {
            before,
            upstream: None,
            start,
            spread,
            deadline,
        }
    }

    fn closes(w: Option<Wake>) -> bool {
        matches!(w, Some(Wake::Drain(Goodbye::CloseFrames(_))))
    }

    #[test]
    fn expires_only_after_the_timeout_and_touch_resets() {
        let s = IdleSweep::default();
        let a = s.register(
            Duration::from_secs(10),
            None,
            SeriesId::default(),
            0,
            0,
            false,
        );
        let b = s.register(
            Duration::from_secs(1),
            None,
            SeriesId::default(),
            0,
            0,
            false,
        );
        let t0 = Instant::now();
        assert_eq!(s.sweep(t0 + Duration::from_millis(500)), 0);
        s.touch(b);
        assert_eq!(s.live(), 2);
        // b was active before the sweep at +1.5 s: stamped, not expired.
        s.sweep(t0 + Duration::from_millis(1500));
        assert!(!s.slots.borrow()[b].as_ref().unwrap().expired);
        // Idle for a second after that stamp: b expires, a (10 s) not.
        s.sweep(t0 + Duration::from_millis(2600));
        let slots = s.slots.borrow();
        assert!(slots[b].as_ref().unwrap().expired);
        assert!(!slots[a].as_ref().unwrap().expired);
    }

    /// A slot counts what its tunnel wrote and spliced each way, for a
    /// scrape while it is open and for the relay's totals at the end.
    #[test]
    fn slots_count_bytes_for_scrapes_and_the_totals() {
        let m = crate::metrics::Metrics::new(0);
        let ia = m.tunnel_opened("s", "u", "127.0.0.1:1");
        let ib = m.tunnel_opened("s", "u", "127.0.0.1:2");
        let s = IdleSweep::default();
        let a = s.register(Duration::from_secs(60), ws(), ia, 0, 0, false);
        let b = s.register(Duration::from_secs(60), None, ib, 0, 0, false);
        // A 5-byte masked text frame: its head and 2 payload bytes
        // written, 3 spliced; an empty binary frame back.
        s.written(a << 1, &[0x81, 0x85, 1, 2, 3, 4, b'h' ^ 1, b'e' ^ 2]);
        s.skipped(a << 1, 3);
        s.written(a << 1 | 1, &[0x82, 0x00]);
        s.written(b << 1, &[9; 100]);
        s.skipped(b << 1 | 1, 70_000);
        let live = |s: &IdleSweep| {
            let mut seen = Vec::new();
            s.live_bytes(&mut |id, up, down| seen.push((id, up, down)));
            seen
        };
        assert_eq!(live(&s), [(ia, 11, 2), (ib, 100, 70_000)]);
        // The trackers saw them too: the frame ended, a header is due.
        assert_eq!(s.payload_left(a << 1), 0);
        assert_eq!(s.unregister(a), [11, 2]);
        assert_eq!(s.unregister(a), [0, 0], "freed once");
        assert_eq!(live(&s), [(ib, 100, 70_000)]);
        // A new tunnel in the freed slot starts from nothing.
        let c = s.register(Duration::from_secs(60), None, ia, 0, 0, false);
        assert_eq!(c, a);
        assert_eq!(live(&s), [(ia, 0, 0), (ib, 100, 70_000)]);
    }

    #[test]
    fn slots_are_reused() {
        let s = IdleSweep::default();
        let a = s.register(
            Duration::from_secs(1),
            None,
            SeriesId::default(),
            0,
            0,
            false,
        );
        s.unregister(a);
        s.unregister(a);
        assert_eq!(s.live(), 0);
        assert_eq!(
            s.register(
                Duration::from_secs(1),
                None,
                SeriesId::default(),
                0,
                0,
                false
            ),
            a
        );
    }

    #[test]
    fn drains_are_spread_and_wait_for_frame_boundaries() {
        let s = IdleSweep::default();
        let ws = s.register(
            Duration::from_secs(60),
            ws(),
            SeriesId::default(),
            0,
            0,
            false,
        );
        let plain = s.register(
            Duration::from_secs(60),
            None,
            SeriesId::default(),
            0,
            0,
            false,
        );
        let t0 = Instant::now();
        let by = t0 + Duration::from_secs(30);
        assert_eq!(
            s.schedule_drain(plan(u32::MAX, t0, Duration::from_secs(2), by)),
            2
        );
        assert_eq!(
            spread_at(Duration::from_secs(2), 1, 2),
            Duration::from_secs(1)
        );
        // The first's turn is now, the second's in a second.
        assert_eq!(s.drain_due(t0), 1);
        let ready = |key: usize| s.slots.borrow()[key].as_ref().unwrap().drain_ready();
        assert_eq!(ready(ws), None, "directions still moving");
        // The client's direction is mid-frame (a 5-byte text frame, 2 of
        // its payload bytes written), the upstream's idle.
        s.written(ws << 1, &[0x81, 0x85, 1, 2, 3, 4, b'h' ^ 1, b'e' ^ 2]);
        s.waiting(ws << 1, true);
        s.waiting(ws << 1 | 1, true);
        assert_eq!(ready(ws), None, "mid-frame");
        assert_eq!(s.payload_left(ws << 1), 3);
        s.written(ws << 1, &[b'l' ^ 3, b'l' ^ 4, b'o' ^ 1]);
        assert!(closes(ready(ws)));
        // The plain tunnel's turn comes later, and closes without frames.
        s.waiting(plain << 1, true);
        s.waiting(plain << 1 | 1, true);
        assert_eq!(ready(plain), None, "not its turn yet");
        assert_eq!(s.drain_due(t0 + Duration::from_secs(1)), 0);
        assert_eq!(ready(plain), Some(Wake::Drain(Goodbye::Shutdown)));
        assert_eq!(s.payload_left(plain << 1), u64::MAX);
    }

    #[test]
    fn only_older_generations_drain_after_a_reload() {
        let s = IdleSweep::default();
        let old = s.register(
            Duration::from_secs(60),
            ws(),
            SeriesId::default(),
            0,
            0,
            false,
        );
        s.generation.set(1);
        let new = s.register(
            Duration::from_secs(60),
            ws(),
            SeriesId::default(),
            0,
            0,
            false,
        );
        let (now, by) = (Instant::now(), Instant::now() + Duration::from_secs(9));
        assert_eq!(s.schedule_drain(plan(1, now, Duration::ZERO, by)), 1);
        s.drain_due(now);
        let d = |k: usize| s.slots.borrow()[k].as_ref().unwrap().drain;
        assert_eq!(d(old), Drain::Now { by });
        assert_eq!(d(new), Drain::No);
    }

    /// A drained tunnel whose frame never finishes is closed without a
    /// close frame once its deadline passes; one still moving bytes too.
    #[test]
    fn past_the_deadline_a_drain_cuts_without_close_frames() {
        let s = IdleSweep::default();
        let mid = s.register(
            Duration::from_secs(60),
            ws(),
            SeriesId::default(),
            0,
            0,
            false,
        );
        let busy = s.register(
            Duration::from_secs(60),
            ws(),
            SeriesId::default(),
            0,
            0,
            false,
        );
        let t0 = Instant::now();
        let by = t0 + Duration::from_secs(1);
        s.schedule_drain(plan(u32::MAX, t0, Duration::ZERO, by));
        s.drain_due(t0);
        let ready = |key: usize| s.slots.borrow()[key].as_ref().unwrap().drain_ready();
        // 1 MiB frame header and 1,000 of its bytes from the upstream.
        let mut head = vec![0x82, 0x7f];
        head.extend_from_slice(&(1u64 << 20).to_be_bytes());
        s.written(mid << 1 | 1, &head);
        s.written(mid << 1 | 1, &[0u8; 1000]);
        for k in [mid << 1, mid << 1 | 1, busy << 1] {
            s.waiting(k, true);
        }
        assert_eq!(ready(mid), None, "mid-frame: wait for the boundary");
        assert_eq!(ready(busy), None, "bytes moving: wait");
        s.sweep(t0 + Duration::from_millis(999));
        assert_eq!(ready(mid), None, "before the deadline");
        s.sweep(by);
        assert_eq!(ready(mid), Some(Wake::Drain(Goodbye::Cut)));
        assert_eq!(ready(busy), Some(Wake::Drain(Goodbye::Cut)));
        // Quiet and between frames past the deadline: close frames still.
        let late = s.register(
            Duration::from_secs(60),
            ws(),
            SeriesId::default(),
            0,
            0,
            false,
        );
        s.schedule_drain(plan(u32::MAX, by, Duration::ZERO, by));
        s.sweep(by);
        s.waiting(late << 1, true);
        s.waiting(late << 1 | 1, true);
        assert!(closes(ready(late)));
    }

    #[test]
    fn sweep_periods() {
        assert_eq!(
            sweep_period(Duration::from_secs(3600)),
            Duration::from_secs(1)
        );
        assert_eq!(
            sweep_period(Duration::from_secs(1)),
            Duration::from_millis(250)
        );
        assert_eq!(
            sweep_period(Duration::from_millis(100)),
            Duration::from_millis(100)
        );
    }
}
