//! The drop of a pool's last handle closes it before it returns, also
//! when the thread that publishes the pool's live figures holds a
//! reference at that moment: a reopen right after finds the pool free.

use mpool::{CreateOptions, MediaClass, OpenOptions, Pool};
use std::time::{Duration, Instant};

#[test]
fn a_pool_dropped_while_its_figures_are_published_reopens_at_once() {
    let _env = crate::env_lock();
    let d = crate::scratch_env();
    let spec = crate::cap_spec(d.path(), 64 << 20, 1 << 20);
    let pool = Pool::create("dropped", &spec, &CreateOptions::default()).unwrap();
    let id = pool.mblock_alloc(MediaClass::Capacity).unwrap();
    pool.mblock_write(id, b"kept").unwrap();
    pool.mblock_commit(id).unwrap();
    drop(pool);
    for round in 0..3 {
        let pool = Pool::open("dropped", &OpenOptions::default()).unwrap();
        // The publisher keeps the pool 300 ms after each publishing (once
        // a second): drop the handle inside that window.
        pool.publisher_linger(Duration::from_millis(300));
        let t = Instant::now();
        while !pool.publisher_holding() {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "round {round}: the publisher never held the pool"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(pool);
        let again = Pool::open("dropped", &OpenOptions::default())
            .unwrap_or_else(|e| panic!("round {round}: reopen after the drop: {e}"));
        let mut b = [0u8; 4];
        again.mblock_read(id, 0, &mut b).unwrap();
        assert_eq!(&b, b"kept");
        // And a close, the same way.
        again.publisher_linger(Duration::from_millis(300));
        let t = Instant::now();
        while !again.publisher_holding() {
            assert!(t.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(1));
        }
        again.close().unwrap();
    }
}
