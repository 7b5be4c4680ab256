//! Result tables: aligned text for people, JSON (`--json`) for tools.
//!
//! Every row compares an mpool measurement with fio's on the same file, block
//! size and queue depth; the `mpool/fio` column is the ratio that matters.

use serde_json::{json, Value};

/// One measurement of one side (mpool or fio).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Side {
    /// I/Os per second.
    pub iops: f64,
    /// Bytes per second.
    pub bw_bytes: f64,
    /// Median latency in nanoseconds.
    pub p50_ns: f64,
    /// 99th percentile latency in nanoseconds.
    pub p99_ns: f64,
}

/// One row: a case on one engine, mpool beside fio.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Workload case, e.g. `randread 4k qd32`.
    pub case: String,
    /// mpool engine (`sync`, `uring`).
    pub engine: String,
    /// The fio engine it is compared with.
    pub fio_engine: String,
    /// What one latency sample is: `io` or `batch of 32`.
    pub lat_unit: String,
    /// mpool's numbers.
    pub mpool: Side,
    /// fio's numbers, if fio ran.
    pub fio: Option<Side>,
}

impl Row {
    /// mpool IOPS over fio IOPS.
    pub fn ratio(&self) -> Option<f64> {
        self.fio
            .filter(|f| f.iops > 0.0)
            .map(|f| self.mpool.iops / f.iops)
    }
}

/// A titled table of rows with notes.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Title line.
    pub title: String,
    /// Facts about the run (file, filesystem, kernel, ...).
    pub context: Vec<(String, String)>,
    /// The rows.
    pub rows: Vec<Row>,
}

fn us(ns: f64) -> String {
    if ns <= 0.0 {
        "-".into()
    } else if ns < 10_000.0 {
        format!("{:.1}", ns / 1000.0)
    } else {
        format!("{:.0}", ns / 1000.0)
    }
}

fn iops(v: f64) -> String {
    if v >= 100_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 10_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

fn mib_s(v: f64) -> String {
    format!("{:.0}", v / (1024.0 * 1024.0))
}

/// Render a text table with right-aligned columns (except the first two).
pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let width = w.get(i).copied().unwrap_or(0);
            if i > 0 {
                s.push_str("  ");
            }
            if i < 2 {
                s.push_str(&format!("{c:<width$}"));
            } else {
                s.push_str(&format!("{c:>width$}"));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    out.push('\n');
    out.push_str(&line(w.iter().map(|&n| "-".repeat(n)).collect()));
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.clone()));
        out.push('\n');
    }
    out
}

impl Report {
    /// The human-readable table.
    pub fn text(&self) -> String {
        let header = [
            "case",
            "engine",
            "mpool IOPS",
            "fio IOPS",
            "mpool/fio",
            "mpool MiB/s",
            "fio MiB/s",
            "mpool p50 us",
            "mpool p99 us",
            "fio p50 us",
            "fio p99 us",
            "fio engine",
            "mpool lat per",
        ];
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                let f = r.fio.unwrap_or_default();
                let has = r.fio.is_some();
                let opt = |s: String| if has { s } else { "-".into() };
                vec![
                    r.case.clone(),
                    r.engine.clone(),
                    iops(r.mpool.iops),
                    opt(iops(f.iops)),
                    r.ratio().map_or("-".into(), |x| format!("{x:.2}")),
                    mib_s(r.mpool.bw_bytes),
                    opt(mib_s(f.bw_bytes)),
                    us(r.mpool.p50_ns),
                    us(r.mpool.p99_ns),
                    opt(us(f.p50_ns)),
                    opt(us(f.p99_ns)),
                    r.fio_engine.clone(),
                    r.lat_unit.clone(),
                ]
            })
            .collect();
        let mut out = format!("{}\n", self.title);
        for (k, v) in &self.context {
            out.push_str(&format!("  {k}: {v}\n"));
        }
        out.push('\n');
        out.push_str(&render_table(&header, &rows));
        out
    }

    /// The machine-readable form.
    pub fn json(&self) -> Value {
        let side = |s: &Side| json!({ "iops": s.iops, "bw_bytes": s.bw_bytes, "p50_ns": s.p50_ns, "p99_ns": s.p99_ns });
        let ctx: serde_json::Map<String, Value> = self
            .context
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({
            "title": self.title,
            "context": ctx,
            "rows": self.rows.iter().map(|r| json!({
                "case": r.case,
                "engine": r.engine,
                "fio_engine": r.fio_engine,
                "lat_unit": r.lat_unit,
                "mpool": side(&r.mpool),
                "fio": r.fio.as_ref().map(side),
                "ratio": r.ratio(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// A titled table of any columns, with its JSON form and notes: the pool
/// workloads (mlog, mblock, churn, scale) report through this.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Title line.
    pub title: String,
    /// Facts about the run.
    pub context: Vec<(String, String)>,
    /// Column names.
    pub header: Vec<String>,
    /// Rows of cells, as printed.
    pub rows: Vec<Vec<String>>,
    /// The same rows as JSON objects (raw numbers).
    pub json_rows: Vec<Value>,
    /// Lines printed under the table (targets met or missed, breakdowns).
    pub notes: Vec<String>,
}

impl Table {
    /// The human-readable table.
    pub fn text(&self) -> String {
        let mut out = format!("{}\n", self.title);
        for (k, v) in &self.context {
            out.push_str(&format!("  {k}: {v}\n"));
        }
        out.push('\n');
        let h: Vec<&str> = self.header.iter().map(String::as_str).collect();
        out.push_str(&render_table(&h, &self.rows));
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                out.push_str(&format!("{n}\n"));
            }
        }
        out
    }

    /// The machine-readable form.
    pub fn json(&self) -> Value {
        let ctx: serde_json::Map<String, Value> = self
            .context
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({
            "title": self.title,
            "context": ctx,
            "rows": self.json_rows,
            "notes": self.notes,
        })
    }
}

/// Format IOPS or ops/s compactly (`61.8k`).
pub fn fmt_rate(v: f64) -> String {
    iops(v)
}

/// Format nanoseconds as microseconds.
pub fn fmt_us(ns: f64) -> String {
    us(ns)
}

/// Format a ratio, or `-`.
pub fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |x| format!("{x:.2}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_json() {
        let rep = Report {
            title: "t".into(),
            context: vec![("file".into(), "/x".into())],
            rows: vec![Row {
                case: "randread 4k qd1".into(),
                engine: "uring".into(),
                fio_engine: "io_uring".into(),
                lat_unit: "io".into(),
                mpool: Side {
                    iops: 900.0,
                    bw_bytes: 0.0,
                    p50_ns: 1000.0,
                    p99_ns: 20000.0,
                },
                fio: Some(Side {
                    iops: 1000.0,
                    bw_bytes: 0.0,
                    p50_ns: 900.0,
                    p99_ns: 19000.0,
                }),
            }],
        };
        let t = rep.text();
        assert!(t.contains("0.90"), "{t}");
        assert!(t.contains("mpool/fio"));
        let j = rep.json();
        assert_eq!(j["rows"][0]["ratio"], json!(0.9));
        assert_eq!(j["context"]["file"], json!("/x"));
        let mut no_fio = rep.rows[0].clone();
        no_fio.fio = None;
        assert_eq!(no_fio.ratio(), None);
    }
}
