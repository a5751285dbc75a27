#!/usr/bin/env python3
"""Chaos and soak harness for Aisle (loopback only, bounded, stdlib only).

    python3 bench/chaos/chaos.py [--aisle target/release/aisle] [--out DIR] TRIAL...

Trials (each prints one JSON line and appends it to OUT/results.jsonl):
  kill-serve N   N kill -9 trials of `aisle serve` under event load: every
                 acknowledged event must be in the store after the restart,
                 exactly once (the unacknowledged in-flight batch is re-sent
                 with its event ids and must not duplicate).
  kill-ingest N  N kill -9 trials of `aisle ingest`: after each kill the ingest
                 is re-run; the store must hold exactly the rows a clean ingest
                 holds (nothing lost, nothing twice) and pass integrity_check.
  soak S R       S seconds at R requests/s (recommendations, popular, search,
                 similar, event posts) on the demo shop: errors and the
                 server's RSS (growth after the first minute).
  idle N         N idle or half-sent connections, then /healthz latency.
  bombs          ingest of a 2 GiB zero gzip bomb (with and without a header),
                 a 200 MB line without a newline, 2 GiB of valid repeated
                 rows, and 2 GiB of distinct rows with every whole-history
                 rule on, under --dry-run: peak RSS and time of each.
  fuzz N         the reader/event/config fuzz loop with N inputs
                 (cargo run --release -p aisle-ingest --example fuzz).
  openapi S      schemathesis (from the served /openapi.json) over every route for S
                 seconds against a copy of the demo shop: no 5xx allowed.
                 Needs the peer venv: bench/setup-peers.sh schemathesis
                 (or --st PATH to its `st`).
"""

import argparse
import gzip
import http.client
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kb(pid, key="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Server:
    """`aisle serve` on a free loopback port."""

    def __init__(self, aisle, store, extra=(), env=None):
        self.port = free_port()
        e = dict(os.environ)
        e.setdefault("AISLE_EMBEDDER_DIR", "/nonexistent")  # keyword search: fast starts
        e["RUST_LOG"] = "warn"
        if env:
            e.update(env)
        self.log = open(os.path.join(store, f"serve-{self.port}.log"), "w")
        self.p = subprocess.Popen(
            [aisle, "serve", "--store", store, "--addr", f"127.0.0.1:{self.port}", *extra],
            stdout=self.log, stderr=subprocess.STDOUT, env=e,
        )
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError(f"server exited with {self.p.returncode}; see {self.log.name}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

    def kill9(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()
        self.log.close()

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.kill9()
        self.log.close()


def post_events(port, events, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("POST", "/v1/events", json.dumps({"events": events}),
              {"content-type": "application/json"})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def new_store(aisle, d):
    """An empty store (one seed event) for the serve trials."""
    p = subprocess.run([aisle, "append", "--store", d], input=b'{"user_id":"seed","item_id":"P0","type":"view","event_id":"seed"}\n',
                       capture_output=True)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.decode())


def store_counts(d, prefix):
    """event count per user whose id starts with prefix."""
    db = sqlite3.connect(f"file:{d}/aisle.db?mode=ro", uri=True)
    rows = db.execute(
        "SELECT u.ext, COUNT(*) FROM events e JOIN users u ON e.user_id = u.id "
        "WHERE u.ext LIKE ? GROUP BY u.ext", (prefix + "%",)).fetchall()
    db.close()
    return dict(rows)


def kill_serve(aisle, out, trials):
    d = tempfile.mkdtemp(prefix="aisle-chaos-serve-", dir=out)
    new_store(aisle, d)
    acked_total = lost = dup = resent = 0
    rng = random.Random(18)
    t0 = time.time()
    for t in range(trials):
        srv = Server(aisle, d)
        acked, inflight = [], []
        stop = threading.Event()
        lock = threading.Lock()

        def client(c):
            n = 0
            while not stop.is_set():
                batch = [{"user_id": f"t{t}-c{c}-{n + i}", "item_id": f"P{(n + i) % 50}",
                          "type": "view", "event_id": f"t{t}-c{c}-{n + i}"}
                         for i in range(rng.randint(1, 20))]
                with lock:
                    inflight.append(batch)
                try:
                    status, _ = post_events(srv.port, batch, timeout=2)
                except OSError:
                    return
                with lock:
                    inflight.remove(batch)
                    if status == 200:
                        acked.extend(e["user_id"] for e in batch)
                n += len(batch)

        threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
        for th in threads:
            th.start()
        time.sleep(rng.uniform(0.2, 1.2))
        srv.kill9()
        stop.set()
        for th in threads:
            th.join()
        # Restart; re-send what was in flight (the client never saw its answer).
        srv = Server(aisle, d)
        for batch in inflight:
            status, body = post_events(srv.port, batch)
            assert status == 200, body
            resent += len(batch)
        srv.stop()
        counts = store_counts(d, f"t{t}-")
        acked_total += len(acked)
        lost += sum(1 for u in acked if counts.get(u, 0) == 0)
        dup += sum(1 for n in counts.values() if n > 1)
    r = {"trial": "kill-serve", "trials": trials, "acknowledged": acked_total, "resent_in_flight": resent,
         "lost": lost, "duplicates": dup, "seconds": round(time.time() - t0, 1)}
    shutil.rmtree(d, ignore_errors=True)
    return r


def kill_ingest(aisle, out, trials):
    d = tempfile.mkdtemp(prefix="aisle-chaos-ingest-", dir=out)
    src = os.path.join(d, "u.data")
    rng = random.Random(20)
    with open(src, "w") as f:
        for i in range(400_000):
            f.write(f"{rng.randint(1, 5000)}\t{rng.randint(1, 3000)}\t{rng.randint(1, 5)}\t{880000000 + i}\n")
    def ingest(store, kill_after=None):
        p = subprocess.Popen([aisle, "ingest", "--preset", "ml-100k", "--input", src, "--store", store],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kill_after is None:
            return p.wait()
        time.sleep(kill_after)
        p.send_signal(signal.SIGKILL)
        p.wait()
        return None

    ref = os.path.join(d, "ref")
    assert ingest(ref) == 0
    want = sqlite3.connect(f"{ref}/aisle.db").execute("SELECT COUNT(*) FROM events").fetchone()[0]
    t0 = time.time()
    bad = []
    for t in range(trials):
        s = os.path.join(d, f"s{t}")
        ingest(s, kill_after=rng.uniform(0.1, 2.5))
        rc = ingest(s)
        db = sqlite3.connect(f"{s}/aisle.db")
        n = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        distinct = db.execute("SELECT COUNT(DISTINCT ekey) FROM events").fetchone()[0]
        ok = db.execute("PRAGMA integrity_check").fetchone()[0]
        db.close()
        if rc != 0 or n != want or distinct != n or ok != "ok":
            bad.append({"trial": t, "rc": rc, "events": n, "distinct": distinct, "integrity": ok})
        shutil.rmtree(s, ignore_errors=True)
    r = {"trial": "kill-ingest", "trials": trials, "rows": 400_000, "events_expected": want,
         "failed_trials": bad, "seconds": round(time.time() - t0, 1)}
    shutil.rmtree(d, ignore_errors=True)
    return r


def demo_shop(aisle, out):
    """The demo shop (generated once per OUT folder, SASRec trained 20 s)."""
    d = os.path.join(out, "demo")
    store = os.path.join(d, "demo-shop", "store")
    if not os.path.exists(os.path.join(store, "aisle.db")):
        os.makedirs(d, exist_ok=True)
        subprocess.run([aisle, "demo", "--no-serve", "--train-seconds", "20"], cwd=d, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return store


def soak(aisle, out, seconds, rate):
    store = demo_shop(aisle, out)
    db = sqlite3.connect(f"file:{store}/aisle.db?mode=ro", uri=True)
    users = [r[0] for r in db.execute("SELECT ext FROM users LIMIT 2000")]
    items = [r[0] for r in db.execute("SELECT ext FROM items LIMIT 2000")]
    db.close()
    srv = Server(aisle, store)
    words = ["mug", "tea", "lamp", "gift", "bag", "candle", "holder", "red", "wooden", "set"]
    stats = {"requests": 0, "errors": 0, "by_status": {}}
    lock = threading.Lock()
    stop = threading.Event()
    rss = []
    t0 = time.time()

    def worker(k, per_worker_rate):
        rng = random.Random(k)
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        next_t = time.time()
        n = 0
        while not stop.is_set():
            x = rng.random()
            if x < 0.5:
                m, u, b = "GET", f"/v1/users/{rng.choice(users)}/recommendations?k=10", None
            elif x < 0.6:
                m, u, b = "GET", "/v1/popular?k=10", None
            elif x < 0.75:
                m, u, b = "GET", f"/v1/search?q={rng.choice(words)}+{rng.choice(words)}&user={rng.choice(users)}", None
            elif x < 0.85:
                m, u, b = "GET", f"/v1/items/{rng.choice(items)}/similar?k=5", None
            else:
                m, u = "POST", "/v1/events"
                b = json.dumps({"user_id": rng.choice(users), "item_id": rng.choice(items),
                                "type": rng.choice(["view", "add_to_cart", "purchase"]),
                                "event_id": f"soak-{k}-{n}"})
            n += 1
            try:
                conn.request(m, u, b, {"content-type": "application/json"} if b else {})
                r = conn.getresponse()
                r.read()
                st = r.status
            except (OSError, http.client.HTTPException):
                st = 0
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            with lock:
                stats["requests"] += 1
                stats["by_status"][st] = stats["by_status"].get(st, 0) + 1
                if st != 200:
                    stats["errors"] += 1
            next_t += 1.0 / per_worker_rate
            delay = next_t - time.time()
            if delay > 0:
                time.sleep(delay)

    workers = 16
    threads = [threading.Thread(target=worker, args=(k, rate / workers)) for k in range(workers)]
    for th in threads:
        th.start()
    while time.time() - t0 < seconds:
        time.sleep(5)
        rss.append((round(time.time() - t0), rss_kb(srv.p.pid)))
    stop.set()
    for th in threads:
        th.join()
    elapsed = time.time() - t0
    srv.stop()
    after_1min = [r for t, r in rss if t >= 60 and r]
    base = after_1min[0] if after_1min else None
    r = {"trial": "soak", "seconds": round(elapsed), "target_rate": rate,
         "achieved_rate": round(stats["requests"] / elapsed, 1), "requests": stats["requests"],
         "errors": stats["errors"], "by_status": stats["by_status"],
         "rss_mb_at_60s": base and round(base / 1024, 1),
         "rss_mb_end": rss and rss[-1][1] and round(rss[-1][1] / 1024, 1),
         "rss_growth_after_60s": (base and round(after_1min[-1] / base - 1, 4)),
         "rss_samples_mb": [(t, r and round(r / 1024, 1)) for t, r in rss]}
    return r


def idle(aisle, out, n):
    store = demo_shop(aisle, out)
    srv = Server(aisle, store)
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", srv.port))
        if i % 2:
            s.sendall(b"GET /v1/popular HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        socks.append(s)
    time.sleep(0.5)
    lat = []
    for _ in range(50):
        t = time.time()
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        c.request("GET", "/healthz")
        ok = c.getresponse().status == 200
        c.close()
        lat.append((time.time() - t) * 1000 if ok else float("inf"))
    lat.sort()
    for s in socks:
        s.close()
    srv.stop()
    return {"trial": "idle", "connections": n, "healthz_ms_p50": round(lat[len(lat) // 2], 2),
            "healthz_ms_p99": round(lat[int(len(lat) * 0.99) - 1], 2), "healthz_ms_max": round(lat[-1], 2)}


def run_measured(cmd, timeout=600):
    """Runs cmd; returns (exit code, seconds, peak RSS MB, last stderr line)."""
    t = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    err = []
    reader = threading.Thread(target=lambda: err.extend(p.stderr.read().decode(errors="replace").splitlines()))
    reader.start()
    while p.poll() is None:
        hwm = rss_kb(p.pid, "VmHWM")
        if hwm:
            peak = max(peak, hwm)
        time.sleep(0.05)
        if time.time() - t > timeout:
            p.kill()
    reader.join()
    return p.returncode, round(time.time() - t, 1), round(peak / 1024, 1), (err[-1][:300] if err else "")


def bombs(aisle, out, gib=2):
    d = tempfile.mkdtemp(prefix="aisle-bombs-", dir=out)
    size = gib << 30
    results = []

    def write_gz(path, header, chunk, total):
        with gzip.open(path, "wb", compresslevel=1) as f:
            f.write(header)
            left = total
            while left > 0:
                f.write(chunk[:left])
                left -= len(chunk)

    cases = []
    p1 = os.path.join(d, "zeros.gz")
    write_gz(p1, b"", b"\0" * (8 << 20), size)
    cases.append(("zero bomb, no header", p1, ["--preset", "ml-1m"]))
    p2 = os.path.join(d, "zeros-header.gz")
    write_gz(p2, b"user_id,movie_id,position\n", b"\0" * (8 << 20), size)
    cases.append(("zero bomb after a header", p2, ["--preset", "ml-1m"]))
    # The same with the ratio check off: the line guard alone (one 2 GiB line).
    cfg = os.path.join(d, "no-ratio.toml")
    preset = subprocess.run([aisle, "presets", "--show", "ml-1m"], capture_output=True, text=True, check=True).stdout
    with open(cfg, "w") as f:
        f.write(preset + "\n[cleaning]\nmax_decompression_ratio = 0\n" if "[cleaning]" not in preset
                else preset.replace("[cleaning]", "[cleaning]\nmax_decompression_ratio = 0", 1))
    cases.append(("zero bomb after a header, ratio check off", p2, ["--config", cfg]))
    p3 = os.path.join(d, "long-line.csv")
    with open(p3, "wb") as f:
        f.write(b"user_id,movie_id,position\n1,2,3\n")
        chunk = b"x" * (8 << 20)
        for _ in range(25):
            f.write(chunk)
    cases.append(("200 MB line without a newline", p3, ["--preset", "ml-1m"]))
    p4 = os.path.join(d, "rows.gz")
    rows = b"".join(f"{u},{u % 977},{u}\n".encode() for u in range(200_000))
    write_gz(p4, b"user_id,movie_id,position\n", rows, size)
    cases.append(("2 GiB of valid repeated rows", p4, ["--preset", "ml-1m"]))
    # Distinct rows with every whole-history rule and the duplicate count on:
    # the spill (candidates, sorted runs, on-disk duplicate count) is what
    # keeps this bounded.
    p5 = os.path.join(d, "distinct.gz")
    with gzip.open(p5, "wb", compresslevel=1) as f:
        f.write(b"user_id,item_id,category_id,behavior,timestamp\n")
        left, i = size, 0
        types = ("pv", "pv", "pv", "cart", "fav", "buy")
        while left > 0:
            block = "".join(
                f"{(j * 7919) % 3_000_017},{(j * 104_729) % 1_000_003},{j % 9973},{types[j % 6]},{1_511_000_000 + j // 40}\n"
                for j in range(i, i + 1_000_000)).encode()
            f.write(block[:left])
            left -= len(block)
            i += 1_000_000
    cases.append(("2 GiB of distinct rows, every whole-history rule on", p5,
                  ["--preset", "taobao-userbehavior-head", "--dedupe", "--consecutive-window", "5",
                   "--bot-cap", "30", "--kcore", "5"]))
    for name, path, args in cases:
        rc, secs, peak, last = run_measured([aisle, "ingest", *args, "--input", path, "--dry-run"])
        results.append({"case": name, "input_mb": round(os.path.getsize(path) / 2**20, 1), "exit": rc,
                        "seconds": secs, "peak_rss_mb": peak, "message": last})
    shutil.rmtree(d, ignore_errors=True)
    return {"trial": "bombs", "cases": results}


def fuzz(n):
    t = time.time()
    p = subprocess.run(["cargo", "run", "--release", "-q", "-p", "aisle-ingest", "--example", "fuzz", "--", str(n)],
                       cwd=ROOT, capture_output=True, text=True)
    try:
        r = json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        r = {"stdout": p.stdout[-500:], "stderr": p.stderr[-2000:]}
    r.update({"trial": "fuzz", "exit": p.returncode, "wall_seconds": round(time.time() - t, 1)})
    return r


def openapi(aisle, out, seconds, st):
    src = demo_shop(aisle, out)
    store = os.path.join(out, "openapi-store")
    shutil.rmtree(store, ignore_errors=True)
    shutil.copytree(src, store)
    srv = Server(aisle, store)
    t = time.time()
    # The document the server generates and serves.
    p = subprocess.run([st, "run", f"http://127.0.0.1:{srv.port}/openapi.json",
                        "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance",
                        "--max-time", str(seconds), "--workers", "2",
                        "--suppress-health-check", "all"],
                       capture_output=True, text=True, cwd=out)  # its .schemathesis/ cache stays in OUT
    srv.stop()
    with open(os.path.join(out, "openapi-st.log"), "w") as f:
        f.write(p.stdout + p.stderr)
    tail = [l for l in p.stdout.splitlines() if l.strip()][-12:]
    log = open(os.path.join(store, f"serve-{srv.port}.log")).read()
    return {"trial": "openapi", "exit": p.returncode, "seconds": round(time.time() - t, 1),
            "summary": tail, "server_5xx_in_log": log.count("internal error") + log.count("store error")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aisle", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "aisle"))
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "aisle-chaos"))
    ap.add_argument("--st", default=os.path.join(os.environ.get("AISLE_PEER_VENV", os.path.join(tempfile.gettempdir(), "aisle-peers")), "bin", "st"))
    ap.add_argument("trials", nargs="+")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    aisle = os.path.abspath(a.aisle)
    args = a.trials
    failed = False
    while args:
        name = args.pop(0)
        num = lambda d: int(args.pop(0)) if args and args[0].isdigit() else d
        if name == "kill-serve":
            r = kill_serve(aisle, a.out, num(100))
            failed |= r["lost"] > 0 or r["duplicates"] > 0
        elif name == "kill-ingest":
            r = kill_ingest(aisle, a.out, num(20))
            failed |= bool(r["failed_trials"])
        elif name == "soak":
            r = soak(aisle, a.out, num(600), num(500))
            failed |= r["errors"] > 0
        elif name == "idle":
            r = idle(aisle, a.out, num(2000))
        elif name == "bombs":
            r = bombs(aisle, a.out, num(2))
        elif name == "openapi":
            r = openapi(aisle, a.out, num(300), a.st)
            failed |= r["exit"] != 0
        elif name == "fuzz":
            r = fuzz(num(10_000_000))
            failed |= r.get("exit") != 0
        else:
            sys.exit(f"unknown trial {name!r}")
        line = json.dumps(r)
        print(line, flush=True)
        with open(os.path.join(a.out, "results.jsonl"), "a") as f:
            f.write(line + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
