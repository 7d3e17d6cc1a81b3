//! Batch samplers: plain shuffled batches, and class-balanced batches (m images of each of B/m
//! classes) for triplet mining. Both are deterministic for a seed and an epoch.
use super::synthetic::SplitMix64;
use serde::{Deserialize, Serialize};

/// How training batches are formed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SamplerConfig {
    /// Every epoch, a fresh permutation cut into batches (the last, short batch is dropped).
    #[default]
    Shuffled,
    /// Each batch holds `m` images of each of `batch_size / m` classes.
    ClassBalanced {
        /// Images per class in a batch.
        m: usize,
    },
}

/// Fisher–Yates shuffle driven by `g`.
pub fn shuffle<T>(items: &mut [T], g: &mut SplitMix64) {
    for i in (1..items.len()).rev() {
        let j = (g.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// The batches of one epoch, as sample indices.
pub fn epoch_batches(
    config: &SamplerConfig,
    labels: &[i64],
    batch_size: usize,
    seed: u64,
    epoch: u64,
) -> Result<Vec<Vec<usize>>, String> {
    let mut g = SplitMix64::derive(seed, &[0x005A_3B1E, epoch]);
    match config {
        SamplerConfig::Shuffled => {
            let mut idx: Vec<usize> = (0..labels.len()).collect();
            shuffle(&mut idx, &mut g);
            Ok(idx.chunks_exact(batch_size).map(<[usize]>::to_vec).collect())
        }
        SamplerConfig::ClassBalanced { m } => {
            let m = *m;
            if m == 0 || !batch_size.is_multiple_of(m) || batch_size / m < 2 {
                return Err(format!(
                    "class_balanced sampler: batch_size ({batch_size}) must be a multiple of m ({m}) holding at least two classes"
                ));
            }
            let mut by_class: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
            for (i, &l) in labels.iter().enumerate() {
                by_class.entry(l).or_default().push(i);
            }
            if let Some((c, v)) = by_class.iter().find(|(_, v)| v.len() < m) {
                return Err(format!(
                    "class_balanced sampler: m = {m} images per class, but class {c} has only {}; lower m or drop classes with fewer than m images",
                    v.len()
                ));
            }
            // Every class contributes ⌊n_c/m⌋ groups of m images; groups are shuffled and packed
            // into batches of distinct classes.
            let mut groups: Vec<(i64, Vec<usize>)> = vec![];
            for (&c, v) in &by_class {
                let mut v = v.clone();
                shuffle(&mut v, &mut g);
                groups.extend(v.chunks_exact(m).map(|ch| (c, ch.to_vec())));
            }
            shuffle(&mut groups, &mut g);
            let per_batch = batch_size / m;
            let mut batches = vec![];
            let mut pending: Vec<(i64, Vec<usize>)> = vec![];
            for grp in groups {
                if pending.iter().any(|(c, _)| *c == grp.0) {
                    continue; // a class appears once per batch; its spare group waits for the next epoch
                }
                pending.push(grp);
                if pending.len() == per_batch {
                    batches.push(pending.drain(..).flat_map(|(_, v)| v).collect());
                }
            }
            Ok(batches)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffled_batches_are_a_permutation_and_depend_on_seed_and_epoch() {
        let labels: Vec<i64> = (0..100).map(|i| i % 10).collect();
        let a = epoch_batches(&SamplerConfig::Shuffled, &labels, 32, 1, 0).unwrap();
        assert_eq!(a.len(), 3);
        let mut all: Vec<usize> = a.concat();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 96);
        assert_eq!(a, epoch_batches(&SamplerConfig::Shuffled, &labels, 32, 1, 0).unwrap());
        assert_ne!(a, epoch_batches(&SamplerConfig::Shuffled, &labels, 32, 1, 1).unwrap());
        assert_ne!(a, epoch_batches(&SamplerConfig::Shuffled, &labels, 32, 2, 0).unwrap());
    }

    #[test]
    fn class_balanced_batches_hold_m_images_of_distinct_classes() {
        let labels: Vec<i64> = (0..120).map(|i| i / 6).collect(); // 20 classes × 6
        let batches = epoch_batches(&SamplerConfig::ClassBalanced { m: 3 }, &labels, 12, 7, 0).unwrap();
        assert!(batches.len() >= 8);
        for b in &batches {
            assert_eq!(b.len(), 12);
            let mut counts = std::collections::BTreeMap::new();
            for &i in b {
                *counts.entry(labels[i]).or_insert(0) += 1;
            }
            assert_eq!(counts.len(), 4);
            assert!(counts.values().all(|&c| c == 3));
        }
    }

    #[test]
    fn class_balanced_says_which_class_is_too_small() {
        let labels = vec![0, 0, 0, 1, 1, 2, 2, 2];
        let e = epoch_batches(&SamplerConfig::ClassBalanced { m: 3 }, &labels, 6, 0, 0).unwrap_err();
        assert!(e.contains("class 1 has only 2"), "{e}");
        let e = epoch_batches(&SamplerConfig::ClassBalanced { m: 4 }, &labels, 6, 0, 0).unwrap_err();
        assert!(e.contains("multiple of m"), "{e}");
    }
}
