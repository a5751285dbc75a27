#!/usr/bin/env python3
"""The scale curve: how each stage's cost grows with the shop (issue 25, BENCHMARKS.md §16).

    python3 bench/scale/scale.py AISLE_BIN WORKDIR [--sizes 1e5,1e6,1e7] [--rate 20] [--secs 20]
                                [--no-semantic] [--keep]

For each size N (events), the demo generator writes a shop of N/40 users (its shoppers make ~40
events each: sessions of views, carts, purchases and repeat buys, Zipf-like popularity within
categories) and 20·sqrt(N) products (`aisle demo --no-serve --train-seconds 0`), and then each
stage runs as its own process, timed by wall clock with its peak resident memory (wait4's
ru_maxrss):

- ingest: `aisle ingest --preset demo` of the generated files into a fresh store; store size
  after it (the store folder on disk);
- training: `aisle train` of ALS (3 iterations), SASRec with the sampled-softmax loss (2
  epochs) and SASRec with its default full-softmax loss (2 epochs; up to --full-softmax-max
  events, as its epoch grows with events x catalog size): time per epoch = the trainer's own
  fit time (`fit_s`, after loading the store) / epochs; ALS is promoted and served (the same
  kind at every size);
- index: `aisle index` (keyword index, item vectors, the HNSW graph from 20,000 products);
  skipped with --no-semantic (and search is keyword-only);
- serve: `aisle serve` until /healthz answers (start-up), its resident memory then; then
  recommendations (`GET /v1/users/{id}/recommendations?k=10`, random known users) and search
  (`GET /v1/search?q=..&k=10`, 1-2 random title words) each at a fixed --rate for --secs
  seconds, open loop (latency counted from when the request was due, so a slow server cannot
  hide its queue), p50/p99; the server's peak memory at the end.

Writes WORKDIR/scale.json (every figure), WORKDIR/scale.svg (log-log cost against events, one
line per stage) and prints a table with each stage's exponent: the slope of log(cost) against
log(events) between consecutive sizes and over all of them (1: linear).
"""
import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "chaos"))
from chaos import free_port, rss_kb  # noqa: E402

EVENTS_PER_USER = 40


def run(cmd, env=None):
    """Runs `cmd`; returns (wall seconds, peak RSS MB, stdout)."""
    t = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    out_chunks = []
    reader = threading.Thread(target=lambda: out_chunks.append(p.stdout.read()))
    err_chunks = []
    err_reader = threading.Thread(target=lambda: err_chunks.append(p.stderr.read()))
    reader.start()
    err_reader.start()
    _, status, usage = os.wait4(p.pid, 0)
    reader.join()
    err_reader.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - t
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {''.join(err_chunks)[-2000:]}")
    return wall, usage.ru_maxrss / 1024.0, "".join(out_chunks)


def du_mb(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total / 1e6


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None


def load(port, paths, rate, secs):
    """Open-loop GETs of `paths` (a function giving the next one) at `rate` per second."""
    n = int(rate * secs)
    start = time.time() + 0.2
    lat, errors = [], [0]
    lock = threading.Lock()

    def one(due, path):
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
                r.read()
                ok = r.status == 200
        except Exception:  # noqa: BLE001 (any failure counts)
            ok = False
        with lock:
            if ok:
                lat.append((time.time() - due) * 1e3)
            else:
                errors[0] += 1

    threads = []
    for i in range(n):
        t = threading.Thread(target=one, args=(start + i / rate, paths()))
        t.start()
        threads.append(t)
        # Keep at most ~2 s of requests waiting to start.
        while len(threads) - sum(1 for x in threads if not x.is_alive()) > rate * 2 + 8:
            time.sleep(0.01)
    for t in threads:
        t.join()
    return {"requests": n, "errors": errors[0], "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)}


def serve(aisle, store, env, rate, secs, users, words):
    port = free_port()
    log = open(os.path.join(store, f"serve-{port}.log"), "w")
    t = time.time()
    # Without semantic search, the encoder is out of reach (env), so search is keyword-only.
    p = subprocess.Popen([aisle, "serve", "--store", store, "--addr", f"127.0.0.1:{port}"],
                         stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        while True:
            if p.poll() is not None:
                raise RuntimeError(f"server exited {p.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except Exception:  # noqa: BLE001
                time.sleep(0.05)
        startup = time.time() - t
        rss_start = rss_kb(p.pid) / 1024.0
        rng = random.Random(7)
        recs = load(port, lambda: f"/v1/users/{rng.choice(users)}/recommendations?k=10", rate, secs)
        search = load(port, lambda: "/v1/search?k=10&q=" + "%20".join(
            rng.sample(words, rng.randint(1, 2))), rate, secs)
        return {
            "startup_s": startup,
            "rss_mb_after_start": rss_start,
            "peak_rss_mb": rss_kb(p.pid, "VmHWM") / 1024.0,
            "recommendations": recs,
            "search": search,
        }
    finally:
        p.terminate()
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()


def size(aisle, work, n, a, env):
    users = max(100, round(n / EVENTS_PER_USER))
    items = round(20 * math.sqrt(n))
    d = os.path.join(work, f"n{n:.0e}")
    shutil.rmtree(d, ignore_errors=True)
    out = {"target_events": n, "users": users, "items": items}
    wall, rss, _ = run([aisle, "demo", "--dir", d, "--users", str(users), "--items", str(items),
                        "--train-seconds", "0", "--no-serve"], env)
    out["generate_s"] = wall
    # The demo's own store (its ingest is measured again below, alone).
    shutil.rmtree(os.path.join(d, "store"), ignore_errors=True)
    data = os.path.join(d, "data")
    with open(os.path.join(data, "events.csv")) as f:
        out["events_rows"] = sum(1 for _ in f) - 1
    store = os.path.join(d, "scale-store")
    wall, rss, report = run([aisle, "ingest", "--preset", "demo", "--input",
                             os.path.join(data, "events.csv"), "--catalog",
                             os.path.join(data, "catalog.csv"), "--store", store, "--json"], env)
    rep = json.loads(report)
    out["ingest"] = {"s": wall, "peak_rss_mb": rss, "accepted": rep.get("accepted")}
    out["store_mb"] = du_mb(store)
    # (name, model, epochs key, epochs, extra settings): per-epoch time = the trainer's own fit
    # time (`fit_s`, after loading the store) / epochs; the rest of the wall time is loading.
    trainings = []
    if n <= a.sasrec_max:
        trainings.append(("sasrec_sampled", "sasrec", "sasrec.epochs", 2,
                          ["--set", "sasrec.loss=sampled"]))
    if n <= a.full_softmax_max:
        trainings.append(("sasrec", "sasrec", "sasrec.epochs", 2, []))
    # ALS last: it is promoted and served at every size (the same kind, so recommendation
    # latency compares across sizes).
    trainings.append(("als", "als", "als.iterations", 3, []))
    # The last one trained is promoted and served.
    for i, (name, model, key, k, extra) in enumerate(trainings):
        cmd = [aisle, "train", "--store", store, "--model", model, "--set", f"{key}={k}", *extra]
        if i == len(trainings) - 1:
            cmd.append("--promote")
        else:
            cmd += ["--out", os.path.join(d, f"{name}.safetensors")]
        wall, rss, report = run(cmd, env)
        fit = json.loads(report)["fit_s"]
        out[name] = {"epochs": k, "wall_s": wall, "fit_s": fit, "per_epoch_s": fit / k,
                     "load_s": wall - fit, "peak_rss_mb": rss}
    if a.semantic:
        wall, rss, _ = run([aisle, "index", "--store", store], env)
        out["index"] = {"s": wall, "peak_rss_mb": rss}
    words = set()
    with open(os.path.join(data, "catalog.csv")) as f:
        next(f)
        for line in f:
            title = line.split(",")[1].strip('"')
            words.update(w.lower() for w in title.split() if w.isalpha())
    user_ids = [f"u{u + 1:05}" for u in range(users)]
    out["serve"] = serve(aisle, store, env, a.rate, a.secs, user_ids, sorted(words))
    if not a.keep:
        shutil.rmtree(data, ignore_errors=True)
    return out


# (label, how to read the cost from one size's figures)
STAGES = [
    ("ingest s", lambda r: r["ingest"]["s"]),
    ("ingest peak MB", lambda r: r["ingest"]["peak_rss_mb"]),
    ("store MB", lambda r: r["store_mb"]),
    ("ALS s/iteration", lambda r: r["als"]["per_epoch_s"]),
    ("ALS peak MB", lambda r: r["als"]["peak_rss_mb"]),
    ("SASRec s/epoch", lambda r: r.get("sasrec", {}).get("per_epoch_s")),
    ("SASRec peak MB", lambda r: r.get("sasrec", {}).get("peak_rss_mb")),
    ("SASRec-sampled s/ep", lambda r: r.get("sasrec_sampled", {}).get("per_epoch_s")),
    ("SASRec-sampled MB", lambda r: r.get("sasrec_sampled", {}).get("peak_rss_mb")),
    ("index s", lambda r: r.get("index", {}).get("s")),
    ("index peak MB", lambda r: r.get("index", {}).get("peak_rss_mb")),
    ("serve start s", lambda r: r["serve"]["startup_s"]),
    ("serve MB", lambda r: r["serve"]["rss_mb_after_start"]),
    ("serve peak MB", lambda r: r["serve"]["peak_rss_mb"]),
    ("recs p99 ms", lambda r: r["serve"]["recommendations"]["p99_ms"]),
    ("search p99 ms", lambda r: r["serve"]["search"]["p99_ms"]),
]


def slope(x0, y0, x1, y1):
    if not (x0 and y0 and x1 and y1) or x0 <= 0 or y0 <= 0 or y1 <= 0 or x1 == x0:
        return None
    return math.log(y1 / y0) / math.log(x1 / x0)


def svg(results, path):
    """Cost against events, log-log, each stage relative to its smallest size."""
    w, h, pad = 640, 400, 50
    xs = [r["events_rows"] for r in results]
    lo, hi = math.log10(min(xs)), math.log10(max(xs))
    series = []
    for label, f in STAGES:
        pts = [(r["events_rows"], f(r)) for r in results if f(r)]
        if len(pts) >= 2:
            series.append((label, [(x, y / pts[0][1]) for x, y in pts]))
    ymax = max([math.log10(y) for _, pts in series for _, y in pts] + [hi - lo, 1])
    ymin = min([math.log10(y) for _, pts in series for _, y in pts] + [0])
    sx = lambda x: pad + (math.log10(x) - lo) / max(hi - lo, 1e-9) * (w - 2 * pad - 120)
    sy = lambda y: h - pad - (math.log10(y) - ymin) / max(ymax - ymin, 1e-9) * (h - 2 * pad)
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#aec7e8", "#98df8a", "#ff9896",
               "#c5b0d5", "#c49c94"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{pad}" y="20" font-size="13">Cost relative to the smallest shop '
           f'(log-log; dashed: linear)</text>']
    # Gridlines at powers of ten.
    for k in range(math.ceil(ymin), math.floor(ymax) + 1):
        y = sy(10.0 ** k)
        out.append(f'<line x1="{pad}" y1="{y:.1f}" x2="{w - pad - 120}" y2="{y:.1f}" '
                   f'stroke="#eee"/>')
        out.append(f'<text x="{pad - 6}" y="{y + 4:.1f}" text-anchor="end">x{10.0 ** k:g}</text>')
    # Linear reference.
    out.append(f'<line x1="{sx(min(xs)):.1f}" y1="{sy(1):.1f}" x2="{sx(max(xs)):.1f}" '
               f'y2="{sy(max(xs) / min(xs)):.1f}" stroke="#999" stroke-dasharray="4 3"/>')
    for x in xs:
        out.append(f'<text x="{sx(x):.1f}" y="{h - pad + 16}" text-anchor="middle">'
                   f'{x:.1e} events</text>')
    for i, (label, pts) in enumerate(series):
        c = colours[i % len(colours)]
        d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{d}" fill="none" stroke="{c}" stroke-width="1.5"/>')
        out.append(f'<text x="{w - pad - 110}" y="{pad + 14 * i}" fill="{c}">{label}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("aisle")
    ap.add_argument("work")
    ap.add_argument("--sizes", default="1e5,1e6,1e7")
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--secs", type=float, default=20.0)
    ap.add_argument("--no-semantic", dest="semantic", action="store_false")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--resume", action="store_true",
                    help="keep the sizes WORKDIR/scale.json already has; run the others")
    ap.add_argument("--sasrec-max", type=float, default=1e7,
                    help="train SASRec (sampled loss) up to this many events")
    ap.add_argument("--full-softmax-max", type=float, default=2e6,
                    help="train SASRec with its default full-softmax loss up to this many events "
                         "(its epoch grows with events x catalog size)")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "warn")
    if not a.semantic:
        env["AISLE_EMBEDDER_DIR"] = "/nonexistent"
    results = []
    done = {}
    path = os.path.join(a.work, "scale.json")
    if a.resume and os.path.exists(path):
        with open(path) as f:
            done = {r["target_events"]: r for r in json.load(f)}
    for s in a.sizes.split(","):
        n = int(float(s))
        if n in done:
            print(f"== {n:.0e} events: measured before ({path})", flush=True)
            results.append(done[n])
            continue
        print(f"== {n:.0e} events", flush=True)
        r = size(os.path.abspath(a.aisle), os.path.abspath(a.work), n, a, env)
        print(json.dumps(r), flush=True)
        results.append(r)
        with open(os.path.join(a.work, "scale.json"), "w") as f:
            json.dump(results, f, indent=1)
    svg(results, os.path.join(a.work, "scale.svg"))
    xs = [r["events_rows"] for r in results]
    print(f"\n{'stage':<21}" + "".join(f"{x:>12.2e}" for x in xs) + "   exponent(s)")
    for label, f in STAGES:
        ys = [f(r) for r in results]
        steps = [slope(xs[i], ys[i], xs[i + 1], ys[i + 1]) for i in range(len(xs) - 1)]
        whole = slope(xs[0], ys[0], xs[-1], ys[-1]) if len(xs) > 1 else None
        cells = "".join(f"{y:>12.3f}" if y is not None else f"{'-':>12}" for y in ys)
        ex = ", ".join("-" if s is None else f"{s:.2f}" for s in steps)
        print(f"{label:<21}{cells}   {ex}" + (f" (all: {whole:.2f})" if whole is not None else ""))


if __name__ == "__main__":
    main()
