//! The re-ranking stage: a linear ranker over features of the fused top
//! candidates (their places and scores in the keyword and semantic lists,
//! how much of the query their titles carry, whether their title ends in
//! the query's head word, popularity, intents), fitted pairwise (RankNet's
//! logistic loss, pairs weighted by their gain difference) on judged
//! queries.
//!
//! Re-ranking reorders only the first [`POOL`] fused candidates and keeps
//! the fused scores by position (the best place keeps the best score), so a
//! personal boost added afterwards works on the same scale as without it.

use serde::{Deserialize, Serialize};

/// Fused candidates re-ranked.
pub const POOL: usize = 30;

/// The features, in order (see [`features`]).
pub const FEATURES: [&str; 14] = [
    "fused",
    "keyword_rr",
    "bm25",
    "semantic_rr",
    "cosine",
    "cosine_gap",
    "coverage",
    "all_words",
    "head_in_title",
    "head_last",
    "popularity",
    "title_words",
    "intent_missed",
    "in_category",
];

/// How many features a candidate has.
pub const N: usize = FEATURES.len();

/// What retrieval knows about one candidate.
#[derive(Debug, Clone, Default)]
pub struct Signals<'a> {
    /// Its fused (RRF) score.
    pub fused: f32,
    /// Its place (from 0) and BM25 in the keyword list.
    pub keyword: Option<(usize, f32)>,
    /// Its place (from 0) and cosine in the semantic list.
    pub semantic: Option<(usize, f32)>,
    /// Its title, normalised: lower-case words joined by single spaces.
    pub title: &'a str,
    /// Its interactions.
    pub popularity: f32,
    /// In a category the query names.
    pub in_category: bool,
}

/// What the query asks for, as [`crate::understand`] read it.
#[derive(Debug, Clone, Default)]
pub struct QueryView<'a> {
    /// The content words (what keyword retrieval searched), lower-case.
    pub content: &'a [String],
    /// The head word.
    pub head: Option<&'a str>,
    /// Colours and materials named.
    pub intents: &'a [String],
}

/// Whether a title word is a query word (or its plural, either way).
pub fn same_word(t: &str, q: &str) -> bool {
    t == q || t.strip_suffix('s') == Some(q) || q.strip_suffix('s') == Some(t)
}

/// Whether a normalised title (words joined by single spaces) holds `word`
/// in either number.
pub fn holds(title: &str, word: &str) -> bool {
    title.split(' ').any(|w| same_word(w, word))
}

fn reciprocal(rank: usize) -> f32 {
    1.0 / (2.0 + rank as f32).ln()
}

/// Every candidate's features, each scaled to about [0, 1] within the pool
/// (the fused score and BM25 against the pool's best, popularity on a log
/// scale against the pool's most popular; a candidate the semantic list
/// lacks takes the pool's lowest cosine).
pub fn features(pool: &[Signals], q: &QueryView) -> Vec<[f32; N]> {
    let max = |f: &dyn Fn(&Signals) -> Option<f32>| {
        pool.iter()
            .filter_map(f)
            .fold(None, |m: Option<f32>, x| Some(m.map_or(x, |m| m.max(x))))
    };
    let top_fused = max(&|s| Some(s.fused)).unwrap_or(0.0);
    let top_bm25 = max(&|s| s.keyword.map(|k| k.1)).unwrap_or(0.0);
    let top_cos = max(&|s| s.semantic.map(|k| k.1));
    let low_cos = max(&|s| s.semantic.map(|k| -k.1)).map(|x| -x);
    let top_pop = max(&|s| Some(s.popularity.max(0.0).ln_1p())).unwrap_or(0.0);
    let ratio = |x: f32, top: f32| if top > 0.0 { x / top } else { 0.0 };
    pool.iter()
        .map(|s| {
            let cos = s.semantic.map(|k| k.1).or(low_cos).unwrap_or(0.0);
            let found = q.content.iter().filter(|w| holds(s.title, w)).count();
            let coverage = if q.content.is_empty() {
                0.0
            } else {
                found as f32 / q.content.len() as f32
            };
            let last = s.title.rsplit(' ').next().unwrap_or("");
            let missed = if q.intents.is_empty() {
                0.0
            } else {
                q.intents.iter().filter(|w| !holds(s.title, w)).count() as f32
                    / q.intents.len() as f32
            };
            let words = s.title.split(' ').filter(|w| !w.is_empty()).count();
            [
                ratio(s.fused, top_fused),
                s.keyword.map_or(0.0, |k| reciprocal(k.0)),
                s.keyword.map_or(0.0, |k| ratio(k.1, top_bm25)),
                s.semantic.map_or(0.0, |k| reciprocal(k.0)),
                cos,
                top_cos.map_or(0.0, |t| t - cos),
                coverage,
                f32::from(u8::from(found == q.content.len() && found > 0)),
                f32::from(u8::from(q.head.is_some_and(|h| holds(s.title, h)))),
                f32::from(u8::from(q.head.is_some_and(|h| same_word(last, h)))),
                ratio(s.popularity.max(0.0).ln_1p(), top_pop),
                words.min(12) as f32 / 12.0,
                missed,
                f32::from(u8::from(s.in_category)),
            ]
        })
        .collect()
}

/// A linear ranker: a candidate's score is `weights · features`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranker {
    pub weights: [f32; N],
}

impl Ranker {
    /// The ranker that keeps the fused order.
    pub fn fused_only() -> Ranker {
        let mut weights = [0.0; N];
        weights[0] = 1.0;
        Ranker { weights }
    }

    pub fn score(&self, f: &[f32; N]) -> f32 {
        self.weights.iter().zip(f).map(|(w, x)| w * x).sum()
    }

    /// The new order of a pool given its [`features`] (indices into it,
    /// best first; ties keep the fused order).
    pub fn order(&self, features: &[[f32; N]]) -> Vec<usize> {
        let s: Vec<f32> = features.iter().map(|x| self.score(x)).collect();
        let mut idx: Vec<usize> = (0..features.len()).collect();
        idx.sort_by(|&a, &b| s[b].total_cmp(&s[a]).then(a.cmp(&b)));
        idx
    }

    /// Fits weights on judged queries (each: its candidates' features and
    /// grades 0, 1, 2): full-batch gradient descent (Adam, `steps` steps)
    /// on the pairwise logistic loss, each pair of different grades
    /// weighted by the difference of their gains (2^grade - 1), queries
    /// weighted equally, with an L2 penalty `l2`; only the features `used`
    /// marks get a weight (the rest stay 0); starts from the fused order
    /// ([`Ranker::fused_only`]). Deterministic.
    pub fn fit(queries: &[Vec<([f32; N], u8)>], used: &[bool; N], steps: usize, l2: f32) -> Ranker {
        let mut w = Ranker::fused_only().weights.map(f64::from);
        for k in 0..N {
            if !used[k] {
                w[k] = 0.0;
            }
        }
        let (mut m, mut v) = ([0f64; N], [0f64; N]);
        let (lr, b1, b2, eps) = (0.05, 0.9, 0.999, 1e-8);
        let gain = |g: u8| f64::from((1u32 << g) - 1);
        let n_queries = queries
            .iter()
            .filter(|q| q.iter().any(|c| c.1 != q[0].1))
            .count()
            .max(1) as f64;
        for t in 1..=steps {
            let mut grad = [0f64; N];
            for q in queries {
                let s: Vec<f64> = q
                    .iter()
                    .map(|(f, _)| f.iter().zip(&w).map(|(x, w)| f64::from(*x) * w).sum())
                    .collect();
                let mut total = 0.0;
                let mut qg = [0f64; N];
                for (i, (fi, gi)) in q.iter().enumerate() {
                    for (j, (fj, gj)) in q.iter().enumerate() {
                        if gi <= gj {
                            continue;
                        }
                        let weight = gain(*gi) - gain(*gj);
                        total += weight;
                        // d/ds_i of log(1 + e^-(s_i - s_j)) = -sigmoid(s_j - s_i).
                        let p = 1.0 / (1.0 + (s[i] - s[j]).exp());
                        for k in 0..N {
                            qg[k] -= weight * p * f64::from(fi[k] - fj[k]);
                        }
                    }
                }
                if total > 0.0 {
                    for k in 0..N {
                        grad[k] += qg[k] / total / n_queries;
                    }
                }
            }
            for k in (0..N).filter(|&k| used[k]) {
                let g = grad[k] + f64::from(l2) * w[k];
                m[k] = b1 * m[k] + (1.0 - b1) * g;
                v[k] = b2 * v[k] + (1.0 - b2) * g * g;
                let mh = m[k] / (1.0 - b1.powi(t as i32));
                let vh = v[k] / (1.0 - b2.powi(t as i32));
                w[k] -= lr * mh / (vh.sqrt() + eps);
            }
        }
        Ranker {
            weights: w.map(|x| x as f32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(title: &str, fused: f32) -> Signals<'_> {
        Signals {
            fused,
            title,
            ..Default::default()
        }
    }

    #[test]
    fn features_read_the_title_against_the_query_words_and_head() {
        let content = ["lamp".to_string(), "candles".to_string()];
        let intents = ["red".to_string()];
        let q = QueryView {
            content: &content,
            head: Some("lamp"),
            intents: &intents,
        };
        let pool = [
            Signals {
                keyword: Some((0, 8.0)),
                semantic: Some((3, 0.5)),
                popularity: 9.0,
                ..sig("candle lamp", 0.04)
            },
            Signals {
                semantic: Some((0, 0.7)),
                ..sig("red lamps for the garden", 0.02)
            },
        ];
        let f = features(&pool, &QueryView { ..q });
        let at = |i: usize, name: &str| f[i][FEATURES.iter().position(|n| *n == name).unwrap()];
        assert_eq!(at(0, "fused"), 1.0);
        assert_eq!(at(1, "fused"), 0.5);
        assert_eq!(at(0, "bm25"), 1.0);
        assert_eq!(at(1, "keyword_rr"), 0.0);
        assert!((at(0, "keyword_rr") - 1.0 / 2f32.ln()).abs() < 1e-6);
        // "candle" is the singular of "candles"; "lamps" the plural of "lamp".
        assert_eq!(at(0, "coverage"), 1.0);
        assert_eq!(at(0, "all_words"), 1.0);
        assert_eq!(at(1, "coverage"), 0.5);
        assert_eq!(at(0, "head_last"), 1.0);
        assert_eq!(at(1, "head_last"), 0.0);
        assert_eq!(at(1, "head_in_title"), 1.0);
        assert!((at(0, "cosine_gap") - 0.2).abs() < 1e-6);
        assert_eq!(at(1, "cosine_gap"), 0.0);
        assert_eq!(at(0, "intent_missed"), 1.0);
        assert_eq!(at(1, "intent_missed"), 0.0);
        assert_eq!(at(0, "popularity"), 1.0);
        assert_eq!(at(1, "popularity"), 0.0);
    }

    #[test]
    fn a_candidate_the_semantic_list_lacks_takes_the_lowest_cosine() {
        let pool = [
            Signals {
                semantic: Some((0, 0.8)),
                ..sig("a", 1.0)
            },
            Signals {
                semantic: Some((1, 0.3)),
                ..sig("b", 1.0)
            },
            sig("c", 1.0),
        ];
        let f = features(&pool, &QueryView::default());
        assert_eq!(f[2][4], 0.3);
    }

    #[test]
    fn the_fused_only_ranker_keeps_the_fused_order() {
        let pool = [sig("x", 3.0), sig("y", 2.0), sig("z", 2.0)];
        let r = Ranker::fused_only();
        let f = features(&pool, &QueryView::default());
        assert_eq!(r.order(&f), vec![0, 1, 2]);
    }

    /// Queries where the grade follows "head_last" and the fused order is
    /// noise: the fitted ranker puts every good candidate first.
    #[test]
    fn fitting_learns_the_feature_that_orders_the_grades() {
        let head = FEATURES.iter().position(|n| *n == "head_last").unwrap();
        let mut queries = Vec::new();
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            (state >> 33) as f32 / (1u64 << 31) as f32
        };
        for _ in 0..20 {
            let mut q = Vec::new();
            for c in 0..10 {
                let mut f = [0f32; N];
                f[0] = next();
                let good = c % 3 == 0;
                f[head] = f32::from(u8::from(good));
                q.push((f, if good { 2 } else { 0 }));
            }
            queries.push(q);
        }
        let r = Ranker::fit(&queries, &[true; N], 300, 1e-3);
        assert!(
            r.weights[head] > r.weights[0].abs() * 2.0,
            "{:?}",
            r.weights
        );
        // Without that feature, it stays at 0 and the fit cannot find it.
        let mut used = [true; N];
        used[head] = false;
        assert_eq!(Ranker::fit(&queries, &used, 300, 1e-3).weights[head], 0.0);
        for q in &queries {
            let mut s: Vec<(f32, u8)> = q.iter().map(|(f, g)| (r.score(f), *g)).collect();
            s.sort_by(|a, b| b.0.total_cmp(&a.0));
            assert!(s[..4].iter().all(|x| x.1 == 2), "{s:?}");
        }
    }
}
