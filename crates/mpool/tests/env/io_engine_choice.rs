//! `io_engine` / `MPOOL_IO_ENGINE` parsing and engine resolution.

use mpool::io::{Engine, EngineChoice};

#[test]
fn parse_names() {
    for (s, want) in [
        ("auto", EngineChoice::Auto),
        ("uring", EngineChoice::Uring),
        ("io_uring", EngineChoice::Uring),
        ("sync", EngineChoice::Sync),
        ("pread", EngineChoice::Sync),
        (" SYNC \n", EngineChoice::Sync),
        ("Uring", EngineChoice::Uring),
    ] {
        assert_eq!(s.parse::<EngineChoice>(), Ok(want), "{s:?}");
    }
    for bad in ["", "uringx", "aio", "0", "sync,uring"] {
        let e = bad.parse::<EngineChoice>().expect_err(bad);
        assert!(e.contains("expected auto, uring or sync"), "{e}");
    }
    // Display round-trips.
    for c in [EngineChoice::Auto, EngineChoice::Uring, EngineChoice::Sync] {
        assert_eq!(c.to_string().parse::<EngineChoice>(), Ok(c));
    }
    assert_eq!(EngineChoice::default(), EngineChoice::Auto);
}

/// The only test in this file that touches the environment (tests run in threads).
#[test]
fn from_env() {
    let _env = crate::env_lock();
    std::env::remove_var("MPOOL_IO_ENGINE");
    assert_eq!(EngineChoice::from_env(), Ok(EngineChoice::Auto));
    std::env::set_var("MPOOL_IO_ENGINE", "sync");
    assert_eq!(EngineChoice::from_env(), Ok(EngineChoice::Sync));
    assert_eq!(Engine::from_env().unwrap().name(), "sync");
    std::env::set_var("MPOOL_IO_ENGINE", "bogus");
    let e = EngineChoice::from_env().expect_err("bad value must be an error");
    assert!(e.contains("bogus"), "{e}");
    let e = Engine::from_env().expect_err("bad value must be an error");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    std::env::remove_var("MPOOL_IO_ENGINE");
}

#[test]
fn resolve() {
    let s = Engine::new(EngineChoice::Sync).unwrap();
    assert_eq!((s.choice(), s.name()), (EngineChoice::Sync, "sync"));
    let a = Engine::new(EngineChoice::Auto).unwrap();
    let u = Engine::new(EngineChoice::Uring);
    if mpool::io::uring_available() {
        assert_eq!(a.name(), "io_uring");
        assert_eq!(u.unwrap().name(), "io_uring");
    } else {
        eprintln!("SKIPPED: io_uring unavailable; checking the fallback instead");
        assert_eq!(a.name(), "sync");
        assert_eq!(u.unwrap_err().kind(), std::io::ErrorKind::Unsupported);
    }
}
