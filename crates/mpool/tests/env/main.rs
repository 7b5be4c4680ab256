//! Tests that read or set the process environment (`MPOOL_IO_ENGINE`,
//! `MPOOL_RUNDIR`, `MPOOL_CONFIG`): `Pool::create`/`open`/`add` and
//! `EngineChoice::from_env` take their settings from there, and there is no
//! other way to give them. They are kept out of the other test binaries,
//! whose tests run in parallel threads of one process, and every test here
//! that touches the environment holds [`env_lock`] while it runs.

mod device_list_lock;
mod io_engine_choice;
mod mblock_lifecycle;
mod pool_add_staging;
mod pool_create_reserve;

/// Serializes the tests of this binary that set or read the environment.
pub fn env_lock() -> std::sync::MutexGuard<'static, ()> {
    static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ENV.lock().unwrap_or_else(|e| e.into_inner())
}
