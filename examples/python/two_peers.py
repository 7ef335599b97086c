#!/usr/bin/env python3
"""Two peers over the side channel: a target and an initiator process.

Run without arguments: starts the target (listening on a free port), then the initiator, and
waits for both. The target sends its descriptors to the initiator in a notification; the
initiator WRITEs a pattern into the target and READs another one back, each with a notification
that the target checks. Exit status 0 and "two_peers: SUCCESS" when every byte is right.

A notification is bytes from another process: the descriptors travel as plain integers
(pack_descs / unpack_descs), which the receiver checks and never executes. (deserialize_descs
would also be safe, since it loads only descriptor-list classes, but nothing here needs pickle.)

    python3 two_peers.py [--backend SHM|UCX]
    python3 two_peers.py --role target [--backend B]          (prints "PORT <n>")
    python3 two_peers.py --role initiator --port N [--backend B]
"""
import argparse
import struct
import subprocess
import sys
import time

import numpy as np

from nixl._api import nixl_agent, nixl_agent_config

SIZE = 1 << 20
DEADLINE_S = 30


DESC = struct.Struct("<QQQ")  # addr, len, dev_id
MAX_DESCS = 1024


def pack_descs(descs):
    return b"".join(DESC.pack(*d) for d in descs)


def unpack_descs(data):
    """Descriptors from a peer's bytes: whole records only, and not too many."""
    if len(data) % DESC.size or len(data) // DESC.size > MAX_DESCS:
        raise ValueError(f"{len(data)} bytes are not a list of descriptors")
    return [DESC.unpack_from(data, off) for off in range(0, len(data), DESC.size)]


def fail(who, why):
    print(f"{who}: FAILED: {why}", flush=True)
    sys.exit(1)


def wait_for(who, what, cond):
    end = time.monotonic() + DEADLINE_S
    while not cond():
        if time.monotonic() > end:
            fail(who, f"timed out waiting for {what}")
        time.sleep(0.001)


def run_target(backend):
    conf = nixl_agent_config(enable_prog_thread=False, enable_listen_thread=True, listen_port=0,
                             backends=[backend])
    agent = nixl_agent("target", conf)
    dst = np.zeros(SIZE, dtype=np.uint8)                       # the initiator WRITEs here
    src = (np.arange(SIZE, dtype=np.uint64) * 7 % 251).astype(np.uint8)  # and READs this
    agent.register_memory([(dst.ctypes.data, SIZE, 0, ""), (src.ctypes.data, SIZE, 0, "")], "DRAM")
    print(f"PORT {agent.get_listen_port()}", flush=True)

    wait_for("target", "the initiator's metadata", lambda: agent.check_remote_metadata("initiator"))
    descs = [(dst.ctypes.data, SIZE, 0), (src.ctypes.data, SIZE, 0)]
    agent.send_notif("initiator", b"DESCS:" + pack_descs(descs))

    wait_for("target", "WRITE notification",
             lambda: agent.check_remote_xfer_done("initiator", b"WRITE_DONE"))
    expect = (np.arange(SIZE, dtype=np.uint64) * 13 % 256).astype(np.uint8)
    if not np.array_equal(dst, expect):
        fail("target", "the written data is wrong")
    wait_for("target", "READ notification",
             lambda: agent.check_remote_xfer_done("initiator", b"READ_DONE"))
    agent.send_notif("initiator", b"BYE")
    print("target: data verified", flush=True)


def run_initiator(backend, port):
    conf = nixl_agent_config(enable_prog_thread=False, backends=[backend])
    agent = nixl_agent("initiator", conf)
    wsrc = (np.arange(SIZE, dtype=np.uint64) * 13 % 256).astype(np.uint8)
    rdst = np.zeros(SIZE, dtype=np.uint8)
    local = agent.register_memory([(wsrc.ctypes.data, SIZE, 0, ""),
                                   (rdst.ctypes.data, SIZE, 0, "")], "DRAM")
    agent.fetch_remote_metadata("target", "127.0.0.1", port)
    agent.send_local_metadata("127.0.0.1", port)
    wait_for("initiator", "the target's metadata", lambda: agent.check_remote_metadata("target"))

    msgs = []

    def got_descs():
        for m in agent.get_new_notifs().get("target", []):
            msgs.append(m)
        return any(m.startswith(b"DESCS:") for m in msgs)

    wait_for("initiator", "the target's descriptors", got_descs)
    try:
        remote = unpack_descs(next(m for m in msgs if m.startswith(b"DESCS:"))[6:])
    except ValueError as e:
        fail("initiator", f"bad descriptor notification: {e}")
    if len(remote) != 2:
        fail("initiator", "bad descriptor notification")
    rdst_desc, rsrc_desc = remote[0], remote[1]
    trimmed = local.trim()

    for op, loc, rem, tag in (("WRITE", trimmed[0], rdst_desc, b"WRITE_DONE"),
                              ("READ", trimmed[1], rsrc_desc, b"READ_DONE")):
        h = agent.initialize_xfer(op, agent.get_xfer_descs([loc], "DRAM"),
                                  agent.get_xfer_descs([rem], "DRAM"), "target", tag)
        state = agent.transfer(h)
        wait_for("initiator", op, lambda: agent.check_xfer_state(h) == "DONE")
        agent.release_xfer_handle(h)
        print(f"initiator: {op} done ({state} at post)", flush=True)

    expect = (np.arange(SIZE, dtype=np.uint64) * 7 % 251).astype(np.uint8)
    if not np.array_equal(rdst, expect):
        fail("initiator", "the read data is wrong")
    wait_for("initiator", "the target's goodbye",
             lambda: agent.check_remote_xfer_done("target", b"BYE"))
    agent.remove_remote_agent("target")
    print("initiator: data verified", flush=True)


def run_both(backend):
    me = [sys.executable, __file__, "--backend", backend]
    target = subprocess.Popen(me + ["--role", "target"], stdout=subprocess.PIPE, text=True)
    try:
        # the "nixl" logger writes its INFO lines to stdout too: skip to ours
        line = ""
        for line in target.stdout:
            if line.startswith("PORT "):
                break
        else:
            fail("two_peers", f"target did not start (last line {line!r})")
        port = int(line.split()[1])
        init = subprocess.run(me + ["--role", "initiator", "--port", str(port)],
                              timeout=DEADLINE_S * 2)
        out, _ = target.communicate(timeout=DEADLINE_S)
        sys.stdout.write(out)
    finally:
        if target.poll() is None:
            target.kill()
    if init.returncode != 0 or target.returncode != 0:
        fail("two_peers", f"initiator exit {init.returncode}, target exit {target.returncode}")
    print(f"two_peers: SUCCESS (backend {backend}: WRITE and READ of {SIZE} bytes verified)")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--role", choices=["target", "initiator"])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--backend", default="SHM")
    a = p.parse_args()
    if a.role == "target":
        run_target(a.backend)
    elif a.role == "initiator":
        run_initiator(a.backend, a.port)
    else:
        run_both(a.backend)


if __name__ == "__main__":
    main()
