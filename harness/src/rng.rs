//! SplitMix64 (Steele, Lea & Flood 2014): the small seeded generator behind every random choice
//! the harness makes itself (synthetic images, batch order, crops, k-means draws), so they are the
//! same on every machine and never disturb libtorch's global generator.
/// Seeds libtorch's one generator and draws under the process-wide lock (defined in the losses
/// crate, the lowest crate that draws from it, so both crates and their tests share one lock).
pub use losses::with_torch_seed;

/// A SplitMix64 generator; the state is the seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
    /// A generator derived from this seed and a stream of identifiers.
    pub fn derive(seed: u64, ids: &[u64]) -> Self {
        let mut g = SplitMix64(seed);
        for &id in ids {
            g = SplitMix64(g.next_u64() ^ id.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        }
        g
    }
}
