"""A malicious pickle handed to deserialize_descs runs nothing; the descriptor lists of this
package and of the reference still load. Run by meson (suite 'security') with PYTHONPATH at
the built package; exit 0 passed, 1 failed."""
import os
import pickle
import sys
import tempfile

from nixl import _bindings as nb
from nixl._api import nixl_agent, nixl_agent_config


class Payload:
    """What an attacker sends: unpickling it would call os.system."""

    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def expect_refused(agent, data, what):
    try:
        agent.deserialize_descs(data)
    except pickle.UnpicklingError as e:
        print(f"refused {what}: {e}")
        return
    sys.exit(f"FAIL: {what} was loaded")


def main():
    agent = nixl_agent("sec-pickle", nixl_agent_config(backends=[]))
    marker = os.path.join(tempfile.mkdtemp(), "owned")
    expect_refused(agent, pickle.dumps(Payload(f"touch {marker}")), "os.system")
    if os.path.exists(marker):
        sys.exit("FAIL: the payload ran")
    # Other names of our own module are refused too: only the list classes are resolved.
    expect_refused(agent, b"\x80\x04\x8c\x0enixl._bindings\x8c\x09nixlAgent\x93.", "nixlAgent")
    expect_refused(agent, pickle.dumps(print), "builtins.print")
    # What the package itself writes, and the reference's pickles (module nixl_cu12._bindings).
    x = agent.get_xfer_descs([(0x1000, 16, 0), (0x2000, 32, 1)], "DRAM")
    assert agent.deserialize_descs(agent.get_serialized_descs(x)) == x
    r = agent.get_reg_descs([(0x1000, 16, 0, b"meta")], "DRAM")
    assert agent.deserialize_descs(pickle.dumps(r)) == r
    data = os.environ.get("NIXL_TEST_DATA", os.path.join(os.path.dirname(__file__), "..", "data"))
    for name, cls in (("xfer_dlist_3.pickle", nb.nixlXferDList),
                      ("reg_dlist_2.pickle", nb.nixlRegDList)):
        with open(os.path.join(data, name), "rb") as f:
            obj = agent.deserialize_descs(f.read())
        assert isinstance(obj, cls), type(obj)
    print("malicious pickles refused; descriptor lists load")


if __name__ == "__main__":
    main()
