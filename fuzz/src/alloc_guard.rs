//! Catches inputs that make a parser allocate absurd amounts (a length field trusted
//! before the bytes exist): an allocation over [`LIMIT`] during a fuzzed execution writes
//! the input to `$STASIS_FUZZ_OOM_DIR` (default: the working directory), says so on stderr
//! and aborts, as an out-of-memory crash would, but before the machine starts swapping.
//! Outside an execution the allocator is the system one, untouched.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;

/// Largest single allocation a parser may make for one input.
pub const LIMIT: usize = 512 << 20;

pub struct Guard;

thread_local! {
    /// The input being executed on this thread (pointer, length), or none.
    static CURRENT: Cell<Option<(*const u8, usize)>> = const { Cell::new(None) };
}

/// Whether this thread is inside a fuzzed execution.
pub fn in_execution() -> bool {
    CURRENT.with(|c| c.get().is_some())
}

/// Runs `f` as the execution of `input`.
pub fn during<T>(input: &[u8], f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(None));
        }
    }
    CURRENT.with(|c| c.set(Some((input.as_ptr(), input.len()))));
    let _reset = Reset;
    f()
}

#[cold]
fn oversize(size: usize) -> ! {
    // Leave the execution first, so the allocations below pass through.
    let input = CURRENT.with(|c| c.take());
    let dir = std::env::var_os("STASIS_FUZZ_OOM_DIR").unwrap_or_else(|| ".".into());
    let mut err = std::io::stderr();
    if let Some((ptr, len)) = input {
        // SAFETY: the input slice outlives the execution that is still on the stack.
        let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
        let path = std::path::Path::new(&dir).join(format!("oom-{:016x}", crate::hash::fnv(bytes)));
        let saved = std::fs::write(&path, bytes).is_ok();
        let _ = writeln!(
            err,
            "stasis-fuzz: an input made the target allocate {size} bytes at once (limit {LIMIT}); {}",
            if saved {
                format!("input saved to {}", path.display())
            } else {
                format!("could not save the input to {}", path.display())
            }
        );
    }
    std::process::abort()
}

// SAFETY: every call is forwarded to `System`; the only addition is a size check that
// aborts the process.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LIMIT && in_execution() {
            oversize(layout.size());
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LIMIT && in_execution() {
            oversize(layout.size());
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > LIMIT && in_execution() {
            oversize(new_size);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
