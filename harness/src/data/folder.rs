//! A generic image folder `root/<class>/<image>`: classes sorted by name; the first ⌈C/2⌉ classes
//! are the training split and the rest the test split (class-disjoint, as CUB and Cars196 are split).
use super::{DataError, ImageItem, ImageList};
use std::path::Path;

/// Image file endings, matched without regard to case (`.JPG` and `.Png` count).
const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// A file or folder name as text; a name that is not UTF-8 is an error naming it (its bytes could
/// not go into the split's fingerprint or a record).
fn utf8_name(dir: &Path, name: std::ffi::OsString) -> Result<String, DataError> {
    name.into_string().map_err(|n| {
        DataError::Config(format!(
            "{}: the name {:?} is not UTF-8 text; rename it (e.g. with `convmv`) so it can be listed and fingerprinted",
            dir.display(),
            n
        ))
    })
}

/// Lists `root/<class>/<image>` and splits the sorted classes in two halves.
pub fn load(root: &Path) -> Result<ImageList, DataError> {
    let missing = || DataError::Missing {
        dataset: "folder",
        path: root.into(),
        root: root.into(),
        expected: "one sub-folder per class holding .jpg/.jpeg/.png images",
        source_hint: "create it with one folder per class",
    };
    let mut classes: Vec<_> = std::fs::read_dir(root)
        .map_err(|_| missing())?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| utf8_name(root, e.file_name()))
        .collect::<Result<_, _>>()?;
    classes.sort();
    if classes.len() < 2 {
        return Err(DataError::Config(format!(
            "{}: needs at least two class folders, found {}",
            root.display(),
            classes.len()
        )));
    }
    let n_train = classes.len().div_ceil(2);
    let (mut train, mut test) = (vec![], vec![]);
    for (c, name) in classes.iter().enumerate() {
        let mut files: Vec<_> = std::fs::read_dir(root.join(name))
            .map_err(|_| missing())?
            .filter_map(|e| e.ok())
            .map(|e| utf8_name(&root.join(name), e.file_name()))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|f| {
                let ext = Path::new(f).extension().map(|x| x.to_string_lossy().to_lowercase()).unwrap_or_default();
                IMAGE_EXTENSIONS.contains(&ext.as_str())
            })
            .collect();
        files.sort();
        for f in files {
            let item = ImageItem { path: Path::new(name).join(f), class: c as i64 };
            if c < n_train {
                train.push(item)
            } else {
                test.push(item)
            }
        }
    }
    Ok(ImageList { root: root.into(), train, test, notes: vec![] })
}
