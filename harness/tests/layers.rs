//! The harness's modules form layers that only point down (see the issue note and lib.rs): every
//! `crate::…` reference in a module's code names a module of a strictly lower layer. A new module
//! must be placed in the table below; an upward or sideways reference fails here, naming both ends.
use std::collections::BTreeMap;
use std::path::Path;

/// (module, layer); lower layers know nothing of higher ones.
const LAYERS: [(&str, u8); 27] = [
    // Foundations: no knowledge of runs.
    ("build_info", 0),
    ("rng", 0),
    ("fsio", 0),
    ("stats", 0),
    ("plot", 0),
    ("npy", 1),
    // Devices, and libtorch's CUDA library loaded from beside the loaded libtorch (or the build's).
    ("device", 1),
    // The parts of a run, each with its own config type.
    ("data", 1),
    ("model", 1),
    ("optim", 1),
    ("eval", 1),
    ("loss_check", 1),
    // The fair-comparison protocol's settings (read by config, train and sweep).
    ("protocol", 1),
    // A run, resolved.
    ("config", 2),
    // Running it.
    ("train", 3),
    // Recording it.
    ("store", 4),
    ("execute", 5),
    // From records to numbers, and to reports.
    ("analysis", 5),
    ("regress", 6),
    ("report", 6),
    ("table", 6),
    // Many runs.
    ("sweep", 6),
    ("slurm", 7),
    // The binary's edge.
    ("progress", 8),
    ("doctor", 8),
    ("cli", 8),
    ("main", 9),
];

/// The text without its `#[cfg(test)]` items (braces counted from the item's first `{`).
fn without_test_modules(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let Some(open) = item.find('{') else { return out };
        let mut depth = 0;
        let mut end = item.len();
        for (i, c) in item[open..].char_indices() {
            depth += match c {
                '{' => 1,
                '}' => -1,
                _ => 0,
            };
            if depth == 0 {
                end = open + i + 1;
                break;
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// Module → the other modules its code (comments and test modules left out) refers to.
fn references(src: &Path) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p.strip_prefix(src).unwrap().to_string_lossy().to_string();
            let module = rel.split(['/', '.']).next().unwrap().to_string();
            if module == "lib" {
                continue; // declares the modules; holds no logic
            }
            let code = without_test_modules(&std::fs::read_to_string(&p).unwrap());
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                let mut names: Vec<String> = vec![];
                for part in line.split("crate::").skip(1) {
                    if let Some(group) = part.strip_prefix('{') {
                        let inner = group.split('}').next().unwrap_or("");
                        names.extend(inner.split(',').filter_map(|s| s.trim().split("::").next().map(str::to_string)));
                    } else {
                        names.push(part.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
                    }
                }
                for n in names.into_iter().filter(|n| !n.is_empty() && *n != module) {
                    out.entry(module.clone()).or_default().push((n, format!("{rel}: {}", line.trim())));
                }
            }
        }
    }
    out
}

#[test]
fn every_reference_points_to_a_lower_layer() {
    let layer: BTreeMap<&str, u8> = LAYERS.into_iter().collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let refs = references(&src);
    let mut problems = vec![];
    for (module, targets) in &refs {
        let Some(&from) = layer.get(module.as_str()) else {
            problems.push(format!("module `{module}` is not in the layer table of tests/layers.rs"));
            continue;
        };
        for (target, line) in targets {
            match layer.get(target.as_str()) {
                None => problems.push(format!("`{module}` refers to `{target}`, not in the layer table: {line}")),
                Some(&to) if to >= from => {
                    problems.push(format!("`{module}` (layer {from}) refers to `{target}` (layer {to}): {line}"))
                }
                Some(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The check sees references at all (a parser that found none would pass vacuously).
    assert!(refs["train"].iter().any(|(t, _)| t == "config") && refs["sweep"].iter().any(|(t, _)| t == "execute"));
}
