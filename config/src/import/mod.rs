//! `ringway import`: an nginx configuration → ringway.toml. Read with
//! nginx's own tokenizer rules ([`token`]), includes resolved ([`tree`]),
//! then converted with nothing dropped silently ([`convert`]): every
//! directive is carried over, listed as ignored (no effect in ringway),
//! or reported as a [`Loss`] with its `file:line`.

pub mod convert;
pub mod token;
pub mod tree;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use convert::{nginx_time, Imported, Loss};
pub use tree::ReadError;

/// Import the nginx configuration `main`; `prefix` is where relative
/// `include` paths start (nginx's `-p`; default: `main`'s directory).
pub fn import(main: &Path, prefix: Option<&Path>) -> Result<Imported, ReadError> {
    let dir = main.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = prefix.unwrap_or(dir);
    let tree = tree::read(main, prefix)?;
    Ok(convert::convert(&tree, dir))
}
