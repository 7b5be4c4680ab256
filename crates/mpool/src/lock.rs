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
    match m.try_lock() {
        Ok(g) => return g,
        Err(TryLockError::Poisoned(p)) => return p.into_inner(),
        Err(TryLockError::WouldBlock) => {}
    }
    if crate::dev::spin_slot(spinners) {
        let mut got = None;
        crate::dev::spin_until(budget, || match m.try_lock() {
            Ok(g) => {
                got = Some(g);
                true
            }
            Err(TryLockError::Poisoned(p)) => {
                got = Some(p.into_inner());
                true
            }
            Err(TryLockError::WouldBlock) => false,
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
