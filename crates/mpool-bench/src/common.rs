//! What the pool workloads share: a scratch environment inside `--dir`,
//! preallocated (written-once) files, latency histograms, run facts, and a
//! device wrapper that counts and times every write and flush.

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use mpool::dev::{DevError, DevQueue, Device, DeviceInfo, FileDevice, OpenOptions};
use mpool::io::{AlignedBuf, EngineChoice, IoKind, IoReq};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Point mpool's run directory and device list into `dir`, so a benchmark
/// never touches `/run/mpool`, `/etc/mpool` or the user's configuration.
/// Call before any thread is started.
pub fn scratch_env(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = std::fs::canonicalize(dir)?;
    let run = dir.join("mpool-run");
    std::fs::create_dir_all(&run)?;
    std::env::set_var("MPOOL_RUNDIR", &run);
    std::env::set_var("MPOOL_CONFIG", dir.join("mpool-devices"));
    Ok(dir)
}

/// A pool name unique to this process.
pub fn pool_name(workload: &str) -> String {
    format!("bench-{workload}-{}", std::process::id())
}

/// Forget a pool created by a benchmark (its run directory entry and the
/// device list line) and remove its file.
pub fn forget_pool(name: &str, path: &Path) {
    let _ = mpool::admin::deactivate(name);
    let _ = std::fs::remove_file(path);
}

/// Create `path` with `size` bytes and write every byte once (zeros, 1 MiB
/// O_DIRECT writes, 32 in flight), then fdatasync: no holes, no unwritten
/// extents, like a raw device. An existing file of that size that is fully
/// allocated is reused as it is.
pub fn prefill(path: &Path, size: u64) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::metadata(path) {
        if m.len() == size && m.blocks() * 512 >= size {
            return Ok(());
        }
        std::fs::remove_file(path)?;
    }
    eprintln!("preallocating {} ({} MiB) ...", path.display(), size >> 20);
    let t = Instant::now();
    let dev = FileDevice::open(
        path,
        &OpenOptions {
            create_size: Some(size),
            engine: EngineChoice::Auto,
            ..OpenOptions::default()
        },
    )
    .with_context(|| format!("creating {}", path.display()))?;
    if !dev.info().direct {
        bail!(
            "{} does not support O_DIRECT: choose another --dir",
            path.display()
        );
    }
    let bs = 1u64 << 20;
    let mut off = 0u64;
    while off < size {
        let mut reqs = Vec::new();
        while off < size && reqs.len() < 32 {
            let len = bs.min(size - off) as usize;
            reqs.push(IoReq::write(off, AlignedBuf::new(len, 4096)));
            off += len as u64;
        }
        for mut r in dev.submit(reqs) {
            r.take_result()
                .with_context(|| format!("writing {} at {}", path.display(), r.offset))?;
        }
    }
    dev.flush()?;
    eprintln!("  done in {:.1} s", t.elapsed().as_secs_f64());
    Ok(())
}

/// A latency histogram in nanoseconds (1 ns to 10 min, 3 digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 600_000_000_000, 3).expect("constant bounds are valid")
}

/// Run `work(t)` for t in `0..threads` on scoped threads, each returning
/// its operation count and latency histogram: the total count and the
/// merged histogram. A panicking thread is an error naming `what`.
pub fn in_threads<F>(threads: usize, what: &str, work: F) -> Result<(u64, Histogram<u64>)>
where
    F: Fn(usize) -> Result<(u64, Histogram<u64>)> + Sync,
{
    let work = &work;
    let results: Vec<Result<(u64, Histogram<u64>)>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads.max(1))
            .map(|t| s.spawn(move || work(t)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("{what} thread panicked")))
            .collect()
    });
    let mut total = 0;
    let mut hist = histogram();
    for r in results {
        let (n, h) = r?;
        total += n;
        hist.add(&h)?;
    }
    Ok((total, hist))
}

/// Lock `m`, taking the data of a thread that panicked while it held the
/// lock as it is (a benchmark reports what it measured rather than stop).
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Facts that explain the numbers: file, filesystem, kernel, CPUs, fio.
pub fn context(path: &Path, fio_bin: Option<&Path>) -> Vec<(String, String)> {
    let mut c = vec![("file".to_string(), path.display().to_string())];
    if let Some((src, fstype)) = crate::dev::mount_of(path.parent().unwrap_or(path)) {
        c.push(("filesystem".into(), format!("{fstype} on {src}")));
    }
    if let Ok(k) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        c.push(("kernel".into(), k.trim().to_string()));
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    c.push(("cpus".into(), cpus.to_string()));
    c.push(("machine".into(), crate::machine::describe()));
    if let Some(f) = fio_bin {
        if let Ok(o) = std::process::Command::new(f).arg("--version").output() {
            c.push((
                "fio".into(),
                String::from_utf8_lossy(&o.stdout).trim().to_string(),
            ));
        }
    }
    c
}

/// Counters of a [`Counting`] device.
#[derive(Debug, Default)]
pub struct Counters {
    submits: AtomicU64,
    writes: AtomicU64,
    write_bytes: AtomicU64,
    reads: AtomicU64,
    read_bytes: AtomicU64,
    flushes: AtomicU64,
    write_ns: AtomicU64,
    flush_ns: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snap {
    /// `Device::submit` calls that contained a write.
    pub submits: u64,
    /// Write requests.
    pub writes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Read requests.
    pub reads: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// `Device::flush` calls (fdatasync).
    pub flushes: u64,
    /// Wall time inside submit calls that wrote (summed over threads).
    pub write_ns: u64,
    /// Wall time inside flush calls (summed over threads).
    pub flush_ns: u64,
}

impl Snap {
    /// Sum of two snapshots' deltas.
    pub fn plus(&self, o: &Snap) -> Snap {
        Snap {
            submits: self.submits + o.submits,
            writes: self.writes + o.writes,
            write_bytes: self.write_bytes + o.write_bytes,
            reads: self.reads + o.reads,
            read_bytes: self.read_bytes + o.read_bytes,
            flushes: self.flushes + o.flushes,
            write_ns: self.write_ns + o.write_ns,
            flush_ns: self.flush_ns + o.flush_ns,
        }
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Snap) -> Snap {
        Snap {
            submits: self.submits - earlier.submits,
            writes: self.writes - earlier.writes,
            write_bytes: self.write_bytes - earlier.write_bytes,
            reads: self.reads - earlier.reads,
            read_bytes: self.read_bytes - earlier.read_bytes,
            flushes: self.flushes - earlier.flushes,
            write_ns: self.write_ns - earlier.write_ns,
            flush_ns: self.flush_ns - earlier.flush_ns,
        }
    }
}

impl Counters {
    /// The current values.
    pub fn snap(&self) -> Snap {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Snap {
            submits: g(&self.submits),
            writes: g(&self.writes),
            write_bytes: g(&self.write_bytes),
            reads: g(&self.reads),
            read_bytes: g(&self.read_bytes),
            flushes: g(&self.flushes),
            write_ns: g(&self.write_ns),
            flush_ns: g(&self.flush_ns),
        }
    }
}

/// A device that passes everything to `inner` and counts and times writes
/// and flushes: how many device operations one library operation costs.
/// (Two clock reads and a few relaxed atomics per call: noise next to I/O.)
#[derive(Debug)]
pub struct Counting {
    inner: Arc<dyn Device>,
    /// The counters.
    pub c: Arc<Counters>,
}

impl Counting {
    /// Wrap a device.
    pub fn new(inner: Arc<dyn Device>) -> Self {
        Self {
            inner,
            c: Arc::new(Counters::default()),
        }
    }
}

impl Device for Counting {
    fn info(&self) -> &DeviceInfo {
        self.inner.info()
    }

    fn submit(&self, reqs: Vec<IoReq>) -> Vec<IoReq> {
        let mut w = (0u64, 0u64);
        let mut r = (0u64, 0u64);
        for q in &reqs {
            let n = q.buf.len() as u64;
            match q.kind {
                IoKind::Write => w = (w.0 + 1, w.1 + n),
                IoKind::Read => r = (r.0 + 1, r.1 + n),
            }
        }
        let t = Instant::now();
        let out = self.inner.submit(reqs);
        let c = &self.c;
        if w.0 > 0 {
            c.write_ns
                .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            c.submits.fetch_add(1, Ordering::Relaxed);
            c.writes.fetch_add(w.0, Ordering::Relaxed);
            c.write_bytes.fetch_add(w.1, Ordering::Relaxed);
        }
        c.reads.fetch_add(r.0, Ordering::Relaxed);
        c.read_bytes.fetch_add(r.1, Ordering::Relaxed);
        out
    }

    /// Queued reads go to the inner device's own queue (its io_uring fast
    /// path), uncounted: the counts are of the batched data path.
    fn queue(&self, depth: usize) -> Box<dyn DevQueue + '_> {
        self.inner.queue(depth)
    }

    fn write_bytes(&self, offset: u64, data: &[u8]) -> Option<Result<(), DevError>> {
        let t = Instant::now();
        let r = self.inner.write_bytes(offset, data)?;
        let c = &self.c;
        c.write_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        c.submits.fetch_add(1, Ordering::Relaxed);
        c.writes.fetch_add(1, Ordering::Relaxed);
        c.write_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Some(r)
    }

    fn will_write(&self, offset: u64, len: u64) {
        self.inner.will_write(offset, len)
    }

    fn prepare_writes(&self, offset: u64, len: u64) {
        self.inner.prepare_writes(offset, len)
    }

    fn flush(&self) -> Result<(), DevError> {
        let t = Instant::now();
        let r = self.inner.flush();
        self.c
            .flush_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.c.flushes.fetch_add(1, Ordering::Relaxed);
        r
    }

    fn discard(&self, offset: u64, len: u64) -> Result<(), DevError> {
        self.inner.discard(offset, len)
    }
}

/// CPU time (user + system) this process has used so far, in seconds.
pub fn cpu_seconds() -> f64 {
    // CLOCK_PROCESS_CPUTIME_ID: user + system time of every thread, as
    // getrusage(RUSAGE_SELF) sums it.
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// xorshift64*: cheap reproducible offsets and picks for random workloads.
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The machine's CPU time counters: the fields of /proc/stat's first
/// line in their order (user nice system idle iowait irq softirq steal
/// ..., in ticks); a field that does not parse reads 0, so each keeps
/// its place; empty when the file cannot be read.
pub fn proc_stat_cpu() -> Vec<u64> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|w| w.parse().unwrap_or(0))
        .collect()
}
