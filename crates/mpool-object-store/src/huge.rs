//! Read buffers backed by transparent huge pages.
//!
//! A direct read lands in the caller's memory page by page: on a virtual
//! disk each 4 KiB page is a segment the host maps on its own, and a
//! 1 MiB read (256 pages) is even cut in two requests (the disk takes at
//! most 254 segments). Into memory backed by one 2 MiB huge page the same
//! read is one segment: measured with fio on this machine's disk, 1 MiB
//! random reads went from 1.30 to 3.46 GB/s and 64 KiB reads from 8 jobs
//! from 1.13 to 2.08 GB/s (writes did not change; BENCHMARKS.md, session
//! 12). So a get reads up to 2 MiB into one of these buffers and copies
//! it out (a 1 MiB copy costs about 50 us, the read it saves about 500).
//!
//! At most [`MAX_BUFFERS`] buffers exist (2 MiB each, made on first use,
//! kept for reuse); a read that finds none free reads straight into its
//! own memory. Nothing is bounced when the kernel's transparent huge pages
//! are off (`/sys/kernel/mm/transparent_hugepage/enabled` says `never`):
//! the copy would buy nothing.

use std::sync::{Mutex, OnceLock};

/// A buffer's size: one huge page.
pub const SIZE: usize = 2 << 20;

/// The most buffers that exist at once (32 MiB of memory).
const MAX_BUFFERS: usize = 16;

/// One 2 MiB buffer, aligned to 2 MiB inside an anonymous mapping twice
/// that size, advised to be backed by a huge page.
struct Buffer {
    map: *mut std::ffi::c_void,
    ptr: *mut u8,
}

// SAFETY: the mapping is owned by the buffer alone (no other pointer to
// it escapes but the borrows `bytes` hands out, which cannot outlive the
// `&mut self` they come from); moving it to another thread moves that
// ownership.
unsafe impl Send for Buffer {}

impl Buffer {
    fn new() -> Option<Buffer> {
        // SAFETY: a fresh private anonymous mapping at an address the
        // kernel picks: it aliases no memory of this process.
        let map = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                2 * SIZE,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE,
            )
        }
        .ok()?;
        let base = map as usize;
        let ptr = map
            .cast::<u8>()
            .wrapping_add(base.div_ceil(SIZE) * SIZE - base);
        // SAFETY: ptr..ptr + SIZE lies inside the mapping (it starts less
        // than SIZE into it, and the mapping is 2 * SIZE long), which this buffer owns;
        // MADV_HUGEPAGE changes how the kernel backs it, no byte of it.
        let advised = unsafe {
            rustix::mm::madvise(
                ptr.cast::<std::ffi::c_void>(),
                SIZE,
                rustix::mm::Advice::LinuxHugepage,
            )
        };
        if let Err(e) = advised {
            tracing::debug!("MADV_HUGEPAGE on a read buffer: {e}");
        }
        Some(Buffer { map, ptr })
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: ptr..ptr + SIZE lies inside the mapping this buffer owns
        // (see `new`), readable and writable, and zero-filled or written
        // by earlier reads: initialized bytes. The borrow of `self` keeps
        // it unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, SIZE) }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: `map` is the mapping `new` made, 2 * SIZE long, and no
        // borrow of it outlives the buffer.
        if let Err(e) = unsafe { rustix::mm::munmap(self.map, 2 * SIZE) } {
            tracing::debug!("unmapping a read buffer: {e}");
        }
    }
}

/// The free buffers and how many exist.
static FREE: Mutex<(Vec<Buffer>, usize)> = Mutex::new((Vec::new(), 0));

/// Whether the kernel gives huge pages to memory advised to take them.
fn available() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .map(|s| s.contains("[always]") || s.contains("[madvise]"))
            .unwrap_or(false)
    })
}

/// Run `f` on a buffer of [`SIZE`] bytes backed by a huge page, if one is
/// free (or can be made); `None` without running it otherwise.
pub fn with_buffer<R>(f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
    if !available() {
        return None;
    }
    let taken = {
        let mut g = crate::lock(&FREE);
        match g.0.pop() {
            Some(b) => Some(b),
            None if g.1 < MAX_BUFFERS => {
                g.1 += 1;
                None
            }
            None => return None,
        }
    };
    let mut b = match taken {
        Some(b) => b,
        None => match Buffer::new() {
            Some(b) => b,
            None => {
                crate::lock(&FREE).1 -= 1;
                return None;
            }
        },
    };
    let r = f(b.bytes());
    crate::lock(&FREE).0.push(b);
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_bounded() {
        if !available() {
            eprintln!("transparent huge pages are off here: nothing to test");
            return;
        }
        let p1 = with_buffer(|b| {
            b[0] = 7;
            b[SIZE - 1] = 9;
            assert_eq!(b.len(), SIZE);
            assert_eq!(b.as_ptr() as usize % SIZE, 0, "aligned to a huge page");
            b.as_ptr() as usize
        })
        .unwrap();
        // Taken again (the same one, or another if a test in parallel
        // holds it): never more than MAX_BUFFERS exist.
        assert!(with_buffer(|b| b.as_ptr() as usize).is_some());
        assert!(crate::lock(&FREE).1 <= MAX_BUFFERS);
        assert_ne!(p1, 0);
    }
}
