//! Byte sizes as people type them, for the command line and the benchmarks
//! (which use this crate's library for it): one parser, built on the
//! `bytesize` crate. The mpool library itself takes sizes as numbers.

/// Parse a size: `4096`, `64KiB`, `512M`, `1G`, `1.5GiB`, `10MB`.
///
/// Units follow the `bytesize` crate: `KiB`/`MiB`/`GiB`/`TiB` (also `Ki`,
/// `Mi`, …) are binary, `KB`/`MB`/`GB`/`TB` decimal. A bare `K`, `M`, `G`,
/// `T`, `P` or `E` is read as binary (`512M` is 512 MiB), as mpool has
/// always read it; `bytesize` alone would read it as decimal. Case and a
/// space before the unit do not matter. Refuses zero, a fraction of a byte
/// (`1.5`) and sizes that do not fit in 64 bits.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("bad size '{s}' (examples: 4096, 64KiB, 512M, 1G, 1GiB, 10MB)");
    let t = s.trim();
    let binary = t
        .strip_suffix(|c: char| "KMGTPEkmgtpe".contains(c))
        .filter(|num| num.ends_with(|c: char| c.is_ascii_digit() || c == '.' || c == ' '));
    let v = match binary {
        Some(_) => format!("{t}iB").parse::<bytesize::ByteSize>(),
        None => t.parse::<bytesize::ByteSize>(),
    }
    .map_err(|_| bad())?
    .as_u64();
    // bytesize saturates on overflow.
    if v == 0 || v == u64::MAX {
        return Err(bad());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").ok(), Some(4096));
        assert_eq!(parse_size("64KiB").ok(), Some(64 << 10));
        assert_eq!(parse_size("64K").ok(), Some(64 << 10));
        assert_eq!(parse_size("512m").ok(), Some(512 << 20));
        assert_eq!(parse_size("1G").ok(), Some(1 << 30));
        assert_eq!(parse_size("1 G").ok(), Some(1 << 30));
        assert_eq!(parse_size("1.5GiB").ok(), Some(3 << 29));
        assert_eq!(parse_size("2TiB").ok(), Some(2 << 40));
        assert_eq!(parse_size("10MB").ok(), Some(10_000_000));
        assert_eq!(parse_size("2 GB").ok(), Some(2_000_000_000));
        assert_eq!(parse_size(" 1MiB ").ok(), Some(1 << 20));
        for bad in [
            "",
            "x",
            "abc",
            "big",
            "0",
            "-1",
            "1.5",
            "12XB",
            "M",
            "99999999999T",
            "99999999999EB",
        ] {
            let e = parse_size(bad).err().map(|e| e.to_string());
            assert!(
                e.as_deref()
                    .is_some_and(|e| e.contains(&format!("bad size '{bad}'"))),
                "{bad}: {e:?}"
            );
        }
    }
}
