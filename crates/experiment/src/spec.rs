//! What an experiment is: its surface, mode, arms and traffic split, and
//! the deterministic assignment of users to arms.

use serde::{Deserialize, Serialize};

use crate::ExperimentError;

/// Where the experiment's lists are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Surface {
    Recommendations,
    Search,
    Similar,
}

impl Surface {
    pub const ALL: [Surface; 3] = [Surface::Recommendations, Surface::Search, Surface::Similar];

    pub fn name(self) -> &'static str {
        match self {
            Surface::Recommendations => "recommendations",
            Surface::Search => "search",
            Surface::Similar => "similar",
        }
    }

    pub fn parse(s: &str) -> Option<Surface> {
        Surface::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// How arms share traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Users split between arms by `traffic`; each user sees one arm.
    Ab,
    /// Two rankers' lists merged into one by team draft, per request.
    Interleave,
}

/// One arm: a name and what ranks its lists (a registry version, a model
/// kind, `pop`, or search weights: the serving layer resolves it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmSpec {
    pub name: String,
    pub model: String,
    /// Percent of the experiment's users (A/B); ignored by interleaving.
    #[serde(default)]
    pub traffic: f64,
}

/// Which metric decides the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    #[default]
    Ctr,
    Cvr,
    CartRate,
    GmvPerUser,
    /// Interleaving's share of credited clicks.
    Preference,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Ctr => "ctr",
            Metric::Cvr => "cvr",
            Metric::CartRate => "cart_rate",
            Metric::GmvPerUser => "gmv_per_user",
            Metric::Preference => "preference",
        }
    }
}

/// An experiment as created through the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    pub name: String,
    pub surface: Surface,
    pub mode: Mode,
    pub arms: Vec<ArmSpec>,
    /// Hashed with the user id to assign arms; a new salt reshuffles users.
    /// Defaults to the name.
    #[serde(default)]
    pub salt: String,
    /// The metric the verdict reads (default `ctr`; interleaving always
    /// reads `preference`).
    #[serde(default)]
    pub primary_metric: Metric,
    /// The smallest relative lift worth detecting: "no detectable
    /// difference" needs enough users to see it with 80% power (default 5%).
    #[serde(default = "default_mde")]
    pub min_detectable_lift: f64,
}

fn default_mde() -> f64 {
    0.05
}

/// Percent points the traffic split may miss 100 by (rounding in clients).
const TRAFFIC_TOLERANCE: f64 = 1e-6;

impl ExperimentSpec {
    /// Refuses what cannot run: a bad name, fewer than two arms, duplicate
    /// arm names, interleaving of other than two arms, a split that does not
    /// sum to 100 or has a negative share. Fills the default salt.
    pub fn validate(mut self) -> Result<ExperimentSpec, ExperimentError> {
        let bad = |why: String| Err(ExperimentError::InvalidSpec(why));
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad("`name` must be 1-64 characters of letters, digits, `-` or `_`".into());
        }
        if self.arms.len() < 2 {
            return bad("an experiment needs at least two arms".into());
        }
        for (i, a) in self.arms.iter().enumerate() {
            if a.name.is_empty() || a.model.is_empty() {
                return bad(format!("arm {i} needs a `name` and a `model`"));
            }
            if self.arms[..i].iter().any(|b| b.name == a.name) {
                return bad(format!("two arms are named `{}`", a.name));
            }
        }
        match self.mode {
            Mode::Interleave => {
                if self.arms.len() != 2 {
                    return bad("interleaving compares exactly two arms".into());
                }
                self.primary_metric = Metric::Preference;
            }
            Mode::Ab => {
                if let Some(a) = self
                    .arms
                    .iter()
                    .find(|a| !a.traffic.is_finite() || a.traffic < 0.0)
                {
                    return bad(format!(
                        "arm `{}` has a negative or non-numeric traffic",
                        a.name
                    ));
                }
                let sum: f64 = self.arms.iter().map(|a| a.traffic).sum();
                if (sum - 100.0).abs() > TRAFFIC_TOLERANCE {
                    return bad(format!("the arms' traffic sums to {sum}, not 100"));
                }
                if self.primary_metric == Metric::Preference {
                    return bad("`preference` is interleaving's metric".into());
                }
            }
        }
        if !(self.min_detectable_lift > 0.0 && self.min_detectable_lift.is_finite()) {
            return bad("`min_detectable_lift` must be a positive number".into());
        }
        if self.salt.is_empty() {
            self.salt = self.name.clone();
        }
        Ok(self)
    }

    /// The arm a user is in (A/B): a hash of salt and user into 10,000
    /// buckets, cut by the cumulative traffic. The same on every replica and
    /// after every restart; changing a share moves only the users at the cut.
    pub fn assign(&self, user: &str) -> usize {
        let b = bucket(&self.salt, user) as f64 / BUCKETS as f64 * 100.0;
        let mut acc = 0.0;
        for (i, a) in self.arms.iter().enumerate() {
            acc += a.traffic;
            if b < acc {
                return i;
            }
        }
        self.arms.len() - 1
    }

    pub fn arm_index(&self, name: &str) -> Option<usize> {
        self.arms.iter().position(|a| a.name == name)
    }

    /// Each arm's expected share of users (for the sample-ratio check).
    pub fn shares(&self) -> Vec<f64> {
        match self.mode {
            Mode::Ab => self.arms.iter().map(|a| a.traffic).collect(),
            Mode::Interleave => vec![1.0; self.arms.len()],
        }
    }
}

/// Buckets of the assignment hash.
pub const BUCKETS: u64 = 10_000;

/// A user's bucket in [0, BUCKETS) under a salt.
pub fn bucket(salt: &str, user: &str) -> u64 {
    aisle_core::hash::hash_fields([salt.as_bytes(), user.as_bytes()]) % BUCKETS
}
