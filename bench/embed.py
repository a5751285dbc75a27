#!/usr/bin/env python3
"""Sentence-encoder throughput: Aisle's burn MiniLM vs sentence-transformers (PyTorch, CPU) on
the same titles with the same number of threads, in one script.

    VENV=$(bench/setup-peers.sh sentence-transformers)   # throwaway venv outside the repo
    $VENV/bin/python bench/embed.py --titles 2000 --threads 1,2

Titles: the first N distinct product titles of the Online Retail store (bench-out/online-retail/store)
or of a catalog CSV (--catalog FILE with a `title` column). Both encode in batches of 32, sorted by
length (sentence-transformers sorts by length too); the median of 3 passes after a warm-up.
"""
import argparse, csv, json, os, sqlite3, statistics, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("--store", default="bench-out/online-retail/store")
ap.add_argument("--catalog")
ap.add_argument("--titles", type=int, default=2000)
ap.add_argument("--threads", default="1,2")
ap.add_argument("--model", default="models/all-MiniLM-L6-v2")
a = ap.parse_args()

if a.catalog:
    titles = [r["title"] for r in csv.DictReader(open(a.catalog)) if r.get("title")]
else:
    db = sqlite3.connect(os.path.join(a.store, "aisle.db"))
    titles = [r[0] for r in db.execute("select title from items where title is not null order by rowid")]
titles = list(dict.fromkeys(t.strip() for t in titles if t.strip()))[: a.titles]
tmp = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
tmp.write("\n".join(titles))
tmp.close()

# --workspace: the same burn features as the rest of the build (no second burn compile).
subprocess.run(["cargo", "build", "--release", "-q", "--workspace", "--example", "throughput"], check=True)
exe = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "examples", "throughput")

import torch
from sentence_transformers import SentenceTransformer

print(f"{len(titles)} titles; torch {torch.__version__}")
print(f"{'threads':>7} {'aisle texts/s':>14} {'s-t texts/s':>12} {'ratio':>6}")
for th in [int(x) for x in a.threads.split(",")]:
    env = dict(os.environ, RAYON_NUM_THREADS=str(th))
    out = subprocess.run([exe, tmp.name], env=env, capture_output=True, text=True, check=True).stdout
    ours = json.loads(out.strip().splitlines()[-1])["texts_per_s"]
    torch.set_num_threads(th)
    m = SentenceTransformer(a.model, device="cpu")
    m.encode(titles[:64], batch_size=32)
    secs = []
    for _ in range(3):
        t = time.perf_counter()
        m.encode(titles, batch_size=32, normalize_embeddings=True)
        secs.append(time.perf_counter() - t)
    peer = len(titles) / statistics.median(secs)
    print(f"{th:>7} {ours:>14.1f} {peer:>12.1f} {ours / peer:>5.2f}x")
