//! The static table (RFC 7541 §2.3.1, Appendix A, transcribed below) and
//! the decoder's dynamic table (§2.3.2, §4).
//!
//! The dynamic table keeps every entry's name and value in one byte
//! buffer and one 16-byte record per entry: an empty table holds no
//! allocation, and a full one holds about its content (at most one and a
//! half times its live bytes, see [`DynamicTable`]) rather than its
//! maximum size up front. Eviction (§4.3, §4.4) drops a record; the bytes
//! go when the buffer is compacted, so each byte is moved a bounded
//! number of times.

use std::collections::VecDeque;
use std::ops::Range;

/// The static table, RFC 7541 Appendix A: index `i` (1-based) is
/// `STATIC_TABLE[i - 1]`.
#[rustfmt::skip]
pub(super) const STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// The static table's length: indexes above it address the dynamic table
/// (§2.3.3).
pub(super) const STATIC_LEN: usize = STATIC_TABLE.len();

/// The static indexes (first, last) of the entries named `name`; entries
/// that share a name are adjacent in Appendix A. Checked against
/// [`STATIC_TABLE`] by the tests.
fn static_name_range(name: &[u8]) -> Option<(usize, usize)> {
    let single = |i| Some((i, i));
    match name {
        b":authority" => single(1),
        b":method" => Some((2, 3)),
        b":path" => Some((4, 5)),
        b":scheme" => Some((6, 7)),
        b":status" => Some((8, 14)),
        b"accept-charset" => single(15),
        b"accept-encoding" => single(16),
        b"accept-language" => single(17),
        b"accept-ranges" => single(18),
        b"accept" => single(19),
        b"access-control-allow-origin" => single(20),
        b"age" => single(21),
        b"allow" => single(22),
        b"authorization" => single(23),
        b"cache-control" => single(24),
        b"content-disposition" => single(25),
        b"content-encoding" => single(26),
        b"content-language" => single(27),
        b"content-length" => single(28),
        b"content-location" => single(29),
        b"content-range" => single(30),
        b"content-type" => single(31),
        b"cookie" => single(32),
        b"date" => single(33),
        b"etag" => single(34),
        b"expect" => single(35),
        b"expires" => single(36),
        b"from" => single(37),
        b"host" => single(38),
        b"if-match" => single(39),
        b"if-modified-since" => single(40),
        b"if-none-match" => single(41),
        b"if-range" => single(42),
        b"if-unmodified-since" => single(43),
        b"last-modified" => single(44),
        b"link" => single(45),
        b"location" => single(46),
        b"max-forwards" => single(47),
        b"proxy-authenticate" => single(48),
        b"proxy-authorization" => single(49),
        b"range" => single(50),
        b"referer" => single(51),
        b"refresh" => single(52),
        b"retry-after" => single(53),
        b"server" => single(54),
        b"set-cookie" => single(55),
        b"strict-transport-security" => single(56),
        b"transfer-encoding" => single(57),
        b"user-agent" => single(58),
        b"vary" => single(59),
        b"via" => single(60),
        b"www-authenticate" => single(61),
        _ => None,
    }
}

/// How a field matches the static table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StaticMatch {
    /// Name and value: the field is that index.
    Field(usize),
    /// The name only: the first index with that name.
    Name(usize),
}

/// The best static-table match for a field, if its name is there.
pub(super) fn static_match(name: &[u8], value: &[u8]) -> Option<StaticMatch> {
    let (first, last) = static_name_range(name)?;
    // Bounded: at most 7 entries share a name (`:status`).
    for i in first..=last {
        if STATIC_TABLE[i - 1].1 == value {
            return Some(StaticMatch::Field(i));
        }
    }
    Some(StaticMatch::Name(first))
}

/// The per-entry overhead RFC 7541 §4.1 adds to name and value lengths.
pub(super) const ENTRY_OVERHEAD: usize = 32;

/// The largest table size ringway's decoder takes: offsets are u32, and
/// the buffer can hold up to two and a half times the maximum (evicted
/// bytes, live bytes, the entry being added). HTTP/2 settings are u32; ringway
/// advertises far less (4096 by default), so a larger setting is clamped.
pub(super) const MAX_TABLE_SIZE: usize = 1 << 30;

/// One dynamic entry: where its name and its value are in the buffer.
/// An entry added with the name of another entry (§6.2.1 with a dynamic
/// name index) shares that entry's name bytes instead of copying them.
#[derive(Debug, Clone, Copy)]
struct Entry {
    name_start: u32,
    name_len: u32,
    value_start: u32,
    value_len: u32,
}

impl Entry {
    fn name(&self) -> Range<usize> {
        let start = self.name_start as usize;
        start..start + self.name_len as usize
    }

    fn value(&self) -> Range<usize> {
        let start = self.value_start as usize;
        start..start + self.value_len as usize
    }

    /// The entry's size per §4.1.
    fn size(&self) -> usize {
        self.name_len as usize + self.value_len as usize + ENTRY_OVERHEAD
    }
}

/// Where a new entry's name comes from.
#[derive(Debug, Clone, Copy)]
pub(super) enum NewName<'a> {
    /// Bytes outside the table (the static table, the header block, the
    /// Huffman scratch buffer).
    Bytes(&'a [u8]),
    /// The name of the dynamic entry at this index (0 is the newest).
    Entry(usize),
}

/// The dynamic table of a decoding context (§2.3.2).
///
/// `bytes` only grows by what an insertion brings from outside (a value,
/// a literal or static name): a dynamic name is shared, so a block of
/// two-byte representations that each re-add a 4 KiB name costs no copy.
/// Evicted entries' bytes stay until the buffer holds more than one and a
/// half times the live entries' bytes; then the live ones are copied to a
/// new buffer (shared names become copies there). That copy is smaller
/// than what it drops, so the table's work stays proportional to the
/// bytes the blocks brought in.
#[derive(Debug, Default)]
pub(super) struct DynamicTable {
    /// Names and values of the entries, and bytes of evicted ones.
    bytes: Vec<u8>,
    /// Oldest at the front, newest at the back.
    entries: VecDeque<Entry>,
    /// The table's size per §4.1, and the most it may be (§4.2).
    size: usize,
    max_size: usize,
}

impl DynamicTable {
    pub(super) fn new(max_size: usize) -> Self {
        DynamicTable {
            max_size: max_size.min(MAX_TABLE_SIZE),
            ..Default::default()
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn size(&self) -> usize {
        self.size
    }

    pub(super) fn max_size(&self) -> usize {
        self.max_size
    }

    /// Heap bytes held (capacity, not length).
    pub(super) fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.entries.capacity() * std::mem::size_of::<Entry>()
    }

    /// The live entries' names and values, as §4.1 counts them.
    fn content(&self) -> usize {
        self.size - ENTRY_OVERHEAD * self.entries.len()
    }

    fn entry(&self, i: usize) -> Option<Entry> {
        let n = self.entries.len();
        if i < n {
            Some(self.entries[n - 1 - i])
        } else {
            None
        }
    }

    /// Entry `i` (0 is the newest): its name and value.
    pub(super) fn get(&self, i: usize) -> Option<(&[u8], &[u8])> {
        let e = self.entry(i)?;
        Some((&self.bytes[e.name()], &self.bytes[e.value()]))
    }

    /// Adds an entry at the front of the table, evicting from the end as
    /// §4.4 says; an entry larger than the maximum empties the table and
    /// is not added.
    pub(super) fn insert(&mut self, name: NewName<'_>, value: &[u8]) {
        let (name_len, shared) = match name {
            NewName::Bytes(b) => (b.len(), None),
            NewName::Entry(i) => match self.entry(i) {
                Some(e) => (e.name_len as usize, Some(e.name_start)),
                // The decoder resolved the index before; nothing to add.
                None => return,
            },
        };
        let size = name_len + value.len() + ENTRY_OVERHEAD;
        if size > self.max_size {
            self.clear();
            return;
        }
        // A shared name stays valid when its entry is evicted below
        // (§4.4, last paragraph): eviction never drops bytes, compaction
        // (after the entry is in) copies what live entries use.
        let name_start = match (shared, name) {
            (Some(start), _) => start as usize,
            (None, NewName::Bytes(b)) => {
                self.reserve(b.len() + value.len());
                self.bytes.extend_from_slice(b);
                self.bytes.len() - b.len()
            }
            (None, NewName::Entry(_)) => return,
        };
        self.reserve(value.len());
        let value_start = self.bytes.len();
        self.bytes.extend_from_slice(value);
        // Bounded by the number of entries; stops at the latest when the
        // table is empty (size is then 0 and the entry fits).
        while self.size + size > self.max_size {
            if self
                .entries
                .pop_front()
                .map(|e| self.size -= e.size())
                .is_none()
            {
                break;
            }
        }
        self.entries.push_back(Entry {
            name_start: name_start as u32,
            name_len: name_len as u32,
            value_start: value_start as u32,
            value_len: value.len() as u32,
        });
        self.size += size;
        self.compact_if_sparse();
    }

    /// Room for `need` more bytes, growing by half again at least (so
    /// growth is amortized) but not doubling: a full table's buffer stays
    /// near its content.
    fn reserve(&mut self, need: usize) {
        let free = self.bytes.capacity() - self.bytes.len();
        if need > free {
            self.bytes
                .reserve_exact(need.max(self.bytes.capacity() / 2).max(64));
        }
    }

    /// A dynamic table size update (§4.3, §6.3): evicts until the table
    /// fits `max_size`. The caller checks it against the setting.
    pub(super) fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size.min(MAX_TABLE_SIZE);
        while self.size > self.max_size {
            match self.entries.pop_front() {
                Some(e) => self.size -= e.size(),
                None => break,
            }
        }
        if self.entries.is_empty() {
            self.clear();
        } else {
            // A smaller table should not keep a larger one's buffers.
            self.compact_if_sparse();
            self.entries.shrink_to(2 * self.entries.len());
        }
    }

    /// Empties the table and gives its memory back.
    fn clear(&mut self) {
        self.bytes = Vec::new();
        self.entries = VecDeque::new();
        self.size = 0;
    }

    /// Copies the live entries to a buffer of their own size once the
    /// buffer holds more than one and a half times that: the copy is
    /// smaller than what it drops, so each byte brought in pays for a
    /// bounded amount of copying.
    fn compact_if_sparse(&mut self) {
        let content = self.content();
        if 2 * self.bytes.len() <= 3 * content {
            return;
        }
        if self.entries.is_empty() {
            self.bytes = Vec::new();
            return;
        }
        let mut bytes = Vec::with_capacity(content);
        // Bounded by the number of entries; every copy fits `content`.
        for e in &mut self.entries {
            let name = e.name();
            let value = e.value();
            e.name_start = bytes.len() as u32;
            bytes.extend_from_slice(&self.bytes[name]);
            e.value_start = bytes.len() as u32;
            bytes.extend_from_slice(&self.bytes[value]);
        }
        self.bytes = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_table_matches_appendix_a_spot_checks() {
        assert_eq!(STATIC_LEN, 61);
        assert_eq!(STATIC_TABLE[0], (&b":authority"[..], &b""[..]));
        assert_eq!(STATIC_TABLE[7], (&b":status"[..], &b"200"[..]));
        assert_eq!(
            STATIC_TABLE[15],
            (&b"accept-encoding"[..], &b"gzip, deflate"[..])
        );
        assert_eq!(STATIC_TABLE[23].0, b"cache-control");
        assert_eq!(STATIC_TABLE[32].0, b"date");
        assert_eq!(STATIC_TABLE[45].0, b"location");
        assert_eq!(STATIC_TABLE[54].0, b"set-cookie");
        assert_eq!(STATIC_TABLE[60].0, b"www-authenticate");
        // Names are lowercase tokens (or pseudo-header names).
        for (name, _) in STATIC_TABLE {
            let body = name.strip_prefix(b":").unwrap_or(name);
            assert!(body.iter().all(|&b| b.is_ascii_lowercase() || b == b'-'));
        }
    }

    #[test]
    fn static_name_ranges_agree_with_the_table() {
        for (i, &(name, value)) in STATIC_TABLE.iter().enumerate() {
            let index = i + 1;
            let (first, last) = static_name_range(name).expect("every name is found");
            let same: Vec<usize> = (1..=STATIC_LEN)
                .filter(|&j| STATIC_TABLE[j - 1].0 == name)
                .collect();
            assert_eq!((first, last), (same[0], *same.last().unwrap()));
            assert_eq!(same.len(), last - first + 1, "adjacent");
            assert_eq!(static_match(name, value), Some(StaticMatch::Field(index)));
        }
        assert_eq!(static_match(b":status", b"302"), Some(StaticMatch::Name(8)));
        assert_eq!(static_match(b"x-custom", b""), None);
        assert_eq!(static_match(b"Date", b""), None, "names are lowercase");
    }

    fn contents(t: &DynamicTable) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..t.len())
            .map(|i| {
                let (n, v) = t.get(i).unwrap();
                (n.to_vec(), v.to_vec())
            })
            .collect()
    }

    #[test]
    fn empty_table_allocates_nothing() {
        let t = DynamicTable::new(4096);
        assert_eq!(t.heap_bytes(), 0);
        assert_eq!(t.get(0), None);
    }

    #[test]
    fn insert_and_evict_per_4_4() {
        // Entries of size 32 + 2 + 2 = 36; a table of 100 holds two.
        let mut t = DynamicTable::new(100);
        t.insert(NewName::Bytes(b"a1"), b"v1");
        t.insert(NewName::Bytes(b"a2"), b"v2");
        assert_eq!(t.size(), 72);
        t.insert(NewName::Bytes(b"a3"), b"v3");
        assert_eq!(t.size(), 72);
        assert_eq!(
            contents(&t),
            [
                (b"a3".to_vec(), b"v3".to_vec()),
                (b"a2".to_vec(), b"v2".to_vec())
            ]
        );
        // Exactly the maximum (68 + 32 = 100): it evicts all the others.
        t.insert(NewName::Bytes(&[b'x'; 68]), b"");
        assert_eq!((t.len(), t.size()), (1, 100));
        // One byte too large for the table: everything goes, nothing is added.
        t.insert(NewName::Bytes(&[b'x'; 69]), b"");
        assert_eq!(t.len(), 0);
        assert_eq!(t.size(), 0);
        assert_eq!(t.heap_bytes(), 0);
    }

    #[test]
    fn a_new_entry_may_name_the_entry_it_evicts() {
        // One entry fits; the new one copies the old one's name first.
        let mut t = DynamicTable::new(60);
        t.insert(NewName::Bytes(b"name"), b"old");
        t.insert(NewName::Entry(0), b"new");
        assert_eq!(contents(&t), [(b"name".to_vec(), b"new".to_vec())]);
        assert_eq!(t.size(), 39);
        // The name is shared, not copied: only the value was added.
        assert_eq!(t.bytes.len(), 10);
        // Compaction (once the evicted "old" outweighs the rest) keeps it.
        t.insert(NewName::Entry(0), b"");
        t.insert(NewName::Entry(0), b"x");
        assert_eq!(contents(&t), [(b"name".to_vec(), b"x".to_vec())]);
        assert_eq!(t.bytes, b"namex");
    }

    #[test]
    fn size_update_evicts_and_releases() {
        let mut t = DynamicTable::new(4096);
        for i in 0..50u8 {
            t.insert(NewName::Bytes(&[b'n', i]), &[b'v'; 40]);
        }
        assert_eq!(t.len(), 50);
        t.set_max_size(200);
        assert_eq!(t.len(), 2);
        assert!(t.size() <= 200);
        assert_eq!(t.get(0).unwrap().0, [b'n', 49]);
        assert!(t.heap_bytes() < 512, "{}", t.heap_bytes());
        t.set_max_size(0);
        assert_eq!((t.len(), t.size(), t.heap_bytes()), (0, 0, 0));
    }

    #[test]
    fn storage_stays_proportional_to_content() {
        let mut t = DynamicTable::new(4096);
        let mut max_heap = 0;
        for i in 0..10_000u32 {
            let value = vec![b'v'; (i % 97) as usize];
            t.insert(NewName::Bytes(&i.to_be_bytes()), &value);
            if i % 3 == 0 {
                t.insert(NewName::Entry((i % 5) as usize), b"x");
            }
            let live: usize = (0..t.len())
                .map(|j| {
                    let (n, v) = t.get(j).unwrap();
                    n.len() + v.len()
                })
                .sum();
            assert!(t.size() <= 4096);
            assert!(2 * t.bytes.len() <= 3 * live, "{} {}", t.bytes.len(), live);
            assert_eq!(live, t.content());
            max_heap = max_heap.max(t.heap_bytes());
        }
        // A full 4 KiB table holds a few KiB more than its content at most.
        assert!(max_heap <= 3 * 4096, "{max_heap}");
    }
}
