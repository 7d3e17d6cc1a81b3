//! Exact k-nearest-neighbour search by cosine similarity, in blocks on the embeddings' device:
//! never an N × N matrix. The test set is query and gallery; a query's own index is excluded by
//! index; ties go to the lower gallery index (paper.md §5).
//!
//! Two paths give the same neighbours. On the CPU (float32), [`nearest_neighbours`] computes each
//! pair of row blocks once (the similarity matrix is symmetric, so half the products) and feeds
//! every similarity to a bounded heap per row in Rust, on all intra-op threads. On other devices it
//! multiplies query chunks against the whole gallery and selects with `topk`.
use tch::{Device, Kind, Tensor};

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

/// Rows of one block of the CPU path: one block of similarities (4 B an entry) fits in
/// `memory_budget` bytes.
pub fn block_rows(n: i64, memory_budget: usize) -> i64 {
    (((memory_budget / 4) as f64).sqrt() as i64).clamp(1, n.max(1))
}

/// The `k` nearest neighbours of every row of `unit` (N × d, unit rows) among the other rows:
/// indices N × k (int64) and similarities N × k, most similar first, ties by lower index.
pub fn nearest_neighbours(unit: &Tensor, k: i64, memory_budget: usize) -> (Tensor, Tensor) {
    if unit.device() == Device::Cpu && unit.kind() == Kind::Float {
        nearest_neighbours_blocked(unit, k, memory_budget)
    } else {
        nearest_neighbours_chunked(unit, k, memory_budget)
    }
}

/// The device path: query chunks against the whole gallery, selection by `topk`.
pub fn nearest_neighbours_chunked(unit: &Tensor, k: i64, memory_budget: usize) -> (Tensor, Tensor) {
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

/// The CPU path: every pair of row blocks (a, b) with b >= a is multiplied once, into one reused
/// buffer; rows of block `a` take the product's rows, rows of block `b` its columns. Each row keeps
/// its best `k` in a bounded heap whose order (value, then lower index) makes the result
/// independent of the order similarities arrive in.
pub fn nearest_neighbours_blocked(unit: &Tensor, k: i64, memory_budget: usize) -> (Tensor, Tensor) {
    let n = unit.size()[0];
    assert!(k >= 1 && k < n, "k = {k} needs 1 <= k < N = {n}");
    assert!(unit.device() == Device::Cpu && unit.kind() == Kind::Float, "the blocked path needs float32 on the CPU");
    let unit = unit.contiguous();
    let b = block_rows(n, memory_budget);
    let mut heaps = RowHeaps::new(n as usize, k as usize);
    let threads = (tch::get_num_threads().max(1)) as usize;
    // One buffer for every block: a fresh allocation per product would page-fault it in each time.
    let buffer = Tensor::empty([b * b], (Kind::Float, Device::Cpu));
    let mut a0 = 0;
    while a0 < n {
        let la = b.min(n - a0);
        let xa = unit.narrow(0, a0, la);
        let mut b0 = a0;
        while b0 < n {
            let lb = b.min(n - b0);
            let mut s = buffer.narrow(0, 0, la * lb).view([la, lb]);
            let _ = xa.mm_out(&s, &unit.narrow(0, b0, lb).transpose(0, 1));
            if b0 == a0 {
                let _ = s.fill_diagonal_(f64::NEG_INFINITY, false);
            }
            heaps.offer_rows(&s, a0 as usize, b0 as usize, threads);
            if b0 != a0 {
                heaps.offer_columns(&s, a0 as usize, b0 as usize, threads);
            }
            b0 += lb;
        }
        a0 += la;
    }
    let (idx, vals) = heaps.into_sorted();
    (Tensor::from_slice(&idx).view([n, k]), Tensor::from_slice(&vals).view([n, k]))
}

/// Whether (v, j) ranks before (w, i): larger similarity, then lower index.
#[inline]
fn better(v: f32, j: i64, w: f32, i: i64) -> bool {
    v > w || (v == w && j < i)
}

/// Per-row bounded heaps of the best `k` (similarity, index) pairs; each root is the worst kept.
struct RowHeaps {
    k: usize,
    vals: Vec<f32>,
    idx: Vec<i64>,
    len: Vec<usize>,
    /// Each row's admission threshold: its root once full, −∞ before.
    worst: Vec<f32>,
}

/// Heaps of consecutive rows, borrowed by one thread.
struct HeapRows<'a> {
    k: usize,
    vals: &'a mut [f32],
    idx: &'a mut [i64],
    len: &'a mut [usize],
    worst: &'a mut [f32],
}

impl HeapRows<'_> {
    /// Offers (v, j) to the heap of local row `r`; callers may skip values below `worst[r]`.
    #[inline]
    fn offer(&mut self, r: usize, v: f32, j: i64) {
        let k = self.k;
        let vals = &mut self.vals[r * k..(r + 1) * k];
        let idx = &mut self.idx[r * k..(r + 1) * k];
        let len = &mut self.len[r];
        if *len < k {
            // Sift up: parents that rank before (v, j) are better, so (v, j) moves above them.
            let mut p = *len;
            while p > 0 {
                let parent = (p - 1) / 2;
                if !better(vals[parent], idx[parent], v, j) {
                    break;
                }
                vals[p] = vals[parent];
                idx[p] = idx[parent];
                p = parent;
            }
            vals[p] = v;
            idx[p] = j;
            *len += 1;
        } else {
            if !better(v, j, vals[0], idx[0]) {
                return;
            }
            // Replace the root and sift down: children worse than (v, j) move up.
            let mut p = 0;
            loop {
                let l = 2 * p + 1;
                if l >= k {
                    break;
                }
                let w = if l + 1 < k && better(vals[l], idx[l], vals[l + 1], idx[l + 1]) { l + 1 } else { l };
                if !better(v, j, vals[w], idx[w]) {
                    break;
                }
                vals[p] = vals[w];
                idx[p] = idx[w];
                p = w;
            }
            vals[p] = v;
            idx[p] = j;
        }
        self.worst[r] = if *len == k { vals[0] } else { f32::NEG_INFINITY };
    }
}

impl RowHeaps {
    fn new(rows: usize, k: usize) -> Self {
        Self {
            k,
            vals: vec![0.0; rows * k],
            idx: vec![0; rows * k],
            len: vec![0; rows],
            worst: vec![f32::NEG_INFINITY; rows],
        }
    }

    /// Rows `first..first + rows` split into at most `parts` consecutive runs of `per` rows.
    fn split(&mut self, first: usize, rows: usize, parts: usize) -> (usize, Vec<HeapRows<'_>>) {
        let k = self.k;
        let per = rows.div_ceil(parts.max(1)).max(1);
        let runs = self.vals[first * k..(first + rows) * k]
            .chunks_mut(per * k)
            .zip(self.idx[first * k..(first + rows) * k].chunks_mut(per * k))
            .zip(self.len[first..first + rows].chunks_mut(per))
            .zip(self.worst[first..first + rows].chunks_mut(per))
            .map(|(((vals, idx), len), worst)| HeapRows { k, vals, idx, len, worst })
            .collect();
        (per, runs)
    }

    /// Offers block `s` (rows × cols, contiguous float32 on the CPU) row-wise: row r is the query
    /// `row0 + r`, column c the gallery item `col0 + c`. Threads split the rows.
    fn offer_rows(&mut self, s: &Tensor, row0: usize, col0: usize, threads: usize) {
        let (rows, cols, data) = block_data(s);
        let (per, runs) = self.split(row0, rows, threads);
        std::thread::scope(|scope| {
            for (t, mut run) in runs.into_iter().enumerate() {
                let data = &data[t * per * cols..];
                scope.spawn(move || {
                    for r in 0..run.len.len() {
                        let row = &data[r * cols..(r + 1) * cols];
                        for (c, &v) in row.iter().enumerate() {
                            if v >= run.worst[r] {
                                run.offer(r, v, (col0 + c) as i64);
                            }
                        }
                    }
                });
            }
        });
    }

    /// Offers block `s` column-wise, as the transposed block: column c is the query `col0 + c`,
    /// row r the gallery item `row0 + r`. Threads split the columns and stream every row.
    fn offer_columns(&mut self, s: &Tensor, row0: usize, col0: usize, threads: usize) {
        let (rows, cols, data) = block_data(s);
        let (per, runs) = self.split(col0, cols, threads);
        std::thread::scope(|scope| {
            for (t, mut run) in runs.into_iter().enumerate() {
                let first = t * per;
                scope.spawn(move || {
                    let width = run.len.len();
                    for r in 0..rows {
                        let part = &data[r * cols + first..r * cols + first + width];
                        for (c, &v) in part.iter().enumerate() {
                            if v >= run.worst[c] {
                                run.offer(c, v, (row0 + r) as i64);
                            }
                        }
                    }
                });
            }
        });
    }

    /// Each row's kept pairs, best first: indices and similarities, N × k row-major.
    fn into_sorted(mut self) -> (Vec<i64>, Vec<f32>) {
        let k = self.k;
        let mut pairs: Vec<(f32, i64)> = Vec::with_capacity(k);
        for r in 0..self.len.len() {
            debug_assert_eq!(self.len[r], k);
            pairs.clear();
            pairs.extend(
                self.vals[r * k..(r + 1) * k].iter().copied().zip(self.idx[r * k..(r + 1) * k].iter().copied()),
            );
            pairs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            for (c, (v, j)) in pairs.iter().enumerate() {
                self.vals[r * k + c] = *v;
                self.idx[r * k + c] = *j;
            }
        }
        (self.idx, self.vals)
    }
}

/// Rows, columns and the values of a contiguous float32 CPU matrix.
fn block_data(s: &Tensor) -> (usize, usize, &[f32]) {
    assert!(s.is_contiguous() && s.kind() == Kind::Float && s.device() == Device::Cpu && s.dim() == 2);
    let (rows, cols) = (s.size()[0] as usize, s.size()[1] as usize);
    // SAFETY: `s` is a contiguous float32 CPU tensor of rows × cols elements; the slice borrows `s`,
    // so the storage outlives it, and nothing writes to it while the slice is alive.
    let data = unsafe { std::slice::from_raw_parts(s.data_ptr() as *const f32, rows * cols) };
    (rows, cols, data)
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

    type Search = fn(&Tensor, i64, usize) -> (Tensor, Tensor);
    const PATHS: [(&str, Search); 2] =
        [("blocked", nearest_neighbours_blocked), ("chunked", nearest_neighbours_chunked)];

    #[test]
    fn own_index_is_excluded_and_a_duplicate_is_the_nearest_neighbour() {
        // Rows 0 and 2 are the same vector: each is the other's nearest neighbour, and neither lists itself.
        let x = unit(&[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]);
        for (name, search) in PATHS {
            let (idx, sim) = search(&x, 3, DEFAULT_MEMORY_BUDGET);
            let idx = Vec::<i64>::try_from(idx.view([-1])).unwrap();
            assert_eq!(&idx[0..3], &[2, 3, 1], "{name}");
            assert_eq!(&idx[6..9], &[0, 3, 1], "{name}");
            assert!((f64::try_from(sim.get(0).get(0)).unwrap() - 1.0).abs() < 1e-6, "{name}");
        }
    }

    #[test]
    fn ties_go_to_the_lower_gallery_index_at_the_boundary_and_in_order() {
        // Query 0 = e0; rows 1..=4 are all at the same angle (tied), row 5 is farther.
        let x = unit(&[[1.0, 0.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [0.0, 1.0]]);
        for (name, search) in PATHS {
            // Budgets of one block and of 1-row blocks: the order similarities arrive in differs.
            for budget in [DEFAULT_MEMORY_BUDGET, 8] {
                let (idx, _) = search(&x, 2, budget);
                assert_eq!(Vec::<i64>::try_from(idx.get(0)).unwrap(), vec![1, 2], "{name} {budget}");
                // Query 3 ties with rows 1, 2, 4 (similarity 1): lower indices first.
                assert_eq!(Vec::<i64>::try_from(idx.get(3)).unwrap(), vec![1, 2], "{name} {budget}");
                let (idx, _) = search(&x, 4, budget);
                assert_eq!(Vec::<i64>::try_from(idx.get(3)).unwrap(), vec![1, 2, 4, 0], "{name} {budget}");
            }
        }
    }

    #[test]
    fn the_fast_path_and_the_exact_path_agree_on_rows_with_and_without_boundary_ties() {
        // Quantised similarities: many exact ties, at the boundary and inside the top k.
        let sim = crate::rng::with_torch_seed(3, || (Tensor::rand([40, 30], tch::kind::FLOAT_CPU) * 5.0).floor());
        let (fi, fv) = top_k_lowest_index_ties(&sim, 6);
        let (ei, ev) = top_k_exact(&sim, 6);
        assert!(fi.equal(&ei) && fv.equal(&ev));
        let (_, order) = sim.sort_stable(true, 1, true);
        assert!(fi.equal(&order.narrow(1, 0, 6)));
    }

    /// Brute force: the full similarity matrix, self masked, a stable sort (ties to lower index).
    fn brute_force(x: &Tensor, k: i64) -> (Tensor, Tensor) {
        let mut full = x.matmul(&x.transpose(0, 1));
        let _ = full.fill_diagonal_(f64::NEG_INFINITY, false);
        let (sorted, order) = full.sort_stable(true, 1, true);
        (order.narrow(1, 0, k), sorted.narrow(1, 0, k))
    }

    #[test]
    fn both_paths_equal_brute_force_at_every_block_size_on_tie_heavy_integer_vectors() {
        // Small-integer vectors: every dot product is exact in float32 whatever the summation order,
        // and duplicates and equal dot products make ties everywhere, at the boundary and inside.
        let x = crate::rng::with_torch_seed(4, || (Tensor::rand([83, 3], tch::kind::FLOAT_CPU) * 4.0).floor() - 1.0);
        for k in [1, 5, 17, 82] {
            let (bi, bv) = brute_force(&x, k);
            for (name, search) in PATHS {
                for budget in [4, 4 * 7 * 7, 4 * 40 * 40, DEFAULT_MEMORY_BUDGET] {
                    let (i, v) = search(&x, k, budget);
                    assert!(i.equal(&bi), "{name}, k {k}, budget {budget}: indices differ");
                    assert!(v.equal(&bv), "{name}, k {k}, budget {budget}: similarities differ");
                }
            }
        }
        assert_eq!(block_rows(83, 4 * 7 * 7), 7);
    }

    #[test]
    fn chunked_search_equals_one_chunk_and_brute_force() {
        let x = crate::rng::with_torch_seed(5, || Tensor::randn([97, 8], tch::kind::FLOAT_CPU));
        let x = &x / x.norm_scalaropt_dim(2, [1].as_slice(), true);
        let (bi, bv) = brute_force(&x, 10);
        assert_eq!(chunk_rows(97, 97 * BYTES_PER_ENTRY * 7), 7);
        for (name, search) in PATHS {
            let (a, sa) = search(&x, 10, DEFAULT_MEMORY_BUDGET);
            let (b, sb) = search(&x, 10, 97 * BYTES_PER_ENTRY * 7);
            // A block's matmul may round differently in the last bit: same neighbours, sims to 1e-6.
            assert!(a.equal(&b), "{name}");
            assert!(sa.allclose(&sb, 1e-6, 1e-6, false), "{name}");
            assert!(a.equal(&bi), "{name}");
            assert!(sa.allclose(&bv, 1e-6, 1e-6, false), "{name}");
        }
    }
}
