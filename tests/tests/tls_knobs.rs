//! The TLS knobs nginx users set, ringway and nginx side by side with the
//! same settings, probed with `openssl s_client`: `protocols`
//! (`ssl_protocols`), `ciphers` (`ssl_ciphers`, OpenSSL syntax),
//! `session_tickets` (`ssl_session_tickets off`), `session_timeout` and
//! `session_cache` (`ssl_session_timeout`, `ssl_session_cache`) and
//! `reject_handshake` (`ssl_reject_handshake on` on a default server
//! without a certificate).

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use ringway_tests::nginx::Nginx;
use ringway_tests::tls_support::*;
use ringway_tests::*;

both_drivers!(
    tls_knobs_as_nginx_applies_them,
    session_timeout_and_cache_as_nginx
);

/// Whether a handshake with these `openssl s_client` options completes,
/// and what s_client printed.
fn handshake(addr: SocketAddr, sni: &str, opts: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .arg("-servername")
        .arg(sni)
        .args(opts);
    let out = run_bounded(
        &mut cmd,
        Some(b"Q\n".to_vec()),
        Duration::from_secs(20),
        "needs the openssl command",
    );
    let all = out.all();
    // A completed handshake names its cipher; a refused one says 0000 or
    // (NONE).
    let done = all.contains("Cipher is ") && !all.contains("Cipher is (NONE)");
    (done, all)
}

/// The probes: (description, SNI, s_client options, expected to complete).
const PROBES: &[(&str, &str, &[&str], bool)] = &[
    ("TLS 1.3", "a.test", &["-tls1_3"], true),
    (
        "TLS 1.2 with the cipher allowed",
        "a.test",
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
        true,
    ),
    (
        "TLS 1.2 with a cipher left out",
        "a.test",
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"],
        false,
    ),
    (
        "an unknown name on the rejecting default",
        "nobody.test",
        &[],
        false,
    ),
];

fn tls_knobs_as_nginx_applies_them(d: Driver) {
    let c = certs();
    let (cert, key) = (c.a_cert.display(), c.a_key.display());
    let rw = Ringway::start(
        &format!(
            r#"
[servers.nobody]
listen = ["127.0.0.1:0"]
tls = {{ reject_handshake = true }}
[servers.nobody.locations."/"]
return = {{ status = 204 }}

[servers.a]
listen = ["127.0.0.1:0"]
server_name = ["a.test"]
tls = {{ cert = "{cert}", key = "{key}", protocols = ["TLSv1.2", "TLSv1.3"], ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256", session_tickets = false }}
[servers.a.locations."/"]
return = {{ status = 200, body = "a" }}

[servers.tickets]
listen = ["127.0.0.2:0"]
tls = {{ cert = "{cert}", key = "{key}" }}
[servers.tickets.locations."/"]
return = {{ status = 200, body = "t" }}

[servers.old]
listen = ["127.0.0.3:0"]
tls = {{ cert = "{cert}", key = "{key}", protocols = ["TLSv1.2"] }}
[servers.old.locations."/"]
return = {{ status = 200, body = "o" }}
"#
        ),
        d,
    );
    // The one server sharing the rejecting default's address.
    let addr = rw.addr("a");
    assert_eq!(addr, rw.addr("nobody"));
    for &(what, sni, opts, want) in PROBES {
        let (done, out) = handshake(addr, sni, opts);
        assert_eq!(done, want, "ringway: {what}\n{out}");
    }
    // TLS 1.2 only: 1.3 is refused.
    assert!(handshake(rw.addr("old"), "o", &["-tls1_2"]).0);
    assert!(!handshake(rw.addr("old"), "o", &["-tls1_3"]).0);
    // Session tickets: none from `a` (session_tickets = false), one from
    // a server with the default.
    let ticket = |addr| handshake(addr, "a.test", &["-tls1_2"]).1;
    assert!(
        !ticket(addr).contains("TLS session ticket:"),
        "{}",
        ticket(addr)
    );
    assert!(ticket(rw.addr("tickets")).contains("TLS session ticket:"));

    let Some(bin) = nginx::binary() else { return };
    let ng = Nginx::start_with_http(
        &bin,
        "tls-knobs-nginx",
        // nginx takes ssl_protocols from an address's default server (1.22's
        // default leaves 1.3 out); ringway from the servers that answer.
        "server { listen {LISTEN} ssl default_server; ssl_reject_handshake on; \
         ssl_protocols TLSv1.2 TLSv1.3; }",
        "ssl",
        &format!(
            "server_name a.test; ssl_certificate {cert}; ssl_certificate_key {key}; \
             ssl_protocols TLSv1.2 TLSv1.3; \
             ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256; \
             ssl_session_tickets off; location / {{ return 200 a; }}"
        ),
    );
    for &(what, sni, opts, want) in PROBES {
        let (done, out) = handshake(ng.addr, sni, opts);
        assert_eq!(done, want, "nginx: {what}\n{out}");
    }
    let out = handshake(ng.addr, "a.test", &["-tls1_2"]).1;
    assert!(!out.contains("TLS session ticket:"), "{out}");
}

/// How many of `s_client -reconnect`'s handshakes resumed the session
/// (it makes six: one new, five that may be resumed).
fn reused(addr: SocketAddr, opts: &[&str]) -> usize {
    let mut all = vec!["-tls1_2", "-reconnect"];
    all.extend_from_slice(opts);
    let (done, out) = handshake(addr, "s.test", &all);
    assert!(done, "{out}");
    out.matches("Reused, TLSv1.2").count()
}

/// The ticket lifetime hint a TLS 1.2 handshake gets.
fn lifetime_hint(addr: SocketAddr) -> String {
    let out = handshake(addr, "s.test", &["-tls1_2"]).1;
    out.lines()
        .find_map(|l| l.trim().strip_prefix("TLS session ticket lifetime hint: "))
        .unwrap_or_else(|| panic!("no ticket in {out}"))
        .to_string()
}

/// `session_timeout` (`ssl_session_timeout`: the tickets' lifetime hint,
/// and nothing resumes at "0s") and `session_cache` (`ssl_session_cache`:
/// session IDs resume with it, not without), beside nginx.
fn session_timeout_and_cache_as_nginx(d: Driver) {
    let c = certs();
    let (cert, key) = (c.a_cert.display(), c.a_key.display());
    let server = |name: &str, ip: &str, tls: &str| {
        format!(
            "[servers.{name}]\nlisten = [\"{ip}:0\"]\ntls = {{ cert = \"{cert}\", key = \"{key}\"{tls} }}\n\
             [servers.{name}.locations.\"/\"]\nreturn = {{ status = 204 }}\n"
        )
    };
    let rw = Ringway::start(
        &[
            server("default", "127.0.0.4", ""),
            server("hour", "127.0.0.5", ", session_timeout = \"1h\""),
            server("zero", "127.0.0.6", ", session_timeout = \"0s\""),
            server("ids", "127.0.0.7", ", session_tickets = false"),
            server(
                "nothing",
                "127.0.0.8",
                ", session_tickets = false, session_cache = false",
            ),
        ]
        .concat(),
        d,
    );
    assert_eq!(lifetime_hint(rw.addr("default")), "300 (seconds)");
    assert_eq!(lifetime_hint(rw.addr("hour")), "3600 (seconds)");
    assert_eq!(reused(rw.addr("default"), &[]), 5);
    assert_eq!(reused(rw.addr("zero"), &[]), 0);
    assert_eq!(reused(rw.addr("ids"), &["-no_ticket"]), 5);
    assert_eq!(reused(rw.addr("nothing"), &["-no_ticket"]), 0);

    let Some(bin) = nginx::binary() else { return };
    let ng = |tag: &str, lines: &str| {
        Nginx::start(
            &bin,
            tag,
            "ssl",
            &format!(
                "ssl_certificate {cert}; ssl_certificate_key {key}; {lines} \
                 location / {{ return 204; }}"
            ),
        )
    };
    let hour = ng("tls-session-hour", "ssl_session_timeout 1h;");
    assert_eq!(lifetime_hint(hour.addr), "3600 (seconds)");
    let ids = ng(
        "tls-session-ids",
        "ssl_session_tickets off; ssl_session_cache shared:SSL:1m;",
    );
    assert_eq!(reused(ids.addr, &["-no_ticket"]), 5);
    let nothing = ng(
        "tls-session-nothing",
        "ssl_session_tickets off; ssl_session_cache off;",
    );
    assert_eq!(reused(nothing.addr, &["-no_ticket"]), 0);
}
