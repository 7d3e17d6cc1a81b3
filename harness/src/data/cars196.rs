//! Cars196 (paper.md §4): `cars_annos.mat` (struct array `annotations` with `relative_im_path`,
//! `class` 1..196, bounding box and the classification `test` flag, which metric learning ignores)
//! and `car_ims/`; classes 1–98 train (8,054 images), 99–196 test (8,131).
use super::mat::{self, first_number, text};
use super::{check_counts, DataError, ImageItem, ImageList};
use std::path::Path;

const EXPECTED: &str = "cars_annos.mat and the car_ims/ folder of Stanford Cars";
const SOURCE: &str = "Cars196 (Stanford Cars, Krause et al. 2013) is distributed as car_ims.tgz plus cars_annos.mat; point `root` at the folder that holds cars_annos.mat";

/// Loads the split from `cars_annos.mat` under `root`.
pub fn load(root: &Path, subset: bool) -> Result<ImageList, DataError> {
    let path = root.join("cars_annos.mat");
    if !path.is_file() {
        return Err(DataError::Missing {
            dataset: "cars196",
            path,
            root: root.into(),
            expected: EXPECTED,
            source_hint: SOURCE,
        });
    }
    let parse = |reason: String| DataError::Parse { file: path.clone(), line: 0, reason };
    let mat = mat::read(&path)?;
    if !mat.contains("annotations") {
        return Err(parse("no variable `annotations` (expected the struct array of Stanford Cars)".into()));
    }
    let ann = &mat["annotations"];
    let fields = ann.fieldnames().ok_or_else(|| parse("`annotations` is not a struct array".into()))?;
    for f in ["relative_im_path", "class"] {
        if !fields.iter().any(|x| x == f) {
            return Err(parse(format!("`annotations` has no field `{f}` (fields: {})", fields.join(", "))));
        }
    }
    let n: usize = ann.dim().iter().product();
    let (mut train, mut test) = (vec![], vec![]);
    for i in 0..n {
        let a = &ann[i];
        let rel = text(&a["relative_im_path"])
            .ok_or_else(|| parse(format!("annotations({}).relative_im_path is not text", i + 1)))?;
        let class = first_number(&a["class"])
            .ok_or_else(|| parse(format!("annotations({}).class is not a number", i + 1)))? as i64;
        if !(1..=196).contains(&class) {
            return Err(parse(format!("annotations({}).class = {class} is outside 1..=196", i + 1)));
        }
        let item = ImageItem { path: rel.trim().into(), class };
        if class <= 98 {
            train.push(item)
        } else {
            test.push(item)
        }
    }
    check_counts("cars196", "train", &train, (98, 8_054), subset)?;
    check_counts("cars196", "test", &test, (98, 8_131), subset)?;
    Ok(ImageList { root: root.into(), train, test, notes: vec![] })
}
