//! The model kinds `aisle train`, `aisle bench` and `aisle evaluate` know,
//! named once: a name parses into a [`Kind`] and every family question
//! (is it served? a sequence model? a purchase model?) is a match on it.

use aisle_rank::RankerConfig;
use aisle_seq::Arch;

/// A purchase-probability model: the ranker network or its logistic-regression baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurchaseModel {
    Ranker,
    Logreg,
}

impl PurchaseModel {
    pub const ALL: [PurchaseModel; 2] = [PurchaseModel::Ranker, PurchaseModel::Logreg];

    pub fn name(self) -> &'static str {
        match self {
            PurchaseModel::Ranker => "ranker",
            PurchaseModel::Logreg => "logreg",
        }
    }

    /// Its documented defaults.
    pub fn defaults(self) -> RankerConfig {
        match self {
            PurchaseModel::Ranker => RankerConfig::default(),
            PurchaseModel::Logreg => RankerConfig::logreg(),
        }
    }
}

/// What a model name stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A model of aisle-models (one of its `MODEL_NAMES`).
    Classical(&'static str),
    /// A sequence network of aisle-seq.
    Sequence(Arch),
    /// A purchase-probability model of aisle-rank.
    Purchase(PurchaseModel),
    /// Candidates from several recommenders re-ranked by the ranker
    /// (evaluation only: `aisle bench|evaluate --models two-stage`).
    TwoStage,
}

impl Kind {
    /// The kind a name stands for; `None` for an unknown name.
    pub fn parse(name: &str) -> Option<Kind> {
        if let Some(&m) = aisle_models::MODEL_NAMES.iter().find(|m| **m == name) {
            return Some(Kind::Classical(m));
        }
        if let Some(a) = Arch::parse(name) {
            return Some(Kind::Sequence(a));
        }
        if let Some(p) = PurchaseModel::ALL.into_iter().find(|p| p.name() == name) {
            return Some(Kind::Purchase(p));
        }
        (name == "two-stage").then_some(Kind::TwoStage)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Classical(m) => m,
            Kind::Sequence(a) => a.name(),
            Kind::Purchase(p) => p.name(),
            Kind::TwoStage => "two-stage",
        }
    }

    /// Every kind, in the order the documentation lists them.
    pub fn all() -> Vec<Kind> {
        let mut v: Vec<Kind> = aisle_models::MODEL_NAMES
            .iter()
            .map(|&m| Kind::Classical(m))
            .collect();
        v.extend(Arch::ALL.iter().map(|&a| Kind::Sequence(a)));
        v.extend(PurchaseModel::ALL.map(Kind::Purchase));
        v.push(Kind::TwoStage);
        v
    }

    /// Can a server serve it as its recommender (a registry artifact)?
    pub fn served(self) -> bool {
        matches!(self, Kind::Classical(_) | Kind::Sequence(_))
    }
}

/// The names of the kinds matching `keep`, in [`Kind::all`]'s order.
pub fn names(keep: impl Fn(Kind) -> bool) -> Vec<&'static str> {
    Kind::all()
        .into_iter()
        .filter(|k| keep(*k))
        .map(Kind::name)
        .collect()
}

/// The same, comma-separated (for messages).
pub fn names_where(keep: impl Fn(Kind) -> bool) -> String {
    names(keep).join(", ")
}
