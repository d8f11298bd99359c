//! Build facts for `ringway --version`: the commit (`git rev-parse --short
//! HEAD`) and the profile, as `RINGWAY_COMMIT` and `RINGWAY_PROFILE`.
//!
//! The commit is "unknown" where there is no git or no checkout of this
//! repository (a source tarball, or one unpacked inside another
//! repository); `RINGWAY_COMMIT` in the build's environment overrides it
//! (packagers building from a tarball). The script reruns when HEAD moves:
//! it watches HEAD and the ref HEAD points to (or `packed-refs` where that
//! ref is packed), wherever git keeps them (a worktree's `.git` is a file).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=RINGWAY_COMMIT");
    let commit = match std::env::var("RINGWAY_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => git_commit().unwrap_or_else(|| "unknown".to_string()),
    };
    // "debug" or "release" (the profile a custom one inherits from).
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=RINGWAY_COMMIT={commit}");
    println!("cargo:rustc-env=RINGWAY_PROFILE={profile}");
}

/// HEAD's short hash, when the workspace root is the top of a git checkout.
fn git_commit() -> Option<String> {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let root = manifest.parent()?.canonicalize().ok()?;
    let top = git(&manifest, &["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != root {
        return None;
    }
    watch(&manifest, "HEAD");
    if let Some(reference) = git(&manifest, &["symbolic-ref", "-q", "HEAD"]) {
        let loose = git_path(&manifest, &reference)?;
        if loose.exists() {
            println!("cargo:rerun-if-changed={}", loose.display());
        } else {
            watch(&manifest, "packed-refs");
        }
    }
    git(&manifest, &["rev-parse", "--short", "HEAD"])
}

/// Rerun when git's file `name` changes.
fn watch(dir: &Path, name: &str) {
    if let Some(p) = git_path(dir, name) {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}

/// Where git keeps `name` (`git rev-parse --git-path`), absolute.
fn git_path(dir: &Path, name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(git(dir, &["rev-parse", "--git-path", name])?);
    Some(if p.is_absolute() { p } else { dir.join(p) })
}

/// `git ARGS` in `dir`: its trimmed output, or None when git is missing or
/// fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}
