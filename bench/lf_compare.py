#!/usr/bin/env python3
"""LIBFABRIC beside UCX (tcp) and SHM in the same runs (issue #20): the rows of docs/BENCHMARKS.md.

Each repeat runs, for READ and WRITE and each (block, batch) row, one
`nixlbench --compare <backends>` (a spawned target per backend, DRAM -> DRAM between two
processes of this host, every request with a notification, the initiator spinning on its
status). Per backend and row it keeps the median post-to-completion time of one request
(tx_us p50) and the GB/s; the table gives the median of the repeats and their range, and the
1-minute load average seen before each run.

    bench/lf_compare.py [--build DIR] [--repeats N] [--backends UCX,SHM,LIBFABRIC]
                        [--rows 4096x1,65536x128] [--ops WRITE,READ] [--env KEY=VALUE ...]

UCX runs with UCX_TLS=tcp (as in the issue: both network backends over TCP on loopback).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROWS = [  # block, batch, measured iterations
    (4096, 1, 2000), (65536, 1, 500), (1 << 20, 1, 100),
    (4096, 128, 200), (65536, 128, 50), (1 << 20, 128, 10),
]


def size(b):
    return f"{b >> 20} MiB" if b >= 1 << 20 else f"{b >> 10} KiB"


def load():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def run(build, backends, op, block, batch, iters, env):
    with tempfile.NamedTemporaryFile(suffix=".json") as js:
        cmd = [os.path.join(build, "tools", "nixlbench", "nixlbench"), "--compare", backends,
               "--op_type", op, "--start_block_size", str(block), "--max_block_size", str(block),
               "--start_batch_size", str(batch), "--max_batch_size", str(batch),
               "--num_iter", str(iters), "--warmup_iter", str(max(iters // 10, 2)),
               "--json", js.name]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        with open(js.name) as f:
            rows = json.load(f)["rows"]
    return {r["backend"]: (r["tx_us"]["p50"], r["bw_gbps"]) for r in rows}


def fmt(vals, digits):
    m = statistics.median(vals)
    return f"{m:.{digits}f} ({min(vals):.{digits}f}-{max(vals):.{digits}f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backends", default="UCX,SHM,LIBFABRIC")
    ap.add_argument("--rows", default="", help="BLOCKxBATCH,... (default: all)")
    ap.add_argument("--ops", default="WRITE,READ")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the runs")
    a = ap.parse_args()
    rows = [r for r in ROWS if not a.rows or f"{r[0]}x{r[1]}" in a.rows.split(",")]
    ops = a.ops.split(",")
    if not rows or any(op not in ("WRITE", "READ") for op in ops):
        sys.exit("--rows names no known row (BLOCKxBATCH of ROWS) or --ops is not WRITE,READ")
    env = dict(os.environ)
    env.setdefault("NIXL_PLUGIN_DIR", os.path.join(a.build, "plugins"))
    env["UCX_TLS"] = "tcp"
    for kv in a.env:
        k, _, v = kv.partition("=")
        env[k] = v
    names = a.backends.split(",")
    res = {}  # (op, block, batch) -> backend -> [(us, gbps)]
    loads = []
    for rep in range(a.repeats):
        for op in ops:
            for block, batch, iters in rows:
                loads.append(load())
                got = run(a.build, a.backends, op, block, batch, iters, env)
                for b in names:
                    res.setdefault((op, block, batch), {}).setdefault(b, []).append(got[b])
                print(f"repeat {rep + 1} {op} {size(block)} x {batch}: " +
                      ", ".join(f"{b} {got[b][0]:.1f} us {got[b][1]:.2f} GB/s" for b in names),
                      file=sys.stderr)
    print(f"load average (1 min) before the runs: median {statistics.median(loads):.1f}, "
          f"{min(loads):.1f}-{max(loads):.1f}\n")
    head = " | ".join(f"{b} us/request | {b} GB/s" for b in names)
    print(f"| op | block | batch | {head} |")
    print("|---|---|---|" + "---|---|" * len(names))
    for op in ops:
        for block, batch, _ in rows:
            cells = []
            for b in names:
                v = res[(op, block, batch)][b]
                cells.append(fmt([x[0] for x in v], 1))
                cells.append(fmt([x[1] for x in v], 2))
            print(f"| {op} | {size(block)} | {batch} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
