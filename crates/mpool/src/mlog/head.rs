//! Where the next record of a log written straight onto its device goes,
//! in one 16-byte word that appenders take turns on with a compare and
//! swap instead of the log's lock ([`Head`]): a placer preempted between
//! its look and its swap holds nobody up (its swap fails, the others'
//! go through), where a placer preempted holding the lock held every
//! appender behind it.
//!
//! The word says, while it is open: the next record's sequence number (its
//! low 16 bits: at most `RING` records are in flight, so the durable
//! counter gives the rest), where it goes (`end`), the number of the last
//! flush set begun (`fseq`), and the distance from that set's first record
//! to the next one (`bdelta_next`). Closed, the log's state under its lock
//! says all that instead, and appends place their records there.

/// Bits of the word's low half: always set (the word is never 0, so a
/// compare and swap against 0 reads it).
const VALID: u64 = 1 << 63;
/// The word is closed: records are placed under the log's lock.
const CLOSED: u64 = 1 << 62;
const GEN_SHIFT: u32 = 48;
const GEN_MASK: u64 = (1 << 14) - 1;
/// The largest end the word holds (exclusive).
pub(super) const END_LIMIT: u64 = 1 << 48;
const END_MASK: u64 = END_LIMIT - 1;

/// The fields of an open word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Open {
    /// Where the next record goes (position in the data area).
    pub end: u64,
    /// The generation's low 14 bits (an erase changes the word even where
    /// it leaves the sequence numbers and end as they were).
    pub gen_low: u16,
    /// The next record's sequence number, low 16 bits.
    pub seq_low: u16,
    /// The next record's distance from the first record of flush set
    /// `fseq`, should it join that set.
    pub bdelta_next: u16,
    /// The last flush set begun.
    pub fseq: u32,
}

impl Open {
    pub(super) fn pack(self) -> u128 {
        debug_assert!(self.end < END_LIMIT);
        let lo = VALID | ((u64::from(self.gen_low) & GEN_MASK) << GEN_SHIFT) | (self.end & END_MASK);
        let hi = (u64::from(self.seq_low) << 48)
            | (u64::from(self.bdelta_next) << 32)
            | u64::from(self.fseq);
        (u128::from(hi) << 64) | u128::from(lo)
    }

    /// The open word's fields; `None` when it is closed.
    pub(super) fn unpack(w: u128) -> Option<Open> {
        let lo = w as u64;
        let hi = (w >> 64) as u64;
        if lo & CLOSED != 0 {
            return None;
        }
        Some(Open {
            end: lo & END_MASK,
            gen_low: ((lo >> GEN_SHIFT) & GEN_MASK) as u16,
            seq_low: (hi >> 48) as u16,
            bdelta_next: (hi >> 32) as u16,
            fseq: hi as u32,
        })
    }

    /// The full sequence number of the next record, given the durable
    /// counter `d` read after the word: exact while the word is current
    /// (then `d <= seq < d + 2^16`).
    pub(super) fn seq(&self, d: u64) -> u64 {
        d + u64::from(self.seq_low.wrapping_sub(d as u16))
    }
}

/// The low bits of generation `gen` that an open word holds.
pub(super) fn gen_low(gen: u64) -> u16 {
    (gen & GEN_MASK) as u16
}

/// The word closed (its fields kept, for whoever reads it to close it).
pub(super) fn closed(w: u128) -> u128 {
    w | u128::from(CLOSED)
}

/// A word closed from the start (the log's lock says where records go).
pub(super) const CLOSED_WORD: u128 = (VALID | CLOSED) as u128;

/// The 16-byte word, changed only by compare and swap.
#[derive(Debug)]
#[repr(align(16))]
pub(super) struct Head {
    #[cfg(target_arch = "x86_64")]
    word: std::cell::UnsafeCell<u128>,
    #[cfg(not(target_arch = "x86_64"))]
    word: std::sync::Mutex<u128>,
}

// SAFETY: the word is read and written only by `lock cmpxchg16b` (see
// `cas`), an atomic instruction: threads sharing it never race.
#[cfg(target_arch = "x86_64")]
unsafe impl Sync for Head {}

impl Head {
    pub(super) fn new(w: u128) -> Head {
        Head {
            #[cfg(target_arch = "x86_64")]
            word: std::cell::UnsafeCell::new(w),
            #[cfg(not(target_arch = "x86_64"))]
            word: std::sync::Mutex::new(w),
        }
    }

    /// Whether this machine swaps 16 bytes atomically without a lock (on
    /// others the word stays closed and every record is placed under the
    /// log's lock).
    pub(super) fn lock_free() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("cmpxchg16b")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// The word now (a swap that never matches: the word is never 0).
    pub(super) fn load(&self) -> u128 {
        self.swap_if(0, 0)
    }

    /// Replace the word with `new` if it is `old`; the word as it was.
    pub(super) fn swap_if(&self, old: u128, new: u128) -> u128 {
        #[cfg(target_arch = "x86_64")]
        {
            let (mut lo, mut hi) = (old as u64, (old >> 64) as u64);
            // SAFETY: `word` is 16-byte aligned (the struct's alignment)
            // and lives as long as `self`; `lock cmpxchg16b` compares it
            // with rdx:rax and stores rcx:rbx if equal, else loads it into
            // rdx:rax, atomically, sequentially consistent (a locked
            // instruction). The machine has the instruction: a log calls
            // this only where `lock_free` said so (`Mlog::lockfree`).
            // rbx is reserved by the compiler: it is swapped with a
            // scratch register around the instruction, and the operands
            // are in registers named here (one the compiler picked could
            // be rbx itself).
            unsafe {
                std::arch::asm!(
                    "xchg rsi, rbx",
                    "lock cmpxchg16b xmmword ptr [rdi]",
                    "mov rbx, rsi",
                    inout("rsi") new as u64 => _,
                    in("rdi") self.word.get(),
                    inout("rax") lo,
                    inout("rdx") hi,
                    in("rcx") (new >> 64) as u64,
                    options(nostack),
                );
            }
            (u128::from(hi) << 64) | u128::from(lo)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let mut w = self.word.lock().unwrap_or_else(|p| p.into_inner());
            let was = *w;
            if was == old {
                *w = new;
            }
            was
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_word_keeps_its_fields_and_a_closed_one_says_so() {
        let o = Open {
            end: END_LIMIT - 1,
            gen_low: 0x3fff,
            seq_low: 0xfffe,
            bdelta_next: 7,
            fseq: u32::MAX - 1,
        };
        assert_eq!(Open::unpack(o.pack()), Some(o));
        let z = Open {
            end: 0,
            gen_low: 0,
            seq_low: 0,
            bdelta_next: 0,
            fseq: 0,
        };
        assert_eq!(Open::unpack(z.pack()), Some(z));
        assert_ne!(z.pack(), 0);
        assert_eq!(Open::unpack(closed(o.pack())), None);
        assert_eq!(Open::unpack(CLOSED_WORD), None);
    }

    #[test]
    fn the_full_sequence_number_comes_from_the_durable_counter() {
        let o = |seq: u64| Open {
            end: 0,
            gen_low: 0,
            seq_low: seq as u16,
            bdelta_next: 1,
            fseq: 1,
        };
        for (seq, d) in [(0, 0), (5, 2), (65_536 + 3, 65_530), (1 << 40, (1 << 40) - 63)] {
            assert_eq!(o(seq).seq(d), seq, "seq {seq} d {d}");
        }
    }

    #[test]
    fn swaps_from_many_threads_lose_none() {
        if !Head::lock_free() {
            eprintln!("SKIPPED: this CPU has no 16-byte compare and swap");
            return;
        }
        let h = Head::new(Open { end: 0, gen_low: 1, seq_low: 0, bdelta_next: 0, fseq: 1 }.pack());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..20_000 {
                        let mut cur = h.load();
                        loop {
                            let Some(mut o) = Open::unpack(cur) else { panic!("closed") };
                            o.end += 3;
                            o.seq_low = o.seq_low.wrapping_add(1);
                            let was = h.swap_if(cur, o.pack());
                            if was == cur {
                                break;
                            }
                            cur = was;
                        }
                    }
                });
            }
        });
        let o = Open::unpack(h.load()).expect("open");
        assert_eq!(o.end, 3 * 80_000);
        assert_eq!(o.seq_low, (80_000u64 % 65_536) as u16);
        assert_eq!(o.gen_low, 1);
        let cur = h.load();
        assert_eq!(h.swap_if(cur, closed(cur)), cur);
        assert_eq!(Open::unpack(h.load()), None);
    }
}
