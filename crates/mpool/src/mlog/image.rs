//! The in-memory image of a log's unwritten blocks: a growable buffer
//! aligned as a device's I/O buffers are, so that a flush writes straight
//! from it (no copy into a request buffer) and its memory is reused from
//! one flush set to the next.

use crate::io::DEFAULT_ALIGN;
use crate::io::AlignedBuf;

/// Bytes `0..len` of an aligned allocation; bytes a caller grows it by
/// are zero.
#[derive(Debug)]
pub(super) struct Image {
    mem: AlignedBuf,
    len: usize,
}

impl Image {
    /// An empty image whose memory is aligned to `align` (at least
    /// [`DEFAULT_ALIGN`], what a file device's direct writes need).
    pub(super) fn new(align: usize) -> Image {
        Image {
            mem: AlignedBuf::empty(align.max(DEFAULT_ALIGN)),
            len: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn bytes(&self) -> &[u8] {
        self.mem.get(..self.len).unwrap_or(&[])
    }

    pub(super) fn bytes_mut(&mut self) -> &mut [u8] {
        let n = self.len;
        self.mem.get_mut(..n).unwrap_or(&mut [])
    }

    /// Grow to `need` bytes (new bytes are zero); never shrinks.
    pub(super) fn grow(&mut self, need: usize) {
        if need <= self.len {
            return;
        }
        if need > self.mem.len() {
            let cap = need.max(2 * self.mem.len());
            let mut m = AlignedBuf::scratch(cap, self.mem.align());
            if let (Some(d), Some(s)) = (m.get_mut(..self.len), self.mem.get(..self.len)) {
                d.copy_from_slice(s);
            }
            self.mem = m;
        }
        if let Some(s) = self.mem.get_mut(self.len..need) {
            s.fill(0);
        }
        self.len = need;
    }

    /// Append a copy of `data`.
    pub(super) fn extend(&mut self, data: &[u8]) {
        let at = self.len;
        self.grow(at + data.len());
        if let Some(d) = self.mem.get_mut(at..at + data.len()) {
            d.copy_from_slice(data);
        }
    }

    /// Drop the first `n` bytes (the rest moves to the front).
    pub(super) fn drop_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.mem.copy_within(n..self.len, 0);
        self.len -= n;
    }

    /// Empty it (the memory is kept for reuse).
    pub(super) fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::Image;

    #[test]
    fn grows_zeroed_keeps_bytes_and_drops_the_front() {
        let mut im = Image::new(4096);
        im.extend(&[7u8; 100]);
        im.grow(5000);
        assert_eq!(im.len(), 5000);
        assert!(im.bytes()[..100].iter().all(|&b| b == 7));
        assert!(im.bytes()[100..].iter().all(|&b| b == 0));
        assert_eq!(im.bytes().as_ptr() as usize % 4096, 0);
        im.bytes_mut()[4999] = 9;
        im.drop_front(4096);
        assert_eq!(im.len(), 904);
        assert_eq!(im.bytes()[903], 9);
        // Reused memory holding old bytes: growing zeroes them again.
        im.clear();
        im.grow(1000);
        assert!(im.bytes().iter().all(|&b| b == 0));
    }
}
