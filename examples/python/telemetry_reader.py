#!/usr/bin/env python3
"""Read an agent's telemetry ring (the BUFFER exporter's file) with nothing but the standard library.

The file <NIXL_TELEMETRY_DIR>/<agent name> is a 40-byte header (write position u64, read position
u64, version i32, expected version i32, capacity u64, mask u64; little-endian) followed by
`capacity` events of 16 bytes (id u32, 4 padding bytes, value u64). The agent writes at the write
position; a reader takes events from the read position up to it and stores the new read position,
so reading consumes. docs/telemetry.md has the event names and units.

    python3 telemetry_reader.py [--dir DIR] [--follow] [--interval S] AGENT|FILE

Without --follow: one JSON line per event name present (count, sum, min, max).
With --follow: one JSON line per event as it arrives, until interrupted.
"""
import argparse
import json
import mmap
import os
import struct
import sys
import time

VERSION = 4
HEADER = struct.Struct("<QQiiQQ")  # write, read, version, expected version, capacity, mask
EVENT = struct.Struct("<I4xQ")     # id, padding, value
NAMES = [
    "agent_tx_bytes", "agent_rx_bytes", "agent_tx_requests_num", "agent_rx_requests_num",
    "agent_memory_registered", "agent_memory_deregistered", "agent_xfer_time",
    "agent_xfer_post_time", "agent_err_not_posted", "agent_err_invalid_param",
    "agent_err_backend", "agent_err_not_found", "agent_err_mismatch", "agent_err_not_allowed",
    "agent_err_repost_active", "agent_err_unknown", "agent_err_not_supported",
    "agent_err_remote_disconnect", "agent_err_canceled", "agent_err_no_telemetry",
    "agent_telemetry_events_dropped",
]


class Ring:
    """One reader of one ring file."""

    def __init__(self, path):
        fd = os.open(path, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            if size < HEADER.size:
                raise ValueError(f"{path}: not a telemetry ring ({size} bytes)")
            self.map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        _, _, version, _, capacity, mask = HEADER.unpack_from(self.map, 0)
        if version != VERSION:
            raise ValueError(f"{path}: ring version {version}, this reader reads {VERSION}")
        if capacity < 2 or capacity & (capacity - 1) or mask != capacity - 1 or \
                HEADER.size + capacity * EVENT.size > size:
            raise ValueError(f"{path}: corrupt header (capacity {capacity}, mask {mask})")
        self.mask = mask

    def take(self):
        """The events waiting, oldest first, as (id, value); consumes them.

        The file is another process's: both positions are masked with the capacity checked at
        open (so every read stays in the file), and one call takes at most capacity - 1
        events (a full ring), however the positions are set."""
        write, read = struct.unpack_from("<QQ", self.map, 0)
        write &= self.mask
        read &= self.mask
        out = []
        while read != write and len(out) < self.mask:
            out.append(EVENT.unpack_from(self.map, HEADER.size + read * EVENT.size))
            read = (read + 1) & self.mask
        # x86-64 stores of 8 aligned bytes are atomic; the writer only reads this field
        struct.pack_into("<Q", self.map, 8, read)
        return out

    def close(self):
        self.map.close()


def name_of(event_id):
    return NAMES[event_id] if event_id < len(NAMES) else f"unknown_{event_id}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("target", help="agent name (in --dir) or a path containing '/'")
    p.add_argument("--dir", default=os.environ.get("NIXL_TELEMETRY_DIR"))
    p.add_argument("--follow", action="store_true")
    p.add_argument("--interval", type=float, default=0.1)
    a = p.parse_args()
    if "/" in a.target:
        path = a.target
    elif a.dir:
        path = os.path.join(a.dir, a.target)
    else:
        p.error("no directory: pass --dir or set NIXL_TELEMETRY_DIR")
    try:
        ring = Ring(path)
    except (OSError, ValueError) as e:
        print(f"telemetry_reader: {e}", file=sys.stderr)
        return 1
    agent = os.path.basename(path)
    if not a.follow:
        stats = {}
        for event_id, value in ring.take():
            s = stats.setdefault(event_id, {"count": 0, "sum": 0, "min": value, "max": value})
            s["count"] += 1
            s["sum"] += value
            s["min"] = min(s["min"], value)
            s["max"] = max(s["max"], value)
        for event_id in sorted(stats):
            print(json.dumps({"agent": agent, "id": event_id, "event": name_of(event_id),
                              **stats[event_id]}))
        ring.close()
        return 0
    try:
        while True:
            for event_id, value in ring.take():
                print(json.dumps({"agent": agent, "time": time.time(), "id": event_id,
                                  "event": name_of(event_id), "value": value}), flush=True)
            time.sleep(a.interval)
    except KeyboardInterrupt:
        pass
    ring.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
