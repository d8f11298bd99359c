//! The command line as nginx users expect it: `-h` lists every option,
//! indented; `-v` / `-V` / `--version` name the version, commit and build
//! profile; `-t` prints one success line; `-T` prints the configuration
//! with every default filled in, as TOML ringway accepts again; an unknown
//! argument exits 2 with the usage.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ringway_tests::tls_support::{run_bounded, CmdOutput};
use ringway_tests::{binary, temp_dir};

/// How long one `ringway` invocation that exits by itself may take.
const EXIT_WAIT: Duration = Duration::from_secs(30);

fn ringway(args: &[&str]) -> CmdOutput {
    run_bounded(
        Command::new(binary()).args(args),
        None,
        EXIT_WAIT,
        "the ringway binary",
    )
}

fn write_config(text: &str) -> PathBuf {
    let path = temp_dir("cli").join("ringway.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

#[test]
fn help_lists_every_option_indented() {
    let out = ringway(&["-h"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(out.stderr.is_empty(), "{}", out.all());
    assert!(out.stdout.starts_with("usage: ringway "), "{}", out.all());
    for option in [
        "  -c, --config FILE ",
        "  -t, --test ",
        "  -T, --test-dump ",
        "  --workers N ",
        "  -v, -V, --version ",
        "  -h, --help ",
    ] {
        assert!(
            out.stdout.lines().any(|l| l.starts_with(option)),
            "no line starting {option:?} in\n{}",
            out.stdout
        );
    }
    // Every line after the usage lines is indented (continuations
    // further): nothing lost its leading spaces.
    let options: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| *l != "options:")
        .skip(1)
        .collect();
    assert!(options.len() >= 6, "{}", out.stdout);
    for l in options {
        assert!(l.starts_with("  "), "not indented: {l:?}");
    }
    assert_eq!(ringway(&["--help"]).stdout, out.stdout);
}

#[test]
fn version_names_the_commit_and_profile() {
    let out = ringway(&["--version"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let line = out.stdout.trim_end();
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.all());
    for short in ["-v", "-V"] {
        assert_eq!(ringway(&[short]).stdout, out.stdout, "{short}");
    }
    let prefix = format!("ringway {} (commit ", env!("CARGO_PKG_VERSION"));
    let inner = line
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not `{prefix}COMMIT, PROFILE)`: {line:?}"));
    let (commit, profile) = inner.split_once(", ").expect("commit, profile");

    assert!(["debug", "release"].contains(&profile), "{line:?}");
    // target/<profile>/ringway: the directory names the profile it was
    // built with (a custom profile has its own directory).
    let bin = binary();
    let dir = bin
        .parent()
        .and_then(|d| d.file_name())
        .and_then(|d| d.to_str());
    if let Some(dir @ ("debug" | "release")) = dir {
        assert_eq!(profile, dir, "{line:?} from {}", bin.display());
    }

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let head = run_bounded(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&root),
        None,
        EXIT_WAIT,
        "git",
    );
    match std::env::var("RINGWAY_COMMIT") {
        Ok(c) if !c.trim().is_empty() => assert_eq!(commit, c.trim(), "{line:?}"),
        _ if head.ok() => {
            assert!(
                commit.len() >= 7 && head.stdout.trim().starts_with(commit),
                "{line:?} does not name HEAD {} (a binary built before the last commit? \
                 rebuild it: cargo build --bin ringway)",
                head.stdout.trim()
            );
        }
        // No git here (a source tarball): the build could not know.
        _ => assert!(
            commit == "unknown" || commit.bytes().all(|b| b.is_ascii_hexdigit()),
            "{line:?}"
        ),
    }
}

/// `-t` prints exactly one line on stdout; warnings go to stderr.
#[test]
fn test_prints_one_success_line() {
    let path = write_config(
        "[servers.a]\nlisten = \"127.0.0.1:0\"\n\
         [servers.a.locations.\"/\"]\nroot = \"/nonexistent/ringway-www\"\n",
    );
    let out = ringway(&["-t", "-c", arg(&path)]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert_eq!(
        out.stdout,
        format!(
            "ringway: configuration file {} test is successful\n",
            path.display()
        ),
        "{}",
        out.all()
    );
    assert!(
        out.stderr.contains("warning: ") && out.stderr.contains("is not a directory"),
        "the warning is on stderr: {}",
        out.all()
    );
}

/// `-T` prints the configuration, defaults filled in; that text passes
/// `-t` and dumps to itself.
#[test]
fn dump_is_a_configuration_that_dumps_to_itself() {
    let path = write_config(
        "[upstreams.app]\nbalance = \"least_conn\"\nservers = [{ addr = \"127.0.0.1:4000\", weight = 2 }]\n\
         [servers.ws]\nlisten = [\"127.0.0.1:0\"]\n\
         [servers.ws.locations.\"= /health\"]\nreturn = { status = 200, body = \"OK\" }\n\
         [servers.ws.locations.\"/ws/\"]\nproxy_pass = \"http://app\"\nproxy_send_timeout = \"1h\"\n",
    );
    let out = ringway(&["-T", "-c", arg(&path)]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let first = out.stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("# configuration file {}", path.display())),
        "{first:?}"
    );
    assert!(
        out.stderr.contains(&format!(
            "configuration file {} test is successful",
            path.display()
        )),
        "the verdict is on stderr: {}",
        out.all()
    );
    for line in [
        // As written.
        "balance = \"least_conn\"\n",
        "  { addr = \"127.0.0.1:4000\", weight = 2, backup = false, down = false, resolve = false },\n",
        "return = { status = 200, body = \"OK\" }\n",
        "proxy_send_timeout = \"3600s\"\n",
        // Defaults filled in.
        "proxy_read_timeout = \"60s\"\n",
        "proxy_connect_timeout = \"60s\"\n",
        "client_max_body_size = \"1m\"\n",
        "keepalive_timeout = \"75s\"\n",
        "fail_timeout = \"10s\"\n",
        "shutdown_timeout = \"30s\"\n",
        "workers = \"auto\"\n",
        "access_log = \"stdout\"\n",
    ] {
        assert!(out.stdout.contains(line), "no {line:?} in\n{}", out.stdout);
    }

    // The effective configuration: --workers overrides the file's.
    let workers = ringway(&["-T", "-c", arg(&path), "--workers", "3"]);
    assert_eq!(workers.code, Some(0), "{}", workers.all());
    assert!(
        workers.stdout.contains("\nworkers = 3\n"),
        "{}",
        workers.stdout
    );

    let again = write_config(&out.stdout);
    let test = ringway(&["-t", "-c", arg(&again)]);
    assert_eq!(test.code, Some(0), "{}\n{}", out.stdout, test.all());
    assert_eq!(test.stdout.lines().count(), 1, "{}", test.all());
    let dump = ringway(&["-T", "-c", arg(&again)]);
    assert_eq!(dump.code, Some(0), "{}", dump.all());
    let body = |s: &str| s.split_once('\n').map(|(_, b)| b.to_string());
    assert_eq!(
        body(&dump.stdout),
        body(&out.stdout),
        "the dump of the dump differs"
    );
}

#[test]
fn dump_of_a_bad_file_prints_nothing_and_fails() {
    let path = write_config("[servers.a]\nlisten = \"127.0.0.1:0\"\nbogus = 1\n");
    let out = ringway(&["-T", "-c", arg(&path)]);
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(out.stdout.is_empty(), "{}", out.all());
    assert!(
        out.stderr.contains(&format!("{}:3: ", path.display()))
            && out.stderr.contains("configuration test failed"),
        "{}",
        out.all()
    );
}

#[test]
fn an_unknown_argument_exits_2_with_the_usage() {
    for args in [
        &["--bogus"][..],
        &["-x", "-c", "ringway.toml"],
        &["-c"],
        &["--workers"],
        &["--workers", "two"],
    ] {
        let out = ringway(args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.all());
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.all());
        assert!(
            out.stderr.starts_with("ringway: ") && out.stderr.contains("usage: ringway "),
            "{args:?}: {}",
            out.all()
        );
    }
    let out = ringway(&["--bogus"]);
    assert!(
        out.stderr.contains("unknown argument `--bogus`")
            && out.stderr.contains("usage: ringway ")
            && out.stderr.contains("  -T, --test-dump "),
        "{}",
        out.all()
    );
}
