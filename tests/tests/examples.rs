//! Every `examples/*.toml` passes `ringway -t` as a newcomer would run it
//! (from the repository root), with one success line and no warning, and
//! its `-T` dump passes too. The directory is read, so a new example is
//! covered without editing this file. An example whose TLS files live
//! under `examples/tls/` gets them from the `openssl` command its own
//! comment gives, run into a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ringway_tests::tls_support::{run_bounded, CmdOutput};
use ringway_tests::{binary, temp_dir};

/// How long one command that exits by itself may take.
const EXIT_WAIT: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "examples: {files:?}");
    files
}

/// `ringway ARGS` run from the repository root.
fn ringway(args: &[&str]) -> CmdOutput {
    run_bounded(
        Command::new(binary()).args(args).current_dir(root()),
        None,
        EXIT_WAIT,
        "the ringway binary",
    )
}

/// The example's text, its `examples/tls/` files made by the `openssl`
/// command in its comments and the paths pointed at them.
fn with_tls_files(path: &Path, text: &str) -> String {
    if !text.contains("examples/tls/") {
        return text.to_string();
    }
    let openssl = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .map(str::trim)
        .find(|l| l.starts_with("openssl "))
        .unwrap_or_else(|| {
            panic!(
                "{}: uses examples/tls/ but no comment says how to make the files (openssl ...)",
                path.display()
            )
        });
    let dir = temp_dir("example-tls");
    std::fs::create_dir_all(dir.join("examples/tls")).expect("mkdir");
    let made = run_bounded(
        Command::new("sh").args(["-c", openssl]).current_dir(&dir),
        None,
        EXIT_WAIT,
        "sh (and openssl)",
    );
    assert!(made.ok(), "{}: `{openssl}`: {}", path.display(), made.all());
    text.replace("examples/tls/", &format!("{}/examples/tls/", dir.display()))
}

#[test]
fn every_example_passes_the_config_test() {
    for path in examples() {
        let text = std::fs::read_to_string(&path).expect("read example");
        let runnable = with_tls_files(&path, &text);
        let file = if runnable == text {
            path.clone()
        } else {
            let copy = temp_dir("example").join(path.file_name().expect("file name"));
            std::fs::write(&copy, &runnable).expect("write example copy");
            copy
        };
        let file_arg = file.to_str().expect("UTF-8 path");
        let out = ringway(&["-t", "-c", file_arg]);
        assert_eq!(out.code, Some(0), "{}: {}", path.display(), out.all());
        assert_eq!(
            out.stdout,
            format!("ringway: configuration file {file_arg} test is successful\n"),
            "{}: {}",
            path.display(),
            out.all()
        );
        assert!(
            !out.stderr.contains("warning"),
            "{}: an example has no warnings: {}",
            path.display(),
            out.all()
        );

        let dump = ringway(&["-T", "-c", file_arg]);
        assert_eq!(dump.code, Some(0), "{}: {}", path.display(), dump.all());
        let dumped = temp_dir("example-dump").join("dump.toml");
        std::fs::write(&dumped, &dump.stdout).expect("write dump");
        let again = ringway(&["-t", "-c", dumped.to_str().expect("UTF-8 path")]);
        assert_eq!(
            again.code,
            Some(0),
            "{}: its -T dump fails -t: {}\n{}",
            path.display(),
            again.all(),
            dump.stdout
        );
    }
}

/// examples/README.md names every example.
#[test]
fn the_examples_readme_lists_every_example() {
    let readme =
        std::fs::read_to_string(root().join("examples/README.md")).expect("examples/README.md");
    for path in examples() {
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(
            readme.contains(&format!("[{name}]({name})")),
            "examples/README.md does not list {name}"
        );
    }
}
