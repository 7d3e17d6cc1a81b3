//! BN-Inception (Ioffe & Szegedy 2015), the paper's backbone (paper.md §3), laid out exactly as the
//! ImageNet-pretrained PyTorch port the metric-learning literature uses (Cadene's
//! `pretrainedmodels`, `bn_inception-52deb4733.pth`): the same variable names
//! (`conv1_7x7_s2.weight`, `inception_3a_1x1_bn.running_mean`, …) and shapes, so its state dict
//! converts to safetensors by name (`bench/weights/convert_bn_inception.py`).
//!
//! Input: BGR, 0..255, mean [104, 117, 128] subtracted (the data pipeline's `bn_inception`
//! normalisation). Output: 1024 features after global average pooling (the port's 7 × 7 average
//! pool at 224 × 224, any input size here).
use tch::{nn, nn::ModuleT, Tensor};

/// Number of features BN-Inception produces.
pub const FEATURES: i64 = 1024;

/// Convolution (with bias, as in the port) + BatchNorm + ReLU: variables `{name}.*` and `{name}_bn.*`.
#[derive(Debug)]
struct ConvBn {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl ConvBn {
    fn new(p: &nn::Path, name: &str, c_in: i64, c_out: i64, kernel: i64, stride: i64, padding: i64) -> Self {
        let conv = nn::conv2d(p / name, c_in, c_out, kernel, nn::ConvConfig { stride, padding, ..Default::default() });
        let bn = nn::batch_norm2d(p / format!("{name}_bn"), c_out, Default::default());
        Self { conv, bn }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        x.apply(&self.conv).apply_t(&self.bn, train).relu()
    }
}

/// The pooling branch of an inception block.
#[derive(Debug, Clone, Copy)]
enum Pool {
    /// 3 × 3 average, stride 1, padding 1 (padding counted), then a 1 × 1 projection.
    AvgProject(i64),
    /// 3 × 3 max, stride 1, padding 1, then a 1 × 1 projection (block 5b).
    MaxProject(i64),
    /// 3 × 3 max, stride 2, no projection (the reduction blocks 3c and 4e).
    MaxReduce,
}

/// One inception block's widths: the 1 × 1 branch (0: none), the 3 × 3 branch (reduce, out), the
/// double 3 × 3 branch (reduce, first, second), the stride of the 3 × 3 convolutions, the pool branch.
struct BlockSpec {
    name: &'static str,
    c_in: i64,
    one: i64,
    three: (i64, i64),
    double: (i64, i64, i64),
    stride: i64,
    pool: Pool,
}

/// The ten inception blocks of the port, in order (one row each: kept as a table).
#[rustfmt::skip]
const BLOCKS: [BlockSpec; 10] = [
    BlockSpec { name: "3a", c_in: 192, one: 64, three: (64, 64), double: (64, 96, 96), stride: 1, pool: Pool::AvgProject(32) },
    BlockSpec { name: "3b", c_in: 256, one: 64, three: (64, 96), double: (64, 96, 96), stride: 1, pool: Pool::AvgProject(64) },
    BlockSpec { name: "3c", c_in: 320, one: 0, three: (128, 160), double: (64, 96, 96), stride: 2, pool: Pool::MaxReduce },
    BlockSpec { name: "4a", c_in: 576, one: 224, three: (64, 96), double: (96, 128, 128), stride: 1, pool: Pool::AvgProject(128) },
    BlockSpec { name: "4b", c_in: 576, one: 192, three: (96, 128), double: (96, 128, 128), stride: 1, pool: Pool::AvgProject(128) },
    BlockSpec { name: "4c", c_in: 576, one: 160, three: (128, 160), double: (128, 160, 160), stride: 1, pool: Pool::AvgProject(128) },
    BlockSpec { name: "4d", c_in: 608, one: 96, three: (128, 192), double: (160, 192, 192), stride: 1, pool: Pool::AvgProject(128) },
    BlockSpec { name: "4e", c_in: 608, one: 0, three: (128, 192), double: (192, 256, 256), stride: 2, pool: Pool::MaxReduce },
    BlockSpec { name: "5a", c_in: 1056, one: 352, three: (192, 320), double: (160, 224, 224), stride: 1, pool: Pool::AvgProject(128) },
    BlockSpec { name: "5b", c_in: 1024, one: 352, three: (192, 320), double: (192, 224, 224), stride: 1, pool: Pool::MaxProject(128) },
];

/// One inception block: its branches, concatenated along channels in the port's order
/// (1 × 1, 3 × 3, double 3 × 3, pool).
#[derive(Debug)]
struct Block {
    one: Option<ConvBn>,
    three: [ConvBn; 2],
    double: [ConvBn; 3],
    pool: Pool,
    project: Option<ConvBn>,
}

impl Block {
    fn new(p: &nn::Path, s: &BlockSpec) -> Self {
        let n = |branch: &str| format!("inception_{}_{branch}", s.name);
        let one = (s.one > 0).then(|| ConvBn::new(p, &n("1x1"), s.c_in, s.one, 1, 1, 0));
        let three = [
            ConvBn::new(p, &n("3x3_reduce"), s.c_in, s.three.0, 1, 1, 0),
            ConvBn::new(p, &n("3x3"), s.three.0, s.three.1, 3, s.stride, 1),
        ];
        let double = [
            ConvBn::new(p, &n("double_3x3_reduce"), s.c_in, s.double.0, 1, 1, 0),
            ConvBn::new(p, &n("double_3x3_1"), s.double.0, s.double.1, 3, 1, 1),
            ConvBn::new(p, &n("double_3x3_2"), s.double.1, s.double.2, 3, s.stride, 1),
        ];
        let project = match s.pool {
            Pool::AvgProject(c) | Pool::MaxProject(c) => Some(ConvBn::new(p, &n("pool_proj"), s.c_in, c, 1, 1, 0)),
            Pool::MaxReduce => None,
        };
        Self { one, three, double, pool: s.pool, project }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut out = vec![];
        if let Some(one) = &self.one {
            out.push(one.forward_t(x, train));
        }
        out.push(self.three.iter().fold(x.shallow_clone(), |h, c| c.forward_t(&h, train)));
        out.push(self.double.iter().fold(x.shallow_clone(), |h, c| c.forward_t(&h, train)));
        let pooled = match self.pool {
            Pool::AvgProject(_) => x.avg_pool2d([3, 3], [1, 1], [1, 1], true, true, None),
            Pool::MaxProject(_) => x.max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], true),
            Pool::MaxReduce => x.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], true),
        };
        out.push(match &self.project {
            Some(c) => c.forward_t(&pooled, train),
            None => pooled,
        });
        Tensor::cat(&out, 1)
    }
}

/// BN-Inception without its classifier: images N × 3 × H × W → features N × 1024.
#[derive(Debug)]
pub struct BnInception {
    stem: [ConvBn; 3],
    blocks: Vec<Block>,
}

impl BnInception {
    /// Builds the network with its variables directly under `p`, named as in the pretrained port.
    pub fn new(p: &nn::Path) -> Self {
        let stem = [
            ConvBn::new(p, "conv1_7x7_s2", 3, 64, 7, 2, 3),
            ConvBn::new(p, "conv2_3x3_reduce", 64, 64, 1, 1, 0),
            ConvBn::new(p, "conv2_3x3", 64, 192, 3, 1, 1),
        ];
        Self { stem, blocks: BLOCKS.iter().map(|s| Block::new(p, s)).collect() }
    }
}

impl ModuleT for BnInception {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let pool = |h: Tensor| h.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], true);
        let h = pool(self.stem[0].forward_t(x, train));
        let h = pool(self.stem[2].forward_t(&self.stem[1].forward_t(&h, train), train));
        let h = self.blocks.iter().fold(h, |h, b| b.forward_t(&h, train));
        h.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }
}
