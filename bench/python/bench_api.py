#!/usr/bin/env python3
"""Per-call overhead of the nixl Python package (issue targets in brackets):

  1. transfer() + check_xfer_state() on a completed 1-descriptor loopback request (SHM)
     [<= 2 us per pair]
  2. get_xfer_descs() of a 100,000 x 3 uint64 numpy array, i.e. building a transfer list
     [<= 5 ms]
  3. for scale: the raw binding pair (postXferReq + getXferStatus) and an empty Python call.

Prints one line per figure (median of --repeat runs) and exits 1 if a target is missed with
--check.
"""
import argparse
import statistics
import sys
import time

import numpy as np

from nixl._api import nixl_agent, nixl_agent_config


def per_op(fn, n, repeat):
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn(n)
        runs.append((time.perf_counter_ns() - t0) / n)
    return statistics.median(runs)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--iters", type=int, default=200000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    a = p.parse_args()

    agent = nixl_agent("bench", nixl_agent_config(enable_prog_thread=False, backends=["SHM"]))
    src = np.arange(64, dtype=np.uint8)
    dst = np.zeros(64, dtype=np.uint8)
    agent.register_memory([(src.ctypes.data, 64, 0, ""), (dst.ctypes.data, 64, 0, "")], "DRAM")
    h = agent.initialize_xfer("WRITE", agent.get_xfer_descs([(src.ctypes.data, 64, 0)], "DRAM"),
                              agent.get_xfer_descs([(dst.ctypes.data, 64, 0)], "DRAM"), "bench")
    agent.transfer(h)
    while agent.check_xfer_state(h) != "DONE":
        pass
    assert (src == dst).all()

    def pair(n):
        transfer, check = agent.transfer, agent.check_xfer_state
        for _ in range(n):
            transfer(h)
            check(h)

    def raw_pair(n):
        post, status, hv = agent.agent.postXferReq, agent.agent.getXferStatus, h._handle
        for _ in range(n):
            post(hv)
            status(hv)

    def empty(n):
        f = (lambda x: x)
        for _ in range(n):
            f(h)
            f(h)

    pair_ns = per_op(pair, a.iters, a.repeat)
    raw_ns = per_op(raw_pair, a.iters, a.repeat)
    empty_ns = per_op(empty, a.iters, a.repeat)

    arr = np.empty((100000, 3), dtype=np.uint64)
    arr[:, 0] = src.ctypes.data
    arr[:, 1] = 64
    arr[:, 2] = 0
    build_ms = []
    for _ in range(max(a.repeat, 5) * 4):
        t0 = time.perf_counter_ns()
        d = agent.get_xfer_descs(arr, "DRAM")
        build_ms.append((time.perf_counter_ns() - t0) / 1e6)
    assert len(d) == 100000
    build = statistics.median(build_ms)
    agent.release_xfer_handle(h)

    print(f"transfer()+check_xfer_state() pair, 1-desc loopback SHM: {pair_ns / 1000:.3f} us "
          f"(target <= 2 us)")
    print(f"  raw binding postXferReq+getXferStatus pair:          {raw_ns / 1000:.3f} us")
    print(f"  two empty Python calls (interpreter floor):           {empty_ns / 1000:.3f} us")
    print(f"get_xfer_descs(100,000 x 3 uint64 numpy):                {build:.3f} ms "
          "(target <= 5 ms)")
    ok = pair_ns <= 2000 and build <= 5.0
    print("bench_api: " + ("within targets" if ok else "TARGET MISSED"))
    if a.check and not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
