#!/usr/bin/env python3
"""nixlbench --backend OBJ beside boto3 moving the same objects, in the same run.

Starts s3rver (scripts/install-deps.sh puts it in build-npm/) on a free loopback port, then for
each repeat runs nixlbench (WRITE, then READ: BATCH objects of each block size per request,
--check_consistency) and boto3 doing the same: BATCH PUTs or ranged GETs of the same keys at
once (a thread each, one client, as many connections as objects), the same iterations.
Prints a markdown table: GB/s (decimal), median of the repeats with the range.

    bench/obj_vs_boto3.py [--build build] [--repeat 3] [--iters 20]
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import boto3
import botocore.config

BLOCKS = [65536, 1 << 20, 4 << 20]
BATCH = 8


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nixlbench(build, port, op, iters):
    cmd = [os.path.join(build, "tools", "nixlbench", "nixlbench"), "--backend", "OBJ",
           "--op_type", op, "--obj_bucket_name", "bkt", "--obj_scheme", "http",
           "--obj_endpoint_override", f"127.0.0.1:{port}", "--obj_access_key", "S3RVER",
           "--obj_secret_key", "S3RVER", "--start_block_size", str(BLOCKS[0]),
           "--max_block_size", str(BLOCKS[-1]), "--start_batch_size", str(BATCH),
           "--max_batch_size", str(BATCH), "--num_iter", str(iters), "--warmup_iter", "2",
           "--large_blk_iter_ftr", "1", "--check_consistency"]
    env = dict(os.environ, NIXL_PLUGIN_DIR=os.path.join(build, "tests", "plugins"))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode:
        sys.exit(f"nixlbench {op} failed:\n{out.stdout}\n{out.stderr}")
    got = {}
    for line in out.stdout.splitlines():
        m = re.match(r"\s*(\d+)\s+(\d+)\s+([\d.]+)", line)
        if m and int(m.group(1)) in BLOCKS:
            got[int(m.group(1))] = float(m.group(3))
    return got


def boto3_run(port, op, iters):
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="S3RVER",
                      aws_secret_access_key="S3RVER", region_name="eu-central-1",
                      config=botocore.config.Config(max_pool_connections=BATCH))
    got = {}
    with concurrent.futures.ThreadPoolExecutor(BATCH) as pool:
        for b in BLOCKS:
            body = bytes([0xBB]) * b
            keys = [f"boto3_obj_{i}" for i in range(BATCH)]
            list(pool.map(lambda k: s3.put_object(Bucket="bkt", Key=k, Body=body), keys))

            def one(k):
                if op == "WRITE":
                    s3.put_object(Bucket="bkt", Key=k, Body=body)
                else:
                    data = s3.get_object(Bucket="bkt", Key=k, Range=f"bytes=0-{b - 1}")["Body"].read()
                    assert len(data) == b
            for _ in range(2):  # warm-up, as nixlbench's --warmup_iter 2
                list(pool.map(one, keys))
            t0 = time.monotonic()
            for _ in range(iters):
                list(pool.map(one, keys))
            got[b] = b * BATCH * iters / 1e9 / (time.monotonic() - t0)
    return got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20)
    a = ap.parse_args()
    s3rver = os.path.join(os.path.dirname(__file__), "..", "build-npm", "node_modules", ".bin",
                          "s3rver")
    if not os.access(s3rver, os.X_OK):
        sys.exit("s3rver is missing: run scripts/install-deps.sh")
    d = tempfile.mkdtemp(prefix="nixl-obj-bench-")
    port = free_port()
    srv = subprocess.Popen([s3rver, "-d", d, "-a", "127.0.0.1", "-p", str(port),
                            "--configure-bucket", "bkt"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        res = {}
        for _ in range(a.repeat):  # alternating, so that both see the same machine
            for op in ("WRITE", "READ"):
                for who, fn in (("nixl", lambda: nixlbench(a.build, port, op, a.iters)),
                                ("boto3", lambda: boto3_run(port, op, a.iters))):
                    for b, v in fn().items():
                        res.setdefault((op, b, who), []).append(v)
    finally:
        srv.kill()
        srv.wait()
        shutil.rmtree(d, ignore_errors=True)

    def cell(v):
        return f"{statistics.median(v):.3f} [{min(v):.3f}-{max(v):.3f}]"
    print(f"| op | block | nixlbench OBJ | boto3 | ratio |  ({BATCH} objects per request, "
          f"{a.iters} iterations, median of {a.repeat} [range], GB/s)")
    print("|---|---|---|---|---|")
    for op in ("WRITE", "READ"):
        for b in BLOCKS:
            n, o = res.get((op, b, "nixl"), []), res.get((op, b, "boto3"), [])
            if n and o:
                print(f"| {op} | {b // 1024} KiB | {cell(n)} | {cell(o)} | "
                      f"{statistics.median(n) / statistics.median(o):.2f} |")


if __name__ == "__main__":
    main()
