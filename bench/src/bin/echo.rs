//! `ringway-echo`: the WebSocket echo backend for benchmarks and examples.
//!
//! ```text
//! ringway-echo [--listen 127.0.0.1:3000] [--threads 1] [--driver epoll|io_uring]
//! ```
//!
//! Each thread runs its own monoio runtime and accepts on its own
//! SO_REUSEPORT listener (all bound on the main thread first, so port 0
//! works: the first picks the port, the others share it). Prints
//! `listening addr=IP:PORT` on stdout once every listener is bound.
//!
//! Per connection: read the request head; a WebSocket upgrade gets 101 with
//! `Sec-WebSocket-Accept` (RFC 6455 §4.2.2), anything else a small 200
//! (keep-alive as the client asks: the REST backend of the HTTP benchmark). Then every client frame is unmasked and echoed
//! unmasked, frame by frame with its first byte kept (fragmented messages
//! come back fragmented alike); ping → pong, pong dropped, close echoed and
//! the connection closed (§5.5). An unmasked or oversized frame ends the
//! connection. An idle connection holds a small read buffer only.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use ringway_bench::cli::Args;
use ringway_bench::handshake::{self, HandshakeError};
use ringway_bench::rt::{self, Driver};
use ringway_bench::ws;

/// Longest frame echoed; longer ones end the connection.
const MAX_FRAME: usize = 64 << 20;
/// Read buffer an idle connection keeps (grown on demand, given back once
/// drained).
const IDLE_BUF: usize = 512;
/// Above this capacity a drained buffer is given back.
const KEEP_BUF: usize = 64 << 10;
const BACKLOG: i32 = 4096;

const USAGE: &str =
    "usage: ringway-echo [--listen 127.0.0.1:3000] [--threads N] [--driver epoll|io_uring]";

fn main() -> anyhow::Result<()> {
    let mut listen: SocketAddr = "127.0.0.1:3000".parse()?;
    let mut threads = 1usize;
    let mut driver = Driver::Epoll;
    let mut args = Args::new(std::env::args().skip(1));
    while let Some(flag) = args.next_flag() {
        match flag.as_str() {
            "--listen" => listen = args.value(&flag)?,
            "--threads" => threads = args.value::<usize>(&flag)?.max(1),
            "--driver" => driver = args.value(&flag)?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    rt::raise_nofile();

    let first = bind(listen).with_context(|| format!("bind {listen}"))?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..threads {
        listeners.push(bind(addr).with_context(|| format!("bind {addr}"))?);
    }
    let handles: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            std::thread::Builder::new()
                .name(format!("echo-{i}"))
                .spawn(move || rt::block_on(driver, serve(l)))
        })
        .collect::<Result<_, _>>()?;
    println!(
        "listening addr={addr} threads={threads} driver={}",
        driver.name()
    );
    std::io::stdout().flush()?;
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("echo thread panicked"))???;
    }
    Ok(())
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

async fn serve(l: std::net::TcpListener) -> anyhow::Result<()> {
    let listener = TcpListener::from_std(l)?;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                monoio::spawn(async move {
                    let _ = conn(stream).await;
                });
            }
            // EMFILE and friends: back off instead of spinning.
            Err(e) => {
                eprintln!("ringway-echo: accept: {e}");
                monoio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn conn(mut s: TcpStream) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let (req, key) = loop {
        let req = loop {
            match handshake::parse_request(&buf) {
                Ok(Some(r)) => break r,
                Ok(None) => buf = read_more(&mut s, buf).await?,
                Err(HandshakeError::TooLarge) => {
                    return answer(&mut s, "431 Request Header Fields Too Large", false).await
                }
                Err(_) => return answer(&mut s, "400 Bad Request", false).await,
            }
        };
        if let Some(key) = req.ws_key.clone() {
            break (req, key);
        }
        // Plain HTTP: skip the body, answer, and keep going while the
        // client keeps the connection.
        let mut left = req.content_length;
        buf.drain(..req.head_len);
        loop {
            let take = left.min(buf.len() as u64) as usize;
            buf.drain(..take);
            left -= take as u64;
            if left == 0 {
                break;
            }
            buf = read_more(&mut s, buf).await?;
        }
        answer(&mut s, "200 OK", req.keep_alive).await?;
        if !req.keep_alive {
            return Ok(());
        }
        if buf.is_empty() {
            buf = match read_more(&mut s, buf).await {
                Ok(b) => b,
                // The client closed between requests: done.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            };
        }
    };
    let (r, _) = s.write_all(handshake::server_response(&key)).await;
    r?;
    buf.drain(..req.head_len);
    if buf.is_empty() {
        buf = Vec::with_capacity(IDLE_BUF);
    }
    let mut out = Vec::new();
    loop {
        let step = match ws::echo_step(&mut buf, &mut out, MAX_FRAME) {
            Ok(step) => step,
            // §7.4.1: 1002 protocol error, 1009 too big.
            Err(e) => {
                let code = match e {
                    ws::EchoError::Unmasked => 1002,
                    ws::EchoError::TooLarge => 1009,
                };
                out.clear();
                ws::write_frame(
                    &mut out,
                    ws::FIN | ws::OP_CLOSE,
                    &ws::close_payload(code),
                    None,
                );
                let (r, _) = s.write_all(out).await;
                return r.map(|_| ());
            }
        };
        buf.drain(..step.consumed);
        if !out.is_empty() {
            let (r, back) = s.write_all(out).await;
            r?;
            out = back;
            out.clear();
            if out.capacity() > KEEP_BUF {
                out = Vec::new();
            }
        }
        if step.closed {
            return Ok(());
        }
        if buf.is_empty() && buf.capacity() > KEEP_BUF {
            buf = Vec::with_capacity(IDLE_BUF);
        }
        buf = read_more(&mut s, buf).await?;
    }
}

/// A non-upgrade answer; the connection stays open when `keep_alive`.
async fn answer(s: &mut TcpStream, status: &str, keep_alive: bool) -> std::io::Result<()> {
    let body = "ringway-echo\n";
    let conn = if keep_alive { "keep-alive" } else { "close" };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {conn}\r\n\r\n{body}",
        body.len()
    );
    let (r, _) = s.write_all(resp.into_bytes()).await;
    r.map(|_| ())
}

/// Read more bytes after `buf`'s contents (growing it); EOF ends the task.
async fn read_more(s: &mut TcpStream, mut buf: Vec<u8>) -> std::io::Result<Vec<u8>> {
    if buf.capacity() - buf.len() < IDLE_BUF / 2 {
        buf.reserve(buf.capacity().max(IDLE_BUF));
    }
    let len = buf.len();
    let (r, slice) = s.read(buf.slice_mut(len..)).await;
    let buf = slice.into_inner();
    match r? {
        0 => Err(std::io::ErrorKind::UnexpectedEof.into()),
        _ => Ok(buf),
    }
}
