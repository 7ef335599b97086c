"""Every nixl_agent method, exceptions per status, notifications, handle lifetimes."""
import gc

import numpy as np
import pytest

import nixl
import nixl._bindings as nb
from nixl._api import (nixl_agent, nixl_agent_config, nixl_prepped_dlist_handle,
                       nixl_thread_sync_t, nixl_xfer_handle)
from conftest import BACKENDS, HAVE_UCX, wait


def test_module_surface():
    assert nixl.__version__ == nb.LIBRARY_VERSION
    for n in ("DEFAULT_COMM_PORT", "nixl_agent", "nixl_agent_config", "nixl_backend_handle",
              "nixl_prepped_dlist_handle", "nixl_thread_sync_t", "nixl_xfer_handle"):
        assert hasattr(nixl, n)
    assert nb.DEFAULT_COMM_PORT == 8888 and nb.NIXL_INIT_AGENT == ""
    assert nb.NIXL_WRITE == 1 and nb.NIXL_READ == 0 and nb.FILE_SEG == 4
    assert nb.NIXL_ERR_NOT_SUPPORTED == -9 and nb.NIXL_COST_ANALYTICAL_BACKEND == 0
    assert str(nb.DRAM_SEG) == "nixl_mem_t.DRAM_SEG" and nb.nixl_mem_t(4) is nb.FILE_SEG
    assert nixl_thread_sync_t.NIXL_THREAD_SYNC_DEFAULT is nixl_thread_sync_t.NIXL_THREAD_SYNC_NONE
    names = ["nixlNotPostedError", "nixlInvalidParamError", "nixlBackendError",
             "nixlNotFoundError", "nixlMismatchError", "nixlNotAllowedError",
             "nixlRepostActiveError", "nixlUnknownError", "nixlNotSupportedError",
             "nixlRemoteDisconnectError", "nixlCancelledError", "nixlNoTelemetryError"]
    for n in names:
        exc = getattr(nb, n)
        assert issubclass(exc, Exception) and not issubclass(exc, RuntimeError)
    from nixl.logging import get_logger
    assert get_logger("x").name == "nixl.x"


def test_status_table():
    """The enum, the constants and the exceptions all come from the C table, and match the
    table of docs/errors.md (itself checked against the header by the status-doc test)."""
    import os
    import re
    table = nb._status_table
    assert [v for _, v, _ in table] == list(range(1, -13, -1))
    for name, value, _ in table:
        assert nb.status_str(value) == name
    members = [(m.name, int(m)) for m in nb.nixl_status_t]
    assert members == [(n, v) for n, v, _ in table if v >= -9]   # the reference stops at -9
    assert nb.NIXL_ERR_NOT_FOUND is nb.nixl_status_t(-4)
    assert not hasattr(nb, "NIXL_ERR_REMOTE_DISCONNECT")
    doc = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "errors.md")
    with open(doc, encoding="utf-8") as f:
        rows = re.findall(r"^\| `(NIXL_\w+)` \| (-?\d+) \| (.*?) \| (.*?) \|$", f.read(), re.M)
    assert [(n, int(v), m) for n, v, m, _ in rows] == list(table)
    for _, value, _, exc in rows:
        if int(value) < 0:
            cls = getattr(nb, exc.strip("`"))
            assert cls.__module__ == "nixl._bindings"
            assert issubclass(cls, Exception) and not issubclass(cls, RuntimeError)


def test_config_defaults():
    c = nixl_agent_config()
    assert (c.enable_pthread, c.enable_listen, c.port, c.capture_telemetry, c.num_threads,
            c.backends, c.sync_mode) == (True, False, 8888, False, 0, ["UCX"], None)
    c = nixl_agent_config(False, True, 0, True, 2, ["SHM"], nixl_thread_sync_t.NIXL_THREAD_SYNC_RW)
    assert (c.enable_pthread, c.enable_listen, c.port, c.backends) == (False, True, 0, ["SHM"])
    with pytest.raises(TypeError, match="sync_mode must be a nixl_thread_sync_t"):
        nixl_agent_config(sync_mode=1)
    raw = nb.nixlAgentConfig(True, False, 1234)
    assert raw.useProgThread and raw.listenPort == 1234 and raw.lthrDelay == 100000
    assert raw.etcdWatchTimeout.total_seconds() == 5.0


def test_construction(make_agent):
    with pytest.raises(ValueError):
        nixl_agent("")
    a = nixl_agent("defaults")           # UCX by default; skipped with a warning when absent
    assert ("UCX" in a.backends) == HAVE_UCX
    assert a.nixl_ops.keys() == {"WRITE", "READ"} and a.nixl_mems["cpu"] == nb.DRAM_SEG
    assert a.agent is not None and a.notifs == {}



def test_instantiate_all(tmp_path):
    """instantiate_all creates every plugin that loads and skips the others. It runs in a child
    with a plugin folder of its own (SHM built in, UCX if built, one broken file)."""
    import os
    import subprocess
    import sys
    src = os.environ.get("NIXL_PLUGIN_DIR", "")
    for name in ("libplugin_UCX.so", "libplugin_BROKEN.so"):
        if os.path.exists(os.path.join(src, name)):
            os.symlink(os.path.realpath(os.path.join(src, name)), tmp_path / name)
    code = ("from nixl._api import nixl_agent; a = nixl_agent('all', instantiate_all=True); "
            "print(sorted(a.backends))")
    env = dict(os.environ, NIXL_PLUGIN_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()   # the "nixl" logger writes to stdout too
    assert lines[-1] == str(sorted(["SHM"] + (["UCX"] if HAVE_UCX else [])))
    assert "BROKEN" in out.stdout


def test_plugins_and_backends(make_agent):
    a = make_agent(backends=[])
    assert "SHM" in a.get_plugin_list()
    assert a.get_plugin_mem_types("SHM") == ["DRAM_SEG", "VRAM_SEG"]
    assert "notif_ring_size" in a.get_plugin_params("SHM")
    assert a.get_plugin_mem_types("NOPE") == [] and a.get_plugin_params("NOPE") == {}
    assert a.get_backend_mem_types("SHM") == [] and a.get_backend_params("SHM") == {}
    a.create_backend("SHM", {"async_threshold": "0"})
    assert isinstance(a.backends["SHM"], int)
    assert a.get_backend_mem_types("SHM") == ["DRAM_SEG", "VRAM_SEG"]
    assert a.get_backend_params("SHM")["async_threshold"] == "0"
    with pytest.raises(nb.nixlInvalidParamError):
        a.create_backend("SHM")
    with pytest.raises(nb.nixlNotFoundError):
        a.create_backend("NOPE")


@pytest.mark.parametrize("backend", BACKENDS)
def test_loopback_transfers(make_agent, bufs, backend):
    a = make_agent(backends=[backend])
    src, dst = bufs(2, 8192)
    src[:] = np.arange(8192) % 251
    reg = a.register_memory([(src.ctypes.data, 8192, 0, ""), (dst.ctypes.data, 8192, 0, "")],
                            "DRAM")
    l = a.get_xfer_descs([(src.ctypes.data, 4096, 0), (src.ctypes.data + 4096, 4096, 0)], "DRAM")
    r = a.get_xfer_descs(np.array([[dst.ctypes.data, 4096, 0], [dst.ctypes.data + 4096, 4096, 0]],
                                  dtype=np.uint64), "DRAM")
    h = a.initialize_xfer("WRITE", l, r, a.name, b"n\0tif")
    with pytest.raises(nb.nixlNotPostedError):
        a.check_xfer_state(h)
    assert a.transfer(h) in ("DONE", "PROC")
    assert wait(lambda: a.check_xfer_state(h) == "DONE")
    assert np.array_equal(src, dst)
    assert a.query_xfer_backend(h) == backend
    assert wait(lambda: a.check_remote_xfer_done(a.name, b"n\0t"))
    a.release_xfer_handle(h)
    a.release_xfer_handle(h)             # idempotent

    dst[:] = 0
    lp = a.prep_xfer_dlist("NIXL_INIT_AGENT", l)
    rp = a.prep_xfer_dlist(a.name, r)
    assert isinstance(lp, nixl_prepped_dlist_handle)
    h2 = a.make_prepped_xfer("WRITE", lp, np.array([1, 0]), rp, [1, 0], skip_desc_merge=True)
    assert isinstance(h2, nixl_xfer_handle)
    a.transfer(h2, b"second")
    assert wait(lambda: a.check_xfer_state(h2) == "DONE")
    assert np.array_equal(src, dst)
    assert wait(lambda: a.check_remote_xfer_done(a.name, b"cond", tag_is_prefix=False))
    a.transfer(h2)                       # the message persists
    assert wait(lambda: a.check_xfer_state(h2) == "DONE")
    assert wait(lambda: b"second" in a.update_notifs().get(a.name, []))
    with pytest.raises(KeyError):
        a.make_prepped_xfer("COPY", lp, [0], rp, [0])
    with pytest.raises(nb.nixlInvalidParamError):
        a.make_prepped_xfer("READ", lp, [5], rp, [0])
    a.release_xfer_handle(h2)
    a.release_dlist_handle(lp)
    a.release_dlist_handle(rp)
    a.deregister_memory(reg)
    with pytest.raises(nb.nixlNotFoundError):
        a.deregister_memory(reg)


def test_estimate_and_telemetry(make_agent, bufs):
    a = make_agent(capture_telemetry=True)
    src, dst = bufs(2, 4096)
    a.register_memory([(src.ctypes.data, 4096, 0, ""), (dst.ctypes.data, 4096, 0, "")], "DRAM")
    h = a.initialize_xfer("READ", a.get_xfer_descs([(dst.ctypes.data, 4096, 0)], "DRAM"),
                          a.get_xfer_descs([(src.ctypes.data, 4096, 0)], "DRAM"), a.name)
    try:
        dur, err, method = a.estimate_xfer_cost(h)
        assert method in ("ANALYTICAL_BACKEND", "UNKNOWN")
    except nb.nixlNotSupportedError:
        pass
    a.transfer(h)
    assert wait(lambda: a.check_xfer_state(h) == "DONE")
    t = a.get_xfer_telemetry(h)
    assert t.totalBytes == 4096 and t.descCount == 1 and t.xferDuration >= 0
    b = make_agent()
    b.register_memory([(src.ctypes.data, 4096, 0, ""), (dst.ctypes.data, 4096, 0, "")], "DRAM")
    h2 = b.initialize_xfer("READ", b.get_xfer_descs([(dst.ctypes.data, 4096, 0)], "DRAM"),
                           b.get_xfer_descs([(src.ctypes.data, 4096, 0)], "DRAM"), b.name)
    b.transfer(h2)
    with pytest.raises(nb.nixlNoTelemetryError):
        b.get_xfer_telemetry(h2)


def test_metadata_and_notifs_between_agents(make_agent, bufs):
    a, b = make_agent(), make_agent()
    (buf,) = bufs(1, 4096)
    reg = a.register_memory([(buf.ctypes.data, 4096, 0, "")], "DRAM")
    md = a.get_agent_metadata()
    assert isinstance(md, bytes)
    assert b.add_remote_agent(md) == a.name.encode()      # bytes, as in the reference
    assert b.check_remote_metadata(a.name)
    assert b.check_remote_metadata(a.name, b.get_xfer_descs([(buf.ctypes.data, 16, 0)], "DRAM"))
    assert not b.check_remote_metadata(a.name, b.get_xfer_descs([(8, 16, 0)], "DRAM"))
    b.make_connection(a.name)
    b.send_notif(a.name, b"\0hello\0world\0")
    b.send_notif(a.name, "text", backend="SHM")            # broken in the reference; works here
    b.send_notif(a.name, b"", backend=["SHM"])
    got = []
    assert wait(lambda: got.extend(a.get_new_notifs().get(b.name, [])) or len(got) >= 3)
    assert got == [b"\0hello\0world\0", b"text", b""]
    part = a.get_partial_agent_metadata(reg, inc_conn_info=True)
    assert isinstance(part, bytes) and len(part) > 0
    b.remove_remote_agent(a.name)
    b.remove_remote_agent("nobody")                          # never raises
    assert not b.check_remote_metadata(a.name)
    with pytest.raises(nb.nixlNotFoundError):
        b.send_notif(a.name, b"x")
    with pytest.raises(nb.nixlMismatchError):
        b.add_remote_agent(b"not metadata")
    with pytest.raises(nb.nixlNotFoundError):
        b.prep_xfer_dlist(a.name, [(buf.ctypes.data, 16, 0)], "DRAM")
    with pytest.raises(nb.nixlBackendError):
        make_agent(backends=[]).get_new_notifs()
    with pytest.raises(nb.nixlInvalidParamError):
        b.add_remote_agent(b.get_agent_metadata())           # our own name


def test_side_channel_in_process(make_agent, bufs):
    t = make_agent(enable_listen_thread=True, listen_port=0)
    port = t.get_listen_port()
    assert port > 0
    i = make_agent()
    (buf,) = bufs(1, 4096)
    reg = t.register_memory([(buf.ctypes.data, 4096, 0, "")], "DRAM")
    i.fetch_remote_metadata(t.name, "127.0.0.1", port)
    assert wait(lambda: i.check_remote_metadata(t.name))
    i.send_local_metadata("127.0.0.1", port)
    assert wait(lambda: t.check_remote_metadata(i.name))
    i.invalidate_local_metadata("127.0.0.1", port)
    assert wait(lambda: not t.check_remote_metadata(i.name))
    t.send_partial_agent_metadata(reg, True, [], "127.0.0.1", port, "label")  # queued
    with pytest.raises(nb.nixlInvalidParamError):
        i.send_local_metadata()                              # no address and no metadata server
    with pytest.raises(nb.nixlNotFoundError):
        i.get_listen_port()


def test_not_supported_and_query(make_agent, bufs):
    a = make_agent()
    with pytest.raises(nb.nixlNotSupportedError):
        a.prep_mem_view(a.get_xfer_descs([(1, 2, 0)], "DRAM"))
    with pytest.raises(nb.nixlNotSupportedError):
        a.release_mem_view(0)
    with pytest.raises(ValueError):
        a.query_memory([(0, 0, 0, "/tmp")], "POSIX", "FILE")
    (buf,) = bufs(1)
    with pytest.raises(nb.nixlNotSupportedError):
        a.query_memory([(buf.ctypes.data, 16, 0, "")], "SHM", "DRAM")


def test_handles_released_by_gc(make_agent, bufs, monkeypatch):
    a = make_agent()
    src, dst = bufs(2)
    a.register_memory([(src.ctypes.data, 4096, 0, ""), (dst.ctypes.data, 4096, 0, "")], "DRAM")
    released = []
    orig_x, orig_d = nixl_xfer_handle.release, nixl_prepped_dlist_handle.release
    monkeypatch.setattr(nixl_xfer_handle, "release", lambda s: (released.append("x"), orig_x(s)))
    monkeypatch.setattr(nixl_prepped_dlist_handle, "release",
                        lambda s: (released.append("d"), orig_d(s)))
    l = a.get_xfer_descs([(src.ctypes.data, 4096, 0)], "DRAM")
    r = a.get_xfer_descs([(dst.ctypes.data, 4096, 0)], "DRAM")
    for _ in range(2000):  # would leak requests (and eventually memory) without the finaliser
        h = a.initialize_xfer("WRITE", l, r, a.name)
        a.transfer(h)
        del h
    p = a.prep_xfer_dlist("", l)
    del p
    gc.collect()
    assert released.count("x") == 2000 and released.count("d") == 1
    h = a.initialize_xfer("WRITE", l, r, a.name)
    agent_binding = a.agent
    del a                                     # the handle keeps the binding alive
    gc.collect()
    agent_binding.postXferReq(h._handle)
    h.release()
    assert "released=True" in repr(h)


def test_str_and_bytes(make_agent, bufs):
    a, b = make_agent(), make_agent()
    (buf,) = bufs(1)
    reg = a.register_memory([(buf.ctypes.data, 4096, 0, "text meta")], "DRAM")
    assert reg[0][3] == b"text meta"                         # metaInfo comes back as bytes
    md = a.get_agent_metadata()
    assert b.agent.loadRemoteMD(md) == a.name.encode()
    b.send_notif(a.name.encode(), "é")                        # names and messages: str or bytes
    assert wait(lambda: a.update_notifs().get(b.name) == ["é".encode()])
    assert isinstance(next(iter(a.notifs)), str)             # keys are str
    assert b.check_remote_metadata(a.name.encode())
    assert a.check_remote_xfer_done(b.name, "é")


def test_gil_released_during_calls(make_agent, bufs):
    """A second Python thread makes progress while the first loops over binding calls."""
    import threading
    a = make_agent()
    src, dst = bufs(2, 1 << 20)
    a.register_memory([(src.ctypes.data, src.size, 0, ""), (dst.ctypes.data, dst.size, 0, "")],
                      "DRAM")
    h = a.initialize_xfer("WRITE", a.get_xfer_descs([(src.ctypes.data, src.size, 0)], "DRAM"),
                          a.get_xfer_descs([(dst.ctypes.data, dst.size, 0)], "DRAM"), a.name)
    stop = threading.Event()
    count = [0]

    def spin():
        while not stop.is_set():
            count[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    for _ in range(200):
        a.transfer(h)
        while a.check_xfer_state(h) != "DONE":
            pass
    stop.set()
    t.join()
    assert count[0] > 0


def test_repost_active_and_released_handles(make_agent):
    a = make_agent(backends=[])
    a.create_backend("SHM", {"async_threshold": "4096"})    # big transfers go to a worker
    n = 64 << 20
    src, dst = np.ones(n, dtype=np.uint8), np.zeros(n, dtype=np.uint8)
    a.register_memory([(src.ctypes.data, n, 0, ""), (dst.ctypes.data, n, 0, "")], "DRAM")
    h = a.initialize_xfer("WRITE", a.get_xfer_descs([(src.ctypes.data, n, 0)], "DRAM"),
                          a.get_xfer_descs([(dst.ctypes.data, n, 0)], "DRAM"), a.name)
    if a.transfer(h) == "PROC":
        with pytest.raises(nb.nixlRepostActiveError):
            a.transfer(h)
        if a.check_xfer_state(h) == "PROC":
            with pytest.raises(nb.nixlNoTelemetryError):    # telemetry is off, or not ready
                a.get_xfer_telemetry(h)
    assert wait(lambda: a.check_xfer_state(h) == "DONE")
    assert dst[-1] == 1
    h.release()
    with pytest.raises(nb.nixlInvalidParamError):
        a.check_xfer_state(h)
    with pytest.raises(nb.nixlInvalidParamError):
        a.transfer(h)


def test_raw_binding(bufs):
    """nixl._bindings.nixlAgent: the reference signatures and return conventions."""
    cfg = nb.nixlAgentConfig(False, False)
    a = nb.nixlAgent("raw_a", cfg)
    b = nb.nixlAgent("raw_b", nb.nixlAgentConfig())
    assert "SHM" in a.getAvailPlugins()
    params, mems = a.getPluginParams("SHM")
    assert isinstance(params, dict) and mems == ["DRAM_SEG", "VRAM_SEG"]
    ha, hb = a.createBackend("SHM", {}), b.createBackend("SHM", {})
    assert a.getBackendParams(ha)[1] == ["DRAM_SEG", "VRAM_SEG"] and a.getBackendName(ha) == "SHM"
    (buf,) = bufs(1)
    reg = nb.nixlRegDList(nb.DRAM_SEG, [(buf.ctypes.data, 4096, 0, b"")])
    assert a.registerMem(reg, [ha]) == nb.NIXL_SUCCESS
    assert b.loadRemoteMD(a.getLocalMD()) == b"raw_a"
    x = nb.nixlXferDList(nb.DRAM_SEG, [(buf.ctypes.data, 4096, 0)])
    assert b.checkRemoteMD("raw_a", x) == nb.NIXL_SUCCESS
    assert b.checkRemoteMD("nobody", x) == nb.NIXL_ERR_NOT_FOUND        # no exception
    assert b.genNotif("raw_a", b"m\0", [hb]) == nb.NIXL_SUCCESS
    seed = {"old": [b"x"]}
    got = {}
    assert wait(lambda: got.update(a.getNotifs(seed)) or "raw_b" in got)
    assert seed == {"old": [b"x"]} and got["old"] == [b"x"] and got["raw_b"] == [b"m\0"]
    assert b.invalidateRemoteMD("raw_a") == nb.NIXL_SUCCESS
    assert b.invalidateRemoteMD("raw_a") == nb.NIXL_ERR_NOT_FOUND        # no exception
    lp = a.prepXferDlist(x, [ha])                                       # local-side overload
    rp = a.prepXferDlist("raw_a", x, backend=[ha])
    req = a.makeXferReq(nb.NIXL_WRITE, lp, [0], rp, [0], "", [ha], skip_desc_merg=False)
    assert a.postXferReq(req) in (nb.NIXL_SUCCESS, nb.NIXL_IN_PROG)
    assert wait(lambda: a.getXferStatus(req) == nb.NIXL_SUCCESS)
    assert a.queryXferBackend(req) == ha
    assert a.releaseXferReq(req) == nb.NIXL_SUCCESS
    assert a.releasedDlistH(lp) == nb.NIXL_SUCCESS and a.releasedDlistH(rp) == nb.NIXL_SUCCESS
    assert a.deregisterMem(reg, [ha]) == nb.NIXL_SUCCESS
    with pytest.raises(TypeError):
        a.registerMem(x)                                              # wants a nixlRegDList


def test_agents_freed(make_agent):
    """Agents (with listener threads and sockets) release everything when collected."""
    import os
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        a = nixl_agent("transient", nixl_agent_config(False, True, 0, backends=["SHM"]))
        assert a.get_listen_port() > 0
        del a
        gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= before + 2
