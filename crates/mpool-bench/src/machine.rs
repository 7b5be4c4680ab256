//! Two probes of the machine a benchmark runs on, printed with its
//! context: how long a cache line takes to go from one CPU to another and
//! back, and how long a thread takes to wake another and be woken back.
//!
//! mpool's coordination between threads (group commit, the flush gate,
//! spinning waiters) costs what these cost, and they differ between
//! machines of the same kind and over time on one machine: a cache line's
//! round trip between the two vCPUs measured 75-109 ns on one machine, and
//! 440 ns on another that showed 33-97 ns half an hour later (BENCHMARKS.md,
//! "Session 14"); and a machine whose idle vCPUs halt at
//! once (no halt polling) pays a trip through the host for every wake-up.
//! With the probes in the output, figures from two machines can be told
//! apart.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::common::lock;

/// Round trips of the cache-line probe.
const LINE_TRIPS: u64 = 20_000;
/// Round trips of the wake-up probe.
const WAKE_TRIPS: u64 = 2_000;
/// A probe that takes longer than this (the CPUs are busy) gives up.
const PROBE_LIMIT: Duration = Duration::from_millis(500);

/// What a probe measured: the mean round trip, and how many exchanges
/// were made (two per round trip).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trips {
    /// Mean round trip in nanoseconds.
    pub ns: f64,
    /// Exchanges seen (twice the round trips when the probe completed).
    pub exchanges: u64,
}

/// The first two CPUs this process may run on, when there are two.
fn two_cpus() -> Option<(usize, usize)> {
    // SAFETY: `cpu_set_t` is plain data; all-zero is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable `cpu_set_t` of the size passed;
    // pid 0 is this thread.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return None;
    }
    let mut found = (0..libc::CPU_SETSIZE as usize).filter(|&c| {
        // SAFETY: `c` is below CPU_SETSIZE, the set's capacity.
        unsafe { libc::CPU_ISSET(c, &set) }
    });
    Some((found.next()?, found.next()?))
}

/// Pin the calling thread to `cpu`; whether that worked.
fn pin(cpu: usize) -> bool {
    // SAFETY: as in `two_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (it came from `two_cpus`), and
    // `set` is a valid `cpu_set_t`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid `cpu_set_t` of the size passed; pid 0 is
    // this thread.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 }
}

/// A cache line's round trip between two CPUs: two threads, each pinned
/// to a CPU of its own, take turns raising one atomic counter, spinning
/// until it is their turn. `None` when the process may not use two CPUs,
/// pinning fails, or the probe does not finish in time (CPUs busy).
pub fn cache_line_round_trip() -> Option<Trips> {
    let (a, b) = two_cpus()?;
    let v = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (v2, stop2, stop3) = (Arc::clone(&v), Arc::clone(&stop), Arc::clone(&stop));
    let other = std::thread::spawn(move || {
        if !pin(b) {
            stop2.store(true, Ordering::Release);
            return false;
        }
        for i in 0..LINE_TRIPS {
            while v2.load(Ordering::Acquire) != 2 * i + 1 {
                if stop2.load(Ordering::Acquire) {
                    return true;
                }
                std::hint::spin_loop();
            }
            v2.store(2 * i + 2, Ordering::Release);
        }
        true
    });
    let run = move || -> Option<Trips> {
        if !pin(a) {
            return None;
        }
        let start = Instant::now();
        for i in 0..LINE_TRIPS {
            let mut spins = 0u32;
            while v.load(Ordering::Acquire) != 2 * i {
                if stop.load(Ordering::Acquire) {
                    return None;
                }
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(4096) && start.elapsed() > PROBE_LIMIT {
                    return None;
                }
                std::hint::spin_loop();
            }
            v.store(2 * i + 1, Ordering::Release);
        }
        while v.load(Ordering::Acquire) != 2 * LINE_TRIPS {
            if stop.load(Ordering::Acquire) || start.elapsed() > PROBE_LIMIT {
                return None;
            }
            std::hint::spin_loop();
        }
        Some(Trips {
            ns: start.elapsed().as_nanos() as f64 / LINE_TRIPS as f64,
            exchanges: v.load(Ordering::Acquire),
        })
    };
    // Both sides on threads of their own: the caller's CPUs stay as they are.
    let out = std::thread::spawn(move || {
        let r = run();
        // Ends the other side's wait when this side gave up.
        stop3.store(true, Ordering::Release);
        r
    })
    .join()
    .ok()
    .flatten();
    let pinned = other.join().unwrap_or(false);
    out.filter(|_| pinned)
}

/// A wake-up's round trip: two threads take turns, each sleeping on a
/// condition variable until the other wakes it (the kernel picks their
/// CPUs). `None` when the probe does not finish in time.
pub fn wake_round_trip() -> Option<Trips> {
    let st = Arc::new((Mutex::new((0u64, false)), Condvar::new()));
    let st2 = Arc::clone(&st);
    let other = std::thread::spawn(move || {
        let (m, cv) = &*st2;
        let mut g = lock(m);
        for i in 0..WAKE_TRIPS {
            while g.0 != 2 * i + 1 && !g.1 {
                g = cv.wait(g).unwrap_or_else(|p| p.into_inner());
            }
            if g.1 {
                return;
            }
            g.0 += 1;
            cv.notify_one();
        }
    });
    let (m, cv) = &*st;
    let start = Instant::now();
    let mut done = true;
    {
        let mut g = lock(m);
        'trips: for i in 0..WAKE_TRIPS {
            g.0 = 2 * i + 1;
            cv.notify_one();
            while g.0 != 2 * i + 2 {
                let left = PROBE_LIMIT.saturating_sub(start.elapsed());
                if left.is_zero() {
                    done = false;
                    break 'trips;
                }
                g = cv
                    .wait_timeout(g, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        if !done {
            g.1 = true;
            cv.notify_one();
        }
    }
    let secs = start.elapsed();
    let _ = other.join();
    let exchanges = lock(m).0;
    done.then(|| Trips {
        ns: secs.as_nanos() as f64 / WAKE_TRIPS as f64,
        exchanges,
    })
}

/// Both probes, as one line for a benchmark's context.
pub fn describe() -> String {
    let line = match cache_line_round_trip() {
        Some(t) => format!("{:.0} ns", t.ns),
        None => "not measured (one CPU, or the CPUs were busy)".to_string(),
    };
    let wake = match wake_round_trip() {
        Some(t) => format!("{:.1} us", t.ns / 1000.0),
        None => "not measured (the CPUs were busy)".to_string(),
    };
    format!("cache line between two CPUs {line} per round trip; thread wake-up {wake} per round trip (two wake-ups)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_line_probe_makes_every_exchange() {
        match (two_cpus(), cache_line_round_trip()) {
            (_, Some(t)) => {
                assert_eq!(t.exchanges, 2 * LINE_TRIPS);
                assert!(t.ns.is_finite() && t.ns > 0.0, "{t:?}");
            }
            (None, None) => eprintln!("SKIPPED: the process may use one CPU only"),
            // Two CPUs but no figure: they were busy (a loaded machine).
            (Some(_), None) => eprintln!("SKIPPED: the CPUs were busy"),
        }
    }

    #[test]
    fn the_wake_up_probe_makes_every_exchange() {
        match wake_round_trip() {
            Some(t) => {
                assert_eq!(t.exchanges, 2 * WAKE_TRIPS);
                assert!(t.ns.is_finite() && t.ns > 0.0, "{t:?}");
            }
            None => eprintln!("SKIPPED: the CPUs were busy"),
        }
    }
}
