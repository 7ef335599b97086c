#!/usr/bin/env python3
"""Our nixlbench over UCX beside UCX's own ucx_perftest, same transport, same sizes, same run.

Issue #12 asks our UCX backend to come within 10 % of ucx_perftest for the same transport and
block size. This runs both, size after size, alternating, on this host (two processes each,
loopback), and prints a markdown table: WRITE against ucp_put_bw and READ against ucp_get,
batch 1.

    bench/ucx_perftest.py [--build DIR] [--tls tcp] [--sizes 4096,65536,...] [--repeat N]

ucx_perftest comes with Debian's ucx-utils (scripts/install-deps.sh installs it). It reports
MB/s in units of 2^20 bytes; the table converts it to decimal GB/s like nixlbench.
"""
import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def perftest(test, size, iters, env):
    port = free_port()
    server = subprocess.Popen(["ucx_perftest", "-p", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):  # the server listens within a few ms
            time.sleep(0.05)
            r = subprocess.run(["ucx_perftest", "127.0.0.1", "-p", str(port), "-t", test,
                                "-s", str(size), "-n", str(iters), "-w", str(max(iters // 10, 1))],
                               env=env, capture_output=True, text=True, timeout=120)
            if "Final:" in r.stdout:
                fields = r.stdout.split("Final:")[1].split()
                return float(fields[5]) * 1048576 / 1e9  # overall MB/s (2^20 B) -> GB/s
        raise RuntimeError(f"ucx_perftest {test} -s {size}: no result\n{r.stdout}{r.stderr}")
    finally:
        server.kill()
        server.wait()


def nixlbench(build, op, size, iters, env):
    cmd = [os.path.join(build, "tools", "nixlbench", "nixlbench"), "--backend", "UCX",
           "--op_type", op, "--start_block_size", str(size), "--max_block_size", str(size),
           "--start_batch_size", "1", "--max_batch_size", "1", "--num_iter", str(iters),
           "--warmup_iter", str(max(iters // 10, 1))]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) >= 3 and f[0] == str(size) and f[1] == "1":
            return float(f[2])
    raise RuntimeError(f"nixlbench {op} {size}: no result\n{r.stdout}{r.stderr}")


def iters_for(size):
    return max(20, min(2000, (256 << 20) // size))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--tls", default="tcp")
    ap.add_argument("--sizes", default="4096,65536,1048576,16777216,67108864")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    env = dict(os.environ, UCX_TLS=a.tls)
    sizes = [int(s) for s in a.sizes.split(",")]
    print(f"UCX_TLS={a.tls}, batch 1, median of {a.repeat} alternating runs, decimal GB/s "
          f"(range in brackets)\n")
    print("| block | op | ucx_perftest | nixlbench UCX | ratio |")
    print("|---|---|---|---|---|")
    for size in sizes:
        for op, test in (("WRITE", "ucp_put_bw"), ("READ", "ucp_get")):
            ref, ours = [], []
            for _ in range(a.repeat):
                ref.append(perftest(test, size, iters_for(size), env))
                ours.append(nixlbench(a.build, op, size, iters_for(size), env))
            r, o = statistics.median(ref), statistics.median(ours)
            label = f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"
            print(f"| {label} | {op} | {r:.2f} [{min(ref):.2f}-{max(ref):.2f}] | "
                  f"{o:.2f} [{min(ours):.2f}-{max(ours):.2f}] | {100 * o / r:.0f} % |",
                  flush=True)


if __name__ == "__main__":
    sys.exit(main())
