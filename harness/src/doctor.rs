//! `harness doctor`: what the harness sees of its libtorch, threads and GPUs.
use std::fmt::Write as _;

/// What `doctor` found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DoctorReport {
    /// Harness version.
    pub harness: String,
    /// tch crate version.
    pub tch: String,
    /// libtorch version found at build time.
    pub libtorch: String,
    /// libtorch library folder (the embedded rpath).
    pub libtorch_lib_dir: String,
    /// The libtorch folder this process loaded (differs from the rpath under `LD_LIBRARY_PATH`).
    pub libtorch_loaded_dir: String,
    /// The version of the loaded libtorch.
    pub libtorch_loaded: String,
    /// What became of libtorch's CUDA library at start-up (loaded, absent, or why it did not load).
    pub cuda_library: String,
    /// Threads libtorch uses on the CPU.
    pub cpu_threads: i32,
    /// Whether libtorch sees a CUDA device.
    pub cuda_available: bool,
    /// Whether cuDNN is usable.
    pub cudnn_available: bool,
    /// Number of CUDA devices.
    pub cuda_devices: i64,
    /// GPU names as the NVIDIA driver reports them (empty without a driver).
    pub gpu_names: Vec<String>,
    /// Problems found; `doctor` exits non-zero when there is any.
    pub problems: Vec<String>,
}

/// Inspects libtorch: runs a small computation, checks CUDA visibility against the driver.
pub fn inspect() -> DoctorReport {
    let mut problems = vec![];
    let smoke = std::panic::catch_unwind(|| {
        let a = tch::Tensor::f_ones([2, 2], tch::kind::FLOAT_CPU)?;
        let s = a.f_matmul(&a)?.f_sum(tch::Kind::Float)?;
        f64::try_from(s)
    });
    match smoke {
        Ok(Ok(v)) if (v - 8.0).abs() < 1e-6 => {}
        Ok(Ok(v)) => problems.push(format!("libtorch computed a wrong value in a 2×2 matmul test ({v}, expected 8)")),
        Ok(Err(e)) => problems.push(format!("libtorch failed a 2×2 matmul test: {e}")),
        Err(_) => problems.push("libtorch panicked in a 2×2 matmul test".into()),
    }
    let lib_dir = crate::build_info::LIBTORCH_LIB_DIR.to_string();
    let (loaded_dir, loaded) = loaded_libtorch(&mut problems);
    let cuda_library = crate::device::load_cuda_library();
    let cuda_available = crate::device::cuda_available();
    let gpu_names = nvidia_gpu_names();
    if !gpu_names.is_empty() && !cuda_available {
        use crate::device::CudaLibrary;
        problems.push(format!(
            "an NVIDIA GPU is present ({}) but libtorch cannot use it: {}",
            gpu_names.join(", "),
            match cuda_library {
                CudaLibrary::Loaded(_) => "its CUDA library is loaded, so the driver or the GPU refused (run nvidia-smi)".to_string(),
                CudaLibrary::Absent(_) => "this libtorch has no CUDA library (a CPU-only torch wheel); install a CUDA build of torch (the Makefile's TORCH_VERSION) and rebuild".into(),
                CudaLibrary::Unloadable { reason, .. } => format!("its CUDA library does not load ({reason}); run `make setup-full`"),
            }
        ));
    }
    if crate::build_info::LIBTORCH_VERSION == "unknown" {
        problems.push("the libtorch version could not be read at build time (no version.py or build-version beside the library folder)".into());
    }
    DoctorReport {
        harness: crate::build_info::HARNESS_VERSION.into(),
        tch: crate::build_info::TCH_VERSION.into(),
        libtorch: crate::build_info::LIBTORCH_VERSION.into(),
        libtorch_lib_dir: lib_dir,
        libtorch_loaded_dir: loaded_dir,
        libtorch_loaded: loaded,
        cuda_library: cuda_library.to_string(),
        cpu_threads: tch::get_num_threads(),
        cuda_available,
        cudnn_available: tch::Cuda::cudnn_is_available(),
        cuda_devices: tch::Cuda::device_count(),
        gpu_names,
        problems,
    }
}

/// The loaded libtorch's folder and version ("unknown" when unreadable); a problem when it is
/// another release than the one the binary was built against.
fn loaded_libtorch(problems: &mut Vec<String>) -> (String, String) {
    let (dir, loaded) = crate::build_info::loaded_libtorch()
        .map(|(d, v)| (d.display().to_string(), v))
        .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
    let release = |v: &str| v.split('+').next().unwrap_or(v).to_string();
    let built = crate::build_info::LIBTORCH_VERSION;
    if loaded != "unknown" && release(&loaded) != release(built) {
        problems.push(format!(
            "the loaded libtorch ({loaded} in {dir}) is another release than the one the binary was built against ({built}): rebuild, or point LD_LIBRARY_PATH at a torch=={} lib folder",
            release(built)
        ));
    }
    (dir, loaded)
}

/// GPU names from `nvidia-smi`, empty when there is no NVIDIA driver.
fn nvidia_gpu_names() -> Vec<String> {
    let Ok(out) = std::process::Command::new("nvidia-smi").args(["--query-gpu=name", "--format=csv,noheader"]).output()
    else {
        return vec![];
    };
    if !out.status.success() {
        return vec![];
    }
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
}

impl DoctorReport {
    /// A human-readable listing, one fact a line.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let yes = |b: bool| if b { "yes" } else { "no" };
        let _ = writeln!(s, "harness          {}", self.harness);
        let _ = writeln!(s, "tch              {}", self.tch);
        let _ = writeln!(s, "libtorch         {}", self.libtorch);
        let _ = writeln!(s, "libtorch folder  {}", self.libtorch_lib_dir);
        let _ = writeln!(s, "loaded libtorch  {} in {}", self.libtorch_loaded, self.libtorch_loaded_dir);
        let _ = writeln!(s, "CUDA library     {}", self.cuda_library);
        let _ = writeln!(s, "CPU threads      {}", self.cpu_threads);
        let _ = writeln!(s, "CUDA available   {}", yes(self.cuda_available));
        let _ = writeln!(s, "cuDNN available  {}", yes(self.cudnn_available));
        let _ = writeln!(s, "CUDA devices     {}", self.cuda_devices);
        let gpus = if self.gpu_names.is_empty() { "none".to_string() } else { self.gpu_names.join(", ") };
        let _ = writeln!(s, "GPUs (driver)    {gpus}");
        for p in &self.problems {
            let _ = writeln!(s, "problem: {p}");
        }
        s
    }
}
