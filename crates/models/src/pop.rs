//! Popularity: every user gets the most interacted-with items, over all of
//! training or over a recent time window.

use serde::{Deserialize, Serialize};

use crate::{shape_err, ModelConfig, Recommender, Result, TrainData};

/// Popularity hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PopConfig {
    /// Count only interactions in the last `window_s` seconds of training
    /// (0 = all of training). Needs real timestamps.
    pub window_s: i64,
}

pub struct Pop {
    cfg: PopConfig,
    scores: Vec<f32>,
}

impl Pop {
    pub fn fit(cfg: &PopConfig, data: &TrainData) -> Self {
        let mut scores = vec![0f32; data.n_items];
        match (&data.times, cfg.window_s > 0) {
            (Some(times), true) => {
                let last = times.iter().flatten().copied().max().unwrap_or(0);
                let from = last - cfg.window_s;
                for (s, t) in data.seqs.iter().zip(times) {
                    for (&i, &ts) in s.iter().zip(t) {
                        if ts > from {
                            scores[i as usize] += 1.0;
                        }
                    }
                }
            }
            _ => {
                for (i, c) in data.item_counts().into_iter().enumerate() {
                    scores[i] = c as f32;
                }
            }
        }
        Pop {
            cfg: cfg.clone(),
            scores,
        }
    }

    pub fn from_parts(cfg: PopConfig, scores: (Vec<usize>, Vec<f32>)) -> Result<Self> {
        if scores.0.len() != 1 {
            return Err(shape_err("scores", "[items]", &scores.0));
        }
        Ok(Pop {
            cfg,
            scores: scores.1,
        })
    }
}

impl aisle_eval::Scorer for Pop {
    fn score(&self, _user: u32, _history: &[u32], out: &mut [f32]) {
        out.copy_from_slice(&self.scores);
    }
}

impl Recommender for Pop {
    fn kind(&self) -> &'static str {
        "pop"
    }
    fn config(&self) -> ModelConfig {
        ModelConfig::Pop(self.cfg.clone())
    }
    fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        vec![(
            "scores".into(),
            vec![self.scores.len()],
            self.scores.clone(),
        )]
    }
}
