//! `Device::submit_each` reports every request exactly once, as its result
//! is set, with the data already in a read's buffer; invalid requests are
//! reported too; on every engine and at every depth. The result it reports
//! is the one the batch returns.

use crate::io_common;

use io_common::{engines, open_new, scratch};
use mpool::dev::{Device, FaultDevice};
use mpool::io::{AlignedBuf, IoReq};

fn check_device(dev: &dyn Device, label: &str) {
    let n = 200u64;
    let writes: Vec<IoReq> = (0..n)
        .map(|i| IoReq::write(i * 4096, AlignedBuf::from_slice(&[i as u8; 4096], 4096)))
        .collect();
    for mut r in dev.submit_depth(writes, 64) {
        r.take_result().unwrap();
    }
    for depth in [1usize, 5, 32, usize::MAX] {
        let mut reqs: Vec<IoReq> = (0..n)
            .rev()
            .map(|i| IoReq::read(i * 4096, AlignedBuf::new(4096, 4096)))
            .collect();
        // Two invalid ones: misaligned, and past the end.
        reqs.insert(7, IoReq::read(100, AlignedBuf::new(4096, 4096)));
        reqs.push(IoReq::read(dev.size(), AlignedBuf::new(4096, 4096)));
        let total = reqs.len();
        let mut seen = vec![0u32; total];
        let mut ok_seen = vec![false; total];
        let mut content_ok = vec![false; total];
        let offsets: Vec<u64> = reqs.iter().map(|r| r.offset).collect();
        let out = dev.submit_each(reqs, depth, &mut |i, r| {
            seen[i] += 1;
            assert!(
                r.result.is_some(),
                "{label}: reported before its result was set"
            );
            ok_seen[i] = matches!(r.result, Some(Ok(())));
            content_ok[i] =
                r.offset == offsets[i] && r.buf.iter().all(|&b| b == (r.offset / 4096) as u8);
        });
        assert_eq!(out.len(), total);
        assert!(
            seen.iter().all(|&c| c == 1),
            "{label} depth {depth}: every request reported exactly once: {seen:?}"
        );
        for (i, mut r) in out.into_iter().enumerate() {
            let ok = r.take_result().is_ok();
            assert_eq!(ok, ok_seen[i], "{label} depth {depth}: request {i}");
            if ok {
                assert!(
                    content_ok[i],
                    "{label} depth {depth}: data of {i} not there when reported"
                );
            }
        }
        assert!(
            !ok_seen[7] && !ok_seen[total - 1],
            "{label}: invalid requests failed"
        );
    }
}

#[test]
fn every_request_reported_once_with_its_result() {
    let dir = scratch();
    for engine in engines() {
        let (_p, dev) = open_new(dir.path(), &format!("each-{engine}"), 1 << 20, engine);
        check_device(&dev, &format!("file/{engine}"));
    }
    // Devices without a queue report after the batch, by the trait's default.
    check_device(&FaultDevice::new(1 << 20, 4096), "fault");
}
