//! Oxford Flowers-102 (Nilsback & Zisserman 2008) as distributed: `jpg/image_NNNNN.jpg` and
//! `imagelabels.mat` (variable `labels`, the class 1..102 of image i). Split by class, as CUB is:
//! classes 1–51 train (3,493 images), 52–102 test (4,696). The official `setid.mat` is a
//! classification split and is never used.
use super::{check_counts, mat, DataError, ImageItem, ImageList};
use std::path::{Path, PathBuf};

const EXPECTED: &str = "imagelabels.mat and the jpg/ folder (image_00001.jpg …) of Oxford Flowers-102";
const SOURCE: &str = "Flowers-102 is published by Oxford's Visual Geometry Group (102flowers.tgz and imagelabels.mat); point `root` at the folder that holds imagelabels.mat and jpg/";

/// The standard data set: 8,189 images of 102 classes.
pub const IMAGES: usize = 8_189;
/// Classes 1..=CLASSES.
pub const CLASSES: i64 = 102;
/// Classes 1..=TRAIN_CLASSES are the training split, the rest the test split.
pub const TRAIN_CLASSES: i64 = 51;
/// Standard (classes, images) of the training split.
pub const TRAIN_COUNTS: (usize, usize) = (51, 3_493);
/// Standard (classes, images) of the test split.
pub const TEST_COUNTS: (usize, usize) = (51, 4_696);

/// Loads the split from `imagelabels.mat` and `jpg/` under `root`. Refused before any run: a missing
/// `imagelabels.mat`, a label count other than the number of images in `jpg/` (a `subset` may hold
/// fewer images than labels), a label that is not an integer in 1..=102, and an image that cannot
/// be opened or does not start as a JPEG does (its decoding is checked by `data check --decode`).
pub fn load(root: &Path, subset: bool) -> Result<ImageList, DataError> {
    let path = root.join("imagelabels.mat");
    if !path.is_file() {
        return Err(DataError::Missing {
            dataset: "flowers102",
            path,
            root: root.into(),
            expected: EXPECTED,
            source_hint: SOURCE,
        });
    }
    let labels = read_labels(&path)?;
    let numbers = image_numbers(root)?;
    let parse = |reason: String| DataError::Parse { file: path.clone(), line: 0, reason };
    if !subset && numbers.len() != labels.len() {
        return Err(parse(format!(
            "holds {} labels but {} holds {} images (image_NNNNN.jpg); one label per image is expected (a partial copy of the images needs `subset: true`)",
            labels.len(),
            root.join("jpg").display(),
            numbers.len()
        )));
    }
    let (mut train, mut test) = (vec![], vec![]);
    for n in numbers {
        let rel = PathBuf::from(format!("jpg/image_{n:05}.jpg"));
        let class = *labels.get(n - 1).ok_or_else(|| {
            parse(format!(
                "holds {} labels, but {} has no label (image numbers start at 1)",
                labels.len(),
                rel.display()
            ))
        })?;
        check_jpeg(&root.join(&rel))?;
        let item = ImageItem { path: rel, class };
        if class <= TRAIN_CLASSES {
            train.push(item)
        } else {
            test.push(item)
        }
    }
    check_counts("flowers102", "train", &train, TRAIN_COUNTS, subset)?;
    check_counts("flowers102", "test", &test, TEST_COUNTS, subset)?;
    Ok(ImageList { root: root.into(), train, test, notes: vec![] })
}

/// The variable `labels` of `imagelabels.mat`: one class in 1..=102 per image, in image order.
fn read_labels(path: &Path) -> Result<Vec<i64>, DataError> {
    let parse = |reason: String| DataError::Parse { file: path.into(), line: 0, reason };
    let file = mat::read(path)?;
    if !file.contains("labels") {
        return Err(parse("no variable `labels` (expected the 1 × 8,189 class numbers of Flowers-102)".into()));
    }
    let values = mat::numbers(&file["labels"]).ok_or_else(|| parse("`labels` is not a numeric array".into()))?;
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v.fract() == 0.0 && (1.0..=CLASSES as f64).contains(&v) {
                Ok(v as i64)
            } else {
                Err(parse(format!("labels({}) = {v} is not a class in 1..={CLASSES} (image_{:05}.jpg)", i + 1, i + 1)))
            }
        })
        .collect()
}

/// The numbers N of the `jpg/image_NNNNN.jpg` files, ascending; other files are ignored.
fn image_numbers(root: &Path) -> Result<Vec<usize>, DataError> {
    let dir = root.join("jpg");
    let entries = std::fs::read_dir(&dir).map_err(|_| DataError::Missing {
        dataset: "flowers102",
        path: dir.clone(),
        root: root.into(),
        expected: EXPECTED,
        source_hint: SOURCE,
    })?;
    let mut numbers: Vec<usize> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let digits = name.strip_prefix("image_")?.strip_suffix(".jpg")?;
            (digits.len() == 5).then(|| digits.parse::<usize>().ok()).flatten().filter(|&n| n > 0)
        })
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

/// An image that can be opened and starts with a JPEG's start-of-image marker.
fn check_jpeg(path: &Path) -> Result<(), DataError> {
    use std::io::Read;
    let bad = |reason: String| DataError::Image { path: path.into(), reason };
    let mut head = [0u8; 3];
    let mut f = std::fs::File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
    let n = f.read(&mut head).map_err(|e| bad(format!("cannot read: {e}")))?;
    if n < 3 || head != [0xFF, 0xD8, 0xFF] {
        return Err(bad(format!(
            "not a JPEG (its first bytes are {:02x?}, a JPEG starts ff d8 ff); replace it with the file of the official download",
            &head[..n]
        )));
    }
    Ok(())
}
