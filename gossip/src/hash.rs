//! [`splitmix_finish`]: the one 64-bit mixing step the workspace's stable
//! hashes share.

/// The SplitMix64 finalizer: spreads every input bit over the whole output,
/// so that hashes built by adding, xoring or folding small values do not
/// cancel in structured ways. Stable: the same on every build and
/// platform, so hashes made with it may be compared across nodes.
///
/// ```
/// assert_eq!(gossip::splitmix_finish(0), 0);
/// assert_ne!(gossip::splitmix_finish(1), gossip::splitmix_finish(2));
/// ```
pub fn splitmix_finish(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
