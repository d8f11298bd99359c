//! The process figures every Prometheus client library exports
//! (<https://prometheus.io/docs/instrumenting/writing_clientlibs/#process-metrics>):
//! CPU time, start time, virtual and resident memory, open descriptors and
//! their limit. Read from /proc by the metrics thread for each scrape:
//! `/proc/self/stat` (CPU times, start, virtual size, resident set),
//! `/proc/stat` (the boot time the start is counted from, as the Go and
//! Python clients do), `/proc/self/limits` (the open-file soft limit) and
//! the entries of `/proc/self/fd`. The parsers take the files' text and
//! return values (unit-tested on fixed text); [`read`] does the I/O.

use std::io;

/// The `process_*` figures of one scrape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resources {
    /// User plus system CPU time of every thread, in seconds.
    pub cpu_seconds: f64,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
    pub virtual_memory_bytes: u64,
    pub resident_memory_bytes: u64,
    /// Descriptors open at the read (the one reading `/proc/self/fd`
    /// included, as in the other clients).
    pub open_fds: u64,
    /// The open-file soft limit (`RLIMIT_NOFILE`).
    pub max_fds: Limit,
}

/// A resource limit as /proc/PID/limits shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    At(u64),
    Unlimited,
}

/// The fields of /proc/PID/stat used here, in the file's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `utime + stime` (fields 14 and 15), in clock ticks.
    pub cpu_ticks: u64,
    /// `starttime` (field 22): clock ticks after boot.
    pub start_ticks: u64,
    /// `vsize` (field 23), in bytes.
    pub vsize: u64,
    /// `rss` (field 24), in pages.
    pub rss_pages: u64,
}

/// Parses /proc/PID/stat (proc(5)): `pid (comm) state ppid …`. The
/// command name may hold spaces and parentheses, so fields are counted
/// from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state).
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        cpu_ticks: field(14)?.checked_add(field(15)?)?,
        start_ticks: field(22)?,
        vsize: field(23)?,
        rss_pages: field(24)?,
    })
}

/// The `btime` line of /proc/stat: boot time in seconds since the epoch.
pub fn parse_btime(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit of the `Max open files` line of /proc/PID/limits.
pub fn parse_max_open_files(text: &str) -> Option<Limit> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    match line.split_whitespace().next()? {
        "unlimited" => Some(Limit::Unlimited),
        n => n.parse().ok().map(Limit::At),
    }
}

impl Resources {
    /// The figures from what was read: `ticks` clock ticks per second,
    /// `page` bytes per page, `btime` the boot time.
    pub fn from_parts(
        stat: Stat,
        btime: u64,
        ticks: u64,
        page: u64,
        open_fds: u64,
        max_fds: Limit,
    ) -> Resources {
        let ticks = ticks.max(1) as f64;
        Resources {
            cpu_seconds: stat.cpu_ticks as f64 / ticks,
            start_time_seconds: btime as f64 + stat.start_ticks as f64 / ticks,
            virtual_memory_bytes: stat.vsize,
            resident_memory_bytes: stat.rss_pages.saturating_mul(page),
            open_fds,
            max_fds,
        }
    }
}

/// This process's figures, now.
pub fn read() -> io::Result<Resources> {
    fn parsed<T>(path: &str, parse: impl FnOnce(&str) -> Option<T>) -> io::Result<T> {
        let text = std::fs::read_to_string(path)?;
        parse(&text).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("cannot parse {path}"))
        })
    }
    let stat = parsed("/proc/self/stat", parse_stat)?;
    let btime = parsed("/proc/stat", parse_btime)?;
    let max_fds = parsed("/proc/self/limits", parse_max_open_files)?;
    let open_fds = std::fs::read_dir("/proc/self/fd")?.count() as u64;
    Ok(Resources::from_parts(
        stat,
        btime,
        crate::sys::clock_ticks()?,
        crate::sys::page_size()?,
        open_fds,
        max_fds,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line (Linux 6.x), the command name made hostile: spaces and
    /// a `) ` inside it.
    const STAT: &str = "48213 (ring way) S (1)) S 48190 48213 48190 34816 48213 4194560 \
        1303 0 0 0 250 75 0 0 20 0 6 0 9876543 1234567168 3210 \
        18446744073709551615 94 95 96 0 0 0 0 4096 17990 0 0 0 17 3 0 0 0 0 0 \
        98 99 100 101 102 103 104 0\n";

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        assert_eq!(
            parse_stat(STAT),
            Some(Stat {
                cpu_ticks: 325,
                start_ticks: 9_876_543,
                vsize: 1_234_567_168,
                rss_pages: 3210,
            })
        );
        assert_eq!(parse_stat("48213 (x) S 1 2"), None, "too short");
        assert_eq!(parse_stat("no parenthesis"), None);
        let bad = STAT.replace(" 250 75 ", " 250 x ");
        assert_eq!(parse_stat(&bad), None, "a field that is no number");
    }

    #[test]
    fn btime_is_read_from_its_line() {
        let text = "cpu  10 20 30\ncpu0 1 2 3\nintr 5 0\nctxt 99\nbtime 1700000000\nprocesses 4\n";
        assert_eq!(parse_btime(text), Some(1_700_000_000));
        assert_eq!(parse_btime("cpu 1 2\n"), None);
        assert_eq!(parse_btime("btime soon\n"), None);
    }

    #[test]
    fn the_soft_open_file_limit() {
        let text = "\
Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max processes             513187               513187               processes \n\
Max open files            524288               1048576              files     \n\
Max locked memory         8388608              8388608              bytes     \n";
        assert_eq!(parse_max_open_files(text), Some(Limit::At(524_288)));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_open_files(unlimited), Some(Limit::Unlimited));
        assert_eq!(parse_max_open_files("Max processes 1 1 processes\n"), None);
    }

    #[test]
    fn figures_in_seconds_and_bytes() {
        let stat = parse_stat(STAT).unwrap();
        let r = Resources::from_parts(stat, 1_700_000_000, 100, 4096, 12, Limit::At(1024));
        assert_eq!(r.cpu_seconds, 3.25);
        assert_eq!(r.start_time_seconds, 1_700_000_000.0 + 98_765.43);
        assert_eq!(r.virtual_memory_bytes, 1_234_567_168);
        assert_eq!(r.resident_memory_bytes, 3210 * 4096);
        assert_eq!((r.open_fds, r.max_fds), (12, Limit::At(1024)));
    }

    /// This test process's own figures: plausible, and the limit is the
    /// one getrlimit reports.
    #[test]
    fn this_process_reads() {
        let r = read().expect("/proc readable");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // btime is whole seconds: the start may read up to 1 s early.
        assert!(r.start_time_seconds <= now + 1.0, "{r:?}");
        assert!(r.start_time_seconds > now - 24.0 * 3600.0, "{r:?}");
        assert!(r.resident_memory_bytes > 0 && r.resident_memory_bytes <= r.virtual_memory_bytes);
        assert!(r.open_fds >= 3, "{r:?}");
        assert_eq!(r.max_fds, Limit::At(crate::sys::nofile_limit()));
    }
}
