//! ringway: a WebSocket-first reverse proxy on monoio (io_uring or epoll),
//! one pinned runtime per core, sharing nothing on the hot path.
//!
//! A connection's life (`conn`, and `conn/LIFECYCLE.md`): accept → read
//! the head into one buffer → parse once (`http::request`) → route
//! (`route`) → answer (`return`, static files), proxy a plain request
//! (`proxy::http`), or upgrade and tunnel (`proxy::upgrade`,
//! `proxy::tunnel`) → finish (the error answer and the access log), over a
//! `transport` (plain TCP today).
//!
//! Modules depend downward only: `runtime` → `conn` → `proxy` /
//! `static_files` → `transport`, `http`, `upstream`, `sys`; nothing imports
//! a module that imports it back (`tests/tests/layering.rs` checks it).
//! `metrics` (per-worker counters, their encoders and the `/metrics`
//! listener thread) imports none of the others.
#![deny(unsafe_code)]

pub mod access_log;
pub mod admission;
pub mod conn;
pub mod error;
pub mod h2;
pub mod h2io;
pub mod handoff;
pub mod http;
pub mod limit;
pub mod metrics;
pub mod proxy;
pub mod real_ip;
pub mod rewrites;
pub mod route;
pub mod runtime;
pub mod shared;
pub mod snapshot;
pub mod static_files;
pub mod sys;
pub mod tls;
pub mod transport;
pub mod upstream;
pub mod vars;
pub mod wake;
