//! CUB-200-2011 (paper.md §4): `images.txt`, `image_class_labels.txt`, `images/`; classes 1–100
//! train (5,864 images), 101–200 test (5,924). `train_test_split.txt` is a classification split and
//! is never used.
use super::{check_counts, read_text, DataError, ImageItem, ImageList};
use std::collections::HashMap;
use std::path::Path;

const EXPECTED: &str = "images.txt, image_class_labels.txt and the images/ folder of CUB_200_2011";
const SOURCE: &str = "CUB-200-2011 is published by Caltech (Wah et al. 2011, CUB_200_2011.tgz); point `root` at the folder that holds images.txt";

/// Loads the split from the distributed files under `root`.
pub fn load(root: &Path, subset: bool) -> Result<ImageList, DataError> {
    let (ipath, images) = read_text("cub", root, "images.txt", EXPECTED, SOURCE)?;
    let (lpath, labels) = read_text("cub", root, "image_class_labels.txt", EXPECTED, SOURCE)?;
    let mut path_of = HashMap::new();
    for (n, line) in images.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let (id, path) = line.trim().split_once(' ').ok_or_else(|| DataError::Parse {
            file: ipath.clone(),
            line: n + 1,
            reason: format!("expected `<image id> <path>`, got `{line}`"),
        })?;
        path_of.insert(id.to_string(), format!("images/{path}"));
    }
    let (mut train, mut test) = (vec![], vec![]);
    for (n, line) in labels.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let parse = |reason: String| DataError::Parse { file: lpath.clone(), line: n + 1, reason };
        let (id, class) =
            line.trim().split_once(' ').ok_or_else(|| parse(format!("expected `<image id> <class>`, got `{line}`")))?;
        let class: i64 = class.trim().parse().map_err(|_| parse(format!("class `{class}` is not a number")))?;
        if !(1..=200).contains(&class) {
            return Err(parse(format!("class {class} is outside 1..=200")));
        }
        let path = path_of.get(id).ok_or_else(|| parse(format!("image id {id} is not in images.txt")))?;
        let item = ImageItem { path: path.into(), class };
        if class <= 100 {
            train.push(item)
        } else {
            test.push(item)
        }
    }
    check_counts("cub", "train", &train, (100, 5_864), subset)?;
    check_counts("cub", "test", &test, (100, 5_924), subset)?;
    Ok(ImageList { root: root.into(), train, test, notes: vec![] })
}
