#!/usr/bin/env python3
"""CUDA tensors between two processes: a prefill process hands KV-cache blocks to a decode one.

Each process holds a KV cache, one CUDA tensor [layers, blocks, tokens x heads x dim], and
registers it whole (register_memory(tensor): VRAM, devId = tensor.device.index). The decode
process (the target) listens on the side channel; the prefill process (this one, the initiator)
fetches its metadata, learns which blocks to fill from a notification, WRITEs its blocks there
as a list of per-layer views (get_xfer_descs of a list of tensors: one descriptor each), then
READs them back into a fresh tensor. Both sides check with torch.equal. Exit 0 and
"cuda_tensors: SUCCESS", or 77 where torch or a CUDA device is missing.

The block list travels as plain integers (pack_descs / unpack_descs): a notification is bytes
from another process, so the receiver checks them and never hands them to pickle.

    python3 cuda_tensors.py [--backend SHM] [--gpu N]      (the target uses --target_gpu)
"""
import argparse
import struct
import subprocess
import sys
import time

LAYERS, BLOCKS, BLOCK_ELEMS = 8, 32, 16 * 8 * 128    # block = 16 tokens x 8 heads x 128 dims
SENT = [3, 4, 9, 30]                                 # the decode side's free blocks
DEADLINE_S = 30
DESC = struct.Struct("<QQQ")                         # addr, len, dev_id


def pack_descs(descs):
    return b"".join(DESC.pack(*d) for d in descs)


def unpack_descs(data):
    """Descriptors from a peer's bytes: whole records only, one per block and layer at most."""
    if len(data) % DESC.size or len(data) // DESC.size > LAYERS * BLOCKS:
        raise ValueError(f"{len(data)} bytes are not a list of block descriptors")
    return [DESC.unpack_from(data, off) for off in range(0, len(data), DESC.size)]

try:
    import torch
except ImportError:
    print("cuda_tensors: skipped: torch is not installed")
    sys.exit(77)
from nixl._api import nixl_agent, nixl_agent_config  # noqa: E402


def blocks_of(cache, ids):
    """One contiguous view per (layer, block): what a KV connector moves."""
    return [cache[layer, b] for layer in range(LAYERS) for b in ids]


def prefill_data(device):
    g = torch.Generator().manual_seed(1234)       # both sides can recompute it
    return torch.randn(LAYERS, BLOCKS, BLOCK_ELEMS, generator=g).half().to(device)


def wait(what, cond):
    end = time.monotonic() + DEADLINE_S
    while not cond():
        if time.monotonic() > end:
            sys.exit(f"cuda_tensors: timed out waiting for {what}")
        time.sleep(0.001)


def decode(backend, gpu):
    dev = torch.device("cuda", gpu)
    agent = nixl_agent("decode", nixl_agent_config(enable_prog_thread=False,
                                                    enable_listen_thread=True, listen_port=0,
                                                    backends=[backend]))
    cache = torch.zeros(LAYERS, BLOCKS, BLOCK_ELEMS, dtype=torch.float16, device=dev)
    torch.cuda.synchronize(dev)      # the zeros are written before anyone else writes
    agent.register_memory(cache)
    print(f"PORT {agent.get_listen_port()}", flush=True)
    wait("the prefill metadata", lambda: agent.check_remote_metadata("prefill"))
    agent.send_notif("prefill", pack_descs(agent.get_xfer_descs(blocks_of(cache, SENT))))
    wait("the blocks", lambda: agent.check_remote_xfer_done("prefill", b"KV_WRITTEN"))
    want = prefill_data(dev)
    ok = all(torch.equal(cache[:, b], want[:, b]) for b in SENT)
    ok = ok and int(torch.count_nonzero(cache)) == int(torch.count_nonzero(want[:, SENT]))
    wait("the read-back", lambda: agent.check_remote_xfer_done("prefill", b"KV_READ"))
    print(f"decode: {'blocks verified' if ok else 'WRONG blocks'} on {dev}", flush=True)
    sys.exit(0 if ok else 1)


def transfer(agent, op, local, remote, notif):
    h = agent.initialize_xfer(op, agent.get_xfer_descs(local), remote, "decode", notif)
    agent.transfer(h)
    wait(op, lambda: agent.check_xfer_state(h) == "DONE")
    agent.release_xfer_handle(h)


def prefill(backend, gpu, target_gpu):
    me = [sys.executable, __file__, "--role", "decode", "--backend", backend,
          "--target_gpu", str(target_gpu)]
    child = subprocess.Popen(me, stdout=subprocess.PIPE, text=True)
    try:
        port = next(int(ln.split()[1]) for ln in child.stdout if ln.startswith("PORT "))
        dev = torch.device("cuda", gpu)
        agent = nixl_agent("prefill", nixl_agent_config(enable_prog_thread=False,
                                                         backends=[backend]))
        cache, back = prefill_data(dev), torch.zeros(LAYERS, BLOCKS, BLOCK_ELEMS,
                                                     dtype=torch.float16, device=dev)
        torch.cuda.synchronize(dev)
        agent.register_memory([cache, back])       # a list of tensors of one device
        agent.fetch_remote_metadata("decode", "127.0.0.1", port)
        agent.send_local_metadata("127.0.0.1", port)
        wait("the decode metadata", lambda: agent.check_remote_metadata("decode"))
        notes = []
        wait("the free blocks", lambda: notes.extend(agent.get_new_notifs().get("decode", []))
             or notes)
        remote = agent.get_xfer_descs(unpack_descs(notes[0]), "VRAM")

        transfer(agent, "WRITE", blocks_of(cache, SENT), remote, b"KV_WRITTEN")
        transfer(agent, "READ", blocks_of(back, SENT), remote, b"KV_READ")
        ok = all(torch.equal(back[:, b], cache[:, b]) for b in SENT)
        out, _ = child.communicate(timeout=DEADLINE_S)
        sys.stdout.write("".join(ln + "\n" for ln in out.splitlines() if ln.startswith("decode")))
    finally:
        if child.poll() is None:
            child.kill()
    moved = len(SENT) * LAYERS * BLOCK_ELEMS * 2
    if not ok or child.returncode != 0:
        sys.exit(f"cuda_tensors: FAILED (read-back {'ok' if ok else 'wrong'}, "
                 f"decode exit {child.returncode})")
    print(f"cuda_tensors: SUCCESS ({backend}: {len(SENT) * LAYERS} blocks, {moved} bytes, "
          f"cuda:{gpu} -> cuda:{target_gpu} and back, verified with torch.equal)")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--role", choices=["prefill", "decode"], default="prefill")
    p.add_argument("--backend", default="SHM")
    p.add_argument("--gpu", type=int, default=0)
    p.add_argument("--target_gpu", type=int, default=0)
    a = p.parse_args()
    if not torch.cuda.is_available():
        print("cuda_tensors: skipped: torch sees no CUDA device")
        sys.exit(77)
    if a.role == "decode":
        decode(a.backend, a.target_gpu)
    else:
        prefill(a.backend, a.gpu, a.target_gpu)


if __name__ == "__main__":
    main()
