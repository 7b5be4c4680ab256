//! mcache maps and the reaper (issue #11), one behaviour per module,
//! linked as one test binary. The cache is one per process (its budget,
//! reaper switch and counters are global), so every test holds
//! `common::serial()`.

mod common;
mod deleted_while_mapped;
mod direct_reads;
mod errors;
mod fork;
mod kernel_access;
mod live_figures;
mod poisoned;
mod reaper;
mod scale;
