//! Omniglot (Lake, Salakhutdinov & Tenenbaum 2015) as distributed: one or more background folders
//! (`images_background`, `images_evaluation`, `images_background_small1`, …), each laid out as
//! `<alphabet>/character<NN>/<id>_<drawer>.png`. A character is a class. The distributed sets
//! overlap (the two small background sets both hold Greek and Latin, byte for byte), so characters
//! are compared by content: a character whose drawings are byte-identical to one already read is
//! the same class and is read once. The split is by class: whole alphabets (the default: the
//! sorted alphabets' first half trains, the rest tests), or the sorted characters in halves.
use super::{DataError, ImageItem, ImageList};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

const SOURCE: &str = "Omniglot is published by Brenden Lake (github.com/brendenlake/omniglot, python/images_background.zip and the other zips); unzip them into one folder and point `root` at it";

/// The distributed folders and their (alphabets, characters): a folder of one of these names must
/// hold exactly these unless the config declares a `subset`.
pub const KNOWN_FOLDERS: [(&str, usize, usize); 4] = [
    ("images_background", 30, 964),
    ("images_evaluation", 20, 659),
    ("images_background_small1", 5, 136),
    ("images_background_small2", 5, 156),
];

/// Drawings of every character (twenty people drew each once).
pub const DRAWINGS: usize = 20;

/// Settings of `kind: omniglot`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OmniglotDataset {
    /// Folder holding the background folders (or itself one background folder of alphabets).
    pub root: PathBuf,
    /// The background folders to read, under `root`; empty: every sub-folder named `images_*`, or
    /// `root` itself when it has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folders: Vec<String>,
    /// How the classes are split.
    #[serde(default)]
    pub split: OmniglotSplit,
    /// A deliberately partial copy: skip the count assertions (known folders, 20 drawings).
    #[serde(default)]
    pub subset: bool,
}

/// The class-disjoint split rule of Omniglot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OmniglotSplit {
    /// Whole alphabets: the first ⌈A/2⌉ of the sorted alphabet names train, the rest test (no
    /// script is seen in both splits, as Omniglot's own background/evaluation sets are split).
    #[default]
    Alphabets,
    /// The sorted (alphabet, character) names in halves: the first ⌈C/2⌉ train.
    Characters,
}

/// One character as found on disk.
struct Character {
    /// Its folder, relative to the root.
    dir: PathBuf,
    alphabet: String,
    /// Its PNG files, relative to the root, sorted.
    files: Vec<PathBuf>,
    /// SHA-256 of its files' sorted content hashes (names play no part).
    content: [u8; 32],
}

/// Loads the characters of the configured folders, merges duplicates by content and splits them.
pub fn load(cfg: &OmniglotDataset) -> Result<ImageList, DataError> {
    let root = &cfg.root;
    let folders = background_folders(cfg)?;
    let mut chars = vec![];
    for folder in &folders {
        let found = characters(root, folder)?;
        check_folder(folder, &found, cfg.subset)?;
        chars.extend(found);
    }
    let (kept, merged) = merge_duplicates(chars);
    if kept.len() < 2 {
        return Err(DataError::Config(format!(
            "{}: needs at least two characters, found {}",
            root.display(),
            kept.len()
        )));
    }
    let train_chars = train_characters(&kept, cfg.split);
    if train_chars.len() == kept.len() {
        return Err(DataError::Config(format!(
            "{}: `split: alphabets` needs at least two alphabets, found one; use `split: characters`",
            root.display()
        )));
    }
    let (mut train, mut test) = (vec![], vec![]);
    for (class, c) in kept.iter().enumerate() {
        let side = if train_chars.contains(&class) { &mut train } else { &mut test };
        side.extend(c.files.iter().map(|f| ImageItem { path: f.clone(), class: class as i64 }));
    }
    let merged_total: usize = merged.values().sum();
    let mut notes = vec![format!(
        "folders      {} ({} character folders read)",
        folders
            .iter()
            .map(|f| if f.as_os_str().is_empty() { ".".into() } else { f.display().to_string() })
            .collect::<Vec<_>>()
            .join(", "),
        kept.len() + merged_total
    )];
    let per_alphabet: Vec<String> = merged.iter().map(|(a, n)| format!("{a} {n}")).collect();
    notes.push(if merged_total == 0 {
        "merged       0 characters: no character folder repeats another's drawings".into()
    } else {
        format!(
            "merged       {merged_total} character folders whose drawings are byte-identical to a folder read before ({}): each is one class",
            per_alphabet.join(", ")
        )
    });
    notes.push(format!("split        {}", split_rule(cfg.split)));
    Ok(ImageList { root: root.clone(), train, test, notes })
}

/// What the split rule is, in words.
fn split_rule(split: OmniglotSplit) -> &'static str {
    match split {
        OmniglotSplit::Alphabets => {
            "by alphabet: the first half (rounded up) of the sorted alphabet names train, the rest test"
        }
        OmniglotSplit::Characters => {
            "by character: the first half (rounded up) of the sorted alphabet/character names train, the rest test"
        }
    }
}

/// The background folders to read, relative to the root (an empty path: the root itself).
fn background_folders(cfg: &OmniglotDataset) -> Result<Vec<PathBuf>, DataError> {
    let missing = |path: PathBuf, expected: &'static str| DataError::Missing {
        dataset: "omniglot",
        path,
        root: cfg.root.clone(),
        expected,
        source_hint: SOURCE,
    };
    if !cfg.folders.is_empty() {
        for f in &cfg.folders {
            if !cfg.root.join(f).is_dir() {
                return Err(missing(
                    cfg.root.join(f),
                    "each folder named in `folders`, holding <alphabet>/character<NN>/*.png",
                ));
            }
        }
        return Ok(cfg.folders.iter().map(PathBuf::from).collect());
    }
    let entries = std::fs::read_dir(&cfg.root).map_err(|_| {
        missing(cfg.root.clone(), "background folders (images_background, …) or <alphabet>/character<NN>/*.png")
    })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("images_"))
        .map(PathBuf::from)
        .collect();
    found.sort();
    Ok(if found.is_empty() { vec![PathBuf::new()] } else { found })
}

/// Sorted sub-folder names of `dir` (names that are not UTF-8 are errors naming them).
fn sub_folders(dir: &Path) -> Result<Vec<String>, DataError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| DataError::Config(format!("{}: cannot list: {e}", dir.display())))?;
    let mut names = vec![];
    for e in entries.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()) {
        names.push(e.file_name().into_string().map_err(|n| {
            DataError::Config(format!("{}: the name {n:?} is not UTF-8 text; rename it", dir.display()))
        })?);
    }
    names.sort();
    Ok(names)
}

/// Every character of one background folder, in sorted (alphabet, character) order, with its
/// content hash; a file that cannot be read or is not a PNG is an error naming it.
fn characters(root: &Path, folder: &Path) -> Result<Vec<Character>, DataError> {
    let mut out = vec![];
    for alphabet in sub_folders(&root.join(folder))? {
        for ch in sub_folders(&root.join(folder).join(&alphabet))? {
            let dir = folder.join(&alphabet).join(&ch);
            let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(&dir))
                .map_err(|e| DataError::Config(format!("{}: cannot list: {e}", root.join(&dir).display())))?
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x.eq_ignore_ascii_case("png")))
                .map(|e| dir.join(e.file_name()))
                .collect();
            files.sort();
            let mut hashes = files.iter().map(|f| png_hash(&root.join(f))).collect::<Result<Vec<_>, _>>()?;
            hashes.sort_unstable();
            let content: [u8; 32] = hashes.iter().fold(Sha256::new(), |h, x| h.chain_update(x)).finalize().into();
            out.push(Character { dir, alphabet: alphabet.clone(), files, content });
        }
    }
    Ok(out)
}

/// SHA-256 of a PNG file's bytes; a file that cannot be read or lacks the PNG signature is an error.
fn png_hash(path: &Path) -> Result<[u8; 32], DataError> {
    let bytes =
        std::fs::read(path).map_err(|e| DataError::Image { path: path.into(), reason: format!("cannot read: {e}") })?;
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err(DataError::Image {
            path: path.into(),
            reason: "not a PNG (Omniglot's drawings are PNG files); replace it with the file of the official download"
                .into(),
        });
    }
    Ok(Sha256::digest(&bytes).into())
}

/// A known folder holds its published counts, and every character 20 drawings, unless `subset`.
fn check_folder(folder: &Path, chars: &[Character], subset: bool) -> Result<(), DataError> {
    if subset {
        return Ok(());
    }
    let name = folder.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if let Some(&(_, alphabets, characters)) = KNOWN_FOLDERS.iter().find(|k| k.0 == name) {
        let found_alphabets = chars.iter().map(|c| &c.alphabet).collect::<BTreeSet<_>>().len();
        if (found_alphabets, chars.len()) != (alphabets, characters) {
            return Err(DataError::Config(format!(
                "omniglot: {name} holds {found_alphabets} alphabets and {} characters; the distributed folder holds {alphabets} and {characters}. A partial copy must be declared (`subset: true`, `--subset` for `harness data check`)",
                chars.len()
            )));
        }
    }
    if let Some(c) = chars.iter().find(|c| c.files.len() != DRAWINGS) {
        return Err(DataError::Config(format!(
            "omniglot: {} holds {} drawings; every Omniglot character has {DRAWINGS}. A partial copy must be declared (`subset: true`, `--subset` for `harness data check`)",
            c.dir.display(),
            c.files.len()
        )));
    }
    Ok(())
}

/// The characters with duplicates removed (the first folder read keeps each), sorted by
/// (alphabet, folder), and how many were merged per alphabet.
fn merge_duplicates(chars: Vec<Character>) -> (Vec<Character>, BTreeMap<String, usize>) {
    let mut seen: HashMap<[u8; 32], ()> = HashMap::new();
    let mut merged: BTreeMap<String, usize> = BTreeMap::new();
    let mut kept = vec![];
    for c in chars {
        if seen.insert(c.content, ()).is_some() {
            *merged.entry(c.alphabet.clone()).or_default() += 1;
        } else {
            kept.push(c);
        }
    }
    kept.sort_by(|a, b| {
        (&a.alphabet, a.dir.file_name()).cmp(&(&b.alphabet, b.dir.file_name())).then(a.dir.cmp(&b.dir))
    });
    (kept, merged)
}

/// Positions (class ids) of the training characters under the split rule.
fn train_characters(kept: &[Character], split: OmniglotSplit) -> BTreeSet<usize> {
    match split {
        OmniglotSplit::Alphabets => {
            let alphabets: Vec<&String> =
                kept.iter().map(|c| &c.alphabet).collect::<BTreeSet<_>>().into_iter().collect();
            let train: BTreeSet<&String> = alphabets[..alphabets.len().div_ceil(2)].iter().copied().collect();
            (0..kept.len()).filter(|&i| train.contains(&kept[i].alphabet)).collect()
        }
        OmniglotSplit::Characters => (0..kept.len().div_ceil(2)).collect(),
    }
}
