"""Descriptor inputs (lists of tuples, numpy, torch) and the descriptor-list classes."""
import pickle
import sys

import numpy as np
import pytest

import nixl._bindings as nb
from conftest import data_path


def test_list_of_tuples(make_agent):
    a = make_agent()
    x = a.get_xfer_descs([(0x1000, 16, 0), (0x2000, 32, 1)], "DRAM")
    assert isinstance(x, nb.nixlXferDList)
    assert len(x) == 2 and x.descCount() == 2 and not x.isEmpty()
    assert x[0] == (0x1000, 16, 0) and x[-1] == (0x2000, 32, 1)
    assert x.getType() == nb.DRAM_SEG
    r = a.get_reg_descs([(0x1000, 16, 0, "meta"), (0x2000, 32, 0, b"b\0in")], "VRAM")
    assert r[0][3] == b"meta" and r[1][3] == b"b\0in" and r.getType() == nb.VRAM_SEG
    assert a.get_remote_descs([(1, 2, 3, "peer")], "DRAM")[0] == (1, 2, 3, "peer")


def test_errors(make_agent):
    a = make_agent()
    with pytest.raises(IndexError):
        a.get_xfer_descs([], "DRAM")
    assert a.get_xfer_descs([(1, 2, 0)]) is None             # mem_type required
    assert a.get_xfer_descs([(1, 2)], "DRAM") is None         # wrong arity
    assert a.get_reg_descs([(1, 2, 0)], "DRAM") is None
    with pytest.raises(KeyError):
        a.get_xfer_descs([(1, 2, 0)], "NOPE")
    assert a.get_xfer_descs("junk", "DRAM") is None
    assert a.get_xfer_descs(np.zeros((2, 2), dtype=np.uint64), "DRAM") is None
    assert a.get_xfer_descs(np.zeros((2, 3), dtype=np.float64), "DRAM") is None
    assert a.get_xfer_descs(np.zeros((2, 3), dtype=np.int64)) is None
    reg = a.get_reg_descs([(1, 2, 0, "")], "DRAM")
    assert a.get_xfer_descs(reg) is None                      # the other list type
    x = a.get_xfer_descs([(1, 2, 0)], "DRAM")
    assert a.get_xfer_descs(x) is x
    with pytest.raises(IndexError):
        x[1]
    with pytest.raises(IndexError):
        x.remDesc(5)
    with pytest.raises(TypeError):
        nb.nixlXferDList(nb.DRAM_SEG, [[1, 2, 3]])
    with pytest.raises(ValueError):
        nb.nixlXferDList(nb.DRAM_SEG, [(1, 2)])
    with pytest.raises(TypeError):
        nb.nixlXferDList(nb.DRAM_SEG, np.zeros((3, 3), dtype=np.int32))
    with pytest.raises(nb.nixlNotFoundError):
        x.index((9, 9, 9))


def test_numpy_no_copy_per_element(make_agent):
    a = make_agent()
    arr = np.arange(300, dtype=np.uint64).reshape(100, 3)
    x = a.get_xfer_descs(arr, "DRAM")
    assert len(x) == 100 and x[7] == tuple(int(v) for v in arr[7])
    neg = np.array([[-1, 5, 0]], dtype=np.int64)
    assert a.get_xfer_descs(neg, "DRAM")[0] == (2**64 - 1, 5, 0)
    fortran = np.asfortranarray(arr)
    assert a.get_xfer_descs(fortran, "DRAM") == x             # made contiguous
    r = a.get_reg_descs(arr.astype(np.int64), "DRAM")
    assert len(r) == 100 and r[0][3] == b""


def test_list_methods():
    x = nb.nixlXferDList(nb.DRAM_SEG)
    assert x.isEmpty() and len(x) == 0
    x.addDesc((1, 2, 3))
    x.append((4, 5, 6))
    assert list(x) == [(1, 2, 3), (4, 5, 6)]
    assert x.index((4, 5, 6)) == 1
    x[0] = (7, 8, 9)
    assert x[0] == (7, 8, 9)
    x.remDesc(0)
    assert list(x) == [(4, 5, 6)]
    y = nb.nixlXferDList(nb.DRAM_SEG, [(4, 5, 6)])
    assert x == y and not (x != y)
    x.clear()
    assert len(x) == 0 and x != y
    z = nb.nixlXferDList(nb.DRAM_SEG, 3)
    assert list(z) == [(0, 0, 0)] * 3
    r = nb.nixlRegDList(nb.FILE_SEG, [(0, 0, 5, "rw:/tmp/x")])
    t = r.trim()
    assert isinstance(t, nb.nixlXferDList) and t[0] == (0, 0, 5) and t.getType() == nb.FILE_SEG
    assert "nixlRegDList" in repr(r)
    assert not hasattr(x, "trim")
    rem = nb.nixlRemoteDList(nb.DRAM_SEG, [(1, 2, 0, "a")])
    with pytest.raises(TypeError):
        pickle.dumps(rem)


def test_pickle_roundtrip(make_agent):
    a = make_agent()
    x = a.get_xfer_descs([(0x1000, 16, 0), (0x2000, 32, 1)], "DRAM")
    assert a.deserialize_descs(a.get_serialized_descs(x)) == x
    r = a.get_reg_descs([(0x1000, 16, 0, b"m\0x")], "FILE")
    r2 = pickle.loads(pickle.dumps(r))
    assert r2 == r and r2[0][3] == b"m\0x" and r2.getType() == nb.FILE_SEG
    empty = nb.nixlXferDList(nb.DRAM_SEG)
    assert pickle.loads(pickle.dumps(empty)) == empty


@pytest.mark.parametrize("name,cls,count", [("xfer_dlist_3.pickle", "nixlXferDList", 3),
                                            ("reg_dlist_2.pickle", "nixlRegDList", 2)])
def test_reference_pickles(name, cls, count):
    """The reference's pickles load (through its module name) and our state is byte-identical."""
    raw = open(data_path(name), "rb").read()
    import nixl_cu12  # noqa: F401  (our alias package for the reference module name)
    obj = pickle.loads(raw)
    assert type(obj).__name__ == cls and len(obj) == count
    ours = pickle.dumps(obj, protocol=4)
    state = obj.__getstate__()
    assert state in raw and state in ours
    if cls == "nixlXferDList":
        assert list(obj) == [(0x7fcffe800000, 4096, 0), (0x7fcffe801000, 100, 0),
                             (0x7fcffe810000, 8192, 0)]
    else:
        assert [d[3] for d in obj] == [b"x", b"meta-two"]
    # Re-encoding with the reference's module name gives the reference's bytes exactly.
    same = pickle.dumps(obj, protocol=4)
    body = same.replace(b"\x8c\x0enixl._bindings", b"\x8c\x13nixl_cu12._bindings")
    assert body[11:] == raw[11:]


def test_malformed_state():
    x = nb.nixlXferDList(nb.DRAM_SEG)
    with pytest.raises(nb.nixlMismatchError):
        x.__setstate__(b"nixlSerDes|junk")
    with pytest.raises(nb.nixlMismatchError):
        x.__setstate__(b"garbage")


def test_state_of_the_other_kind():
    """A list loads only its own kind's state (both go through libnixl's codec)."""
    r = nb.nixlRegDList(nb.FILE_SEG)
    r.addDesc((0, 0, 7, b"ro:/tmp/x\x00y"))
    x = nb.nixlXferDList(nb.DRAM_SEG)
    x.addDesc((0x1000, 16, 0))
    with pytest.raises(nb.nixlMismatchError, match="registration list"):
        x.__setstate__(r.__getstate__())
    with pytest.raises(nb.nixlMismatchError, match="transfer list"):
        r.__setstate__(x.__getstate__())
    # a failed load leaves the list empty, not half-filled
    assert len(x) == 0 and len(r) == 0
    r.__setstate__(nb.nixlRegDList(nb.FILE_SEG, [(0, 0, 7, b"ro:/tmp/x\x00y")]).__getstate__())
    assert r[0] == (0, 0, 7, b"ro:/tmp/x\x00y") and r.getType() == nb.FILE_SEG


def test_torch_inputs(make_agent):
    if "torch" not in sys.modules:
        pytest.importorskip("torch")
    import torch
    a = make_agent()
    t = torch.arange(16, dtype=torch.float32)
    x = a.get_xfer_descs(t)
    assert x[0] == (t.data_ptr(), 64, 0) and x.getType() == nb.DRAM_SEG
    ts = [torch.zeros(4, dtype=torch.int64), torch.zeros(8, dtype=torch.int8)]
    r = a.get_reg_descs(ts)
    assert len(r) == 2 and r[1] == (ts[1].data_ptr(), 8, 0, b"")
    assert a.get_xfer_descs(torch.zeros(4, 4)[:, 1]) is None     # not contiguous
    assert a._tensor_mem_type(t) == "DRAM"
    reg = a.register_memory(t)
    a.deregister_memory(reg)


def test_torch_cuda_inputs(make_agent):
    """CUDA tensors: VRAM, devId = the GPU index, registered and deregistered (a GPU needed)."""
    if "torch" not in sys.modules:
        pytest.importorskip("torch")
    import torch
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device for torch")
    a = make_agent()
    dev = torch.cuda.device_count() - 1
    t = torch.arange(1000, dtype=torch.float16, device=f"cuda:{dev}")
    x = a.get_xfer_descs(t)
    assert x.getType() == nb.VRAM_SEG and x[0] == (t.data_ptr(), 2000, dev)
    assert a._tensor_mem_type(t) == "VRAM"
    ts = [t, torch.zeros(7, dtype=torch.int8, device=t.device)]
    reg = a.register_memory(ts)
    assert reg.getType() == nb.VRAM_SEG and reg[1] == (ts[1].data_ptr(), 7, dev, b"")
    a.deregister_memory(reg)
    assert a.get_xfer_descs([t, torch.zeros(4)]) is None           # cuda and cpu mixed
    assert a.get_xfer_descs(torch.zeros(4, 4, device=t.device).t()) is None  # not contiguous


class _Device:
    def __init__(self, kind, index=None):
        self.type, self.index = kind, index

    def __eq__(self, other):
        return (self.type, self.index) == (other.type, other.index)


class _FakeTensor:
    """What nixl._api reads of a torch tensor, so that the CUDA paths run without torch or a
    GPU: the tensor's bytes are never touched by descriptor conversion."""

    def __init__(self, ptr, numel, itemsize, kind="cuda", index=0, contiguous=True):
        self.device = _Device(kind, index if kind == "cuda" else None)
        self._ptr, self._numel, self._itemsize, self._contiguous = ptr, numel, itemsize, contiguous

    def data_ptr(self):
        return self._ptr

    def numel(self):
        return self._numel

    def element_size(self):
        return self._itemsize

    def is_contiguous(self):
        return self._contiguous


@pytest.fixture
def fake_torch(monkeypatch):
    """A stand-in `torch` in sys.modules (nixl._api never imports torch, it looks there)."""
    import types
    mod = types.ModuleType("torch")
    mod.Tensor = _FakeTensor
    monkeypatch.setitem(sys.modules, "torch", mod)
    return mod


def test_cuda_tensor_descs_without_gpu(make_agent, fake_torch):
    """The reference's rules for CUDA tensors (section 10.6), checked on stand-in tensors."""
    a = make_agent()
    t = _FakeTensor(0x7f0000001000, 1000, 2, index=1)
    x = a.get_xfer_descs(t)
    assert x.getType() == nb.VRAM_SEG and len(x) == 1 and x[0] == (0x7f0000001000, 2000, 1)
    assert a._tensor_mem_type(t) == "VRAM"
    u = _FakeTensor(0x7f0000100000, 7, 1, index=1)
    r = a.get_reg_descs([t, u])
    assert r.getType() == nb.VRAM_SEG and r[1] == (0x7f0000100000, 7, 1, b"")
    assert a.get_xfer_descs([t, u], "DRAM").getType() == nb.VRAM_SEG   # the device decides
    assert a.get_xfer_descs([t, _FakeTensor(0x1000, 4, 4, index=0)]) is None   # two GPUs
    assert a.get_xfer_descs([t, _FakeTensor(0x1000, 4, 4, kind="cpu")]) is None
    assert a.get_reg_descs(_FakeTensor(0x1000, 4, 4, contiguous=False)) is None
    assert a.get_xfer_descs([t, (0x1000, 4, 0)]) is None             # a tensor then a tuple
    c = a.get_xfer_descs(_FakeTensor(0x2000, 16, 4, kind="cpu"))
    assert c.getType() == nb.DRAM_SEG and c[0] == (0x2000, 64, 0)


def test_cuda_tensor_register_without_gpu(make_agent, fake_torch):
    """Registering a CUDA tensor where there is no GPU fails and says why; nothing stays."""
    import ctypes
    try:
        ctypes.CDLL("libcuda.so.1")
        pytest.skip("a CUDA driver is here: the no-GPU error is not reachable")
    except OSError:
        pass
    a = make_agent()
    with pytest.raises(Exception) as e:
        a.register_memory(_FakeTensor(0x7f0000001000, 1024, 4))
    assert type(e.value).__name__ == "nixlNotSupportedError" and "CUDA driver" in str(e.value)


def test_torch_not_imported_by_package():
    import subprocess
    code = "import sys, nixl._api; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_list_pinned_during_calls(make_agent):
    """A list being read by a call that runs without the GIL cannot be resized meanwhile."""
    import threading
    a = make_agent()
    x = a.get_xfer_descs(np.zeros((50000, 3), dtype=np.uint64), "DRAM")
    added, stop = [0], threading.Event()

    def mutate():
        while not stop.is_set():
            try:
                x.append((0, 0, 0))
                added[0] += 1
            except BufferError:
                pass

    t = threading.Thread(target=mutate)
    t.start()
    for _ in range(50):
        a.check_remote_metadata(a.name, x)
    stop.set()
    t.join()
    assert len(x) == 50000 + added[0]
