//! Per-thread pins: how a guard ([`super::MappedRef`]) tells the reaper
//! that its object is in use without writing a cache line that another
//! thread writes too.
//!
//! Each thread that takes a guard claims a block of [`SLOTS`] slots (one
//! cache line pair of its own, never written by another thread except to
//! clear a slot of a guard that was sent to it). A guard writes its
//! object's address into a free slot of its thread's block and clears it
//! when it drops: both writes stay in a line that only its thread uses,
//! so two threads reading the same hot object no longer bounce the
//! object's line between their cores (the shared pin count did, twice per
//! read). A thread with every slot in use, or with no block left (more
//! than [`BLOCKS`] threads taking guards at once), pins through the
//! object's shared count instead ([`super::map::Obj::pins`]).
//!
//! The reaper, before it evicts an object's pages, scans the claimed
//! blocks for the object's address ([`pinned`]).
//!
//! # Memory ordering
//!
//! A guard and the reaper race as in Dekker's algorithm, every access
//! involved sequentially consistent:
//!
//! - guard: (1) store the object's address into its slot; (2) load the
//!   object's resident bits, and load the pages itself (under the
//!   object's lock) if any of its pages is not resident.
//! - reaper, holding the object's lock: (a) clear the resident bits of
//!   the pages it means to evict; (b) load the high-water mark of claimed
//!   blocks and every slot below it (and the shared count); if the object
//!   is there, restore the bits and evict nothing; else `MADV_DONTNEED`.
//!
//! In the single total order of these operations, either (1) comes
//! before (b)'s load of that slot, and the reaper sees the pin and leaves
//! the object; or (b) comes before (1), so (a) < (b) < (1) < (2): the
//! guard sees the bits cleared and loads the pages, which waits for the
//! object's lock, so it happens after the eviction and reinstalls them.
//! A block claimed after the reaper read the high-water mark is the
//! second case too: the claim, and the raise of the mark, come before (1)
//! in the thread's program order. A guard's drop clears its slot with
//! release ordering, and the reaper's loads acquire: the guard's reads of
//! the bytes happen before an eviction that saw the slot cleared.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Slots per thread (guards a thread can hold at once before it falls
/// back to the shared count).
pub(super) const SLOTS: usize = 8;

/// Blocks (threads taking guards at the same time before the fallback).
pub(super) const BLOCKS: usize = 256;

/// One thread's slots: a cache line of them, aligned to two lines so
/// that the adjacent-line prefetcher does not pair two threads' blocks.
#[repr(align(128))]
struct Block {
    slots: [AtomicUsize; SLOTS],
    /// Claimed by a live thread.
    owned: AtomicBool,
}

static TABLE: [Block; BLOCKS] = [const {
    Block {
        slots: [const { AtomicUsize::new(0) }; SLOTS],
        owned: AtomicBool::new(false),
    }
}; BLOCKS];

/// Blocks `0..HIGH` were claimed at some time (the reaper scans those).
static HIGH: AtomicUsize = AtomicUsize::new(0);

/// The calling thread's block, released when the thread ends.
struct Mine(Cell<Option<&'static Block>>, Cell<bool>);

impl Drop for Mine {
    fn drop(&mut self) {
        if let Some(b) = self.0.get() {
            // Slots still set belong to guards sent to other threads: they
            // clear them when they drop, and the next owner skips them.
            b.owned.store(false, Ordering::Release);
        }
    }
}

thread_local! {
    static MINE: Mine = const { Mine(Cell::new(None), Cell::new(false)) };
}

/// Claim a free block for this thread (None: all are taken).
fn claim() -> Option<&'static Block> {
    for (k, b) in TABLE.iter().enumerate() {
        if !b.owned.load(Ordering::Relaxed)
            && b.owned
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        {
            HIGH.fetch_max(k + 1, Ordering::SeqCst);
            return Some(b);
        }
    }
    None
}

/// A pin held in a thread's slot.
#[derive(Debug)]
pub(super) struct Pin(&'static AtomicUsize);

impl Pin {
    /// Release it (the guard's drop; any thread).
    #[inline]
    pub(super) fn release(&self) {
        self.0.store(0, Ordering::Release);
    }
}

/// Pin the object at address `key` (non-zero) in the calling thread's
/// block: step (1) of the module's ordering argument. None when the
/// thread has no block or no free slot (the caller pins through the
/// shared count instead).
#[inline]
pub(super) fn pin(key: usize) -> Option<Pin> {
    MINE.try_with(|m| {
        let b = match m.0.get() {
            Some(b) => b,
            None if m.1.get() => return None, // tried: every block is taken
            None => {
                m.1.set(true);
                let b = claim()?;
                m.0.set(Some(b));
                b
            }
        };
        // Only this thread stores non-zero values into its block's slots,
        // so a slot read as zero here stays free until the store below.
        let s = b.slots.iter().find(|s| s.load(Ordering::Relaxed) == 0)?;
        s.store(key, Ordering::SeqCst);
        Some(Pin(s))
    })
    .ok()
    .flatten()
}

/// Whether some thread's slot pins the object at `key`: step (b) of the
/// module's ordering argument (call it after clearing the resident bits
/// of what is to be evicted).
pub(super) fn pinned(key: usize) -> bool {
    let high = HIGH.load(Ordering::SeqCst);
    TABLE[..high.min(BLOCKS)]
        .iter()
        .any(|b| b.slots.iter().any(|s| s.load(Ordering::SeqCst) == key))
}

/// The addresses pinned in slots now, sorted (the reaper's cheap
/// pre-filter of candidates; [`pinned`] decides).
pub(super) fn snapshot() -> Vec<usize> {
    let high = HIGH.load(Ordering::Acquire);
    let mut v: Vec<usize> = TABLE[..high.min(BLOCKS)]
        .iter()
        .flat_map(|b| b.slots.iter().map(|s| s.load(Ordering::Relaxed)))
        .filter(|&k| k != 0)
        .collect();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_pin_release_and_overflow() {
        let key = 0x1000_0008usize;
        assert!(!pinned(key));
        let pins: Vec<Pin> = (0..SLOTS).filter_map(|_| pin(key)).collect();
        assert_eq!(pins.len(), SLOTS, "a thread has {SLOTS} slots");
        assert!(pinned(key));
        assert!(snapshot().binary_search(&key).is_ok());
        assert!(pin(key + 8).is_none(), "a full block falls back");
        for p in &pins {
            p.release();
        }
        assert!(!pinned(key));
        // Another thread's pin is seen, and released from here.
        let p = std::thread::spawn(move || pin(key + 16)).join().unwrap();
        let p = p.expect("the other thread had a block");
        assert!(pinned(key + 16));
        p.release();
        assert!(!pinned(key + 16));
    }
}
