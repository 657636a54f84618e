#!/usr/bin/python3
# bench/mkfuseimage.py OUTDIR: write the fuse case's large test image as an
# OCI image layout OUTDIR/fuse-large (tag latest), offline and reproducibly,
# plus OUTDIR/images.tsv in tests/images/build.sh's format so that
# tests/registry/push.sh can push it and bench/run read it.
#
# The image (about 220 MiB unpacked, 2 gzip layers):
#   layer 1  busybox-static (/bin/busybox and its applets as symlinks)
#   layer 2  /data/big.bin      128 MiB; of each 64 KiB, 16 KiB random, 48 KiB text
#            /data/random/*.bin 4 x 8 MiB of random bytes (incompressible)
#            /data/text/*.txt   4096 x 14 KiB of text-like words (compresses ~3.5x)
# (gzip: about 110 MiB in all, half the unpacked size, as real images go).
#            /data/etc/*        three small files the command reads
# Cmd: sh -c 'cat /data/etc/a.conf /data/etc/b.conf >/dev/null; exec head -n 1
# /data/etc/greeting', which prints "fuse-large: ready" (READY_LINE).
#
# Reproducible: bytes from random.Random with fixed seeds, tar entries sorted
# with fixed mtime, owner 0:0 and explicit modes, gzip headers with no name
# and mtime 0, JSON with sorted keys and no whitespace.  The layer tar is
# streamed through gzip into the blob (nothing of 220 MiB is held twice).
# OUTDIR/.stamp holds VERSION and busybox's size and mtime: when it matches,
# nothing is rebuilt.  Only the Python standard library and /bin/busybox.

import gzip
import hashlib
import io
import json
import os
import platform
import random
import shutil
import sys
import tarfile

VERSION = "bench fuse-large v2"
NAME = "fuse-large"
READY_LINE = "fuse-large: ready"
BIG_FILE = "/data/big.bin"
BIG_SIZE = 128 * 1024 * 1024
BUSYBOX = os.environ.get ("BUSYBOX", "/bin/busybox")
MTIME = 1700000000
CREATED = "2023-11-14T22:13:20Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
APPLETS = ["cat", "echo", "head", "ls", "sh", "sleep", "true", "wc"]
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
WORDS = ("container layer snapshot overlay fuse blob index digest manifest config "
         "registry pull push mount unmount read write cache page kernel daemon shim "
         "runtime image tar gzip zstd chunk checkpoint window inflate deflate the a of "
         "and to in is it for on with as by at from this that be are was").split ()


def canonical (obj):
  return json.dumps (obj, sort_keys=True, separators=(",", ":")).encode ()


def host_arch ():
  m = platform.machine ()
  return {"x86_64": "amd64", "aarch64": "arm64"}.get (m, m)


class HashWriter:
  """A write-only file object that hashes and counts what goes through it,
  and passes it on to out (when given)."""

  def __init__ (self, out=None):
    self.out = out
    self.sha = hashlib.sha256 ()
    self.size = 0

  def write (self, data):
    self.sha.update (data)
    self.size += len (data)
    if self.out is not None:
      self.out.write (data)
    return len (data)

  def flush (self):
    if self.out is not None:
      self.out.flush ()

  def digest (self):
    return "sha256:" + self.sha.hexdigest ()


def text_bytes (rng, n):
  out = []
  size = 0
  while size < n:
    line = " ".join (rng.choice (WORDS) for _ in range (rng.randint (6, 14))) + "\n"
    out.append (line)
    size += len (line)
  return "".join (out).encode ()[:n]


def big_bytes ():
  """BIG_SIZE bytes; of each 64 KiB, 16 KiB random and 48 KiB text."""
  rng = random.Random ("%s %s" % (VERSION, BIG_FILE))
  text = text_bytes (rng, 4 * 1024 * 1024)
  buf = bytearray ()
  chunk = 64 * 1024
  for i in range (BIG_SIZE // chunk):
    buf += rng.randbytes (chunk // 4)
    off = (i * 7919) % (len (text) - chunk)
    buf += text[off:off + chunk * 3 // 4]
  return bytes (buf)


def entries_layer1 ():
  with open (BUSYBOX, "rb") as f:
    bb = f.read ()
  e = [("bin", "dir", 0o755, None), ("bin/busybox", "file", 0o755, bb),
       ("etc", "dir", 0o755, None), ("tmp", "dir", 0o1777, None)]
  e += [("bin/" + a, "symlink", 0o777, "busybox") for a in APPLETS]
  return e


def entries_layer2 ():
  rng = random.Random (VERSION + " layer 2")
  e = [("data", "dir", 0o755, None), ("data/etc", "dir", 0o755, None),
       ("data/random", "dir", 0o755, None), ("data/text", "dir", 0o755, None),
       ("data/etc/a.conf", "file", 0o644, text_bytes (rng, 700)),
       ("data/etc/b.conf", "file", 0o644, text_bytes (rng, 1500)),
       ("data/etc/greeting", "file", 0o644, (READY_LINE + "\n").encode ()),
       (BIG_FILE.lstrip ("/"), "file", 0o644, big_bytes)]
  for i in range (4):
    e.append (("data/random/r%02d.bin" % i, "file", 0o644,
               (lambda i=i: random.Random ("%s random %d" % (VERSION, i)).randbytes (8 << 20))))
  pool = text_bytes (rng, 2 * 1024 * 1024)
  for i in range (4096):
    off = rng.randrange (len (pool) - 14336)
    e.append (("data/text/t%04d.txt" % i, "file", 0o644, pool[off:off + 14336]))
  return e


def write_layer (blobdir, entries):
  """Stream entries as a tar through gzip into blobdir; return (descriptor,
  diff_id, unpacked file bytes)."""
  tmp = os.path.join (blobdir, "layer.tmp")
  payload = 0
  with open (tmp, "wb") as raw:
    blob = HashWriter (raw)
    with gzip.GzipFile (filename="", mode="wb", fileobj=blob, mtime=0, compresslevel=6) as gz:
      tar = HashWriter (gz)
      with tarfile.open (fileobj=tar, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for path, kind, mode, data in sorted (entries, key=lambda x: x[0].split ("/")):
          ti = tarfile.TarInfo (path)
          ti.mtime = MTIME
          ti.mode = mode
          ti.uid = ti.gid = 0
          ti.uname = ti.gname = "root"
          if kind == "dir":
            ti.type = tarfile.DIRTYPE
            tf.addfile (ti)
          elif kind == "symlink":
            ti.type = tarfile.SYMTYPE
            ti.linkname = data
            tf.addfile (ti)
          else:
            if callable (data):
              data = data ()
            ti.size = len (data)
            payload += len (data)
            tf.addfile (ti, io.BytesIO (data))
  d = blob.digest ()
  os.rename (tmp, os.path.join (blobdir, d.split (":")[1]))
  return {"mediaType": MT_LAYER, "digest": d, "size": blob.size}, tar.digest (), payload


def put_blob (blobdir, media_type, data):
  d = "sha256:" + hashlib.sha256 (data).hexdigest ()
  with open (os.path.join (blobdir, d.split (":")[1]), "wb") as f:
    f.write (data)
  return {"mediaType": media_type, "digest": d, "size": len (data)}


def stamp_text ():
  st = os.stat (BUSYBOX)
  return "%s\n%s %d %d\n" % (VERSION, BUSYBOX, st.st_size, int (st.st_mtime))


def build (top):
  tmp = top + ".tmp.%d" % os.getpid ()
  shutil.rmtree (tmp, ignore_errors=True)
  layout = os.path.join (tmp, NAME)
  blobdir = os.path.join (layout, "blobs", "sha256")
  os.makedirs (blobdir)
  descs, diff_ids, payload = [], [], 0
  for entries in (entries_layer1 (), entries_layer2 ()):
    desc, diff_id, n = write_layer (blobdir, entries)
    descs.append (desc)
    diff_ids.append (diff_id)
    payload += n
  cfg = {
    "created": CREATED, "architecture": host_arch (), "os": "linux",
    "config": {"Env": [PATH_ENV],
               "Cmd": ["/bin/sh", "-c", "cat /data/etc/a.conf /data/etc/b.conf >/dev/null; "
                       "exec head -n 1 /data/etc/greeting"]},
    "rootfs": {"type": "layers", "diff_ids": diff_ids},
    "history": [{"created": CREATED, "created_by": "bench/mkfuseimage.py: " + c}
                for c in ("busybox-static", "220 MiB of data, mixed compressibility")],
  }
  cdesc = put_blob (blobdir, MT_CONFIG, canonical (cfg))
  man = put_blob (blobdir, MT_MANIFEST, canonical ({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                                                    "config": cdesc, "layers": descs}))
  ref = dict (man, annotations={"org.opencontainers.image.ref.name": "latest"})
  with open (os.path.join (layout, "oci-layout"), "wb") as f:
    f.write (canonical ({"imageLayoutVersion": "1.0.0"}))
  with open (os.path.join (layout, "index.json"), "wb") as f:
    f.write (canonical ({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [ref]}))
  blobs = [man, cdesc] + descs
  row = [NAME, "oci:%s:latest" % NAME, "%s:latest" % NAME, MT_MANIFEST, man["digest"], "-",
         str (len (blobs)), str (sum (b["size"] for b in blobs)),
         str (len (blobs)), str (sum (b["size"] for b in blobs)),
         ",".join (sorted (b["digest"] for b in blobs))]
  with open (os.path.join (tmp, "images.tsv"), "w") as f:
    f.write ("# name\tsource\trepository:tag\tmediaType\tdigest\tskopeo flags"
             "\tblobs\tbytes\thost blobs\thost bytes\thost digests\n")
    f.write ("\t".join (row) + "\n")
  with open (os.path.join (tmp, "fuse-large.json"), "w") as f:
    json.dump ({"unpacked_file_bytes": payload, "big_file": BIG_FILE, "big_size": BIG_SIZE,
                "ready_line": READY_LINE, "layers": descs}, f, indent=1)
  with open (os.path.join (tmp, ".stamp"), "w") as f:
    f.write (stamp_text ())
  shutil.rmtree (top, ignore_errors=True)
  os.rename (tmp, top)


def main ():
  if len (sys.argv) != 2 or sys.argv[1].startswith ("-"):
    print ("usage: %s OUTDIR" % sys.argv[0], file=sys.stderr)
    return 2
  top = os.path.abspath (sys.argv[1]).rstrip ("/")
  try:
    with open (os.path.join (top, ".stamp")) as f:
      if f.read () == stamp_text ():
        return 0
  except OSError:
    pass
  build (top)
  return 0


if __name__ == "__main__":
  sys.exit (main ())
