#!/usr/bin/python3
# tests/images/mkimages.py OUTDIR: write berth's test images as OCI image
# layouts under OUTDIR, offline and byte-for-byte reproducible.  Called by
# tests/images/build.sh, which validates what this writes; see
# tests/images/README.md for the images and what each is for.
#
# Only the Python standard library, Debian's busybox-static (/bin/busybox),
# the zstd CLI, ldd, and the host's own Debian files for debian-sized and
# redis-sized.  Reproducible: every tar entry has a fixed mtime, owner 0:0
# and an explicit mode, entries are sorted, gzip headers carry no name and
# mtime 0, JSON is written with sorted keys and no whitespace, and the
# large file's bytes come from SHAKE-256 of a fixed seed.  edgecase is the
# exception on purpose: its owners, modes, mtimes and entry order are part
# of the test, and they are fixed in edge_layers.
#
# Besides the layouts it writes OUTDIR/images.tsv (what to push where, read
# by tests/registry/push.sh and bench/run) and OUTDIR/documents.tsv (every
# JSON document with its media type, read by build.sh for validation).
# `mkimages.py --inputs` prints the host files it would copy with their
# sizes and mtimes (build.sh's stamp).

import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import stat
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


# ------------------------------------------------------------------ edgecase

# The golden-test image of issue 5: a large synthetic base tree, then upper
# layers with whiteouts, opaque directories, type changes, a cross-layer
# hard link, xattrs, a file capability, devices, odd modes and owners, long
# paths, sparse files, nanosecond mtimes and odd names.  The tar is written
# here, entry by entry (headers from tarfile's PAX encoder, sparse entries
# by hand), in the order given, not sorted.

EDGE_SEED = b"berth test images: edgecase v1"
EDGE_FILES = 3000
EDGE_SYMLINKS = 300
EDGE_HARDLINKS = 20
# struct vfs_cap_data, VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE, then
# {permitted, inheritable} twice: cap_net_bind_service (10) = "+ep".
EDGE_CAP = ((0x02000000 | 1).to_bytes (4, "little") + (1 << 10).to_bytes (4, "little")
            + bytes (4) + bytes (8))
EDGE_LONG = "long/" + "x" * 250 + "/" + "y" * 254 + "/" + "z" * 255
TARTYPE = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
           "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
           "fifo": tarfile.FIFOTYPE}


def pad512 (n):
  return bytes (-n % 512)


def tar_entry (e):
  """One entry: a dict with path, kind and optionally mode, uid, gid, data,
  link, dev (major, minor), xattrs (name -> bytes), mtime (int seconds or
  a pax decimal string with nanoseconds), sparse (realsize, [(offset,
  bytes)]: a GNU PAX 1.0 sparse file)."""
  kind = e["kind"]
  ti = tarfile.TarInfo (e["path"])
  ti.type = TARTYPE[kind]
  ti.mode = e.get ("mode", 0o755 if kind == "dir" else 0o777 if kind == "symlink" else 0o644)
  ti.uid = e.get ("uid", 0)
  ti.gid = e.get ("gid", 0)
  ti.uname = ti.gname = ""
  mtime = e.get ("mtime", MTIME)
  pax = {}
  if isinstance (mtime, str):
    ti.mtime = max (0, int (mtime.split (".")[0]))
    pax["mtime"] = mtime
  else:
    ti.mtime = mtime
  if kind in ("symlink", "hardlink"):
    ti.linkname = e["link"]
  if kind in ("chr", "blk"):
    ti.devmajor, ti.devminor = e["dev"]
  for k, v in sorted (e.get ("xattrs", {}).items ()):
    # tarfile writes str values as UTF-8: keep the bytes UTF-8 clean.
    pax["SCHILY.xattr." + k] = v.decode ("utf-8")
  data = e.get ("data", b"")
  if "sparse" in e:
    # GNU tar's PAX sparse format 1.0: the real name and size in the pax
    # header, a placeholder ustar name, and the data starts with the map
    # (decimal lines: count, then offset and length per chunk) padded to
    # a block, followed by the chunks' bytes back to back.
    realsize, chunks = e["sparse"]
    head, _, base = e["path"].rpartition ("/")
    ti.name = (head + "/" if head else "") + "GNUSparseFile.0/" + base
    pax.update ({"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                 "GNU.sparse.name": e["path"], "GNU.sparse.realsize": str (realsize)})
    m = ("%d\n" % len (chunks) + "".join ("%d\n%d\n" % (o, len (b)) for o, b in chunks)).encode ()
    data = m + pad512 (len (m)) + b"".join (b for _, b in chunks)
  if kind == "file":
    ti.size = len (data)
  ti.pax_headers = pax
  hdr = ti.tobuf (tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
  if kind != "file":
    return hdr
  return hdr + data + pad512 (len (data))


def tar_stream (entries):
  out = b"".join (tar_entry (e) for e in entries) + bytes (1024)
  return out + bytes (-len (out) % tarfile.RECORDSIZE)


class RawLayer (Layer):
  """A layer from a tar stream written elsewhere (tar_stream)."""

  def __init__ (self, tar):
    self.tar = tar
    self.diff_id = sha256 (tar)
    self._gzip = None
    self._zstd = None


class EdgeLayer:
  """Entries of one layer in order; parent directories are added before
  their first child with the metadata the image has for them so far
  (dirmeta, shared by the layers of one image), as image builders do."""

  def __init__ (self, dirmeta):
    self.dirmeta = dirmeta
    self.entries = []
    self.paths = set ()

  def add (self, path, kind="file", **kw):
    parts = path.split ("/")
    for i in range (1, len (parts)):
      d = "/".join (parts[:i])
      if d not in self.paths:
        self.paths.add (d)
        self.entries.append (dict (self.dirmeta.setdefault (d, {}), path=d, kind="dir"))
    assert path not in self.paths, path
    self.paths.add (path)
    if kind == "dir":
      if not kw:                        # unchanged since the layer below
        kw = dict (self.dirmeta.get (path, {}))
      self.dirmeta[path] = dict (kw)
    if isinstance (kw.get ("data"), str):
      kw["data"] = kw["data"].encode ()
    self.entries.append (dict (kw, path=path, kind=kind))

  def whiteout (self, path):
    d, _, base = path.rpartition ("/")
    self.add ((d + "/" if d else "") + ".wh." + base, data=b"")
    for k in [k for k in self.dirmeta if k == path or k.startswith (path + "/")]:
      del self.dirmeta[k]

  def tar (self):
    return tar_stream (self.entries)


def edge_tree ():
  """The synthetic base tree: EDGE_FILES files in tree/dNN/sN/... up to
  five levels deep, sizes from empty to 128 KiB, half text, half
  SHAKE-256 bytes, a few modes and owners; symlinks (relative to files and
  directories, absolute, dangling) and in-layer hard links.  Returns
  (files, symlinks, hardlinks) as lists of (path, attributes)."""
  files = []
  exts = [".txt", ".conf", ".bin", "", ".so.1", ".json", ".gz", ".md"]
  modes = [0o644, 0o644, 0o644, 0o644, 0o644, 0o755, 0o755, 0o600, 0o444, 0o640]
  for i in range (EDGE_FILES):
    h = hashlib.sha256 (EDGE_SEED + b"/file/%d" % i).digest ()
    depth = 1 + h[0] % 5
    comps = ["tree", "d%02d" % (h[1] % 12)] + ["s%d" % (h[2 + k] % 3) for k in range (depth - 1)]
    path = "/".join (comps + ["f%04d%s" % (i, exts[h[7] % len (exts)])])
    r = h[8]
    if r < 8:
      size = 0
    elif r < 180:
      size = int.from_bytes (h[9:11], "little") % 2048
    elif r < 245:
      size = 2048 + int.from_bytes (h[9:12], "little") % 30000
    else:
      size = 32768 + int.from_bytes (h[9:12], "little") % 98304
    if h[12] % 2:
      line = ("line of file %d, %s\n" % (i, path)).encode ()
      data = (line * (size // len (line) + 1))[:size]
    else:
      data = hashlib.shake_256 (EDGE_SEED + b"/data/%d" % i).digest (size)
    attrs = {"mode": modes[h[13] % len (modes)], "data": data}
    if h[14] % 16 == 0:
      attrs["uid"] = attrs["gid"] = 1000
    elif h[14] % 16 == 1:
      attrs["uid"] = attrs["gid"] = 65534
    if h[15] % 8 == 0:
      attrs["mtime"] = 1000000000 + int.from_bytes (h[16:20], "little") % 600000000
    files.append ((path, attrs))
  dirs = sorted ({p.rsplit ("/", 1)[0] for p, _ in files})
  symlinks = []
  for j in range (EDGE_SYMLINKS):
    h = hashlib.sha256 (EDGE_SEED + b"/symlink/%d" % j).digest ()
    src_dir = dirs[int.from_bytes (h[0:4], "little") % len (dirs)]
    path = "%s/l%03d" % (src_dir, j)
    target_file = files[int.from_bytes (h[4:8], "little") % len (files)][0]
    k = h[8] % 8
    if k < 4:      # relative, to a file
      link = os.path.relpath (target_file, src_dir)
    elif k < 6:    # relative, to a directory
      link = os.path.relpath (target_file.rsplit ("/", 1)[0], src_dir)
    elif k == 6:   # absolute
      link = "/" + target_file
    else:          # dangling
      link = "../missing/%d" % j
    symlinks.append ((path, {"link": link}))
  hardlinks = []
  for j in range (EDGE_HARDLINKS):
    h = hashlib.sha256 (EDGE_SEED + b"/hardlink/%d" % j).digest ()
    target, attrs = files[int.from_bytes (h[0:4], "little") % len (files)]
    d = dirs[int.from_bytes (h[4:8], "little") % len (dirs)]
    a = {k: v for k, v in attrs.items () if k != "data"}
    hardlinks.append (("%s/h%02d" % (d, j), dict (a, link=target)))
  return files, symlinks, hardlinks


def edge_layers (cross_layer_link=True):
  """The three layers of edgecase (and, without the cross-layer hard link,
  edgecase-overlay): a list of tar streams."""
  dirmeta = {}
  files, symlinks, hardlinks = edge_tree ()
  fileattrs = dict (files)

  # Layer 1: the tree and what the upper layers change.
  l1 = EdgeLayer (dirmeta)
  l1.add ("tree", "dir")
  l1.add ("tree/d01", "dir", xattrs={"user.layer1": b"set by layer 1"})
  for p, a in sorted (files + symlinks, key=lambda e: e[0].split ("/")):
    l1.add (p, "symlink" if "link" in a else "file", **a)
  for p, a in hardlinks:                # after their targets
    l1.add (p, "hardlink", **a)
  l1.add ("opq", "dir")
  l1.add ("opq/keep-name", data="layer 1 keep-name\n")
  l1.add ("opq/old-a", data="hidden by the opaque opq in layer 2\n")
  l1.add ("opq/old-b", mode=0o600, uid=1000, gid=1000, data="hidden too\n")
  l1.add ("opq/sub", "dir", mode=0o700)
  l1.add ("opq/sub/deep", data="hidden too, one level down\n")
  l1.add ("opq/old-link", "symlink", link="old-a")
  l1.add ("swap", "dir")
  l1.add ("swap/dir-to-file", "dir", mode=0o750)
  l1.add ("swap/dir-to-file/inner", data="goes away with its directory in layer 2\n")
  l1.add ("swap/file-to-dir", mode=0o644, data="a file in layer 1, a directory in 2, a file in 3\n")
  l1.add ("links", "dir")
  l1.add ("links/original", mode=0o644, data="hard-linked from layer 2, whited out in 3\n")
  l1.add ("links/pair-a", mode=0o640, uid=1000, gid=1000, data="one inode, two names\n")
  l1.add ("links/pair-b", "hardlink", mode=0o640, uid=1000, gid=1000, link="links/pair-a")
  l1.add ("meta", "dir")
  l1.add ("meta/chmod-only", data="layer 3 changes only mode and owner\n")
  l1.add ("meta/xattr", "dir")
  l1.add ("meta/xattr/replaced", data="layer 1\n", xattrs={"user.old": b"from layer 1"})

  # Layer 2: deletions, an opaque directory, type changes, the cross-layer
  # link and the special files.
  l2 = EdgeLayer (dirmeta)
  gone = {"tree/d07", "tree/d03/s1"}
  for d in sorted (gone):
    assert d in dirmeta, d
  l2.add ("tree", "dir")
  l2.whiteout ("tree/d07")
  l2.whiteout ("tree/d03/s1")
  victims = [p for i, (p, _) in enumerate (files)
             if i % 97 == 5 and not any (p.startswith (g + "/") for g in gone)]
  victims += [p for j, (p, _) in enumerate (symlinks)
              if j % 41 == 3 and not any (p.startswith (g + "/") for g in gone)]
  for p in sorted (victims, key=lambda p: p.split ("/")):
    l2.whiteout (p)
  l2.whiteout ("tree/never-existed")
  # A new entry before the opaque marker (the spec wants the marker first;
  # containerd accepts either order), then the marker, then the rest.
  l2.add ("opq", "dir")
  l2.add ("opq/0-before-marker", data="written before the opaque marker\n")
  l2.add ("opq/.wh..wh..opq", data=b"")
  l2.add ("opq/keep-name", data="layer 2 keep-name: a new file in the opaque opq\n")
  l2.add ("opq/new-dir", "dir", mode=0o711)
  l2.add ("opq/new-dir/file", data="layer 2\n")
  l2.add ("swap", "dir")
  l2.add ("swap/dir-to-file", mode=0o640, data="was a directory in layer 1\n")
  l2.add ("swap/file-to-dir", "dir", mode=0o750, uid=1000, gid=1000)
  l2.add ("swap/file-to-dir/child", data="a directory in layer 2\n")
  if cross_layer_link:
    l2.add ("links", "dir")
    l2.add ("links/from-upper", "hardlink", mode=0o644, link="links/original")
  l2.add ("meta", "dir")
  l2.add ("meta/empty", data=b"")
  l2.add ("meta/xattr/user", data="user xattrs\n",
          xattrs={"user.alpha": b"alpha", "user.with space": b"a value = with spaces",
                  "user.utf8": "ünïcödé ✓".encode ()})
  l2.add ("meta/xattr/trusted", data="a trusted.* xattr\n", xattrs={"trusted.berth-test": b"t"})
  l2.add ("meta/xattr/dir", "dir", mode=0o755, xattrs={"user.on-a-directory": b"yes"})
  l2.add ("meta/xattr/dir/inside", data="in a directory with an xattr\n")
  l2.add ("meta/xattr/cap-net-bind-service", mode=0o755, data="#!/bin/sh\necho capable\n",
          xattrs={"security.capability": EDGE_CAP, "user.also": b"and a user xattr"})
  l2.add ("meta/dev", "dir")
  l2.add ("meta/dev/null", "chr", mode=0o666, dev=(1, 3))
  l2.add ("meta/dev/loop0", "blk", mode=0o660, gid=6, dev=(7, 0))
  l2.add ("meta/dev/fifo", "fifo", mode=0o620, uid=1000, gid=1000)
  l2.add ("meta/mode", "dir")
  l2.add ("meta/mode/setuid", mode=0o4755, data="setuid root\n")
  l2.add ("meta/mode/setuid-1000", mode=0o4750, uid=1000, gid=1000, data="setuid 1000\n")
  l2.add ("meta/mode/setgid", mode=0o2755, gid=65534, data="setgid nogroup\n")
  l2.add ("meta/mode/all-bits", mode=0o7755, data="setuid, setgid, sticky\n")
  l2.add ("meta/mode/no-permissions", mode=0o000, data="mode 0000\n")
  l2.add ("meta/mode/sticky-dir", "dir", mode=0o1777)
  l2.add ("meta/mode/sticky-dir/file", mode=0o666, uid=65534, gid=65534, data="in /tmp-like\n")
  l2.add ("meta/mode/setgid-dir", "dir", mode=0o2775, uid=1000, gid=1000)
  # Created inside a setgid directory, these inherit its group and (the
  # directory) its setgid bit unless the unpacker sets both explicitly.
  l2.add ("meta/mode/setgid-dir/plain-dir", "dir", mode=0o755)
  l2.add ("meta/mode/setgid-dir/plain-file", mode=0o644, data="owner 0:0\n")
  l2.add ("meta/mode/read-only-dir", "dir", mode=0o555)
  l2.add ("meta/mode/read-only-dir/file", mode=0o444, data="in a 0555 directory\n")
  l2.add ("meta/owner", "dir")
  l2.add ("meta/owner/home-1000", "dir", mode=0o700, uid=1000, gid=1000)
  l2.add ("meta/owner/home-1000/file", mode=0o600, uid=1000, gid=1000, data="1000:1000\n")
  l2.add ("meta/owner/home-1000/link", "symlink", uid=1000, gid=1000, link="file")
  l2.add ("meta/owner/nobody", mode=0o644, uid=65534, gid=65534, data="65534:65534\n")
  l2.add ("meta/owner/mixed", mode=0o664, uid=1000, gid=65534, data="1000:65534\n")
  l2.add ("long", "dir")
  l2.add (EDGE_LONG.rsplit ("/", 2)[0], "dir")
  l2.add (EDGE_LONG.rsplit ("/", 1)[0], "dir")
  l2.add (EDGE_LONG, data="a path of %d bytes\n" % len (EDGE_LONG))
  l2.add ("long/hardlink-to-long", "hardlink", link=EDGE_LONG)
  l2.add ("long/symlink-to-long", "symlink", link=EDGE_LONG[len ("long/"):])
  l2.add ("sparse", "dir")
  big = 16 * 1024 * 1024 + 4097
  l2.add ("sparse/pax-1.0.img", mode=0o644, uid=1000, gid=1000, sparse=(big, [
    (0, hashlib.shake_256 (EDGE_SEED + b"/sparse/0").digest (4096)),
    (1 << 20, hashlib.shake_256 (EDGE_SEED + b"/sparse/1").digest (65536)),
    (10 * (1 << 20) + 3, b"an unaligned chunk in the middle\n" * 30),
    (big, b""),                         # ends in a hole
  ]))
  l2.add ("sparse/all-hole.img", mode=0o600, sparse=(1 << 20, [(1 << 20, b"")]))
  l2.add ("time", "dir", mtime="1500000000.999999999")
  l2.add ("time/ns", data="mtime with nanoseconds\n", mtime="1600000000.123456789")
  l2.add ("time/y2000", data="2000-01-01 plus 1 ns\n", mtime="946684800.000000001")
  l2.add ("time/1970", data="1.5 s after the epoch\n", mtime="1.5")
  l2.add ("time/before-epoch", data="1969-12-31 (containerd clamps to 0)\n", mtime=-86400)
  l2.add ("time/y2100", data="in the future\n", mtime=4102444800)
  l2.add ("time/symlink", "symlink", link="ns", mtime="1234567890.5")
  l2.add ("time/dir", "dir", mtime="1111111111.111111111")
  l2.add ("names", "dir")
  for n in ["with spaces.txt", "ünïcödé ✓ 名前.txt", ".whale", "-leading-dash",
            "trailing space ", "back\\slash", "emoji-\U0001f600"]:
    l2.add ("names/" + n, data="name %r\n" % n)

  # Layer 3: type changes back, whiteouts of the link targets, metadata-only
  # changes, a directory deleted in layer 2 made again.
  l3 = EdgeLayer (dirmeta)
  l3.add ("links", "dir")
  l3.whiteout ("links/original")
  l3.whiteout ("links/pair-a")
  l3.add ("meta", "dir")
  l3.add ("meta/chmod-only", mode=0o600, uid=65534, gid=65534,
          data="layer 3 changes only mode and owner\n")
  l3.add ("meta/xattr", "dir")
  l3.add ("meta/xattr/replaced", data="layer 3\n", xattrs={"user.new": b"from layer 3"})
  l3.add ("names", "dir")
  l3.whiteout ("names/-leading-dash")
  l3.add ("opq", "dir")
  l3.add ("opq/new-dir", "dir", mode=0o711)
  l3.add ("opq/new-dir/file", data="layer 3 rewrote this\n")
  l3.add ("swap", "dir")
  l3.add ("swap/dir-to-file", "dir", mode=0o700)
  l3.add ("swap/dir-to-file/back", data="a directory again in layer 3\n")
  l3.add ("swap/file-to-dir", mode=0o600, uid=1000, gid=1000, data="a file again in layer 3\n")
  l3.add ("tree", "dir")
  l3.add ("tree/d01", "dir", mode=0o700, uid=1000, gid=1000,
          xattrs={"user.layer3": b"set by layer 3"})
  l3.add ("tree/d03", "dir")
  l3.add ("tree/d03/s1", "dir", mode=0o755)
  l3.add ("tree/d03/s1/reborn", data="tree/d03/s1 was whited out in layer 2\n")
  return [l1.tar (), l2.tar (), l3.tar ()]


# ------------------------------------------------------------------ host files

# debian-sized and redis-sized copy files of the host's own Debian packages
# (offline), with owner 0:0 and mtime MTIME.  Which files depends on the
# installed packages; host_inputs () lists them with sizes and mtimes so
# that build.sh's stamp notices when they change.

DEBIAN_BUDGET = {                       # bytes of file contents per selection
  "usr/bin": 44 << 20,
  "usr/lib/x86_64-linux-gnu": 38 << 20,
  "usr/share/doc": 44 << 20,
  "usr/share/locale": 6 << 20,
}
DEBIAN_MAX_FILE = 8 << 20               # larger files are skipped
# Always in debian-sized's first layer, with everything they load: a shell
# (/bin/sh is dash) and a few tools, so that the image runs.
DEBIAN_TOOLS = ["/usr/bin/sh", "/usr/bin/dash", "/usr/bin/ls", "/usr/bin/cat",
                "/usr/bin/echo", "/usr/bin/env", "/usr/bin/id", "/usr/bin/uname",
                "/usr/bin/mkdir", "/usr/bin/rm", "/usr/bin/sleep", "/usr/bin/true",
                "/usr/bin/cp", "/usr/bin/mv", "/usr/bin/ln", "/usr/bin/chmod", "/usr/bin/head",
                "/usr/bin/tail", "/usr/bin/wc", "/usr/bin/tr", "/usr/bin/grep", "/usr/bin/sed"]
REDIS_FILES = ["/usr/bin/redis-server", "/usr/bin/redis-cli"]
REDIS_CONF = "/etc/redis/redis.conf"
# Not owned by a package, written by base-passwd's scripts: debian-sized
# gets its own.
ETC_PASSWD = (b"root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
              b"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
ETC_GROUP = b"root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n"


def usrmerge (path):
  """/bin/x -> /usr/bin/x and so on where the top directory is a symlink
  (Debian 12's merged /usr)."""
  top, sep, rest = path[1:].partition ("/")
  if top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32") and os.path.islink ("/" + top):
    return "/usr/" + top + sep + rest
  return path


def dpkg_files ():
  """Every path dpkg says an installed package owns, merged-/usr paths
  resolved."""
  info = "/var/lib/dpkg/info"
  out = set ()
  for name in sorted (os.listdir (info)):
    if name.endswith (".list"):
      with open (os.path.join (info, name), encoding="utf-8", errors="surrogateescape") as f:
        out.update (usrmerge (l.rstrip ("\n")) for l in f if l.startswith ("/"))
  return out


def real_parent (path, cache={}):
  d = os.path.dirname (path)
  if d not in cache:
    cache[d] = os.path.realpath (d) == d
  return cache[d]


def select (owned, prefix, budget, readable_only=False):
  """Sorted regular files and symlinks under /prefix that dpkg owns, until
  budget bytes of contents; files larger than DEBIAN_MAX_FILE skipped."""
  out, used = [], 0
  for p in sorted (q for q in owned if q.startswith ("/" + prefix + "/")):
    try:
      st = os.lstat (p)
    except OSError:
      continue
    if not real_parent (p):
      continue
    if stat.S_ISLNK (st.st_mode):
      out.append (p)
    elif stat.S_ISREG (st.st_mode):
      if st.st_size > DEBIAN_MAX_FILE or (readable_only and not st.st_mode & 0o004):
        continue
      if used + st.st_size > budget:
        break
      used += st.st_size
      out.append (p)
  return out


def ldd (binaries):
  """The shared objects binaries load (paths as ldd prints them), loader
  included."""
  out = set ()
  for b in binaries:
    p = subprocess.run (["ldd", b], stdout=subprocess.PIPE, check=True, text=True,
                        env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"})
    for line in p.stdout.splitlines ():
      w = line.split ()
      if "=>" in w and len (w) >= 3 and w[2].startswith ("/"):
        out.add (w[2])
      elif w and w[0].startswith ("/"):
        out.add (w[0])
  return sorted (out)


def host_closure (paths):
  """paths as the host resolves them: every symlink met on the way (in a
  parent or at the end) becomes a symlink entry and its target is followed,
  so /lib64/ld-linux-x86-64.so.2 gives lib64 -> usr/lib64,
  usr/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/...,
  lib -> usr/lib and the loader itself.  Returns {image path: host path or
  ("symlink", target)}; host paths are regular files."""
  out = {}
  todo = list (paths)
  while todo:
    p = os.path.normpath (todo.pop ())
    parts = p.strip ("/").split ("/")
    cur = ""
    for i, part in enumerate (parts):
      cur = cur + "/" + part
      if os.path.islink (cur):
        target = os.readlink (cur)
        out[cur[1:]] = ("symlink", target)
        base = os.path.dirname (cur) if not target.startswith ("/") else "/"
        todo.append (os.path.join (base, target, *parts[i + 1:]))
        break
      if i == len (parts) - 1:
        if not os.path.isfile (cur):
          raise ValueError ("%s: not a regular file" % cur)
        out[cur[1:]] = cur
  return out


def read (path):
  with open (path, "rb") as f:
    return f.read ()


def host_entries (files, mode=None):
  """Layer entries for {image path: host path or ("symlink", target)}, with
  their parent directories (0755)."""
  entries = dirs_for (files)
  for p, src in sorted (files.items ()):
    if isinstance (src, tuple):
      entries.append ((p, "symlink", 0o777, src[1]))
    else:
      entries.append ((p, "file", mode if mode is not None else os.stat (src).st_mode & 0o7777,
                       read (src)))
  dirs = {e[0] for e in entries if e[1] == "dir"}
  clash = dirs & {p for p, src in files.items ()}
  assert not clash, clash
  return entries


def debian_plan ():
  """The three layers of debian-sized as {image path: host source}, plus
  the layer-3 whiteouts."""
  owned = dpkg_files ()
  l1 = host_closure (DEBIAN_TOOLS + ldd ([os.path.realpath (t) for t in DEBIAN_TOOLS]))
  for top in ("bin", "sbin", "lib", "lib64"):
    if os.path.islink ("/" + top):
      l1[top] = ("symlink", os.readlink ("/" + top))
  for prefix in ("usr/bin", "usr/lib/x86_64-linux-gnu"):
    for p in select (owned, prefix, DEBIAN_BUDGET[prefix]):
      l1.setdefault (p[1:], ("symlink", os.readlink (p)) if os.path.islink (p) else p)
  l2 = {}
  for prefix in ("usr/share/doc", "usr/share/locale"):
    for p in select (owned, prefix, DEBIAN_BUDGET[prefix]):
      l2[p[1:]] = ("symlink", os.readlink (p)) if os.path.islink (p) else p
  # Layer 3: /etc as packaged (world-readable files only), and updates: a
  # few libraries of layer 1 again (an upgrade), os-release, whiteouts of
  # some documentation.
  l3 = {}
  for p in select (owned, "etc", 1 << 30, readable_only=True):
    l3[p[1:]] = ("symlink", os.readlink (p)) if os.path.islink (p) else p
  libs = sorted (p for p, src in l1.items ()
                 if p.startswith ("usr/lib/x86_64-linux-gnu/") and isinstance (src, str))
  for p in libs[::max (1, len (libs) // 8)][:8]:
    l3[p] = l1[p]
  if os.path.isfile ("/usr/lib/os-release"):
    l3["usr/lib/os-release"] = "/usr/lib/os-release"
  docs = sorted (p for p, src in l2.items () if isinstance (src, str))
  whiteouts = docs[::max (1, len (docs) // 8)][:8]
  return l1, l2, l3, whiteouts


def debian_layers ():
  l1, l2, l3, whiteouts = debian_plan ()
  e3 = [e for e in host_entries (l3) if e[0] not in ("etc/passwd", "etc/group")]
  e3 += [("etc/passwd", "file", 0o644, ETC_PASSWD), ("etc/group", "file", 0o644, ETC_GROUP)]
  wh = {}
  for p in whiteouts:
    d, _, b = p.rpartition ("/")
    wh[d + "/.wh." + b] = None
  e3 += [e for e in dirs_for (wh) if e[0] not in {x[0] for x in e3}]
  e3 += [(p, "file", 0o644, b"") for p in wh]
  return [Layer (host_entries (l1)), Layer (host_entries (l2)), Layer (e3)]


def redis_plan ():
  files = host_closure (REDIS_FILES + ldd ([os.path.realpath (b) for b in REDIS_FILES]))
  files[REDIS_CONF[1:]] = REDIS_CONF
  return files


def redis_layer ():
  files = redis_plan ()
  entries = host_entries ({p: s for p, s in files.items () if p != REDIS_CONF[1:]})
  entries.append ((REDIS_CONF[1:], "file", 0o644, read (REDIS_CONF)))
  entries += [e for e in dirs_for ([REDIS_CONF[1:]]) if e[0] not in {x[0] for x in entries}]
  entries.append (("data", "dir", 0o755, None))
  return Layer (entries)


def host_inputs ():
  """One line per host file the images copy: path, size, mtime (ns).
  build.sh hashes this into its stamp."""
  srcs = set ()
  l1, l2, l3, _ = debian_plan ()
  for plan in (l1, l2, l3, redis_plan ()):
    srcs.update (s for s in plan.values () if isinstance (s, str))
  lines = []
  for s in sorted (srcs):
    st = os.stat (s)
    lines.append ("%s %d %d" % (s, st.st_size, st.st_mtime_ns))
  links = sorted ("%s -> %s" % (p, s[1]) for plan in (l1, l2, l3, redis_plan ())
                  for p, s in plan.items () if isinstance (s, tuple))
  return "\n".join (lines + links) + "\n"


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


def config (arch, layers, comments, docker=False, variant=None, cmd=("sh",), extra=None):
  run = {"Env": [PATH_ENV]}
  if cmd:
    run["Cmd"] = list (cmd)
  run.update (extra or {})
  cfg = {
    "created": CREATED,
    "architecture": arch,
    "os": "linux",
    "config": run,
    "rootfs": {"type": "layers", "diff_ids": [l.diff_id for l in layers]},
    "history": [{"created": CREATED, "created_by": "tests/images/mkimages.py: " + c}
                for c in comments],
  }
  if variant:
    cfg["variant"] = variant
  return canonical (cfg)


def image (layout, arch, layers, comments, compression="gzip", docker=False, variant=None,
           **cfg_args):
  """Write config, layers and manifest into layout; return the manifest's descriptor."""
  cfg_mt = MT["docker-config"] if docker else MT["oci-config"]
  cfg = layout.descriptor (cfg_mt, config (arch, layers, comments, docker, variant, **cfg_args))
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
  if sys.argv[1:] == ["--inputs"]:
    sys.stdout.write (host_inputs ())
    return 0
  if len (sys.argv) != 2:
    print ("usage: %s OUTDIR | --inputs" % sys.argv[0], file=sys.stderr)
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

  # edgecase: the golden-test image (tree, deletions and type changes,
  # special files, a cross-layer hard link); edgecase-overlay: the same
  # without that link, which overlayfs cannot unpack (its second layer
  # differs in that one entry).
  e1, e2, e3 = [RawLayer (t) for t in edge_layers (cross_layer_link=True)]
  e2o = RawLayer (edge_layers (cross_layer_link=False)[1])
  notes = ["synthetic tree of %d files, %d symlinks, %d hard links" % (
             EDGE_FILES, EDGE_SYMLINKS, EDGE_HARDLINKS),
           "whiteouts, opaque dir, type changes, special files%s",
           "type changes back, whiteouts of link targets, metadata changes"]
  for name, mid in (("edgecase", e2), ("edgecase-overlay", e2o)):
    lo = Layout (top, name, docs)
    c = list (notes)
    c[1] %= ", cross-layer hard link" if mid is e2 else ""
    publish (name, lo, "latest", image (lo, arch, [e1, mid, e3], c, cmd=None))

  # debian-sized: three layers of the host's Debian files, about debian:12.
  lo = Layout (top, "debian-sized", docs)
  publish ("debian-sized", lo, "latest",
           image (lo, arch, debian_layers (),
                  ["/usr/bin and /usr/lib/x86_64-linux-gnu", "/usr/share/doc and locale",
                   "/etc and updates"], cmd=["/bin/sh"]))

  # redis-sized: busybox, then Debian's redis-server with its libraries.
  lo = Layout (top, "redis-sized", docs)
  publish ("redis-sized", lo, "latest",
           image (lo, arch, [bb, redis_layer ()], ["busybox-static", "redis-server"],
                  cmd=["redis-server", "--protected-mode", "no"],
                  extra={"ExposedPorts": {"6379/tcp": {}}, "WorkingDir": "/data"}))

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
    f.write ("%-16s %-28s %5s %10s   %-s\n" % ("image", "source", "blobs", "bytes",
                                               "host platform: blobs, bytes"))
    for r in rows:
      f.write ("%-16s %-28s %5s %10s   %s, %s\n" % (r[0], r[1], r[6], r[7], r[8], r[9]))
  return 0


if __name__ == "__main__":
  sys.exit (main ())
