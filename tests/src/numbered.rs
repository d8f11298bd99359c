//! WebSocket tunnels that carry numbered messages both ways, all the
//! time, so that a test can prove none was lost, duplicated or reordered
//! while something happened to the proxy (a binary upgrade).
//!
//! - [`NumberedBackend`]: a WebSocket backend served by a few poll(2)
//!   loops (thousands of connections, no thread each). On `/ws/ID` it
//!   echoes every message and sends its own numbered messages
//!   (`b ID SEQ`), one every [`INTERVAL_MS`] (jittered); it checks that
//!   the client's messages (`c ID SEQ`) come in order, each once. Any other
//!   path is a plain echo that records what came (binary messages by
//!   length and hash, close codes) for [`NumberedBackend::events`].
//! - [`Load`]: the clients of those tunnels, spread over a few threads,
//!   each sending its own numbered messages and checking the echoes and
//!   the backend's stream.
//! - [`Tally`]: the counts per tunnel and the problems either end saw;
//!   [`Load::mark`] / [`Load::wait_progress`] prove every tunnel still
//!   carries traffic both ways, [`Load::finish`] stops the senders and
//!   checks that every message arrived exactly once, in order.
//!
//! The message text is `TAG ID SEQ PAD` (`PAD` a few bytes of varying
//! length, so frames differ in size).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::handshake::server::{Request, Response};
use tungstenite::{Message, WebSocket};

use crate::ws_config;

/// The interval between two numbered messages of one sender, in ms
/// (each drawn at random from this range).
pub const INTERVAL_MS: std::ops::Range<u64> = 100..300;

/// Problems kept in words (the rest are only counted).
const KEEP_PROBLEMS: usize = 200;

/// A small xorshift (no dependency, seeded per tunnel: reproducible).
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
    fn interval(&mut self) -> Duration {
        Duration::from_millis(INTERVAL_MS.start + self.below(INTERVAL_MS.end - INTERVAL_MS.start))
    }
}

/// One tunnel's counts (each written by one thread, read by the test).
#[derive(Default)]
pub struct Counts {
    /// Messages the client sent.
    pub client_sent: AtomicU64,
    /// Echoes of them the client received, in order.
    pub client_echoed: AtomicU64,
    /// Backend messages the client received, in order.
    pub client_got: AtomicU64,
    /// Messages the backend sent (its own, not the echoes).
    pub backend_sent: AtomicU64,
    /// Client messages the backend received, in order.
    pub backend_got: AtomicU64,
    /// Connections the backend accepted for this tunnel (1: never
    /// reconnected).
    pub backend_conns: AtomicUsize,
    /// An end of this tunnel saw it end (a close or an error).
    pub ended: AtomicBool,
}

/// What the ends of every tunnel counted and the problems they saw.
pub struct Tally {
    pub tunnels: Vec<Counts>,
    problems: Mutex<Vec<String>>,
    problem_count: AtomicUsize,
    /// No new numbered message from now on (echoes go on).
    stop_sending: AtomicBool,
    /// Loops that have seen `stop_sending` (and so send no more).
    quiet_loops: AtomicUsize,
    /// The test is over: ends seen from now on are no problem.
    stop: AtomicBool,
}

impl Tally {
    fn new(n: usize) -> Arc<Tally> {
        Arc::new(Tally {
            tunnels: (0..n).map(|_| Counts::default()).collect(),
            problems: Mutex::new(Vec::new()),
            problem_count: AtomicUsize::new(0),
            stop_sending: AtomicBool::new(false),
            quiet_loops: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        })
    }

    fn problem(&self, what: String) {
        if self.stop.load(Ordering::SeqCst) {
            return;
        }
        if self.problem_count.fetch_add(1, Ordering::SeqCst) < KEEP_PROBLEMS {
            self.problems.lock().unwrap().push(what);
        }
    }

    /// How many problems were seen, and the first ones in words.
    pub fn problems(&self) -> (usize, Vec<String>) {
        (
            self.problem_count.load(Ordering::SeqCst),
            self.problems.lock().unwrap().clone(),
        )
    }

    /// Panic listing the problems, if any.
    pub fn assert_no_problems(&self, when: &str) {
        let (n, first) = self.problems();
        assert!(
            n == 0,
            "{when}: {n} problems on the tunnels (lost, duplicated, reordered messages, tunnels ended); the first:\n{}",
            first.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
        );
    }
}

/// What came on a plain echo connection of a [`NumberedBackend`], in
/// order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Text(String),
    /// A binary message: its length and hash ([`hash`]).
    Binary(usize, u64),
    /// A close frame's code (1005: none).
    Close(u16),
    /// How the connection ended otherwise.
    End(String),
}

/// The hash the backend records binary messages by.
pub fn hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Which end of a tunnel a [`Peer`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Backend,
}

/// What a backend connection does.
enum Kind {
    /// `/ws/ID`: numbered messages both ways.
    Numbered(usize),
    /// Any other path: echo, recording events under the path (unless it
    /// starts with `/fresh/`).
    Echo(String),
}

/// One end of a connection in a poll loop (non-blocking socket).
struct Peer {
    ws: WebSocket<TcpStream>,
    side: Side,
    kind: Kind,
    rng: Rng,
    next_send: Instant,
    /// tungstenite holds bytes it could not write yet.
    want_write: bool,
    /// The loop's epoll watches for writability.
    polled_out: bool,
    done: bool,
}

impl Peer {
    fn new(ws: WebSocket<TcpStream>, side: Side, kind: Kind) -> Peer {
        ws.get_ref().set_nonblocking(true).unwrap();
        let seed = match &kind {
            Kind::Numbered(id) => *id as u64 * 2 + (side == Side::Backend) as u64,
            Kind::Echo(_) => 7,
        };
        let mut rng = Rng::new(seed);
        let next_send = Instant::now() + rng.interval();
        Peer {
            ws,
            side,
            kind,
            rng,
            next_send,
            want_write: false,
            polled_out: false,
            done: false,
        }
    }

    fn id(&self) -> Option<usize> {
        match self.kind {
            Kind::Numbered(id) => Some(id),
            Kind::Echo(_) => None,
        }
    }

    /// Queue `m` and write what can be written.
    fn send(&mut self, m: Message) -> Result<(), String> {
        match self.ws.write(m) {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                self.want_write = true;
                return Ok(());
            }
            Err(e) => return Err(format!("write: {e}")),
        }
        self.flush()
    }

    fn flush(&mut self) -> Result<(), String> {
        match self.ws.flush() {
            Ok(()) => {
                self.want_write = false;
                Ok(())
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                self.want_write = true;
                Ok(())
            }
            Err(e) => Err(format!("flush: {e}")),
        }
    }

    fn end(&mut self, tally: &Tally, events: &Events, why: String) {
        self.done = true;
        match &self.kind {
            Kind::Numbered(id) => {
                tally.tunnels[*id].ended.store(true, Ordering::SeqCst);
                tally.problem(format!("tunnel {id} ({:?} end): {why}", self.side));
            }
            Kind::Echo(path) => record(events, path, Event::End(why)),
        }
    }

    /// Send this peer's next numbered message if it is due.
    fn send_due(&mut self, tally: &Tally, events: &Events, now: Instant) {
        let Some(id) = self.id() else { return };
        if self.done || now < self.next_send {
            return;
        }
        self.next_send = now + self.rng.interval();
        let c = &tally.tunnels[id];
        let (tag, counter) = match self.side {
            Side::Client => ('c', &c.client_sent),
            Side::Backend => ('b', &c.backend_sent),
        };
        let seq = counter.load(Ordering::SeqCst);
        let text = format!("{tag} {id} {seq} {}", "x".repeat((seq % 61) as usize));
        match self.send(Message::text(text)) {
            Ok(()) => {
                counter.store(seq + 1, Ordering::SeqCst);
            }
            Err(e) => self.end(tally, events, e),
        }
    }

    /// Read everything that is there; check and answer it.
    fn read_all(&mut self, tally: &Tally, events: &Events) {
        while !self.done {
            match self.ws.read() {
                Ok(Message::Text(t)) => self.on_text(tally, events, t.to_string()),
                Ok(Message::Binary(b)) => match &self.kind {
                    Kind::Echo(path) => {
                        record(events, path, Event::Binary(b.len(), hash(&b)));
                        if let Err(e) = self.send(Message::Binary(b)) {
                            self.end(tally, events, e);
                        }
                    }
                    Kind::Numbered(id) => tally.problem(format!(
                        "tunnel {id} ({:?} end): a binary message of {} bytes",
                        self.side,
                        b.len()
                    )),
                },
                Ok(Message::Close(f)) => {
                    let code = f.map_or(1005, |f| u16::from(f.code));
                    // tungstenite queued the reply: write it (as a server
                    // it then ends the connection).
                    let _ = self.flush();
                    match &self.kind {
                        Kind::Echo(path) => {
                            record(events, path, Event::Close(code));
                            self.done = true;
                        }
                        Kind::Numbered(_) => {
                            self.end(tally, events, format!("a close frame {code}"));
                        }
                    }
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => self.end(tally, events, crate::tunnel::ended(&e)),
            }
        }
        // Pongs and close replies tungstenite queued while reading.
        if !self.done && self.want_write {
            if let Err(e) = self.flush() {
                self.end(tally, events, e);
            }
        }
    }

    fn on_text(&mut self, tally: &Tally, events: &Events, text: String) {
        let id = match &self.kind {
            Kind::Echo(path) => {
                if !path.starts_with("/fresh/") {
                    record(events, path, Event::Text(text.clone()));
                }
                if let Err(e) = self.send(Message::text(text)) {
                    self.end(tally, events, e);
                }
                return;
            }
            Kind::Numbered(id) => *id,
        };
        let mut it = text.split(' ');
        let (tag, from, seq) = (it.next(), it.next(), it.next());
        let parsed = from
            .and_then(|f| f.parse::<usize>().ok())
            .zip(seq.and_then(|s| s.parse::<u64>().ok()));
        let Some((from, seq)) = parsed.filter(|&(from, _)| from == id) else {
            tally.problem(format!(
                "tunnel {id} ({:?} end): a stray message {:?}",
                self.side,
                text.get(..40).unwrap_or(&text)
            ));
            return;
        };
        let c = &tally.tunnels[from];
        let (counter, what) = match (self.side, tag) {
            (Side::Client, Some("c")) => (&c.client_echoed, "echo of its own message"),
            (Side::Client, Some("b")) => (&c.client_got, "backend message"),
            (Side::Backend, Some("c")) => (&c.backend_got, "client message"),
            _ => {
                tally.problem(format!(
                    "tunnel {id} ({:?} end): unexpected {:?}",
                    self.side,
                    text.get(..40).unwrap_or(&text)
                ));
                return;
            }
        };
        let want = counter.load(Ordering::SeqCst);
        if seq != want {
            let how = if seq < want {
                "duplicated or reordered"
            } else {
                "lost or reordered"
            };
            tally.problem(format!(
                "tunnel {id} ({:?} end): {what} #{seq} came when #{want} was due ({how})",
                self.side
            ));
        }
        // Follow the stream from what came, so one gap is one problem.
        counter.store(seq + 1, Ordering::SeqCst);
        if self.side == Side::Backend {
            if let Err(e) = self.send(Message::text(text)) {
                self.end(tally, events, e);
            }
        }
    }
}

type Events = Arc<Mutex<HashMap<String, Vec<Event>>>>;

fn record(events: &Events, path: &str, e: Event) {
    events
        .lock()
        .unwrap()
        .entry(path.to_string())
        .or_default()
        .push(e);
}

/// How often a loop looks for numbered messages due (they go out up to
/// this late).
const SCAN: Duration = Duration::from_millis(5);

/// How long a loop lets events gather before it serves them.
const BATCH: Duration = Duration::from_millis(2);

/// An epoll instance (level-triggered) over the loop's sockets, each
/// registered with its token.
struct Epoll(OwnedFd);

impl Epoll {
    fn new() -> Epoll {
        // SAFETY: epoll_create1 returns a new descriptor or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(
            fd >= 0,
            "epoll_create1: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: `fd` is a descriptor just returned to us, owned once.
        Epoll(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn ctl(&self, op: i32, fd: i32, token: u64, out: bool) {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | if out { libc::EPOLLOUT } else { 0 }) as u32,
            u64: token,
        };
        // SAFETY: epoll_ctl with our epoll descriptor, a socket the loop
        // owns and a valid event.
        let r = unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut ev) };
        assert_eq!(r, 0, "epoll_ctl: {}", std::io::Error::last_os_error());
    }

    /// Wait up to `ms` for events into `evs`; how many came.
    fn wait(&self, evs: &mut [libc::epoll_event], ms: i32) -> usize {
        // SAFETY: `evs` is a valid, writable array of its length.
        let n =
            unsafe { libc::epoll_wait(self.0.as_raw_fd(), evs.as_mut_ptr(), evs.len() as i32, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            assert_eq!(e.kind(), ErrorKind::Interrupted, "epoll_wait: {e}");
            return 0;
        }
        n as usize
    }
}

/// The peers of one loop, by token, in its epoll.
struct Peers {
    ep: Epoll,
    by_token: HashMap<u64, Peer>,
    next_token: u64,
}

impl Peers {
    fn add(&mut self, p: Peer) {
        let token = self.next_token;
        self.next_token += 1;
        self.ep.ctl(
            libc::EPOLL_CTL_ADD,
            p.ws.get_ref().as_raw_fd(),
            token,
            p.want_write,
        );
        self.by_token.insert(
            token,
            Peer {
                polled_out: p.want_write,
                ..p
            },
        );
    }

    /// After `token`'s peer was served: drop it if it is done, else
    /// watch for writability while tungstenite holds bytes.
    fn settle(&mut self, token: u64) {
        let Some(p) = self.by_token.get_mut(&token) else {
            return;
        };
        if p.done {
            // Closing the socket takes it out of the epoll.
            self.by_token.remove(&token);
        } else if p.want_write != p.polled_out {
            p.polled_out = p.want_write;
            self.ep.ctl(
                libc::EPOLL_CTL_MOD,
                p.ws.get_ref().as_raw_fd(),
                token,
                p.want_write,
            );
        }
    }
}

/// Serve `peers` (and those that come on `incoming`) with epoll until
/// `stop`.
fn poll_loop(
    peers: Vec<Peer>,
    incoming: Option<Receiver<Peer>>,
    tally: Arc<Tally>,
    events: Events,
    stop: Arc<AtomicBool>,
) {
    let mut all = Peers {
        ep: Epoll::new(),
        by_token: HashMap::new(),
        next_token: 0,
    };
    for p in peers {
        all.add(p);
    }
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut quiet = false;
    let mut next_scan = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if !quiet && tally.stop_sending.load(Ordering::SeqCst) {
            quiet = true;
            tally.quiet_loops.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(rx) = &incoming {
            for p in rx.try_iter() {
                all.add(p);
            }
        }
        let wait_ms = if quiet {
            20
        } else {
            next_scan
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(20) as i32
        };
        let mut n = all.ep.wait(&mut evs, wait_ms);
        if n > 0 && n < evs.len() {
            // Batching: let more arrive, then serve all that is ready
            // (level-triggered: the first ones again too), so a loop
            // wakes a few hundred times a second rather than once per
            // message — the CPU is shared with ringway (not a
            // synchronisation).
            thread::sleep(BATCH);
            n = all.ep.wait(&mut evs, 0);
        }
        for ev in &evs[..n] {
            let (token, what) = (ev.u64, ev.events);
            let Some(p) = all.by_token.get_mut(&token) else {
                continue;
            };
            if what & libc::EPOLLOUT as u32 != 0 {
                if let Err(e) = p.flush() {
                    p.end(&tally, &events, e);
                }
            }
            if what & !(libc::EPOLLOUT as u32) != 0 {
                p.read_all(&tally, &events);
            }
            all.settle(token);
        }
        let now = Instant::now();
        if !quiet && now >= next_scan {
            next_scan = now + SCAN;
            let tokens: Vec<u64> = all
                .by_token
                .iter_mut()
                .filter(|(_, p)| p.id().is_some_and(|_| now >= p.next_send))
                .map(|(t, p)| {
                    p.send_due(&tally, &events, now);
                    *t
                })
                .collect();
            for t in tokens {
                all.settle(t);
            }
        }
    }
}

/// A WebSocket backend of numbered tunnels (`/ws/ID`, ID below its
/// capacity) and plain echo connections (any other path), served by
/// `loops` poll loops. Connections are spread over the loops in turn.
pub struct NumberedBackend {
    pub addr: SocketAddr,
    pub tally: Arc<Tally>,
    events: Events,
    loops: usize,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    accept_thread: Option<thread::JoinHandle<()>>,
    loop_threads: Vec<thread::JoinHandle<()>>,
}

impl NumberedBackend {
    /// Listen on a free port of 127.0.0.1, for up to `capacity`
    /// numbered tunnels (`/ws/0` … `/ws/{capacity-1}`).
    pub fn start(capacity: usize, loops: usize) -> NumberedBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind numbered backend");
        let addr = listener.local_addr().unwrap();
        let tally = Tally::new(capacity);
        let events: Events = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut senders: Vec<Sender<Peer>> = Vec::new();
        let mut loop_threads = Vec::new();
        for _ in 0..loops {
            let (tx, rx) = channel();
            senders.push(tx);
            let (tally, events, stop) = (tally.clone(), events.clone(), stop.clone());
            loop_threads.push(thread::spawn(move || {
                poll_loop(Vec::new(), Some(rx), tally, events, stop)
            }));
        }
        let (t2, a2, s2) = (tally.clone(), accepted.clone(), stop.clone());
        let accept_thread = thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                a2.fetch_add(1, Ordering::SeqCst);
                // Each handshake in a thread of its own: one that stalls
                // (up to its read timeout) holds no other back.
                let (tally, to) = (t2.clone(), senders[n % senders.len()].clone());
                thread::spawn(move || match handshake(conn, &tally) {
                    Ok(peer) => {
                        let _ = to.send(peer);
                    }
                    Err(e) => tally.problem(format!("backend handshake: {e}")),
                });
            }
        });
        NumberedBackend {
            addr,
            tally,
            events,
            loops,
            accepted,
            stop,
            accept_thread: Some(accept_thread),
            loop_threads,
        }
    }

    /// What came on the plain echo connection at `path`, in order.
    pub fn events(&self, path: &str) -> Vec<Event> {
        self.events
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// Wait (bounded) until the events at `path` satisfy `ok`; them.
    pub fn wait_events(
        &self,
        path: &str,
        timeout: Duration,
        ok: impl Fn(&[Event]) -> bool,
    ) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let ev = self.events(path);
            if ok(&ev) || Instant::now() >= deadline {
                return ev;
            }
            // Pacing for a poll of the backend's record with a deadline.
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Connections accepted so far (every kind).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for NumberedBackend {
    fn drop(&mut self) {
        self.tally.stop.store(true, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        for t in self.loop_threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The server side of a handshake (blocking, bounded by a read timeout),
/// as a [`Peer`] by its path.
// tungstenite's callback signature fixes the error type.
#[allow(clippy::result_large_err)]
fn handshake(conn: TcpStream, tally: &Tally) -> Result<Peer, String> {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    conn.set_write_timeout(Some(Duration::from_secs(10))).ok();
    conn.set_nodelay(true).ok();
    let mut path = String::new();
    let ws = tungstenite::accept_hdr_with_config(
        conn,
        |req: &Request, resp: Response| {
            path = req.uri().path().to_string();
            Ok(resp)
        },
        Some(ws_config()),
    )
    .map_err(|e| format!("{e}"))?;
    let id = path
        .strip_prefix("/ws/")
        .and_then(|i| i.parse::<usize>().ok())
        .filter(|&i| i < tally.tunnels.len());
    let kind = match id {
        Some(id) => {
            let n = tally.tunnels[id]
                .backend_conns
                .fetch_add(1, Ordering::SeqCst);
            if n > 0 {
                tally.problem(format!(
                    "tunnel {id}: the backend got connection #{}",
                    n + 1
                ));
            }
            Kind::Numbered(id)
        }
        None => Kind::Echo(path),
    };
    Ok(Peer::new(ws, Side::Backend, kind))
}

/// A snapshot of every tunnel's counts, to see progress from.
pub struct Mark(Vec<[u64; 3]>);

/// The clients of a [`NumberedBackend`]'s tunnels through a proxy.
pub struct Load {
    tally: Arc<Tally>,
    n: usize,
    loops: usize,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    /// Open the backend's `capacity` tunnels through `proxy` (Host `app`,
    /// path `/ws/ID`) from `threads` client threads, and keep them
    /// exchanging numbered messages; returns once every one is open
    /// (panics if one fails, or after `open_within`).
    pub fn start(
        proxy: SocketAddr,
        backend: &NumberedBackend,
        threads: usize,
        open_within: Duration,
    ) -> Load {
        let tally = backend.tally.clone();
        let n = tally.tunnels.len();
        let opened = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(Mutex::new(Vec::<String>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..threads)
            .map(|t| {
                let (tally, opened, failed, stop) =
                    (tally.clone(), opened.clone(), failed.clone(), stop.clone());
                let ids: Vec<usize> = (t..n).step_by(threads).collect();
                thread::spawn(move || {
                    let mut peers = Vec::new();
                    for id in ids {
                        match open(proxy, id) {
                            Ok(ws) => {
                                peers.push(Peer::new(ws, Side::Client, Kind::Numbered(id)));
                                opened.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => failed.lock().unwrap().push(format!("tunnel {id}: {e}")),
                        }
                    }
                    poll_loop(peers, None, tally, Arc::default(), stop);
                })
            })
            .collect();
        let load = Load {
            tally,
            n,
            loops: threads + backend.loops,
            stop,
            threads: handles,
        };
        let started = Instant::now();
        let deadline = started + open_within;
        loop {
            let (ok, bad) = (opened.load(Ordering::SeqCst), failed.lock().unwrap().len());
            assert!(
                bad == 0,
                "{bad} tunnels failed to open: {:?}",
                failed.lock().unwrap().iter().take(10).collect::<Vec<_>>()
            );
            if ok == n {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {ok} of {n} tunnels open within {open_within:?}"
            );
            // Pacing for a poll of a count with a deadline.
            thread::sleep(Duration::from_millis(10));
        }
        eprintln!("{n} numbered tunnels open in {:?}", started.elapsed());
        load
    }

    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Every tunnel's counts now.
    pub fn mark(&self) -> Mark {
        Mark(
            self.tally
                .tunnels
                .iter()
                .map(|c| {
                    [
                        c.client_echoed.load(Ordering::SeqCst),
                        c.client_got.load(Ordering::SeqCst),
                        c.backend_got.load(Ordering::SeqCst),
                    ]
                })
                .collect(),
        )
    }

    /// Wait (bounded) until every tunnel has, since `mark`, carried a
    /// message each way (an echo and a backend message to the client, a
    /// client message to the backend); panics naming the stuck ones.
    pub fn wait_progress(&self, mark: &Mark, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.mark();
            let stuck: Vec<usize> = (0..self.n)
                .filter(|&i| (0..3).any(|k| now.0[i][k] <= mark.0[i][k]))
                .collect();
            if stuck.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                self.tally.assert_no_problems("tunnels stuck");
                panic!(
                    "{} tunnels carried nothing one way or the other within {timeout:?}: {:?}",
                    stuck.len(),
                    stuck
                        .iter()
                        .take(20)
                        .map(|&i| (i, mark.0[i], now.0[i]))
                        .collect::<Vec<_>>()
                );
            }
            // Pacing for a poll of the counts with a deadline.
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop every sender, wait (bounded) until what was sent has arrived,
    /// and check that every message arrived exactly once, in order, and
    /// that no tunnel ended; stops the clients. The messages counted.
    pub fn finish(mut self, timeout: Duration) -> u64 {
        let t = &self.tally;
        t.stop_sending.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        while t.quiet_loops.load(Ordering::SeqCst) < self.loops {
            assert!(
                Instant::now() < deadline,
                "the senders did not stop within {timeout:?}"
            );
            // Pacing for a poll of a count with a deadline.
            thread::sleep(Duration::from_millis(5));
        }
        let behind = |c: &Counts| {
            let sent = c.client_sent.load(Ordering::SeqCst);
            c.client_echoed.load(Ordering::SeqCst) != sent
                || c.backend_got.load(Ordering::SeqCst) != sent
                || c.client_got.load(Ordering::SeqCst) != c.backend_sent.load(Ordering::SeqCst)
        };
        loop {
            let late: Vec<usize> = (0..self.n).filter(|&i| behind(&t.tunnels[i])).collect();
            if late.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                t.assert_no_problems("finishing");
                panic!(
                    "{} tunnels still missing messages {timeout:?} after the senders stopped: {}",
                    late.len(),
                    late.iter()
                        .take(20)
                        .map(|&i| self.describe(i))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
            // Pacing for a poll of the counts with a deadline.
            thread::sleep(Duration::from_millis(10));
        }
        t.assert_no_problems("at the end");
        let ended: Vec<usize> = (0..self.n)
            .filter(|&i| t.tunnels[i].ended.load(Ordering::SeqCst))
            .collect();
        assert!(ended.is_empty(), "tunnels ended: {ended:?}");
        let total = t
            .tunnels
            .iter()
            .map(|c| {
                c.client_sent.load(Ordering::SeqCst) * 2 + c.backend_sent.load(Ordering::SeqCst)
            })
            .sum();
        self.stop();
        total
    }

    /// One tunnel's counts in words.
    pub fn describe(&self, i: usize) -> String {
        let c = &self.tally.tunnels[i];
        format!(
            "tunnel {i}: client sent {} echoed {} got {}; backend sent {} got {}",
            c.client_sent.load(Ordering::SeqCst),
            c.client_echoed.load(Ordering::SeqCst),
            c.client_got.load(Ordering::SeqCst),
            c.backend_sent.load(Ordering::SeqCst),
            c.backend_got.load(Ordering::SeqCst)
        )
    }

    fn stop(&mut self) {
        self.tally.stop.store(true, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            if let Err(e) = t.join() {
                std::panic::resume_unwind(e);
            }
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.tally.stop.store(true, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A client WebSocket to `proxy` at `/ws/ID` (Host `app`), blocking.
fn open(proxy: SocketAddr, id: usize) -> Result<WebSocket<TcpStream>, String> {
    let s = TcpStream::connect_timeout(&proxy, Duration::from_secs(10))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(15))).ok();
    s.set_write_timeout(Some(Duration::from_secs(15))).ok();
    s.set_nodelay(true).ok();
    tungstenite::client::client_with_config(format!("ws://app/ws/{id}"), s, Some(ws_config()))
        .map(|(ws, _)| ws)
        .map_err(|e| format!("handshake: {e}"))
}
