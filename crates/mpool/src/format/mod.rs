//! On-media formats. Every byte here is described in `docs/format.md`.

pub(crate) mod codec;
pub mod record;
pub mod superblock;
