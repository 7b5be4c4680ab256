//! Device-layer I/O tests (`FileDevice` on every engine), one behaviour per
//! module, linked as one test binary.

#[path = "../common/io.rs"]
mod io_common;

mod batch;
mod beside;
mod depth;
mod discard;
mod each;
mod invalid;
mod open;
mod panic;
mod threads;
