#!/usr/bin/env python3
"""nixlbench --backend AZURE_BLOB beside an independent Azure Blob client moving blobs of the
same sizes, in the same run.

Starts Azurite's blob service (scripts/install-deps.sh puts it in build-npm/) on a free loopback
port with its development account, then for each repeat runs nixlbench and the independent
client as bench/objbench.py says. The client is Python's http.client (the Azure SDK is not in
Debian): Put Blob, or Get Blob with x-ms-range, signed with SharedKey by
tests/unit/azure/az_check.py's signer; 8 threads, each with its own kept-alive connection.
Prints a markdown table.

    bench/azure_vs_rest.py [--build build] [--repeat 3] [--iters 20]
"""
import http.client
import os
import sys
import threading

import objbench

sys.path.insert(0, os.path.join(objbench.ROOT, "tests", "unit", "azure"))
import az_check  # noqa: E402  (tests/unit/azure: the SharedKey signer of the tests)


def rest_client(port):
    local = threading.local()

    def exchange(method, path, body, headers, want):
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        az_check.sign(method, path, headers, {}, len(body) if body else 0)
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        if r.status != want:
            raise RuntimeError(f"{method} {path}: HTTP {r.status} {data[:200]!r}")
        return data

    def put(key, body):
        exchange("PUT", f"/{az_check.ACCOUNT}/ctr/{key}", body,
                 {"x-ms-blob-type": "BlockBlob"}, 201)

    def get(key, size):
        return exchange("GET", f"/{az_check.ACCOUNT}/ctr/{key}", None,
                        {"x-ms-range": f"bytes=0-{size - 1}"}, 206)
    return put, get


def main():
    a = objbench.options()
    with objbench.npm_server("azurite-blob", lambda d, port: [
            "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", d,
            "--skipApiVersionCheck", "--loose", "--disableTelemetry"]) as port:
        url = f"http://127.0.0.1:{port}/{az_check.ACCOUNT}"
        az_check.main(["az_check.py", url, "ctr", "mkcontainer"])
        cs = (f"AccountName={az_check.ACCOUNT};AccountKey={az_check.KEY_B64};"
              f"BlobEndpoint={url}")
        args = ["--backend", "AZURE_BLOB", "--azure_blob_container_name", "ctr",
                "--azure_blob_connection_string", cs]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
        put, get = rest_client(port)
        res = objbench.compare(a.repeat, {
            "nixlbench AZURE_BLOB": lambda op: objbench.nixlbench(a.build, args, op, a.iters,
                                                                  env),
            "http.client": lambda op: objbench.client_rates(put, get, "rest_obj_", op,
                                                            a.iters)})
    objbench.print_table(res, "nixlbench AZURE_BLOB", "http.client", a.iters, a.repeat)


if __name__ == "__main__":
    main()
