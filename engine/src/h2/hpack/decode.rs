//! Decoding header blocks (RFC 7541 §3, §6): one pass over the block,
//! each field handed to a callback as slices into the block, the dynamic
//! table or the caller's scratch buffer (Huffman strings), so nothing is
//! allocated per field.

use std::ops::Range;

use super::table::{DynamicTable, NewName, MAX_TABLE_SIZE, STATIC_LEN, STATIC_TABLE};
use super::{field_size, huffman, Decoded, Flags, HpackError, MAX_INT};

/// The decoding context of one HTTP/2 connection (§2.2): its dynamic table
/// and the table size ringway advertised.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// SETTINGS_HEADER_TABLE_SIZE as ringway advertised it (and the peer
    /// acknowledged): the most a size update may ask for.
    max_allowed: usize,
    /// The setting was lowered below the table's maximum: the next block
    /// must start with a size update (§4.2).
    update_required: bool,
}

/// A string literal read from the block: where its bytes are.
#[derive(Debug, Clone)]
enum Str {
    Block(Range<usize>),
    Scratch(Range<usize>),
}

impl Str {
    fn get<'a>(&self, block: &'a [u8], scratch: &'a [u8]) -> &'a [u8] {
        match self {
            Str::Block(r) => &block[r.clone()],
            Str::Scratch(r) => &scratch[r.clone()],
        }
    }
}

/// A literal's name: an index into one of the tables, or a literal.
enum Name {
    Static(&'static [u8]),
    Dynamic(usize),
    Literal(Str),
}

/// The three literal representations (§6.2).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Literal {
    Incremental,
    NotIndexed,
    NeverIndexed,
}

/// Hands fields to the caller until the list passes its limit.
struct Sink<F> {
    emit: F,
    max_list_size: usize,
    out: Decoded,
}

impl<F: FnMut(&[u8], &[u8], Flags)> Sink<F> {
    fn field(&mut self, name: &[u8], value: &[u8], flags: Flags) {
        let out = &mut self.out;
        out.list_size = out.list_size.saturating_add(field_size(name, value));
        if out.list_size > self.max_list_size {
            out.oversized = true;
        }
        if !out.oversized {
            out.fields += 1;
            (self.emit)(name, value, flags);
        }
    }
}

impl Decoder {
    /// A decoder for a connection where ringway advertises
    /// SETTINGS_HEADER_TABLE_SIZE = `max_table_size` ([`super::DEFAULT_TABLE_SIZE`]
    /// unless configured). Values above 2^30 are taken as 2^30.
    pub fn new(max_table_size: usize) -> Self {
        let max = max_table_size.min(MAX_TABLE_SIZE);
        Decoder {
            table: DynamicTable::new(max),
            max_allowed: max,
            update_required: false,
        }
    }

    /// ringway's SETTINGS_HEADER_TABLE_SIZE changed (call it when the peer
    /// acknowledges the SETTINGS frame, RFC 9113 §6.5.3). When it falls
    /// below the size the peer's encoder uses, the next block must start
    /// with a size update that fits it (§4.2); a raised setting only lets
    /// later size updates ask for more.
    pub fn set_max_table_size(&mut self, max_table_size: usize) {
        let max = max_table_size.min(MAX_TABLE_SIZE);
        self.max_allowed = max;
        if max < self.table.max_size() {
            self.update_required = true;
        }
    }

    /// The dynamic table's size per §4.1 (name + value + 32 per entry).
    pub fn table_size(&self) -> usize {
        self.table.size()
    }

    /// Entries in the dynamic table.
    pub fn table_len(&self) -> usize {
        self.table.len()
    }

    /// Heap bytes the dynamic table holds (0 while it is empty).
    pub fn heap_bytes(&self) -> usize {
        self.table.heap_bytes()
    }

    /// Dynamic entry `i` (0 is the newest, index 62 on the wire).
    pub fn table_entry(&self, i: usize) -> Option<(&[u8], &[u8])> {
        self.table.get(i)
    }

    /// Decodes one complete header block (§3.1), handing each field to
    /// `emit` in order, with its [`Flags`]. Huffman-coded strings are
    /// decoded into `scratch` (cleared first; one buffer per worker will
    /// do, it grows to 8/5 of the longest block's strings).
    ///
    /// Once the fields' total size (name + value + 32 each) passes
    /// `max_list_size`, no more fields are handed out but the block is
    /// still decoded to its end, so the dynamic table stays in step with
    /// the peer's encoder; [`Decoded::oversized`] then says so and the
    /// caller refuses that one request (431, or RST_STREAM). The work is
    /// bounded by the block's length whatever the fields expand to.
    ///
    /// An error is a COMPRESSION_ERROR: the table may be half-updated, so
    /// the connection must end (RFC 9113 §4.3).
    pub fn decode<F>(
        &mut self,
        block: &[u8],
        max_list_size: usize,
        scratch: &mut Vec<u8>,
        emit: F,
    ) -> Result<Decoded, HpackError>
    where
        F: FnMut(&[u8], &[u8], Flags),
    {
        let mut sink = Sink {
            emit,
            max_list_size,
            out: Decoded::default(),
        };
        let mut pos = 0;
        let mut size_updates = 0;
        let mut in_fields = false;
        // Bounded by the block: every turn consumes at least one byte.
        while let Some(&first) = block.get(pos) {
            if first & 0xe0 == 0x20 {
                // 001xxxxx: dynamic table size update (§6.3), only at the
                // start of a block (§4.2), at most two of them.
                if in_fields {
                    return Err(HpackError::SizeUpdateNotAtStart);
                }
                size_updates += 1;
                if size_updates > 2 {
                    return Err(HpackError::TooManySizeUpdates);
                }
                let size = read_int(block, &mut pos, 5)?;
                if size > self.max_allowed {
                    return Err(HpackError::SizeUpdateTooLarge {
                        size,
                        max: self.max_allowed,
                    });
                }
                self.table.set_max_size(size);
                self.update_required = false;
                continue;
            }
            if self.update_required {
                return Err(HpackError::SizeUpdateMissing);
            }
            in_fields = true;
            scratch.clear();
            if first & 0x80 != 0 {
                // 1xxxxxxx: indexed field (§6.1).
                let index = read_int(block, &mut pos, 7)?;
                let (name, value) = self.lookup(index)?;
                sink.field(name, value, Flags::default());
                continue;
            }
            let (kind, prefix) = if first & 0xc0 == 0x40 {
                // 01xxxxxx: literal with incremental indexing (§6.2.1).
                (Literal::Incremental, 6)
            } else if first & 0xf0 == 0x10 {
                // 0001xxxx: literal never indexed (§6.2.3).
                (Literal::NeverIndexed, 4)
            } else {
                // 0000xxxx: literal without indexing (§6.2.2).
                (Literal::NotIndexed, 4)
            };
            self.literal(block, &mut pos, prefix, kind, scratch, &mut sink)?;
        }
        if self.update_required {
            return Err(HpackError::SizeUpdateMissing);
        }
        Ok(sink.out)
    }

    /// The field at `index` in the combined index space (§2.3.3).
    fn lookup(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        match index {
            0 => Err(HpackError::ZeroIndex),
            1..=STATIC_LEN => Ok(STATIC_TABLE[index - 1]),
            _ => self
                .table
                .get(index - STATIC_LEN - 1)
                .ok_or(HpackError::IndexOutOfRange {
                    index,
                    len: STATIC_LEN + self.table.len(),
                }),
        }
    }

    fn literal<F: FnMut(&[u8], &[u8], Flags)>(
        &mut self,
        block: &[u8],
        pos: &mut usize,
        prefix: u32,
        kind: Literal,
        scratch: &mut Vec<u8>,
        sink: &mut Sink<F>,
    ) -> Result<(), HpackError> {
        let index = read_int(block, pos, prefix)?;
        let name = match index {
            0 => Name::Literal(read_string(block, pos, scratch)?),
            1..=STATIC_LEN => Name::Static(STATIC_TABLE[index - 1].0),
            _ => {
                let i = index - STATIC_LEN - 1;
                self.lookup(index)?;
                Name::Dynamic(i)
            }
        };
        let value = read_string(block, pos, scratch)?;
        let value = value.get(block, scratch);
        let flags = Flags {
            never_indexed: kind == Literal::NeverIndexed,
        };
        let name_bytes = match &name {
            Name::Static(s) => s,
            Name::Dynamic(i) => self.table.get(*i).map_or(&[][..], |(n, _)| n),
            Name::Literal(s) => s.get(block, scratch),
        };
        sink.field(name_bytes, value, flags);
        if kind == Literal::Incremental {
            let new_name = match &name {
                Name::Static(s) => NewName::Bytes(s),
                Name::Dynamic(i) => NewName::Entry(*i),
                Name::Literal(s) => NewName::Bytes(s.get(block, scratch)),
            };
            self.table.insert(new_name, value);
        }
        Ok(())
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(super::DEFAULT_TABLE_SIZE)
    }
}

/// Reads an integer with an N-bit prefix (§5.1) starting at `block[*pos]`.
/// At most five continuation bytes, and at most [`MAX_INT`].
pub(super) fn read_int(block: &[u8], pos: &mut usize, prefix: u32) -> Result<usize, HpackError> {
    let mask = ((1u16 << prefix) - 1) as u8;
    let first = *block.get(*pos).ok_or(HpackError::Truncated)?;
    *pos += 1;
    let mut value = u64::from(first & mask);
    if value < u64::from(mask) {
        return Ok(value as usize);
    }
    let mut shift = 0;
    // Bounded: five bytes at most.
    loop {
        let b = *block.get(*pos).ok_or(HpackError::Truncated)?;
        *pos += 1;
        value += u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return Err(HpackError::IntegerOverflow);
        }
    }
    if value > MAX_INT {
        return Err(HpackError::IntegerOverflow);
    }
    Ok(value as usize)
}

/// Reads a string literal (§5.2): raw bytes stay in the block; Huffman
/// ones are decoded onto the end of `scratch`.
fn read_string(block: &[u8], pos: &mut usize, scratch: &mut Vec<u8>) -> Result<Str, HpackError> {
    let huffman = *block.get(*pos).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = read_int(block, pos, 7)?;
    let left = block.len() - *pos;
    if len > left {
        return Err(HpackError::StringBeyondBlock { len, left });
    }
    let raw = *pos..*pos + len;
    *pos += len;
    if huffman {
        let start = scratch.len();
        huffman::decode(&block[raw], scratch)?;
        Ok(Str::Scratch(start..scratch.len()))
    } else {
        Ok(Str::Block(raw))
    }
}
