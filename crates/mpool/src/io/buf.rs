//! Aligned, owned I/O buffers for O_DIRECT.
//!
//! An [`AlignedBuf`] owns heap memory whose address and length are multiples
//! of an alignment (the device's logical sector size, at least 512). Buffers
//! are moved into I/O requests and handed back with the completion, so the
//! kernel never holds a pointer into memory the caller could free.

use std::alloc::{self, Layout};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

/// The smallest alignment any buffer gets.
pub const MIN_ALIGN: usize = 512;
/// The alignment used when the device does not say otherwise.
pub const DEFAULT_ALIGN: usize = 4096;

/// An owned, zero-initialised byte buffer aligned for direct I/O.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    align: usize,
    /// The arena this buffer is a slot of (its memory goes back there on
    /// drop), or `None` for memory of its own.
    arena: Option<Arc<Arena>>,
}

// SAFETY: AlignedBuf uniquely owns its allocation or arena slot (like Vec<u8>); no interior
// aliasing exists, so moving it or sharing `&AlignedBuf` across threads is sound.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared references only permit reads of plain bytes.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes rounded up to `align`.
    ///
    /// `align` is raised to 512 (the smallest sector) and must be a power of two.
    pub fn new(len: usize, align: usize) -> Self {
        let align = align.max(MIN_ALIGN).next_power_of_two();
        let len = round_up(len, align);
        if len == 0 {
            return Self::empty(align);
        }
        let (ptr, reused) = allocate(len, align, true);
        if reused {
            // SAFETY: the allocation holds `len` bytes; a reused one is
            // zeroed here, as a fresh one was by the allocator.
            unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, len) };
        }
        Self {
            ptr,
            len,
            align,
            arena: None,
        }
    }

    /// A buffer of `len` bytes rounded up to `align` whose content is
    /// unspecified: a reused allocation keeps the bytes of its last use (a
    /// fresh one is zeroed). For reads that overwrite it, where zeroing
    /// 4 KiB per read is measurable at queue depth.
    pub fn scratch(len: usize, align: usize) -> Self {
        let align = align.max(MIN_ALIGN).next_power_of_two();
        let len = round_up(len, align);
        if len == 0 {
            return Self::empty(align);
        }
        let (ptr, _) = allocate(len, align, true);
        Self {
            ptr,
            len,
            align,
            arena: None,
        }
    }

    /// A buffer holding a copy of `data`, zero-padded up to `align`.
    ///
    /// Only the padding is zeroed: the copy initialises the rest, which
    /// saves a pass over large buffers.
    pub fn from_slice(data: &[u8], align: usize) -> Self {
        let align = align.max(MIN_ALIGN).next_power_of_two();
        let len = round_up(data.len(), align);
        if len == 0 {
            return Self::empty(align);
        }
        let (ptr, _) = allocate(len, align, false);
        // SAFETY: the allocation holds `len >= data.len()` bytes and cannot
        // overlap `data`; the tail `data.len()..len` is then zeroed, so every
        // byte is initialised before any slice of the buffer exists.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), ptr.as_ptr(), data.len());
            std::ptr::write_bytes(ptr.as_ptr().add(data.len()), 0, len - data.len());
        }
        Self {
            ptr,
            len,
            align,
            arena: None,
        }
    }

    /// An empty buffer (no allocation).
    pub fn empty(align: usize) -> Self {
        let align = align.max(MIN_ALIGN).next_power_of_two();
        Self {
            ptr: NonNull::dangling(),
            len: 0,
            align,
            arena: None,
        }
    }

    /// Length in bytes (always a multiple of [`AlignedBuf::align`]).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The alignment of address and length.
    pub fn align(&self) -> usize {
        self.align
    }

    /// Raw pointer for I/O submission.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Raw mutable pointer for I/O submission.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Zero every byte.
    pub fn zero(&mut self) {
        self.fill(0);
    }

    /// The arena this buffer is a slot of, if any.
    pub(crate) fn arena(&self) -> Option<&Arc<Arena>> {
        self.arena.as_ref()
    }
}

/// One allocation cut into equal aligned slots, handed out as
/// [`AlignedBuf`]s whose memory returns to the arena when dropped. An
/// io_uring ring can register the whole allocation once and then read and
/// write its slots without pinning their pages for every request (see
/// [`super::Queue::register_buffers`]). The allocation lives until the
/// arena and every buffer cut from it are gone.
///
/// Opaque outside the crate: a device queue ([`crate::dev::DevQueue`])
/// is handed one to register.
pub struct Arena {
    base: NonNull<u8>,
    slot: usize,
    count: usize,
    align: usize,
    /// Indexes of the slots not handed out.
    free: Mutex<Vec<usize>>,
    /// The memory when it is a huge-page mapping (unmapped with the
    /// arena); `None` for memory from the global allocator.
    region: Option<super::huge::HugeRegion>,
}

// SAFETY: the arena owns its allocation; slots are handed out to one
// buffer at a time (the free list is behind a mutex), so no two owners
// alias a slot, and the base pointer itself is only read.
unsafe impl Send for Arena {}
// SAFETY: as above; shared access only reads the immutable fields or
// locks the free list.
unsafe impl Sync for Arena {}

impl Arena {
    /// `count` slots of `len` bytes (rounded up to `align`), zeroed;
    /// `None` for no slots, empty slots, sizes that overflow, or no memory.
    pub(crate) fn new(count: usize, len: usize, align: usize) -> Option<Arc<Self>> {
        let (slot, total, align) = Self::shape(count, len, align)?;
        let layout = Layout::from_size_align(total, align).ok()?;
        // SAFETY: the layout has a non-zero size (`shape` refuses no
        // slots, empty slots and overflow).
        let base = NonNull::new(unsafe { alloc::alloc_zeroed(layout) })?;
        Some(Self::cut(base, slot, count, align, None))
    }

    /// As [`Arena::new`], in memory backed by huge pages
    /// ([`super::huge::HugeRegion`]): a slot that fits inside one huge
    /// page never crosses one (the region starts on a huge page, and the
    /// slots are cut from its start).
    pub(crate) fn huge(count: usize, len: usize, align: usize) -> Option<Arc<Self>> {
        let (slot, total, align) = Self::shape(count, len, align)?;
        let region = super::huge::HugeRegion::new(total)?;
        let base = NonNull::new(region.as_ptr())?;
        Some(Self::cut(base, slot, count, align, Some(region)))
    }

    /// (slot, total bytes, alignment) of `count` slots of `len` bytes
    /// rounded up to `align` (at least [`MIN_ALIGN`], a power of two);
    /// `None` for no slots, empty slots or sizes that overflow.
    fn shape(count: usize, len: usize, align: usize) -> Option<(usize, usize, usize)> {
        if count == 0 || len == 0 {
            return None;
        }
        let align = align.max(MIN_ALIGN).checked_next_power_of_two()?;
        let slot = len.checked_next_multiple_of(align)?;
        Some((slot, slot.checked_mul(count)?, align))
    }

    /// The arena of `count` slots of `slot` bytes from `base`, every slot
    /// free.
    fn cut(
        base: NonNull<u8>,
        slot: usize,
        count: usize,
        align: usize,
        region: Option<super::huge::HugeRegion>,
    ) -> Arc<Self> {
        Arc::new(Self {
            base,
            slot,
            count,
            align,
            free: Mutex::new((0..count).rev().collect()),
            region,
        })
    }

    /// A free slot as a buffer, if any is left.
    pub(crate) fn take(self: &Arc<Self>) -> Option<AlignedBuf> {
        let i = self.free.lock().ok()?.pop()?;
        // SAFETY: i < count, so the slot lies inside the allocation.
        let ptr = unsafe { NonNull::new_unchecked(self.base.as_ptr().add(i * self.slot)) };
        Some(AlignedBuf {
            ptr,
            len: self.slot,
            align: self.align,
            arena: Some(Arc::clone(self)),
        })
    }

    /// A free slot as a buffer of `len` bytes rounded up to `align` (at
    /// most the arena's alignment: the slot starts on that) and at most a
    /// slot, if any is left. Its length is exactly that: the caller's
    /// request size. Its bytes are unspecified: zero in a slot never used,
    /// else those of its last use.
    pub(crate) fn take_len(self: &Arc<Self>, len: usize, align: usize) -> Option<AlignedBuf> {
        let align = align.max(MIN_ALIGN).checked_next_power_of_two()?;
        if align > self.align {
            return None;
        }
        let len = len.checked_next_multiple_of(align)?;
        if len == 0 || len > self.slot {
            return None;
        }
        let mut b = self.take()?;
        b.len = len;
        b.align = align;
        Some(b)
    }

    /// Address and length of the whole allocation.
    pub(crate) fn span(&self) -> (*mut u8, usize) {
        (self.base.as_ptr(), self.slot * self.count)
    }

    /// Byte offset of `ptr` in the allocation, when it lies inside it.
    pub(crate) fn offset_of(&self, ptr: *const u8) -> Option<usize> {
        let off = (ptr as usize).checked_sub(self.base.as_ptr() as usize)?;
        (off < self.slot * self.count).then_some(off)
    }

    fn give_back(&self, ptr: NonNull<u8>) {
        if let Some(off) = self.offset_of(ptr.as_ptr()) {
            if let Ok(mut f) = self.free.lock() {
                f.push(off / self.slot);
            }
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        if self.region.is_some() {
            // The region unmaps itself.
            return;
        }
        // SAFETY: allocated in `new` from the global allocator with this
        // size and alignment, and no buffer refers to it any more (each
        // holds an Arc of the arena).
        unsafe { cache::free(self.base, self.slot * self.count, self.align) };
    }
}

impl fmt::Debug for Arena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arena")
            .field("slot", &self.slot)
            .field("count", &self.count)
            .finish()
    }
}

/// An allocation of `len` bytes (non-zero, a multiple of `align`) aligned
/// to `align`, and whether it was reused: a reused one comes from this
/// thread's cache with the bytes of its last use (initialised, not zero); a
/// new one comes from the global allocator, zeroed with `zeroed`, else
/// uninitialised for a caller that writes every byte before reading any.
fn allocate(len: usize, align: usize, zeroed: bool) -> (NonNull<u8>, bool) {
    if let Some(ptr) = cache::take(len, align) {
        return (ptr, true);
    }
    let layout = match Layout::from_size_align(len, align) {
        Ok(l) => l,
        Err(_) => alloc::handle_alloc_error(Layout::new::<u8>()),
    };
    // SAFETY: layout has a non-zero size (callers pass len > 0).
    let raw = unsafe {
        if zeroed {
            alloc::alloc_zeroed(layout)
        } else {
            alloc::alloc(layout)
        }
    };
    let Some(ptr) = NonNull::new(raw) else {
        alloc::handle_alloc_error(layout)
    };
    (ptr, false)
}

impl Default for AlignedBuf {
    fn default() -> Self {
        Self::empty(DEFAULT_ALIGN)
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        if let Some(a) = self.arena.take() {
            a.give_back(self.ptr);
            return;
        }
        if cache::give(self.ptr, self.len, self.align) {
            return;
        }
        // SAFETY: the same size and alignment were accepted by Layout in `new`,
        // and ptr came from the global allocator with that layout.
        unsafe { cache::free(self.ptr, self.len, self.align) };
    }
}

/// Per-thread reuse of small buffers.
///
/// A random 4 KiB read allocates a buffer and frees it a few microseconds
/// later. Through the global allocator that churn returns memory to the
/// kernel and faults it back in: a third of the CPU time of 4 KiB reads at
/// queue depth 32 went to page faults (perf, BENCHMARKS.md). A dropped buffer
/// of at most [`cache::MAX_LEN`] bytes is kept on the dropping thread's
/// free list for its size and alignment instead, up to [`cache::MAX_BYTES`]
/// per thread, and handed out again (zeroed) by the next `new` there.
mod cache {
    use std::alloc::{self, Layout};
    use std::cell::RefCell;
    use std::ptr::NonNull;

    /// Largest buffer kept for reuse.
    pub(super) const MAX_LEN: usize = 64 * 1024;
    /// Bytes kept per thread at most.
    pub(super) const MAX_BYTES: usize = 4 << 20;

    /// Free allocations of one (length, alignment).
    type FreeList = ((usize, usize), Vec<NonNull<u8>>);

    /// Free lists by (length, alignment); few distinct shapes occur.
    struct Lists {
        lists: Vec<FreeList>,
        bytes: usize,
    }

    impl Drop for Lists {
        fn drop(&mut self) {
            for ((len, align), list) in self.lists.drain(..) {
                for p in list {
                    // SAFETY: every pointer on a list came from the global
                    // allocator with this layout and is owned by the list.
                    unsafe { free(p, len, align) };
                }
            }
        }
    }

    thread_local! {
        static LISTS: RefCell<Lists> = const { RefCell::new(Lists { lists: Vec::new(), bytes: 0 }) };
    }

    /// A cached allocation of exactly `len` bytes aligned to `align`.
    /// Its bytes are initialised (it held a buffer before) but not zero.
    pub(super) fn take(len: usize, align: usize) -> Option<NonNull<u8>> {
        if len > MAX_LEN {
            return None;
        }
        LISTS
            .try_with(|l| {
                let mut l = l.try_borrow_mut().ok()?;
                let list = l.lists.iter_mut().find(|(k, _)| *k == (len, align))?;
                let p = list.1.pop()?;
                l.bytes -= len;
                Some(p)
            })
            .ok()
            .flatten()
    }

    /// Keep an allocation for reuse: true when it was taken.
    pub(super) fn give(p: NonNull<u8>, len: usize, align: usize) -> bool {
        if len > MAX_LEN {
            return false;
        }
        LISTS
            .try_with(|l| {
                let Ok(mut l) = l.try_borrow_mut() else {
                    return false;
                };
                if l.bytes + len > MAX_BYTES {
                    return false;
                }
                l.bytes += len;
                match l.lists.iter_mut().find(|(k, _)| *k == (len, align)) {
                    Some((_, list)) => list.push(p),
                    None => l.lists.push(((len, align), vec![p])),
                }
                true
            })
            .unwrap_or(false)
    }

    /// Return an allocation to the global allocator.
    ///
    /// # Safety
    /// `p` came from the global allocator with layout (`len`, `align`) and
    /// is not used afterwards.
    pub(super) unsafe fn free(p: NonNull<u8>, len: usize, align: usize) {
        // SAFETY: the caller guarantees this layout was accepted when allocating.
        let layout = unsafe { Layout::from_size_align_unchecked(len, align) };
        // SAFETY: per the caller, p is a live allocation of this layout.
        unsafe { alloc::dealloc(p.as_ptr(), layout) };
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr is valid for len initialised bytes (zeroed or copied into
        // at allocation; a reused allocation is zeroed or copied into again),
        // or dangling with len 0, which is allowed for empty slices.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref; &mut self guarantees unique access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Clone for AlignedBuf {
    fn clone(&self) -> Self {
        Self::from_slice(self, self.align)
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("align", &self.align)
            .finish()
    }
}

/// Round `v` up to a multiple of `align` (a power of two).
pub fn round_up(v: usize, align: usize) -> usize {
    (v + align - 1) & !(align - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        for align in [512usize, 4096, 8192] {
            let b = AlignedBuf::new(1000, align);
            assert_eq!(b.len(), round_up(1000, align));
            assert_eq!(b.as_ptr() as usize % align, 0);
            assert!(b.iter().all(|&x| x == 0));
        }
    }

    #[test]
    fn from_slice_pads() {
        let b = AlignedBuf::from_slice(b"hello", 512);
        assert_eq!(b.len(), 512);
        assert_eq!(&b[..5], b"hello");
        assert!(b[5..].iter().all(|&x| x == 0));
        let c = b.clone();
        assert_eq!(&c[..], &b[..]);
    }

    #[test]
    fn reused_buffers_come_back_zeroed() {
        for _ in 0..3 {
            let mut a = AlignedBuf::new(4096, 4096);
            assert!(a.iter().all(|&x| x == 0));
            a.fill(0xa5);
            let p = a.as_ptr();
            drop(a);
            let b = AlignedBuf::new(4096, 4096);
            assert_eq!(b.as_ptr(), p, "the dropped buffer is reused");
            assert!(b.iter().all(|&x| x == 0));
            let c = AlignedBuf::from_slice(b"abc", 4096);
            assert_eq!(&c[..3], b"abc");
            assert!(c[3..].iter().all(|&x| x == 0));
        }
        // A scratch buffer reuses a dropped one without zeroing it.
        let mut a = AlignedBuf::new(4096, 4096);
        a.fill(7);
        let p = a.as_ptr();
        drop(a);
        let s = AlignedBuf::scratch(4096, 4096);
        assert_eq!((s.as_ptr(), s.len()), (p, 4096));
        assert!(AlignedBuf::scratch(0, 4096).is_empty());
        // Another shape never gets this one's memory, and big buffers are not kept.
        let a = AlignedBuf::new(8192, 512);
        assert_eq!(a.as_ptr() as usize % 512, 0);
        assert_eq!(a.len(), 8192);
        let big = AlignedBuf::new(cache::MAX_LEN * 2, 4096);
        assert!(big.iter().all(|&x| x == 0));
    }

    #[test]
    fn arena_slots_are_distinct_aligned_and_come_back() {
        assert!(Arena::new(0, 4096, 4096).is_none());
        assert!(Arena::new(1, 0, 4096).is_none());
        assert!(
            Arena::new(1, usize::MAX, 4096).is_none(),
            "rounding overflows"
        );
        assert!(
            Arena::new(usize::MAX, 4096, 4096).is_none(),
            "size overflows"
        );
        let a = Arena::new(3, 1000, 4096).unwrap();
        let bufs: Vec<AlignedBuf> = (0..3).map(|_| a.take().unwrap()).collect();
        assert!(a.take().is_none());
        let (base, total) = a.span();
        assert_eq!(total, 3 * 4096);
        let mut starts: Vec<usize> = bufs.iter().map(|b| b.as_ptr() as usize).collect();
        starts.sort();
        starts.dedup();
        assert_eq!(starts.len(), 3);
        for b in &bufs {
            assert_eq!(b.len(), 4096);
            assert_eq!(b.as_ptr() as usize % 4096, 0);
            assert!(a.offset_of(b.as_ptr()).is_some());
            assert!(b.iter().all(|&x| x == 0));
        }
        assert!(a.offset_of(base.wrapping_add(total)).is_none());
        let mut bufs = bufs;
        let mut one = bufs.pop().unwrap();
        one.fill(9);
        let p = one.as_ptr();
        drop(one);
        let again = a.take().unwrap();
        assert_eq!(again.as_ptr(), p, "a dropped slot is handed out again");
        // A clone is plain memory, not a slot.
        let c = again.clone();
        assert!(c.arena().is_none());
        assert!(a.offset_of(c.as_ptr()).is_none());
        // The buffers keep the memory alive after the arena handle is gone.
        drop(a);
        assert!(again.iter().all(|&x| x == 9));
        drop(bufs);
    }

    #[test]
    fn empty_and_small_alignment_raised() {
        let b = AlignedBuf::new(0, 4096);
        assert!(b.is_empty());
        let b = AlignedBuf::new(1, 1);
        assert_eq!(b.align(), MIN_ALIGN);
        assert_eq!(b.len(), 512);
    }
}
