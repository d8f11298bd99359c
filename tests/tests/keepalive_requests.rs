//! `keepalive_requests` beside nginx with the same line: the last request
//! a connection may carry is answered with `Connection: close`, and the
//! connection ends after it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringway_tests::nginx::Nginx;
use ringway_tests::*;

both_drivers!(the_last_request_closes_the_connection);

/// The `Connection` value of each of `n` requests on one connection, and
/// whether it then ended (read returned 0).
fn run(addr: SocketAddr, n: usize) -> (Vec<String>, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut seen = Vec::new();
    for _ in 0..n {
        write!(s, "GET /r HTTP/1.1\r\nHost: app\r\n\r\n").unwrap();
        let (head, _) = read_response(&mut s);
        let conn = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let last = conn == "close";
        seen.push(conn);
        if last {
            break;
        }
    }
    let mut b = [0u8; 1];
    let ended = matches!(s.read(&mut b), Ok(0));
    (seen, ended)
}

fn the_last_request_closes_the_connection(d: Driver) {
    let rw = Ringway::start(
        r#"
[servers.app]
listen = ["127.0.0.1:0"]
keepalive_requests = 3

[servers.app.locations."= /r"]
return = { status = 200, body = "r" }
"#,
        d,
    );
    let ours = run(rw.addr("app"), 5);
    assert_eq!(
        ours,
        (
            vec!["keep-alive".into(), "keep-alive".into(), "close".into()],
            true
        )
    );
    if let Some(bin) = nginx::binary() {
        let ng = Nginx::start(
            &bin,
            "keepalive-requests",
            "",
            "keepalive_requests 3; location = /r { return 200 \"r\"; }",
        );
        assert_eq!(run(ng.addr, 5), ours, "nginx vs ringway");
    }
}
