"""A torch shared-memory tensor (share_memory_()) as the target of SHM's mapping path.

torch keeps a shared tensor's storage in a shared-memory file (on Linux a /dev/shm file it
unlinks at once, or a memfd, depending on the sharing strategy); issue 18 asks SHM to map such
regions instead of copying through cross-memory attach. The initiator runs with
transport=map, which refuses any request whose remote regions are not in a mappable file, so a
WRITE that succeeds went through the mapping; every byte is checked in the target. Skips
without torch.
"""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from test_processes import read_port_and_addr, write_to_child

torch = pytest.importorskip("torch")

TARGET = textwrap.dedent("""
    import sys, time, torch
    from nixl._api import nixl_agent, nixl_agent_config
    a = nixl_agent("torch_t", nixl_agent_config(False, True, 0, backends=["SHM"]))
    t = torch.zeros(1 << 20, dtype=torch.uint8).share_memory_()
    a.register_memory([(t.data_ptr(), t.numel(), 0, "")], "DRAM")
    print(a.get_listen_port(), t.data_ptr(), flush=True)
    end = time.monotonic() + 30
    while not a.check_remote_xfer_done("torch_i", b"done"):
        assert time.monotonic() < end, "no notification"
        time.sleep(0.001)
    want = (torch.arange(1 << 20, dtype=torch.int64) * 7 + 3) % 256
    assert torch.equal(t.to(torch.int64), want), "the shared tensor does not hold the bytes"
    print("target ok", flush=True)
""")


@pytest.mark.parametrize("strategy", ["file_descriptor", "file_system"])
def test_shared_tensor_is_mapped(make_agent, strategy):
    code = f"import torch.multiprocessing as m; m.set_sharing_strategy('{strategy}')\n" + TARGET
    t = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        port, addr = read_port_and_addr(t)
        i = make_agent(backends=[], name="torch_i")
        i.create_backend("SHM", {"transport": "map"})
        src = ((np.arange(1 << 20, dtype=np.int64) * 7 + 3) % 256).astype(np.uint8)
        i.register_memory([(src.ctypes.data, src.size, 0, "")], "DRAM")
        write_to_child(i, src, "torch_t", port, addr, b"done")
        out, _ = t.communicate(timeout=30)
        assert t.returncode == 0 and "target ok" in out
    finally:
        if t.poll() is None:
            t.kill()
