"""The descriptor codec against hostile bytes: the fuzz corpus replayed (tests/fuzz/corpus/python,
every file and every truncation), a short fuzzing run, the harness shown able to fail, and the
inputs the fuzzer found, each refused quickly. The fuzzer runs in a child process: it installs a
permanent audit hook."""
import os
import pickle
import subprocess
import sys
import time

import pytest

from nixl._pickle import loads_descs

FUZZ = os.path.join(os.environ.get("NIXL_TEST_DATA", os.path.join(os.path.dirname(__file__),
                                                                  "..", "data")), "..", "fuzz")
SCRIPT = os.path.join(FUZZ, "fuzz_python_descs.py")
CORPUS = os.path.join(FUZZ, "corpus", "python")


def fuzz(*args, env=None):
    e = dict(os.environ, NIXL_LOG_LEVEL="WARN", **(env or {}))
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          env=e, timeout=120)


def test_corpus_replay():
    r = fuzz("--replay", CORPUS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "each with all its truncations" in r.stdout


def test_short_fuzz(tmp_path):
    new = tmp_path / "new"
    new.mkdir()
    r = fuzz("-runs=3000", "-max_total_time=30", f"-artifact_prefix={tmp_path}/", str(new), CORPUS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Done 3000 runs" in r.stdout


def test_harness_catches_plain_pickle():
    """With pickle.loads in place of the restricted unpickler the replay must fail."""
    r = fuzz("--replay", CORPUS, env={"NIXL_FUZZ_UNSAFE_SELFTEST": "1"})
    assert r.returncode != 0
    assert "code ran" in r.stderr or "module was imported" in r.stderr, r.stderr


@pytest.mark.parametrize("name,data", [
    # LONG_BINPUT 10**9: CPython would allocate and clear a 8-GB memo (24 s, 5 GB RSS)
    ("memo index", b"\x80\x04N\x72\x00\xca\x9a\x3b."),
    # the list class called with a size of 10**12 through REDUCE
    ("reduce", b"\x80\x04\x8c\x0enixl._bindings\x8c\rnixlXferDList\x93K\x00"
               b"\x8a\x05\x00\x10\xa5\xd4\xe8\x86R."),
    # BYTEARRAY8 of 2**40 bytes in a 14-byte pickle
    ("bytearray8", b"\x80\x05\x96" + (2**40).to_bytes(8, "little") + b"abc."),
    # os.system through INST (protocol 0)
    ("inst", b"(S'true'\nios\nsystem\n."),
])
def test_found_inputs_refused_fast(name, data):
    t = time.monotonic()
    with pytest.raises(pickle.UnpicklingError):
        loads_descs(data)
    assert time.monotonic() - t < 1.0, name


def test_own_pickles_still_load(make_agent):
    from nixl import _bindings
    x = _bindings.nixlXferDList(0, [(0x1000, 64, 0)])
    for proto in (3, 4, 5):  # protocol 2 encodes bytes through _codecs.encode: refused
        assert loads_descs(pickle.dumps(x, protocol=proto)) == x
