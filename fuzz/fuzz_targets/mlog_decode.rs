//! mlog decoders, structure-aware.
//!
//! The fuzzer's bytes choose a log image that is valid framing per
//! docs/format.md ("Mlog"): two header blocks (copy 1 absent, older, newer
//! with another geometry, another generation or another log id), then
//! records laid out by the format's own geometry (`Geom::hdr_pos`,
//! `rec_end`, `payload_pieces`) with their block headers (`first_rec` as the
//! writer sets it) and record checksums. Records follow the sequencing rule
//! (same flush set, next flush set, or a new epoch) unless a field is
//! perturbed; some are left out (a lost write, so the bit-rot rule runs).
//! One image in three is a mirrored log (docs/format.md, "Mirrored logs"):
//! every record laid out twice, back to back, the header flagged; there a
//! lost write may also take one copy only, which must change nothing.
//! Then a few bytes are overwritten (in a record header, a block header, a
//! log header or anywhere) and, per a flag each, the log header, block
//! header and record checksums are recomputed over the mutated bytes, so
//! the checks behind them are reached; without the flag the rejection path
//! runs. One input in 16 feeds the raw bytes as before.
//!
//! The image goes to `decode_image` and, on a fault device, to `Mlog::open`,
//! its reader and an append or an erase. Contract checked: never a panic; an image built
//! without faults decodes to exactly the records built; `decode_image` and
//! `Mlog::open` + reader agree when they chose the same header; a synced
//! append to a log that opened without corruption reads back after a reopen,
//! after the records that were there; an erase raises the generation and
//! leaves no record.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use mpool::dev::{Device, FaultDevice};
use mpool::mlog::format::{
    payload_pieces, record_crc, BlockHeader, Geom, LogHeader, RecordHeader, BLK_HDR_LEN,
    LOG_HDR_LEN, REC_HDR_LEN,
};
use mpool::mlog::{decode_image, Mlog, MIRRORED_MAX_RECORD};
use std::sync::{Arc, OnceLock};

/// A built log image.
struct Image {
    img: Vec<u8>,
    g: Geom,
    log_id: u64,
    /// Header positions (data area) of the records laid out, with payloads.
    recs: Vec<(u64, Vec<u8>)>,
    /// Header positions of every copy laid out (both copies of each record
    /// in a mirrored log).
    copies: Vec<u64>,
    /// Built without any fault: must decode to exactly `recs`.
    clean: bool,
}

impl Image {
    fn data(&self) -> usize {
        2 * self.g.bs as usize
    }
}

fn perturb(u: &mut Unstructured, h: &mut RecordHeader) -> Result<()> {
    let d = |u: &mut Unstructured| -> Result<i64> { u.int_in_range(-2..=2) };
    match u.int_in_range(0..=5u8)? {
        0 => h.seq = h.seq.wrapping_add_signed(d(u)?),
        1 => h.epoch = h.epoch.wrapping_add_signed(d(u)? as i32),
        2 => h.fseq = h.fseq.wrapping_add_signed(d(u)? as i32),
        3 => h.bdelta = h.bdelta.wrapping_add_signed(d(u)? as i32),
        4 => h.gen = h.gen.wrapping_add_signed(d(u)?),
        _ => match u.int_in_range(0..=3u8)? {
            0 => h.seq = u.arbitrary()?,
            1 => h.epoch = u.arbitrary()?,
            2 => h.fseq = u.arbitrary()?,
            _ => h.bdelta = u.arbitrary()?,
        },
    }
    Ok(())
}

fn build(u: &mut Unstructured) -> Result<Image> {
    let bs: u64 = if u.ratio(1, 8)? { 4096 } else { 512 };
    let nblocks: u64 = if bs == 512 {
        u.int_in_range(1..=12)?
    } else {
        u.int_in_range(1..=3)?
    };
    let g = Geom { bs, nblocks };
    let mirrored = u.ratio(1, 3)?;
    // Plain logs are padded or not (records then may start at the next block).
    let padded = !mirrored && u.arbitrary()?;
    let max_len = if mirrored {
        g.max_record_mirrored().min(MIRRORED_MAX_RECORD)
    } else {
        g.max_record()
    };
    let log_id: u64 = match u.int_in_range(0..=3u8)? {
        0 => 0x4d44_4330,
        1 => !0x4d44_4330,
        2 => u.int_in_range(0..=16)?,
        _ => u.arbitrary()?,
    };
    let gen: u64 = if u.arbitrary()? {
        u.int_in_range(1..=4)?
    } else {
        u.arbitrary()?
    };
    let mut clean = true;
    let data = 2 * bs as usize;
    let mut img = vec![0u8; data + g.size() as usize];
    let hdr_epoch: u32 = u.int_in_range(1..=3)?;

    // Records.
    let mut recs = Vec::new();
    let mut copies = Vec::new();
    let mut p = 0u64;
    let (mut seq, mut epoch, mut fseq, mut bdelta) = (0u64, u.int_in_range(1..=3u32)?, 1u32, 0u32);
    let n = u.int_in_range(0..=24u8)?;
    for i in 0..n {
        if i > 0 {
            seq += 1;
            match u.int_in_range(0..=7u8)? {
                0..=3 => bdelta = bdelta.saturating_add(1),
                4 | 5 => {
                    fseq = fseq.saturating_add(1);
                    bdelta = 0;
                }
                _ => {
                    epoch = epoch.saturating_add(u.int_in_range(1..=3)?);
                    fseq = 1;
                    bdelta = 0;
                }
            }
        }
        let len: u64 = match u.int_in_range(0..=7u8)? {
            0..=5 => u.int_in_range(0..=40)?,
            6 => u.int_in_range(0..=2 * bs)?,
            _ => u.int_in_range(0..=max_len)?,
        };
        let Some(h) = g.next_hdr(p, len, padded) else { break };
        let Some(end1) = g.rec_end(h, len) else { break };
        let (h2, end) = if mirrored {
            let Some(h2) = g.hdr_pos(end1) else { break };
            let Some(e) = g.rec_end(h2, len) else { break };
            (Some(h2), e)
        } else {
            (None, end1)
        };
        if end > g.size() {
            break;
        }
        let mut rh = RecordHeader {
            crc: 0,
            len: len as u32,
            gen,
            seq,
            epoch,
            fseq,
            bdelta,
        };
        if u.ratio(1, 16)? {
            clean = false;
            perturb(u, &mut rh)?;
        }
        let fill: u8 = u.arbitrary()?;
        let payload: Vec<u8> = (0..len).map(|k| fill.wrapping_add(k as u8)).collect();
        rh.crc = record_crc(log_id, &rh, &payload);
        // A lost write: the record (and maybe its block headers) missing.
        let omit = u.ratio(1, 24)?;
        let omit_blocks = omit && u.arbitrary()?;
        clean &= !omit;
        // Mirrored: one copy lost (its bytes never written) changes nothing.
        let omit_copy: Option<usize> = match h2 {
            Some(_) if !omit && u.ratio(1, 6)? => Some(u.int_in_range(0..=1)?),
            _ => None,
        };
        for (k, at) in std::iter::once(h).chain(h2).enumerate() {
            let Some(c_end) = g.rec_end(at, len) else { break };
            let skip = omit || omit_copy == Some(k);
            let b0 = at / bs;
            let last_block = (c_end - 1) / bs;
            let put_bh = |img: &mut [u8], b: u64, first_rec: u32| {
                if !omit_blocks {
                    let bh = BlockHeader {
                        log_id,
                        gen,
                        block_no: b as u32,
                        first_rec,
                    };
                    bh.encode(&mut img[data + (b * bs) as usize..]);
                }
            };
            if at % bs == BLK_HDR_LEN {
                put_bh(&mut img, b0, BLK_HDR_LEN as u32);
            }
            let mut from = 0;
            for (b, o, n) in payload_pieces(&g, at, len) {
                if b != b0 && o == BLK_HDR_LEN as usize {
                    let first = if b == last_block {
                        g.first_rec_after(c_end)
                    } else {
                        0
                    };
                    put_bh(&mut img, b, first);
                }
                if !skip {
                    let s = data + (b * bs) as usize + o;
                    img[s..s + n].copy_from_slice(&payload[from..from + n]);
                }
                from += n;
            }
            if !skip {
                rh.encode(&mut img[data + at as usize..]);
            }
            copies.push(at);
        }
        recs.push((h, payload));
        p = end;
    }
    // The header copies, written last so that their epoch can cover the
    // records'.
    let hdr = LogHeader {
        log_id,
        gen,
        // As the writer leaves it: no lower than any record's epoch (a
        // header written before the records of its epoch). Sometimes lower,
        // as when the newest copy rotted and the older one wins.
        epoch: if u.ratio(1, 8)? {
            hdr_epoch
        } else {
            hdr_epoch.max(epoch)
        },
        block_size: bs as u32,
        nblocks,
        mirrored,
        padded,
    };
    // Header copy 0: usually the log's header.
    match u.int_in_range(0..=15u8)? {
        0 => clean = false, // never written
        1 => {
            clean = false;
            let other = LogHeader {
                gen: u.arbitrary()?,
                ..hdr
            };
            other.encode(&mut img[..bs as usize]);
        }
        _ => hdr.encode(&mut img[..bs as usize]),
    }
    // Header copy 1.
    let h1 = match u.int_in_range(0..=5u8)? {
        0 => Some(LogHeader {
            epoch: hdr.epoch - 1,
            ..hdr
        }),
        1 => None,
        // Newer, same generation, geometry that does not match the extent:
        // `decode_image` takes it, `Mlog::open` refuses it; same records.
        2 => Some(LogHeader {
            epoch: hdr.epoch + 1,
            nblocks: nblocks + 1,
            ..hdr
        }),
        3 => {
            clean = false;
            Some(LogHeader {
                gen: u.arbitrary()?,
                epoch: u.arbitrary()?,
                ..hdr
            })
        }
        4 => Some(LogHeader {
            log_id: log_id ^ 1,
            epoch: hdr.epoch + 1,
            ..hdr
        }),
        _ => Some(hdr),
    };
    if let Some(h1) = h1 {
        h1.encode(&mut img[bs as usize..2 * bs as usize]);
    }

    Ok(Image {
        img,
        g,
        log_id,
        recs,
        copies,
        clean,
    })
}

fn fix_log_headers(im: &mut Image) {
    let bs = im.g.bs as usize;
    for slot in 0..2 {
        let h = &mut im.img[slot * bs..slot * bs + LOG_HDR_LEN];
        if &h[..8] == b"MPLOGHD1" {
            h[12..16].fill(0);
            let c = crc32c::crc32c(h);
            h[12..16].copy_from_slice(&c.to_le_bytes());
        }
    }
}

fn fix_block_headers(im: &mut Image) {
    let (bs, data) = (im.g.bs as usize, im.data());
    for b in 0..im.g.nblocks as usize {
        let h = &mut im.img[data + b * bs..][..BLK_HDR_LEN as usize];
        if &h[..4] == b"MLB1" {
            h[4..8].fill(0);
            let c = crc32c::crc32c(h);
            h[4..8].copy_from_slice(&c.to_le_bytes());
        }
    }
}

fn fix_record_crcs(im: &mut Image) {
    let (bs, data) = (im.g.bs, im.data());
    for &h in &im.copies {
        let at = data + h as usize;
        let Some(rh) = RecordHeader::decode(&im.img[at..]) else {
            continue;
        };
        match im.g.rec_end(h, rh.len.into()) {
            Some(e) if e <= im.g.size() => {}
            _ => continue,
        }
        let mut crc = rh.crc_start(im.log_id);
        for (b, o, k) in payload_pieces(&im.g, h, rh.len.into()) {
            let s = data + (b * bs) as usize + o;
            crc = crc32c::crc32c_append(crc, &im.img[s..s + k]);
        }
        im.img[at..at + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

fn mutate(u: &mut Unstructured, im: &mut Image) -> Result<()> {
    let n = u.int_in_range(0..=3u8)?;
    let (bs, data) = (im.g.bs as usize, im.data());
    for _ in 0..n {
        im.clean = false;
        let at = match u.int_in_range(0..=4u8)? {
            0 | 1 if !im.copies.is_empty() => {
                let h = im.copies[u.choose_index(im.copies.len())?];
                data + h as usize + u.int_in_range(0..=REC_HDR_LEN as usize - 1)?
            }
            2 => data + u.choose_index(im.g.nblocks as usize)? * bs + u.int_in_range(0..=31)?,
            3 => u.int_in_range(0..=1)? * bs + u.int_in_range(0..=LOG_HDR_LEN - 1)?,
            _ => u.choose_index(im.img.len())?,
        };
        if u.arbitrary()? {
            im.img[at] ^= 1 << u.int_in_range(0..=7)?;
        } else {
            im.img[at] = u.arbitrary()?;
        }
    }
    let fix: u8 = u.arbitrary()?;
    if fix & 1 != 0 {
        fix_record_crcs(im);
    }
    if fix & 2 != 0 {
        fix_block_headers(im);
    }
    if fix & 4 != 0 {
        fix_log_headers(im);
    }
    Ok(())
}

/// The header `decode_image` picks: the newest valid copy with the id.
fn best_header(img: &[u8], bs: usize, id: u64) -> Option<LogHeader> {
    let mut best: Option<LogHeader> = None;
    for slot in 0..2 {
        if let Some(Ok(h)) = img.get(slot * bs..(slot + 1) * bs).map(LogHeader::decode) {
            if h.log_id == id && best.is_none_or(|b| h.order() > b.order()) {
                best = Some(h);
            }
        }
    }
    best
}

/// Set `MPOOL_FUZZ_STRICT=1` to check the contracts the library is known to
/// break too (see fuzz/README.md, "Known findings").
fn strict() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("MPOOL_FUZZ_STRICT").is_some_and(|v| v == "1"))
}

/// Print the image before and after (to triage a failed check).
fn dump(im: &Image, d: &dyn Device) {
    let bs = im.g.bs as usize;
    let hex = |b: &[u8]| {
        for (i, c) in b.chunks(32).enumerate() {
            if c.iter().any(|&x| x != 0) {
                eprintln!("{:6}: {:02x?}", i * 32, c);
            }
        }
    };
    eprintln!("bs {bs} nblocks {} log_id {:#x}", im.g.nblocks, im.log_id);
    for s in 0..2 {
        eprintln!("header {s}: {:?}", LogHeader::decode(&im.img[s * bs..]));
    }
    for &(h, ref p) in &im.recs {
        let r = RecordHeader::decode(&im.img[im.data() + h as usize..]);
        eprintln!("record at {h} (payload {}): {r:?}", p.len());
    }
    eprintln!("image built:");
    hex(&im.img);
    let mut b = d.alloc_buf(im.img.len());
    if d.read_at(0, &mut b).is_ok() {
        eprintln!("device now:");
        hex(&b);
    }
}

/// Known finding: a record of the log's generation with an epoch above the
/// header's (the newest header copy rotted, so the older copy won) that the
/// open scan does not reach (it looks past the end only along the chain, in
/// the stop block and from each later block's `first_rec`) leaves the new
/// epoch no higher than that record's. After a synced append, the next scan
/// may take the old record for proof of corruption (`Corrupt`, the log
/// refuses appends) or chain it after the new records. Skipped unless strict.
fn epoch_behind(im: &Image, id: u64, gen: u64) -> bool {
    let bs = im.g.bs as usize;
    let hdr_epoch = (0..2)
        .filter_map(|s| LogHeader::decode(&im.img[s * bs..]).ok())
        .filter(|h| h.log_id == id && h.gen == gen && h.nblocks == im.g.nblocks)
        .map(|h| h.epoch)
        .max()
        .unwrap_or(0);
    im.copies.iter().any(|&h| {
        RecordHeader::decode(&im.img[im.data() + h as usize..])
            .is_some_and(|r| r.gen == gen && r.epoch > hdr_epoch)
    })
}

fn raw(data: &[u8]) {
    let _ = LogHeader::decode(data);
    let _ = BlockHeader::decode(data);
    let _ = RecordHeader::decode(data);
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let sector: u32 = if sel & 1 == 0 { 512 } else { 4096 };
    let _ = decode_image(rest, sector, u64::from(sel >> 1));
}

fn run(u: &mut Unstructured) -> Result<()> {
    if u.ratio(1, 16)? {
        raw(u.bytes(u.len())?);
        return Ok(());
    }
    let mut im = build(u)?;
    mutate(u, &mut im)?;
    let id = if u.ratio(1, 32)? {
        im.clean = false;
        u.arbitrary()?
    } else {
        im.log_id
    };
    let bs = im.g.bs;
    let dec = decode_image(&im.img, bs as u32, id);
    if im.clean {
        let (res, out) = dec.as_ref().expect("a log built without faults decodes");
        let want: Vec<&Vec<u8>> = im.recs.iter().map(|(_, p)| p).collect();
        assert!(out.iter().eq(want), "records differ from those built");
        assert!(res.corrupt.is_none(), "{:?}", res.corrupt);
        assert_eq!(res.records, im.recs.len() as u64);
    }

    // The same image on a device.
    let len = im.img.len() as u64;
    let d: Arc<dyn Device> = Arc::new(FaultDevice::from_image(im.img.clone(), bs as u32));
    let Ok(log) = Mlog::open(d.clone(), 0..len, id) else {
        assert!(!im.clean, "a log built without faults opens");
        return Ok(());
    };
    let mut got = Vec::new();
    let mut read_err = false;
    if let Ok(rd) = log.reader() {
        for r in rd {
            match r {
                Ok(rec) => got.push(rec),
                Err(_) => {
                    read_err = true;
                    break;
                }
            }
        }
    }
    let best = best_header(&im.img, bs as usize, id);
    if let Some(best) = best.filter(|b| b.gen == log.gen() && b.nblocks >= im.g.nblocks) {
        // Both scanned the same bytes for the same generation.
        let (res, out) = dec
            .as_ref()
            .expect("decode_image fails where Mlog::open succeeds");
        let _ = best;
        assert_eq!(&got, out, "reader and decode_image disagree");
        assert_eq!(log.len(), res.end);
        assert_eq!(log.records(), res.records);
        assert_eq!(
            log.corruption().map(|c| c.0),
            res.corrupt.as_ref().map(|c| c.0)
        );
        assert_eq!(read_err, res.corrupt.is_some());
    }
    // An erase leaves no record behind and raises the generation.
    if u.ratio(1, 4)? {
        let old_gen = log.gen();
        let min_gen = if u.arbitrary()? {
            u.arbitrary()?
        } else {
            old_gen.wrapping_add(u.int_in_range(0..=2)?)
        };
        if let Ok(gen) = log.erase(min_gen) {
            assert!(
                gen > old_gen && gen >= min_gen,
                "erase: gen {old_gen} -> {gen}"
            );
            drop(log);
            let log = Mlog::open(d, 0..len, id).expect("reopen after an erase");
            assert_eq!(log.gen(), gen);
            // Records of the new generation that the image already held
            // (built under a header of a lower generation, or with a
            // perturbed `gen`) are the log's records now: an erase to a
            // `min_gen` only promises that older generations are gone.
            let stale = im.copies.iter().any(|&h| {
                RecordHeader::decode(&im.img[im.data() + h as usize..])
                    .is_some_and(|r| r.gen == gen)
            });
            if !stale {
                assert_eq!(log.records(), 0, "records survived an erase");
                let ok = log.reader().expect("reader").filter(|r| r.is_ok()).count();
                assert_eq!(ok, 0, "records survived an erase");
            }
        }
        return Ok(());
    }
    // A synced append reads back after a reopen.
    let known = epoch_behind(&im, id, log.gen());
    if log.corruption().is_none() && !read_err && (strict() || !known) {
        let n = u.int_in_range(0..=3 * bs as usize)?.min(u.len());
        let rec = u.bytes(n)?.to_vec();
        if let Ok(lsn) = log.append(&rec, true) {
            assert_eq!(lsn.0, got.len() as u64);
            drop(log);
            let log = Mlog::open(d.clone(), 0..len, id).expect("reopen after a synced append");
            let again: std::result::Result<Vec<Vec<u8>>, _> =
                log.reader().expect("reader").collect();
            got.push(rec);
            if again.as_ref().ok() != Some(&got) {
                dump(&im, d.as_ref());
            }
            assert_eq!(again.ok(), Some(got), "a synced append did not read back");
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
});
