//! Opening files: sparse creation, missing paths, directories, permissions.

use crate::io_common;

use io_common::{engines, open, read_back, scratch};
use mpool::dev::{DevError, Device, DeviceKind, FileDevice, OpenOptions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

#[test]
fn create_sparse_file() {
    for e in engines() {
        let dir = scratch();
        let path = dir.path().join("sparse");
        let size = 1u64 << 30;
        let opts = OpenOptions {
            create_size: Some(size),
            engine: e,
            ..OpenOptions::default()
        };
        let dev = FileDevice::open(&path, &opts).expect("create");
        let info = dev.info();
        assert_eq!(info.kind, DeviceKind::File);
        assert_eq!(info.size, size);
        assert_eq!(info.logical_sector, 4096);
        assert!(info.physical_sector >= info.logical_sector);
        assert!(info.direct);
        assert!(!info.read_only);
        assert_eq!(info.path.as_deref(), Some(path.as_path()));
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!(m.len(), size);
        assert!(
            m.blocks() * 512 < (1 << 20),
            "file is sparse ({} blocks)",
            m.blocks()
        );
        assert!(read_back(&dev, size - (1 << 20), 1 << 20)
            .iter()
            .all(|&b| b == 0));
        drop(dev);

        // create_size on an existing file opens it as it is.
        let dev = FileDevice::open(
            &path,
            &OpenOptions {
                create_size: Some(4096),
                engine: e,
                ..OpenOptions::default()
            },
        )
        .expect("reopen");
        assert_eq!(dev.size(), size);
    }
}

#[test]
fn missing_path_is_not_found() {
    let dir = scratch();
    let path = dir.path().join("nope");
    match open(&path, mpool::io::EngineChoice::Sync, false) {
        Err(DevError::NotFound { path: p }) => assert_eq!(p, path),
        other => panic!("want NotFound, got {other:?}"),
    }
    assert!(!path.exists(), "nothing was created");
    // Creating under a missing directory is NotFound too.
    let deep = dir.path().join("no/such/dir/file");
    let r = FileDevice::open(
        &deep,
        &OpenOptions {
            create_size: Some(1 << 20),
            ..OpenOptions::default()
        },
    );
    assert!(matches!(r, Err(DevError::NotFound { .. })), "{r:?}");
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("no/such/dir/file"), "{msg}");
}

#[test]
fn directory_is_not_a_device() {
    let dir = scratch();
    for ro in [false, true] {
        match open(dir.path(), mpool::io::EngineChoice::Sync, ro) {
            Err(DevError::NotADevice { path }) => assert_eq!(path, dir.path()),
            other => panic!("want NotADevice, got {other:?}"),
        }
    }
    // A character device is not one either.
    let r = open(
        std::path::Path::new("/dev/null"),
        mpool::io::EngineChoice::Sync,
        true,
    );
    assert!(matches!(r, Err(DevError::NotADevice { .. })), "{r:?}");
}

#[test]
fn permission_denied_names_the_path() {
    if rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: permission test needs a non-root user");
        eprintln!("SKIPPED: permission test needs a non-root user");
        return;
    }
    let dir = scratch();
    let path = dir.path().join("locked");
    std::fs::write(&path, vec![0u8; 1 << 20]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    for ro in [false, true] {
        match open(&path, mpool::io::EngineChoice::Sync, ro) {
            Err(e @ DevError::PermissionDenied { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&path.display().to_string()), "{msg}");
                assert!(msg.contains("0000"), "{msg}");
            }
            other => panic!("want PermissionDenied, got {other:?}"),
        }
    }
}
