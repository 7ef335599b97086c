#!/usr/bin/env python3
"""The Microsoft Entra ID (Azure AD) stand-in of test_azure_ad: a token endpoint on loopback
(Azure AD cannot run here) whose tokens Azurite accepts in `--oauth basic` mode (a JWT with
aud https://storage.azure.com, an iss of https://sts.windows.net/, nbf, iat and exp; Azurite
does not check the signature).

  az_token_server.py PORT DIR

Endpoints (what the mode is comes from the URL, so the test needs no control channel):
  POST /<mode>/oauth2/v2.0/token           the identity platform (tenant = mode)
  GET  /msi/<mode>?api-version=...         an App Service managed identity endpoint
                                           (X-IDENTITY-HEADER must be "idh-secret")
  GET  /metadata/identity/oauth2/token?..  IMDS ("Metadata: true" required)
Modes: ok (one hour), short (3 s), err400, err401, garbage (not JSON), huge (100 KiB),
crlf (a token with a CR LF in it), wrongaud (a token for Key Vault, not storage).

Every request is a line of DIR/requests.log ("sp ...", "msi ...", "imds ..." with what was
asked), every token minted a line "issued <token>", so that the test can count fetches, check
what was sent, and look for tokens in its logs.
"""
import base64
import http.server
import json
import os
import sys
import time
import urllib.parse

DIR = sys.argv[2]


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(mode, life):
    now = int(time.time())
    claims = {"aud": "https://vault.azure.net" if mode == "wrongaud" else
              "https://storage.azure.com", "iss": "https://sts.windows.net/test-tenant/",
              "iat": now, "nbf": now - 10, "exp": now + life, "jti": "%d.%d" % (now, os.getpid()),
              "n": time.monotonic_ns()}
    head = {"alg": "none", "typ": "JWT"}
    return "%s.%s.%s" % (b64url(json.dumps(head).encode()), b64url(json.dumps(claims).encode()),
                         b64url(b"not-signed"))


def log(line):
    with open(os.path.join(DIR, "requests.log"), "a") as f:
        f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def token(self, mode, style):
        """The answer of `mode` in the style of the endpoint: sp (numbers), msi (expires_on),
        imds (strings)."""
        if mode == "err400":
            return self.answer(400, {"error": "invalid_request", "error_description":
                                     "AADSTS90002: Tenant 'err400' not found.",
                                     "error_codes": [90002], "trace_id": "t"})
        if mode == "err401":
            return self.answer(401, {"error": "invalid_client", "error_description":
                                     "AADSTS7000215: Invalid client secret provided."})
        if mode == "garbage":
            return self.answer(200, b"<html><body>Service Unavailable</body></html>",
                               "text/html")
        if mode == "huge":
            return self.answer(200, b'{"access_token":"' + b"a" * (100 << 10) + b'"}')
        life = 3 if mode == "short" else 3600
        tok = jwt(mode, life)
        if mode == "crlf":
            tok = tok[:10] + "\r\nX-Injected: 1"
        log("issued " + tok)
        body = {"access_token": tok, "token_type": "Bearer"}
        if style == "sp":
            body.update({"expires_in": life, "ext_expires_in": life})
        elif style == "msi":
            body.update({"expires_on": int(time.time()) + life, "resource":
                         "https://storage.azure.com/", "client_id": "x"})
        else:
            body.update({"expires_in": str(life), "expires_on": str(int(time.time()) + life),
                         "not_before": str(int(time.time())), "resource":
                         "https://storage.azure.com/"})
        return self.answer(200, body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(n).decode(), keep_blank_values=True)
        parts = self.path.split("/")
        if len(parts) != 5 or parts[2:] != ["oauth2", "v2.0", "token"]:
            return self.answer(404, {"error": "not_found"})

        def f(k):
            return form.get(k, ["-"])[0]
        log("sp tenant=%s grant_type=%s scope=%s client_id=%s secret=%s assertion=%s "
            "assertion_type=%s ctype=%s" % (parts[1], f("grant_type"), f("scope"),
                                            f("client_id"), f("client_secret"),
                                            f("client_assertion"), f("client_assertion_type"),
                                            self.headers.get("Content-Type")))
        return self.token(parts[1], "sp")

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)

        def f(k):
            return q.get(k, ["-"])[0]
        if u.path.startswith("/msi/"):
            hdr = self.headers.get("X-IDENTITY-HEADER", "-")
            log("msi mode=%s api-version=%s resource=%s client_id=%s header=%s" %
                (u.path[5:], f("api-version"), f("resource"), f("client_id"), hdr))
            if hdr != "idh-secret":
                return self.answer(401, {"error": "unauthorized", "error_description":
                                         "bad X-IDENTITY-HEADER"})
            return self.token(u.path[5:], "msi")
        if u.path == "/metadata/identity/oauth2/token":
            md = self.headers.get("Metadata", "-")
            log("imds api-version=%s resource=%s client_id=%s metadata=%s" %
                (f("api-version"), f("resource"), f("client_id"), md))
            if md != "true":
                return self.answer(400, {"error": "invalid_request", "error_description":
                                         "Required metadata header not specified"})
            return self.token("ok", "imds")
        return self.answer(404, {"error": "not_found"})


if __name__ == "__main__":
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    srv.serve_forever()
