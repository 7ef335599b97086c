"""Same-host peers of agents created with backends=["UCX"] move their bytes through SHM.

The sequence is the one vLLM's connector runs: agents made with UCX only, metadata exchanged
as bytes (get_agent_metadata / add_remote_agent), prep_xfer_dlist on both sides,
make_prepped_xfer with no backend argument, a READ, then a WRITE with a notification; every
byte is checked, and query_xfer_backend names the engine that moved them. The target
registers one buffer with backends=["UCX"] (SHM beside UCX takes it too) and deregisters it
the same way, then creates SHM itself (which adopts the one beside UCX). With
NIXL_AUTO_SHM=0 the same sequence goes through UCX, as before.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import HAVE_UCX, wait

SIZE, BLOCKS = 1 << 20, 8

# The target: prints its metadata (hex) and buffer address, reads the initiator's metadata,
# then waits for the WRITE's notification and checks the bytes it received.
TARGET = textwrap.dedent("""
    import sys, time, numpy as np
    from nixl._api import nixl_agent, nixl_agent_config
    size, blocks = int(sys.argv[1]), int(sys.argv[2])
    a = nixl_agent("decode", nixl_agent_config(False, False, 0, backends=["UCX"]))
    src = np.frombuffer(bytes((i * 7 + 3) & 0xff for i in range(size)), dtype=np.uint8).copy()
    dst = np.zeros(size, dtype=np.uint8)
    # one list hinted to UCX (SHM beside it takes it too), one not
    src_reg = a.register_memory([(src.ctypes.data, size, 0, "")], "DRAM", backends=["UCX"])
    dst_reg = a.register_memory([(dst.ctypes.data, size, 0, "")], "DRAM")
    print(a.get_agent_metadata().hex(), src.ctypes.data, dst.ctypes.data, flush=True)
    assert a.add_remote_agent(bytes.fromhex(sys.stdin.readline().strip())) == b"prefill"
    end = time.monotonic() + 30
    while not a.check_remote_xfer_done("prefill", b"kv-ready"):
        assert time.monotonic() < end, "no notification"
        time.sleep(0.001)
    want = np.frombuffer(bytes((i * 13 + 1) & 0xff for i in range(size)), dtype=np.uint8)
    assert (dst == want).all(), "WRITE bytes differ"
    a.deregister_memory(src_reg, backends=["UCX"])
    a.deregister_memory(dst_reg)
    a.create_backend("SHM")  # the SHM beside UCX, when there is one, becomes the user's
    print("target ok", flush=True)
""")


@pytest.mark.skipif(not HAVE_UCX, reason="the UCX plugin is not built here")
@pytest.mark.parametrize("auto,engine", [("1", "SHM"), ("0", "UCX")])
def test_ucx_agents_on_one_host(make_agent, monkeypatch, auto, engine):
    monkeypatch.setenv("NIXL_AUTO_SHM", auto)
    t = subprocess.Popen([sys.executable, "-c", TARGET, str(SIZE), str(BLOCKS)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = ""
        while len(line.split()) != 3:  # the nixl logger's INFO lines come first
            line = t.stdout.readline()
            assert line, "the target ended before printing its metadata"
        md, src_addr, dst_addr = line.split()
        a = make_agent(backends=["UCX"], name="prefill")
        assert a.add_remote_agent(bytes.fromhex(md)) == b"decode"
        t.stdin.write(a.get_agent_metadata().hex() + "\n")
        t.stdin.flush()

        blk = SIZE // BLOCKS
        local = np.zeros(SIZE, dtype=np.uint8)
        a.register_memory([(local.ctypes.data, SIZE, 0, "")], "DRAM")
        mine = a.prep_xfer_dlist("NIXL_INIT_AGENT",
                                 [(local.ctypes.data + i * blk, blk, 0) for i in range(BLOCKS)],
                                 "DRAM")
        theirs = a.prep_xfer_dlist("decode",
                                   [(int(src_addr) + i * blk, blk, 0) for i in range(BLOCKS)],
                                   "DRAM")
        idx = list(range(BLOCKS))
        h = a.make_prepped_xfer("READ", mine, idx, theirs, idx)
        assert a.transfer(h) in ("PROC", "DONE")
        assert wait(lambda: a.check_xfer_state(h) == "DONE")
        assert a.query_xfer_backend(h) == engine
        want = np.frombuffer(bytes((i * 7 + 3) & 0xff for i in range(SIZE)), dtype=np.uint8)
        assert (local == want).all(), "READ bytes differ"
        a.release_xfer_handle(h)

        local[:] = np.frombuffer(bytes((i * 13 + 1) & 0xff for i in range(SIZE)), dtype=np.uint8)
        dst = a.prep_xfer_dlist("decode",
                                [(int(dst_addr) + i * blk, blk, 0) for i in range(BLOCKS)],
                                "DRAM")
        h = a.make_prepped_xfer("WRITE", mine, idx[::-1], dst, idx[::-1], b"kv-ready")
        assert a.transfer(h) in ("PROC", "DONE")
        assert wait(lambda: a.check_xfer_state(h) == "DONE")
        assert a.query_xfer_backend(h) == engine
        out, _ = t.communicate(timeout=30)
        assert t.returncode == 0 and "target ok" in out
        for d in (mine, theirs, dst):
            a.release_dlist_handle(d)
        a.release_xfer_handle(h)
    finally:
        if t.poll() is None:
            t.kill()
