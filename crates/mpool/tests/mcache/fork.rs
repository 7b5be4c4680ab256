//! A forked child does not inherit the fault handling, so it does not get
//! the maps at all (`MADV_DONTFORK`): touching one is a SIGSEGV, never
//! zeros read as data.

use super::common::{commit, mem_pool, pattern, serial};
use mpool::Advice;

#[test]
fn a_forked_child_cannot_read_a_map() {
    let _s = serial();
    let pool = mem_pool(64, 1 << 20);
    let ids: Vec<_> = (0..2)
        .map(|i| commit(&pool, &pattern(80 + i, 50_000)))
        .collect();
    let map = pool.mcache_map(&ids, Advice::Warm).unwrap();
    // Object 0 resident, object 1 not.
    assert_eq!(&*map.get(0).unwrap(), &pattern(80, 50_000)[..]);
    for i in 0..2 {
        let p = map.slice(i).unwrap()[30_000..].as_ptr();
        // SAFETY: fork(2); the child only reads memory and calls _exit(2),
        // both async-signal-safe.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: the child reads one byte where the map was (the read
            // is the test: it must fault) and exits without unwinding.
            unsafe {
                let b = std::ptr::read_volatile(p);
                libc::_exit(if b == 0 { 10 } else { 11 });
            }
        }
        let mut status = 0;
        // SAFETY: waiting for the child just forked.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
            "object {i}: the child read the map (status {status:#x})"
        );
    }
    // The parent still reads both.
    assert_eq!(map.slice(1).unwrap(), &pattern(81, 50_000)[..]);
}
