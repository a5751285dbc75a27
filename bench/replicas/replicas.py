#!/usr/bin/env python3
"""Replicas over one PostgreSQL store: faults and freshness (loopback only,
bounded, stdlib only; `psql` reads the database).

    python3 bench/replicas/replicas.py [--aisle target/release/aisle]
        [--server postgres://aisle:aisle@127.0.0.1:5432/postgres] [--out DIR] TRIAL...

The database `aisle_replicas` on the server is made afresh with the demo shop
(`aisle demo-data`, then `aisle ingest --preset demo` into it) and dropped at the end.
Trials (each prints one JSON line and appends it to OUT/results.jsonl):
  kill-replicas N  two `--role api` replicas and one `--role worker`; four
                   clients post batches of events (each with its event_id, to
                   a random replica; a batch that got no answer is re-sent to
                   the other one); N times a random replica is killed with
                   SIGKILL and restarted. Then every acknowledged event must be
                   in the database exactly once.
  kill-worker      two `--role worker` processes retraining SASRec (20 s
                   budget): the standby refuses to run a job; the leader is
                   killed during a run; the run's process dies with it; the
                   standby takes the worker lock and its next job completes.
  freshness N      N events posted to replica A; after each answer, replica B
                   is asked for the user's recommendations until it knows the
                   user: the delay from A's answer to B's first answer that
                   reflects the event (p50, p90, p99, max).
  recs-p99 R S     recommendations at R requests/s for S seconds (open loop: a
                   latency counts from when its request was due) against one
                   `--role all` process over SQLite, then against two `--role api`
                   replicas over PostgreSQL (alternating), the demo shop with a
                   SASRec model (20 s budget) in each; p99 of both and their ratio.
  redis-p99 R S    two `--role api` replicas over PostgreSQL with a rate limit far
                   above R (nothing refused), counted by each replica, then in Redis
                   (`--redis`, AISLE_TEST_REDIS or redis://127.0.0.1:6379): what a
                   Redis round trip per request costs at p99.
  global-limit L R S  two replicas with `--rate-limit L` and `--redis`, asked R
                   requests/s for S seconds in turn: the requests answered 200
                   (at most L·S + a burst of L when the limit is one budget; about
                   twice that when each replica counts alone, run second for the
                   comparison).
"""

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DB = "aisle_replicas"

sys.path.insert(0, os.path.join(HERE, "..", "chaos"))
import chaos  # noqa: E402  (free_port, and Server's kill9/stop)
from chaos import free_port  # noqa: E402


def request(port, method, path, body=None, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, None if body is None else json.dumps(body),
              {"content-type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data


class Server(chaos.Server):
    """`aisle serve --role ROLE` over the database, on a port kept across restarts
    (chaos.Server's kill9 and stop)."""

    def __init__(self, aisle, url, role, out, port=None, extra=()):
        self.aisle, self.url, self.role, self.out, self.extra = aisle, url, role, out, list(extra)
        self.port = port or free_port()
        self.start()

    def start(self):
        e = dict(os.environ)
        e.setdefault("AISLE_EMBEDDER_DIR", "/nonexistent")  # keyword search: fast starts
        e.setdefault("AISLE_LOG", "info")
        self.log = open(os.path.join(self.out, f"{self.role}-{self.port}.log"), "a")
        self.p = subprocess.Popen(
            [self.aisle, "serve", "--store", self.url, "--role", self.role,
             "--addr", f"127.0.0.1:{self.port}", *self.extra],
            stdout=self.log, stderr=subprocess.STDOUT, env=e,
        )
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError(f"server exited with {self.p.returncode}; see {self.log.name}")
            try:
                if request(self.port, "GET", "/healthz", timeout=1)[0] == 200:
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("server did not become healthy")


def psql(server, sql, db=None):
    url = server if db is None else server.rsplit("/", 1)[0] + "/" + db
    p = subprocess.run(["psql", url, "-At", "-c", sql], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(p.stderr)
    return p.stdout.strip()


def fresh_db(aisle, server, out):
    psql(server, f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    psql(server, f"CREATE DATABASE {DB}")
    url = server.rsplit("/", 1)[0] + "/" + DB
    shop = os.path.join(out, "shop")
    if not os.path.exists(os.path.join(shop, "events.csv")):
        subprocess.run([aisle, "demo-data", "--out", shop], check=True, capture_output=True)
    subprocess.run([aisle, "ingest", "--preset", "demo", "--input", os.path.join(shop, "events.csv"),
                    "--catalog", os.path.join(shop, "catalog.csv"), "--store", url],
                   check=True, capture_output=True)
    return url


def quantiles(xs):
    xs = sorted(xs)
    q = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]
    return {"p50": round(q(0.5), 2), "p90": round(q(0.9), 2), "p99": round(q(0.99), 2),
            "max": round(xs[-1], 2), "n": len(xs)}


def kill_replicas(aisle, server, out, trials):
    url = fresh_db(aisle, server, out)
    api = [Server(aisle, url, "api", out), Server(aisle, url, "api", out)]
    worker = Server(aisle, url, "worker", out)
    rng = random.Random(23)
    acked, lock, stop = [], threading.Lock(), threading.Event()
    resent = [0]

    def client(c):
        n = 0
        crng = random.Random(c)
        while not stop.is_set():
            batch = [{"user_id": f"k-c{c}-{n + i}", "item_id": f"P{(n + i) % 50}",
                      "type": "view", "event_id": f"k-c{c}-{n + i}"}
                     for i in range(crng.randint(1, 20))]
            n += len(batch)
            target = crng.randrange(2)
            for attempt in range(200):
                # The same batch, with the same event ids, until one replica answers.
                port = api[(target + attempt) % 2].port
                try:
                    status, _ = request(port, "POST", "/v1/events", {"events": batch}, timeout=3)
                except OSError:
                    status = None
                if status == 200:
                    with lock:
                        acked.extend(e["user_id"] for e in batch)
                        resent[0] += attempt > 0
                    break
                time.sleep(0.02)
            else:
                raise RuntimeError("no replica took a batch for 200 attempts")

    threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
    t0 = time.time()
    for th in threads:
        th.start()
    restarts = []
    for _ in range(trials):
        time.sleep(rng.uniform(0.3, 1.0))
        victim = api[rng.randrange(2)]
        victim.kill9()
        t = time.time()
        victim.start()
        restarts.append(time.time() - t)
    time.sleep(0.5)
    stop.set()
    for th in threads:
        th.join()
    rows = psql(url, "SELECT u.ext, count(*) FROM events e JOIN users u ON u.id = e.user_id "
                     "WHERE u.ext LIKE 'k-%' GROUP BY u.ext")
    counts = dict((line.split("|")[0], int(line.split("|")[1])) for line in rows.splitlines() if line)
    lost = sum(1 for u in acked if counts.get(u, 0) == 0)
    dup = sum(1 for n in counts.values() if n > 1)
    for s in [*api, worker]:
        s.stop()
    return {"trial": "kill-replicas", "kills": trials, "acknowledged": len(acked),
            "batches_resent_to_the_other_replica": resent[0], "stored": sum(counts.values()),
            "lost": lost, "duplicates": dup,
            "restart_s": quantiles(restarts), "seconds": round(time.time() - t0, 1)}


def leader(s):
    status, v = request(s.port, "GET", "/v1/admin/jobs")
    return v["scheduler"].get("leader") if status == 200 else None


def wait(cond, seconds, what):
    t = time.time()
    while time.time() - t < seconds:
        r = cond()
        if r:
            return r
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def children(pid):
    p = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(x) for x in p.stdout.split()]


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie is dead too.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def kill_worker(aisle, server, out):
    url = fresh_db(aisle, server, out)
    extra = ["--retrain-model", "sasrec", "--retrain-budget", "20", "--retrain-every", "100000"]
    w1 = Server(aisle, url, "worker", out, extra=extra)
    wait(lambda: leader(w1) is True, 10, "the first worker to lead")
    w2 = Server(aisle, url, "worker", out, extra=extra)
    wait(lambda: leader(w2) is False, 10, "the second worker to stand by")
    standby_refused = request(w2.port, "POST", "/v1/admin/jobs")[0]
    assert request(w1.port, "POST", "/v1/admin/jobs")[0] == 202
    wait(lambda: children(w1.p.pid), 10, "the leader's run to start")
    run_pids = children(w1.p.pid)
    time.sleep(3)
    t_kill = time.time()
    w1.kill9()
    run_gone = wait(lambda: not any(alive(p) for p in run_pids) and time.time(), 10,
                    "the killed leader's run to stop")
    took = wait(lambda: leader(w2) is True and time.time(), 15, "the standby to take the lead")
    status, _ = request(w2.port, "POST", "/v1/admin/jobs")
    def done():
        v = request(w2.port, "GET", "/v1/admin/jobs")[1]
        j = v["jobs"][0] if v["jobs"] else None
        return j if j and j["status"] != "running" else None
    job = wait(done, 300, "the standby's job")
    w2.stop()
    return {"trial": "kill-worker", "standby_trigger_status": standby_refused,
            "run_stopped_after_s": round(run_gone - t_kill, 2),
            "takeover_after_s": round(took - t_kill, 2), "trigger_status": status,
            "job_status": job["status"], "decision": job.get("decision"),
            "job_duration_s": job.get("duration_s")}


def freshness(aisle, server, out, n):
    url = fresh_db(aisle, server, out)
    a, b = Server(aisle, url, "api", out), Server(aisle, url, "api", out)
    items = ["P%d" % i for i in range(50)]
    delays, polls = [], []
    ca = http.client.HTTPConnection("127.0.0.1", a.port, timeout=5)
    cb = http.client.HTTPConnection("127.0.0.1", b.port, timeout=5)
    def call(c, method, path, body=None):
        c.request(method, path, None if body is None else json.dumps(body),
                  {"content-type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read())
    for i in range(n):
        user = f"fresh-{i}-{random.random():.6f}"
        status, _ = call(ca, "POST", "/v1/events",
                         {"user_id": user, "item_id": random.choice(items), "type": "view"})
        assert status == 200
        t = time.perf_counter()
        k = 0
        while True:
            k += 1
            status, v = call(cb, "GET", f"/v1/users/{user}/recommendations?k=5")
            assert status == 200, v
            if v["user_known"]:
                break
            if time.perf_counter() - t > 5:
                raise RuntimeError("not reflected within 5 s")
        delays.append((time.perf_counter() - t) * 1000)
        polls.append(k)
    a.stop()
    b.stop()
    return {"trial": "freshness", "delay_ms": quantiles(delays),
            "polls_until_seen": quantiles(polls)}


def open_loop(ports, rate, seconds, users):
    """Recommendation requests at a fixed rate (open loop: each one's latency counts from
    when it was due, so a slow server is not asked less), spread over `ports` in turn."""
    n = int(rate * seconds)
    due0 = time.perf_counter() + 0.5
    lat, errors, lock = [], [0], threading.Lock()
    conns = {}

    def worker(k, step):
        rng = random.Random(k)
        for i in range(k, n, step):
            due = due0 + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            port = ports[i % len(ports)]
            c = conns.setdefault((k, port), http.client.HTTPConnection("127.0.0.1", port, timeout=10))
            try:
                c.request("GET", f"/v1/users/{rng.choice(users)}/recommendations?k=10")
                r = c.getresponse()
                r.read()
                ok = r.status == 200
            except OSError:
                conns.pop((k, port), None)
                ok = False
            with lock:
                lat.append((time.perf_counter() - due) * 1000)
                errors[0] += not ok

    threads = [threading.Thread(target=worker, args=(k, 16)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"requests": n, "errors": errors[0], "latency_ms": quantiles(lat)}


def recs_p99(aisle, server, out, rate, seconds):
    """The demo shop with a SASRec model: one `--role all` process over SQLite against two
    `--role api` replicas over PostgreSQL (requests alternating), the same request rate."""
    url = fresh_db(aisle, server, out)
    shop = os.path.join(out, "shop")
    local = os.path.join(out, "sqlite-store")
    if not os.path.exists(local):
        subprocess.run([aisle, "ingest", "--preset", "demo", "--input", os.path.join(shop, "events.csv"),
                        "--catalog", os.path.join(shop, "catalog.csv"), "--store", local],
                       check=True, capture_output=True)
    for store in (local, url):
        subprocess.run([aisle, "train", "--store", store, "--model", "sasrec", "--time-budget", "20",
                        "--promote"], check=True, capture_output=True)
    users = sorted({line.split(",", 1)[0] for line in open(os.path.join(shop, "events.csv"))
                    if line.startswith("u")})
    single = Server(aisle, local, "all", out)
    r_sqlite = open_loop([single.port], rate, seconds, users)
    single.stop()
    a, b = Server(aisle, url, "api", out), Server(aisle, url, "api", out)
    r_pg = open_loop([a.port, b.port], rate, seconds, users)
    a.stop()
    b.stop()
    return {"trial": "recs-p99", "rate": rate, "seconds": seconds,
            "sqlite_one_process": r_sqlite, "postgres_two_replicas": r_pg,
            "p99_ratio": round(r_pg["latency_ms"]["p99"] / r_sqlite["latency_ms"]["p99"], 2)}


def with_sasrec(aisle, server, out):
    url = fresh_db(aisle, server, out)
    subprocess.run([aisle, "train", "--store", url, "--model", "sasrec", "--time-budget", "20",
                    "--promote"], check=True, capture_output=True)
    shop = os.path.join(out, "shop")
    users = sorted({line.split(",", 1)[0] for line in open(os.path.join(shop, "events.csv"))
                    if line.startswith("u")})
    return url, users


REDIS = os.environ.get("AISLE_TEST_REDIS", "redis://127.0.0.1:6379")


def redis_p99(aisle, server, out, rate, seconds):
    url, users = with_sasrec(aisle, server, out)
    res = {}
    for name, extra in (("local_buckets", ()), ("redis_buckets", ("--redis", REDIS))):
        flags = ("--rate-limit", str(rate * 100)) + extra
        a, b = Server(aisle, url, "api", out, extra=flags), Server(aisle, url, "api", out, extra=flags)
        res[name] = open_loop([a.port, b.port], rate, seconds, users)
        a.stop()
        b.stop()
    return {"trial": "redis-p99", "rate": rate, "seconds": seconds, **res,
            "p99_ratio": round(res["redis_buckets"]["latency_ms"]["p99"]
                               / res["local_buckets"]["latency_ms"]["p99"], 2)}


def global_limit(aisle, server, out, limit, rate, seconds):
    url, users = with_sasrec(aisle, server, out)
    res = {}
    for name, extra in (("redis", ("--redis", REDIS)), ("per_replica", ())):
        flags = ("--rate-limit", str(limit)) + extra
        a, b = Server(aisle, url, "api", out, extra=flags), Server(aisle, url, "api", out, extra=flags)
        r = open_loop([a.port, b.port], rate, seconds, users)
        res[name] = {"asked": r["requests"], "answered": r["requests"] - r["errors"]}
        a.stop()
        b.stop()
    return {"trial": "global-limit", "limit": limit, "rate": rate, "seconds": seconds,
            "one_budget_at_most": int(limit * seconds + limit), **res}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aisle", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "aisle"))
    ap.add_argument("--server", default=os.environ.get(
        "AISLE_TEST_POSTGRES", "postgres://aisle:aisle@127.0.0.1:5432/postgres"))
    ap.add_argument("--out", default=None)
    ap.add_argument("trials", nargs="+")
    a = ap.parse_args()
    out = a.out or tempfile.mkdtemp(prefix="aisle-replicas-")
    os.makedirs(out, exist_ok=True)
    args = list(a.trials)
    while args:
        name = args.pop(0)
        if name == "kill-replicas":
            r = kill_replicas(a.aisle, a.server, out, int(args.pop(0)))
        elif name == "kill-worker":
            r = kill_worker(a.aisle, a.server, out)
        elif name == "freshness":
            r = freshness(a.aisle, a.server, out, int(args.pop(0)))
        elif name == "recs-p99":
            r = recs_p99(a.aisle, a.server, out, float(args.pop(0)), float(args.pop(0)))
        elif name == "redis-p99":
            r = redis_p99(a.aisle, a.server, out, float(args.pop(0)), float(args.pop(0)))
        elif name == "global-limit":
            r = global_limit(a.aisle, a.server, out, float(args.pop(0)), float(args.pop(0)),
                             float(args.pop(0)))
        else:
            sys.exit(f"unknown trial {name}")
        line = json.dumps(r)
        print(line, flush=True)
        with open(os.path.join(out, "results.jsonl"), "a") as f:
            f.write(line + "\n")
    psql(a.server, f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    print(f"logs: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
