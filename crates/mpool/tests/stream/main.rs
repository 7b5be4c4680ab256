//! Event streams (issue #14), one behaviour per module, linked as one
//! test binary. Pools live on memory or fault-injecting devices.

mod basics;
mod common;
mod corrupt;
mod crash_sweep;
mod follow;
mod recovery;
mod seal;
mod space;
mod trim;
