//! Running fio side by side: the same file, block size and queue depth as
//! the mpool workload, in the same run, so results are reported as ratios.
//!
//! fio is found on `PATH`; this code never installs anything.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where fio lives, or an error telling how to install it.
pub fn find_fio() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let cand = dir.join("fio");
        if is_executable(&cand) {
            return Ok(cand);
        }
    }
    bail!(
        "fio not found: install it with `apt-get install fio` (Debian/Ubuntu) or `dnf install fio`"
    )
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// fio's I/O engines we compare against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FioEngine {
    /// io_uring, the counterpart of mpool's uring engine.
    IoUring,
    /// pread/pwrite, the counterpart of mpool's sync engine.
    Psync,
    /// read/write with lseek (O_SYNC/fdatasync workloads of later issues).
    #[allow(dead_code)]
    Sync,
}

impl FioEngine {
    /// The name fio uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::IoUring => "io_uring",
            Self::Psync => "psync",
            Self::Sync => "sync",
        }
    }
}

/// How long a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Run for this many seconds (time_based).
    Seconds(u64),
    /// Transfer this many bytes per job (used by later workloads).
    #[allow(dead_code)]
    Bytes(u64),
}

/// One fio job; the fields map one to one to fio options.
#[derive(Debug, Clone)]
pub struct FioJob {
    /// Job name (shows in fio's output).
    pub name: String,
    /// The file or device.
    pub filename: PathBuf,
    /// read, write, randread, randwrite, rw, randrw.
    pub rw: String,
    /// Block size in bytes.
    pub bs: u64,
    /// Queue depth (ignored by fio's sync engines).
    pub iodepth: u32,
    /// I/O engine.
    pub ioengine: FioEngine,
    /// O_DIRECT.
    pub direct: bool,
    /// fdatasync after this many writes (0 = never).
    pub fdatasync: u32,
    /// O_SYNC.
    pub sync: bool,
    /// Parallel jobs (results are aggregated with group_reporting).
    pub numjobs: u32,
    /// Region of the file to use, in bytes.
    pub size: u64,
    /// Run time or I/O volume.
    pub limit: Limit,
    /// Start of the region, in bytes.
    pub offset: u64,
    /// With several jobs: job i starts at `offset + i * offset_increment`
    /// (0: every job covers the same region).
    pub offset_increment: u64,
    /// io_uring with registered buffers (`--fixedbufs=1`).
    pub fixedbufs: bool,
    /// Each job on a file of its own, `<filename>.<job number>` (fio's
    /// `$jobnum`, from 0; see [`FioJob::job_files`]), `size` bytes of it
    /// from `offset`: jobs that share no file, hence no inode lock.
    pub own_files: bool,
}

impl FioJob {
    /// A job with the usual defaults: direct, one job, offset 0.
    pub fn new(
        filename: &Path,
        rw: &str,
        bs: u64,
        iodepth: u32,
        ioengine: FioEngine,
        size: u64,
        limit: Limit,
    ) -> Self {
        Self {
            name: format!("{rw}-{bs}-qd{iodepth}-{}", ioengine.name()),
            filename: filename.to_path_buf(),
            rw: rw.to_string(),
            bs,
            iodepth,
            ioengine,
            direct: true,
            fdatasync: 0,
            sync: false,
            numjobs: 1,
            size,
            limit,
            offset: 0,
            offset_increment: 0,
            fixedbufs: false,
            own_files: false,
        }
    }

    /// The same job with each job on a file of its own
    /// ([`FioJob::own_files`]), writing `per_job` bytes of it: what the
    /// jobs cost when they share nothing but the machine.
    pub fn apart(mut self, per_job: u64) -> Result<Self> {
        if per_job < self.bs {
            bail!(
                "{per_job} bytes per job are fewer than one {}-byte block",
                self.bs
            );
        }
        self.size = per_job / self.bs * self.bs;
        self.offset_increment = 0;
        self.own_files = true;
        self.name = format!("{}-apart", self.name);
        Ok(self)
    }

    /// The files the job reads or writes: its file, or one per job.
    pub fn job_files(&self) -> Vec<PathBuf> {
        if !self.own_files {
            return vec![self.filename.clone()];
        }
        (0..self.numjobs)
            .map(|j| {
                let mut name = self.filename.clone().into_os_string();
                name.push(format!(".{j}"));
                PathBuf::from(name)
            })
            .collect()
    }

    /// Durable sequential writes: `threads` psync jobs, each writing `bs`
    /// at a time in its own region of `size / threads` bytes of `path`,
    /// each write followed by an fdatasync (`fdatasync`) or made with
    /// O_SYNC. The reference for any "write, then make it durable" loop.
    pub fn durable_writes(
        path: &Path,
        size: u64,
        bs: u64,
        threads: usize,
        fdatasync: bool,
        secs: u64,
    ) -> Result<Self> {
        let threads = threads.max(1);
        let region = (size / threads as u64) / bs * bs;
        if region < bs {
            bail!(
                "{} is too small for {threads} fio jobs of {bs}-byte writes",
                path.display()
            );
        }
        let mut job = FioJob::new(
            path,
            "write",
            bs,
            1,
            FioEngine::Psync,
            region,
            Limit::Seconds(secs.max(1)),
        );
        job.name = format!(
            "durable-writes-{}-{threads}",
            if fdatasync { "fdatasync" } else { "osync" }
        );
        job.numjobs = threads as u32;
        job.offset_increment = region;
        if fdatasync {
            job.fdatasync = 1;
        } else {
            job.sync = true;
        }
        Ok(job)
    }

    /// Group-committed durable writes: one io_uring job keeping `depth`
    /// writes of `bs` in flight over `size` bytes of `path`, and after
    /// every `depth` of them an fdatasync (fio lets the writes in flight
    /// complete first). What `depth` callers that each write an object
    /// and wait for it to be durable reach at best when one flush serves
    /// all of them: the reference for group commit, where one psync job
    /// per caller flushes once per write.
    pub fn group_commit_writes(
        path: &Path,
        size: u64,
        bs: u64,
        depth: usize,
        secs: u64,
    ) -> Result<Self> {
        let depth = depth.max(1);
        let region = size / bs * bs;
        if region < bs {
            bail!("{} is too small for {bs}-byte writes", path.display());
        }
        let mut job = FioJob::new(
            path,
            "write",
            bs,
            depth as u32,
            FioEngine::IoUring,
            region,
            Limit::Seconds(secs.max(1)),
        );
        job.name = format!("group-commit-writes-{depth}");
        job.fdatasync = depth as u32;
        Ok(job)
    }

    /// The command-line arguments for this job.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![format!("--name={}", self.name)];
        match (
            self.own_files,
            self.filename.parent(),
            self.filename.file_name(),
        ) {
            (true, Some(dir), Some(stem)) => {
                // `$jobnum` is fio's, not a shell's: no shell runs fio.
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                a.push(format!("--directory={}", dir.display()));
                a.push(format!(
                    "--filename_format={}.$jobnum",
                    stem.to_string_lossy()
                ));
            }
            _ => a.push(format!("--filename={}", self.filename.display())),
        }
        a.extend([
            format!("--rw={}", self.rw),
            format!("--bs={}", self.bs),
            format!("--iodepth={}", self.iodepth),
            format!("--ioengine={}", self.ioengine.name()),
            format!("--direct={}", u8::from(self.direct)),
            format!("--sync={}", u8::from(self.sync)),
            format!("--numjobs={}", self.numjobs),
            format!("--size={}", self.size),
            format!("--offset={}", self.offset),
            "--group_reporting=1".into(),
            "--lat_percentiles=1".into(),
            "--percentile_list=50:99:99.9".into(),
            "--norandommap=1".into(),
            "--randrepeat=0".into(),
            "--fallocate=none".into(),
            "--output-format=json".into(),
        ]);
        if self.offset_increment > 0 {
            a.push(format!("--offset_increment={}", self.offset_increment));
        }
        if self.fixedbufs {
            a.push("--fixedbufs=1".into());
        }
        if self.fdatasync > 0 {
            a.push(format!("--fdatasync={}", self.fdatasync));
        }
        match self.limit {
            Limit::Seconds(s) => {
                a.push(format!("--runtime={s}"));
                a.push("--time_based=1".into());
            }
            Limit::Bytes(b) => a.push(format!("--io_size={b}")),
        }
        a
    }
}

/// One direction (read or write) of a fio result.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DirStats {
    /// I/Os per second.
    pub iops: f64,
    /// Bytes per second.
    pub bw_bytes: f64,
    /// I/Os completed.
    pub ios: u64,
    /// Mean completion latency (ns).
    pub clat_mean_ns: f64,
    /// Mean total latency, submission to completion (ns).
    pub lat_mean_ns: f64,
    /// Median latency (ns): total latency where fio reports it, else completion latency.
    pub p50_ns: f64,
    /// 99th percentile latency (ns), like `p50_ns`.
    pub p99_ns: f64,
    /// 99.9th percentile latency (ns), like `p50_ns` (0 when fio has none).
    pub p999_ns: f64,
}

/// What a fio job measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FioResult {
    /// Read side.
    pub read: DirStats,
    /// Write side.
    pub write: DirStats,
    /// fdatasync latency (median, 99th percentile, ns), when fio synced.
    pub sync_lat: Option<(f64, f64)>,
    /// fdatasync latency, 99.9th percentile (ns), when fio synced and reported it.
    pub sync_p999: Option<f64>,
    /// CPUs fio kept busy (its `usr_cpu + sys_cpu`, percent of one CPU, / 100;
    /// per job for grouped multi-job runs).
    pub cpus: f64,
    /// The command that ran, for the report.
    pub command: String,
}

/// Run a job and parse its JSON output.
pub fn run(fio: &Path, job: &FioJob) -> Result<FioResult> {
    let args = job.args();
    let out = Command::new(fio)
        .args(&args)
        .output()
        .with_context(|| format!("running {}", fio.display()))?;
    if !out.status.success() {
        bail!(
            "fio failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut r = parse(&text)?;
    r.command = format!("{} {}", fio.display(), args.join(" "));
    Ok(r)
}

/// Run a job that must move data one way (writes with `write`, else
/// reads): its result and that direction's figures. A run that moved no
/// data is an error, never a figure of zero.
pub fn run_moving(fio: &Path, job: &FioJob, write: bool) -> Result<(FioResult, DirStats)> {
    let r = run(fio, job)?;
    let d = if write { r.write } else { r.read };
    if d.ios == 0 {
        bail!("fio did no I/O: {}", r.command);
    }
    Ok((r, d))
}

/// Parse fio's `--output-format=json` text (anything before the first `{`,
/// such as warnings, is skipped).
pub fn parse(text: &str) -> Result<FioResult> {
    let start = text
        .find('{')
        .ok_or_else(|| anyhow!("fio printed no JSON: {}", text.trim()))?;
    let v: Value = serde_json::from_str(&text[start..]).context("fio output is not valid JSON")?;
    let job = v
        .get("jobs")
        .and_then(Value::as_array)
        .and_then(|j| j.first())
        .ok_or_else(|| anyhow!("fio JSON has no jobs"))?;
    if let Some(e) = job.get("error").and_then(Value::as_i64) {
        if e != 0 {
            bail!("fio job reported error {e}");
        }
    }
    Ok(FioResult {
        read: dir_stats(job, "read")?,
        write: dir_stats(job, "write")?,
        sync_lat: job
            .get("sync")
            .and_then(|s| s.get("lat_ns"))
            .and_then(|l| Some((percentile(l, "50")?, percentile(l, "99")?))),
        sync_p999: job
            .get("sync")
            .and_then(|s| s.get("lat_ns"))
            .and_then(|l| percentile(l, "99.9")),
        cpus: (num(job, &["usr_cpu"]).unwrap_or(0.0) + num(job, &["sys_cpu"]).unwrap_or(0.0))
            / 100.0,
        command: String::new(),
    })
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_f64()
}

fn percentile(lat: &Value, p: &str) -> Option<f64> {
    let map = lat.get("percentile")?.as_object()?;
    map.iter()
        .find(|(k, _)| k.parse::<f64>().ok() == p.parse::<f64>().ok())
        .and_then(|(_, v)| v.as_f64())
}

fn dir_stats(job: &Value, dir: &str) -> Result<DirStats> {
    let d = job
        .get(dir)
        .ok_or_else(|| anyhow!("fio JSON has no '{dir}' section"))?;
    let need = |path: &[&str]| {
        num(d, path).ok_or_else(|| anyhow!("fio JSON lacks {dir}.{}", path.join(".")))
    };
    let ios = need(&["total_ios"]).or_else(|_| need(&["io_kbytes"]).map(|_| 0.0))? as u64;
    let clat = d.get("clat_ns").cloned().unwrap_or(Value::Null);
    let lat = d.get("lat_ns").cloned().unwrap_or(Value::Null);
    // Percentiles: of total latency when fio has them (--lat_percentiles),
    // else of completion latency. Idle directions have none: zero.
    let pick = |p: &str| percentile(&lat, p).or_else(|| percentile(&clat, p));
    let active = ios > 0;
    let pct = |p: &str| -> Result<f64> {
        match pick(p) {
            Some(x) => Ok(x),
            None if !active => Ok(0.0),
            None => Err(anyhow!("fio JSON lacks {dir} latency percentile {p}")),
        }
    };
    Ok(DirStats {
        iops: need(&["iops"])?,
        bw_bytes: need(&["bw_bytes"]).or_else(|_| need(&["bw"]).map(|kib| kib * 1024.0))?,
        ios,
        clat_mean_ns: num(&clat, &["mean"]).unwrap_or(0.0),
        lat_mean_ns: num(&lat, &["mean"]).unwrap_or(0.0),
        p50_ns: pct("50")?,
        p99_ns: pct("99")?,
        p999_ns: pick("99.9").unwrap_or(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"note: both iodepth >= 1 and synchronous I/O engine are selected
{
  "fio version" : "fio-3.33",
  "jobs" : [
    {
      "jobname" : "x", "error" : 0, "usr_cpu" : 12.5, "sys_cpu" : 50.0,
      "read" : {
        "io_bytes" : 409600, "bw_bytes" : 2048000, "iops" : 500.5, "total_ios" : 100,
        "clat_ns" : { "mean" : 1500.0, "percentile" : { "50.000000" : 1400, "99.000000" : 9000 } },
        "lat_ns" : { "mean" : 1600.0, "percentile" : { "50.000000" : 1450, "99.000000" : 9100 } }
      },
      "write" : {
        "io_bytes" : 0, "bw_bytes" : 0, "iops" : 0.0, "total_ios" : 0,
        "clat_ns" : { "min" : 0, "max" : 0, "mean" : 0.0 },
        "lat_ns" : { "mean" : 0.0 }
      }
    }
  ]
}"#;

    #[test]
    fn parses_sample() {
        let r = parse(SAMPLE).unwrap();
        assert_eq!(r.read.iops, 500.5);
        assert_eq!(r.read.bw_bytes, 2048000.0);
        assert_eq!(r.read.ios, 100);
        assert_eq!(r.read.p50_ns, 1450.0, "total latency preferred");
        assert_eq!(r.read.p99_ns, 9100.0);
        assert_eq!(r.read.clat_mean_ns, 1500.0);
        assert_eq!(r.write.iops, 0.0);
        assert_eq!(r.write.p99_ns, 0.0);
        assert_eq!(r.cpus, 0.625);
    }

    #[test]
    fn clat_fallback() {
        let t = SAMPLE.replace(
            r#""percentile" : { "50.000000" : 1450, "99.000000" : 9100 }"#,
            r#""x":1"#,
        );
        let r = parse(&t).unwrap();
        assert_eq!(r.read.p50_ns, 1400.0);
    }

    #[test]
    fn errors_not_panics() {
        assert!(parse("").is_err());
        assert!(parse("{").is_err());
        assert!(parse("{}").is_err());
        assert!(parse(r#"{"jobs":[]}"#).is_err());
        assert!(parse(r#"{"jobs":[{"read":{}}]}"#).is_err());
        assert!(parse(r#"{"jobs":[{"error":5,"read":{},"write":{}}]}"#).is_err());
        let no_pct = SAMPLE
            .replace(
                r#""percentile" : { "50.000000" : 1400, "99.000000" : 9000 }"#,
                r#""x":1"#,
            )
            .replace(
                r#""percentile" : { "50.000000" : 1450, "99.000000" : 9100 }"#,
                r#""x":1"#,
            );
        assert!(
            parse(&no_pct).is_err(),
            "active direction without percentiles"
        );
    }

    #[test]
    fn args_cover_the_params() {
        let mut j = FioJob::new(
            Path::new("/tmp/f"),
            "randread",
            4096,
            32,
            FioEngine::IoUring,
            1 << 30,
            Limit::Seconds(5),
        );
        j.fdatasync = 1;
        j.offset = 4096;
        let a = j.args().join(" ");
        for want in [
            "--filename=/tmp/f",
            "--rw=randread",
            "--bs=4096",
            "--iodepth=32",
            "--ioengine=io_uring",
            "--direct=1",
            "--fdatasync=1",
            "--size=1073741824",
            "--runtime=5",
            "--time_based=1",
            "--offset=4096",
            "--output-format=json",
        ] {
            assert!(a.contains(want), "{want} missing in {a}");
        }
        j.limit = Limit::Bytes(1 << 20);
        assert!(j.args().join(" ").contains("--io_size=1048576"));
    }

    #[test]
    fn jobs_apart_each_write_a_file_of_their_own() {
        let shared =
            FioJob::durable_writes(Path::new("/tmp/d/f.dat"), 8 << 20, 4096, 4, true, 1).unwrap();
        assert_eq!(shared.job_files(), vec![PathBuf::from("/tmp/d/f.dat")]);
        assert!(shared
            .args()
            .join(" ")
            .contains("--offset_increment=2097152"));
        let j = shared.apart(1 << 20).unwrap();
        let a = j.args();
        for want in [
            "--directory=/tmp/d",
            "--filename_format=f.dat.$jobnum",
            "--numjobs=4",
            "--size=1048576",
            "--fdatasync=1",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} missing in {a:?}");
        }
        assert!(
            !a.iter()
                .any(|x| x.starts_with("--filename=") || x.starts_with("--offset_increment")),
            "a shared file or offsets left in {a:?}"
        );
        let files: Vec<_> = (0..4)
            .map(|i| PathBuf::from(format!("/tmp/d/f.dat.{i}")))
            .collect();
        assert_eq!(j.job_files(), files);
        assert!(
            FioJob::durable_writes(Path::new("/tmp/f"), 1 << 20, 4096, 1, true, 1)
                .unwrap()
                .apart(512)
                .is_err()
        );
    }
}
