#!/usr/bin/env python3
"""nixlbench end to end: flag errors, the local runtime (a spawned target), the ASIO runtime
with two processes, a target killed mid-run, --json / --compare, and VRAM segments (their
errors without a GPU, SHM transfers with one).

    test_nixlbench.py CASE NIXLBENCH     CASE: flags | local | asio | killed | json | posix | etcd
                                               | vram | obj | azure

Exit 0 on success, 1 on failure, 77 (skip) when what the case needs is missing.
"""
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

CI = ["--total_buffer_size", "80000000", "--start_block_size", "16384", "--max_block_size",
      "16384", "--start_batch_size", "4", "--max_batch_size", "4"]
HEADER = ("Block Size (B)      Batch Size     B/W (GB/Sec)   Avg Lat. (us)  Avg Prep (us)  "
          "P99 Prep (us)  Avg Post (us)  P99 Post (us)  Avg Tx (us)    P99 Tx (us)")
ROW = re.compile(r"^16384 {15}4 {14}\d+\.\d{6} +(\d+\.\d +){7}$", re.M)
NB = ""


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def run(args, timeout=60, env=None):
    p = subprocess.run([NB] + args, capture_output=True, text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def expect(args, rc, needle):
    got, out, err = run(args)
    if got != rc or needle not in err:
        fail(f"{args}: rc {got} (want {rc}), stderr {err!r} lacks {needle!r}\n{out}")


def check_table(out, what):
    if "NIXLBench Configuration" not in out or "-" * 160 not in out:
        fail(f"{what}: no config block:\n{out}")
    if HEADER not in out:
        fail(f"{what}: no header row:\n{out}")
    if not ROW.search(out):
        fail(f"{what}: no 16384 x 4 row:\n{out}")


def case_flags():
    expect(["--num_iters=5"], 2, "did you mean '--num_iter'")
    expect(["--op_type=COPY"], 2, "--op_type")
    expect(["--num_iter=ten"], 2, "--num_iter")
    expect(["--num_iter"], 2, "needs a value")
    expect(["--check_consistency=perhaps"], 2, "true or false")
    expect(["--prepared_xfer", "--reregister_mem"], 2, "cannot be combined")
    expect(["--same_block", "--check_consistency"], 2, "--same_block and --check_consistency")
    expect(["--max_block_size=1G", "--total_buffer_size=1M"], 2, "exceeds total_buffer_size")
    expect(["--start_block_size=8K", "--max_block_size=4K"], 2, "start_block_size")
    expect(["--asio_port=70000"], 2, "65535")
    expect(["--runtime_type=ASIO", "--etcd_endpoints=http://127.0.0.1:2379"], 2, "contradict")
    expect(["--compare=SHM,NOPE"], 2, "not a backend")
    expect(["stray"], 2, "unexpected argument")
    expect(["--etcd_endpoints=http://127.0.0.1:1"], 1, "etcd http://127.0.0.1:1/v3/")
    rc, out, err = run(["--backend=GDS"] + CI)
    if rc == 0 or "GDS" not in err:
        fail(f"--backend=GDS: rc {rc}, stderr {err!r}")
    expect(["--backend=POSIX", "--posix_api_type=SPDK"] + CI, 2, "--posix_api_type")
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write("num_iters = 3\n")
    expect(["--config_file", f.name], 2, ":1: unknown flag '--num_iters'")
    with open(f.name, "w") as g:
        g.write('backend = "SHM"\nnum_iter = 7\nwarmup_iter = 1\nmax_block_size = "8K"\n')
    rc, out, err = run(["--config_file", f.name, "--num_iter=9"])
    os.unlink(f.name)
    if rc != 0 or not re.search(r"Num iter \(--num_iter=N\) +: 9\n", out) or \
            not re.search(r"^8192 ", out, re.M):
        fail(f"config file + command line: rc {rc}\n{out}{err}")
    rc, out, _ = run(["--help"])
    if rc != 0 or "--pipeline_depth" not in out or "(default: 1000)" not in out:
        fail(f"--help: rc {rc}\n{out}")
    check_docs_table(out)


def check_docs_table(help_text):
    """docs/nixlbench.md's flag table says what --help says: every flag, default and meaning."""
    helped = {}
    for line in help_text.splitlines():
        m = re.match(r"^  (--\S+)\s+(.*) \(default: (.*)\)$", line)
        if m:
            helped[m.group(1)] = (m.group(3), m.group(2))
    doc = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                       "nixlbench.md")
    documented = {}
    with open(doc, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^\| `(--[^`]+)` \| (.*?) \| (.*) \|$", line.rstrip())
            if m:
                documented[m.group(1)] = (m.group(2), m.group(3).replace("\\|", "|"))
    if not helped or helped != documented:
        diff = sorted(k for k in set(helped) | set(documented)
                      if helped.get(k) != documented.get(k))
        fail("docs/nixlbench.md's flag table and --help disagree on: " +
             "; ".join(f"{k}: help {helped.get(k)}, docs {documented.get(k)}" for k in diff))


def case_local():
    for op in ("READ", "WRITE"):
        rc, out, err = run(["--backend=SHM", "--op_type", op, "--check_consistency"] + CI)
        if rc != 0:
            fail(f"local {op}: rc {rc}\n{out}{err}")
        check_table(out, f"local {op}")
    # like ucx_perftest: all descriptors of a request on one block
    rc, out, err = run(["--backend=SHM", "--same_block"] + CI)
    if rc != 0:
        fail(f"local --same_block: rc {rc}\n{out}{err}")
    check_table(out, "local --same_block")


def case_posix():
    """The reference CI's POSIX mode (one process, READ and WRITE, consistency checked), on
    each I/O engine, buffered and O_DIRECT; the files it names itself are removed after."""
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        runs = [(op, api, []) for op in ("READ", "WRITE") for api in ("AIO", "URING", "POSIXAIO")]
        runs += [("WRITE", "URING", ["--storage_enable_direct", "--num_files=2"]),
                 ("READ", "URING", ["--pipeline_depth=4", "--recreate_xfer", "--num_files=2"]),
                 ("READ", "AIO", ["--filenames=a,b,c", "--num_files=3"])]
        for op, api, extra in runs:
            args = ["--backend=POSIX", "--op_type", op, "--check_consistency", "--filepath", d,
                    "--posix_api_type", api, "--num_iter=50", "--warmup_iter=5"] + extra + CI
            rc, out, err = run(args)
            if rc != 0 and "O_DIRECT" in err and "Invalid argument" in err:
                print(f"note: {d} has no O_DIRECT; {op} {api} {extra} not run")
                continue
            if rc != 0:
                fail(f"posix {op} {api} {extra}: rc {rc}\n{out}{err}")
            check_table(out, f"posix {op} {api}")
            if "Creating file: " + d not in out:
                fail(f"posix {op}: no 'Creating file:' line\n{out}")
        left = sorted(os.listdir(d))
        if left != ["a", "b", "c"]:
            fail(f"posix: files left in {d}: {left} (only the named ones should stay)")


ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def npm_tool(env_name, name):
    """The npm server `name` of build-npm/ (scripts/install-deps.sh), or $env_name; skip (77)
    when it is not there."""
    path = os.environ.get(env_name) or os.path.join(ROOT, "build-npm", "node_modules", ".bin",
                                                    name)
    if not os.access(path, os.X_OK):
        print(f"SKIP: {name} not found ({path}): run scripts/install-deps.sh")
        sys.exit(77)
    return path


@contextlib.contextmanager
def server(argv, port, what):
    """Run argv (a server listening on 127.0.0.1:port) until the block ends."""
    srv = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > end or srv.poll() is not None:
                    fail(f"{what} did not start")
                time.sleep(0.1)
        yield srv
    finally:
        srv.kill()
        srv.wait()


def case_obj():
    """--backend OBJ against s3rver (build-npm/, from scripts/install-deps.sh) on loopback:
    WRITE and READ with the consistency checked through the backend, and a wrong key refused
    with the server's reason."""
    s3rver = npm_tool("NIXL_S3RVER", "s3rver")
    port = free_port()
    with tempfile.TemporaryDirectory(dir="/tmp") as d, \
            server([s3rver, "-d", d, "-a", "127.0.0.1", "-p", str(port), "--configure-bucket",
                    "bkt"], port, "s3rver"):
        base = ["--backend=OBJ", "--obj_bucket_name=bkt", "--obj_scheme=http",
                f"--obj_endpoint_override=127.0.0.1:{port}", "--obj_access_key=S3RVER",
                "--obj_secret_key=S3RVER", "--start_block_size=4096",
                "--max_block_size=1048576", "--start_batch_size=4", "--max_batch_size=4",
                "--num_iter=5", "--warmup_iter=1"]
        for op in ("WRITE", "READ"):
            rc, out, err = run(base + ["--op_type", op, "--check_consistency"], timeout=120)
            if rc != 0:
                fail(f"obj {op}: rc {rc}\n{out}{err}")
            check_table(out, f"obj {op}")
        rc, out, err = run(base + ["--obj_access_key=NOBODY"], timeout=60)
        if rc == 0 or "InvalidAccessKeyId" not in out + err:
            fail(f"obj with a wrong key: rc {rc}, no InvalidAccessKeyId\n{out}{err}")


AZ_DEV_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
              "KBHBeksoGMGw==")
AZ_BAD_KEY = "A" * 56  # well-formed base64, not the account's key


def az_check(url, *args):
    """tests/unit/azure/az_check.py (urllib, its own SharedKey) on container ctr: its stdout."""
    tool = os.path.join(ROOT, "tests", "unit", "azure", "az_check.py")
    p = subprocess.run([sys.executable, tool, url, "ctr"] + list(args), capture_output=True,
                       text=True, timeout=120)
    if p.returncode:
        fail(f"az_check.py {' '.join(args)}: {p.stderr}")
    return p.stdout


def az_expect_blob(url, name, size, byte, d):
    """The independent client reads blob `name`: size bytes, all `byte`."""
    path = os.path.join(d, "got")
    az_check(url, "get", name, path)
    with open(path, "rb") as f:
        data = f.read()
    if len(data) != size or data.count(bytes([byte])) != size:
        fail(f"blob {name}: {len(data)} bytes, want {size} of 0x{byte:02x}")


def case_azure():
    """--backend AZURE_BLOB against Azurite (build-npm/) on loopback, with the reference's
    --azure_blob_* flags: WRITE through a connection string and READ through an account URL
    (the key from AZURE_STORAGE_ACCOUNT_KEY), both with --check_consistency; az_check.py
    reads what nixlbench wrote; a 64 MiB blob goes as 8 staged blocks of the default 8 MiB,
    which az_check.py counts and reads;
    a wrong key, a missing container and no container at all are refused with their reasons."""
    azurite = npm_tool("NIXL_AZURITE", "azurite-blob")
    port = free_port()
    url = f"http://127.0.0.1:{port}/devstoreaccount1"
    with tempfile.TemporaryDirectory(dir="/tmp") as d, \
            server([azurite, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location",
                    d, "--skipApiVersionCheck", "--loose", "--disableTelemetry"], port,
                   "azurite"):
        az_check(url, "mkcontainer")
        cs = f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;" \
             f"AccountKey={AZ_DEV_KEY};BlobEndpoint={url};"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
        sweep = ["--backend=AZURE_BLOB", "--azure_blob_container_name=ctr",
                 "--start_block_size=4096", "--max_block_size=1048576", "--start_batch_size=4",
                 "--max_batch_size=4", "--num_iter=5", "--warmup_iter=1"]
        rc, out, err = run(sweep + [f"--azure_blob_connection_string={cs}", "--op_type=WRITE",
                                    "--check_consistency"], timeout=120, env=env)
        if rc != 0:
            fail(f"azure WRITE: rc {rc}\n{out}{err}")
        check_table(out, "azure WRITE")
        for i in range(4):  # the last step's objects: 1 MiB of the initiator's 0xBB
            az_expect_blob(url, f"nixlbench_obj_{i}", 1 << 20, 0xBB, d)
        rc, out, err = run(sweep + [f"--azure_blob_account_url={url}", "--op_type=READ",
                                    "--check_consistency"], timeout=120,
                           env=dict(env, AZURE_STORAGE_ACCOUNT_KEY=AZ_DEV_KEY))
        if rc != 0:
            fail(f"azure READ: rc {rc}\n{out}{err}")
        check_table(out, "azure READ")
        # 64 MiB: above the plugin's 32 MiB single-put limit, so 8 staged blocks of 8 MiB.
        big = ["--backend=AZURE_BLOB", "--azure_blob_container_name=ctr",
               f"--azure_blob_connection_string={cs}", "--start_block_size=64M",
               "--max_block_size=64M", "--num_iter=2", "--warmup_iter=1",
               "--total_buffer_size=64M", "--check_consistency"]
        for op in ("WRITE", "READ"):
            rc, out, err = run(big + ["--op_type", op], timeout=240, env=env)
            if rc != 0 or not re.search(r"^67108864 +1 +\d+\.\d{6}", out, re.M):
                fail(f"azure 64 MiB {op}: rc {rc}\n{out}{err}")
            if op == "WRITE":  # before READ's preparation overwrites it
                if az_check(url, "blocks", "nixlbench_obj_0").strip() != "8":
                    fail("the 64 MiB blob is not 8 committed blocks")
                az_expect_blob(url, "nixlbench_obj_0", 64 << 20, 0xBB, d)
        one = sweep[:2] + ["--max_block_size=4096", "--max_batch_size=4", "--num_iter=1",
                           "--warmup_iter=0"]
        for args, reason in (
                ([f"--azure_blob_connection_string={cs.replace(AZ_DEV_KEY, AZ_BAD_KEY)}"],
                 "AuthorizationFailure"),
                ([f"--azure_blob_connection_string={cs}",
                  "--azure_blob_container_name=no-such-container"], "ContainerNotFound"),
                ([f"--azure_blob_connection_string={cs}", "--azure_blob_container_name="],
                 "no container")):
            rc, out, err = run(one + args, timeout=60, env=env)
            if rc != 1 or reason not in out + err:
                fail(f"azure {args[-1]}: rc {rc} (want 1), no {reason!r}\n{out}{err}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ucx_usable():
    env = dict(os.environ, UCX_TLS="tcp")
    rc, _, _ = run(["--backend=UCX", "--num_iter=1", "--warmup_iter=0", "--max_block_size=4K"],
                   env=env)
    return rc == 0


def start_pair(args, env):
    port = str(free_port())
    common = [NB, "--runtime_type=ASIO", "--asio_port", port] + args
    first = subprocess.Popen(common, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
    time.sleep(1)
    second = subprocess.Popen(common, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env)
    return first, second


def case_asio():
    backend = "UCX" if ucx_usable() else "SHM"
    env = dict(os.environ, UCX_TLS="tcp")
    print("backend", backend)
    for op in ("READ", "WRITE"):
        first, second = start_pair([f"--backend={backend}", "--op_type", op,
                                    "--check_consistency"] + CI, env)
        out0, err0 = first.communicate(timeout=60)
        out1, err1 = second.communicate(timeout=60)
        if first.returncode or second.returncode:
            fail(f"asio {op}: rc {first.returncode}/{second.returncode}\n{out0}{err0}{out1}{err1}")
        check_table(out0, f"asio {op}")


def wait_header(proc):
    deadline = time.time() + 30
    for line in proc.stdout:
        if line.startswith("Block Size"):
            return
        if time.time() > deadline:
            break
    fail("no table header before the kill")


def finish_after_kill(proc, what):
    t0 = time.time()
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        fail(f"{what}: the initiator did not exit within 15 s of the target's death")
    if proc.returncode == 0 or "target" not in err:
        fail(f"{what}: rc {proc.returncode}, stderr {err!r}")
    print(f"{what}: exit {proc.returncode} after {time.time() - t0:.2f} s: {err.strip()}")


def case_killed():
    # About a minute of 1 MiB transfers, unless the kill ends it.
    long_run = ["--backend=SHM", "--num_iter=500000", "--large_blk_iter_ftr=1",
                "--start_block_size=1M", "--max_block_size=1M"]
    proc = subprocess.Popen([NB] + long_run, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    wait_header(proc)
    with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
        children = [int(c) for c in f.read().split()]
    if not children:
        fail("no spawned target")
    time.sleep(0.5)
    os.kill(children[0], signal.SIGKILL)
    finish_after_kill(proc, "local")
    first, second = start_pair(long_run, dict(os.environ))
    wait_header(first)
    time.sleep(0.5)
    second.kill()
    second.communicate()
    finish_after_kill(first, "asio")


def case_etcd():
    """Two processes meet through a real etcd (started here, on free loopback ports)."""
    if subprocess.run(["sh", "-c", "command -v etcd"], capture_output=True).returncode:
        print("etcd is not installed: skipping")
        sys.exit(77)
    with tempfile.TemporaryDirectory() as d:
        cport, pport = free_port(), free_port()
        url = f"http://127.0.0.1:{cport}"
        with open(os.path.join(d, "etcd.log"), "w") as log:
            srv = subprocess.Popen(["etcd", "--data-dir", os.path.join(d, "data"),
                                    "--listen-client-urls", url, "--advertise-client-urls", url,
                                    "--listen-peer-urls", f"http://127.0.0.1:{pport}"],
                                   stdout=log, stderr=log)
        try:
            deadline = time.time() + 15
            while True:
                try:
                    socket.create_connection(("127.0.0.1", cport), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        fail("etcd did not start")
                    time.sleep(0.1)
            for op in ("READ", "WRITE"):
                args = [NB, f"--etcd_endpoints={url}", f"--benchmark_group=t{os.getpid()}{op}",
                        "--backend=SHM", "--op_type", op, "--check_consistency"] + CI
                first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)
                time.sleep(1)
                second = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True)
                out0, err0 = first.communicate(timeout=60)
                out1, err1 = second.communicate(timeout=60)
                if first.returncode or second.returncode:
                    fail(f"etcd {op}: rc {first.returncode}/{second.returncode}\n"
                         f"{out0}{err0}{out1}{err1}")
                if "Registered as rank 0 item 1 of 2" not in out0 or \
                        "Registered as rank 1 item 2 of 2" not in out1:
                    fail(f"etcd {op}: registration lines missing\n{out0}{out1}")
                check_table(out0, f"etcd {op}")
        finally:
            srv.terminate()
            srv.wait(timeout=10)


def case_json():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "out.json")
        rc, out, err = run(["--backend=SHM", "--json", path] + CI)
        if rc != 0:
            fail(f"--json: rc {rc}\n{out}{err}")
        with open(path) as f:
            doc = json.load(f)
        row = doc["rows"][0]
        if len(doc["rows"]) != 1 or row["block_size"] != 16384 or row["batch_size"] != 4:
            fail(f"--json rows: {doc['rows']}")
        for k in ("prep_us", "post_us", "tx_us"):
            if set(row[k]) != {"avg", "p50", "p90", "p99", "max"}:
                fail(f"--json {k}: {row[k]}")
        if doc["config"]["total_buffer_size"] != 80000000:
            fail(f"--json config: {doc['config']}")
        rc, out, err = run(["--compare=SHM", "--json", path] + CI)
        if rc != 0 or "SHM (GB/Sec)" not in out or "memcpy (GB/Sec)" not in out:
            fail(f"--compare: rc {rc}\n{out}{err}")
        with open(path) as f:
            doc = json.load(f)
        if doc["backends"] != ["SHM"] or "memcpy_gbps" not in doc["rows"][0]:
            fail(f"--compare --json: {doc}")


def gpu_count():
    """GPUs the CUDA driver sees here, 0 without a driver (as nixlbench would find them)."""
    import ctypes
    try:
        cu = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    n = ctypes.c_int(0)
    if cu.cuInit(0) != 0 or cu.cuDeviceGetCount(ctypes.byref(n)) != 0:
        return 0
    return n.value


def case_vram():
    """VRAM segments. Without a GPU: every way of asking for VRAM fails with a reason naming what
    is missing, and the storage mode says it ignores the seg types. With one: SHM moves each
    pair with DRAM, READ and WRITE, consistency checked (tests/gpu/run-gpu-tools.sh runs the
    same)."""
    if gpu_count() == 0:
        for flag in ("--initiator_seg_type=VRAM", "--target_seg_type=vram"):
            expect(["--backend=SHM", flag] + CI, 1, flag.split("=")[0] + " VRAM needs")
            expect(["--backend=SHM", flag] + CI, 1, "libcuda.so.1")
        expect(["--backend=SHM", "--enable_vmm"] + CI, 1, "--enable_vmm")
        with tempfile.TemporaryDirectory(dir="/tmp") as d:
            rc, out, err = run(["--backend=POSIX", "--initiator_seg_type=VRAM", "--filepath", d,
                                "--num_iter=5", "--warmup_iter=1"] + CI)
        if rc != 0 or "seg types are ignored" not in out:
            fail(f"POSIX with VRAM: rc {rc}\n{out}{err}")
        # ASIO: the target cannot allocate and the initiator tells why.
        port = free_port()
        args = ["--runtime_type=ASIO", f"--asio_port={port}", "--backend=SHM",
                "--target_seg_type=VRAM"] + CI
        first = subprocess.Popen([NB] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        time.sleep(0.3)
        run(args)
        out, err = first.communicate(timeout=60)
        if first.returncode != 1 or "the target failed: --target_seg_type VRAM" not in err:
            fail(f"ASIO with a target without GPU: rc {first.returncode}\n{out}{err}")
        return
    for init, target in (("VRAM", "VRAM"), ("DRAM", "VRAM"), ("VRAM", "DRAM")):
        for op in ("READ", "WRITE"):
            args = ["--backend=SHM", "--initiator_seg_type", init, "--target_seg_type", target,
                    "--op_type", op, "--check_consistency", "--num_iter=50", "--warmup_iter=5"]
            rc, out, err = run(args + CI)
            if rc != 0:
                fail(f"SHM {init}->{target} {op}: rc {rc}\n{out}{err}")
            check_table(out, f"SHM {init}->{target} {op}")


def main():
    global NB
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    NB = sys.argv[2]
    {"flags": case_flags, "local": case_local, "asio": case_asio, "killed": case_killed,
     "json": case_json, "posix": case_posix, "etcd": case_etcd,
     "vram": case_vram, "obj": case_obj, "azure": case_azure}[sys.argv[1]]()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
