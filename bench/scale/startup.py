#!/usr/bin/env python3
"""Server start-up and training-load memory of existing stores (BENCHMARKS.md §16.2).

    python3 bench/scale/startup.py AISLE_BIN STORE [STORE ...]

For each store (e.g. the ones bench/scale/scale.py leaves with --keep): starts `aisle serve`
(keyword search only), waits for /healthz, reads the server's resident memory (VmRSS) and its
high-water mark (VmHWM) a second later and the users and catalog items of /v1/admin/overview,
stops it; then times `aisle train --model als --set iterations=1` under /usr/bin/time -v for its
peak memory (the store load dominates). Prints one line per store and writes startup.json in the
current folder. Run it twice: a store from before the covering per-user index builds it at its
first open.
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

aisle = sys.argv[1]
out = {}
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def status(pid, key):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith(key + ":"):
            return int(l.split()[1]) / 1024.0
for store in sys.argv[2:]:
    port = free_port()
    env = dict(os.environ, AISLE_EMBEDDER_DIR="/nonexistent")
    t = time.time()
    p = subprocess.Popen([aisle, "serve", "--store", store, "--addr", f"127.0.0.1:{port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200: break
        except Exception:
            time.sleep(0.05)
    start = time.time() - t
    time.sleep(1)
    rec = {"startup_s": round(start, 2), "rss_mb": round(status(p.pid, "VmRSS")), "peak_mb": round(status(p.pid, "VmHWM"))}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/admin/overview", timeout=5) as r:
        o = json.load(r)
    rec["users"] = o.get("users"); rec["items"] = o.get("catalog_items")
    p.terminate(); p.wait()
    # training's load: ALS, one iteration
    t = time.time()
    r = subprocess.run(["/usr/bin/time", "-v", aisle, "train", "--store", store, "--model", "als",
                        "--set", "iterations=1", "--out", os.path.join(tempfile.gettempdir(), "als-startup.safetensors")],
                       capture_output=True, text=True)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    rec["als_train_s"] = round(time.time() - t, 1)
    rec["als_peak_mb"] = round(int(m.group(1)) / 1024) if m else None
    out[store] = rec
    print(store, rec, flush=True)
json.dump(out, open("startup.json", "w"), indent=1)
