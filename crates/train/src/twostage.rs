//! Two-stage recommendation under the leave-one-out protocol: candidates
//! from several recommenders (union, de-duplicated, each candidate keeping
//! the sources that proposed it and their scores), re-ranked by the
//! purchase-probability model (aisle-rank) trained on the validation stage.
//!
//! - Sources (trained on the train part only): EASE, ALS, item-kNN, the
//!   repeat baseline and popularity, and a sequence model (SASRec unless
//!   `--two-stage-seq` names another or `none`); each proposes its top [`PER_SOURCE`]
//!   items of the full catalog (no masking inside candidate generation).
//! - Features of (user, candidate), from the history before the target only:
//!   per source the z-score of the item's score among all items and the
//!   reciprocal rank in its list (0 when not proposed), then item training
//!   popularity, times in the history, steps since its last occurrence,
//!   whether it is the last item, history length.
//! - The ranker learns "is this candidate the next item" on the validation
//!   stage (target = second-to-last item, history before it). Validation
//!   metrics are out-of-fold (2 folds over users); the test stage is
//!   re-ranked by a ranker trained on every user's validation candidates.
//! - Scores: candidates get the ranker's probability, every other item
//!   -1e9 (a tie below all candidates); the usual full-ranking evaluation
//!   then applies, with the row's masking.

use std::time::Instant;

use aisle_eval::{LooConfig, Scorer, Stage};
use aisle_features::Sequences;
use aisle_models::{ModelConfig, Recommender, TrainData};
use aisle_rank::{Dataset, RankerConfig};
use rayon::prelude::*;

use crate::leaderboard::{bench_eval, loo_train, Masking, Row};
use crate::usage::cpu_seconds;
use crate::Result;

/// Candidate sources, in feature order, with their default configs.
pub fn sources() -> Vec<ModelConfig> {
    use aisle_models::{AlsConfig, EaseConfig, ItemKnnConfig, PopConfig, RepeatConfig};
    vec![
        ModelConfig::Ease(EaseConfig::default()),
        ModelConfig::Als(AlsConfig::default()),
        ModelConfig::ItemKnn(ItemKnnConfig::default()),
        ModelConfig::Repeat(RepeatConfig::default()),
        ModelConfig::Pop(PopConfig::default()),
    ]
}
/// Items each source proposes.
pub const PER_SOURCE: usize = 50;
/// Score of an item no source proposed (a tie below every candidate).
const NOT_A_CANDIDATE: f32 = -1e9;

fn n_features(sources: usize) -> usize {
    sources * 2 + 5
}

/// One user's candidates at one stage.
struct Candidates {
    items: Vec<u32>,
    /// Row-major `items.len() × n_features()`.
    x: Vec<f32>,
    target: u32,
}

fn candidates(
    models: &[&dyn Scorer],
    popularity: &[f32],
    user: u32,
    history: &[u32],
    target: u32,
    n_items: usize,
) -> Candidates {
    let mut scores = vec![vec![0f32; n_items]; models.len()];
    let mut rank: Vec<Vec<u32>> = Vec::with_capacity(models.len());
    let mut items: Vec<u32> = Vec::new();
    let mut proposed = vec![false; n_items];
    for (m, s) in models.iter().zip(scores.iter_mut()) {
        m.score(user, history, s);
        let top = aisle_eval::top_k(s, PER_SOURCE, |_| false);
        for &i in &top {
            if !proposed[i as usize] {
                proposed[i as usize] = true;
                items.push(i);
            }
        }
        rank.push(top);
    }
    let f = n_features(models.len());
    let mut x = vec![0f32; items.len() * f];
    let mut last_seen = std::collections::HashMap::new();
    let mut count = std::collections::HashMap::new();
    for (k, &i) in history.iter().enumerate() {
        last_seen.insert(i, k);
        *count.entry(i).or_insert(0u32) += 1;
    }
    for (m, s) in scores.iter().enumerate() {
        let n = s.len() as f64;
        let mean = s.iter().map(|&v| v as f64).sum::<f64>() / n;
        let sd = (s.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        let sd = if sd > 1e-12 { sd } else { 1.0 };
        let mut rr = std::collections::HashMap::new();
        for (r, &i) in rank[m].iter().enumerate() {
            rr.insert(i, 1.0 / (r as f32 + 1.0));
        }
        for (c, &i) in items.iter().enumerate() {
            x[c * f + 2 * m] = ((s[i as usize] as f64 - mean) / sd).clamp(-50.0, 50.0) as f32;
            x[c * f + 2 * m + 1] = rr.get(&i).copied().unwrap_or(0.0);
        }
    }
    let base = models.len() * 2;
    for (c, &i) in items.iter().enumerate() {
        let row = &mut x[c * f + base..(c + 1) * f];
        row[0] = popularity[i as usize];
        row[1] = (count.get(&i).copied().unwrap_or(0) as f32).ln_1p();
        row[2] = match last_seen.get(&i) {
            Some(&k) => ((history.len() - k) as f32).ln_1p(),
            None => (1000f32).ln_1p(),
        };
        row[3] = f32::from(history.last() == Some(&i));
        row[4] = (history.len() as f32).ln_1p();
    }
    Candidates { items, x, target }
}

/// Every user's candidates at a stage (history = the sequence before the target).
fn stage_candidates(
    models: &[&dyn Scorer],
    popularity: &[f32],
    seqs: &Sequences,
    stage: Stage,
) -> Vec<Option<Candidates>> {
    let need = match stage {
        Stage::Valid => 2,
        Stage::Test => 1,
    };
    seqs.seqs
        .par_iter()
        .enumerate()
        .map(|(u, s)| {
            (s.len() >= need).then(|| {
                let cut = s.len() - (need - 1);
                candidates(
                    models,
                    popularity,
                    u as u32,
                    &s[..cut - 1],
                    s[cut - 1],
                    seqs.items.len(),
                )
            })
        })
        .collect()
}

fn dataset(c: &[&Candidates]) -> Dataset {
    let f = c.first().map_or(0, |c| c.x.len() / c.items.len().max(1));
    let mut d = Dataset::new(f);
    for c in c {
        for (k, &i) in c.items.iter().enumerate() {
            d.push(&c.x[k * f..(k + 1) * f], 0, i == c.target);
        }
    }
    d
}

/// Scores precomputed per user (candidates only).
struct Precomputed {
    scores: Vec<Vec<(u32, f32)>>,
}

impl Scorer for Precomputed {
    fn score(&self, user: u32, _history: &[u32], out: &mut [f32]) {
        out.iter_mut().for_each(|o| *o = NOT_A_CANDIDATE);
        if let Some(s) = self.scores.get(user as usize) {
            for &(i, v) in s {
                out[i as usize] = v;
            }
        }
    }
}

fn rerank(model: &aisle_rank::Ranker, c: &Candidates) -> Vec<(u32, f32)> {
    let d = dataset(&[c]);
    let p = model.predict(&d);
    c.items.iter().zip(p).map(|(&i, p)| (i, p as f32)).collect()
}

/// Runs the pipeline and returns its leaderboard row (name `two-stage`).
/// `extra` is an additional source (a sequence model trained on the same
/// train part), appended after the [`sources`].
pub fn run(
    seqs: &Sequences,
    masking: Masking,
    ranker: &RankerConfig,
    extra: Option<(&str, &dyn Scorer, f64)>,
) -> Result<Row> {
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let train: TrainData = loo_train(seqs);
    let pop = train.item_counts();
    let popularity: Vec<f32> = pop.iter().map(|&c| (c as f32).ln_1p()).collect();
    let sources = sources();
    let models: Vec<Box<dyn Recommender>> = sources
        .iter()
        .map(|cfg| aisle_models::fit(cfg, &train, &|_, _| {}))
        .collect::<Result<_, _>>()?;
    let mut scorers: Vec<&dyn Scorer> = models.iter().map(|m| m.as_ref() as &dyn Scorer).collect();
    let mut names: Vec<&str> = sources.iter().map(ModelConfig::name).collect();
    let mut extra_s = 0.0;
    if let Some((name, s, train_s)) = extra {
        extra_s = train_s;
        scorers.push(s);
        names.push(name);
    }
    let valid = stage_candidates(&scorers, &popularity, seqs, Stage::Valid);
    let test = stage_candidates(&scorers, &popularity, seqs, Stage::Test);
    let recall = |c: &[Option<Candidates>]| {
        let (hit, n) = c.iter().flatten().fold((0usize, 0usize), |(h, n), c| {
            (h + usize::from(c.items.contains(&c.target)), n + 1)
        });
        hit as f64 / n.max(1) as f64
    };
    let (valid_recall, test_recall) = (recall(&valid), recall(&test));
    let n_users = seqs.seqs.len();
    // Out-of-fold validation scores: fold k's users re-ranked by a model
    // trained on the other fold.
    let mut valid_scores = vec![Vec::new(); n_users];
    for fold in 0..2 {
        let rows: Vec<&Candidates> = valid
            .iter()
            .enumerate()
            .filter(|(u, _)| u % 2 != fold)
            .filter_map(|(_, c)| c.as_ref())
            .collect();
        let (m, _) = aisle_rank::train(ranker, &dataset(&rows), 0, &|_, _| {})?;
        for (u, c) in valid.iter().enumerate().filter(|(u, _)| u % 2 == fold) {
            if let Some(c) = c {
                valid_scores[u] = rerank(&m, c);
            }
        }
    }
    let all: Vec<&Candidates> = valid.iter().flatten().collect();
    let full = dataset(&all);
    let (model, fit) = aisle_rank::train(ranker, &full, 0, &|_, _| {})?;
    let test_scores: Vec<Vec<(u32, f32)>> = test
        .iter()
        .map(|c| c.as_ref().map(|c| rerank(&model, c)).unwrap_or_default())
        .collect();
    // Includes the extra source's training (done before this call).
    let fit_s = t0.elapsed().as_secs_f64() + extra_s;
    let mask = matches!(masking, Masking::On);
    let eval = |stage, scores: Vec<Vec<(u32, f32)>>| {
        bench_eval(&Precomputed { scores }, seqs, &pop, stage, mask)
    };
    let v = eval(Stage::Valid, valid_scores);
    let t = eval(Stage::Test, test_scores);
    // Each source alone under the same masking, for comparison in one run.
    let mut alone = serde_json::Map::new();
    for (name, sc) in names.iter().zip(&scorers) {
        let r = aisle_eval::evaluate_loo(
            *sc,
            &seqs.seqs,
            seqs.items.len(),
            &pop,
            &LooConfig {
                stage: Stage::Test,
                masking: mask,
                ks: vec![10],
                list_k: 10,
            },
        );
        alone.insert(name.to_string(), serde_json::json!(r.ndcg(10)));
    }
    let config = serde_json::json!({
        "model": "two-stage",
        "sources": names,
        "per_source": PER_SOURCE,
        "ranker": ranker,
        "features": n_features(names.len()),
        "candidate_recall_valid": valid_recall,
        "candidate_recall_test": test_recall,
        "ranker_rows": full.len(),
        "ranker_positives": full.positives(),
        "ranker_epochs": fit.epochs,
        "ranker_best_epoch": fit.best_epoch,
        "source_test_ndcg@10": alone,
        "extra_source_train_s": extra_s,
        "note": "valid metrics are out-of-fold (2 folds over users); masking off by default: with masking on the protocol never masks the target, so an unmasked history item is the target, which repeat features would exploit",
    });
    Ok(Row::new(
        "two-stage",
        mask,
        &v,
        &t,
        (fit_s, cpu_seconds() - c0),
        config,
    ))
}
