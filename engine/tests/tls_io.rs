//! In-process tests of the TLS stream on both drivers: ringway's server
//! side (`tls::accept`) against a rustls client on a std thread that the
//! test controls exactly — bytes both ways, a wss-style tunnel whose
//! client stops reading (memory stays bounded, the upstream is paused),
//! the buffers of an idle connection (none), a handshake that never
//! comes (timed out), and bytes that are not TLS (an alert, then closed).

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringway::proxy::kit::Kit;
use ringway::proxy::tunnel;
use ringway::tls::{self, Acceptor, ServerTls};
use ringway::transport::Transport;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

mod common;
use common::{join, pair, spawn_peer};

/// A test CA and a leaf for `a.test` signed by it: (server config, client
/// config trusting the CA).
fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["a.test".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der().to_vec())).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

type Client = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

fn client(config: Arc<rustls::ClientConfig>, sock: std::net::TcpStream) -> Client {
    let conn = rustls::ClientConnection::new(config, "a.test".try_into().unwrap()).unwrap();
    rustls::StreamOwned::new(conn, sock)
}

/// A TLS connection: ringway's side accepted here, the client's handed to
/// `peer` on a thread.
async fn accepted<R: Send + 'static>(
    timeout: Duration,
    peer: impl FnOnce(Client) -> R + Send + 'static,
) -> (ServerTls, flume::Receiver<R>) {
    let (server, client_config) = configs();
    let (sock, ours) = pair();
    let t = spawn_peer(move || peer(client(client_config, sock)));
    let acceptor = Acceptor {
        config: server,
        handshake_timeout: timeout,
    };
    let tls = tls::accept(ours, &acceptor).await.expect("handshake");
    (tls, t)
}

#[monoio::test_all(timer_enabled = true)]
async fn tls_stream_moves_bytes_both_ways_and_holds_nothing_idle() {
    let data: Vec<u8> = (0..3u32 << 20).map(|i| (i * 7 % 253) as u8).collect();
    let d = data.clone();
    let (tls, t) = accepted(Duration::from_secs(10), move |mut c| {
        c.write_all(&d).unwrap();
        let mut back = vec![0u8; d.len()];
        c.read_exact(&mut back).unwrap();
        assert!(back == d, "echo differs");
        c.conn.send_close_notify();
        c.flush().unwrap();
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        rest.len()
    })
    .await;
    assert_eq!(tls.tls_info().unwrap().protocol, "TLSv1.3");
    let mut got = 0;
    let mut buf = vec![0u8; 16 * 1024];
    while got < data.len() {
        let n = tls.read_some(&mut buf).await.unwrap();
        assert!(n > 0, "early end after {got}");
        assert_eq!(&buf[..n], &data[got..got + n]);
        tls.write_all(&buf[..n], Duration::from_secs(10))
            .await
            .unwrap();
        got += n;
    }
    // Everything read and written: no buffer is held.
    assert_eq!(tls.held(), 0, "an idle TLS stream holds no buffer");
    // The client's close_notify is an end of stream.
    assert_eq!(tls.read_some(&mut buf).await.unwrap(), 0);
    tls.shutdown_write(Duration::from_secs(5)).await;
    drop(tls);
    assert_eq!(join(t).await, 0);
}

fn pattern(p: usize) -> u8 {
    (p % 251) as u8
}

/// A wss-style tunnel (TLS client, plain upstream) whose client stops
/// reading: the upstream's writes block with the proxy holding a bounded
/// amount, and once the client reads again every byte arrives in order.
#[monoio::test_all(timer_enabled = true)]
async fn tls_tunnel_pauses_the_upstream_for_a_client_that_stops_reading() {
    let (up_std, up) = pair();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (tls, client_done) = accepted(Duration::from_secs(10), move |mut c| {
        c.write_all(b"hi").unwrap();
        c.flush().unwrap();
        // Stop reading until the test says so, then read everything.
        go_rx.recv().unwrap();
        let mut all = Vec::new();
        c.sock
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let _ = c.read_to_end(&mut all);
        all
    })
    .await;
    let writer = spawn_peer(move || {
        let mut u = up_std;
        let mut hi = [0u8; 2];
        u.read_exact(&mut hi).unwrap();
        u.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        // Byte p of the stream is pattern(p); count what the socket took.
        let block: Vec<u8> = (0..251 * 300).map(pattern).collect();
        let mut sent = 0usize;
        while sent < 256 << 20 {
            let at = sent % 251;
            match u.write(&block[at..at + 64 * 1024 - 251]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        (u, sent)
    });
    let kit = Kit::new(16 * 1024, true);
    let run = tunnel::run(
        &kit,
        &tls,
        &up,
        Duration::from_secs(30),
        Duration::from_secs(30),
        None,
        Default::default(),
    );
    let mut run = std::pin::pin!(run);
    let (u, sent) = monoio::select! {
        _ = &mut run => panic!("tunnel ended"),
        r = join(writer) => r,
    };
    let held = tls.held();
    eprintln!("upstream blocked after {sent} bytes; the TLS stream holds {held} bytes");
    assert!(sent < 256 << 20, "the upstream never blocked");
    assert!(
        held <= 160 * 1024,
        "{held} bytes held behind a stuck client"
    );
    // Resume: the client reads it all; the upstream closes.
    go_tx.send(()).unwrap();
    let u = u;
    u.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    u.shutdown(Shutdown::Write).unwrap();
    let stats = monoio::time::timeout(Duration::from_secs(20), async {
        monoio::select! {
            s = &mut run => s,
            _ = monoio::time::sleep(Duration::from_secs(20)) => panic!("tunnel did not end"),
        }
    })
    .await
    .unwrap();
    let got = join(client_done).await;
    assert_eq!(got.len(), sent, "{stats:?}");
    if let Some(p) = (0..got.len()).find(|&p| got[p] != pattern(p)) {
        panic!("byte {p} differs");
    }
    drop(u);
}

#[monoio::test_all(timer_enabled = true)]
async fn tls_handshake_times_out_on_a_silent_client() {
    let (server, _) = configs();
    let (sock, ours) = pair();
    let acceptor = Acceptor {
        config: server,
        handshake_timeout: Duration::from_millis(300),
    };
    let t0 = Instant::now();
    let e = match tls::accept(ours, &acceptor).await {
        Ok(_) => panic!("a silent client completed a handshake"),
        Err(e) => e,
    };
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    drop(sock);
}

#[monoio::test_all(timer_enabled = true)]
async fn tls_garbage_gets_an_alert_and_an_error() {
    let (server, _) = configs();
    for garbage in [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        [&[22u8, 3, 1, 0, 64][..], &[0xa5; 64]].concat(),
    ] {
        let (sock, ours) = pair();
        let t = spawn_peer(move || {
            let mut s = sock;
            s.write_all(&garbage).unwrap();
            let mut back = Vec::new();
            let _ = s.read_to_end(&mut back);
            back
        });
        let acceptor = Acceptor {
            config: server.clone(),
            handshake_timeout: Duration::from_secs(5),
        };
        let r = tls::accept(ours, &acceptor).await;
        assert!(r.is_err(), "garbage made a TLS connection");
        drop(r);
        let back = join(t).await;
        assert_eq!(back.first(), Some(&21), "an alert record first: {back:?}");
    }
}
