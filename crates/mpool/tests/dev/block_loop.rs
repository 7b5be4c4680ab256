//! A real block device: a loop device over a 64 MiB file (512-byte sectors,
//! and 4096-byte sectors where losetup supports them). Geometry comes from
//! the ioctls, I/O works on every engine, discard works, and the read-write
//! open is exclusive (O_EXCL) while read-only opens are not.

use crate::io_common;

use io_common::{engines, open, pattern, read_back, req_result, scratch};
use mpool::dev::{DevError, Device, DeviceKind};
use mpool::io::{AlignedBuf, IoReq};
use std::path::{Path, PathBuf};
use std::process::Command;

const SIZE: u64 = 64 << 20;

/// Detaches the loop device however the test ends.
struct LoopDev(PathBuf);

impl LoopDev {
    fn attach(file: &Path, sector: Option<u32>) -> Option<LoopDev> {
        let mut cmd = Command::new("losetup");
        cmd.arg("--find").arg("--show");
        if let Some(s) = sector {
            cmd.arg("--sector-size").arg(s.to_string());
        }
        let out = cmd.arg(file).output().ok()?;
        if !out.status.success() {
            eprintln!(
                "losetup {:?} failed: {}",
                sector,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!p.is_empty()).then(|| LoopDev(PathBuf::from(p)))
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let ok = Command::new("losetup")
            .arg("-d")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("WARNING: could not detach {}", self.0.display());
        }
    }
}

fn blockdev(flag: &str, dev: &Path) -> u64 {
    let out = Command::new("blockdev")
        .arg(flag)
        .arg(dev)
        .output()
        .expect("blockdev");
    assert!(out.status.success(), "blockdev {flag} failed");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("blockdev output")
}

fn usable() -> bool {
    rustix::process::geteuid().is_root()
        && Path::new("/dev/loop-control").exists()
        && Command::new("losetup")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

fn exercise(lo: &LoopDev, want_sector: Option<u32>) {
    let path = &lo.0;
    let ss = blockdev("--getss", path) as u32;
    let pbsz = blockdev("--getpbsz", path) as u32;
    if let Some(s) = want_sector {
        assert_eq!(ss, s, "losetup honoured --sector-size");
    }
    for e in engines() {
        eprintln!("{} (sector {ss}) engine {e}", path.display());
        let dev = open(path, e, false).expect("open loop device");
        let info = dev.info().clone();
        assert_eq!(info.kind, DeviceKind::Block);
        assert_eq!(info.size, SIZE);
        assert_eq!(info.size, blockdev("--getsize64", path));
        assert_eq!(info.logical_sector, ss);
        assert_eq!(info.physical_sector, pbsz.max(ss));
        assert!(info.direct);

        // Round trip: a batch of mixed sizes at sector-aligned offsets.
        let sec = ss as usize;
        let ext: Vec<(u64, usize)> = (0..40u64)
            .map(|i| {
                (
                    i * (256 << 10) + u64::from(ss),
                    sec * (1 + (i as usize % 7)),
                )
            })
            .collect();
        let reqs = ext
            .iter()
            .map(|&(o, l)| IoReq::write(o, pattern(o ^ e as u64, l, sec)))
            .collect();
        for mut r in dev.submit(reqs) {
            req_result(&dev, &mut r).expect("write");
        }
        dev.flush().expect("flush");
        let reqs = ext
            .iter()
            .map(|&(o, l)| IoReq::read(o, AlignedBuf::new(l, sec)))
            .collect();
        for mut r in dev.submit(reqs) {
            req_result(&dev, &mut r).expect("read");
            assert!(r.buf[..] == pattern(r.offset ^ e as u64, r.buf.len(), sec)[..]);
        }
        // The last sector is reachable, one past it is not.
        let mut b = pattern(5, sec, sec);
        dev.write_at(SIZE - ss as u64, &mut b).expect("last sector");
        assert!(matches!(
            dev.write_at(SIZE, &mut b),
            Err(DevError::OutOfRange { .. })
        ));
        // Offsets aligned to 512 but not to the sector are refused on 4K devices.
        if ss > 512 {
            let mut b = AlignedBuf::new(sec, sec);
            assert!(matches!(
                dev.read_at(512, &mut b),
                Err(DevError::Unaligned { .. })
            ));
        }

        // Discard: the range reads back as zeroes (loop punches the backing file).
        let mut d = pattern(9, 1 << 20, sec);
        dev.write_at(32 << 20, &mut d).unwrap();
        dev.flush().unwrap();
        dev.discard(32 << 20, 1 << 20).expect("discard");
        assert!(
            read_back(&dev, 32 << 20, 1 << 20).iter().all(|&x| x == 0),
            "discarded range reads zero"
        );

        // Exclusive: a second read-write open is refused, read-only is allowed.
        match open(path, e, false) {
            Err(DevError::Busy { path: p }) => assert_eq!(&p, path),
            other => panic!("second read-write open: want Busy, got {other:?}"),
        }
        let ro = open(path, e, true).expect("read-only open beside the writer");
        assert!(ro.info().read_only);
        assert!(read_back(&ro, SIZE - ss as u64, sec)[..] == pattern(5, sec, sec)[..]);
        drop(ro);
        drop(dev);
        // Once closed, it opens read-write again.
        drop(open(path, e, false).expect("reopen after close"));
    }
}

#[test]
fn loop_block_device() {
    if !usable() {
        eprintln!("SKIPPED: needs root and a loop device");
        return;
    }
    let dir = scratch();
    for sector in [None, Some(4096u32)] {
        let file = dir.path().join(format!("loop-{}", sector.unwrap_or(512)));
        std::fs::File::create(&file).unwrap().set_len(SIZE).unwrap();
        let Some(lo) = LoopDev::attach(&file, sector) else {
            if sector.is_some() {
                eprintln!("SKIPPED: losetup --sector-size 4096 is not supported here");
                continue;
            }
            eprintln!("SKIPPED: needs root and a loop device (losetup failed)");
            return;
        };
        exercise(&lo, sector);
    }
}
