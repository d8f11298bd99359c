//! Request smuggling and desync: one regression test per class found
//! against a lenient backend, plus the other differences from nginx found
//! the same way. Each sends raw bytes over TCP, checks the status and the
//! fate of the client connection, and checks exactly what the recording
//! backend (`recorder`, a lenient parser) received: never a request
//! ringway did not route.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringway_tests::recorder::{ConnRecord, Recorder};
use ringway_tests::*;

both_drivers!(
    bare_lf_in_chunked_framing_is_refused,
    connection_cannot_remove_framing,
    bytes_behind_an_upgrade_wait_for_the_101,
    unrequested_101_is_502_and_never_reused,
    repeated_transfer_encoding_is_refused,
    locations_match_the_normalised_path,
    unclean_exchanges_are_not_reused,
    get_without_an_answer_is_504,
    client_leaving_a_long_poll_closes_the_upstream,
    decoded_uri_cannot_inject_a_header,
);

const WS_KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
const SMUGGLED: &str = "GET /p/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

fn config(rec: SocketAddr) -> String {
    format!(
        r#"
[upstreams.pooled]
servers = [{{ addr = "{rec}" }}]
keepalive = 8

[servers.s]
listen = ["127.0.0.1:0"]
client_header_timeout = "5s"
[servers.s.locations."/p/admin/"]
return = {{ status = 403, body = "denied" }}
[servers.s.locations."/p/"]
proxy_pass = "http://{rec}"
proxy_read_timeout = "2s"
[servers.s.locations."/u/"]
proxy_pass = "http://{rec}/x/"
[servers.s.locations."/g/"]
proxy_pass = "http://pooled"
proxy_read_timeout = "2s"
[servers.s.locations."/long/"]
proxy_pass = "http://{rec}"
proxy_read_timeout = "60s"
[servers.s.locations."/v/"]
proxy_pass = "http://{rec}"
[servers.s.locations."/v/".proxy_set_header]
X-Uri = "$uri"
"#
    )
}

fn client(rw: &Ringway) -> TcpStream {
    rw.client("s")
}

fn status(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn targets(conns: &[ConnRecord]) -> Vec<String> {
    conns
        .iter()
        .flat_map(|c| c.requests.iter().map(|r| r.line()))
        .collect()
}

fn never_smuggled(rec: &Recorder) {
    for c in rec.conns() {
        assert!(
            !String::from_utf8_lossy(&c.raw).contains("smuggled"),
            "smuggled bytes reached the backend: {:?}",
            String::from_utf8_lossy(&c.raw)
        );
    }
}

/// Class 1: a bare LF ending the last-chunk line or a trailer field is
/// refused with 400; the backend sees the head and no body byte, never a
/// second request.
fn bare_lf_in_chunked_framing_is_refused(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(&config(rec.addr), d);
    let bodies = [
        format!("3\r\nabc\r\n0\n\r\n{SMUGGLED}"),
        format!("3\r\nabc\r\n0\r\nX-T: 1\n\r\n{SMUGGLED}"),
        format!("3\r\nabc\r\n0\r\n\n{SMUGGLED}"),
        format!("3\nabc\r\n0\r\n\r\n{SMUGGLED}"),
    ];
    for prefix in ["/p/a", "/g/a"] {
        for body in &bodies {
            let mut s = client(&rw);
            let req = format!(
                "POST {prefix} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
            );
            s.write_all(req.as_bytes()).unwrap();
            let (head, _) = read_response(&mut s);
            assert_eq!(status(&head), 400, "{body:?}: {head}");
            assert_closed(&mut s);
        }
    }
    // One upstream connection per attempt, each closed.
    let conns = rec.wait_for("8 closed connections", Duration::from_secs(10), |c| {
        c.len() == 8 && c.iter().all(|c| c.closed)
    });
    for c in &conns {
        assert!(c.requests.is_empty(), "{:?}", c.requests);
        // What went upstream is a head announcing chunked, nothing after.
        let raw = String::from_utf8_lossy(&c.raw);
        assert!(
            raw.ends_with("Transfer-Encoding: chunked\r\n\r\n") || raw.ends_with("\r\n\r\n"),
            "{raw}"
        );
        assert!(raw.matches("\r\n\r\n").count() == 1, "{raw}");
    }
    never_smuggled(&rec);
    rw.wait_for_log("bare LF", Duration::from_secs(5));
}

/// Class 2: `Connection` naming `Content-Length` / `Transfer-Encoding`
/// does not take the framing off the forwarded request, and an upstream
/// response whose `Connection` names its `Content-Length` keeps its
/// length on a kept-alive client connection.
fn connection_cannot_remove_framing(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(&config(rec.addr), d);
    let mut s = client(&rw);
    let req = format!(
        "POST /p/cl HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: Content-Length\r\n\r\n{SMUGGLED}",
        SMUGGLED.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let (head, body) = read_response(&mut s);
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(body, format!("POST /p/cl body={}", SMUGGLED.len()));
    // The same for chunked, on the same (kept-alive) client connection.
    let chunk = format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len());
    let req = format!(
        "POST /p/te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n\r\n{chunk}"
    );
    s.write_all(req.as_bytes()).unwrap();
    let (head, body) = read_response(&mut s);
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(body, format!("POST /p/te body={}", SMUGGLED.len()));
    // Response side, twice on one connection.
    for _ in 0..2 {
        s.write_all(b"GET /g/conn-cl HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (head, body) = read_response(&mut s);
        assert_eq!(status(&head), 200, "{head}");
        assert!(head.contains("Content-Length: 5\r\n"), "{head}");
        assert!(head.contains("Connection: keep-alive\r\n"), "{head}");
        assert_eq!(body, "hello");
    }
    s.write_all(b"GET /p/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (head, _) = read_response(&mut s);
    assert_eq!(status(&head), 200, "{head}");
    assert_closed(&mut s);
    let conns = rec.wait_for("the last request", Duration::from_secs(10), |c| {
        targets(c).contains(&"GET /p/last".to_string())
    });
    assert_eq!(
        targets(&conns),
        [
            "POST /p/cl",
            "POST /p/te",
            "GET /g/conn-cl",
            "GET /g/conn-cl",
            "GET /p/last"
        ]
    );
    for r in conns.iter().flat_map(|c| &c.requests) {
        if r.method == "POST" {
            assert_eq!(r.body, SMUGGLED.as_bytes(), "the body is the body");
        }
    }
    never_smuggled_as_request(&conns);
}

fn never_smuggled_as_request(conns: &[ConnRecord]) {
    let t = targets(conns);
    assert!(!t.iter().any(|t| t.contains("smuggled")), "{t:?}");
}

/// Class 3: bytes sent behind an upgrade request go upstream only after
/// the upstream's 101 (as the tunnel's first bytes); behind a refused
/// upgrade they never reach it, even on a kept-alive upstream connection.
fn bytes_behind_an_upgrade_wait_for_the_101(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(&config(rec.addr), d);
    for prefix in ["/p", "/g"] {
        let mut s = client(&rw);
        let req = format!(
            "GET {prefix}/ws/refuse HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{WS_KEY}\r\n{SMUGGLED}"
        );
        s.write_all(req.as_bytes()).unwrap();
        let (head, body) = read_response(&mut s);
        assert_eq!(status(&head), 426, "{head}");
        assert_eq!(body, "upgrade refused");
        assert_closed(&mut s);
    }
    let conns = rec.wait_for("2 closed connections", Duration::from_secs(10), |c| {
        c.len() == 2 && c.iter().all(|c| c.closed)
    });
    assert_eq!(targets(&conns), ["GET /p/ws/refuse", "GET /g/ws/refuse"]);
    never_smuggled(&rec);

    // Accepted: the early bytes arrive after the switch, and only then.
    let mut s = client(&rw);
    let req = format!(
        "GET /p/ws/ok HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{WS_KEY}\r\nEARLY-BYTES"
    );
    s.write_all(req.as_bytes()).unwrap();
    let (head, _) = read_response(&mut s);
    assert_eq!(status(&head), 101, "{head}");
    let mut echoed = [0u8; 11];
    s.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"EARLY-BYTES");
    let conns = rec.wait_for("the upgrade", Duration::from_secs(10), |c| {
        c.iter().any(|c| c.switched)
    });
    let up = conns.iter().find(|c| c.switched).unwrap();
    assert_eq!(up.requests.len(), 1);
    assert_eq!(up.after_switch, b"EARLY-BYTES");

    // An upgrade request that declares a body is refused outright.
    let mut s = client(&rw);
    let req = format!(
        "GET /p/ws/ok HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{WS_KEY}Content-Length: {}\r\n\r\n{SMUGGLED}",
        SMUGGLED.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let (head, _) = read_response(&mut s);
    assert_eq!(status(&head), 400, "{head}");
    assert_closed(&mut s);
    never_smuggled(&rec);
}

/// Class 4: a 101 to a request that did not ask to upgrade is a 502, and
/// that upstream connection is closed, never pooled: the next request
/// goes on a new one and the switched one receives nothing more.
fn unrequested_101_is_502_and_never_reused(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(&config(rec.addr), d);
    for path in ["/g/switch", "/p/switch"] {
        let mut s = client(&rw);
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let (head, _) = read_response(&mut s);
        assert_eq!(status(&head), 502, "{path}: {head}");
        assert_closed(&mut s);
    }
    for i in 0..3 {
        let mut s = client(&rw);
        s.write_all(format!("GET /g/next{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let (head, body) = read_response(&mut s);
        assert_eq!(status(&head), 200, "{head}");
        assert_eq!(body, format!("GET /g/next{i} body=0"));
    }
    let conns = rec.wait_for(
        "switched connections closed",
        Duration::from_secs(10),
        |c| c.iter().filter(|c| c.switched).all(|c| c.closed),
    );
    let switched: Vec<&ConnRecord> = conns.iter().filter(|c| c.switched).collect();
    assert_eq!(switched.len(), 2);
    for c in switched {
        assert_eq!(c.requests.len(), 1, "{c:?}");
        assert!(
            c.after_switch.is_empty(),
            "bytes written into a switched connection: {c:?}"
        );
    }
    rw.wait_for_log("101 to a request without Upgrade", Duration::from_secs(5));
}

/// Class 5: two `Transfer-Encoding` fields (and the other ambiguous
/// framings) are refused before anything goes upstream.
fn repeated_transfer_encoding_is_refused(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(&config(rec.addr), d);
    let cases = [
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
            400,
        ),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            400,
        ),
        ("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", 400),
        ("Content-Length: 3\r\nContent-Length: 3\r\n", 400),
        ("Content-Length: 3\r\nContent-Length: 4\r\n", 400),
        ("Transfer-Encoding: gzip, chunked\r\n", 501),
        ("Transfer-Encoding: identity\r\n", 501),
    ];
    for (fields, want) in cases {
        let mut s = client(&rw);
        let req = format!("POST /p/a HTTP/1.1\r\nHost: x\r\n{fields}\r\n0\r\n\r\n{SMUGGLED}");
        s.write_all(req.as_bytes()).unwrap();
        let (head, _) = read_response(&mut s);
        assert_eq!(status(&head), want, "{fields:?}: {head}");
        assert_closed(&mut s);
    }
    let mut s = client(&rw);
    s.write_all(b"POST /p/a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        .unwrap();
    let (head, _) = read_response(&mut s);
    assert_eq!(status(&head), 400, "{head}");
    assert!(rec.conns().is_empty(), "nothing reaches the backend");
}

/// Class 6: locations match the normalised path; the denied location
/// holds for every spelling, and the backend sees none of them.
fn locations_match_the_normalised_path(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(&config(rec.addr), d);
    for path in [
        "/p/admin/",
        "/p/%61dmin/",
        "/p/x/../admin/",
        "/p//admin/",
        "/p/./admin/x",
        "/p/x%2f..%2fadmin/",
        "/p/%2E/admin/",
    ] {
        let mut s = client(&rw);
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let (head, body) = read_response(&mut s);
        assert_eq!(status(&head), 403, "{path}: {head}");
        assert_eq!(body, "denied");
    }
    for path in ["/p/../../etc/passwd", "/p/%00", "/p/a#frag"] {
        let mut s = client(&rw);
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let (head, _) = read_response(&mut s);
        assert_eq!(status(&head), 400, "{path}: {head}");
    }
    assert!(rec.conns().is_empty(), "nothing reaches the backend");
    // What is forwarded is what nginx forwards: the target as sent without
    // a URI part, the routed path re-escaped with one.
    let mut s = client(&rw);
    s.write_all(b"GET /p/%61pple//x?q=%20 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (_, body) = read_response(&mut s);
    assert_eq!(body, "GET /p/%61pple//x?q=%20 body=0");
    s.write_all(b"GET /u/a%2fb/../c%20d%3F?q HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (_, body) = read_response(&mut s);
    assert_eq!(body, "GET /x/a/c%20d%3F?q body=0");
}

/// An upstream connection is reused only after an exchange that ended
/// cleanly: not after an interim 1xx, not after bytes past the response,
/// not after an answer that came before the request body was all sent.
fn unclean_exchanges_are_not_reused(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(&config(rec.addr), d);
    let get = |path: &str| {
        let mut s = client(&rw);
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        read_response(&mut s)
    };
    // Clean exchanges share one pooled connection.
    assert_eq!(get("/g/a").1, "GET /g/a body=0");
    assert_eq!(get("/g/b").1, "GET /g/b body=0");
    assert_eq!(rec.conns().len(), 1, "a clean exchange is pooled");
    let (head, body) = get("/g/interim");
    assert_eq!((status(&head), body.as_str()), (200, "ok"));
    assert_eq!(get("/g/c").1, "GET /g/c body=0");
    assert_eq!(rec.conns().len(), 2, "not reused after an interim 1xx");
    let (head, body) = get("/g/extra");
    assert_eq!((status(&head), body.as_str()), (200, "ok"));
    assert_eq!(get("/g/d").1, "GET /g/d body=0");
    assert_eq!(rec.conns().len(), 3, "not reused after extra bytes");

    // An answer before the body's end: send half the body, wait for the
    // backend to answer, then the rest.
    let mut s = client(&rw);
    s.write_all(b"POST /g/early HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc")
        .unwrap();
    rec.wait_for("the early answer", Duration::from_secs(10), |c| {
        c.iter().any(|c| c.early_answers > 0)
    });
    s.write_all(b"def").unwrap();
    let (head, body) = read_response(&mut s);
    assert_eq!((status(&head), body.as_str()), (200, "early"));
    assert_eq!(get("/g/e").1, "GET /g/e body=0");
    let conns = rec.conns();
    let early = conns.iter().position(|c| c.early_answers > 0).unwrap();
    assert!(
        !conns[early].requests.iter().any(|r| r.target == "/g/e"),
        "reused after an early answer: {conns:?}"
    );
}

/// A GET whose upstream never answers is 504 (not 502), and the only
/// server of a group is not marked down by it.
fn get_without_an_answer_is_504(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(&config(rec.addr), d);
    for path in ["/p/hang", "/g/hang"] {
        let mut s = client(&rw);
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let (head, _) = read_response(&mut s);
        assert_eq!(status(&head), 504, "{path}: {head}");
    }
    let mut s = client(&rw);
    s.write_all(b"GET /g/after HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (head, body) = read_response(&mut s);
    assert_eq!(status(&head), 200, "the single server is still up: {head}");
    assert_eq!(body, "GET /g/after body=0");
    // Tried once each: there is no other server to pass a GET to.
    assert_eq!(
        targets(&rec.conns())
            .iter()
            .filter(|t| t.ends_with("hang"))
            .count(),
        2
    );
}

/// A client that closes while its request waits on a long poll closes the
/// upstream connection at once, not after proxy_read_timeout (60 s here).
fn client_leaving_a_long_poll_closes_the_upstream(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(&config(rec.addr), d);
    let mut s = client(&rw);
    s.write_all(b"GET /long/hang HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    rec.wait_for("the long poll", Duration::from_secs(10), |c| {
        c.iter().any(|c| !c.requests.is_empty())
    });
    drop(s);
    let conns = rec.wait_all_closed(Duration::from_secs(10));
    assert_eq!(targets(&conns), ["GET /long/hang"]);
    // The proxy is still fine.
    let mut s = client(&rw);
    s.write_all(b"GET /p/ok HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s).1, "GET /p/ok body=0");
}

/// `$uri` is decoded: a `%0D%0A` in the path must not become a line end in
/// a header ringway writes (found by the request_head fuzz target).
fn decoded_uri_cannot_inject_a_header(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(&config(rec.addr), d);
    let mut s = client(&rw);
    s.write_all(
        b"GET /v/a%0D%0AX-Injected:%201%0D%0A%0D%0AGET%20/smuggled%20HTTP/1.1 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let (head, _) = read_response(&mut s);
    assert_eq!(status(&head), 200, "{head}");
    let conns = rec.wait_for("the request", Duration::from_secs(10), |c| {
        c.iter().any(|c| !c.requests.is_empty())
    });
    let reqs: Vec<_> = conns.iter().flat_map(|c| c.requests.clone()).collect();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(reqs[0].header("x-injected").is_none(), "{reqs:?}");
    assert_eq!(
        reqs[0].header("x-uri"),
        Some("/v/a%0D%0AX-Injected: 1%0D%0A%0D%0AGET /smuggled HTTP/1.1")
    );
}
