//! Helpers shared by the in-process I/O tests: peers on std threads and
//! connected socket pairs.
#![allow(dead_code)]

use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use monoio::net::TcpStream;

/// Run `f` on a thread; its result is awaited without blocking the
/// runtime (on io_uring a dropped socket is closed by the runtime, so a
/// peer waiting for that close needs the runtime to keep running).
pub fn spawn_peer<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> flume::Receiver<R> {
    let (tx, rx) = flume::bounded(1);
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

pub async fn join<R>(rx: flume::Receiver<R>) -> R {
    rx.recv_async().await.expect("peer thread panicked")
}

/// A connected pair: (std end for the test, monoio end for ringway).
pub fn pair() -> (std::net::TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    a.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    a.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    // ringway's sockets are non-blocking (the accept loop and connects
    // make them so): splice(2) to a blocking socket would block the worker.
    b.set_nonblocking(true).unwrap();
    (a, TcpStream::from_std(b).unwrap())
}
