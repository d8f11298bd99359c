//! ringway's benchmark tools: a WebSocket echo backend (`ringway-echo`) and
//! a load generator (`ringway-load`), both on monoio so that neither is the
//! bottleneck; run them with no proxy between to get the ceiling. The
//! library holds what both binaries share: RFC 6455 framing and handshake
//! (pure, unit-tested), the client connection (plain or TLS), the runtime
//! choice, the command-line and result plumbing.

pub mod cli;
pub mod client;
pub mod h2;
pub mod handshake;
pub mod hist;
pub mod report;
pub mod rt;
pub mod tls;
pub mod ws;
