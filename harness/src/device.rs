//! Device names as users write them (`auto`, `cpu`, `cuda`, `cuda:N`), parsed and checked.
use tch::Device;

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
        "auto" => Ok(Device::cuda_if_available()),
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
        if !tch::Cuda::is_available() {
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
        if !tch::Cuda::is_available() {
            assert!(matches!(resolve_device("cuda"), Err(DeviceError::NoCuda(_))));
        }
    }
}
