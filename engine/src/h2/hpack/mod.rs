//! HPACK, the header compression of HTTP/2 (RFC 7541), for ringway's
//! server side: a [`Decoder`] for request header blocks and an [`Encoder`]
//! for response header blocks. Pure functions over bytes, no I/O (see
//! `h2`'s header); the connection concatenates HEADERS and CONTINUATION
//! fragments into one block and decodes it whole.
//!
//! What comes from where in the RFC:
//! - §2.3 and Appendix A: the static table, the dynamic table and their
//!   one index space (`table.rs`).
//! - §4: the dynamic table's size (name + value + 32 per entry, §4.1), its
//!   maximum and size updates (§4.2, §4.3), eviction on insert (§4.4).
//! - §5.1 integers, §5.2 string literals, Appendix B the Huffman code
//!   (`huffman.rs`, the code as transcribed data).
//! - §6: the binary format of each representation (`decode.rs`,
//!   `encode.rs`); §6.2.3 "never indexed" is reported to the caller.
//! - §7.3 (memory) and RFC 9113 §6.5.2 (SETTINGS_MAX_HEADER_LIST_SIZE):
//!   the decoded list is counted as name + value + 32 per field, and past
//!   the caller's limit fields are no longer handed out, but the block is
//!   still decoded to the end so the dynamic table stays in step; the
//!   caller answers 431 or resets that one stream.
//!
//! Memory: an idle [`Decoder`] owns only its dynamic table, which holds
//! no allocation while empty and about its content otherwise. The
//! [`Encoder`] never adds to the peer's dynamic table (every field is a
//! static index or a literal that is not indexed), so it holds no table
//! at all: one flag.
//!
//! Every error is a COMPRESSION_ERROR for HTTP/2 (RFC 9113 §4.3): the
//! connection ends, since the dynamic table can no longer be trusted.

mod decode;
mod encode;
mod huffman;
mod table;

pub use decode::Decoder;
pub use encode::{is_sensitive, Encoder};

/// SETTINGS_HEADER_TABLE_SIZE's initial value (RFC 9113 §6.5.2), and the
/// table size ringway advertises unless configured otherwise.
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// What the decoder says about one field beside its name and value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// Sent as a literal "never indexed" (§6.2.3): an intermediary that
    /// re-encodes the field must keep it a never-indexed literal (§7.1.3).
    pub never_indexed: bool,
}

/// The outcome of decoding one header block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decoded {
    /// The list went past the limit: the fields from the one that crossed
    /// it on were not handed out (the block was still decoded whole).
    pub oversized: bool,
    /// The whole list's size as RFC 9113 §6.5.2 counts it (name + value +
    /// 32 per field), the fields not handed out included (saturating).
    pub list_size: usize,
    /// Fields handed to the callback.
    pub fields: usize,
}

/// Why a header block cannot be decoded: a COMPRESSION_ERROR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    #[error("HPACK index 0 (RFC 7541 §6.1)")]
    ZeroIndex,
    #[error("HPACK index {index} beyond the tables' {len} entries")]
    IndexOutOfRange { index: usize, len: usize },
    #[error("HPACK integer too large")]
    IntegerOverflow,
    #[error("header block ends inside a representation")]
    Truncated,
    #[error("HPACK string of {len} bytes with {left} left in the block")]
    StringBeyondBlock { len: usize, left: usize },
    #[error("Huffman string contains EOS (RFC 7541 §5.2)")]
    HuffmanEos,
    #[error("Huffman padding longer than 7 bits (RFC 7541 §5.2)")]
    HuffmanPaddingTooLong,
    #[error("Huffman padding is not a prefix of EOS (RFC 7541 §5.2)")]
    HuffmanPadding,
    #[error("dynamic table size update to {size} above the {max} advertised")]
    SizeUpdateTooLarge { size: usize, max: usize },
    #[error("dynamic table size update after a field (RFC 7541 §4.2)")]
    SizeUpdateNotAtStart,
    #[error("more than two dynamic table size updates at a block's start")]
    TooManySizeUpdates,
    #[error("no dynamic table size update after the setting was lowered (RFC 7541 §4.2)")]
    SizeUpdateMissing,
}

/// The largest integer the decoder takes (§5.1 lets an implementation
/// limit them): every length, index and size ringway meets is far below.
const MAX_INT: u64 = u32::MAX as u64;

/// The size of a field in a header list (RFC 9113 §6.5.2) or of a table
/// entry (RFC 7541 §4.1).
fn field_size(name: &[u8], value: &[u8]) -> usize {
    name.len() + value.len() + table::ENTRY_OVERHEAD
}

#[cfg(test)]
mod tests;
