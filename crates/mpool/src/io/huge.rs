//! Memory backed by transparent huge pages, for I/O buffers.
//!
//! A direct transfer to or from a buffer goes page by page: each 4 KiB
//! page of the buffer is a segment of the request, a virtual disk maps
//! every segment on its own, and a request takes at most so many of them
//! (254 on this project's machines: a 1 MiB transfer from 4 KiB pages is
//! cut in two requests). A buffer inside one 2 MiB huge page is one
//! segment. Measured on the virtual disk of session 19 (BENCHMARKS.md),
//! eight threads each writing and syncing: 1 MiB writes 594-620 per
//! second from huge pages against 344-435 from the heap, 64 KiB writes
//! 3387 against 1948.
//!
//! [`HugeRegion`] is one such mapping. [`write_buf`] hands out the write
//! buffers of mblock content from a bounded set of them: slots of
//! [`SLOT`] bytes, two per huge page, [`MAX_REGIONS`] regions at most
//! (made on first use, kept for reuse, like the heap chunks they stand in
//! for). When the kernel's transparent huge pages are off, or every slot
//! is taken, callers use the heap as before.

use super::buf::{AlignedBuf, Arena};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, OnceLock};

/// A huge page's size (x86-64, and the usual arm64 configuration).
pub const HUGE_PAGE: usize = 2 << 20;

/// A write buffer's slot: a whole mblock write chunk (`IO_CHUNK`).
pub(crate) const SLOT: usize = 1 << 20;

/// Write buffers shorter than this come from the heap: they span few
/// pages, and a slot held by a short buffer is a slot another write
/// cannot use.
pub(crate) const WRITE_MIN: usize = 32 << 10;

/// The alignment of every write buffer's start (the largest sector size
/// mpool supports); a buffer's length is rounded to the alignment asked,
/// which may be smaller.
const WRITE_ALIGN: usize = super::DEFAULT_ALIGN;

/// The most regions of write buffers (each [`HUGE_PAGE`] bytes, two slots):
/// 64 MiB of memory, the bound of the heap chunks kept for reuse (a
/// 64 MiB write has all its chunks in flight at once).
pub(crate) const MAX_REGIONS: usize = 32;

/// Whether the kernel backs memory advised with `MADV_HUGEPAGE` by huge
/// pages (`/sys/kernel/mm/transparent_hugepage/enabled` says `always` or
/// `madvise`). Read once.
pub fn thp_available() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .map(|s| s.contains("[always]") || s.contains("[madvise]"))
            .unwrap_or(false)
    })
}

/// A private anonymous mapping of whole huge pages, aligned to a huge
/// page and advised to be backed by huge pages (the kernel may still back
/// it by small ones: it is memory either way). Zero-filled when made;
/// unmapped when dropped.
pub struct HugeRegion {
    /// The mapping as made (twice the size asked, so that an aligned
    /// span fits in it).
    map: NonNull<u8>,
    map_len: usize,
    /// The aligned span handed out.
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the region owns its mapping; the raw pointers are only read
// here, and the bytes are reached through `&self`/`&mut self` borrows (or
// through buffers of an arena that owns the region), so moving the owner
// to another thread or sharing `&HugeRegion` is sound.
unsafe impl Send for HugeRegion {}
// SAFETY: as above: shared access reads only the immutable pointers.
unsafe impl Sync for HugeRegion {}

impl HugeRegion {
    /// A region of `len` bytes rounded up to whole huge pages; `None` when
    /// `len` is 0 or the mapping cannot be made.
    pub fn new(len: usize) -> Option<HugeRegion> {
        let len = len.checked_next_multiple_of(HUGE_PAGE)?;
        if len == 0 {
            return None;
        }
        let map_len = len.checked_mul(2)?;
        // SAFETY: a fresh private anonymous mapping at an address the
        // kernel picks: it aliases no memory of this process.
        let map = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                map_len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE,
            )
        }
        .ok()?;
        let map = NonNull::new(map.cast::<u8>())?;
        let base = map.as_ptr() as usize;
        let skip = base.next_multiple_of(HUGE_PAGE) - base;
        // `skip < HUGE_PAGE <= len`, so the span lies inside the mapping.
        let ptr = NonNull::new(map.as_ptr().wrapping_add(skip))?;
        // SAFETY: ptr..ptr + len lies inside the mapping (it starts less
        // than a huge page into it, and the mapping is 2 * len long),
        // which this region owns; MADV_HUGEPAGE changes how the kernel
        // backs it, no byte of it.
        let advised = unsafe {
            rustix::mm::madvise(
                ptr.as_ptr().cast::<std::ffi::c_void>(),
                len,
                rustix::mm::Advice::LinuxHugepage,
            )
        };
        if let Err(e) = advised {
            tracing::debug!("MADV_HUGEPAGE on an I/O buffer: {e}");
        }
        Some(HugeRegion {
            map,
            map_len,
            ptr,
            len,
        })
    }

    /// The aligned span's first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The aligned span's length (whole huge pages).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never: a region holds at least one huge page.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The aligned span's bytes.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr..ptr + len lies inside the mapping this region owns
        // (see `new`), readable and writable, zero-filled at mapping or
        // written since: initialised bytes. The `&mut self` borrow keeps
        // the slice unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for HugeRegion {
    fn drop(&mut self) {
        // SAFETY: `map` is the mapping `new` made, `map_len` long, and no
        // borrow of it outlives the region (an arena cut from it holds it
        // until every buffer of the arena is gone).
        let r = unsafe {
            rustix::mm::munmap(self.map.as_ptr().cast::<std::ffi::c_void>(), self.map_len)
        };
        if let Err(e) = r {
            tracing::debug!("unmapping an I/O buffer region: {e}");
        }
    }
}

impl std::fmt::Debug for HugeRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugeRegion").field("len", &self.len).finish()
    }
}

/// The regions of write buffers made so far, each an arena of two slots.
static WRITE_ARENAS: Mutex<Vec<Arc<Arena>>> = Mutex::new(Vec::new());

/// A write buffer of `len` bytes rounded up to `align` (exactly that
/// long: a write sends the whole buffer) inside one huge page, when `len`
/// is from [`WRITE_MIN`] to [`SLOT`], `align` is at most 4096, the kernel
/// gives huge pages, and a slot is free or a region can still be made. Its
/// bytes are unspecified (zero when the slot is fresh, else those of its
/// last use): the caller writes every byte it sends. The slot goes back
/// to the set when the buffer is dropped.
pub fn write_buf(len: usize, align: usize) -> Option<AlignedBuf> {
    if !(WRITE_MIN..=SLOT).contains(&len) || align > WRITE_ALIGN || !thp_available() {
        return None;
    }
    let mut arenas = crate::lock::lock(&WRITE_ARENAS);
    for a in arenas.iter() {
        if let Some(b) = a.take_len(len, align) {
            return Some(b);
        }
    }
    if arenas.len() >= MAX_REGIONS {
        return None;
    }
    let a = Arena::huge(HUGE_PAGE / SLOT, SLOT, WRITE_ALIGN)?;
    let b = a.take_len(len, align);
    arenas.push(a);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_is_aligned_zeroed_and_whole_pages() {
        let mut r = HugeRegion::new(1).expect("an anonymous mapping");
        assert_eq!(r.len(), HUGE_PAGE);
        assert_eq!(r.as_ptr() as usize % HUGE_PAGE, 0);
        let b = r.bytes_mut();
        assert!(b.iter().all(|&x| x == 0));
        b[0] = 1;
        b[HUGE_PAGE - 1] = 2;
        assert!(HugeRegion::new(0).is_none());
        assert_eq!(HugeRegion::new(HUGE_PAGE + 1).map(|r| r.len()), Some(2 * HUGE_PAGE));
    }

    /// Write buffers lie inside one huge page each, have the length asked
    /// (rounded to the alignment), come back to the set when dropped, and
    /// are refused outside their sizes; the set never grows past its
    /// bound.
    #[test]
    fn write_buffers_stay_in_one_huge_page_and_are_reused() {
        assert!(write_buf(WRITE_MIN - 1, 4096).is_none());
        assert!(write_buf(SLOT + 1, 4096).is_none());
        if !thp_available() {
            eprintln!("SKIPPED: transparent huge pages are off on this machine");
            return;
        }
        assert!(write_buf(64 << 10, 8192).is_none(), "aligned past a slot's start");
        let mut held = Vec::new();
        for (len, align) in [
            (WRITE_MIN, 4096),
            (68 << 10, 4096),
            (SLOT - 100, 4096),
            (SLOT, 4096),
            // A 512-byte sector's request: exactly its length, not
            // rounded to the slot's alignment (a write sends it whole).
            ((300 << 10) + 512, 512),
            ((300 << 10) + 1, 512),
        ] {
            let mut b = write_buf(len, align).expect("a free slot");
            assert_eq!(b.len(), len.next_multiple_of(align), "{len} at {align}");
            assert_eq!(b.align(), align);
            let start = b.as_ptr() as usize;
            assert_eq!(start % 4096, 0);
            assert_eq!(
                start / HUGE_PAGE,
                (start + b.len() - 1) / HUGE_PAGE,
                "a buffer of {len} bytes crosses a huge page"
            );
            b.fill(0xa5);
            held.push(start);
            drop(b);
        }
        // Taken and dropped one at a time: the slots were reused, so the
        // set did not grow by a region per buffer.
        let regions = WRITE_ARENAS.lock().unwrap().len();
        assert!(regions <= MAX_REGIONS);
        let mut all = Vec::new();
        while let Some(b) = write_buf(SLOT, 4096) {
            all.push(b);
            assert!(all.len() <= MAX_REGIONS * (HUGE_PAGE / SLOT), "unbounded");
        }
        assert_eq!(WRITE_ARENAS.lock().unwrap().len(), MAX_REGIONS);
        drop(all);
        assert!(write_buf(SLOT, 4096).is_some(), "slots come back when dropped");
    }
}
