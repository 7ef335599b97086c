#!/usr/bin/env python3
"""The independent Azure Blob client of the AZURE_BLOB tests: the REST API through urllib,
signed with our own SharedKey (no Azure SDK), with Azurite's well-known development account.

  az_check.py URL CONTAINER mkcontainer          create the container
  az_check.py URL CONTAINER put BLOB FILE        Put Blob of FILE's bytes
  az_check.py URL CONTAINER get BLOB FILE        Get Blob into FILE
  az_check.py URL CONTAINER getmany PREFIX N FILE  blobs PREFIX0..PREFIX<N-1>, concatenated
  az_check.py URL CONTAINER blocks BLOB          print the number of committed blocks
  az_check.py URL CONTAINER sas PERMS            print an account SAS token (blob service,
                                                 all resource types) with permissions PERMS

URL is the account's (http://127.0.0.1:PORT/devstoreaccount1). Exit 0 on success, 1 with the
reason on stderr.
"""
import base64
import email.utils
import hashlib
import hmac
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

ACCOUNT = "devstoreaccount1"
KEY_B64 = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
           "K1SZFPTOtr/KBHBeksoGMGw==")
KEY = base64.b64decode(KEY_B64)


def sign(method, path, headers, query, body_len):
    """Add x-ms-date, x-ms-version and the SharedKey Authorization of a request for `path` (the
    URL's path) to headers. Also used by bench/azure_vs_rest.py."""
    if method == "PUT":  # else urllib says form data
        headers.setdefault("Content-Type", "application/octet-stream")
    headers["x-ms-date"] = email.utils.formatdate(usegmt=True)
    headers["x-ms-version"] = "2021-08-06"
    clen = str(body_len) if body_len else ""
    xms = "".join("%s:%s\n" % (k.lower(), v) for k, v in sorted(headers.items())
                  if k.lower().startswith("x-ms-"))
    res = "/" + ACCOUNT + path + "".join("\n%s:%s" % (k, v) for k, v in sorted(query.items()))
    sts = "\n".join([method, "", "", clen, "", headers.get("Content-Type", ""), "", "", "", "",
                     "", ""]) + "\n" + xms + res
    sig = base64.b64encode(hmac.new(KEY, sts.encode(), hashlib.sha256).digest()).decode()
    headers["Authorization"] = "SharedKey %s:%s" % (ACCOUNT, sig)
    return headers


def request(method, url, body=b"", headers=None, query=None):
    """One signed exchange; (status, body bytes)."""
    query = query or {}
    headers = sign(method, urllib.parse.urlsplit(url).path, dict(headers or {}), query,
                   len(body))
    if query:
        url += "?" + urllib.parse.urlencode(query)
    req = urllib.request.Request(url, data=body if method == "PUT" else None, method=method,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def blob_url(base, container, blob):
    return "%s/%s/%s" % (base, container, urllib.parse.quote(blob, safe="/~"))


def need(status, body, ok, what):
    if status not in ok:
        sys.exit("%s: HTTP %d %s" % (what, status, body.decode(errors="replace")[:300]))


def main(argv):
    base, container, cmd = argv[1], argv[2], argv[3]
    if cmd == "mkcontainer":
        st, b = request("PUT", "%s/%s" % (base, container), query={"restype": "container"})
        need(st, b, (201, 409), "create container")
    elif cmd == "put":
        data = open(argv[5], "rb").read()
        st, b = request("PUT", blob_url(base, container, argv[4]), data,
                        {"x-ms-blob-type": "BlockBlob"})
        need(st, b, (201,), "put " + argv[4])
    elif cmd == "get":
        st, b = request("GET", blob_url(base, container, argv[4]))
        need(st, b, (200,), "get " + argv[4])
        open(argv[5], "wb").write(b)
    elif cmd == "getmany":
        with open(argv[6], "wb") as f:
            for i in range(int(argv[5])):
                st, b = request("GET", blob_url(base, container, "%s%d" % (argv[4], i)))
                need(st, b, (200,), "get %s%d" % (argv[4], i))
                f.write(b)
    elif cmd == "blocks":
        st, b = request("GET", blob_url(base, container, argv[4]),
                        query={"comp": "blocklist", "blocklisttype": "committed"})
        need(st, b, (200,), "block list of " + argv[4])
        print(len(re.findall(rb"<Block>", b)))
    elif cmd == "sas":
        fields = {"sv": "2021-08-06", "ss": "b", "srt": "sco", "sp": argv[4],
                  "se": "2099-01-01T00:00:00Z"}
        sts = "\n".join([ACCOUNT, fields["sp"], fields["ss"], fields["srt"], "", fields["se"], "",
                         "", fields["sv"], "", ""])
        fields["sig"] = base64.b64encode(hmac.new(KEY, sts.encode(), hashlib.sha256).digest())
        print(urllib.parse.urlencode(fields))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
