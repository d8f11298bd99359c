//! A new binary that cannot take over: stand-ins that speak the handoff
//! protocol — one reads another tunnel record version (refused, the
//! running process keeps everything), one dies right after it confirmed
//! (the tunnels stay in the old process). (A new binary that exits, or
//! whose configuration fails, is in upgrade.rs.)

use std::time::Duration;

use ringway_tests::*;
use tungstenite::Message;

both_drivers!(
    a_new_binary_that_reads_another_record_version_is_refused,
    a_new_binary_that_never_confirms_times_out,
    tunnels_stay_when_the_new_process_dies_after_confirming,
);

/// A stand-in new binary that answers `Hello` and then never confirms.
const NEVER_READY: &str = r#"#!/usr/bin/env python3
import os, socket, struct, time
s = socket.socket(fileno=int(os.environ["RINGWAY_UPGRADE_FD"]))
s.send(bytes([1]) + struct.pack("<IHH", os.getpid(), 1, 1))
time.sleep(60)
"#;

/// `runtime.upgrade_timeout`: a new process that takes the listeners but
/// never says it serves is killed after it, and the upgrade fails with
/// the running process serving as before.
fn a_new_binary_that_never_confirms_times_out(d: Driver) {
    let backend = Backend::start();
    let config = proxied(&backend);
    let mut rw = Ringway::start_with_runtime(&config, d, "upgrade_timeout = \"1s\"");
    let url = format!("ws://{}/ws", rw.addr("app"));
    let mut ws = ws_handshake(rw.client("app"), &url);
    let fake = stand_in("never-ready", NEVER_READY);
    let old = rw.pid();
    let began = std::time::Instant::now();
    let why = rw
        .upgrade(Some(&fake))
        .expect_err("the upgrade went through");
    eprintln!("failed after {:?}: {why}", began.elapsed());
    assert!(
        why.contains("did not confirm: no answer within 1s"),
        "{why}"
    );
    assert_eq!(rw.pid(), old);
    ws.send(Message::text("still")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("still"));
    let mut fresh = ws_handshake(rw.client("app"), &url);
    fresh.send(Message::text("fresh")).unwrap();
    assert_eq!(fresh.read().unwrap(), Message::text("fresh"));
    close_websocket(&mut fresh);
    close_websocket(&mut ws);
}

/// A stand-in new binary that confirms and then dies before it takes a
/// tunnel: `Hello`, the listeners read to the last message, `Ready`
/// (type 3), exit.
const DIES_AFTER_READY: &str = r#"#!/usr/bin/env python3
import os, socket, struct
s = socket.socket(fileno=int(os.environ["RINGWAY_UPGRADE_FD"]))
s.send(bytes([1]) + struct.pack("<IHH", os.getpid(), 1, 1))
while True:
    msg, anc, flags, addr = s.recvmsg(1 << 20, socket.CMSG_SPACE(253 * 4))
    if msg[0] == 2 and msg[-1] == 1:
        break
s.send(bytes([3]))
"#;

/// One server proxying everything to `backend`.
fn proxied(backend: &Backend) -> String {
    format!(
        "[servers.app]\nlisten = [\"127.0.0.1:0\"]\n[servers.app.locations.\"/\"]\nproxy_pass = \"http://{}\"\n",
        backend.addr
    )
}

/// Write `text` as an executable file named `name` in a fresh directory.
fn stand_in(name: &str, text: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = temp_dir(name).join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The new process confirms, then is gone before it took a tunnel: the
/// upgrade fails with the reason, every tunnel stays in the old process,
/// relaying as before, and the old process accepts and reloads again.
fn tunnels_stay_when_the_new_process_dies_after_confirming(d: Driver) {
    let backend = Backend::start();
    let config = proxied(&backend);
    let mut rw = Ringway::start(&config, d);
    let url = format!("ws://{}/ws", rw.addr("app"));
    let mut tunnels: Vec<_> = (0..20)
        .map(|i| {
            let mut ws = ws_handshake(rw.client("app"), &url);
            ws.send(Message::text(format!("before {i}"))).unwrap();
            assert_eq!(ws.read().unwrap(), Message::text(format!("before {i}")));
            ws
        })
        .collect();
    let fake = stand_in("dies-after-ready", DIES_AFTER_READY);
    let old = rw.pid();
    let why = rw
        .upgrade(Some(&fake))
        .expect_err("the upgrade went through");
    assert!(why.contains("stopped taking tunnels after 0"), "{why}");
    assert!(why.contains("keeps the other 20 and serves again"), "{why}");
    assert_eq!(rw.pid(), old);
    for (i, ws) in tunnels.iter_mut().enumerate() {
        ws.send(Message::text(format!("after {i}"))).unwrap();
        assert_eq!(ws.read().unwrap(), Message::text(format!("after {i}")));
    }
    let line = rw.wait_for_log("upgrade: adopted tunnels", Duration::from_secs(10));
    assert!(line.contains("failed=0"), "{line}");
    // The old process serves again: new connections, and a reload.
    rw.wait_for_log("accepting again", Duration::from_secs(10));
    let mut fresh = ws_handshake(rw.client("app"), &url);
    fresh.send(Message::text("fresh")).unwrap();
    assert_eq!(fresh.read().unwrap(), Message::text("fresh"));
    close_websocket(&mut fresh);
    let text = rw.config_text();
    let body = &text[text.find("[servers.app]").unwrap()..];
    rw.reload(body, 1);
    for ws in &mut tunnels {
        close_websocket(ws);
    }
}

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
    let config = proxied(&backend);
    let mut rw = Ringway::start(&config, d);
    let url = format!("ws://{}/ws", rw.addr("app"));
    let mut ws = ws_handshake(rw.client("app"), &url);
    ws.send(Message::text("before")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("before"));

    let fake = stand_in("ringway-other", OTHER_VERSION);
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
}
