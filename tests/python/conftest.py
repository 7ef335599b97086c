"""Shared fixtures of the Python suite (run by meson test --suite python)."""
import itertools
import os

import numpy as np
import pytest

from nixl._api import nixl_agent, nixl_agent_config

_names = itertools.count()


def plugin_loads(name):
    a = nixl_agent(f"probe{next(_names)}", nixl_agent_config(enable_prog_thread=False, backends=[]))
    try:
        a.get_plugin_params(name)
        return name in a.plugin_b_options
    finally:
        del a


HAVE_UCX = plugin_loads("UCX")
BACKENDS = ["SHM"] + (["UCX"] if HAVE_UCX else [])


@pytest.fixture
def make_agent():
    """make_agent(backends=["SHM"], **config) -> a fresh agent with a unique name."""
    made = []

    def make(backends=("SHM",), name=None, **kw):
        kw.setdefault("enable_prog_thread", False)
        a = nixl_agent(name or f"agent{next(_names)}",
                       nixl_agent_config(backends=list(backends), **kw))
        made.append(a)
        return a

    yield make
    made.clear()


@pytest.fixture
def bufs():
    """bufs(n, size) -> n zeroed numpy byte arrays that stay alive for the test."""
    keep = []

    def make(n, size=4096, fill=0):
        out = [np.full(size, fill, dtype=np.uint8) for _ in range(n)]
        keep.extend(out)
        return out

    yield make


def data_path(name):
    return os.path.join(os.environ.get("NIXL_TEST_DATA", ""), name)


def wait(cond, timeout=20.0):
    import time
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.0005)
    return True
