//! The file as written: serde structs with unknown keys rejected. Values
//! that validation may reject are kept as spanned TOML values so errors can
//! name their line.

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

pub type V = Spanned<toml::Value>;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    #[serde(default)]
    pub runtime: RawRuntime,
    #[serde(default)]
    pub log: RawLog,
    pub metrics: Option<RawMetrics>,
    #[serde(default)]
    pub upstreams: IndexMap<String, Spanned<RawUpstream>>,
    #[serde(default)]
    pub servers: IndexMap<String, Spanned<RawServer>>,
    #[serde(default)]
    pub limit_req_zones: IndexMap<String, Spanned<RawLimitReqZone>>,
    #[serde(default)]
    pub limit_conn_zones: IndexMap<String, Spanned<RawLimitConnZone>>,
    pub real_ip: Option<Spanned<RawRealIp>>,
}

/// `[limit_req_zones.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimitReqZone {
    pub key: Option<V>,
    pub rate: Option<V>,
    pub size: Option<V>,
}

/// `[limit_conn_zones.NAME]`: no rate (it counts connections).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimitConnZone {
    pub key: Option<V>,
    pub size: Option<V>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRealIp {
    pub set_real_ip_from: Option<V>,
    pub header: Option<V>,
    pub recursive: Option<V>,
    pub proxy_protocol_timeout: Option<V>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    pub workers: Option<V>,
    pub pin_cores: Option<V>,
    pub driver: Option<V>,
    pub max_connections: Option<V>,
    pub shutdown_timeout: Option<V>,
    pub tunnel_buffer: Option<V>,
    pub splice: Option<V>,
    pub tunnel_relay: Option<V>,
    pub relay_buffers: Option<V>,
    pub drain_spread: Option<V>,
    pub drain_old_tunnels_after: Option<V>,
    pub resolver: Option<V>,
    pub resolver_valid: Option<V>,
    pub upgrade_timeout: Option<V>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub level: Option<V>,
    pub access_log: Option<V>,
    pub log_format: Option<V>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: Option<V>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub balance: Option<V>,
    pub hash_key: Option<V>,
    pub servers: Option<Spanned<Vec<Spanned<RawUpstreamServer>>>>,
    pub max_fails: Option<V>,
    pub fail_timeout: Option<V>,
    pub keepalive: Option<V>,
    pub keepalive_timeout: Option<V>,
    pub health_check: Option<toml::Spanned<RawHealthCheck>>,
    pub on_down: Option<V>,
    pub on_remove: Option<V>,
    pub slow_start: Option<V>,
    pub rebalance: Option<toml::Spanned<RawRebalance>>,
}

/// `rebalance = { max_skew = 0.2, rate = "50/s" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRebalance {
    pub max_skew: Option<V>,
    pub rate: Option<V>,
}

/// `[upstreams.NAME.health_check]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    #[serde(rename = "type")]
    pub kind: Option<V>,
    pub uri: Option<V>,
    pub expect_status: Option<V>,
    pub expect_body: Option<V>,
    pub interval: Option<V>,
    pub jitter: Option<V>,
    pub timeout: Option<V>,
    pub fails: Option<V>,
    pub passes: Option<V>,
    pub port: Option<V>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamServer {
    pub addr: Option<V>,
    pub weight: Option<V>,
    pub backup: Option<V>,
    pub down: Option<V>,
    pub resolve: Option<V>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<V>,
    pub server_name: Option<V>,
    pub tls: Option<Spanned<RawTls>>,
    pub http2: Option<V>,
    pub http2_max_concurrent_streams: Option<V>,
    pub http2_websocket: Option<V>,
    #[serde(default)]
    pub locations: IndexMap<String, Spanned<RawLocation>>,
    pub client_header_buffer_size: Option<V>,
    pub large_client_header_buffers: Option<V>,
    pub max_headers: Option<V>,
    pub client_header_timeout: Option<V>,
    pub client_body_timeout: Option<V>,
    pub keepalive_timeout: Option<V>,
    pub keepalive_requests: Option<V>,
    pub send_timeout: Option<V>,
    pub underscores_in_headers: Option<V>,
    pub limit_req: Option<V>,
    pub limit_req_status: Option<V>,
    pub limit_conn: Option<V>,
    pub limit_conn_status: Option<V>,
    pub access: Option<V>,
    pub default_type: Option<V>,
    pub etag: Option<V>,
    pub server_tokens: Option<V>,
    pub add_header: Option<IndexMap<String, V>>,
    pub proxy_hide_header: Option<V>,
    pub proxy_pass_header: Option<V>,
    pub error_page: Option<V>,
    pub proxy_intercept_errors: Option<V>,
    pub set: Option<V>,
    pub rewrite: Option<V>,
    pub gzip: Option<V>,
    pub gzip_types: Option<V>,
    pub gzip_min_length: Option<V>,
    pub gzip_comp_level: Option<V>,
    pub gzip_vary: Option<V>,
    pub gzip_proxied: Option<V>,
    pub gzip_disable: Option<V>,
    pub gzip_static: Option<V>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: Option<V>,
    pub key: Option<V>,
    pub min_version: Option<V>,
    pub handshake_timeout: Option<V>,
    pub protocols: Option<V>,
    pub ciphers: Option<V>,
    pub session_tickets: Option<V>,
    pub session_timeout: Option<V>,
    pub session_cache: Option<V>,
    pub reject_handshake: Option<V>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocation {
    pub proxy_pass: Option<V>,
    pub proxy_connect_timeout: Option<V>,
    pub proxy_read_timeout: Option<V>,
    pub proxy_send_timeout: Option<V>,
    pub proxy_buffering: Option<V>,
    pub proxy_buffers: Option<V>,
    pub proxy_set_header: Option<IndexMap<String, V>>,
    pub proxy_next_upstream: Option<V>,
    pub proxy_request_buffering: Option<V>,
    pub proxy_redirect: Option<V>,
    pub proxy_next_upstream_tries: Option<V>,
    pub proxy_next_upstream_timeout: Option<V>,
    #[serde(rename = "return")]
    pub return_: Option<Spanned<RawReturn>>,
    pub root: Option<V>,
    pub alias: Option<V>,
    pub index: Option<V>,
    pub try_files: Option<V>,
    pub client_max_body_size: Option<V>,
    pub client_body_timeout: Option<V>,
    pub add_header: Option<IndexMap<String, V>>,
    pub proxy_ssl_verify: Option<V>,
    pub proxy_ssl_trusted_certificate: Option<V>,
    pub proxy_ssl_server_name: Option<V>,
    pub proxy_ssl_name: Option<V>,
    pub limit_req: Option<V>,
    pub limit_req_status: Option<V>,
    pub limit_conn: Option<V>,
    pub limit_conn_status: Option<V>,
    pub upgrade: Option<V>,
    pub access: Option<V>,
    pub expires: Option<V>,
    pub default_type: Option<V>,
    pub etag: Option<V>,
    pub proxy_hide_header: Option<V>,
    pub proxy_pass_header: Option<V>,
    pub error_page: Option<V>,
    pub proxy_intercept_errors: Option<V>,
    pub internal: Option<V>,
    pub set: Option<V>,
    pub rewrite: Option<V>,
    pub gzip: Option<V>,
    pub gzip_types: Option<V>,
    pub gzip_min_length: Option<V>,
    pub gzip_comp_level: Option<V>,
    pub gzip_vary: Option<V>,
    pub gzip_proxied: Option<V>,
    pub gzip_disable: Option<V>,
    pub gzip_static: Option<V>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReturn {
    pub status: Option<V>,
    pub body: Option<V>,
    /// `location`, or `url` as CONFIG.md writes it.
    #[serde(alias = "url")]
    pub location: Option<V>,
}
