//! HTTP/2 (RFC 9113) as sans-I/O parts: the frame codec, HPACK (RFC 7541)
//! and, on top of them, the connection state machine. Nothing here owns a
//! socket or a task: bytes go in, events and bytes to send come out, so
//! each part is unit-tested frame by frame and fuzzed; the `conn/` phases
//! own the I/O and run each stream through the HTTP/1.1 request phases.

pub mod conn;
pub mod fields;
pub mod frame;
pub mod hpack;
pub mod request;
pub mod response;
mod stream;
pub mod websocket;
pub mod writer;
