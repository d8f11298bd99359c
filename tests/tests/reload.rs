//! SIGHUP: new connections get the new configuration, live tunnels keep
//! theirs; a broken file is refused and the running one kept.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use ringway_tests::recorder::Recorder;
use ringway_tests::*;
use tungstenite::Message;

both_drivers!(
    hup_reloads_without_dropping_tunnels,
    reload_keeps_the_pool_of_a_kept_group,
    reload_closes_the_pool_of_a_removed_group,
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
