//! Stanford Online Products (paper.md §4): `Ebay_train.txt` and `Ebay_test.txt` (a header, then
//! `image_id class_id super_class_id path`); 11,318 train classes (59,551 images), 11,316 test
//! classes (60,502).
use super::{check_counts, read_text, DataError, ImageItem, ImageList};
use std::path::Path;

const EXPECTED: &str = "Ebay_train.txt, Ebay_test.txt and the per-category image folders of Stanford_Online_Products";
const SOURCE: &str = "Stanford Online Products is published by Stanford CVGL (Oh Song et al. 2016, Stanford_Online_Products.zip); point `root` at the folder that holds Ebay_train.txt";

fn read_split(root: &Path, file: &str) -> Result<Vec<ImageItem>, DataError> {
    let (path, text) = read_text("sop", root, file, EXPECTED, SOURCE)?;
    let mut items = vec![];
    for (n, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let parse = |reason: String| DataError::Parse { file: path.clone(), line: n + 1, reason };
        if f.len() != 4 {
            return Err(parse(format!("expected `image_id class_id super_class_id path`, got `{line}`")));
        }
        let class: i64 = f[1].parse().map_err(|_| parse(format!("class_id `{}` is not a number", f[1])))?;
        items.push(ImageItem { path: f[3].into(), class });
    }
    Ok(items)
}

/// Loads the split from the distributed files under `root`.
pub fn load(root: &Path, subset: bool) -> Result<ImageList, DataError> {
    let train = read_split(root, "Ebay_train.txt")?;
    let test = read_split(root, "Ebay_test.txt")?;
    check_counts("sop", "train", &train, (11_318, 59_551), subset)?;
    check_counts("sop", "test", &test, (11_316, 60_502), subset)?;
    Ok(ImageList { root: root.into(), train, test, notes: vec![] })
}
