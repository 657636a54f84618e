#!/usr/bin/env python3
"""Seeds for fuzz-unpack: small layers (plain, gzip, zstd when the zstd tool
is there) with every entry kind, whiteouts, opaque directories and the
escapes diff apply must refuse.  The first byte of each seed is the mode
byte fuzz-unpack reads (bit 0: native, bit 1: no openat2)."""
import gzip, io, os, shutil, subprocess, sys, tarfile

def layer (entries, fmt=tarfile.PAX_FORMAT):
  buf = io.BytesIO ()
  with tarfile.open (fileobj=buf, mode="w", format=fmt) as tf:
    for name, kind, arg in entries:
      ti = tarfile.TarInfo (name)
      ti.mtime = 1700000000
      ti.mode = 0o755 if kind == "dir" else 0o644
      if kind == "dir":
        ti.type = tarfile.DIRTYPE
      elif kind == "sym":
        ti.type, ti.linkname = tarfile.SYMTYPE, arg
      elif kind == "hard":
        ti.type, ti.linkname = tarfile.LNKTYPE, arg
      elif kind == "fifo":
        ti.type = tarfile.FIFOTYPE
      elif kind == "xattr":
        ti.pax_headers = {"SCHILY.xattr.user.seed": "v"}
        ti.size = len (arg)
        tf.addfile (ti, io.BytesIO (arg))
        continue
      else:
        ti.size = len (arg)
        tf.addfile (ti, io.BytesIO (arg))
        continue
      tf.addfile (ti)
  return buf.getvalue ()

LAYERS = {
  "basic": [("etc", "dir", None), ("etc/passwd", "file", b"root:x:0:0\n"), ("bin", "dir", None),
            ("bin/sh", "sym", "busybox"), ("bin/busybox", "file", b"\x7fELF"), ("bin/ash", "hard", "bin/busybox"),
            ("run/fifo", "fifo", None), ("etc/x", "xattr", b"x")],
  "whiteouts": [("etc", "dir", None), ("etc/.wh.passwd", "file", b""), ("opt/app", "dir", None),
                ("opt/app/kept", "file", b"k"), ("opt/app/.wh..wh..opq", "file", b""), ("opt/app/new", "file", b"n")],
  "escapes": [("evil", "sym", "/etc"), ("evil/passwd", "file", b"x"), ("up", "sym", "../../../.."),
              ("up/tmp/x", "file", b"x"), ("h", "hard", "evil/passwd"), ("../dotdot", "file", b"x")],
  "replace": [("a", "file", b"file"), ("a", "dir", None), ("a/b", "file", b"b"), ("a", "sym", "b"),
              ("a", "file", b"again")],
  "long": [("d/" + "n" * 200 + "/" + "m" * 120, "file", b"long"), ("l", "sym", "t" * 300)],
}

def main ():
  out = sys.argv[1]
  os.makedirs (out, exist_ok=True)
  have_zstd = shutil.which ("zstd") is not None
  for name, entries in LAYERS.items ():
    for fmt_name, fmt in (("pax", tarfile.PAX_FORMAT), ("gnu", tarfile.GNU_FORMAT)):
      tar = layer (entries, fmt)
      forms = {"tar": tar, "gz": gzip.compress (tar, mtime=0)}
      if have_zstd:
        forms["zst"] = subprocess.run (["zstd", "-q", "-c"], input=tar, stdout=subprocess.PIPE, check=True).stdout
      for ext, data in forms.items ():
        for mode in (0, 1, 3):
          with open (os.path.join (out, "%s-%s-%d.%s" % (name, fmt_name, mode, ext)), "wb") as f:
            f.write (bytes ([mode]) + data)

main ()
