//! The access log: one line per request, nginx's `combined` format plus the
//! request time, e.g.
//!
//! ```text
//! 127.0.0.1 - - [23/Nov/2026:04:02:25 +0000] "GET /ws/ HTTP/1.1" 101 512 "-" "curl/7.88.1" 12.003
//! ```
//!
//! A tunnel is logged when it closes (status 101, bytes sent to the client,
//! its whole duration), as nginx does. Each worker buffers its own lines and
//! writes them in whole lines of at most PIPE_BUF bytes, so lines from
//! different workers never interleave; the buffer is flushed when it fills
//! and once a second.

use std::cell::{Cell, RefCell};
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringway_config::AccessLog as Setting;

use crate::sys;

/// Where lines go: opened once by the control thread, and a duplicate of
/// the descriptor handed to each worker (`try_clone`), which owns it.
#[derive(Debug)]
pub enum Sink {
    Off,
    Fd(OwnedFd),
}

impl Sink {
    pub fn open(setting: &Setting) -> io::Result<Sink> {
        Ok(match setting {
            Setting::Off => Sink::Off,
            Setting::Stdout => Sink::Fd(io::stdout().as_fd().try_clone_to_owned()?),
            Setting::File(path) => {
                let f = OpenOptions::new().create(true).append(true).open(path)?;
                Sink::Fd(f.into())
            }
        })
    }

    /// Another handle on the same destination (for the next worker).
    pub fn try_clone(&self) -> io::Result<Sink> {
        Ok(match self {
            Sink::Off => Sink::Off,
            Sink::Fd(fd) => Sink::Fd(fd.try_clone()?),
        })
    }
}

/// One request's line.
pub struct Entry<'a> {
    pub remote: IpAddr,
    pub method: &'a str,
    pub target: &'a str,
    pub minor_version: u8,
    pub status: u16,
    pub body_bytes: u64,
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    pub duration: Duration,
}

const PIPE_BUF: usize = 4096;
const FLUSH_AT: usize = 32 * 1024;

/// A worker's access log.
pub struct AccessLog {
    sink: Sink,
    buf: RefCell<Vec<u8>>,
    stamp_sec: Cell<u64>,
    stamp: RefCell<String>,
}

impl AccessLog {
    pub fn new(sink: Sink) -> Self {
        Self {
            sink,
            buf: RefCell::new(Vec::new()),
            stamp_sec: Cell::new(u64::MAX),
            stamp: RefCell::new(String::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        matches!(self.sink, Sink::Fd(_))
    }

    pub fn log(&self, e: &Entry<'_>) {
        if !self.enabled() {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.stamp_sec.get() != now {
            self.stamp_sec.set(now);
            *self.stamp.borrow_mut() = time_local(now);
        }
        let mut buf = self.buf.borrow_mut();
        format_line(&mut buf, e, &self.stamp.borrow());
        let full = buf.len() >= FLUSH_AT;
        drop(buf);
        if full {
            self.flush();
        }
    }

    /// Write out buffered lines (whole lines, at most PIPE_BUF per write).
    pub fn flush(&self) {
        let Sink::Fd(fd) = &self.sink else { return };
        let mut buf = self.buf.borrow_mut();
        let mut rest: &[u8] = &buf;
        while !rest.is_empty() {
            let mut cut = rest.len().min(PIPE_BUF);
            if cut < rest.len() {
                // Cut after the last newline that fits.
                cut = rest[..cut]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(cut, |i| i + 1);
            }
            match sys::write(fd.as_fd(), &rest[..cut]) {
                Ok(n) if n > 0 => rest = &rest[n..],
                // The log is best effort: never stall the worker on it.
                _ => break,
            }
        }
        buf.clear();
        if buf.capacity() > 4 * FLUSH_AT {
            buf.shrink_to(FLUSH_AT);
        }
    }
}

/// Append one log line for `e` to `out`.
pub fn format_line(out: &mut Vec<u8>, e: &Entry<'_>, time_local: &str) {
    let _ = write!(
        out,
        "{} - - [{}] \"{} {} HTTP/1.{}\" {} {} \"",
        e.remote, time_local, e.method, e.target, e.minor_version, e.status, e.body_bytes
    );
    quoted(out, e.referer);
    out.extend_from_slice(b"\" \"");
    quoted(out, e.user_agent);
    let _ = writeln!(out, "\" {:.3}", e.duration.as_secs_f64());
}

/// A header value inside a quoted log field; "-" when absent, quotes and
/// control bytes escaped as nginx does (\xHH).
fn quoted(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None | Some(b"") => out.push(b'-'),
        Some(v) => {
            for &b in v {
                if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
                    let _ = write!(out, "\\x{b:02X}");
                } else {
                    out.push(b);
                }
            }
        }
    }
}

/// (year, month 1-12, day 1-31) of a day counted from 1970-01-01
/// (Howard Hinnant's algorithm).
pub fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// nginx's `$time_local` in UTC: "23/Nov/2026:04:02:25 +0000".
pub fn time_local(unix_secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = unix_secs % 86_400;
    let (year, month, day) = civil_date((unix_secs / 86_400) as i64);
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(time_local(0), "01/Jan/1970:00:00:00 +0000");
        // 2026-11-23T04:02:25Z
        assert_eq!(time_local(1_795_406_545), "23/Nov/2026:04:02:25 +0000");
        // 2024-02-29T23:59:59Z (leap day)
        assert_eq!(time_local(1_709_251_199), "29/Feb/2024:23:59:59 +0000");
    }

    #[test]
    fn line_format() {
        let mut out = Vec::new();
        let e = Entry {
            remote: "127.0.0.1".parse().unwrap(),
            method: "GET",
            target: "/ws/",
            minor_version: 1,
            status: 101,
            body_bytes: 512,
            referer: None,
            user_agent: Some(b"curl/7.88.1 \"x\""),
            duration: Duration::from_millis(12_003),
        };
        format_line(&mut out, &e, "23/Nov/2026:04:02:25 +0000");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "127.0.0.1 - - [23/Nov/2026:04:02:25 +0000] \"GET /ws/ HTTP/1.1\" 101 512 \"-\" \"curl/7.88.1 \\x22x\\x22\" 12.003\n"
        );
    }
}
