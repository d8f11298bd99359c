//! Every default of `ringway.toml`, named once: validation applies these
//! and the field docs in `model` point at them. nginx's value unless the
//! comment says otherwise.

use std::time::Duration;

/// `runtime.pin_cores`.
pub const DEFAULT_PIN_CORES: bool = true;
/// `runtime.max_connections` (per process).
pub const DEFAULT_MAX_CONNECTIONS: u64 = 200_000;
/// `runtime.shutdown_timeout`: how long a graceful stop lets tunnels drain.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// `runtime.tunnel_buffer`: the per-core relay buffers' size.
pub const DEFAULT_TUNNEL_BUFFER: u64 = 16 * 1024;
/// `runtime.splice`.
pub const DEFAULT_SPLICE: bool = true;
/// `runtime.relay_buffers`: buffers (of `tunnel_buffer` bytes) in a
/// worker's provided buffer ring for the ring relay; memory is touched
/// only as bytes arrive.
pub const DEFAULT_RELAY_BUFFERS: u64 = 256;

/// `runtime.drain_spread` (ringway's): tunnels close over this long on a
/// graceful stop (capped by shutdown_timeout).
pub const DEFAULT_DRAIN_SPREAD: Duration = Duration::from_secs(10);

/// `limit_req_status` / `limit_conn_status`.
pub const DEFAULT_LIMIT_STATUS: u64 = 503;
/// `limit_*_zones.*.size` (nginx's examples: 10m).
pub const DEFAULT_LIMIT_ZONE_SIZE: u64 = 10 << 20;

/// `real_ip.proxy_protocol_timeout` (nginx bounds it with
/// client_header_timeout, 60s; a balancer writes it at once).
pub const DEFAULT_PROXY_PROTOCOL_TIMEOUT: Duration = Duration::from_secs(5);

/// `log.level` (a tracing filter).
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// `upstreams.*.max_fails` (0 disables passive health).
pub const DEFAULT_MAX_FAILS: u64 = 1;
/// `upstreams.*.fail_timeout`.
pub const DEFAULT_FAIL_TIMEOUT: Duration = Duration::from_secs(10);
/// `upstreams.*.keepalive`: idle pooled connections per core (nginx has no
/// pool unless `keepalive` is set; ringway pools by default).
pub const DEFAULT_UPSTREAM_KEEPALIVE: u64 = 32;
/// `upstreams.*.keepalive_timeout`: how long a pooled connection may idle.
pub const DEFAULT_UPSTREAM_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// `upstreams.*.health_check.interval` (nginx Plus `health_check interval=5`).
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// `upstreams.*.health_check.timeout`.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// `upstreams.*.health_check.fails` (nginx Plus `fails=1`).
pub const DEFAULT_CHECK_FAILS: u64 = 1;
/// `upstreams.*.health_check.passes` (nginx Plus `passes=1`).
pub const DEFAULT_CHECK_PASSES: u64 = 1;
/// `runtime.resolver_valid`: answers are kept at least this long.
pub const DEFAULT_RESOLVER_VALID: Duration = Duration::from_secs(10);
/// `runtime.upgrade_timeout` (ringway's): how long a binary upgrade waits
/// for the new process at each step.
pub const DEFAULT_UPGRADE_TIMEOUT: Duration = Duration::from_secs(30);
/// `upstreams.*.servers[].weight`.
pub const DEFAULT_WEIGHT: u64 = 1;

/// `servers.*.client_header_buffer_size`: the most bytes a request head may
/// take (nginx: 1k, growing to 4 × 8k; ringway has one buffer).
pub const DEFAULT_CLIENT_HEADER_BUFFER_SIZE: u64 = 16 * 1024;
/// `servers.*.max_headers`.
pub const DEFAULT_MAX_HEADERS: u64 = 100;
/// `servers.*.client_header_timeout` (also the wait between two reads of a
/// request body, nginx's `client_body_timeout`).
pub const DEFAULT_CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// `servers.*.keepalive_timeout`: idle time between two requests.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);
/// `servers.*.send_timeout`.
/// nginx's `client_body_timeout` default.
pub const DEFAULT_CLIENT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// `servers.*.underscores_in_headers`.
pub const DEFAULT_UNDERSCORES_IN_HEADERS: bool = false;

/// `locations.*.proxy_connect_timeout`.
pub const DEFAULT_PROXY_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// `locations.*.proxy_read_timeout` (on a tunnel: the idle timeout).
pub const DEFAULT_PROXY_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// `locations.*.proxy_send_timeout`.
pub const DEFAULT_PROXY_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// `locations.*.proxy_buffering`. nginx's default is on; ringway streams
/// by default, so Server-Sent Events and long polls need no setting.
pub const DEFAULT_PROXY_BUFFERING: bool = false;
/// `locations.*.proxy_buffers`: the most response body held in memory per
/// request when buffering (nginx: `proxy_buffers 8 8k`).
pub const DEFAULT_PROXY_BUFFERS: u64 = 64 * 1024;
/// `locations.*.client_max_body_size` (0: no limit).
pub const DEFAULT_CLIENT_MAX_BODY_SIZE: u64 = 1 << 20;
/// `locations.*.upgrade` (ringway's; nginx forwards whatever
/// `proxy_set_header Upgrade` says): the protocols a location lets an
/// upgrade switch to. `h2c` is never among the defaults: a tunnel to an
/// h2c backend would carry requests the proxy never routes.
pub const DEFAULT_UPGRADE: &[&str] = &["websocket"];
/// `locations.*.index`.
pub const DEFAULT_INDEX: &str = "index.html";

/// `servers.*.tls.min_version` (nginx 1.22: TLSv1.2 and TLSv1.3).
pub const DEFAULT_TLS_MIN_VERSION: crate::TlsVersion = crate::TlsVersion::V1_2;
/// `servers.*.tls.handshake_timeout` (ringway's: a slow TLS client must
/// not hold a connection slot; nginx bounds it with client_header_timeout,
/// 60s).
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// `tls.session_timeout` (nginx's `ssl_session_timeout` default).
pub const DEFAULT_TLS_SESSION_TIMEOUT: Duration = Duration::from_secs(300);
/// `proxy_ssl_verify` (ringway's; nginx's is off).
pub const DEFAULT_PROXY_SSL_VERIFY: bool = true;
/// `proxy_ssl_server_name` (ringway's; nginx's is off): the name verified
/// is the name sent, as every browser does.
pub const DEFAULT_PROXY_SSL_SERVER_NAME: bool = true;

/// `servers.*.http2_max_concurrent_streams` (nginx's
/// `http2_max_concurrent_streams`).
pub const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 128;
