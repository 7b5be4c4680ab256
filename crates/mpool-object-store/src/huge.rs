//! Read buffers backed by transparent huge pages.
//!
//! A direct read lands in the caller's memory page by page: on a virtual
//! disk each 4 KiB page is a segment the host maps on its own, and a
//! 1 MiB read (256 pages) is even cut in two requests (the disk takes at
//! most 254 segments). Into memory backed by one 2 MiB huge page the same
//! read is one segment: measured with fio on this machine's disk, 1 MiB
//! random reads went from 1.30 to 3.46 GB/s and 64 KiB reads from 8 jobs
//! from 1.13 to 2.08 GB/s (BENCHMARKS.md, session 12; writes did not
//! change on that machine, and did on session 19's, where mpool's own
//! write buffers came to huge pages too: `mpool::HugeRegion`). So a get
//! reads up to 2 MiB into one of these buffers and copies
//! it out (a 1 MiB copy costs about 50 us, the read it saves about 500).
//!
//! At most [`MAX_BUFFERS`] buffers exist (2 MiB each, made on first use,
//! kept for reuse); a read that finds none free reads straight into its
//! own memory. Nothing is bounced when the kernel's transparent huge pages
//! are off (`/sys/kernel/mm/transparent_hugepage/enabled` says `never`):
//! the copy would buy nothing.

use mpool::{thp_available, HugeRegion};
use std::sync::Mutex;

/// A buffer's size: one huge page.
pub const SIZE: usize = mpool::HUGE_PAGE;

/// The most buffers that exist at once (32 MiB of memory).
const MAX_BUFFERS: usize = 16;

/// The free buffers and how many exist.
static FREE: Mutex<(Vec<HugeRegion>, usize)> = Mutex::new((Vec::new(), 0));

/// Run `f` on a buffer of [`SIZE`] bytes backed by a huge page, if one is
/// free (or can be made); `None` without running it otherwise.
pub fn with_buffer<R>(f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
    if !thp_available() {
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
        None => match HugeRegion::new(SIZE) {
            Some(b) => b,
            None => {
                crate::lock(&FREE).1 -= 1;
                return None;
            }
        },
    };
    let r = f(b.bytes_mut());
    crate::lock(&FREE).0.push(b);
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_bounded() {
        if !thp_available() {
            eprintln!("SKIPPED: transparent huge pages are off here");
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
