"""Two agents in two processes over the side channel, and the examples as subprocesses."""
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import BACKENDS


def write_to_child(i, src, peer, port, addr, notif):
    """Exchange metadata with the child `peer` (its side channel on `port`), WRITE the numpy
    array src to its address addr with notification notif, and see the transfer DONE."""
    from conftest import wait
    i.fetch_remote_metadata(peer, "127.0.0.1", port)
    i.send_local_metadata("127.0.0.1", port)
    assert wait(lambda: i.check_remote_metadata(peer))
    h = i.initialize_xfer("WRITE", i.get_xfer_descs([(src.ctypes.data, src.size, 0)], "DRAM"),
                          i.get_xfer_descs([(addr, src.size, 0)], "DRAM"), peer, notif)
    i.transfer(h)
    assert wait(lambda: i.check_xfer_state(h) == "DONE")


def read_port_and_addr(proc):
    """The child's "<port> <addr>" line; the "nixl" logger's INFO lines on stdout come first."""
    for line in proc.stdout:
        parts = line.split()
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            return int(parts[0]), int(parts[1])
    raise AssertionError("the child ended before printing its port")


EXAMPLES = os.environ.get("NIXL_EXAMPLES",
                          os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python"))

TARGET = textwrap.dedent("""
    import sys, time, numpy as np
    from nixl._api import nixl_agent, nixl_agent_config
    a = nixl_agent("peer_t", nixl_agent_config(False, True, 0, backends=[sys.argv[1]]))
    buf = np.zeros(65536, dtype=np.uint8)
    a.register_memory([(buf.ctypes.data, buf.size, 0, "")], "DRAM")
    print(a.get_listen_port(), buf.ctypes.data, flush=True)
    end = time.monotonic() + 30
    while not a.check_remote_xfer_done("peer_i", b"done\\0"):
        assert time.monotonic() < end, "no notification"
        time.sleep(0.001)
    assert (buf == 0x42).all(), "data not written"
    print("target ok", flush=True)
""")


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_processes(make_agent, bufs, backend):
    t = subprocess.Popen([sys.executable, "-c", TARGET, backend], stdout=subprocess.PIPE, text=True)
    try:
        port, addr = read_port_and_addr(t)
        i = make_agent(backends=[backend], name="peer_i")
        (src,) = bufs(1, 65536, fill=0x42)
        i.register_memory([(src.ctypes.data, src.size, 0, "")], "DRAM")
        write_to_child(i, src, "peer_t", port, addr, b"done\0")
        out, _ = t.communicate(timeout=30)
        assert t.returncode == 0 and "target ok" in out
    finally:
        if t.poll() is None:
            t.kill()


def run_example(name, *args):
    p = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *args], capture_output=True,
                       text=True, timeout=120)
    if p.returncode == 77:
        pytest.skip(p.stdout.strip())
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_example_two_peers(backend):
    assert "two_peers: SUCCESS" in run_example("two_peers.py", "--backend", backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_example_partial_metadata(backend):
    assert "partial_metadata: SUCCESS" in run_example("partial_metadata.py", "--backend", backend)


def test_example_query_memory():
    assert "query_memory: SUCCESS" in run_example("query_memory.py")


def test_bench_runs():
    bench = os.environ.get("NIXL_BENCH",
                           os.path.join(os.path.dirname(__file__), "..", "..", "bench", "python"))
    p = subprocess.run([sys.executable, os.path.join(bench, "bench_api.py"), "--iters", "2000",
                        "--repeat", "1"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "transfer()+check_xfer_state()" in p.stdout and "get_xfer_descs(" in p.stdout


DYING = textwrap.dedent("""
    import os, sys, numpy as np
    from nixl._api import nixl_agent, nixl_agent_config
    a = nixl_agent("dying", nixl_agent_config(False, True, 0, backends=[sys.argv[1]]))
    buf = np.zeros(4096, dtype=np.uint8)
    a.register_memory([(buf.ctypes.data, 4096, 0, "")], "DRAM")
    print(a.get_listen_port(), buf.ctypes.data, flush=True)
    sys.stdin.readline()
    os._exit(0)
""")


@pytest.mark.parametrize("backend", BACKENDS)
def test_remote_disconnect(make_agent, bufs, backend):
    """A peer that dies turns the next transfer into nixlRemoteDisconnectError."""
    import nixl._bindings as nb
    from conftest import wait
    t = subprocess.Popen([sys.executable, "-c", DYING, backend], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        port, addr = read_port_and_addr(t)
        i = make_agent(backends=[backend])
        (src,) = bufs(1, 4096, fill=1)
        i.register_memory([(src.ctypes.data, 4096, 0, "")], "DRAM")
        i.fetch_remote_metadata("dying", "127.0.0.1", port)
        assert wait(lambda: i.check_remote_metadata("dying"))
        h = i.initialize_xfer("WRITE", i.get_xfer_descs([(src.ctypes.data, 4096, 0)], "DRAM"),
                              i.get_xfer_descs([(addr, 4096, 0)], "DRAM"), "dying")
        i.transfer(h)
        assert wait(lambda: i.check_xfer_state(h) == "DONE")
        t.stdin.write("\n")
        t.stdin.flush()
        t.wait(timeout=30)

        def failed():
            try:
                i.transfer(h)
                wait(lambda: i.check_xfer_state(h) == "DONE")
                return False
            except nb.nixlRemoteDisconnectError:
                return True
        assert wait(failed, timeout=30)
    finally:
        if t.poll() is None:
            t.kill()


def test_example_cuda_tensors():
    """Skips (77) without torch or a CUDA device; tests/gpu/run-gpu-tools.sh runs it on a GPU."""
    assert "cuda_tensors: SUCCESS" in run_example("cuda_tensors.py")
