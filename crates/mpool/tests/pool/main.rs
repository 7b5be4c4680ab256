//! Pool-level tests (metadata compaction, crash sweeps, stress, the
//! version-1 golden image), one behaviour per module, linked as one test
//! binary.

mod alloc_compact_race;
mod byte_flips;
mod close;
mod commit_fail;
mod compaction_fail;
mod crash_sweep;
mod degraded_open;
mod format_golden_v1;
mod format_golden_v2;
mod member_identity;
mod metadata_rot;
mod stress;
mod upgrade_crash_sweep;
