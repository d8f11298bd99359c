//! Which monoio driver a bench process runs on, running a future on a
//! fresh single-threaded runtime of that driver (with timers), and the
//! process's descriptor budget: open-file limit and descriptor table.

use std::future::Future;
use std::os::fd::AsRawFd;
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
/// the limit now in force (the soft limit as it was when raising fails).
pub fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|_| rlimit::Resource::NOFILE.get_soft())
        .unwrap_or(1024)
}

/// Size the descriptor table for the whole open-file limit (capped at
/// 2^17 slots) while the process has one thread, so a connection storm
/// never waits on the kernel growing a shared table: once several threads
/// share it, every growth waits for an RCU grace period (`expand_fdtable`
/// calls `synchronize_rcu`), stalling whichever `accept` or `socket`
/// crossed the size. The table never shrinks, so one dup2 to the highest
/// slot and a close is enough (8 bytes of kernel memory per slot). Call
/// before spawning threads; returns the slots reserved (0 when too few to
/// matter: the kernel starts with 64 and the first growths are cheap).
pub fn reserve_descriptors() -> std::io::Result<u64> {
    let slots = raise_nofile().min(1 << 17);
    if slots <= 1024 {
        return Ok(0);
    }
    let null = std::fs::File::open("/dev/null")?;
    let top = slots as i32 - 1;
    // SAFETY: dup2 onto the top slot of the limit, which nothing holds
    // (descriptors are handed out lowest first), closed again at once;
    // `null` stays owned by its File.
    unsafe {
        if libc::dup2(null.as_raw_fd(), top) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::close(top);
    }
    Ok(slots)
}

#[cfg(test)]
mod tests {
    #[test]
    fn descriptor_table_is_reserved_and_the_slot_closed() {
        let want = super::raise_nofile().min(1 << 17);
        let got = super::reserve_descriptors().unwrap();
        if want <= 1024 {
            // A hard limit this low leaves nothing worth reserving.
            return assert_eq!(got, 0);
        }
        assert_eq!(got, want);
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let fd_size: u64 = (status.lines())
            .find_map(|l| l.strip_prefix("FDSize:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap();
        assert!(fd_size >= want, "FDSize {fd_size} < {want}");
        // SAFETY: fcntl F_GETFD on a descriptor number only queries it.
        assert_eq!(unsafe { libc::fcntl(want as i32 - 1, libc::F_GETFD) }, -1);
    }
}
