#!/usr/bin/env python3
"""A small object store for the GPU tests of the OBJ and AZURE_BLOB backends.

The accelerator machine has no node (no s3rver, no Azurite) and no package registry, so the
GPU tests talk to this server; the protocols themselves are tested against s3rver and Azurite
on the build machine (tests/unit/obj, tests/unit/azure). It keeps every object as a file under
DIR (the URL path, '/' replaced by '%2F'), so the test reads what was written without our
library, and answers the exchanges the backends make:
  S3:    PUT object, GET (Range), HEAD, POST ?uploads, PUT ?partNumber&uploadId,
         POST ?uploadId (completion: the parts in PartNumber order), DELETE ?uploadId;
  Azure: PUT blob, PUT ?comp=block&blockid, PUT ?comp=blocklist (the <Latest> ids), GET
         (x-ms-range), HEAD.
Signatures are not checked. Usage: obj_store.py DIR; prints the port it listens on
(127.0.0.1, chosen by the system), then serves until killed.
"""
import hashlib
import os
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STORE = sys.argv[1] if len(sys.argv) > 1 else "."
LOCK = threading.Lock()
PARTS = {}  # (path, upload id or "blocks") -> {part number or block id: bytes}
NEXT_ID = [0]


def obj_file(path):
    return os.path.join(STORE, urllib.parse.quote(urllib.parse.unquote(path), safe=""))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body=b"", headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def split(self):
        u = urllib.parse.urlsplit(self.path)
        return u.path, dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))

    def etag(self, data):
        return {"ETag": '"%s"' % hashlib.md5(data).hexdigest()}

    def do_PUT(self):
        path, q = self.split()
        data = self.body()
        azure = "x-ms-version" in self.headers or "x-ms-blob-type" in self.headers
        ok = 201 if azure else 200
        with LOCK:
            if "partNumber" in q:
                PARTS.setdefault((path, q.get("uploadId")), {})[int(q["partNumber"])] = data
            elif q.get("comp") == "block":
                PARTS.setdefault((path, "blocks"), {})[q["blockid"]] = data
            elif q.get("comp") == "blocklist":
                blocks = PARTS.pop((path, "blocks"), {})
                ids = re.findall(rb"<(?:Latest|Uncommitted|Committed)>([^<]*)<", data)
                try:
                    data = b"".join(blocks[i.decode()] for i in ids)
                except KeyError:
                    return self.reply(400, b"unknown block id")
                write(path, data)
            else:
                write(path, data)
        self.reply(ok, b"", self.etag(data))

    def do_POST(self):
        path, q = self.split()
        data = self.body()
        with LOCK:
            if "uploads" in q:
                NEXT_ID[0] += 1
                uid = "up%d" % NEXT_ID[0]
                PARTS[(path, uid)] = {}
                xml = ("<InitiateMultipartUploadResult><UploadId>%s</UploadId>"
                       "</InitiateMultipartUploadResult>" % uid).encode()
                return self.reply(200, xml, {"Content-Type": "application/xml"})
            parts = PARTS.pop((path, q.get("uploadId")), None)
            if parts is None:
                return self.reply(404, b"<Error><Code>NoSuchUpload</Code></Error>")
            nums = [int(n) for n in re.findall(rb"<PartNumber>(\d+)</PartNumber>", data)]
            if nums != sorted(nums) or any(n not in parts for n in nums):
                return self.reply(400, b"<Error><Code>InvalidPart</Code></Error>")
            write(path, b"".join(parts[n] for n in nums))
        xml = b"<CompleteMultipartUploadResult><ETag>x</ETag></CompleteMultipartUploadResult>"
        self.reply(200, xml, {"Content-Type": "application/xml"})

    def do_DELETE(self):
        path, q = self.split()
        with LOCK:
            PARTS.pop((path, q.get("uploadId")), None)
        self.reply(204)

    def do_GET(self):
        path, _ = self.split()
        try:
            with open(obj_file(path), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return self.reply(404, b"<Error><Code>NoSuchKey</Code></Error>",
                              {"x-ms-error-code": "BlobNotFound"})
        rng = self.headers.get("x-ms-range") or self.headers.get("Range")
        m = re.match(r"bytes=(\d+)-(\d*)$", rng or "")
        if not m:
            return self.reply(200, data)
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) else len(data) - 1
        if a >= len(data):
            return self.reply(416, b"<Error><Code>InvalidRange</Code></Error>")
        b = min(b, len(data) - 1)
        self.reply(206, data[a:b + 1], {"Content-Range": "bytes %d-%d/%d" % (a, b, len(data))})

    def do_HEAD(self):
        path, _ = self.split()
        try:
            size = os.path.getsize(obj_file(path))
        except FileNotFoundError:
            return self.reply(404, b"", {"x-ms-error-code": "BlobNotFound"})
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()


def write(path, data):
    tmp = obj_file(path) + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, obj_file(path))


class Server(ThreadingHTTPServer):
    request_queue_size = 256  # the backends open up to max_inflight (64) connections at once
    daemon_threads = True


def main():
    os.makedirs(STORE, exist_ok=True)
    srv = Server(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
