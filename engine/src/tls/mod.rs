//! TLS: termination of wss/https on a `listen` whose servers have a `tls`
//! table, and TLS to `https://` upstreams.
//!
//! [`TlsSet`] is what one configuration needs, built on the control thread
//! at `-t`, at start and on every SIGHUP (so a bad certificate fails the
//! test, the start, or only that reload) and handed to the workers with
//! the configuration: per TLS listen address a rustls `ServerConfig` whose
//! certificate resolver picks the server by SNI with `route`'s rules (the
//! default server's certificate when no name matches); per `https`
//! location a `ClientConfig` (trusted roots, verification, SNI). Live
//! connections keep the `Arc`s they started with, so a reload changes the
//! certificate for new handshakes only.
//!
//! Session resumption works across cores and reloads: one ticket key
//! rotator (TLS 1.3 tickets, TLS 1.2 tickets) and one session-ID cache
//! for the process, shared by every `ServerConfig` built.
//!
//! The connection itself is [`stream::TlsStream`] over rustls's
//! unbuffered API (see its header for the memory reasons).

pub mod cert;
pub mod client_hello;
mod resume;
mod stream;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use monoio::net::TcpStream;
use ringway_config::{quote_key, Config, ConfigError, ErrorKind, ProxyTarget, TlsVersion};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::UnbufferedClientConnection;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert, UnbufferedServerConnection};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::route::ServerGroup;
use crate::transport::TlsInfo;

use stream::tls_error;
pub use stream::{Side, TlsStream};

/// A client's TLS connection to ringway.
pub type ServerTls = TlsStream<UnbufferedServerConnection>;
/// ringway's TLS connection to an upstream.
pub type ClientTls = TlsStream<UnbufferedClientConnection>;

/// Sessions remembered for TLS 1.2 session-ID resumption, process-wide
/// (~20 MB at most; nginx's `ssl_session_cache shared:SSL:10m` holds
/// ~40,000).
const SESSION_CACHE: usize = 20_000;

/// ALPN: HTTP/1.1, and `h2` first on an address with a server of
/// `http2 = true`.
const ALPN_HTTP11: &[u8] = b"http/1.1";
const ALPN_H2: &[u8] = b"h2";

/// The TLS material of one configuration.
#[derive(Default)]
pub struct TlsSet {
    /// Per TLS listen address.
    pub listeners: HashMap<SocketAddr, Arc<Acceptor>>,
    /// Per `(server, location)` index whose `proxy_pass` is `https://`.
    pub upstreams: HashMap<(usize, usize), Arc<Connector>>,
    /// Each server's certificate expiry (server name, notAfter).
    pub certificates: Vec<(String, Option<SystemTime>)>,
    /// What is suspicious but not fatal (an expired certificate).
    pub warnings: Vec<String>,
}

/// How one TLS listen address accepts.
pub struct Acceptor {
    pub config: Arc<ServerConfig>,
    /// The default server's `handshake_timeout`.
    pub handshake_timeout: Duration,
}

/// How one location connects to its https upstream.
pub struct Connector {
    pub config: Arc<ClientConfig>,
    /// Verified (and, with `proxy_ssl_server_name`, sent as SNI).
    pub name: ServerName<'static>,
}

fn provider() -> &'static Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// The process's session-ID cache and ticket key rotator.
type Resumption = (
    Arc<dyn rustls::server::StoresServerSessions>,
    Option<Arc<dyn rustls::server::ProducesTickets>>,
);

fn resumption() -> &'static Resumption {
    static R: OnceLock<Resumption> = OnceLock::new();
    R.get_or_init(|| {
        let ticketer = match rustls::crypto::ring::Ticketer::new() {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "no TLS session tickets (session IDs only)");
                None
            }
        };
        (
            rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE),
            ticketer,
        )
    })
}

/// Picks the certificate by SNI among the servers of one listen address.
#[derive(Debug)]
struct Sni {
    config: Arc<Config>,
    group: ServerGroup,
    /// By server index (`None` for servers not on this address).
    keys: Vec<Option<Arc<CertifiedKey>>>,
}

impl ResolvesServerCert for Sni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(str::to_ascii_lowercase);
        let i = self.group.select_index(&self.config, name.as_deref());
        self.keys.get(i).cloned().flatten()
    }
}

impl TlsSet {
    /// Read every certificate, key and CA file `config` names.
    pub fn build(config: &Arc<Config>, file: &Path) -> Result<TlsSet, Box<ConfigError>> {
        let err = |line: usize, key: String, reason: String| {
            Box::new(ConfigError {
                file: file.to_path_buf(),
                line: Some(line),
                column: None,
                key,
                kind: ErrorKind::Invalid(reason),
            })
        };
        let mut set = TlsSet::default();
        let now = SystemTime::now();
        let mut keys: Vec<Option<Arc<CertifiedKey>>> = vec![None; config.servers.len()];
        for (i, s) in config.servers.iter().enumerate() {
            let Some(t) = &s.tls else { continue };
            // `reject_handshake`: no certificate; the resolver finds none.
            let (Some(cert_path), Some(key_path)) = (&t.cert, &t.key) else {
                continue;
            };
            let server = quote_key(&s.name);
            let loaded = cert::load(cert_path, key_path, provider()).map_err(|e| {
                let (which, line) = match e {
                    cert::CertError::NoKey { .. } | cert::CertError::BadKey { .. } => {
                        ("key", t.key_line)
                    }
                    cert::CertError::Read { ref path, .. }
                    | cert::CertError::BadPem { ref path, .. }
                        if Path::new(path) == key_path =>
                    {
                        ("key", t.key_line)
                    }
                    _ => ("cert", t.cert_line),
                };
                err(line, format!("servers.{server}.tls.{which}"), e.to_string())
            })?;
            if let Some(w) = cert::expiry_warning(loaded.not_after, now) {
                set.warnings.push(format!(
                    "{}:{}: servers.{server}.tls.cert: `{}`: {w}",
                    file.display(),
                    t.cert_line,
                    cert_path.display()
                ));
            }
            set.certificates.push((s.name.clone(), loaded.not_after));
            keys[i] = Some(loaded.key);
        }
        let mut by_addr: HashMap<SocketAddr, Vec<usize>> = HashMap::new();
        for (i, s) in config.servers.iter().enumerate() {
            for a in &s.listen {
                by_addr.entry(*a).or_default().push(i);
            }
        }
        for (addr, servers) in by_addr {
            let group = ServerGroup { servers };
            let default = &config.servers[group.select_index(config, None)];
            let Some(default_tls) = &default.tls else {
                continue; // validation keeps an address all-TLS or all-plain
            };
            let lowest = group
                .servers
                .iter()
                .filter_map(|&i| config.servers[i].tls.as_ref().map(|t| t.min_version))
                .min()
                .unwrap_or(TlsVersion::V1_2);
            // The oldest version any server of the address allows is
            // offered (each server's own minimum is checked once the SNI
            // name is known).
            // Servers of one address agree on these (validation); a
            // rejecting default has none of its own.
            let settings = group
                .servers
                .iter()
                .filter_map(|&i| config.servers[i].tls.as_ref())
                .find(|t| !t.reject_handshake)
                .unwrap_or(default_tls);
            let highest = settings.max_version;
            let versions: &[&rustls::SupportedProtocolVersion] = match (lowest, highest) {
                (TlsVersion::V1_2, TlsVersion::V1_3) => {
                    &[&rustls::version::TLS13, &rustls::version::TLS12]
                }
                (_, TlsVersion::V1_2) => &[&rustls::version::TLS12],
                (TlsVersion::V1_3, _) => &[&rustls::version::TLS13],
            };
            let suites = match &settings.ciphers {
                None => provider().clone(),
                Some(names) => {
                    let mut p = (**provider()).clone();
                    p.cipher_suites.retain(|cs| match cs {
                        rustls::SupportedCipherSuite::Tls13(_) => true,
                        rustls::SupportedCipherSuite::Tls12(_) => names
                            .iter()
                            .any(|n| cs.suite().as_str() == Some(n.as_str())),
                    });
                    Arc::new(p)
                }
            };
            let h2 = group
                .servers
                .iter()
                .any(|&i| config.servers[i].http2 == ringway_config::Http2::Tls);
            let mut sc = ServerConfig::builder_with_provider(suites)
                .with_protocol_versions(versions)
                .map_err(|e| {
                    err(
                        default_tls.line,
                        format!("servers.{}.tls", quote_key(&default.name)),
                        e.to_string(),
                    )
                })?
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(Sni {
                    config: config.clone(),
                    group,
                    keys: keys.clone(),
                }));
            sc.alpn_protocols = if h2 {
                vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()]
            } else {
                vec![ALPN_HTTP11.to_vec()]
            };
            let (sessions, ticketer) = resumption();
            let timeout = settings.session_timeout.as_secs();
            if settings.session_cache {
                sc.session_storage = Arc::new(resume::TimedSessions {
                    inner: sessions.clone(),
                    timeout,
                });
            } else {
                sc.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            }
            if let (Some(t), true) = (ticketer, settings.session_tickets) {
                sc.ticketer = Arc::new(resume::TimedTickets {
                    inner: t.clone(),
                    timeout: u32::try_from(timeout).unwrap_or(u32::MAX),
                });
            }
            set.listeners.insert(
                addr,
                Arc::new(Acceptor {
                    config: Arc::new(sc),
                    handshake_timeout: default_tls.handshake_timeout,
                }),
            );
        }
        // One ClientConfig per distinct (CA file, verify, SNI): locations
        // that agree share it, and with it their session cache.
        let mut clients: HashMap<(Option<PathBuf>, bool, bool), Arc<ClientConfig>> = HashMap::new();
        for (si, s) in config.servers.iter().enumerate() {
            for (li, l) in s.locations.iter().enumerate() {
                let ringway_config::Action::Proxy(pp) = &l.action else {
                    continue;
                };
                if !pp.tls {
                    continue;
                }
                let ssl = &l.proxy_ssl;
                let lkey = |k: &str| {
                    format!(
                        "servers.{}.locations.{}.{k}",
                        quote_key(&s.name),
                        quote_key(&l.key)
                    )
                };
                let host = match &pp.target {
                    ProxyTarget::Address { host, .. } => host_part(host).to_string(),
                    ProxyTarget::Upstream { name, .. } => name.clone(),
                };
                let name_text = ssl.name.clone().unwrap_or(host);
                let name = ServerName::try_from(name_text.clone()).map_err(|_| {
                    err(
                        ssl.line,
                        lkey("proxy_ssl_name"),
                        format!("`{name_text}` is not a DNS name or IP address"),
                    )
                })?;
                let ck = (ssl.trusted_certificate.clone(), ssl.verify, ssl.server_name);
                let cc = match clients.get(&ck) {
                    Some(c) => c.clone(),
                    None => {
                        let c = Arc::new(client_config(ssl).map_err(|reason| {
                            err(ssl.line, lkey("proxy_ssl_trusted_certificate"), reason)
                        })?);
                        clients.insert(ck, c.clone());
                        c
                    }
                };
                set.upstreams
                    .insert((si, li), Arc::new(Connector { config: cc, name }));
            }
        }
        Ok(set)
    }
}

/// "host" of "host:port" / "[v6]:port".
fn host_part(host_port: &str) -> &str {
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host_port.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host_port,
    }
}

fn client_config(ssl: &ringway_config::UpstreamTls) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider().clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut cc = if ssl.verify {
        let roots = match &ssl.trusted_certificate {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for c in cert::read_certs(path).map_err(|e| e.to_string())? {
                    roots
                        .add(c)
                        .map_err(|e| format!("`{}`: {e}", path.display()))?;
                }
                Arc::new(roots)
            }
            None => system_roots().clone(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider().clone())))
            .with_no_client_auth()
    };
    cc.enable_sni = ssl.server_name;
    cc.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(cc)
}

/// The system's trusted roots, read once.
fn system_roots() -> &'static Arc<RootCertStore> {
    static R: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    R.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "reading the system's trusted certificates");
        }
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!("no system trusted certificates found; https upstreams need proxy_ssl_trusted_certificate");
        }
        Arc::new(roots)
    })
}

/// `proxy_ssl_verify = false`: any certificate is accepted (nginx's
/// default), but the handshake's signatures are still checked.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Accept a client's TLS connection: the handshake, bounded by the
/// listen's `handshake_timeout`.
pub async fn accept(tcp: TcpStream, acceptor: &Acceptor) -> io::Result<ServerTls> {
    let conn = UnbufferedServerConnection::new(acceptor.config.clone()).map_err(tls_error)?;
    let mut s = TlsStream::new(tcp, conn);
    let sni = match monoio::time::timeout(acceptor.handshake_timeout, s.handshake(true)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            ))
        }
    };
    let protocol = s.protocol();
    s.set_info(TlsInfo {
        protocol,
        server_name: sni.map(String::into_boxed_str),
    });
    Ok(s)
}

/// TLS over a connected upstream socket, bounded by `timeout` (nginx
/// bounds the upstream handshake with proxy_connect_timeout too).
pub async fn connect(tcp: TcpStream, c: &Connector, timeout: Duration) -> io::Result<ClientTls> {
    let conn =
        UnbufferedClientConnection::new(c.config.clone(), c.name.clone()).map_err(tls_error)?;
    let mut s = TlsStream::new(tcp, conn);
    match monoio::time::timeout(timeout, s.handshake(false)).await {
        Ok(r) => r.map(|_| s),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "upstream TLS handshake timed out",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::host_part;

    #[test]
    fn host_of_proxy_host() {
        assert_eq!(host_part("api.internal:8443"), "api.internal");
        assert_eq!(host_part("api.internal"), "api.internal");
        assert_eq!(host_part("[::1]:8443"), "::1");
        assert_eq!(host_part("127.0.0.1"), "127.0.0.1");
    }
}
