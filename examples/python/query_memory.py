#!/usr/bin/env python3
"""Query memory: ask a storage backend (POSIX) about files before registering them.

Creates a file, asks POSIX about it and about a missing path, and checks the answers: a dict for
the file (with its size when the backend reports one), None for the missing path.
Exit status 0 and "query_memory: SUCCESS" when the answers are right; 77 when no backend that
answers queries can be loaded here.

    python3 query_memory.py [--backend POSIX]
"""
import argparse
import os
import sys
import tempfile

from nixl._api import nixl_agent, nixl_agent_config
from nixl._bindings import nixlNotFoundError, nixlNotSupportedError


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--backend", default="POSIX")
    backend = p.parse_args().backend
    agent = nixl_agent("query", nixl_agent_config(enable_prog_thread=False, backends=[]))
    try:
        agent.create_backend(backend)
    except (nixlNotFoundError, nixlNotSupportedError) as e:
        print(f"query_memory: SKIPPED: backend {backend} is not available here ({e})")
        sys.exit(77)

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "data.bin")
        with open(path, "wb") as f:
            f.write(b"x" * 12345)
        missing = os.path.join(d, "missing.bin")
        try:
            resp = agent.query_memory([(0, 0, 0, path), (0, 0, 0, missing)], backend,
                                      mem_type="FILE")
        except nixlNotSupportedError as e:
            print(f"query_memory: SKIPPED: {backend} does not answer queries ({e})")
            sys.exit(77)
    print(f"answers: {resp}")
    ok = (len(resp) == 2 and isinstance(resp[0], dict) and resp[1] is None and
          str(resp[0].get("size", "12345")) == "12345")
    if not ok:
        print("query_memory: FAILED: unexpected answers")
        sys.exit(1)
    print(f"query_memory: SUCCESS (backend {backend}: existing file described, missing file None)")


if __name__ == "__main__":
    main()
