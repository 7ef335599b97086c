"""What bench/obj_vs_boto3.py and bench/azure_vs_rest.py share: a server of build-npm/ on a
free loopback port, nixlbench's rows, an independent client's timed rounds, and the table.

Both scripts run, per repeat and alternating, nixlbench (WRITE, then READ: BATCH objects of each
block size per request, --check_consistency) and an independent client doing the same: BATCH
PUTs or ranged GETs of objects of the same size at once (a thread and a connection each), the
same warm-up and iterations. GB/s are decimal; cells are the median of the repeats [range].
"""
import argparse
import concurrent.futures
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BLOCKS = [65536, 1 << 20, 4 << 20]
BATCH = 8
WARMUP = 2
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def options():
    """The scripts' common flags: --build, --repeat, --iters."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20)
    return ap.parse_args()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def npm_server(name, argv_of):
    """Run build-npm's `name` with argv_of(dir, port) (its arguments after the program) in a
    fresh directory on a free port until the block ends; yields the port."""
    prog = os.path.join(ROOT, "build-npm", "node_modules", ".bin", name)
    if not os.access(prog, os.X_OK):
        sys.exit(f"{name} is missing: run scripts/install-deps.sh")
    d = tempfile.mkdtemp(prefix=f"nixl-{name}-bench-")
    port = free_port()
    srv = subprocess.Popen([prog] + argv_of(d, port), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                if srv.poll() is not None:
                    sys.exit(f"{name} exited with {srv.returncode}")
                time.sleep(0.1)
        yield port
    finally:
        srv.kill()
        srv.wait()
        shutil.rmtree(d, ignore_errors=True)


def nixlbench(build, backend_args, op, iters, env=None):
    """GB/s of nixlbench per block size of BLOCKS (BATCH objects per request)."""
    cmd = [os.path.join(build, "tools", "nixlbench", "nixlbench")] + backend_args + [
        "--op_type", op, "--start_block_size", str(BLOCKS[0]), "--max_block_size",
        str(BLOCKS[-1]), "--start_batch_size", str(BATCH), "--max_batch_size", str(BATCH),
        "--num_iter", str(iters), "--warmup_iter", str(WARMUP), "--large_blk_iter_ftr", "1",
        "--check_consistency"]
    env = dict(env or os.environ, NIXL_PLUGIN_DIR=os.path.join(build, "tests", "plugins"))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode:
        sys.exit(f"nixlbench {op} failed:\n{out.stdout}\n{out.stderr}")
    got = {}
    for line in out.stdout.splitlines():
        m = re.match(r"\s*(\d+)\s+(\d+)\s+([\d.]+)", line)
        if m and int(m.group(1)) in BLOCKS:
            got[int(m.group(1))] = float(m.group(3))
    return got


def client_rates(put, get, prefix, op, iters):
    """GB/s of an independent client per block size: put(key, body) and get(key, size) (which
    returns the bytes) called by BATCH threads at once, on keys prefix0..prefix<BATCH-1>
    written first, WARMUP rounds untimed, then `iters` timed."""
    got = {}
    keys = [f"{prefix}{i}" for i in range(BATCH)]
    with concurrent.futures.ThreadPoolExecutor(BATCH) as pool:
        for b in BLOCKS:
            body = bytes([0xBB]) * b
            list(pool.map(lambda k: put(k, body), keys))

            def one(k):
                if op == "WRITE":
                    put(k, body)
                elif len(get(k, b)) != b:
                    raise RuntimeError(f"short read of {k}")
            for _ in range(WARMUP):
                list(pool.map(one, keys))
            t0 = time.monotonic()
            for _ in range(iters):
                list(pool.map(one, keys))
            got[b] = b * BATCH * iters / 1e9 / (time.monotonic() - t0)
    return got


def compare(repeat, runners):
    """runners: {who: fn(op) -> {block: GB/s}}; run each in turn, per repeat and op (alternating,
    so that all see the same machine). {(op, block, who): [GB/s, ...]}."""
    res = {}
    for _ in range(repeat):
        for op in ("WRITE", "READ"):
            for who, fn in runners.items():
                for b, v in fn(op).items():
                    res.setdefault((op, b, who), []).append(v)
    return res


def print_table(res, ours, theirs, iters, repeat):
    def cell(v):
        return f"{statistics.median(v):.3f} [{min(v):.3f}-{max(v):.3f}]"
    print(f"| op | block | {ours} | {theirs} | ratio |  ({BATCH} objects per request, "
          f"{iters} iterations, median of {repeat} [range], GB/s)")
    print("|---|---|---|---|---|")
    for op in ("WRITE", "READ"):
        for b in BLOCKS:
            n, o = res.get((op, b, ours), []), res.get((op, b, theirs), [])
            if n and o:
                print(f"| {op} | {b // 1024} KiB | {cell(n)} | {cell(o)} | "
                      f"{statistics.median(n) / statistics.median(o):.2f} |")
