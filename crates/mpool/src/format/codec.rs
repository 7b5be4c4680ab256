//! Bounds-checked little-endian fields over a byte slice: the one codec that
//! every on-media format (superblock, pool-metadata records, mlog framing)
//! reads and writes its integers with.
//!
//! A [`Reader`] or [`Writer`] walks a slice from a position; each step
//! either moves past a whole field or fails with [`Short`] and leaves the
//! position where it was. Nothing here panics, whatever the slice's length
//! or the position.

/// A field did not fit in the slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{need} bytes needed at offset {at} of a {len}-byte buffer")]
pub struct Short {
    /// Where the field starts.
    pub at: usize,
    /// Its length.
    pub need: usize,
    /// The length of the whole slice.
    pub len: usize,
}

/// Reads little-endian fields one after the other.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// A reader at offset `pos` of `buf` (a position past the end only makes
    /// every read fail).
    pub fn at(buf: &'a [u8], pos: usize) -> Self {
        Reader { buf, pos }
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Short> {
        let short = Short {
            at: self.pos,
            need: n,
            len: self.buf.len(),
        };
        let end = self.pos.checked_add(n).ok_or(short)?;
        let s = self.buf.get(self.pos..end).ok_or(short)?;
        self.pos = end;
        Ok(s)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Short> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    /// The next byte.
    pub fn u8(&mut self) -> Result<u8, Short> {
        Ok(self.array::<1>()?[0])
    }

    /// The next little-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, Short> {
        self.array().map(u16::from_le_bytes)
    }

    /// The next little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, Short> {
        self.array().map(u32::from_le_bytes)
    }

    /// The next little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, Short> {
        self.array().map(u64::from_le_bytes)
    }
}

/// Writes little-endian fields one after the other into a slice.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    /// A writer at offset `pos` of `buf`.
    pub fn at(buf: &'a mut [u8], pos: usize) -> Self {
        Writer { buf, pos }
    }

    /// The position: where the next field goes.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Move to offset `pos` (a position past the end only makes every
    /// write fail).
    pub fn seek(&mut self, pos: usize) -> &mut Self {
        self.pos = pos;
        self
    }

    /// Write `v` as is.
    pub fn bytes(&mut self, v: &[u8]) -> Result<&mut Self, Short> {
        let short = Short {
            at: self.pos,
            need: v.len(),
            len: self.buf.len(),
        };
        let end = self.pos.checked_add(v.len()).ok_or(short)?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(short)?
            .copy_from_slice(v);
        self.pos = end;
        Ok(self)
    }

    /// Write one byte.
    pub fn u8(&mut self, v: u8) -> Result<&mut Self, Short> {
        self.bytes(&[v])
    }

    /// Write a little-endian `u16`.
    pub fn u16(&mut self, v: u16) -> Result<&mut Self, Short> {
        self.bytes(&v.to_le_bytes())
    }

    /// Write a little-endian `u32`.
    pub fn u32(&mut self, v: u32) -> Result<&mut Self, Short> {
        self.bytes(&v.to_le_bytes())
    }

    /// Write a little-endian `u64`.
    pub fn u64(&mut self, v: u64) -> Result<&mut Self, Short> {
        self.bytes(&v.to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_order_and_refuses_short_input() {
        let b = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
        let mut r = Reader::new(&b);
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.u16(), Ok(0x0302));
        assert_eq!(r.u32(), Ok(0x0706_0504));
        assert_eq!(r.u32(), Ok(0x0b0a_0908));
        assert_eq!(
            r.u64(),
            Err(Short {
                at: 11,
                need: 8,
                len: 15
            })
        );
        // A failed read does not move the reader.
        assert_eq!(r.bytes(4), Ok(&b[11..]));
        assert!(r.u8().is_err());
        assert!(Reader::at(&b, usize::MAX).u8().is_err());
        assert!(Reader::at(&b, 14).u16().is_err());
        assert_eq!(Reader::at(&b, 7).u64(), Ok(0x0f0e_0d0c_0b0a_0908));
        assert_eq!(Reader::new(&[]).bytes(0), Ok(&[][..]));
    }

    #[test]
    fn writes_in_order_and_refuses_overflow() {
        let mut b = [0u8; 15];
        let mut w = Writer::new(&mut b);
        w.u8(1)
            .unwrap()
            .u16(0x0302)
            .unwrap()
            .u32(0x0706_0504)
            .unwrap();
        assert_eq!(w.pos(), 7);
        assert!(w.u64(0).is_ok());
        assert!(w.u8(0).is_err());
        assert_eq!(w.pos(), 15);
        assert!(Writer::at(&mut b, usize::MAX).u8(0).is_err());
        assert!(Writer::at(&mut b, 12).u32(0).is_err());
        assert_eq!(w_at_9(&mut b), Ok(13));
        assert_eq!(b[..7], [1, 2, 3, 4, 5, 6, 7]);
        let mut r = Reader::new(&b);
        assert_eq!(r.array::<7>(), Ok([1, 2, 3, 4, 5, 6, 7]));
        assert_eq!(Reader::at(&b, 9).u32(), Ok(0xdead_beef));
    }

    fn w_at_9(b: &mut [u8]) -> Result<usize, Short> {
        let mut w = Writer::new(b);
        Ok(w.seek(9).u32(0xdead_beef)?.pos())
    }
}
