//! Graceful drain: TERM (or a reload with `drain_old_tunnels_after`)
//! closes live tunnels spread over `drain_spread`, each at a WebSocket
//! frame boundary with a close frame 1001 to the client and to the
//! upstream. The backend records the close codes it receives; the clients
//! record theirs and when they came.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ringway_tests::*;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

every_relay!(
    term_closes_every_tunnel_with_1001_spread_over_drain_spread,
    a_big_message_in_flight_arrives_whole_before_the_close,
    reload_drains_only_old_tunnels
);

/// A WebSocket echo backend that records the close code of every close
/// frame it receives.
struct Recorder {
    addr: SocketAddr,
    codes: Arc<Mutex<Vec<u16>>>,
    /// Every message's length, and the close codes, in arrival order
    /// ("close" entries as `usize::MAX - code`).
    events: Arc<Mutex<Vec<usize>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let codes = Arc::new(Mutex::new(Vec::new()));
        let events = Arc::new(Mutex::new(Vec::new()));
        let (c2, e2) = (codes.clone(), events.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (codes, events) = (c2.clone(), e2.clone());
                thread::spawn(move || {
                    conn.set_read_timeout(Some(Duration::from_secs(60))).ok();
                    let Ok(mut ws) = tungstenite::accept_with_config(conn, Some(ws_config()))
                    else {
                        return;
                    };
                    loop {
                        match ws.read() {
                            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                                events.lock().unwrap().push(m.len());
                                if ws.send(m).is_err() {
                                    return;
                                }
                            }
                            Ok(Message::Close(frame)) => {
                                let code = frame.map_or(1005, |f| u16::from(f.code));
                                codes.lock().unwrap().push(code);
                                events.lock().unwrap().push(usize::MAX - usize::from(code));
                                let _ = ws.flush();
                            }
                            Ok(_) => {}
                            Err(_) => return,
                        }
                    }
                });
            }
        });
        Recorder {
            addr,
            codes,
            events,
        }
    }

    /// Wait (bounded) until `n` close frames have come; returns them.
    fn wait_codes(&self, n: usize, timeout: Duration) -> Vec<u16> {
        let deadline = Instant::now() + timeout;
        loop {
            let codes = self.codes.lock().unwrap().clone();
            if codes.len() >= n || Instant::now() >= deadline {
                return codes;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn config(backend: SocketAddr) -> String {
    format!(
        r#"
[servers.ws]
listen = "127.0.0.1:0"
[servers.ws.locations."/ws/"]
proxy_pass = "http://{backend}"
proxy_read_timeout = "60s"
"#
    )
}

/// Open a tunnel and echo one message through it.
fn open(proxy: SocketAddr, i: usize) -> tungstenite::WebSocket<TcpStream> {
    let mut ws = ws_handshake(
        TcpStream::connect(proxy).unwrap(),
        &format!("ws://{proxy}/ws/{i}"),
    );
    ws.send(Message::Text(format!("hello {i}"))).unwrap();
    match ws.read().unwrap() {
        Message::Text(t) => assert_eq!(t.as_str(), format!("hello {i}")),
        other => panic!("unexpected {other:?}"),
    }
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    ws
}

/// Read until the close frame; its code and when it came.
fn close_of(ws: &mut tungstenite::WebSocket<TcpStream>) -> (Option<CloseCode>, Instant) {
    loop {
        match ws.read() {
            Ok(Message::Close(f)) => return (f.map(|f| f.code), Instant::now()),
            Ok(_) => {}
            Err(_) => return (None, Instant::now()),
        }
    }
}

fn term_closes_every_tunnel_with_1001_spread_over_drain_spread(driver: Driver) {
    let backend = Recorder::start();
    let mut rw = Ringway::start_with_runtime(
        &config(backend.addr),
        driver,
        "drain_spread = \"2s\"\nshutdown_timeout = \"10s\"\n",
    );
    let proxy = rw.addr("ws");
    let clients: Vec<_> = (0..100).map(|i| open(proxy, i)).collect();
    let sent = Instant::now();
    rw.signal(libc::SIGTERM);
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut ws| thread::spawn(move || close_of(&mut ws)))
        .collect();
    let closes: Vec<_> = readers.into_iter().map(|t| t.join().unwrap()).collect();
    for (i, (code, _)) in closes.iter().enumerate() {
        assert_eq!(*code, Some(CloseCode::Away), "client {i}");
    }
    let times: Vec<f64> = closes
        .iter()
        .map(|(_, t)| t.duration_since(sent).as_secs_f64())
        .collect();
    let first = times.iter().cloned().fold(f64::MAX, f64::min);
    let last = times.iter().cloned().fold(0.0, f64::max);
    assert!(
        last - first >= 1.0,
        "closes not spread: first {first:.3} s, last {last:.3} s"
    );
    assert!(
        last <= 2.0 + 1.5,
        "the last close came {last:.3} s after TERM"
    );
    let codes = backend.wait_codes(100, Duration::from_secs(10));
    assert_eq!(codes.len(), 100, "upstream close frames: {codes:?}");
    assert!(codes.iter().all(|&c| c == 1001), "{codes:?}");
    assert!(
        rw.wait_exit(Duration::from_secs(15)).is_some(),
        "ringway did not exit"
    );
}

fn a_big_message_in_flight_arrives_whole_before_the_close(driver: Driver) {
    let backend = Recorder::start();
    let rw = Ringway::start_with_runtime(
        &config(backend.addr),
        driver,
        "drain_spread = \"0s\"\nshutdown_timeout = \"20s\"\n",
    );
    let proxy = rw.addr("ws");
    let mut ws = open(proxy, 0);
    // Half of a 4 MiB binary frame (masked, as a client's), then TERM:
    // the frame is in flight when the drain starts.
    let len = 4usize << 20;
    let key = [7u8, 1, 2, 3];
    let mut frame = vec![0x82, 0x80 | 127];
    frame.extend_from_slice(&(len as u64).to_be_bytes());
    frame.extend_from_slice(&key);
    frame.extend((0..len).map(|i| (i % 251) as u8 ^ key[i % 4]));
    let half = frame.len() / 2;
    {
        use std::io::Write;
        let s = ws.get_mut();
        s.write_all(&frame[..half]).unwrap();
        rw.signal(libc::SIGTERM);
        rw.wait_for_log("draining tunnels", Duration::from_secs(5));
        // The rest of the frame still goes through, then the drain closes.
        s.write_all(&frame[half..]).unwrap();
    }
    let (code, _) = close_of(&mut ws);
    assert_eq!(code, Some(CloseCode::Away));
    backend.wait_codes(1, Duration::from_secs(10));
    let events = backend.events.lock().unwrap().clone();
    // The first message is the handshake's echo ("hello 0"); then the whole
    // 4 MiB message, then the close 1001 — never a cut frame.
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[1], len, "the in-flight message arrived whole");
    assert_eq!(events[2], usize::MAX - 1001);
}

fn reload_drains_only_old_tunnels(driver: Driver) {
    let backend = Recorder::start();
    let cfg = config(backend.addr);
    let rw = Ringway::start_with_runtime(
        &cfg,
        driver,
        "drain_spread = \"0s\"\ndrain_old_tunnels_after = \"1s\"\n",
    );
    let proxy = rw.addr("ws");
    let mut old = open(proxy, 1);
    rw.reload(&cfg, 1);
    let mut new = open(proxy, 2);
    let (code, _) = close_of(&mut old);
    assert_eq!(code, Some(CloseCode::Away), "the old tunnel is drained");
    assert_eq!(backend.wait_codes(1, Duration::from_secs(10)), vec![1001]);
    // The tunnel opened after the reload still echoes.
    new.send(Message::Text("still here".into())).unwrap();
    match new.read().unwrap() {
        Message::Text(t) => assert_eq!(t.as_str(), "still here"),
        other => panic!("unexpected {other:?}"),
    }
    rw.wait_for_log("draining tunnels", Duration::from_secs(5));
}
