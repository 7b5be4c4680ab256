//! The object-store backend's tests: one binary, one behaviour per module.

mod cache;
mod coexist;
mod common;
mod conformance;
mod crash_sweep;
mod one_flush;
mod semantics;
mod slatedb_on_mpool;
