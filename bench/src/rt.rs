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
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim = want;
            }
        }
    }
    lim.rlim_cur
}
