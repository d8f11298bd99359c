//! SIGHUP: new connections get the new configuration, live tunnels keep
//! theirs; a broken file is refused and the running one kept. A reload
//! binds the listen addresses it adds and stops accepting on those it
//! removes; one that cannot bind is refused as a whole.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringway_tests::recorder::Recorder;
use ringway_tests::*;
use tungstenite::Message;

both_drivers!(
    hup_reloads_without_dropping_tunnels,
    reload_keeps_the_pool_of_a_kept_group,
    reload_closes_the_pool_of_a_removed_group,
    reload_adds_a_listen_address,
    reload_removes_a_listen_address,
    reload_refuses_an_address_another_socket_holds,
    reload_refuses_a_metrics_listen_change,
    reload_turns_proxy_protocol_on_for_a_kept_address,
);

fn conf(body: &str, backend: std::net::SocketAddr) -> String {
    format!(
        "[servers.ws]\nlisten = [\"127.0.0.1:0\"]\n[servers.ws.locations.\"= /health\"]\nreturn = {{ status = 200, body = \"{body}\" }}\n[servers.ws.locations.\"/ws/\"]\nproxy_pass = \"http://{backend}\"\n"
    )
}

fn health(rw: &Ringway) -> String {
    let mut s = TcpStream::connect(rw.addr("ws")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    read_response(&mut s).1
}

fn hup_reloads_without_dropping_tunnels(d: Driver) {
    let b = Backend::start();
    let rw = Ringway::start(&conf("v1", b.addr), d);
    assert_eq!(health(&rw), "v1");
    let mut ws = ws_handshake(
        TcpStream::connect(rw.addr("ws")).unwrap(),
        &format!("ws://{}/ws/live", rw.addr("ws")),
    );

    // The harness prepends [runtime] and [log]; keep them and swap the rest.
    let old = std::fs::read_to_string(&rw.config_path).unwrap();
    let keep = &old[..old.find("[servers.ws]").unwrap()];
    // Same listen address as the running one (port 0 stays port 0).
    std::fs::write(&rw.config_path, format!("{keep}{}", conf("v2", b.addr))).unwrap();
    rw.signal(libc::SIGHUP);
    rw.wait_for_log("configuration reloaded", Duration::from_secs(10));
    assert_eq!(health(&rw), "v2");

    // A broken file is refused; v2 keeps serving.
    std::fs::write(
        &rw.config_path,
        format!("{keep}[servers.ws]\nlisten = [\"127.0.0.1:0\"]\nbogus = 1\n"),
    )
    .unwrap();
    rw.signal(libc::SIGHUP);
    rw.wait_for_log("reload failed", Duration::from_secs(10));
    assert_eq!(health(&rw), "v2");

    // The tunnel opened before the reloads still relays.
    ws.send(Message::Text("after reload".into())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Text("after reload".into()));
}

fn pooled(group: &str, rec: std::net::SocketAddr) -> String {
    format!(
        "[upstreams.{group}]\nservers = [{{ addr = \"{rec}\" }}]\nkeepalive = 4\n[servers.ws]\nlisten = [\"127.0.0.1:0\"]\n[servers.ws.locations.\"/api/\"]\nproxy_pass = \"http://{group}\"\n"
    )
}

fn get(rw: &Ringway, path: &str) -> String {
    let mut s = TcpStream::connect(rw.addr("ws")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    read_response(&mut s).1
}

/// A reload that keeps a group (same name, same server) keeps its idle
/// pooled connections: the next request reuses the one the previous
/// configuration parked.
fn reload_keeps_the_pool_of_a_kept_group(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(&pooled("api", rec.addr), d);
    assert_eq!(get(&rw, "/api/a"), "GET /api/a body=0");
    rw.reload(&pooled("api", rec.addr), 1);
    assert_eq!(get(&rw, "/api/b"), "GET /api/b body=0");
    let conns = rec.conns();
    assert_eq!(
        conns.len(),
        1,
        "the pooled connection carried over: {conns:?}"
    );
    assert_eq!(conns[0].requests.len(), 2);
}

/// A reload that removes a group closes its idle pooled connections at
/// once (they do not linger with the old configuration).
fn reload_closes_the_pool_of_a_removed_group(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(&pooled("api", rec.addr), d);
    assert_eq!(get(&rw, "/api/a"), "GET /api/a body=0");
    assert!(!rec.conns()[0].closed, "parked in the pool");
    rw.reload(&pooled("renamed", rec.addr), 1);
    rec.wait_for(
        "the old pool's connection closed",
        Duration::from_secs(10),
        |c| c[0].closed,
    );
    assert_eq!(get(&rw, "/api/b"), "GET /api/b body=0");
    assert_eq!(rec.conns().len(), 2, "the new group opened its own");
}

// ---- listen addresses ----

/// `[servers.NAME]` on `listen` (TOML array items), `/health` answering
/// `body`, `/ws/` proxied to the WebSocket echo `backend`.
fn server(name: &str, listen: &str, body: &str, backend: SocketAddr) -> String {
    format!(
        "[servers.{name}]\nlisten = [{listen}]\n[servers.{name}.locations.\"= /health\"]\nreturn = {{ status = 200, body = \"{body}\" }}\n[servers.{name}.locations.\"/ws/\"]\nproxy_pass = \"http://{backend}\"\n"
    )
}

fn health_at(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    read_response(&mut s).1
}

/// A WebSocket tunnel through `addr`, checked with one echo.
fn tunnel(addr: SocketAddr) -> tungstenite::WebSocket<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut ws = ws_handshake(s, &format!("ws://{addr}/ws/live"));
    echo(&mut ws, "hello");
    ws
}

fn echo(ws: &mut tungstenite::WebSocket<TcpStream>, text: &str) {
    ws.send(Message::Text(text.into())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Text(text.into()));
}

/// A reload that adds a listen address: the new port serves requests and
/// upgrades with the new configuration at once; the old port keeps its
/// socket and a tunnel opened on it before the reload keeps relaying.
fn reload_adds_a_listen_address(d: Driver) {
    let b = Backend::start();
    let rw = Ringway::start_with_runtime(
        &server("ws", "\"127.0.0.1:0\"", "v1", b.addr),
        d,
        "workers = 2\n",
    );
    let old = rw.addr("ws");
    let mut before = tunnel(old);

    let port = reserve_port();
    let both = format!("\"127.0.0.1:0\", \"{}\"", port.addr);
    // Two workers: two "configuration reloaded" lines.
    rw.reload(&server("ws", &both, "v2", b.addr), 2);
    let line = rw.wait_for_log(&format!("addr={}", port.addr), Duration::from_secs(10));
    assert!(line.contains("listening"), "{line}");

    assert_eq!(health_at(port.addr), "v2");
    assert_eq!(health_at(old), "v2");
    let mut after = tunnel(port.addr);
    echo(&mut after, "through the new port");
    for i in 0..3 {
        echo(&mut before, &format!("after reload {i}"));
    }
}

/// A reload that removes a listen address: once every worker has
/// switched, connecting to it is refused; a tunnel opened on it before
/// keeps relaying until it is closed, and the other address serves on.
fn reload_removes_a_listen_address(d: Driver) {
    let b = Backend::start();
    let port = reserve_port();
    let two = format!(
        "{}{}",
        server("ws", "\"127.0.0.1:0\"", "v1", b.addr),
        server("gone", &format!("\"{}\"", port.addr), "gone", b.addr)
    );
    let rw = Ringway::start_with_runtime(&two, d, "workers = 2\n");
    assert_eq!(rw.addr("gone"), port.addr);
    assert_eq!(health_at(port.addr), "gone");
    let mut before = tunnel(port.addr);

    // Two workers: two "configuration reloaded" lines.
    rw.reload(&server("ws", "\"127.0.0.1:0\"", "v2", b.addr), 2);
    let line = rw.wait_for_log("listen address removed", Duration::from_secs(10));
    assert!(line.contains(&format!("addr={}", port.addr)), "{line}");
    assert_refused(port.addr);
    assert_eq!(health_at(rw.addr("ws")), "v2");

    for i in 0..3 {
        echo(&mut before, &format!("after reload {i}"));
    }
    close_websocket(&mut before);
}

/// A reload whose new address another socket holds (listening, without
/// SO_REUSEPORT) is refused as a whole: the log names the address and the
/// OS error, the address it had already bound is closed again, the old
/// configuration still answers, and a later reload works.
fn reload_refuses_an_address_another_socket_holds(d: Driver) {
    let b = Backend::start();
    let rw = Ringway::start_with_runtime(
        &server("ws", "\"127.0.0.1:0\"", "v1", b.addr),
        d,
        "workers = 2\n",
    );
    let free = reserve_port();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();

    // The free address first: it is bound (on both workers) before the
    // taken one fails.
    let three = format!("\"127.0.0.1:0\", \"{}\", \"{taken_addr}\"", free.addr);
    let old = std::fs::read_to_string(&rw.config_path).unwrap();
    let keep = &old[..old.find("[servers.ws]").unwrap()];
    std::fs::write(
        &rw.config_path,
        format!("{keep}{}", server("ws", &three, "v2", b.addr)),
    )
    .unwrap();
    rw.signal(libc::SIGHUP);
    let line = rw.wait_for_log("reload refused", Duration::from_secs(10));
    assert!(
        line.contains(&format!("cannot listen on {taken_addr}")),
        "{line}"
    );
    assert!(line.contains("Address already in use"), "{line}");

    assert_eq!(health(&rw), "v1");
    assert_refused(free.addr);
    // The other socket still has its address to itself.
    let _client = TcpStream::connect(taken_addr).unwrap();
    taken.accept().unwrap();

    let two = format!("\"127.0.0.1:0\", \"{}\"", free.addr);
    rw.reload(&server("ws", &two, "v3", b.addr), 2);
    assert_eq!(health(&rw), "v3");
    assert_eq!(health_at(free.addr), "v3");
}

/// The metrics listener is bound at start: a reload that changes
/// `metrics.listen` (here: drops `[metrics]`) is refused and says so; one
/// that keeps it applies.
fn reload_refuses_a_metrics_listen_change(d: Driver) {
    let b = Backend::start();
    let with_metrics = |body: &str| {
        format!(
            "[metrics]\nlisten = \"127.0.0.1:0\"\n\n{}",
            conf(body, b.addr)
        )
    };
    let rw = Ringway::start(&with_metrics("v1"), d);
    let old = std::fs::read_to_string(&rw.config_path).unwrap();
    let keep = &old[..old.find("[metrics]").unwrap()];
    std::fs::write(&rw.config_path, format!("{keep}{}", conf("v2", b.addr))).unwrap();
    rw.signal(libc::SIGHUP);
    let line = rw.wait_for_log("reload refused", Duration::from_secs(10));
    assert!(
        line.contains("metrics.listen changed from 127.0.0.1:0 to none"),
        "{line}"
    );
    assert_eq!(health(&rw), "v1");

    rw.reload(&with_metrics("v2"), 1);
    assert_eq!(health(&rw), "v2");
}

/// Whether a listen address reads a PROXY protocol header is decided per
/// connection from the configuration it gets: a reload turns it on for an
/// address it keeps (same socket, same port).
fn reload_turns_proxy_protocol_on_for_a_kept_address(d: Driver) {
    let page = |listen: &str| {
        format!(
            "[real_ip]\nset_real_ip_from = [\"127.0.0.1\"]\n\n[servers.app]\nlisten = [{listen}]\n[servers.app.locations.\"/\"]\nreturn = {{ status = 200, body = \"$remote_addr $proxy_protocol_addr\" }}\n"
        )
    };
    let rw = Ringway::start(&page("\"127.0.0.1:0\""), d);
    let get = |header: &str| {
        let mut s = rw.client("app");
        s.write_all(
            format!("{header}GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        read_response(&mut s).1
    };
    assert_eq!(get(""), "127.0.0.1 ");

    rw.reload(
        &page("{ addr = \"127.0.0.1:0\", proxy_protocol = true }"),
        1,
    );
    assert_eq!(
        get("PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n"),
        "127.0.0.1 203.0.113.7"
    );
    // Without the header the request is not one.
    let mut s = rw.client("app");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_closed(&mut s);
}
