//! Mlog and MDC tests, one behaviour per module, linked as one test binary.

mod bitflip;
mod crash_sweep;
mod eio;
mod file_device;
#[path = "../common/io.rs"]
mod io_common;
mod mapped_kill;
mod mdc_compaction_crash;
