#!/usr/bin/env python3
"""Regenerate the checked-in seed corpus tests/fuzz/corpus/<target>/ from
the project's own tests and fixtures (run from anywhere):

  python3 tests/fuzz/make-corpus.py            # rewrites tests/fuzz/corpus/

Where each target's seeds come from:
  fuzz-toml       a spread of ../shared/testdata/toml-test valid documents
                  and the TOML literals of tests/unit/test-toml.c, test-config.c
  fuzz-manifest   ../shared/testdata/oci-image-spec (index.tsv: selector byte
                  by media type, as fuzz-smoke did), references from
                  tests/unit/test-reference.c, platforms from test-platform.c
  fuzz-auth       the challenge and token literals of tests/unit/test-auth.c
  fuzz-hosts      the hosts.toml literals of tests/unit/test-hosts.c
  fuzz-unpack     tests/fuzz/unpack-seeds.py (layers of every entry kind)
  fuzz-ocispec    the default seccomp profile (selector 0) and the image
                  configs of the OCI fixtures (selector 1)
  fuzz-nsrt-spec  `runc spec` edited as tests/runtimes/namespaces/lib.sh
                  does, then by every jq filter of tests/runtimes/namespaces/*.sh
  fuzz-filters    the filter literals of tests/unit/test-filters.c and
                  tests/integration/*.sh
File names are the first 16 hex digits of the SHA-256 of the content, as
libFuzzer names corpus files; at most MAX_PER_TARGET seeds per target.
A regression input (tests/fuzz/regressions/<target>/) is also a seed."""
import glob, hashlib, json, os, re, shutil, subprocess, sys, tempfile

HERE = os.path.dirname (os.path.abspath (__file__))
SRC = os.path.dirname (os.path.dirname (HERE))
SHARED = os.path.join (os.path.dirname (SRC), "shared", "testdata")
OUT = os.path.join (HERE, "corpus")
MAX_PER_TARGET = 40
MAX_SEED_BYTES = 64 * 1024

LIT = r'"(?:[^"\\\n]|\\.)*"'


def c_unescape (body):
  out, i = bytearray (), 0
  simple = {"n": 10, "t": 9, "r": 13, "0": 0, "\\": 92, '"': 34, "'": 39, "a": 7, "b": 8, "f": 12, "v": 11}
  while i < len (body):
    ch = body[i]
    if ch != "\\":
      out += ch.encode ()
      i += 1
      continue
    nxt = body[i + 1]
    if nxt == "x":
      m = re.match (r"[0-9a-fA-F]{1,2}", body[i + 2:])
      out.append (int (m.group (0), 16))
      i += 2 + len (m.group (0))
    elif nxt in "01234567":
      m = re.match (r"[0-7]{1,3}", body[i + 1:])
      out.append (int (m.group (0), 8) & 0xFF)
      i += 1 + len (m.group (0))
    else:
      out.append (simple.get (nxt, ord (nxt)))
      i += 2
  return bytes (out)


def c_strings (path, call):
  """Each first argument of call (...) made of adjacent string literals."""
  with open (path) as f:
    text = f.read ()
  text = re.sub (r'"\s*HEX64', '" "' + "a" * 64 + '"', text)
  res = []
  for m in re.finditer (re.escape (call) + r"\s*\(\s*((?:" + LIT + r"\s*)+)", text):
    res.append (b"".join (c_unescape (s[1:-1]) for s in re.findall (LIT, m.group (1))))
  return res


def array_strings (path):
  """The literals inside `const char *x[] = { ... };` initialisers."""
  with open (path) as f:
    text = f.read ()
  res = []
  for m in re.finditer (r"const char \*\w+\[\]\s*=\s*\{([^;]*)\};", text):
    res += [c_unescape (s[1:-1]) for s in re.findall (LIT, m.group (1))]
  return res


def spread (items, n):
  items = list (items)
  if len (items) <= n:
    return items
  return [items[i * len (items) // n] for i in range (n)]


def write (target, seeds):
  d = os.path.join (OUT, target)
  shutil.rmtree (d, ignore_errors=True)
  os.makedirs (d)
  seen = set ()
  reg = sorted (glob.glob (os.path.join (HERE, "regressions", target, "*")))
  regs = [open (p, "rb").read () for p in reg]
  for s in regs + spread ([s for s in seeds if len (s) <= MAX_SEED_BYTES], MAX_PER_TARGET):
    h = hashlib.sha256 (s).hexdigest ()[:16]
    if h in seen:
      continue
    seen.add (h)
    with open (os.path.join (d, h), "wb") as f:
      f.write (s)
  print ("%-16s %3d seeds" % (target, len (seen)))


def toml_seeds ():
  seeds = []
  valid = sorted (glob.glob (os.path.join (SHARED, "toml-test", "toml-1.0.0", "valid", "**", "*.toml"), recursive=True))
  seeds += [open (p, "rb").read () for p in spread (valid, 28)]
  for t in ("test-toml.c", "test-config.c"):
    p = os.path.join (SRC, "tests", "unit", t)
    for call in ("parse_ok", "parse_fails", "toml_parse", "load_text", "config_load_text"):
      seeds += c_strings (p, call)
  return seeds


def manifest_seeds ():
  seeds = []
  idx = os.path.join (SHARED, "oci-image-spec", "index.tsv")
  if os.path.exists (idx):
    rows = [l.rstrip ("\n").split ("\t") for l in open (idx)][1:]
    for row in spread (rows, 26):
      path, mt = row[0], row[1]
      b = 0x80 if "descriptor" in mt else 0x81 if "manifest" in mt else 0x82 if "index" in mt \
        else 0x83 if "config" in mt else 0x84
      seeds.append (bytes ([b]) + open (os.path.join (SHARED, "oci-image-spec", path), "rb").read ())
  t = os.path.join (SRC, "tests", "unit")
  for r in spread (c_strings (os.path.join (t, "test-reference.c"), "reference_parse")
                   + c_strings (os.path.join (t, "test-reference.c"), "reference_parse_strict"), 8):
    seeds.append (b"\x08" + r)
  for p in spread (c_strings (os.path.join (t, "test-platform.c"), "expect_parse"), 6):
    seeds.append (b"\x0c" + p)
  return seeds


def auth_seeds ():
  p = os.path.join (SRC, "tests", "unit", "test-auth.c")
  seeds = c_strings (p, "parse_ok") + c_strings (p, "assert_parse_fails")
  seeds += [b'{"token":"abc","expires_in":300}', b'{"access_token":"x","issued_at":"2024-01-01T00:00:00Z"}',
            b"YWxpY2U6czNjcmV0"]
  return seeds


def hosts_seeds ():
  p = os.path.join (SRC, "tests", "unit", "test-hosts.c")
  return c_strings (p, "parse_ok") + c_strings (p, "parse_fails")


def unpack_seeds ():
  d = tempfile.mkdtemp ()
  try:
    subprocess.run ([sys.executable, os.path.join (HERE, "unpack-seeds.py"), os.path.join (d, "s")], check=True)
    return [open (p, "rb").read () for p in sorted (glob.glob (os.path.join (d, "s", "*")))]
  finally:
    shutil.rmtree (d)


def ocispec_seeds ():
  seeds = []
  prof = "/usr/share/containers/seccomp.json"
  if os.path.exists (prof):
    seeds.append (b"\x00" + open (prof, "rb").read ())
  seeds.append (b'\x00{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}')
  idx = os.path.join (SHARED, "oci-image-spec", "index.tsv")
  if os.path.exists (idx):
    rows = [l.rstrip ("\n").split ("\t") for l in open (idx)][1:]
    for row in [r for r in rows if "config" in r[1]]:
      body = open (os.path.join (SHARED, "oci-image-spec", row[0]), "rb").read ()
      seeds += [b"\x01" + body, b"\x03" + body]
  seeds.append (b'\x01{"config":{"Cmd":["sh"],"Env":["PATH=/bin"],"User":"1000:1000","WorkingDir":"/w"}}')
  return seeds


def nsrt_seeds ():
  if not shutil.which ("runc") or not shutil.which ("jq"):
    print ("fuzz-nsrt-spec: runc or jq missing, keeping the old seeds", file=sys.stderr)
    return None
  d = tempfile.mkdtemp ()
  try:
    subprocess.run (["runc", "spec"], cwd=d, check=True)
    base = os.path.join (d, "config.json")
    def jq (flt, src):
      r = subprocess.run (["jq", "-c", flt, src], capture_output=True)
      return r.stdout if r.returncode == 0 else None
    good = jq (".process.terminal=false | .root.readonly=false", base)
    open (base, "wb").write (good)
    seeds = [good, open (base, "rb").read ()]
    filters = []
    for sh in sorted (glob.glob (os.path.join (SRC, "tests", "runtimes", "namespaces", "*.sh"))):
      for line in open (sh):
        m = re.match (r"""\s*bad '(.*)' \d+ """, line) or re.match (r"""\s*edit_config "\$B" '(.*)'\s*$""", line)
        if m:
          filters.append (m.group (1))
    filters += ['.linux.seccomp={"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],'
                '"syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},'
                '{"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"}]}]}',
                '.linux.namespaces+=[{"type":"user"}] | .linux.uidMappings=[{"containerID":0,"hostID":100000,"size":65536}]'
                ' | .linux.gidMappings=[{"containerID":0,"hostID":100000,"size":65536}]',
                '.mounts+=[{"destination":"/data","type":"bind","source":"/tmp","options":["rbind","ro","rprivate"]}]',
                '.linux.rootfsPropagation="rslave"', '.process.user={"uid":1000,"gid":1000,"additionalGids":[10,20]}']
    for flt in filters:
      out = jq (flt, base)
      if out:
        seeds.append (out)
    return seeds
  finally:
    shutil.rmtree (d)


def filter_seeds ():
  seeds = array_strings (os.path.join (SRC, "tests", "unit", "test-filters.c"))
  for sh in sorted (glob.glob (os.path.join (SRC, "tests", "integration", "*.sh"))):
    for m in re.finditer (r"""--filter[ =]['"]?([^'" ]+)""", open (sh, errors="replace").read ()):
      seeds.append (m.group (1).encode ())
  seeds += [b"id==a\nlabels.\"x\"~=^v", b"name~=busybox,labels.foo!=bar\ntype==t"]
  return seeds


def main ():
  write ("fuzz-toml", toml_seeds ())
  write ("fuzz-manifest", manifest_seeds ())
  write ("fuzz-auth", auth_seeds ())
  write ("fuzz-hosts", hosts_seeds ())
  write ("fuzz-unpack", unpack_seeds ())
  write ("fuzz-ocispec", ocispec_seeds ())
  s = nsrt_seeds ()
  if s is not None:
    write ("fuzz-nsrt-spec", s)
  write ("fuzz-filters", filter_seeds ())


if __name__ == "__main__":
  main ()
