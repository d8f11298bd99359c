//! Operations end to end: systemd's readiness protocol (READY, RELOADING,
//! STOPPING on `$NOTIFY_SOCKET`), and upstreams named by host name, which
//! `scripts/build-static.sh --smoke` runs against the static binary (glibc's
//! resolver in a static executable loads NSS modules at run time).

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use ringway_tests::*;
use tungstenite::Message;

both_drivers!(
    sd_notify_ready_reload_stop,
    sd_notify_follows_a_binary_upgrade,
    unreachable_notify_socket_is_logged_not_fatal,
    proxies_to_an_upstream_named_localhost,
);

/// How long a notification may take to arrive.
const NOTIFY_WAIT: Duration = Duration::from_secs(10);

const HEALTH: &str = r#"
[servers.ops]
listen = ["127.0.0.1:0"]
[servers.ops.locations."= /health"]
return = { status = 200, body = "OK" }
"#;

/// The next datagram on `sock` (bounded wait), as text.
fn next_state(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 1024];
    let n = sock
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no sd_notify datagram within {NOTIFY_WAIT:?}: {e}"));
    String::from_utf8(buf[..n].to_vec()).expect("notify state is UTF-8")
}

fn assert_state(got: &str, first: &str) {
    assert_eq!(got.lines().next(), Some(first), "state: {got:?}");
}

fn sd_notify_ready_reload_stop(d: Driver) {
    let dir = temp_dir("notify");
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(NOTIFY_WAIT)).unwrap();
    let mut rw =
        Ringway::start_with_env(HEALTH, d, "", "off", &[("NOTIFY_SOCKET", path.as_os_str())]);

    let ready = next_state(&sock);
    assert_state(&ready, "READY=1");
    assert!(
        ready.contains(&format!(
            "STATUS=1 of 1 workers serving, driver {}",
            d.name()
        )),
        "{ready:?}"
    );

    // A good reload: RELOADING (stamped with CLOCK_MONOTONIC), then READY.
    rw.signal(libc::SIGHUP);
    let reloading = next_state(&sock);
    assert_state(&reloading, "RELOADING=1");
    let usec = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC: {reloading:?}"));
    assert!(usec.parse::<u64>().unwrap() > 0);
    let ready = next_state(&sock);
    assert_state(&ready, "READY=1");
    assert!(ready.contains("configuration reloaded"), "{ready:?}");
    rw.wait_for_log("configuration reloaded", Duration::from_secs(10));

    // A refused reload (broken file) still ends in READY: the running
    // configuration serves on.
    let old = std::fs::read_to_string(&rw.config_path).unwrap();
    let keep = &old[..old.find("[servers.ops]").unwrap()];
    std::fs::write(&rw.config_path, format!("{keep}[servers.ops]\nbogus = 1\n")).unwrap();
    rw.signal(libc::SIGHUP);
    assert_state(&next_state(&sock), "RELOADING=1");
    let ready = next_state(&sock);
    assert_state(&ready, "READY=1");
    assert!(ready.contains("reload refused"), "{ready:?}");

    rw.signal(libc::SIGTERM);
    assert_state(&next_state(&sock), "STOPPING=1");
    let status = rw
        .wait_exit(Duration::from_secs(10))
        .expect("exit after TERM");
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A binary upgrade under systemd: the old (main) process sends
/// `MAINPID=` of the new one with `READY=1` once it serves — the new one
/// says nothing before, when systemd would still refuse it — and from
/// then on the new process is the one that notifies (STOPPING on TERM).
fn sd_notify_follows_a_binary_upgrade(d: Driver) {
    let dir = temp_dir("notify-upgrade");
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(NOTIFY_WAIT)).unwrap();
    let mut rw =
        Ringway::start_with_env(HEALTH, d, "", "off", &[("NOTIFY_SOCKET", path.as_os_str())]);
    assert_state(&next_state(&sock), "READY=1");
    let old = rw.pid();

    let report = rw.upgrade(None).expect("upgrade");
    let new = rw.pid();
    assert_ne!(new, old, "{report}");
    let handed = next_state(&sock);
    assert_state(&handed, &format!("MAINPID={new}"));
    assert!(handed.lines().any(|l| l == "READY=1"), "{handed:?}");
    let answer = raw_exchange(
        rw.addr("ops"),
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");

    rw.signal(libc::SIGTERM);
    assert_state(&next_state(&sock), "STOPPING=1");
    assert!(
        rw.wait_exit(Duration::from_secs(10)).is_some(),
        "the new process did not stop"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn unreachable_notify_socket_is_logged_not_fatal(d: Driver) {
    let gone = temp_dir("notify-gone").join("nobody-listens.sock");
    let rw = Ringway::start_with_env(HEALTH, d, "", "off", &[("NOTIFY_SOCKET", gone.as_os_str())]);
    let line = rw.wait_for_log("cannot notify systemd", Duration::from_secs(10));
    assert!(line.contains("WARN"), "{line}");
    let answer = raw_exchange(
        rw.addr("ops"),
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("OK"), "{answer}");
}

/// `proxy_pass = "http://localhost:PORT"`: the name is resolved when the
/// configuration loads (getaddrinfo); plain HTTP and a WebSocket go
/// through.
fn proxies_to_an_upstream_named_localhost(d: Driver) {
    let http = HttpBackend::start();
    let ws = Backend::start();
    let config = format!(
        r#"
[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."/api/"]
proxy_pass = "http://localhost:{}"
[servers.app.locations."/ws/"]
proxy_pass = "http://localhost:{}"
"#,
        http.addr.port(),
        ws.addr.port()
    );
    let rw = Ringway::start(&config, d);

    let mut s = TcpStream::connect(rw.addr("app")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /api/x HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (head, body) = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    // Default Host upstream is $proxy_host: the name as written.
    assert_eq!(
        body,
        format!(
            "GET /api/x host=localhost:{} connection=close body=0",
            http.addr.port()
        )
    );

    let stream = TcpStream::connect(rw.addr("app")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut client = ws_handshake(stream, &format!("ws://{}/ws/echo", rw.addr("app")));
    client.send(Message::Text("via localhost".into())).unwrap();
    assert_eq!(
        client.read().unwrap(),
        Message::Text("via localhost".into())
    );
}

/// `ringway -t` resolves upstream names too: a known one passes, an
/// unresolvable one is an error naming the key.
#[test]
fn config_test_resolves_upstream_names() {
    let conf = |host: &str| {
        format!(
            "[servers.app]\nlisten = [\"127.0.0.1:0\"]\n[servers.app.locations.\"/\"]\nproxy_pass = \"http://{host}\"\n"
        )
    };
    let (code, out, _) = config_test(&conf("localhost:8080"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("test is successful"), "{out}");
    // .invalid never resolves (RFC 6761).
    let (code, out, _) = config_test(&conf("ringway.invalid:8080"));
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("cannot resolve"), "{out}");
}

/// The unit's `Documentation=` names files that README's install steps
/// put there, from files the repository has.
#[test]
fn unit_documentation_is_installed_by_the_readme_steps() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let unit = std::fs::read_to_string(root.join("dist/ringway.service")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let docs: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Documentation="))
        .flat_map(str::split_whitespace)
        .collect();
    assert!(!docs.is_empty(), "the unit has no Documentation=");
    let install = readme
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with("install -D -m 0644 -t /usr/share/doc/ringway ")
        })
        .expect("README installs the documentation into /usr/share/doc/ringway");
    for d in docs {
        let path = d
            .strip_prefix("file:///usr/share/doc/ringway/")
            .unwrap_or_else(|| panic!("{d}: not a file README installs"));
        let source = install
            .split_whitespace()
            .find(|w| {
                std::path::Path::new(w)
                    .file_name()
                    .is_some_and(|f| f == path)
            })
            .unwrap_or_else(|| panic!("README's install line does not install {path}: {install}"));
        assert!(
            root.join(source).is_file(),
            "{source} is not in the repository"
        );
    }
}
