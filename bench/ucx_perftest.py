#!/usr/bin/env python3
"""Our nixlbench over UCX beside UCX's own ucx_perftest, same transport, same sizes, same run.

Issue #12 asks our UCX backend to come within 10 % of ucx_perftest for the same transport and
block size. This runs both, size after size, alternating, on this host (two processes each,
loopback), and prints a markdown table: WRITE against ucp_put_bw and READ against ucp_get.

Like with like: nixlbench with --batch N has N operations in flight per iteration (then waits
for all of them and a flush), so ucx_perftest runs with -O N (at most N uncompleted
operations); batch 1 is -O 1. Over shared memory (--tls sm,self) our engine needs
ucx_error_handling_mode=none on UCX 1.13 (its shared-memory transports cannot watch a peer):
it is passed through NIXLBENCH_UCX_PARAMS. Both programs run with the UCX settings our engine
applies (RNDV_THRESH=inf, MAX_RMA_RAILS=2, TCP_TX_SEG_SIZE=64k; docs/backends.md) unless the
environment sets them, so the transport is configured alike. Where the reference's nixlbench has a row for the
same transport, batch and size (../shared/reference/REFERENCE-FIGURES.md, section 1: UCX 1.13
over tcp), it is printed beside ours; it was measured on another day, so compare ratios.

    bench/ucx_perftest.py [--build DIR] [--tls tcp] [--batch 1] [--sizes 4096,65536,...]
                          [--ops WRITE,READ] [--repeat N] [--alloc ucx|heap|both] [--same-block]
                          [--flush-bw]
    bench/ucx_perftest.py --latency [--tls tcp] [--sizes ...] [--ops ...] [--repeat N]

--latency: one transfer at a time, as time per transfer. A nixlbench transfer at batch 1 is
complete for the initiator only when the target confirmed it (UCX: the operation, then the
endpoint flush, a round trip; then the notification goes), so the like-with-like figure is a
round trip: twice the one-way latency of ucp_put_lat (ucx_perftest's ping-pong of puts, each
side waiting for the other's bytes), for WRITE and READ alike (a get is a request and its
reply). The ratio is that round trip over nixlbench's average time per transfer (100 % would be
a transfer, its confirmation and its notification in one put's round trip).

Working set: ucx_perftest moves one buffer of the block size again and again (cache-hot on
both sides), nixlbench a batch of distinct blocks (8-128 MiB per iteration at batch 128).
--same-block adds a column, nixlbench --same_block (every descriptor of a request on one
block), and takes the ratio against it: the like-with-like comparison.

Memory: ucx_perftest allocates its buffers through UCX (ucp_mem_map with UCP_MEM_MAP_ALLOCATE),
which by UCX_ALLOC_PRIO's default order gives SysV shared-memory segments: over sm the peer maps
them and a put is a plain store, with no help from the target. Memory an application registers
(malloc, torch tensors: what NIXL users have) can never be that, so over sm UCX emulates the put
with messages the target's worker must copy out. --alloc heap runs ucx_perftest with
UCX_ALLOC_PRIO=heap (ordinary heap memory, like ours); --alloc both prints both columns and
takes the ratio against the heap one.

The flush: a NIXL request is done only when an endpoint flush says its operations reached the
target, so nixlbench flushes once per batch; ucx_perftest's ucp_put_bw flushes once per run, and
its puts queue inside UCX and stream. Over TCP at small blocks that alone changes the rate (a
bare UCX program with the same puts measured 0.50-0.56 GB/s at 4 KiB x 128 with a flush per batch
and 0.73-0.80 with one flush at the end, on the 2-vCPU machine). --flush-bw adds that program
(bench/ucx/ucx_flush_bw.c: ucp_put_nbx/ucp_get_nbx per block, ucp_ep_flush_nbx per batch, then
the notification as an active message, no NIXL around them) as a column and a second ratio:
what the library costs over the protocol.

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


# The reference's nixlbench on this machine type, UCX 1.13, tcp (REFERENCE-FIGURES.md, section
# 1): (op, batch) -> {block size: GB/s}.
REFERENCE_TCP = {
    ("WRITE", 1): {4096: 0.16, 16384: 0.36, 65536: 0.69, 262144: 0.95, 524288: 1.01,
                   1048576: 1.07, 4194304: 1.03, 16777216: 0.99, 67108864: 1.11},
    ("READ", 1): {4096: 0.14, 16384: 0.39, 65536: 0.87, 262144: 1.14, 524288: 1.32,
                  1048576: 1.33, 4194304: 1.25, 16777216: 1.25, 67108864: 1.15},
    ("WRITE", 128): {4096: 0.58, 16384: 0.71, 65536: 0.94, 262144: 1.03, 524288: 1.20,
                     1048576: 1.09},
    ("READ", 128): {4096: 0.58, 16384: 0.95, 65536: 1.28, 262144: 1.18, 524288: 1.11,
                    1048576: 1.12},
}


def perftest(test, size, iters, depth, env, field=5):
    port = free_port()
    server = subprocess.Popen(["ucx_perftest", "-p", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):  # the server listens within a few ms
            time.sleep(0.05)
            r = subprocess.run(["ucx_perftest", "127.0.0.1", "-p", str(port), "-t", test,
                                "-s", str(size), "-n", str(iters), "-w", str(max(iters // 10, 1)),
                                "-O", str(depth)],
                               env=env, capture_output=True, text=True, timeout=120)
            if "Final:" in r.stdout:
                fields = r.stdout.split("Final:")[1].split()
                if field != 5:
                    return float(fields[field])  # a latency test's overall latency, us
                return float(fields[5]) * 1048576 / 1e9  # overall MB/s (2^20 B) -> GB/s
        raise RuntimeError(f"ucx_perftest {test} -s {size}: no result\n{r.stdout}{r.stderr}")
    finally:
        server.kill()
        server.wait()


def nixlbench(build, op, size, batch, iters, env, same_block=False, field=2):
    cmd = [os.path.join(build, "tools", "nixlbench", "nixlbench"), "--backend", "UCX",
           "--op_type", op, "--start_block_size", str(size), "--max_block_size", str(size),
           "--start_batch_size", str(batch), "--max_batch_size", str(batch),
           "--num_iter", str(iters), "--warmup_iter", str(max(iters // 10, 1)),
           "--total_buffer_size", str(max(64 << 20, 2 * size * batch))]
    if same_block:
        cmd.append("--same_block")
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) >= 4 and f[0] == str(size) and f[1] == str(batch):
            return float(f[field])  # 2: GB/s, 3: average time per transfer, us
    raise RuntimeError(f"nixlbench {op} {size}: no result\n{r.stdout}{r.stderr}")


def flush_bw(build, op, size, batch, iters, env):
    """Bare UCX with a flush and a notification per batch (bench/ucx/ucx_flush_bw.c): the
    protocol of a NIXL request without the library around it, in the error mode nixlbench
    runs with (none where NIXLBENCH_UCX_PARAMS says so: shared memory on UCX 1.13)."""
    none = "ucx_error_handling_mode=none" in env.get("NIXLBENCH_UCX_PARAMS", "")
    err = "none" if none else "peer"
    cmd = [os.path.join(build, "bench", "ucx", "ucx_flush_bw"), "--op",
           "put" if op == "WRITE" else "get", "--size", str(size), "--batch", str(batch),
           "--iters", str(iters), "--warmup", str(max(iters // 10, 1)), "--err", err]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    for f in r.stdout.split():
        if f.startswith("gbps="):
            return float(f[5:])
    raise RuntimeError(f"ucx_flush_bw {op} {size}: no result\n{r.stdout}{r.stderr}")


def iters_for(size, batch=1):
    """Operations (ucx_perftest) and iterations (nixlbench: batch operations each) that move
    about 256 MiB."""
    ops = max(20, min(2000 * batch, (256 << 20) // size))
    return ops, max(10, ops // batch)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--tls", default="tcp")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--sizes", default="4096,65536,1048576,16777216,67108864")
    ap.add_argument("--ops", default="WRITE,READ")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--alloc", choices=("ucx", "heap", "both"), default="ucx")
    ap.add_argument("--latency", action="store_true",
                    help="time per transfer at batch 1 against ucp_put_lat's round trip")
    ap.add_argument("--same-block", action="store_true",
                    help="also nixlbench --same_block (one cache-hot block, like ucx_perftest); "
                         "the ratio is taken against it")
    ap.add_argument("--flush-bw", action="store_true",
                    help="also bare UCX with a flush and a notification per batch "
                         "(bench/ucx/ucx_flush_bw), the protocol every NIXL request pays; a "
                         "second ratio is taken against it")
    a = ap.parse_args()
    env = dict(os.environ, UCX_TLS=a.tls)
    for key, value in (("UCX_RNDV_THRESH", "inf"), ("UCX_MAX_RMA_RAILS", "2"),
                       ("UCX_TCP_TX_SEG_SIZE", "64k")):
        env.setdefault(key, value)  # our engine's settings, for ucx_perftest too
    if "tcp" not in a.tls.split(","):
        env["NIXLBENCH_UCX_PARAMS"] = "ucx_error_handling_mode=none"
    sizes = [int(s) for s in a.sizes.split(",")]
    if a.latency:
        return latency(a, env, sizes)
    tests = {"WRITE": "ucp_put_bw", "READ": "ucp_get"}
    load = os.getloadavg()[0]
    print(f"UCX_TLS={a.tls}, nixlbench batch {a.batch} beside ucx_perftest -O {a.batch}, "
          f"median of {a.repeat} alternating runs, decimal GB/s (range in brackets); "
          f"load {load:.2f} at the start; UCX_TCP_TX_SEG_SIZE={env['UCX_TCP_TX_SEG_SIZE']}\n")
    allocs = ["ucx", "heap"] if a.alloc == "both" else [a.alloc]
    envs = {k: dict(env, UCX_ALLOC_PRIO="heap") if k == "heap" else env for k in allocs}
    heads = {"ucx": "ucx_perftest", "heap": "ucx_perftest, heap memory"}
    same = " | nixlbench UCX, one block" if a.same_block else ""
    bare = " | bare UCX, flush + notif per batch" if a.flush_bw else ""
    bare_ratio = " | ratio to bare UCX" if a.flush_bw else ""
    print("| block | op | " + " | ".join(heads[k] for k in allocs) +
          f"{bare} | nixlbench UCX{same} | ratio{bare_ratio} | reference nixlbench |")
    extra = (1 if a.same_block else 0) + (2 if a.flush_bw else 0)
    print("|---|---|" + "---|" * (len(allocs) + extra) + "---|---|---|")
    for size in sizes:
        for op in a.ops.split(","):
            ops, iters = iters_for(size, a.batch)
            ref, ours, hot, flushed = {k: [] for k in allocs}, [], [], []
            for _ in range(a.repeat):
                for k in allocs:
                    ref[k].append(perftest(tests[op], size, ops, a.batch, envs[k]))
                if a.flush_bw:
                    flushed.append(flush_bw(a.build, op, size, a.batch, iters, env))
                ours.append(nixlbench(a.build, op, size, a.batch, iters, env))
                if a.same_block:
                    hot.append(nixlbench(a.build, op, size, a.batch, iters, env, True))
            o = statistics.median(hot if a.same_block else ours)
            r = statistics.median(ref[allocs[-1]])
            label = f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"
            theirs = REFERENCE_TCP.get((op, a.batch), {}).get(size) if a.tls == "tcp" else None
            cols = " | ".join(f"{statistics.median(ref[k]):.2f} [{min(ref[k]):.2f}-"
                              f"{max(ref[k]):.2f}]" for k in allocs)
            ratio = f"{100 * o / r:.0f} %" if r > 0 else ""
            if a.flush_bw:
                b = statistics.median(flushed)
                cols += f" | {b:.2f} [{min(flushed):.2f}-{max(flushed):.2f}]"
                ratio += f" | {100 * o / b:.0f} %" if b > 0 else " | "
            mine = f"{statistics.median(ours):.2f} [{min(ours):.2f}-{max(ours):.2f}]"
            if a.same_block:
                mine += f" | {o:.2f} [{min(hot):.2f}-{max(hot):.2f}]"
            print(f"| {label} | {op} | {cols} | {mine} | {ratio} | "
                  f"{theirs if theirs is not None else ''} |", flush=True)


def latency(a, env, sizes):
    load = os.getloadavg()[0]
    print(f"UCX_TLS={a.tls}, nixlbench batch 1 (us per transfer) beside ucx_perftest ucp_put_lat "
          f"(2 x its one-way latency: a round trip), median of {a.repeat} alternating runs "
          f"(range in brackets); load {load:.2f} at the start\n")
    print("| block | op | ucx_perftest round trip, us | nixlbench UCX, us | ratio |")
    print("|---|---|---|---|---|")
    for size in sizes:
        for op in a.ops.split(","):
            ops, iters = iters_for(size, 1)
            rtt, ours = [], []
            for _ in range(a.repeat):
                rtt.append(2 * perftest("ucp_put_lat", size, ops, 1, env, field=3))
                ours.append(nixlbench(a.build, op, size, 1, iters, env, field=3))
            r, o = statistics.median(rtt), statistics.median(ours)
            label = f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"
            print(f"| {label} | {op} | {r:.1f} [{min(rtt):.1f}-{max(rtt):.1f}] | "
                  f"{o:.1f} [{min(ours):.1f}-{max(ours):.1f}] | {100 * r / o:.0f} % |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
