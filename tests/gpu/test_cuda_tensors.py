#!/usr/bin/env python3
"""CUDA torch tensors between two processes through nixl._api and the SHM backend.

The test (the initiator) starts a copy of itself as the target and trades metadata with it over
the child's stdin and stdout (get_agent_metadata / add_remote_agent: no side channel). Both
register lists of CUDA tensors of several dtypes and odd sizes as they are (register_memory of a
list; VRAM, devId = tensor.device.index). The initiator then
  WRITEs its CUDA tensors into the target's        (notification WRITE_DONE),
  READs the target's CUDA tensors into CUDA tensors (READ_VRAM),
  READs the same into CPU tensors                   (READ_DONE),
and checks what it read with torch.equal; the target checks what was written as soon as the
WRITE's notification arrives, which must be after the data is visible to it. The target uses the
last GPU (the initiator GPU 0), so with two GPUs the tensors cross devices;
NIXL_TEST_TARGET_GPU picks another.

    test_cuda_tensors.py [--cpu]         run (exit 0 pass, 1 fail, 77 skip: no torch or CUDA)
    test_cuda_tensors.py --target [--cpu]  the child (reads the initiator's metadata on stdin)

--cpu puts every tensor in host memory (DRAM): the same two processes and checks, so that this
harness is exercised where there is no GPU (the python suite runs it so).
"""
import os
import subprocess
import sys
import time

SKIP = 77
DEADLINE_S = 60
# (dtype name, elements): sizes that are neither powers of two nor multiples of 16 bytes
SHAPES = [("float16", 1000), ("int8", 4097), ("float32", 65537), ("int64", 3),
          ("bfloat16", 1 << 20)]
INITIATOR, TARGET = "cuda_initiator", "cuda_target"


CPU = "--cpu" in sys.argv


def need_torch():
    try:
        import torch
    except ImportError:
        print("SKIP: torch is not installed")
        sys.exit(SKIP)
    if not CPU and not torch.cuda.is_available():
        print("SKIP: torch sees no CUDA device")
        sys.exit(SKIP)
    return torch


def pattern(torch, seed, device):
    """Tensors of SHAPES whose values depend on the seed, the tensor and the position."""
    out = []
    for i, (dtype, n) in enumerate(SHAPES):
        v = (torch.arange(n, dtype=torch.int64, device=device) * (2 * seed + 1) + 17 * i + seed)
        out.append((v % 113).to(getattr(torch, dtype)))
    return out


def zeros(torch, device):
    return [torch.zeros(n, dtype=getattr(torch, dtype), device=device) for dtype, n in SHAPES]


def make_agent(name):
    from nixl._api import nixl_agent, nixl_agent_config
    return nixl_agent(name, nixl_agent_config(enable_prog_thread=False, backends=["SHM"]))


def wait_for(who, what, cond):
    end = time.monotonic() + DEADLINE_S
    while not cond():
        if time.monotonic() > end:
            print(f"{who}: FAILED: timed out waiting for {what}", flush=True)
            sys.exit(1)
        time.sleep(0.0005)


def sync(torch, dev):
    """torch fills tensors on its own stream, and nixl copies on streams of its own."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def same(torch, got, want):
    return all(torch.equal(g, w) for g, w in zip(got, want))


def run_target(torch):
    gpu = 0 if CPU else int(os.environ.get("NIXL_TEST_TARGET_GPU", torch.cuda.device_count() - 1))
    dev = torch.device("cpu") if CPU else torch.device("cuda", gpu)
    agent = make_agent(TARGET)
    wdst, rsrc = zeros(torch, dev), pattern(torch, 2, dev)
    sync(torch, dev)
    regs = [agent.register_memory(wdst), agent.register_memory(rsrc)]
    if any(r.getType() != agent.nixl_mems["DRAM" if CPU else "VRAM"] or r[0][2] != gpu
           for r in regs):
        print(f"target: FAILED: tensors on {dev} were not registered as its memory", flush=True)
        sys.exit(1)
    print("MD", agent.get_agent_metadata().hex(), flush=True)
    for tag, ts in (("WDST", wdst), ("RSRC", rsrc)):
        print(tag, agent.get_serialized_descs(agent.get_xfer_descs(ts)).hex(), flush=True)
    line = sys.stdin.readline().split()
    if len(line) != 2 or line[0] != "MD":
        print(f"target: FAILED: no metadata from the initiator ({line!r})", flush=True)
        sys.exit(1)
    agent.add_remote_agent(bytes.fromhex(line[1]))

    wait_for("target", "WRITE_DONE", lambda: agent.check_remote_xfer_done(INITIATOR, b"WRITE_DONE"))
    if not same(torch, wdst, pattern(torch, 1, dev)):    # at once: the notification came after
        print("target: FAILED: the written tensors differ", flush=True)
        sys.exit(1)
    wait_for("target", "READ_DONE", lambda: agent.check_remote_xfer_done(INITIATOR, b"READ_DONE"))
    if not same(torch, rsrc, pattern(torch, 2, dev)):
        print("target: FAILED: a READ changed the source", flush=True)
        sys.exit(1)
    for r in regs:
        agent.deregister_memory(r)
    print(f"target: ok ({dev})", flush=True)


def read_tagged(proc, tags):
    """The child's "TAG hex" lines; the "nixl" logger's INFO lines on stdout are skipped."""
    got = {}
    for line in proc.stdout:
        parts = line.split()
        if len(parts) == 2 and parts[0] in tags:
            got[parts[0]] = bytes.fromhex(parts[1])
            if len(got) == len(tags):
                return got
    raise SystemExit(f"initiator: FAILED: the target ended early ({proc.wait()})")


def move(agent, op, local, remote, notif):
    h = agent.initialize_xfer(op, agent.get_xfer_descs(local), remote, TARGET, notif)
    agent.transfer(h)
    wait_for("initiator", f"{op} {notif!r}", lambda: agent.check_xfer_state(h) == "DONE")
    agent.release_xfer_handle(h)


def run_initiator(torch):
    dev = torch.device("cpu") if CPU else torch.device("cuda", 0)
    agent = make_agent(INITIATOR)
    wsrc, rdst, hdst = pattern(torch, 1, dev), zeros(torch, dev), zeros(torch, "cpu")
    sync(torch, dev)
    regs = [agent.register_memory(ts) for ts in (wsrc, rdst, hdst)]
    child = subprocess.Popen([sys.executable, __file__, "--target"] + sys.argv[1:],
                             stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        peer = read_tagged(child, ("MD", "WDST", "RSRC"))
        if agent.add_remote_agent(peer["MD"]) != TARGET.encode():
            raise SystemExit("initiator: FAILED: the metadata is not the target's")
        child.stdin.write(f"MD {agent.get_agent_metadata().hex()}\n")
        child.stdin.flush()
        wdst, rsrc = agent.deserialize_descs(peer["WDST"]), agent.deserialize_descs(peer["RSRC"])

        move(agent, "WRITE", wsrc, wdst, b"WRITE_DONE")
        move(agent, "READ", rdst, rsrc, b"READ_VRAM")
        move(agent, "READ", hdst, rsrc, b"READ_DONE")
        want = pattern(torch, 2, dev)
        if not same(torch, rdst, want):
            raise SystemExit("initiator: FAILED: CUDA tensors READ from the target differ")
        if not same(torch, hdst, [w.cpu() for w in want]):
            raise SystemExit("initiator: FAILED: CPU tensors READ from the target differ")
        rest = child.communicate(timeout=DEADLINE_S)[0]
        sys.stdout.write("".join(line + "\n" for line in rest.splitlines() if "target:" in line))
        if child.returncode != 0:
            raise SystemExit(f"initiator: FAILED: the target exited {child.returncode}")
    finally:
        if child.poll() is None:
            child.kill()
    for r in regs:
        agent.deregister_memory(r)
    agent.remove_remote_agent(TARGET)
    size = sum(t.numel() * t.element_size() for t in wsrc)
    mem = "DRAM" if CPU else "VRAM"
    print(f"test_cuda_tensors: ok ({len(SHAPES)} tensors, {size} bytes: WRITE {mem}->{mem}, "
          f"READ {mem}->{mem} and {mem}->DRAM, verified with torch.equal)", flush=True)


def main():
    torch = need_torch()    # nixl itself must import: a broken build is a failure, not a skip
    if "--target" in sys.argv:
        run_target(torch)
    else:
        run_initiator(torch)


if __name__ == "__main__":
    main()
