//! `aisle-graph`: the graph-attention recommender (GAT) trained with burn
//! (`flex` CPU backend + autodiff). The layer, the scoring and the
//! explanations are `aisle_models::Gat`'s (see its documentation); this
//! crate learns its parameters and hands over the propagated tables.
//!
//! # Training
//! One step takes `batch_size` observed (user, item) pairs and `negatives`
//! uniform items shared by the step. Every node of the step (each pair's
//! user and item, each negative) attends over up to `neighbors` of its
//! graph neighbours sampled afresh, never over the pair's own edge (the
//! user does not see the item it must predict, nor the item that user).
//! A `user_dropout` share of the users are trained as a shopper the model
//! never saw: their embedding hidden and their own message the mean of
//! their sampled items' (the serving path). The loss is the sampled softmax
//! of each user's item against the shared negatives (a negative equal to
//! the positive is masked). AdamW; one pass over the pairs in a fresh order
//! is an epoch; a time budget stops inside one.
//!
//! # Inference
//! After training, every node attends over all of its neighbours once (plain
//! Rust over the learned tensors) and the tables are the model's.

use std::time::Instant;

use aisle_core::rng::Rng;
use aisle_core::vector::axpy;
use aisle_models::{attention_weights, Gat, GatConfig, ModelError, Progress, TrainData};
use burn::module::{Module, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::{leaky_relu, log_softmax, softmax};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use rayon::prelude::*;

/// Every item's category (`0` = none), `0..n_categories + 1`.
#[derive(Debug, Clone, Default)]
pub struct Categories {
    pub of_item: Vec<u32>,
    pub n: usize,
}

/// What training did.
#[derive(Debug, Clone, Default)]
pub struct GatFit {
    pub epochs: usize,
    pub steps: usize,
    pub train_s: f64,
    /// Seconds of each completed epoch.
    pub epoch_s: Vec<f64>,
    /// Mean loss of each completed epoch.
    pub epoch_loss: Vec<f64>,
}

#[derive(Module, Debug)]
struct GatNet {
    /// Users `0..nu`, then items.
    nodes: Param<Tensor<2>>,
    category: Option<Param<Tensor<2>>>,
    w: Param<Tensor<2>>,
    a_self: Param<Tensor<1>>,
    a_nb: Param<Tensor<1>>,
}

/// The graph: each node's distinct neighbours (users `0..nu`, then items).
struct Graph {
    nu: usize,
    offsets: Vec<usize>,
    neighbors: Vec<u32>,
}

impl Graph {
    fn new(sets: &[Vec<u32>], nu: usize, ni: usize) -> Graph {
        let (offsets, neighbors) = aisle_models::bipartite_csr(sets, nu, ni);
        Graph {
            nu,
            offsets,
            neighbors,
        }
    }

    fn of(&self, v: usize) -> &[u32] {
        &self.neighbors[self.offsets[v]..self.offsets[v + 1]]
    }
}

fn heads_logit(z: Tensor<2>, a: &Tensor<1>, heads: usize) -> Tensor<2> {
    let [t, f] = z.dims();
    let dh = f / heads;
    (z * a.clone().reshape([1, f]))
        .reshape([t, heads, dh])
        .sum_dim(2)
        .reshape([t, heads])
}

/// One step's nodes: the distinct nodes it reads, and per target node its
/// sampled neighbours (local numbers) with the padding marked.
struct Batch {
    uniq: Vec<i64>,
    cats: Vec<i64>,
    targets: Vec<i64>,
    nb: Vec<i64>,
    pad: Vec<bool>,
    keep: Vec<f32>,
    /// `[users, negatives]`: the negative is the user's positive.
    hit: Vec<bool>,
    users: usize,
    negatives: usize,
}

struct Sampler<'a> {
    graph: &'a Graph,
    cats: Option<&'a Categories>,
    s: usize,
    /// Local number of a node in this step (+1; 0 = not yet), and the step it was stamped in.
    local: Vec<(u32, u32)>,
    step: u32,
    b: Batch,
}

impl Sampler<'_> {
    fn local(&mut self, v: usize) -> i64 {
        let (l, s) = self.local[v];
        if s == self.step && l > 0 {
            return (l - 1) as i64;
        }
        self.b.uniq.push(v as i64);
        let cat = match self.cats {
            Some(c) if v >= self.graph.nu => c.of_item[v - self.graph.nu] as i64,
            _ => 0,
        };
        self.b.cats.push(cat);
        let l = self.b.uniq.len() as u32;
        self.local[v] = (l, self.step);
        (l - 1) as i64
    }

    /// Adds target `v` with up to `s` sampled neighbours, never `skip`.
    fn target(&mut self, v: usize, skip: Option<usize>, rng: &mut Rng) {
        let t = self.local(v);
        self.b.targets.push(t);
        let all = self.graph.of(v);
        let ok = |w: u32| Some(w as usize) != skip;
        let avail = all.len() - skip.map_or(0, |s| all.contains(&(s as u32)) as usize);
        let mut picked = 0;
        if avail <= self.s {
            for &w in all {
                if ok(w) {
                    let l = self.local(w as usize);
                    self.b.nb.push(l);
                    self.b.pad.push(false);
                    picked += 1;
                }
            }
        } else {
            while picked < self.s {
                let w = all[rng.below(all.len() as u64) as usize];
                if ok(w) {
                    let l = self.local(w as usize);
                    self.b.nb.push(l);
                    self.b.pad.push(false);
                    picked += 1;
                }
            }
        }
        for _ in picked..self.s {
            self.b.nb.push(0);
            self.b.pad.push(true);
        }
    }
}

impl GatNet {
    fn init(cfg: &GatConfig, n_nodes: usize, cats: Option<&Categories>, device: &Device) -> GatNet {
        let f = cfg.factors;
        let mut rng = Rng::seed(cfg.seed);
        let mut normal = |n: usize, std: f64| -> Vec<f32> {
            (0..n).map(|_| (rng.normal() * std) as f32).collect()
        };
        let t2 = |v: Vec<f32>, r: usize| {
            Param::from_tensor(Tensor::<2>::from_data(TensorData::new(v, [r, f]), device))
        };
        let t1 = |v: Vec<f32>| {
            Param::from_tensor(Tensor::<1>::from_data(TensorData::new(v, [f]), device))
        };
        let nodes = t2(normal(n_nodes * f, 0.1), n_nodes);
        let category = cats.map(|c| t2(normal((c.n + 1) * f, 0.1), c.n + 1));
        // W starts near the identity: a message starts as the node itself.
        let mut w = normal(f * f, 0.01);
        for d in 0..f {
            w[d * f + d] += 1.0;
        }
        GatNet {
            nodes,
            category,
            w: t2(w, f),
            a_self: t1(normal(f, 0.1)),
            a_nb: t1(normal(f, 0.1)),
        }
    }

    /// The batch's mean sampled-softmax loss.
    fn loss(&self, b: &Batch, cfg: &GatConfig, device: &Device) -> Tensor<1> {
        let (f, h, s) = (cfg.factors, cfg.heads, cfg.neighbors);
        let int =
            |v: &[i64]| Tensor::<1, Int>::from_data(TensorData::new(v.to_vec(), [v.len()]), device);
        let mut x = self.nodes.val().select(0, int(&b.uniq));
        if let Some(c) = &self.category {
            x = x + c.val().select(0, int(&b.cats));
        }
        let z = x.clone().matmul(self.w.val());
        let t = b.targets.len();
        let keep = Tensor::<2>::from_data(TensorData::new(b.keep.clone(), [t, 1]), device);
        let x_t = x.select(0, int(&b.targets)) * keep.clone();
        let z_nb = z.clone().select(0, int(&b.nb)).reshape([t, s, f]);
        let pad = Tensor::<2, Bool>::from_data(TensorData::new(b.pad.clone(), [t, s]), device);
        let valid: Vec<f32> = b.pad.iter().map(|&p| if p { 0.0 } else { 1.0 }).collect();
        let count: Vec<f32> = valid
            .chunks(s)
            .map(|c| c.iter().sum::<f32>().max(1.0))
            .collect();
        let valid = Tensor::<3>::from_data(TensorData::new(valid, [t, s, 1]), device);
        let count = Tensor::<2>::from_data(TensorData::new(count, [t, 1]), device);
        let mean = (z_nb.clone() * valid).sum_dim(1).reshape([t, f]) / count;
        let z_self = z.select(0, int(&b.targets));
        let z_q = z_self * keep.clone() + mean * (keep.neg() + 1.0);
        let (a_self, a_nb) = (self.a_self.val(), self.a_nb.val());
        let s_q = heads_logit(z_q.clone(), &a_self, h);
        let own =
            leaky_relu(s_q.clone() + heads_logit(z_q.clone(), &a_nb, h), 0.2).reshape([t, 1, h]);
        let nb = heads_logit(z_nb.clone().reshape([t * s, f]), &a_nb, h).reshape([t, s, h]);
        let nb = leaky_relu(nb + s_q.reshape([t, 1, h]), 0.2)
            .mask_fill(pad.reshape([t, s, 1]).expand([t, s, h]), -1e9);
        let alpha = softmax(Tensor::cat(vec![own, nb], 1), 1).reshape([t, s + 1, h, 1]);
        let msgs = Tensor::cat(vec![z_q.reshape([t, 1, f]), z_nb], 1).reshape([t, s + 1, h, f / h]);
        let out = x_t + (msgs * alpha).sum_dim(1).reshape([t, f]);
        let (nb_u, nn) = (b.users, b.negatives);
        let users = out.clone().narrow(0, 0, nb_u);
        let pos = out.clone().narrow(0, nb_u, nb_u);
        let neg = out.narrow(0, 2 * nb_u, nn);
        let pos_s = (users.clone() * pos).sum_dim(1);
        let hit = Tensor::<2, Bool>::from_data(TensorData::new(b.hit.clone(), [nb_u, nn]), device);
        let neg_s = users.matmul(neg.transpose()).mask_fill(hit, -1e9);
        let logits = Tensor::cat(vec![pos_s, neg_s], 1);
        log_softmax(logits, 1).narrow(1, 0, 1).mean().neg()
    }
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 parameter")
}

/// Trains a GAT on `data` (categories added to the items when given and
/// `cfg.category`).
pub fn fit(
    cfg: &GatConfig,
    data: &TrainData,
    categories: Option<&Categories>,
    progress: Progress<'_>,
) -> Result<(Gat, GatFit), ModelError> {
    let bad = |message: String| ModelError::BadConfig {
        model: "gat".into(),
        message,
    };
    cfg.check().map_err(bad)?;
    if cfg.time_budget_s < 0.0 {
        return Err(bad("time_budget_s must be >= 0".into()));
    }
    let (nu, ni) = (data.n_users(), data.n_items);
    if ni == 0 || nu == 0 {
        return Err(ModelError::EmptyData);
    }
    let cats = categories.filter(|c| cfg.category && c.n > 0 && c.of_item.len() == ni);
    let sets = data.user_sets();
    let pairs: Vec<(u32, u32)> = sets
        .iter()
        .enumerate()
        .flat_map(|(u, s)| s.iter().map(move |&i| (u as u32, i)))
        .collect();
    if pairs.is_empty() {
        return Err(ModelError::EmptyData);
    }
    let graph = Graph::new(&sets, nu, ni);
    let device = Device::default().autodiff();
    let mut net = GatNet::init(cfg, nu + ni, cats, &device);
    let mut optim = AdamWConfig::new()
        .with_weight_decay(cfg.weight_decay as f32)
        .init();
    let mut rng = Rng::seed(cfg.seed ^ 0x6a7);
    let mut sampler = Sampler {
        graph: &graph,
        cats,
        s: cfg.neighbors,
        local: vec![(0, 0); nu + ni],
        step: 0,
        b: empty_batch(),
    };
    let batch = cfg.batch_size.min(pairs.len());
    let steps = pairs.len().div_ceil(batch);
    let total = (cfg.epochs * steps) as u64;
    let start = Instant::now();
    let mut fit = GatFit::default();
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    'outer: for epoch in 0..cfg.epochs {
        let t0 = Instant::now();
        shuffle(&mut rng, &mut order);
        let mut loss_sum = 0.0;
        for step in 0..steps {
            if cfg.time_budget_s > 0.0 && start.elapsed().as_secs_f64() > cfg.time_budget_s {
                break 'outer;
            }
            let chunk = &order[step * batch..((step + 1) * batch).min(order.len())];
            sampler.step += 1;
            sampler.b = empty_batch();
            for &p in chunk {
                let (u, i) = pairs[p];
                sampler.target(u as usize, Some(nu + i as usize), &mut rng);
                sampler.b.keep.push(if rng.f64() < cfg.user_dropout {
                    0.0
                } else {
                    1.0
                });
            }
            for &p in chunk {
                let (u, i) = pairs[p];
                sampler.target(nu + i as usize, Some(u as usize), &mut rng);
                sampler.b.keep.push(1.0);
            }
            let negs: Vec<u32> = (0..cfg.negatives)
                .map(|_| rng.below(ni as u64) as u32)
                .collect();
            for &j in &negs {
                sampler.target(nu + j as usize, None, &mut rng);
                sampler.b.keep.push(1.0);
            }
            sampler.b.users = chunk.len();
            sampler.b.negatives = negs.len();
            let pairs = &pairs;
            sampler.b.hit = chunk
                .iter()
                .flat_map(|&p| negs.iter().map(move |&j| j == pairs[p].1))
                .collect();
            let loss = net.loss(&sampler.b, cfg, &device);
            let value = loss.clone().into_scalar::<f32>() as f64;
            if !value.is_finite() {
                tracing::warn!(epoch, step, "gat loss not finite; stopping");
                break 'outer;
            }
            loss_sum += value;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(cfg.lr, net, grads);
            fit.steps += 1;
            progress((epoch * steps + step + 1) as u64, total);
        }
        fit.epochs = epoch + 1;
        fit.epoch_s.push(t0.elapsed().as_secs_f64());
        fit.epoch_loss.push(loss_sum / steps as f64);
        tracing::debug!(
            epoch,
            loss = loss_sum / steps as f64,
            seconds = t0.elapsed().as_secs_f64(),
            "gat epoch"
        );
    }
    fit.train_s = start.elapsed().as_secs_f64();
    let model = propagate(cfg, &net, &graph, cats)?;
    Ok((model, fit))
}

fn shuffle(rng: &mut Rng, v: &mut [usize]) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i as u64 + 1) as usize);
    }
}

fn empty_batch() -> Batch {
    Batch {
        uniq: Vec::new(),
        cats: Vec::new(),
        targets: Vec::new(),
        nb: Vec::new(),
        pad: Vec::new(),
        keep: Vec::new(),
        hit: Vec::new(),
        users: 0,
        negatives: 0,
    }
}

/// Every node attends over all of its neighbours: the served tables.
fn propagate(
    cfg: &GatConfig,
    net: &GatNet,
    graph: &Graph,
    cats: Option<&Categories>,
) -> Result<Gat, ModelError> {
    let (f, h) = (cfg.factors, cfg.heads);
    let dh = f / h;
    let nu = graph.nu;
    let mut x = values(net.nodes.val().inner());
    let n = x.len() / f;
    if let (Some(c), Some(table)) = (cats, &net.category) {
        let table = values(table.val().inner());
        x[nu * f..]
            .par_chunks_mut(f)
            .zip(c.of_item.par_iter())
            .for_each(|(row, &k)| {
                let k = k as usize;
                for (r, t) in row.iter_mut().zip(&table[k * f..(k + 1) * f]) {
                    *r += t;
                }
            });
    }
    let w = values(net.w.val().inner());
    let mut z = vec![0f32; x.len()];
    z.par_chunks_mut(f)
        .zip(x.par_chunks(f))
        .for_each(|(zr, xr)| {
            for (k, &xv) in xr.iter().enumerate() {
                if xv != 0.0 {
                    axpy(zr, xv, &w[k * f..(k + 1) * f]);
                }
            }
        });
    let a_self = values(net.a_self.val().inner());
    let a_nb = values(net.a_nb.val().inner());
    let dot = aisle_core::vector::dot;
    let head =
        |v: &[f32], a: &[f32], k: usize| dot(&v[k * dh..(k + 1) * dh], &a[k * dh..(k + 1) * dh]);
    // Each node's neighbour logit a_nb · z per head, once.
    let s_nb: Vec<f32> = z
        .chunks(f)
        .flat_map(|r| (0..h).map(|k| head(r, &a_nb, k)).collect::<Vec<_>>())
        .collect();
    let mut out = x.clone();
    out.par_chunks_mut(f).enumerate().for_each(|(v, o)| {
        let zv = &z[v * f..(v + 1) * f];
        let nbs = graph.of(v);
        let mut weights = Vec::with_capacity(nbs.len() + 1);
        for k in 0..h {
            let own = std::iter::once(v);
            let terms = own.chain(nbs.iter().map(|&w| w as usize));
            attention_weights(
                head(zv, &a_self, k),
                terms.clone().map(|m| s_nb[m * h + k]),
                &mut weights,
            );
            let r = k * dh..(k + 1) * dh;
            for (m, &w) in terms.zip(&weights) {
                axpy(
                    &mut o[r.clone()],
                    w,
                    &z[m * f + k * dh..m * f + (k + 1) * dh],
                );
            }
        }
    });
    debug_assert_eq!(out.len(), n * f);
    let items = out.split_off(nu * f);
    let item_z = z.split_off(nu * f);
    let mut attention = a_self;
    attention.extend(a_nb);
    Gat::new(cfg.clone(), out, items, item_z, attention)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aisle_eval::Scorer;

    /// Two disjoint communities: a user's unseen community item ranks above
    /// the other community's, for a training user and for a live history.
    #[test]
    fn learns_communities_for_known_users_and_live_histories() {
        let mut seqs = Vec::new();
        for u in 0..60u32 {
            let base = if u < 30 { 0 } else { 6 };
            seqs.push((0..4).map(|k| base + (u + k) % 6).collect());
        }
        let data = TrainData::new(12, seqs);
        let cfg = GatConfig {
            factors: 8,
            heads: 2,
            neighbors: 4,
            epochs: 40,
            batch_size: 64,
            negatives: 8,
            lr: 0.02,
            ..Default::default()
        };
        let (m, fit) = fit(&cfg, &data, None, &|_, _| {}).unwrap();
        assert_eq!(fit.epochs, 40);
        assert!(
            fit.epoch_loss[39] < fit.epoch_loss[0],
            "{:?}",
            fit.epoch_loss
        );
        let mut s = vec![0f32; 12];
        // User 0 saw items 0..4; items 4 and 5 are its community's.
        m.score(0, &[0, 1, 2, 3], &mut s);
        assert!((6..12).all(|j| s[4] > s[j] && s[5] > s[j]), "{s:?}");
        m.score(u32::MAX, &[7, 8], &mut s);
        assert!((0..6).all(|j| s[9] > s[j]), "{s:?}");
    }

    #[test]
    fn categories_join_the_item_vectors() {
        let data = TrainData::new(4, vec![vec![0, 1], vec![2, 3], vec![0, 2]]);
        let cats = Categories {
            of_item: vec![1, 1, 2, 2],
            n: 2,
        };
        let cfg = GatConfig {
            factors: 4,
            heads: 1,
            epochs: 1,
            negatives: 2,
            ..Default::default()
        };
        let (with, _) = fit(&cfg, &data, Some(&cats), &|_, _| {}).unwrap();
        let (without, _) = fit(&cfg, &data, None, &|_, _| {}).unwrap();
        let (mut a, mut b) = (vec![0f32; 4], vec![0f32; 4]);
        with.score(0, &[], &mut a);
        without.score(0, &[], &mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn bad_configs_and_empty_data_are_refused() {
        let data = TrainData::new(2, vec![vec![0]]);
        let cfg = GatConfig {
            factors: 6,
            heads: 4,
            ..Default::default()
        };
        assert!(matches!(
            fit(&cfg, &data, None, &|_, _| {}),
            Err(ModelError::BadConfig { .. })
        ));
        let empty = TrainData::new(2, vec![vec![]]);
        assert!(matches!(
            fit(&GatConfig::default(), &empty, None, &|_, _| {}),
            Err(ModelError::EmptyData)
        ));
    }
}
