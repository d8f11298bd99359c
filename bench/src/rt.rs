//! Which monoio driver a bench process runs on, and running a future on a
//! fresh single-threaded runtime of that driver (with timers).

use std::future::Future;
use std::str::FromStr;

/// io_uring submission queue size; completions are twice that, and the
/// kernel keeps overflowed completions (IORING_FEAT_NODROP), so this only
/// bounds how many operations are submitted per `io_uring_enter`.
const URING_ENTRIES: u32 = 4096;

/// The monoio driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// epoll (monoio's "legacy" driver).
    Epoll,
    /// io_uring.
    IoUring,
}

impl Driver {
    /// The name used on command lines and in ringway.toml.
    pub fn name(self) -> &'static str {
        match self {
            Driver::Epoll => "epoll",
            Driver::IoUring => "io_uring",
        }
    }
}

impl FromStr for Driver {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "epoll" | "legacy" => Ok(Driver::Epoll),
            "io_uring" | "iouring" | "uring" => Ok(Driver::IoUring),
            _ => Err("expected epoll or io_uring".into()),
        }
    }
}

/// Build a runtime of `driver` on this thread and run `f` to completion.
pub fn block_on<F: Future>(driver: Driver, f: F) -> std::io::Result<F::Output> {
    Ok(match driver {
        Driver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()?
            .block_on(f),
        Driver::IoUring => monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(URING_ENTRIES)
            .enable_timer()
            .build()?
            .block_on(f),
    })
}

/// Raise this process's soft open-file limit to the hard limit; returns
/// the limit now in force.
pub fn raise_nofile() -> u64 {
    ringway::sys::raise_nofile_limit().unwrap_or(1024)
}

/// Size the descriptor table for the whole open-file limit (capped at
/// 2^17 slots) while the process has one thread, so a connection storm
/// never waits on the kernel growing a shared table (see
/// `ringway::sys::reserve_fd_table`). Call before spawning threads.
pub fn reserve_descriptors() {
    let _ = ringway::sys::reserve_fd_table(raise_nofile().min(1 << 17));
}
