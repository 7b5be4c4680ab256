//! The parts of the `mpool` command that the benchmarks share with it.

pub mod size;
