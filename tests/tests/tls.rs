//! TLS end to end, on both drivers: wss and https terminated by ringway
//! for independent clients (tungstenite over rustls, Python `websockets`,
//! curl, `openssl s_client`, raw TCP), SNI certificate choice, protocol
//! versions, ALPN, `ringway -t` on certificate files, certificate reload
//! on SIGHUP, handshake timeout and malformed ClientHellos, and https/wss
//! to TLS upstreams.
//!
//! Needs the `openssl` and `curl` commands and Python 3 with the
//! `websockets` package (tls_support.rs makes the certificates with
//! `openssl` once per process).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ringway_tests::tls_support::*;
use ringway_tests::*;
use tungstenite::Message;

every_relay!(
    wss_text_and_binary_echo,
    wss_sixteen_mib_message,
    wss_over_tls12,
    wss_thousand_pipelined_messages_in_order,
    python_websockets_wss_echo,
    sighup_swaps_the_certificate_and_keeps_live_tunnels,
    wss_to_a_tls_upstream,
    wss_backend_close_ends_with_close_notify,
);

/// The rest need no relay variant (no tunnel, or none that matters); a
/// module of their own, as `every_relay!` above already made `io_uring`
/// and `epoll` here.
mod drivers {
    use super::*;
    ringway_tests::both_drivers!(
        sni_picks_each_servers_certificate,
        tls_variables_and_forwarded_proto,
        tls11_client_is_refused,
        min_version_13_refuses_tls12,
        min_version_is_per_server_on_a_shared_listen,
        alpn_answers_http11,
        curl_keep_alive_and_chunked_both_ways,
        handshake_timeout_closes_a_silent_client,
        malformed_client_hello_gets_an_alert,
        connection_close_ends_with_close_notify,
        pipelined_requests_over_tls,
        large_bodies_both_ways_over_tls,
        session_resumption_tls13_and_tls12_across_a_reload,
        session_resumption_across_workers,
        https_upstream_with_the_trusted_ca,
        https_upstream_default_name_is_the_proxy_pass_host,
        https_upstream_without_sni,
        https_upstream_wrong_ca_is_502,
        https_upstream_wrong_name_is_502,
        https_upstream_unverified_accepts_any_certificate,
        https_upstream_group_pools_tls_connections,
        https_upstream_group_pools_tls12_connections,
    );
}

// ---- configuration ----

fn tls_table(cert: &Path, key: &Path, extra: &str) -> String {
    format!(
        "tls = {{ cert = \"{}\", key = \"{}\"{extra} }}",
        cert.display(),
        key.display()
    )
}

/// Server `a` (`a.test`, its certificate) with `/ws/` to `ws`, `/api/` to
/// `http` (both plain) and `= /vars` answering the TLS variables.
fn a_server(ws: SocketAddr, http: SocketAddr, tls_extra: &str) -> String {
    let c = certs();
    format!(
        r#"
[servers.a]
listen = ["127.0.0.1:0"]
server_name = ["a.test"]
{tls}
[servers.a.locations."/ws/"]
proxy_pass = "http://{ws}"
[servers.a.locations."/ws/".proxy_set_header]
X-Forwarded-Proto = "$scheme"
[servers.a.locations."/api/"]
proxy_pass = "http://{http}"
client_max_body_size = "16m"
[servers.a.locations."/api/".proxy_set_header]
X-Forwarded-Proto = "$scheme"
[servers.a.locations."= /vars"]
return = {{ status = 200, body = "$scheme|$https|$ssl_protocol|$ssl_server_name" }}
"#,
        tls = tls_table(&c.a_cert, &c.a_key, tls_extra),
    )
}

/// A second server `b` (`b.test`, its certificate) on the same listen.
fn b_server(tls_extra: &str) -> String {
    let c = certs();
    format!(
        r#"
[servers.b]
listen = ["127.0.0.1:0"]
server_name = ["b.test"]
{tls}
[servers.b.locations."= /vars"]
return = {{ status = 200, body = "b:$scheme|$https|$ssl_protocol|$ssl_server_name" }}
"#,
        tls = tls_table(&c.b_cert, &c.b_key, tls_extra),
    )
}

fn body_of(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

fn status_of(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

fn read_data<S: Read + Write>(ws: &mut tungstenite::WebSocket<S>) -> Message {
    loop {
        match ws.read().expect("read from ringway") {
            m @ (Message::Text(_) | Message::Binary(_) | Message::Close(_)) => return m,
            _ => continue,
        }
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

/// Read until the peer closes (EOF or reset) or `limit` passes: (bytes,
/// closed, how long it took).
fn read_until_close(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool, Duration) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(start.elapsed());
        if left.is_zero() {
            return (out, false, start.elapsed());
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (out, true, start.elapsed()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (out, false, start.elapsed())
            }
            Err(_) => return (out, true, start.elapsed()), // reset
        }
    }
}

// ---- wss through ringway ----

fn wss_text_and_binary_echo(d: Driver) {
    let b = Backend::start();
    let http = HttpBackend::start();
    let rw = Ringway::start(&a_server(b.addr, http.addr, ""), d);
    let mut ws = wss_connect(rw.addr("a"), "a.test", "/ws/echo");
    ws.send(Message::Text("hello over wss".into())).unwrap();
    assert_eq!(read_data(&mut ws), Message::Text("hello over wss".into()));
    let bin = pattern(70_000);
    ws.send(Message::Binary(bin.clone())).unwrap();
    assert_eq!(read_data(&mut ws), Message::Binary(bin));
    ws.close(None).unwrap();
    // The close handshake completes through the TLS tunnel.
    assert!(matches!(read_data(&mut ws), Message::Close(_)));
    let seen = b.requests();
    assert_eq!(seen[0].path, "/ws/echo");
    assert_eq!(seen[0].header("x-forwarded-proto"), Some("https"));
}

fn wss_sixteen_mib_message(d: Driver) {
    let b = Backend::start();
    let http = HttpBackend::start();
    let rw = Ringway::start(&a_server(b.addr, http.addr, ""), d);
    let mut ws = wss_connect(rw.addr("a"), "a.test", "/ws/big");
    let big = pattern(16 << 20);
    ws.send(Message::Binary(big.clone())).unwrap();
    match read_data(&mut ws) {
        Message::Binary(got) => {
            assert_eq!(got.len(), big.len());
            assert!(got == big, "16 MiB payload corrupted");
        }
        other => panic!("expected the binary echo, got {other:?}"),
    }
}

fn wss_over_tls12(d: Driver) {
    let b = Backend::start();
    let http = HttpBackend::start();
    let rw = Ringway::start(&a_server(b.addr, http.addr, ""), d);
    let cc = client_config_with(&certs().ca, TLS12_ONLY, &[]);
    let mut ws = wss_connect_with(rw.addr("a"), "a.test", "/ws/12", cc).expect("wss over TLS 1.2");
    ws.send(Message::Text("tls 1.2".into())).unwrap();
    assert_eq!(read_data(&mut ws), Message::Text("tls 1.2".into()));
    let bin = pattern(1 << 20);
    ws.send(Message::Binary(bin.clone())).unwrap();
    assert_eq!(read_data(&mut ws), Message::Binary(bin));
}

fn wss_thousand_pipelined_messages_in_order(d: Driver) {
    let b = Backend::start();
    let http = HttpBackend::start();
    let rw = Ringway::start(&a_server(b.addr, http.addr, ""), d);
    let mut ws = wss_connect(rw.addr("a"), "a.test", "/ws/many");
    for i in 0..1000 {
        ws.write(Message::Text(format!("m{i}"))).unwrap();
    }
    ws.flush().unwrap();
    for i in 0..1000 {
        assert_eq!(read_data(&mut ws), Message::Text(format!("m{i}")));
    }
}

const PY_CLIENT: &str = r#"
import asyncio, os, ssl, sys
try:
    import websockets
except ImportError as e:
    print("MISSING-WEBSOCKETS", e)
    sys.exit(3)

async def main():
    url, ca, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ctx = ssl.create_default_context(cafile=ca)
    async with websockets.connect(url, ssl=ctx, host="127.0.0.1", port=port,
                                  max_size=None, open_timeout=10, close_timeout=5) as ws:
        await ws.send("hello from python over wss")
        got = await asyncio.wait_for(ws.recv(), 10)
        assert got == "hello from python over wss", got
        small = bytes(range(256)) * 300
        await ws.send(small)
        got = await asyncio.wait_for(ws.recv(), 10)
        assert got == small, "binary echo differs"
        big = os.urandom(16 << 20)
        await ws.send(big)
        got = await asyncio.wait_for(ws.recv(), 30)
        assert len(got) == len(big), len(got)
        assert got == big, "16 MiB echo differs"
    print("PY-WSS-OK")

asyncio.run(main())
"#;

fn python_websockets_wss_echo(d: Driver) {
    let b = Backend::start();
    let http = HttpBackend::start();
    let rw = Ringway::start(&a_server(b.addr, http.addr, ""), d);
    let dir = temp_dir("py");
    let script = dir.join("wss_client.py");
    std::fs::write(&script, PY_CLIENT).unwrap();
    let port = rw.addr("a").port();
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg(format!("wss://a.test:{port}/ws/python"))
        .arg(&certs().ca)
        .arg(port.to_string());
    for v in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        cmd.env_remove(v);
    }
    let out = run_bounded(
        &mut cmd,
        None,
        Duration::from_secs(60),
        "python3 is missing: this test needs Python 3 with the `websockets` package (pip install websockets)",
    );
    assert!(
        !out.stdout.contains("MISSING-WEBSOCKETS"),
        "the Python `websockets` package is missing: install it (pip install websockets); {}",
        out.all()
    );
    assert!(
        out.ok() && out.stdout.contains("PY-WSS-OK"),
        "Python websockets over wss: {}",
        out.all()
    );
    assert_eq!(b.requests()[0].path, "/ws/python");
}

// ---- SNI, variables, versions, ALPN ----

fn sni_picks_each_servers_certificate(d: Driver) {
    let config = format!(
        "{}{}",
        a_server(refused_addr(), refused_addr(), ""),
        b_server("")
    );
    let rw = Ringway::start(&config, d);
    let addr = rw.addr("a");
    assert_eq!(addr, rw.addr("b"), "both servers share one listener");
    for (sni, cn) in [
        (Some("a.test"), "a.test"),
        (Some("b.test"), "b.test"),
        // No server by that name, or no name: the default server's (the
        // first listed).
        (Some("unknown.test"), "a.test"),
        (None, "a.test"),
    ] {
        let out = s_client(addr, sni, &[]);
        assert_eq!(
            subject_cn(&out).as_deref(),
            Some(cn),
            "SNI {sni:?}: {}",
            out.all()
        );
        if sni.is_some_and(|n| n == cn) {
            assert!(
                out.stdout.contains("Verify return code: 0 (ok)"),
                "SNI {sni:?}: {}",
                out.all()
            );
        }
    }
    // And a verifying client that names each server gets through to it.
    assert_eq!(
        body_of(&https_get(addr, "a.test", "/vars")),
        "https|on|TLSv1.3|a.test"
    );
    assert_eq!(
        body_of(&https_get(addr, "b.test", "/vars")),
        "b:https|on|TLSv1.3|b.test"
    );
}

fn tls_variables_and_forwarded_proto(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&a_server(refused_addr(), http.addr, ""), d);
    let addr = rw.addr("a");
    let r = https_get(addr, "a.test", "/vars");
    assert!(status_of(&r).starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(body_of(&r), "https|on|TLSv1.3|a.test");
    // TLS 1.2.
    let r = https_request(
        addr,
        "a.test",
        client_config_with(&certs().ca, TLS12_ONLY, &[]),
        "GET /vars HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(body_of(&r), "https|on|TLSv1.2|a.test");
    // No SNI (the client names an IP address; the certificate has it).
    let r = https_request(
        addr,
        "127.0.0.1",
        client_config(),
        "GET /vars HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(body_of(&r), "https|on|TLSv1.3|");
    // $scheme reaches the backend as X-Forwarded-Proto.
    let r = https_get(addr, "a.test", "/api/proto");
    assert!(status_of(&r).starts_with("HTTP/1.1 200"), "{r}");
    let seen = http.seen.lock().unwrap().clone();
    assert_eq!(seen[0].path, "/api/proto");
    assert_eq!(seen[0].header("x-forwarded-proto"), Some("https"));
}

fn tls11_client_is_refused(d: Driver) {
    let rw = Ringway::start(&a_server(refused_addr(), refused_addr(), ""), d);
    let addr = rw.addr("a");
    let out = s_client(
        addr,
        Some("a.test"),
        &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
    );
    assert!(!out.ok(), "a TLS 1.1 handshake succeeded: {}", out.all());
    assert!(
        subject_cn(&out).is_none() && out.stdout.contains("Cipher is (NONE)"),
        "no TLS 1.1 session: {}",
        out.all()
    );
    rw.wait_for_log("TLS handshake failed", Duration::from_secs(10));
    // ringway keeps serving.
    assert_eq!(
        body_of(&https_get(addr, "a.test", "/vars")),
        "https|on|TLSv1.3|a.test"
    );
}

fn min_version_13_refuses_tls12(d: Driver) {
    let rw = Ringway::start(
        &a_server(refused_addr(), refused_addr(), ", min_version = \"1.3\""),
        d,
    );
    let addr = rw.addr("a");
    let url = format!("https://a.test:{}/vars", addr.port());
    let out = curl(
        addr,
        "a.test",
        &["--noproxy", "*", "--tls-max", "1.2", &url],
    );
    assert!(!out.ok(), "curl --tls-max 1.2 got through: {}", out.all());
    assert!(!out.stdout.contains("https|"), "{}", out.all());
    let out = curl(addr, "a.test", &["--noproxy", "*", "--tlsv1.3", &url]);
    assert!(out.ok(), "{}", out.all());
    assert_eq!(out.stdout, "https|on|TLSv1.3|a.test");
    // A rustls client limited to TLS 1.2 fails its handshake too.
    let r = tls_connect(
        addr,
        "a.test",
        client_config_with(&certs().ca, TLS12_ONLY, &[]),
    );
    assert!(r.is_err(), "a TLS 1.2 handshake completed");
}

/// Two servers on one listen, `a` allowing TLS 1.2, `b` only 1.3: a TLS 1.2
/// client naming `b.test` is not served; naming `a.test` it is.
fn min_version_is_per_server_on_a_shared_listen(d: Driver) {
    let config = format!(
        "{}{}",
        a_server(refused_addr(), refused_addr(), ""),
        b_server(", min_version = \"1.3\"")
    );
    let rw = Ringway::start(&config, d);
    let addr = rw.addr("a");
    let tls12 = client_config_with(&certs().ca, TLS12_ONLY, &[]);
    let r = https_request(
        addr,
        "a.test",
        tls12.clone(),
        "GET /vars HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(body_of(&r), "https|on|TLSv1.2|a.test");
    // b.test over TLS 1.2: either the handshake fails or the connection is
    // closed without an answer.
    if let Ok(mut s) = tls_connect(addr, "b.test", tls12) {
        let _ = s.write_all(b"GET /vars HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n");
        let _ = s.flush();
        let got = match read_to_close(&mut s) {
            Ok(v) | Err((v, _)) => String::from_utf8_lossy(&v).into_owned(),
        };
        assert!(
            !got.contains("b:https"),
            "b.test (min_version 1.3) served a TLS 1.2 client: {got}"
        );
    }
    assert_eq!(
        body_of(&https_get(addr, "b.test", "/vars")),
        "b:https|on|TLSv1.3|b.test"
    );
}

fn alpn_answers_http11(d: Driver) {
    let rw = Ringway::start(&a_server(refused_addr(), refused_addr(), ""), d);
    let addr = rw.addr("a");
    let out = s_client(addr, Some("a.test"), &["-alpn", "h2,http/1.1"]);
    assert!(
        out.stdout.contains("ALPN protocol: http/1.1"),
        "{}",
        out.all()
    );
    let cc = client_config_with(&certs().ca, TLS12_AND_13, &[b"h2", b"http/1.1"]);
    let s = tls_connect(addr, "a.test", cc).expect("handshake with ALPN");
    assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    // Over TLS 1.2 too.
    let cc = client_config_with(&certs().ca, TLS12_ONLY, &[b"h2", b"http/1.1"]);
    let s = tls_connect(addr, "a.test", cc).expect("handshake with ALPN");
    assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    // A client that offers no ALPN is served all the same.
    let s = tls_connect(addr, "a.test", client_config()).expect("handshake without ALPN");
    assert_eq!(s.conn.alpn_protocol(), None);
}

// ---- https with curl ----

fn curl_keep_alive_and_chunked_both_ways(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&a_server(refused_addr(), http.addr, ""), d);
    let addr = rw.addr("a");
    let base = format!("https://a.test:{}", addr.port());
    // Two requests on one connection.
    let out = curl(
        addr,
        "a.test",
        &[
            "--noproxy",
            "*",
            "-w",
            "\n%{num_connects}\n",
            &format!("{base}/api/one"),
            &format!("{base}/api/two"),
        ],
    );
    assert!(out.ok(), "{}", out.all());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.all());
    assert!(lines[0].starts_with("GET /api/one "), "{}", out.all());
    assert!(lines[2].starts_with("GET /api/two "), "{}", out.all());
    assert_eq!(
        (lines[1], lines[3]),
        ("1", "0"),
        "the second request reuses the connection: {}",
        out.all()
    );

    // A chunked request body, answered with a chunked response that echoes it.
    let dir = temp_dir("curl");
    let payload: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let body_file = dir.join("body");
    std::fs::write(&body_file, &payload).unwrap();
    let head_file = dir.join("head");
    let out_file = dir.join("out");
    let out = curl(
        addr,
        "a.test",
        &[
            "--noproxy",
            "*",
            "-v",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &format!("@{}", body_file.display()),
            "-D",
            &head_file.display().to_string(),
            "-o",
            &out_file.display().to_string(),
            &format!("{base}/api/chunked"),
        ],
    );
    assert!(out.ok(), "{}", out.all());
    assert!(
        out.stderr
            .to_ascii_lowercase()
            .contains("> transfer-encoding: chunked"),
        "curl sent a chunked body: {}",
        out.all()
    );
    let head = std::fs::read_to_string(&head_file).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "a chunked response: {head}"
    );
    let got = std::fs::read(&out_file).unwrap();
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "the echoed body differs");
}

// ---- the TLS read and write paths with HTTP ----

/// Ten requests in one write: ringway answers each, in order, on the one
/// TLS connection (requests left over in decrypted bytes are served
/// without waiting for the socket).
fn pipelined_requests_over_tls(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&a_server(refused_addr(), http.addr, ""), d);
    let mut s = tls_connect(rw.addr("a"), "a.test", client_config()).unwrap();
    let mut batch = String::new();
    for i in 0..10 {
        let path = if i % 2 == 0 {
            "/vars".to_string()
        } else {
            format!("/api/p{i}")
        };
        batch.push_str(&format!("GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n"));
    }
    s.write_all(batch.as_bytes()).unwrap();
    s.flush().unwrap();
    for i in 0..10 {
        let (head, body) = read_response_from(&mut s);
        assert!(head.starts_with("HTTP/1.1 200"), "response {i}: {head}");
        let body = String::from_utf8_lossy(&body);
        if i % 2 == 0 {
            assert_eq!(body, "https|on|TLSv1.3|a.test", "response {i}");
        } else {
            assert!(
                body.starts_with(&format!("GET /api/p{i} ")),
                "response {i}: {body}"
            );
        }
    }
}

/// An 8 MiB response and a 4 MiB upload through TLS, on one keep-alive
/// connection.
fn large_bodies_both_ways_over_tls(d: Driver) {
    let rec = recorder::Recorder::start();
    let rw = Ringway::start(&a_server(refused_addr(), rec.addr, ""), d);
    let mut s = tls_connect(rw.addr("a"), "a.test", client_config()).unwrap();
    let n = 8 << 20;
    s.write_all(format!("GET /api/big-{n} HTTP/1.1\r\nHost: a.test\r\n\r\n").as_bytes())
        .unwrap();
    s.flush().unwrap();
    let (head, body) = read_response_from(&mut s);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body.len(), n);
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, &b)| b == b'a' + (i % 26) as u8),
        "the 8 MiB body is corrupted"
    );
    let upload = pattern(4 << 20);
    s.write_all(
        format!(
            "POST /api/up HTTP/1.1\r\nHost: a.test\r\nContent-Length: {}\r\n\r\n",
            upload.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(&upload).unwrap();
    s.flush().unwrap();
    let (head, body) = read_response_from(&mut s);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("POST /api/up body={}", upload.len())
    );
    let reqs = rec.requests();
    assert!(
        reqs.last().unwrap().body == upload,
        "the upload reached the backend intact"
    );
}

/// A second connection resumes the first one's session (TLS 1.3 tickets,
/// TLS 1.2 tickets or session IDs), also after a SIGHUP reload.
fn session_resumption_tls13_and_tls12_across_a_reload(d: Driver) {
    let config = a_server(refused_addr(), refused_addr(), "");
    let rw = Ringway::start(&config, d);
    let addr = rw.addr("a");
    let get = "GET /vars HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
    let kind = |cc: &std::sync::Arc<rustls::ClientConfig>| {
        let mut s = tls_connect(addr, "a.test", cc.clone()).unwrap();
        let k = s.conn.handshake_kind();
        s.write_all(get.as_bytes()).unwrap();
        s.flush().unwrap();
        // Reading to the end takes in the TLS 1.3 tickets too.
        let got = match read_to_close(&mut s) {
            Ok(v) | Err((v, _)) => v,
        };
        assert!(got.starts_with(b"HTTP/1.1 200"), "{got:?}");
        k
    };
    for (name, versions) in [("TLS 1.3", TLS13_ONLY), ("TLS 1.2", TLS12_ONLY)] {
        let cc = client_config_with(&certs().ca, versions, &[]);
        assert_eq!(kind(&cc), Some(rustls::HandshakeKind::Full), "{name}");
        assert_eq!(
            kind(&cc),
            Some(rustls::HandshakeKind::Resumed),
            "{name}: the second connection resumes"
        );
    }
    let cc = client_config_with(&certs().ca, TLS12_AND_13, &[]);
    assert_eq!(kind(&cc), Some(rustls::HandshakeKind::Full));
    rw.reload(&config, 1);
    assert_eq!(
        kind(&cc),
        Some(rustls::HandshakeKind::Resumed),
        "a session from before the reload resumes after it"
    );
}

/// With two workers (SO_REUSEPORT spreads connections over both cores),
/// every connection after the first resumes: TLS 1.3 tickets and TLS 1.2
/// tickets are sealed with the process's one key, TLS 1.2 session IDs
/// live in the process's one cache.
fn session_resumption_across_workers(d: Driver) {
    let config = a_server(refused_addr(), refused_addr(), "");
    let rw = Ringway::start_with_runtime(&config, d, "workers = 2\n");
    rw.wait_for_log_count("worker started", 2, Duration::from_secs(10));
    let addr = rw.addr("a");
    let get = "GET /vars HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
    let kind = |cc: &std::sync::Arc<rustls::ClientConfig>| {
        let mut s = tls_connect(addr, "a.test", cc.clone()).unwrap();
        let k = s.conn.handshake_kind();
        s.write_all(get.as_bytes()).unwrap();
        s.flush().unwrap();
        let got = match read_to_close(&mut s) {
            Ok(v) | Err((v, _)) => v,
        };
        assert!(got.starts_with(b"HTTP/1.1 200"), "{got:?}");
        k
    };
    let session_ids = {
        let mut cc = (*client_config_with(&certs().ca, TLS12_ONLY, &[])).clone();
        cc.resumption = rustls::client::Resumption::default()
            .tls12_resumption(rustls::client::Tls12Resumption::SessionIdOnly);
        std::sync::Arc::new(cc)
    };
    for (name, cc) in [
        (
            "TLS 1.3 tickets",
            client_config_with(&certs().ca, TLS13_ONLY, &[]),
        ),
        (
            "TLS 1.2 tickets",
            client_config_with(&certs().ca, TLS12_ONLY, &[]),
        ),
        ("TLS 1.2 session IDs", session_ids),
    ] {
        assert_eq!(kind(&cc), Some(rustls::HandshakeKind::Full), "{name}");
        for i in 0..8 {
            assert_eq!(
                kind(&cc),
                Some(rustls::HandshakeKind::Resumed),
                "{name}: connection {i} after the first resumes"
            );
        }
    }
}

// ---- certificate reload ----

fn sighup_swaps_the_certificate_and_keeps_live_tunnels(d: Driver) {
    let c = certs();
    let b = Backend::start();
    // The certificate files ringway reads, rewritten in place as a renewal
    // would.
    let dir = temp_dir("certs-live");
    let (cert, key) = (dir.join("live.pem"), dir.join("live.key"));
    std::fs::copy(&c.a_cert, &cert).unwrap();
    std::fs::copy(&c.a_key, &key).unwrap();
    let config = |cert: &Path, key: &Path| {
        format!(
            "[servers.a]\nlisten = [\"127.0.0.1:0\"]\nserver_name = [\"a.test\"]\n{}\n[servers.a.locations.\"/ws/\"]\nproxy_pass = \"http://{}\"\n",
            tls_table(cert, key, ""),
            b.addr
        )
    };
    let rw = Ringway::start(&config(&cert, &key), d);
    let addr = rw.addr("a");
    let served = || {
        let out = s_client(addr, Some("a.test"), &[]);
        assert!(
            out.stdout.contains("Verify return code: 0 (ok)"),
            "{}",
            out.all()
        );
        subject_cn(&out).unwrap_or_default()
    };
    assert_eq!(served(), "a.test");
    let mut ws = wss_connect(addr, "a.test", "/ws/live");
    ws.send(Message::Text("before".into())).unwrap();
    assert_eq!(read_data(&mut ws), Message::Text("before".into()));

    // Renewal: new files (an RSA key now) at the same paths, SIGHUP.
    std::fs::copy(&c.a2_cert, &cert).unwrap();
    std::fs::copy(&c.a2_key, &key).unwrap();
    rw.reload(&config(&cert, &key), 1);
    assert_eq!(
        served(),
        "a2.test",
        "new handshakes get the renewed certificate"
    );
    let mut ws2 = wss_connect(addr, "a.test", "/ws/new");
    ws2.send(Message::Text("new cert".into())).unwrap();
    assert_eq!(read_data(&mut ws2), Message::Text("new cert".into()));
    // The tunnel opened under the old certificate still relays.
    ws.send(Message::Text("after reload".into())).unwrap();
    assert_eq!(read_data(&mut ws), Message::Text("after reload".into()));

    // A configuration naming other files.
    rw.reload(&config(&c.a_cert, &c.a_key), 2);
    assert_eq!(served(), "a.test", "the files the new configuration names");

    // A reload naming a file that is no certificate is refused; the
    // running configuration (and certificate) stays.
    let old = std::fs::read_to_string(&rw.config_path).unwrap();
    let keep = &old[..old.find("[servers.a]").unwrap()];
    std::fs::write(
        &rw.config_path,
        format!("{keep}{}", config(&c.not_pem, &c.a_key)),
    )
    .unwrap();
    rw.signal(libc::SIGHUP);
    let line = rw.wait_for_log(
        "reload failed, keeping the running configuration",
        Duration::from_secs(10),
    );
    assert!(
        line.contains("servers.a.tls.cert") && line.contains("holds no PEM certificate"),
        "the refusal names the key and the reason: {line}"
    );
    assert_eq!(served(), "a.test");
    for (ws, text) in [(&mut ws, "after a refused reload"), (&mut ws2, "still")] {
        ws.send(Message::Text(text.into())).unwrap();
        assert_eq!(read_data(ws), Message::Text(text.into()));
    }
}

// ---- handshakes that never complete or make no sense ----

fn handshake_timeout_closes_a_silent_client(d: Driver) {
    let rw = Ringway::start(
        &a_server(
            refused_addr(),
            refused_addr(),
            ", handshake_timeout = \"1s\"",
        ),
        d,
    );
    let addr = rw.addr("a");
    let start = Instant::now();
    // Connects and sends nothing.
    let mut silent = TcpStream::connect(addr).unwrap();
    // Sends half a record header, then nothing.
    let mut partial = TcpStream::connect(addr).unwrap();
    partial.write_all(&[0x16, 0x03, 0x01]).unwrap();
    for (what, s) in [("silent", &mut silent), ("partial", &mut partial)] {
        let (got, closed, _) = read_until_close(s, Duration::from_secs(10));
        let took = start.elapsed();
        assert!(closed, "{what}: still open after {took:?}");
        assert!(
            took >= Duration::from_millis(700),
            "{what}: closed before the handshake timeout ({took:?})"
        );
        // Nothing or an alert, never plaintext.
        assert!(
            got.is_empty() || got[0] == 0x15,
            "{what}: unexpected bytes {got:?}"
        );
    }
    let line = rw.wait_for_log("TLS handshake failed", Duration::from_secs(10));
    assert!(line.contains("timed out"), "{line}");
    rw.wait_for_log_count("TLS handshake failed", 2, Duration::from_secs(10));
    assert_eq!(
        body_of(&https_get(addr, "a.test", "/vars")),
        "https|on|TLSv1.3|a.test"
    );
}

fn malformed_client_hello_gets_an_alert(d: Driver) {
    let rw = Ringway::start(&a_server(refused_addr(), refused_addr(), ""), d);
    let addr = rw.addr("a");
    // A well-framed ClientHello whose session_id length runs past its end.
    let mut corrupt_hello = vec![
        0x16, 0x03, 0x01, 0x00, 0x29, 0x01, 0x00, 0x00, 0x25, 0x03, 0x03,
    ];
    corrupt_hello.extend([0x5a; 32]);
    corrupt_hello.extend([0xff, 0x00, 0x00]);
    // A record of 64 garbage bytes: a handshake message header announcing
    // more than rustls accepts. rustls closes without an alert there (as
    // its own buffered API does), so only the close is required.
    let mut garbage_hello = vec![0x16, 0x03, 0x01, 0x00, 0x40];
    garbage_hello.extend((0..64u8).map(|i| i.wrapping_mul(37) ^ 0xa5));
    let cases: [(&str, Vec<u8>, bool); 5] = [
        ("corrupt ClientHello", corrupt_hello, true),
        // A handshake record holding a (truncated) ServerHello.
        (
            "not a ClientHello",
            vec![
                0x16, 0x03, 0x03, 0x00, 0x08, 0x02, 0x00, 0x00, 0x04, 0x03, 0x03, 0x00, 0x00,
            ],
            true,
        ),
        ("garbage handshake record", garbage_hello, true),
        // Record-layer errors (rustls reports them before consuming any
        // byte).
        (
            "plain HTTP",
            b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n".to_vec(),
            true,
        ),
        // A record header announcing more than any record may hold.
        ("oversized record", vec![0x16, 0x03, 0x01, 0xff, 0xff], true),
    ];
    for (n, (what, bytes, alert)) in cases.into_iter().enumerate() {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&bytes).unwrap();
        // Well before the 10 s handshake timeout.
        let (got, closed, took) = read_until_close(&mut s, Duration::from_secs(5));
        let logs = rw.logs();
        assert!(
            !logs.contains("panicked"),
            "{what}: a ringway thread panicked:\n{logs}"
        );
        if alert {
            assert!(
                !got.is_empty() && got[0] == 0x15,
                "{what}: expected a TLS alert record, got {got:?} (closed: {closed}, after {took:?})"
            );
        } else {
            assert!(
                got.is_empty() || got[0] == 0x15,
                "{what}: expected nothing or an alert, got {got:?}"
            );
        }
        assert!(closed, "{what}: not closed ({took:?})");
        rw.wait_for_log_count("TLS handshake failed", n + 1, Duration::from_secs(10));
    }
    // ringway keeps serving.
    assert_eq!(
        body_of(&https_get(addr, "a.test", "/vars")),
        "https|on|TLSv1.3|a.test"
    );
}

/// A response on a `Connection: close` exchange ends with close_notify
/// before the TCP close (RFC 8446 §6.1; nginx's SSL_shutdown), so a
/// client can tell the end from a truncation.
fn connection_close_ends_with_close_notify(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&a_server(refused_addr(), http.addr, ""), d);
    let addr = rw.addr("a");
    for path in ["/vars", "/api/x", "/nowhere"] {
        let (r, notified) = https_exchange(
            addr,
            "a.test",
            client_config(),
            &format!("GET {path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"),
        );
        assert!(status_of(&r).starts_with("HTTP/1.1 "), "{path}: {r}");
        assert!(
            notified,
            "{path}: ringway closed the TLS connection without close_notify after {:?}",
            status_of(&r)
        );
    }
}

/// A backend that closes the WebSocket: the close frame reaches the wss
/// client, then the end of the TLS stream as close_notify.
fn wss_backend_close_ends_with_close_notify(d: Driver) {
    let b = Backend::start();
    let rw = Ringway::start(&a_server(b.addr, refused_addr(), ""), d);
    let tls = tls_connect(rw.addr("a"), "a.test", client_config()).unwrap();
    let url = format!("wss://a.test:{}/ws/bye", rw.addr("a").port());
    let (mut ws, _) = tungstenite::client::client_with_config(url, tls, Some(ws_config()))
        .map_err(|e| format!("{e}"))
        .expect("wss handshake");
    assert!(matches!(read_data(&mut ws), Message::Close(_)));
    // tungstenite answered the close; the stream under it ends.
    let _ = ws.flush();
    match read_to_close(ws.get_mut()) {
        Ok(rest) => assert!(rest.is_empty(), "bytes after the close: {rest:?}"),
        Err((_, e)) => panic!("the wss stream did not end with close_notify: {e}"),
    }
}

// ---- `ringway -t` on certificate files ----

fn app_config(cert: &Path, key: &Path) -> String {
    format!(
        "[servers.app]\nlisten = [\"127.0.0.1:0\"]\n{}\n[servers.app.locations.\"/\"]\nreturn = {{ status = 200 }}\n",
        tls_table(cert, key, "")
    )
}

#[test]
fn config_test_accepts_each_key_format() {
    let c = certs();
    // PKCS#8 EC, SEC1 EC and PKCS#1 RSA keys.
    for (cert, key) in [
        (&c.a_cert, &c.a_key),
        (&c.b_cert, &c.b_key),
        (&c.a2_cert, &c.a2_key),
    ] {
        let (code, out, _) = config_test(&app_config(cert, key));
        assert_eq!(code, 0, "{}: {out}", key.display());
        assert!(out.contains("test is successful"), "{out}");
    }
}

#[test]
fn config_test_unreadable_certificate() {
    let c = certs();
    let (code, out, path) = config_test(&app_config(
        Path::new("/nonexistent/ringway/fullchain.pem"),
        &c.a_key,
    ));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{}:3: servers.app.tls.cert: cannot read `/nonexistent/ringway/fullchain.pem`",
            path.display()
        )),
        "{out}"
    );
}

#[test]
fn config_test_unreadable_key() {
    let c = certs();
    let (code, out, path) = config_test(&app_config(
        &c.a_cert,
        Path::new("/nonexistent/ringway/key.pem"),
    ));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{}:3: servers.app.tls.key: cannot read `/nonexistent/ringway/key.pem`",
            path.display()
        )),
        "{out}"
    );
}

#[test]
fn config_test_certificate_that_is_not_pem() {
    let c = certs();
    let (code, out, path) = config_test(&app_config(&c.not_pem, &c.a_key));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{}:3: servers.app.tls.cert: `{}` holds no PEM certificate",
            path.display(),
            c.not_pem.display()
        )),
        "{out}"
    );
}

#[test]
fn config_test_key_that_is_not_pem() {
    let c = certs();
    // A certificate file where the key should be: PEM, but no key in it.
    for key in [&c.not_pem, &c.b_cert] {
        let (code, out, path) = config_test(&app_config(&c.a_cert, key));
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains(&format!(
                "{}:3: servers.app.tls.key: `{}` holds no PEM private key",
                path.display(),
                key.display()
            )),
            "{out}"
        );
    }
}

#[test]
fn config_test_key_that_does_not_match() {
    let c = certs();
    let (code, out, path) = config_test(&app_config(&c.a_cert, &c.b_key));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{}:3: servers.app.tls.", path.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "the key in `{}` does not match the certificate in `{}`",
            c.b_key.display(),
            c.a_cert.display()
        )),
        "{out}"
    );
}

#[test]
fn config_test_listen_mixing_tls_and_plain() {
    let c = certs();
    let config = format!(
        "{}\n[servers.plain]\nlisten = [\"127.0.0.1:0\"]\nserver_name = [\"plain.test\"]\n[servers.plain.locations.\"/\"]\nreturn = {{ status = 200 }}\n",
        app_config(&c.a_cert, &c.a_key)
    );
    let (code, out, path) = config_test(&config);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{}:8: servers.plain.listen: 127.0.0.1:0 mixes TLS (server `app`) and plain HTTP (server `plain`)",
            path.display()
        )),
        "{out}"
    );
}

#[test]
fn config_test_unreadable_trusted_certificate() {
    let (code, out, path) = config_test(
        "[servers.app]\nlisten = [\"127.0.0.1:0\"]\n[servers.app.locations.\"/api/\"]\nproxy_pass = \"https://127.0.0.1:8443\"\nproxy_ssl_trusted_certificate = \"/nonexistent/ringway/ca.pem\"\n",
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{}:", path.display()))
            && out.contains("servers.app.locations.\"/api/\".proxy_ssl_trusted_certificate")
            && out.contains("cannot read `/nonexistent/ringway/ca.pem`"),
        "{out}"
    );
}

#[test]
fn config_test_expired_certificate_is_a_warning() {
    let c = certs();
    let (code, out, path) = config_test(&app_config(&c.expired_cert, &c.a_key));
    assert_eq!(code, 0, "an expired certificate is only a warning: {out}");
    assert!(
        out.contains(&format!(
            "warning: {}:3: servers.app.tls.cert: `{}`: the certificate expired at 2020-02-01 00:00:00 UTC",
            path.display(),
            c.expired_cert.display()
        )),
        "{out}"
    );
    assert!(out.contains("test is successful"), "{out}");
}

#[test]
fn a_bad_certificate_fails_the_start() {
    let c = certs();
    let dir = temp_dir("badstart");
    let path = dir.join("ringway.toml");
    std::fs::write(
        &path,
        format!(
            "[runtime]\nworkers = 1\n\n{}",
            app_config(&c.a_cert, &c.b_key)
        ),
    )
    .unwrap();
    let out = run_bounded(
        Command::new(binary()).arg("-c").arg(&path),
        None,
        Duration::from_secs(10),
        "the ringway binary",
    );
    assert!(
        out.code.is_some_and(|c| c != 0),
        "ringway started with a key that does not match: {}",
        out.all()
    );
    assert!(
        out.all().contains("does not match the certificate"),
        "{}",
        out.all()
    );
}

// ---- https and wss to TLS upstreams ----

/// A plain server `up` whose `/api/` goes to `proxy_pass` with `ssl` lines.
fn upstream_config(proxy_pass: &str, ssl: &str) -> String {
    format!(
        "[servers.up]\nlisten = [\"127.0.0.1:0\"]\n[servers.up.locations.\"/api/\"]\nproxy_pass = \"{proxy_pass}\"\nproxy_connect_timeout = \"3s\"\n{ssl}\n"
    )
}

fn trusted(ca: &Path, name: Option<&str>) -> String {
    let mut s = format!("proxy_ssl_trusted_certificate = \"{}\"\n", ca.display());
    if let Some(n) = name {
        s.push_str(&format!("proxy_ssl_name = \"{n}\"\n"));
    }
    s
}

/// `GET path` with `Connection: close` to server `up` (plain HTTP): the
/// response's head and body; panics naming the request when none comes
/// within 10 s.
fn plain_get(rw: &Ringway, path: &str) -> (String, String) {
    try_plain_get(rw, path).unwrap_or_else(|e| panic!("{e}"))
}

fn try_plain_get(rw: &Ringway, path: &str) -> Result<(String, String), String> {
    let mut s = TcpStream::connect(rw.addr("up")).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let (got, closed, took) = read_until_close(&mut s, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&got).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(format!(
            "GET {path}: no response head (closed: {closed}, after {took:?}): {text:?}"
        ));
    };
    Ok((format!("{head}\r\n\r\n"), body.to_string()))
}

fn tls_backend() -> TlsBackend {
    let c = certs();
    TlsBackend::start(&c.backend_cert, &c.backend_key)
}

fn https_upstream_with_the_trusted_ca(d: Driver) {
    let be = tls_backend();
    let rw = Ringway::start(
        &upstream_config(
            &format!("https://{}", be.addr),
            &trusted(&certs().ca, Some("backend.test")),
        ),
        d,
    );
    let (head, body) = plain_get(&rw, "/api/x");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}{body}");
    assert_eq!(
        body,
        "tls-backend GET /api/x sni=backend.test proto=- body=0"
    );
    assert_eq!(be.snis(), vec![Some("backend.test".to_string())]);
}

/// Without proxy_ssl_name the name is the proxy_pass host: an IP address
/// here, verified against the certificate's IP SAN and (being an IP) not
/// sent as SNI.
fn https_upstream_default_name_is_the_proxy_pass_host(d: Driver) {
    let be = tls_backend();
    let rw = Ringway::start(
        &upstream_config(&format!("https://{}", be.addr), &trusted(&certs().ca, None)),
        d,
    );
    let (head, body) = plain_get(&rw, "/api/ip");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}{body}");
    assert_eq!(body, "tls-backend GET /api/ip sni=- proto=- body=0");
    assert_eq!(be.snis(), vec![None]);
}

fn https_upstream_without_sni(d: Driver) {
    let be = tls_backend();
    let ssl = format!(
        "{}proxy_ssl_server_name = false\n",
        trusted(&certs().ca, Some("backend.test"))
    );
    let rw = Ringway::start(&upstream_config(&format!("https://{}", be.addr), &ssl), d);
    let (head, body) = plain_get(&rw, "/api/nosni");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}{body}");
    assert_eq!(be.snis(), vec![None], "proxy_ssl_server_name = false");
}

fn https_upstream_wrong_ca_is_502(d: Driver) {
    let be = tls_backend();
    let rw = Ringway::start(
        &upstream_config(
            &format!("https://{}", be.addr),
            &trusted(&certs().wrong_ca, Some("backend.test")),
        ),
        d,
    );
    let (head, body) = plain_get(&rw, "/api/x");
    assert!(head.starts_with("HTTP/1.1 502"), "{head}{body}");
    rw.wait_for_log("invalid peer certificate", Duration::from_secs(10));
    assert!(be.snis().is_empty(), "no handshake completed");
}

fn https_upstream_wrong_name_is_502(d: Driver) {
    let be = tls_backend();
    let rw = Ringway::start(
        &upstream_config(
            &format!("https://{}", be.addr),
            &trusted(&certs().ca, Some("other.test")),
        ),
        d,
    );
    let (head, body) = plain_get(&rw, "/api/x");
    assert!(head.starts_with("HTTP/1.1 502"), "{head}{body}");
    rw.wait_for_log("invalid peer certificate", Duration::from_secs(10));
}

fn https_upstream_unverified_accepts_any_certificate(d: Driver) {
    let be = tls_backend();
    let ssl = format!(
        "{}proxy_ssl_verify = false\n",
        trusted(&certs().wrong_ca, Some("backend.test"))
    );
    let rw = Ringway::start(&upstream_config(&format!("https://{}", be.addr), &ssl), d);
    let (head, body) = plain_get(&rw, "/api/x");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}{body}");
    assert_eq!(
        body,
        "tls-backend GET /api/x sni=backend.test proto=- body=0"
    );
}

/// An upstream group over https with keepalive: the second request reuses
/// the pooled TLS connection.
fn https_upstream_group_pools_tls_connections(d: Driver) {
    pooled_upstream(d, tls_backend());
}

/// The same with an upstream that speaks TLS 1.2 only.
fn https_upstream_group_pools_tls12_connections(d: Driver) {
    let c = certs();
    pooled_upstream(
        d,
        TlsBackend::start_with(&c.backend_cert, &c.backend_key, TLS12_ONLY),
    );
}

fn pooled_upstream(d: Driver, be: TlsBackend) {
    let config = format!(
        "[upstreams.be]\nservers = [{{ addr = \"{}\" }}]\nkeepalive = 4\n{}",
        be.addr,
        upstream_config("https://be", &trusted(&certs().ca, Some("backend.test")))
    );
    let rw = Ringway::start(&config, d);
    for i in 0..3 {
        let (head, body) = try_plain_get(&rw, &format!("/api/{i}")).unwrap_or_else(|e| {
            panic!(
                "{e}; the backend had {} connections, handshakes {:?}, requests {:?}",
                be.connections.load(std::sync::atomic::Ordering::SeqCst),
                be.snis(),
                be.requests().iter().map(|r| &r.path).collect::<Vec<_>>()
            )
        });
        assert!(head.starts_with("HTTP/1.1 200"), "{head}{body}");
        assert_eq!(
            body,
            format!("tls-backend GET /api/{i} sni=backend.test proto=- body=0")
        );
    }
    assert_eq!(
        be.snis().len(),
        1,
        "one TLS connection to the upstream, reused"
    );
}

fn wss_to_a_tls_upstream(d: Driver) {
    let be = tls_backend();
    let c = certs();
    let config = format!(
        "{}[servers.a.locations.\"/wss/\"]\nproxy_pass = \"https://{}\"\n{}[servers.a.locations.\"/wss/\".proxy_set_header]\nX-Forwarded-Proto = \"$scheme\"\n",
        a_server(refused_addr(), refused_addr(), ""),
        be.addr,
        trusted(&c.ca, Some("backend.test"))
    );
    let rw = Ringway::start(&config, d);
    let mut ws = wss_connect_with(rw.addr("a"), "a.test", "/wss/echo", client_config())
        .unwrap_or_else(|e| {
            panic!(
                "wss handshake through ringway to the TLS upstream: {e}; the upstream saw handshakes {:?} and requests {:?}",
                be.snis(),
                be.requests().iter().map(|r| &r.path).collect::<Vec<_>>()
            )
        });
    ws.send(Message::Text("tls on both sides".into())).unwrap();
    assert_eq!(
        read_data(&mut ws),
        Message::Text("tls on both sides".into())
    );
    let big = pattern(4 << 20);
    ws.send(Message::Binary(big.clone())).unwrap();
    match read_data(&mut ws) {
        Message::Binary(got) => assert!(got == big, "4 MiB echo differs"),
        other => panic!("expected the binary echo, got {other:?}"),
    }
    assert_eq!(be.snis(), vec![Some("backend.test".to_string())]);
    let seen = be.requests();
    assert_eq!(seen[0].path, "/wss/echo");
    assert_eq!(seen[0].header("upgrade"), Some("websocket"));
    assert_eq!(seen[0].header("x-forwarded-proto"), Some("https"));
}
