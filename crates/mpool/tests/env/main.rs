//! Tests that read or set the process environment (`MPOOL_IO_ENGINE`,
//! `MPOOL_RUNDIR`, `MPOOL_CONFIG`, `MPOOL_NO_MAP`): `Pool::create`/`open`/`add` and
//! `EngineChoice::from_env` take their settings from there, and there is no
//! other way to give them. They are kept out of the other test binaries,
//! whose tests run in parallel threads of one process, and every test here
//! that touches the environment holds [`env_lock`] while it runs.

mod device_list_lock;
mod drop_reopen;
#[path = "../common/io.rs"]
mod io_common;
mod io_engine_choice;
mod mblock_lifecycle;
mod meta_owner_threads;
mod no_map;
mod pool_add_staging;
mod pool_create_reserve;

/// Serializes the tests of this binary that set or read the environment.
pub fn env_lock() -> std::sync::MutexGuard<'static, ()> {
    static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ENV.lock().unwrap_or_else(|e| e.into_inner())
}

/// A temporary directory holding this test's run directory (`run`) and
/// device list (`devices`), both set in the environment (hold
/// [`env_lock`] while it lives).
pub fn scratch_env() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::env::set_var("MPOOL_RUNDIR", d.path().join("run"));
    std::env::set_var("MPOOL_CONFIG", d.path().join("devices"));
    d
}

/// A capacity device `cap.img` in `dir`, created at `size` bytes, with
/// zones (mblocks) of `zone` bytes.
pub fn cap_spec(dir: &std::path::Path, size: u64, zone: u64) -> mpool::DeviceSpec {
    mpool::DeviceSpec {
        path: dir.join("cap.img"),
        create_size: Some(size),
        zone_size: zone,
    }
}
