//! A binary upgrade and plain HTTP: a request in flight when the upgrade
//! starts is answered by the old process, which then closes that
//! keep-alive connection after that answer (`Connection: close`) and
//! exits once it holds
//! nothing; new connections go to the new process meanwhile.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use ringway_tests::*;

both_drivers!(a_request_in_flight_finishes_in_the_old_process);

fn a_request_in_flight_finishes_in_the_old_process(d: Driver) {
    // The backend holds `/slow` until the test lets it answer.
    let (release, gate) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(gate));
    let (arrived_tx, arrived) = mpsc::channel::<()>();
    let arrived_tx = Mutex::new(arrived_tx);
    let backend = answering_backend(move |head| {
        let slow = head.starts_with("GET /slow ");
        if slow {
            let _ = arrived_tx.lock().unwrap().send(());
            let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(20));
        }
        let body = if slow { "slow done" } else { "fast" };
        (
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
            false,
        )
    });
    let config = format!(
        "[servers.app]\nlisten = [\"127.0.0.1:0\"]\n[servers.app.locations.\"/\"]\nproxy_pass = \"http://{backend}\"\n"
    );
    let mut rw = Ringway::start(&config, d);
    let old = rw.pid();

    // A keep-alive connection: one answered request, then one in flight.
    let mut c = rw.client("app");
    c.write_all(b"GET /fast HTTP/1.1\r\nHost: app\r\n\r\n")
        .unwrap();
    let (head, body) = read_response(&mut c);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "fast");
    c.write_all(b"GET /slow HTTP/1.1\r\nHost: app\r\n\r\n")
        .unwrap();
    arrived
        .recv_timeout(Duration::from_secs(10))
        .expect("the request in flight reached the backend");

    let report = rw.upgrade(None).expect("upgrade");
    assert!(report.contains("handed over 0 tunnels"), "{report}");
    // The old process still holds the request; the new one serves.
    assert!(alive(old), "the old process left with a request in flight");
    let mut fresh = TcpStream::connect(rw.addr("app")).unwrap();
    fresh
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    fresh
        .write_all(b"GET /fast HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (head, body) = read_response(&mut fresh);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "fast");

    release.send(()).unwrap();
    let (head, body) = read_response(&mut c);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "slow done");
    // The answer says the connection closes after it (RFC 9112 §9.6),
    // though the request was routed before the upgrade; then it does.
    assert!(
        field_values(&head, "connection")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("close")),
        "the old process keeps the connection alive: {head}"
    );
    let mut rest = Vec::new();
    let n = c
        .read_to_end(&mut rest)
        .expect("the old process closes the connection");
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&rest));
    assert!(
        rw.wait_gone(old, Duration::from_secs(10)).is_some(),
        "the old process did not exit once it held nothing"
    );
}
