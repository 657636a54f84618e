#!/usr/bin/python3
# tests/registry/token-server.py: a small Docker registry token server
# (distribution's "token" auth, docs/spec/auth/token.md and oauth.md) for the
# tests, on loopback.  Started by tests/registry/start.sh --token.
#
#   GET  /token?service=S&scope=repository:NAME:pull,push[&scope=...]
#        with optional Basic credentials           (token.md)
#   POST /token  grant_type=password|refresh_token (oauth.md, what containerd
#        sends when it has credentials)
#
# Tokens are JWTs signed RS256 with --key; the header carries --cert in x5c,
# and docker-registry's `rootcertbundle` holds the CA that signed --cert
# (registry 2.8 checks the x5c chain against that bundle, then the
# signature).  Python's standard library has no RSA, so signing runs
# `openssl dgst -sha256 -sign`.  Every scope requested by an authenticated
# user (or by anyone when no --users file is given) is granted.
#
# Each request is logged as one JSON line to --log: tests count token
# fetches there (token cache, refresh after expiry).

import argparse
import base64
import json
import os
import secrets
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def b64url (data):
  return base64.urlsafe_b64encode (data).rstrip (b"=").decode ()


class Issuer:
  def __init__ (self, key, cert, issuer, service, ttl):
    self.key = key
    self.issuer = issuer
    self.service = service
    self.ttl = ttl
    der = subprocess.run (["openssl", "x509", "-in", cert, "-outform", "DER"],
                          stdout=subprocess.PIPE, check=True).stdout
    self.x5c = [base64.b64encode (der).decode ()]

  def token (self, subject, access):
    now = int (time.time ())
    header = {"alg": "RS256", "typ": "JWT", "x5c": self.x5c}
    claims = {
      "iss": self.issuer, "sub": subject, "aud": self.service,
      "exp": now + self.ttl, "nbf": now - 1, "iat": now,
      "jti": secrets.token_hex (16), "access": access,
    }
    signing_input = "%s.%s" % (b64url (json.dumps (header, separators=(",", ":")).encode ()),
                               b64url (json.dumps (claims, separators=(",", ":")).encode ()))
    sig = subprocess.run (["openssl", "dgst", "-sha256", "-sign", self.key],
                          input=signing_input.encode (), stdout=subprocess.PIPE,
                          check=True).stdout
    return signing_input + "." + b64url (sig), now


def parse_scopes (scopes):
  """'repository:name:pull,push' -> access entries; the name may hold ':'
  (e.g. a port in a registry-qualified name), the type and actions not."""
  access = []
  for s in scopes:
    for one in s.split ():
      typ, _, rest = one.partition (":")
      name, _, actions = rest.rpartition (":")
      if not typ or not name:
        continue
      access.append ({"type": typ, "name": name,
                      "actions": [a for a in actions.split (",") if a]})
  return access


class Handler (BaseHTTPRequestHandler):
  server_version = "berth-test-token/1"
  protocol_version = "HTTP/1.1"

  def log_message (self, fmt, *args):
    pass

  def record (self, **kw):
    kw["time"] = time.time ()
    kw["method"] = self.command
    kw["path"] = self.path
    line = json.dumps (kw, sort_keys=True) + "\n"
    with self.server.log_lock:
      with open (self.server.log_path, "a") as f:
        f.write (line)

  def reply (self, code, obj, headers=()):
    body = json.dumps (obj).encode ()
    self.send_response (code)
    self.send_header ("Content-Type", "application/json")
    self.send_header ("Content-Length", str (len (body)))
    for k, v in headers:
      self.send_header (k, v)
    self.end_headers ()
    self.wfile.write (body)

  def basic_user (self):
    h = self.headers.get ("Authorization", "")
    if not h.lower ().startswith ("basic "):
      return None, False
    try:
      user, _, pw = base64.b64decode (h[6:].strip ()).decode ().partition (":")
    except Exception:
      return None, True
    return (user if self.server.users.get (user) == pw else None), True

  def grant (self, user, service, scopes, refresh=False):
    if service != self.server.issuer.service:
      self.record (status=400, user=user, service=service, error="unknown service")
      return self.reply (400, {"errors": [{"code": "DENIED",
                                           "message": "unknown service %r" % service}]})
    access = parse_scopes (scopes)
    tok, now = self.server.issuer.token (user or "", access)
    out = {"token": tok, "access_token": tok, "expires_in": self.server.issuer.ttl,
           "issued_at": time.strftime ("%Y-%m-%dT%H:%M:%SZ", time.gmtime (now))}
    if refresh and user:
      rt = secrets.token_hex (16)
      self.server.refresh[rt] = user
      out["refresh_token"] = rt
    self.record (status=200, user=user, service=service, scopes=scopes)
    self.reply (200, out)

  def unauthorized (self, user, why):
    self.record (status=401, user=user, error=why)
    self.reply (401, {"errors": [{"code": "UNAUTHORIZED", "message": why}]},
                [("WWW-Authenticate", 'Basic realm="berth-test-token"')])

  def do_GET (self):
    url = urllib.parse.urlsplit (self.path)
    if url.path != "/token":
      return self.reply (404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
    q = urllib.parse.parse_qs (url.query)
    user, tried = self.basic_user ()
    if self.server.users and user is None:
      return self.unauthorized (None, "bad credentials" if tried else "credentials required")
    self.grant (user, (q.get ("service") or [""])[0], q.get ("scope", []),
                refresh=(q.get ("offline_token") or [""])[0] == "true")

  def do_POST (self):
    url = urllib.parse.urlsplit (self.path)
    if url.path != "/token":
      return self.reply (404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
    n = int (self.headers.get ("Content-Length") or 0)
    form = urllib.parse.parse_qs (self.rfile.read (n).decode ())
    get = lambda k: (form.get (k) or [""])[0]
    grant = get ("grant_type")
    if grant == "password":
      user = get ("username")
      if self.server.users and self.server.users.get (user) != get ("password"):
        return self.unauthorized (user or None, "bad credentials")
    elif grant == "refresh_token":
      user = self.server.refresh.get (get ("refresh_token"))
      if user is None:
        return self.unauthorized (None, "unknown refresh token")
    else:
      self.record (status=400, error="grant_type %r" % grant)
      return self.reply (400, {"error": "unsupported_grant_type"})
    self.grant (user, get ("service"), form.get ("scope", []), refresh=True)


def main ():
  ap = argparse.ArgumentParser ()
  ap.add_argument ("--listen", default="127.0.0.1")
  ap.add_argument ("--port", type=int, default=0)
  ap.add_argument ("--port-file", required=True, help="written with the bound port once listening")
  ap.add_argument ("--key", required=True, help="RSA private key (PEM) signing the tokens")
  ap.add_argument ("--cert", required=True, help="its certificate, sent in the x5c header")
  ap.add_argument ("--issuer", required=True)
  ap.add_argument ("--service", required=True)
  ap.add_argument ("--ttl", type=int, default=300, help="token lifetime in seconds")
  ap.add_argument ("--users", help="file of USER:PASSWORD lines; none = anonymous tokens")
  ap.add_argument ("--tls-cert")
  ap.add_argument ("--tls-key")
  ap.add_argument ("--log", default=os.devnull)
  a = ap.parse_args ()

  srv = ThreadingHTTPServer ((a.listen, a.port), Handler)
  srv.daemon_threads = True
  srv.issuer = Issuer (a.key, a.cert, a.issuer, a.service, a.ttl)
  srv.users = {}
  if a.users:
    with open (a.users) as f:
      for line in f:
        u, _, p = line.rstrip ("\n").partition (":")
        if u:
          srv.users[u] = p
  srv.refresh = {}
  srv.log_path = a.log
  srv.log_lock = threading.Lock ()
  if a.tls_cert:
    ctx = ssl.SSLContext (ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain (a.tls_cert, a.tls_key)
    srv.socket = ctx.wrap_socket (srv.socket, server_side=True)
  tmp = a.port_file + ".tmp"
  with open (tmp, "w") as f:
    f.write ("%d\n" % srv.server_address[1])
  os.rename (tmp, a.port_file)
  try:
    srv.serve_forever ()
  except KeyboardInterrupt:
    pass
  return 0


if __name__ == "__main__":
  sys.exit (main ())
