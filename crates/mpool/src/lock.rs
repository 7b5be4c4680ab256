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
        let mut got = None;
        crate::dev::spin_until(budget, || {
            got = try_take();
            got.is_some()
        });
        spinners.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        if let Some(g) = got {
            return g;
        }
    }
    lock(m)
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
