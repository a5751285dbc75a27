#!/usr/bin/env python3
"""Ingest throughput: Aisle vs pandas, side by side, in one script.

For Online Retail and the Taobao slice, runs each contender REPEAT times and
prints medians and ratios:
  aisle-validate  `aisle ingest --dry-run`: read gzip + parse + validate + clean
                  + catalog + report (nothing stored)
  aisle-ingest    `aisle ingest` into a fresh SQLite store (durable, indexed)
  pandas          read_csv + the same row rules + the same catalog aggregation,
                  timed inside the process after `import pandas` (its best case)
Peak RSS is the child's ru_maxrss (pandas' includes the interpreter and import).

Usage: bench/setup-peers.sh && python3 bench/ingest.py [--repeat 5]
Needs target/release/aisle (cargo build --release) and ../shared/data.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PANDAS_RETAIL = r"""
import sys, time, json
import pandas as pd
t0 = time.perf_counter()
df = pd.read_csv(sys.argv[1], dtype={"invoice_no": str, "stock_code": str, "description": str,
                 "customer_id": "string", "country": str, "event_type": str}, keep_default_na=False,
                 na_values={"quantity": [""], "unit_price": [""]})
n = len(df)
cust = df["customer_id"].str.strip()
reason = pd.Series(pd.NA, index=df.index, dtype="string")
reason[cust == ""] = "missing_user"
reason[reason.isna() & (df["stock_code"].str.strip() == "")] = "missing_item"
etype = df["event_type"].map({"purchase": "purchase", "cancel": "cancel"})
reason[reason.isna() & etype.isna()] = "unknown_event_type"
ts = pd.to_datetime(df["invoice_date"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
reason[reason.isna() & ts.isna()] = "bad_timestamp"
qty = pd.to_numeric(df["quantity"], errors="coerce")
price = pd.to_numeric(df["unit_price"], errors="coerce")
reason[reason.isna() & (qty.isna() | price.isna())] = "bad_number"
reason[reason.isna() & (etype != "cancel") & (qty <= 0)] = "non_positive_quantity"
reason[reason.isna() & (price < 0)] = "negative_price"
ok = reason.isna()
acc = df[ok].assign(ts=ts[ok], qty=qty[ok].abs(), etype=etype[ok])
# Catalog: most frequent non-empty title and median positive price per item.
d = df[df["description"].str.strip() != ""]
titles = d.groupby(["stock_code", "description"]).size().reset_index(name="n") \
          .sort_values("n", ascending=False).drop_duplicates("stock_code")
prices = df[price > 0].assign(p=price[price > 0]).groupby("stock_code")["p"].median()
elapsed = time.perf_counter() - t0
print(json.dumps({"rows": n, "accepted": int(ok.sum()), "quarantined": int((~ok).sum()),
                  "catalog": int(df.loc[df["stock_code"].str.strip() != "", "stock_code"].nunique()), "seconds": elapsed}))
"""

PANDAS_TAOBAO = r"""
import sys, time, json
import pandas as pd
t0 = time.perf_counter()
df = pd.read_csv(sys.argv[1], dtype={"user_id": str, "item_id": str, "category_id": str, "behavior": str},
                 keep_default_na=False)
n = len(df)
reason = pd.Series(pd.NA, index=df.index, dtype="string")
reason[df["user_id"].str.strip() == ""] = "missing_user"
reason[reason.isna() & (df["item_id"].str.strip() == "")] = "missing_item"
etype = df["behavior"].map({"pv": "view", "cart": "add_to_cart", "fav": "favorite", "buy": "purchase"})
reason[reason.isna() & etype.isna()] = "unknown_event_type"
ts = pd.to_numeric(df["timestamp"], errors="coerce")
reason[reason.isna() & (ts.isna() | (ts < 631152000) | (ts > time.time() + 86400))] = "bad_timestamp"
ok = reason.isna()
acc = df[ok].assign(etype=etype[ok])
cats = df.groupby(["item_id", "category_id"]).size().reset_index(name="n") \
         .sort_values("n", ascending=False).drop_duplicates("item_id")
elapsed = time.perf_counter() - t0
print(json.dumps({"rows": n, "accepted": int(ok.sum()), "quarantined": int((~ok).sum()),
                  "catalog": int(len(cats)), "seconds": elapsed}))
"""


def run_rss(cmd):
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if status != 0:
        sys.exit(f"failed ({status}): {' '.join(cmd)}")
    return wall, ru.ru_maxrss / 1024.0, out.decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--aisle", default=os.path.join(ROOT, "target/release/aisle"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--python", default=os.path.join(os.environ.get("AISLE_PEER_VENV", os.path.join(os.environ.get("TMPDIR", "/tmp"), "aisle-peers")), "bin", "python"))
    args = ap.parse_args()
    if not os.path.exists(args.aisle):
        sys.exit("build first: cargo build --release")
    if not os.path.exists(args.python):
        sys.exit("create the peer virtualenv first: bench/setup-peers.sh")

    sets = [
        ("online-retail", os.path.join(args.data, "online-retail/transactions.csv.gz"), PANDAS_RETAIL),
        ("taobao-userbehavior-head", os.path.join(args.data, "taobao-userbehavior-head/events.csv.gz"), PANDAS_TAOBAO),
    ]
    results = []
    print(f"{'dataset':<26}{'contender':<16}{'median s':>10}{'rows/s':>12}{'peak MB':>9}{'  vs pandas':>12}")
    for preset, path, snippet in sets:
        rows = None
        med = {}
        rss = {}
        with tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "peer.py")
            with open(script, "w") as f:
                f.write(snippet)
            times = {"aisle-validate": [], "aisle-ingest": [], "pandas": []}
            peaks = {"aisle-validate": [], "aisle-ingest": [], "pandas": []}
            peer_counts = None
            aisle_counts = None
            for i in range(args.repeat):
                w, mb, out = run_rss([args.aisle, "ingest", "--preset", preset, "--input", path, "--dry-run", "--json"])
                rep = json.loads(out)
                aisle_counts = (rep["rows_read"], rep["accepted"], rep["quarantined"], rep["catalog_items"])
                times["aisle-validate"].append(w); peaks["aisle-validate"].append(mb)
                store = os.path.join(tmp, f"store{i}")
                w, mb, out = run_rss([args.aisle, "ingest", "--preset", preset, "--input", path, "--store", store, "--json"])
                times["aisle-ingest"].append(w); peaks["aisle-ingest"].append(mb)
                w, mb, out = run_rss([args.python, script, path])
                peer = json.loads(out)
                peer_counts = (peer["rows"], peer["accepted"], peer["quarantined"], peer["catalog"])
                times["pandas"].append(peer["seconds"]); peaks["pandas"].append(mb)
            rows = aisle_counts[0]
            if aisle_counts != peer_counts:
                print(f"  note: counts differ: aisle (rows, accepted, quarantined, catalog) {aisle_counts} vs pandas {peer_counts}")
            for k in times:
                med[k] = statistics.median(times[k])
                rss[k] = max(peaks[k])
            for k in ["pandas", "aisle-validate", "aisle-ingest"]:
                ratio = med["pandas"] / med[k]
                print(f"{preset:<26}{k:<16}{med[k]:>10.3f}{rows / med[k]:>12,.0f}{rss[k]:>9.0f}{ratio:>11.2f}x")
            results.append({"dataset": preset, "rows": rows, "median_s": med, "peak_rss_mb": rss,
                            "speedup_vs_pandas": {k: med["pandas"] / med[k] for k in med},
                            "counts_aisle": aisle_counts, "counts_pandas": peer_counts})
    print(json.dumps({"repeat": args.repeat, "results": results}))


if __name__ == "__main__":
    main()
