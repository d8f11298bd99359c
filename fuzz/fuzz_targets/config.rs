//! The configuration loader: any text either loads or is refused with an
//! error that names the file; it never panics. Names are not resolved
//! (every host is 127.0.0.1) so no input reaches for the network.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway_config::Resolve;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("fuzz.toml");
    match ringway_config::parse_str_with(text, path, Resolve::Loopback) {
        Ok(c) => {
            assert!(!c.servers.is_empty());
            for s in &c.servers {
                assert!(!s.listen.is_empty());
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("fuzz.toml"), "{msg}");
        }
    }
});
