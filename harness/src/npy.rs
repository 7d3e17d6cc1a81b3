//! Reading and writing NumPy `.npy` files (float32 N × d embeddings, int64 N labels), so any Python
//! model can be scored by `harness eval` and any harness embedding can be read by numpy.
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};
use thiserror::Error;

/// A `.npy` file that cannot be used.
#[derive(Debug, Error)]
pub enum NpyError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a `.npy` file or its header is malformed.
    #[error("{path}: not a valid .npy file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file could not be written (the target is left as it was).
    #[error(transparent)]
    Write(#[from] crate::fsio::FsError),
    /// The array has the wrong dtype or rank.
    #[error("{path}: expected {expected}, found dtype '{descr}' with shape {shape:?}; {hint}")]
    Unexpected {
        /// The file.
        path: PathBuf,
        /// What was expected.
        expected: &'static str,
        /// The dtype found.
        descr: String,
        /// The shape found.
        shape: Vec<i64>,
        /// How to fix it.
        hint: &'static str,
    },
}

/// A parsed `.npy` array: dtype descriptor, shape, raw little-endian data.
struct RawArray {
    descr: String,
    shape: Vec<i64>,
    data: Vec<u8>,
}

fn read_raw(path: &Path) -> Result<RawArray, NpyError> {
    let mut bytes = std::fs::read(path).map_err(|source| NpyError::Io { path: path.into(), source })?;
    let format = |reason: &str| NpyError::Format { path: path.into(), reason: reason.into() };
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(format("missing the \\x93NUMPY magic string"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format(&format!("unsupported format version {v}"))),
    };
    let header = bytes.get(start..start + header_len).ok_or_else(|| format("header is truncated"))?;
    let header = std::str::from_utf8(header).map_err(|_| format("header is not text"))?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))?;
        Some(header[at + key.len() + 2..].trim_start().trim_start_matches(':').trim_start())
    };
    let descr = field("descr")
        .and_then(|s| s.strip_prefix('\'').and_then(|s| s.split('\'').next()))
        .ok_or_else(|| format("header has no 'descr'"))?
        .to_string();
    if field("fortran_order").is_some_and(|s| s.starts_with("True")) {
        return Err(format("Fortran-ordered arrays are not supported; save with np.ascontiguousarray(a)"));
    }
    let shape_text = field("shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| format("header has no 'shape'"))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<i64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| format("shape is not a tuple of integers"))?;
    // Drop the header in place: no second copy of the data.
    bytes.drain(..start + header_len);
    Ok(RawArray { descr, shape, data: bytes })
}

fn expect_len(path: &Path, raw: &RawArray, item: usize) -> Result<(), NpyError> {
    let want = raw.shape.iter().product::<i64>() as usize * item;
    if raw.data.len() != want {
        return Err(NpyError::Format {
            path: path.into(),
            reason: format!("data holds {} bytes, the header's shape {:?} needs {want}", raw.data.len(), raw.shape),
        });
    }
    Ok(())
}

/// Reads a float32 N × d matrix (dtype `<f4`).
pub fn read_embeddings(path: &Path) -> Result<Tensor, NpyError> {
    let raw = read_raw(path)?;
    if raw.descr != "<f4" || raw.shape.len() != 2 {
        return Err(NpyError::Unexpected {
            path: path.into(),
            expected: "a float32 matrix (dtype '<f4', shape (N, d))",
            descr: raw.descr,
            shape: raw.shape,
            hint: "save it with np.save(path, emb.astype(np.float32)) on a 2-D array",
        });
    }
    expect_len(path, &raw, 4)?;
    Ok(tensor_from_le(raw.data, &raw.shape, Kind::Float, 4, |b| f32::from_le_bytes(b.try_into().unwrap())))
}

/// Reads an int64 vector of N labels (dtype `<i8`).
pub fn read_labels(path: &Path) -> Result<Tensor, NpyError> {
    let raw = read_raw(path)?;
    if raw.descr != "<i8" || raw.shape.len() != 1 {
        return Err(NpyError::Unexpected {
            path: path.into(),
            expected: "an int64 vector (dtype '<i8', shape (N,))",
            descr: raw.descr,
            shape: raw.shape,
            hint: "save it with np.save(path, labels.astype(np.int64).ravel())",
        });
    }
    expect_len(path, &raw, 8)?;
    Ok(tensor_from_le(raw.data, &raw.shape, Kind::Int64, 8, |b| i64::from_le_bytes(b.try_into().unwrap())))
}

/// A tensor of `shape` from little-endian bytes: copied once on little-endian hosts, decoded
/// element by element (`decode` on `item`-byte chunks) elsewhere.
fn tensor_from_le<T: tch::kind::Element>(
    data: Vec<u8>,
    shape: &[i64],
    kind: Kind,
    item: usize,
    decode: impl Fn(&[u8]) -> T,
) -> Tensor {
    if cfg!(target_endian = "little") {
        Tensor::from_data_size(&data, shape, kind)
    } else {
        let values: Vec<T> = data.chunks_exact(item).map(decode).collect();
        Tensor::from_slice(&values).view(shape)
    }
}

/// Writes a float32 matrix or an int64 vector as `.npy`, through a temporary file and a rename.
pub fn write(path: &Path, tensor: &Tensor) -> Result<(), NpyError> {
    let t = tensor.to_device(tch::Device::Cpu).contiguous();
    let (descr, data): (&str, Vec<u8>) = match t.kind() {
        Kind::Float => {
            ("<f4", Vec::<f32>::try_from(t.view([-1])).unwrap().iter().flat_map(|v| v.to_le_bytes()).collect())
        }
        Kind::Int64 => {
            ("<i8", Vec::<i64>::try_from(t.view([-1])).unwrap().iter().flat_map(|v| v.to_le_bytes()).collect())
        }
        k => {
            return Err(NpyError::Format { path: path.into(), reason: format!("cannot write dtype {k:?}") });
        }
    };
    let shape = t.size();
    let shape_text = match shape.as_slice() {
        [n] => format!("({n},)"),
        dims => format!("({})", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    crate::fsio::write_atomic_with(path, |tmp| -> std::io::Result<()> {
        let mut f = std::fs::File::create(tmp)?;
        f.write_all(b"\x93NUMPY\x01\x00")?;
        f.write_all(&(header.len() as u16).to_le_bytes())?;
        f.write_all(header.as_bytes())?;
        f.write_all(&data)
    })?;
    Ok(())
}
