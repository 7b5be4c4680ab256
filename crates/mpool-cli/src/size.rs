//! Byte sizes as people type them, for the command line and the benchmarks
//! (which use this crate's library for it): one parser. The mpool library
//! itself takes sizes as numbers.

/// Binary units, by the letter they start with (powers of 1024).
const UNITS: [(char, u32); 6] = [
    ('K', 10),
    ('M', 20),
    ('G', 30),
    ('T', 40),
    ('P', 50),
    ('E', 60),
];

/// Parse a size: `4096`, `64KiB`, `64K`, `512M`, `1G`, `1.5GiB`.
///
/// Accepted: plain bytes (`4096`, `4096B`) and binary units, powers of
/// 1024: `K`/`KiB`, `M`/`MiB`, `G`/`GiB`, `T`/`TiB`, `P`/`PiB`, `E`/`EiB`
/// (case-insensitive, a space before the unit allowed). A fraction is
/// accepted when it gives whole bytes (`1.5GiB`, not `1.5` or `0.1K`).
///
/// Refused: decimal-unit suffixes (`KB`, `MB`, `GB`, `TB`, `PB`, `EB`),
/// which some tools read as powers of 1000 and others as powers of 1024:
/// the message says what to write instead. Also refused: zero, and sizes
/// that do not fit in 64 bits (never clamped).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("bad size '{s}' (examples: 4096, 64KiB, 512M, 1G, 1GiB)");
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim_start();
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || int.len() + frac.len() > 30
    {
        return Err(bad());
    }
    let u = unit.to_ascii_uppercase();
    let mut chars = u.chars();
    let shift = match chars.next() {
        None => 0,
        Some('B') if u.len() == 1 => 0,
        Some(c) => {
            let Some(&(_, shift)) = UNITS.iter().find(|(l, _)| *l == c) else {
                return Err(bad());
            };
            match chars.as_str() {
                "" | "I" | "IB" => shift,
                "B" => return Err(ambiguous(s, int, frac, c, shift)),
                _ => return Err(bad()),
            }
        }
    };
    let too_big = || format!("bad size '{s}': more than {} bytes (16 EiB)", u64::MAX);
    let v = exact(int, frac, 1u128 << shift)
        .ok_or_else(|| format!("bad size '{s}': a size is a whole number of bytes ({s} is not)"))?;
    if v == 0 {
        return Err(bad());
    }
    u64::try_from(v).map_err(|_| too_big())
}

/// `int.frac * mult`, when it is a whole number (and fits in u128).
fn exact(int: &str, frac: &str, mult: u128) -> Option<u128> {
    let digits: u128 = format!("{int}{frac}").parse().ok()?;
    let scale = 10u128.checked_pow(u32::try_from(frac.len()).ok()?)?;
    let v = digits.checked_mul(mult)?;
    (v % scale == 0).then(|| v / scale)
}

/// The message refusing a decimal-unit suffix such as `4GB`.
fn ambiguous(s: &str, int: &str, frac: &str, letter: char, shift: u32) -> String {
    let num = if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    };
    let mut alts = Vec::new();
    if let Some(b) = exact(int, frac, 1u128 << shift).filter(|&b| b <= u128::from(u64::MAX)) {
        alts.push(format!("{num}{letter}iB ({b} bytes)"));
    }
    let pow = 3 * (shift / 10);
    if let Some(d) = exact(int, frac, 10u128.pow(pow)).filter(|&d| d <= u128::from(u64::MAX)) {
        alts.push(d.to_string());
    }
    let alts = if alts.is_empty() {
        "a size of at most 16EiB".to_string()
    } else {
        alts.join(" or ")
    };
    format!(
        "'{}' is ambiguous: write {alts} (K, M, G, T, P and E are powers of 1024; \
         for powers of 1000 write the number of bytes)",
        s.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").ok(), Some(4096));
        assert_eq!(parse_size("4096B").ok(), Some(4096));
        assert_eq!(parse_size("64KiB").ok(), Some(64 << 10));
        assert_eq!(parse_size("64K").ok(), Some(64 << 10));
        assert_eq!(parse_size("64ki").ok(), Some(64 << 10));
        assert_eq!(parse_size("512m").ok(), Some(512 << 20));
        assert_eq!(parse_size("1G").ok(), Some(1 << 30));
        assert_eq!(parse_size("1 G").ok(), Some(1 << 30));
        assert_eq!(parse_size("1 gib").ok(), Some(1 << 30));
        assert_eq!(parse_size("1.5GiB").ok(), Some(3 << 29));
        assert_eq!(parse_size("2TiB").ok(), Some(2 << 40));
        assert_eq!(parse_size("3P").ok(), Some(3 << 50));
        assert_eq!(parse_size("15EiB").ok(), Some(15 << 60));
        assert_eq!(parse_size(" 1MiB ").ok(), Some(1 << 20));
        assert_eq!(parse_size("18446744073709551615").ok(), Some(u64::MAX));
        for bad in [
            "",
            "x",
            "abc",
            "big",
            "0",
            "0K",
            "-1",
            "1.5",
            "0.1K",
            ".",
            "1..2K",
            "12XB",
            "M",
            "1KIBB",
            "99999999999T",
        ] {
            let e = parse_size(bad).err();
            assert!(
                e.as_deref()
                    .is_some_and(|e| e.contains(&format!("bad size '{bad}'"))),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn no_clamping() {
        for big in [
            "18446744073709551616",
            "16EiB",
            "16E",
            "99999999999999999999999",
        ] {
            let e = parse_size(big).err();
            assert!(
                e.as_deref().is_some_and(|e| e.contains("more than")),
                "{big}: {e:?}"
            );
        }
    }

    #[test]
    fn decimal_units_are_refused_with_what_to_write() {
        assert_eq!(
            parse_size("4GB").err().as_deref(),
            Some(
                "'4GB' is ambiguous: write 4GiB (4294967296 bytes) or 4000000000 \
                 (K, M, G, T, P and E are powers of 1024; for powers of 1000 write the number of bytes)"
            )
        );
        let e = parse_size("10 mb").unwrap_err();
        assert!(
            e.contains("write 10MiB (10485760 bytes) or 10000000"),
            "{e}"
        );
        let e = parse_size("1.5kB").unwrap_err();
        assert!(e.contains("write 1.5KiB (1536 bytes) or 1500"), "{e}");
        let e = parse_size("18EB").unwrap_err();
        assert!(e.contains("ambiguous: write 18000000000000000000 ("), "{e}");
        for s in ["1KB", "1MB", "1TB", "1PB", "1EB"] {
            assert!(parse_size(s).unwrap_err().contains("ambiguous"), "{s}");
        }
    }
}
