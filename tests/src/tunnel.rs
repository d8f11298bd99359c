//! WebSocket tunnels through a proxy as the health-check, DNS-discovery,
//! HAProxy-comparison and rebalance tests hold them: open one and learn
//! which backend it reached (`who?`, answered by a
//! [`Switch`](crate::switch::Switch)), echo on it, read the close code it
//! gets, and watch many at once with poll(2) for what comes on each (a
//! close frame and when, or how the stream ended instead).

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use tungstenite::{Message, WebSocket};

use crate::ws_config;

/// A client's WebSocket over TCP.
pub type Ws = WebSocket<TcpStream>;

/// A WebSocket through a proxy and the name of the backend it reached.
pub struct Tunnel {
    pub ws: Ws,
    pub on: String,
}

/// Open a tunnel at `path` (Host `app`; reads and writes time out after
/// 15 s) and ask the backend its name (`who?`). `Err(Ok(code))`: a close
/// frame came instead of the name (the close is answered); `Err(Err(_))`:
/// the connect, the handshake or the question failed, or something else
/// came.
pub fn try_open_tunnel(proxy: SocketAddr, path: &str) -> Result<Tunnel, Result<u16, String>> {
    let s = TcpStream::connect(proxy).map_err(|e| Err(format!("connect: {e}")))?;
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(15))).unwrap();
    s.set_nodelay(true).ok();
    let mut ws =
        tungstenite::client::client_with_config(format!("ws://app{path}"), s, Some(ws_config()))
            .map_err(|e| Err(format!("handshake: {e}")))?
            .0;
    ws.send(Message::text("who?"))
        .map_err(|e| Err(format!("send who?: {e}")))?;
    match ws.read() {
        Ok(Message::Text(t)) => Ok(Tunnel {
            ws,
            on: t.to_string(),
        }),
        Ok(Message::Close(f)) => {
            let _ = ws.flush();
            Err(Ok(f.map_or(1005, |f| u16::from(f.code))))
        }
        other => Err(Err(format!("no name from the backend: {other:?}"))),
    }
}

/// [`try_open_tunnel`], panicking when no name came.
pub fn open_tunnel(proxy: SocketAddr, path: &str) -> Tunnel {
    try_open_tunnel(proxy, path).unwrap_or_else(|e| panic!("opening a tunnel at {path}: {e:?}"))
}

/// Send `text` and read its echo.
pub fn echo(ws: &mut Ws, text: &str) -> Result<(), String> {
    ws.send(Message::text(text))
        .map_err(|e| format!("send: {e}"))?;
    match ws.read() {
        Ok(Message::Text(t)) if t == text => Ok(()),
        other => Err(format!("instead of the echo: {other:?}")),
    }
}

/// Echo `text` on each of `tunnels` that reached `on` (every one for
/// `None`); panics naming the first that does not echo.
pub fn assert_echoes(tunnels: &mut [Tunnel], on: Option<&str>, text: &str) {
    for (i, t) in tunnels.iter_mut().enumerate() {
        if on.is_none_or(|on| t.on == on) {
            echo(&mut t.ws, text).unwrap_or_else(|e| panic!("tunnel {i} on {}: {e}", t.on));
        }
    }
}

/// The close code a tunnel receives within `wait` (its read timeout is
/// set to it): `Ok(Some(code))` for a close frame (1005: one without a
/// code; tungstenite's close reply is sent), `Ok(None)` when nothing
/// came, `Err` with what came instead (a message, the stream's end).
pub fn close_code(ws: &mut Ws, wait: Duration) -> Result<Option<u16>, String> {
    ws.get_mut().set_read_timeout(Some(wait)).unwrap();
    match ws.read() {
        Ok(Message::Close(f)) => {
            let _ = ws.flush();
            Ok(Some(f.map_or(1005, |f| u16::from(f.code))))
        }
        Err(tungstenite::Error::Io(e))
            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
        {
            Ok(None)
        }
        Ok(other) => Err(format!("instead of a close frame: message {other:?}")),
        Err(e) => Err(format!("instead of a close frame: {}", ended(&e))),
    }
}

/// The first thing that came on a tunnel while it was watched.
#[derive(Debug, Clone)]
pub enum Event {
    /// A close frame with this code (1005: none), and when.
    Close(u16, Instant),
    /// No close frame: a message, the stream's end or an error (in the
    /// words of [`ended`]), and when.
    Other(String, Instant),
}

/// What came, in words (`nothing` for `None`).
pub fn describe(e: &Option<Event>) -> String {
    match e {
        None => "nothing".into(),
        Some(Event::Close(code, _)) => format!("close {code}"),
        Some(Event::Other(what, _)) => what.clone(),
    }
}

/// A read error in words: which TCP ending it was (tungstenite reports
/// the end of the stream before a close frame as
/// `ResetWithoutClosingHandshake`, a reset as an I/O error), then what
/// tungstenite said (Display and Debug).
pub fn ended(e: &tungstenite::Error) -> String {
    let tcp = match e {
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => "end of stream (FIN)",
        tungstenite::Error::Io(io) if io.kind() == ErrorKind::ConnectionReset => {
            "connection reset (RST)"
        }
        _ => "error",
    };
    format!("{tcp}: {e} [{e:?}]")
}

/// Watch `tunnels` (poll(2) on their sockets, no blocking read) until
/// `done` holds for what came so far, or until `deadline`; the first
/// thing that came on each (`None`: nothing). A close frame is answered.
pub fn watch(
    tunnels: &mut [Tunnel],
    done: impl Fn(&[Tunnel], &[Option<Event>]) -> bool,
    deadline: Instant,
) -> Vec<Option<Event>> {
    let mut seen: Vec<Option<Event>> = vec![None; tunnels.len()];
    for t in tunnels.iter() {
        t.ws.get_ref().set_nonblocking(true).unwrap();
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if done(tunnels, &seen) || left.is_zero() {
            break;
        }
        let idx: Vec<usize> = (0..tunnels.len()).filter(|&i| seen[i].is_none()).collect();
        let mut fds: Vec<libc::pollfd> = idx
            .iter()
            .map(|&i| libc::pollfd {
                fd: tunnels[i].ws.get_ref().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let wait_ms = left.as_millis().clamp(1, 100) as i32;
        // SAFETY: `fds` is a valid array of pollfd for the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        assert!(r >= 0, "poll: {}", std::io::Error::last_os_error());
        for (k, &i) in idx.iter().enumerate() {
            if fds[k].revents == 0 {
                continue;
            }
            let ws = &mut tunnels[i].ws;
            seen[i] = match ws.read() {
                Ok(Message::Close(f)) => {
                    // Send tungstenite's close reply.
                    let _ = ws.flush();
                    Some(Event::Close(
                        f.map_or(1005, |f| u16::from(f.code)),
                        Instant::now(),
                    ))
                }
                Ok(m) => Some(Event::Other(format!("message {m:?}"), Instant::now())),
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => None,
                Err(e) => Some(Event::Other(ended(&e), Instant::now())),
            };
        }
    }
    for t in tunnels.iter() {
        t.ws.get_ref().set_nonblocking(false).unwrap();
    }
    seen
}

/// [`watch`] `tunnels` until every one on `gone` has had something, or
/// until `deadline`.
pub fn watch_gone(tunnels: &mut [Tunnel], gone: &str, deadline: Instant) -> Vec<Option<Event>> {
    watch(
        tunnels,
        |ts, seen| {
            ts.iter()
                .zip(seen)
                .all(|(t, s)| t.on != gone || s.is_some())
        },
        deadline,
    )
}

/// Assert that each of `tunnels` on `gone` got a close frame 1001 and
/// that the others heard nothing (`seen`: what [`watch`] saw on each);
/// when each close came.
pub fn closed_with_1001(tunnels: &[Tunnel], seen: &[Option<Event>], gone: &str) -> Vec<Instant> {
    let mut wrong = Vec::new();
    let mut times = Vec::new();
    for (i, (t, s)) in tunnels.iter().zip(seen).enumerate() {
        match (t.on == gone, s) {
            (true, Some(Event::Close(1001, at))) => times.push(*at),
            (false, None) => {}
            (_, s) => wrong.push(format!("tunnel {i} on {}: {}", t.on, describe(s))),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} tunnels went wrong ({gone}'s should close with 1001, the others' hear nothing):\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    times
}

/// What came on any of `tunnels` until `deadline` (watched without end
/// before it), in words: `tunnel I on NAME: what`; empty when nothing
/// came.
pub fn heard(tunnels: &mut [Tunnel], deadline: Instant) -> Vec<String> {
    let seen = watch(tunnels, |_, _| false, deadline);
    tunnels
        .iter()
        .zip(&seen)
        .enumerate()
        .filter(|(_, (_, s))| s.is_some())
        .map(|(i, (t, s))| format!("tunnel {i} on {}: {}", t.on, describe(s)))
        .collect()
}
