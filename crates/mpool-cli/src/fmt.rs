//! Output helpers: human sizes, tables, JSON.

use comfy_table::{presets::NOTHING, Cell, CellAlignment, Table};

/// Bytes as text with binary units: `512 B`, `64.0 MiB`, `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// A plain, aligned table with a header row; numeric-looking columns right-aligned.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header(header.iter().map(|h| Cell::new(h.to_uppercase())));
    let numeric: Vec<bool> = (0..header.len())
        .map(|i| {
            !rows.is_empty()
                && rows.iter().all(|r| {
                    r.get(i).is_some_and(|c| {
                        c.chars().next().is_some_and(|ch| ch.is_ascii_digit()) || c == "-"
                    })
                })
        })
        .collect();
    for r in rows {
        t.add_row(r.into_iter().enumerate().map(|(i, c)| {
            let cell = Cell::new(c);
            if numeric.get(i).copied().unwrap_or(false) {
                cell.set_alignment(CellAlignment::Right)
            } else {
                cell
            }
        }));
    }
    let s = t.to_string();
    s.lines().map(str::trim_end).collect::<Vec<_>>().join("\n")
}

/// Print a value as pretty JSON.
pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Parse a uid: a number or a user name, looked up through the system's
/// user database (`getpwnam_r`, so NSS sources such as LDAP or sssd count).
pub fn parse_uid(s: &str) -> anyhow::Result<u32> {
    lookup(s, "user", |name| {
        nix::unistd::User::from_name(name).map(|u| u.map(|u| u.uid.as_raw()))
    })
}

/// Parse a gid: a number or a group name, looked up through the system's
/// group database (`getgrnam_r`).
pub fn parse_gid(s: &str) -> anyhow::Result<u32> {
    lookup(s, "group", |name| {
        nix::unistd::Group::from_name(name).map(|g| g.map(|g| g.gid.as_raw()))
    })
}

fn lookup(
    s: &str,
    what: &str,
    by_name: impl FnOnce(&str) -> nix::Result<Option<u32>>,
) -> anyhow::Result<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return Ok(n);
    }
    match by_name(s) {
        Ok(Some(id)) => Ok(id),
        Ok(None) => anyhow::bail!("unknown {what} '{s}' (give a {what} name or a number)"),
        Err(e) => anyhow::bail!("looking up {what} '{s}': {e}"),
    }
}

/// What a SIZE argument takes, shown after the help of the commands that
/// have one.
pub const SIZES: &str = "SIZE: a number of bytes (4096, 4096B) or a number with a binary unit, \
a power of 1024: K or KiB, M or MiB, G or GiB, T or TiB, P or PiB, E or EiB (64K, 512MiB, 1G, \
1.5GiB; case-insensitive, a space before the unit allowed; a fraction only when it gives whole \
bytes). KB, MB, GB, TB, PB and EB are refused as ambiguous: write 4GiB, or 4000000000 for \
powers of 1000.";

/// A size argument, parsed by [`mpool_cli::size::parse_size`].
pub fn size_arg(s: &str) -> Result<u64, String> {
    mpool_cli::size::parse_size(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1024), "1.0 KiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }

    #[test]
    fn ids() {
        assert_eq!(parse_uid("0").unwrap(), 0);
        assert_eq!(parse_uid("root").unwrap(), 0);
        assert!(parse_uid("no-such-user-xyz").is_err());
        assert_eq!(parse_gid("0").unwrap(), 0);
        assert_eq!(parse_gid("root").unwrap(), 0);
        assert!(parse_gid("no-such-group-xyz").is_err());
        assert!(parse_uid("nul\0name").is_err());
    }
}
