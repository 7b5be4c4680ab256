//! The mblock data path: appending writes, content checksum, aligned reads.
//!
//! Writes are append-only. Whole sectors go to the device at once, split into
//! requests of at most [`IO_CHUNK`] bytes submitted as one batch (so a large
//! write keeps many I/Os in flight); a partial last sector waits in memory
//! until more data arrives or the mblock is committed, when it is written
//! zero-padded. The CRC-32C of the content is kept as it grows.

use crate::dev::{from_req_err, DevError, Device, DeviceRef};
use crate::io::{AlignedBuf, IoReq};

/// Largest single request of the mblock data path.
pub const IO_CHUNK: usize = 1 << 20;

/// An mblock being written (not yet committed).
#[derive(Debug)]
pub(crate) struct WriteState {
    pub dev: DeviceRef,
    /// Byte offset of the mblock's zone.
    pub base: u64,
    /// Zone size: the most the mblock can hold.
    pub cap: u64,
    /// Bytes accepted so far.
    pub written: u64,
    /// Bytes already on the device (a multiple of the sector size).
    pub on_dev: u64,
    /// Accepted bytes not yet on the device (less than a sector after each write).
    pub tail: Vec<u8>,
    /// CRC-32C of the accepted bytes.
    pub crc: u32,
    /// A write failed: the device content is not what was accepted.
    pub failed: bool,
    /// A commit failed after its record was handed to the metadata log:
    /// the record may be durable, so the zone stays claimed until reopen
    /// (when replay says whether the commit happened) even if aborted.
    pub hold_zone: bool,
}

/// Errors of the data path (wrapped by the pool error).
#[derive(Debug, thiserror::Error)]
pub(crate) enum DataError {
    #[error("the write would grow the mblock to {want} bytes; it holds {cap}")]
    Full { want: u64, cap: u64 },
    #[error(transparent)]
    Dev(#[from] DevError),
    #[error("an earlier write of this mblock failed; abort it")]
    Failed,
}

/// Chunk buffers kept for reuse across writes (at most this many).
const SPARE_BUFS: usize = 64;

static SPARES: std::sync::Mutex<Vec<AlignedBuf>> = std::sync::Mutex::new(Vec::new());

/// A buffer of `n` bytes aligned to `sector`: a reused chunk buffer when `n`
/// is a whole chunk (its old bytes are all overwritten by the caller), else new.
fn take_buf(n: usize, sector: usize) -> AlignedBuf {
    if n == IO_CHUNK && sector <= crate::io::DEFAULT_ALIGN {
        if let Some(b) = SPARES.lock().ok().and_then(|mut v| v.pop()) {
            return b;
        }
        return AlignedBuf::new(n, crate::io::DEFAULT_ALIGN);
    }
    AlignedBuf::new(n, sector)
}

/// Keep whole-chunk buffers of completed requests for the next writes.
fn give_bufs(done: Vec<IoReq>) {
    if let Ok(mut v) = SPARES.lock() {
        for r in done {
            if r.buf.len() == IO_CHUNK
                && r.buf.align() == crate::io::DEFAULT_ALIGN
                && v.len() < SPARE_BUFS
            {
                v.push(r.buf);
            }
        }
    }
}

/// Run a batch, at most `depth` in flight; the first failure is the error.
fn submit_all(dev: &dyn Device, reqs: Vec<IoReq>, depth: usize) -> Result<Vec<IoReq>, DevError> {
    let mut out = dev.submit_depth(reqs, depth);
    check_results(dev, &mut out)?;
    Ok(out)
}

/// The first failed request of a completed batch, as a device error.
fn check_results(dev: &dyn Device, done: &mut [IoReq]) -> Result<(), DevError> {
    for r in done {
        let (kind, off) = (r.kind, r.offset);
        r.take_result()
            .map_err(|e| from_req_err(dev.info(), kind, off, e))?;
    }
    Ok(())
}

impl WriteState {
    pub fn new(dev: DeviceRef, base: u64, cap: u64) -> Self {
        WriteState {
            dev,
            base,
            cap,
            written: 0,
            on_dev: 0,
            tail: Vec::new(),
            crc: 0,
            failed: false,
            hold_zone: false,
        }
    }

    /// The mblock's length after appending `n` more bytes, if they fit.
    fn room(&self, n: usize) -> Result<u64, DataError> {
        let want = self.written + n as u64;
        if want > self.cap {
            return Err(DataError::Full {
                want,
                cap: self.cap,
            });
        }
        Ok(want)
    }

    /// Append `data`: whole sectors go to the device now.
    pub fn append(&mut self, data: &[u8]) -> Result<(), DataError> {
        if self.failed {
            return Err(DataError::Failed);
        }
        let want = self.room(data.len())?;
        self.crc = crc32c::crc32c_append(self.crc, data);
        let sector = self.dev.sector() as usize;
        let mut src: &[u8] = data;
        let mut reqs = Vec::new();
        let mut off = self.base + self.on_dev;
        // First complete the pending partial sector, then whole chunks straight from `data`.
        let mut pending = std::mem::take(&mut self.tail);
        loop {
            let avail = pending.len() + src.len();
            let whole = (avail / sector) * sector;
            if whole == 0 {
                pending.extend_from_slice(src);
                break;
            }
            let n = whole.min(IO_CHUNK);
            let mut buf = take_buf(n, sector);
            let from_pending = pending.len().min(n);
            buf[..from_pending].copy_from_slice(&pending[..from_pending]);
            pending.drain(..from_pending);
            let from_src = n - from_pending;
            buf[from_pending..n].copy_from_slice(&src[..from_src]);
            src = &src[from_src..];
            reqs.push(IoReq::write(off, buf));
            off += n as u64;
        }
        let bytes: u64 = reqs.iter().map(|r| r.buf.len() as u64).sum();
        if !reqs.is_empty() {
            match submit_all(self.dev.as_ref(), reqs, usize::MAX) {
                Ok(done) => give_bufs(done),
                Err(e) => {
                    // Some of the data may be missing on the device: only abort is left.
                    self.failed = true;
                    return Err(e.into());
                }
            }
        }
        self.on_dev += bytes;
        self.written = want;
        self.tail = pending;
        Ok(())
    }

    /// Append all of `buf`: straight from it, in one request, when nothing
    /// is pending and it is aligned for the device (no copy); else as
    /// [`WriteState::append`]. The buffer comes back for reuse.
    pub fn append_buf(&mut self, buf: AlignedBuf) -> Result<AlignedBuf, DataError> {
        let sector = self.dev.sector() as usize;
        if !self.tail.is_empty() || buf.align() < sector || buf.is_empty() {
            self.append(&buf)?;
            return Ok(buf);
        }
        if self.failed {
            return Err(DataError::Failed);
        }
        let want = self.room(buf.len())?;
        self.crc = crc32c::crc32c_append(self.crc, &buf);
        let n = buf.len() as u64;
        // Nothing pending: the content on the device ends where it ends.
        let req = IoReq::write(self.base + self.on_dev, buf);
        match submit_all(self.dev.as_ref(), vec![req], usize::MAX) {
            Ok(mut done) => {
                self.on_dev += n;
                self.written = want;
                Ok(done.pop().map(|r| r.buf).unwrap_or_default())
            }
            Err(e) => {
                // Some of the data may be missing on the device: only abort is left.
                self.failed = true;
                Err(e.into())
            }
        }
    }

    /// Write the partial last sector (zero-padded); with `flush`, then flush
    /// the device. The partial sector stays pending in memory: if the
    /// commit that called this fails and the mblock is written further, the
    /// next append rewrites that sector with the new bytes after the old.
    pub fn finish(&mut self, flush: bool) -> Result<(), DataError> {
        if self.failed {
            return Err(DataError::Failed);
        }
        if !self.tail.is_empty() {
            let sector = self.dev.sector() as usize;
            let buf = AlignedBuf::from_slice(&self.tail, sector);
            let req = IoReq::write(self.base + self.on_dev, buf);
            submit_all(self.dev.as_ref(), vec![req], usize::MAX)?;
        }
        if flush {
            self.dev.flush()?;
        }
        Ok(())
    }
}

/// One read of [`read_many`]: `buf.len()` bytes at `offset` of the mblock
/// whose zone starts at byte `base` and whose content is `len` bytes long.
pub(crate) struct Span<'a> {
    pub base: u64,
    pub len: u64,
    pub offset: u64,
    pub buf: &'a mut [u8],
}

/// Read `buf.len()` bytes at `offset` of an mblock whose zone starts at
/// `base` and whose content is `len` bytes long. Any offset and length
/// inside the content; the aligned I/O around it is done here.
pub(crate) fn read(
    dev: &dyn Device,
    base: u64,
    len: u64,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), DevError> {
    read_many(
        dev,
        &mut [Span {
            base,
            len,
            offset,
            buf,
        }],
        usize::MAX,
    )
}

/// Several reads (of one device) as one batch of aligned requests: with
/// io_uring they are all in flight at once. The caller checked each span
/// lies inside its mblock's content.
pub(crate) fn read_many(
    dev: &dyn Device,
    spans: &mut [Span<'_>],
    depth: usize,
) -> Result<(), DevError> {
    let sector = u64::from(dev.sector());
    let mut reqs = Vec::new();
    let mut owner = Vec::new();
    for (i, sp) in spans.iter().enumerate() {
        if sp.buf.is_empty() {
            continue;
        }
        let start = sp.offset / sector * sector;
        let end = (sp.offset + sp.buf.len() as u64).div_ceil(sector) * sector;
        let end = end
            .min(sp.len.div_ceil(sector) * sector)
            .max(start + sector);
        let mut pos = start;
        while pos < end {
            let n = ((end - pos) as usize).min(IO_CHUNK);
            reqs.push(IoReq::read(
                sp.base + pos,
                AlignedBuf::scratch(n, sector as usize),
            ));
            owner.push(i);
            pos += n as u64;
        }
    }
    if reqs.is_empty() {
        return Ok(());
    }
    // Each read's bytes are copied out as it completes, while later ones
    // are still in flight; a failed read fails the whole call below.
    let mut out = dev.submit_each(reqs, depth, &mut |k, r| {
        if !matches!(r.result, Some(Ok(()))) {
            return;
        }
        let Some(sp) = owner.get(k).and_then(|&i| spans.get_mut(i)) else {
            return;
        };
        let rel = r.offset - sp.base; // byte position of this request in the mblock
        let lo = sp.offset.max(rel);
        let hi = (sp.offset + sp.buf.len() as u64).min(rel + r.buf.len() as u64);
        if lo >= hi {
            return;
        }
        let src = &r.buf[(lo - rel) as usize..(hi - rel) as usize];
        let at = (lo - sp.offset) as usize;
        sp.buf[at..at + src.len()].copy_from_slice(src);
    });
    check_results(dev, &mut out)
}

/// Read each buffer whole at its device offset, straight into it (offsets
/// and buffers are sector-aligned), with at most `depth` in flight; the
/// buffers come back in the order given.
pub(crate) fn read_into(
    dev: &dyn Device,
    bufs: Vec<(u64, AlignedBuf)>,
    depth: usize,
) -> Result<Vec<AlignedBuf>, DevError> {
    if bufs.is_empty() {
        return Ok(Vec::new());
    }
    let reqs = bufs
        .into_iter()
        .map(|(off, buf)| IoReq::read(off, buf))
        .collect();
    let out = submit_all(dev, reqs, depth)?;
    Ok(out.into_iter().map(|r| r.buf).collect())
}

/// Whether `buf` can be read straight from the device at byte `at`:
/// a sector-aligned offset, a buffer aligned at least to the sector (its
/// length then is too), not empty, and inside the device. Otherwise it is
/// read through a bounce buffer ([`read_many`]).
pub(crate) fn direct_read_ok(dev: &dyn Device, at: u64, buf: &AlignedBuf) -> bool {
    let sector = u64::from(dev.sector());
    at.is_multiple_of(sector)
        && buf.align() as u64 >= sector
        && !buf.is_empty()
        && at.saturating_add(buf.len() as u64) <= dev.size()
}

/// Zero the bytes of `buf` (read at `offset` of an mblock whose content is
/// `len` bytes long) that lie past the content, whatever the media held.
pub(crate) fn zero_past_content(buf: &mut [u8], offset: u64, len: u64) {
    let inside = (len.saturating_sub(offset) as usize).min(buf.len());
    buf[inside..].fill(0);
}

/// CRC-32C of an mblock's whole content, read back from the device.
pub(crate) fn content_crc(dev: &dyn Device, base: u64, len: u64) -> Result<u32, DevError> {
    let mut crc = 0;
    let mut pos = 0u64;
    let mut chunk = vec![0u8; IO_CHUNK.min(len as usize).max(1)];
    while pos < len {
        let n = ((len - pos) as usize).min(IO_CHUNK);
        read(dev, base, len, pos, &mut chunk[..n])?;
        crc = crc32c::crc32c_append(crc, &chunk[..n]);
        pos += n as u64;
    }
    Ok(crc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::MemDevice;
    use std::sync::Arc;

    #[test]
    fn appends_of_any_size_read_back_at_any_offset() {
        for sector in [512u32, 4096] {
            let dev: DeviceRef = Arc::new(MemDevice::new(8 << 20, sector));
            let base = 1 << 20;
            let mut w = WriteState::new(Arc::clone(&dev), base, 4 << 20);
            let mut all = Vec::new();
            let mut x = 7u32;
            for size in [
                1usize,
                100,
                511,
                512,
                513,
                4095,
                4096,
                10_000,
                (1 << 20) + 3,
                2 << 20,
                0,
                17,
            ] {
                let data: Vec<u8> = (0..size)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        (x >> 16) as u8
                    })
                    .collect();
                w.append(&data).unwrap();
                all.extend_from_slice(&data);
                assert!(w.tail.len() < sector as usize);
            }
            w.finish(true).unwrap();
            assert_eq!(w.crc, crc32c::crc32c(&all));
            let len = all.len() as u64;
            assert_eq!(content_crc(dev.as_ref(), base, len).unwrap(), w.crc);
            for (off, n) in [
                (0usize, 1usize),
                (1, 1),
                (511, 2),
                (4095, 4098),
                (12345, 1 << 20),
                (all.len() - 1, 1),
                (0, all.len()),
            ] {
                let mut b = vec![0u8; n];
                read(dev.as_ref(), base, len, off as u64, &mut b).unwrap();
                assert_eq!(
                    &b[..],
                    &all[off..off + n],
                    "sector {sector} off {off} n {n}"
                );
            }
            assert!(matches!(
                w.append(&vec![0u8; 4 << 20]),
                Err(DataError::Full { .. })
            ));
        }
    }
}
