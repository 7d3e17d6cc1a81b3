//! SplitMix64 (Steele, Lea & Flood 2014): the small seeded generator behind every random choice
//! the harness makes itself (synthetic images, batch order, crops, k-means draws), so they are the
//! same on every machine and never disturb libtorch's global generator.
use std::sync::Mutex;

/// Seeds libtorch's generator and runs `draw` while no other thread of this process can seed or
/// draw through this function. libtorch has one generator per process: two threads that seed it
/// and then initialise parameters (two runs, two tests) would otherwise interleave their draws and
/// each get numbers that depend on timing.
pub fn with_torch_seed<T>(seed: i64, draw: impl FnOnce() -> T) -> T {
    static TORCH_GENERATOR: Mutex<()> = Mutex::new(());
    let _guard = TORCH_GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(seed);
    draw()
}

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
