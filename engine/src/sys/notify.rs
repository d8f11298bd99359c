//! systemd's readiness protocol (`sd_notify(3)`), spoken by ringway itself
//! rather than through libsystemd: one datagram of newline-separated
//! `KEY=VALUE` assignments to the unix datagram socket named by
//! `$NOTIFY_SOCKET` (a path, or an abstract name when it starts with '@').
//!
//! ringway sends `READY=1` once its workers serve, `RELOADING=1` (with
//! `MONOTONIC_USEC`, which systemd 253 and later require beside it) when a
//! SIGHUP arrives and `READY=1` again once the reload was applied or
//! refused, and `STOPPING=1` when a graceful stop begins. Without
//! `$NOTIFY_SOCKET` (not started by systemd, or not `Type=notify`) nothing
//! is sent. The variable is left set: workers are threads of this process,
//! not children, so nothing inherits it by accident.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// The state a graceful stop sends.
pub const STOPPING: &str = "STOPPING=1";

/// Send `state` to `$NOTIFY_SOCKET`. `Ok(false)` when the variable is unset
/// or empty (nothing to tell), `Ok(true)` once the datagram is sent.
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var_os(NOTIFY_SOCKET) {
        Some(socket) if !socket.is_empty() => notify_to(&socket, state).map(|()| true),
        _ => Ok(false),
    }
}

/// Send `state` as one datagram to the socket named `socket` (a path, or
/// '@' and an abstract name).
pub fn notify_to(socket: &OsStr, state: &str) -> io::Result<()> {
    let addr = address(socket)?;
    let sock = UnixDatagram::unbound()?;
    let sent = sock.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("sent {sent} of {} bytes", state.len()),
        ));
    }
    Ok(())
}

/// `READY=1` with a human-readable `STATUS=` (shown by `systemctl status`).
pub fn ready(status: &str) -> String {
    format!("READY=1\nSTATUS={status}")
}

/// `RELOADING=1` stamped with the current `CLOCK_MONOTONIC` time in
/// microseconds, as `Type=notify-reload` on systemd 253+ requires (older
/// systemd ignores the extra field).
pub fn reloading() -> String {
    format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec())
}

/// `CLOCK_MONOTONIC` in microseconds (the clock systemd compares with).
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into a valid local.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if r != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

/// The socket address `$NOTIFY_SOCKET` names.
fn address(name: &OsStr) -> io::Result<SocketAddr> {
    let bytes = name.as_bytes();
    match bytes.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
        Some(b'/') => SocketAddr::from_pathname(Path::new(name)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{NOTIFY_SOCKET}={name:?} is neither an absolute path nor @abstract"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receive(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("a datagram within 5 s");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn path_socket_gets_one_datagram() {
        let dir = std::env::temp_dir().join(format!("ringway-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).unwrap();
        let state = ready("1 worker, io_uring");
        notify_to(path.as_os_str(), &state).unwrap();
        assert_eq!(receive(&sock), "READY=1\nSTATUS=1 worker, io_uring");
        notify_to(path.as_os_str(), STOPPING).unwrap();
        assert_eq!(receive(&sock), "STOPPING=1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn abstract_socket_gets_one_datagram() {
        let name = format!("ringway-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        let before = monotonic_usec();
        notify_to(OsStr::new(&format!("@{name}")), &reloading()).unwrap();
        let got = receive(&sock);
        let usec: u64 = got
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .expect("RELOADING with MONOTONIC_USEC")
            .parse()
            .unwrap();
        assert!(usec >= before && usec <= monotonic_usec());
    }

    #[test]
    fn bad_names_and_missing_sockets_are_errors() {
        let relative = notify_to(OsStr::new("notify.sock"), "READY=1").unwrap_err();
        assert_eq!(relative.kind(), io::ErrorKind::InvalidInput);
        assert!(notify_to(OsStr::new(""), "READY=1").is_err());
        // Nobody listens there.
        let gone = std::env::temp_dir().join(format!("ringway-no-such-{}", std::process::id()));
        assert!(notify_to(gone.as_os_str(), "READY=1").is_err());
    }
}
