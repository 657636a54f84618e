#!/usr/bin/env python3
"""Fixtures for tests/unit/test-registry-client.c (python3 stdlib only).

  push URL REPO TAG OUTDIR   make a small synthetic image (config + 2 layers,
                             OCI manifest), push it with the distribution API
                             (monolithic uploads), write OUTDIR/image.json
                             and OUTDIR/blobs/<hex>.
  token DIR                  a bearer token server for docker-registry
                             (JWT RS256 signed with DIR/token.key, x5c =
                             DIR/token.crt); port in DIR/token.port, one log
                             line per token issued in DIR/token.log.  Options
                             in DIR/token.json: expires_in, user, password.
  fake DIR                   a stand-in registry (behaviours per repository
                             name, see Fake.route) plus a second listener
                             ("storage", the redirect target) that records
                             request headers; ports in DIR/fake.port and
                             DIR/storage.port, request log in DIR/fake.log,
                             blobs and manifests served from DIR/blobs/<hex>.
"""
import base64
import hashlib
import http.server
import json
import os
import random
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def put_blob(url, repo, data):
    d = sha(data)
    req = urllib.request.Request(f"{url}/v2/{repo}/blobs/uploads/", method="POST", data=b"")
    with urllib.request.urlopen(req) as r:
        loc = r.headers["Location"]
    if loc.startswith("/"):
        loc = url + loc
    sep = "&" if "?" in loc else "?"
    req = urllib.request.Request(f"{loc}{sep}digest={d}", method="PUT", data=data,
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(req).close()
    return d


def push(url, repo, tag, outdir):
    rnd = random.Random(42)
    layers = [bytes(rnd.getrandbits(8) for _ in range(n)) for n in (200 * 1024, 700 * 1024)]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha(l) for l in layers]}}).encode()
    os.makedirs(os.path.join(outdir, "blobs"), exist_ok=True)
    descs = []
    for blob in [config] + layers:
        d = put_blob(url, repo, blob)
        with open(os.path.join(outdir, "blobs", d[7:]), "wb") as f:
            f.write(blob)
        descs.append({"digest": d, "size": len(blob)})
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **descs[0]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **d} for d in descs[1:]],
    }, indent=2).encode()
    req = urllib.request.Request(f"{url}/v2/{repo}/manifests/{tag}", method="PUT", data=manifest,
                                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    urllib.request.urlopen(req).close()
    md = sha(manifest)
    with open(os.path.join(outdir, "blobs", md[7:]), "wb") as f:
        f.write(manifest)
    info = {"manifest": {"digest": md, "size": len(manifest)}, "config": descs[0], "layers": descs[1:]}
    with open(os.path.join(outdir, "image.json"), "w") as f:
        json.dump(info, f)


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def write_port(path, port):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.rename(tmp, path)


def log_line(path, line, lock=threading.Lock()):
    with lock:
        with open(path, "a") as f:
            f.write(line + "\n")


class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body=b"", headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def token_options(d):
    opts = {}
    if os.path.exists(os.path.join(d, "token.json")):
        with open(os.path.join(d, "token.json")) as f:
            opts = json.load(f)
    return opts


def token_server(d):
    with open(os.path.join(d, "token.crt")) as f:
        pem = f.read()
    der = base64.b64decode("".join(l for l in pem.splitlines() if "-----" not in l))

    class H(Quiet):
        def do_GET(self):
            from urllib.parse import urlparse, parse_qs
            q = parse_qs(urlparse(self.path).query)
            opts = token_options(d)
            if opts.get("user"):
                want = "Basic " + base64.b64encode(f"{opts['user']}:{opts['password']}".encode()).decode()
                if self.headers.get("Authorization") != want:
                    log_line(os.path.join(d, "token.log"), "refused")
                    return self.send(401, b'{"details":"bad credentials"}')
            scope = q.get("scope", [""])[0]
            access = []
            if scope:
                typ, name, actions = scope.split(":", 2)
                access = [{"type": typ, "name": name, "actions": actions.split(",")}]
            now = int(time.time())
            exp = int(opts.get("expires_in", 300))
            header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
            claims = {"iss": "berth-test-issuer", "sub": opts.get("user", ""), "aud": q.get("service", [""])[0],
                      "exp": now + exp + 60, "nbf": now - 60, "iat": now, "jti": str(random.random()),
                      "access": access}
            signing = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
            sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", os.path.join(d, "token.key")],
                                 input=signing, capture_output=True, check=True).stdout
            tok = signing.decode() + "." + b64url(sig)
            log_line(os.path.join(d, "token.log"), f"issued scope={scope}")
            self.send(200, json.dumps({"token": tok, "expires_in": exp}).encode(),
                      {"Content-Type": "application/json"})

    srv = Server(("127.0.0.1", 0), H)
    write_port(os.path.join(d, "token.port"), srv.server_address[1])
    srv.serve_forever()


def fake_server(d):
    log = os.path.join(d, "fake.log")
    blobs = os.path.join(d, "blobs")
    state = {"tokens": 0, "revoked": set(), "closemid": set()}
    lock = threading.Lock()
    ports = {}

    def blob(hexd):
        p = os.path.join(blobs, hexd)
        if "/" in hexd or not os.path.exists(p):
            return None
        with open(p, "rb") as f:
            return f.read()

    class Storage(Quiet):
        def do_GET(self):
            auth = self.headers.get("Authorization")
            custom = self.headers.get("X-Berth-Test")
            log_line(log, f"storage GET {self.path} auth={'yes' if auth else 'no'} custom={'yes' if custom else 'no'}")
            data = blob(self.path.rsplit("/", 1)[-1])
            if data is None:
                return self.send(404)
            self.send(200, data, {"Content-Type": "application/octet-stream"})

    class Fake(Quiet):
        def do_HEAD(self):
            self.route()

        def do_GET(self):
            self.route()

        def errors(self, code, ecode, msg):
            body = json.dumps({"errors": [{"code": ecode, "message": msg, "detail": None}]}).encode()
            self.send(code, body, {"Content-Type": "application/json"})

        def route(self):
            path = self.path.split("?", 1)[0]
            rng = self.headers.get("Range", "")
            auth = self.headers.get("Authorization", "")
            log_line(log, f"{self.command} {path} range={rng or '-'} auth={auth.split(' ')[0] if auth else '-'}"
                          f" ns={'yes' if 'ns=' in self.path else 'no'}")
            if path == "/token":
                with lock:
                    state["tokens"] += 1
                    tok = f"tok-{state['tokens']}"
                log_line(log, f"token issued {tok}")
                return self.send(200, json.dumps({"access_token": tok, "expires_in": 300}).encode(),
                                 {"Content-Type": "application/json"})
            if path.startswith("/control/revoke/"):
                state["revoked"].add(path.rsplit("/", 1)[-1])
                return self.send(200, b"ok")
            if path.startswith("/fail503/"):
                return self.errors(503, "UNAVAILABLE", "mirror down")
            if path == "/v2/" or path == "/v2":
                return self.send(200, b"{}")
            parts = path.split("/")
            # /v2/<repo...>/<kind>/<ref>
            if len(parts) < 5 or parts[1] != "v2":
                return self.send(404)
            repo, kind, ref = "/".join(parts[2:-2]), parts[-2], parts[-1]
            hexd = ref[7:] if ref.startswith("sha256:") else None
            data = blob(hexd) if hexd else None
            if repo.startswith("bearer"):
                tok = auth[7:] if auth.startswith("Bearer ") else None
                if tok is None or tok in state["revoked"] or not tok.startswith("tok-"):
                    realm = f"http://127.0.0.1:{ports['fake']}/token"
                    hdr = f'Bearer realm="{realm}",service="fake",scope="repository:{repo}:pull",error="invalid_token"'
                    body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
                    return self.send(401, body.encode(), {"WWW-Authenticate": hdr,
                                                          "Content-Type": "application/json"})
            if repo == "denied":
                return self.errors(403, "DENIED", "requested access to the resource is denied")
            if repo == "unavailable":
                return self.errors(503, "UNAVAILABLE", "try later")
            if repo == "toomany":
                return self.send(429, b"", {"Retry-After": "1"})
            if data is None:
                if kind == "manifests":
                    return self.errors(404, "MANIFEST_UNKNOWN", "manifest unknown")
                return self.errors(404, "BLOB_UNKNOWN", "blob unknown to registry")
            ctype = "application/vnd.oci.image.manifest.v1+json" if kind == "manifests" else "application/octet-stream"
            if repo == "badmanifest" and kind == "manifests":
                bad = data.replace(b"schemaVersion", b"schemaversion")
                return self.send(200, bad, {"Content-Type": ctype})
            if repo == "nodigest" and kind == "manifests":
                # HEAD gives neither digest nor length: the client must GET
                if self.command == "HEAD":
                    self.send_response(200)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    return
                return self.send(200, data, {"Content-Type": ctype})
            if kind == "manifests":
                return self.send(200, data, {"Content-Type": ctype, "Docker-Content-Digest": ref})
            if repo.endswith("redirect"):
                loc = f"http://127.0.0.1:{ports['storage']}/storage/{hexd}"
                return self.send(307, b"", {"Location": loc})
            if repo == "cllie":
                body = data + b"x" * 100
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if repo == "overflow":
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data + b"y" * 50)
                self.close_connection = True
                return
            start = 0
            if rng.startswith("bytes=") and repo != "norange":
                start = int(rng[6:].split("-")[0])
            body = data[start:]
            if repo == "closemid" and hexd not in state["closemid"]:
                state["closemid"].add(hexd)
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                half = body[:len(body) // 2]
                self.wfile.write(half)
                self.wfile.flush()
                log_line(log, f"sent {len(half)} of {hexd} then closed")
                self.close_connection = True
                import socket
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            hdrs = {"Content-Type": ctype}
            if start:
                hdrs["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            self.send(206 if start else 200, body, hdrs)
            log_line(log, f"sent {len(body)} of {hexd}")

    srv = Server(("127.0.0.1", 0), Fake)
    st = Server(("127.0.0.1", 0), Storage)
    ports["fake"] = srv.server_address[1]
    ports["storage"] = st.server_address[1]
    threading.Thread(target=st.serve_forever, daemon=True).start()
    write_port(os.path.join(d, "storage.port"), ports["storage"])
    write_port(os.path.join(d, "fake.port"), ports["fake"])
    srv.serve_forever()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "push":
        push(*sys.argv[2:6])
    elif cmd == "token":
        token_server(sys.argv[2])
    elif cmd == "fake":
        fake_server(sys.argv[2])
    else:
        sys.exit("unknown command " + cmd)
