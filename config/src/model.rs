//! The validated, immutable configuration the engine runs on.
//!
//! Everything here is plain data: no I/O, no runtime types. `crate::load`
//! builds it from `ringway.toml`; every value has already been checked, so
//! the engine never re-validates. Defaults follow nginx unless CONFIG.md says
//! otherwise.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;

/// A whole `ringway.toml`, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from (for logs and reload).
    pub source: PathBuf,
    pub runtime: Runtime,
    pub log: Log,
    pub metrics: Option<Metrics>,
    /// `[upstreams.NAME]`, in file order.
    pub upstreams: IndexMap<String, Upstream>,
    /// `[servers.NAME]`, in file order.
    pub servers: Vec<Server>,
    /// What is suspicious but not wrong (a static `root` that does not
    /// exist yet), each as "file:line: key: what", for `-t` and the log.
    pub warnings: Vec<String>,
}

/// `[runtime]`.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// `workers`: "auto" (one per core) or a count.
    pub workers: Workers,
    /// `pin_cores` (default true).
    pub pin_cores: bool,
    /// `driver` (default auto).
    pub driver: DriverChoice,
    /// `max_connections` per process (default 200000): accept pauses beyond it.
    pub max_connections: usize,
    /// `shutdown_timeout` (default "30s"): how long TERM/QUIT lets tunnels drain.
    pub shutdown_timeout: Duration,
    /// `tunnel_buffer` (default "16k"): size of the pooled per-core buffers a
    /// tunnel borrows while bytes are moving. Idle tunnels hold none.
    pub tunnel_buffer: usize,
    /// `splice` (default true): large transfers on a tunnel move through a
    /// pooled pipe with splice(2) instead of user-space copies.
    pub splice: bool,
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
    /// `level` (default "info"): a tracing filter.
    pub level: String,
    /// `access_log` (default stdout).
    pub access_log: AccessLog,
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

/// `[upstreams.NAME]`.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub balance: Balance,
    /// `hash_key`, required with `balance = "hash"` and rejected otherwise.
    pub hash_key: Option<Template>,
    pub servers: Vec<UpstreamServer>,
    /// `max_fails` (default 1; 0 disables passive health).
    pub max_fails: u32,
    /// `fail_timeout` (default "10s").
    pub fail_timeout: Duration,
    /// `keepalive` (default 32): idle pooled connections per core (plain
    /// HTTP; 0 disables pooling and sends `Connection: close`).
    pub keepalive: usize,
    /// `keepalive_timeout` (default "60s"): a pooled connection idle longer
    /// than this is closed instead of reused.
    pub keepalive_timeout: Duration,
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
    /// Resolved at load time, in resolver order; never empty.
    pub addrs: Vec<SocketAddr>,
    /// `weight` (default 1, at least 1).
    pub weight: u32,
    /// `backup` (default false).
    pub backup: bool,
    /// `down` (default false).
    pub down: bool,
}

/// `[servers.NAME]`.
#[derive(Debug, Clone)]
pub struct Server {
    /// The table key (`ws` in `[servers.ws]`).
    pub name: String,
    /// `listen`: one or more addresses. "80" means "0.0.0.0:80"; port 0 asks
    /// the kernel for a free port (tests).
    pub listen: Vec<SocketAddr>,
    /// `server_name`; empty means default server ("_" or omitted).
    pub server_names: Vec<ServerName>,
    pub tls: Option<Tls>,
    /// `http2` (default false).
    pub http2: bool,
    /// `locations`, in file order (order matters for regex locations).
    pub locations: Vec<Location>,
    /// `client_header_buffer_size` (default "16k"): the most bytes a request
    /// head may take (request line + headers); beyond it 431 (414 when the
    /// request line alone does not fit).
    pub client_header_buffer_size: usize,
    /// `max_headers` (default 100): beyond it 431.
    pub max_headers: usize,
    /// `client_header_timeout` (default "60s"): the whole head must arrive
    /// within it, else 408.
    pub client_header_timeout: Duration,
    /// `keepalive_timeout` (default "75s"): idle time allowed between requests
    /// on a client keep-alive connection.
    pub keepalive_timeout: Duration,
    /// `send_timeout` (default "60s"): the longest a write of ringway's own
    /// answer to the client may wait (nginx's send_timeout).
    pub send_timeout: Duration,
    /// `underscores_in_headers` (default false, as nginx): client header
    /// fields with `_` in their names are not forwarded.
    pub underscores_in_headers: bool,
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

/// `tls = { cert = "...", key = "..." }`.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[servers.NAME.locations."KEY"]`.
#[derive(Debug, Clone)]
pub struct Location {
    /// The key as written, e.g. "= /health", "/ws/", "~* \.png$".
    pub key: String,
    pub matcher: LocationMatch,
    pub action: Action,
    /// `proxy_connect_timeout` (default "60s").
    pub proxy_connect_timeout: Duration,
    /// `proxy_read_timeout` (default "60s"). On a tunnel: idle timeout with no
    /// byte in either direction.
    pub proxy_read_timeout: Duration,
    /// `proxy_send_timeout` (default "60s").
    pub proxy_send_timeout: Duration,
    /// `proxy_buffering` (default true, as nginx; ringway streams either way
    /// on tunnels).
    pub proxy_buffering: bool,
    /// `proxy_set_header`, in file order. Names keep their case as written.
    /// An empty template ("") means: do not send this header.
    pub proxy_set_header: Vec<(String, Template)>,
    /// `client_max_body_size` (default "1m"; 0 = unlimited).
    pub client_max_body_size: u64,
    /// `add_header`, in file order, added to responses ringway sends.
    pub add_header: Vec<(String, Template)>,
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
    pub target: ProxyTarget,
    /// The URI part after host[:port], if any ("/" in "http://b:9000/").
    /// When present it replaces the matched location prefix.
    pub uri: Option<String>,
}

#[derive(Debug, Clone)]
pub enum ProxyTarget {
    /// A literal host:port, resolved at load time.
    Address {
        /// "host:port" as `$proxy_host` (port omitted when 80, as nginx).
        host: String,
        addrs: Vec<SocketAddr>,
    },
    /// The name of an `[upstreams.NAME]` table (checked to exist).
    Upstream(String),
}

#[derive(Debug, Clone)]
pub struct StaticFiles {
    pub root: StaticRoot,
    /// `index` (default ["index.html"]).
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

/// A string with `$variables`, parsed once at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<Part>,
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
    /// `$http_x_token`: stores the header name "x-token" (lowercase, `_` → `-`).
    Http(String),
    /// `$cookie_session`: stores "session".
    Cookie(String),
    /// `$arg_room`: stores "room".
    Arg(String),
}
