#!/usr/bin/python3
# tests/images/mkimages.py OUTDIR: write berth's test images as OCI image
# layouts under OUTDIR, offline and byte-for-byte reproducible.  Called by
# tests/images/build.sh, which validates what this writes; see
# tests/images/README.md for the images and what each is for.
#
# Only the Python standard library, Debian's busybox-static (/bin/busybox)
# and the zstd CLI.  Reproducible: every tar entry has a fixed mtime, owner
# 0:0 and an explicit mode, entries are sorted, gzip headers carry no name
# and mtime 0, JSON is written with sorted keys and no whitespace, and the
# large file's bytes come from SHAKE-256 of a fixed seed.
#
# Besides the layouts it writes OUTDIR/images.tsv (what to push where, read
# by tests/registry/push.sh and bench/run) and OUTDIR/documents.tsv (every
# JSON document with its media type, read by build.sh for validation).

import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile

BUSYBOX = os.environ.get ("BUSYBOX", "/bin/busybox")
MTIME = 1700000000                       # 2023-11-14T22:13:20Z
CREATED = "2023-11-14T22:13:20Z"
BIG_SIZE = 64 * 1024 * 1024
BIG_SEED = b"berth test images: multilayer/data/random.bin v1"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
APPLETS = sorted ([
  "[", "basename", "cat", "chmod", "cp", "date", "dirname", "echo", "env",
  "false", "grep", "head", "hostname", "id", "kill", "ln", "ls", "mkdir",
  "mv", "ps", "pwd", "rm", "sed", "sh", "sleep", "sort", "stat", "tail",
  "test", "touch", "true", "uname", "wc",
])

MT = {
  "oci-layout": "application/vnd.oci.layout.header.v1+json",
  "oci-index": "application/vnd.oci.image.index.v1+json",
  "oci-manifest": "application/vnd.oci.image.manifest.v1+json",
  "oci-config": "application/vnd.oci.image.config.v1+json",
  "oci-gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
  "oci-zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
  "docker-manifest": "application/vnd.docker.distribution.manifest.v2+json",
  "docker-list": "application/vnd.docker.distribution.manifest.list.v2+json",
  "docker-config": "application/vnd.docker.container.image.v1+json",
  "docker-gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
}


def canonical (obj):
  return json.dumps (obj, sort_keys=True, separators=(",", ":")).encode ()


def sha256 (data):
  return "sha256:" + hashlib.sha256 (data).hexdigest ()


def host_arch ():
  m = platform.machine ()
  return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
          "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get (m, m)


# ------------------------------------------------------------------ layers

class Layer:
  """An uncompressed layer tar built from a list of entries, with its
  compressed forms.  Entries: (path, kind, mode, payload) where kind is
  dir, file (payload = bytes), symlink / hardlink (payload = target)."""

  def __init__ (self, entries):
    buf = io.BytesIO ()
    with tarfile.open (fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
      for path, kind, mode, payload in sorted (entries, key=lambda e: e[0].split ("/")):
        ti = tarfile.TarInfo (path)
        ti.mtime = MTIME
        ti.mode = mode
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        if kind == "dir":
          ti.type = tarfile.DIRTYPE
          tf.addfile (ti)
        elif kind == "file":
          ti.size = len (payload)
          tf.addfile (ti, io.BytesIO (payload))
        elif kind == "symlink":
          ti.type = tarfile.SYMTYPE
          ti.linkname = payload
          tf.addfile (ti)
        elif kind == "hardlink":
          ti.type = tarfile.LNKTYPE
          ti.linkname = payload
          tf.addfile (ti)
        else:
          raise ValueError (kind)
    self.tar = buf.getvalue ()
    self.diff_id = sha256 (self.tar)
    self._gzip = None
    self._zstd = None

  def gzip (self):
    if self._gzip is None:
      out = io.BytesIO ()
      with gzip.GzipFile (filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as g:
        g.write (self.tar)
      self._gzip = out.getvalue ()
    return self._gzip

  def zstd (self):
    if self._zstd is None:
      p = subprocess.run (["zstd", "-q", "-c", "-3", "-T1"], input=self.tar,
                          stdout=subprocess.PIPE, check=True)
      self._zstd = p.stdout
    return self._zstd


def dirs_for (paths, mode=0o755):
  """Directory entries for every parent of paths."""
  seen = set ()
  for p in paths:
    parts = p.split ("/")[:-1]
    for i in range (1, len (parts) + 1):
      seen.add ("/".join (parts[:i]))
  return [(d, "dir", mode, None) for d in sorted (seen)]


def busybox_layer ():
  with open (BUSYBOX, "rb") as f:
    binary = f.read ()
  entries = [("bin", "dir", 0o755, None), ("bin/busybox", "file", 0o755, binary)]
  entries += [("bin/" + a, "symlink", 0o777, "busybox") for a in APPLETS]
  for d in ("etc", "tmp", "root", "proc", "sys", "dev"):
    entries.append ((d, "dir", 0o1777 if d == "tmp" else 0o755, None))
  entries.append (("etc/passwd", "file", 0o644, b"root:x:0:0:root:/root:/bin/sh\n"))
  entries.append (("etc/group", "file", 0o644, b"root:x:0:\n"))
  return Layer (entries)


def data_layer ():
  """The large layer: 64 MiB that do not compress, plus files that the
  upper layer deletes (whiteout) or hides (opaque directory)."""
  big = hashlib.shake_256 (BIG_SEED).digest (BIG_SIZE)
  files = {
    "data/random.bin": (0o644, big),
    "etc/berth-release": (0o644, b"layer=data\n"),
    "etc/removed-later.txt": (0o644, b"the upper layer whites this out\n"),
    "opt/app/old-1.txt": (0o644, b"hidden by the opaque opt/app in the upper layer\n"),
    "opt/app/old-2.txt": (0o644, b"hidden too\n"),
    "opt/app/sub/deep.txt": (0o644, b"hidden too, one level down\n"),
  }
  entries = dirs_for (files) + [(p, "file", m, d) for p, (m, d) in files.items ()]
  return Layer (entries)


def small_files_layer ():
  """Many small compressible files, a hard link, a symlink and odd modes:
  meat for unpack tests and for per-file overheads."""
  files = {}
  for i in range (256):
    body = ("file %03d\n" % i).encode () * (16 + (i * 37) % 200)
    files["usr/share/berth/files/%03d.txt" % i] = (0o644, body)
  files["usr/share/berth/private/secret.txt"] = (0o600, b"mode 0600\n")
  files["usr/local/bin/hello"] = (0o755, b"#!/bin/sh\necho hello from berth test image\n")
  entries = dirs_for (files)
  entries = [(p, k, 0o700 if p == "usr/share/berth/private" else m, d)
             for p, k, m, d in entries]
  entries += [(p, "file", m, d) for p, (m, d) in files.items ()]
  entries.append (("usr/share/berth/hardlink.txt", "hardlink", 0o644,
                   "usr/share/berth/files/000.txt"))
  entries.append (("usr/share/berth/symlink.txt", "symlink", 0o777, "files/001.txt"))
  return Layer (entries)


def upper_layer ():
  """Deletions as the OCI layer spec writes them: .wh.NAME removes NAME
  from lower layers, DIR/.wh..wh..opq hides everything lower in DIR."""
  entries = [
    ("data", "dir", 0o755, None),
    ("data/small-update.txt", "file", 0o644, b"written by the upper layer\n"),
    ("etc", "dir", 0o755, None),
    ("etc/.wh.removed-later.txt", "file", 0o644, b""),
    ("etc/berth-release", "file", 0o644, b"layer=upper\n"),
    ("opt", "dir", 0o755, None),
    ("opt/app", "dir", 0o755, None),
    ("opt/app/.wh..wh..opq", "file", 0o644, b""),
    ("opt/app/new.txt", "file", 0o644, b"the only file left in opt/app\n"),
  ]
  return Layer (entries)


# ------------------------------------------------------------------ layouts

class Layout:
  """One image directory in a format skopeo reads: kind "oci" is an OCI
  image layout (image-layout spec: oci-layout, index.json, blobs/sha256/),
  kind "dir" is skopeo's dir: transport (version, manifest.json, blobs named
  by hex digest, list instances as HEX.manifest.json).  Docker media types
  need "dir": skopeo's oci: transport only resolves OCI manifests and
  indexes from index.json."""

  def __init__ (self, top, name, docs, kind="oci"):
    self.name = name
    self.kind = kind
    self.dir = os.path.join (top, name)
    self.docs = docs
    self.refs = []
    self.sizes = {}
    os.makedirs (os.path.join (self.dir, "blobs", "sha256") if kind == "oci" else self.dir)

  def path (self, d, manifest=False):
    hexd = d.split (":")[1]
    if self.kind == "oci":
      return os.path.join (self.dir, "blobs", "sha256", hexd)
    return os.path.join (self.dir, hexd + (".manifest.json" if manifest else ""))

  def _write (self, path, data, media_type=None):
    if not os.path.exists (path):
      with open (path, "wb") as f:
        f.write (data)
      if media_type and media_type.endswith ("+json"):
        self.docs.append ((self.name, media_type, os.path.relpath (path, os.path.dirname (self.dir))))

  def descriptor (self, media_type, data, **extra):
    d = sha256 (data)
    manifest = "manifest" in media_type or "index" in media_type
    self._write (self.path (d, manifest), data, media_type)
    self.sizes[d] = len (data)
    desc = {"mediaType": media_type, "digest": d, "size": len (data)}
    desc.update (extra)
    return desc

  def tag (self, tag, desc):
    if self.kind == "dir":
      assert not self.refs, "a dir: layout holds one reference"
      with open (self.path (desc["digest"], True), "rb") as f:
        data = f.read ()
      self._write (os.path.join (self.dir, "manifest.json"), data)
    d = dict (desc)
    d["annotations"] = {"org.opencontainers.image.ref.name": tag}
    self.refs.append (d)

  def finish (self):
    if self.kind == "dir":
      self._write (os.path.join (self.dir, "version"), b"Directory Transport Version: 1.1\n")
      return
    header = canonical ({"imageLayoutVersion": "1.0.0"})
    index = canonical ({"schemaVersion": 2, "mediaType": MT["oci-index"],
                        "manifests": self.refs})
    self._write (os.path.join (self.dir, "oci-layout"), header, MT["oci-layout"])
    self._write (os.path.join (self.dir, "index.json"), index, MT["oci-index"])

  def source (self, tag):
    """skopeo's source reference, relative to the top directory."""
    return "oci:%s:%s" % (self.name, tag) if self.kind == "oci" else "dir:%s" % self.name


def config (arch, layers, comments, docker=False, variant=None):
  cfg = {
    "created": CREATED,
    "architecture": arch,
    "os": "linux",
    "config": {"Env": [PATH_ENV], "Cmd": ["sh"]},
    "rootfs": {"type": "layers", "diff_ids": [l.diff_id for l in layers]},
    "history": [{"created": CREATED, "created_by": "tests/images/mkimages.py: " + c}
                for c in comments],
  }
  if variant:
    cfg["variant"] = variant
  return canonical (cfg)


def image (layout, arch, layers, comments, compression="gzip", docker=False, variant=None):
  """Write config, layers and manifest into layout; return the manifest's descriptor."""
  cfg_mt = MT["docker-config"] if docker else MT["oci-config"]
  cfg = layout.descriptor (cfg_mt, config (arch, layers, comments, docker, variant))
  descs = []
  for l in layers:
    if compression == "zstd":
      descs.append (layout.descriptor (MT["oci-zstd"], l.zstd ()))
    else:
      descs.append (layout.descriptor (MT["docker-gzip" if docker else "oci-gzip"], l.gzip ()))
  man_mt = MT["docker-manifest"] if docker else MT["oci-manifest"]
  man = {"schemaVersion": 2, "mediaType": man_mt, "config": cfg, "layers": descs}
  return layout.descriptor (man_mt, canonical (man))


def closure (layout, desc, arch, seen, host_only):
  """digest -> size of desc and everything below it; with host_only, only
  the host platform's manifest of an index (what a pull fetches)."""
  seen[desc["digest"]] = desc["size"]
  mt = desc["mediaType"]
  if mt not in (MT["oci-index"], MT["docker-list"], MT["oci-manifest"], MT["docker-manifest"]):
    return
  with open (layout.path (desc["digest"], True), "rb") as f:
    doc = json.load (f)
  children = list (doc.get ("manifests", []))
  if host_only:
    children = [c for c in children if c["platform"]["architecture"] == arch]
  if "config" in doc:
    children.append (doc["config"])
  children += doc.get ("layers", [])
  for c in children:
    closure (layout, c, arch, seen, host_only)


def main ():
  if len (sys.argv) != 2:
    print ("usage: %s OUTDIR" % sys.argv[0], file=sys.stderr)
    return 2
  top = sys.argv[1]
  if os.path.exists (top):
    shutil.rmtree (top)
  os.makedirs (top)
  arch = host_arch ()
  other, other_variant = ("arm64", "v8") if arch != "arm64" else ("amd64", None)

  docs = []
  rows = []

  def plat (a, v=None):
    p = {"architecture": a, "os": "linux"}
    if v:
      p["variant"] = v
    return p

  def publish (name, lo, tag, desc, flags="-"):
    lo.tag (tag, desc)
    lo.finish ()
    every, host = {}, {}
    closure (lo, desc, arch, every, False)
    closure (lo, desc, arch, host, True)
    rows.append ((name, lo.source (tag), "%s:latest" % name, desc["mediaType"], desc["digest"],
                  flags, str (len (every)), str (sum (every.values ())),
                  str (len (host)), str (sum (host.values ())), ",".join (sorted (host))))

  bb = busybox_layer ()

  # busybox: one gzip layer.
  lo = Layout (top, "busybox", docs)
  publish ("busybox", lo, "latest", image (lo, arch, [bb], ["busybox-static"]))

  # multilayer: base, 64 MiB, small files, whiteouts/opaque.
  lo = Layout (top, "multilayer", docs)
  layers = [bb, data_layer (), small_files_layer (), upper_layer ()]
  publish ("multilayer", lo, "latest",
           image (lo, arch, layers, ["busybox-static", "64 MiB random data", "256 small files",
                                     "whiteout and opaque directory"]))

  # multiarch: OCI index, host arch + a second platform reusing the layer.
  lo = Layout (top, "multiarch", docs)
  m1 = image (lo, arch, [bb], ["busybox-static"])
  m2 = image (lo, other, [bb], ["busybox-static (%s binary, labelled %s)" % (arch, other)],
              variant=other_variant)
  idx = {"schemaVersion": 2, "mediaType": MT["oci-index"],
         "manifests": [dict (m1, platform=plat (arch)),
                       dict (m2, platform=plat (other, other_variant))]}
  publish ("multiarch", lo, "latest", lo.descriptor (MT["oci-index"], canonical (idx)), "--all")

  # zstd: busybox with a zstd layer.
  lo = Layout (top, "zstd", docs)
  publish ("zstd", lo, "latest", image (lo, arch, [bb], ["busybox-static, zstd"], compression="zstd"))

  # docker-v2s2: a Docker schema 2 manifest (skopeo dir: layout).
  lo = Layout (top, "docker-v2s2", docs, kind="dir")
  publish ("docker-v2s2", lo, "latest", image (lo, arch, [bb], ["busybox-static"], docker=True),
           "--format v2s2")

  # docker-list: a Docker manifest list over the same v2s2 manifest and a
  # second platform's.
  lo = Layout (top, "docker-list", docs, kind="dir")
  m1 = image (lo, arch, [bb], ["busybox-static"], docker=True)
  m2 = image (lo, other, [bb], ["busybox-static (%s binary, labelled %s)" % (arch, other)],
              docker=True, variant=other_variant)
  lst = {"schemaVersion": 2, "mediaType": MT["docker-list"],
         "manifests": [dict (m1, platform=plat (arch)),
                       dict (m2, platform=plat (other, other_variant))]}
  publish ("docker-list", lo, "latest", lo.descriptor (MT["docker-list"], canonical (lst)), "--all")

  with open (os.path.join (top, "images.tsv"), "w") as f:
    # No empty fields: bash's `read` with IFS=tab would merge them.
    f.write ("# name\tsource\trepository:tag\tmediaType\tdigest\tskopeo flags"
             "\tblobs\tbytes\thost blobs\thost bytes\thost digests\n")
    for r in rows:
      f.write ("\t".join (r) + "\n")
  with open (os.path.join (top, "documents.tsv"), "w") as f:
    for name, mt, path in docs:
      f.write ("%s\t%s\t%s\n" % (name, mt, path))
  with open (os.path.join (top, "sizes.txt"), "w") as f:
    f.write ("%-12s %-24s %5s %10s   %-s\n" % ("image", "source", "blobs", "bytes",
                                               "host platform: blobs, bytes"))
    for r in rows:
      f.write ("%-12s %-24s %5s %10s   %s, %s\n" % (r[0], r[1], r[6], r[7], r[8], r[9]))
  return 0


if __name__ == "__main__":
  sys.exit (main ())
