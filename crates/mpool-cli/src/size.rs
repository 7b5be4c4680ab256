//! Byte sizes as people type them, for the command line and the benchmarks
//! (which use this crate's library for it): one parser, on the `parse-size`
//! crate (exact integer arithmetic to the full 64 bits), with mpool's rules
//! on top. The mpool library itself takes sizes as numbers.

use parse_size::Config;

/// Parse a size: `4096`, `64KiB`, `64K`, `512M`, `1G`, `1.5GiB`.
///
/// Accepted: plain bytes (`4096`, `4096B`) and binary units, powers of
/// 1024: `K`/`KiB`, `M`/`MiB`, `G`/`GiB`, `T`/`TiB`, `P`/`PiB`, `E`/`EiB`
/// (case-insensitive, a space before the unit allowed; `_` may group
/// digits; no exponents). A fractional size
/// is rounded to the nearest byte (`1.5GiB`); a fraction of a byte alone
/// (`1.5`, `1.5B`) is refused.
///
/// Refused: decimal-unit suffixes (`KB`, `MB`, `GB`, `TB`, `PB`, `EB`),
/// which some tools read as powers of 1000 and others as powers of 1024:
/// the message says what to write instead. Also refused: zero, negative
/// sizes, and sizes that do not fit in 64 bits (never clamped).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("bad size '{s}' (examples: 4096, 64KiB, 512M, 1G, 1GiB)");
    let t = s.trim();
    // The grammar is checked here, not left to parse-size, which also takes
    // exponents (`1e3`) and spaces inside numbers: a number (digits, `_`
    // between them, one optional fraction), optional spaces, a unit.
    let at = t
        .find(|c: char| !(c.is_ascii_digit() || c == '_' || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(at);
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !int.starts_with(|c: char| c.is_ascii_digit())
        || !digits(int)
        || !digits(frac)
        || (num.contains('.') && frac.is_empty())
    {
        return Err(bad());
    }
    let unit = unit.trim_start().to_ascii_uppercase();
    match unit.as_bytes() {
        [] | [b'B'] if num.contains('.') => return Err(bad()),
        [] | [b'B'] => {}
        [letter @ (b'K' | b'M' | b'G' | b'T' | b'P' | b'E'), b'B'] => {
            return Err(ambiguous(t, num, char::from(*letter)));
        }
        [b'K' | b'M' | b'G' | b'T' | b'P' | b'E']
        | [b'K' | b'M' | b'G' | b'T' | b'P' | b'E', b'I']
        | [b'K' | b'M' | b'G' | b'T' | b'P' | b'E', b'I', b'B'] => {}
        _ => return Err(bad()),
    }
    let v = Config::new()
        .with_binary()
        .parse_size(t)
        .map_err(|e| match e {
            parse_size::Error::PosOverflow => {
                format!("bad size '{s}': more than {} bytes (16 EiB)", u64::MAX)
            }
            _ => bad(),
        })?;
    if v == 0 {
        return Err(bad());
    }
    Ok(v)
}

/// The message refusing a decimal-unit suffix such as `4GB`: the two
/// sizes it may have meant, and how to write each.
fn ambiguous(s: &str, num: &str, letter: char) -> String {
    let mut alts = Vec::new();
    if let Ok(b) = Config::new()
        .with_binary()
        .parse_size(format!("{num}{letter}iB"))
    {
        alts.push(format!("{num}{letter}iB ({b} bytes)"));
    }
    if let Ok(d) = Config::new()
        .with_decimal()
        .parse_size(format!("{num}{letter}B"))
    {
        alts.push(d.to_string());
    }
    let alts = if alts.is_empty() {
        "a size of at most 16EiB".to_string()
    } else {
        alts.join(" or ")
    };
    format!(
        "'{s}' is ambiguous: write {alts} (K, M, G, T, P and E are powers of 1024; \
         for powers of 1000 write the number of bytes)"
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
        assert_eq!(parse_size("1_048_576").ok(), Some(1 << 20));
        assert_eq!(parse_size("1E").ok(), Some(1 << 60));
        // A fractional size rounds to the nearest byte.
        assert_eq!(parse_size("0.1K").ok(), Some(102));
        for bad in [
            "",
            "x",
            "abc",
            "big",
            "0",
            "0K",
            "-1",
            "1.5",
            ".",
            "1..2K",
            "12XB",
            "M",
            "1KIBB",
            "1.5B",
            "1e3",
            "1E3",
            "15e-1",
            "2.5e0B",
            "4e0GB",
            "1 0",
            "1.",
            "_1",
            "1.5.2K",
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
