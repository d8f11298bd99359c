//! A new binary that cannot take over refuses the upgrade, and the
//! running process keeps everything: here a stand-in for a newer (or
//! older) ringway that speaks the handoff protocol but reads another
//! tunnel record version. (A new binary that exits, or whose
//! configuration fails, is in upgrade.rs.)

use std::time::Duration;

use ringway_tests::*;
use tungstenite::Message;

both_drivers!(a_new_binary_that_reads_another_record_version_is_refused);

/// A stand-in new binary: answers the old process's handoff socket with
/// `Hello` (type 1, pid, record versions 9..=9, little-endian), then
/// waits to be killed.
const OTHER_VERSION: &str = r#"#!/usr/bin/env python3
import os, socket, struct, time
s = socket.socket(fileno=int(os.environ["RINGWAY_UPGRADE_FD"]))
s.send(bytes([1]) + struct.pack("<IHH", os.getpid(), 9, 9))
time.sleep(60)
"#;

fn a_new_binary_that_reads_another_record_version_is_refused(d: Driver) {
    let backend = Backend::start();
    let config = format!(
        "[servers.app]\nlisten = [\"127.0.0.1:0\"]\n[servers.app.locations.\"/\"]\nproxy_pass = \"http://{}\"\n",
        backend.addr
    );
    let mut rw = Ringway::start(&config, d);
    let url = format!("ws://{}/ws", rw.addr("app"));
    let mut ws = ws_handshake(rw.client("app"), &url);
    ws.send(Message::text("before")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("before"));

    let dir = temp_dir("other-version");
    let fake = dir.join("ringway-other");
    std::fs::write(&fake, OTHER_VERSION).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let old = rw.pid();
    let why = rw
        .upgrade(Some(&fake))
        .expect_err("the upgrade went through");
    assert!(
        why.contains("reads tunnel record versions 9..=9, not 1"),
        "{why}"
    );
    assert_eq!(rw.pid(), old);
    rw.wait_for_log(
        "upgrade failed, the running process keeps everything",
        Duration::from_secs(10),
    );

    // Nothing changed: the tunnel goes on, new connections are served.
    ws.send(Message::text("after")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("after"));
    let mut fresh = ws_handshake(rw.client("app"), &url);
    fresh.send(Message::text("fresh")).unwrap();
    assert_eq!(fresh.read().unwrap(), Message::text("fresh"));
    close_websocket(&mut fresh);
    close_websocket(&mut ws);
    // The stand-in was killed and reaped before the answer came.
    let running: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).into_owned())
        .filter(|c| c.contains(fake.to_str().unwrap()))
        .collect();
    assert!(running.is_empty(), "the stand-in still runs: {running:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
