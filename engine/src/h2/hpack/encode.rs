//! Encoding response header blocks (RFC 7541 §6) without a dynamic table.
//!
//! ringway's encoder never inserts into the peer's dynamic table: a field
//! is an indexed static entry when name and value match one (`:status:
//! 200` is one byte), otherwise a literal without indexing (§6.2.2) whose
//! name is a static index when the name is there, or a literal "never
//! indexed" (§6.2.3) for the fields whose values must not be compressed
//! against others (§7.1.3). Each string is Huffman-coded when that is
//! shorter (§5.2). So an HTTP/2 connection costs no encoder table, and
//! nothing a response carries can be probed through the table (§7.1).
//!
//! The dynamic table size update to 0. §4.2: the peer's decoder keeps a
//! table of up to its SETTINGS_HEADER_TABLE_SIZE (4096 unless it says
//! otherwise), and an encoder that uses less signals it with a size update
//! (§6.3) at the start of the next header block. ringway's first block
//! says 0, so the peer can free (or never set up) that table; and after
//! the peer changes SETTINGS_HEADER_TABLE_SIZE, the first block after the
//! acknowledgment says 0 again, because a decoder may take the new
//! setting as the encoder's new maximum (and, when the setting shrank,
//! §4.2 requires the update). It costs one byte per such block.

use super::table::{static_match, StaticMatch};
use super::{huffman, Flags};

/// The encoding context for one HTTP/2 connection's responses: only
/// whether the next block must start with a size update.
#[derive(Debug, Clone)]
pub struct Encoder {
    size_update_pending: bool,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

/// Fields whose values are secrets or per-user state: encoded as literals
/// "never indexed" (§6.2.3, §7.1.3) so an intermediary that re-encodes
/// them keeps them out of its tables too. Names are lowercase (HTTP/2).
pub fn is_sensitive(name: &[u8]) -> bool {
    matches!(
        name,
        b"set-cookie" | b"cookie" | b"authorization" | b"proxy-authorization"
    )
}

impl Encoder {
    /// A context whose first block starts with a size update to 0.
    pub fn new() -> Self {
        Encoder {
            size_update_pending: true,
        }
    }

    /// The peer's SETTINGS_HEADER_TABLE_SIZE changed (call it when its
    /// SETTINGS frame is applied and acknowledged): the next block starts
    /// with a size update to 0 again.
    pub fn peer_table_size_changed(&mut self) {
        self.size_update_pending = true;
    }

    /// Appends one header block for `fields` (names lowercase, pseudo
    /// fields first, as RFC 9113 §8.2 and §8.3 require of the caller) to
    /// `out`. Sensitive fields ([`is_sensitive`]) are never indexed.
    pub fn encode<'a, I>(&mut self, fields: I, out: &mut Vec<u8>)
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
    {
        self.encode_flagged(
            fields.into_iter().map(|(name, value)| {
                let flags = Flags {
                    never_indexed: is_sensitive(name),
                };
                (name, value, flags)
            }),
            out,
        );
    }

    /// As [`Encoder::encode`], with the never-indexed choice per field
    /// (e.g. kept from a decoded field's [`Flags`]).
    pub fn encode_flagged<'a, I>(&mut self, fields: I, out: &mut Vec<u8>)
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8], Flags)>,
    {
        if self.size_update_pending {
            self.size_update_pending = false;
            // 001xxxxx with a 5-bit prefix: max size 0 (§6.3).
            write_int(out, 0x20, 5, 0);
        }
        for (name, value, flags) in fields {
            encode_field(name, value, flags, out);
        }
    }
}

fn encode_field(name: &[u8], value: &[u8], flags: Flags, out: &mut Vec<u8>) {
    // 0001xxxx never indexed (§6.2.3), 0000xxxx without indexing (§6.2.2).
    let literal = if flags.never_indexed { 0x10 } else { 0x00 };
    match static_match(name, value) {
        // 1xxxxxxx: indexed field (§6.1). Not for a never-indexed field:
        // the flag only travels on a literal.
        Some(StaticMatch::Field(i)) if !flags.never_indexed => write_int(out, 0x80, 7, i),
        Some(StaticMatch::Field(i) | StaticMatch::Name(i)) => {
            write_int(out, literal, 4, i);
            write_string(out, value);
        }
        None => {
            write_int(out, literal, 4, 0);
            write_string(out, name);
            write_string(out, value);
        }
    }
}

/// Writes `value` with an N-bit prefix (§5.1) into the low bits of a byte
/// whose high bits are `first`.
pub(super) fn write_int(out: &mut Vec<u8>, first: u8, prefix: u32, value: usize) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    // Bounded by the value's bits, seven per byte.
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Writes a string literal (§5.2), Huffman-coded when that is shorter.
fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    let coded = huffman::encoded_len(s);
    if coded < s.len() {
        write_int(out, 0x80, 7, coded);
        huffman::encode(s, out);
    } else {
        write_int(out, 0x00, 7, s.len());
        out.extend_from_slice(s);
    }
}
