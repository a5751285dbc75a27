#!/usr/bin/env python3
"""One SASRec training step: Aisle (burn-flex) against PyTorch, same script.

The same model on both sides: item + position embeddings (hidden 64), 2
pre-norm blocks with a fused QKV projection, 2 heads, ReLU feed-forward of
256, dropout 0.2 after the embedding, the attention output and the
feed-forward, final layer norm, tied output weights; loss at every position
of random full-length sequences (batch 128 x length 50); AdamW, gradient
clipping at norm 1. The Rust side is `cargo run --release -p aisle-seq
--example step`; it is built first and run as a subprocess.

PyTorch is a peer, not a dependency: install it in a throwaway virtualenv
(`bench/setup-peers.sh torch`; PyPI's wheel, about 4 GB with its CUDA libraries) and run this script with that interpreter:

    /tmp/aisle-peers/bin/python bench/seq_step.py [--items 3706 40000] [--threads 1 2] [--loss ce sampled]

Prints one line per (items, threads, loss, framework) with the median
seconds per step and steps per CPU-second, then the ratio Aisle / PyTorch
(steps per CPU-second; > 1 means Aisle is more efficient).
"""
import argparse, json, os, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def torch_step(items, threads, loss_kind, steps, batch=128, length=50, hidden=64, negatives=256):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(42)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(hidden, 3 * hidden)
            self.out = nn.Linear(hidden, hidden)
            self.ff1 = nn.Linear(hidden, 4 * hidden)
            self.ff2 = nn.Linear(4 * hidden, hidden)
            self.ln1 = nn.LayerNorm(hidden)
            self.ln2 = nn.LayerNorm(hidden)
            self.drop = nn.Dropout(0.2)

        def forward(self, x, mask):
            b, l, d = x.shape
            h = self.ln1(x)
            q, k, v = self.qkv(h).split(d, dim=2)
            q, k, v = (t.view(b, l, 2, d // 2).transpose(1, 2) for t in (q, k, v))
            s = q @ k.transpose(-1, -2) / (d // 2) ** 0.5 + mask
            a = (s.softmax(-1) @ v).transpose(1, 2).reshape(b, l, d)
            x = x + self.drop(self.out(a))
            f = self.ff2(self.drop(F.relu(self.ff1(self.ln2(x)))))
            return x + self.drop(f)

    class SasRec(nn.Module):
        def __init__(self):
            super().__init__()
            self.item = nn.Embedding(items + 1, hidden)
            self.pos = nn.Embedding(length, hidden)
            self.blocks = nn.ModuleList([Block(), Block()])
            self.norm = nn.LayerNorm(hidden)
            self.drop = nn.Dropout(0.2)

        def forward(self, ids):
            b, l = ids.shape
            x = self.drop(self.item(ids) + self.pos(torch.arange(l).expand(b, l)))
            mask = torch.triu(torch.full((l, l), -1e4), 1)
            for blk in self.blocks:
                x = blk(x, mask)
            return self.norm(x)

    model = SasRec()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    times = []
    cpu0 = time.process_time()
    for s in range(steps + 1):
        seq = torch.randint(1, items + 1, (batch, length + 1))
        t = time.perf_counter()
        h = model(seq[:, :-1]).reshape(-1, hidden)
        y = seq[:, 1:].reshape(-1)
        if loss_kind == "ce":
            logits = h @ model.item.weight[1:].T
            loss = F.cross_entropy(logits, y - 1)
        else:
            negs = torch.randint(1, items + 1, (negatives,))
            pos = (h * model.item(y)).sum(-1, keepdim=True)
            neg = h @ model.item(negs).T
            loss = -F.log_softmax(torch.cat([pos, neg], 1), 1)[:, 0].mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if s == 0:
            cpu0 = time.process_time()
        else:
            times.append(time.perf_counter() - t)
    cpu = (time.process_time() - cpu0) / steps
    return {"framework": "pytorch " + torch.__version__, "median_s": statistics.median(times),
            "cpu_s_per_step": cpu, "steps_per_cpu_s": 1.0 / cpu}


def aisle_step(items, threads, loss_kind, steps):
    exe = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                       "release", "examples", "step")
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run([exe, "--items", str(items), "--loss", loss_kind, "--steps", str(steps)],
                         capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, nargs="+", default=[3706, 40000])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--loss", nargs="+", default=["ce", "sampled"])
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "aisle-seq", "--example", "step"],
                   cwd=ROOT, check=True)
    print(f"{'items':>6} {'thr':>3} {'loss':>7} {'framework':>22} {'median s':>9} {'steps/CPU-s':>11}")
    for items in a.items:
        for threads in a.threads:
            for loss in a.loss:
                r = aisle_step(items, threads, loss, a.steps)
                p = torch_step(items, threads, loss, a.steps)
                for x in (r, p):
                    print(f"{items:>6} {threads:>3} {loss:>7} {x['framework']:>22} "
                          f"{x['median_s']:>9.4f} {x['steps_per_cpu_s']:>11.2f}")
                print(f"{'':>6} {'':>3} {'':>7} {'ratio Aisle/PyTorch':>22} "
                      f"{p['median_s'] / r['median_s']:>9.2f}x {r['steps_per_cpu_s'] / p['steps_per_cpu_s']:>10.2f}x")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
