//! Reads of committed mblocks: the read descriptors of the public API, the
//! range checks, and verification of every byte returned against the
//! mblock's checksums (`csum`).

use super::object::Obj;
use super::{mblock, Catalog};
use crate::dev::DeviceRef;
use crate::error::{ensure_invariant, invariant_broken, Error, ObjectError, Result, StorageError};
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

/// Where a read of a committed mblock goes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target {
    pub class: MediaClass,
    /// Byte offset of the mblock's zone.
    pub base: u64,
    /// Content length.
    pub len: u64,
    /// Its record.
    pub obj: Obj,
}

impl Catalog {
    /// Read from a committed mblock at any offset inside its content,
    /// verified against its checksums.
    pub(crate) fn mblock_read(&self, id: ObjectId, offset: u64, buf: &mut [u8]) -> Result<()> {
        let t = self.read_target(id, offset, buf.len(), 1)?;
        if buf.is_empty() {
            return Ok(());
        }
        let dev = self.class_dev(t.class)?.as_ref();
        self.with_table(id, &t.obj, |table| {
            let first = mblock::read_whole_blocks(dev, t.base, t.len, offset, buf, table)?;
            if first == mblock::Whole::Done {
                return Ok(());
            }
            let mut spans = [mblock::Span {
                base: t.base,
                len: t.len,
                offset,
                buf,
                table: Some(table),
            }];
            if first == mblock::Whole::Mismatch {
                // That was the first of the two reads a block gets.
                return mblock::read_again(dev, &mut spans, usize::MAX);
            }
            mblock::read_many(dev, &mut spans, usize::MAX)
        })?
        .map_err(|e| self.read_err(id, e))
    }

    /// A failed verified read of `id` as the pool's error (a mismatch is
    /// recorded).
    pub(super) fn read_err(&self, id: ObjectId, e: mblock::ReadError) -> Error {
        match e {
            mblock::ReadError::Dev(d) => StorageError::Dev(d).into(),
            mblock::ReadError::Bad { range, .. } => self.csum_error(id, range),
        }
    }

    /// Where a read of `n` bytes at `offset` of mblock `id` goes: the
    /// mblock's class, the byte offset of its zone, its content length
    /// and its record. The read must lie inside the content, except that
    /// it may run past the end up to the next multiple of `slack` (1: not
    /// at all), never past the zone.
    pub(super) fn read_target(
        &self,
        id: ObjectId,
        offset: u64,
        n: usize,
        slack: u64,
    ) -> Result<Target> {
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
        let limit = if slack <= 1 {
            len
        } else {
            len.div_ceil(slack).saturating_mul(slack).min(c.zone_size)
        };
        if offset.checked_add(n as u64).is_none_or(|end| end > limit) {
            return Err(ObjectError::ReadOutOfRange {
                id,
                offset,
                len: n as u64,
                size: len,
            }
            .into());
        }
        Ok(Target {
            class: o.class(),
            base: c.off(o.zone),
            len,
            obj: o,
        })
    }

    /// Several reads of committed mblocks as one batch per device, each
    /// verified against its mblock's checksums.
    pub(crate) fn mblock_read_batch(
        &self,
        reads: &mut [MblockRead<'_>],
        depth: usize,
    ) -> Result<()> {
        let mut targets = Vec::with_capacity(reads.len());
        for r in reads.iter() {
            let id = r.id.object_id();
            let t = self.read_target(id, r.offset, r.buf.len(), 1)?;
            let table = if r.buf.is_empty() {
                None
            } else {
                Some(self.table(id, &t.obj)?)
            };
            targets.push((t, table));
        }
        let mut per_class: [Vec<mblock::Span<'_>>; 2] = [Vec::new(), Vec::new()];
        let mut ids: [Vec<ObjectId>; 2] = [Vec::new(), Vec::new()];
        for (r, (t, table)) in reads.iter_mut().zip(&targets) {
            per_class[t.class.index()].push(mblock::Span {
                base: t.base,
                len: t.len,
                offset: r.offset,
                buf: &mut *r.buf,
                table: table.as_deref(),
            });
            ids[t.class.index()].push(r.id.object_id());
        }
        for class in MediaClass::ALL {
            let spans = &mut per_class[class.index()];
            if spans.is_empty() {
                continue;
            }
            let dev = self.inner.class(class)?.dev.as_ref();
            if let Err(e) = mblock::read_many(dev, spans, depth) {
                let id = match &e {
                    mblock::ReadError::Bad { span, .. } => ids[class.index()].get(*span).copied(),
                    mblock::ReadError::Dev(_) => None,
                };
                return Err(match (id, e) {
                    (Some(id), e) => self.read_err(id, e),
                    (None, mblock::ReadError::Dev(d)) => StorageError::Dev(d).into(),
                    (None, mblock::ReadError::Bad { span, .. }) => {
                        invariant_broken(format!("a checksum failure of unknown read {span}"))
                    }
                });
            }
        }
        Ok(())
    }

    /// Where aligned read `r` goes. The buffer may run past the content up
    /// to the next multiple of its own alignment (a whole mblock fits one
    /// buffer), never past the zone.
    pub(super) fn aligned_target(&self, r: &AlignedRead) -> Result<Target> {
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
    /// device's sector size and of its mblock's checksum block, into a
    /// buffer aligned at least to the sector that ends on a checksum block
    /// boundary (or past the content), goes from the device straight into
    /// its buffer and is verified there; any other is read, in whole
    /// checksum blocks, through a bounce buffer, verified, and copied.
    /// Bytes of a buffer past the content come back zero. Every read is
    /// checked before any I/O is issued.
    pub(crate) fn mblock_read_aligned(
        &self,
        mut reads: Vec<AlignedRead>,
        depth: usize,
    ) -> Result<Vec<AlignedRead>> {
        let mut at = Vec::with_capacity(reads.len());
        for r in &reads {
            let t = self.aligned_target(r)?;
            let table = self.table(r.id.object_id(), &t.obj)?;
            at.push((t, table));
        }
        // Reads go straight into their buffers where they can, the others
        // through bounce buffers and a copy.
        let mut direct = vec![false; reads.len()];
        for class in MediaClass::ALL {
            if !at.iter().any(|a| a.0.class == class) {
                continue;
            }
            let dev = self.class_dev(class)?.as_ref();
            let (mut taken, mut bufs) = (Vec::new(), Vec::new());
            for (i, r) in reads.iter_mut().enumerate() {
                let (t, table) = &at[i];
                let pos = t.base + r.offset;
                if t.class == class
                    && mblock::direct_read_ok(dev, pos, &r.buf)
                    && whole_blocks(table, r.offset, r.buf.len(), t.len)
                {
                    direct[i] = true;
                    taken.push(i);
                    bufs.push((pos, std::mem::take(&mut r.buf)));
                }
            }
            for (i, b) in taken.into_iter().zip(mblock::read_into(dev, bufs, depth)?) {
                let (t, table) = &at[i];
                let r = &mut reads[i];
                r.buf = b;
                self.verify_in_place(dev, t, table, r)?;
            }
            let mut spans: Vec<mblock::Span<'_>> = Vec::new();
            let mut ids = Vec::new();
            for (i, r) in reads.iter_mut().enumerate() {
                let (t, table) = &at[i];
                if direct[i] || t.class != class {
                    continue;
                }
                let inside = (t.len.saturating_sub(r.offset) as usize).min(r.buf.len());
                spans.push(mblock::Span {
                    base: t.base,
                    len: t.len,
                    offset: r.offset,
                    buf: &mut r.buf[..inside],
                    table: Some(table),
                });
                ids.push(r.id.object_id());
            }
            if let Err(e) = mblock::read_many(dev, &mut spans, depth) {
                let id = match &e {
                    mblock::ReadError::Bad { span, .. } => ids.get(*span).copied(),
                    mblock::ReadError::Dev(_) => None,
                };
                return Err(match (id, e) {
                    (Some(id), e) => self.read_err(id, e),
                    (None, mblock::ReadError::Dev(d)) => StorageError::Dev(d).into(),
                    (None, mblock::ReadError::Bad { span, .. }) => {
                        invariant_broken(format!("a checksum failure of unknown read {span}"))
                    }
                });
            }
        }
        for (r, (t, _)) in reads.iter_mut().zip(&at) {
            mblock::zero_past_content(&mut r.buf, r.offset, t.len);
        }
        Ok(reads)
    }

    /// Verify read `r`, read straight into its buffer from the mblock at
    /// `t`; on a mismatch read it once more, and fail if it still does
    /// not match (the mismatch is recorded).
    pub(super) fn verify_in_place(
        &self,
        dev: &dyn crate::dev::Device,
        t: &Target,
        table: &mblock::Table,
        r: &mut AlignedRead,
    ) -> Result<()> {
        let inside = (t.len.saturating_sub(r.offset) as usize).min(r.buf.len());
        let Err(_) = table.check(r.offset, &r.buf[..inside], t.len) else {
            return Ok(());
        };
        let buf = std::mem::take(&mut r.buf);
        let mut again = mblock::read_into(dev, vec![(t.base + r.offset, buf)], 1)?;
        r.buf = again.pop().unwrap_or_default();
        let inside = (t.len.saturating_sub(r.offset) as usize).min(r.buf.len());
        table
            .check(r.offset, &r.buf[..inside], t.len)
            .map_err(|range| self.csum_error(r.id.object_id(), range))
    }

    /// Verify a committed mblock: its whole content against its checksums
    /// (every block of a format-3 mblock, the whole-content CRC of a
    /// legacy one). The first damaged range is the error.
    pub(crate) fn verify(&self, id: ObjectId) -> Result<()> {
        let damage = self.scrub_id(id)?;
        match damage.iter().find(|d| !d.table) {
            Some(d) => Err(ObjectError::Checksum {
                id,
                offset: d.offset,
                len: d.len,
            }
            .into()),
            None => Ok(()),
        }
    }

    /// Every damaged range of a committed mblock (none for other objects),
    /// reading all of it.
    pub(crate) fn scrub_id(&self, id: ObjectId) -> Result<Vec<super::Damage>> {
        let Some(o) = self.committed(id)? else {
            return Err(ObjectError::NotFound(id).into());
        };
        if id.ty() != ObjType::Mblock {
            return Ok(Vec::new());
        }
        self.scrub(id, &o)
    }
}

/// Whether a read of `n` bytes at `offset` of an mblock of `len` bytes
/// covers whole checksum blocks of `table` (the last one ending at `len`).
pub(super) fn whole_blocks(table: &mblock::Table, offset: u64, n: usize, len: u64) -> bool {
    let end = offset + n as u64;
    offset.is_multiple_of(table.block()) && (end.is_multiple_of(table.block()) || end >= len)
}
