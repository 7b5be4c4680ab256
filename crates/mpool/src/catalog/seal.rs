//! Sealed commits: an mblock reserved ahead (a type-9 record durable in
//! its MDC) is committed by one write of its content, its checksum table
//! and a *seal* after them, then one flush; no metadata record is written
//! for it then. The seal carries what the commit record would, a nonce
//! that only the reserve record and the seal hold, and bytes of the
//! caller's (an object store's catalog record). After a crash, the owner
//! of a reservation asks for its seal ([`find`]); otherwise the owner
//! *adopts* the mblock once the caller's bytes are safe elsewhere, and a
//! type-8 record, appended without a flush of its own, replaces the
//! reserve record. Layout and rules: `docs/format.md`, "Sealed commits".

use super::mblock::{self, Table, HOLD_MAX};
use crate::dev::{DevError, Device};
use crate::format::record::CsumLayout;
pub(crate) use crate::format::seal::{decode, encode, Seal, CLIENT_MAX, HEADER};
use crate::io::AlignedBuf;
use crate::objid::ObjectId;

/// What a reserved mblock's owner and nonce are (the reserve record's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reservation {
    pub class: crate::format::superblock::MediaClass,
    pub zone: u32,
    pub owner: u64,
    pub nonce: u64,
    pub state: State,
}

/// Where a reserved mblock stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Reserved in this run, uncommitted (pending, writable).
    Open,
    /// Committed by a seal in this run or found sealed after a crash:
    /// readable, its durable form still the reserve record and the seal
    /// until adopted.
    Sealed,
    /// Replayed from the media: sealed or not, nobody looked yet.
    Unknown,
}

/// Bytes from a zone's start that hold any seal a sealed commit can
/// write (content of at most [`HOLD_MAX`] bytes, its table, a seal of at
/// most [`CLIENT_MAX`] caller bytes), within a zone of `zone` bytes.
pub(crate) fn window(sector: u64, zone: u64) -> u64 {
    let table = (4 * (HOLD_MAX as u64).div_ceil(1 << crate::format::record::CSUM_SHIFT_MIN))
        .div_ceil(sector)
        * sector;
    let seal = ((HEADER + CLIENT_MAX) as u64).div_ceil(sector) * sector;
    (HOLD_MAX as u64 + table + seal).min(zone)
}

/// Where a seal lies in a zone of `zone` bytes when content and table do
/// not leave room for it in one write with them: its last whole sectors
/// that hold any seal.
pub(crate) fn slot(sector: u64, zone: u64) -> u64 {
    zone.saturating_sub(((HEADER + CLIENT_MAX) as u64).div_ceil(sector) * sector)
}

/// Look for the seal of reserved mblock `id` (nonce `nonce`) in its zone
/// at byte `base` of `dev` (`zone` bytes): in the window at the zone's
/// start that holds the seal of content held whole, right after the
/// content's table, else in the seal slot at the zone's end ([`slot`]);
/// then check the table against the seal and the content against the
/// table. `Ok(None)`: no whole sealed commit (none was made, or the crash
/// came before its writes were whole on the media).
pub(crate) fn find(
    dev: &dyn Device,
    base: u64,
    zone: u64,
    id: ObjectId,
    nonce: u64,
) -> Result<Option<Seal>, DevError> {
    let sector = u64::from(dev.sector());
    let win = window(sector, zone);
    if win == 0 {
        return Ok(None);
    }
    let buf = AlignedBuf::scratch(win as usize, sector as usize);
    let mut out = mblock::read_into(dev, vec![(base, buf)], usize::MAX)?;
    let buf = out.pop().unwrap_or_default();
    let slot_at = slot(sector, zone);
    let mut at = 0usize;
    while at < buf.len() {
        if let Some(seal) = buf.get(at..).and_then(|b| decode(b, id, nonce)) {
            let l = CsumLayout {
                len: u64::from(seal.len),
                shift: seal.shift,
                sector,
            };
            // A seal lies right after what it describes, or in the slot;
            // the nonce keeps any other from matching (content cannot
            // know it).
            if at as u64 == slot_at && l.footprint() <= slot_at {
                return verify_on_device(dev, base, seal);
            }
            if l.footprint() != at as u64 {
                return Ok(None);
            }
            let content = buf.get(..seal.len as usize);
            let table =
                buf.get(l.table_offset() as usize..(l.table_offset() + l.table_bytes()) as usize);
            let (Some(content), Some(table)) = (content, table) else {
                return Ok(None);
            };
            let t = Table::from_bytes(seal.shift, table);
            let whole = t.crc() == seal.table_crc && t.check(0, content, l.len).is_ok();
            return Ok(whole.then_some(seal));
        }
        at += sector as usize;
    }
    // The seal slot: content too long for the window.
    let at = slot_at;
    if at < win {
        return Ok(None);
    }
    let sbuf = AlignedBuf::scratch((zone - at) as usize, sector as usize);
    let mut out = mblock::read_into(dev, vec![(base + at, sbuf)], usize::MAX)?;
    let sbuf = out.pop().unwrap_or_default();
    let Some(seal) = decode(&sbuf, id, nonce) else {
        return Ok(None);
    };
    let l = CsumLayout {
        len: u64::from(seal.len),
        shift: seal.shift,
        sector,
    };
    if l.footprint() > at {
        return Ok(None);
    }
    verify_on_device(dev, base, seal)
}

/// `seal` when the table in the zone at `base` matches it and the content
/// its table (both read from the device).
fn verify_on_device(dev: &dyn Device, base: u64, seal: Seal) -> Result<Option<Seal>, DevError> {
    let len = u64::from(seal.len);
    let t = mblock::read_table(dev, base, len, seal.shift)?;
    if t.crc() != seal.table_crc {
        return Ok(None);
    }
    Ok(mblock::bad_blocks(dev, base, len, &t)?
        .is_empty()
        .then_some(seal))
}
