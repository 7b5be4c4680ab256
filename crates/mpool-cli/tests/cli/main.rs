//! Tests of the `mpool` command, one behaviour per module, linked as one test
//! binary. Every test runs the command through `common::Sandbox`, which gives
//! each child its own MPOOL_RUNDIR and MPOOL_CONFIG, so the tests share this
//! process safely. `cli_loop_device` is a binary of its own: its pool is on a
//! loop device, which every `scan --activate` here would see and activate.

#[path = "../common/mod.rs"]
mod common;

mod add_staging;
mod blkid_members;
mod check_repairs;
mod checksums;
mod create_list_destroy;
mod create_rollback;
mod create_same_name;
mod damaged_superblocks;
mod degraded;
mod demo;
mod destroy_confirmation;
mod duplicate_members;
mod forget;
mod host_fs_full;
mod json;
mod lock;
mod log_headers;
mod mblock;
mod mlog;
mod mlog_delete_erase;
mod object;
mod permissions;
mod read_only_commands;
mod refusals;
mod rename;
mod scan_activate;
mod scan_activate_pool;
mod set_atomic;
mod set_get;
mod shrunk_member;
mod signatures;
mod sizes;
mod status_output;
mod stream;
mod stream_torture;
mod torture;
mod trust;
mod upgrade;
