//! Object content: writing it into new mblocks, reading ranges across
//! them. Blocking; the store calls these on tokio's blocking pool.

use crate::cache::{Chunk, ContentCache, Key};
use crate::catalog::Result;
use crate::huge;
use crate::record::Extent;
use bytes::{Bytes, BytesMut};
use mpool::{AlignedBuf, AlignedRead, MblockId, MediaClass, Pool};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

/// Reads in flight at once for one call through the pool's
/// [`mpool::MblockReader`] (what fio calls the queue depth).
pub const READ_DEPTH: usize = 32;

/// mblocks read at once by one read that bypasses the cache (each one
/// read of up to an mblock: the device has `DIRECT_DEPTH` large requests
/// in flight, as a file system's readahead keeps several windows).
pub const DIRECT_DEPTH: usize = 8;

/// A read spreads over threads from this many bytes on. Below, one
/// request on the calling thread is faster: a cold 1 MiB get split into
/// four 256 KiB reads on four threads made 933-1081 gets/s from one task
/// where one 1 MiB read made 1063-1256, and 4 MiB gets from 8 tasks
/// 403-414/s against 453-524 (BENCHMARKS.md, session 12); the device
/// does not finish a 1 MiB request sooner in pieces, and the threads'
/// start and the pieces' joins cost time of their own.
const PARALLEL_MIN: u64 = 8 << 20;

/// The smallest read that goes through a buffer backed by a huge page
/// (see `huge`): 64 KiB reads from 8 jobs ran 1.84x faster from one.
const BOUNCE_MIN: usize = 64 << 10;

/// The smallest piece a large read is cut into.
const SPLIT_MIN: u64 = 256 << 10;

/// Content being written into uncommitted mblocks of `class`, each filled
/// to the class's mblock capacity before the next is allocated.
#[derive(Debug)]
pub struct Writer {
    pool: Pool,
    class: MediaClass,
    cap: u64,
    extents: Vec<Extent>,
    size: u64,
}

impl Writer {
    /// A writer of a new object.
    pub fn new(pool: &Pool, class: MediaClass) -> Result<Writer> {
        Writer::with_first(pool, class, None)
    }

    /// A writer of a new object whose first mblock is `first` (allocated
    /// already, uncommitted, empty) when given.
    pub fn with_first(pool: &Pool, class: MediaClass, first: Option<MblockId>) -> Result<Writer> {
        Ok(Writer {
            cap: pool.mblock_capacity(class)?,
            pool: pool.clone(),
            class,
            extents: first.map(|id| Extent { id, len: 0 }).into_iter().collect(),
            size: 0,
        })
    }

    /// Append `data`.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let room = match self.extents.last() {
                Some(e) if e.len < self.cap => self.cap - e.len,
                _ => {
                    let id = self.pool.mblock_alloc(self.class)?;
                    self.extents.push(Extent { id, len: 0 });
                    self.cap
                }
            };
            let n = usize::try_from(room).unwrap_or(usize::MAX).min(data.len());
            let Some(last) = self.extents.last_mut() else {
                break;
            };
            self.pool.mblock_write(last.id, &data[..n])?;
            last.len += n as u64;
            self.size += n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    /// The uncommitted mblocks and the size; the caller commits or aborts.
    pub fn finish(mut self) -> (Vec<Extent>, u64) {
        (std::mem::take(&mut self.extents), self.size)
    }
}

impl Drop for Writer {
    /// A writer dropped before `finish` (an error) aborts its mblocks.
    fn drop(&mut self) {
        abort_all(&self.pool, &self.extents);
    }
}

/// Abort uncommitted mblocks (best effort: they vanish at the next open
/// anyway).
pub fn abort_all(pool: &Pool, extents: &[Extent]) {
    for e in extents {
        if let Err(err) = pool.mblock_abort(e.id) {
            tracing::debug!("aborting mblock {}: {err}", e.id);
        }
    }
}

/// An error of this module's own bookkeeping (a bug, not the media's).
fn internal(what: String) -> crate::catalog::StoreError {
    crate::catalog::StoreError::Pool(mpool::Error::Internal(what))
}

/// Alignment of the reads of object content: offsets and lengths are
/// rounded out to this (a multiple of the sector and of the checksum
/// block), so that each read goes from the device straight into its
/// buffer and is verified there.
pub fn read_align(pool: &Pool) -> u64 {
    u64::from(pool.csum_block().ok().flatten().unwrap_or(0)).max(ALIGN as u64)
}

/// The buffers' alignment (the largest sector size mpool supports).
const ALIGN: usize = 4096;

/// An aligned read buffer handed out as [`Bytes`] without a copy.
struct Owned(AlignedBuf);

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A buffer of `n` bytes that starts at a multiple of [`ALIGN`]: bytes
/// `off..off + n` of the vector returned with `off`. Zeroed by `calloc`,
/// so a large one is fresh pages from the kernel with no pass over them
/// (an [`AlignedBuf`] of that size is zeroed by a `memset` first), and it
/// becomes [`Bytes`] without a copy.
///
/// A buffer of [`HUGE_MIN`] bytes or more is advised to be backed by
/// huge pages (`MADV_HUGEPAGE`) before it is first touched: the reads
/// into it fault in 2 MiB pages (512 times fewer faults), and each read
/// request can carry up to the device's largest transfer in few segments
/// (a request of 4 KiB pages holds at most one segment per page), as the
/// page cache's large folios do for a file system's readahead. From
/// [`SPARE_MIN`] on, its size is rounded up (to whole huge pages from
/// [`HUGE_MIN`] on), and it is taken from `cache`'s spares when one of
/// that size was given back (memory faulted in already, not zeroed
/// again: the caller writes every byte it hands out).
fn aligned_vec(n: usize, cache: Option<&ContentCache>) -> (Vec<u8>, usize) {
    let v = if n >= SPARE_MIN {
        let step = if n >= HUGE_MIN { HUGE } else { SPARE_STEP };
        let cap = (n + ALIGN).div_ceil(step) * step;
        match cache.and_then(|c| c.take_spare(cap)) {
            Some(v) => v,
            None => {
                let v = vec![0u8; cap];
                if n >= HUGE_MIN {
                    advise_huge(&v);
                }
                v
            }
        }
    } else {
        vec![0u8; n + ALIGN]
    };
    // Always below ALIGN for bytes; if it were not, the reads into the
    // buffer would go through bounce buffers (still correct).
    let off = v.as_ptr().align_offset(ALIGN).min(ALIGN);
    (v, off)
}

/// `v`'s bytes `range` as [`Bytes`], without a copy: given back to
/// `cache`'s spares when the last reference goes, if it is a large
/// buffer.
fn hand_out(v: Vec<u8>, range: Range<usize>, cache: Option<&ContentCache>) -> Bytes {
    match cache {
        Some(c) if v.capacity() >= SPARE_MIN => c.spare_owner(v, range),
        _ => Bytes::from(v).slice(range),
    }
}

/// Buffers from this size on are kept as spares when their last
/// reference goes, and sized in steps of [`SPARE_STEP`] (of [`HUGE`] from
/// [`HUGE_MIN`] on) so that the next reads find one of their size.
const SPARE_MIN: usize = 1 << 20;

/// The size step of spare buffers below [`HUGE_MIN`].
const SPARE_STEP: usize = 64 << 10;

/// Buffers from this size on are advised to be backed by huge pages.
const HUGE_MIN: usize = 4 << 20;

/// The huge page size advised for.
const HUGE: usize = 2 << 20;

/// `MADV_HUGEPAGE` on the whole huge pages inside `v`'s bytes (best
/// effort: without transparent huge pages it does nothing).
fn advise_huge(v: &[u8]) {
    let start = v.as_ptr() as usize;
    let lo = start.div_ceil(HUGE) * HUGE;
    let hi = (start + v.len()) / HUGE * HUGE;
    if hi <= lo {
        return;
    }
    // SAFETY: lo..hi lies inside `v`'s allocation, which the caller owns
    // and keeps alive across the call; MADV_HUGEPAGE changes no byte of it
    // and no mapping's protection, only how the kernel backs its pages.
    let r = unsafe {
        rustix::mm::madvise(
            lo as *mut std::ffi::c_void,
            hi - lo,
            rustix::mm::Advice::LinuxHugepage,
        )
    };
    if let Err(e) = r {
        tracing::debug!("MADV_HUGEPAGE on a read buffer: {e}");
    }
}

/// One mblock's part of a range: bytes `from..to` of mblock `id`, whose
/// content is `len` bytes long.
#[derive(Debug, Clone, Copy)]
struct Part {
    id: MblockId,
    len: u64,
    from: u64,
    to: u64,
}

/// The parts of range `r` of an object made of `extents`, in order.
fn parts(extents: &[Extent], r: &Range<u64>) -> Vec<Part> {
    let mut out = Vec::new();
    if r.start >= r.end {
        return out;
    }
    let mut base = 0u64;
    for e in extents {
        let (lo, hi) = (base, base + e.len);
        base = hi;
        if hi <= r.start || lo >= r.end {
            continue;
        }
        out.push(Part {
            id: e.id,
            len: e.len,
            from: r.start.max(lo) - lo,
            to: r.end.min(hi) - lo,
        });
    }
    out
}

/// Read bytes `offset..offset + buf.len()` of mblock `id` (content `len`
/// bytes) into `buf`; bytes past the content come back zero. The whole
/// checksum blocks at the front go from the device straight into `buf`
/// when it is aligned (one request, verified where it landed), or with
/// `bounce` (`buf` is not backed by huge pages) through a buffer backed
/// by a huge page when they are from [`BOUNCE_MIN`] to [`huge::SIZE`]
/// bytes; a last partial block, or a buffer that is not aligned, goes
/// through the pool's bounce buffers.
fn read_span(
    pool: &Pool,
    id: MblockId,
    len: u64,
    offset: u64,
    buf: &mut [u8],
    align: u64,
    bounce: bool,
) -> Result<()> {
    let inside = usize::try_from(len.saturating_sub(offset))
        .unwrap_or(usize::MAX)
        .min(buf.len());
    let straight = offset.is_multiple_of(align)
        && (buf.as_ptr() as usize).is_multiple_of(ALIGN)
        && inside as u64 >= align;
    let direct = if straight {
        inside / align as usize * align as usize
    } else {
        0
    };
    let mut done = false;
    if bounce && (BOUNCE_MIN..=huge::SIZE).contains(&direct) {
        // Into a huge page and copied out (see `huge`).
        let head = &mut buf[..direct];
        let r = huge::with_buffer(|h| {
            let h = &mut h[..direct];
            pool.mblock_read(id, offset, h)
                .map(|()| head.copy_from_slice(h))
        });
        if let Some(r) = r {
            r?;
            done = true;
        }
    }
    if direct > 0 && !done {
        pool.mblock_read(id, offset, &mut buf[..direct])?;
    }
    if inside > direct {
        pool.mblock_read(id, offset + direct as u64, &mut buf[direct..inside])?;
    }
    buf[inside..].fill(0);
    Ok(())
}

/// One read of [`run_spans`]: bytes at `offset` of mblock `id` (content
/// `len`) into the slice.
type Span<'a> = (MblockId, u64, u64, &'a mut [u8]);

/// Do `spans` ([`read_span`] each): on this thread when they are small,
/// else on up to [`DIRECT_DEPTH`] threads at once, a large span cut into
/// pieces of at least [`SPLIT_MIN`] so that even one mblock's read keeps
/// several requests in flight (and is verified in parallel); `bounce`: the
/// spans' memory is not backed by huge pages (see [`read_span`]).
fn run_spans(pool: &Pool, spans: Vec<Span<'_>>, align: u64, bounce: bool) -> Result<()> {
    let total: u64 = spans.iter().map(|s| s.3.len() as u64).sum();
    if total < PARALLEL_MIN {
        for (id, len, offset, buf) in spans {
            read_span(pool, id, len, offset, buf, align, bounce)?;
        }
        return Ok(());
    }
    // Pieces of about total / DIRECT_DEPTH, in whole blocks.
    let piece = (total / DIRECT_DEPTH as u64)
        .max(SPLIT_MIN)
        .div_ceil(align)
        .saturating_mul(align);
    let piece = usize::try_from(piece).unwrap_or(usize::MAX);
    let mut cut: Vec<Span<'_>> = Vec::new();
    for (id, len, offset, buf) in spans {
        // Only a span that starts on a block boundary is cut (the pieces
        // must too, to be read straight into the buffer).
        if !offset.is_multiple_of(align) || buf.len() <= piece {
            cut.push((id, len, offset, buf));
            continue;
        }
        let mut at = offset;
        for b in buf.chunks_mut(piece) {
            let n = b.len() as u64;
            cut.push((id, len, at, b));
            at += n;
        }
    }
    let spans = cut;
    let workers = spans.len().min(DIRECT_DEPTH);
    if workers <= 1 {
        for (id, len, offset, buf) in spans {
            read_span(pool, id, len, offset, buf, align, bounce)?;
        }
        return Ok(());
    }
    let mut shares: Vec<Vec<Span<'_>>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, s) in spans.into_iter().enumerate() {
        shares[i % workers].push(s);
    }
    let work = |share: Vec<Span<'_>>| -> Result<()> {
        for (id, len, offset, buf) in share {
            read_span(pool, id, len, offset, buf, align, bounce)?;
        }
        Ok(())
    };
    std::thread::scope(|sc| {
        let mut shares = shares.into_iter();
        let mine = shares.next().unwrap_or_default();
        let others: Vec<_> = shares.map(|sh| sc.spawn(move || work(sh))).collect();
        let mut res = work(mine);
        for h in others {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(internal("a read thread panicked".into())));
            if res.is_ok() {
                res = r;
            }
        }
        res
    })
}

/// Read range `r` of an object made of `extents` (inside the object)
/// into one buffer, handed out without a copy: each mblock's part is read
/// straight into its place in the buffer, several mblocks at once
/// ([`DIRECT_DEPTH`]). Bypasses the cache. Returns the bytes and the
/// bytes their buffer takes.
fn read_direct(
    pool: &Pool,
    cache: &ContentCache,
    extents: &[Extent],
    r: &Range<u64>,
) -> Result<(Bytes, usize)> {
    let ps = parts(extents, r);
    let Some(first) = ps.first() else {
        return Ok((Bytes::new(), 0));
    };
    let align = read_align(pool);
    // The first part starts at its block's start: the bytes before the
    // range are read into the buffer's front and not handed out.
    let skip = usize::try_from(first.from % align).unwrap_or(0);
    let total = usize::try_from(r.end - r.start)
        .map_err(|_| internal(format!("a read of {} bytes", r.end - r.start)))?;
    let (mut buf, off) = aligned_vec(skip + total, Some(cache));
    {
        let mut spans = Vec::with_capacity(ps.len());
        let mut rest: &mut [u8] = &mut buf[off..off + skip + total];
        for (k, p) in ps.iter().enumerate() {
            let at = if k == 0 { p.from - skip as u64 } else { p.from };
            let n = usize::try_from(p.to - at).unwrap_or(0);
            if n > rest.len() {
                return Err(internal(format!(
                    "mblock {}: {n} bytes to read, {} left in the buffer",
                    p.id,
                    rest.len()
                )));
            }
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(n);
            spans.push((p.id, p.len, at, head));
            rest = tail;
        }
        // A buffer of HUGE_MIN or more is backed by huge pages already.
        run_spans(pool, spans, align, skip + total < HUGE_MIN)?;
    }
    let size = buf.capacity();
    Ok((
        hand_out(buf, off + skip..off + skip + total, Some(cache)),
        size,
    ))
}

/// A large read (longer than the cache's chunked reads) whose every chunk
/// is cached: its plan (the chunks looked up, their buffers marked used).
/// `None` when one is missing, found by looking at the first and the last
/// chunk first, so that a read that misses costs two lookups.
pub fn cached_large(cache: &ContentCache, extents: &[Extent], r: &Range<u64>) -> Option<Plan> {
    if !cache.takes_large() || r.start >= r.end {
        return None;
    }
    let ps = parts(extents, r);
    let chunk = cache.chunk();
    let (first, last) = (ps.first()?, ps.last()?);
    let ends = [
        (first.id.object_id().raw(), first.from / chunk),
        (last.id.object_id().raw(), (last.to - 1) / chunk),
    ];
    if !cache.has_all(&ends) {
        return None;
    }
    let plan = plan(cache, extents, std::slice::from_ref(r));
    if !plan.complete() {
        return None;
    }
    cache.count_large_hit();
    Some(plan)
}

/// Read range `r` (a large read) straight into one buffer
/// ([`read_direct`]) and cache the whole chunks inside it, as a large
/// read's buffer (the first to go if nobody reads it again).
pub fn read_large(
    pool: &Pool,
    cache: &ContentCache,
    extents: &[Extent],
    r: &Range<u64>,
) -> Result<Bytes> {
    let (bytes, size) = read_direct(pool, cache, extents, r)?;
    if !cache.takes_large() {
        return Ok(bytes);
    }
    let chunk = cache.chunk();
    let mut chunks = Vec::new();
    let mut pos = 0u64;
    for p in parts(extents, r) {
        let mut c = p.from.div_ceil(chunk);
        while c * chunk < p.to {
            let end = ((c + 1) * chunk).min(p.len);
            if end > p.to {
                break;
            }
            let off = usize::try_from(pos + c * chunk - p.from).unwrap_or(usize::MAX);
            let len = usize::try_from(end - c * chunk).unwrap_or(0);
            if off.saturating_add(len) > bytes.len() {
                return Err(internal(format!(
                    "chunk {c} of {} lies outside the read's {} bytes",
                    p.id,
                    bytes.len()
                )));
            }
            chunks.push(((p.id.object_id().raw(), c), off, len));
            c += 1;
        }
        pos += p.to - p.from;
    }
    if !chunks.is_empty() {
        cache.insert(&bytes, size, cache.new_alloc(), &chunks, true);
    }
    Ok(bytes)
}

/// A large read: from the cache when it holds every chunk, else read
/// whole and cached ([`read_large`]).
pub fn get_large(
    pool: &Pool,
    cache: &ContentCache,
    extents: &[Extent],
    r: &Range<u64>,
) -> Result<Bytes> {
    if let Some(plan) = cached_large(cache, extents, r) {
        return Ok(plan.assemble()?.pop().unwrap_or_default());
    }
    read_large(pool, cache, extents, r)
}

/// Where the bytes of some ranges are: the chunks found in the cache and
/// those still to read ([`plan`]).
#[derive(Debug)]
pub struct Plan {
    chunk: u64,
    parts: Vec<Vec<Part>>,
    found: HashMap<Key, Chunk>,
    /// Chunks to read: key → (mblock, its content length).
    missing: BTreeMap<Key, (MblockId, u64)>,
}

/// Look `ranges` of an object made of `extents` up in `cache` (every range
/// no longer than the cache's largest read).
pub fn plan(cache: &ContentCache, extents: &[Extent], ranges: &[Range<u64>]) -> Plan {
    let chunk = cache.chunk();
    let parts: Vec<Vec<Part>> = ranges.iter().map(|r| self::parts(extents, r)).collect();
    let mut keys: Vec<(Key, MblockId, u64)> = Vec::new();
    for p in parts.iter().flatten() {
        for c in p.from / chunk..p.to.div_ceil(chunk) {
            keys.push(((p.id.object_id().raw(), c), p.id, p.len));
        }
    }
    keys.sort_unstable_by_key(|k| k.0);
    keys.dedup_by_key(|k| k.0);
    let looked = cache.lookup(&keys.iter().map(|k| k.0).collect::<Vec<_>>());
    let mut found = HashMap::new();
    let mut missing = BTreeMap::new();
    for ((key, id, len), got) in keys.into_iter().zip(looked) {
        match got {
            Some(c) => {
                found.insert(key, c);
            }
            None => {
                missing.insert(key, (id, len));
            }
        }
    }
    Plan {
        chunk,
        parts,
        found,
        missing,
    }
}

/// A read of consecutive missing chunks of one mblock.
struct Run {
    id: MblockId,
    len: u64,
    first: u64,
    last: u64,
    offset: u64,
    bytes: usize,
}

impl Plan {
    /// Whether every chunk was found (the ranges need no device read).
    pub fn complete(&self) -> bool {
        self.missing.is_empty()
    }

    /// Whether [`Plan::assemble`] hands every range out as a slice of one
    /// buffer (else it copies: a join).
    pub fn without_copy(&self) -> bool {
        let chunk = self.chunk;
        self.parts.iter().all(|ps| {
            let mut prev: Option<(u64, usize)> = None;
            for p in ps {
                for c in p.from / chunk..p.to.div_ceil(chunk) {
                    let Some(ch) = self.found.get(&(p.id.object_id().raw(), c)) else {
                        return false;
                    };
                    let lo = ch.off + (p.from.max(c * chunk) - c * chunk) as usize;
                    let hi = ch.off + (p.to.min((c + 1) * chunk) - c * chunk) as usize;
                    if let Some((alloc, end)) = prev {
                        if alloc != ch.alloc || end != lo {
                            return false;
                        }
                    }
                    prev = Some((ch.alloc, hi));
                }
            }
            true
        })
    }

    /// Read the missing chunks (one read per run of consecutive chunks of
    /// an mblock, several in flight), cache them, and hand out each range:
    /// without a copy where its bytes lie in one buffer, else joined.
    pub fn finish(mut self, pool: &Pool, cache: &ContentCache) -> Result<Vec<Bytes>> {
        let chunk = self.chunk;
        let mut runs: Vec<Run> = Vec::new();
        for (&(raw, c), &(id, len)) in &self.missing {
            if let Some(r) = runs.last_mut() {
                if r.id.object_id().raw() == raw && r.last + 1 == c {
                    r.last = c;
                    continue;
                }
            }
            runs.push(Run {
                id,
                len,
                first: c,
                last: c,
                offset: c * chunk,
                bytes: 0,
            });
        }
        for r in &mut runs {
            // Up to the chunk's end, or the content's rounded up to the
            // buffer's alignment (those bytes come back zero).
            let end = ((r.last + 1) * chunk).min(r.len.div_ceil(ALIGN as u64) * ALIGN as u64);
            r.bytes = usize::try_from(end.saturating_sub(r.offset)).unwrap_or(0);
        }
        let bufs = read_runs(pool, cache, &runs)?;
        for (r, (run, size)) in runs.iter().zip(bufs) {
            let alloc = cache.new_alloc();
            let mut chunks = Vec::with_capacity((r.last - r.first + 1) as usize);
            for c in r.first..=r.last {
                let key = (r.id.object_id().raw(), c);
                let off = usize::try_from(c * chunk - r.offset).unwrap_or(0);
                let len = usize::try_from(chunk.min(r.len.saturating_sub(c * chunk)))
                    .unwrap_or(0)
                    .min(run.len().saturating_sub(off));
                chunks.push((key, off, len));
                self.found.insert(
                    key,
                    Chunk {
                        run: run.clone(),
                        off,
                        len,
                        alloc,
                    },
                );
            }
            cache.insert(&run, size, alloc, &chunks, false);
        }
        self.missing.clear();
        self.assemble()
    }

    /// Each range from the chunks found (all of them are).
    pub fn assemble(&self) -> Result<Vec<Bytes>> {
        let chunk = self.chunk;
        let mut out = Vec::with_capacity(self.parts.len());
        for ps in &self.parts {
            // The range's bytes as pieces of cached chunks, in order.
            let mut segs: Vec<(&Chunk, usize, usize)> = Vec::new();
            for p in ps {
                for c in p.from / chunk..p.to.div_ceil(chunk) {
                    let key = (p.id.object_id().raw(), c);
                    let Some(ch) = self.found.get(&key) else {
                        return Err(internal(format!("chunk {c} of {} was not read", p.id)));
                    };
                    let lo = p.from.max(c * chunk) - c * chunk;
                    let hi = p.to.min((c + 1) * chunk) - c * chunk;
                    let (lo, hi) = (lo as usize, hi as usize);
                    if hi > ch.len {
                        return Err(internal(format!(
                            "chunk {c} of {} holds {} bytes, {hi} wanted",
                            p.id, ch.len
                        )));
                    }
                    segs.push((ch, ch.off + lo, ch.off + hi));
                }
            }
            let Some(first) = segs.first() else {
                out.push(Bytes::new());
                continue;
            };
            // One buffer, contiguous: a slice of it.
            let one = segs
                .windows(2)
                .all(|w| w[0].0.alloc == w[1].0.alloc && w[0].2 == w[1].1);
            if one {
                let last = segs.last().map_or(first.2, |s| s.2);
                out.push(first.0.run.slice(first.1..last));
                continue;
            }
            let mut b = BytesMut::with_capacity(segs.iter().map(|s| s.2 - s.1).sum());
            for (ch, lo, hi) in segs {
                b.extend_from_slice(&ch.run[lo..hi]);
            }
            out.push(b.freeze());
        }
        Ok(out)
    }
}

/// Read `runs`, each into a buffer of its own (in the order given): one
/// on this thread, several through the pool's reader, up to
/// [`READ_DEPTH`] in flight. Each comes with the bytes its buffer takes.
fn read_runs(pool: &Pool, cache: &ContentCache, runs: &[Run]) -> Result<Vec<(Bytes, usize)>> {
    let align = read_align(pool);
    if let [r] = runs {
        let (mut buf, off) = aligned_vec(r.bytes, Some(cache));
        let span = (r.id, r.len, r.offset, &mut buf[off..off + r.bytes]);
        run_spans(pool, vec![span], align, r.bytes < HUGE_MIN)?;
        let size = buf.capacity();
        return Ok(vec![(hand_out(buf, off..off + r.bytes, Some(cache)), size)]);
    }
    let mut done: Vec<Option<AlignedBuf>> = runs.iter().map(|_| None).collect();
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    let index: HashMap<(u64, u64), usize> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.id.object_id().raw(), r.offset), i))
        .collect();
    {
        let mut rd = pool.mblock_reader(runs.len().min(READ_DEPTH))?;
        for r in runs {
            rd.push(AlignedRead {
                id: r.id,
                offset: r.offset,
                buf: AlignedBuf::scratch(r.bytes, ALIGN),
            })?;
        }
        for got in rd.by_ref() {
            let got = got?;
            let Some(&i) = index.get(&(got.id.object_id().raw(), got.offset)) else {
                return Err(internal(format!(
                    "a read of {} at {} came back that was not asked for",
                    got.id, got.offset
                )));
            };
            done[i] = Some(got.buf);
        }
    }
    runs.iter()
        .zip(done)
        .map(|(r, d)| {
            d.map(|b| {
                let size = b.len();
                (Bytes::from_owner(Owned(b)), size)
            })
            .ok_or_else(|| {
                internal(format!(
                    "a read of {} at {} never came back",
                    r.id, r.offset
                ))
            })
        })
        .collect()
}

/// Read `ranges` of an object made of `extents` (each inside the
/// object), each as one [`Bytes`]: through `cache` in chunks when it
/// takes reads that long, else whole ([`get_large`]: from the cache when
/// every chunk is there, else straight from the device into one buffer,
/// cached).
pub fn read_ranges(
    pool: &Pool,
    cache: &ContentCache,
    extents: &[Extent],
    ranges: &[Range<u64>],
) -> Result<Vec<Bytes>> {
    let (small, large): (Vec<usize>, Vec<usize>) = (0..ranges.len())
        .partition(|&i| cache.serves(ranges[i].end.saturating_sub(ranges[i].start)));
    let mut out: Vec<Bytes> = vec![Bytes::new(); ranges.len()];
    if !small.is_empty() {
        let want: Vec<Range<u64>> = small.iter().map(|&i| ranges[i].clone()).collect();
        let got = plan(cache, extents, &want).finish(pool, cache)?;
        for (i, b) in small.into_iter().zip(got) {
            out[i] = b;
        }
    }
    for i in large {
        out[i] = get_large(pool, cache, extents, &ranges[i])?;
    }
    Ok(out)
}
