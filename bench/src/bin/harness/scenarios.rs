//! The scenarios, the targets, and running one scenario against one
//! target with fresh processes: backend, proxy, load — either timed (the
//! load's numbers, the proxy's CPU, RSS, descriptors) or, in a separate
//! pass, under `strace -c` (system calls per relayed message). The TLS
//! scenarios (`tls-handshake`, `tls-resume`, `wss-*`) terminate TLS at the
//! proxy with one ECDSA P-256 certificate made per harness run with the
//! `openssl` CLI ([`Certs`]); the proxy talks plain to the backend.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::procs::{self, Proc, Strace, Traced, Usage};
use crate::report::{Better, Metric, Sample, SYSCALL};

/// Source addresses for the load (past one address's ephemeral ports).
const SOURCES: &str = "127.0.0.2-127.0.0.40";

/// What the `nginx tuned` target adds to the plain nginx configuration.
pub const NGINX_TUNED: &str =
    "proxy_buffer_size 64k; proxy_buffers 8 64k; proxy_busy_buffers_size 128k;";

/// The load's measured window in the strace pass (its `--duration`).
pub const TRACE_WINDOW: &str = "2s";

/// The name the TLS scenarios' certificate is for (with 127.0.0.1), and
/// that the load checks and sends as SNI.
const TLS_NAME: &str = "localhost";

/// What the TLS scenarios' nginx adds to its `server` block besides the
/// certificate: what users run. TLS 1.3 (nginx before 1.23.4 leaves it out
/// of its default `ssl_protocols`; later ones default to `TLSv1 TLSv1.1
/// TLSv1.2 TLSv1.3`, which OpenSSL 3 narrows to 1.2 and 1.3 anyway), and
/// for resumption a shared session cache and tickets (nginx's defaults:
/// `ssl_session_cache none`, tickets on).
pub const NGINX_TLS: &str =
    "ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m; ssl_session_tickets on;";

/// The report's note on how the TLS scenarios run.
pub const TLS_NOTE: &str = "TLS scenarios (`tls-handshake`, `tls-resume`, `wss-*`): \
    client to proxy over TLS, proxy to backend plain; one certificate per harness run for \
    both proxies, made with the `openssl` CLI: an ECDSA P-256 leaf for `localhost` and \
    127.0.0.1 signed by a P-256 test CA, served alone (no chain), key in PKCS#8. nginx: \
    `listen ... ssl; ssl_certificate ...; ssl_certificate_key ...;` plus `ssl_protocols \
    TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m; ssl_session_tickets on;` (what users \
    run: nginx before 1.23.4 leaves TLS 1.3 out of its default protocols, and caches no \
    sessions by default), its defaults otherwise (ciphers, curves); ringway: \
    `tls = { cert, key }` on the server. The load is rustls 0.23 (ring) \
    with its defaults (TLS 1.3 and 1.2; X25519 first; AES-256-GCM first), trusting the test \
    CA, SNI `localhost`; full handshakes everywhere but `tls-resume`, which offers each load \
    process's stored TLS 1.3 tickets. `direct` does not run: the echo backend has no TLS. A \
    handshake is TCP connect + TLS handshake + `GET /health` with `Connection: close` \
    (answered `200 OK` by the proxy itself) read to the proxy's close, so the proxy closes \
    first on both. The load's TLS work shares the load CPU with the echo backend, so \
    handshakes/s can be bounded by the client; proxy CPU per unit is the number to compare";

/// The TLS scenarios' line in their sections.
const TLS_SHORT: &str = "Client to proxy over TLS, proxy to backend plain (see the TLS note \
    at the top).";

/// What the HTTP/2 scenarios' nginx adds to its `server` block: nginx
/// closes an HTTP/2 connection (GOAWAY) after `keepalive_requests` (1000 by
/// default, `http2_max_requests` before 1.19.7), and h2load does not open
/// another, so 10 connections would stop after 10,000 requests; ringway
/// has no such limit.
pub const NGINX_H2: &str = "keepalive_requests 1000000;";

/// The HTTP/2 scenarios' `return`: its path and body (both proxies).
pub const H2_RETURN_PATH: &str = "/r";
pub const H2_RETURN_BODY: &str = "hello from the proxy";
/// The HTTP/2 scenarios' proxied request (to the echo's HTTP answer).
pub const H2_PROXY_PATH: &str = "/api/items?id=1";
/// The HTTP/2 scenarios' static file, and its size.
pub const H2_STATIC_PATH: &str = "/static/4k.bin";
pub const H2_STATIC_BYTES: usize = 4096;

/// wrk's `done` hook for the p99.9 its `--latency` table leaves out.
const WRK_P999: &str = "done = function(summary, latency, requests)\n  \
    io.write(string.format(\"p99.9 %dus\\n\", latency:percentile(99.9)))\nend\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Direct,
    Nginx,
    /// nginx with [`NGINX_TUNED`]'s buffer sizes.
    NginxTuned,
    RingwayIoUring,
    RingwayEpoll,
    /// HAProxy (the HTTP/2 WebSocket scenarios: nginx has no RFC 8441).
    Haproxy,
}

impl Target {
    pub const ALL: [Target; 6] = [
        Target::Direct,
        Target::Nginx,
        Target::NginxTuned,
        Target::Haproxy,
        Target::RingwayIoUring,
        Target::RingwayEpoll,
    ];

    pub fn parse(s: &str) -> Option<Target> {
        Target::ALL
            .into_iter()
            .find(|t| t.label().replace(' ', "-") == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Nginx => "nginx",
            Target::NginxTuned => "nginx tuned",
            Target::RingwayIoUring => "ringway io_uring",
            Target::RingwayEpoll => "ringway epoll",
            Target::Haproxy => "haproxy",
        }
    }
}

enum Load {
    /// `ringway-load MODE ARGS`; the JSON line's fields are kept as they are.
    Ws {
        mode: &'static str,
        args: Vec<String>,
    },
    /// `wrk ARGS URL`.
    Wrk { args: Vec<String> },
    /// `h2load ARGS URL` (`https://` or, for h2c, `http://`) of `path`.
    H2load {
        args: Vec<String>,
        path: &'static str,
    },
}

pub struct Scenario {
    pub name: String,
    pub about: String,
    pub needs_wrk: bool,
    /// The load is h2load.
    pub needs_h2load: bool,
    /// Client to proxy over TLS ([`Certs`]); `direct` does not run.
    pub tls: bool,
    /// The proxies serve HTTP/2 (ALPN `h2` with TLS, h2c without) and the
    /// HTTP/2 scenarios' `return` and static file; `direct` does not run.
    pub http2: bool,
    /// Runs against nginx (not where nginx cannot: RFC 8441).
    pub nginx: bool,
    /// Runs against HAProxy (the RFC 8441 scenarios and their HTTP/1.1 twin).
    pub haproxy: bool,
    /// Run against `nginx tuned` too (nginx's buffer sizes matter here).
    pub tunable: bool,
    /// Has a strace pass when asked (`--syscalls`): an echo load, each
    /// unit of work relaying two messages.
    pub syscalls: bool,
    load: Load,
    /// The first is the headline (the chart's bar).
    pub metrics: Vec<Metric>,
    /// The sample key counting the units of work, for CPU per unit.
    units: &'static str,
    /// CPU per how many units, and its label.
    cpu_per: f64,
}

fn m(key: &str, label: &str, better: Better, digits: usize) -> Metric {
    Metric {
        key: key.into(),
        label: label.into(),
        better,
        digits,
    }
}

/// The proxy's CPU per unit of work (`per`: "µs per round trip"), then
/// its user-space and system parts.
fn cpu(per: &str, digits: usize) -> Vec<Metric> {
    [
        ("cpu_per_unit", "proxy CPU"),
        ("user_per_unit", "proxy user-space CPU"),
        ("sys_per_unit", "proxy system CPU"),
    ]
    .map(|(key, what)| m(key, &format!("{what} {per}"), Better::Lower, digits))
    .to_vec()
}

/// Latency quantiles p50, p99 and p99.9 in ms.
fn latency() -> Vec<Metric> {
    [("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")]
        .map(|(key, q)| m(key, &format!("latency {q} (ms)"), Better::Lower, 3))
        .to_vec()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Scenario {
    pub const NAMES: [&'static str; 21] = [
        "pingpong",
        "lowrate",
        "stream",
        "churn",
        "hold",
        "fanout",
        "http",
        "tls-handshake",
        "tls-resume",
        "wss-pingpong",
        "wss-stream",
        "wss-hold",
        "h2-return",
        "h2-proxy",
        "h2-static",
        "h2c-return",
        "h2c-proxy",
        "h2c-static",
        "h2ws-pingpong",
        "h2ws-hold",
        "h1wss-hold",
    ];

    /// The HTTP/2 scenarios (`--h2`), with the HTTP/1.1 twin of the RFC
    /// 8441 hold.
    pub const HTTP2: [&'static str; 9] = [
        "h2-return",
        "h2-proxy",
        "h2-static",
        "h2c-return",
        "h2c-proxy",
        "h2c-static",
        "h2ws-pingpong",
        "h2ws-hold",
        "h1wss-hold",
    ];

    /// The scenarios a run without `--scenarios` runs: all of them, but in
    /// `--quick` the TLS ones only where a short run still measures (the
    /// handshakes and a small hold), and of the HTTP/2 ones a proxied
    /// request, an RFC 8441 ping-pong and a small RFC 8441 hold.
    pub fn defaults(quick: bool) -> Vec<&'static str> {
        (Self::NAMES.into_iter())
            .filter(|n| {
                !quick
                    || !(matches!(*n, "wss-pingpong" | "wss-stream" | "tls-resume")
                        || (Self::HTTP2.contains(n)
                            && !matches!(*n, "h2-proxy" | "h2ws-pingpong" | "h2ws-hold")))
            })
            .collect()
    }

    pub fn new(name: &str, quick: bool) -> Scenario {
        if Self::HTTP2.contains(&name) {
            return Self::http2(name, quick);
        }
        if let Some(plain) = name.strip_prefix("wss-") {
            return Self::over_tls(name, Scenario::new(plain, quick), quick);
        }
        let secs = if quick { "2s" } else { "10s" };
        let rss = m(
            "proxy_rss_mib",
            "proxy RSS at the end (MiB)",
            Better::Lower,
            1,
        );
        let (h, l) = (Better::Higher, Better::Lower);
        let plain = |name: &str, about: String, load: Load| Scenario {
            name: name.into(),
            about,
            needs_wrk: false,
            needs_h2load: false,
            tls: false,
            http2: false,
            nginx: true,
            haproxy: false,
            tunable: false,
            syscalls: false,
            load,
            metrics: Vec::new(),
            units: "",
            cpu_per: 0.0,
        };
        let ws = |mode: &'static str, args: &[&str]| Load::Ws {
            mode,
            args: strings(args),
        };
        match name {
            "pingpong" => {
                let n = if quick { "20" } else { "100" };
                Scenario {
                    tunable: true,
                    syscalls: true,
                    metrics: [
                        vec![m("round_trips_per_sec", "round trips/s", h, 0)],
                        latency(),
                        cpu("µs per round trip", 2),
                        vec![rss],
                    ]
                    .concat(),
                    units: "round_trips",
                    cpu_per: 1e6,
                    ..plain(
                        name,
                        format!(
                            "{n} connections, each sending a 64-byte binary message and \
                             waiting for its echo, for {secs}."
                        ),
                        ws("pingpong", &["-n", n, "--size", "64", "--duration", secs]),
                    )
                }
            }
            "lowrate" => {
                let n = "200";
                Scenario {
                    tunable: true,
                    syscalls: true,
                    metrics: [
                        vec![
                            m("messages_per_sec", "messages/s", h, 0),
                            m("offered_per_sec", "offered messages/s", h, 0),
                        ],
                        latency(),
                        cpu("µs per message", 2),
                        vec![rss],
                    ]
                    .concat(),
                    units: "messages",
                    cpu_per: 1e6,
                    ..plain(
                        name,
                        format!(
                            "{n} connections, each sending one 64-byte binary message every \
                             10 ms on its own timer (phases spread evenly over the interval) \
                             and waiting for its echo, for {secs}: each message wakes the \
                             proxy on its own, as long as the target keeps up with the offered \
                             rate ({n} × 100 messages/s; a tick that comes while the previous \
                             echo is still out is skipped, so a shortfall shows in messages/s)."
                        ),
                        ws(
                            "lowrate",
                            &[
                                "-n",
                                n,
                                "--size",
                                "64",
                                "--interval",
                                "10ms",
                                "--duration",
                                secs,
                                "--sources",
                                SOURCES,
                            ],
                        ),
                    )
                }
            }
            "stream" => Scenario {
                tunable: true,
                metrics: [
                    vec![
                        m("mb_per_sec", "echoed MB/s", h, 1),
                        m("p99_ms", "message latency p99 (ms)", l, 2),
                    ],
                    cpu("ms per echoed GB", 1),
                    vec![rss],
                ]
                .concat(),
                units: "gb",
                cpu_per: 1e3,
                ..plain(
                    name,
                    format!(
                        "One connection streaming 1 MiB binary messages to the echo and \
                         reading them back (a few in flight), for {secs}."
                    ),
                    ws("stream", &["-n", "1", "--size", "1m", "--duration", secs]),
                )
            },
            "churn" => {
                let n = if quick { "10" } else { "50" };
                Scenario {
                    metrics: [
                        vec![
                            m("handshakes_per_sec", "handshakes/s", h, 0),
                            m("p50_ms", "cycle latency p50 (ms)", l, 3),
                            m("p99_ms", "cycle latency p99 (ms)", l, 3),
                        ],
                        cpu("µs per handshake", 1),
                        vec![rss],
                    ]
                    .concat(),
                    units: "handshakes",
                    cpu_per: 1e6,
                    ..plain(
                        name,
                        format!(
                            "{n} workers in a loop of connect, upgrade, one echo, close \
                             handshake, for {secs}."
                        ),
                        ws(
                            "churn",
                            &["-n", n, "--duration", secs, "--sources", SOURCES],
                        ),
                    )
                }
            }
            "hold" => {
                let n = if quick { "300" } else { "9000" };
                Scenario {
                    metrics: vec![
                        m("rss_per_tunnel", "proxy RSS bytes per idle tunnel", l, 0),
                        m("fds_per_tunnel", "proxy descriptors per tunnel", l, 2),
                        m("iou_wrk", "io_uring worker threads while holding", l, 0),
                        m("threads", "proxy threads while holding", l, 0),
                        m("alive_after_hold", "tunnels alive after the hold", h, 0),
                        m("open_p99_ms", "connect + upgrade p99 (ms)", l, 1),
                    ],
                    ..plain(
                        name,
                        format!(
                            "{n} WebSocket tunnels opened, held idle, then each checked with \
                             an echo; the proxy is measured while all are held."
                        ),
                        ws(
                            "hold",
                            &[
                                "-n",
                                n,
                                "--hold",
                                if quick { "1s" } else { "5s" },
                                "--procs",
                                if quick { "1" } else { "2" },
                                "--sources",
                                SOURCES,
                            ],
                        ),
                    )
                }
            }
            "fanout" => {
                let (n, msgs) = if quick {
                    ("100", "10")
                } else {
                    ("1000", "100")
                };
                Scenario {
                    metrics: [
                        vec![
                            m("p99_ms", "delivery latency p99 (ms)", l, 2),
                            m("p50_ms", "delivery latency p50 (ms)", l, 2),
                            m("received", "deliveries", h, 0),
                        ],
                        cpu("µs per delivery", 2),
                        vec![rss],
                    ]
                    .concat(),
                    units: "received",
                    cpu_per: 1e6,
                    ..plain(
                        name,
                        format!(
                            "{n} subscribers; the backend broadcasts each of {msgs} messages \
                             (one per 100 ms) to all of them; latency from send to delivery."
                        ),
                        ws(
                            "fanout",
                            &[
                                "-n",
                                n,
                                "--messages",
                                msgs,
                                "--interval",
                                "100ms",
                                "--sources",
                                SOURCES,
                            ],
                        ),
                    )
                }
            }
            "tls-handshake" | "tls-resume" => {
                let resume = name == "tls-resume";
                let n = if quick { "10" } else { "50" };
                let mut args = vec![
                    "-n",
                    n,
                    "--duration",
                    secs,
                    "--procs",
                    "2",
                    "--sources",
                    SOURCES,
                ];
                if resume {
                    args.push("--resume");
                }
                Scenario {
                    tls: true,
                    metrics: [
                        cpu("µs per handshake", 1),
                        vec![
                            m("handshakes_per_sec", "handshakes/s", h, 0),
                            m("resumed_pct", "handshakes resumed (%)", h, 1),
                            m("tls_p50_ms", "connect + TLS handshake p50 (ms)", l, 3),
                            m("tls_p99_ms", "connect + TLS handshake p99 (ms)", l, 3),
                            m("p99_ms", "whole cycle p99 (ms)", l, 3),
                        ],
                        vec![rss],
                    ]
                    .concat(),
                    units: "handshakes",
                    cpu_per: 1e6,
                    ..plain(
                        name,
                        format!(
                            "{n} workers in a loop of TCP connect, TLS handshake ({}), \
                             `GET /health` with `Connection: close` answered by the proxy \
                             itself, read to the proxy's close, for {secs}. {}",
                            if resume {
                                "resuming: each load process offers the TLS 1.3 tickets \
                                 earlier handshakes received; the share the proxy resumed is \
                                 a row of its own"
                            } else {
                                "full: the client offers no session"
                            },
                            TLS_SHORT
                        ),
                        ws("tlshs", &args),
                    )
                }
            }
            _ => Scenario {
                needs_wrk: true,
                metrics: [
                    vec![m("requests_per_sec", "requests/s", h, 0)],
                    latency(),
                    cpu("µs per request", 2),
                    vec![rss],
                ]
                .concat(),
                units: "requests",
                cpu_per: 1e6,
                ..plain(
                    "http",
                    format!(
                        "wrk, 1 thread, 50 keep-alive connections, GET /api/items?id=1 for \
                         {secs}; both proxies keep 32 idle upstream connections. p99.9 comes \
                         from a `done` hook (`p999.lua`: `latency:percentile(99.9)`)."
                    ),
                    Load::Wrk {
                        args: strings(&["-t1", "-c50", &format!("-d{secs}"), "--latency"]),
                    },
                )
            },
        }
    }

    /// The HTTP/2 scenarios. `h2-*` (TLS, ALPN h2) and `h2c-*` (cleartext,
    /// prior knowledge): h2load against a `return`, a proxied `/api/` and
    /// a static file, nginx and ringway. `h2ws-*`: RFC 8441 WebSockets
    /// (ringway-load `--h2`) over TLS, HAProxy and ringway (nginx has no
    /// RFC 8441); `h1wss-hold` is `h2ws-hold` with HTTP/1.1 upgrades on
    /// the same configurations, nginx too.
    fn http2(name: &str, quick: bool) -> Scenario {
        let secs = if quick { "2s" } else { "10s" };
        let (h, l) = (Better::Higher, Better::Lower);
        let rss = m(
            "proxy_rss_mib",
            "proxy RSS at the end (MiB)",
            Better::Lower,
            1,
        );
        let base = |about: String, load: Load| Scenario {
            name: name.into(),
            about,
            needs_wrk: false,
            needs_h2load: false,
            tls: true,
            http2: true,
            nginx: true,
            haproxy: false,
            tunable: false,
            syscalls: false,
            load,
            metrics: Vec::new(),
            units: "",
            cpu_per: 0.0,
        };
        if let Some(what) = name.strip_prefix("h2-").or(name.strip_prefix("h2c-")) {
            let tls = name.starts_with("h2-");
            let (path, thing) = match what {
                "return" => (
                    H2_RETURN_PATH,
                    format!(
                        "a `return` the proxy answers itself (`{H2_RETURN_PATH}`, 200 and the {}-byte body {H2_RETURN_BODY:?})",
                        H2_RETURN_BODY.len()
                    ),
                ),
                "proxy" => (
                    H2_PROXY_PATH,
                    format!(
                        "a proxied `{H2_PROXY_PATH}` (the echo backend's HTTP answer, over HTTP/1.1 with 32 idle upstream connections kept by both proxies, as in `http`)"
                    ),
                ),
                _ => (
                    H2_STATIC_PATH,
                    format!(
                        "a static file of {H2_STATIC_BYTES} bytes (`{H2_STATIC_PATH}`, `alias` on both)"
                    ),
                ),
            };
            let over = if tls {
                "over TLS (ALPN h2; nginx `listen ... ssl http2`, ringway `http2 = true`)"
            } else {
                "in cleartext with prior knowledge (h2c; nginx `listen ... http2`, ringway `http2 = \"h2c\"`)"
            };
            let mut args = strings(&["-c", "10", "-m", "10", "-t", "1", "--warm-up-time", "1s"]);
            args.extend(["-D".to_string(), secs.to_string()]);
            return Scenario {
                needs_h2load: true,
                tls,
                metrics: [
                    vec![m("requests_per_sec", "requests/s", h, 0)],
                    cpu("µs per request", 2),
                    vec![m("mean_ms", "request time mean (ms)", l, 3), rss],
                ]
                .concat(),
                units: "requests",
                cpu_per: 1e6,
                ..base(
                    format!(
                        "h2load, 1 thread, 10 HTTP/2 connections {over}, up to 10 streams each, GET of {thing}, 1 s of warm-up then {secs} measured (the proxy's CPU over h2load's own measured window). h2load gives no latency quantiles, only the mean time per request. nginx has `{NGINX_H2}` \
                         (by default it ends an HTTP/2 connection after 1,000 requests, and \
                         h2load does not reconnect)."
                    ),
                    Load::H2load { args, path },
                )
            };
        }
        let hold_n = if quick { "200" } else { "5000" };
        match name {
            "h2ws-pingpong" => {
                let n = if quick { "20" } else { "100" };
                Scenario {
                    haproxy: true,
                    nginx: false,
                    syscalls: true,
                    metrics: [
                        cpu("µs per round trip", 2),
                        vec![m("round_trips_per_sec", "round trips/s", h, 0)],
                        latency(),
                        vec![rss],
                    ]
                    .concat(),
                    units: "round_trips",
                    cpu_per: 1e6,
                    ..base(
                        format!(
                            "{n} HTTP/2 connections over TLS (ALPN h2), one RFC 8441 WebSocket each (extended CONNECT; the load requires the proxy's SETTINGS_ENABLE_CONNECT_PROTOCOL and a 200), each sending a 64-byte binary message in DATA and waiting for its echo, for {secs}; the proxy speaks HTTP/1.1 upgrades to the echo backend. HAProxy: `bind ... ssl crt ... alpn h2,http/1.1`, `mode http`, `timeout tunnel 3600s`. {TLS_SHORT}"
                        ),
                        Load::Ws {
                            mode: "pingpong",
                            args: strings(&["-n", n, "--size", "64", "--duration", secs, "--h2"]),
                        },
                    )
                }
            }
            _ => {
                let h2 = name == "h2ws-hold";
                let mut args = vec![
                    "-n",
                    hold_n,
                    "--hold",
                    if quick { "1s" } else { "5s" },
                    "--echo-first",
                    "--procs",
                    "4",
                    "--sources",
                    SOURCES,
                ];
                if h2 {
                    args.push("--h2");
                }
                let open = if h2 {
                    "connect + TLS + HTTP/2 + CONNECT p99 (ms)"
                } else {
                    "connect + TLS + upgrade p99 (ms)"
                };
                Scenario {
                    haproxy: true,
                    nginx: !h2,
                    metrics: vec![
                        m("rss_per_tunnel", "proxy RSS bytes per idle WebSocket", l, 0),
                        m("fds_per_tunnel", "proxy descriptors per WebSocket", l, 2),
                        m("iou_wrk", "io_uring worker threads while holding", l, 0),
                        m("threads", "proxy threads while holding", l, 0),
                        m("alive_after_hold", "WebSockets alive after the hold", h, 0),
                        m("open_p99_ms", open, l, 1),
                    ],
                    ..base(
                        if h2 {
                            format!(
                                "{hold_n} HTTP/2 connections over TLS (ALPN h2), one RFC 8441 WebSocket each, one message echoed on each, then all held idle; the proxy's RSS while all are held, less its RSS before the load, divided by the WebSockets; then each is checked with an echo. 4 load processes, source addresses 127.0.0.2–40. Compare `h1wss-hold`. {TLS_SHORT}"
                            )
                        } else {
                            format!(
                                "`h2ws-hold` with HTTP/1.1 upgrades: {hold_n} WebSocket tunnels over TLS (no ALPN, so HTTP/1.1) to the same proxy configurations (HTTP/2 enabled), one message echoed on each, then held idle and measured the same way. {TLS_SHORT}"
                            )
                        },
                        Load::Ws {
                            mode: "hold",
                            args: strings(&args),
                        },
                    )
                }
            }
        }
    }

    /// A plain WebSocket scenario over TLS: same load, TLS from the client
    /// to the proxy. No `nginx tuned` (its buffers are the plain scenario's
    /// question); the headline of pingpong becomes the proxy's CPU per
    /// round trip (the client's TLS shares the load CPU, so round trips/s
    /// says less); the hold holds 8,000 tunnels (a few hundred in --quick).
    fn over_tls(name: &str, mut sc: Scenario, quick: bool) -> Scenario {
        sc.name = name.into();
        sc.tls = true;
        sc.tunable = false;
        sc.about = format!("{} {TLS_SHORT}", sc.about);
        for m in &mut sc.metrics {
            m.label = m
                .label
                .replace("connect + upgrade", "connect + TLS + upgrade");
        }
        match name {
            "wss-pingpong" => {
                // CPU per round trip (and its split) first.
                let (cpu, rest): (Vec<Metric>, Vec<Metric>) =
                    (sc.metrics.drain(..)).partition(|m| m.key.ends_with("_per_unit"));
                sc.metrics = [cpu, rest].concat();
            }
            "wss-hold" => {
                let n = if quick { "200" } else { "8000" };
                if let Load::Ws { args, .. } = &mut sc.load {
                    // hold's arguments start with `-n N`.
                    args[1] = n.into();
                }
                sc.about = format!(
                    "{n} WebSocket tunnels over TLS opened (full handshakes), held idle, then \
                     each checked with an echo; the proxy is measured while all are held. \
                     {TLS_SHORT}"
                );
            }
            _ => {}
        }
        sc
    }

    /// Whether `target` runs in this scenario (`nginx tuned` only where
    /// nginx's buffer sizes matter; `direct` not over TLS: the backend has
    /// none).
    pub fn runs(&self, target: Target) -> bool {
        match target {
            Target::Direct => !self.tls && !self.http2,
            Target::Nginx => self.nginx,
            Target::NginxTuned => self.nginx && self.tunable,
            Target::Haproxy => self.haproxy,
            Target::RingwayIoUring | Target::RingwayEpoll => true,
        }
    }

    /// The load command, as the report shows it.
    pub fn load_command(&self, addr: &str) -> String {
        let tls = if self.tls {
            format!(" --tls-ca ca.pem --tls-name {TLS_NAME}")
        } else {
            String::new()
        };
        match &self.load {
            Load::Ws { mode, args } => format!(
                "ringway-load {mode} --target {addr} --path {} {}{tls} --json",
                self.ws_path(),
                args.join(" ")
            ),
            Load::Wrk { args } => format!(
                "wrk {} -s p999.lua http://{addr}/api/items?id=1",
                args.join(" ")
            ),
            Load::H2load { args, path } => format!(
                "h2load {} {}://{addr}{path}",
                args.join(" "),
                if self.tls { "https" } else { "http" }
            ),
        }
    }

    fn ws_path(&self) -> &'static str {
        match &self.load {
            _ if self.name == "fanout" => "/ws/fanout",
            Load::Ws { mode: "tlshs", .. } => "/health",
            _ => "/ws/",
        }
    }

    /// One line for the progress output.
    pub fn summary(&self, s: &Sample) -> String {
        let mut out = String::new();
        for m in self.metrics.iter().take(3) {
            if let Some(v) = s.get(&m.key) {
                let _ = write!(out, "{}={v:.2} ", m.key);
            }
        }
        // A traced run's counts per relayed message.
        for (k, v) in s.range(SYSCALL.to_string()..) {
            let Some(name) = k.strip_prefix(SYSCALL) else {
                break;
            };
            let _ = write!(out, "{name}={v:.3} ");
        }
        if let Some(e) = s.get("errors") {
            let _ = write!(out, "errors={e}");
        }
        out
    }
}

/// Machine layout and tools, shared by every run.
pub struct Setup {
    bin: PathBuf,
    tmp: PathBuf,
    workers: usize,
    pub proxy_cpus: Vec<usize>,
    pub load_cpus: Vec<usize>,
    pub has_nginx: bool,
    pub has_wrk: bool,
    pub has_h2load: bool,
    pub has_haproxy: bool,
    pub has_strace: bool,
    pub has_openssl: bool,
    /// The TLS scenarios' certificate, made on first use.
    certs: Option<Certs>,
    /// What the TLS handshakes negotiated (from `tlshs`'s counts), and
    /// against which targets.
    negotiated: BTreeMap<String, BTreeSet<&'static str>>,
    runs: usize,
}

/// The TLS scenarios' certificate files (PEM).
#[derive(Debug, Clone)]
pub struct Certs {
    /// The test CA, which the load trusts.
    pub ca: PathBuf,
    /// The leaf, for `localhost` and 127.0.0.1, signed by the CA.
    pub cert: PathBuf,
    /// Its key, PKCS#8.
    pub key: PathBuf,
}

impl Certs {
    /// The `openssl` steps, in `dir`: a P-256 CA, a P-256 key, a leaf for
    /// [`TLS_NAME`] and 127.0.0.1 signed by the CA (a week's validity).
    fn steps() -> Vec<Vec<String>> {
        [
            "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key",
            "req -x509 -new -key ca.key -subj /CN=ringway-bench-CA -days 7 -sha256 \
             -addext basicConstraints=critical,CA:TRUE \
             -addext keyUsage=critical,keyCertSign,cRLSign -out ca.pem",
            "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem",
            "req -new -key key.pem -subj /CN=localhost -out leaf.csr",
            "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAserial ca.srl -CAcreateserial \
             -days 7 -sha256 -extfile leaf.ext -out cert.pem",
        ]
        .iter()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
    }

    /// The leaf's extensions (`-extfile`).
    const LEAF_EXT: &'static str = "basicConstraints=critical,CA:FALSE\n\
        keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n\
        subjectAltName=DNS:localhost,IP:127.0.0.1\n";

    /// Make them in `dir` with the `openssl` CLI (each step bounded).
    fn make(dir: &Path) -> anyhow::Result<Certs> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("leaf.ext"), Self::LEAF_EXT)?;
        for step in Self::steps() {
            let mut c = Command::new("openssl");
            c.args(&step).current_dir(dir);
            let mut p = Proc::spawn("openssl", c)?;
            let st = p.finish(Duration::from_secs(30))?;
            if !st.success() {
                bail!("openssl {}: {st}\n{}", step.join(" "), p.seen.join("\n"));
            }
        }
        let c = Certs {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        // HAProxy's `crt`: the certificate and its key in one file.
        let mut both = std::fs::read(&c.cert)?;
        both.extend(std::fs::read(&c.key)?);
        std::fs::write(c.haproxy_pem(), both)?;
        Ok(c)
    }

    /// The certificate and key in one PEM file, for HAProxy's `crt`.
    pub fn haproxy_pem(&self) -> PathBuf {
        self.cert.with_file_name("haproxy.pem")
    }
}

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The load's numbers and the proxy's CPU, RSS, descriptors.
    Timed,
    /// The proxy's system calls per relayed message, under `strace -c`
    /// from the load's warmup to the end of its measured window
    /// ([`TRACE_WINDOW`]), which is all the sample then holds (besides
    /// `errors`, `relayed` and `traced_secs`).
    Syscalls,
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            let f = d.join(tool);
            f.is_file()
        })
    })
}

impl Setup {
    pub fn new(_quick: bool, workers: usize) -> anyhow::Result<Setup> {
        let exe = std::env::current_exe()?;
        let bin = exe.parent().context("exe dir")?.to_path_buf();
        for b in ["ringway", "ringway-echo", "ringway-load"] {
            if !bin.join(b).is_file() {
                bail!(
                    "{} is missing: cargo build --release -p ringway -p ringway-bench",
                    bin.join(b).display()
                );
            }
        }
        let tmp = std::env::temp_dir().join(format!("ringway-harness-{}", std::process::id()));
        std::fs::create_dir_all(&tmp)?;
        std::fs::write(tmp.join("p999.lua"), WRK_P999)?;
        ringway_bench::rt::raise_nofile();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (proxy_cpus, load_cpus) = if cpus > workers {
            (
                (cpus - workers..cpus).collect(),
                (0..cpus - workers).collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(Setup {
            bin,
            tmp,
            workers,
            proxy_cpus,
            load_cpus,
            has_nginx: on_path("nginx"),
            has_wrk: on_path("wrk"),
            has_h2load: on_path("h2load"),
            has_haproxy: on_path("haproxy"),
            has_strace: on_path("strace"),
            has_openssl: on_path("openssl"),
            certs: None,
            negotiated: BTreeMap::new(),
            runs: 0,
        })
    }

    fn cmd(&self, name: &str) -> Command {
        Command::new(self.bin.join(name))
    }

    fn backend(&self) -> anyhow::Result<(Proc, SocketAddr)> {
        let mut c = self.cmd("ringway-echo");
        c.args([
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--driver",
            "epoll",
        ]);
        let mut p = Proc::spawn("ringway-echo", procs::pinned(c, &self.load_cpus))?;
        let line = p.wait_line("listening addr=", Duration::from_secs(10))?;
        let addr = procs::addr_in(&line).context("backend address")?;
        Ok((p, addr))
    }

    fn ringway(
        &self,
        driver: &str,
        backend: SocketAddr,
        dir: &Path,
        tls: Option<&Certs>,
        http2: bool,
    ) -> anyhow::Result<(Proc, SocketAddr)> {
        let cfg = dir.join("ringway.toml");
        let site = http2.then(|| dir.join("static"));
        std::fs::write(
            &cfg,
            ringway_toml(self.workers, driver, backend, tls, site.as_deref()),
        )?;
        let mut c = self.cmd("ringway");
        c.arg("-c").arg(&cfg);
        let mut p = Proc::spawn("ringway", procs::pinned(c, &self.proxy_cpus))?;
        let line = p.wait_line("listening", Duration::from_secs(10))?;
        let addr = procs::addr_in(&line).context("ringway address")?;
        Ok((p, addr))
    }

    /// nginx with the seeds' directives; `tuned` adds [`NGINX_TUNED`];
    /// `tls` makes the listener TLS ([`NGINX_TLS`]) with a `/health` the
    /// proxy answers itself.
    fn nginx(
        &self,
        backend: SocketAddr,
        dir: &Path,
        tuned: bool,
        tls: Option<&Certs>,
        http2: bool,
    ) -> anyhow::Result<(Proc, SocketAddr)> {
        let port = procs::free_port()?;
        let conf = dir.join("nginx.conf");
        let site = http2.then(|| dir.join("static"));
        std::fs::write(
            &conf,
            nginx_conf(
                self.workers,
                dir,
                port,
                backend,
                tuned,
                tls,
                site.as_deref(),
            ),
        )?;
        let mut c = Command::new("nginx");
        c.arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"));
        let p = Proc::spawn("nginx", procs::pinned(c, &self.proxy_cpus))?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        procs::wait_listening(addr, Duration::from_secs(10))?;
        Ok((p, addr))
    }

    /// HAProxy in the foreground (`-db`: one process, no master), `tls`
    /// with ALPN h2 then http/1.1, or h2c (`proto h2`) when `http2`
    /// without it.
    fn haproxy(
        &self,
        backend: SocketAddr,
        dir: &Path,
        tls: Option<&Certs>,
        http2: bool,
    ) -> anyhow::Result<(Proc, SocketAddr)> {
        let port = procs::free_port()?;
        let conf = dir.join("haproxy.cfg");
        std::fs::write(&conf, haproxy_cfg(self.workers, port, backend, tls, http2))?;
        let mut c = Command::new("haproxy");
        c.arg("-f").arg(&conf).arg("-db");
        let p = Proc::spawn("haproxy", procs::pinned(c, &self.proxy_cpus))?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        procs::wait_listening(addr, Duration::from_secs(10))?;
        Ok((p, addr))
    }

    /// The TLS scenarios' certificate, made on first use.
    fn certs(&mut self) -> anyhow::Result<Certs> {
        if self.certs.is_none() {
            if !self.has_openssl {
                bail!("openssl is not installed: no certificate for the TLS scenarios");
            }
            self.certs = Some(Certs::make(&self.tmp.join("tls"))?);
        }
        Ok(self.certs.clone().expect("made above"))
    }

    /// Run one scenario against one target, with fresh processes, for
    /// `pass`: timed, or under strace (the sample then holds only the
    /// system calls per relayed message, `relayed` and `errors`).
    pub fn run(&mut self, sc: &Scenario, target: Target, pass: Pass) -> anyhow::Result<Sample> {
        self.runs += 1;
        let dir = self.tmp.join(format!("run-{}", self.runs));
        std::fs::create_dir_all(&dir)?;
        let certs = if sc.tls {
            if target == Target::Direct {
                bail!("{} runs over TLS, which the backend lacks", sc.name);
            }
            Some(self.certs()?)
        } else {
            None
        };
        if sc.http2 {
            if target == Target::Direct {
                bail!("{} is HTTP/2, which the backend lacks", sc.name);
            }
            // The static file: bytes that do not compress.
            let site = dir.join("static");
            std::fs::create_dir_all(&site)?;
            let file: Vec<u8> = (0..H2_STATIC_BYTES)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
                .collect();
            let name = H2_STATIC_PATH.rsplit('/').next().expect("a file name");
            std::fs::write(site.join(name), file)?;
        }
        let (_backend, backend) = self.backend()?;
        let (proxy, addr) = match target {
            Target::Direct => (None, backend),
            Target::Nginx | Target::NginxTuned => {
                let tuned = target == Target::NginxTuned;
                let (p, a) = self.nginx(backend, &dir, tuned, certs.as_ref(), sc.http2)?;
                (Some(p), a)
            }
            Target::Haproxy => {
                let (p, a) = self.haproxy(backend, &dir, certs.as_ref(), sc.http2)?;
                (Some(p), a)
            }
            Target::RingwayIoUring | Target::RingwayEpoll => {
                let driver = if target == Target::RingwayIoUring {
                    "io_uring"
                } else {
                    "epoll"
                };
                let (p, a) = self.ringway(driver, backend, &dir, certs.as_ref(), sc.http2)?;
                (Some(p), a)
            }
        };
        let pids = |proxy: &Option<Proc>| -> Vec<u32> {
            match (proxy, target) {
                (None, _) => Vec::new(),
                (Some(p), Target::Nginx | Target::NginxTuned) => procs::children_of(p.pid()),
                // HAProxy with -db is one process.
                (Some(p), _) => vec![p.pid()],
            }
        };
        let before = procs::usage(&pids(&proxy));
        let mut s: Sample;
        let mut held: Option<Usage> = None;
        let mut window: Option<(Usage, Usage)> = None;
        let mut traced: Option<(Traced, Duration)> = None;
        match &sc.load {
            Load::Ws { mode, args } => {
                let mut c = self.cmd("ringway-load");
                c.arg(mode)
                    .args(["--target", &addr.to_string(), "--path", sc.ws_path()])
                    .args(args)
                    .arg("--json");
                if let Some(tls) = &certs {
                    c.arg("--tls-ca")
                        .arg(&tls.ca)
                        .args(["--tls-name", TLS_NAME]);
                }
                if pass == Pass::Syscalls {
                    // The last --duration given counts.
                    c.args(["--duration", TRACE_WINDOW]);
                }
                let mut load = Proc::spawn("ringway-load", procs::pinned(c, &self.load_cpus))?;
                if sc.cpu_per > 0.0 && *mode != "fanout" {
                    // Proxy CPU over the load's measured window only, so
                    // opening and warming up are not charged to it.
                    let line = load.wait_line("window warmup=", Duration::from_secs(120))?;
                    let (warmup, duration) = window_of(&line).context("window line")?;
                    let end = Instant::now() + warmup + duration;
                    match pass {
                        Pass::Timed => {
                            std::thread::sleep(warmup);
                            let start = procs::usage(&pids(&proxy));
                            std::thread::sleep(duration);
                            window = Some((start, procs::usage(&pids(&proxy))));
                        }
                        Pass::Syscalls => {
                            // Attached from the warmup on, so the proxy runs
                            // traced (slowed) the whole window and a bit
                            // before; see `per_relayed`. strace shares the
                            // proxy's CPU: the two take turns (the proxy is
                            // stopped while strace works), which keeps the
                            // pace even; on the load's CPU it would fight
                            // the load for time and stall the proxy.
                            let out = dir.join("strace.txt");
                            let trace = Strace::attach(&pids(&proxy), &self.proxy_cpus, &out)?;
                            std::thread::sleep(end.saturating_duration_since(Instant::now()));
                            traced = Some((trace.stop()?, duration));
                        }
                    }
                }
                if *mode == "hold" {
                    load.wait_line("holding", Duration::from_secs(300))?;
                    // Let the last handshakes' buffers settle before sampling.
                    std::thread::sleep(Duration::from_millis(500));
                    held = Some(procs::usage(&pids(&proxy)));
                }
                let st = load.finish(Duration::from_secs(600))?;
                let json = load
                    .seen
                    .iter()
                    .rev()
                    .find(|l| l.starts_with('{'))
                    .with_context(|| {
                        format!("no JSON from ringway-load: {}", load.seen.join("\n"))
                    })?;
                s = crate::report::json_numbers(json);
                for params in negotiated(json) {
                    self.negotiated
                        .entry(params)
                        .or_default()
                        .insert(target.label());
                }
                // The load's own failure count ("failed" or "errors"); at
                // least 1 when it exited non-zero.
                let counted = s.get("failed").or(s.get("errors")).copied().unwrap_or(0.0);
                let exit = f64::from(u8::from(!st.success()));
                s.insert("errors".into(), counted.max(exit));
            }
            Load::Wrk { args } => {
                let mut c = Command::new("wrk");
                c.args(args)
                    .arg("-s")
                    .arg(self.tmp.join("p999.lua"))
                    .arg(format!("http://{addr}/api/items?id=1"));
                let mut wrk = Proc::spawn("wrk", procs::pinned(c, &self.load_cpus))?;
                let st = wrk.finish(Duration::from_secs(600))?;
                s = parse_wrk(&wrk.seen.join("\n"));
                let errs = f64::from(u8::from(
                    !st.success() || !s.contains_key("requests_per_sec"),
                ));
                s.insert(
                    "errors".into(),
                    errs + s.get("non_2xx").copied().unwrap_or(0.0),
                );
            }
            Load::H2load { args, path } => {
                let scheme = if sc.tls { "https" } else { "http" };
                let mut c = Command::new("h2load");
                c.args(args).arg(format!("{scheme}://{addr}{path}"));
                let mut h2load = Proc::spawn("h2load", procs::pinned(c, &self.load_cpus))?;
                if pass == Pass::Timed {
                    // Proxy CPU over h2load's measured window (after its
                    // warm-up), as for ringway-load.
                    h2load.wait_line(
                        "Main benchmark duration is started",
                        Duration::from_secs(60),
                    )?;
                    let start = procs::usage(&pids(&proxy));
                    h2load
                        .wait_line("Main benchmark duration is over", Duration::from_secs(600))?;
                    window = Some((start, procs::usage(&pids(&proxy))));
                }
                let st = h2load.finish(Duration::from_secs(120))?;
                let out = h2load.seen.join("\n");
                s = parse_h2load(&out);
                let h2 = out.lines().any(|l| {
                    l.trim() == "Application protocol: h2"
                        || l.trim() == "Application protocol: h2c"
                });
                // No request in the window is a failure, not a slow run.
                let errs = f64::from(u8::from(
                    !st.success() || !h2 || !s.get("requests").is_some_and(|n| *n > 0.0),
                ));
                let failed = s.get("failed").copied().unwrap_or(0.0)
                    + s.get("non_2xx").copied().unwrap_or(0.0);
                if errs > 0.0 {
                    eprintln!("h2load:\n{out}");
                } else if failed > 0.0 {
                    // Which requests failed, and how (h2load's own lines).
                    for l in out
                        .lines()
                        .filter(|l| l.starts_with("requests:") || l.starts_with("status codes:"))
                    {
                        eprint!("[{l}] ");
                    }
                }
                s.insert(
                    "errors".into(),
                    errs + s.get("failed").copied().unwrap_or(0.0)
                        + s.get("non_2xx").copied().unwrap_or(0.0),
                );
            }
        }
        derive(sc, &mut s);
        match pass {
            Pass::Syscalls => {
                let (t, window) = traced.context("this scenario has no window to trace")?;
                s = per_relayed(sc, &s, &t, window);
            }
            Pass::Timed if proxy.is_some() => {
                let after = procs::usage(&pids(&proxy));
                let (a, b) = window.unwrap_or((before, after));
                let (user, sys) = (b.user_secs - a.user_secs, b.sys_secs - a.sys_secs);
                s.insert("proxy_cpu_secs".into(), user + sys);
                s.insert("proxy_rss_mib".into(), after.rss_kib as f64 / 1024.0);
                if let Some(units) = s.get(sc.units).copied().filter(|u| *u > 0.0) {
                    for (key, secs) in [
                        ("cpu_per_unit", user + sys),
                        ("user_per_unit", user),
                        ("sys_per_unit", sys),
                    ] {
                        s.insert(key.into(), secs * sc.cpu_per / units);
                    }
                }
                if let (Some(h), Some(n)) = (held, s.get("upgraded").copied().filter(|n| *n > 0.0))
                {
                    s.insert(
                        "rss_per_tunnel".into(),
                        (h.rss_kib as f64 - before.rss_kib as f64) * 1024.0 / n,
                    );
                    s.insert(
                        "fds_per_tunnel".into(),
                        (h.fds as f64 - before.fds as f64) / n,
                    );
                    s.insert("iou_wrk".into(), h.iou_wrk as f64);
                    s.insert("threads".into(), h.threads as f64);
                }
            }
            Pass::Timed => {}
        }
        drop(proxy);
        let _ = std::fs::remove_dir_all(&dir);
        Ok(s)
    }

    /// The whole markdown document.
    pub fn document(
        &self,
        cmdline: &str,
        rounds: usize,
        sections: &[String],
        took: Duration,
        chart: &Path,
    ) -> String {
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let nginx = Command::new("nginx")
            .arg("-v")
            .output()
            .ok()
            .map(|o| {
                String::from_utf8_lossy(&o.stderr)
                    .trim()
                    .replace("nginx version: ", "")
            })
            .unwrap_or_else(|| "not installed".into());
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chart_name = chart
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut out = format!(
            "# Benchmark results\n\n\
             Generated by `scripts/bench.sh` (`{cmdline}`) in {:.0} s. Every number below \
             comes from that one run: median of {rounds} round(s), targets alternating.\n\n\
             - machine: {cpus} CPUs ({model}), Linux {}, nginx {nginx}\n\
             - {} worker(s) per proxy; proxy pinned to CPU(s) {:?}, echo backend and load \
             generator to {:?}\n\
             - `direct` is the load against the backend with no proxy: the ceiling\n\
             - `÷ nginx` is ringway's number divided by nginx's; ↑ bigger is better, ↓ smaller \
             is better\n\
             - `nginx tuned` (where nginx's buffer sizes matter: pingpong, lowrate, stream) is \
             the same nginx configuration plus `{NGINX_TUNED}`; `÷ tuned` is ringway's number \
             divided by it\n\
             - proxy CPU comes from /proc/PID/stat over the load's measured window (after its \
             warmup; the whole load for fanout and http): user + system, then user space \
             (utime) and system (stime) on their own, each counted in clock ticks of \
             1/{tick} s; RSS from /proc/PID/status\n\
             - what these numbers say against the performance targets, and the profiles \
             behind that: `bench/TARGETS.md`\n{tls}\n\
             ![ringway vs nginx]({chart_name})\n\n",
            took.as_secs_f64(),
            kernel.trim(),
            self.workers,
            self.proxy_cpus,
            self.load_cpus,
            tick = procs::clock_ticks(),
            tls = self.tls_notes(),
        );
        for s in sections {
            out.push_str(s);
            out.push('\n');
        }
        out
    }
}

/// The first line of `tool ARGS`'s output (stdout or stderr), less
/// `strip`; "not installed" when it does not run.
fn version_of(tool: &str, args: &[&str], strip: &str) -> String {
    Command::new(tool)
        .args(args)
        .output()
        .ok()
        .and_then(|o| {
            let text = [o.stdout, o.stderr].concat();
            let text = String::from_utf8_lossy(&text).into_owned();
            text.lines().next().map(|l| l.trim().replace(strip, ""))
        })
        .unwrap_or_else(|| "not installed".into())
}

impl Setup {
    /// The machine and the tools, in one line: CPUs, kernel, nginx,
    /// HAProxy and h2load versions.
    pub fn versions(&self) -> String {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let haproxy = version_of("haproxy", &["-v"], "HAProxy version ");
        let haproxy = haproxy.split(" - ").next().unwrap_or_default().to_string();
        format!(
            "{cpus} CPUs, Linux {}, nginx {}, HAProxy {haproxy}, h2load {}; proxy on CPU(s) \
             {:?}, backend and load on {:?}",
            kernel.trim(),
            version_of("nginx", &["-v"], "nginx version: nginx/"),
            version_of("h2load", &["--version"], "h2load nghttp2/"),
            self.proxy_cpus,
            self.load_cpus
        )
    }

    /// The document's bullets on TLS, when a TLS scenario ran: how, and
    /// what the handshakes negotiated with which proxy.
    fn tls_notes(&self) -> String {
        if self.certs.is_none() {
            return String::new();
        }
        let mut out = format!("- {TLS_NOTE}\n");
        if !self.negotiated.is_empty() {
            let seen: Vec<String> = (self.negotiated.iter())
                .map(|(params, targets)| {
                    let t: Vec<&str> = targets.iter().copied().collect();
                    format!("`{params}` with {}", t.join(", "))
                })
                .collect();
            let _ = writeln!(
                out,
                "- TLS as negotiated in the handshake scenarios (the load's view): {}",
                seen.join("; ")
            );
        }
        out
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

/// ringway.toml for a run: the seeds' locations (`/ws/` to the backend,
/// `/api/` to its pool); with `tls`, the server terminates TLS with those
/// files and answers `= /health` itself; with `http2` (the HTTP/2
/// scenarios' static directory), HTTP/2 on (`true` with TLS, `"h2c"`
/// without), the [`H2_RETURN_PATH`] `return` and `/static/` from there.
fn ringway_toml(
    workers: usize,
    driver: &str,
    backend: SocketAddr,
    tls: Option<&Certs>,
    http2: Option<&Path>,
) -> String {
    let (h2_line, h2_locations) = match http2 {
        Some(site) => (
            if tls.is_some() {
                "http2 = true\n"
            } else {
                "http2 = \"h2c\"\n"
            },
            format!(
                "\n[servers.bench.locations.\"= {H2_RETURN_PATH}\"]\n\
                 return = {{ status = 200, body = \"{H2_RETURN_BODY}\" }}\n\
                 \n[servers.bench.locations.\"/static/\"]\nalias = \"{}/\"\n",
                site.display()
            ),
        ),
        None => ("", String::new()),
    };
    let (tls_line, health) = match tls {
        Some(c) => (
            format!(
                "tls = {{ cert = \"{}\", key = \"{}\" }}\n",
                c.cert.display(),
                c.key.display()
            ),
            "\n[servers.bench.locations.\"= /health\"]\nreturn = { status = 200, body = \"OK\" }\n",
        ),
        None => (String::new(), ""),
    };
    format!(
        r#"[runtime]
workers = {workers}
driver = "{driver}"
pin_cores = false

[log]
level = "info"
access_log = "off"

[upstreams.api]
servers = [{{ addr = "{backend}" }}]
keepalive = 32

[servers.bench]
listen = ["127.0.0.1:0"]
{h2_line}{tls_line}{health}{h2_locations}
[servers.bench.locations."/ws/"]
proxy_pass = "http://{backend}"
proxy_read_timeout = "3600s"
proxy_send_timeout = "3600s"
proxy_connect_timeout = "10s"
proxy_buffering = false

[servers.bench.locations."/ws/".proxy_set_header]
Host = "$host"
X-Real-IP = "$remote_addr"
X-Forwarded-For = "$proxy_add_x_forwarded_for"
X-Forwarded-Proto = "$scheme"

[servers.bench.locations."/api/"]
proxy_pass = "http://api"
"#
    )
}

/// nginx.conf for a run: the seeds' directives; `tuned` adds
/// [`NGINX_TUNED`]; with `tls`, the listener is TLS with those files and
/// [`NGINX_TLS`], and `= /health` is answered by nginx itself.
fn nginx_conf(
    workers: usize,
    dir: &Path,
    port: u16,
    backend: SocketAddr,
    tuned: bool,
    tls: Option<&Certs>,
    http2: Option<&Path>,
) -> String {
    let d = dir.display();
    let (h2_listen, h2_locations) = match http2 {
        Some(site) => (
            " http2",
            format!(
                "\n    {NGINX_H2}\n    location = {H2_RETURN_PATH} {{ return 200 \"{H2_RETURN_BODY}\"; }}\n    \
                 location /static/ {{ alias {}/; }}",
                site.display()
            ),
        ),
        None => ("", String::new()),
    };
    let tuning = if tuned { nginx_tuning() } else { String::new() };
    let (ssl, tls_lines) = match tls {
        Some(c) => {
            let mut lines = format!(
                "\n    ssl_certificate {};\n    ssl_certificate_key {};",
                c.cert.display(),
                c.key.display()
            );
            for d in NGINX_TLS.split_inclusive(';') {
                let _ = write!(lines, "\n    {}", d.trim());
            }
            lines.push_str("\n    location = /health { return 200 \"OK\"; }");
            (" ssl", lines)
        }
        None => ("", String::new()),
    };
    format!(
        r#"worker_processes {workers};
worker_rlimit_nofile 20000;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;{tuning}
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  upstream api {{ server {backend}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port}{ssl}{h2_listen};{tls_lines}{h2_locations}
    location /ws/ {{
      proxy_pass http://{backend};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
      proxy_connect_timeout 10s;
      proxy_buffering off;
    }}
    location /api/ {{
      proxy_pass http://api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"#
    )
}

/// haproxy.cfg for a run: one thread, `mode http`, the WebSocket timeouts
/// of the nginx seeds (`timeout tunnel 3600s`), everything to the echo
/// backend (its WebSocket and its HTTP answer alike). With `tls`: `ssl
/// crt` with ALPN h2 then http/1.1 (HTTP/2 only when `http2`); without:
/// `proto h2` (h2c with prior knowledge) when `http2`, else HTTP/1.1.
/// `maxconn` stays under the harness's open-file limit (two descriptors
/// a proxied connection), which HAProxy otherwise refuses to start with.
fn haproxy_cfg(
    workers: usize,
    port: u16,
    backend: SocketAddr,
    tls: Option<&Certs>,
    http2: bool,
) -> String {
    let bind = match (tls, http2) {
        (Some(c), true) => format!(" ssl crt {} alpn h2,http/1.1", c.haproxy_pem().display()),
        (Some(c), false) => format!(" ssl crt {} alpn http/1.1", c.haproxy_pem().display()),
        (None, true) => " proto h2".to_string(),
        (None, false) => String::new(),
    };
    format!(
        r#"global
  nbthread {workers}
  maxconn 9000
defaults
  mode http
  timeout connect 10s
  timeout client 3600s
  timeout server 3600s
  timeout tunnel 3600s
frontend bench
  bind 127.0.0.1:{port}{bind}
  default_backend echo
backend echo
  server echo {backend}
"#
    )
}

/// What h2load prints: "finished in 10.00s, 53340.50 req/s, 5.38MB/s",
/// "requests: N total, N started, N done, N succeeded, F failed, E
/// errored, T timeout", "status codes: N 2xx, 0 3xx, 0 4xx, 0 5xx" and the
/// mean of "time for request:  min max mean sd +/- sd".
pub fn parse_h2load(out: &str) -> Sample {
    let mut s = Sample::new();
    let nums = |l: &str| -> Vec<f64> {
        l.split([' ', ','])
            .filter_map(|w| w.parse::<f64>().ok())
            .collect()
    };
    for l in out.lines() {
        let l = l.trim();
        if let Some(rest) = l.strip_prefix("finished in ") {
            if let Some(rate) = rest
                .split(", ")
                .nth(1)
                .and_then(|r| r.strip_suffix(" req/s"))
            {
                if let Ok(v) = rate.parse() {
                    s.insert("requests_per_sec".into(), v);
                }
            }
        } else if let Some(rest) = l.strip_prefix("requests: ") {
            let n = nums(rest);
            if n.len() == 7 {
                s.insert("requests".into(), n[3]);
                s.insert("failed".into(), n[4] + n[5] + n[6]);
            }
        } else if let Some(rest) = l.strip_prefix("status codes: ") {
            let n = nums(rest);
            if n.len() == 4 {
                s.insert("non_2xx".into(), n[1] + n[2] + n[3]);
            }
        } else if let Some(rest) = l.strip_prefix("time for request:") {
            if let Some(mean) = rest.split_whitespace().nth(2) {
                if let Some(ms) = wrk_ms(mean) {
                    s.insert("mean_ms".into(), ms);
                }
            }
        }
    }
    s
}

/// [`NGINX_TUNED`] as lines of nginx.conf's `http` block, each after a
/// line break.
fn nginx_tuning() -> String {
    NGINX_TUNED
        .split_inclusive(';')
        .map(|d| format!("\n  {}", d.trim()))
        .collect()
}

/// Scenario-specific derived numbers, and ringway-load's latency names
/// (`latency_p99_ms`) shortened to the tables' (`p99_ms`).
fn derive(sc: &Scenario, s: &mut Sample) {
    for q in ["p50", "p99", "p999", "max"] {
        if let Some(v) = s.get(&format!("latency_{q}_ms")).copied() {
            s.insert(format!("{q}_ms"), v);
        }
    }
    if sc.name.ends_with("stream") {
        if let Some(bytes) = s.get("bytes").copied() {
            s.insert("gb".into(), bytes / 1e9);
        }
    }
}

/// The keys of the `negotiated` object of a load's JSON line (`tlshs`:
/// `TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519` → handshakes).
fn negotiated(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    (v.get("negotiated").and_then(|n| n.as_object()))
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default()
}

/// A traced run's sample: each system call's count per relayed message
/// (`syscall_NAME`), with `relayed` and `errors` from the load's sample.
/// Each unit of an echo load (a round trip, an echoed message) crosses the
/// proxy twice: client to backend, backend to client. strace runs from
/// the load's warmup to the end of its measured `window`, a little longer
/// than the window, at the same (traced) pace throughout, so the units
/// counted in the window are scaled to the time traced.
fn per_relayed(sc: &Scenario, load: &Sample, t: &Traced, window: Duration) -> Sample {
    let share = t.secs / window.as_secs_f64().max(1e-9);
    let relayed = 2.0 * load.get(sc.units).copied().unwrap_or(0.0) * share;
    let mut s = Sample::new();
    s.insert("relayed".into(), relayed);
    s.insert("traced_secs".into(), t.secs);
    s.insert(
        "errors".into(),
        load.get("errors").copied().unwrap_or(0.0) + f64::from(u8::from(relayed == 0.0)),
    );
    if relayed > 0.0 {
        for (name, n) in &t.calls {
            s.insert(format!("{SYSCALL}{name}"), *n as f64 / relayed);
        }
    }
    s
}

/// `window warmup=1.000 duration=2.000` → (warmup, duration).
fn window_of(line: &str) -> Option<(Duration, Duration)> {
    let num = |key: &str| -> Option<Duration> {
        let v = line.split_whitespace().find_map(|w| w.strip_prefix(key))?;
        Some(Duration::from_secs_f64(v.parse::<f64>().ok()?))
    };
    Some((num("warmup=")?, num("duration=")?))
}

/// What wrk prints: "Requests/sec: 51673.54", the latency distribution
/// ("50%  0.89ms", "99%  2.16ms"), "Non-2xx or Non-3xx responses: N", and
/// the p99.9 line of [`WRK_P999`] ("p99.9 3120us").
pub fn parse_wrk(out: &str) -> Sample {
    let mut s = Sample::new();
    for l in out.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["Requests/sec:", v] => {
                if let Ok(v) = v.parse() {
                    s.insert("requests_per_sec".into(), v);
                }
            }
            ["50%", v] => {
                if let Some(ms) = wrk_ms(v) {
                    s.insert("p50_ms".into(), ms);
                }
            }
            ["99%", v] => {
                if let Some(ms) = wrk_ms(v) {
                    s.insert("p99_ms".into(), ms);
                }
            }
            ["p99.9", v] => {
                if let Some(ms) = wrk_ms(v) {
                    s.insert("p999_ms".into(), ms);
                }
            }
            [n, "requests", "in", ..] => {
                if let Ok(n) = n.parse() {
                    s.insert("requests".into(), n);
                }
            }
            ["Non-2xx", "or", "Non-3xx", "responses:", n] => {
                if let Ok(n) = n.parse() {
                    s.insert("non_2xx".into(), n);
                }
            }
            _ => {}
        }
    }
    s
}

fn wrk_ms(v: &str) -> Option<f64> {
    if let Some(x) = v.strip_suffix("us") {
        x.parse::<f64>().ok().map(|x| x / 1000.0)
    } else if let Some(x) = v.strip_suffix("ms") {
        x.parse().ok()
    } else if let Some(x) = v.strip_suffix('s') {
        x.parse::<f64>().ok().map(|x| x * 1000.0)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_load_window() {
        let (w, d) = super::window_of("window warmup=1.000 duration=2.500").unwrap();
        assert_eq!((w.as_millis(), d.as_millis()), (1000, 2500));
        assert!(super::window_of("window warmup=x duration=1").is_none());
        assert!(super::window_of("started").is_none());
    }

    use super::*;

    #[test]
    fn reads_wrk_output() {
        let out = "Running 10s test @ http://127.0.0.1:1/api/items?id=1\n\
  1 threads and 50 connections\n\
  Latency Distribution\n\
     50%  890.00us\n\
     75%    1.02ms\n\
     99%    2.16ms\n\
  516735 requests in 10.00s, 80.32MB read\n\
Requests/sec:  51673.54\n\
p99.9 3120us\n";
        let s = parse_wrk(out);
        assert_eq!(s["requests_per_sec"], 51673.54);
        assert_eq!(s["p50_ms"], 0.89);
        assert_eq!(s["p99_ms"], 2.16);
        assert_eq!(s["p999_ms"], 3.12);
        assert_eq!(s["requests"], 516735.0);
        assert!(!s.contains_key("non_2xx"));
    }

    #[test]
    fn targets_round_trip_names() {
        for t in Target::ALL {
            assert_eq!(Target::parse(&t.label().replace(' ', "-")), Some(t));
        }
        assert_eq!(Target::parse("haproxy"), Some(Target::Haproxy));
        assert_eq!(Target::parse("apache"), None);
    }

    #[test]
    fn every_scenario_has_a_headline() {
        for n in Scenario::NAMES {
            let s = Scenario::new(n, true);
            assert_eq!(s.name, n);
            assert!(!s.metrics.is_empty());
            assert!(s.load_command("127.0.0.1:1").contains("127.0.0.1:1"));
            // Wherever CPU per unit shows, its user and system parts follow.
            let keys: Vec<&str> = s.metrics.iter().map(|m| m.key.as_str()).collect();
            if let Some(i) = keys.iter().position(|k| *k == "cpu_per_unit") {
                assert_eq!(keys[i + 1..i + 3], ["user_per_unit", "sys_per_unit"], "{n}");
            }
            assert_eq!(
                s.syscalls,
                s.units == "round_trips" || s.units == "messages"
            );
        }
        let lowrate = Scenario::new("lowrate", false);
        assert!(lowrate.runs(Target::NginxTuned) && lowrate.syscalls);
        assert!(!Scenario::new("hold", false).runs(Target::NginxTuned));
        assert!(Scenario::new("hold", false).runs(Target::Nginx));
    }

    #[test]
    fn tls_scenarios() {
        for quick in [true, false] {
            let defaults = Scenario::defaults(quick);
            assert!(defaults.contains(&"tls-handshake") && defaults.contains(&"wss-hold"));
            assert_eq!(defaults.contains(&"wss-stream"), !quick);
            assert!(defaults.iter().all(|n| Scenario::NAMES.contains(n)));
        }
        assert_eq!(Scenario::defaults(false), Scenario::NAMES);
        for n in Scenario::NAMES {
            if Scenario::HTTP2.contains(&n) {
                continue;
            }
            let sc = Scenario::new(n, false);
            let tls = n.starts_with("tls-") || n.starts_with("wss-");
            assert_eq!(sc.tls, tls, "{n}");
            assert_eq!(sc.runs(Target::Direct), !tls, "{n}");
            assert!(sc.runs(Target::Nginx) && sc.runs(Target::RingwayEpoll));
            assert_eq!(
                sc.load_command("A")
                    .contains(" --tls-ca ca.pem --tls-name localhost "),
                tls
            );
            if tls {
                assert!(!sc.runs(Target::NginxTuned), "{n}");
            }
        }
        let hold = Scenario::new("wss-hold", false);
        assert!(hold
            .load_command("A")
            .starts_with("ringway-load hold --target A --path /ws/ -n 8000 "));
        assert!(hold
            .metrics
            .iter()
            .any(|m| m.label.starts_with("connect + TLS + upgrade")));
        let quick_hold = Scenario::new("wss-hold", true);
        assert!(quick_hold.load_command("A").contains(" -n 200 "));
        let hs = Scenario::new("tls-handshake", false);
        assert_eq!(hs.metrics[0].key, "cpu_per_unit");
        assert!(hs
            .load_command("A")
            .starts_with("ringway-load tlshs --target A --path /health "));
        assert!(!hs.load_command("A").contains("--resume"));
        assert!(Scenario::new("tls-resume", true)
            .load_command("A")
            .contains(" --resume "));
        let pp = Scenario::new("wss-pingpong", false);
        assert_eq!(pp.metrics[0].key, "cpu_per_unit");
        assert!(pp.metrics.iter().any(|m| m.key == "round_trips_per_sec"));
        assert_eq!(
            Scenario::new("wss-stream", false).metrics[0].key,
            "mb_per_sec"
        );
        let mut s = Sample::new();
        s.insert("bytes".into(), 2e9);
        derive(&Scenario::new("wss-stream", true), &mut s);
        assert_eq!(s["gb"], 2.0);
    }

    fn certs() -> Certs {
        Certs {
            ca: "/t/ca.pem".into(),
            cert: "/t/cert.pem".into(),
            key: "/t/key.pem".into(),
        }
    }

    #[test]
    fn ringway_config_with_and_without_tls() {
        let backend: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let at = Path::new("ringway.toml");
        let plain = ringway_toml(1, "epoll", backend, None, None);
        assert!(
            !plain.contains("tls") && !plain.contains("/health"),
            "{plain}"
        );
        assert!(plain.contains("listen = [\"127.0.0.1:0\"]\n\n[servers.bench.locations.\"/ws/\"]"));
        let c = ringway_config::parse_str(&plain, at).unwrap();
        assert!(c.servers[0].tls.is_none());

        let text = ringway_toml(2, "io_uring", backend, Some(&certs()), None);
        assert!(
            text.contains("tls = { cert = \"/t/cert.pem\", key = \"/t/key.pem\" }\n"),
            "{text}"
        );
        let c = ringway_config::parse_str(&text, at).unwrap();
        let s = &c.servers[0];
        let tls = s.tls.as_ref().unwrap();
        assert_eq!(
            (tls.cert.as_deref(), tls.key.as_deref()),
            (
                Some(Path::new("/t/cert.pem")),
                Some(Path::new("/t/key.pem"))
            )
        );
        assert_eq!(s.listen, ["127.0.0.1:0".parse::<SocketAddr>().unwrap()]);
        let keys: Vec<&str> = s.locations.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(keys, ["= /health", "/ws/", "/api/"]);
    }

    #[test]
    fn nginx_config_with_and_without_tls() {
        let backend: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let dir = Path::new("/d");
        let plain = nginx_conf(1, dir, 8080, backend, false, None, None);
        assert!(
            plain.contains("    listen 127.0.0.1:8080;\n    location /ws/ {"),
            "{plain}"
        );
        assert!(!plain.contains("ssl") && !plain.contains("/health"));
        let tuned = nginx_conf(1, dir, 8080, backend, true, None, None);
        assert!(tuned.contains("proxy_buffers 8 64k;"));
        let tls = nginx_conf(2, dir, 8443, backend, false, Some(&certs()), None);
        for line in [
            "worker_processes 2;",
            "    listen 127.0.0.1:8443 ssl;\n    ssl_certificate /t/cert.pem;\n    \
             ssl_certificate_key /t/key.pem;\n    ssl_protocols TLSv1.2 TLSv1.3;\n    \
             ssl_session_cache shared:SSL:10m;\n    ssl_session_tickets on;\n    \
             location = /health { return 200 \"OK\"; }\n    location /ws/ {",
        ] {
            assert!(tls.contains(line), "{line:?} not in\n{tls}");
        }
    }

    #[test]
    fn http2_configurations() {
        let backend: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let at = Path::new("ringway.toml");
        let site = Path::new("/run/static");
        for tls in [None, Some(certs())] {
            let text = ringway_toml(1, "epoll", backend, tls.as_ref(), Some(site));
            let c = ringway_config::parse_str(&text, at).unwrap();
            let s = &c.servers[0];
            let keys: Vec<&str> = s.locations.iter().map(|l| l.key.as_str()).collect();
            let want: &[&str] = if tls.is_some() {
                &["= /health", "= /r", "/static/", "/ws/", "/api/"]
            } else {
                &["= /r", "/static/", "/ws/", "/api/"]
            };
            assert_eq!(keys, want, "{text}");
            let h2 = if tls.is_some() {
                "http2 = true\n"
            } else {
                "http2 = \"h2c\"\n"
            };
            assert!(text.contains(h2), "{text}");
            assert!(text.contains("alias = \"/run/static/\""), "{text}");
            assert!(text.contains("body = \"hello from the proxy\""), "{text}");

            let n = nginx_conf(
                1,
                Path::new("/d"),
                8443,
                backend,
                false,
                tls.as_ref(),
                Some(site),
            );
            let listen = if tls.is_some() {
                "listen 127.0.0.1:8443 ssl http2;"
            } else {
                "listen 127.0.0.1:8443 http2;"
            };
            for line in [
                listen,
                "location = /r { return 200 \"hello from the proxy\"; }",
                "    keepalive_requests 1000000;\n",
                "location /static/ { alias /run/static/; }",
                "upstream api { server 127.0.0.1:7000; keepalive 32; }",
            ] {
                assert!(n.contains(line), "{line:?} not in\n{n}");
            }
        }
        let h = haproxy_cfg(1, 9000, backend, Some(&certs()), true);
        for line in [
            "  bind 127.0.0.1:9000 ssl crt /t/haproxy.pem alpn h2,http/1.1\n",
            "  mode http\n",
            "  timeout tunnel 3600s\n",
            "  server echo 127.0.0.1:7000\n",
            "  nbthread 1\n",
        ] {
            assert!(h.contains(line), "{line:?} not in\n{h}");
        }
        assert!(haproxy_cfg(1, 9000, backend, None, true).contains(":9000 proto h2\n"));
        assert!(haproxy_cfg(1, 9000, backend, None, false).contains(":9000\n"));
    }

    #[test]
    fn http2_scenarios() {
        for n in Scenario::HTTP2 {
            let sc = Scenario::new(n, false);
            assert!(Scenario::NAMES.contains(&n));
            assert!(sc.http2 && !sc.runs(Target::Direct) && !sc.runs(Target::NginxTuned));
            assert!(sc.runs(Target::RingwayIoUring) && sc.runs(Target::RingwayEpoll));
            assert_eq!(sc.runs(Target::Nginx), !n.starts_with("h2ws-"), "{n}");
            assert_eq!(sc.runs(Target::Haproxy), n.contains("ws"), "{n}");
            assert_eq!(sc.tls, !n.starts_with("h2c-"), "{n}");
        }
        for n in ["pingpong", "wss-hold", "http"] {
            assert!(!Scenario::new(n, false).runs(Target::Haproxy));
        }
        let quick = Scenario::defaults(true);
        for n in ["h2-proxy", "h2ws-pingpong", "h2ws-hold"] {
            assert!(quick.contains(&n));
        }
        assert!(!quick.contains(&"h2-static") && !quick.contains(&"h1wss-hold"));
        assert_eq!(
            Scenario::new("h2-static", false).load_command("A"),
            "h2load -c 10 -m 10 -t 1 --warm-up-time 1s -D 10s https://A/static/4k.bin"
        );
        assert_eq!(
            Scenario::new("h2c-proxy", true).load_command("A"),
            "h2load -c 10 -m 10 -t 1 --warm-up-time 1s -D 2s http://A/api/items?id=1"
        );
        let hold = Scenario::new("h2ws-hold", false).load_command("A");
        assert!(
            hold.starts_with("ringway-load hold --target A --path /ws/ -n 5000 "),
            "{hold}"
        );
        assert!(
            hold.contains(" --echo-first ") && hold.contains(" --h2 "),
            "{hold}"
        );
        let twin = Scenario::new("h1wss-hold", false).load_command("A");
        assert_eq!(twin.replace(" --h2", ""), twin);
        assert_eq!(hold.replace(" --h2", ""), twin);
        let pp = Scenario::new("h2ws-pingpong", true).load_command("A");
        assert!(pp.contains(" -n 20 ") && pp.contains(" --h2 ") && pp.contains("--tls-ca"));
    }

    #[test]
    fn reads_h2load_output() {
        let out = "Application protocol: h2\n\
finished in 2.00s, 3040.50 req/s, 139.60KB/s\n\
requests: 6081 total, 6085 started, 6081 done, 6079 succeeded, 2 failed, 0 errored, 0 timeout\n\
status codes: 6079 2xx, 0 3xx, 1 4xx, 1 5xx\n\
                     min         max         mean         sd        +/- sd\n\
time for request:      224us     16.09ms      1.29ms      2.08ms    89.21%\n";
        let s = parse_h2load(out);
        assert_eq!(s["requests_per_sec"], 3040.5);
        assert_eq!(
            (s["requests"], s["failed"], s["non_2xx"]),
            (6079.0, 2.0, 2.0)
        );
        assert_eq!(s["mean_ms"], 1.29);
        assert!(parse_h2load("nothing").is_empty());
    }

    #[test]
    fn negotiated_parameters() {
        let j = r#"{"mode":"tlshs","handshakes":9,"negotiated":{"TLSv1_3 X":8,"TLSv1_2 Y":1}}"#;
        assert_eq!(negotiated(j), ["TLSv1_3 X", "TLSv1_2 Y"]);
        assert!(negotiated(r#"{"mode":"hold"}"#).is_empty());
        assert!(negotiated("holding 3").is_empty());
    }

    /// The run-time certificate, where openssl is installed: the CA loads
    /// as the load's trust anchor, the key is PKCS#8, openssl verifies the
    /// leaf for localhost and 127.0.0.1.
    #[test]
    fn openssl_makes_the_certificate() {
        if !on_path("openssl") {
            eprintln!("openssl is not installed; skipped");
            return;
        }
        let dir = std::env::temp_dir().join(format!("ringway-harness-test-{}", std::process::id()));
        let c = Certs::make(&dir).unwrap();
        let ca = std::fs::read(&c.ca).unwrap();
        assert_eq!(ringway_bench::tls::roots(&ca).unwrap().len(), 1);
        let key = std::fs::read_to_string(&c.key).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
        for check in [
            &["-verify_hostname", "localhost"][..],
            &["-verify_ip", "127.0.0.1"],
        ] {
            let out = Command::new("openssl")
                .args(["verify", "-CAfile"])
                .arg(&c.ca)
                .args(check)
                .arg(&c.cert)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tuned_nginx_lines() {
        assert_eq!(
            nginx_tuning(),
            "\n  proxy_buffer_size 64k;\n  proxy_buffers 8 64k;\n  proxy_busy_buffers_size 128k;"
        );
    }

    #[test]
    fn syscalls_per_relayed_message() {
        let sc = Scenario::new("pingpong", true);
        let load: Sample = [("round_trips", 1000.0), ("errors", 0.0), ("p99_ms", 1.0)]
            .map(|(k, v)| (k.to_string(), v))
            .into();
        // Traced 2.5 s, the 1000 round trips counted in 2 s of it.
        let t = Traced {
            calls: vec![("sendto".into(), 2500), ("io_uring_enter".into(), 50)],
            secs: 2.5,
        };
        let s = per_relayed(&sc, &load, &t, Duration::from_secs(2));
        assert_eq!(s["syscall_sendto"], 1.0);
        assert_eq!(s["syscall_io_uring_enter"], 0.02);
        assert_eq!((s["relayed"], s["errors"]), (2500.0, 0.0));
        assert!(!s.contains_key("p99_ms"), "timed numbers stay out");
        let none = per_relayed(&sc, &Sample::new(), &t, Duration::from_secs(2));
        assert_eq!(none["errors"], 1.0);
        assert!(!none.contains_key("syscall_sendto"));
    }
}
