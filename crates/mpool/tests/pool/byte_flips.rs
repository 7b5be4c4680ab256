//! Rot on the media of a committed pool (`mpool torture flips`, bounded):
//! random bytes of the superblocks, the metadata logs and the mblock data
//! flipped, then every read path run. No panic, no wrong data returned, no
//! object set changed silently; the flips must also have been seen (some
//! reads refused), or the run proved nothing.

use mpool::torture::{run_flips, FlipTortureConfig};

#[test]
fn flipped_bytes_never_come_back_as_data() {
    for (seed, sector) in [(11u64, 4096u32), (12, 512)] {
        let cfg = FlipTortureConfig {
            seed,
            rounds: 300,
            max_flips: 3,
            sector,
        };
        let rep = run_flips(&cfg, &mut |_, _| {});
        assert_eq!(rep.violations, 0, "{:#?}", rep.details);
        assert_eq!(rep.rounds, 300);
        assert!(rep.reads_ok > 1000, "{rep:?}");
        assert!(rep.read_errors > 10, "the flips were detected: {rep:?}");
    }
}
