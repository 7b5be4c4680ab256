//! Errors of event streams.

/// Errors of event streams (wrapped in [`crate::Error::Stream`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// No stream by that name.
    #[error("no stream '{0}'")]
    NotFound(String),
    /// The name is taken.
    #[error("a stream named '{0}' already exists")]
    Exists(String),
    /// A bad stream name.
    #[error("bad stream name '{name}': {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The stream is open (it cannot be deleted).
    #[error("stream '{0}' is open")]
    Busy(String),
    /// A record that must be valid is not: its checksum, its frame, or the
    /// segment holding it. No bytes of it are returned.
    #[error("stream '{stream}': corrupt record at offset {offset}: {reason}")]
    Corrupt {
        /// The stream.
        stream: String,
        /// Offset of the record (for a damaged segment footer, the
        /// segment's first offset).
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The offset was trimmed away.
    #[error("stream '{stream}': offset {offset} is trimmed (first offset {first})")]
    Trimmed {
        /// The stream.
        stream: String,
        /// Offset asked for.
        offset: u64,
        /// First offset held.
        first: u64,
    },
    /// No record (durable yet) at that offset.
    #[error("stream '{stream}': no record at offset {offset} (next offset {end})")]
    Beyond {
        /// The stream.
        stream: String,
        /// Offset asked for.
        offset: u64,
        /// The next offset to be written.
        end: u64,
    },
    /// A record or batch larger than a segment holds.
    #[error("stream '{stream}': {len} bytes of records, more than a segment holds ({max})")]
    TooLarge {
        /// The stream.
        stream: String,
        /// Bytes asked.
        len: u64,
        /// The most a batch can hold.
        max: u64,
    },
    /// The stream catalog is damaged.
    #[error("stream catalog: {0}")]
    Catalog(String),
    /// An earlier failure of the stream's tail; reopen the stream.
    #[error("stream '{stream}' failed earlier ({reason}); reopen it")]
    Failed {
        /// The stream.
        stream: String,
        /// What failed.
        reason: String,
    },
}
