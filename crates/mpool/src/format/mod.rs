//! On-media formats. Every byte here is described in `docs/format.md`.

pub(crate) mod codec;
pub mod record;
pub mod seal;
pub mod superblock;

/// What a pool's format version allows (see "Version history" in
/// `docs/format.md`). A pool keeps its version until `mpool upgrade`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Features {
    /// The pool's format version.
    pub version: u16,
}

impl Features {
    pub(crate) fn new(version: u16) -> Features {
        Features { version }
    }
    /// Pool-metadata record type 7: an mblock commit sharing its record's flush.
    pub(crate) fn shared_commit(self) -> bool {
        self.version >= 2
    }
    /// Mirrored metadata logs: MDC0, MDC1..N and user MDCs write every
    /// record twice (docs/format.md, "Mirrored logs").
    pub(crate) fn mirrored_metadata(self) -> bool {
        self.version >= 3
    }
    /// Pool-metadata record type 8: every mblock commit stores a table of
    /// per-block CRC-32C checksums after its content.
    pub(crate) fn block_csums(self) -> bool {
        self.version >= 3
    }
}
