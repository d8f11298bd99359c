//! ringway: a WebSocket-first reverse proxy on monoio (io_uring or epoll),
//! one pinned runtime per core, sharing nothing on the hot path.
//!
//! A connection's life: accept → read the head into one buffer → parse
//! (`http::request`) → route (`route`) → answer (`return`), proxy a plain
//! request (`proxy::http`), or upgrade and tunnel (`proxy::upgrade`,
//! `proxy::tunnel`).

pub mod access_log;
pub mod conn;
pub mod http;
pub mod idle;
pub mod local;
pub mod pool;
pub mod proxy;
pub mod route;
pub mod runtime;
pub mod static_files;
pub mod sys;
pub mod upstream;
pub mod vars;
