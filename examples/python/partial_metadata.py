#!/usr/bin/env python3
"""Partial metadata: a peer learns only the regions it needs.

Agent "owner" registers three regions; agent "user" first loads partial metadata for one region
with connection info, checks which descriptors it may address, writes into that region, then
loads a second region's partial metadata without connection info and reads from it.
Exit status 0 and "partial_metadata: SUCCESS" when every check passes.

    python3 partial_metadata.py [--backend SHM|UCX]
"""
import argparse
import sys
import time

import numpy as np

from nixl._api import nixl_agent, nixl_agent_config

N = 64 * 1024


def check(cond, why):
    if not cond:
        print(f"partial_metadata: FAILED: {why}")
        sys.exit(1)


def wait_done(agent, h):
    end = time.monotonic() + 20
    while agent.check_xfer_state(h) != "DONE":
        check(time.monotonic() < end, "transfer timed out")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--backend", default="SHM")
    backend = p.parse_args().backend
    conf = nixl_agent_config(enable_prog_thread=False, backends=[backend])
    owner = nixl_agent("owner", conf)
    user = nixl_agent("user", conf)

    regions = [np.zeros(N, dtype=np.uint8) for _ in range(3)]
    regions[2][:] = 0x5A
    descs = owner.register_memory([(r.ctypes.data, N, 0, f"r{i}") for i, r in enumerate(regions)],
                                  "DRAM")
    mine = np.full(N, 0xC3, dtype=np.uint8)
    back = np.zeros(N, dtype=np.uint8)
    user.register_memory([(mine.ctypes.data, N, 0, ""), (back.ctypes.data, N, 0, "")], "DRAM")

    one = owner.get_reg_descs([descs[0]], "DRAM")
    md = owner.get_partial_agent_metadata(one, inc_conn_info=True)
    full = owner.get_agent_metadata()
    check(len(md) < len(full), "partial metadata is not smaller than the full one")
    name = user.add_remote_agent(md)
    check(name == b"owner", f"loaded agent name {name!r}")

    first = user.get_xfer_descs([(regions[0].ctypes.data, N, 0)], "DRAM")
    second = user.get_xfer_descs([(regions[1].ctypes.data, N, 0)], "DRAM")
    check(user.check_remote_metadata("owner", first), "region 0 should be known")
    check(not user.check_remote_metadata("owner", second), "region 1 should be unknown")

    h = user.initialize_xfer("WRITE", user.get_xfer_descs([(mine.ctypes.data, N, 0)], "DRAM"),
                             first, "owner", b"wrote region 0")
    user.transfer(h)
    wait_done(user, h)
    check(np.array_equal(regions[0], mine), "region 0 does not hold the written data")
    end = time.monotonic() + 10
    while not owner.check_remote_xfer_done("user", b"wrote region 0"):
        check(time.monotonic() < end, "no notification for the write")

    md2 = owner.get_partial_agent_metadata(owner.get_reg_descs([descs[2]], "DRAM"),
                                           inc_conn_info=False)
    user.add_remote_agent(md2)
    third = user.get_xfer_descs([(regions[2].ctypes.data, N, 0)], "DRAM")
    check(user.check_remote_metadata("owner", third), "region 2 should be known")
    h2 = user.initialize_xfer("READ", user.get_xfer_descs([(back.ctypes.data, N, 0)], "DRAM"),
                              third, "owner")
    user.transfer(h2)
    wait_done(user, h2)
    check(bool((back == 0x5A).all()), "the data read from region 2 is wrong")
    user.remove_remote_agent("owner")
    check(not user.check_remote_metadata("owner"), "owner still known after removal")
    print(f"partial_metadata: SUCCESS (backend {backend}: 2 of 3 regions shared, "
          "WRITE and READ verified)")


if __name__ == "__main__":
    main()
