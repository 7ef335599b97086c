#!/usr/bin/env python3
"""The telemetry ring end to end: a real agent process (telem_writer) writes it, the reader tool
(tools/nixl-telemetry) and the example Python reader read it.

    test_telemetry_tool.py CASE WRITER TOOL PY_READER
CASE: layout (the bytes against docs/telemetry.md's table), live (a reader started before the
writer reads while transfers run), late (a reader started after the writer ended), overflow (a
ring filled past capacity: drops counted), errors (missing file, other version, bad arguments),
python (the example reader), hostile (positions a writer set outside the ring: both readers
mask them and end), shrink (the file truncated under nixl-telemetry --follow while it reads: it
says so and maps the file again, instead of dying of SIGBUS).
"""
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time

BLOCK = 4096
TX_BYTES, TX_REQS, MEM_REG, XFER_TIME, POST_TIME, DROPPED = 0, 2, 4, 6, 7, 20


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


class Case:
    def __init__(self, writer, tool, py_reader, tmp):
        self.writer, self.tool, self.py_reader, self.dir = writer, tool, py_reader, tmp
        self.env = dict(os.environ, NIXL_TELEMETRY_ENABLE="y", NIXL_TELEMETRY_DIR=tmp)
        for k in ("NIXL_TELEMETRY_EXPORTER", "NIXL_TELEMETRY_BUFFER_SIZE",
                  "NIXL_TELEMETRY_RUN_INTERVAL", "NIXL_TELEMETRY_ENABLED_METRICS"):
            self.env.pop(k, None)

    def write(self, name, n1, pause_ms=0, n2=0, delay_us=0, wait=True, **env):
        e = dict(self.env, **env)
        p = subprocess.Popen([self.writer, name, str(n1), str(pause_ms), str(n2), str(delay_us)],
                             env=e, stdout=subprocess.PIPE, text=True)
        if wait:
            check(p.wait(timeout=30) == 0, f"writer {name} failed")
        return p

    def summary(self, name):
        r = subprocess.run([self.tool, "--json", name], env=self.env, capture_output=True,
                           text=True, timeout=30)
        check(r.returncode == 0, f"nixl-telemetry {name}: {r.returncode} {r.stderr}")
        rows = [json.loads(line) for line in r.stdout.splitlines()]
        return {row["id"]: row for row in rows}


def case_layout(c):
    """Read the file with the documented offsets only, without consuming; then the tool."""
    c.write("layout", 10)
    path = os.path.join(c.dir, "layout")
    data = open(path, "rb").read()
    write, read, version, expected, capacity, mask = struct.unpack_from("<QQiiQQ", data, 0)
    check((version, expected) == (4, 4), f"version {version}/{expected}")
    check(capacity == 4096 and mask == 4095, f"capacity {capacity} mask {mask}")
    check(len(data) == 40 + 16 * capacity, f"file size {len(data)}")
    check(read == 0, f"read position {read}")
    check(oct(os.stat(path).st_mode & 0o777) == oct(0o644 & ~current_umask()), "file mode")
    events = []
    for i in range(write):
        off = 40 + 16 * i
        event_id, pad, value = struct.unpack_from("<IIQ", data, off)
        check(pad == 0, f"padding of event {i} is {pad}")
        events.append((event_id, value))
    # one registration of two 4 KiB buffers, then per transfer: post time, time, bytes, count
    check(events[0] == (MEM_REG, 2 * BLOCK), f"first event {events[0]}")
    body = events[1:]
    check(len(body) == 40, f"{len(body)} transfer events, expected 40")
    for i in range(10):
        ids = [e[0] for e in body[4 * i:4 * i + 4]]
        check(ids == [POST_TIME, XFER_TIME, TX_BYTES, TX_REQS], f"batch {i}: {ids}")
        check(body[4 * i + 2][1] == BLOCK and body[4 * i + 3][1] == 1, f"batch {i} values")
        check(body[4 * i][1] <= body[4 * i + 1][1], f"batch {i}: post time > transfer time")
    s = c.summary("layout")
    check(s[TX_BYTES]["count"] == 10 and s[TX_BYTES]["sum"] == 10 * BLOCK, f"summary {s}")
    check(s[TX_BYTES]["event"] == "agent_tx_bytes" and s[TX_BYTES]["unit"] == "bytes", "names")
    check(struct.unpack_from("<Q", open(path, "rb").read(), 8)[0] == write, "not consumed")
    check(c.summary("layout") == {}, "a second read found events again")


def current_umask():
    m = os.umask(0)
    os.umask(m)
    return m


def follow(c, name, *extra):
    """The reader in follow mode, its output going to files (read while it runs)."""
    out = tempfile.NamedTemporaryFile("w+", dir=c.dir, prefix="out-", delete=False)
    err = tempfile.NamedTemporaryFile("w+", dir=c.dir, prefix="err-", delete=False)
    p = subprocess.Popen([c.tool, "--follow", "--json", "--interval", "20", *extra, name],
                         env=c.env, stdout=out, stderr=err, text=True)
    p.out_path, p.err_path = out.name, err.name
    out.close()
    err.close()
    return p


def lines_so_far(reader):
    with open(reader.out_path) as f:
        return [line for line in f.read().splitlines()]


def collect(reader, writer_proc, settle=0.5):
    check(writer_proc.wait(timeout=60) == 0, "writer failed")
    time.sleep(settle)  # the last flush (agent destroy) and one polling period
    reader.send_signal(signal.SIGTERM)
    reader.wait(timeout=10)
    err = open(reader.err_path).read()
    check(reader.returncode == 0, f"reader exit {reader.returncode}: {err}")
    return [json.loads(line) for line in lines_so_far(reader)], err


def totals(events):
    t = {}
    for e in events:
        t.setdefault(e["id"], [0, 0])
        t[e["id"]][0] += 1
        t[e["id"]][1] += e["value"]
    return t


def case_live(c):
    """The reader starts first (the file does not exist yet) and reads while transfers run."""
    n = 200
    reader = follow(c, "live")
    time.sleep(0.2)
    w = c.write("live", n, delay_us=5000, wait=False, NIXL_TELEMETRY_RUN_INTERVAL="10")
    # events arrive while the writer still runs (it needs >= 1 s for its transfers)
    deadline = time.time() + 20
    while not lines_so_far(reader) and w.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    check(lines_so_far(reader) and w.poll() is None, "no event before the writer ended")
    events, err = collect(reader, w)
    check("waiting" in err, f"the reader did not say it waited: {err!r}")
    t = totals(events)
    check(t[TX_REQS] == [n, n], f"tx requests {t.get(TX_REQS)}")
    check(t[TX_BYTES] == [n, n * BLOCK], f"tx bytes {t.get(TX_BYTES)}")
    check(t[XFER_TIME][0] == n and t[POST_TIME][0] == n, "times")
    check(DROPPED not in t, "drops with a reader keeping up")


def case_late(c):
    """A reader started mid-run and one started after the writer ended miss nothing."""
    n = 150
    w = c.write("late", n, delay_us=4000, wait=False, NIXL_TELEMETRY_RUN_INTERVAL="10")
    time.sleep(0.3)
    check(w.poll() is None, "writer ended too early for the mid-run case")
    reader = follow(c, "late")
    events, _ = collect(reader, w)
    t = totals(events)
    check(t[TX_REQS] == [n, n] and t[TX_BYTES][1] == n * BLOCK, f"mid-run reader: {t}")
    c.write("late2", 30)
    s = c.summary("late2")  # the writer is gone; its file stays
    check(s[TX_REQS]["sum"] == 30 and s[MEM_REG]["sum"] == 2 * BLOCK, f"after the end: {s}")


def case_overflow(c):
    """A ring of 16 slots (15 usable), nobody reading while 40 transfers complete: 15 events
    stay, the other 25 are counted and reported once a reader made room."""
    env = dict(NIXL_TELEMETRY_BUFFER_SIZE="16", NIXL_TELEMETRY_RUN_INTERVAL="5",
               NIXL_TELEMETRY_ENABLED_METRICS="agent_tx_requests_num,agent_telemetry_*")
    w = c.write("over", 40, pause_ms=3000, n2=1, wait=False, **env)
    check(w.stdout.readline() == "paused\n", "the writer did not pause")
    time.sleep(0.2)  # 40 flush periods: whatever fits is in the ring
    s = c.summary("over")
    check(w.poll() is None, "the writer's pause ended before the ring was read")
    check(s[TX_REQS]["count"] == 15 and DROPPED not in s, f"full ring: {s}")
    check(w.wait(timeout=30) == 0, "writer failed")
    s = c.summary("over")
    check(s[DROPPED]["count"] == 1 and s[DROPPED]["sum"] == 25, f"drop report: {s}")
    check(s[TX_REQS]["count"] == 1, f"after the report: {s}")


def case_errors(c):
    r = subprocess.run([c.tool, "nobody"], env=c.env, capture_output=True, text=True)
    check(r.returncode == 1 and "nobody" in r.stderr, f"missing file: {r.returncode} {r.stderr}")
    bad = os.path.join(c.dir, "v3")
    with open(bad, "wb") as f:
        f.write(struct.pack("<QQiiQQ", 0, 0, 3, 3, 16, 15) + bytes(16 * 16))
    r = subprocess.run([c.tool, bad], env=c.env, capture_output=True, text=True)
    check(r.returncode == 1 and "version 3" in r.stderr, f"version: {r.stderr}")
    with open(bad, "wb") as f:
        f.write(struct.pack("<QQiiQQ", 0, 0, 4, 4, 1024, 1023) + bytes(16 * 16))
    r = subprocess.run([c.tool, bad], env=c.env, capture_output=True, text=True)
    check(r.returncode == 1 and "corrupt" in r.stderr, f"short file: {r.stderr}")
    for args in (["--interval", "0", "x"], ["--count", "-1", "x"], [], ["--bogus", "x"]):
        r = subprocess.run([c.tool, *args], env=c.env, capture_output=True, text=True)
        check(r.returncode == 2, f"{args}: exit {r.returncode}")
    env = dict(c.env)
    env.pop("NIXL_TELEMETRY_DIR")
    r = subprocess.run([c.tool, "x"], env=env, capture_output=True, text=True)
    check(r.returncode == 2 and "NIXL_TELEMETRY_DIR" in r.stderr, "no dir")


def case_python(c):
    c.write("py", 12)
    r = subprocess.run([sys.executable, c.py_reader, "py"], env=c.env, capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 0, f"python reader: {r.stderr}")
    rows = {row["id"]: row for row in map(json.loads, r.stdout.splitlines())}
    check(rows[TX_BYTES]["sum"] == 12 * BLOCK and rows[TX_REQS]["count"] == 12, f"{rows}")
    check(rows[MEM_REG]["event"] == "agent_memory_registered", "names")
    check(c.summary("py") == {}, "the python reader did not consume")
    bad = os.path.join(c.dir, "v5")
    with open(bad, "wb") as f:
        f.write(struct.pack("<QQiiQQ", 0, 0, 5, 5, 16, 15) + bytes(16 * 16))
    r = subprocess.run([sys.executable, c.py_reader, bad], capture_output=True, text=True)
    check(r.returncode == 1 and "version 5" in r.stderr, f"python reader, version: {r.stderr}")


def case_hostile(c):
    """A write position with high bits set and a read position past the capacity: both readers
    take the events between the masked positions and end (the Python reader used to loop
    forever on an unmasked write position)."""
    path = os.path.join(c.dir, "hostile")
    events = b"".join(struct.pack("<IIQ", TX_BYTES, 0, 100 + i) for i in range(8))
    for reader in ([c.tool, "--json"], [sys.executable, c.py_reader]):
        with open(path, "wb") as f:
            f.write(struct.pack("<QQiiQQ", (1 << 40) | 5, (1 << 50) | 2, 4, 4, 8, 7) + events)
        r = subprocess.run([*reader, path], env=c.env, capture_output=True, text=True,
                           timeout=20)
        check(r.returncode == 0, f"{reader[0]}: {r.returncode} {r.stderr}")
        rows = {row["id"]: row for row in map(json.loads, r.stdout.splitlines())}
        check(rows[TX_BYTES]["count"] == 3 and rows[TX_BYTES]["sum"] == 102 + 103 + 104,
              f"{reader[0]}: {rows}")
        with open(path, "rb") as f:
            _, read = struct.unpack("<QQ", f.read(16))
        check(read == 5, f"{reader[0]}: read position {read}, not 5")


def case_shrink(c):
    """A large ring read with --follow into a pipe we do not drain yet (so the reader is in the
    middle of it), then the file cut to its header: the next read past the end faults, the
    reader reports it, maps the file again and finds it corrupt (exit 1), not SIGBUS."""
    path = os.path.join(c.dir, "shrink")
    cap = 1 << 16
    with open(path, "wb") as f:
        f.write(struct.pack("<QQiiQQ", cap - 1, 0, 4, 4, cap, cap - 1))
        f.write(struct.pack("<IIQ", TX_BYTES, 0, 7) * cap)
    p = subprocess.Popen([c.tool, "--follow", "--json", path], env=c.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = p.stdout.readline()
    check(json.loads(first)["value"] == 7, f"first event: {first!r}")
    os.truncate(path, 40)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        fail("the reader did not end after the file shrank")
    check(p.returncode == 1, f"exit {p.returncode} (-{signal.SIGBUS} is SIGBUS): {err}")
    check("shrank while it was read" in err and "corrupt header" in err, f"stderr: {err}")
    check(0 < len(out.splitlines()) < cap - 1, "events read")


def main():
    case, writer, tool, py_reader = sys.argv[1:5]
    with tempfile.TemporaryDirectory(prefix="nixl-telem-") as tmp:
        globals()["case_" + case](Case(writer, tool, py_reader, tmp))
    print("ok:", case)


if __name__ == "__main__":
    main()
