#!/usr/bin/env python3
"""Classical recommenders: Aisle vs the `implicit` library, side by side.

For each dataset (retail, ml1m by default), on the canonical sequences of
../shared/baselines and the protocol of PROTOCOL.md (leave-one-out, full
ranking, train+validation items masked, target never masked), fits
implicit's ALS (64 factors, 15 iterations, reg 0.01, binary matrix) and BPR
(64 factors, 100 iterations, lr 0.01, reg 0.01) with 2 threads, and Aisle's
`als` and `bpr` with the same factors/iterations through `aisle evaluate`,
over several seeds. Prints median fit seconds, mean test NDCG@10/Recall@10,
and the ratios.

Usage: bench/setup-peers.sh implicit && python3 bench/classical.py [--seeds 3]
Needs target/release/aisle and stores made by `aisle ingest` (the script makes
them under bench-out/ when missing).
"""
import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared")
SETS = {
    "retail": ("online-retail", "data/online-retail/transactions.csv.gz"),
    "ml1m": ("ml-1m", "data/ml-1m/interactions.csv.gz"),
}


def load(name):
    seqs = []
    with gzip.open(os.path.join(DATA, "baselines/sequences", f"{name}.tsv.gz"), "rt") as f:
        for line in f:
            seqs.append(line.rstrip("\n").split("\t")[1:])
    ids = {}
    for s in seqs:
        for i in s:
            if i not in ids:
                ids[i] = len(ids)
    return [[ids[i] for i in s] for s in seqs], len(ids)


def evaluate(np, user_f, item_f, seqs, n_items, k=10):
    """Test metrics with masking; ties count as a random order (expected value)."""
    ndcg = rec = 0.0
    scores_all = user_f @ item_f.T
    for u, s in enumerate(seqs):
        t = s[-1]
        sc = scores_all[u].astype(np.float32).copy()
        hist = np.array(sorted(set(s[:-1]) - {t}), dtype=np.int64)
        if len(hist):
            sc[hist] = -np.inf
        g = int((sc > sc[t]).sum())
        ties = int((sc == sc[t]).sum()) - 1
        last = min(g + ties, k - 1)
        if g <= last:
            rs = np.arange(g, last + 1)
            ndcg += float((1.0 / np.log2(rs + 2)).sum()) / (ties + 1)
            rec += (last - g + 1) / (ties + 1)
    return ndcg / len(seqs), rec / len(seqs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sets", default="retail,ml1m")
    ap.add_argument("--aisle", default=os.path.join(ROOT, "target/release/aisle"))
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import numpy as np
    import scipy.sparse as sp
    import implicit
    from threadpoolctl import threadpool_limits

    rows = []
    for name in args.sets.split(","):
        preset, path = SETS[name]
        store = os.path.join(ROOT, "bench-out", preset, "store")
        if not os.path.exists(os.path.join(store, "aisle.db")):
            subprocess.run([args.aisle, "ingest", "--preset", preset, "--input", os.path.join(DATA, path), "--store", store], check=True, stdout=subprocess.DEVNULL)
        seqs, n_items = load(name)
        train = [sorted(set(s[:-2])) for s in seqs]
        r = [u for u, s in enumerate(train) for _ in s]
        c = [i for s in train for i in s]
        m = sp.csr_matrix((np.ones(len(c), dtype=np.float32), (r, c)), shape=(len(seqs), n_items))
        for model in ["als", "bpr"]:
            res = {"implicit": [], "aisle": []}
            for seed in range(args.seeds):
                with threadpool_limits(1, "blas"):
                    if model == "als":
                        mdl = implicit.cpu.als.AlternatingLeastSquares(factors=64, iterations=15, regularization=0.01, num_threads=2, random_state=seed, calculate_training_loss=False)
                    else:
                        mdl = implicit.cpu.bpr.BayesianPersonalizedRanking(factors=64, iterations=100, learning_rate=0.01, regularization=0.01, num_threads=2, random_state=seed)
                    t = time.perf_counter()
                    mdl.fit(m, show_progress=False)
                    fit = time.perf_counter() - t
                nd, rc = evaluate(np, mdl.user_factors, mdl.item_factors, seqs, n_items)
                res["implicit"].append((fit, nd, rc))
                cmd = [args.aisle, "evaluate", "--store", store, "--models", model, "--json", "--set", f"seed={seed}"]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                x = json.loads(out)["results"][0]
                res["aisle"].append((x["fit_s"], x["ndcg@10"], x["recall@10"]))
            for who in ["implicit", "aisle"]:
                fits = [a for a, _, _ in res[who]]
                rows.append({"dataset": name, "model": model, "who": who,
                             "fit_s_median": statistics.median(fits),
                             "ndcg@10_mean": statistics.mean(b for _, b, _ in res[who]),
                             "recall@10_mean": statistics.mean(c for _, _, c in res[who])})
    print(f"{'dataset':<8}{'model':<6}{'library':<10}{'fit s (median)':>15}{'NDCG@10':>10}{'Recall@10':>11}{'  speed-up':>10}")
    for r in rows:
        peer = next(p for p in rows if p["dataset"] == r["dataset"] and p["model"] == r["model"] and p["who"] == "implicit")
        print(f"{r['dataset']:<8}{r['model']:<6}{r['who']:<10}{r['fit_s_median']:>15.2f}{r['ndcg@10_mean']:>10.4f}{r['recall@10_mean']:>11.4f}{peer['fit_s_median'] / r['fit_s_median']:>9.2f}x")
    print(json.dumps({"seeds": args.seeds, "rows": rows}))


if __name__ == "__main__":
    main()
