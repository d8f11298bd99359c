//! Counting in `ringway::metrics::Metrics` allocates nothing once every
//! label has been seen: a counting global allocator (its own test binary,
//! so it touches no other test) watches one thread through a second round
//! of the same events.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use ringway::metrics::{CloseReason, LimitKind, Metrics, UpgradeResult};

struct Counting;

thread_local! {
    // const-initialised, no destructor: reading it never allocates.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counter is a thread-local `Cell` that needs no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn round(m: &Metrics) {
    m.conn_opened("0.0.0.0:80");
    m.accept_error();
    m.tls_handshake(true);
    m.tls_handshake(false);
    m.http_request("ws", 200, Duration::from_millis(3));
    m.http_request("ws", 503, Duration::from_secs(30));
    m.upgrade("ws", UpgradeResult::Switched);
    m.upgrade("ws", UpgradeResult::Failed);
    m.upstream_connect("backends", "127.0.0.1:3000", Ok(Duration::from_micros(300)));
    m.upstream_connect("backends", "127.0.0.1:3000", Err(()));
    m.upstream_state("backends", "127.0.0.1:3000", false);
    m.upstream_state("backends", "127.0.0.1:3000", true);
    let id = m.tunnel_opened("ws", "backends", "127.0.0.1:3000");
    m.tunnel_bytes(id, 3, 4);
    m.tunnel_closed(id, CloseReason::Upstream, 10, 20, Duration::from_secs(90));
    m.limit_rejected("perip", LimitKind::Req);
    m.limit_rejected("perip", LimitKind::Conn);
    m.limit_delayed("perip");
    m.conn_closed("0.0.0.0:80");
}

#[test]
fn counting_after_warm_up_does_not_allocate() {
    let m = Metrics::new(0);
    round(&m); // first sight of each label: interned, series made
    let before = ALLOCS.with(Cell::get);
    for _ in 0..100 {
        round(&m);
    }
    let after = ALLOCS.with(Cell::get);
    assert_eq!(after - before, 0, "allocations while counting");
    // The counter does see allocations (the check is not vacuous).
    let s = m.snapshot();
    assert!(ALLOCS.with(Cell::get) > after);
    assert_eq!(s.accept_errors, 101);
}
