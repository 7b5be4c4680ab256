//! No byte that failed its checksum is ever visible through a map:
//! `load` of a damaged range returns `ObjectError::Checksum`, the other
//! ranges of the object read fine, and touching the damaged page ends in
//! SIGBUS (checked in a child process), never in its bytes.

use super::common::{commit, fault_pool, pattern, serial};
use mpool::{mcache, Advice, Error, ObjectError};
use std::process::Command;

const ZONE: u64 = 1 << 20;
const LEN: usize = 100_000;

#[test]
fn a_flipped_byte_is_a_checksum_error_never_data() {
    let _s = serial();
    let (dev, pool) = fault_pool(40, ZONE);
    let id = commit(&pool, &pattern(30, LEN));
    let base = u64::from(pool.object_props(id).unwrap().zone) * ZONE;
    // Byte 10,000 (block 2: bytes 8192..12288) flipped on the media.
    dev.flip_bit(base + 10_000, 3);
    let map = pool.mcache_map(&[id], Advice::Cold).unwrap();
    match map.load(0, 9000..9100) {
        Err(Error::Object(ObjectError::Checksum {
            id: bad,
            offset,
            len,
        })) => {
            assert_eq!(bad, id.object_id());
            assert_eq!((offset, len), (8192, 4096));
        }
        other => panic!("load of the damaged block: {other:?}"),
    }
    // A guard over the damaged block: the same error, from the guard.
    match map.range(0, 9000..9100) {
        Err(Error::Object(ObjectError::Checksum {
            offset: 8192,
            len: 4096,
            ..
        })) => {}
        other => panic!("guard over the damaged block: {:?}", other.map(|g| g.len())),
    }
    // A guard of a hot map whose 64 KiB window holds the damaged block
    // still gets its own bytes.
    let hot_guard = pool.mcache_map(&[id], Advice::Hot).unwrap();
    assert_eq!(
        &*hot_guard.range(0, 100..4000).unwrap(),
        &pattern(30, LEN)[100..4000]
    );
    assert_eq!(
        &*hot_guard.range(0, 12288..20000).unwrap(),
        &pattern(30, LEN)[12288..20000]
    );
    // Everything else loads and reads as written.
    map.load(0, 0..8192).unwrap();
    map.load(0, 12288..LEN as u64).unwrap();
    let want = pattern(30, LEN);
    let full = mcache::fault_mode().unwrap() == mcache::FaultMode::Full;
    if full {
        // Lazy slices (full fault handling): the loaded ranges read as
        // written, touched directly.
        let s = map.slice(0).unwrap();
        assert_eq!(&s[..8192], &want[..8192]);
        assert_eq!(&s[12288..], &want[12288..]);
        // Under a hot map (64 KiB faults), the damaged block does not keep
        // its neighbours from loading through the fault handler either.
        let hot = pool.mcache_map(&[id], Advice::Hot).unwrap();
        assert_eq!(&hot.slice(0).unwrap()[..4096], &want[..4096]);
        assert_eq!(&hot.slice(0).unwrap()[16384..20000], &want[16384..20000]);
    } else {
        // User-mode faults: a slice loads the whole object, so it fails.
        assert!(matches!(
            map.slice(0),
            Err(Error::Object(ObjectError::Checksum { offset: 8192, .. }))
        ));
        assert_eq!(&*map.range(0, 0..8192).unwrap(), &want[..8192]);
        assert_eq!(&*map.range(0, 12288..LEN as u64).unwrap(), &want[12288..]);
    }
    // Repaired media (the bit flipped back): the next load succeeds.
    dev.flip_bit(base + 10_000, 3);
    map.load(0, 8192..12288).unwrap();
    assert_eq!(&*map.range(0, 8192..12288).unwrap(), &want[8192..12288]);
    assert_eq!(map.slice(0).unwrap(), &want[..]);
}

/// The child half of `touching_a_damaged_page_raises_sigbus`.
#[test]
fn poisoned_child_body() {
    if std::env::var_os("MPOOL_MCACHE_POISON_CHILD").is_none() {
        return; // run by the test below, in a process of its own
    }
    let (dev, pool) = fault_pool(40, ZONE);
    let id = commit(&pool, &pattern(31, LEN));
    let base = u64::from(pool.object_props(id).unwrap().zone) * ZONE;
    dev.flip_bit(base + 5000, 0);
    let map = pool.mcache_map(&[id], Advice::Cold).unwrap();
    let s = map.slice(0).unwrap();
    // Mode Full: this access faults, the block fails its checksum, the page
    // is poisoned, and the process dies here with SIGBUS.
    // SAFETY: a byte inside the slice; the volatile read keeps the access.
    let byte = unsafe { std::ptr::read_volatile(&s[5000]) };
    println!("READ {byte} stats {:?}", mcache::stats());
    std::process::exit(3);
}

#[test]
fn touching_a_damaged_page_raises_sigbus() {
    let _s = serial();
    if mcache::fault_mode().unwrap() != mcache::FaultMode::Full {
        println!("SKIPPED: user-mode fault handling loads every slice first (see kernel_access)");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "poisoned::poisoned_child_body",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MPOOL_MCACHE_POISON_CHILD", "1")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("READ"),
        "a damaged byte was read: {stdout}"
    );
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGBUS),
        "{:?} {stdout}",
        out.status
    );
}
