//! The metrics listener as tests read it: where it listens (from its log
//! line), a scrape (once, or until the text shows a change), and the
//! values of one metric family filtered by labels, from Prometheus text.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use crate::logs::field;
use crate::{get_once, Ringway};

/// The bound on [`scrape_until`]: how long metrics may take to show a
/// change.
pub const SCRAPE_WITHIN: Duration = Duration::from_secs(10);

/// The metrics listener's address, from its log line.
pub fn metrics_addr(rw: &Ringway) -> SocketAddr {
    let line = rw.wait_for_log("metrics: serving", Duration::from_secs(10));
    field(&line, "addr")
        .expect("addr= in the metrics line")
        .parse()
        .expect("metrics addr")
}

/// `GET /metrics` (asserted 200): the text.
pub fn scrape(maddr: SocketAddr) -> String {
    let (status, head, body) = get_once(maddr, "x", "/metrics", "");
    assert_eq!(status, 200, "{head}");
    body
}

/// Scrape until `ready` holds on the text (bounded by [`SCRAPE_WITHIN`]);
/// the text.
pub fn scrape_until(maddr: SocketAddr, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + SCRAPE_WITHIN;
    loop {
        let text = scrape(maddr);
        if ready(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed {what} within {SCRAPE_WITHIN:?}:\n{text}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// The values of the series `name` whose labels include `labels` (label
/// values holding no quote or comma, as names and addresses do).
pub fn values(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, lbls) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if n != name {
            continue;
        }
        let have: Vec<(&str, &str)> = lbls
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim_matches('"')))
            .collect();
        if labels.iter().all(|l| have.contains(l)) {
            out.push(value.parse().unwrap_or(f64::NAN));
        }
    }
    out
}

/// The sum of [`values`].
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    values(text, name, labels).iter().sum()
}

/// `ringway_tunnels_moved_total` of `upstream` for `reason` (0 when there
/// is no series).
pub fn moved(text: &str, upstream: &str, reason: &str) -> f64 {
    sum(
        text,
        "ringway_tunnels_moved_total",
        &[("upstream", upstream), ("reason", reason)],
    )
}
