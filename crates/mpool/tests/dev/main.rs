//! Device tests (memory, fault-injecting and block devices), one behaviour
//! per module, linked as one test binary.

#[path = "../common/io.rs"]
mod io_common;

mod block_loop;
mod fault_crash;
mod fault_inject;
mod fault_random;
mod flush_shared;
mod mapped;
mod mem;
