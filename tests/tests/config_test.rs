//! `ringway -t`: a good file passes, a bad one names the file, line and key.

use ringway_tests::{config_test, config_test_bytes};

#[test]
fn good_file_passes() {
    let (code, out, _) = config_test(
        "[servers.ws]\nlisten = [\"127.0.0.1:0\"]\n[servers.ws.locations.\"= /health\"]\nreturn = { status = 200, body = \"OK\" }\n[servers.ws.locations.\"/ws/\"]\nproxy_pass = \"http://127.0.0.1:3000\"\nproxy_read_timeout = \"3600s\"\n",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("test is successful"), "{out}");
}

#[test]
fn bundled_example_passes() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/ringway.toml");
    let (code, out, _) = config_test(&std::fs::read_to_string(example).unwrap());
    assert_eq!(code, 0, "{out}");
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let (code, out, path) =
        config_test("[servers.ws]\nlisten = [\"127.0.0.1:0\"]\n\nlisten_backlog = 5\n");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{}:4: servers.ws.listen_backlog: unknown key (valid here: listen, ",
            path.display()
        )),
        "{out}"
    );
}

#[test]
fn misspelt_key_suggests_the_closest_by_its_full_path() {
    let (code, out, path) = config_test(
        "[servers.ws]\nlisten = [\"127.0.0.1:0\"]\n[servers.ws.locations.\"/ws/\"]\nproxy_pass = \"http://127.0.0.1:3000\"\n\n\nproxy_read_timout = \"5s\"\n",
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{}:7: servers.ws.locations.\"/ws/\".proxy_read_timout: unknown key; did you mean `proxy_read_timeout`?\n",
            path.display()
        )),
        "{out}"
    );
    let (code, out, path) = config_test("[upstream.u]\nservers = [{ addr = \"127.0.0.1:1\" }]\n");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{}:1: upstream: unknown key; did you mean `upstreams`?",
            path.display()
        )),
        "{out}"
    );
}

#[test]
fn syntax_error_names_line_and_column_on_one_line() {
    let (code, out, path) = config_test(
        "[servers.ws]\nlisten = [\"127.0.0.1:0\"]\n[servers.ws.locations.\"/\"]\nproxy_read_timeout = 5s\n",
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "ringway: {}:4:23: servers.ws.locations.\"/\".proxy_read_timeout: expected newline, `#`\n",
            path.display()
        )),
        "{out}"
    );
    assert!(!out.contains(" | "), "no snippet: {out}");
}

#[test]
fn a_duplicate_table_names_its_first_line() {
    let (code, out, path) = config_test(
        "[servers.ws]\nlisten = [\"127.0.0.1:0\"]\n[servers.ws.locations.\"/\"]\nreturn = { status = 200 }\n[servers.ws]\n",
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{}:5:1: servers.ws: table defined twice (first on line 1)",
            path.display()
        )),
        "{out}"
    );
}

#[test]
fn the_http2_warning_names_its_line() {
    let (code, out, path) = config_test(
        "[servers.ws]\nlisten = [\"127.0.0.1:0\"]\nhttp2 = true\n[servers.ws.locations.\"/\"]\nreturn = { status = 200 }\n",
    );
    assert_eq!(code, 0, "a warning does not fail the test: {out}");
    assert!(
        out.contains(&format!(
            "ringway: warning: {}:3: servers.ws.http2: true offers HTTP/2 through TLS ALPN and this server has no tls",
            path.display()
        )),
        "{out}"
    );
}

#[test]
fn bad_duration_names_file_line_and_key() {
    let (code, out, path) = config_test(
        "[servers.ws]\nlisten = [\"127.0.0.1:0\"]\n[servers.ws.locations.\"/ws/\"]\nproxy_pass = \"http://127.0.0.1:3000\"\nproxy_read_timeout = \"an hour\"\n",
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{}:5: servers.ws.locations.\"/ws/\".proxy_read_timeout: bad duration `an hour`",
            path.display()
        )),
        "{out}"
    );
}

#[test]
fn undefined_upstream_names_file_line_and_key() {
    let (code, out, path) = config_test(
        "[servers.ws]\nlisten = [\"127.0.0.1:0\"]\n[servers.ws.locations.\"/ws/\"]\nproxy_pass = \"http://websocket_servers\"\n",
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{}:4: servers.ws.locations.\"/ws/\".proxy_pass: proxy_pass to undefined upstream `websocket_servers`",
            path.display()
        )),
        "{out}"
    );
}

#[test]
fn an_empty_config_is_refused() {
    for text in ["", "# nothing yet\n", "[runtime]\nworkers = 1\n"] {
        let (code, out, path) = config_test(text);
        assert_eq!(code, 1, "{text:?}: {out}");
        assert!(
            out.contains(&format!(
                "{}: servers: no server is configured",
                path.display()
            )),
            "{out}"
        );
    }
}

#[test]
fn a_byte_that_is_not_utf8_names_its_line() {
    let (code, out, path) =
        config_test_bytes(b"[servers.ws]\nlisten = [\"127.0.0.1:0\"]\nserver_name = \"caf\xe9\"\n");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{}:3:19: (file): byte 0xe9 is not UTF-8",
            path.display()
        )),
        "{out}"
    );
}

#[test]
fn a_missing_root_is_a_warning_that_names_its_line() {
    let (code, out, path) = config_test(
        "[servers.ws]\nlisten = [\"127.0.0.1:0\"]\n[servers.ws.locations.\"/\"]\nroot = \"/nonexistent/ringway-www\"\n",
    );
    assert_eq!(code, 0, "a warning does not fail the test: {out}");
    assert!(
        out.contains(&format!(
            "warning: {}:4: servers.ws.locations.\"/\".root: `/nonexistent/ringway-www` is not a directory",
            path.display()
        )),
        "{out}"
    );
    assert!(out.contains("test is successful"), "{out}");
}

/// nginx directives ringway does not plan to carry are named as such,
/// with what to do instead, not as a typo.
#[test]
fn a_not_planned_directive_says_so() {
    let (code, out, path) = config_test(
        "[servers.ws]\nlisten = [\"127.0.0.1:0\"]\n[servers.ws.locations.\"/\"]\nproxy_pass = \"http://127.0.0.1:3000\"\nproxy_cache = \"one\"\n",
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{}:5: servers.ws.locations.\"/\".proxy_cache: `proxy_cache` is not planned in ringway: ringway does not cache responses",
            path.display()
        )),
        "{out}"
    );
}
