//! `etag` on and off for static files, beside nginx with the same lines:
//! whether the tag is sent, and what `If-None-Match` and an entity tag in
//! `If-Range` then do.

use std::net::SocketAddr;

use ringway_tests::nginx::Nginx;
use ringway_tests::*;

both_drivers!(etag_off_drops_the_tag_and_the_conditions_on_it);

/// (status, the ETag sent if any) for a GET of `path` with `extra` fields.
fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, Option<String>) {
    let (status, head, _) = get_once(addr, "app", path, extra);
    (status, field_values(&head, "etag").pop())
}

fn etag_off_drops_the_tag_and_the_conditions_on_it(d: Driver) {
    let site = temp_dir("etag-site");
    std::fs::write(site.join("a.txt"), "hello etag").unwrap();
    let s = site.display();
    let rw = Ringway::start(
        &format!(
            r#"
[servers.app]
listen = ["127.0.0.1:0"]

[servers.app.locations."/on/"]
alias = "{s}/"

[servers.app.locations."/off/"]
alias = "{s}/"
etag = false
"#
        ),
        d,
    );
    let nginx = nginx::binary().map(|bin| {
        let server =
            format!("location /on/ {{ alias {s}/; }} location /off/ {{ alias {s}/; etag off; }}");
        Nginx::start(&bin, "etag-nginx", "", &server)
    });
    let (status, tag) = get(rw.addr("app"), "/on/a.txt", "");
    assert_eq!(status, 200);
    let tag = tag.expect("an ETag with etag on");
    let inm = format!("If-None-Match: {tag}\r\n");
    let if_range = format!("Range: bytes=0-1\r\nIf-Range: {tag}\r\n");
    let cases: [(&str, &str, (u16, bool)); 5] = [
        ("/off/a.txt", "", (200, false)),
        ("/on/a.txt", &inm, (304, true)),
        // Without a tag, If-None-Match is not looked at.
        ("/off/a.txt", &inm, (200, false)),
        ("/on/a.txt", &if_range, (206, true)),
        // An entity tag in If-Range cannot match: the whole file.
        ("/off/a.txt", &if_range, (200, false)),
    ];
    for (path, extra, want) in cases {
        let (status, tag) = get(rw.addr("app"), path, extra);
        assert_eq!((status, tag.is_some()), want, "ringway {path} {extra:?}");
        if let Some(ng) = &nginx {
            let (n_status, n_tag) = get(ng.addr, path, extra);
            assert_eq!(
                (n_status, n_tag.is_some()),
                (status, tag.is_some()),
                "{path} {extra:?}: nginx vs ringway"
            );
        }
    }
}
