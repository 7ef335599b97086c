#!/usr/bin/env python3
"""The independent S3 client of the OBJ tests and benchmark: boto3 (Debian's python3-boto3).

  s3_check.py ENDPOINT BUCKET put KEY FILE          upload FILE as KEY
  s3_check.py ENDPOINT BUCKET get KEY FILE          download KEY into FILE
  s3_check.py ENDPOINT BUCKET getmany PREFIX N FILE objects PREFIX0..PREFIX<N-1>, concatenated
  s3_check.py ENDPOINT BUCKET size KEY              print the size (HEAD), or "missing"
  s3_check.py ENDPOINT BUCKET bench PREFIX N SIZE THREADS
        write then read N objects of SIZE bytes with THREADS threads; prints
        "write <seconds>" and "read <seconds>"

Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (the tests set s3rver's).
Exit 0 on success, 1 with the reason on stderr.
"""
import concurrent.futures
import sys
import time

import boto3
from botocore.config import Config


def client(endpoint, threads=10):
    kw = dict(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
              max_pool_connections=max(10, threads))
    try:  # newer botocore: no trailing checksums a plain S3 server may not know
        cfg = Config(request_checksum_calculation="when_required",
                     response_checksum_validation="when_required", **kw)
    except TypeError:
        cfg = Config(**kw)
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=cfg)


def bench(s3, bucket, prefix, n, size, threads):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    keys = ["%s%d" % (prefix, i) for i in range(n)]
    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        t0 = time.perf_counter()
        list(ex.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=data), keys))
        t1 = time.perf_counter()
        got = list(ex.map(lambda k: s3.get_object(Bucket=bucket, Key=k)["Body"].read(), keys))
        t2 = time.perf_counter()
    if any(g != data for g in got):
        raise RuntimeError("read back differs")
    print("write %.6f" % (t1 - t0))
    print("read %.6f" % (t2 - t1))


def main(argv):
    endpoint, bucket, cmd = argv[1], argv[2], argv[3]
    threads = int(argv[8]) if cmd == "bench" else 10
    s3 = client(endpoint, threads)
    if cmd == "put":
        with open(argv[5], "rb") as f:
            s3.put_object(Bucket=bucket, Key=argv[4], Body=f.read())
    elif cmd == "get":
        with open(argv[5], "wb") as f:
            f.write(s3.get_object(Bucket=bucket, Key=argv[4])["Body"].read())
    elif cmd == "getmany":
        with open(argv[6], "wb") as f:
            for i in range(int(argv[5])):
                f.write(s3.get_object(Bucket=bucket, Key="%s%d" % (argv[4], i))["Body"].read())
    elif cmd == "size":
        try:
            print(s3.head_object(Bucket=bucket, Key=argv[4])["ContentLength"])
        except s3.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                print("missing")
            else:
                raise
    elif cmd == "bench":
        bench(s3, bucket, argv[4], int(argv[5]), int(argv[6]), threads)
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except Exception as e:  # the reason, for the test's log
        print("s3_check: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
