#!/usr/bin/python3
# tests/integration/edge-image.py [--cross-layer-link] DIR: write a small
# OCI image layout to DIR (tag latest) whose layers hold what the test
# images do not: setuid,
# setgid and sticky modes, owners other than root, user.* and trusted.*
# xattrs (on files and directories), a file capability
# (security.capability), character and block devices, a FIFO, a long path,
# absolute, relative and dangling symlinks, a nanosecond mtime; then, in
# upper layers, a file turned into a directory and a directory into a
# file, a whiteout of one name of
# a hard-linked pair, an opaque directory with a subdirectory, a file
# rewritten with another mode and owner.  With --cross-layer-link, the
# second layer also hard-links to a file of the first (b/link-from-upper
# -> b/target): the native snapshotter can do that, overlayfs cannot (its
# layer directory does not hold the target; containerd refuses the layer).
# unpack-parity.sh pushes both variants next
# to the test images (tests/images/build.sh) and compares berth's unpack
# with containerd's.  Reproducible; Python standard library only.

import gzip
import hashlib
import io
import json
import os
import platform
import sys
import tarfile

MTIME = 1700000000
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get (platform.machine (), platform.machine ())
# struct vfs_cap_data, revision 2, effective; permitted = CAP_NET_BIND_SERVICE (10).
CAP = (0x02000001).to_bytes (4, "little") + (1 << 10).to_bytes (4, "little") + bytes (12)


def entry (name, kind="file", mode=0o644, data=b"", uid=0, gid=0, link="", dev=(0, 0),
           xattrs=None, mtime=MTIME):
  ti = tarfile.TarInfo (name)
  ti.mode = mode
  ti.uid, ti.gid = uid, gid
  ti.uname = ti.gname = ""
  ti.mtime = mtime
  ti.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
             "fifo": tarfile.FIFOTYPE}[kind]
  ti.linkname = link
  ti.devmajor, ti.devminor = dev
  if xattrs:
    ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items ()}
  if kind == "file":
    ti.size = len (data)
  return ti, data if kind == "file" else None


def layer (entries):
  buf = io.BytesIO ()
  with tarfile.open (fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
    for ti, data in entries:
      tf.addfile (ti, io.BytesIO (data) if data is not None else None)
  raw = buf.getvalue ()
  gz = io.BytesIO ()
  with gzip.GzipFile (fileobj=gz, mode="wb", mtime=0, filename="") as g:
    g.write (raw)
  return raw, gz.getvalue ()


LONG = "a/" + "d" * 120 + "/" + "e" * 120 + "/" + "f" * 200

LAYERS = [
  [
    entry ("a", "dir", 0o755),
    entry ("a/setuid", "file", 0o4755, b"#!/bin/sh\nid\n"),
    entry ("a/setgid", "file", 0o2711, b"setgid\n", gid=5),
    entry ("a/sticky", "dir", 0o1777),
    entry ("a/owned", "file", 0o640, b"owned by 1000:1000\n", uid=1000, gid=1000),
    entry ("a/ns-mtime", "file", 0o644, b"ns\n", mtime=1700000000.123456789),
    entry ("a/caps", "file", 0o755, b"capable\n",
           xattrs={"security.capability": CAP.decode ("latin-1")}),
    entry ("a/xattrs", "file", 0o644, b"xattrs\n",
           xattrs={"user.note": "hello", "trusted.berth": "t"}),
    entry ("a/xdir", "dir", 0o750, uid=2, gid=3, xattrs={"user.dir": "on a directory"}),
    entry ("a/null", "chr", 0o666, dev=(1, 3)),
    entry ("a/loop9", "blk", 0o660, dev=(7, 9), gid=6),
    entry ("a/fifo", "fifo", 0o600),
    entry (LONG.rsplit ("/", 2)[0], "dir", 0o755),
    entry (LONG.rsplit ("/", 1)[0], "dir", 0o755),
    entry (LONG, "file", 0o644, b"long\n"),
    entry ("b", "dir", 0o755),
    entry ("b/target", "file", 0o644, b"linked\n"),
    entry ("b/link", "hardlink", 0o644, link="b/target"),
    entry ("b/pair-1", "file", 0o600, b"pair\n"),
    entry ("b/pair-2", "hardlink", 0o600, link="b/pair-1"),
    entry ("c", "dir", 0o755),
    entry ("c/file-then-dir", "file", 0o644, b"a file for now\n"),
    entry ("c/dir-then-file", "dir", 0o755),
    entry ("c/dir-then-file/inside", "file", 0o644, b"goes away\n"),
    entry ("c/opaque", "dir", 0o755),
    entry ("c/opaque/old", "file", 0o644, b"hidden later\n"),
    entry ("c/opaque/oldsub", "dir", 0o755),
    entry ("c/opaque/oldsub/deep", "file", 0o644, b"hidden later\n"),
    entry ("e", "dir", 0o755),
    entry ("e/abs", "symlink", 0o777, link="/etc/passwd"),
    entry ("e/rel", "symlink", 0o777, link="../a/owned"),
    entry ("e/dangling", "symlink", 0o777, link="nowhere/at/all"),
  ],
  [
    entry ("b", "dir", 0o755),
    entry ("b/.wh.pair-1", "file", 0o644),
    entry ("c", "dir", 0o755),
    entry ("c/file-then-dir", "dir", 0o700),
    entry ("c/file-then-dir/now", "file", 0o644, b"a directory now\n"),
    entry ("c/dir-then-file", "file", 0o4750, b"a file now\n", gid=7),
    entry ("c/opaque", "dir", 0o755),
    entry ("c/opaque/.wh..wh..opq", "file", 0o644),
    entry ("c/opaque/new", "file", 0o644, b"new\n"),
    entry ("c/opaque/newsub", "dir", 0o711),
    entry ("a", "dir", 0o755),
    entry ("a/owned", "file", 0o600, b"rewritten by 33:33\n", uid=33, gid=33),
  ],
  [
    entry ("c", "dir", 0o755),
    entry ("c/file-then-dir", "dir", 0o700),
    entry ("c/file-then-dir/.wh.now", "file", 0o644),
    entry ("c/.wh.dir-then-file", "file", 0o644),
    entry ("c/dir-then-file", "dir", 0o755),
    entry ("c/dir-then-file/back", "file", 0o644, b"a directory again\n"),
  ],
]


def main ():
  args = sys.argv[1:]
  if args[:1] == ["--cross-layer-link"]:
    LAYERS[1].insert (1, entry ("b/link-from-upper", "hardlink", 0o644, link="b/target"))
    args = args[1:]
  if len (args) != 1:
    sys.exit ("usage: edge-image.py [--cross-layer-link] DIR")
  out = args[0]
  blobs = os.path.join (out, "blobs", "sha256")
  os.makedirs (blobs, exist_ok=True)

  def put (data):
    d = hashlib.sha256 (data).hexdigest ()
    with open (os.path.join (blobs, d), "wb") as f:
      f.write (data)
    return {"digest": "sha256:" + d, "size": len (data)}

  def js (obj):
    return json.dumps (obj, sort_keys=True, separators=(",", ":")).encode ()

  diff_ids, layers = [], []
  for entries in LAYERS:
    raw, gz = layer (entries)
    diff_ids.append ("sha256:" + hashlib.sha256 (raw).hexdigest ())
    layers.append (dict (put (gz), mediaType="application/vnd.oci.image.layer.v1.tar+gzip"))
  config = {"architecture": ARCH, "os": "linux", "created": "2023-11-14T22:13:20Z",
            "config": {"Cmd": ["/a/setuid"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids}}
  cfg = dict (put (js (config)), mediaType="application/vnd.oci.image.config.v1+json")
  manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
              "config": cfg, "layers": layers}
  man = dict (put (js (manifest)), mediaType="application/vnd.oci.image.manifest.v1+json",
              annotations={"org.opencontainers.image.ref.name": "latest"})
  with open (os.path.join (out, "index.json"), "wb") as f:
    f.write (js ({"schemaVersion": 2, "manifests": [man]}))
  with open (os.path.join (out, "oci-layout"), "wb") as f:
    f.write (js ({"imageLayoutVersion": "1.0.0"}))
  print (man["digest"])
  return 0


if __name__ == "__main__":
  sys.exit (main ())
