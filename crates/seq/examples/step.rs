//! One training step of a sequence model, timed: the burn side of the
//! framework micro-benchmark (`bench/seq_step.py` runs PyTorch on the same
//! step and prints the ratio).
//!
//! `cargo run --release -p aisle-seq --example step -- [--arch sasrec] [--items 3706]
//!   [--batch 128] [--len 50] [--hidden 64] [--loss ce] [--negatives 256] [--steps 20] [--dropout 0.2]`
//!
//! Prints one JSON line: median seconds per step, CPU seconds per step and
//! steps per CPU-second.

use aisle_seq::{step_benchmark, Arch, LossKind, SeqConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn cpu_seconds() -> f64 {
    // Fields 14 and 15 of /proc/self/stat, in clock ticks (USER_HZ = 100).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f[11].parse::<f64>().ok()? + f[12].parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str, d: &str| -> String {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1).cloned())
            .unwrap_or_else(|| d.to_string())
    };
    let arch = Arch::parse(&get("--arch", "sasrec")).expect("--arch sasrec|gru4rec|lstm");
    let loss = match get("--loss", "ce").as_str() {
        "ce" => LossKind::Ce,
        "sampled" => LossKind::Sampled,
        "gbce" => LossKind::Gbce,
        other => panic!("unknown loss {other}"),
    };
    let items: usize = get("--items", "3706").parse().unwrap();
    let steps: usize = get("--steps", "20").parse().unwrap();
    let cfg = SeqConfig {
        batch_size: get("--batch", "128").parse().unwrap(),
        max_len: get("--len", "50").parse().unwrap(),
        hidden: get("--hidden", "64").parse().unwrap(),
        dropout: get("--dropout", "0.2").parse().unwrap(),
        negatives: get("--negatives", "256").parse().unwrap(),
        inner: get("--hidden", "64").parse::<usize>().unwrap() * 4,
        loss,
        ..SeqConfig::for_arch(arch)
    };
    let c0 = cpu_seconds();
    let times = step_benchmark(arch, &cfg, items, steps).expect("benchmark");
    let cpu = cpu_seconds() - c0;
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    // CPU time includes the warm-up step; scale to the timed steps.
    let total: f64 = times.iter().sum();
    let cpu_per_step = cpu / (steps as f64 + 1.0);
    println!(
        "{{\"framework\":\"burn-flex\",\"arch\":\"{}\",\"loss\":\"{:?}\",\"items\":{items},\"batch\":{},\"len\":{},\"hidden\":{},\"steps\":{steps},\"median_s\":{median:.5},\"mean_s\":{:.5},\"cpu_s_per_step\":{cpu_per_step:.5},\"steps_per_cpu_s\":{:.3},\"threads\":\"{}\"}}",
        arch.name(),
        loss,
        cfg.batch_size,
        cfg.max_len,
        cfg.hidden,
        total / steps as f64,
        1.0 / cpu_per_step.max(1e-9),
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into()),
    );
}
