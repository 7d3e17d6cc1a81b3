//! Device names as users write them (`auto`, `cpu`, `cuda`, `cuda:N`), parsed and checked, and
//! libtorch's CUDA library, loaded at start-up when the set-up has it.
use std::path::PathBuf;
use std::sync::OnceLock;
use tch::Device;

/// What became of libtorch's CUDA library (`libtorch_cuda.so`, beside the loaded `libtorch_cpu.so`).
///
/// The binary does not link it: `make setup` installs torch without the CUDA libraries it needs
/// (3 GB that a CPU machine never uses), and a binary linked to it would not start there. It is
/// loaded at start-up instead, where it loads, before anything asks libtorch about CUDA: libtorch
/// decides once, on the first question, whether CUDA exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CudaLibrary {
    /// Loaded from this path: CUDA works where a driver and a GPU do.
    Loaded(PathBuf),
    /// Not in the libtorch folder (a CPU-only libtorch).
    Absent(PathBuf),
    /// Present, but it does not load (its CUDA libraries are not installed): CPU only.
    Unloadable {
        /// The library.
        path: PathBuf,
        /// The dynamic loader's reason.
        reason: String,
    },
}

impl std::fmt::Display for CudaLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Loaded(p) => write!(f, "loaded ({})", p.display()),
            Self::Absent(p) => write!(f, "absent ({}): a CPU-only libtorch", p.display()),
            Self::Unloadable { reason, .. } => {
                write!(f, "not loaded, CPU only ({reason}); `make setup-full` installs torch's CUDA libraries")
            }
        }
    }
}

static CUDA_LIBRARY: OnceLock<CudaLibrary> = OnceLock::new();

/// Loads libtorch's CUDA library once (later calls return the first outcome). Call it before any
/// CUDA question to libtorch; [`cuda_available`] and [`resolve_device`] do.
pub fn load_cuda_library() -> &'static CudaLibrary {
    CUDA_LIBRARY.get_or_init(|| {
        let path = libtorch_folder().join("libtorch_cuda.so");
        if !path.exists() {
            return CudaLibrary::Absent(path);
        }
        let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
            return CudaLibrary::Unloadable { path, reason: "the path holds a NUL byte".into() };
        };
        // SAFETY: dlopen with a valid C string; the handle is kept for the life of the process (the
        // library registers libtorch's CUDA backend and must stay loaded), dlerror read at once.
        let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if handle.is_null() {
            // SAFETY: dlerror returns null or a valid C string owned by the loader.
            let reason = unsafe { libc::dlerror() };
            let reason = if reason.is_null() {
                "unknown reason".to_string()
            } else {
                unsafe { std::ffi::CStr::from_ptr(reason) }.to_string_lossy().into_owned()
            };
            // The loader names the library that failed ("libcudnn.so.9: cannot open shared object
            // file: …"): that, not the path of the one asked for, is the reason.
            return CudaLibrary::Unloadable { path, reason };
        }
        CudaLibrary::Loaded(path)
    })
}

/// The folder of the `libtorch_cpu.so` this process mapped, else the build's rpath.
fn libtorch_folder() -> PathBuf {
    crate::build_info::mapped_libtorch_dir().unwrap_or_else(|| PathBuf::from(crate::build_info::LIBTORCH_LIB_DIR))
}

/// Whether libtorch can use a CUDA device (its CUDA library loaded first).
pub fn cuda_available() -> bool {
    load_cuda_library();
    tch::Cuda::is_available()
}

/// A device name that cannot be used here.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Not a device name.
    #[error("unknown device `{0}`: expected `cpu`, `auto`, `cuda` or `cuda:N` (N a GPU index)")]
    Unknown(String),
    /// CUDA asked for, none present.
    #[error("device `{0}`: libtorch sees no CUDA device (run `harness doctor`)")]
    NoCuda(String),
    /// A GPU index past the last GPU.
    #[error("device `{name}`: there are only {count} CUDA devices")]
    NoSuchGpu {
        /// The name given.
        name: String,
        /// GPUs present.
        count: i64,
    },
}

/// Parses `auto | cpu | cuda | cuda:N` without checking that the device exists.
pub fn parse_device(s: &str) -> Result<Device, DeviceError> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(if cuda_available() { Device::Cuda(0) } else { Device::Cpu }),
        "cuda" => Ok(Device::Cuda(0)),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Ok(Device::Cuda(n)),
            _ => Err(DeviceError::Unknown(s.into())),
        },
    }
}

/// Parses a device name and checks that a CUDA device asked for exists.
pub fn resolve_device(s: &str) -> Result<Device, DeviceError> {
    let d = parse_device(s)?;
    if let Device::Cuda(i) = d {
        if !cuda_available() {
            return Err(DeviceError::NoCuda(s.into()));
        }
        let count = tch::Cuda::device_count();
        if (i as i64) >= count {
            return Err(DeviceError::NoSuchGpu { name: s.into(), count });
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_bad_ones_are_refused_with_the_choices() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert_eq!(parse_device("cuda:3").unwrap(), Device::Cuda(3));
        for bad in ["gpu", "cuda:x", "cuda:-1", ""] {
            let e = parse_device(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")) && e.contains("cuda:N"), "{e}");
        }
        if !cuda_available() {
            assert!(matches!(resolve_device("cuda"), Err(DeviceError::NoCuda(_))));
        }
    }
}
