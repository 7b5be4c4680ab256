//! Reads of committed mblocks: the read descriptors of the public API, the
//! range checks, and content verification.

use super::{mblock, Catalog};
use crate::dev::DeviceRef;
use crate::error::{ensure_invariant, ObjectError, Result};
use crate::format::superblock::MediaClass;
use crate::io::AlignedBuf;
use crate::objid::{MblockId, ObjType, ObjectId};

/// One read of [`crate::Pool::mblock_read_batch`].
#[derive(Debug)]
pub struct MblockRead<'a> {
    /// The mblock (committed).
    pub id: MblockId,
    /// Byte offset in its content.
    pub offset: u64,
    /// Where the bytes go; its length is the length read.
    pub buf: &'a mut [u8],
}

/// One read of an [`crate::MblockReader`]: the buffer moves in and comes
/// back filled.
#[derive(Debug)]
pub struct AlignedRead {
    /// The mblock (committed).
    pub id: MblockId,
    /// Byte offset in its content.
    pub offset: u64,
    /// Where the bytes go; its length is the length read.
    pub buf: AlignedBuf,
}

impl Catalog {
    /// Read from a committed mblock at any offset inside its content.
    pub(crate) fn mblock_read(&self, id: ObjectId, offset: u64, buf: &mut [u8]) -> Result<()> {
        let (class, base, len) = self.read_target(id, offset, buf.len(), 1)?;
        mblock::read(self.class_dev(class)?.as_ref(), base, len, offset, buf)?;
        Ok(())
    }

    /// Where a read of `n` bytes at `offset` of mblock `id` goes: the
    /// mblock's class, the byte offset of its zone, and its content
    /// length. The read must lie inside the content, except that it may
    /// run past the end up to the next multiple of `slack` (1: not at
    /// all), never past the zone.
    pub(super) fn read_target(
        &self,
        id: ObjectId,
        offset: u64,
        n: usize,
        slack: u64,
    ) -> Result<(MediaClass, u64, u64)> {
        Self::expect_type(id, ObjType::Mblock)?;
        let Some(o) = self.committed(id)? else {
            return Err(self.unread(id));
        };
        let len = u64::from(o.a);
        let c = self.inner.class(o.class())?;
        // The pair of the check at commit (and at open): the content fits
        // its zone, so a read inside the content stays inside the zone.
        ensure_invariant!(
            len <= c.zone_size,
            "mblock {id}: {len} bytes recorded in a {}-byte zone",
            c.zone_size
        );
        let limit = len
            .div_ceil(slack.max(1))
            .saturating_mul(slack.max(1))
            .min(c.zone_size);
        if offset.checked_add(n as u64).is_none_or(|end| end > limit) {
            return Err(ObjectError::ReadOutOfRange {
                id,
                offset,
                len: n as u64,
                size: len,
            }
            .into());
        }
        Ok((o.class(), c.off(o.zone), len))
    }

    /// Several reads of committed mblocks as one batch per device.
    pub(crate) fn mblock_read_batch(
        &self,
        reads: &mut [MblockRead<'_>],
        depth: usize,
    ) -> Result<()> {
        let mut per_class: [Vec<mblock::Span<'_>>; 2] = [Vec::new(), Vec::new()];
        for r in reads.iter_mut() {
            let (class, base, len) =
                self.read_target(r.id.object_id(), r.offset, r.buf.len(), 1)?;
            per_class[class.index()].push(mblock::Span {
                base,
                len,
                offset: r.offset,
                buf: &mut *r.buf,
            });
        }
        for class in MediaClass::ALL {
            let spans = &mut per_class[class.index()];
            if !spans.is_empty() {
                mblock::read_many(self.inner.class(class)?.dev.as_ref(), spans, depth)?;
            }
        }
        Ok(())
    }

    /// Where aligned read `r` goes: its mblock's class, the byte offset of
    /// its zone, and its content length. The buffer may run past the
    /// content up to the next multiple of its own alignment (a whole
    /// mblock fits one buffer), never past the zone.
    pub(crate) fn aligned_target(&self, r: &AlignedRead) -> Result<(MediaClass, u64, u64)> {
        self.read_target(
            r.id.object_id(),
            r.offset,
            r.buf.len(),
            r.buf.align() as u64,
        )
    }

    /// The device of media class `class`.
    pub(crate) fn class_dev(&self, class: MediaClass) -> Result<&DeviceRef> {
        Ok(&self.inner.class(class)?.dev)
    }

    /// Reads of committed mblocks into owned aligned buffers, with at
    /// most `depth` device requests in flight: the reads an
    /// [`crate::MblockReader`] does when they are pushed (those it cannot
    /// hand to a device queue). A read whose offset is a multiple of the
    /// device's sector size, into a buffer aligned at least that much,
    /// goes from the device straight into its buffer; any other is read
    /// through a bounce buffer and copied. Bytes of a buffer past the
    /// content come back zero. Every read is checked before any I/O is
    /// issued.
    pub(crate) fn mblock_read_aligned(
        &self,
        mut reads: Vec<AlignedRead>,
        depth: usize,
    ) -> Result<Vec<AlignedRead>> {
        // Per read: its class and zone base, and its content length.
        let at = reads
            .iter()
            .map(|r| self.aligned_target(r))
            .collect::<Result<Vec<_>>>()?;
        // Reads go straight into their buffers where they can, the others
        // through bounce buffers and a copy.
        let mut direct = vec![false; reads.len()];
        for class in MediaClass::ALL {
            if !at.iter().any(|a| a.0 == class) {
                continue;
            }
            let dev = self.class_dev(class)?.as_ref();
            let (mut taken, mut bufs) = (Vec::new(), Vec::new());
            for (i, r) in reads.iter_mut().enumerate() {
                let pos = at[i].1 + r.offset;
                if at[i].0 == class && mblock::direct_read_ok(dev, pos, &r.buf) {
                    direct[i] = true;
                    taken.push(i);
                    bufs.push((pos, std::mem::take(&mut r.buf)));
                }
            }
            for (i, b) in taken.into_iter().zip(mblock::read_into(dev, bufs, depth)?) {
                reads[i].buf = b;
            }
            let mut spans: Vec<mblock::Span<'_>> = Vec::new();
            for (i, r) in reads.iter_mut().enumerate() {
                if direct[i] || at[i].0 != class {
                    continue;
                }
                let (_, base, len) = at[i];
                let inside = (len.saturating_sub(r.offset) as usize).min(r.buf.len());
                spans.push(mblock::Span {
                    base,
                    len,
                    offset: r.offset,
                    buf: &mut r.buf[..inside],
                });
            }
            mblock::read_many(dev, &mut spans, depth)?;
        }
        for (r, &(_, _, len)) in reads.iter_mut().zip(&at) {
            mblock::zero_past_content(&mut r.buf, r.offset, len);
        }
        Ok(reads)
    }

    /// Verify the content CRC of a committed mblock.
    pub(crate) fn verify(&self, id: ObjectId) -> Result<()> {
        let Some(o) = self.committed(id)? else {
            return Err(ObjectError::NotFound(id).into());
        };
        if id.ty() != ObjType::Mblock {
            return Ok(());
        }
        let c = self.inner.class(o.class())?;
        let crc = mblock::content_crc(c.dev.as_ref(), c.off(o.zone), u64::from(o.a))?;
        if crc != o.b {
            return Err(ObjectError::ChecksumMismatch {
                id,
                stored: o.b,
                computed: crc,
            }
            .into());
        }
        Ok(())
    }
}
