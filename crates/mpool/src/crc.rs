//! CRC-32C (Castagnoli, the iSCSI polynomial), the one checksum of every
//! byte mpool stores.
//!
//! Two implementations, chosen once per process by what the CPU has:
//!
//! - On x86-64 with AVX2 and VPCLMULQDQ but without AVX-512 (this
//!   project's machine since session 16, an AMD EPYC): our own ([`wide`]).
//!   It folds 128 bytes per step in four 256-bit registers with
//!   carry-less multiplication, then ends with the `crc32` instruction.
//!   There a 4 KiB block in the caches takes 215-260 ns, against 410-480
//!   with the `crc-fast` crate (whose wide path needs AVX-512: it runs its
//!   128-bit one here) and 265-290 with the `crc32c` crate (the `crc32`
//!   instruction alone); 512 bytes 35-40 ns against 97-111 and 68-76
//!   (`mpool-bench crc`, BENCHMARKS.md, session 21).
//! - Elsewhere: the `crc-fast` crate, which folds with VPCLMULQDQ on
//!   AVX-512 machines (72 ns per 4 KiB block on session 15's machine) and
//!   PCLMULQDQ or the ARM equivalents elsewhere.
//!
//! The values are the standard CRC-32C whichever runs: the tests check
//! both against the `crc32c` crate, an independent implementation.

use crc_fast::{CrcAlgorithm, Digest};

/// CRC-32C of `data`.
#[inline]
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c_append(0, data)
}

/// CRC-32C of the bytes whose CRC-32C is `crc` followed by `data`.
#[inline]
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    if data.is_empty() {
        return crc;
    }
    #[cfg(target_arch = "x86_64")]
    if wide::available() {
        // SAFETY: the CPU has the features `wide::update` is compiled for
        // (checked just now).
        return !unsafe { wide::update(!crc, data) };
    }
    portable_append(crc, data)
}

/// Which implementation [`crc32c`] runs on this CPU (for the benchmarks).
#[cfg(feature = "internals")]
pub fn implementation() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if wide::available() {
        return "mpool's own (AVX2, VPCLMULQDQ)";
    }
    "crc-fast"
}

/// [`crc32c_append`] by the `crc-fast` crate.
fn portable_append(crc: u32, data: &[u8]) -> u32 {
    if crc == 0 {
        // The CRC of nothing is 0: this is the start of the bytes.
        return crc_fast::crc32_iscsi(data);
    }
    // The reflected register after `crc` is `crc` with the final XOR
    // (all ones) undone.
    let mut d = Digest::new_with_init_state(CrcAlgorithm::Crc32Iscsi, u64::from(!crc));
    d.update(data);
    // The digest's value is 32 bits wide.
    (d.finalize() & 0xffff_ffff) as u32
}

/// CRC-32C by folding with 256-bit carry-less multiplication (AVX2 and
/// VPCLMULQDQ), for x86-64 CPUs without AVX-512.
///
/// The bytes are taken 16 at a time as polynomials over GF(2) in the
/// CRC's bit order (reflected: the first bit of the first byte is the
/// highest power). A 16-byte block `A` that stands `F` bytes before a
/// later block `B` contributes `A(x) * x^(8F)` to the message, which is
/// congruent modulo the CRC polynomial `P` to its first eight bytes (the
/// higher powers) times `x^(8F+64) mod P` plus its last eight times
/// `x^(8F) mod P`: a polynomial of fewer than 128 bits, added (XOR) into
/// `B` in place of `A` ("folding" `A` forward). Eight
/// blocks are folded at once, 128 bytes forward per step, in four 256-bit
/// registers of two blocks each. The eight are then folded into the
/// last, the remaining whole blocks one by one, and the 16 bytes left,
/// which have the same CRC as everything before them, go through the
/// `crc32` instruction with the bytes after them.
///
/// Reflected operands make a carry-less product one bit short of the
/// 128-bit block it belongs in; each constant carries the missing factor
/// `x` by being `x^(e-1) mod P` instead of `x^e mod P`.
#[cfg(target_arch = "x86_64")]
pub(crate) mod wide {
    use std::arch::x86_64::*;
    use std::sync::atomic::{AtomicU8, Ordering};

    /// The CRC-32C polynomial, without its `x^32` term.
    const POLY: u32 = 0x1EDC_6F41;

    /// `x^e mod P`.
    const fn xpow_mod(e: u32) -> u32 {
        let mut r: u32 = 1;
        let mut i = 0;
        while i < e {
            let top = r & 0x8000_0000 != 0;
            r <<= 1;
            if top {
                r ^= POLY;
            }
            i += 1;
        }
        r
    }

    /// The folding constant for exponent `e`: `x^(e-1) mod P` reflected
    /// into a 64-bit lane (the coefficient of `x^d` at bit `63 - d`).
    const fn k(e: u32) -> i64 {
        ((xpow_mod(e - 1).reverse_bits() as u64) << 32) as i64
    }

    /// The constants that fold a block `f` bytes forward, as the two
    /// 64-bit lanes of one 128-bit half: the block's first eight bytes
    /// (the higher powers) are multiplied by the low lane.
    const fn pair(f: u32) -> (i64, i64) {
        (k(8 * f + 64), k(8 * f))
    }

    const F128: (i64, i64) = pair(128);
    const F96: (i64, i64) = pair(96);
    const F64: (i64, i64) = pair(64);
    const F32: (i64, i64) = pair(32);
    const F16: (i64, i64) = pair(16);

    /// Inputs shorter than this go through the `crc32` instruction alone.
    const WIDE_MIN: usize = 256;

    /// 0: not known yet; 1: the CPU has what `update` needs; 2: it does
    /// not (or has AVX-512, where `crc-fast`'s own wide path runs).
    static STATE: AtomicU8 = AtomicU8::new(0);

    /// Whether [`update`] may run on this CPU (and is the one to use).
    #[inline]
    pub(crate) fn available() -> bool {
        match STATE.load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            _ => {
                let yes = is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("vpclmulqdq")
                    && is_x86_feature_detected!("pclmulqdq")
                    && is_x86_feature_detected!("sse4.2")
                    && !(is_x86_feature_detected!("avx512f")
                        && is_x86_feature_detected!("avx512vl"));
                STATE.store(if yes { 1 } else { 2 }, Ordering::Relaxed);
                yes
            }
        }
    }

    /// Whether the CPU could run [`update`] at all (for the tests, which
    /// check it also where it is not the one chosen).
    #[cfg(test)]
    pub(crate) fn runnable() -> bool {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("vpclmulqdq")
            && is_x86_feature_detected!("pclmulqdq")
            && is_x86_feature_detected!("sse4.2")
    }

    /// Fold both blocks of `x` forward by the distance of `k` and add
    /// `into`.
    #[inline]
    #[target_feature(enable = "avx2,vpclmulqdq")]
    fn fold256(x: __m256i, k: __m256i, into: __m256i) -> __m256i {
        let a = _mm256_clmulepi64_epi128::<0x00>(x, k);
        let b = _mm256_clmulepi64_epi128::<0x11>(x, k);
        _mm256_xor_si256(_mm256_xor_si256(a, b), into)
    }

    /// Fold block `x` forward by the distance of `k` and add `into`.
    #[inline]
    #[target_feature(enable = "pclmulqdq,sse2")]
    fn fold128(x: __m128i, k: __m128i, into: __m128i) -> __m128i {
        let a = _mm_clmulepi64_si128::<0x00>(x, k);
        let b = _mm_clmulepi64_si128::<0x11>(x, k);
        _mm_xor_si128(_mm_xor_si128(a, b), into)
    }

    /// Both halves of a 256-bit register hold the pair `p`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn k256(p: (i64, i64)) -> __m256i {
        _mm256_set_epi64x(p.1, p.0, p.1, p.0)
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn k128(p: (i64, i64)) -> __m128i {
        _mm_set_epi64x(p.1, p.0)
    }

    /// The `crc32` instruction over `data` from register `crc`.
    #[inline]
    #[target_feature(enable = "sse4.2")]
    fn narrow(mut crc: u32, data: &[u8]) -> u32 {
        let mut words = data.chunks_exact(8);
        let mut c = u64::from(crc);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            c = _mm_crc32_u64(c, u64::from_le_bytes(b));
        }
        crc = c as u32;
        for &b in words.remainder() {
            crc = _mm_crc32_u8(crc, b);
        }
        crc
    }

    /// 32 bytes of `d` from `at` (`at + 32 <= d.len()`).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn load256(d: &[u8], at: usize) -> __m256i {
        let s = &d[at..at + 32];
        // SAFETY: `s` is 32 readable bytes; the load has no alignment
        // requirement.
        unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
    }

    /// 16 bytes of `d` from `at` (`at + 16 <= d.len()`).
    #[inline]
    #[target_feature(enable = "sse2")]
    fn load128(d: &[u8], at: usize) -> __m128i {
        let s = &d[at..at + 16];
        // SAFETY: `s` is 16 readable bytes; the load has no alignment
        // requirement.
        unsafe { _mm_loadu_si128(s.as_ptr().cast()) }
    }

    /// The CRC register (reflected, no final XOR) after `data`, from the
    /// register `crc`.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX2, VPCLMULQDQ, PCLMULQDQ and SSE4.2
    /// ([`available`] or [`runnable`] said so).
    #[target_feature(enable = "avx2,vpclmulqdq,pclmulqdq,sse4.2")]
    pub(crate) unsafe fn update(crc: u32, data: &[u8]) -> u32 {
        if data.len() < WIDE_MIN {
            return narrow(crc, data);
        }
        // The register enters as the first four bytes' XOR.
        let init = _mm256_set_epi32(0, 0, 0, 0, 0, 0, 0, crc as i32);
        let mut x0 = _mm256_xor_si256(load256(data, 0), init);
        let mut x1 = load256(data, 32);
        let mut x2 = load256(data, 64);
        let mut x3 = load256(data, 96);
        let k = k256(F128);
        let mut at = 128;
        while at + 128 <= data.len() {
            x0 = fold256(x0, k, load256(data, at));
            x1 = fold256(x1, k, load256(data, at + 32));
            x2 = fold256(x2, k, load256(data, at + 64));
            x3 = fold256(x3, k, load256(data, at + 96));
            at += 128;
        }
        // The eight blocks into the last two, then into the last one.
        let y = fold256(x0, k256(F96), x3);
        let y = fold256(x1, k256(F64), y);
        let y = fold256(x2, k256(F32), y);
        let k16 = k128(F16);
        let mut a = fold128(
            _mm256_castsi256_si128(y),
            k16,
            _mm256_extracti128_si256::<1>(y),
        );
        while at + 16 <= data.len() {
            a = fold128(a, k16, load128(data, at));
            at += 16;
        }
        let mut rest = [0u8; 16];
        // SAFETY: `rest` is 16 writable bytes; the store has no alignment
        // requirement.
        unsafe { _mm_storeu_si128(rest.as_mut_ptr().cast(), a) };
        // The 16 bytes have the CRC of everything folded into them (from
        // a zero register: the start was added into the first block).
        narrow(narrow(0, &rest), &data[at..])
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// `x^e mod P` the slow way: the remainder of the polynomial
        /// division, bit by bit.
        fn xpow_slow(e: u32) -> u32 {
            // x^e as a bit vector, reduced from the top.
            let mut v = vec![false; (e as usize + 1).max(33)];
            v[e as usize] = true;
            let full: u64 = (1 << 32) | u64::from(POLY);
            for d in (32..=e as usize).rev() {
                if v[d] {
                    for j in 0..=32 {
                        if full >> j & 1 == 1 {
                            v[d - 32 + j] ^= true;
                        }
                    }
                }
            }
            (0..32).fold(0u32, |r, j| r | (u32::from(v[j]) << j))
        }

        #[test]
        fn the_folding_constants_are_powers_of_x_modulo_the_polynomial() {
            for e in [0, 1, 31, 32, 33, 64, 127, 128, 191, 575, 1087] {
                assert_eq!(xpow_mod(e), xpow_slow(e), "x^{e}");
            }
            assert_eq!(F16.0, k(16 * 8 + 64));
        }
    }
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

    /// Lengths around every boundary of the folding (16-byte blocks,
    /// 128-byte steps, the 256-byte start of the wide path).
    fn lengths() -> Vec<usize> {
        let mut v: Vec<usize> = (0..=600).collect();
        v.extend([1000, 4095, 4096, 4097, 65536, 65536 + 17, 1 << 20]);
        v
    }

    #[test]
    fn matches_the_standard_crc32c_at_every_length_and_split() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
        for n in lengths() {
            let d = bytes(n + 3, n as u64 + 7);
            // At each alignment of the start.
            for off in [0, 1, 3] {
                let d = &d[off..off + n];
                let want = ::crc32c::crc32c(d);
                assert_eq!(crc32c(d), want, "length {n} offset {off}");
                assert_eq!(portable_append(0, d), want, "crc-fast, length {n}");
                for split in [0, 1, n / 3, n / 2, n.saturating_sub(1), n] {
                    let (a, b) = d.split_at(split.min(n));
                    assert_eq!(
                        crc32c_append(crc32c(a), b),
                        want,
                        "length {n} split {split}"
                    );
                    assert_eq!(
                        portable_append(portable_append(0, a), b),
                        want,
                        "crc-fast, length {n} split {split}"
                    );
                }
            }
        }
    }

    /// The wide path gives the standard values wherever the CPU can run
    /// it, whether or not it is the one chosen here.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_wide_path_matches_the_standard_crc32c() {
        if !wide::runnable() {
            eprintln!("SKIP: this CPU lacks AVX2 or VPCLMULQDQ (the wide CRC path)");
            return;
        }
        for n in lengths() {
            let d = bytes(n, n as u64 + 11);
            for init in [0u32, 0x1234_5678, u32::MAX] {
                let want = ::crc32c::crc32c_append(init, &d);
                // SAFETY: `runnable` said the CPU has the features.
                let got = !unsafe { wide::update(!init, &d) };
                assert_eq!(got, want, "length {n} init {init:#x}");
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
        assert_eq!(c, ::crc32c::crc32c(&d));
    }
}
