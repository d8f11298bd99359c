//! The load generator's TLS client: rustls 0.23 with the ring provider over
//! monoio-rustls. One [`TlsClient`] per load process (one `Arc` of
//! `ClientConfig`, so rustls's in-memory session store in it is that
//! process's: with `--tls-resume` every connection offers the tickets the
//! earlier ones received; without it resumption is disabled and every
//! handshake is a full one). It trusts only the CA file it is given and
//! checks the server's certificate against `--tls-name` (sent as SNI when
//! it is a DNS name) or, without one, the target's IP address.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use monoio::net::TcpStream;
use monoio_rustls::{ClientTlsStream, TlsConnector, TlsError};
use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::NamedGroup;
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore};

use crate::client::What;

/// What the command line asks of TLS (`--tls-ca`, `--tls-name`,
/// `--tls-resume`); TLS is on when a CA file is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsArgs {
    /// PEM file of the certificate authorities to trust.
    pub ca: PathBuf,
    /// The name to check the certificate against (and send as SNI); the
    /// target's IP address when absent.
    pub name: Option<String>,
    /// Offer sessions from earlier handshakes (TLS 1.3 tickets).
    pub resume: bool,
    /// Offer ALPN `h2` alone (an HTTP/2 client); without it no ALPN.
    pub h2: bool,
}

/// A load process's TLS client: its configuration and the server name.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// Read the CA file and build the configuration; `target` names the
    /// server when `args` has no name.
    pub fn new(args: &TlsArgs, target: IpAddr) -> Result<Self, String> {
        let pem =
            std::fs::read(&args.ca).map_err(|e| format!("--tls-ca {}: {e}", args.ca.display()))?;
        let roots = roots(&pem).map_err(|e| format!("--tls-ca {}: {e}", args.ca.display()))?;
        let name = match &args.name {
            Some(n) => server_name(n)?,
            None => ServerName::IpAddress(target.into()),
        };
        let mut c = config(roots, args.resume)?;
        if args.h2 {
            c.alpn_protocols = vec![b"h2".to_vec()];
        }
        Ok(Self {
            connector: TlsConnector::from(Arc::new(c)),
            name,
        })
    }

    /// The TLS handshake on a connected socket.
    pub async fn connect(&self, tcp: TcpStream) -> Result<ClientTlsStream<TcpStream>, What> {
        self.connector
            .connect(self.name.clone(), tcp)
            .await
            .map_err(|e| match e {
                TlsError::Io(e) => What::from(e),
                TlsError::Rustls(e) => what(&e),
            })
    }
}

/// A rustls error as a failure kind.
pub fn what(e: &rustls::Error) -> What {
    What::Tls(match e {
        rustls::Error::InvalidCertificate(_) => "bad_certificate",
        rustls::Error::AlertReceived(_) => "alert",
        _ => "tls_error",
    })
}

/// A server name as `--tls-name` gives it: a DNS name or an IP address.
pub fn server_name(s: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(s.to_string()).map_err(|e| format!("--tls-name {s:?}: {e}"))
}

/// Every certificate of a PEM text, as trust anchors; at least one.
pub fn roots(pem: &[u8]) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("bad PEM: {e}"))?;
        store
            .add(cert)
            .map_err(|e| format!("not a CA certificate: {e}"))?;
    }
    if store.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(store)
}

/// rustls's defaults with the ring provider (TLS 1.3 and 1.2; X25519 first;
/// AES-256-GCM first) trusting `roots`; resumption on only when asked.
pub fn config(roots: RootCertStore, resume: bool) -> Result<ClientConfig, String> {
    let mut c =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    c.resumption = if resume {
        Resumption::store(Arc::new(DeepStore::default()))
    } else {
        Resumption::disabled()
    };
    Ok(c)
}

/// Tickets a load process keeps per server name: rustls's own store keeps
/// 8, which a burst of more concurrent connections than that (a proxy that
/// finishes many handshakes in one wake-up) empties, so those connections
/// would offer nothing and the row would count the client's store, not the
/// proxy.
const TICKETS_PER_SERVER: usize = 4096;

/// A session store deep enough for every concurrent connection of a load
/// process (otherwise rustls's in-memory store, with its limit raised).
#[derive(Debug, Default)]
struct DeepStore {
    tls13: Mutex<HashMap<ServerName<'static>, VecDeque<Tls13ClientSessionValue>>>,
    tls12: Mutex<HashMap<ServerName<'static>, Tls12ClientSessionValue>>,
    kx: Mutex<HashMap<ServerName<'static>, NamedGroup>>,
}

impl ClientSessionStore for DeepStore {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        self.kx.lock().unwrap().insert(name, group);
    }

    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.kx.lock().unwrap().get(&name.to_owned()).copied()
    }

    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.tls12.lock().unwrap().insert(name, value);
    }

    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.tls12.lock().unwrap().get(&name.to_owned()).cloned()
    }

    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.tls12.lock().unwrap().remove(name);
    }

    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        let mut all = self.tls13.lock().unwrap();
        let q = all.entry(name).or_default();
        if q.len() == TICKETS_PER_SERVER {
            q.pop_front();
        }
        q.push_back(value);
    }

    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.tls13.lock().unwrap().get_mut(name)?.pop_back()
    }
}

/// What a finished connection negotiated, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Negotiated {
    /// Whether the handshake resumed an earlier session.
    pub resumed: bool,
    /// `TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519`.
    pub params: String,
}

impl Negotiated {
    /// Read them off a connection whose handshake is done.
    pub fn of(c: &ClientConnection) -> Self {
        let version = c.protocol_version().map(|v| format!("{v:?}"));
        let suite = c
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()));
        let kx = c
            .negotiated_key_exchange_group()
            .map(|g| format!("{:?}", g.name()));
        let params: Vec<String> = [version, suite, kx].into_iter().flatten().collect();
        Self {
            resumed: c.handshake_kind() == Some(HandshakeKind::Resumed),
            params: params.join(" "),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::rc::Rc;

    use monoio::io::{AsyncReadRent, AsyncReadRentExt, AsyncWriteRent, AsyncWriteRentExt};
    use rustls::pki_types::PrivateKeyDer;

    use super::*;
    use crate::client::connect_from;
    use crate::rt::{self, Driver};

    /// Test fixtures (bench/testdata, made with the same `openssl` steps
    /// as the harness's run-time certificate, valid for a century): a
    /// P-256 CA, and a leaf for localhost and 127.0.0.1 signed by it.
    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name)
    }

    #[test]
    fn names() {
        assert!(matches!(
            server_name("localhost"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(server_name("not a name").is_err());
    }

    #[test]
    fn roots_from_pem() {
        let ca = std::fs::read(fixture("ca.pem")).unwrap();
        assert_eq!(roots(&ca).unwrap().len(), 1);
        assert!(roots(b"").is_err());
        let key = std::fs::read(fixture("key.pem")).unwrap();
        assert!(roots(&key).is_err(), "a key is no certificate");
        let bad = b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert!(roots(bad).is_err());
        let args = TlsArgs {
            ca: fixture("missing.pem"),
            name: None,
            resume: false,
            h2: false,
        };
        let e = TlsClient::new(&args, [127, 0, 0, 1].into()).unwrap_err();
        assert!(e.starts_with("--tls-ca "), "{e}");
    }

    /// A TLS server on loopback (rustls defaults: two TLS 1.3 tickets per
    /// handshake, a stateful session cache) answering "ping" with "pong"
    /// and closing, `n` times.
    async fn server(n: usize) -> SocketAddr {
        let certs = CertificateDer::pem_file_iter(fixture("cert.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(fixture("key.pem")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = monoio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        monoio::spawn(async move {
            for _ in 0..n {
                let (tcp, _) = listener.accept().await.unwrap();
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    continue;
                };
                let (r, buf) = s.read_exact(vec![0u8; 4]).await;
                if r.is_ok() && buf == b"ping" {
                    let _ = s.write_all(b"pong".to_vec()).await;
                }
                let _ = s.shutdown().await;
            }
        });
        addr
    }

    /// One exchange with [`server`]: what it negotiated.
    async fn exchange(tls: &TlsClient, addr: SocketAddr) -> Result<Negotiated, What> {
        let tcp = connect_from(None, addr).await.map_err(What::from)?;
        let mut s = tls.connect(tcp).await?;
        let (r, _) = s.write_all(b"ping".to_vec()).await;
        r?;
        let (r, buf) = s.read_exact(vec![0u8; 4]).await;
        r?;
        assert_eq!(buf, b"pong");
        // The server's close_notify: a clean end.
        let (r, _) = s.read(vec![0u8; 16]).await;
        assert_eq!(r?, 0);
        Ok(Negotiated::of(&s.into_parts().1))
    }

    #[test]
    fn handshakes_full_resumed_and_refused() {
        let args = |name: &str, resume| TlsArgs {
            ca: fixture("ca.pem"),
            name: Some(name.to_string()),
            resume,
            h2: false,
        };
        let lo = [127, 0, 0, 1].into();
        rt::block_on(Driver::Epoll, async move {
            let addr = server(6).await;
            let full = Rc::new(TlsClient::new(&args("localhost", false), lo).unwrap());
            for _ in 0..2 {
                let n = exchange(&full, addr).await.unwrap();
                assert!(!n.resumed);
                assert_eq!(n.params, "TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519");
            }
            let resume = TlsClient::new(&args("localhost", true), lo).unwrap();
            assert!(!exchange(&resume, addr).await.unwrap().resumed);
            assert!(exchange(&resume, addr).await.unwrap().resumed);
            // The certificate is for localhost and 127.0.0.1 only.
            let ip = TlsClient::new(
                &TlsArgs {
                    name: None,
                    ..args("", false)
                },
                lo,
            )
            .unwrap();
            assert!(!exchange(&ip, addr).await.unwrap().resumed);
            let wrong = TlsClient::new(&args("example.com", false), lo).unwrap();
            let refused = exchange(&wrong, addr).await.unwrap_err();
            assert_eq!(refused, What::Tls("bad_certificate"));
            let f = crate::client::Failure {
                phase: crate::client::Phase::Tls,
                what: refused,
            };
            assert_eq!(f.key(), "tls_bad_certificate");
        })
        .unwrap();
    }

    #[test]
    fn resumption_only_when_asked() {
        let ca = std::fs::read(fixture("ca.pem")).unwrap();
        let on = config(roots(&ca).unwrap(), true).unwrap();
        let off = config(roots(&ca).unwrap(), false).unwrap();
        assert_ne!(
            format!("{:?}", on.resumption),
            format!("{:?}", off.resumption)
        );
        assert!(on.enable_sni && off.enable_sni);
    }
}
