//! `ringway-echo`: the WebSocket echo backend for benchmarks and examples.
//!
//! ```text
//! ringway-echo [--listen 127.0.0.1:3000] [--threads 1] [--driver epoll|io_uring]
//! ```
//!
//! Each thread runs its own monoio runtime and accepts on its own
//! SO_REUSEPORT listener (all bound on the main thread first, so port 0
//! works: the first picks the port, the others share it). Prints
//! `listening addr=IP:PORT` on stdout once every listener is bound.
//!
//! Per connection: read the request head; a WebSocket upgrade gets 101 with
//! `Sec-WebSocket-Accept` (RFC 6455 §4.2.2), anything else a small 200
//! (keep-alive as the client asks: the REST backend of the HTTP benchmark). Then every client frame is unmasked and echoed
//! unmasked, frame by frame with its first byte kept (fragmented messages
//! come back fragmented alike); ping → pong, pong dropped, close echoed and
//! the connection closed (§5.5). An unmasked or oversized frame ends the
//! connection. An idle connection holds a small read buffer only.
//!
//! Fanout (broadcast): a WebSocket upgrade whose request path ends in
//! `/fanout` (query ignored, trailing slashes ignored: `/fanout`,
//! `/ws/fanout`, `/ws/fanout/?room=1`; not `/ws/fanouts` nor `/fanout/x`)
//! joins its backend thread's broadcast group instead of being echoed; any
//! text or binary message a member sends (fragmented ones reassembled) goes
//! to every member of the group, the sender included, as one unmasked
//! frame. Ping → pong to the sender; close → echoed, and the member leaves.
//! The group is per backend thread (each `--threads` runtime has its own,
//! and SO_REUSEPORT spreads connections over them), so run with
//! `--threads 1` when every subscriber must see every message. A member
//! whose unsent frames pass [`FANOUT_QUEUE`] bytes (a reader that does not
//! keep up) is dropped.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use lexopt::prelude::*;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use ringway_bench::handshake::{self, HandshakeError};
use ringway_bench::rt::{self, Driver};
use ringway_bench::ws;

/// Longest frame echoed; longer ones end the connection.
const MAX_FRAME: usize = 64 << 20;
/// Read buffer an idle connection keeps (grown on demand, given back once
/// drained).
const IDLE_BUF: usize = 512;
/// Above this capacity a drained buffer is given back.
const KEEP_BUF: usize = 64 << 10;
const BACKLOG: i32 = 4096;
/// Unsent bytes a fanout member may have queued before it is dropped.
const FANOUT_QUEUE: usize = 128 << 20;

const USAGE: &str =
    "usage: ringway-echo [--listen 127.0.0.1:3000] [--threads N] [--driver epoll|io_uring]\n\
  a WebSocket whose path ends in /fanout joins its thread's broadcast group \
  (use --threads 1 for one group)";

fn main() -> anyhow::Result<()> {
    let mut listen: SocketAddr = "127.0.0.1:3000".parse()?;
    let mut threads = 1usize;
    let mut driver = Driver::Epoll;
    let mut p = lexopt::Parser::from_env();
    let mut flags = || -> Result<(), lexopt::Error> {
        while let Some(arg) = p.next()? {
            match arg {
                Long("listen") => listen = p.value()?.parse()?,
                Long("threads") => threads = p.value()?.parse::<usize>()?.max(1),
                Long("driver") => driver = p.value()?.parse()?,
                Short('h') | Long("help") => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                arg => return Err(arg.unexpected()),
            }
        }
        Ok(())
    };
    flags().map_err(|e| anyhow::anyhow!("{e}\n{USAGE}"))?;
    // Worker threads share one descriptor table: size it now.
    let _ = rt::reserve_descriptors();

    let first = bind(listen).with_context(|| format!("bind {listen}"))?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..threads {
        listeners.push(bind(addr).with_context(|| format!("bind {addr}"))?);
    }
    let handles: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            std::thread::Builder::new()
                .name(format!("echo-{i}"))
                .spawn(move || rt::block_on(driver, serve(l)))
        })
        .collect::<Result<_, _>>()?;
    println!(
        "listening addr={addr} threads={threads} driver={}",
        driver.name()
    );
    std::io::stdout().flush()?;
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("echo thread panicked"))???;
    }
    Ok(())
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

async fn serve(l: std::net::TcpListener) -> anyhow::Result<()> {
    let listener = TcpListener::from_std(l)?;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                monoio::spawn(async move {
                    let _ = conn(stream).await;
                });
            }
            // EMFILE and friends: back off instead of spinning.
            Err(e) => {
                eprintln!("ringway-echo: accept: {e}");
                monoio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn conn(mut s: TcpStream) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let (req, key) = loop {
        let req = loop {
            match handshake::parse_request(&buf) {
                Ok(Some(r)) => break r,
                Ok(None) => buf = read_more(&mut s, buf).await?,
                Err(HandshakeError::TooLarge) => {
                    return answer(&mut s, "431 Request Header Fields Too Large", false).await
                }
                Err(_) => return answer(&mut s, "400 Bad Request", false).await,
            }
        };
        if let Some(key) = req.ws_key.clone() {
            break (req, key);
        }
        // Plain HTTP: skip the body, answer, and keep going while the
        // client keeps the connection.
        let mut left = req.content_length;
        buf.drain(..req.head_len);
        loop {
            let take = left.min(buf.len() as u64) as usize;
            buf.drain(..take);
            left -= take as u64;
            if left == 0 {
                break;
            }
            buf = read_more(&mut s, buf).await?;
        }
        answer(&mut s, "200 OK", req.keep_alive).await?;
        if !req.keep_alive {
            return Ok(());
        }
        if buf.is_empty() {
            buf = match read_more(&mut s, buf).await {
                Ok(b) => b,
                // The client closed between requests: done.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            };
        }
    };
    let (r, _) = s.write_all(handshake::server_response(&key)).await;
    r?;
    buf.drain(..req.head_len);
    if is_fanout_path(&req.path) {
        return fanout::member(s, buf).await;
    }
    if buf.is_empty() {
        buf = Vec::with_capacity(IDLE_BUF);
    }
    let mut out = Vec::new();
    loop {
        let step = match ws::echo_step(&mut buf, &mut out, MAX_FRAME) {
            Ok(step) => step,
            // §7.4.1: 1002 protocol error, 1009 too big.
            Err(e) => {
                let code = match e {
                    ws::EchoError::Unmasked => 1002,
                    ws::EchoError::TooLarge => 1009,
                };
                out.clear();
                ws::write_frame(
                    &mut out,
                    ws::FIN | ws::OP_CLOSE,
                    &ws::close_payload(code),
                    None,
                );
                let (r, _) = s.write_all(out).await;
                return r.map(|_| ());
            }
        };
        buf.drain(..step.consumed);
        if !out.is_empty() {
            let (r, back) = s.write_all(out).await;
            r?;
            out = back;
            out.clear();
            if out.capacity() > KEEP_BUF {
                out = Vec::new();
            }
        }
        if step.closed {
            return Ok(());
        }
        if buf.is_empty() && buf.capacity() > KEEP_BUF {
            buf = Vec::with_capacity(IDLE_BUF);
        }
        buf = read_more(&mut s, buf).await?;
    }
}

/// A non-upgrade answer; the connection stays open when `keep_alive`.
async fn answer(s: &mut TcpStream, status: &str, keep_alive: bool) -> std::io::Result<()> {
    let body = "ringway-echo\n";
    let conn = if keep_alive { "keep-alive" } else { "close" };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {conn}\r\n\r\n{body}",
        body.len()
    );
    let (r, _) = s.write_all(resp.into_bytes()).await;
    r.map(|_| ())
}

/// Read more bytes after `buf`'s contents (growing it); EOF ends the task.
async fn read_more<R: AsyncReadRent>(s: &mut R, mut buf: Vec<u8>) -> std::io::Result<Vec<u8>> {
    if buf.capacity() - buf.len() < IDLE_BUF / 2 {
        buf.reserve(buf.capacity().max(IDLE_BUF));
    }
    let len = buf.len();
    let (r, slice) = s.read(buf.slice_mut(len..)).await;
    let buf = slice.into_inner();
    match r? {
        0 => Err(std::io::ErrorKind::UnexpectedEof.into()),
        _ => Ok(buf),
    }
}

/// Whether a request target names the fanout group: its path (query and
/// fragment dropped, trailing slashes ignored) ends in `/fanout`, so that
/// a proxy location `/ws/` passing `/ws/fanout` through unchanged works as
/// well as a direct `/fanout`.
fn is_fanout_path(target: &str) -> bool {
    let path = target.split(['?', '#']).next().unwrap_or("");
    path.trim_end_matches('/').ends_with("/fanout")
}

/// The broadcast group of one backend thread and its members.
mod fanout {
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;
    use std::os::fd::AsRawFd;
    use std::rc::Rc;
    use std::task::{Poll, Waker};

    use monoio::io::{AsyncWriteRentExt, Splitable};
    use monoio::net::TcpStream;
    use ringway_bench::ws;

    use super::{read_more, FANOUT_QUEUE, IDLE_BUF, KEEP_BUF, MAX_FRAME};

    /// What a member's writer does next.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum State {
        /// Write what comes.
        Open,
        /// Write what is queued, then stop (after the close echo).
        Closing,
        /// Stop now, dropping what is queued.
        Dead,
    }

    /// One connection in the group: frames waiting for its writer.
    struct Member {
        id: u64,
        queue: RefCell<VecDeque<Rc<[u8]>>>,
        queued: Cell<usize>,
        state: Cell<State>,
        waker: RefCell<Option<Waker>>,
    }

    impl Member {
        fn push(&self, frame: Rc<[u8]>) {
            if self.state.get() != State::Open {
                return;
            }
            if self.queued.get() + frame.len() > FANOUT_QUEUE {
                // A reader that does not keep up: drop it, not the group.
                self.set(State::Dead);
                return;
            }
            self.queued.set(self.queued.get() + frame.len());
            self.queue.borrow_mut().push_back(frame);
            self.wake();
        }

        fn set(&self, s: State) {
            if self.state.get() != State::Dead {
                self.state.set(s);
            }
            if s == State::Dead {
                self.queue.borrow_mut().clear();
                self.queued.set(0);
            }
            self.wake();
        }

        fn wake(&self) {
            if let Some(w) = self.waker.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// The members of this thread's group, in joining order.
    #[derive(Default)]
    struct Group {
        next_id: Cell<u64>,
        members: RefCell<Vec<Rc<Member>>>,
    }

    impl Group {
        fn join(&self) -> Rc<Member> {
            let id = self.next_id.get();
            self.next_id.set(id + 1);
            let m = Rc::new(Member {
                id,
                queue: RefCell::new(VecDeque::new()),
                queued: Cell::new(0),
                state: Cell::new(State::Open),
                waker: RefCell::new(None),
            });
            self.members.borrow_mut().push(m.clone());
            m
        }

        fn leave(&self, id: u64) {
            let mut ms = self.members.borrow_mut();
            if let Some(i) = ms.iter().position(|m| m.id == id) {
                ms.swap_remove(i);
            }
        }

        fn broadcast(&self, frame: Rc<[u8]>) {
            for m in self.members.borrow().iter() {
                m.push(frame.clone());
            }
        }
    }

    thread_local! {
        /// One group per backend thread (runtime).
        static GROUP: Group = Group::default();
    }

    /// What a pass over the read buffer asks for.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Action {
        /// Send this frame to every member.
        Broadcast(Vec<u8>),
        /// Send this frame to the sender only (a pong).
        Reply(Vec<u8>),
        /// Send this close frame to the sender and end the connection.
        Close(Vec<u8>),
    }

    /// Why a member was refused.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum StepError {
        /// An unmasked client frame (§5.1).
        Unmasked,
        /// A frame or reassembled message over the limit.
        TooLarge,
        /// A continuation without a start, a new message inside a
        /// fragmented one, or a reserved opcode (§5.4, §5.2).
        Protocol,
    }

    impl StepError {
        /// The close code (§7.4.1).
        pub fn code(self) -> u16 {
            match self {
                StepError::TooLarge => 1009,
                StepError::Unmasked | StepError::Protocol => 1002,
            }
        }
    }

    /// A fragmented message being reassembled: its opcode and payload.
    pub type Partial = Option<(u8, Vec<u8>)>;

    /// Take every complete frame at the start of `input` (unmasking it in
    /// place), appending what to send to `actions`; returns the bytes
    /// consumed. Stops after a close frame. Messages are broadcast whole
    /// (fragments reassembled in `partial`) so that two senders' fragments
    /// never interleave.
    pub fn step(
        input: &mut [u8],
        max: usize,
        partial: &mut Partial,
        actions: &mut Vec<Action>,
    ) -> Result<usize, StepError> {
        let mut at = 0;
        while let Some(h) = ws::parse_header(&input[at..]) {
            let total = match h.frame_len() {
                Some(t) if t <= max => t,
                _ => return Err(StepError::TooLarge),
            };
            if input.len() - at < total {
                break;
            }
            let mask = h.mask.ok_or(StepError::Unmasked)?;
            let payload = &mut input[at + h.header_len..at + total];
            ws::apply_mask(payload, mask, 0);
            at += total;
            let frame = |first: u8, p: &[u8]| {
                let mut out = Vec::with_capacity(p.len() + 10);
                ws::write_frame(&mut out, first, p, None);
                out
            };
            match h.opcode() {
                ws::OP_TEXT | ws::OP_BINARY if partial.is_some() => {
                    return Err(StepError::Protocol)
                }
                op @ (ws::OP_TEXT | ws::OP_BINARY) if h.fin() => {
                    actions.push(Action::Broadcast(frame(ws::FIN | op, payload)));
                }
                op @ (ws::OP_TEXT | ws::OP_BINARY) => *partial = Some((op, payload.to_vec())),
                ws::OP_CONT => {
                    let (op, mut msg) = partial.take().ok_or(StepError::Protocol)?;
                    if msg.len() + payload.len() > max {
                        return Err(StepError::TooLarge);
                    }
                    msg.extend_from_slice(payload);
                    if h.fin() {
                        actions.push(Action::Broadcast(frame(ws::FIN | op, &msg)));
                    } else {
                        *partial = Some((op, msg));
                    }
                }
                ws::OP_PING => actions.push(Action::Reply(frame(ws::FIN | ws::OP_PONG, payload))),
                ws::OP_PONG => {}
                ws::OP_CLOSE => {
                    actions.push(Action::Close(frame(ws::FIN | ws::OP_CLOSE, payload)));
                    return Ok(at);
                }
                _ => return Err(StepError::Protocol),
            }
        }
        Ok(at)
    }

    /// Serve one upgraded connection as a member of this thread's group;
    /// `buf` holds what was read past the upgrade request.
    pub async fn member(stream: TcpStream, buf: Vec<u8>) -> std::io::Result<()> {
        let fd = stream.as_raw_fd();
        let (mut rd, wr) = stream.into_split();
        let me = GROUP.with(Group::join);
        let writer = monoio::spawn(write_loop(wr, me.clone(), fd));
        let r = read_loop(&mut rd, buf, &me).await;
        GROUP.with(|g| g.leave(me.id));
        match r {
            // The close echo (or the error's close frame) is queued: let
            // the writer send it, then end.
            Ok(()) => me.set(State::Closing),
            Err(_) => me.set(State::Dead),
        }
        writer.await;
        r
    }

    async fn read_loop(
        rd: &mut monoio::net::tcp::TcpOwnedReadHalf,
        mut buf: Vec<u8>,
        me: &Rc<Member>,
    ) -> std::io::Result<()> {
        if buf.is_empty() {
            buf = Vec::with_capacity(IDLE_BUF);
        }
        let mut partial: Partial = None;
        let mut actions = Vec::new();
        loop {
            let r = step(&mut buf, MAX_FRAME, &mut partial, &mut actions);
            let done = match r {
                Ok(consumed) => {
                    buf.drain(..consumed);
                    false
                }
                Err(e) => {
                    let mut out = Vec::new();
                    ws::write_frame(
                        &mut out,
                        ws::FIN | ws::OP_CLOSE,
                        &ws::close_payload(e.code()),
                        None,
                    );
                    actions.push(Action::Close(out));
                    true
                }
            };
            for a in actions.drain(..) {
                match a {
                    Action::Broadcast(f) => {
                        let f: Rc<[u8]> = f.into();
                        GROUP.with(|g| g.broadcast(f));
                    }
                    Action::Reply(f) => me.push(f.into()),
                    Action::Close(f) => {
                        // Leave first, so that the close is the last frame.
                        GROUP.with(|g| g.leave(me.id));
                        me.push(f.into());
                        return Ok(());
                    }
                }
            }
            if done || me.state.get() == State::Dead {
                return Ok(());
            }
            if buf.is_empty() && buf.capacity() > KEEP_BUF {
                buf = Vec::with_capacity(IDLE_BUF);
            }
            buf = read_more(rd, buf).await?;
        }
    }

    /// Write the member's queued frames as they come; on a write error or
    /// when the member is dropped, shut the socket so the reader ends too.
    async fn write_loop(
        mut wr: monoio::net::tcp::TcpOwnedWriteHalf,
        me: Rc<Member>,
        fd: std::os::fd::RawFd,
    ) {
        let mut out: Vec<u8> = Vec::new();
        loop {
            std::future::poll_fn(|cx| {
                if !me.queue.borrow().is_empty() || me.state.get() != State::Open {
                    Poll::Ready(())
                } else {
                    *me.waker.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            })
            .await;
            {
                let mut q = me.queue.borrow_mut();
                while let Some(f) = q.pop_front() {
                    out.extend_from_slice(&f);
                    if out.len() >= KEEP_BUF {
                        break;
                    }
                }
            }
            me.queued.set(me.queued.get().saturating_sub(out.len()));
            if me.state.get() == State::Dead {
                break;
            }
            if out.is_empty() {
                if me.state.get() == State::Closing {
                    return;
                }
                continue;
            }
            let (r, back) = wr.write_all(out).await;
            out = back;
            out.clear();
            if out.capacity() > KEEP_BUF {
                out = Vec::new();
            }
            if r.is_err() {
                me.set(State::Dead);
                break;
            }
        }
        // Dropped or broken: make the reader's read end too.
        GROUP.with(|g| g.leave(me.id));
        // SAFETY: the fd stays open while `wr` (one half of it) lives.
        unsafe {
            libc::shutdown(fd, libc::SHUT_RDWR);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn masked(first: u8, p: &[u8]) -> Vec<u8> {
            let mut v = Vec::new();
            ws::write_frame(&mut v, first, p, Some([7, 1, 9, 3]));
            v
        }

        fn plain(first: u8, p: &[u8]) -> Vec<u8> {
            let mut v = Vec::new();
            ws::write_frame(&mut v, first, p, None);
            v
        }

        #[test]
        fn messages_broadcast_whole_and_control_frames_answer_the_sender() {
            let mut input = [
                masked(ws::FIN | ws::OP_TEXT, b"hi"),
                masked(ws::OP_BINARY, b"frag"),
                masked(ws::FIN | ws::OP_PING, b"p"),
                masked(ws::OP_CONT, b"men"),
                masked(ws::FIN | ws::OP_CONT, b"ted"),
                masked(ws::FIN | ws::OP_PONG, b"x"),
                masked(ws::FIN | ws::OP_CLOSE, &ws::close_payload(1000)),
                masked(ws::FIN | ws::OP_TEXT, b"after close"),
            ]
            .concat();
            let (mut partial, mut acts) = (None, Vec::new());
            let used = step(&mut input, 1 << 20, &mut partial, &mut acts).unwrap();
            assert!(used < input.len(), "stops after the close");
            assert_eq!(
                acts,
                [
                    Action::Broadcast(plain(ws::FIN | ws::OP_TEXT, b"hi")),
                    Action::Reply(plain(ws::FIN | ws::OP_PONG, b"p")),
                    Action::Broadcast(plain(ws::FIN | ws::OP_BINARY, b"fragmented")),
                    Action::Close(plain(ws::FIN | ws::OP_CLOSE, &[0x03, 0xe8])),
                ]
            );
            assert_eq!(partial, None);
        }

        #[test]
        fn waits_for_whole_frames_and_keeps_partial_messages() {
            let mut input = [
                masked(ws::OP_TEXT, b"ab"),
                masked(ws::FIN | ws::OP_CONT, b"cd"),
            ]
            .concat();
            let first_len = masked(ws::OP_TEXT, b"ab").len();
            let (mut partial, mut acts) = (None, Vec::new());
            let used = step(
                &mut input[..first_len + 3],
                1 << 20,
                &mut partial,
                &mut acts,
            );
            assert_eq!(used, Ok(first_len));
            assert!(acts.is_empty());
            assert_eq!(partial, Some((ws::OP_TEXT, b"ab".to_vec())));
            let used = step(&mut input[first_len..], 1 << 20, &mut partial, &mut acts);
            assert_eq!(used, Ok(input.len() - first_len));
            assert_eq!(
                acts,
                [Action::Broadcast(plain(ws::FIN | ws::OP_TEXT, b"abcd"))]
            );
        }

        #[test]
        fn refuses_bad_frames() {
            let step1 =
                |mut v: Vec<u8>, partial: &mut Partial| step(&mut v, 16, partial, &mut Vec::new());
            assert_eq!(
                step1(plain(ws::FIN | ws::OP_TEXT, b"x"), &mut None),
                Err(StepError::Unmasked)
            );
            assert_eq!(
                step1(masked(ws::FIN | ws::OP_CONT, b"x"), &mut None),
                Err(StepError::Protocol)
            );
            assert_eq!(
                step1(masked(ws::FIN | 0x3, b"x"), &mut None),
                Err(StepError::Protocol)
            );
            assert_eq!(
                step1(
                    masked(ws::FIN | ws::OP_TEXT, b"x"),
                    &mut Some((ws::OP_TEXT, vec![]))
                ),
                Err(StepError::Protocol)
            );
            assert_eq!(
                step1(masked(ws::FIN | ws::OP_BINARY, &[0; 20]), &mut None),
                Err(StepError::TooLarge)
            );
            assert_eq!(
                step1(
                    masked(ws::FIN | ws::OP_CONT, &[0; 8]),
                    &mut Some((ws::OP_TEXT, vec![0; 9]))
                ),
                Err(StepError::TooLarge)
            );
            assert_eq!(StepError::TooLarge.code(), 1009);
        }

        #[test]
        fn group_sends_to_every_member_and_drops_slow_ones() {
            let g = Group::default();
            let (a, b) = (g.join(), g.join());
            g.broadcast(Rc::from(&b"one"[..]));
            assert_eq!((a.queue.borrow().len(), b.queue.borrow().len()), (1, 1));
            g.leave(a.id);
            g.broadcast(Rc::from(&b"two"[..]));
            assert_eq!((a.queue.borrow().len(), b.queue.borrow().len()), (1, 2));
            assert_eq!(b.queued.get(), 6);
            b.push(Rc::from(vec![0u8; FANOUT_QUEUE]));
            assert_eq!(b.state.get(), State::Dead);
            assert!(b.queue.borrow().is_empty());
            b.set(State::Closing);
            assert_eq!(b.state.get(), State::Dead, "dead stays dead");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_fanout_path;

    #[test]
    fn fanout_paths() {
        for p in [
            "/fanout",
            "/ws/fanout",
            "/ws/fanout/",
            "/ws/fanout?room=1",
            "/a/b/fanout#x",
            "http://h:80/ws/fanout",
        ] {
            assert!(is_fanout_path(p), "{p}");
        }
        for p in [
            "/",
            "/ws/",
            "/ws/fanouts",
            "/ws/myfanout",
            "/fanout/x",
            "/ws?x=/fanout",
            "fanout",
        ] {
            assert!(!is_fanout_path(p), "{p}");
        }
    }
}
