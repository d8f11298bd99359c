//! The validated, immutable configuration the engine runs on.
//!
//! Everything here is plain data: no I/O, no runtime types. `crate::load`
//! builds it from `ringway.toml`; every value has already been checked, so
//! the engine never re-validates. Names are resolved here too: a
//! `proxy_pass` to an upstream group carries the group's index. Defaults
//! are the `DEFAULT_*` constants of `crate::defaults` (nginx's unless said
//! there).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;

/// A whole `ringway.toml`, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub runtime: Runtime,
    pub log: Log,
    pub metrics: Option<Metrics>,
    /// `[upstreams.NAME]`, in file order.
    pub upstreams: IndexMap<String, Upstream>,
    /// `[servers.NAME]`, in file order.
    pub servers: Vec<Server>,
    /// `[limit_req_zones.NAME]`, in file order (locations name them by index).
    pub limit_req_zones: Vec<LimitReqZone>,
    /// `[limit_conn_zones.NAME]`, in file order.
    pub limit_conn_zones: Vec<LimitConnZone>,
    /// Listen addresses whose connections start with a PROXY protocol
    /// header (`listen = [{ addr = "...", proxy_protocol = true }]`).
    pub proxy_protocol: Vec<SocketAddr>,
    /// `[real_ip]`.
    pub real_ip: RealIp,
    /// What is suspicious but not wrong (a static `root` that does not
    /// exist yet), each as "file:line: key: what", for `-t` and the log.
    pub warnings: Vec<String>,
}

/// `[runtime]`.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// `workers`: "auto" (one per core) or a count.
    pub workers: Workers,
    /// `pin_cores` ([`DEFAULT_PIN_CORES`](crate::defaults::DEFAULT_PIN_CORES)).
    pub pin_cores: bool,
    /// `driver` (default auto).
    pub driver: DriverChoice,
    /// `max_connections` per process
    /// ([`DEFAULT_MAX_CONNECTIONS`](crate::defaults::DEFAULT_MAX_CONNECTIONS)):
    /// accept pauses beyond it.
    pub max_connections: usize,
    /// `shutdown_timeout`
    /// ([`DEFAULT_SHUTDOWN_TIMEOUT`](crate::defaults::DEFAULT_SHUTDOWN_TIMEOUT)):
    /// how long TERM/QUIT lets tunnels drain.
    pub shutdown_timeout: Duration,
    /// `tunnel_buffer` ([`DEFAULT_TUNNEL_BUFFER`](crate::defaults::DEFAULT_TUNNEL_BUFFER)):
    /// size of the pooled per-core buffers a
    /// tunnel borrows while bytes are moving. Idle tunnels hold none.
    pub tunnel_buffer: usize,
    /// `splice` ([`DEFAULT_SPLICE`](crate::defaults::DEFAULT_SPLICE)): large
    /// transfers on a tunnel move through a
    /// pooled pipe with splice(2) instead of user-space copies.
    pub splice: bool,
    /// `tunnel_relay` (default auto): how plain tunnels move bytes.
    pub tunnel_relay: TunnelRelay,
    /// `relay_buffers` ([`DEFAULT_RELAY_BUFFERS`](crate::defaults::DEFAULT_RELAY_BUFFERS)):
    /// a power of two from 16 to 32768.
    pub relay_buffers: u16,
    /// `drain_spread` ([`DEFAULT_DRAIN_SPREAD`](crate::defaults::DEFAULT_DRAIN_SPREAD),
    /// at most `shutdown_timeout`): on a graceful stop, live tunnels are
    /// closed (WebSocket close 1001 both ways) spread evenly over this
    /// long, so clients do not all reconnect at once.
    pub drain_spread: Duration,
    /// `drain_old_tunnels_after` (default off): after a reload, tunnels
    /// still running on an older configuration this long are drained
    /// (spread over `drain_spread`).
    pub drain_old_tunnels_after: Option<Duration>,
    /// `resolver`: DNS servers asked for `resolve = true` upstream names
    /// (empty: the system's resolver, `/etc/resolv.conf`).
    pub resolver: Vec<SocketAddr>,
    /// `resolver_valid` ([`DEFAULT_RESOLVER_VALID`](crate::defaults::DEFAULT_RESOLVER_VALID)):
    /// the shortest time an answer is kept (a floor under its TTL; the
    /// re-resolve period with the system's resolver, which gives no TTL).
    pub resolver_valid: Duration,
    /// `upgrade_timeout` ([`DEFAULT_UPGRADE_TIMEOUT`](crate::defaults::DEFAULT_UPGRADE_TIMEOUT)):
    /// how long a binary upgrade waits for the new process to load its
    /// configuration, then to confirm it serves, then to take each batch
    /// of tunnels.
    pub upgrade_timeout: Duration,
}

/// `runtime.tunnel_relay`.
/// `servers.NAME.http2`: which listeners of a server speak HTTP/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Http2 {
    /// `false` (the default): HTTP/1.1 only.
    #[default]
    Off,
    /// `true`: TLS listeners offer ALPN `h2`, then `http/1.1`.
    Tls,
    /// `"h2c"`: cleartext HTTP/2 with prior knowledge (RFC 9113 §3.3) on
    /// the server's plain listeners, HTTP/1.1 beside it.
    H2c,
}

impl Http2 {
    /// Whether the server speaks HTTP/2 at all.
    pub fn enabled(self) -> bool {
        self != Http2::Off
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelRelay {
    /// The ring relay (recv into provided buffers and send, both as SQEs
    /// on the worker's ring) on io_uring workers of Linux 5.19+, the
    /// syscall relay otherwise.
    Auto,
    /// Always the syscall relay: readiness waits, then recv/send/splice.
    Syscall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    Auto,
    Count(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverChoice {
    /// io_uring when the kernel allows it, epoll otherwise.
    Auto,
    IoUring,
    Epoll,
}

/// `[log]`.
#[derive(Debug, Clone)]
pub struct Log {
    /// `level` ([`DEFAULT_LOG_LEVEL`](crate::defaults::DEFAULT_LOG_LEVEL)): a tracing filter.
    pub level: String,
    /// `access_log` (default stdout).
    pub access_log: AccessLog,
    /// `log_format`: "ringway" (the default: combined, the request time,
    /// the upstream and a tunnel's close reason and bytes each way),
    /// "combined", "json", or a string of `$variables`.
    pub format: crate::LogFormat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    Off,
    Stdout,
    File(PathBuf),
}

/// `[metrics]`.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub listen: SocketAddr,
}

/// Where an upstream server listens: an IP address and port, or a unix
/// stream socket (`unix:/path`, nginx's spelling).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UpstreamAddr {
    Inet(SocketAddr),
    Unix(std::sync::Arc<std::path::Path>),
}

impl UpstreamAddr {
    /// The IP address and port (none for a unix socket).
    pub fn inet(&self) -> Option<SocketAddr> {
        match self {
            UpstreamAddr::Inet(a) => Some(*a),
            UpstreamAddr::Unix(_) => None,
        }
    }
}

impl From<SocketAddr> for UpstreamAddr {
    fn from(a: SocketAddr) -> Self {
        UpstreamAddr::Inet(a)
    }
}

impl std::fmt::Display for UpstreamAddr {
    /// "10.0.0.1:3000", "[::1]:3000", "unix:/run/app.sock" (as nginx's
    /// `$upstream_addr`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamAddr::Inet(a) => a.fmt(f),
            UpstreamAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// `[upstreams.NAME]`.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub balance: Balance,
    /// `hash_key`, required with `balance = "hash"` and rejected otherwise.
    pub hash_key: Option<Template>,
    pub servers: Vec<UpstreamServer>,
    /// `max_fails` ([`DEFAULT_MAX_FAILS`](crate::defaults::DEFAULT_MAX_FAILS);
    /// 0 disables passive health; ignored for a group of one server).
    pub max_fails: u32,
    /// `fail_timeout` ([`DEFAULT_FAIL_TIMEOUT`](crate::defaults::DEFAULT_FAIL_TIMEOUT)).
    pub fail_timeout: Duration,
    /// `keepalive` ([`DEFAULT_UPSTREAM_KEEPALIVE`](crate::defaults::DEFAULT_UPSTREAM_KEEPALIVE)):
    /// idle pooled connections per core (plain
    /// HTTP; 0 disables pooling and sends `Connection: close`).
    pub keepalive: usize,
    /// `keepalive_timeout`
    /// ([`DEFAULT_UPSTREAM_KEEPALIVE_TIMEOUT`](crate::defaults::DEFAULT_UPSTREAM_KEEPALIVE_TIMEOUT)):
    /// a pooled connection idle longer
    /// than this is closed instead of reused.
    pub keepalive_timeout: Duration,
    /// `[upstreams.NAME.health_check]`: active checks (none by default).
    pub health_check: Option<HealthCheck>,
    /// `on_down` (default [`OnChange::Keep`]): what happens to the
    /// tunnels of a server marked down, by an active check or passively.
    pub on_down: OnChange,
    /// `on_remove` (default [`OnChange::Keep`]): what happens to the
    /// tunnels of a server a reload removed from the group.
    pub on_remove: OnChange,
    /// `slow_start` (default 0: off): a new or recovered server's weight
    /// ramps from nothing to its own over this long (round_robin,
    /// least_conn).
    pub slow_start: Duration,
    /// `rebalance` (default none): move tunnels off crowded servers.
    pub rebalance: Option<Rebalance>,
}

/// `rebalance = { max_skew, rate }`: after members are added or recover,
/// tunnels on servers above the mean share by more than `max_skew` are
/// closed with 1001, newest first, at most `rate` per second per process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rebalance {
    pub max_skew: f64,
    pub rate_per_sec: u32,
}

/// What happens to a server's live tunnels when it goes down or away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnChange {
    /// They stay until they end on their own.
    #[default]
    Keep,
    /// They are closed with WebSocket close 1001 at a frame boundary,
    /// spread over `runtime.drain_spread`.
    Close,
}

/// An upstream group's active health check.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub kind: CheckKind,
    /// The request target of an `http` or `websocket` check.
    pub uri: String,
    /// Statuses that pass an `http` check; empty: any 2xx or 3xx.
    pub expect_status: Vec<u16>,
    /// A substring the body of an `http` check's answer must hold.
    pub expect_body: Option<String>,
    pub interval: Duration,
    /// Each wait is `interval` plus up to this much, at random.
    pub jitter: Duration,
    /// The whole check (connect, exchange) must end within this.
    pub timeout: Duration,
    /// Consecutive failures that mark a server down.
    pub fails: u32,
    /// Consecutive passes that mark a down server up.
    pub passes: u32,
    /// Check this port of a TCP server instead of its own.
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// A GET of `uri`: the status (and the body) decide.
    Http,
    /// A connect within the timeout passes.
    Tcp,
    /// An upgrade to WebSocket at `uri`: a 101 with the right
    /// `Sec-WebSocket-Accept` passes; closed with 1000.
    WebSocket,
}

impl CheckKind {
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Http => "http",
            CheckKind::Tcp => "tcp",
            CheckKind::WebSocket => "websocket",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    IpHash,
    LeastConn,
    Hash,
}

/// One `{ addr = ..., weight = ..., backup = ..., down = ... }` entry.
#[derive(Debug, Clone)]
pub struct UpstreamServer {
    /// The address as written ("10.0.1.10:3000", "localhost:3000").
    pub addr_text: String,
    /// Resolved at load time, in resolver order (one for a unix socket);
    /// never empty.
    pub addrs: Vec<UpstreamAddr>,
    /// `weight` ([`DEFAULT_WEIGHT`](crate::defaults::DEFAULT_WEIGHT), at least 1).
    pub weight: u32,
    /// `backup` (default false).
    pub backup: bool,
    /// `down` (default false).
    pub down: bool,
    /// `resolve` (default false): a host name re-resolved while running;
    /// each address is a member of the group with this server's
    /// parameters. `addrs` is then empty: the members come from DNS.
    pub resolve: bool,
}

/// `[servers.NAME]`.
#[derive(Debug, Clone)]
pub struct Server {
    /// The table key (`ws` in `[servers.ws]`).
    pub name: String,
    /// `listen`: one or more addresses. "80" means "0.0.0.0:80"; port 0 asks
    /// the kernel for a free port (tests).
    pub listen: Vec<SocketAddr>,
    /// `listen` entries `"unix:/path"`: unix stream sockets (plain HTTP),
    /// bound at start.
    pub listen_unix: Vec<std::path::PathBuf>,
    /// `server_name`; empty means default server ("_" or omitted).
    pub server_names: Vec<ServerName>,
    pub tls: Option<Tls>,
    /// `http2` (default [`Http2::Off`]): `true`, `false` or `"h2c"`.
    pub http2: Http2,
    /// `http2_max_concurrent_streams`
    /// ([`DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS`](crate::defaults::DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS)):
    /// the SETTINGS_MAX_CONCURRENT_STREAMS an HTTP/2 connection of this
    /// server advertises.
    pub http2_max_concurrent_streams: u32,
    /// `http2_websocket` (default true): whether an HTTP/2 connection of
    /// this server offers WebSocket over HTTP/2 (RFC 8441,
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL) — offered only where a location
    /// can upgrade ([`Server::can_upgrade`]).
    pub http2_websocket: bool,
    /// The line of `http2`, when set (for the engine's warning about it).
    pub http2_line: Option<usize>,
    /// `locations`, in file order (order matters for regex locations).
    pub locations: Vec<Location>,
    /// `error_page` at the server level (for a request no location takes;
    /// locations inherit it).
    pub error_page: Vec<ErrorPage>,
    /// `set` and `rewrite` at the server level: run on every request
    /// before a location is searched for (nginx's server rewrite phase).
    pub rewrites: RewriteRules,
    /// `client_header_buffer_size`
    /// ([`DEFAULT_CLIENT_HEADER_BUFFER_SIZE`](crate::defaults::DEFAULT_CLIENT_HEADER_BUFFER_SIZE)):
    /// the most bytes a request
    /// head may take (request line + headers); beyond it 431 (414 when the
    /// request line alone does not fit).
    pub client_header_buffer_size: usize,
    /// `large_client_header_buffers` (NUMBER, SIZE): the head is read as
    /// nginx packs it into a 1k buffer and NUMBER buffers of SIZE (414 /
    /// 431 past them); `None`: only `client_header_buffer_size` bounds it.
    pub header_line_max: Option<(usize, usize)>,
    /// `max_headers` ([`DEFAULT_MAX_HEADERS`](crate::defaults::DEFAULT_MAX_HEADERS)): beyond it 431.
    pub max_headers: usize,
    /// `client_header_timeout`
    /// ([`DEFAULT_CLIENT_HEADER_TIMEOUT`](crate::defaults::DEFAULT_CLIENT_HEADER_TIMEOUT)):
    /// the whole head must arrive
    /// within it, else 408.
    pub client_header_timeout: Duration,
    /// `keepalive_timeout`
    /// ([`DEFAULT_KEEPALIVE_TIMEOUT`](crate::defaults::DEFAULT_KEEPALIVE_TIMEOUT)):
    /// idle time allowed between requests
    /// on a client keep-alive connection.
    pub keepalive_timeout: Duration,
    /// `server_tokens` (default false): `Server: ringway/VERSION` instead
    /// of `Server: ringway`.
    pub server_tokens: bool,
    /// `keepalive_requests` (1000, nginx's): the most HTTP/1.1 requests
    /// one client connection carries; the last is answered with
    /// `Connection: close`.
    pub keepalive_requests: u32,
    /// `send_timeout` ([`DEFAULT_SEND_TIMEOUT`](crate::defaults::DEFAULT_SEND_TIMEOUT)):
    /// the longest a write of ringway's own
    /// answer to the client may wait (nginx's send_timeout).
    pub send_timeout: Duration,
    /// `underscores_in_headers`
    /// ([`DEFAULT_UNDERSCORES_IN_HEADERS`](crate::defaults::DEFAULT_UNDERSCORES_IN_HEADERS)):
    /// client header
    /// fields with `_` in their names are not forwarded.
    pub underscores_in_headers: bool,
    /// The server's `limit_conn`, held by every connection the server
    /// takes (locations may add their own).
    pub limit_conn: Option<LimitConn>,
    /// `limit_conn_status` ([`DEFAULT_LIMIT_STATUS`](crate::defaults::DEFAULT_LIMIT_STATUS)).
    pub limit_conn_status: u16,
}

/// `[real_ip]`: the client address behind a balancer (nginx's realip
/// module and `listen ... proxy_protocol`).
#[derive(Debug, Clone, Default)]
pub struct RealIp {
    /// `set_real_ip_from`: the balancers trusted to say who the client
    /// is. A PROXY protocol listen takes connections only from these.
    pub set_real_ip_from: Vec<crate::Cidr>,
    /// `header`: where `$remote_addr` comes from (none: the connection).
    pub header: Option<RealIpHeader>,
    /// `recursive` (default false): skip trusted addresses from the right
    /// of X-Forwarded-For.
    pub recursive: bool,
    /// `proxy_protocol_timeout`
    /// ([`DEFAULT_PROXY_PROTOCOL_TIMEOUT`](crate::defaults::DEFAULT_PROXY_PROTOCOL_TIMEOUT)):
    /// the PROXY header must arrive within it.
    pub proxy_protocol_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RealIpHeader {
    /// `header = "proxy_protocol"`: the PROXY header's source address.
    ProxyProtocol,
    /// A request header, lowercase ("x-forwarded-for", "x-real-ip").
    Field(String),
}

/// `[limit_req_zones.NAME]`: nginx's `limit_req_zone`.
#[derive(Debug, Clone)]
pub struct LimitReqZone {
    pub name: String,
    /// `key`: a template; an empty rendering is not limited (nginx).
    pub key: Template,
    /// `rate` in thousandths of a request per second ("10r/s" = 10,000,
    /// "30r/m" = 500).
    pub rate_milli: u64,
    /// `size` in bytes (how many keys the zone holds).
    pub size: u64,
}

/// `[limit_conn_zones.NAME]`: nginx's `limit_conn_zone`.
#[derive(Debug, Clone)]
pub struct LimitConnZone {
    pub name: String,
    pub key: Template,
    pub size: u64,
}

/// `limit_req = { zone = "per_ip", burst = 20, nodelay = true }` (or
/// `delay = 8`) on a server or location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitReq {
    /// Index into `Config::limit_req_zones`.
    pub zone: usize,
    pub burst: u32,
    pub delay: LimitDelay,
}

/// When excess requests within `burst` are delayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitDelay {
    /// nginx's default: every excess request waits its turn.
    All,
    /// `nodelay = true`.
    None,
    /// `delay = N`: the first N excess requests pass at once.
    After(u32),
}

/// `limit_conn = { zone = "conn_ip", max = 100 }` on a server or location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitConn {
    /// Index into `Config::limit_conn_zones`.
    pub zone: usize,
    pub max: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerName {
    /// "ws.example.com" (stored lowercase).
    Exact(String),
    /// "*.example.com": stores ".example.com".
    WildcardStart(String),
    /// "mail.*": stores "mail.".
    WildcardEnd(String),
}

/// `tls = { cert = "...", key = "...", min_version = "1.2",
/// handshake_timeout = "10s" }`. The files are read by the engine (`-t`,
/// start and every reload), which names `line` in its errors.
#[derive(Debug, Clone)]
pub struct Tls {
    /// PEM: the certificate chain, leaf first (fullchain). `None` only
    /// with `reject_handshake`.
    pub cert: Option<PathBuf>,
    /// PEM: a PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key.
    pub key: Option<PathBuf>,
    /// `min_version` ([`DEFAULT_TLS_MIN_VERSION`](crate::defaults::DEFAULT_TLS_MIN_VERSION)),
    /// or the oldest of `protocols`.
    pub min_version: TlsVersion,
    /// The newest of `protocols` (1.3 unless `protocols` leaves it out).
    pub max_version: TlsVersion,
    /// `ciphers` (nginx's `ssl_ciphers`, OpenSSL syntax), as the IANA
    /// names of the TLS 1.2 suites it selects among those rustls has, in
    /// its order; `None`: all of them. TLS 1.3 suites are not affected
    /// (as with OpenSSL).
    pub ciphers: Option<Vec<String>>,
    /// `session_tickets` (default true): resumption by tickets (session
    /// IDs always work).
    pub session_tickets: bool,
    /// `session_timeout`
    /// ([`DEFAULT_TLS_SESSION_TIMEOUT`](crate::defaults::DEFAULT_TLS_SESSION_TIMEOUT)):
    /// a session ID or ticket older than this is not resumed.
    pub session_timeout: Duration,
    /// `session_cache` (default true): resumption by session ID.
    pub session_cache: bool,
    /// `reject_handshake` (default false): a handshake that picks this
    /// server (by SNI, or as the default) is refused; no certificate.
    pub reject_handshake: bool,
    /// `handshake_timeout`
    /// ([`DEFAULT_TLS_HANDSHAKE_TIMEOUT`](crate::defaults::DEFAULT_TLS_HANDSHAKE_TIMEOUT)):
    /// the whole TLS handshake must finish within it, else the connection
    /// is closed.
    pub handshake_timeout: Duration,
    /// The line of the `tls` table.
    pub line: usize,
    /// The line of `cert` (for errors and warnings about the certificate).
    pub cert_line: usize,
    /// The line of `key`.
    pub key_line: usize,
}

/// The TLS 1.2 suites rustls offers: OpenSSL name, IANA name, and the
/// parts OpenSSL's cipher-string keywords select by (authentication,
/// cipher, MAC).
pub const TLS12_SUITES: &[(&str, &str, [&str; 3])] = &[
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ["ECDSA", "AES256GCM", "SHA384"],
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ["ECDSA", "AES128GCM", "SHA256"],
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        ["ECDSA", "CHACHA20", "SHA256"],
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        ["RSA", "AES256GCM", "SHA384"],
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ["RSA", "AES128GCM", "SHA256"],
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        ["RSA", "CHACHA20", "SHA256"],
    ),
];

/// An OpenSSL cipher string (`ssl_ciphers`) read against [`TLS12_SUITES`]:
/// the IANA names it selects, in order, and a warning for each part that
/// selects nothing rustls has. An error when nothing is left.
pub fn map_ciphers(text: &str) -> Result<(Vec<String>, Vec<String>), String> {
    // Whether keyword `k` (one part of a `+` combination) selects suite s.
    fn part(k: &str, s: &(&str, &str, [&str; 3])) -> Option<bool> {
        let [auth, cipher, mac] = s.2;
        Some(match k {
            "ALL"
            | "DEFAULT"
            | "HIGH"
            | "ECDHE"
            | "EECDH"
            | "kEECDH"
            | "kECDHE"
            | "AEAD"
            | "TLSv1.2"
            | "SSLv3"
            | "COMPLEMENTOFDEFAULT" => k != "COMPLEMENTOFDEFAULT",
            "ECDSA" | "aECDSA" => auth == "ECDSA",
            "RSA" | "aRSA" => auth == "RSA",
            "AES" => cipher.starts_with("AES"),
            "AESGCM" => cipher.ends_with("GCM"),
            "AES128" => cipher == "AES128GCM",
            "AES256" => cipher == "AES256GCM",
            "CHACHA20" => cipher == "CHACHA20",
            "SHA256" => mac == "SHA256",
            "SHA384" => mac == "SHA384",
            // Real OpenSSL classes none of rustls' suites is in.
            "aNULL" | "eNULL" | "NULL" | "MD5" | "RC4" | "DES" | "3DES" | "EXPORT" | "EXP"
            | "LOW" | "MEDIUM" | "PSK" | "SRP" | "DSS" | "aDSS" | "CAMELLIA" | "SEED" | "IDEA"
            | "SHA1" | "SHA" | "kRSA" | "DHE" | "EDH" | "kDHE" | "kEDH" | "ADH" | "AECDH"
            | "CBC" | "ARIA" | "kECDH" | "aECDH" | "kPSK" | "aPSK" | "ECDH" => false,
            _ => return None,
        })
    }
    let mut chosen: Vec<&str> = Vec::new();
    let mut banned: Vec<&str> = Vec::new();
    let mut warnings = Vec::new();
    for token in text
        .split([':', ',', ' ', ';'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let (op, body) = match token.as_bytes()[0] {
            b'!' | b'-' | b'+' => (token.as_bytes()[0], &token[1..]),
            _ => (b' ', token),
        };
        if body.starts_with('@') {
            continue; // @STRENGTH, @SECLEVEL=n: ordering and levels
        }
        let matched: Option<Vec<&str>> = match TLS12_SUITES.iter().find(|s| s.0 == body) {
            Some(s) => Some(vec![s.1]),
            None => {
                let parts: Vec<&str> = body.split('+').collect();
                let mut out = Vec::new();
                let mut known = true;
                for s in TLS12_SUITES {
                    let mut all = true;
                    for p in &parts {
                        match part(p, s) {
                            Some(true) => {}
                            Some(false) => all = false,
                            None => known = false,
                        }
                    }
                    if all {
                        out.push(s.1);
                    }
                }
                known.then_some(out)
            }
        };
        match (op, matched) {
            (b'+', _) => {}
            (b'!', Some(m)) => {
                chosen.retain(|c| !m.contains(c));
                banned.extend(m);
            }
            (b'-', Some(m)) => chosen.retain(|c| !m.contains(c)),
            (_, None) if op == b'!' || op == b'-' => {}
            (_, None) => warnings.push(format!(
                "`{body}` is not a TLS 1.2 suite or class rustls offers; ignored"
            )),
            (_, Some(m)) if m.is_empty() => warnings.push(format!(
                "`{body}` selects no TLS 1.2 suite rustls offers (it has: ECDHE with ECDSA or RSA, AES-GCM or ChaCha20-Poly1305); ignored"
            )),
            (_, Some(m)) => {
                for s in m {
                    if !chosen.contains(&s) && !banned.contains(&s) {
                        chosen.push(s);
                    }
                }
            }
        }
    }
    if chosen.is_empty() {
        return Err(
            "selects none of the TLS 1.2 suites rustls offers (ECDHE-ECDSA-/ECDHE-RSA- with AES128-GCM-SHA256, AES256-GCM-SHA384 or CHACHA20-POLY1305)"
                .into(),
        );
    }
    Ok((chosen.into_iter().map(str::to_string).collect(), warnings))
}

/// A TLS protocol version ringway speaks (rustls has no 1.0 or 1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

/// How a location talks TLS to an `https://` upstream.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// `proxy_ssl_verify` ([`DEFAULT_PROXY_SSL_VERIFY`](crate::defaults::DEFAULT_PROXY_SSL_VERIFY);
    /// nginx's default is off): the upstream's certificate must chain to
    /// a trusted root and name `proxy_ssl_name`.
    pub verify: bool,
    /// `proxy_ssl_trusted_certificate`: a PEM file of trusted CAs; the
    /// system's roots when absent.
    pub trusted_certificate: Option<PathBuf>,
    /// `proxy_ssl_server_name`
    /// ([`DEFAULT_PROXY_SSL_SERVER_NAME`](crate::defaults::DEFAULT_PROXY_SSL_SERVER_NAME)):
    /// send `proxy_ssl_name` as SNI.
    pub server_name: bool,
    /// `proxy_ssl_name`: the name verified and sent; the proxy_pass host
    /// (or upstream group name) when absent, as nginx's `$proxy_host`.
    pub name: Option<String>,
    /// The line of the location (for errors about the CA file).
    pub line: usize,
}

/// `[servers.NAME.locations."KEY"]`.
#[derive(Debug, Clone)]
pub struct Location {
    /// The key as written, e.g. "= /health", "/ws/", "~* \.png$".
    pub key: String,
    pub matcher: LocationMatch,
    pub action: Action,
    /// `internal` (default false): reachable only as an `error_page` or
    /// `try_files` target; a request for it is answered 404.
    pub internal: bool,
    /// `error_page` (the location's own, else the server's).
    pub error_page: Vec<ErrorPage>,
    /// `proxy_intercept_errors` (default false): upstream answers ≥ 300
    /// with an `error_page` are replaced by it.
    pub proxy_intercept_errors: bool,
    /// `proxy_connect_timeout`
    /// ([`DEFAULT_PROXY_CONNECT_TIMEOUT`](crate::defaults::DEFAULT_PROXY_CONNECT_TIMEOUT)).
    pub proxy_connect_timeout: Duration,
    /// `proxy_read_timeout`
    /// ([`DEFAULT_PROXY_READ_TIMEOUT`](crate::defaults::DEFAULT_PROXY_READ_TIMEOUT)).
    /// On a tunnel: idle timeout with no
    /// byte in either direction.
    pub proxy_read_timeout: Duration,
    /// `proxy_send_timeout`
    /// ([`DEFAULT_PROXY_SEND_TIMEOUT`](crate::defaults::DEFAULT_PROXY_SEND_TIMEOUT)).
    pub proxy_send_timeout: Duration,
    /// `proxy_buffering`
    /// ([`DEFAULT_PROXY_BUFFERING`](crate::defaults::DEFAULT_PROXY_BUFFERING)):
    /// on, a response body that fits `proxy_buffers` is read whole before
    /// the client is written to, so the upstream connection is free at
    /// once; a larger one, or one whose upstream says `X-Accel-Buffering:
    /// no`, streams. Off, every body streams as it arrives. Tunnels always
    /// stream.
    pub proxy_buffering: bool,
    /// `proxy_buffers` ([`DEFAULT_PROXY_BUFFERS`](crate::defaults::DEFAULT_PROXY_BUFFERS)):
    /// the most response body held in memory per request when buffering.
    pub proxy_buffers: usize,
    /// `proxy_set_header`, in file order. Names keep their case as written.
    /// An empty template ("") means: do not send this header.
    pub proxy_set_header: Vec<(String, Template)>,
    /// `client_max_body_size`
    /// ([`DEFAULT_CLIENT_MAX_BODY_SIZE`](crate::defaults::DEFAULT_CLIENT_MAX_BODY_SIZE);
    /// 0 = unlimited).
    pub client_max_body_size: u64,
    /// `gzip` and its `gzip_*` keys.
    pub gzip: Gzip,
    /// `proxy_redirect`: (FROM, TO) prefixes for an upstream's `Location`
    /// and `Refresh`, in order (`default` made from `proxy_pass` and the
    /// location; empty: `off`).
    pub proxy_redirect: Vec<(String, String)>,
    /// `proxy_request_buffering` (default false: the body streams): read
    /// a request body of declared length whole, in memory, before the
    /// upstream is chosen.
    pub proxy_request_buffering: bool,
    /// `proxy_next_upstream`, `proxy_next_upstream_tries`,
    /// `proxy_next_upstream_timeout`.
    pub next_upstream: NextUpstream,
    /// `client_body_timeout` (the location's, else the server's, else
    /// [`DEFAULT_CLIENT_BODY_TIMEOUT`](crate::defaults::DEFAULT_CLIENT_BODY_TIMEOUT)):
    /// the longest wait between two reads of a request body, else 408.
    pub client_body_timeout: Duration,
    /// `add_header`, in file order: the location's own, else the
    /// server's (nginx: a level that sets any replaces its parent's).
    pub add_header: Vec<AddHeader>,
    /// `set` and `rewrite` of this location (run after the location is
    /// chosen; the server's run before the search and are not inherited).
    pub rewrites: RewriteRules,
    /// The upstream response fields not passed to the client, lowercase:
    /// nginx's defaults (`Server`, `Date`, `X-Pad`, `X-Accel-*`) plus
    /// `proxy_hide_header`, less `proxy_pass_header` (the location's, else
    /// the server's).
    pub proxy_hide: Vec<String>,
    /// `proxy_ssl_*`: used when `proxy_pass` is `https://`.
    pub proxy_ssl: UpstreamTls,
    /// `limit_req` (the server's when the location has none).
    pub limit_req: Option<LimitReq>,
    /// `limit_req_status` ([`DEFAULT_LIMIT_STATUS`](crate::defaults::DEFAULT_LIMIT_STATUS);
    /// the server's when unset here).
    pub limit_req_status: u16,
    /// `limit_conn`: held per request (a tunnel holds it for its life).
    pub limit_conn: Option<LimitConn>,
    /// `limit_conn_status` (the server's when unset here).
    pub limit_conn_status: u16,
    /// `upgrade` ([`DEFAULT_UPGRADE`](crate::defaults::DEFAULT_UPGRADE)):
    /// the protocols an upgrade request may switch to through this
    /// location (RFC 9110 §7.8 protocol names, lowercase, each `name` or
    /// `name/version`). A request offering none of them is proxied as a
    /// plain request, without its `Upgrade`.
    pub upgrade: Vec<String>,
    /// `allow` / `deny` (`access`), in order: the location's own, else
    /// the server's. Empty: everyone.
    pub access: Vec<AccessRule>,
    /// `expires` (`None`: off): the `Expires` and `Cache-Control` fields
    /// of the answers `add_header` applies to.
    pub expires: Option<Expires>,
    /// `default_type` (the location's, else the server's; `None`: unset):
    /// the `Content-Type` of a `return` body and of a static file whose
    /// extension ringway does not know.
    pub default_type: Option<String>,
    /// `etag` (the location's, else the server's; default on): static
    /// answers carry an `ETag` and honour `If-None-Match` and an entity
    /// tag in `If-Range`.
    pub etag: bool,
}

/// `expires` (nginx's headers module, "access" time only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expires {
    /// `Expires: Thu, 01 Jan 1970 00:00:01 GMT`, `Cache-Control: no-cache`.
    Epoch,
    /// `Expires: Thu, 31 Dec 2037 23:55:55 GMT`, `Cache-Control:
    /// max-age=315360000`.
    Max,
    /// Seconds from now (negative: in the past, `Cache-Control: no-cache`).
    In(i64),
}

impl Expires {
    /// `"off"` (`None`), `"epoch"`, `"max"`, or a time with nginx's units
    /// (`s`, `m`, `h`, `d`, `w`, `M` = 30 days, `y` = 365 days; a bare
    /// number is seconds), optionally negative.
    pub fn parse(s: &str) -> Result<Option<Expires>, String> {
        match s {
            "off" => return Ok(None),
            "epoch" => return Ok(Some(Expires::Epoch)),
            "max" => return Ok(Some(Expires::Max)),
            _ => {}
        }
        let (sign, t) = match s.strip_prefix('-') {
            Some(t) => (-1, t),
            None => (1, s.strip_prefix('+').unwrap_or(s)),
        };
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let unit_secs: i64 = match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "M" => 30 * 86_400,
            "y" => 365 * 86_400,
            _ => {
                return Err(format!(
                    "`{s}`: use \"off\", \"epoch\", \"max\" or a time such as \"1h\", \"30d\", \"-1\" (units s m h d w M y; `@` and `modified` times are not supported)"
                ))
            }
        };
        let n: i64 = num
            .parse()
            .ok()
            .filter(|_| !num.is_empty())
            .ok_or_else(|| format!("`{s}`: the time is not a number"))?;
        n.checked_mul(unit_secs)
            .filter(|v| *v <= 100 * 365 * 86_400)
            .map(|v| Some(Expires::In(sign * v)))
            .ok_or_else(|| format!("`{s}`: too far (at most 100 years)"))
    }

    /// The `Expires` time (seconds since the epoch) and the
    /// `Cache-Control` value for an answer made at `now`, as nginx writes
    /// them.
    pub fn fields(self, now: i64) -> (i64, String) {
        match self {
            Expires::Epoch => (1, "no-cache".into()),
            Expires::Max => (2_145_916_555, "max-age=315360000".into()),
            Expires::In(s) if s < 0 => (now + s, "no-cache".into()),
            Expires::In(s) => (now + s, format!("max-age={s}")),
        }
    }
}

impl std::fmt::Display for Expires {
    /// As `expires` takes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expires::Epoch => f.write_str("epoch"),
            Expires::Max => f.write_str("max"),
            Expires::In(s) => write!(f, "{s}s"),
        }
    }
}

/// One rule of `access` (nginx's `allow` / `deny`): who it is about
/// (`None`: `all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRule {
    pub allow: bool,
    pub from: Option<crate::Cidr>,
}

impl std::fmt::Display for AccessRule {
    /// As nginx writes the line (and `access` takes it).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.allow { "allow" } else { "deny" };
        match &self.from {
            Some(c) => write!(f, "{verb} {c}"),
            None => write!(f, "{verb} all"),
        }
    }
}

impl AccessRule {
    /// `allow ADDRESS|CIDR|all` or `deny ...`, as nginx writes the lines
    /// (without the `;`). The error says what is wrong.
    pub fn parse(s: &str) -> Result<AccessRule, String> {
        let mut words = s.split_whitespace();
        let (Some(verb), Some(who), None) = (words.next(), words.next(), words.next()) else {
            return Err(
                "write `allow WHO` or `deny WHO` (WHO: an address, a CIDR or `all`)".into(),
            );
        };
        let allow = match verb {
            "allow" => true,
            "deny" => false,
            other => return Err(format!("`{other}`: a rule starts with `allow` or `deny`")),
        };
        let from = match who {
            "all" => None,
            c => Some(crate::Cidr::parse(c)?),
        };
        Ok(AccessRule { allow, from })
    }

    /// Whether `ip` may pass `rules` (the first rule that matches decides,
    /// none matching lets it pass: nginx's access phase).
    pub fn allows(rules: &[AccessRule], ip: std::net::IpAddr) -> bool {
        rules
            .iter()
            .find(|r| r.from.is_none_or(|c| c.contains(ip)))
            .is_none_or(|r| r.allow)
    }
}

impl Server {
    /// Whether an HTTP/2 connection of this server offers WebSocket over
    /// HTTP/2 (SETTINGS_ENABLE_CONNECT_PROTOCOL, RFC 8441): `http2_websocket`
    /// is on and a location can upgrade (it proxies, with a non-empty
    /// `upgrade` list). A browser that sees the setting sends its
    /// WebSockets as extended CONNECTs and does not fall back to HTTP/1.1.
    pub fn offers_websocket_over_http2(&self) -> bool {
        self.http2_websocket
            && self
                .locations
                .iter()
                .any(|l| matches!(l.action, Action::Proxy(_)) && !l.upgrade.is_empty())
    }
}

#[derive(Debug, Clone)]
pub enum LocationMatch {
    /// "= /x"
    Exact(String),
    /// "/x/" (no_regex = false) or "^~ /x/" (no_regex = true).
    Prefix { path: String, no_regex: bool },
    /// "~ re" or "~* re" (case_insensitive).
    Regex {
        regex: regex::Regex,
        case_insensitive: bool,
    },
    /// "@name": never matched by a URI; reached only as a `try_files`
    /// fallback (nginx's named location). Stores the name without `@`.
    Named(String),
}

#[derive(Debug, Clone)]
pub enum Action {
    /// `return = { status = 200, body = "OK" }` or
    /// `return = { status = 301, location = "https://$host$request_uri" }`.
    Return {
        status: u16,
        body: Option<Template>,
        location: Option<Template>,
    },
    /// `proxy_pass = "http://..."`.
    Proxy(ProxyPass),
    /// `root` or `alias`, with optional `index` and `try_files`.
    Static(StaticFiles),
}

#[derive(Debug, Clone)]
pub struct ProxyPass {
    /// As written.
    pub text: String,
    /// `https://`: TLS to the upstream (see `Location::proxy_ssl`).
    pub tls: bool,
    pub target: ProxyTarget,
    /// The URI part after host[:port], if any ("/" in "http://b:9000/").
    /// When present it replaces the matched location prefix.
    pub uri: Option<String>,
    /// The URI part when it has `$variables`: rendered per request, it is
    /// the whole upstream URI (nginx: a `proxy_pass` with variables
    /// passes its URI as rendered).
    pub uri_vars: Option<Template>,
}

#[derive(Debug, Clone)]
pub enum ProxyTarget {
    /// A literal host:port, resolved at load time.
    Address {
        /// "host:port" as `$proxy_host` (port omitted when it is the
        /// scheme's, as nginx).
        host: String,
        addrs: Vec<UpstreamAddr>,
    },
    /// An `[upstreams.NAME]` table: its name (`$proxy_host`), its index in
    /// `Config::upstreams`, and its `hash_key` (for `balance = "hash"`).
    Upstream {
        name: String,
        index: usize,
        hash_key: Option<Template>,
    },
}

#[derive(Debug, Clone)]
pub struct StaticFiles {
    /// `root` or `alias`; with variables, the fixed directory they start
    /// with (nothing outside it is served).
    pub root: StaticRoot,
    /// `root`/`alias` with `$variables` (captures, `set`, named
    /// captures): rendered per request. In a regex location an `alias`
    /// with variables names the file itself, as nginx's.
    pub root_vars: Option<Template>,
    /// `index` ([`DEFAULT_INDEX`](crate::defaults::DEFAULT_INDEX)).
    pub index: Vec<String>,
    /// `try_files`: each a template; the last is a fallback URI or "=404".
    pub try_files: Vec<Template>,
}

#[derive(Debug, Clone)]
pub enum StaticRoot {
    /// `root`: the URI is appended to this directory.
    Root(PathBuf),
    /// `alias`: the matched location prefix is replaced by this directory.
    Alias(PathBuf),
}

/// `proxy_next_upstream` with `_tries` and `_timeout`: when a request
/// goes on to the next server of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextUpstream {
    /// `error`: a failed connect, or an upstream that failed while the
    /// request was sent or before its response head came.
    pub error: bool,
    /// `timeout`: the same, by a timeout.
    pub timeout: bool,
    /// `invalid_header`: a response head ringway cannot take.
    pub invalid_header: bool,
    /// `http_500`, `http_502`, `http_503`, `http_504`, `http_403`,
    /// `http_404`, `http_429`: an answer with this status.
    pub statuses: Vec<u16>,
    /// `non_idempotent`: POST, LOCK and PATCH may go on too once sent.
    pub non_idempotent: bool,
    /// `proxy_next_upstream_tries` (0: no limit): the most servers tried.
    pub tries: u32,
    /// `proxy_next_upstream_timeout` (zero: no limit): no next server
    /// after this long.
    pub within: Duration,
}

impl NextUpstream {
    /// nginx's default: `error timeout`.
    pub fn nginx_default() -> Self {
        NextUpstream {
            error: true,
            timeout: true,
            invalid_header: false,
            statuses: Vec::new(),
            non_idempotent: false,
            tries: 0,
            within: Duration::ZERO,
        }
    }

    /// `off`.
    pub fn off() -> Self {
        NextUpstream {
            error: false,
            timeout: false,
            ..Self::nginx_default()
        }
    }

    /// Parse nginx's tokens.
    pub fn parse_conditions(tokens: &[String]) -> Result<NextUpstream, String> {
        let mut n = NextUpstream::off();
        if tokens.len() == 1 && tokens[0] == "off" {
            return Ok(n);
        }
        for t in tokens {
            match t.as_str() {
                "error" => n.error = true,
                "timeout" => n.timeout = true,
                "invalid_header" => n.invalid_header = true,
                "non_idempotent" => n.non_idempotent = true,
                "off" => return Err("`off` stands alone".into()),
                other => match other.strip_prefix("http_").map(str::parse::<u16>) {
                    Some(Ok(c @ (500 | 502 | 503 | 504 | 403 | 404 | 429))) => {
                        if !n.statuses.contains(&c) {
                            n.statuses.push(c)
                        }
                    }
                    _ => {
                        return Err(format!(
                            "`{other}`: the conditions are error, timeout, invalid_header, http_500, http_502, http_503, http_504, http_403, http_404, http_429, non_idempotent, or off"
                        ))
                    }
                },
            }
        }
        Ok(n)
    }

    /// Whether another server may be tried after `tried` servers and
    /// `elapsed` time (`proxy_next_upstream_tries`, `_timeout`).
    pub fn within_limits(&self, tried: usize, elapsed: Duration) -> bool {
        (self.tries == 0 || tried < self.tries as usize)
            && (self.within.is_zero() || elapsed < self.within)
    }

    /// The tokens, as nginx writes them.
    pub fn conditions(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (on, name) in [
            (self.error, "error"),
            (self.timeout, "timeout"),
            (self.invalid_header, "invalid_header"),
        ] {
            if on {
                out.push(name.to_string());
            }
        }
        out.extend(self.statuses.iter().map(|c| format!("http_{c}")));
        if self.non_idempotent {
            out.push("non_idempotent".into());
        }
        if out.is_empty() {
            out.push("off".into());
        }
        out
    }
}

/// nginx's gzip module settings of a location (each key inherited from
/// the server on its own).
#[derive(Debug, Clone)]
pub struct Gzip {
    /// `gzip` (default false).
    pub on: bool,
    /// `gzip_types` (default `["text/html"]`, always included; `"*"`: any).
    pub types: Vec<String>,
    /// `gzip_min_length` (default 20): a response that declares a shorter
    /// length is sent as is.
    pub min_length: u64,
    /// `gzip_comp_level` (1–9, default 1).
    pub level: u32,
    /// `gzip_vary` (default false): `Vary: Accept-Encoding`.
    pub vary: bool,
    /// `gzip_proxied` (default `["off"]`): for a request that came through
    /// a proxy (`Via`), which responses are compressed.
    pub proxied: Vec<String>,
    /// `gzip_disable`: User-Agent regexes (case-insensitive) that get no
    /// gzip.
    pub disable: Vec<regex::Regex>,
    /// `gzip_static` (default false): serve `FILE.gz` when it exists and
    /// the client takes gzip.
    pub static_files: bool,
}

impl Gzip {
    pub fn nginx_default() -> Gzip {
        Gzip {
            on: false,
            types: vec!["text/html".into()],
            min_length: 20,
            level: 1,
            vary: false,
            proxied: vec!["off".into()],
            disable: Vec::new(),
            static_files: false,
        }
    }
}

/// One `error_page` line: `CODE... [=[CODE]] TARGET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPage {
    pub codes: Vec<u16>,
    pub status: ErrorStatus,
    pub target: ErrorTarget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStatus {
    /// No `=`: the original status.
    Keep,
    /// `=CODE`.
    Set(u16),
    /// `=` alone: the target's own status.
    Target,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorTarget {
    /// A URI (with an optional `?query`) routed again in the server.
    Uri(String),
    /// `@name`: a named location (stored without `@`).
    Named(String),
    /// `http://…` / `https://…`: a redirect (302, or the `=CODE` given).
    Redirect(String),
}

impl ErrorPage {
    /// The line as written (nginx's syntax).
    pub fn to_line(&self) -> String {
        let mut out: Vec<String> = self.codes.iter().map(u16::to_string).collect();
        match self.status {
            ErrorStatus::Keep => {}
            ErrorStatus::Set(c) => out.push(format!("={c}")),
            ErrorStatus::Target => out.push("=".into()),
        }
        out.push(match &self.target {
            ErrorTarget::Uri(u) | ErrorTarget::Redirect(u) => u.clone(),
            ErrorTarget::Named(n) => format!("@{n}"),
        });
        out.join(" ")
    }

    /// Parse one line; the error says what is wrong.
    pub fn parse(line: &str) -> Result<ErrorPage, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((target, rest)) = words.split_last() else {
            return Err("empty: write `CODE... [=[CODE]] URI`".into());
        };
        let mut codes = Vec::new();
        let mut status = ErrorStatus::Keep;
        for (i, w) in rest.iter().enumerate() {
            if let Some(c) = w.strip_prefix('=') {
                if i + 1 != rest.len() {
                    return Err(format!("`{w}` must come just before the target"));
                }
                status = if c.is_empty() {
                    ErrorStatus::Target
                } else {
                    match c.parse::<u16>() {
                        Ok(n) if (200..=599).contains(&n) => ErrorStatus::Set(n),
                        _ => return Err(format!("`{w}`: the answer's status must be 200 to 599")),
                    }
                };
                continue;
            }
            match w.parse::<u16>() {
                Ok(n) if (300..=599).contains(&n) => codes.push(n),
                _ => return Err(format!("`{w}` is not a status from 300 to 599")),
            }
        }
        if codes.is_empty() {
            return Err("no status: write `CODE... [=[CODE]] URI`".into());
        }
        let target = if let Some(name) = target.strip_prefix('@') {
            ErrorTarget::Named(name.to_string())
        } else if target.starts_with("http://") || target.starts_with("https://") {
            ErrorTarget::Redirect(target.to_string())
        } else if target.starts_with('/') {
            ErrorTarget::Uri(target.to_string())
        } else {
            return Err(format!(
                "`{target}`: the target is a URI starting with `/`, `@name` or an http(s) URL"
            ));
        };
        if target_has_control(target_text(&target)) {
            return Err("the target cannot hold spaces or control characters".into());
        }
        Ok(ErrorPage {
            codes,
            status,
            target,
        })
    }
}

fn target_text(t: &ErrorTarget) -> &str {
    match t {
        ErrorTarget::Uri(s) | ErrorTarget::Redirect(s) | ErrorTarget::Named(s) => s,
    }
}

fn target_has_control(s: &str) -> bool {
    s.bytes().any(|b| b <= 0x20 || b == 0x7f)
}

/// One `add_header` field.
#[derive(Debug, Clone)]
pub struct AddHeader {
    pub name: String,
    pub value: Template,
    /// `always`: on every status, not only nginx's list
    /// (200, 201, 204, 206, 301, 302, 303, 304, 307, 308).
    pub always: bool,
}

/// The upstream response fields nginx's proxy module hides unless
/// `proxy_pass_header` names them (lowercase; `x-accel-` is a prefix).
pub const DEFAULT_PROXY_HIDE: &[&str] = &[
    "server",
    "date",
    "x-pad",
    "x-accel-expires",
    "x-accel-redirect",
    "x-accel-limit-rate",
    "x-accel-buffering",
    "x-accel-charset",
];

/// A string with `$variables`, parsed once at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<Part>,
}

impl Template {
    /// The text of a template without variables.
    pub fn literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Literal(s)] => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Var(Var),
}

/// The variables CONFIG.md lists, plus `$connection_upgrade` and
/// `$request_method` for configurations carried over from nginx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    Host,
    RemoteAddr,
    RemotePort,
    ServerAddr,
    ServerPort,
    ServerName,
    Scheme,
    RequestUri,
    Uri,
    Args,
    RequestMethod,
    ProxyHost,
    ProxyAddXForwardedFor,
    ConnectionUpgrade,
    /// "on" on a TLS connection, else empty.
    Https,
    /// "TLSv1.3" / "TLSv1.2" on a TLS connection, else empty.
    SslProtocol,
    /// The SNI name the client sent, else empty.
    SslServerName,
    /// The client address as 4 or 16 raw bytes: limit zone keys only
    /// (never a header value).
    BinaryRemoteAddr,
    /// The address a PROXY protocol header gave, else empty.
    ProxyProtocolAddr,
    /// The connection's own peer address (before real-IP substitution).
    RealIpRemoteAddr,
    /// `$http_x_token`: stores the header name "x-token" (lowercase, `_` → `-`).
    Http(String),
    /// `$cookie_session`: stores "session".
    Cookie(String),
    /// `$arg_room`: stores "room".
    Arg(String),
    /// `$is_args`: "?" when the request has a query, else "".
    IsArgs,
    /// `$1`..`$9`: a capture of the last regex that matched — the regex
    /// location's, or a `rewrite`'s ("" when there is none).
    Capture(u8),
    /// A variable the configuration makes: a `set` name or a named
    /// capture (`(?<room>...)`) of a location or `rewrite` regex; "" until
    /// one gives it a value.
    Named(String),
}

/// `rewrite REGEX REPLACEMENT [FLAG]` (nginx's rewrite module).
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// The line as written (for `-t` output and errors).
    pub line: String,
    /// Searched in the normalised, decoded path (`$uri`).
    pub regex: regex::Regex,
    /// The new URI (its `?` part the new query), with `$1`..`$9` of
    /// `regex` and any variable.
    pub to: Template,
    pub flag: RewriteFlag,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteFlag {
    /// No flag: the URI changes and the next `rewrite` line is tried; a
    /// location whose lines changed it is searched for again.
    Next,
    /// `last`: stop this level's lines, search the location again.
    Last,
    /// `break`: stop this level's lines, stay in this location.
    Break,
    /// `redirect` (302), or no flag on a replacement starting with
    /// `http://`, `https://` or `$scheme`.
    Redirect,
    /// `permanent` (301).
    Permanent,
}

/// `set $name VALUE`.
#[derive(Debug, Clone)]
pub struct SetVar {
    pub name: String,
    pub value: Template,
}

/// A level's rewrite-module lines: its `set` lines, then its `rewrite`
/// lines, each in file order.
#[derive(Debug, Clone, Default)]
pub struct RewriteRules {
    pub set: Vec<SetVar>,
    pub rewrite: Vec<Rewrite>,
}

impl RewriteRules {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.rewrite.is_empty()
    }
}
