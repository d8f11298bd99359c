//! `rebalance` with `balance = "hash"` and `"ip_hash"`: after a reload
//! adds two servers, exactly the tunnels whose key now maps to another
//! server are closed with 1001 — checked against where a fresh
//! connection with the same key lands — and the others stay and echo
//! (both drivers). The clients name themselves in the request path, so
//! each backend's own record says which client it serves.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ringway_tests::prom::{metrics_addr, moved, scrape};
use ringway_tests::tunnel::close_code;
use ringway_tests::*;
use tungstenite::{Message, WebSocket};

both_drivers!(
    hash_moves_exactly_the_keys_that_map_elsewhere,
    ip_hash_moves_exactly_the_keys_that_map_elsewhere
);

/// Clients per test.
const CLIENTS: usize = 120;

fn config(balance: &str, backends: &[&Backend]) -> String {
    let servers: Vec<String> = backends
        .iter()
        .map(|b| format!("{{ addr = \"{}\" }}", b.addr))
        .collect();
    let key = if balance == "hash" {
        "hash_key = \"$arg_room\"\n"
    } else {
        ""
    };
    format!(
        "[metrics]\nlisten = \"127.0.0.1:0\"\n\n\
         [upstreams.chat]\nbalance = \"{balance}\"\n{key}max_fails = 0\n\
         rebalance = {{ rate = \"1000/s\" }}\nservers = [{}]\n\n\
         [servers.ws]\nlisten = [\"127.0.0.1:0\"]\n\
         [servers.ws.locations.\"/ws/\"]\nproxy_pass = \"http://chat\"\n",
        servers.join(", ")
    )
}

/// Client `c`'s source address: one /24 each for `ip_hash` (it hashes the
/// first three octets), 127.0.0.1 for `hash`.
fn source(balance: &str, c: usize) -> IpAddr {
    if balance == "ip_hash" {
        IpAddr::V4(Ipv4Addr::new(127, 0, (c + 1) as u8, 2))
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }
}

/// A tunnel for client `c` (`tag` tells its connections apart).
fn open(balance: &str, proxy: SocketAddr, c: usize, tag: &str) -> WebSocket<TcpStream> {
    let stream = connect_from(source(balance, c), proxy);
    let url = format!("ws://{proxy}/ws/?room=r{c}&c={c}&t={tag}");
    ws_handshake(stream, &url)
}

/// Which backend saw the handshake of client `c` tagged `tag`.
fn owner(backends: &[&Backend], c: usize, tag: &str) -> Option<usize> {
    let needle = format!("&c={c}&t={tag}");
    backends
        .iter()
        .position(|b| b.requests().iter().any(|r| r.path.ends_with(&needle)))
}

/// Poll until `f` gives a value (bounded).
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a held tunnel saw within `wait`: a close code, or nothing
/// (panics on anything else).
fn closed_within(ws: &mut WebSocket<TcpStream>, wait: Duration) -> Option<u16> {
    close_code(ws, wait).unwrap_or_else(|e| panic!("{e}"))
}

fn moves_exactly_the_keys_that_map_elsewhere(driver: Driver, balance: &str) {
    let backends: Vec<Backend> = (0..4).map(|_| Backend::start()).collect();
    let all: Vec<&Backend> = backends.iter().collect();
    let rw = Ringway::start_with_runtime(
        &config(balance, &all[..2]),
        driver,
        "workers = 2\ndrain_spread = \"500ms\"",
    );
    let proxy = rw.addr("ws");
    let maddr = metrics_addr(&rw);

    let mut held: Vec<WebSocket<TcpStream>> = (0..CLIENTS)
        .map(|c| open(balance, proxy, c, "first"))
        .collect();
    let before: Vec<usize> = (0..CLIENTS)
        .map(|c| eventually("the first handshake seen", || owner(&all, c, "first")))
        .collect();
    assert!(before.iter().all(|&b| b < 2));
    assert!(before.contains(&0) && before.contains(&1), "{before:?}");

    rw.reload(&config(balance, &all), 2); // one line per worker
                                          // Where each key maps now: a fresh connection with the same key.
    let after: Vec<usize> = (0..CLIENTS)
        .map(|c| {
            let mut probe = open(balance, proxy, c, "probe");
            let at = eventually("the probe seen", || owner(&all, c, "probe"));
            close_websocket(&mut probe);
            at
        })
        .collect();
    let should_move: Vec<usize> = (0..CLIENTS).filter(|&c| after[c] != before[c]).collect();
    assert!(
        should_move.len() >= CLIENTS / 5 && should_move.iter().all(|&c| after[c] >= 2),
        "about half the keys map to the new servers, only to them: {} of {CLIENTS}",
        should_move.len()
    );

    // Every tunnel whose key moved gets 1001; the others see nothing.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut closed = vec![None; CLIENTS];
    while should_move.iter().any(|&c| closed[c].is_none()) && Instant::now() < deadline {
        for &c in &should_move {
            if closed[c].is_none() {
                closed[c] = closed_within(&mut held[c], Duration::from_millis(5));
            }
        }
    }
    for &c in &should_move {
        assert_eq!(
            closed[c],
            Some(1001),
            "client {c}: its key maps from {} to {}",
            before[c],
            after[c]
        );
    }
    for c in (0..CLIENTS).filter(|c| !should_move.contains(c)) {
        assert_eq!(
            closed_within(&mut held[c], Duration::from_millis(5)),
            None,
            "client {c} stays"
        );
        held[c].send(Message::text(format!("still {c}"))).unwrap();
        held[c]
            .get_mut()
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(held[c].read().unwrap(), Message::text(format!("still {c}")));
    }
    // Moved clients reconnect like browsers and land where their key maps.
    for &c in &should_move {
        let mut again = open(balance, proxy, c, "again");
        assert_eq!(
            eventually("the reconnect seen", || owner(&all, c, "again")),
            after[c]
        );
        close_websocket(&mut again);
    }
    let text = scrape(maddr);
    let moved = moved(&text, "chat", "rebalance");
    assert_eq!(moved as usize, should_move.len(), "each moved once\n{text}");
    eprintln!(
        "{balance} ({}): {} of {CLIENTS} tunnels moved to the two new servers",
        driver.name(),
        should_move.len()
    );
}

fn hash_moves_exactly_the_keys_that_map_elsewhere(driver: Driver) {
    moves_exactly_the_keys_that_map_elsewhere(driver, "hash");
}

fn ip_hash_moves_exactly_the_keys_that_map_elsewhere(driver: Driver) {
    moves_exactly_the_keys_that_map_elsewhere(driver, "ip_hash");
}
