//! Losses written in PyTorch and exported as TorchScript (`plugins/README.md`). The harness owns
//! every learnable parameter: the script is a pure function
//! `forward(embeddings, labels, centers: Optional[Tensor], params: Dict[str, Tensor]) -> loss`,
//! where `loss` is a scalar tensor or a dict with `loss` and optional `classification` and
//! `regularizer`.
use crate::centers::Centers;
use crate::{checks, LossError, LossOutput, MetricLoss};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tch::{nn, CModule, Device, IValue, Kind, Tensor};

/// Names the harness fills in `params` itself; a config may not set them.
pub const RESERVED_PARAMS: [&str; 3] = ["num_classes", "centers_per_class", "dim"];

/// A TorchScript loss: `{kind: torchscript, path: plugins/ms_loss.pt, name: MS, params: {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TorchScriptConfig {
    /// The file written by `torch.jit.save`, relative to the working directory.
    pub path: PathBuf,
    /// The loss's name in reports; its slug is the name lower-cased, other characters as `-`.
    pub name: String,
    /// Numbers handed to the script in `params`, each as a 0-dim float64 tensor.
    #[serde(default)]
    pub params: BTreeMap<String, f64>,
    /// Centres per class K the harness creates and passes as `centers`; 0 passes `None`.
    #[serde(default)]
    pub centers_per_class: i64,
    /// SHA-256 of the file, set when a sweep is planned: a changed script is a different run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl TorchScriptConfig {
    /// Checks every field without reading the file.
    pub fn validate(&self) -> Result<(), LossError> {
        if self.name.trim().is_empty() || self.name.chars().any(char::is_control) {
            return Err(self.problem("`name` must be a non-empty printable name (it labels the report's rows)"));
        }
        if self.centers_per_class < 0 {
            return Err(self.problem("`centers_per_class` must be 0 (no centres) or more"));
        }
        for (key, value) in &self.params {
            if RESERVED_PARAMS.contains(&key.as_str()) {
                return Err(self.problem(&format!(
                    "`params.{key}` is set by the harness (reserved: {}); rename it",
                    RESERVED_PARAMS.join(", ")
                )));
            }
            if !value.is_finite() {
                return Err(self.problem(&format!("`params.{key}` = {value} is not a finite number")));
            }
        }
        Ok(())
    }

    /// The SHA-256 of the file's bytes, hex.
    pub fn file_sha256(&self) -> Result<String, LossError> {
        let bytes = std::fs::read(&self.path).map_err(|e| {
            self.problem(&format!("cannot read it ({e}); the path is relative to the working directory"))
        })?;
        Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Records the file's hash in `sha256`, or checks it against the one recorded.
    pub fn pin(&mut self) -> Result<(), LossError> {
        let now = self.file_sha256()?;
        match &self.sha256 {
            Some(pinned) if *pinned != now => Err(self.problem(&format!(
                "the file changed since this run was planned (SHA-256 {pinned}, now {now}); plan the sweep again, which makes it a new run"
            ))),
            _ => {
                self.sha256 = Some(now);
                Ok(())
            }
        }
    }

    /// Builds the loss: loads the module onto `path`'s device and registers C·K centres under
    /// `path` (as the built-ins do) when `centers_per_class` > 0.
    pub fn build(&self, path: &nn::Path, num_classes: i64, dim: i64) -> Result<TorchScriptLoss, LossError> {
        self.validate()?;
        checks::build_sizes(num_classes, dim)?;
        let mut pinned = self.clone();
        pinned.pin()?;
        let module = CModule::load_on_device(&self.path, path.device()).map_err(|e| {
            self.problem(&format!(
                "not a TorchScript file that this libtorch can load ({}); export the loss with plugins/export.py",
                first_line(&e)
            ))
        })?;
        let centers = match self.centers_per_class {
            0 => None,
            k => Some(Centers::new(path, num_classes, k, dim)?),
        };
        Ok(TorchScriptLoss { config: self.clone(), module, centers, num_classes, dim })
    }

    /// The plan-time check: loads the file and calls it once on a random batch (3 classes × 2
    /// embeddings of size `dim`); the loss must be a finite scalar whose gradient reaches the
    /// embeddings and, when K > 0, the centres.
    pub fn probe(&self, dim: i64) -> Result<(), LossError> {
        let vs = nn::VarStore::new(Device::Cpu);
        let loss = self.build(&vs.root(), 3, dim)?;
        let x = Tensor::randn([6, dim], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = Tensor::from_slice(&[0i64, 0, 1, 1, 2, 2]);
        let out = loss.forward(&x, &y)?;
        let value = f64::try_from(&out.loss)?;
        if !value.is_finite() {
            return Err(
                self.problem(&format!("returned {value} on a random batch of 6 embeddings; expected a finite loss"))
            );
        }
        out.loss.f_backward()?;
        let reaches = |t: &Tensor| t.grad().defined() && t.grad().isfinite().all().int64_value(&[]) != 0;
        if !reaches(&x) {
            return Err(self.problem("no finite gradient reaches the embeddings (is the loss detached from them?)"));
        }
        if let Some(c) = &loss.centers {
            if !reaches(&c.var) {
                return Err(self.problem("no finite gradient reaches the centres; use `centers` in the loss, or set `centers_per_class: 0` if it has none"));
            }
        }
        Ok(())
    }

    fn problem(&self, problem: &str) -> LossError {
        LossError::Plugin { path: self.path.clone(), problem: problem.to_string() }
    }
}

/// libtorch's message without the C++ backtrace that follows it.
fn first_line(e: &tch::TchError) -> String {
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().take_while(|l| !l.starts_with("Exception raised from")).collect();
    lines.join("; ")
}

/// A loaded TorchScript loss with the centres the harness owns.
#[derive(Debug)]
pub struct TorchScriptLoss {
    config: TorchScriptConfig,
    module: CModule,
    centers: Option<Centers>,
    num_classes: i64,
    dim: i64,
}

impl TorchScriptLoss {
    /// `params` as the script receives it: the config's numbers plus `num_classes`,
    /// `centers_per_class` and `dim`, each a 0-dim float64 tensor on the CPU.
    fn params(&self) -> IValue {
        let sizes = [
            ("num_classes", self.num_classes as f64),
            ("centers_per_class", self.config.centers_per_class as f64),
            ("dim", self.dim as f64),
        ];
        let entries = self.config.params.iter().map(|(k, v)| (k.as_str(), *v)).chain(sizes);
        IValue::GenericDict(
            entries.map(|(k, v)| (IValue::String(k.to_string()), IValue::Tensor(Tensor::from(v)))).collect(),
        )
    }

    /// The script's output as a [`LossOutput`]: a scalar tensor, or a dict with `loss`.
    fn output(&self, value: IValue) -> Result<LossOutput, LossError> {
        let mut parts: BTreeMap<String, Tensor> = BTreeMap::new();
        match value {
            IValue::Tensor(t) => {
                parts.insert("loss".into(), t);
            }
            IValue::GenericDict(entries) => {
                for (k, v) in entries {
                    if let (IValue::String(k), IValue::Tensor(v)) = (k, v) {
                        parts.insert(k, v);
                    }
                }
            }
            other => {
                return Err(self.config.problem(&format!(
                    "returned {}; expected a scalar Tensor or a Dict[str, Tensor] with `loss`",
                    ivalue_kind(&other)
                )))
            }
        }
        for (name, t) in &parts {
            if t.dim() != 0 {
                return Err(self.config.problem(&format!(
                    "returned `{name}` of shape {:?}; expected a scalar (0-dim): reduce it with .mean() or .sum()",
                    t.size()
                )));
            }
        }
        let loss = parts.remove("loss").ok_or_else(|| self.config.problem("returned a dict without `loss`"))?;
        let classification = parts.remove("classification").unwrap_or_else(|| loss.shallow_clone());
        Ok(LossOutput { loss, classification, regularizer: parts.remove("regularizer"), active_fraction: None })
    }
}

fn ivalue_kind(v: &IValue) -> &'static str {
    match v {
        IValue::None => "None",
        IValue::Tuple(_) => "a tuple",
        IValue::GenericList(_) | IValue::TensorList(_) | IValue::DoubleList(_) | IValue::IntList(_) => "a list",
        IValue::Double(_) | IValue::Int(_) | IValue::Bool(_) => "a Python number",
        _ => "a value of another type",
    }
}

impl MetricLoss for TorchScriptLoss {
    fn forward(&self, embeddings: &Tensor, labels: &Tensor) -> Result<LossOutput, LossError> {
        checks::check_batch(embeddings, labels, self.dim, Some(self.num_classes))?;
        let centers = match &self.centers {
            Some(c) => IValue::Tensor(c.var.f_to_kind(embeddings.kind())?),
            None => IValue::None,
        };
        let args = [
            IValue::Tensor(embeddings.shallow_clone()),
            IValue::Tensor(labels.shallow_clone()),
            centers,
            self.params(),
        ];
        // The graph executor re-optimises a script after its first calls, which changes float
        // results in the last bits: a run resumed from a checkpoint (a fresh module) would then
        // differ from an uninterrupted one. Every call runs the graph as written (this thread).
        tch::jit::f_set_graph_executor_optimize(false)?;
        let value = self.module.method_is("forward", &args).map_err(|e| {
            self.config.problem(&format!(
                "calling forward(embeddings, labels, centers, params) failed ({}); the convention is in plugins/README.md",
                first_line(&e)
            ))
        })?;
        self.output(value)
    }

    fn centers(&self) -> Option<&Centers> {
        self.centers.as_ref()
    }
}
