#!/bin/bash
# Users to significance: A/B against team-draft interleaving of the same pair of models, on
# the same simulated shop (aisle simulate), three seeds each. Needs a running server on a
# store with the models named (e.g. a copy of the demo store):
#   bench/online/sensitivity.sh http://127.0.0.1:8090 "pop promoted" "sasrec-OLD.safetensors promoted"
# For each run: users needed for 80% power at α = 5% at the observed effect: A/B from the
# arms' CTR (delta-method unit variances), interleaving from the deciding users' preference
# share (exact-binomial planning by the normal approximation) scaled by the deciding share.
set -euo pipefail
URL=${1:?server URL}; shift
AISLE=${AISLE:-aisle}
OUT=${OUT:-bench-out/sensitivity}; mkdir -p "$OUT"
run() { # name mode a b seed users days
  curl -sf -XPOST "$URL/v1/admin/experiments" -H 'content-type: application/json' \
    -d "{\"name\":\"$1\",\"surface\":\"recommendations\",\"mode\":\"$2\",\"arms\":[{\"name\":\"a\",\"model\":\"$3\",\"traffic\":50},{\"name\":\"b\",\"model\":\"$4\",\"traffic\":50}],\"salt\":\"$1\"}" > /dev/null
  "$AISLE" simulate --url "$URL" --users "$6" --days "$7" --seed "$5" > /dev/null 2>&1
  curl -sf "$URL/v1/admin/experiments/$1/report" > "$OUT/$1.json"
  curl -sf -XPOST "$URL/v1/admin/experiments/$1/stop" > /dev/null
}
tag=$(date +%s)
pairs=()
p=0
for pair in "$@"; do
  read -r a b <<< "$pair"
  p=$((p + 1))
  for s in 1 2 3; do
    run "ab-$tag-$p-$s" ab "$a" "$b" "$tag$p${s}1" 2000 4
    run "il-$tag-$p-$s" interleave "$a" "$b" "$tag$p${s}2" 2000 4
  done
  pairs+=("$p:$a vs $b")
done
python3 - "$OUT" "$tag" "${pairs[@]}" <<'PY'
import json, math, sys
out, tag, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
z_a, z_b = 1.959963984540054, 0.8416212335729143
for pair in pairs:
    p, name = pair.split(":", 1)
    ratios = []
    for s in (1, 2, 3):
        ab = json.load(open(f"{out}/ab-{tag}-{p}-{s}.json"))
        il = json.load(open(f"{out}/il-{tag}-{p}-{s}.json"))
        a, b = ab["arms"]
        uv = lambda x: ((x["ctr"]["high"] - x["ctr"]["low"]) / (2 * z_a)) ** 2 * x["users"]
        d = b["ctr"]["value"] - a["ctr"]["value"]
        n_ab = 2 * (z_a + z_b) ** 2 * (uv(a) + uv(b)) / d / d
        i = il["interleaving"]
        w, ties = i["wins"], i["ties"]
        dec = w[0] + w[1]
        q = w[1] / dec
        n_dec = (z_a * 0.5 + z_b * math.sqrt(q * (1 - q))) ** 2 / (q - 0.5) ** 2
        n_il = n_dec * (dec + ties) / dec
        ratios.append(n_ab / n_il)
        print(f"{name} seed {s}: A/B CTR {a['ctr']['value']:.4f} vs {b['ctr']['value']:.4f} "
              f"(p {ab['comparisons'][0]['p_value']:.2g}), users needed {n_ab:.0f} | interleaving "
              f"wins {w} ties {ties} share {q:.3f} (p {i['p_value']:.2g}), users needed {n_il:.0f} | ratio {n_ab / n_il:.1f}")
    ratios.sort()
    print(f"{name}: median ratio A/B / interleaving users {ratios[1]:.1f} (range {ratios[0]:.1f}-{ratios[2]:.1f})")
PY
