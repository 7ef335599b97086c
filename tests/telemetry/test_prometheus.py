#!/usr/bin/env python3
"""The `prometheus` telemetry exporter scraped by a real Prometheus server.

    test_prometheus.py CASE WRITER

mp: two processes behind one prometheus_mp endpoint (below).
single: Prometheus (Debian's package) is started on a free loopback port with a generated
configuration that scrapes the writer's endpoint every second; the writer (tests/tools/
telem_writer, a real agent) moves known bytes; the values read back through Prometheus's HTTP
query API must equal the bytes and counts moved, the target must be healthy (Prometheus's own
parser accepted the exposition), and promtool must find nothing but the lint about the
reference's "_us" names. Exit 77 when prometheus is not installed.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

BLOCK = 4096


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


class Prometheus:
    def __init__(self, tmp, target_port):
        self.port = free_port()
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: nixl\n    scrape_interval: 1s\n"
                    "    scrape_timeout: 900ms\n"
                    f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n")
        self.log = open(os.path.join(tmp, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={tmp}/tsdb",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            check(self.proc.poll() is None, "prometheus exited: " + self.tail())
            try:
                if "Ready" in http_get(f"http://127.0.0.1:{self.port}/-/ready", 1):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        fail("prometheus did not become ready: " + self.tail())

    def tail(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()[-2000:]

    def query(self, expr):
        """The value of an instant query with one result, as a float; None when empty."""
        q = urllib.parse.urlencode({"query": expr})
        r = json.loads(http_get(f"http://127.0.0.1:{self.port}/api/v1/query?{q}"))
        check(r["status"] == "success", f"query {expr}: {r}")
        res = r["data"]["result"]
        if not res:
            return None
        check(len(res) == 1, f"query {expr}: {len(res)} series")
        return float(res[0]["value"][1])

    def wait_for(self, expr, want, timeout=30):
        deadline = time.time() + timeout
        got = None
        while time.time() < deadline:
            got = self.query(expr)
            if got == want:
                return
            time.sleep(0.5)
        fail(f"{expr} = {got}, expected {want}")

    def targets(self):
        r = json.loads(http_get(f"http://127.0.0.1:{self.port}/api/v1/targets"))
        return r["data"]["activeTargets"]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def promtool_check(text):
    """promtool's linter on the exposition: only the lint about the reference's series names
    ending in _us (abbreviated units) is accepted; a parse error is not."""
    if not shutil.which("promtool"):
        print("promtool not installed: exposition check left to the server's scrape")
        return
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True)
    out = (r.stdout + r.stderr).strip().splitlines()
    allowed = ("agent_xfer_time_us metric names should not contain abbreviated units",
               "agent_xfer_post_time_us metric names should not contain abbreviated units")
    others = [line for line in out if line.strip() not in allowed]
    check(r.returncode in (0, 3) and not others, f"promtool: exit {r.returncode}: {out}")


def case_single(writer):
    if not shutil.which("prometheus"):
        print("SKIP: prometheus is not installed (Debian package prometheus)")
        sys.exit(77)
    n, errors, name = 37, 3, "prom-single"
    with tempfile.TemporaryDirectory(prefix="nixl-prom-") as tmp:
        port = free_port()
        env = dict(os.environ, NIXL_TELEMETRY_ENABLE="y", NIXL_TELEMETRY_EXPORTER="prometheus",
                   NIXL_TELEMETRY_PROMETHEUS_PORT=str(port), NIXL_TELEMETRY_PROMETHEUS_LOCAL="y",
                   NIXL_TELEMETRY_RUN_INTERVAL="20", TELEM_WRITER_ERRORS=str(errors))
        env.pop("NIXL_TELEMETRY_DIR", None)
        prom = Prometheus(tmp, port)
        w = subprocess.Popen([writer, name, str(n), "60000", "0", "0"], env=env,
                             stdout=subprocess.PIPE, text=True)
        try:
            check(w.stdout.readline() == "paused\n", "the writer did not start")
            sel = f'{{job="nixl",agent_name="{name}"}}'
            prom.wait_for(f"agent_tx_bytes_total{sel}", n * BLOCK)
            check(prom.query(f"agent_tx_requests_num_total{sel}") == n, "tx requests")
            check(prom.query(f"agent_rx_bytes_total{sel}") == 0, "rx bytes")
            check(prom.query(f"agent_memory_registered_total{sel}") == 2 * BLOCK, "registered")
            check(prom.query(f"agent_memory_registered_last_bytes{sel}") == 2 * BLOCK,
                  "registered, last")
            check(prom.query(f"agent_tx_last_bytes{sel}") == BLOCK, "tx last bytes")
            check(prom.query(f"agent_xfer_time_us_count{sel}") == n, "histogram count")
            check(prom.query(f"agent_xfer_post_time_us_count{sel}") == n, "post histogram")
            inf = f'agent_xfer_time_us_bucket{{job="nixl",agent_name="{name}",le="+Inf"}}'
            check(prom.query(inf) == n, "+Inf bucket")
            total = prom.query(f"agent_xfer_time_total{sel}")
            check(prom.query(f"agent_xfer_time_us_sum{sel}") == total, "histogram sum")
            err = f'agent_errors_total{{job="nixl",agent_name="{name}",status="not_found"}}'
            check(prom.query(err) == errors, "not_found errors")
            check(prom.query(f'sum(agent_errors_total{sel})') == errors, "all errors")
            check(prom.query(f'count(agent_errors_total{sel})') == 12, "12 error statuses")
            check(prom.query(f'count(agent_xfer_time_us_bucket{sel})') == 19, "18 bounds + Inf")
            host = socket.gethostname()
            check(prom.query(f'count(agent_tx_bytes_total{{hostname="{host}"}})') == 1,
                  "hostname label")
            check(prom.query('up{job="nixl"}') == 1, "target up")
            t = prom.targets()
            check(len(t) == 1 and t[0]["health"] == "up" and not t[0]["lastError"],
                  f"target: {t}")
            text = http_get(f"http://127.0.0.1:{port}/metrics")
            promtool_check(text)
            try:
                http_get(f"http://127.0.0.1:{port}/other")
                fail("/other answered")
            except urllib.error.HTTPError as e:
                check(e.code == 404, f"/other: {e.code}")
        finally:
            w.kill()
            w.wait()
            prom.stop()
    print("ok: single")


def case_mp(writer):
    """Two processes behind one endpoint (prometheus_mp): both agents' series, each with its
    pid; a stopped process's store reaped after the TTL and written again when it resumes; the
    serving process killed, the other one taking over."""
    if not shutil.which("prometheus"):
        print("SKIP: prometheus is not installed (Debian package prometheus)")
        sys.exit(77)
    with tempfile.TemporaryDirectory(prefix="nixl-prom-mp-") as tmp:
        port = free_port()
        mdir = os.path.join(tmp, "mp")
        os.mkdir(mdir)
        env = dict(os.environ, NIXL_TELEMETRY_ENABLE="y", NIXL_TELEMETRY_EXPORTER="prometheus_mp",
                   NIXL_TELEMETRY_PROMETHEUS_PORT=str(port), NIXL_TELEMETRY_PROMETHEUS_LOCAL="y",
                   NIXL_TELEMETRY_MULTIPROC_DIR=mdir, NIXL_TELEMETRY_MP_STALE_TTL="2",
                   NIXL_TELEMETRY_RUN_INTERVAL="50")
        env.pop("NIXL_TELEMETRY_DIR", None)
        prom = Prometheus(tmp, port)
        procs = {}
        try:
            for name, n, rank in (("mp-a", 11, "0"), ("mp-b", 23, "1")):
                p = subprocess.Popen([writer, name, str(n), "120000", "0", "0"],
                                     env=dict(env, LOCAL_RANK=rank), stdout=subprocess.PIPE,
                                     text=True)
                check(p.stdout.readline() == "paused\n", f"writer {name} did not start")
                procs[name] = p
            a, b = procs["mp-a"], procs["mp-b"]
            prom.wait_for('agent_tx_bytes_total{agent_name="mp-a"}', 11 * BLOCK)
            prom.wait_for('agent_tx_bytes_total{agent_name="mp-b"}', 23 * BLOCK)
            check(prom.query(f'agent_tx_requests_num_total{{agent_name="mp-b",pid="{b.pid}",'
                             'local_rank="1",agent_instance="0"}') == 23, "mp-b labels")
            check(prom.query(f'agent_xfer_time_us_count{{pid="{a.pid}",local_rank="0"}}') == 11,
                  "mp-a histogram")
            check(prom.query('count(agent_tx_bytes_total{job="nixl"})') == 2, "two agents")
            check(os.path.exists(os.path.join(mdir, f"nixl-owner.127.0.0.1:{port}.lock")),
                  "the owner lock file")
            # b stops ticking: its store is reaped after the TTL, and comes back on resume
            b.send_signal(signal.SIGSTOP)
            prom.wait_for('count(agent_tx_bytes_total{job="nixl"})', 1, timeout=20)
            check(not any(f.startswith(f"nixl-store.{b.pid}.") for f in os.listdir(mdir)),
                  "the stopped process's store is still there")
            b.send_signal(signal.SIGCONT)
            prom.wait_for('agent_tx_bytes_total{agent_name="mp-b"}', 23 * BLOCK, timeout=20)
            # a (the serving process: it came first) dies; b takes the endpoint over
            a.kill()
            a.wait()
            prom.wait_for('count(agent_tx_bytes_total{job="nixl"})', 1, timeout=30)
            prom.wait_for('agent_tx_bytes_total{agent_name="mp-b"}', 23 * BLOCK)
            prom.wait_for('up{job="nixl"}', 1)
            check(prom.query('count(agent_tx_bytes_total{agent_name="mp-a"})') is None,
                  "the dead process's series stayed")
            promtool_check(http_get(f"http://127.0.0.1:{port}/metrics"))
            # hostile store files (anyone who may write the directory can make them): a short
            # one, garbage of the right size, and a copy of b's store whose agent name is
            # quotes, backslashes and newlines without a NUL; the scrape goes on, and stays
            # valid exposition with the name escaped
            real = next(f for f in os.listdir(mdir) if f.startswith(f"nixl-store.{b.pid}."))
            with open(os.path.join(mdir, real), "rb") as f:
                store = bytearray(f.read())
            with open(os.path.join(mdir, "nixl-store.short"), "wb") as f:
                f.write(store[:100])
            with open(os.path.join(mdir, "nixl-store.garbage"), "wb") as f:
                f.write(os.urandom(len(store)))
            forged = bytearray(store)
            forged[40:40 + 256] = (b'x"\n\\' * 64)[:256]
            with open(os.path.join(mdir, "nixl-store.forged"), "wb") as f:
                f.write(forged)
            text = http_get(f"http://127.0.0.1:{port}/metrics")
            check('agent_name="x\\"\\n\\\\x' in text, "the forged store's name, escaped")
            promtool_check(text)
        finally:
            for p in procs.values():
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
            prom.stop()
    print("ok: mp")


def main():
    case, writer = sys.argv[1:3]
    globals()["case_" + case](writer)


if __name__ == "__main__":
    main()
