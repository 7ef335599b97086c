#!/usr/bin/env python3
"""Make s3rver (the S3 server the OBJ tests run, build-npm/) answer a PUT only once the
object's bytes are in its file.

s3rver 3.7.1's filesystem store resolves putObject when the request body has passed through
its checksum stage, not when its file write stream has finished: a GET right after the PUT's
answer (read-after-write, which S3 guarantees) can find the file short, and the GET then ends
early ("transfer closed with 1 bytes remaining to read"; nixlbench-obj failed 2 runs in 8 on
a loaded machine, 2026-12-06). This waits for the write stream's 'finish' instead, in both
branches (a streamed body and a buffer). Idempotent; does nothing when the file is absent or
already patched, and fails loudly when s3rver's code is not the expected one.
"""
import os
import sys

STREAM_OLD = """          .on('error', reject)
          .on('finish', () => resolve([totalLength, md5Context.digest('hex')]))
          .pipe(writeStream);"""
STREAM_NEW = """          .on('error', reject)
          .pipe(writeStream)
          .on('error', reject)
          .on('finish', () => resolve([totalLength, md5Context.digest('hex')])); /* nixl: written */"""
BUF_OLD = """        writeStream.end(object.content);
        md5Context.update(object.content);
        resolve([object.content.length, md5Context.digest('hex')]);"""
BUF_NEW = """        md5Context.update(object.content);
        const digest = md5Context.digest('hex');
        writeStream.on('error', reject);
        writeStream.end(object.content, () => resolve([object.content.length, digest])); /* nixl */"""


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    path = os.path.join(root, "build-npm", "node_modules", "s3rver", "lib", "stores",
                        "filesystem.js")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        src = f.read()
    if "/* nixl: written */" in src:
        return 0
    if STREAM_OLD not in src or BUF_OLD not in src:
        print(f"patch-s3rver: {path} is not s3rver 3.7.1's: not patched", file=sys.stderr)
        return 1
    src = src.replace(STREAM_OLD, STREAM_NEW).replace(BUF_OLD, BUF_NEW)
    with open(path + ".tmp", "w") as f:
        f.write(src)
    os.replace(path + ".tmp", path)
    print("patch-s3rver: s3rver answers a PUT once the object is written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
