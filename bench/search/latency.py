#!/usr/bin/env python3
"""Search latency of two `aisle` binaries on one store, alternated (BENCHMARKS.md §5).

    python3 bench/search/latency.py OLD_BIN NEW_BIN STORE [ROUNDS] [QUERIES]

Each round starts one binary's server on STORE (`aisle serve --store STORE`, through
bench/chaos's `Server`, which logs to STORE/serve-PORT.log), sends the same
seeded mix of queries one at a time over HTTP (1 to 3 random words of bench/load/search.lua's
vocabulary, in keyword then hybrid mode; then the judged natural queries' texts when the
store is Online Retail's), reads the server's own `took_ms` and the client's wall time, and
stops it; then the other binary. Prints p50/p99 per binary and mode, and the ratio new/old of
the medians over rounds.
"""
import json
import os
import random
import re
import statistics
import sys
import time
import urllib.parse
import urllib.request

WORDS = ("paper green cream blue rustic metal white cotton retro black ceramic botanical pink "
         "striped red polka dot vintage recycled modern heart wooden glass floral silver scandi "
         "gold bamboo star linen enamel bag tea set card candle plates lunch doormat light mug "
         "lantern holder cushion").split()
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

sys.path.insert(0, os.path.join(HERE, "..", "chaos"))
from chaos import Server  # noqa: E402  (`aisle serve` on a free port, up when healthy)


def natural_queries():
    text = open(os.path.join(HERE, "natural.toml"), encoding="utf-8").read()
    return re.findall(r'^q = "(.*)"$', text, re.M)


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as r:
        return json.loads(r.read())


def embedder():
    """The sentence encoder hybrid search needs (AISLE_EMBEDDER_DIR, else the repository's)."""
    return os.environ.get("AISLE_EMBEDDER_DIR") or os.path.join(ROOT, "models", "all-MiniLM-L6-v2")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def run(binary, store, sets):
    srv = Server(binary, store, env={"AISLE_EMBEDDER_DIR": embedder()})
    port = srv.port
    out = {}
    try:
        for name, mode, queries in sets:
            for q in queries[:20]:  # warm-up (query vectors are cached per text)
                get(port, f"/v1/search?k=10&mode={mode}&q=" + urllib.parse.quote(q + " warm"))
            took, wall = [], []
            for q in queries:
                t = time.perf_counter()
                v = get(port, f"/v1/search?k=10&mode={mode}&q=" + urllib.parse.quote(q))
                wall.append((time.perf_counter() - t) * 1e3)
                took.append(v["took_ms"])
            out[name] = (took, wall)
    finally:
        srv.stop()
    return out


def main():
    old, new, store = sys.argv[1], sys.argv[2], sys.argv[3]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    n = int(sys.argv[5]) if len(sys.argv) > 5 else 600
    rng = random.Random(42)
    mix = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3))) for _ in range(n)]
    sets = [("keyword mix", "keyword", mix), ("hybrid mix", "hybrid", mix)]
    if "retail" in store or os.environ.get("NATURAL"):
        sets.append(("hybrid natural", "hybrid", natural_queries()))
    meds = {}
    for r in range(rounds):
        for label, binary in (("old", old), ("new", new)):
            res = run(binary, store, sets)
            for name, (took, wall) in res.items():
                line = (f"round {r + 1} {label:<3} {name:<15} took_ms p50 {pct(took, .5):6.3f} "
                        f"p99 {pct(took, .99):7.3f} | wall p50 {pct(wall, .5):6.3f} p99 {pct(wall, .99):7.3f}")
                print(line, flush=True)
                meds.setdefault((label, name), []).append((pct(took, .5), pct(took, .99)))
    print()
    for name, _, _ in sets:
        o = meds[("old", name)]
        w = meds[("new", name)]
        m = lambda xs, i: statistics.median(x[i] for x in xs)
        print(f"{name:<15} took_ms p50 old {m(o, 0):.3f} new {m(w, 0):.3f} ratio {m(w, 0) / m(o, 0):.2f}; "
              f"p99 old {m(o, 1):.3f} new {m(w, 1):.3f} ratio {m(w, 1) / m(o, 1):.2f}")


if __name__ == "__main__":
    main()
