//! Binary upgrade, the processes' side (`handoff` has the messages).
//!
//! The old process (`ringway upgrade`, or SIGUSR2): [`launch`] starts
//! the new binary with the old one's arguments and one end of a
//! SOCK_SEQPACKET pair (`$RINGWAY_UPGRADE_FD`), waits for its `Hello`
//! (its configuration loaded; the record versions it reads), passes it
//! every listening socket — the sockets themselves, so no accept queue is
//! dropped and nothing is closed and reopened — and waits for `Ready`
//! (every worker serves). Any failure before that (the binary cannot
//! start, exits, refuses the record version, says nothing within
//! `runtime.upgrade_timeout`) kills the new process and leaves the old one as it
//! was. Then its workers hand their tunnels to [`forward`], which sends
//! them on in batches (at most [`MAX_FDS`] descriptors per message) and
//! says `Done` once every worker has stopped.
//!
//! The new process: [`inherit`] answers `Hello` and takes the sockets;
//! the runtime serves on them, says `Ready`, and [`adopt`] spreads the
//! tunnels that arrive over its workers evenly.
//!
//! `ringway upgrade` reaches the running process through a unix socket in
//! the abstract namespace named after its configuration file
//! ([`control_name`]); only the same user (or root) may ask.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::worker::{Adoptee, Control};
use crate::handoff::wire::{self, encoded_len_hint};
use crate::handoff::{
    FromWorker, ListenerItem, Message, TunnelRecord, ENV_FD, MAX_FDS, RECORD_VERSION,
};
use crate::sys::fdpass;

/// How long a new process waits for the old one to let go of the
/// control socket's name (it does as the new one confirms).
pub const CONTROL_WAIT: Duration = Duration::from_secs(30);

/// The largest message either side sends or takes (the pair's buffers
/// are sized for it).
const MAX_MESSAGE: usize = 1 << 20;
/// Records per message: two descriptors each.
const RECORDS_PER_MESSAGE: usize = MAX_FDS / 2;
/// A batch of records is sent once it is about this large: well under
/// the smallest default socket buffer (a SEQPACKET message must fit it
/// whole).
const BATCH_BYTES: usize = 48 * 1024;

/// How the process was started: what an upgrade runs again.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The binary, as resolved when the process started (an upgrade that
    /// replaced the file runs the new one).
    pub exe: PathBuf,
    pub args: Vec<std::ffi::OsString>,
}

impl Origin {
    pub fn current() -> Origin {
        Origin {
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")),
            args: std::env::args_os().skip(1).collect(),
        }
    }
}

/// The abstract unix socket name `ringway upgrade` finds the process
/// running `config` by: its canonical path, hashed (FNV-1a 64) to fit.
pub fn control_name(config: &Path) -> std::io::Result<String> {
    let path = std::fs::canonicalize(config)?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Ok(format!("ringway-control/{h:016x}"))
}

fn abstract_addr(name: &str) -> std::io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
}

/// `ringway upgrade`: ask the process running `config` to upgrade (to
/// `binary`, or the binary it was started from) and wait for its report.
pub fn request(config: &Path, binary: Option<&Path>, wait: Duration) -> Result<String, String> {
    let name = control_name(config).map_err(|e| format!("{}: {e}", config.display()))?;
    let addr = abstract_addr(&name).map_err(|e| e.to_string())?;
    let mut s = UnixStream::connect_addr(&addr)
        .map_err(|e| format!("no running ringway for {}: {e}", config.display()))?;
    // Anyone may bind an abstract name: talk only to a process of this
    // user or root.
    match crate::sys::peer_uid(s.as_fd()) {
        Ok(uid) if uid == 0 || uid == crate::sys::euid() => {}
        Ok(uid) => {
            return Err(format!(
                "the process answering for {} runs as user {uid}, not this user or root: not asked",
                config.display()
            ))
        }
        Err(e) => return Err(format!("cannot check the answering process: {e}")),
    }
    let _ = s.set_read_timeout(Some(wait));
    let binary = binary.map(|b| {
        std::fs::canonicalize(b)
            .unwrap_or_else(|_| b.to_path_buf())
            .to_string_lossy()
            .into_owned()
    });
    writeln!(s, "upgrade\n{}", binary.unwrap_or_default()).map_err(|e| e.to_string())?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| format!("no answer from the running ringway: {e}"))?;
    let answer = answer.trim_end();
    match answer.split_once(' ') {
        Some(("ok", report)) => Ok(report.to_string()),
        Some(("err", why)) => Err(why.to_string()),
        _ => Err(format!("no answer from the running ringway ({answer:?})")),
    }
}

/// What the control socket and signals ask of the control thread.
pub enum Event {
    Signal(i32),
    /// Upgrade to `binary` (none: the binary the process started from);
    /// `reply`: the asking `ringway upgrade`, told the outcome.
    Upgrade {
        binary: Option<PathBuf>,
        reply: Option<UnixStream>,
    },
    /// After an upgrade: every worker stopped and the handoff is over.
    HandoffOver,
    /// After an upgrade: the new process went away midway; this one
    /// serves again.
    HandoffBroken,
}

/// Answer a `ringway upgrade` (if one asked): `ok REPORT` or `err WHY`.
pub fn reply(to: Option<UnixStream>, outcome: Result<&str, &str>) {
    if let Some(mut s) = to {
        let line = match outcome {
            Ok(r) => format!("ok {r}\n"),
            Err(e) => format!("err {e}\n"),
        };
        let _ = s.write_all(line.as_bytes());
    }
}

/// The control socket: bound in the abstract namespace under
/// [`control_name`]. A new process binds it once the old one let go
/// (retrying for up to `wait`).
pub struct ControlSocket {
    name: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ControlSocket {
    /// Serve `ringway upgrade` requests for `config` into `events`.
    pub fn start(
        config: &Path,
        events: flume::Sender<Event>,
        wait: Duration,
    ) -> std::io::Result<ControlSocket> {
        let name = control_name(config)?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Bound here when the name is free (it is, but during an
        // upgrade): the process holds it once it serves.
        let bound = match UnixListener::bind_addr(&abstract_addr(&name)?) {
            Ok(l) => Some(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && !wait.is_zero() => None,
            Err(e) => return Err(e),
        };
        let (n, flag) = (name.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("ringway-control".into())
            .spawn(move || serve_control(&n, bound, &events, &flag, wait))?;
        Ok(ControlSocket {
            name,
            stop,
            thread: Some(thread),
        })
    }

    /// Stop serving and let go of the name (a new process takes it).
    pub fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake its accept.
        if let Ok(addr) = abstract_addr(&self.name) {
            let _ = UnixStream::connect_addr(&addr);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_control(
    name: &str,
    bound: Option<UnixListener>,
    events: &flume::Sender<Event>,
    stop: &std::sync::atomic::AtomicBool,
    wait: Duration,
) {
    use std::os::linux::net::SocketAddrExt;
    use std::sync::atomic::Ordering;
    let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()) else {
        return;
    };
    let deadline = Instant::now() + wait;
    let mut bound = bound;
    let listener = loop {
        if let Some(l) = bound.take() {
            break l;
        }
        match UnixListener::bind_addr(&addr) {
            Ok(l) => break l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                // The old process lets go of it as it confirms: bounded.
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                warn!(error = %e, "upgrade: cannot bind the control socket; `ringway upgrade` cannot reach this process (SIGUSR2 still upgrades)");
                return;
            }
        }
    };
    // A stop that came before the bind found nothing to wake.
    if stop.load(Ordering::SeqCst) {
        return;
    }
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut s) = conn else { continue };
        match crate::sys::peer_uid(s.as_fd()) {
            Ok(uid) if uid == 0 || uid == crate::sys::euid() => {}
            Ok(uid) => {
                warn!(uid, "upgrade: refused a control request from another user");
                continue;
            }
            Err(e) => {
                warn!(error = %e, "upgrade: cannot check a control request's user");
                continue;
            }
        }
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut text = String::new();
        if (&mut s).take(8192).read_to_string(&mut text).is_err() {
            continue;
        }
        let mut lines = text.lines();
        if lines.next() != Some("upgrade") {
            reply(Some(s), Err("unknown request"));
            continue;
        }
        let binary = lines.next().filter(|b| !b.is_empty()).map(PathBuf::from);
        let _ = s.set_read_timeout(None);
        if events
            .send(Event::Upgrade {
                binary,
                reply: Some(s),
            })
            .is_err()
        {
            return;
        }
    }
}

/// The old process's listening sockets, as they go to the new one.
pub struct Sockets<'a> {
    pub items: Vec<(ListenerItem, BorrowedFd<'a>)>,
}

/// A new process that confirmed: it serves on the listeners.
pub struct NewProcess {
    pub pid: u32,
    sock: OwnedFd,
    /// `runtime.upgrade_timeout`.
    wait: Duration,
    _child: std::process::Child,
}

/// Start `binary` (or the one the process started from) with the old
/// process's arguments and hand it `sockets`; `Ok` once it serves. On an
/// error the new process is gone (killed if it was still running) and
/// nothing changed here.
/// `wait` (`runtime.upgrade_timeout`) bounds each step: the new process's
/// `Hello`, its `Ready`, and later each send and `Adopted`.
pub fn launch(
    origin: &Origin,
    binary: Option<&Path>,
    sockets: &Sockets<'_>,
    wait: Duration,
) -> Result<NewProcess, String> {
    let (ours, theirs) =
        fdpass::seqpacket_pair().map_err(|e| format!("cannot make the handoff socket: {e}"))?;
    let exe = binary.unwrap_or(&origin.exe);
    let their_fd = theirs.as_raw_fd();
    let mut cmd = std::process::Command::new(exe);
    cmd.args(&origin.args)
        .env(ENV_FD, their_fd.to_string())
        .env_remove("LISTEN_FDS")
        .stdin(std::process::Stdio::null());
    fdpass::inherit_in(&mut cmd, their_fd);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    drop(theirs);
    // A new process that stops reading must not hold the old one (and
    // its tunnels) forever.
    let _ = fdpass::set_send_timeout(ours.as_fd(), wait);
    let pid = child.id();
    let fail = |child: &mut std::process::Child, why: String| -> String {
        let _ = child.kill();
        let status = child.wait();
        match status {
            Ok(st) if st.signal() != Some(libc::SIGKILL) => format!("{why} (the new process {st})"),
            _ => why,
        }
    };
    let mut buf = vec![0u8; MAX_MESSAGE];
    let hello = match receive(ours.as_fd(), &mut buf, wait) {
        Ok((Message::Hello { versions, .. }, _)) => versions,
        Ok((other, _)) => {
            return Err(fail(
                &mut child,
                format!("the new binary said {other:?} before Hello"),
            ))
        }
        Err(e) => {
            return Err(fail(
                &mut child,
                format!("the new binary did not start: {e}"),
            ))
        }
    };
    if !(hello.0..=hello.1).contains(&RECORD_VERSION) {
        return Err(fail(
            &mut child,
            format!(
                "the new binary reads tunnel record versions {}..={}, not {RECORD_VERSION}",
                hello.0, hello.1
            ),
        ));
    }
    let chunks: Vec<&[(ListenerItem, BorrowedFd<'_>)]> = if sockets.items.is_empty() {
        vec![&[]]
    } else {
        sockets.items.chunks(MAX_FDS).collect()
    };
    for (k, chunk) in chunks.iter().enumerate() {
        let msg = Message::Listeners {
            items: chunk.iter().map(|(i, _)| i.clone()).collect(),
            last: k + 1 == chunks.len(),
        };
        let fds: Vec<BorrowedFd<'_>> = chunk.iter().map(|(_, fd)| *fd).collect();
        if let Err(e) = fdpass::send_with_fds(ours.as_fd(), &wire::encode(&msg), &fds) {
            return Err(fail(&mut child, format!("cannot pass the listeners: {e}")));
        }
    }
    match receive(ours.as_fd(), &mut buf, wait) {
        Ok((Message::Ready, _)) => {}
        Ok((Message::Refuse { why }, _)) => {
            return Err(fail(&mut child, format!("the new process refused: {why}")))
        }
        Ok((other, _)) => {
            return Err(fail(
                &mut child,
                format!("the new binary said {other:?} instead of Ready"),
            ))
        }
        Err(e) => {
            return Err(fail(
                &mut child,
                format!("the new process did not confirm: {e}"),
            ))
        }
    }
    Ok(NewProcess {
        pid,
        sock: ours,
        wait,
        _child: child,
    })
}

use std::os::unix::process::ExitStatusExt;

/// One message within `wait`: a timeout, the end of the stream (the
/// other process exited) and an unreadable message are errors.
fn receive(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    wait: Duration,
) -> Result<(Message, Vec<OwnedFd>), String> {
    fdpass::set_recv_timeout(sock, Some(wait)).map_err(|e| e.to_string())?;
    match fdpass::recv_with_fds(sock, buf) {
        Ok(Some((n, fds))) => wire::decode(&buf[..n])
            .map(|m| (m, fds))
            .map_err(|e| format!("unreadable message: {e}")),
        Ok(None) => Err("it exited".to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            Err(format!("no answer within {wait:?}"))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The old process's handoff thread: pass the tunnels the workers hand
/// over to the new process in batches; once every worker settled, log
/// and report (`ringway upgrade`'s answer); once every worker stopped
/// (the channel closes), say `Done`. If the new process stops taking
/// them (it died, or took none within `runtime.upgrade_timeout`), the tunnels go
/// back to the old workers (`Control::Adopt`), which stop handing over
/// (`Control::StopHandoff`): none is lost.
pub fn forward(
    new: NewProcess,
    from_workers: flume::Receiver<FromWorker>,
    workers: Vec<flume::Sender<Control>>,
    asked: usize,
    reply_to: Option<UnixStream>,
    old_pid: u32,
    events: flume::Sender<Event>,
) {
    let started = Instant::now();
    let mut f = Forwarder {
        new,
        workers,
        events,
        batch: Vec::new(),
        from: Vec::new(),
        fds: Vec::new(),
        bytes: 0,
        broken: false,
        sent: 0,
        returned: 0,
    };
    let (mut settled, mut stopped_accepting) = (0, 0);
    let (mut held, mut drained) = (0u64, 0u64);
    let mut reply_to = reply_to;
    let mut reported = false;
    while let Ok(first) = from_workers.recv() {
        let mut next = Some(first);
        while let Some(m) = next.take().or_else(|| from_workers.try_recv().ok()) {
            match m {
                FromWorker::Tunnel {
                    worker,
                    record,
                    fds,
                } => f.push(worker, *record, fds),
                FromWorker::Leaving { worker } => {
                    // Its tunnels are all in the batch: taken or back
                    // before it may go (not after a failure: it serves on).
                    f.flush();
                    if let (Some(w), false) = (f.workers.get(worker), f.broken) {
                        let _ = w.send(Control::Leave);
                    }
                }
                FromWorker::AcceptStopped => {
                    stopped_accepting += 1;
                    if stopped_accepting == asked && !f.broken {
                        let rearm = wire::encode(&Message::Rearm);
                        if let Err(e) = fdpass::send_with_fds(f.new.sock.as_fd(), &rearm, &[]) {
                            warn!(error = %e, "upgrade: cannot tell the new process to look at its accept queues again");
                        }
                    }
                }
                FromWorker::Settled {
                    held: h,
                    drained: d,
                    ..
                } => {
                    settled += 1;
                    held += h as u64;
                    drained += d as u64;
                }
            }
        }
        f.flush();
        if settled == asked && !reported {
            reported = true;
            info!(
                handed = f.sent,
                drained,
                held,
                kept = f.returned,
                secs = started.elapsed().as_secs_f64(),
                new_pid = f.new.pid,
                "upgrade: handoff done"
            );
            if f.broken {
                let why = format!(
                    "the new process (pid {}) stopped taking tunnels after {}: this process (pid {old_pid}) keeps the other {} and serves again",
                    f.new.pid, f.sent, held + f.returned
                );
                error!("upgrade failed during the handoff: {why}");
                reply(reply_to.take(), Err(&why));
            } else {
                let line = format!(
                    "upgrade: handed over {} tunnels, drained {drained}, still held {held} (old pid {old_pid}, new pid {})",
                    f.sent, f.new.pid
                );
                reply(reply_to.take(), Ok(&line));
            }
        }
    }
    f.flush();
    if !f.broken {
        let done = wire::encode(&Message::Done { handed: f.sent });
        let _ = fdpass::send_with_fds(f.new.sock.as_fd(), &done, &[]);
    }
}

/// The old process's side of the handoff socket while tunnels cross.
struct Forwarder {
    new: NewProcess,
    /// The old process's workers: where tunnels go back to if the new
    /// process stops taking them.
    workers: Vec<flume::Sender<Control>>,
    /// The control thread (`Event::HandoffBroken`).
    events: flume::Sender<Event>,
    batch: Vec<TunnelRecord>,
    /// The worker each record of the batch came from.
    from: Vec<usize>,
    fds: Vec<OwnedFd>,
    bytes: usize,
    /// The new process takes no more.
    broken: bool,
    /// Tunnels the new process took.
    sent: u64,
    /// Tunnels given back to the old workers.
    returned: u64,
}

impl Forwarder {
    fn push(&mut self, worker: usize, record: TunnelRecord, pair: [OwnedFd; 2]) {
        if self.broken {
            self.give_back(vec![record], vec![worker], pair.into_iter().collect());
            return;
        }
        // Flushed before it would pass the batch's size: a record with a
        // large carry goes alone.
        let size = encoded_len_hint(&record);
        if !self.batch.is_empty() && self.bytes + size > BATCH_BYTES {
            self.flush();
        }
        self.bytes += size;
        self.batch.push(record);
        self.from.push(worker);
        self.fds.extend(pair);
        if self.batch.len() >= RECORDS_PER_MESSAGE || self.bytes >= BATCH_BYTES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.bytes = 0;
        let fds = std::mem::take(&mut self.fds);
        let from = std::mem::take(&mut self.from);
        let msg = Message::Tunnels {
            version: RECORD_VERSION,
            records: std::mem::take(&mut self.batch),
        };
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        let r = fdpass::send_with_fds(self.new.sock.as_fd(), &wire::encode(&msg), &borrowed);
        drop(borrowed);
        let Message::Tunnels { records, .. } = msg else {
            unreachable!("built above")
        };
        // Taken only once the new process says so; until then these
        // copies of the sockets stay open here.
        let n = records.len() as u64;
        let r = r.map_err(|e| e.to_string()).and_then(|()| {
            let mut buf = [0u8; 64];
            match receive(self.new.sock.as_fd(), &mut buf, self.new.wait)? {
                (Message::Adopted { count }, _) if count == n => Ok(()),
                (other, _) => Err(format!("it answered {other:?} to {n} tunnels")),
            }
        });
        match r {
            Ok(()) => self.sent += n,
            Err(e) => {
                error!(error = %e, new_pid = self.new.pid, "upgrade: the new process takes no more tunnels; the rest stay in this process");
                self.broken = true;
                for w in &self.workers {
                    let _ = w.send(Control::StopHandoff);
                }
                self.give_back(records, from, fds);
                // Then they serve on: accept again, keep what came back.
                for w in &self.workers {
                    let _ = w.send(Control::Resume);
                }
                let _ = self.events.send(Event::HandoffBroken);
            }
        }
    }

    /// Tunnels (two descriptors each) back to the old workers they came
    /// from (each waits for its own before it stops).
    fn give_back(&mut self, records: Vec<TunnelRecord>, from: Vec<usize>, fds: Vec<OwnedFd>) {
        let mut fds = fds.into_iter();
        for (record, worker) in records.into_iter().zip(from) {
            let (Some(c), Some(u)) = (fds.next(), fds.next()) else {
                break;
            };
            let Some(w) = self.workers.get(worker) else {
                continue;
            };
            self.returned += 1;
            let _ = w.send(Control::Adopt(vec![Adoptee {
                record: Box::new(record),
                fds: [c, u],
            }]));
        }
    }
}

/// A new process's inheritance: the handoff socket and the old
/// process's listening sockets.
pub struct Inherited {
    pub sock: OwnedFd,
    pub tcp: Vec<(SocketAddr, std::net::TcpListener)>,
    pub unix: Vec<(PathBuf, std::os::unix::net::UnixListener)>,
    pub metrics: Option<(SocketAddr, std::net::TcpListener)>,
}

/// In a process an upgrade started (`$RINGWAY_UPGRADE_FD`): say `Hello`
/// and take the old process's listening sockets. `None` in a process
/// started otherwise.
pub fn inherit(wait: Duration) -> Option<Result<Inherited, String>> {
    let fd: i32 = std::env::var(ENV_FD).ok()?.parse().ok()?;
    std::env::remove_var(ENV_FD);
    let Some(sock) = fdpass::take_inherited(fd) else {
        return Some(Err(format!(
            "${ENV_FD} names descriptor {fd}, which is not open"
        )));
    };
    Some(take_listeners(sock, wait))
}

fn take_listeners(sock: OwnedFd, wait: Duration) -> Result<Inherited, String> {
    fdpass::set_cloexec(sock.as_fd(), true).map_err(|e| e.to_string())?;
    let hello = Message::Hello {
        pid: std::process::id(),
        versions: (RECORD_VERSION, RECORD_VERSION),
    };
    fdpass::send_with_fds(sock.as_fd(), &wire::encode(&hello), &[])
        .map_err(|e| format!("cannot answer the old process: {e}"))?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut got = Inherited {
        sock,
        tcp: Vec::new(),
        unix: Vec::new(),
        metrics: None,
    };
    loop {
        let (msg, fds) = receive(got.sock.as_fd(), &mut buf, wait)
            .map_err(|e| format!("no listeners from the old process: {e}"))?;
        let Message::Listeners { items, last } = msg else {
            return Err(format!(
                "the old process sent {msg:?} instead of its listeners"
            ));
        };
        if items.len() != fds.len() {
            return Err(format!(
                "{} listeners came with {} descriptors",
                items.len(),
                fds.len()
            ));
        }
        for (item, fd) in items.into_iter().zip(fds) {
            match item {
                ListenerItem::Tcp { configured } => got.tcp.push((configured, fd.into())),
                ListenerItem::Unix { path } => got.unix.push((path, fd.into())),
                ListenerItem::Metrics { addr } => got.metrics = Some((addr, fd.into())),
            }
        }
        if last {
            return Ok(got);
        }
    }
}

/// The new process serves: tell the old one.
pub fn confirm(sock: &OwnedFd) -> std::io::Result<()> {
    fdpass::send_with_fds(sock.as_fd(), &wire::encode(&Message::Ready), &[])
}

/// The new process refuses to go on (why): tell the old one.
pub fn refuse(sock: &OwnedFd, why: &str) {
    let _ = fdpass::send_with_fds(
        sock.as_fd(),
        &wire::encode(&Message::Refuse {
            why: why.to_string(),
        }),
        &[],
    );
}

/// Listening sockets a new process inherited but does not serve (its
/// configuration dropped their addresses).
#[derive(Default)]
pub struct Leftover {
    pub tcp: Vec<(SocketAddr, std::net::TcpListener)>,
    pub unix: Vec<(PathBuf, std::os::unix::net::UnixListener)>,
}

impl Leftover {
    /// The upgrade is committed (the old process accepts no more): stop
    /// listening on them — the old process would hold them, unaccepted,
    /// until it exits — and remove the unix socket files.
    fn stop(self) {
        for (addr, l) in self.tcp {
            match crate::sys::stop_listening(l.as_fd()) {
                Ok(()) => {
                    info!(addr = %addr, "upgrade: stopped listening on an address the new configuration dropped")
                }
                Err(e) => warn!(addr = %addr, error = %e, "upgrade: cannot stop listening"),
            }
        }
        for (path, l) in self.unix {
            let _ = crate::sys::stop_listening(l.as_fd());
            let _ = std::fs::remove_file(&path);
            info!(addr = %format!("unix:{}", path.display()), "upgrade: stopped listening on an address the new configuration dropped");
        }
    }
}

/// The new process's adopting thread: tunnels from the old process, each
/// to the next worker in turn, until `Done` or the old process is gone.
/// `leftover` stops listening once the old process stopped accepting.
pub fn adopt(sock: OwnedFd, workers: Vec<flume::Sender<Control>>, leftover: Leftover) {
    let mut leftover = Some(leftover);
    let _ = fdpass::set_recv_timeout(sock.as_fd(), None);
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut next = 0usize;
    let mut adopted = 0u64;
    loop {
        let (n, fds) = match fdpass::recv_with_fds(sock.as_fd(), &mut buf) {
            Ok(Some(got)) => got,
            Ok(None) => break,
            // One message that did not arrive whole (too large, or its
            // descriptors cut short): its tunnels are lost, not the rest.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                error!(error = %e, "upgrade: a handoff message arrived cut short; its tunnels are closed");
                continue;
            }
            Err(e) => {
                error!(error = %e, "upgrade: the handoff socket failed; tunnels still in the old process stay there");
                break;
            }
        };
        match wire::decode(&buf[..n]) {
            Ok(Message::Tunnels { records, .. }) if fds.len() == 2 * records.len() => {
                // Taken: the old process may close its copies. Said before
                // any worker relays one of them.
                let taken = wire::encode(&Message::Adopted {
                    count: records.len() as u64,
                });
                if let Err(e) = fdpass::send_with_fds(sock.as_fd(), &taken, &[]) {
                    warn!(error = %e, "upgrade: cannot confirm tunnels to the old process; they stay there");
                    continue;
                }
                let mut per: Vec<Vec<Adoptee>> = (0..workers.len()).map(|_| Vec::new()).collect();
                let mut fds = fds.into_iter();
                for record in records {
                    let (Some(c), Some(u)) = (fds.next(), fds.next()) else {
                        break;
                    };
                    per[next % workers.len()].push(Adoptee {
                        record: Box::new(record),
                        fds: [c, u],
                    });
                    next += 1;
                    adopted += 1;
                }
                for (w, batch) in workers.iter().zip(per) {
                    if !batch.is_empty() {
                        let _ = w.send(Control::Adopt(batch));
                    }
                }
            }
            Ok(Message::Tunnels { records, .. }) => {
                error!(
                    records = records.len(),
                    descriptors = fds.len(),
                    "upgrade: tunnels came without their sockets; closed"
                );
            }
            Ok(Message::Rearm) => {
                for w in &workers {
                    let _ = w.send(Control::Rearm);
                }
                if let Some(l) = leftover.take() {
                    l.stop();
                }
            }
            Ok(Message::Done { handed }) => {
                // The old process is gone for good: every accept looks at
                // its queue once more (a last guard against a wake-up that
                // went to the old process while it stopped).
                for w in &workers {
                    let _ = w.send(Control::Rearm);
                }
                info!(
                    handed,
                    adopted, "upgrade: the old process handed everything over"
                );
                break;
            }
            Ok(other) => warn!(message = ?other, "upgrade: unexpected handoff message"),
            Err(e) => {
                error!(error = %e, "upgrade: unreadable tunnel records; closed");
            }
        }
    }
}
