//! The client's real address end to end: PROXY protocol v1 and v2 headers
//! written by hand on raw TCP (whole, with the request, split, before
//! TLS), refused from untrusted peers and refused at once when the bytes
//! are not a header; `X-Forwarded-For` from trusted peers, recursive or
//! not; and the real address as the key of limits and `ip_hash`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use ringway_tests::tls_support::{certs, client_config};
use ringway_tests::*;

both_drivers!(
    proxy_v1_header_alone_with_the_request_and_split,
    proxy_v2_ipv4_ipv6_and_local,
    proxy_header_from_an_untrusted_peer_is_refused,
    not_a_proxy_header_is_refused_at_once,
    proxy_header_then_tls,
    a_partial_header_times_out,
    proxied_tunnels_are_limited_per_proxied_client,
    x_forwarded_for_recursive_or_not_and_untrusted,
    x_real_ip_first_field,
    limits_and_ip_hash_key_on_the_forwarded_address,
    proxy_protocol_listen_without_real_ip_fails_the_config_test,
    bad_cidr_fails_the_config_test,
);

fn src(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

const HEADERS: &str = r#"
[servers.app.locations."/".proxy_set_header]
X-Real-IP = "$remote_addr"
X-PP = "$proxy_protocol_addr"
X-Peer = "$realip_remote_addr"
"#;

/// A `proxy_protocol` listen trusting `trusted`, proxying to `http`.
fn pp_config(http: SocketAddr, trusted: &str, tls: &str) -> String {
    format!(
        r#"
[real_ip]
set_real_ip_from = [{trusted}]
header = "proxy_protocol"
proxy_protocol_timeout = "30s"

[servers.app]
listen = [{{ addr = "127.0.0.1:0", proxy_protocol = true }}]
{tls}
[servers.app.locations."/"]
proxy_pass = "http://{http}"
{HEADERS}"#
    )
}

const GET: &[u8] = b"GET /pp HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n";

/// The request the backend saw last: (X-Real-IP, X-PP, X-Peer).
fn last_seen(http: &HttpBackend) -> (String, Option<String>, String) {
    let seen = http.seen.lock().unwrap();
    let r = seen.last().expect("the backend saw a request");
    (
        r.header("x-real-ip").unwrap_or("-").to_string(),
        r.header("x-pp").map(str::to_string),
        r.header("x-peer").unwrap_or("-").to_string(),
    )
}

/// Write `parts` one after another (a short pause between them so each
/// leaves as its own segment), then read one response: its status line.
fn exchange(from: IpAddr, proxy: SocketAddr, parts: &[&[u8]]) -> String {
    let mut s = connect_from(from, proxy);
    s.set_nodelay(true).unwrap();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            // Not a synchronisation: it only makes the split real.
            thread::sleep(Duration::from_millis(50));
        }
        s.write_all(p).unwrap();
    }
    let (head, _) = read_response(&mut s);
    head.lines().next().unwrap_or("").to_string()
}

fn ok(line: String) {
    assert!(line.starts_with("HTTP/1.1 200 "), "{line}");
}

fn proxy_v1_header_alone_with_the_request_and_split(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&pp_config(http.addr, "\"127.0.0.0/8\"", ""), d);
    let proxy = rw.addr("app");
    let header = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n";
    let want = || {
        (
            "203.0.113.7".to_string(),
            Some("203.0.113.7".to_string()),
            "127.0.0.1".to_string(),
        )
    };
    // The header, then the request.
    ok(exchange(src(1), proxy, &[header, GET]));
    assert_eq!(last_seen(&http), want());
    // Header and request in one write.
    let mut one = header.to_vec();
    one.extend_from_slice(GET);
    ok(exchange(src(1), proxy, &[&one]));
    assert_eq!(last_seen(&http), want());
    // The header split in two, the request after it.
    ok(exchange(
        src(1),
        proxy,
        &[&header[..17], &header[17..], GET],
    ));
    assert_eq!(last_seen(&http), want());
    // Split inside the CRLF, with the request in the second part.
    let mut rest = header[header.len() - 1..].to_vec();
    rest.extend_from_slice(GET);
    ok(exchange(
        src(1),
        proxy,
        &[&header[..header.len() - 1], &rest],
    ));
    assert_eq!(last_seen(&http), want());
    assert_eq!(http.seen.lock().unwrap().len(), 4);
    // UNKNOWN carries no address: the connection's own stands.
    ok(exchange(src(5), proxy, &[b"PROXY UNKNOWN\r\n", GET]));
    assert_eq!(
        last_seen(&http),
        ("127.0.0.5".into(), None, "127.0.0.5".into())
    );
}

/// A v2 header by hand: signature, version 2 with `command`, the
/// family/transport byte and the address block.
fn v2(command: u8, fam: u8, block: &[u8]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x20 | command);
    h.push(fam);
    h.extend_from_slice(&(block.len() as u16).to_be_bytes());
    h.extend_from_slice(block);
    h
}

fn v2_inet(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    let mut b = src.octets().to_vec();
    b.extend_from_slice(&dst.octets());
    b.extend_from_slice(&sport.to_be_bytes());
    b.extend_from_slice(&dport.to_be_bytes());
    v2(1, 0x11, &b)
}

fn v2_inet6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16) -> Vec<u8> {
    let mut b = src.octets().to_vec();
    b.extend_from_slice(&dst.octets());
    b.extend_from_slice(&sport.to_be_bytes());
    b.extend_from_slice(&dport.to_be_bytes());
    v2(1, 0x21, &b)
}

fn proxy_v2_ipv4_ipv6_and_local(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&pp_config(http.addr, "\"127.0.0.0/8\"", ""), d);
    let proxy = rw.addr("app");

    let h = v2_inet(
        Ipv4Addr::new(198, 51, 100, 20),
        Ipv4Addr::new(10, 0, 0, 1),
        40000,
        443,
    );
    ok(exchange(src(1), proxy, &[&h, GET]));
    assert_eq!(
        last_seen(&http),
        (
            "198.51.100.20".into(),
            Some("198.51.100.20".into()),
            "127.0.0.1".into()
        )
    );

    // IPv6, header and request in one write, with a TLV after the
    // addresses (skipped).
    let mut h = v2_inet6(
        "2001:db8::7".parse().unwrap(),
        "2001:db8::1".parse().unwrap(),
        40000,
        443,
    );
    let tlv = [0x04u8, 0x00, 0x02, 0xab, 0xcd]; // PP2_TYPE_NOOP
    h.extend_from_slice(&tlv);
    let len = u16::from_be_bytes([h[14], h[15]]) + tlv.len() as u16;
    h[14..16].copy_from_slice(&len.to_be_bytes());
    h.extend_from_slice(GET);
    ok(exchange(src(1), proxy, &[&h]));
    assert_eq!(
        last_seen(&http),
        (
            "2001:db8::7".into(),
            Some("2001:db8::7".into()),
            "127.0.0.1".into()
        )
    );

    // LOCAL (a balancer's health check): the connection's own address,
    // no $proxy_protocol_addr (an empty header is not sent).
    let h = v2(0, 0x00, &[]);
    ok(exchange(src(4), proxy, &[&h, GET]));
    assert_eq!(
        last_seen(&http),
        ("127.0.0.4".into(), None, "127.0.0.4".into())
    );

    // Split inside the fixed part.
    let h = v2_inet(
        Ipv4Addr::new(192, 0, 2, 9),
        Ipv4Addr::new(10, 0, 0, 1),
        1,
        2,
    );
    ok(exchange(src(1), proxy, &[&h[..7], &h[7..], GET]));
    assert_eq!(last_seen(&http).0, "192.0.2.9");
}

/// Read until EOF or an error within `timeout`: what came, and whether
/// the connection ended (EOF or reset) rather than timed out.
fn read_until_closed(s: &mut TcpStream, timeout: Duration) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (out, false)
            }
            Err(_) => return (out, true),
        }
    }
}

fn proxy_header_from_an_untrusted_peer_is_refused(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&pp_config(http.addr, "\"127.0.0.2/32\"", ""), d);
    let proxy = rw.addr("app");
    let mut one = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n".to_vec();
    one.extend_from_slice(GET);

    let mut s = connect_from(src(3), proxy);
    // The write may fail if ringway has closed already.
    let _ = s.write_all(&one);
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(closed, "the connection from 127.0.0.3 was left open");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    let line = rw.wait_for_log("not in set_real_ip_from", Duration::from_secs(5));
    assert!(line.contains("127.0.0.3"), "{line}");
    assert!(http.seen.lock().unwrap().is_empty());

    ok(exchange(src(2), proxy, &[&one]));
    assert_eq!(
        last_seen(&http),
        (
            "203.0.113.7".into(),
            Some("203.0.113.7".into()),
            "127.0.0.2".into()
        )
    );
}

/// A plain request on a `proxy_protocol` listen is refused on its first
/// bytes, not after `proxy_protocol_timeout` (30 s here).
fn not_a_proxy_header_is_refused_at_once(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&pp_config(http.addr, "\"127.0.0.0/8\"", ""), d);
    let proxy = rw.addr("app");
    for junk in [
        &b"GET / HTTP/1.1\r\nHost: app\r\n\r\n"[..],
        b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\n",
        b"PROXY TCP4 203.0.113.999 127.0.0.1 5555 80\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c",
    ] {
        let started = Instant::now();
        let mut s = connect_from(src(1), proxy);
        s.write_all(junk).unwrap();
        let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
        assert!(
            closed,
            "{:?} left the connection open",
            String::from_utf8_lossy(junk)
        );
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    rw.wait_for_log_count("PROXY protocol header refused", 4, Duration::from_secs(5));
    assert!(http.seen.lock().unwrap().is_empty());
    // A good one still works.
    ok(exchange(
        src(1),
        proxy,
        &[b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n", GET],
    ));
}

/// A header that never ends is dropped at `proxy_protocol_timeout`.
fn a_partial_header_times_out(d: Driver) {
    let http = HttpBackend::start();
    let config = pp_config(http.addr, "\"127.0.0.0/8\"", "").replace(
        "proxy_protocol_timeout = \"30s\"",
        "proxy_protocol_timeout = \"1s\"",
    );
    let rw = Ringway::start(&config, d);
    let proxy = rw.addr("app");
    for partial in [
        &b""[..],
        b"PROXY TCP4 203.0.113.7 127.0",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11",
    ] {
        let mut s = connect_from(src(1), proxy);
        s.write_all(partial).unwrap();
        let (got, closed) = read_until_closed(&mut s, Duration::from_secs(10));
        assert!(closed, "{partial:?}: still open after 10 s");
        assert!(got.is_empty());
    }
    rw.wait_for_log_count(
        "no PROXY protocol header within 1s",
        3,
        Duration::from_secs(5),
    );
}

fn ws_pp_config(ws: SocketAddr) -> String {
    format!(
        r#"
[real_ip]
set_real_ip_from = ["127.0.0.1/32"]
header = "proxy_protocol"

[limit_conn_zones.c]
key = "$binary_remote_addr"

[servers.app]
listen = [{{ addr = "127.0.0.1:0", proxy_protocol = true }}]
[servers.app.locations."/ws/"]
proxy_pass = "http://{ws}"
limit_conn = {{ zone = "c", max = 1 }}
[servers.app.locations."/ws/".proxy_set_header]
X-Real-IP = "$remote_addr"
"#
    )
}

/// A WebSocket client behind a PROXY v1 header on the same stream.
fn proxied_ws(
    proxy: SocketAddr,
    client: &str,
    path: &str,
) -> Result<tungstenite::WebSocket<TcpStream>, String> {
    let mut s = connect_from(src(1), proxy);
    s.write_all(format!("PROXY TCP4 {client} 127.0.0.1 4000 80\r\n").as_bytes())
        .unwrap();
    tungstenite::client::client_with_config(format!("ws://{proxy}{path}"), s, Some(ws_config()))
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

/// Tunnels through one balancer: `$remote_addr` is each PROXY source, and
/// `limit_conn` counts per source, not per balancer.
fn proxied_tunnels_are_limited_per_proxied_client(d: Driver) {
    let backend = Backend::start();
    let rw = Ringway::start_with_runtime(&ws_pp_config(backend.addr), d, "workers = 2\n");
    let proxy = rw.addr("app");
    let mut a = proxied_ws(proxy, "198.51.100.1", "/ws/a").expect("first tunnel of .1");
    let mut b = proxied_ws(proxy, "198.51.100.2", "/ws/b").expect("first tunnel of .2");
    let refused = proxied_ws(proxy, "198.51.100.1", "/ws/a2").expect_err("a second tunnel of .1");
    assert!(refused.contains("503"), "{refused}");
    for (ws, text) in [(&mut a, "to a"), (&mut b, "to b")] {
        ws.send(tungstenite::Message::Text(text.into())).unwrap();
        loop {
            match ws.read().expect("echo") {
                tungstenite::Message::Text(t) => {
                    assert_eq!(t, text);
                    break;
                }
                _ => continue,
            }
        }
    }
    let seen = backend.requests();
    let real = |path: &str| {
        seen.iter()
            .find(|r| r.path == path)
            .and_then(|r| r.header("x-real-ip").map(str::to_string))
    };
    assert_eq!(real("/ws/a").as_deref(), Some("198.51.100.1"));
    assert_eq!(real("/ws/b").as_deref(), Some("198.51.100.2"));
    assert_eq!(seen.len(), 2, "the refused handshake went upstream");
}

/// The header comes before the TLS ClientHello, in the same segment: the
/// handshake reads on from the first byte after it.
fn proxy_header_then_tls(d: Driver) {
    let c = certs();
    let http = HttpBackend::start();
    let tls = format!(
        "tls = {{ cert = \"{}\", key = \"{}\" }}",
        c.a_cert.display(),
        c.a_key.display()
    );
    let rw = Ringway::start(&pp_config(http.addr, "\"127.0.0.0/8\"", &tls), d);
    let proxy = rw.addr("app");
    let tcp = connect_from(src(1), proxy);
    let conn = rustls::ClientConnection::new(
        client_config(),
        rustls::pki_types::ServerName::try_from("a.test").unwrap(),
    )
    .unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    // The header and the ClientHello in one write.
    let mut first = b"PROXY TCP4 203.0.113.8 127.0.0.1 5555 443\r\n".to_vec();
    s.conn.write_tls(&mut first).unwrap();
    s.sock.write_all(&first).unwrap();
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    s.write_all(b"GET /tls HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (head, _) = read_response_from(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(
        last_seen(&http),
        (
            "203.0.113.8".into(),
            Some("203.0.113.8".into()),
            "127.0.0.1".into()
        )
    );
}

fn xff_config(http: SocketAddr, trusted: &str, recursive: bool) -> String {
    format!(
        r#"
[real_ip]
set_real_ip_from = [{trusted}]
header = "X-Forwarded-For"
recursive = {recursive}

[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."/"]
proxy_pass = "http://{http}"
{HEADERS}"#
    )
}

/// One keep-alive connection from `from`; a request with `xff`.
fn xff_request(s: &mut TcpStream, xff: &str) -> String {
    s.write_all(
        format!("GET /x HTTP/1.1\r\nHost: app\r\nX-Forwarded-For: {xff}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let (head, _) = read_response(s);
    head.lines().next().unwrap_or("").to_string()
}

fn x_forwarded_for_recursive_or_not_and_untrusted(d: Driver) {
    let http = HttpBackend::start();
    let trusted = "\"127.0.0.0/8\", \"10.0.0.0/8\"";
    {
        let rw = Ringway::start(&xff_config(http.addr, trusted, true), d);
        let mut s = connect_from(src(1), rw.addr("app"));
        ok(xff_request(&mut s, "198.51.100.9, 10.1.1.1"));
        assert_eq!(
            last_seen(&http),
            ("198.51.100.9".into(), None, "127.0.0.1".into())
        );
        // Per request, on the same connection.
        ok(xff_request(&mut s, "10.2.2.2, 10.1.1.1"));
        assert_eq!(last_seen(&http).0, "10.2.2.2");
        ok(xff_request(&mut s, "junk"));
        assert_eq!(last_seen(&http).0, "127.0.0.1");
        // Two fields chain as one list.
        s.write_all(
            b"GET /x HTTP/1.1\r\nHost: app\r\nX-Forwarded-For: 198.51.100.3\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n",
        )
        .unwrap();
        read_response(&mut s);
        assert_eq!(last_seen(&http).0, "198.51.100.3");
        // The forwarded address is the request's, not the connection's: a
        // bad head after it is logged with the peer's own address.
        ok(xff_request(&mut s, "198.51.100.4"));
        s.write_all(b"GET /x HTTP/1.1\r\nHost: app\r\nBad header\r\n\r\n")
            .unwrap();
        let (head, _) = read_response(&mut s);
        assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
        let line = rw.wait_for_log("bad request", Duration::from_secs(5));
        assert!(line.contains("client=127.0.0.1:"), "{line}");
    }
    {
        let rw = Ringway::start(&xff_config(http.addr, trusted, false), d);
        let mut s = connect_from(src(1), rw.addr("app"));
        ok(xff_request(&mut s, "198.51.100.9, 10.1.1.1"));
        assert_eq!(
            last_seen(&http),
            ("10.1.1.1".into(), None, "127.0.0.1".into())
        );
    }
    {
        let rw = Ringway::start(&xff_config(http.addr, "\"127.0.0.2/32\"", true), d);
        let mut s = connect_from(src(3), rw.addr("app"));
        ok(xff_request(&mut s, "198.51.100.9"));
        assert_eq!(
            last_seen(&http),
            ("127.0.0.3".into(), None, "127.0.0.3".into())
        );
        let mut s = connect_from(src(2), rw.addr("app"));
        ok(xff_request(&mut s, "198.51.100.9"));
        assert_eq!(last_seen(&http).0, "198.51.100.9");
    }
}

/// `X-Real-IP` counts in its first field only (nginx); the peer must be
/// trusted.
fn x_real_ip_first_field(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(
        &format!(
            r#"
[real_ip]
set_real_ip_from = ["127.0.0.1/32"]
header = "X-Real-IP"

[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."/"]
proxy_pass = "http://{http}"
{HEADERS}"#,
            http = http.addr
        ),
        d,
    );
    let mut s = connect_from(src(1), rw.addr("app"));
    s.write_all(
        b"GET /x HTTP/1.1\r\nHost: app\r\nX-Real-IP: 198.51.100.5\r\nX-Real-IP: 198.51.100.6\r\n\r\n",
    )
    .unwrap();
    let (head, _) = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    // The backend sees ringway's X-Real-IP ($remote_addr) first.
    assert_eq!(last_seen(&http).0, "198.51.100.5");
    let mut s = connect_from(src(2), rw.addr("app"));
    s.write_all(b"GET /x HTTP/1.1\r\nHost: app\r\nX-Real-IP: 198.51.100.5\r\n\r\n")
        .unwrap();
    read_response(&mut s);
    assert_eq!(last_seen(&http).0, "127.0.0.2");
}

/// Two clients behind one balancer connection: each has its own
/// `limit_req` burst, and `ip_hash` spreads them by their own /24.
fn limits_and_ip_hash_key_on_the_forwarded_address(d: Driver) {
    let http = HttpBackend::start();
    let (b0, b1) = (Backend::start(), Backend::start());
    let config = format!(
        r#"
[real_ip]
set_real_ip_from = ["127.0.0.0/8"]
header = "X-Forwarded-For"

[limit_req_zones.per_ip]
key = "$binary_remote_addr"
rate = "1r/m"

[upstreams.pool]
balance = "ip_hash"
servers = [{{ addr = "{b0}" }}, {{ addr = "{b1}" }}]

[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."/"]
proxy_pass = "http://{http}"
limit_req = {{ zone = "per_ip", burst = 2, nodelay = true }}
[servers.app.locations."/ws/"]
proxy_pass = "http://pool"
"#,
        b0 = b0.addr,
        b1 = b1.addr,
        http = http.addr,
    );
    let rw = Ringway::start_with_runtime(&config, d, "workers = 2\n");
    let proxy = rw.addr("app");
    let mut s = connect_from(src(1), proxy);
    let statuses = |s: &mut TcpStream, xff: &str, n: usize| -> Vec<String> {
        (0..n).map(|_| xff_request(s, xff)).collect()
    };
    let a = statuses(&mut s, "198.51.100.1", 4);
    assert_eq!(a.iter().filter(|l| l.contains(" 200 ")).count(), 3, "{a:?}");
    assert!(a[3].contains(" 503 "), "{a:?}");
    // The same TCP peer, another forwarded client: a fresh burst.
    let b = statuses(&mut s, "198.51.100.2", 4);
    assert_eq!(b.iter().filter(|l| l.contains(" 200 ")).count(), 3, "{b:?}");
    assert!(b[3].contains(" 503 "), "{b:?}");
    // And the first is still refused.
    assert!(xff_request(&mut s, "198.51.100.1").contains(" 503 "));

    // ip_hash: forwarded clients in 32 different /24s through one peer
    // reach both backends (keyed on the peer, all would reach one).
    let mut hits = [0usize; 2];
    for i in 0..32u8 {
        let path = format!("/ws/h{i}");
        let mut s = connect_from(src(1), proxy);
        s.write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: app\r\nX-Forwarded-For: 198.51.{i}.1\r\n\
                 Upgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let (head, _) = read_response(&mut s);
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        let at = [&b0, &b1]
            .iter()
            .position(|b| b.requests().iter().any(|r| r.path == path))
            .expect("a backend saw the handshake");
        hits[at] += 1;
        // The same /24 again lands on the same backend.
        let again = format!("/ws/h{i}-again");
        let mut s2 = connect_from(src(2), proxy);
        s2.write_all(
            format!(
                "GET {again} HTTP/1.1\r\nHost: app\r\nX-Forwarded-For: 198.51.{i}.77\r\n\
                 Upgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let (head, _) = read_response(&mut s2);
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(
            [&b0, &b1][at].requests().iter().any(|r| r.path == again),
            "198.51.{i}.0/24 moved between backends"
        );
    }
    assert!(hits[0] > 0 && hits[1] > 0, "{hits:?}");
}

fn proxy_protocol_listen_without_real_ip_fails_the_config_test(d: Driver) {
    let (code, out, path) = config_test(&format!(
        "[runtime]\ndriver = \"{}\"\n\n[servers.app]\nlisten = [{{ addr = \"127.0.0.1:0\", proxy_protocol = true }}]\n[servers.app.locations.\"/\"]\nreturn = {{ status = 200 }}\n",
        d.name()
    ));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&path.display().to_string()), "{out}");
    assert!(out.contains("real_ip.set_real_ip_from"), "{out}");
    assert!(out.contains("proxy_protocol"), "{out}");
}

fn bad_cidr_fails_the_config_test(d: Driver) {
    let (code, out, path) = config_test(&format!(
        "[runtime]\ndriver = \"{}\"\n\n[real_ip]\nset_real_ip_from = [\"10.0.0.0/33\"]\n\n[servers.app]\nlisten = [\"127.0.0.1:0\"]\n[servers.app.locations.\"/\"]\nreturn = {{ status = 200 }}\n",
        d.name()
    ));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{}:5: real_ip.set_real_ip_from", path.display())),
        "{out}"
    );
    assert!(out.contains("10.0.0.0/33"), "{out}");
}
