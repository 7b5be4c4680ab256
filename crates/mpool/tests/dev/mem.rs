//! MemDevice: a plain in-memory device.

use mpool::dev::{DevError, Device, DeviceKind, MemDevice};
use mpool::io::{AlignedBuf, IoReq};

#[test]
fn mem_device_basics() {
    let dev = MemDevice::new(1 << 20, 4096);
    let info = dev.info();
    assert_eq!(
        (info.kind, info.size, info.logical_sector),
        (DeviceKind::Memory, 1 << 20, 4096)
    );
    assert_eq!(info.name(), "<memory>");
    let mut w = AlignedBuf::new(8192, 4096);
    w.iter_mut().enumerate().for_each(|(i, x)| *x = i as u8);
    dev.write_at(4096, &mut w).unwrap();
    dev.flush().unwrap();
    let mut r = dev.alloc_buf(8192);
    dev.read_at(4096, &mut r).unwrap();
    assert!(r[..] == w[..]);
    assert_eq!(&dev.image()[4096..12288], &w[..]);

    let mut done = dev.submit(vec![
        IoReq::read(1 << 20, AlignedBuf::new(4096, 4096)),
        IoReq::read(512, AlignedBuf::new(4096, 4096)),
        IoReq::read(0, AlignedBuf::new(4096, 4096)),
    ]);
    let errs: Vec<_> = done
        .iter_mut()
        .map(|r| {
            let (k, o) = (r.kind, r.offset);
            r.take_result()
                .map_err(|e| mpool::dev::from_req_err(dev.info(), k, o, e))
        })
        .collect();
    assert!(matches!(errs[0], Err(DevError::OutOfRange { .. })));
    assert!(matches!(errs[1], Err(DevError::Unaligned { .. })));
    assert!(errs[2].is_ok());

    dev.discard(8192, 4096).unwrap();
    let img = dev.image();
    assert!(img[8192..12288].iter().all(|&x| x == 0));
    assert_eq!(&img[4096..8192], &w[..4096]);
    assert!(matches!(
        dev.discard(0, 100),
        Err(DevError::Unaligned { .. })
    ));

    let from = MemDevice::from_image(vec![7; 4096], 100);
    assert_eq!(from.sector(), 512, "sector is raised to 512");
    let mut b = from.alloc_buf(512);
    from.read_at(3584, &mut b).unwrap();
    assert!(b.iter().all(|&x| x == 7));
}
