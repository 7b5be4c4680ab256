//! The space map: which zones of each media class are free.
//!
//! Not persisted: at open it is rebuilt from the committed objects, so zones
//! held by uncommitted objects come back after a crash. Each class' zones are
//! split into regions, each behind its own lock; a thread's allocations
//! start at a region of its own (its *home*: threads take the regions in
//! turn), so threads rarely meet on one lock or on each other's zones.
//!
//! Inside a region a search starts at its hint: just past the last zone
//! allocated, or at the zone released last. A zone released is therefore
//! the next one handed out (last in, first out): on memory-speed media its
//! bytes and the mapping's page-table entries are still in the CPU's caches
//! (BENCHMARKS.md, session 22: a walk over every zone in turn made each
//! 4 KiB write a cache and TLB miss), and on a file its blocks are already
//! allocated. A zone is released only once its delete is durable, so reuse
//! is as safe soon as late.

use crate::error::invariant_broken;
use crate::format::superblock::MediaClass;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Zones per region, at most: a class has at least [`MIN_REGIONS`]
/// regions where each can still hold 64 zones.
const REGION_ZONES: u32 = 4096;

/// Regions a class is split into at least (while each holds 64 zones or
/// more): with fewer regions than threads allocating, threads share a
/// home region and its lock. A pool of 512 MiB in 64 KiB zones had two
/// regions of 4096 zones, so eight threads took turns four to a lock,
/// and one preempted while holding it put the others to sleep.
const MIN_REGIONS: u32 = 64;

/// Zones a region's allocations take off the class' count at a time, and
/// half the most a region keeps from its releases: with a thread
/// allocating and releasing in its own region, one update of the shared
/// count in about this many allocations instead of two in each (two
/// threads on tmpfs spent 70-90 ns more per allocation and release on
/// the count's cache line than one, BENCHMARKS.md session 27).
const CREDIT: u64 = 32;

/// A region's bitmap in whole cache-line pairs of its own: with small
/// regions (a 512 MiB pool's hold 128 zones, a bitmap of 16 bytes) the
/// bitmaps of neighbouring regions, each in its own small allocation,
/// shared lines, and threads allocating in their own home regions wrote
/// each other's lines at every allocation and release.
#[derive(Debug)]
struct Bits(Box<[Padded<[u64; 16]>]>);

impl Bits {
    fn new(words: usize) -> Bits {
        Bits((0..words.div_ceil(16)).map(|_| Padded([0; 16])).collect())
    }

    fn get(&self, i: usize) -> Option<&u64> {
        self.0.get(i / 16).map(|c| &c.0[i % 16])
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut u64> {
        self.0.get_mut(i / 16).map(|c| &mut c.0[i % 16])
    }
}

#[derive(Debug)]
struct Region {
    /// First zone of the region.
    base: u32,
    /// Zones in the region.
    len: u32,
    /// One bit per zone, set when in use.
    used: Bits,
    /// Zones free in the region.
    free: u32,
    /// Where the next search starts (zone offset within the region).
    hint: u32,
    /// Zones taken off the class' count ([`ClassMap::free`]) for the
    /// allocations of the threads at home here, not allocated yet: a
    /// thread reserves [`CREDIT`] more than it needs at a time, and a
    /// release leaves its zones here until there are twice that many.
    credit: u64,
}

impl Region {
    fn is_used(&self, z: u32) -> bool {
        self.used
            .get((z / 64) as usize)
            .is_some_and(|w| w & (1 << (z % 64)) != 0)
    }

    fn set(&mut self, z: u32, on: bool) -> bool {
        let Some(w) = self.used.get_mut((z / 64) as usize) else {
            return false;
        };
        let bit = 1u64 << (z % 64);
        let was = *w & bit != 0;
        if was == on {
            return false;
        }
        if on {
            *w |= bit;
            self.free -= 1;
        } else {
            *w &= !bit;
            self.free += 1;
        }
        true
    }

    /// A run of `n` free zones inside this region, from the hint on, wrapping.
    fn find(&self, n: u32) -> Option<u32> {
        if self.free < n || n == 0 || n > self.len {
            return None;
        }
        let mut start = self.hint.min(self.len);
        for _pass in 0..2 {
            let mut run = 0;
            let mut z = start;
            while z < self.len {
                if self.is_used(z) {
                    run = 0;
                } else {
                    run += 1;
                    if run == n {
                        return Some(z + 1 - n);
                    }
                }
                z += 1;
            }
            start = 0;
        }
        None
    }
}

/// Errors of the space map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpaceMapError {
    /// No room left in the class (beyond its spare).
    #[error("no space left in the {class} media class ({free} zones free, {spare} held as spare, {want} wanted)")]
    NoSpace {
        /// The class.
        class: MediaClass,
        /// Free zones.
        free: u64,
        /// Spare zones.
        spare: u64,
        /// Zones wanted.
        want: u32,
    },
    /// A zone outside the class, or in the reserved area.
    #[error("zone {zone} is outside the {class} class' zones {first}..{end}")]
    BadZone {
        /// The class.
        class: MediaClass,
        /// The zone.
        zone: u32,
        /// First allocatable zone.
        first: u32,
        /// One past the last zone.
        end: u32,
    },
    /// A zone claimed twice (rebuilding from metadata found two owners).
    #[error("zone {zone} of the {class} class is already in use")]
    InUse {
        /// The class.
        class: MediaClass,
        /// The zone.
        zone: u32,
    },
    /// A zone freed that was not in use.
    #[error("zone {zone} of the {class} class was not in use")]
    NotInUse {
        /// The class.
        class: MediaClass,
        /// The zone.
        zone: u32,
    },
}

/// Free space of one media class.
#[derive(Debug)]
pub struct ClassMap {
    class: MediaClass,
    first: u32,
    end: u32,
    /// Zones per region (the last one may hold fewer).
    region_zones: u32,
    /// Each region on lines of its own: threads allocating in their home
    /// regions share no line.
    regions: Vec<Padded<Mutex<Region>>>,
    spare_zones: AtomicU64,
    /// Zones neither in use nor held as a region's credit
    /// ([`Region::credit`]): the spare is kept here. Written when a
    /// region's credit runs out or overflows, on lines of its own: the
    /// fields above, read by every allocation and release, stay in the
    /// readers' caches.
    free: Padded<AtomicU64>,
}

/// The calling thread's home number: threads are numbered in the order of
/// their first allocation, and a thread starts its searches at region
/// `home % regions`.
fn home() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static HOME: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    HOME.with(|h| *h)
}

use crate::lock::{lock, Padded};

impl ClassMap {
    /// Zones `first..end` are allocatable; `spare_pct` of them are held back.
    pub fn new(class: MediaClass, first: u32, end: u32, spare_pct: u8) -> Self {
        let mut regions = Vec::new();
        let mut base = first;
        let region_zones = (end.saturating_sub(first) / MIN_REGIONS).clamp(64, REGION_ZONES);
        while base < end {
            let len = (end - base).min(region_zones);
            regions.push(Padded(Mutex::new(Region {
                base,
                len,
                used: Bits::new(len.div_ceil(64) as usize),
                free: len,
                hint: 0,
                credit: 0,
            })));
            base += len;
        }
        let total = u64::from(end.saturating_sub(first));
        ClassMap {
            class,
            first,
            end,
            region_zones,
            regions,
            spare_zones: AtomicU64::new(total * u64::from(spare_pct) / 100),
            free: Padded(AtomicU64::new(total)),
        }
    }

    /// Change the spare percentage. The regions' credits, reserved under
    /// the spare before, go back to the class' count, so that allocations
    /// from now on keep the new one.
    pub fn set_spare_pct(&self, pct: u8) {
        self.spare_zones
            .store(self.total() * u64::from(pct) / 100, Ordering::Relaxed);
        self.reclaim_credits();
    }

    /// Give every region's credit back to the class' count.
    fn reclaim_credits(&self) {
        for r in &self.regions {
            let c = std::mem::take(&mut lock(r).credit);
            if c > 0 {
                self.free.fetch_add(c, Ordering::AcqRel);
            }
        }
    }

    /// Allocatable zones in all.
    pub fn total(&self) -> u64 {
        u64::from(self.end.saturating_sub(self.first))
    }

    /// Zones free (including spare): the class' count and the regions'
    /// credits (each region's lock taken in turn).
    pub fn free(&self) -> u64 {
        let credits: u64 = self.regions.iter().map(|r| lock(r).credit).sum();
        self.free.load(Ordering::Relaxed) + credits
    }

    /// Zones held back as spare.
    pub fn spare(&self) -> u64 {
        self.spare_zones.load(Ordering::Relaxed)
    }

    /// Zones in use.
    pub fn used(&self) -> u64 {
        self.total() - self.free()
    }

    /// Allocate `n` contiguous zones (an mblock takes 1; an mlog may take more).
    ///
    /// The zones are reserved first, so that concurrent allocations never
    /// dip into the spare: out of the home region's credit, or else off
    /// the class' count (with [`CREDIT`] more for the home region when
    /// the count has them beyond the spare).
    pub fn alloc(&self, n: u32) -> Result<u32, SpaceMapError> {
        let want = u64::from(n);
        let nr = self.regions.len();
        let start = home() % nr.max(1);
        let from_credit = self.regions.get(start).is_some_and(|r| {
            let mut g = lock(r);
            let had = g.credit >= want;
            if had {
                g.credit -= want;
            }
            had
        });
        if !from_credit {
            self.reserve(want, start)?;
        }
        for i in 0..nr {
            let Some(r) = self.regions.get((start + i) % nr) else {
                continue;
            };
            let mut g = lock(r);
            if let Some(off) = g.find(n) {
                for z in off..off + n {
                    let was_free = g.set(z, true);
                    debug_assert!(was_free, "zone {} handed out twice", g.base + z);
                }
                g.hint = off + n;
                // Postcondition: the run lies inside the class.
                debug_assert!(g.base + off >= self.first && g.base + off + n <= self.end);
                return Ok(g.base + off);
            }
        }
        self.free.fetch_add(want, Ordering::AcqRel);
        Err(self.no_space(n))
    }

    fn no_space(&self, want: u32) -> SpaceMapError {
        SpaceMapError::NoSpace {
            class: self.class,
            free: self.free(),
            spare: self.spare(),
            want,
        }
    }

    /// Take `want` zones off the class' count, leaving the spare, and
    /// [`CREDIT`] more for region `home` where there are that many. When
    /// the count has too few, the regions' credits go back to it and it
    /// is tried once more.
    fn reserve(&self, want: u64, home: usize) -> Result<(), SpaceMapError> {
        for attempt in 0..2 {
            let spare = self.spare();
            let mut cur = self.free.load(Ordering::Relaxed);
            loop {
                let take = if cur >= want + CREDIT + spare {
                    want + CREDIT
                } else if cur >= want + spare {
                    want
                } else {
                    break;
                };
                match self.free.compare_exchange_weak(
                    cur,
                    cur - take,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        if take > want {
                            if let Some(r) = self.regions.get(home) {
                                lock(r).credit += take - want;
                            } else {
                                self.free.fetch_add(take - want, Ordering::AcqRel);
                            }
                        }
                        return Ok(());
                    }
                    Err(v) => cur = v,
                }
            }
            if attempt == 0 {
                self.reclaim_credits();
            }
        }
        Err(self.no_space(u32::try_from(want).unwrap_or(u32::MAX)))
    }

    fn region_of(&self, zone: u32) -> Result<&Mutex<Region>, SpaceMapError> {
        if zone < self.first || zone >= self.end {
            return Err(SpaceMapError::BadZone {
                class: self.class,
                zone,
                first: self.first,
                end: self.end,
            });
        }
        self.regions
            .get(((zone - self.first) / self.region_zones) as usize)
            .map(|r| &r.0)
            .ok_or(SpaceMapError::BadZone {
                class: self.class,
                zone,
                first: self.first,
                end: self.end,
            })
    }

    /// Mark zones `zone..zone+n` used (rebuilding from metadata at open).
    pub fn claim(&self, zone: u32, n: u32) -> Result<(), SpaceMapError> {
        for z in zone..zone.saturating_add(n) {
            let r = self.region_of(z)?;
            let mut g = lock(r);
            let base = g.base;
            if !g.set(z - base, true) {
                return Err(SpaceMapError::InUse {
                    class: self.class,
                    zone: z,
                });
            }
            self.free.fetch_sub(1, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Return zones `zone..zone+n`, allocated or claimed earlier. Every
    /// allocation is paired with one release: a release that fails (zones
    /// outside the class, or not in use: a double free) is a bug of the
    /// caller, reported by [`invariant_broken`] (a panic in debug builds,
    /// [`crate::Error::Internal`] in release builds) and never discarded.
    #[track_caller]
    pub fn release(&self, zone: u32, n: u32) -> crate::Result<()> {
        self.try_release(zone, n)
            .map_err(|e| invariant_broken(format!("releasing zones {zone}+{n}: {e}")))
    }

    /// The checked half of [`ClassMap::release`]: what is wrong with the
    /// release, if anything. Nothing changes unless every zone is in use.
    pub fn try_release(&self, zone: u32, n: u32) -> Result<(), SpaceMapError> {
        let end = zone.checked_add(n).ok_or(SpaceMapError::BadZone {
            class: self.class,
            zone: u32::MAX,
            first: self.first,
            end: self.end,
        })?;
        for z in zone..end {
            let r = self.region_of(z)?;
            let g = lock(r);
            let base = g.base;
            if !g.is_used(z - base) {
                return Err(SpaceMapError::NotInUse {
                    class: self.class,
                    zone: z,
                });
            }
        }
        for z in zone..end {
            let r = self.region_of(z)?;
            let mut g = lock(r);
            let base = g.base;
            if !g.set(z - base, false) {
                // Freed by another thread since the check: a double free.
                return Err(SpaceMapError::NotInUse {
                    class: self.class,
                    zone: z,
                });
            }
            if z == zone {
                // The next search in this region starts here.
                g.hint = z - base;
            }
            g.credit += 1;
            if g.credit > 2 * CREDIT {
                let back = g.credit - CREDIT;
                g.credit = CREDIT;
                self.free.fetch_add(back, Ordering::AcqRel);
            }
        }
        Ok(())
    }

    /// Whether a zone is in use.
    pub fn is_used(&self, zone: u32) -> bool {
        self.region_of(zone).is_ok_and(|r| {
            let g = lock(r);
            let base = g.base;
            g.is_used(zone - base)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    #[test]
    fn alloc_until_spare_then_nospace() {
        let m = ClassMap::new(MediaClass::Capacity, 3, 103, 10);
        let mut got = HashSet::new();
        for _ in 0..90 {
            let z = m.alloc(1).unwrap();
            assert!((3..103).contains(&z));
            assert!(got.insert(z));
        }
        assert!(matches!(
            m.alloc(1),
            Err(SpaceMapError::NoSpace {
                free: 10,
                spare: 10,
                ..
            })
        ));
        m.set_spare_pct(0);
        assert!(m.alloc(10).is_err() || m.free() == 0);
    }

    /// A spare raised after allocations began is kept: credits reserved
    /// under the old one are not spent past the new one (here the new
    /// spare is more than the class' count left beside the credit).
    #[test]
    fn a_raised_spare_holds_against_credits_taken_before() {
        let m = ClassMap::new(MediaClass::Capacity, 1, 1001, 0);
        let mut n = u64::from(m.alloc(1).is_ok());
        m.set_spare_pct(97);
        while m.alloc(1).is_ok() {
            n += 1;
        }
        assert_eq!(n, m.total() - m.spare());
        assert_eq!(m.free(), m.spare());
    }

    /// A small class is split into 64 regions (each of 64 zones or
    /// more), a large one into regions of 4096 zones; every region's
    /// bitmap starts on a line of its own.
    #[test]
    fn small_classes_have_many_regions_large_ones_regions_of_4096_zones() {
        let small = ClassMap::new(MediaClass::Capacity, 1, 1 + 8192, 0);
        assert_eq!(small.regions.len(), 64);
        assert_eq!(small.region_zones, 128);
        let tiny = ClassMap::new(MediaClass::Capacity, 1, 1 + 100, 0);
        assert_eq!((tiny.regions.len(), tiny.region_zones), (2, 64));
        let large = ClassMap::new(MediaClass::Capacity, 1, 1 + 1_000_000, 0);
        assert_eq!(large.region_zones, REGION_ZONES);
        for r in &small.regions {
            let g = lock(r);
            let at = g.used.0.as_ptr() as usize;
            assert_eq!(at % 128, 0, "a bitmap on lines of its own");
        }
    }

    #[test]
    fn contiguous_runs_claim_release() {
        let m = ClassMap::new(MediaClass::Staging, 1, 20, 0);
        let a = m.alloc(4).unwrap();
        for z in a..a + 4 {
            assert!(m.is_used(z));
        }
        assert_eq!(
            m.claim(a, 1),
            Err(SpaceMapError::InUse {
                class: MediaClass::Staging,
                zone: a
            })
        );
        m.release(a, 4).unwrap();
        assert_eq!(
            m.try_release(a, 1),
            Err(SpaceMapError::NotInUse {
                class: MediaClass::Staging,
                zone: a
            })
        );
        assert!(matches!(m.claim(0, 1), Err(SpaceMapError::BadZone { .. })));
        assert!(matches!(m.claim(20, 1), Err(SpaceMapError::BadZone { .. })));
        assert_eq!(m.free(), 19);
    }

    #[test]
    fn every_misuse_of_release_is_caught_and_changes_nothing() {
        let m = ClassMap::new(MediaClass::Capacity, 2, 40, 0);
        let a = m.alloc(3).unwrap();
        let free = m.free();
        // A double free, also of a run only partly in use.
        m.release(a + 1, 1).unwrap();
        assert!(matches!(
            m.try_release(a, 3),
            Err(SpaceMapError::NotInUse { zone, .. }) if zone == a + 1
        ));
        assert!(m.is_used(a) && m.is_used(a + 2), "nothing released");
        assert_eq!(m.free(), free + 1);
        // Out of range: before the first zone, past the end, wrapping.
        assert!(matches!(
            m.try_release(1, 1),
            Err(SpaceMapError::BadZone { .. })
        ));
        m.claim(39, 1).unwrap();
        assert!(matches!(
            m.try_release(39, 2),
            Err(SpaceMapError::BadZone { .. })
        ));
        assert!(m.is_used(39), "nothing released");
        m.release(39, 1).unwrap();
        assert!(matches!(
            m.try_release(u32::MAX, 2),
            Err(SpaceMapError::BadZone { .. })
        ));
        assert_eq!(m.free(), free + 1);
    }

    #[test]
    fn a_released_zone_is_the_next_one_handed_out() {
        let m = ClassMap::new(MediaClass::Capacity, 1, 100, 0);
        let zs: Vec<u32> = (0..5).map(|_| m.alloc(1).unwrap()).collect();
        m.release(zs[1], 1).unwrap();
        assert_eq!(m.alloc(1).unwrap(), zs[1], "last in, first out");
        // Then on past the last allocation, not back to the start.
        let next = m.alloc(1).unwrap();
        assert!(!zs.contains(&next));
        m.release(zs[3], 1).unwrap();
        m.release(zs[0], 1).unwrap();
        assert_eq!(m.alloc(1).unwrap(), zs[0], "the one released last");
        assert_eq!(
            m.alloc(1).unwrap(),
            zs[3],
            "then the next free one after it"
        );
    }

    #[test]
    fn a_thread_allocates_in_one_region_while_it_has_room() {
        let m = ClassMap::new(MediaClass::Capacity, 1, 1 + 3 * REGION_ZONES, 0);
        let region = |z: u32| (z - 1) / m.region_zones;
        let first = m.alloc(1).unwrap();
        for _ in 0..100 {
            assert_eq!(region(m.alloc(1).unwrap()), region(first));
        }
        // A full home region: the next region has the room.
        let room = m
            .regions
            .get(region(first) as usize)
            .map(|r| lock(r).free)
            .unwrap();
        for _ in 0..room {
            assert_eq!(region(m.alloc(1).unwrap()), region(first));
        }
        assert_ne!(region(m.alloc(1).unwrap()), region(first));
    }

    #[test]
    #[should_panic(expected = "a bug in mpool")]
    fn a_double_free_panics_in_debug_builds() {
        let m = ClassMap::new(MediaClass::Capacity, 1, 10, 0);
        let z = m.alloc(1).unwrap();
        m.release(z, 1).unwrap();
        let _ = m.release(z, 1);
    }

    #[test]
    #[should_panic(expected = "a bug in mpool")]
    fn an_out_of_range_release_panics_in_debug_builds() {
        let m = ClassMap::new(MediaClass::Capacity, 1, 10, 0);
        let _ = m.release(10, 1);
    }

    /// Zones one thread's region holds as credit are not lost to another
    /// thread: it gets every zone but the spare, and the class counts the
    /// credit as free meanwhile.
    #[test]
    fn a_regions_credit_goes_to_whoever_needs_it_last() {
        let total = 2 * REGION_ZONES;
        let m = Arc::new(ClassMap::new(MediaClass::Capacity, 1, 1 + total, 10));
        let spare = m.spare();
        let first = {
            let m = Arc::clone(&m);
            std::thread::spawn(move || m.alloc(1).unwrap())
                .join()
                .unwrap()
        };
        assert_eq!(m.free(), u64::from(total) - 1, "credit counts as free");
        let mut got = 0u64;
        while m.alloc(1).is_ok() {
            got += 1;
        }
        assert_eq!(got, u64::from(total) - spare - 1);
        assert_eq!(m.free(), spare);
        m.release(first, 1).unwrap();
        assert_eq!(m.free(), spare + 1);
        assert!(m.alloc(1).is_ok());
    }

    #[test]
    fn threads_never_share_a_zone() {
        let m = Arc::new(ClassMap::new(
            MediaClass::Capacity,
            1,
            1 + 3 * REGION_ZONES + 17,
            0,
        ));
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    let mut v = Vec::new();
                    while let Ok(z) = m.alloc(1) {
                        v.push(z);
                    }
                    v
                })
            })
            .collect();
        let mut all = HashSet::new();
        for h in hs {
            for z in h.join().unwrap() {
                assert!(all.insert(z), "zone {z} handed out twice");
            }
        }
        assert_eq!(all.len() as u64, m.total());
        assert_eq!(m.free(), 0);
    }
}
