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

/// The smallest alignment any buffer gets.
pub const MIN_ALIGN: usize = 512;
/// The alignment used when the device does not say otherwise.
pub const DEFAULT_ALIGN: usize = 4096;

/// An owned, zero-initialised byte buffer aligned for direct I/O.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    align: usize,
}

// SAFETY: AlignedBuf uniquely owns its allocation (like Vec<u8>); no interior
// aliasing exists, so moving it or sharing `&AlignedBuf` across threads is sound.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared references only permit reads of plain bytes.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes rounded up to `align`.
    ///
    /// `align` is raised to [`MIN_ALIGN`] and must be a power of two.
    pub fn new(len: usize, align: usize) -> Self {
        let align = align.max(MIN_ALIGN).next_power_of_two();
        let len = round_up(len, align);
        if len == 0 {
            return Self::empty(align);
        }
        let layout = match Layout::from_size_align(len, align) {
            Ok(l) => l,
            Err(_) => alloc::handle_alloc_error(Layout::new::<u8>()),
        };
        // SAFETY: layout has a non-zero size (len > 0 checked above).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        Self { ptr, len, align }
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
        let layout = match Layout::from_size_align(len, align) {
            Ok(l) => l,
            Err(_) => alloc::handle_alloc_error(Layout::new::<u8>()),
        };
        // SAFETY: layout has a non-zero size.
        let raw = unsafe { alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        // SAFETY: the allocation holds `len >= data.len()` bytes and cannot
        // overlap `data`; the tail `data.len()..len` is then zeroed, so every
        // byte is initialised before any slice of the buffer exists.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), ptr.as_ptr(), data.len());
            std::ptr::write_bytes(ptr.as_ptr().add(data.len()), 0, len - data.len());
        }
        Self { ptr, len, align }
    }

    /// An empty buffer (no allocation).
    pub fn empty(align: usize) -> Self {
        let align = align.max(MIN_ALIGN).next_power_of_two();
        Self {
            ptr: NonNull::dangling(),
            len: 0,
            align,
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
        // SAFETY: the same size and alignment were accepted by Layout in `new`.
        let layout = unsafe { Layout::from_size_align_unchecked(self.len, self.align) };
        // SAFETY: ptr was returned by alloc_zeroed with this layout and is freed once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) };
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr is valid for len initialised bytes (zeroed at allocation),
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
    fn empty_and_small_alignment_raised() {
        let b = AlignedBuf::new(0, 4096);
        assert!(b.is_empty());
        let b = AlignedBuf::new(1, 1);
        assert_eq!(b.align(), MIN_ALIGN);
        assert_eq!(b.len(), 512);
    }
}
