//! TLS for the end-to-end tests: test certificates made once per process
//! with the `openssl` command (which CI must have), rustls clients that
//! trust the test CA, an https/wss test backend (rustls over std threads),
//! and a bounded runner for the command-line clients (`curl`,
//! `openssl s_client`, `python3`).
//!
//! The certificates ([`certs`]):
//!
//! - `ca.pem`: the test CA (EC P-256); `wrong-ca.pem`: an unrelated one;
//! - `a.pem` / `a.key`: `CN=a.test`, SAN `DNS:a.test, IP:127.0.0.1`, key
//!   PKCS#8 (EC);
//! - `b.pem` / `b.key`: `CN=b.test`, SAN `DNS:b.test`, key SEC1
//!   (`EC PRIVATE KEY`);
//! - `a2.pem` / `a2.key`: `CN=a2.test`, SAN `DNS:a.test` (the certificate
//!   a reload swaps in), key RSA PKCS#1 (`RSA PRIVATE KEY`);
//! - `backend.pem` / `backend.key`: `CN=backend.test`, SAN
//!   `DNS:backend.test, IP:127.0.0.1`, for the https backend;
//! - `expired.pem`: `CN=a.test` valid through January 2020 only, key
//!   `a.key`;
//! - `not-pem.pem`: text that is no PEM at all.
//!
//! Every wait is bounded.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use rustls::{StreamOwned, SupportedProtocolVersion};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::WebSocket;

use crate::{ws_config, SeenRequest};

/// The test certificates' files (see the module header).
pub struct Certs {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub wrong_ca: PathBuf,
    pub a_cert: PathBuf,
    pub a_key: PathBuf,
    pub b_cert: PathBuf,
    pub b_key: PathBuf,
    pub a2_cert: PathBuf,
    pub a2_key: PathBuf,
    pub backend_cert: PathBuf,
    pub backend_key: PathBuf,
    pub expired_cert: PathBuf,
    pub not_pem: PathBuf,
}

/// What a bounded command did.
#[derive(Debug)]
pub struct CmdOutput {
    /// `None` when it was killed at the deadline.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Both streams, for assertion messages.
    pub fn all(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Run `cmd` with `stdin` (closed after it is written; `None`: empty),
/// killing it at `timeout`. Panics with `missing` when the program is not
/// installed.
pub fn run_bounded(
    cmd: &mut Command,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    missing: &str,
) -> CmdOutput {
    let mut child = match cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => panic!("{missing} ({e})"),
        Err(e) => panic!("cannot run {cmd:?}: {e}"),
    };
    let mut input = child.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        if let Some(bytes) = stdin {
            let _ = input.write_all(&bytes);
        }
        // Dropping it closes the child's stdin.
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        // std has no wait-with-timeout for a child.
        thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    CmdOutput {
        code,
        stdout: String::from_utf8_lossy(&out_t.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap()).into_owned(),
    }
}

const NO_OPENSSL: &str =
    "the `openssl` command is missing: the TLS tests need it (apt-get install openssl)";

fn openssl(dir: &Path, args: &[&str]) {
    let out = run_bounded(
        Command::new("openssl").args(args).current_dir(dir),
        None,
        Duration::from_secs(60),
        NO_OPENSSL,
    );
    assert!(out.ok(), "openssl {args:?} failed: {}", out.all());
}

/// The test certificates, made once per process.
pub fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(make_certs)
}

fn make_certs() -> Certs {
    let dir = crate::temp_dir("certs");
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    // Our own config files: nothing depends on the system's openssl.cnf.
    write(
        "req.cnf",
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n\
         [v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n",
    );
    write(
        "ca.cnf",
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n\
         default_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n",
    );
    write("index.txt", "");
    write("serial", "1000\n");
    let ec_pkcs8 = |key: &str| {
        openssl(
            &dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                key,
            ],
        )
    };
    let ec_sec1 = |key: &str| {
        openssl(
            &dir,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                key,
            ],
        )
    };
    let ca = |name: &str, cn: &str| {
        let key = format!("{name}.key");
        ec_pkcs8(&key);
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-new",
                "-config",
                "req.cnf",
                "-extensions",
                "v3_ca",
                "-key",
                &key,
                "-subj",
                &format!("/CN={cn}"),
                "-days",
                "3650",
                "-out",
                &format!("{name}.pem"),
            ],
        );
    };
    let serial = AtomicUsize::new(0x2000);
    // A leaf signed by ca.pem with `key`; `dates` = (start, end) makes it
    // with `openssl ca` for explicit validity dates.
    let leaf = |name: &str, key: &str, cn: &str, san: &str, dates: Option<(&str, &str)>| {
        let ext = format!("{name}.ext");
        write(
            &ext,
            &format!(
                "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n\
                 extendedKeyUsage = serverAuth\nsubjectAltName = {san}\n"
            ),
        );
        let csr = format!("{name}.csr");
        openssl(
            &dir,
            &[
                "req",
                "-new",
                "-config",
                "req.cnf",
                "-key",
                key,
                "-subj",
                &format!("/CN={cn}"),
                "-out",
                &csr,
            ],
        );
        let pem = format!("{name}.pem");
        match dates {
            None => openssl(
                &dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-set_serial",
                    &serial.fetch_add(1, Ordering::SeqCst).to_string(),
                    "-days",
                    "365",
                    "-sha256",
                    "-extfile",
                    &ext,
                    "-out",
                    &pem,
                ],
            ),
            Some((start, end)) => openssl(
                &dir,
                &[
                    "ca",
                    "-batch",
                    "-config",
                    "ca.cnf",
                    "-cert",
                    "ca.pem",
                    "-keyfile",
                    "ca.key",
                    "-in",
                    &csr,
                    "-startdate",
                    start,
                    "-enddate",
                    end,
                    "-extfile",
                    &ext,
                    "-notext",
                    "-out",
                    &pem,
                ],
            ),
        }
    };

    ca("ca", "ringway test CA");
    ca("wrong-ca", "ringway wrong CA");
    ec_pkcs8("a.key");
    leaf("a", "a.key", "a.test", "DNS:a.test,IP:127.0.0.1", None);
    ec_sec1("b.key");
    leaf("b", "b.key", "b.test", "DNS:b.test,IP:127.0.0.1", None);
    openssl(&dir, &["genrsa", "-traditional", "-out", "a2.key", "2048"]);
    leaf("a2", "a2.key", "a2.test", "DNS:a.test,IP:127.0.0.1", None);
    ec_pkcs8("backend.key");
    leaf(
        "backend",
        "backend.key",
        "backend.test",
        "DNS:backend.test,IP:127.0.0.1",
        None,
    );
    leaf(
        "expired",
        "a.key",
        "a.test",
        "DNS:a.test",
        Some(("20200101000000Z", "20200201000000Z")),
    );
    write("not-pem.pem", "this is not a certificate\n");

    let p = |n: &str| dir.join(n);
    let certs = Certs {
        ca: p("ca.pem"),
        wrong_ca: p("wrong-ca.pem"),
        a_cert: p("a.pem"),
        a_key: p("a.key"),
        b_cert: p("b.pem"),
        b_key: p("b.key"),
        a2_cert: p("a2.pem"),
        a2_key: p("a2.key"),
        backend_cert: p("backend.pem"),
        backend_key: p("backend.key"),
        expired_cert: p("expired.pem"),
        not_pem: p("not-pem.pem"),
        dir,
    };
    // The key formats the tests claim to cover.
    let first_line = |f: &Path| {
        std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(first_line(&certs.a_key), "-----BEGIN PRIVATE KEY-----");
    assert_eq!(first_line(&certs.b_key), "-----BEGIN EC PRIVATE KEY-----");
    assert_eq!(first_line(&certs.a2_key), "-----BEGIN RSA PRIVATE KEY-----");
    certs
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub const TLS12_AND_13: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];
pub const TLS12_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
pub const TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// A rustls client trusting `ca` only, with `versions` and `alpn`.
pub fn client_config_with(
    ca: &Path,
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("read the CA file") {
        roots.add(c.expect("a CA certificate")).expect("add the CA");
    }
    let mut cc = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cc.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cc)
}

/// A rustls client trusting the test CA (TLS 1.2 and 1.3, no ALPN).
pub fn client_config() -> Arc<ClientConfig> {
    client_config_with(&certs().ca, TLS12_AND_13, &[])
}

pub type TlsClient = StreamOwned<ClientConnection, TcpStream>;

/// Connect to `addr` and complete a TLS handshake naming `sni`.
pub fn tls_connect(addr: SocketAddr, sni: &str, cc: Arc<ClientConfig>) -> io::Result<TlsClient> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from(sni.to_string()).expect("a server name");
    let conn = ClientConnection::new(cc, name).map_err(io::Error::other)?;
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// Read until the peer closes; an EOF without close_notify is reported as
/// `Err` with what was read so far.
pub fn read_to_close(s: &mut impl Read) -> Result<Vec<u8>, (Vec<u8>, io::Error)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err((out, e)),
        }
    }
}

/// One `Connection: close` request over TLS to `addr` naming `sni`: the
/// whole response, and whether the connection ended with close_notify
/// (`false`: a bare TCP close, or a reset).
pub fn https_exchange(
    addr: SocketAddr,
    sni: &str,
    cc: Arc<ClientConfig>,
    request: &str,
) -> (String, bool) {
    let mut s = tls_connect(addr, sni, cc).expect("TLS handshake with ringway");
    s.write_all(request.as_bytes()).unwrap();
    s.flush().unwrap();
    match read_to_close(&mut s) {
        Ok(v) => (String::from_utf8_lossy(&v).into_owned(), true),
        Err((v, e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
            (String::from_utf8_lossy(&v).into_owned(), false)
        }
        Err((v, e)) => panic!(
            "reading the response: {e}; got {:?}",
            String::from_utf8_lossy(&v)
        ),
    }
}

/// [`https_exchange`]'s response (close_notify or not: see the test
/// `connection_close_ends_with_close_notify`).
pub fn https_request(addr: SocketAddr, sni: &str, cc: Arc<ClientConfig>, request: &str) -> String {
    https_exchange(addr, sni, cc, request).0
}

/// `GET path` with `Host: sni` and `Connection: close` over TLS naming `sni`.
pub fn https_get(addr: SocketAddr, sni: &str, path: &str) -> String {
    https_request(
        addr,
        sni,
        client_config(),
        &format!("GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n"),
    )
}

pub type Wss = WebSocket<MaybeTlsStream<TcpStream>>;

/// A wss client (tungstenite over rustls) to `addr`, naming `host` in the
/// URL (so in SNI and Host).
pub fn wss_connect_with(
    addr: SocketAddr,
    host: &str,
    path: &str,
    cc: Arc<ClientConfig>,
) -> Result<Wss, String> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let url = format!("wss://{host}:{}{path}", addr.port());
    tungstenite::client_tls_with_config(
        url,
        tcp,
        Some(ws_config()),
        Some(tungstenite::Connector::Rustls(cc)),
    )
    .map(|(ws, _)| ws)
    .map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => e.to_string(),
        // The socket's read timeout passed mid-handshake.
        tungstenite::HandshakeError::Interrupted(_) => {
            "no handshake answer within the socket's read timeout".to_string()
        }
    })
}

/// [`wss_connect_with`] trusting the test CA; panics on failure.
pub fn wss_connect(addr: SocketAddr, host: &str, path: &str) -> Wss {
    wss_connect_with(addr, host, path, client_config()).expect("wss handshake through ringway")
}

/// The server name each handshake a [`TlsBackend`] completed carried.
pub type SeenSni = Arc<Mutex<Vec<Option<String>>>>;

/// An https/wss backend: rustls over std threads (one per connection),
/// with the certificate and key given. Each request gets
/// `200 "tls-backend METHOD PATH sni=NAME proto=X-Forwarded-Proto body=N"`
/// (keep-alive unless the request says `Connection: close`); an Upgrade
/// request gets `101` and the connection echoes WebSocket messages.
pub struct TlsBackend {
    pub addr: SocketAddr,
    /// The SNI of every completed handshake, in order.
    pub sni: SeenSni,
    /// Handshakes that failed (ringway refusing the certificate, say).
    pub failed_handshakes: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<SeenRequest>>>,
}

impl TlsBackend {
    /// TLS 1.2 and 1.3.
    pub fn start(cert: &Path, key: &Path) -> TlsBackend {
        Self::start_with(cert, key, TLS12_AND_13)
    }

    /// Speaking only `versions`.
    pub fn start_with(
        cert: &Path,
        key: &Path,
        versions: &[&'static SupportedProtocolVersion],
    ) -> TlsBackend {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let mut sc = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("backend certificate");
        sc.alpn_protocols = vec![b"http/1.1".to_vec()];
        let sc = Arc::new(sc);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind tls backend");
        let addr = listener.local_addr().unwrap();
        let sni: SeenSni = Arc::default();
        let failed = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (sni2, failed2, c2, seen2) = (
            sni.clone(),
            failed.clone(),
            connections.clone(),
            seen.clone(),
        );
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                c2.fetch_add(1, Ordering::SeqCst);
                let (sc, sni, failed, seen) =
                    (sc.clone(), sni2.clone(), failed2.clone(), seen2.clone());
                thread::spawn(move || serve_tls_backend(conn, sc, sni, failed, seen));
            }
        });
        TlsBackend {
            addr,
            sni,
            failed_handshakes: failed,
            connections,
            seen,
        }
    }

    pub fn snis(&self) -> Vec<Option<String>> {
        self.sni.lock().unwrap().clone()
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_tls_backend(
    tcp: TcpStream,
    sc: Arc<ServerConfig>,
    sni: SeenSni,
    failed: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(30)));
    let Ok(conn) = ServerConnection::new(sc) else {
        return;
    };
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        if s.conn.complete_io(&mut s.sock).is_err() {
            failed.fetch_add(1, Ordering::SeqCst);
            return;
        }
    }
    let name = s.conn.server_name().map(str::to_string);
    sni.lock().unwrap().push(name.clone());
    let name = name.unwrap_or_else(|| "-".into());
    let mut buf: Vec<u8> = Vec::new();
    let mut tmp = [0u8; 16 * 1024];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let (method, req) = crate::seen_head(&buf[..head_end]);
        buf.drain(..head_end);
        let path = req.path.clone();
        let length: usize = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < length {
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        buf.drain(..length);
        let proto = req.header("x-forwarded-proto").unwrap_or("-").to_string();
        let close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let upgrade = req
            .header("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        let key = req.header("sec-websocket-key").unwrap_or("").to_string();
        seen.lock().unwrap().push(req);
        if upgrade {
            let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
            let resp = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            if s.write_all(resp.as_bytes())
                .and_then(|_| s.flush())
                .is_err()
            {
                return;
            }
            let mut ws = WebSocket::from_partially_read(
                s,
                std::mem::take(&mut buf),
                tungstenite::protocol::Role::Server,
                Some(ws_config()),
            );
            while let Ok(m) = ws.read() {
                if (m.is_text() || m.is_binary()) && ws.send(m).is_err() {
                    break;
                }
            }
            return;
        }
        let body = format!("tls-backend {method} {path} sni={name} proto={proto} body={length}");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(resp.as_bytes())
            .and_then(|_| s.flush())
            .is_err()
        {
            return;
        }
        if close {
            s.conn.send_close_notify();
            let _ = s.flush();
            return;
        }
    }
}

/// `openssl s_client` to `addr` naming `sni` (`None`: no SNI) with
/// `extra` arguments; stdin is closed at once, so it ends after the
/// handshake.
pub fn s_client(addr: SocketAddr, sni: Option<&str>, extra: &[&str]) -> CmdOutput {
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .arg("-CAfile")
        .arg(&certs().ca);
    match sni {
        Some(n) => cmd.arg("-servername").arg(n),
        None => cmd.arg("-noservername"),
    };
    cmd.args(extra);
    run_bounded(&mut cmd, None, Duration::from_secs(20), NO_OPENSSL)
}

/// The peer certificate's subject CN that `s_client` printed.
pub fn subject_cn(out: &CmdOutput) -> Option<String> {
    let line = out.stdout.lines().find(|l| l.starts_with("subject="))?;
    let cn = line.split("CN").nth(1)?;
    let cn = cn.trim_start().strip_prefix('=')?.trim();
    Some(cn.split(',').next().unwrap_or(cn).trim().to_string())
}

/// `curl` with the test CA, `name:PORT` resolved to `addr`.
pub fn curl(addr: SocketAddr, name: &str, args: &[&str]) -> CmdOutput {
    let mut cmd = Command::new("curl");
    cmd.arg("-sS")
        .arg("--max-time")
        .arg("20")
        .arg("--cacert")
        .arg(&certs().ca)
        .arg("--resolve")
        .arg(format!("{name}:{}:{}", addr.port(), addr.ip()))
        .args(args);
    run_bounded(
        &mut cmd,
        None,
        Duration::from_secs(30),
        "the `curl` command is missing: the TLS tests need it (apt-get install curl)",
    )
}
