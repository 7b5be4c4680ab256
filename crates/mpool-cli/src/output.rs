//! Output options of list-like commands, as LVM's and ZFS's tools have
//! them: `-H` (scripted: no header, tab-separated), `-o FIELDS` (which
//! columns, in which order), `-p` (exact numbers instead of human sizes);
//! and dates.

use crate::fmt::{human, table};
use anyhow::{bail, Result};

/// `-H`, `-o`, `-p`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Scripted mode: no header line, fields separated by one tab.
    #[arg(short = 'H', long = "no-headings")]
    pub no_headings: bool,
    /// Fields to show, comma-separated, in this order (`-o help` lists them).
    #[arg(
        short = 'o',
        long = "output",
        value_delimiter = ',',
        value_name = "FIELDS"
    )]
    pub fields: Vec<String>,
    /// Exact numbers: sizes in bytes rather than with units.
    #[arg(short = 'p', long = "parsable")]
    pub parsable: bool,
}

/// One cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// Text as it is.
    Text(String),
    /// A size in bytes: human units unless `-p`.
    Bytes(u64),
    /// A count.
    Num(u64),
    /// No value (`-`).
    Absent,
}

impl Val {
    fn render(&self, exact: bool) -> String {
        match self {
            Val::Text(s) if s.is_empty() => "-".into(),
            Val::Text(s) => s.clone(),
            Val::Bytes(b) if exact => b.to_string(),
            Val::Bytes(b) => human(*b),
            Val::Num(n) => n.to_string(),
            Val::Absent => "-".into(),
        }
    }
}

impl From<String> for Val {
    fn from(s: String) -> Val {
        Val::Text(s)
    }
}

impl From<&str> for Val {
    fn from(s: &str) -> Val {
        Val::Text(s.to_string())
    }
}

/// Rows of a command with every field it knows (`all`, in their order) and
/// the fields it shows by default.
pub struct Rows<'a> {
    /// Every field name.
    pub all: &'a [&'a str],
    /// The default selection.
    pub default: &'a [&'a str],
    /// One value per field of `all`, per row.
    pub rows: Vec<Vec<Val>>,
}

impl OutputArgs {
    /// The selected field indexes in `all`, or an error naming the fields.
    pub fn select(&self, all: &[&str], default: &[&str]) -> Result<Vec<usize>> {
        let wanted: Vec<&str> = if self.fields.is_empty() {
            default.to_vec()
        } else if self.fields.iter().any(|f| f == "all") {
            all.to_vec()
        } else {
            self.fields.iter().map(String::as_str).collect()
        };
        wanted
            .iter()
            .map(|w| {
                let w = w.trim().to_ascii_lowercase();
                match all.iter().position(|a| *a == w) {
                    Some(i) => Ok(i),
                    None if w == "help" => bail!("fields: {} (or all)", all.join(",")),
                    None => bail!(
                        "unknown field '{w}' for -o; fields: {} (or all)",
                        all.join(",")
                    ),
                }
            })
            .collect()
    }

    /// The rows as text: an aligned table with a header, or with `-H`
    /// tab-separated lines without one. Nothing for no rows.
    pub fn render(&self, r: &Rows<'_>) -> Result<String> {
        let sel = self.select(r.all, r.default)?;
        let rows: Vec<Vec<String>> = r
            .rows
            .iter()
            .map(|row| {
                sel.iter()
                    .map(|&i| row.get(i).unwrap_or(&Val::Absent).render(self.parsable))
                    .collect()
            })
            .collect();
        if self.no_headings {
            return Ok(rows
                .iter()
                .map(|r| r.join("\t"))
                .collect::<Vec<_>>()
                .join("\n"));
        }
        let header: Vec<&str> = sel.iter().map(|&i| r.all[i]).collect();
        Ok(table(&header, rows))
    }

    /// Print the rows (nothing at all for none).
    pub fn print(&self, r: &Rows<'_>) -> Result<()> {
        let text = self.render(r)?;
        if !r.rows.is_empty() {
            println!("{text}");
        }
        Ok(())
    }
}

/// Seconds since the epoch as a UTC date: `YYYY-MM-DD HH:MM:SS UTC`.
pub fn date(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm), from 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Seconds since the epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Rows<'static> {
        Rows {
            all: &["name", "size", "objects", "label"],
            default: &["name", "size"],
            rows: vec![
                vec![
                    "a".into(),
                    Val::Bytes(3 << 29),
                    Val::Num(7),
                    Val::Text(String::new()),
                ],
                vec!["b".into(), Val::Bytes(512), Val::Absent, "x y".into()],
            ],
        }
    }

    #[test]
    fn default_fields_with_a_header_and_units() {
        let t = OutputArgs::default().render(&rows()).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(
            lines[0].contains("NAME") && lines[0].contains("SIZE"),
            "{t}"
        );
        assert!(lines[1].contains("1.5 GiB"), "{t}");
        assert!(!t.contains("OBJECTS"), "{t}");
    }

    #[test]
    fn scripted_exact_and_chosen_fields() {
        let o = OutputArgs {
            no_headings: true,
            fields: vec!["label".into(), "size".into(), "objects".into()],
            parsable: true,
        };
        assert_eq!(o.render(&rows()).unwrap(), "-\t1610612736\t7\nx y\t512\t-");
        let o = OutputArgs {
            fields: vec!["all".into()],
            ..Default::default()
        };
        assert!(o.render(&rows()).unwrap().contains("LABEL"));
    }

    #[test]
    fn unknown_fields_are_refused_with_the_list() {
        let o = OutputArgs {
            fields: vec!["nope".into()],
            ..Default::default()
        };
        let e = o.render(&rows()).unwrap_err().to_string();
        assert!(
            e.contains("unknown field 'nope'") && e.contains("name,size,objects,label"),
            "{e}"
        );
        let o = OutputArgs {
            fields: vec!["help".into()],
            ..Default::default()
        };
        assert!(o
            .render(&rows())
            .unwrap_err()
            .to_string()
            .starts_with("fields: "));
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(date(1_795_975_327), "2026-11-29 18:02:07 UTC");
        assert_eq!(date(4_107_542_399), "2100-02-28 23:59:59 UTC");
    }
}
