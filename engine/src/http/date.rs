//! RFC 9110 §5.6.7 dates: the IMF-fixdate of a time, and the `Date`
//! field of an answer made now (formatted once a second per thread).

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
pub fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let local = crate::access_log::time_local(secs); // "23/Nov/2026:04:02:25 +0000"
    let (day, rest) = local.split_at(2);
    let month = &rest[1..4];
    let year = &rest[5..9];
    let time = &rest[10..18];
    format!(
        "{}, {day} {month} {year} {time} GMT",
        DAYS[((secs / 86_400) % 7) as usize]
    )
}

thread_local! {
    /// The second last formatted, and its `Date: ...\r\n` line.
    static NOW: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

/// Append `Date: <now>\r\n`: every answer ringway makes or relays
/// carries one (RFC 9110 §6.6.1: an origin with a clock sends it; nginx
/// writes its own on proxied answers too).
pub fn push_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    NOW.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            c.1.clear();
            c.1.extend_from_slice(b"Date: ");
            c.1.extend_from_slice(http_date(now).as_bytes());
            c.1.extend_from_slice(b"\r\n");
            c.0 = secs;
        }
        out.extend_from_slice(&c.1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn imf_fixdate() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn date_field_is_a_whole_line() {
        let mut out = Vec::new();
        push_date(&mut out);
        push_date(&mut out);
        let s = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = s.split_terminator("\r\n").collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with("Date: ") && lines[0].ends_with(" GMT"),
            "{s}"
        );
    }
}
