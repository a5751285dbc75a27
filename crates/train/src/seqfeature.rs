//! A sequence model as a purchase-model feature (`seq_score`): trained on
//! the behaviour log's events before a cut-off, it scores an item after the
//! user's items before the moment of each row (the point-in-time rule is
//! enforced by `aisle_features::behaviour::EventLog::sequence_scores`).
//!
//! The score is the dot product of the user vector (the network's last
//! position) and the item vector, as a z-score over the items the model
//! trained on: `(u·e − u·μ) / sqrt(uᵀ C u)` with μ and C the mean and
//! covariance of those item vectors, so rows from users with long and short
//! histories (vectors of different norms) read on one scale.

use aisle_core::vector::dot;
use std::collections::HashMap;
use std::path::Path;

use aisle_features::behaviour::{EventLog, Kind, SequenceScorer};
use aisle_seq::{Arch, SeqConfig, SeqFit, SeqModel, SideInfo, TrainData};

use crate::{Artifact, Header, Model, Result, TrainError};

/// Metadata key of the cut-off in a saved model.
const META_BEFORE: &str = "seq_feature_trained_before";

/// A trained sequence model, its vocabulary mapped onto a behaviour log.
pub struct SeqFeature {
    pub model: SeqModel,
    /// Every training event is strictly before this moment.
    pub before: i64,
    /// Item names in model id order (saved with the model).
    pub items: Vec<String>,
    /// Log item id -> model id (`u32::MAX`: not in the model).
    to_model: Vec<u32>,
    /// Per model id: did the model train on it (popularity > 0)?
    trained: Vec<bool>,
    mean: Vec<f32>,
    /// `[dim, dim]` covariance of the trained item vectors.
    cov: Vec<f32>,
}

impl SeqFeature {
    /// Trains `arch` on each user's items of every counted event (views,
    /// carts, favourites, purchases) strictly before `before`, in time order.
    pub fn train(
        log: &EventLog,
        before: i64,
        arch: Arch,
        cfg: &SeqConfig,
        progress: &dyn Fn(u64, u64),
    ) -> Result<(SeqFeature, SeqFit)> {
        let mut seqs: Vec<Vec<u32>> = vec![Vec::new(); log.users.len()];
        for e in log.events.iter().filter(|e| e.ts < before) {
            if e.kind != Kind::Other {
                seqs[e.user as usize].push(e.item);
            }
        }
        seqs.retain(|s| s.len() >= 3);
        // Categories as side information (`side_info = true`): an item the
        // model never trained on is then still scored by its category's vector.
        let side = (cfg.side_info && log.n_categories > 0).then(|| SideInfo {
            category: log.item_category.clone(),
            n_categories: log.n_categories,
            price_bucket: vec![0; log.items.len()],
            n_buckets: 0,
        });
        let data = TrainData {
            n_items: log.items.len(),
            seqs: &seqs,
            side,
        };
        let (model, fit) = aisle_seq::train(arch, cfg, &data, progress)?;
        Ok((SeqFeature::new(model, before, log.items.clone(), log), fit))
    }

    fn new(model: SeqModel, before: i64, items: Vec<String>, log: &EventLog) -> SeqFeature {
        let ids: HashMap<&str, u32> = items
            .iter()
            .enumerate()
            .map(|(k, s)| (s.as_str(), k as u32))
            .collect();
        let to_model = log
            .items
            .iter()
            .map(|s| ids.get(s.as_str()).copied().unwrap_or(u32::MAX))
            .collect();
        let popularity = model.popularity();
        let mut trained: Vec<bool> = (0..model.n_items).map(|i| popularity[i] > 0.0).collect();
        // With category embeddings, an item of a category the model trained
        // on has a learned vector too.
        if let Some(side) = model
            .net()
            .items
            .side
            .as_ref()
            .filter(|_| model.net().items.category.is_some())
        {
            let mut seen = vec![false; side.n_categories + 1];
            for (i, &c) in side.category.iter().enumerate() {
                seen[c as usize] |= trained[i] && c != 0;
            }
            for (i, &c) in side.category.iter().enumerate() {
                trained[i] |= seen[c as usize];
            }
        }
        let d = model.dim();
        let vecs = model.item_vectors();
        let rows: Vec<&[f32]> = vecs
            .chunks_exact(d)
            .zip(&trained)
            .filter(|(_, t)| **t)
            .map(|(v, _)| v)
            .collect();
        let n = rows.len().max(1) as f64;
        let mut mean = vec![0f64; d];
        for r in &rows {
            for (m, x) in mean.iter_mut().zip(*r) {
                *m += *x as f64 / n;
            }
        }
        let mut cov = vec![0f64; d * d];
        for r in &rows {
            for a in 0..d {
                let da = r[a] as f64 - mean[a];
                for b in 0..d {
                    cov[a * d + b] += da * (r[b] as f64 - mean[b]) / n;
                }
            }
        }
        SeqFeature {
            model,
            before,
            items,
            to_model,
            trained,
            mean: mean.into_iter().map(|v| v as f32).collect(),
            cov: cov.into_iter().map(|v| v as f32).collect(),
        }
    }

    /// Writes the model (an `aisle-train` artifact) with its cut-off.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut header = Header::new(&self.model, self.items.clone());
        header
            .extra
            .insert(META_BEFORE.to_string(), self.before.to_string());
        header.save_with(&self.model, path)?;
        Ok(())
    }

    /// Reads a model written by [`SeqFeature::save`], its items mapped onto `log`.
    pub fn load(path: &Path, log: &EventLog) -> Result<SeqFeature> {
        let bad = |m: &str| TrainError::Artifact {
            path: path.to_path_buf(),
            message: format!("seq feature: {m}"),
        };
        let Artifact { header, model } = Artifact::load(path)?;
        let Model::Sequence(model) = model else {
            return Err(bad("not a sequence model"));
        };
        let before: i64 = header
            .extra
            .get(META_BEFORE)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("no training cut-off in the metadata"))?;
        Ok(SeqFeature::new(*model, before, header.item_ids, log))
    }

    fn model_id(&self, log_item: u32) -> Option<u32> {
        let m = *self.to_model.get(log_item as usize)?;
        (m != u32::MAX && self.trained[m as usize]).then_some(m)
    }
}

impl SequenceScorer for SeqFeature {
    fn trained_before(&self) -> i64 {
        self.before
    }

    fn scores(&self, histories: &[&[u32]], queries: &[(usize, u32)]) -> Vec<Option<f32>> {
        // Histories in model ids, items it never trained on dropped; those
        // left with nothing cannot be scored.
        let mut slot: Vec<Option<usize>> = vec![None; histories.len()];
        let mut known: Vec<Vec<u32>> = Vec::new();
        for (h, hist) in histories.iter().enumerate() {
            let ids: Vec<u32> = hist.iter().filter_map(|&i| self.model_id(i)).collect();
            if !ids.is_empty() {
                slot[h] = Some(known.len());
                known.push(ids);
            }
        }
        if known.is_empty() {
            return vec![None; queries.len()];
        }
        let refs: Vec<&[u32]> = known.iter().map(Vec::as_slice).collect();
        let uv = self.model.user_vectors(&refs);
        let d = uv.dim;
        // Per user vector u: u·μ and the standard deviation sqrt(uᵀCu).
        let mut cu = vec![0f32; d];
        let moments: Vec<(f32, f32)> = uv
            .users
            .chunks_exact(d)
            .map(|u| {
                for (a, c) in cu.iter_mut().enumerate() {
                    *c = dot(&self.cov[a * d..(a + 1) * d], u);
                }
                (dot(u, &self.mean), dot(u, &cu).max(0.0).sqrt())
            })
            .collect();
        queries
            .iter()
            .map(|&(h, item)| {
                let (s, item) = (slot[h]?, self.model_id(item)?);
                let u = &uv.users[s * d..(s + 1) * d];
                let e = &uv.items[item as usize * d..(item as usize + 1) * d];
                let (mean, sd) = moments[s];
                let z = (dot(u, e) - mean) / sd.max(1e-6);
                z.is_finite().then_some(z)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aisle_core::EventType;
    use aisle_features::behaviour::CatalogFacts;
    use aisle_features::Interaction;

    /// 24 users walk a ring of 12 items (item k, then k+1), one event a
    /// minute; item "late" first appears after the cut-off.
    fn log() -> (EventLog, Vec<String>, Vec<String>) {
        let users: Vec<String> = (0..24).map(|u| format!("u{u}")).collect();
        let items: Vec<String> = (0..12).map(|i| format!("i{i}")).collect();
        let mut ev = Vec::new();
        let mut t = 0;
        for step in 0..10 {
            for (u, name) in users.iter().enumerate() {
                t += 60;
                ev.push((name.as_str(), items[(u + step) % 12].as_str(), t));
            }
        }
        ev.push(("u0", "late", t + 60));
        let raw = ev
            .iter()
            .enumerate()
            .map(|(k, &(user, item, ts))| Interaction {
                user,
                item,
                ts,
                seq: k as i64,
                event_type: EventType::View,
            });
        (EventLog::build(raw, &CatalogFacts::new()), users, items)
    }

    #[test]
    fn scores_are_z_scores_over_the_trained_items_and_survive_save_and_load() {
        let (log, _, _) = log();
        let cut = log.events[log.events.len() - 2].ts; // "late" comes after
        let cfg = SeqConfig {
            epochs: 3,
            hidden: 16,
            ..SeqConfig::for_arch(Arch::Gru4rec)
        };
        let (f, fit) = SeqFeature::train(&log, cut, Arch::Gru4rec, &cfg, &|_, _| {}).unwrap();
        assert_eq!(fit.epochs, 3);
        assert_eq!(f.trained_before(), cut);
        let id = |s: &str| log.item_index(s).unwrap();
        let history = [id("i3"), id("i4"), id("i5")];
        let histories: [&[u32]; 1] = [&history];
        // Over every trained item the scores have mean 0 and variance 1.
        let ring: Vec<u32> = (0..12).map(|i| id(&format!("i{i}"))).collect();
        let queries: Vec<(usize, u32)> = ring.iter().map(|&i| (0, i)).collect();
        let z: Vec<f32> = f
            .scores(&histories, &queries)
            .into_iter()
            .map(Option::unwrap)
            .collect();
        let mean = z.iter().sum::<f32>() / 12.0;
        let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 12.0;
        assert!(
            mean.abs() < 1e-3 && (var - 1.0).abs() < 1e-2,
            "{mean} {var}"
        );
        // An item the model never trained on, a history of only such items,
        // an id past the model's vocabulary: no score.
        let late = id("late");
        let only_late = [late];
        let none = f.scores(
            &[&history, &only_late],
            &[(0, late), (1, ring[0]), (0, 999)],
        );
        assert_eq!(none, vec![None, None, None]);
        // Saved and loaded onto the same log: the same scores.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seq.safetensors");
        f.save(&path).unwrap();
        let g = SeqFeature::load(&path, &log).unwrap();
        assert_eq!(g.trained_before(), cut);
        let z2: Vec<f32> = g
            .scores(&histories, &queries)
            .into_iter()
            .map(Option::unwrap)
            .collect();
        for (a, b) in z.iter().zip(&z2) {
            assert!((a - b).abs() < 1e-4, "{a} {b}");
        }
    }
}
