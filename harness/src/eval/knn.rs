//! Exact k-nearest-neighbour search by cosine similarity, in query chunks on the embeddings' device:
//! never an N × N matrix. The test set is query and gallery; a query's own index is excluded by
//! index; ties go to the lower gallery index (paper.md §5).
use tch::{Kind, Tensor};

/// Default working memory for one chunk of the search, in bytes.
pub const DEFAULT_MEMORY_BUDGET: usize = 256 << 20;

/// Bytes of working memory per query row and gallery item: the similarities (4 B) and top-k's
/// temporaries (4 B). Rows that tie at the top-k boundary take the exact path, which needs about
/// twice that, but they are few.
const BYTES_PER_ENTRY: usize = 8;

/// Number of query rows per chunk so one chunk's working set fits in `memory_budget` bytes.
pub fn chunk_rows(gallery: i64, memory_budget: usize) -> i64 {
    let per_row = (gallery.max(1) as usize) * BYTES_PER_ENTRY;
    ((memory_budget / per_row) as i64).clamp(1, gallery.max(1))
}

/// The `k` nearest neighbours of every row of `unit` (N × d, unit rows) among the other rows:
/// indices N × k (int64) and similarities N × k, most similar first, ties by lower index.
pub fn nearest_neighbours(unit: &Tensor, k: i64, memory_budget: usize) -> (Tensor, Tensor) {
    let n = unit.size()[0];
    assert!(k >= 1 && k < n, "k = {k} needs 1 <= k < N = {n}");
    let rows = chunk_rows(n, memory_budget);
    let gallery_t = unit.transpose(0, 1);
    let mut indices = vec![];
    let mut sims = vec![];
    let mut start = 0;
    while start < n {
        let len = rows.min(n - start);
        let mut sim = unit.narrow(0, start, len).matmul(&gallery_t); // len × N
                                                                     // Exclude each query's own index (not "the first neighbour", which breaks on duplicates).
        let own = Tensor::arange_start(start, start + len, (Kind::Int64, unit.device())).unsqueeze(1);
        let _ = sim.scatter_value_(1, &own, f64::NEG_INFINITY);
        let (i, s) = top_k_lowest_index_ties(&sim, k);
        indices.push(i);
        sims.push(s);
        start += len;
    }
    (Tensor::cat(&indices, 0), Tensor::cat(&sims, 0))
}

/// Top-`k` of each row of `sim`, largest first, ties broken by lower column index, exactly.
///
/// Fast path: `topk(k + 1)`; where the k-th and (k+1)-th values differ, the chosen set is
/// unambiguous and only its order needs fixing (sort by index, then a stable sort by value). Rows
/// where they tie go through [`top_k_exact`].
fn top_k_lowest_index_ties(sim: &Tensor, k: i64) -> (Tensor, Tensor) {
    let cols = sim.size()[1];
    let kk = (k + 1).min(cols);
    let (values, indices) = sim.topk(kk, 1, true, true);
    let (by_index, perm) = indices.narrow(1, 0, k).sort(1, false);
    let values_by_index = values.narrow(1, 0, k).gather(1, &perm, false);
    let (mut top_values, order) = values_by_index.sort_stable(true, 1, true);
    let mut top_indices = by_index.gather(1, &order, false);
    if kk > k {
        let tied = values.select(1, k - 1).eq_tensor(&values.select(1, k)).nonzero().view([-1]);
        if tied.size()[0] > 0 {
            let (i, v) = top_k_exact(&sim.index_select(0, &tied), k);
            let _ = top_indices.index_copy_(0, &tied, &i);
            let _ = top_values.index_copy_(0, &tied, &v);
        }
    }
    (top_indices, top_values)
}

/// The exact path: every column strictly above the k-th value is in; of the columns equal to it,
/// the lowest-indexed ones fill the rest; the chosen k are then ordered by a stable sort.
fn top_k_exact(sim: &Tensor, k: i64) -> (Tensor, Tensor) {
    let rows = sim.size()[0];
    let (values, _) = sim.topk(k, 1, true, true);
    let kth = values.narrow(1, k - 1, 1); // rows × 1
    let above = sim.gt_tensor(&kth);
    let need = Tensor::full([rows, 1], k, (Kind::Int64, sim.device()))
        - above.sum_dim_intlist([1].as_slice(), true, Kind::Int64);
    let equal = sim.eq_tensor(&kth);
    let rank = equal.cumsum(1, Kind::Int64);
    let chosen = above.logical_or(&equal.logical_and(&rank.le_tensor(&need)));
    // Exactly k columns per row are chosen; nonzero lists them row by row, columns ascending.
    let cols = chosen.nonzero().select(1, 1).view([rows, k]);
    let picked = sim.gather(1, &cols, false);
    let (sorted, order) = picked.sort_stable(true, 1, true);
    (cols.gather(1, &order, false), sorted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(rows: &[[f32; 2]]) -> Tensor {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let t = Tensor::from_slice(&flat).view([rows.len() as i64, 2]);
        &t / t.norm_scalaropt_dim(2, [1].as_slice(), true)
    }

    #[test]
    fn own_index_is_excluded_and_a_duplicate_is_the_nearest_neighbour() {
        // Rows 0 and 2 are the same vector: each is the other's nearest neighbour, and neither lists itself.
        let x = unit(&[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]);
        let (idx, sim) = nearest_neighbours(&x, 3, DEFAULT_MEMORY_BUDGET);
        let idx = Vec::<i64>::try_from(idx.view([-1])).unwrap();
        assert_eq!(&idx[0..3], &[2, 3, 1]);
        assert_eq!(&idx[6..9], &[0, 3, 1]);
        assert!((f64::try_from(sim.get(0).get(0)).unwrap() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn ties_go_to_the_lower_gallery_index_at_the_boundary_and_in_order() {
        // Query 0 = e0; rows 1..=4 are all at the same angle (tied), row 5 is farther.
        let x = unit(&[[1.0, 0.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [0.0, 1.0]]);
        let (idx, _) = nearest_neighbours(&x, 2, DEFAULT_MEMORY_BUDGET);
        assert_eq!(Vec::<i64>::try_from(idx.get(0)).unwrap(), vec![1, 2]);
        // Query 3 ties with rows 1, 2, 4 (similarity 1): lower indices first.
        assert_eq!(Vec::<i64>::try_from(idx.get(3)).unwrap(), vec![1, 2]);
        let (idx, _) = nearest_neighbours(&x, 4, DEFAULT_MEMORY_BUDGET);
        assert_eq!(Vec::<i64>::try_from(idx.get(3)).unwrap(), vec![1, 2, 4, 0]);
    }

    #[test]
    fn the_fast_path_and_the_exact_path_agree_on_rows_with_and_without_boundary_ties() {
        tch::manual_seed(3);
        // Quantised similarities: many exact ties, at the boundary and inside the top k.
        let sim = (Tensor::rand([40, 30], tch::kind::FLOAT_CPU) * 5.0).floor();
        let (fi, fv) = top_k_lowest_index_ties(&sim, 6);
        let (ei, ev) = top_k_exact(&sim, 6);
        assert!(fi.equal(&ei) && fv.equal(&ev));
        let (_, order) = sim.sort_stable(true, 1, true);
        assert!(fi.equal(&order.narrow(1, 0, 6)));
    }

    #[test]
    fn chunked_search_equals_one_chunk_and_brute_force() {
        tch::manual_seed(5);
        let x = Tensor::randn([97, 8], tch::kind::FLOAT_CPU);
        let x = &x / x.norm_scalaropt_dim(2, [1].as_slice(), true);
        let (a, sa) = nearest_neighbours(&x, 10, DEFAULT_MEMORY_BUDGET);
        let (b, sb) = nearest_neighbours(&x, 10, 97 * BYTES_PER_ENTRY * 7); // 7 rows per chunk
        assert_eq!(chunk_rows(97, 97 * BYTES_PER_ENTRY * 7), 7);
        // A chunk's matmul may round differently in the last bit: same neighbours, sims to 1e-6.
        assert!(a.equal(&b));
        assert!(sa.allclose(&sb, 1e-6, 1e-6, false));
        // Brute force: full matrix, self masked, stable sort.
        let mut full = x.matmul(&x.transpose(0, 1));
        let _ = full.fill_diagonal_(f64::NEG_INFINITY, false);
        let (_, order) = full.sort_stable(true, 1, true);
        assert!(a.equal(&order.narrow(1, 0, 10)));
    }
}
