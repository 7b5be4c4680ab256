//! Mblock tests on pools over memory and fault devices, one behaviour per
//! module, linked as one test binary.

mod pool_common;

mod checksums;
mod commit_shared;
mod commit_with;
mod delete_deferred;
mod eio;
mod held_writes;
mod read_aligned;
mod read_batch;
mod reader;
mod sealed;
mod write_aligned;
