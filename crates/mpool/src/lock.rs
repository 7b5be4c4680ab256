//! Locking without poisoning: the one place that decides what a poisoned
//! lock means.
//!
//! A lock is poisoned when a thread panicked while holding it. In mpool a
//! panic is a bug (see [`crate::error::invariant_broken`]); the structures
//! behind these locks are kept consistent at every point where code under
//! the lock can fail, so the data is taken as it is rather than turning one
//! bug into a cascade of panics in every other thread of the process.

use std::sync::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// A value alone on its cache lines: two of them, since the adjacent-line
/// prefetcher fetches lines in pairs. Threads that write it then do not
/// slow down threads using what would otherwise share its line (a lock
/// stripe next to another, a counter next to read-mostly fields).
#[repr(align(128))]
#[derive(Debug, Default)]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Padded<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// Lock a mutex.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Lock a mutex that is held only briefly: while it is taken, try again
/// for up to `budget` (on a CPU left by the others spinning, counted in
/// `spinners`, see `dev::spin_slot`) before sleeping on it. A sleeping
/// waiter costs a wake-up, which on a virtual machine takes longer than
/// many such holds.
pub(crate) fn lock_spin<'a, T>(
    m: &'a Mutex<T>,
    spinners: &std::sync::atomic::AtomicU32,
    budget: Duration,
) -> MutexGuard<'a, T> {
    use std::sync::TryLockError;
    let try_take = || match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    };
    if let Some(g) = try_take() {
        return g;
    }
    if crate::dev::spin_slot(spinners) {
        let got = spin_backing_off(budget, try_take);
        spinners.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        if let Some(g) = got {
            return g;
        }
    }
    lock(m)
}

/// Most pauses between two tries of [`spin_backing_off`].
const BACKOFF_MAX: u32 = 64;

/// Try `take` until it gives something or `budget` has passed, pausing
/// between tries for twice as many rounds as before (up to
/// [`BACKOFF_MAX`]). A try of a held lock takes its cache line from the
/// holder, who then waits for it back at its next write to what shares
/// that line (a log's state follows its lock's word): tried at every
/// pause, a brief hold becomes a long one, the dearer the further apart
/// the host placed the CPUs.
fn spin_backing_off<G>(budget: Duration, mut take: impl FnMut() -> Option<G>) -> Option<G> {
    let t = std::time::Instant::now();
    let mut pauses = 1u32;
    loop {
        if let Some(g) = take() {
            return Some(g);
        }
        for _ in 0..pauses {
            std::hint::spin_loop();
        }
        if pauses < BACKOFF_MAX {
            pauses *= 2;
        } else if t.elapsed() >= budget {
            return None;
        }
    }
}

/// Take a read lock.
pub(crate) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

/// Take a write lock.
pub(crate) fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

/// Wait on a condition variable.
pub(crate) fn wait<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(g).unwrap_or_else(|p| p.into_inner())
}

/// Wait on a condition variable for at most `dur`; true when it timed out.
pub(crate) fn wait_timeout<'a, T>(
    cv: &Condvar,
    g: MutexGuard<'a, T>,
    dur: Duration,
) -> (MutexGuard<'a, T>, bool) {
    let (g, t) = cv.wait_timeout(g, dur).unwrap_or_else(|p| p.into_inner());
    (g, t.timed_out())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    /// Padded values share no line, nor a pair of lines, with their
    /// neighbours: stripes of locks in an array, a counter beside other
    /// fields.
    #[test]
    fn padded_values_keep_two_lines_to_themselves() {
        let a: [Padded<AtomicU32>; 3] = Default::default();
        let at = |i: usize| std::ptr::from_ref(&a[i]) as usize;
        assert_eq!(at(0) % 128, 0);
        assert!(at(1) - at(0) >= 128 && at(2) - at(1) >= 128);
        struct Beside {
            _x: u8,
            hot: Padded<AtomicU32>,
            _y: u8,
        }
        let b = Beside {
            _x: 0,
            hot: Padded::default(),
            _y: 0,
        };
        let hot = std::ptr::from_ref(&*b.hot) as usize;
        for other in [
            std::ptr::from_ref(&b._x) as usize,
            std::ptr::from_ref(&b._y) as usize,
        ] {
            assert!(
                other / 128 != hot / 128,
                "a field shares the counter's lines"
            );
        }
        a[1].store(7, Ordering::Relaxed);
        assert_eq!(a[1].load(Ordering::Relaxed), 7);
    }

    /// A lock taken spinning is the lock: the waiter gets it once the
    /// holder lets go, whether the hold ends within the spin budget or
    /// long after it (the waiter then sleeps on it), and every spinning
    /// slot is given back.
    #[test]
    fn lock_spin_waits_for_the_holder_short_or_long() {
        let spinners = Arc::new(AtomicU32::new(0));
        for hold in [Duration::from_micros(1), Duration::from_millis(50)] {
            let m = Arc::new(Mutex::new(0u32));
            let g = lock(&m);
            let waiter = {
                let (m, spinners) = (m.clone(), spinners.clone());
                std::thread::spawn(move || {
                    let mut g = lock_spin(&m, &spinners, Duration::from_micros(20));
                    *g += 1;
                    *g
                })
            };
            std::thread::sleep(hold);
            drop(g);
            assert_eq!(waiter.join().unwrap(), 1);
            assert_eq!(*lock(&m), 1);
            assert_eq!(spinners.load(Ordering::Acquire), 0);
        }
    }
}
