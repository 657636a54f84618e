#!/usr/bin/env python3
"""An HTTP/1.1 proxy in front of a registry for the fuse snapshotter's lazy
tests (lazy.sh, lazy-auth.sh), on 127.0.0.1 at a free port.

pace-proxy.py UPSTREAM PORTFILE COUNTFILE LOG RATE [--strict REALM SERVICE]

Blob bodies (GET .../blobs/sha256:..., status 200 or 206) are paced to RATE
bytes/s over all connections (one schedule, in 32 KiB slices); COUNTFILE
holds "DIGEST BYTES" per blob, rewritten (rename) after every slice sent;
LOG gets one line per request, naming a Bearer token by its jti only.  The
port is written to PORTFILE (rename) once the proxy listens.

--strict: a request whose Bearer JWT has exp <= now is answered 401 with
the registry's challenge (Bearer realm=REALM, service=SERVICE, the
repository's pull scope, error="invalid_token") and logged "strict-401"
(docker-registry itself accepts a token up to 60 s after its exp)."""
import argparse, base64, http.client, http.server, json, os, re, sys, threading, time

ap = argparse.ArgumentParser ()
ap.add_argument ("upstream")
ap.add_argument ("portfile")
ap.add_argument ("countfile")
ap.add_argument ("logfile")
ap.add_argument ("rate", type=int)
ap.add_argument ("--strict", nargs=2, metavar=("REALM", "SERVICE"))
a = ap.parse_args ()
upstream, countfile, logfile, rate = a.upstream, a.countfile, a.logfile, a.rate
strict = a.strict is not None
realm, service = a.strict if strict else (None, None)
SLICE = 32768
lock = threading.Lock ()
counts = {}
slot = [0.0]

def pace (n):
    with lock:
        start = max (time.monotonic (), slot[0])
        slot[0] = start + n / rate
        until = slot[0]
    d = until - time.monotonic ()
    if d > 0:
        time.sleep (d)

def account (key, n):
    with lock:
        counts[key] = counts.get (key, 0) + n
        with open (countfile + ".tmp", "w") as f:
            for k, v in sorted (counts.items ()):
                f.write ("%s %d\n" % (k, v))
        os.rename (countfile + ".tmp", countfile)

def log (line):
    with lock:
        with open (logfile, "a") as f:
            f.write ("%.3f %s\n" % (time.time (), line))

def claims (auth):
    if not auth or not auth.startswith ("Bearer "):
        return None
    try:
        p = auth[7:].split (".")[1]
        return json.loads (base64.urlsafe_b64decode (p + "=" * (-len (p) % 4)))
    except Exception:
        return None

class H (http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message (self, *a): pass
    def do_GET (self): self.proxy ("GET")
    def do_HEAD (self): self.proxy ("HEAD")
    def refuse_expired (self, method, tok):
        m = re.match (r"/v2/(.+)/(blobs|manifests|tags)/", self.path)
        scope = ',scope="repository:%s:pull"' % m.group (1) if m else ""
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"token expired (strict proxy)"}]}'
        log ("%s %s %s -> strict-401 (now %.1f)" % (method, self.path, tok, time.time ()))
        self.send_response_only (401)
        self.send_header ("WWW-Authenticate", 'Bearer realm="%s",service="%s"%s,error="invalid_token"'
                          % (realm, service, scope))
        self.send_header ("Content-Type", "application/json")
        self.send_header ("Content-Length", str (len (body)))
        self.end_headers ()
        if method != "HEAD":
            self.wfile.write (body)
    def proxy (self, method):
        c = claims (self.headers.get ("Authorization"))
        tok = "jti=%s exp=%s" % (c.get ("jti", "?")[:8], c.get ("exp")) if c else "no-bearer"
        if strict and c and int (c.get ("exp", 0)) <= time.time ():
            self.refuse_expired (method, tok)
            return
        hdrs = {k: v for k, v in self.headers.items () if k.lower () not in ("host", "connection", "keep-alive")}
        up = http.client.HTTPConnection (upstream, timeout=60)
        try:
            up.request (method, self.path, headers=hdrs)
            r = up.getresponse ()
        except OSError as e:
            log ("%s %s: upstream: %s" % (method, self.path, e))
            self.send_error (502)
            return
        m = re.search (r"/blobs/(sha256:[0-9a-f]{64})", self.path)
        key = m.group (1) if m and r.status in (200, 206) else None
        log ("%s %s range=%s %s -> %d" % (method, self.path, self.headers.get ("Range"), tok, r.status))
        body = None
        if r.getheader ("Content-Length") is None and method == "GET":
            body = r.read ()
        self.send_response_only (r.status)
        for k, v in r.getheaders ():
            if k.lower () not in ("connection", "keep-alive", "transfer-encoding"):
                self.send_header (k, v)
        if body is not None:
            self.send_header ("Content-Length", str (len (body)))
        self.end_headers ()
        sent = 0
        try:
            if body is not None:
                self.wfile.write (body)
            elif method == "GET":
                while True:
                    d = r.read (SLICE)
                    if not d:
                        break
                    if key:
                        pace (len (d))
                    self.wfile.write (d)
                    sent += len (d)
                    if key:
                        account (key, len (d))
        except OSError as e:
            log ("%s %s: client gone after %d bytes: %s" % (method, self.path, sent, e))
            self.close_connection = True
        finally:
            up.close ()

class S (http.server.ThreadingHTTPServer):
    daemon_threads = True
    def handle_error (self, request, client_address): pass

s = S (("127.0.0.1", 0), H)
open (a.portfile + ".tmp", "w").write (str (s.server_address[1]))
os.rename (a.portfile + ".tmp", a.portfile)
s.serve_forever ()
