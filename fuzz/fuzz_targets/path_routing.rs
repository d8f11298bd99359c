//! Path normalisation and location matching. A normalised path is
//! canonical (no dot segment, no repeated slash, idempotent), survives the
//! nginx escape round trip, and routes so that every spelling of a denied
//! prefix lands on the denying location.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ringway::http::path;
use ringway::route;
use ringway_config::{Config, LocationMatch};

const CONF: &str = r#"
[servers.s]
listen = "127.0.0.1:0"
[servers.s.locations."/"]
return = { status = 200 }
[servers.s.locations."/p/"]
return = { status = 200 }
[servers.s.locations."/p/admin/"]
return = { status = 403 }
[servers.s.locations."= /p/admin"]
return = { status = 403 }
[servers.s.locations."^~ /static/"]
return = { status = 200 }
[servers.s.locations."~* \\.(php|cgi)$"]
return = { status = 403 }
"#;

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| ringway_config::parse_str(CONF, std::path::Path::new("fuzz.toml")).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = path::normalize(raw) else {
        return;
    };
    assert!(p.starts_with('/'));
    assert!(!p.contains("//"), "{p:?}");
    assert!(!p.contains("/./") && !p.contains("/../"), "{p:?}");
    assert!(!p.ends_with("/.") && !p.ends_with("/.."), "{p:?}");
    assert!(!p.contains('\0'));
    assert_eq!(path::resolve(&p).unwrap(), p.as_ref(), "idempotent");
    let mut escaped = String::new();
    path::escape_uri(&mut escaped, &p);
    assert_eq!(
        path::normalize(&escaped).unwrap(),
        p.as_ref(),
        "escape round trip"
    );

    let server = &config().servers[0];
    let m = route::find_location(server, &p).expect("/ matches everything");
    match &m.location.matcher {
        LocationMatch::Exact(e) => assert_eq!(e, p.as_ref()),
        LocationMatch::Prefix { path: pre, .. } => assert!(p.starts_with(pre.as_str())),
        LocationMatch::Regex { regex, .. } => assert!(regex.is_match(&p)),
        LocationMatch::Named(n) => panic!("the named location @{n} matched a URI"),
    }
    if p.starts_with("/p/admin/") && !m.location.key.starts_with('~') {
        assert_eq!(
            m.location.key, "/p/admin/",
            "{raw:?} -> {p:?} escaped the deny"
        );
    }
});
