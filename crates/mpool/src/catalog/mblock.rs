//! The mblock data path: appending writes, content checksum, aligned reads.
//!
//! Writes are append-only. The first [`HOLD_MAX`] bytes of an mblock wait
//! in memory (a small mblock goes to the device in one request with its
//! checksum table at commit, instead of one request for its content and
//! one for the table); past that, whole sectors go to the device at once,
//! split into requests of at most [`IO_CHUNK`] bytes submitted as one batch
//! (so a large write keeps many I/Os in flight), and a partial last sector
//! waits in memory until more data arrives or the mblock is committed, when
//! it is written zero-padded. The CRC-32C of the content is kept as it grows; in a
//! format-3 pool, a CRC-32C per checksum block instead, and the commit
//! writes their table after the content (`docs/format.md`, "Mblock
//! content"), in the same request as the partial last sector.
//!
//! Reads verify what they return: [`read_many`] given a [`Table`] reads
//! whole checksum blocks and checks each before copying any byte of it out.

use crate::dev::{from_req_err, DevError, Device};
use crate::format::record::CsumLayout;
use crate::io::{AlignedBuf, IoReq};

/// Largest single request of the mblock data path.
pub const IO_CHUNK: usize = 1 << 20;

/// An mblock's content up to this many bytes waits in memory until its
/// commit, which writes it with the checksum table in one request (one
/// device round trip fewer per small object; what the commit's flush
/// covers is the same).
pub const HOLD_MAX: usize = 256 << 10;

/// Content accepted but not yet on the device, in a buffer aligned for
/// direct I/O. Sized, when the content comes in one piece, for the
/// commit's last write (the content zero-padded to a sector, then the
/// checksum table), which is then sent from this buffer instead of a copy
/// ([`WriteState::finish_request`] lends it out; the completion gives it
/// back).
#[derive(Debug, Default)]
pub(crate) struct Held {
    /// The buffer (`None` before the first byte, or while lent out).
    buf: Option<AlignedBuf>,
    /// Bytes held, at the buffer's start.
    len: usize,
    /// The buffer is out in a write request and has not come back, so
    /// the bytes are not here: a bug if it happens, and the mblock can
    /// then only be aborted (nothing is ever written from a missing
    /// buffer).
    lent: bool,
}

impl Held {
    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes held (`Failed` while the buffer is lent out).
    fn bytes(&self) -> Result<&[u8], DataError> {
        if self.lent {
            return Err(DataError::Failed);
        }
        Ok(match &self.buf {
            Some(b) => &b[..self.len],
            None => &[],
        })
    }

    /// Append `data`. The buffer is made `want` bytes long when it must
    /// grow and holds nothing yet (the caller's guess at the commit's last
    /// write), else at least twice its length (a mblock written in many
    /// pieces copies each byte a bounded number of times, as a `Vec`).
    fn push(&mut self, data: &[u8], want: usize, sector: usize) -> Result<(), DataError> {
        if self.lent {
            return Err(DataError::Failed);
        }
        let need = self.len + data.len();
        let cap = self.buf.as_ref().map_or(0, |b| b.len());
        if need > cap {
            let size = if self.len == 0 {
                want.max(need)
            } else {
                need.max(2 * cap)
            };
            let mut b = held_buf(size, sector);
            if let Some(old) = &self.buf {
                b[..self.len].copy_from_slice(&old[..self.len]);
            }
            self.buf = Some(b);
        }
        if let Some(b) = &mut self.buf {
            b[self.len..need].copy_from_slice(data);
        }
        self.len = need;
        Ok(())
    }

    /// The buffer for a write of exactly `span` bytes, when it is that
    /// long; give it back with [`Held::restore`].
    fn lend(&mut self, span: usize) -> Option<AlignedBuf> {
        if self.lent || self.buf.as_ref().map(|b| b.len()) != Some(span) {
            return None;
        }
        self.lent = true;
        self.buf.take()
    }

    /// The lent buffer back (its first bytes are still the content).
    pub fn restore(&mut self, buf: AlignedBuf) {
        if self.lent {
            self.buf = Some(buf);
            self.lent = false;
        }
    }
}

/// A buffer of `n` bytes aligned to `sector` for held content: one slot of
/// a huge page where it fits (see `io::huge`), else memory of its own.
/// Its bytes are unspecified: what is sent from it is written first.
fn held_buf(n: usize, sector: usize) -> AlignedBuf {
    crate::io::huge::write_buf(n, sector).unwrap_or_else(|| AlignedBuf::scratch(n, sector))
}

/// An mblock being written (not yet committed).
#[derive(Debug)]
///
/// It holds no handle of the device: the calls that write take the
/// device of the mblock's class (`dev`). Each new mblock took a reference
/// to it, and each commit gave it back: two updates of one count, from
/// every thread, at about 150 ns an mblock with two threads on two CPUs
/// (BENCHMARKS.md, session 27).
pub(crate) struct WriteState {
    /// The device's sector size.
    pub sector: u32,
    /// Byte offset of the mblock's zone.
    pub base: u64,
    /// The most content the mblock can hold: its zone, less the room its
    /// checksum table takes.
    pub cap: u64,
    /// Zone size.
    pub zone: u64,
    /// Bytes accepted so far.
    pub written: u64,
    /// Bytes already on the device (a multiple of the sector size).
    pub on_dev: u64,
    /// Accepted bytes not yet on the device: less than a sector after each
    /// write, or the whole content while it is at most [`HOLD_MAX`] bytes.
    pub tail: Held,
    /// CRC-32C of the accepted bytes (legacy commits: no block checksums).
    pub crc: u32,
    /// Per-block checksums of the accepted bytes (format version 3).
    pub csums: Option<BlockCsums>,
    /// A write failed: the device content is not what was accepted.
    pub failed: bool,
    /// A commit failed after its record was handed to the metadata log:
    /// the record may be durable, so the zone stays claimed until reopen
    /// (when replay says whether the commit happened) even if aborted.
    pub hold_zone: bool,
    /// The commit's last write ([`WriteState::finish_request`]) is on the
    /// device for content of this many bytes: a commit of that content
    /// need not write it again. Set by that write, or by a write that
    /// filled the mblock and wrote the checksum table while it was in
    /// flight.
    finished_at: Option<u64>,
    /// Bytes a sealed commit writes after the checksum table (a reserved
    /// mblock: one sector for its seal), counted in the size of the
    /// buffer held content waits in, so that the commit's one write goes
    /// from that buffer.
    pub seal_room: u64,
}

/// The per-block CRC-32C of an mblock being written.
#[derive(Debug)]
pub(crate) struct BlockCsums {
    /// log2 of the block size.
    pub shift: u8,
    /// CRCs of the complete blocks.
    pub done: Vec<u32>,
    /// CRC of the bytes of the block being filled, and how many there are.
    cur: u32,
    cur_len: u64,
}

impl BlockCsums {
    pub fn new(shift: u8) -> Self {
        BlockCsums {
            shift,
            done: Vec::new(),
            cur: 0,
            cur_len: 0,
        }
    }

    fn add(&mut self, mut data: &[u8]) {
        let block = 1u64 << self.shift;
        while !data.is_empty() {
            if self.cur_len == 0 && data.len() as u64 >= block {
                // Whole blocks at a block boundary: one CRC each.
                let (whole, rest) = data.split_at(data.len() / block as usize * block as usize);
                self.done
                    .extend(whole.chunks_exact(block as usize).map(crate::crc::crc32c));
                data = rest;
                continue;
            }
            let n = ((block - self.cur_len) as usize).min(data.len());
            let (now, rest) = data.split_at(n);
            self.cur = crate::crc::crc32c_append(self.cur, now);
            self.cur_len += n as u64;
            if self.cur_len == block {
                self.done.push(self.cur);
                self.cur = 0;
                self.cur_len = 0;
            }
            data = rest;
        }
    }

    /// The table's bytes: every block's CRC, the last partial one included.
    pub fn table(&self) -> Vec<u8> {
        let mut t = Vec::with_capacity(4 * (self.done.len() + 1));
        for c in &self.done {
            t.extend_from_slice(&c.to_le_bytes());
        }
        if self.cur_len > 0 {
            t.extend_from_slice(&self.cur.to_le_bytes());
        }
        t
    }
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
    if let Some(b) = crate::io::huge::write_buf(n, sector) {
        // One segment per request on a virtual disk (see `io::huge`).
        return b;
    }
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
                && r.buf.arena().is_none()
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

/// The write of a checksum table at byte `at` of a zone of `zone` bytes,
/// after `lead` bytes (the partial last sector, copied in by the caller),
/// zero-padded to whole sectors, then `after` (a sealed commit's seal),
/// zero-padded to whole sectors. The capacity left room for the table: a
/// footprint past the zone would be a bug, and would write over the next
/// zone, so it is refused.
fn table_buf(
    table: &[u8],
    after: &[u8],
    lead: usize,
    sector: usize,
    at: u64,
    zone: u64,
) -> Result<AlignedBuf, DataError> {
    let table_span = table.len().div_ceil(sector) * sector;
    let span = lead + table_span + after.len().div_ceil(sector) * sector;
    let end = at + span as u64;
    if end > zone {
        return Err(DataError::Full {
            want: end,
            cap: zone,
        });
    }
    let mut buf = match crate::io::huge::write_buf(span, sector) {
        Some(mut b) => {
            // A reused slot holds old bytes: zero what the caller and the
            // table do not write (the caller writes at least all but the
            // last sector of `lead`).
            let keep = lead.saturating_sub(sector);
            b[keep..].fill(0);
            b
        }
        None => AlignedBuf::new(span, sector),
    };
    buf[lead..lead + table.len()].copy_from_slice(table);
    buf[lead + table_span..lead + table_span + after.len()].copy_from_slice(after);
    Ok(buf)
}

/// Writes of at least this many bytes from an aligned buffer are
/// checksummed while the device writes them (see `WriteState::append_buf`).
const OVERLAP_MIN: usize = 1 << 20;

/// Add `data` to an mblock's checksums: its block checksums (format 3), or
/// its whole-content CRC-32C.
fn sum_into(csums: &mut Option<BlockCsums>, crc: &mut u32, data: &[u8]) {
    match csums {
        Some(c) => c.add(data),
        None => *crc = crate::crc::crc32c_append(*crc, data),
    }
}

impl WriteState {
    /// A new mblock in the zone at `base` of `zone` bytes: with
    /// `csum_shift`, one whose commit writes a checksum table in blocks of
    /// `1 << csum_shift` bytes after the content (which then holds less
    /// than the zone: [`CsumLayout::capacity`]).
    pub fn new(sector: u32, base: u64, zone: u64, csum_shift: Option<u8>) -> Self {
        let cap = match csum_shift {
            Some(shift) => CsumLayout::capacity(zone, u64::from(sector), shift),
            None => zone,
        };
        WriteState {
            sector,
            base,
            cap,
            zone,
            written: 0,
            on_dev: 0,
            tail: Held::default(),
            crc: 0,
            csums: csum_shift.map(BlockCsums::new),
            failed: false,
            hold_zone: false,
            finished_at: None,
            seal_room: 0,
        }
    }

    fn sum(&mut self, data: &[u8]) {
        sum_into(&mut self.csums, &mut self.crc, data);
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

    /// Append `data`: whole sectors go to `dev` now.
    pub fn append(&mut self, dev: &dyn Device, data: &[u8]) -> Result<(), DataError> {
        if self.failed {
            return Err(DataError::Failed);
        }
        let want = self.room(data.len())?;
        self.sum(data);
        if self.on_dev == 0 && self.tail.len() + data.len() <= HOLD_MAX {
            // Small so far: the commit writes it with the table, from the
            // buffer it waits in when that has the commit's size.
            let sector = u64::from(self.sector);
            let span = match &self.csums {
                Some(c) => CsumLayout {
                    len: want,
                    shift: c.shift,
                    sector,
                }
                .footprint(),
                None => want.div_ceil(sector) * sector,
            } + self.seal_room;
            let span = usize::try_from(span).unwrap_or(usize::MAX);
            self.tail.push(data, span, sector as usize)?;
            self.written = want;
            return Ok(());
        }
        let sector = self.sector as usize;
        let mut src: &[u8] = data;
        let mut reqs = Vec::new();
        let mut off = self.base + self.on_dev;
        // First complete the pending partial sector, then whole chunks straight from `data`.
        // (Refused while the held bytes are lent out, before taking them.)
        self.tail.bytes()?;
        let held = std::mem::take(&mut self.tail);
        let mut pending: &[u8] = held.bytes()?;
        let mut rest = Held::default();
        loop {
            let avail = pending.len() + src.len();
            let whole = (avail / sector) * sector;
            if whole == 0 {
                rest.push(pending, sector, sector)?;
                rest.push(src, sector, sector)?;
                break;
            }
            let n = whole.min(IO_CHUNK);
            let mut buf = take_buf(n, sector);
            let from_pending = pending.len().min(n);
            buf[..from_pending].copy_from_slice(&pending[..from_pending]);
            pending = &pending[from_pending..];
            let from_src = n - from_pending;
            buf[from_pending..n].copy_from_slice(&src[..from_src]);
            src = &src[from_src..];
            reqs.push(IoReq::write(off, buf));
            off += n as u64;
        }
        drop(held);
        let bytes: u64 = reqs.iter().map(|r| r.buf.len() as u64).sum();
        if !reqs.is_empty() {
            match submit_all(dev, reqs, usize::MAX) {
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
        self.tail = rest;
        Ok(())
    }

    /// Append all of `buf`: straight from it, in one request, when nothing
    /// is pending and it is aligned for the device (no copy); else as
    /// [`WriteState::append`]. The buffer comes back for reuse.
    pub fn append_buf(
        &mut self,
        dev: &dyn Device,
        buf: AlignedBuf,
    ) -> Result<AlignedBuf, DataError> {
        let sector = self.sector as usize;
        if !self.tail.is_empty() || buf.align() < sector || buf.is_empty() {
            self.append(dev, &buf)?;
            return Ok(buf);
        }
        if self.failed {
            return Err(DataError::Failed);
        }
        let want = self.room(buf.len())?;
        let n = buf.len() as u64;
        // Nothing pending: the content on the device ends where it ends.
        let off = self.base + self.on_dev;
        let res = if buf.len() >= OVERLAP_MIN && buf.len().is_multiple_of(sector) {
            // A large write: this thread writes from the buffer while a
            // second one checksums it (both only read it), so the checksum
            // costs no time of its own. The write stays on the calling
            // thread: a thread just spawned is queued behind its parent
            // on the parent's CPU, and a write handed to it started about
            // as late as the checksum ended (measured: 1.5 ms into a
            // 32 MiB write, 10-12 % of its bandwidth; BENCHMARKS.md).
            let (csums, crc) = (&mut self.csums, &mut self.crc);
            let data: &[u8] = &buf;
            // When this write fills the mblock its checksum table is final:
            // it is written here, after the content it follows, while the
            // device still writes the content, instead of at commit.
            let table_at = (want == self.cap).then_some(self.on_dev + n);
            let (base, zone) = (self.base, self.zone);
            let mut table_done = None;
            std::thread::scope(|s| {
                let done = &mut table_done;
                let sums = s.spawn(move || {
                    sum_into(csums, crc, data);
                    match (table_at, csums.as_ref()) {
                        (Some(at), Some(c)) => {
                            let t = table_buf(&c.table(), &[], 0, sector, at, zone)?;
                            submit_all(dev, vec![IoReq::write(base + at, t)], usize::MAX)
                                .map(|_| *done = Some(at))
                                .map_err(DataError::from)
                        }
                        _ => Ok(()),
                    }
                });
                let wrote = dev.write_slice(off, data);
                // A panic there (a bug) goes on here.
                let early = sums.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                wrote.map_err(DataError::from).and(early)
            })
            .map(|()| {
                self.finished_at = table_done;
                buf
            })
        } else {
            self.sum(&buf);
            let req = IoReq::write(off, buf);
            submit_all(dev, vec![req], usize::MAX)
                .map(|mut done| done.pop().map(|r| r.buf).unwrap_or_default())
                .map_err(DataError::from)
        };
        match res {
            Ok(buf) => {
                self.on_dev += n;
                self.written = want;
                Ok(buf)
            }
            Err(e) => {
                // Some of the data may be missing on the device: only abort is left.
                self.failed = true;
                Err(e)
            }
        }
    }

    /// Write the partial last sector (zero-padded) and, with block
    /// checksums, the checksum table after it (in the same request when
    /// there is a partial sector); with `flush`, then flush the device.
    /// Returns the CRC-32C of the table's checksum bytes (0 without one).
    /// The partial sector stays pending in memory: if the commit that
    /// called this fails and the mblock is written further, the next
    /// append rewrites that sector with the new bytes after the old (and
    /// the next commit writes the table again, after the new end).
    pub fn finish(&mut self, dev: &dyn Device, flush: bool) -> Result<u32, DataError> {
        self.finish_in(dev, flush, None)
    }

    /// As [`Self::finish`], running `side` once while the last write is in
    /// flight (see [`Device::submit_beside`]), or before returning when
    /// there is nothing to write or the mblock failed.
    pub fn finish_beside(
        &mut self,
        dev: &dyn Device,
        flush: bool,
        side: &mut dyn FnMut(),
    ) -> Result<u32, DataError> {
        crate::dev::side_once(side, |s| self.finish_in(dev, flush, Some(s)))
    }

    fn finish_in(
        &mut self,
        dev: &dyn Device,
        flush: bool,
        side: Option<&mut dyn FnMut()>,
    ) -> Result<u32, DataError> {
        let (req, table_crc) = self.finish_request()?;
        if let Some(req) = req {
            let mut out = match side {
                Some(side) => dev.submit_beside(vec![req], side),
                None => dev.submit_depth(vec![req], usize::MAX),
            };
            self.finish_done(dev, &mut out)?;
        }
        if flush {
            dev.flush()?;
        }
        Ok(table_crc)
    }

    /// The commit's last write, for the caller to submit (`None` when
    /// there is nothing left to write), and the CRC-32C of the checksum
    /// table (0 without one); report its outcome with
    /// [`Self::finish_done`]. See [`Self::finish`].
    pub fn finish_request(&mut self) -> Result<(Option<IoReq>, u32), DataError> {
        if self.failed {
            return Err(DataError::Failed);
        }
        let table = self.csums.as_ref().map(BlockCsums::table);
        let table_crc = table.as_deref().map_or(0, crate::crc::crc32c);
        Ok((self.last_write(table.as_deref(), &[])?, table_crc))
    }

    /// The commit's last write: the held bytes zero-padded to a sector,
    /// the checksum `table` (if any) zero-padded to a sector, then `after`
    /// (a sealed commit's seal) zero-padded to a sector; `None` when there
    /// is nothing to write.
    fn last_write(
        &mut self,
        table: Option<&[u8]>,
        after: &[u8],
    ) -> Result<Option<IoReq>, DataError> {
        let sector = self.sector as usize;
        let tail_span = self.tail.len().div_ceil(sector) * sector;
        let table_span = table.map_or(0, |t| t.len().div_ceil(sector) * sector);
        let after_span = after.len().div_ceil(sector) * sector;
        // Written already: by an earlier try of this commit, ahead of it,
        // or while the write that filled the mblock was in flight (nothing
        // can have been appended since: it is full).
        let written = self.finished_at == Some(self.written);
        if tail_span + table_span + after_span == 0 || written {
            return Ok(None);
        }
        let table = table.unwrap_or_default();
        // Sent from the buffer the content waits in when it has the
        // write's size (the content came in one piece), else copied.
        let span = tail_span + table_span + after_span;
        let end = self.on_dev + span as u64;
        if end > self.zone {
            return Err(DataError::Full {
                want: end,
                cap: self.zone,
            });
        }
        let held = self.tail.len();
        if let Some(mut buf) = self.tail.lend(span) {
            // The padding, the table's last sector and the seal's: their
            // bytes are unspecified in a reused buffer.
            buf[held..tail_span].fill(0);
            buf[tail_span..tail_span + table.len()].copy_from_slice(table);
            buf[tail_span + table.len()..].fill(0);
            let at = tail_span + table_span;
            buf[at..at + after.len()].copy_from_slice(after);
            return Ok(Some(IoReq::write(self.base + self.on_dev, buf)));
        }
        let mut buf = table_buf(table, after, tail_span, sector, self.on_dev, self.zone)?;
        buf[..held].copy_from_slice(self.tail.bytes()?);
        Ok(Some(IoReq::write(self.base + self.on_dev, buf)))
    }

    /// A sealed commit's writes (see `seal.rs`) and the CRC of the
    /// checksum table; `seal(len, shift, table_crc)` gives the seal (whole
    /// sectors). Content held whole (nothing on the device yet) goes in
    /// one write with its table and the seal after it, when they fit the
    /// zone: the first request, a sealed write (`true`). Otherwise the
    /// commit's last write ([`Self::finish_request`], if anything is left
    /// to write) and the seal in the zone's seal slot (`seal_slot`), its
    /// last request (`false`). Report the content write's outcome with
    /// [`Self::finish_done`]. `None` when the mblock cannot be committed
    /// so: it has no checksum table (format 1 or 2), or content, table
    /// and seal do not fit its zone.
    #[allow(clippy::type_complexity)]
    pub fn sealed_request(
        &mut self,
        seal_slot: u64,
        seal: impl FnOnce(u32, u8, u32) -> Vec<u8>,
    ) -> Result<Option<(Vec<IoReq>, u32, bool)>, DataError> {
        if self.failed || self.tail.lent {
            return Err(DataError::Failed);
        }
        let Some(csums) = self.csums.as_ref() else {
            return Ok(None);
        };
        let Ok(len) = u32::try_from(self.written) else {
            return Ok(None);
        };
        let sector = self.sector as usize;
        let shift = csums.shift;
        let table = csums.table();
        let table_crc = crate::crc::crc32c(&table);
        let seal = seal(len, shift, table_crc);
        let seal_span = seal.len().div_ceil(sector) * sector;
        let tail_span = self.tail.len().div_ceil(sector) * sector;
        let table_span = table.len().div_ceil(sector) * sector;
        let whole = self.on_dev == 0 && self.finished_at.is_none();
        if whole && (tail_span + table_span + seal_span) as u64 <= self.zone {
            // From the buffer the content waits in when it has the write's
            // size (see `seal_room`), else a copy.
            let req = self.last_write(Some(&table), &seal)?;
            return Ok(Some((req.into_iter().collect(), table_crc, true)));
        }
        let footprint = CsumLayout {
            len: self.written,
            shift,
            sector: sector as u64,
        }
        .footprint();
        if footprint > seal_slot || seal_slot + seal_span as u64 > self.zone {
            return Ok(None);
        }
        let last = self.last_write(Some(&table), &[])?;
        let mut sbuf = AlignedBuf::new(seal_span, sector);
        sbuf[..seal.len()].copy_from_slice(&seal);
        sbuf[seal.len()..].fill(0);
        let mut reqs: Vec<IoReq> = last.into_iter().collect();
        reqs.push(IoReq::write(self.base + seal_slot, sbuf));
        Ok(Some((reqs, table_crc, false)))
    }

    /// A request of [`Self::finish_request`] that was not sent: its
    /// buffer may hold the content, which goes back where it waits.
    pub fn unsent(&mut self, req: IoReq) {
        self.tail.restore(req.buf);
    }

    /// The write of [`Self::finish_request`] completed as `done` says
    /// (the one request): a failure leaves only abort.
    pub fn finish_done(&mut self, dev: &dyn Device, done: &mut [IoReq]) -> Result<(), DataError> {
        if let [r] = done {
            // The content's buffer back, if it was sent from it (a failed
            // commit may be followed by more appends, which rewrite the
            // partial last sector from it).
            self.tail.restore(std::mem::take(&mut r.buf));
        }
        let r = if done.len() == 1 {
            check_results(dev, done)
        } else {
            let e =
                std::io::Error::other(format!("{} results for an mblock's last write", done.len()));
            Err(crate::dev::io_err(
                dev.info(),
                "write",
                self.base + self.on_dev,
                e,
            ))
        };
        if let Err(e) = r {
            // What reached the device is unknown: only abort is left.
            self.failed = true;
            return Err(e.into());
        }
        self.finished_at = Some(self.written);
        Ok(())
    }
}

/// The checksums a read of one mblock verifies against: one CRC-32C per
/// block of `1 << shift` content bytes, the last block ending at the
/// content's end. Loaded from the mblock's zone (format version 3) or
/// derived from a legacy mblock's content once its whole CRC matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    pub shift: u8,
    pub crcs: Vec<u32>,
    /// Blocks known damaged whatever they read as (sorted): the table on
    /// the media failed its CRC and disagreed with their content there.
    pub bad: Vec<u64>,
}

/// A checksum mismatch: content bytes `offset..offset + len` of the
/// mblock (whole checksum blocks) do not match their checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadRange {
    pub offset: u64,
    pub len: u64,
}

impl Table {
    /// Block size.
    pub fn block(&self) -> u64 {
        1u64 << self.shift
    }

    /// Bytes this table takes in memory (what the cache counts).
    pub fn mem_bytes(&self) -> u64 {
        (4 * self.crcs.len() + 8 * self.bad.len() + std::mem::size_of::<Table>()) as u64
    }

    /// The table bytes on the media (little-endian entries).
    pub fn from_bytes(shift: u8, bytes: &[u8]) -> Table {
        Table {
            shift,
            crcs: bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            bad: Vec::new(),
        }
    }

    /// CRC-32C of the table's entries as the media stores them.
    pub fn crc(&self) -> u32 {
        let mut crc = 0;
        for c in &self.crcs {
            crc = crate::crc::crc32c_append(crc, &c.to_le_bytes());
        }
        crc
    }

    /// The whole checksum blocks around content bytes `offset..end` of an
    /// mblock of `len` bytes: `start..stop`, `stop` at most `len`.
    pub fn around(&self, offset: u64, end: u64, len: u64) -> (u64, u64) {
        let b = self.block();
        let start = offset / b * b;
        let stop = end.div_ceil(b).saturating_mul(b).min(len);
        (start, stop.max(start))
    }

    /// Verify the blocks of `data`, content bytes from `pos` (a block
    /// boundary) of an mblock of `len` bytes: every block that starts in
    /// `data` must end in it (or at `len`). The first run of bad blocks is
    /// the error.
    /// Start loading into the CPU's cache the checksum of the block that
    /// holds content byte `pos` (a hint: a read in flight verifies against
    /// it when it completes, and the table of a large mblock read at
    /// random is rarely cached by then otherwise).
    #[inline]
    pub fn prefetch(&self, pos: u64) {
        let i = usize::try_from(pos >> self.shift).unwrap_or(usize::MAX);
        if let Some(c) = self.crcs.get(i) {
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                // SAFETY: SSE is part of every x86_64 target, and a prefetch
                // only hints the cache: it reads nothing architecturally and
                // cannot fault, whatever the address (here a valid one).
                unsafe { _mm_prefetch::<_MM_HINT_T0>((c as *const u32).cast::<i8>()) };
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = c;
        }
    }

    pub fn check(&self, pos: u64, data: &[u8], len: u64) -> Result<(), BadRange> {
        let b = self.block();
        let have = pos + data.len() as u64;
        let mut bad: Option<BadRange> = None;
        let mut start = pos;
        while start < have.min(len) {
            let end = (start + b).min(len);
            let i = start >> self.shift;
            let ok = end <= have
                && self.bad.binary_search(&i).is_err()
                && usize::try_from(i)
                    .ok()
                    .and_then(|i| self.crcs.get(i))
                    .is_some_and(|&c| {
                        data.get((start - pos) as usize..(end - pos) as usize)
                            .is_some_and(|d| crate::crc::crc32c(d) == c)
                    });
            match (&mut bad, ok) {
                (None, false) => {
                    bad = Some(BadRange {
                        offset: start,
                        len: end - start,
                    })
                }
                (Some(r), false) if r.offset + r.len == start => r.len = end - r.offset,
                (Some(_), _) => break,
                (None, true) => {}
            }
            start = end;
        }
        bad.map_or(Ok(()), Err)
    }
}

/// Why a verified read failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The device failed.
    Dev(DevError),
    /// Span `span`'s bytes failed their checksums (after a second read).
    Bad { span: usize, range: BadRange },
}

impl From<DevError> for ReadError {
    fn from(e: DevError) -> Self {
        ReadError::Dev(e)
    }
}

/// A verified read of whole checksum blocks inside the content of the
/// mblock whose zone starts at `base` (content `len` bytes): one request
/// straight into `buf` (the device reads into it without a bounce buffer
/// when `buf` is aligned as its buffers are; other memory reads at most
/// [`IO_CHUNK`] this way), verified where it landed. The common 4 KiB read at queue depth 1 then
/// builds no request list and copies nothing.
///
/// Returns [`Whole::Other`] with nothing read when the read is not of
/// that shape, and [`Whole::Mismatch`] with `buf` zeroed when a block
/// failed its checksum: the caller then reads once more
/// ([`read_again`]) and reports. A device error also leaves `buf` zeroed:
/// no unverified byte stays in it.
pub(crate) fn read_whole_blocks(
    dev: &dyn Device,
    base: u64,
    len: u64,
    offset: u64,
    buf: &mut [u8],
    table: &Table,
) -> Result<Whole, ReadError> {
    let n = buf.len() as u64;
    let unit = table.block().max(u64::from(dev.sector()));
    // Memory aligned as a device's buffers are is read into in one request
    // of any size (a file device's one `pread`, which the kernel splits
    // and keeps in flight at once); other memory goes through a bounce
    // buffer, kept to a chunk.
    let straight = (buf.as_ptr() as usize).is_multiple_of(crate::io::DEFAULT_ALIGN);
    let whole = n > 0
        && (straight || n <= IO_CHUNK as u64)
        && offset.is_multiple_of(unit)
        && n.is_multiple_of(unit)
        && offset.checked_add(n).is_some_and(|end| end <= len);
    if !whole {
        return Ok(Whole::Other);
    }
    // Its checksum loads into the cache while the device reads.
    table.prefetch(offset);
    if let Err(e) = dev.read_slice(base + offset, buf) {
        buf.fill(0);
        return Err(ReadError::Dev(e));
    }
    if table.check(offset, buf, len).is_ok() {
        return Ok(Whole::Done);
    }
    buf.fill(0);
    Ok(Whole::Mismatch)
}

/// What [`read_whole_blocks`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Whole {
    /// Read and verified.
    Done,
    /// Not a read of whole blocks: nothing done.
    Other,
    /// Read, and a block failed its checksum (the buffer is zeroed).
    Mismatch,
}

/// One read of [`read_many`]: `buf.len()` bytes at `offset` of the mblock
/// whose zone starts at byte `base` and whose content is `len` bytes long,
/// verified against `table` when there is one.
pub(crate) struct Span<'a> {
    pub base: u64,
    pub len: u64,
    pub offset: u64,
    pub buf: &'a mut [u8],
    pub table: Option<&'a Table>,
}

/// Read `buf.len()` bytes at `offset` of an mblock whose zone starts at
/// `base` and whose content is `len` bytes long (no verification: the
/// caller checks the bytes, as the whole-content CRC does). Any offset
/// and length inside the content; the aligned I/O around it is done here.
pub(crate) fn read(
    dev: &dyn Device,
    base: u64,
    len: u64,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), DevError> {
    match read_many(
        dev,
        &mut [Span {
            base,
            len,
            offset,
            buf,
            table: None,
        }],
        usize::MAX,
    ) {
        Ok(()) => Ok(()),
        Err(ReadError::Dev(e)) => Err(e),
        // Nothing is verified without a table.
        Err(ReadError::Bad { .. }) => Ok(()),
    }
}

/// Several reads (of one device) as one batch of aligned requests: with
/// io_uring they are all in flight at once. The caller checked each span
/// lies inside its mblock's content. A span with a table is read in whole
/// checksum blocks, each verified before any of its bytes is copied out;
/// the spans that failed are read once more (a transient fault on the way
/// should not count), and a second failure is the error.
pub(crate) fn read_many(
    dev: &dyn Device,
    spans: &mut [Span<'_>],
    depth: usize,
) -> Result<(), ReadError> {
    let bad = read_many_once(dev, spans, depth)?;
    if bad.iter().all(Option::is_none) {
        return Ok(());
    }
    let mut again: Vec<(usize, Span<'_>)> = Vec::new();
    for (i, sp) in spans.iter_mut().enumerate() {
        if bad[i].is_some() {
            again.push((
                i,
                Span {
                    base: sp.base,
                    len: sp.len,
                    offset: sp.offset,
                    buf: &mut *sp.buf,
                    table: sp.table,
                },
            ));
        }
    }
    let (idx, mut retry): (Vec<usize>, Vec<Span<'_>>) = again.into_iter().unzip();
    read_again(dev, &mut retry, depth).map_err(|e| match e {
        ReadError::Bad { span, range } => ReadError::Bad {
            span: idx.get(span).copied().unwrap_or(span),
            range,
        },
        e => e,
    })
}

/// The second read of spans whose first read failed its checksums: one
/// pass, and a block that fails again is the error.
pub(crate) fn read_again(
    dev: &dyn Device,
    spans: &mut [Span<'_>],
    depth: usize,
) -> Result<(), ReadError> {
    let still = read_many_once(dev, spans, depth)?;
    for (span, r) in still.into_iter().enumerate() {
        if let Some(range) = r {
            return Err(ReadError::Bad { span, range });
        }
    }
    Ok(())
}

/// One pass of [`read_many`]: the device errors are the error; the
/// checksum failures come back per span.
fn read_many_once(
    dev: &dyn Device,
    spans: &mut [Span<'_>],
    depth: usize,
) -> Result<Vec<Option<BadRange>>, DevError> {
    let sector = u64::from(dev.sector());
    let mut reqs = Vec::new();
    let mut owner = Vec::new();
    let mut bad: Vec<Option<BadRange>> = vec![None; spans.len()];
    for (i, sp) in spans.iter().enumerate() {
        if sp.buf.is_empty() {
            continue;
        }
        let want_end = sp.offset + sp.buf.len() as u64;
        // With a table: whole checksum blocks, starting at a multiple of
        // both the block and the sector, so that every request (at most
        // IO_CHUNK, a multiple of the block) holds whole blocks.
        let (from, to) = match sp.table {
            Some(t) => {
                // Its checksum loads into the cache while the device reads.
                t.prefetch(sp.offset);
                let (a, b) = t.around(sp.offset, want_end, sp.len);
                let unit = t.block().max(sector);
                (a / unit * unit, b)
            }
            None => (sp.offset, want_end),
        };
        let start = from / sector * sector;
        let end = to.div_ceil(sector) * sector;
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
        return Ok(bad);
    }
    // Each read's bytes are verified and copied out as it completes, while
    // later ones are still in flight; a failed read fails the whole call below.
    let mut out = dev.submit_each(reqs, depth, &mut |k, r| {
        if !matches!(r.result, Some(Ok(()))) {
            return;
        }
        let Some(i) = owner.get(k).copied() else {
            return;
        };
        let Some(sp) = spans.get_mut(i) else {
            return;
        };
        let rel = r.offset - sp.base; // byte position of this request in the mblock
        if let Some(t) = sp.table {
            // The blocks this request holds that the span touches.
            let want_end = sp.offset + sp.buf.len() as u64;
            let (a, b) = t.around(sp.offset, want_end, sp.len);
            let lo = a.max(rel.div_ceil(t.block()) * t.block());
            let hi = b.min(rel + r.buf.len() as u64);
            if lo < hi {
                let data = &r.buf[(lo - rel) as usize..(hi - rel) as usize];
                if let Err(e) = t.check(lo, data, sp.len) {
                    let slot = &mut bad[i];
                    if slot.is_none_or(|s| e.offset < s.offset) {
                        *slot = Some(e);
                    }
                    return;
                }
            }
        }
        let lo = sp.offset.max(rel);
        let hi = (sp.offset + sp.buf.len() as u64).min(rel + r.buf.len() as u64);
        if lo >= hi {
            return;
        }
        let src = &r.buf[(lo - rel) as usize..(hi - rel) as usize];
        let at = (lo - sp.offset) as usize;
        sp.buf[at..at + src.len()].copy_from_slice(src);
    });
    check_results(dev, &mut out)?;
    Ok(bad)
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
    Ok(scan_content(dev, base, len, None)?.0)
}

/// Read an mblock's whole content in chunks: its whole CRC-32C and, with
/// `shift`, its per-block checksums.
pub(crate) fn scan_content(
    dev: &dyn Device,
    base: u64,
    len: u64,
    shift: Option<u8>,
) -> Result<(u32, Option<Table>), DevError> {
    let mut crc = 0;
    let mut table = shift.map(|s| Table {
        shift: s,
        crcs: Vec::with_capacity(len.div_ceil(1 << s) as usize),
        bad: Vec::new(),
    });
    let mut pos = 0u64;
    // IO_CHUNK is a multiple of every checksum block: chunks hold whole blocks.
    let mut chunk = vec![0u8; IO_CHUNK.min(len as usize).max(1)];
    while pos < len {
        let n = ((len - pos) as usize).min(IO_CHUNK);
        read(dev, base, len, pos, &mut chunk[..n])?;
        crc = crate::crc::crc32c_append(crc, &chunk[..n]);
        if let Some(t) = &mut table {
            t.crcs
                .extend(chunk[..n].chunks(1usize << t.shift).map(crate::crc::crc32c));
        }
        pos += n as u64;
    }
    Ok((crc, table))
}

/// The checksum table of a format-3 mblock as its zone holds it (not yet
/// checked against its record's CRC).
pub(crate) fn read_table(
    dev: &dyn Device,
    base: u64,
    len: u64,
    shift: u8,
) -> Result<Table, DevError> {
    let l = CsumLayout {
        len,
        shift,
        sector: u64::from(dev.sector()),
    };
    let n = l.table_bytes() as usize;
    if n == 0 {
        return Ok(Table::from_bytes(shift, &[]));
    }
    let buf = AlignedBuf::scratch(l.table_span() as usize, dev.sector() as usize);
    let mut out = read_into(dev, vec![(base + l.table_offset(), buf)], usize::MAX)?;
    let buf = out.pop().unwrap_or_default();
    Ok(Table::from_bytes(shift, buf.get(..n).unwrap_or_default()))
}

/// Every run of content blocks of an mblock that does not match `table`,
/// reading the whole content.
pub(crate) fn bad_blocks(
    dev: &dyn Device,
    base: u64,
    len: u64,
    table: &Table,
) -> Result<Vec<BadRange>, DevError> {
    let (_, got) = scan_content(dev, base, len, Some(table.shift))?;
    let got = got.map(|t| t.crcs).unwrap_or_default();
    let b = table.block();
    let mut out: Vec<BadRange> = Vec::new();
    for (i, c) in got.iter().enumerate() {
        let i = i as u64;
        let good = table.crcs.get(i as usize) == Some(c) && table.bad.binary_search(&i).is_err();
        if good {
            continue;
        }
        let start = i * b;
        let end = (start + b).min(len);
        match out.last_mut() {
            Some(r) if r.offset + r.len == start => r.len = end - r.offset,
            _ => out.push(BadRange {
                offset: start,
                len: end - start,
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::MemDevice;
    use std::sync::Arc;

    /// The commit's last write (the held content, its partial sector's
    /// padding, the checksum table, the table's padding) comes from a
    /// reused huge-page buffer holding another write's bytes: every byte
    /// on the device is the content, the table, or zero.
    #[test]
    fn a_reused_write_buffer_leaves_no_old_bytes_in_the_padding() {
        if !crate::io::thp_available() {
            eprintln!("SKIPPED: transparent huge pages are off: writes use the heap");
            return;
        }
        // Poison every slot this test can take (other tests may hold some).
        let mut taken = Vec::new();
        while let Some(mut b) = crate::io::huge::write_buf(crate::io::huge::SLOT, 4096) {
            b.fill(0xa5);
            taken.push(b);
        }
        drop(taken);
        for sector in [512u32, 4096] {
            let dev: crate::dev::DeviceRef = Arc::new(MemDevice::new(8 << 20, sector));
            let base = 1 << 20;
            let mut w = WriteState::new(dev.sector(), base, 1 << 20, Some(12));
            let data: Vec<u8> = (0..70_001u32).map(|i| (i % 251) as u8 + 1).collect();
            w.append(dev.as_ref(), &data).unwrap();
            w.finish(dev.as_ref(), true).unwrap();
            let table = w.csums.as_ref().unwrap().table();
            let s = sector as usize;
            let table_at = data.len().next_multiple_of(s);
            let end = table_at + table.len().next_multiple_of(s);
            // And 8 KiB past the end: none of the old bytes lands beyond
            // the table either (that a buffer is exactly as long as asked
            // is `io::huge`'s test).
            let mut got = vec![0u8; end + 8192];
            dev.read_slice(base, &mut got).unwrap();
            assert_eq!(&got[..data.len()], &data[..], "sector {sector}");
            assert!(
                got[data.len()..table_at].iter().all(|&b| b == 0),
                "sector {sector}: old bytes after the content"
            );
            assert_eq!(&got[table_at..table_at + table.len()], &table[..]);
            assert!(
                got[table_at + table.len()..].iter().all(|&b| b == 0),
                "sector {sector}: old bytes after the table, or written past it"
            );
        }
    }

    /// Content that came in one piece is sent from the buffer it waits
    /// in. A request that was not sent gives it back, and so does one
    /// that completed: a commit that failed after its write may be
    /// followed by more content, written after it. A buffer that never
    /// came back (a bug) refuses everything rather than write bytes it
    /// no longer has.
    #[test]
    fn held_content_sent_from_its_buffer_comes_back() {
        for sector in [512u32, 4096] {
            let dev: crate::dev::DeviceRef = Arc::new(MemDevice::new(8 << 20, sector));
            let base = 1 << 20;
            let mut w = WriteState::new(dev.sector(), base, 1 << 20, Some(12));
            let one: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8 + 1).collect();
            w.append(dev.as_ref(), &one).unwrap();
            let (req, _) = w.finish_request().unwrap();
            let req = req.unwrap();
            let first = req.buf.to_vec();
            assert_eq!(&first[..one.len()], &one[..]);
            // Sent in place: no copy was left behind.
            assert!(w.tail.lent, "sector {sector}: sent from the held buffer");
            w.unsent(req);
            let (req, _) = w.finish_request().unwrap();
            let req = req.unwrap();
            assert_eq!(
                req.buf.to_vec(),
                first,
                "sector {sector}: the same write again"
            );
            let mut out = dev.submit_depth(vec![req], usize::MAX);
            w.finish_done(dev.as_ref(), &mut out).unwrap();
            assert!(!w.tail.lent);
            let two: Vec<u8> = (0..5_000u32).map(|i| (i % 241) as u8 + 7).collect();
            w.append(dev.as_ref(), &two).unwrap();
            w.finish(dev.as_ref(), true).unwrap();
            let all = [&one[..], &two[..]].concat();
            let mut got = vec![0u8; all.len()];
            dev.read_slice(base, &mut got).unwrap();
            assert_eq!(got, all, "sector {sector}");
            let table = w.csums.as_ref().unwrap().table();
            let want: Vec<u8> = all
                .chunks(4096)
                .flat_map(|b| crate::crc::crc32c(b).to_le_bytes())
                .collect();
            assert_eq!(table, want);

            let mut w = WriteState::new(dev.sector(), base + (2 << 20), 1 << 20, Some(12));
            w.append(dev.as_ref(), &one).unwrap();
            let (req, _) = w.finish_request().unwrap();
            drop(req);
            assert!(matches!(
                w.append(dev.as_ref(), &two),
                Err(DataError::Failed)
            ));
            assert!(matches!(w.finish_request(), Err(DataError::Failed)));
        }
    }

    #[test]
    fn appends_of_any_size_read_back_at_any_offset() {
        for sector in [512u32, 4096] {
            let dev: crate::dev::DeviceRef = Arc::new(MemDevice::new(8 << 20, sector));
            let base = 1 << 20;
            let mut w = WriteState::new(dev.sector(), base, 4 << 20, None);
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
                w.append(dev.as_ref(), &data).unwrap();
                all.extend_from_slice(&data);
                // Held whole while small, then at most a partial sector.
                assert!(
                    (w.on_dev == 0 && w.tail.len() <= HOLD_MAX) || w.tail.len() < sector as usize
                );
                assert_eq!(w.on_dev + w.tail.len() as u64, all.len() as u64);
            }
            w.finish(dev.as_ref(), true).unwrap();
            assert_eq!(w.crc, crate::crc::crc32c(&all));
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
                w.append(dev.as_ref(), &vec![0u8; 4 << 20]),
                Err(DataError::Full { .. })
            ));
        }
    }
}
