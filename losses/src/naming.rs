//! The one list of loss kinds and how each variant is named: its `kind` tag, its display label in
//! reports, its slug in run names and file names, and its place in a report's row order. Adding a
//! loss adds one entry here (the compiler points at every match below).
use crate::LossConfig;

/// Every loss kind, as spelt in YAML, in report order (plug-ins last).
pub const LOSS_KINDS: [&str; 6] = ["triplet", "proxy_nca", "softmax_norm", "hard_triple", "soft_triple", PLUGIN_KIND];

/// The kind of losses loaded from a TorchScript file; each is named by its config's `name`.
pub const PLUGIN_KIND: &str = "torchscript";

/// The variants a smoke check runs (`harness loss-check`): every built-in kind, every triplet
/// mining, SoftTriple with and without its regularizer. Plug-ins are checked when planned.
pub const CHECK_VARIANTS: [&str; 8] = [
    "{kind: triplet, mining: all, margin: 0.1}",
    "{kind: triplet, mining: semihard, margin: 0.1}",
    "{kind: triplet, mining: hard, margin: 0.1}",
    "{kind: proxy_nca}",
    "{kind: softmax_norm}",
    "{kind: hard_triple, centers_per_class: 4}",
    "{kind: soft_triple, centers_per_class: 4}",
    "{kind: soft_triple, centers_per_class: 4, tau: 0}",
];

/// [`CHECK_VARIANTS`] parsed.
pub fn check_variants() -> Vec<LossConfig> {
    CHECK_VARIANTS.iter().map(|s| serde_yaml::from_str(s).expect("the built-in check variants parse")).collect()
}

impl LossConfig {
    /// The `kind` tag, as spelt in YAML.
    pub fn kind(&self) -> &'static str {
        LOSS_KINDS[self.kind_index()]
    }

    /// The kind's position in [`LOSS_KINDS`] (and so in a report's row order).
    fn kind_index(&self) -> usize {
        match self {
            LossConfig::Triplet(_) => 0,
            LossConfig::ProxyNca(_) => 1,
            LossConfig::SoftmaxNorm(_) => 2,
            LossConfig::HardTriple(_) => 3,
            LossConfig::SoftTriple(_) => 4,
            LossConfig::TorchScript(_) => 5,
        }
    }

    /// The variant's display name: `SoftTriple K=10`, `SoftTriple K=10 τ=0`, `Triplet (semihard)`, …
    pub fn label(&self) -> String {
        match self {
            LossConfig::Triplet(c) => format!("Triplet ({:?})", c.mining).to_lowercase().replacen('t', "T", 1),
            LossConfig::ProxyNca(_) => "ProxyNCA".into(),
            LossConfig::SoftmaxNorm(_) => "Softmax_norm".into(),
            LossConfig::HardTriple(c) => format!("HardTriple K={}", c.centers_per_class),
            LossConfig::SoftTriple(c) if c.tau == 0.0 => format!("SoftTriple K={} τ=0", c.centers_per_class),
            LossConfig::SoftTriple(c) => format!("SoftTriple K={}", c.centers_per_class),
            LossConfig::TorchScript(c) if c.centers_per_class > 0 => format!("{} K={}", c.name, c.centers_per_class),
            LossConfig::TorchScript(c) => c.name.clone(),
        }
    }

    /// The variant without its K: one line of a chart against K (`SoftTriple τ=0.2`, `HardTriple`,
    /// a plug-in's name).
    pub fn family(&self) -> String {
        match self {
            LossConfig::SoftTriple(c) => format!("SoftTriple τ={}", c.tau),
            LossConfig::HardTriple(_) => "HardTriple".into(),
            LossConfig::TorchScript(c) => c.name.clone(),
            other => other.label(),
        }
    }

    /// The variant in run slugs and file names: kind without `_`, `-k<K>` for multi-centre losses,
    /// `-notau` without the regularizer, the mining for triplets (`softtriple-k4-notau`).
    pub fn slug(&self) -> String {
        let mut s = match self {
            LossConfig::TorchScript(c) => plugin_slug(&c.name),
            _ => self.kind().replace('_', ""),
        };
        if let Some(k) = self.centers_per_class() {
            s.push_str(&format!("-k{k}"));
        }
        match self {
            LossConfig::SoftTriple(c) if c.tau == 0.0 => s.push_str("-notau"),
            LossConfig::Triplet(c) => s.push_str(&format!("-{:?}", c.mining).to_lowercase()),
            _ => {}
        }
        s
    }

    /// Sort key of a report's rows: kind in [`LOSS_KINDS`] order, then a plug-in's name, then K,
    /// then without the regularizer before with it.
    pub fn report_order(&self) -> (usize, String, i64, bool) {
        let notau = matches!(self, LossConfig::SoftTriple(c) if c.tau == 0.0);
        let name = match self {
            LossConfig::TorchScript(c) => c.name.clone(),
            _ => String::new(),
        };
        (self.kind_index(), name, self.centers_per_class().unwrap_or(0), !notau)
    }
}

/// A plug-in's name in run slugs and file names: lower-case letters and digits, others as `-`.
fn plugin_slug(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let s = s.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-");
    if s.is_empty() {
        "plugin".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> LossConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn every_kind_in_the_list_parses_and_names_itself() {
        for (i, kind) in LOSS_KINDS.iter().enumerate() {
            let extra = if *kind == PLUGIN_KIND { ", path: x.pt, name: X" } else { "" };
            let c = parse(&format!("{{kind: {kind}{extra}}}"));
            assert_eq!(c.kind(), *kind);
            assert_eq!(c.report_order().0, i);
        }
    }

    #[test]
    fn the_smoke_check_covers_every_kind() {
        let covered: Vec<&str> = check_variants().iter().map(LossConfig::kind).collect();
        for kind in LOSS_KINDS.into_iter().filter(|k| *k != PLUGIN_KIND) {
            assert!(covered.contains(&kind), "{kind} is not in CHECK_VARIANTS");
        }
    }

    #[test]
    fn labels_and_slugs_are_the_ones_records_and_reports_use() {
        let cases = [
            ("{kind: triplet, mining: semihard}", "Triplet (semihard)", "triplet-semihard"),
            ("{kind: proxy_nca}", "ProxyNCA", "proxynca"),
            ("{kind: softmax_norm}", "Softmax_norm", "softmaxnorm"),
            ("{kind: hard_triple, centers_per_class: 3}", "HardTriple K=3", "hardtriple-k3"),
            ("{kind: soft_triple, centers_per_class: 4}", "SoftTriple K=4", "softtriple-k4"),
            ("{kind: soft_triple, centers_per_class: 4, tau: 0}", "SoftTriple K=4 τ=0", "softtriple-k4-notau"),
            ("{kind: torchscript, path: p/ms.pt, name: MS}", "MS", "ms"),
            (
                "{kind: torchscript, path: a.pt, name: 'Soft Triple (TS)', centers_per_class: 2}",
                "Soft Triple (TS) K=2",
                "soft-triple-ts-k2",
            ),
        ];
        for (yaml, label, slug) in cases {
            let c = parse(yaml);
            assert_eq!((c.label().as_str(), c.slug().as_str()), (label, slug), "{yaml}");
        }
    }

    #[test]
    fn a_family_is_the_variant_without_its_k_one_line_of_a_chart_against_k() {
        let cases = [
            ("{kind: hard_triple, centers_per_class: 2}", "{kind: hard_triple, centers_per_class: 8}", "HardTriple"),
            (
                "{kind: soft_triple, centers_per_class: 2}",
                "{kind: soft_triple, centers_per_class: 4}",
                "SoftTriple τ=0.2",
            ),
            (
                "{kind: soft_triple, centers_per_class: 2, tau: 0}",
                "{kind: soft_triple, centers_per_class: 8, tau: 0}",
                "SoftTriple τ=0",
            ),
            (
                "{kind: torchscript, path: a.pt, name: A, centers_per_class: 2}",
                "{kind: torchscript, path: a.pt, name: A, centers_per_class: 3}",
                "A",
            ),
        ];
        for (a, b, family) in cases {
            assert_eq!((parse(a).family(), parse(b).family()), (family.to_string(), family.to_string()), "{a}");
        }
    }

    #[test]
    fn report_order_puts_kinds_then_k_then_the_regularizer_last() {
        let mut v: Vec<LossConfig> = [
            "{kind: soft_triple, centers_per_class: 2}",
            "{kind: soft_triple, centers_per_class: 2, tau: 0}",
            "{kind: soft_triple, centers_per_class: 1}",
            "{kind: hard_triple, centers_per_class: 8}",
            "{kind: triplet}",
            "{kind: torchscript, path: b.pt, name: B}",
            "{kind: torchscript, path: a.pt, name: A, centers_per_class: 3}",
        ]
        .iter()
        .map(|y| parse(y))
        .collect();
        v.sort_by_key(LossConfig::report_order);
        let labels: Vec<String> = v.iter().map(LossConfig::label).collect();
        assert_eq!(
            labels,
            ["Triplet (all)", "HardTriple K=8", "SoftTriple K=1", "SoftTriple K=2 τ=0", "SoftTriple K=2", "A K=3", "B"]
        );
    }
}
