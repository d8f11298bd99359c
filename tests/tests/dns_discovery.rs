//! DNS discovery end to end: `resolve = true` upstream servers whose
//! members come from a real DNS server (Debian's dnsmasq, started by each
//! test on a free loopback UDP port and named in `[runtime] resolver`),
//! on both drivers. The test rewrites dnsmasq's hosts file and sends it
//! SIGHUP; ringway's resolver thread asks again after max(TTL,
//! `resolver_valid`) and every worker follows: each address `chat.test`
//! resolves to is a member (`ip:port`), members that leave get no new
//! request, and with `on_remove = "close"` their tunnels get close 1001
//! spread over `drain_spread` (`"keep"`, the default, leaves them). A
//! resolver that stops answering leaves the last set in use. `ringway -t`
//! checks the form of a `resolve = true` server, not that it resolves.
//!
//! The backends listen on loopback aliases (127.0.0.2, 127.0.0.3) on one
//! port, so one `name:port` maps to several members; each answers with
//! its own name. Passive health is off (`max_fails = 0`) and a request
//! never goes on to another server (`proxy_next_upstream = ["off"]`).

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ringway_tests::logs::{field, lines_with, wait_lines};
use ringway_tests::prom::{metrics_addr, moved, scrape, scrape_until};
use ringway_tests::switch::{only_from, until_each, who, who_at, Health, Switch};
use ringway_tests::tunnel::{
    assert_echoes, closed_with_1001, heard, open_tunnel, watch_gone, Tunnel,
};
use ringway_tests::*;

both_drivers!(
    members_follow_dns,
    a_failing_resolver_keeps_the_last_set,
    on_remove_close_closes_the_tunnels_of_a_member_gone_from_dns,
    on_remove_keep_leaves_the_tunnels_of_a_member_gone_from_dns,
    config_test_checks_the_form_of_a_resolved_server,
    a_reload_that_adds_a_name_serves_its_members_at_once,
);

/// The bound on every wait for ringway to follow a DNS change: the
/// answers' TTL is 1 s (`--local-ttl=1`) and `resolver_valid` 500 ms, so
/// a change is seen within about a second.
const FOLLOW_WITHIN: Duration = Duration::from_secs(10);
/// How long the access log and the backends' counts may take to show a
/// change (metrics: `prom::SCRAPE_WITHIN`).
const SETTLE: Duration = Duration::from_secs(10);
/// The name the backends are found by.
const NAME: &str = "chat.test";

// ---- a real DNS server ----

/// Lines a child wrote to stderr, and whether it has ended.
#[derive(Default)]
struct Lines {
    state: Mutex<(Vec<String>, bool)>,
    cv: Condvar,
}

impl Lines {
    /// Collect `stderr`'s lines from a thread of their own.
    fn follow(stderr: impl Read + Send + 'static, tag: &'static str) -> Arc<Lines> {
        let lines = Arc::new(Lines::default());
        let l2 = lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[{tag}] {line}");
                l2.state.lock().unwrap().0.push(line);
                l2.cv.notify_all();
            }
            l2.state.lock().unwrap().1 = true;
            l2.cv.notify_all();
        });
        lines
    }

    /// Wait (bounded) until `ready` holds on the lines so far: `Ok`, or
    /// `Err` with every line when the stream ended or time ran out first.
    fn wait(&self, timeout: Duration, ready: impl Fn(&[String]) -> bool) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.lock().unwrap();
        loop {
            if ready(&st.0) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if st.1 || left.is_zero() {
                return Err(st.0.join("\n"));
            }
            st = self.cv.wait_timeout(st, left).unwrap().0;
        }
    }
}

/// One dnsmasq process.
struct DnsProcess {
    child: Child,
    lines: Arc<Lines>,
}

/// Where the DNS servers listen: a loopback address nothing else here
/// uses. dnsmasq listens on TCP as well as UDP, and on 127.0.0.1 the
/// TCP port is often held by one of the many client connections the
/// tests make (their source ports come from the same range), which
/// keeps dnsmasq from starting again on its port.
const DNS_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 53, 1);

/// Debian's dnsmasq answering for `*.test` from a hosts file the test
/// rewrites (`set_hosts`), on [`DNS_IP`] and a port of its own; A
/// answers have a TTL of 1 s and a name it lacks is NXDOMAIN (NODATA for
/// AAAA), answered locally (`--local=/test/`). Killed when dropped.
struct Dns {
    port: u16,
    hosts: PathBuf,
    proc: Option<DnsProcess>,
    /// While dnsmasq is killed: a UDP socket on its address that takes
    /// no datagram (it is connected elsewhere), so queries are refused
    /// (ICMP port unreachable) as by a dead server, and no other test's
    /// DNS server can take the port before this one starts again.
    hold: Option<UdpSocket>,
}

fn dnsmasq_binary() -> PathBuf {
    for p in ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    // On the PATH, or the spawn below says it is missing.
    PathBuf::from("dnsmasq")
}

/// The hosts file's text: each IP with `NAME`.
fn hosts_text(ips: &[Ipv4Addr]) -> String {
    ips.iter().map(|ip| format!("{ip} {NAME}\n")).collect()
}

impl Dns {
    /// Start on a free port with `chat.test` resolving to `ips`.
    fn start(ips: &[Ipv4Addr]) -> Dns {
        let hosts = temp_dir("dns").join("hosts");
        std::fs::write(&hosts, hosts_text(ips)).unwrap();
        let mut last = String::new();
        // A port freed here may be taken before dnsmasq binds it (UDP or
        // TCP): try another, a bounded number of times.
        for _ in 0..20 {
            let port = {
                let s = UdpSocket::bind((DNS_IP, 0)).expect("bind a UDP port");
                s.local_addr().unwrap().port()
            };
            match Self::spawn(port, &hosts, ips.len()) {
                Ok(p) => {
                    return Dns {
                        port,
                        hosts,
                        proc: Some(p),
                        hold: None,
                    }
                }
                Err(e) => last = e,
            }
        }
        panic!("dnsmasq did not start on a free port in 20 tries; the last:\n{last}");
    }

    /// `[runtime] resolver` for this server.
    fn resolver(&self) -> String {
        format!("{DNS_IP}:{}", self.port)
    }

    /// Run dnsmasq on `port` and wait until it has read `hosts` (with
    /// `names` names); `Err` with its output when it did not start.
    fn spawn(port: u16, hosts: &Path, names: usize) -> Result<DnsProcess, String> {
        let mut child = Command::new(dnsmasq_binary())
            .args([
                // In the foreground, as this user, without a pid file,
                // logging to stderr alone, reading no configuration file.
                "--no-daemon",
                "--log-facility=-",
                "--conf-file=/dev/null",
                &format!("--port={port}"),
                &format!("--listen-address={DNS_IP}"),
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                &format!("--addn-hosts={}", hosts.display()),
                "--local-ttl=1",
                // Answer for the test domain alone (NXDOMAIN, NODATA),
                // never REFUSED.
                "--local=/test/",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run dnsmasq ({e}): install it (apt-get install dnsmasq; scripts/test.sh does)")
            });
        let lines = Lines::follow(child.stderr.take().unwrap(), "dnsmasq");
        let read = format!("read {} - {names} names", hosts.display());
        match lines.wait(Duration::from_secs(10), |l| {
            l.iter().any(|l| l.contains(&read))
        }) {
            Ok(()) => Ok(DnsProcess { child, lines }),
            Err(out) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(out)
            }
        }
    }

    /// Make `chat.test` resolve to `ips`: rewrite the hosts file, SIGHUP,
    /// and wait until dnsmasq says it read it.
    fn set_hosts(&mut self, ips: &[Ipv4Addr]) {
        std::fs::write(&self.hosts, hosts_text(ips)).unwrap();
        let p = self.proc.as_ref().expect("dnsmasq is running");
        let before = p.lines.state.lock().unwrap().0.len();
        // SAFETY: kill(2) on our own child's pid (not yet waited for).
        let r = unsafe { libc::kill(p.child.id() as i32, libc::SIGHUP) };
        assert_eq!(r, 0, "SIGHUP to dnsmasq");
        let read = format!("read {} - {} names", self.hosts.display(), ips.len());
        p.lines
            .wait(Duration::from_secs(10), |l| {
                l[before..].iter().any(|l| l.contains(&read))
            })
            .unwrap_or_else(|out| panic!("dnsmasq did not reread its hosts file:\n{out}"));
    }

    /// Stop as a crashed server would (SIGKILL); the port is held (see
    /// `hold`) until `restart`.
    fn kill(&mut self) {
        let Some(mut p) = self.proc.take() else {
            return;
        };
        let _ = p.child.kill();
        let _ = p.child.wait();
        let hold = UdpSocket::bind((DNS_IP, self.port))
            .unwrap_or_else(|e| panic!("holding dnsmasq's port {} after it died: {e}", self.port));
        // Connected to a port nobody uses: datagrams from ringway match
        // no socket and are answered with ICMP port unreachable.
        hold.connect((DNS_IP, 9)).unwrap();
        self.hold = Some(hold);
    }

    /// Start again on the same port with `chat.test` resolving to `ips`.
    fn restart(&mut self, ips: &[Ipv4Addr]) {
        assert!(self.proc.is_none(), "dnsmasq is still running");
        std::fs::write(&self.hosts, hosts_text(ips)).unwrap();
        let mut last = String::new();
        for _ in 0..5 {
            // Let go of the port just before dnsmasq binds it.
            self.hold = None;
            match Self::spawn(self.port, &self.hosts, ips.len()) {
                Ok(p) => {
                    self.proc = Some(p);
                    return;
                }
                Err(e) => last = e,
            }
        }
        panic!("dnsmasq did not start again on port {}:\n{last}", self.port);
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

// ---- backends that name themselves ----

/// The loopback alias 127.0.0.`n`.
fn alias(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

/// Backends named `B2`, `B3`, … on 127.0.0.2, 127.0.0.3, … (one for each
/// of `hosts`), all on one port: healthy [`Switch`]es (no test here asks
/// for `/health`).
fn named_backends(hosts: &[u8]) -> Vec<Switch> {
    const NAMES: [&str; 8] = ["B0", "B1", "B2", "B3", "B4", "B5", "B6", "B7"];
    // The first alias picks the port; another process may hold it on a
    // later alias: pick again, a bounded number of times.
    for _ in 0..50 {
        let first = TcpListener::bind((alias(hosts[0]), 0)).expect("bind a backend");
        let port = first.local_addr().unwrap().port();
        let mut listeners = vec![first];
        for &h in &hosts[1..] {
            match TcpListener::bind((alias(h), port)) {
                Ok(l) => listeners.push(l),
                Err(_) => break,
            }
        }
        if listeners.len() == hosts.len() {
            return hosts
                .iter()
                .zip(listeners)
                .map(|(&h, l)| Switch::on(NAMES[h as usize], l, Health::Ok))
                .collect();
        }
    }
    panic!("no port free on every one of 127.0.0.{hosts:?} in 50 tries");
}

// ---- configuration ----

/// A configuration whose access log (a file) is JSON, with the metrics
/// listener, the group `chat` of the one server `chat.test:PORT`
/// (`resolve = true`, passive health off, `group_extra` lines), and the
/// server `app` proxying `/` to `chat`.
fn config(port: u16, group_extra: &str) -> String {
    // Lines before the first table belong to the harness's [log] table.
    format!(
        r#"log_format = "json"

[metrics]
listen = "127.0.0.1:0"

[upstreams.chat]
servers = [{{ addr = "{NAME}:{port}", resolve = true }}]
max_fails = 0
{group_extra}

[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."/"]
proxy_pass = "http://chat"
proxy_read_timeout = "60s"
proxy_connect_timeout = "2s"
proxy_next_upstream = ["off"]
"#
    )
}

/// `[runtime]` lines: `dns` as the resolver, `resolver_valid = "500ms"`,
/// two workers (the resolver's table must reach both), and `extra`.
fn runtime(dns: &Dns, extra: &str) -> String {
    format!(
        "workers = 2\nresolver = [\"{}\"]\nresolver_valid = \"500ms\"\n{extra}",
        dns.resolver()
    )
}

/// Start ringway with `config` and `runtime` lines, its access log in a
/// file: the process and the log's path.
fn start(config: &str, d: Driver, runtime: &str) -> (Ringway, PathBuf) {
    let log = temp_dir("dns-access").join("access.log");
    let rw = Ringway::start_with_log(config, d, runtime, log.to_str().unwrap());
    (rw, log)
}

// ---- the log ----

/// What a `members changed` line of the name `chat.test:PORT` says.
const CHANGED: &str = "upstream name resolved: members changed";

/// The `members changed` lines of the name `chat.test:PORT`, in order.
fn changes(rw: &Ringway, port: u16) -> Vec<String> {
    lines_with(rw, CHANGED, &[("name", &format!("{NAME}:{port}"))])
}

/// Wait (bounded by [`FOLLOW_WITHIN`]) for the `n`-th `members changed`
/// line of `chat.test:PORT`; it.
fn wait_change(rw: &Ringway, port: u16, n: usize) -> String {
    let name = format!("{NAME}:{port}");
    wait_lines(rw, CHANGED, &[("name", &name)], n, FOLLOW_WITHIN).swap_remove(n - 1)
}

/// A `members changed` line says `addresses`, `added` and `removed`
/// (lists of `ip:port`, as the log writes them: `["a", "b"]`).
fn assert_change(line: &str, addresses: usize, added: &[SocketAddr], removed: &[SocketAddr]) {
    let list = |l: &[SocketAddr]| {
        format!(
            "[{}]",
            l.iter()
                .map(|a| format!("{:?}", a.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    assert_eq!(
        field(line, "addresses"),
        Some(addresses.to_string()),
        "{line}"
    );
    assert!(
        line.contains(&format!(" added={} ", list(added))),
        "added should be {}: {line}",
        list(added)
    );
    assert!(
        line.contains(&format!(" removed={} ", list(removed))),
        "removed should be {}: {line}",
        list(removed)
    );
}

/// No resolution has failed so far (dnsmasq has been up all along).
fn assert_no_failed_resolution(rw: &Ringway, when: &str) {
    let failed = log_lines(rw, "cannot resolve upstream name");
    assert!(
        failed.is_empty(),
        "a resolution failed {when}, with the DNS server up and answering: {failed:#?}"
    );
}

/// The log lines containing `needle`.
fn log_lines(rw: &Ringway, needle: &str) -> Vec<String> {
    lines_with(rw, needle, &[])
}

/// The access log's JSON lines once `ready` holds on them (bounded:
/// each worker flushes at least once a second).
fn access_lines(
    path: &Path,
    ready: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // Complete lines only: a worker may be writing the last one.
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        let lines: Vec<serde_json::Value> = complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        if ready(&lines) {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} never had the lines awaited within {SETTLE:?}:\n{text}",
            path.display()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

// ---- tests ----

/// `chat.test` resolves to 127.0.0.2: from the first request (names are
/// resolved before the workers take connections) every answer is B2's.
/// DNS adds 127.0.0.3: within the TTL bound requests reach both, and the
/// log names the member added. DNS drops 127.0.0.2: new requests go to
/// B3 alone, and the log names the member removed. The access log's
/// `upstream_addr` is the member that answered.
fn members_follow_dns(d: Driver) {
    let b = named_backends(&[2, 3]);
    let (b2, b3) = (&b[0], &b[1]);
    let port = b2.addr.port();
    let mut dns = Dns::start(&[alias(2)]);
    let (rw, log) = start(&config(port, ""), d, &runtime(&dns, ""));
    let proxy = rw.addr("app");

    // Resolved before the first connection: no wait.
    assert_no_failed_resolution(&rw, "at the start");
    for i in 0..10 {
        assert_eq!(
            who_at(proxy, &format!("/first/{i}")),
            (200, "B2".to_string()),
            "request {i} right after the start"
        );
    }
    let first = wait_change(&rw, port, 1);
    assert_change(&first, 1, &[b2.addr], &[]);
    // TTL 1 s is above resolver_valid (500 ms): the TTL decides.
    assert_eq!(field(&first, "next_in").as_deref(), Some("1s"), "{first}");

    // DNS adds 127.0.0.3.
    let added_at = Instant::now();
    dns.set_hosts(&[alias(2), alias(3)]);
    let second = wait_change(&rw, port, 2);
    let seen_after = added_at.elapsed();
    assert_change(&second, 2, &[b3.addr], &[]);
    until_each(proxy, &["B2", "B3"], &["B2", "B3"], FOLLOW_WITHIN);
    // Round robin over the two: both answer.
    let mut got = Vec::new();
    for i in 0..20 {
        let (status, body) = who_at(proxy, &format!("/both/{i}"));
        assert_eq!(status, 200);
        got.push(body);
    }
    assert!(
        got.iter().any(|n| n == "B2") && got.iter().any(|n| n == "B3"),
        "requests should reach both members: {got:?}"
    );
    assert!(b3.requests() > 0);

    // DNS drops 127.0.0.2.
    dns.set_hosts(&[alias(3)]);
    let third = wait_change(&rw, port, 3);
    assert_change(&third, 1, &[], &[b2.addr]);
    only_from(proxy, "B3", FOLLOW_WITHIN);
    let b2_served = b2.requests();
    for i in 0..10 {
        assert_eq!(
            who_at(proxy, &format!("/last/{i}")),
            (200, "B3".to_string())
        );
    }
    assert_eq!(b2.requests(), b2_served, "a removed member got requests");
    // No failure along the way, and exactly the three changes.
    assert_no_failed_resolution(&rw, "while DNS changed");
    assert_eq!(changes(&rw, port).len(), 3, "{}", rw.logs());
    eprintln!("dns_discovery: the added member was logged {seen_after:?} after dnsmasq reread");

    // The access log names the member that answered each request.
    let mut expect: Vec<(String, SocketAddr)> = (0..10)
        .map(|i| (format!("/first/{i}"), b2.addr))
        .chain((0..10).map(|i| (format!("/last/{i}"), b3.addr)))
        .collect();
    for (i, name) in got.iter().enumerate() {
        let addr = if name == "B2" { b2.addr } else { b3.addr };
        expect.push((format!("/both/{i}"), addr));
    }
    let lines = access_lines(&log, |l| {
        expect
            .iter()
            .all(|(uri, _)| l.iter().any(|o| o["request_uri"] == uri.as_str()))
    });
    for (uri, addr) in &expect {
        let line = lines
            .iter()
            .find(|o| o["request_uri"] == uri.as_str())
            .unwrap();
        assert_eq!(line["status"], 200, "{line}");
        assert_eq!(line["upstream_addr"], addr.to_string(), "{line}");
    }
}

/// After a good resolution the resolver dies: ringway logs `cannot
/// resolve upstream name: keeping the last addresses` once and keeps
/// using both members for several `resolver_valid` periods. The resolver
/// comes back on the same port with a changed hosts file: the change is
/// followed and `upstream name resolves again` is logged.
fn a_failing_resolver_keeps_the_last_set(d: Driver) {
    let b = named_backends(&[2, 3]);
    let (b2, b3) = (&b[0], &b[1]);
    let port = b2.addr.port();
    let mut dns = Dns::start(&[alias(2), alias(3)]);
    let (rw, _log) = start(&config(port, ""), d, &runtime(&dns, ""));
    let proxy = rw.addr("app");
    assert_change(&wait_change(&rw, port, 1), 2, &[b2.addr, b3.addr], &[]);
    until_each(proxy, &["B2", "B3"], &["B2", "B3"], FOLLOW_WITHIN);
    assert_no_failed_resolution(&rw, "before the DNS server was killed");

    dns.kill();
    let failed = rw.wait_for_log(
        "cannot resolve upstream name: keeping the last addresses",
        FOLLOW_WITHIN,
    );
    let failed_at = Instant::now();
    assert_eq!(
        field(&failed, "name"),
        Some(format!("{NAME}:{port}")),
        "{failed}"
    );
    assert_eq!(field(&failed, "kept").as_deref(), Some("2"), "{failed}");
    assert!(failed.contains("WARN"), "{failed}");
    // A dead server's port answers with ICMP port unreachable.
    assert!(failed.contains("Connection refused"), "{failed}");

    // For six resolver_valid periods (the resolver asks again every
    // 500 ms while it fails) every request is served by the last set.
    let mut served = Vec::new();
    while failed_at.elapsed() < Duration::from_secs(3) {
        let (status, body) = who(proxy);
        assert_eq!(status, 200, "a request while the resolver is down: {body}");
        served.push(body);
        // Pacing: a request every 20 ms over the window.
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        served.iter().any(|n| n == "B2") && served.iter().any(|n| n == "B3"),
        "both members should still serve while the resolver is down: {served:?}"
    );
    assert!(served.iter().all(|n| n == "B2" || n == "B3"), "{served:?}");
    let warned = log_lines(&rw, "cannot resolve upstream name");
    assert_eq!(warned.len(), 1, "logged once per error: {warned:#?}");
    assert!(log_lines(&rw, "resolves again").is_empty(), "{}", rw.logs());
    assert_eq!(changes(&rw, port).len(), 1, "{}", rw.logs());

    // Back on the same port, with 127.0.0.2 gone.
    dns.restart(&[alias(3)]);
    let again = rw.wait_for_log("upstream name resolves again", FOLLOW_WITHIN);
    assert_eq!(
        field(&again, "name"),
        Some(format!("{NAME}:{port}")),
        "{again}"
    );
    let change = wait_change(&rw, port, 2);
    assert_change(&change, 1, &[], &[b2.addr]);
    only_from(proxy, "B3", FOLLOW_WITHIN);
    assert_eq!(
        log_lines(&rw, "cannot resolve upstream name").len(),
        1,
        "{}",
        rw.logs()
    );
}

/// Tunnels to the members of `chat.test` (127.0.0.2 and .3), then DNS
/// drops 127.0.0.3 and ringway logs the change: the tunnels, and how
/// many reached B3.
fn tunnels_then_drop_b3(
    rw: &Ringway,
    dns: &mut Dns,
    b2: &Switch,
    b3: &Switch,
) -> (Vec<Tunnel>, usize) {
    let proxy = rw.addr("app");
    let port = b2.addr.port();
    assert_change(&wait_change(rw, port, 1), 2, &[b2.addr, b3.addr], &[]);
    let tunnels: Vec<Tunnel> = (0..20)
        .map(|i| open_tunnel(proxy, &format!("/ws/{i}")))
        .collect();
    let on_b2 = tunnels.iter().filter(|t| t.on == b2.name).count();
    let on_b3 = tunnels.iter().filter(|t| t.on == b3.name).count();
    assert_eq!(on_b2 + on_b3, tunnels.len());
    assert!(
        on_b2 >= 3 && on_b3 >= 3,
        "{on_b2} tunnels on B2, {on_b3} on B3"
    );
    assert_eq!(b3.live_tunnels(), on_b3);
    dns.set_hosts(&[alias(2)]);
    assert_change(&wait_change(rw, port, 2), 1, &[], &[b3.addr]);
    (tunnels, on_b3)
}

/// Runtime lines of the tunnel tests: closes spread over 1 s.
const SPREAD_1S: &str = "drain_spread = \"1s\"\nshutdown_timeout = \"10s\"\n";

/// `on_remove = "close"`: 20 tunnels over B2 and B3; DNS drops
/// 127.0.0.3. Every tunnel on B3 gets close 1001 (B3 gets one too),
/// spread over `drain_spread`; those on B2 hear nothing and still echo;
/// new tunnels go to B2; the moved tunnels are counted.
fn on_remove_close_closes_the_tunnels_of_a_member_gone_from_dns(d: Driver) {
    let b = named_backends(&[2, 3]);
    let (b2, b3) = (&b[0], &b[1]);
    let mut dns = Dns::start(&[alias(2), alias(3)]);
    let (rw, _log) = start(
        &config(b2.addr.port(), "on_remove = \"close\"\n"),
        d,
        &runtime(&dns, SPREAD_1S),
    );
    let proxy = rw.addr("app");
    let maddr = metrics_addr(&rw);
    let (mut tunnels, on_b3) = tunnels_then_drop_b3(&rw, &mut dns, b2, b3);
    let logged = Instant::now();

    // Watch every tunnel until each of B3's has closed.
    let seen = watch_gone(&mut tunnels, "B3", logged + Duration::from_secs(10));
    // B3's tunnels close with 1001, B2's hear nothing.
    let times = closed_with_1001(&tunnels, &seen, "B3");
    let first = times.iter().min().unwrap();
    let last = times.iter().max().unwrap();
    assert!(
        last.duration_since(*first) >= Duration::from_millis(400),
        "closes not spread over drain_spread (1 s): the first and the last {:?} apart",
        last.duration_since(*first)
    );
    let closing = log_lines(&rw, "closing tunnels of a removed server (close 1001)");
    assert!(!closing.is_empty(), "{}", rw.logs());
    assert!(
        closing
            .iter()
            .all(|l| field(l, "upstream").as_deref() == Some("chat")
                && field(l, "server") == Some(b3.addr.to_string())),
        "{closing:#?}"
    );
    let logged_tunnels: usize = closing
        .iter()
        .map(|l| {
            field(l, "tunnels")
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(logged_tunnels, on_b3, "{closing:#?}");

    // B2's tunnels still carry messages; new tunnels go to B2.
    assert_echoes(&mut tunnels, Some("B2"), "still here");
    for i in 0..6 {
        let mut t = open_tunnel(proxy, &format!("/ws/after-{i}"));
        assert_eq!(t.on, "B2", "a tunnel opened after 127.0.0.3 left DNS");
        close_websocket(&mut t.ws);
    }

    // B3's side got its close 1001 too, and no tunnel is left on B3.
    b3.assert_tunnels_closed_1001(on_b3, SETTLE);
    b2.assert_no_tunnel_closes("/ws/after-");
    let text = scrape_until(maddr, "the moved tunnels", |t| {
        moved(t, "chat", "removed") == on_b3 as f64
    });
    assert_eq!(moved(&text, "chat", "down"), 0.0, "{text}");
    for t in tunnels.iter_mut().filter(|t| t.on == "B2") {
        close_websocket(&mut t.ws);
    }
}

/// Without `on_remove` (`"keep"`): DNS drops 127.0.0.3, new requests go
/// to B2 alone, and B3's tunnels stay open and echo.
fn on_remove_keep_leaves_the_tunnels_of_a_member_gone_from_dns(d: Driver) {
    let b = named_backends(&[2, 3]);
    let (b2, b3) = (&b[0], &b[1]);
    let mut dns = Dns::start(&[alias(2), alias(3)]);
    let (rw, _log) = start(&config(b2.addr.port(), ""), d, &runtime(&dns, SPREAD_1S));
    let proxy = rw.addr("app");
    let maddr = metrics_addr(&rw);
    let (mut tunnels, on_b3) = tunnels_then_drop_b3(&rw, &mut dns, b2, b3);
    only_from(proxy, "B2", FOLLOW_WITHIN);
    // Nothing comes on any tunnel for one and a half drain_spreads.
    let heard = heard(&mut tunnels, Instant::now() + Duration::from_millis(1500));
    assert!(heard.is_empty(), "kept tunnels heard: {heard:?}");
    assert_echoes(&mut tunnels, None, "still here");
    assert_eq!(b3.live_tunnels(), on_b3);
    assert!(b3.tunnel_closes().is_empty());
    assert!(
        log_lines(&rw, "closing tunnels of a removed server").is_empty(),
        "{}",
        rw.logs()
    );
    let text = scrape(maddr);
    assert_eq!(moved(&text, "chat", "removed"), 0.0, "{text}");
    for t in tunnels.iter_mut() {
        close_websocket(&mut t.ws);
    }
}

/// `ringway -t` checks a `resolve = true` server's form only: a name that
/// does not resolve passes; an IP literal (v4 or v6) and a unix socket
/// fail, naming `upstreams.chat.servers[0].resolve`.
fn config_test_checks_the_form_of_a_resolved_server(d: Driver) {
    let file = |server: &str| {
        format!(
            "[runtime]\ndriver = \"{}\"\nresolver = [\"127.0.0.1:53\"]\n\n[upstreams.chat]\nservers = [{server}]\n\n[servers.app]\nlisten = [\"127.0.0.1:0\"]\n[servers.app.locations.\"/\"]\nproxy_pass = \"http://chat\"\n",
            d.name()
        )
    };
    let (code, out, _) = config_test(&file(
        "{ addr = \"chat.nowhere.invalid:3000\", resolve = true }",
    ));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("test is successful"), "{out}");

    for (server, why) in [
        (
            "{ addr = \"127.0.0.5:3000\", resolve = true }",
            "resolve = true needs a host name with a port",
        ),
        (
            "{ addr = \"[::1]:3000\", resolve = true }",
            "resolve = true needs a host name with a port",
        ),
        (
            "{ addr = \"chat.test\", resolve = true }",
            "resolve = true needs a host name with a port",
        ),
        (
            "{ addr = \"unix:/run/chat.sock\", resolve = true }",
            "a unix socket is not resolved",
        ),
    ] {
        let (code, out, path) = config_test(&file(server));
        assert_eq!(code, 1, "{server}: {out}");
        assert!(
            out.contains(&format!(
                "{}:6: upstreams.chat.servers[0].resolve: {why}",
                path.display()
            )),
            "{server}: {out}"
        );
        assert!(out.contains("configuration test failed"), "{out}");
    }
}

/// A reload that brings in a `resolve = true` name: the name is resolved
/// before the workers switch, so no request after the reload finds the
/// group without its members (no 502 gap).
fn a_reload_that_adds_a_name_serves_its_members_at_once(d: Driver) {
    let b = named_backends(&[2, 3]);
    let (b2, b3) = (&b[0], &b[1]);
    let port = b2.addr.port();
    let dns = Dns::start(&[alias(2)]);
    let named = config(port, "");
    let literal = named.replace(
        &format!("{{ addr = \"{NAME}:{port}\", resolve = true }}"),
        &format!("{{ addr = \"{}\" }}", b3.addr),
    );
    assert_ne!(named, literal);
    let (rw, _log) = start(&literal, d, &runtime(&dns, ""));
    let proxy = rw.addr("app");
    assert_eq!(who_at(proxy, "/before"), (200, "B3".to_string()));
    for round in 0..3 {
        let (to, want) = if round % 2 == 0 {
            (&named, "B2")
        } else {
            (&literal, "B3")
        };
        rw.reload(to, 2 * (round + 1)); // a line per worker
        for i in 0..20 {
            assert_eq!(
                who_at(proxy, &format!("/after/{round}/{i}")),
                (200, want.to_string()),
                "request {i} right after reload {round}"
            );
        }
    }
    assert_no_failed_resolution(&rw, "across the reloads");
}
