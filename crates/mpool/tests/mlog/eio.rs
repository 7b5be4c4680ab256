//! EIO on read or write reaches the caller as a typed device error, never as
//! data or as a panic, and never costs an acknowledged record.

use mpool::dev::{DevError, FaultDevice};
use mpool::mlog::{Mlog, MlogError};
use std::sync::Arc;

const EXT: std::ops::Range<u64> = 0..(64 << 10);

fn setup() -> (Arc<FaultDevice>, Vec<Vec<u8>>) {
    let f = Arc::new(FaultDevice::new(64 << 10, 512));
    let log = Mlog::create(f.clone(), EXT, 3).unwrap();
    let recs: Vec<Vec<u8>> = (0..10).map(|i| vec![i as u8; 100 + i * 90]).collect();
    for r in &recs {
        log.append(r, true).unwrap();
    }
    (f, recs)
}

fn is_eio(e: &MlogError) -> bool {
    matches!(e, MlogError::Dev(DevError::Io { .. }))
}

#[test]
fn eio_on_header_read_fails_open() {
    let (f, _) = setup();
    f.fail_reads(0..512);
    let e = Mlog::open(f.clone(), EXT, 3).unwrap_err();
    assert!(is_eio(&e), "{e}");
}

#[test]
fn eio_on_data_read_fails_open_and_reader() {
    let (f, recs) = setup();
    f.fail_reads(2048..2560);
    let e = Mlog::open(f.clone(), EXT, 3).unwrap_err();
    assert!(is_eio(&e), "{e}");
    f.clear_failures();
    let log = Mlog::open(f.clone(), EXT, 3).unwrap();
    f.fail_reads(4096..4608);
    let mut rd = log.reader().unwrap();
    let mut n = 0;
    let err = loop {
        match rd.next() {
            Some(Ok(r)) => {
                assert_eq!(r, recs[n]);
                n += 1;
            }
            Some(Err(e)) => break e,
            None => panic!("reader ended without the error"),
        }
    };
    assert!(is_eio(&err), "{err}");
    assert!(rd.next().is_none());
}

#[test]
fn eio_on_write_fails_append_and_loses_nothing() {
    let (f, recs) = setup();
    let log = Mlog::open(f.clone(), EXT, 3).unwrap();
    f.fail_writes(0..(64 << 10));
    let e = log.append(b"doomed", true).unwrap_err();
    assert!(is_eio(&e), "{e}");
    // The log is unusable now: a typed error, not a panic.
    assert!(matches!(
        log.append(b"again", true),
        Err(MlogError::Failed { .. })
    ));
    assert!(matches!(log.sync(), Err(MlogError::Failed { .. })));
    drop(log);
    f.clear_failures();
    let log = Mlog::open(f.clone(), EXT, 3).unwrap();
    let got: Vec<_> = log.reader().unwrap().map(|r| r.unwrap()).collect();
    assert!(got.len() == recs.len() || got.len() == recs.len() + 1);
    assert_eq!(&got[..recs.len()], &recs[..]);
    log.append(b"after", true).unwrap();
}

#[test]
fn eio_on_flush_fails_sync() {
    let (f, _) = setup();
    let log = Mlog::open(f.clone(), EXT, 3).unwrap();
    log.append(b"x", false).unwrap();
    // The next operations: header write, flush (epoch), data write, flush.
    let n = f.stats().ops;
    f.fail_op(n + 4);
    let e = log.sync().unwrap_err();
    assert!(matches!(e, MlogError::Dev(_)), "{e}");
}
