//! Maps keyed by object ID for state that every allocation, write and
//! commit touches (the pending objects), split into stripes by the ID's
//! MDC, so that threads working in different MDCs (see `Inner::new_id`)
//! take different locks.
//!
//! The keys are IDs the pool made (a uniquifier above an MDC number and a
//! type, see `objid.rs`), never chosen by a caller, so they are hashed by
//! one multiplication instead of SipHash, which cost more than the lookup
//! around it (BENCHMARKS.md, session 22).

use crate::lock::{lock, Padded};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

/// Hashes object IDs: the 128-bit product with an odd constant, its two
/// halves folded, so that every bit of the ID moves the low bits that pick
/// a bucket (the ID's own low bits are its MDC and type, the same for
/// most keys of a stripe).
#[derive(Default)]
pub(crate) struct IdHasher(u64);

fn mix(x: u64) -> u64 {
    let m = u128::from(x) * 0x9E37_79B9_7F4A_7C15u128;
    (m as u64) ^ ((m >> 64) as u64)
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = mix(self.0 ^ u64::from_le_bytes(b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = mix(self.0 ^ x);
    }
}

/// A hash map keyed by object ID, hashed by [`IdHasher`].
pub(crate) type IdHashMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Stripes of the structures split by MDC ([`IdMap`], the checksum-table
/// cache): MDC numbers modulo this pick one.
pub(crate) const STRIPES: usize = 16;

/// The stripe of object `id`: its MDC (bits 4..12) modulo [`STRIPES`].
pub(crate) fn stripe_of(id: u64) -> usize {
    ((id >> 4) & 0xff) as usize % STRIPES
}

/// A map from object ID to `V` in [`STRIPES`] locked stripes, each on
/// lines of its own (threads in neighbouring stripes share no line).
pub(crate) struct IdMap<V> {
    stripes: [Padded<Mutex<IdHashMap<V>>>; STRIPES],
}

impl<V> std::fmt::Debug for IdMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n: usize = self.stripes.iter().map(|s| lock(s).len()).sum();
        f.debug_struct("IdMap").field("len", &n).finish()
    }
}

impl<V: Clone> IdMap<V> {
    pub(crate) fn new() -> Self {
        IdMap {
            stripes: std::array::from_fn(|_| Padded(Mutex::new(HashMap::default()))),
        }
    }

    fn stripe(&self, id: u64) -> &Mutex<IdHashMap<V>> {
        &self.stripes[stripe_of(id)]
    }

    /// The value of `id`, if any.
    pub(crate) fn get(&self, id: u64) -> Option<V> {
        lock(self.stripe(id)).get(&id).cloned()
    }

    /// Set the value of `id`; the value it had.
    pub(crate) fn insert(&self, id: u64, v: V) -> Option<V> {
        lock(self.stripe(id)).insert(id, v)
    }

    /// Remove `id`; the value it had.
    pub(crate) fn remove(&self, id: u64) -> Option<V> {
        lock(self.stripe(id)).remove(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn ids_of_one_mdc_spread_over_buckets() {
        // IDs of MDC 3, type mblock, uniquifiers 1..=4096: the low 12 bits
        // of the hash (a table of 4096 buckets) take most of their values.
        let b = BuildHasherDefault::<IdHasher>::default();
        let mut seen = std::collections::HashSet::new();
        for u in 1..=4096u64 {
            seen.insert(b.hash_one(u << 12 | 3 << 4 | 1) & 0xfff);
        }
        assert!(seen.len() > 2500, "{} of 4096 buckets", seen.len());
    }

    #[test]
    fn map_keeps_each_key() {
        let m = IdMap::new();
        for id in 0..1000u64 {
            assert_eq!(m.insert(id << 4 | 1, id), None);
        }
        assert_eq!(m.insert(5 << 4 | 1, 7), Some(5));
        for id in 0..1000u64 {
            let want = if id == 5 { 7 } else { id };
            assert_eq!(m.get(id << 4 | 1), Some(want));
        }
        assert_eq!(m.remove(3 << 4 | 1), Some(3));
        assert_eq!(m.get(3 << 4 | 1), None);
        assert_eq!(m.remove(3 << 4 | 1), None);
    }
}
