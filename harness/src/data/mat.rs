//! MATLAB v5 files (`.mat`) as the data sets distribute them (Cars196's `cars_annos.mat`,
//! Flowers-102's `imagelabels.mat`), read through `matrw`, with typed access that never panics.
use super::DataError;
use std::path::Path;

/// Reads a MAT v5/v7 file; an unreadable or malformed file is an error naming it.
pub fn read(path: &Path) -> Result<matrw::MatFile, DataError> {
    let parse = |reason: String| DataError::Parse { file: path.into(), line: 0, reason };
    let mut bytes = std::fs::read(path).map_err(|e| parse(format!("cannot read: {e}")))?;
    normalize_header_text(&mut bytes);
    matrw::load_matfile_from_u8(&bytes)
        .map_err(|e| parse(format!("cannot read the MAT file (a MATLAB v5/v7 file is expected): {e:?}")))
}

/// The first 116 bytes of a MAT v5 file are free descriptive text (MAT-file format spec); MATLAB
/// writes `MATLAB 5.0 MAT-file, Platform: …`, scipy and Octave write other wording that the `matrw`
/// parser rejects. Rewrite the text, never the data, to MATLAB's wording when it is a v5 header.
fn normalize_header_text(bytes: &mut [u8]) {
    const MATLAB: &[u8] = b"MATLAB 5.0 MAT-file, ";
    if bytes.len() >= 128 && bytes.starts_with(b"MATLAB 5.0 MAT-file") && !bytes.starts_with(MATLAB) {
        let mut text = [b' '; 116];
        text[..MATLAB.len()].copy_from_slice(MATLAB);
        bytes[..116].copy_from_slice(&text);
    }
}

/// Every element of a numeric MAT array as f64, whatever its stored type (`matrw`'s typed getters
/// panic on a type mismatch, so dispatch on the type here); `None` for text, structs and cells.
pub fn numbers(v: &matrw::MatVariable) -> Option<Vec<f64>> {
    use matrw::MatlabType as T;
    fn all<X: Copy>(x: &[X], f: impl Fn(X) -> f64) -> Vec<f64> {
        x.iter().map(|&v| f(v)).collect()
    }
    Some(match v.numeric_type()? {
        T::U8(x) => all(x, f64::from),
        T::I8(x) => all(x, f64::from),
        T::U16(x) => all(x, f64::from),
        T::I16(x) => all(x, f64::from),
        T::U32(x) => all(x, f64::from),
        T::I32(x) => all(x, f64::from),
        T::U64(x) => all(x, |v| v as f64),
        T::I64(x) => all(x, |v| v as f64),
        T::F32(x) => all(x, f64::from),
        T::F64(x) => x.clone(),
        _ => return None,
    })
}

/// The first element of a numeric MAT array.
pub fn first_number(v: &matrw::MatVariable) -> Option<f64> {
    numbers(v)?.first().copied()
}

/// A MAT char array as a string.
pub fn text(v: &matrw::MatVariable) -> Option<String> {
    use matrw::MatlabType as T;
    match v.numeric_type()? {
        T::UTF8(c) | T::UTF16(c) => Some(c.iter().collect()),
        T::U8(b) => Some(b.iter().map(|&x| x as char).collect()),
        T::U16(b) => Some(b.iter().filter_map(|&x| char::from_u32(x as u32)).collect()),
        _ => None,
    }
}
