#!/usr/bin/env python3
"""nixlbench --backend OBJ beside boto3 moving objects of the same sizes, in the same run.

Starts s3rver (scripts/install-deps.sh puts it in build-npm/) on a free loopback port, then for
each repeat runs nixlbench and boto3 (PUTs, or ranged GETs; 8 threads on one client with 8
connections) as bench/objbench.py says. Prints a markdown table.

    bench/obj_vs_boto3.py [--build build] [--repeat 3] [--iters 20]
"""

import boto3
import botocore.config

import objbench


def boto3_client(port):
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="S3RVER",
                      aws_secret_access_key="S3RVER", region_name="eu-central-1",
                      config=botocore.config.Config(max_pool_connections=objbench.BATCH))

    def put(key, body):
        s3.put_object(Bucket="bkt", Key=key, Body=body)

    def get(key, size):
        return s3.get_object(Bucket="bkt", Key=key, Range=f"bytes=0-{size - 1}")["Body"].read()
    return put, get


def main():
    a = objbench.options()
    with objbench.npm_server("s3rver", lambda d, port: [
            "-d", d, "-a", "127.0.0.1", "-p", str(port), "--configure-bucket", "bkt"]) as port:
        args = ["--backend", "OBJ", "--obj_bucket_name", "bkt", "--obj_scheme", "http",
                "--obj_endpoint_override", f"127.0.0.1:{port}", "--obj_access_key", "S3RVER",
                "--obj_secret_key", "S3RVER"]
        put, get = boto3_client(port)
        res = objbench.compare(a.repeat, {
            "nixlbench OBJ": lambda op: objbench.nixlbench(a.build, args, op, a.iters),
            "boto3": lambda op: objbench.client_rates(put, get, "boto3_obj_", op, a.iters)})
    objbench.print_table(res, "nixlbench OBJ", "boto3", a.iters, a.repeat)


if __name__ == "__main__":
    main()
