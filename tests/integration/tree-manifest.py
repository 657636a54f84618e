#!/usr/bin/python3
# tests/integration/tree-manifest.py [--unpack-since EPOCH [--reference FILE]] DIR
#
# Print a canonical listing of the file tree under DIR, one line per entry
# (DIR itself included, as "."), sorted by path, so that two trees can be
# compared with `diff -u`.  Used by unpack-parity.sh to prove that berth
# unpacks images exactly as containerd does.  Each line holds, separated
# by single spaces:
#
#   path         relative to DIR; bytes outside 0x21..0x7e and `\` as \xHH
#   type         dir file symlink chr blk fifo sock
#   mode         the full st_mode permission bits in octal (setuid, setgid
#                and sticky included), e.g. 4755
#   uid:gid
#   size=N       regular files and symlinks only (a directory's size is the
#                file system's business, not the layer's)
#   mtime=S.NNNNNNNNN   seconds and nanoseconds
#   nlink=N      everything but directories
#   link=PATH    hard links: the first path, in sort order, of the entries
#                of DIR that share this entry's inode (on the first one
#                too, so that a group is visible from every member)
#   target=PATH  symlinks: the link target, escaped like paths
#   rdev=MAJ:MIN character and block devices
#   xattr:NAME=HEX   every extended attribute (all namespaces: user.*,
#                trusted.* incl. trusted.overlay.*, security.capability...),
#                sorted by name, the value in hex
#   sha256=HEX   regular files: the sha256 of the contents
#
# Unpack times.  Some mtimes are not the image's but the moment of the
# unpack, so they differ between two unpacks by the same containerd: a
# snapshot's own directory (layers carry no "./" entry), overlay whiteouts
# (containerd mknods them and never sets their time) and, with containerd's
# native snapshotter, every directory copied from the parent snapshot that
# has entries (its copy sets the time before filling the directory).  With
# --unpack-since EPOCH (the test's start, before any pull), an mtime at or
# after EPOCH prints as mtime=unpack.  With --reference FILE as well (the
# listing of containerd's tree), an entry whose mtime is mtime=unpack in
# FILE prints as mtime=unpack here too, whatever its own value: containerd
# itself does not reproduce that field, so no value can be compared with
# it; each such entry whose own mtime was the image's is counted on stderr.
#
# Only the Python standard library.  Never follows symlinks.

import argparse
import hashlib
import os
import stat
import sys


def esc (b):
  out = []
  for c in b:
    if 0x21 <= c <= 0x7e and c != 0x5c:
      out.append (chr (c))
    else:
      out.append ("\\x%02x" % c)
  return "".join (out)


def kind (mode):
  for test, name in ((stat.S_ISDIR, "dir"), (stat.S_ISREG, "file"), (stat.S_ISLNK, "symlink"),
                     (stat.S_ISCHR, "chr"), (stat.S_ISBLK, "blk"), (stat.S_ISFIFO, "fifo"),
                     (stat.S_ISSOCK, "sock")):
    if test (mode):
      return name
  return "unknown"


def file_sha256 (path):
  h = hashlib.sha256 ()
  fd = os.open (path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY)
  try:
    while True:
      chunk = os.read (fd, 1 << 20)
      if not chunk:
        break
      h.update (chunk)
  finally:
    os.close (fd)
  return h.hexdigest ()


def xattrs (path):
  try:
    names = os.listxattr (path, follow_symlinks=False)
  except OSError:
    return []
  out = []
  for n in sorted (names):
    try:
      v = os.getxattr (path, n, follow_symlinks=False)
    except OSError as e:
      v = ("<%s>" % e.strerror).encode ()
    out.append ("xattr:%s=%s" % (esc (n.encode ()), v.hex ()))
  return out


def walk (top):
  """(relative path bytes, lstat) of every entry under top, top first."""
  topb = os.fsencode (top)
  entries = [(b".", os.lstat (topb))]
  stack = [b""]
  while stack:
    rel = stack.pop ()
    full = os.path.join (topb, rel) if rel else topb
    with os.scandir (full) as it:
      for e in it:
        r = os.path.join (rel, e.name) if rel else e.name
        st = os.lstat (os.path.join (topb, r))
        entries.append ((r, st))
        if stat.S_ISDIR (st.st_mode):
          stack.append (r)
  return entries


def main ():
  ap = argparse.ArgumentParser (description="canonical listing of a file tree")
  ap.add_argument ("--unpack-since", type=int, default=None)
  ap.add_argument ("--reference", default=None)
  ap.add_argument ("dir")
  a = ap.parse_args ()
  top = a.dir
  ref_unpack = set ()
  if a.reference:
    if a.unpack_since is None:
      ap.error ("--reference needs --unpack-since")
    with open (a.reference) as f:
      for line in f:
        fields = line.split ()
        if "mtime=unpack" in fields:
          ref_unpack.add (fields[0])
  exempted = []
  entries = walk (top)
  entries.sort (key=lambda e: e[0].split (b"/") if e[0] != b"." else [])

  groups = {}
  for rel, st in entries:
    if not stat.S_ISDIR (st.st_mode) and st.st_nlink > 1:
      groups.setdefault ((st.st_dev, st.st_ino), []).append (rel)

  out = sys.stdout
  for rel, st in entries:
    m = st.st_mode
    t = kind (m)
    full = os.path.join (os.fsencode (top), rel) if rel != b"." else os.fsencode (top)
    f = [esc (rel), t, "%04o" % stat.S_IMODE (m), "%d:%d" % (st.st_uid, st.st_gid)]
    if t in ("file", "symlink"):
      f.append ("size=%d" % st.st_size)
    mine_unpack = a.unpack_since is not None and st.st_mtime_ns >= a.unpack_since * 1000000000
    if mine_unpack or f[0] in ref_unpack:
      f.append ("mtime=unpack")
      if not mine_unpack:
        exempted.append (f[0])
    else:
      f.append ("mtime=%d.%09d" % (st.st_mtime_ns // 1000000000, st.st_mtime_ns % 1000000000))
    if t != "dir":
      f.append ("nlink=%d" % st.st_nlink)
    g = groups.get ((st.st_dev, st.st_ino))
    if g and len (g) > 1:
      f.append ("link=%s" % esc (min (g, key=lambda p: p.split (b"/"))))
    if t == "symlink":
      f.append ("target=%s" % esc (os.readlink (full)))
    if t in ("chr", "blk"):
      f.append ("rdev=%d:%d" % (os.major (st.st_rdev), os.minor (st.st_rdev)))
    f.extend (xattrs (full))
    if t == "file":
      f.append ("sha256=%s" % file_sha256 (full))
    out.write (" ".join (f) + "\n")
  if exempted:
    print ("tree-manifest: %d mtime(s) kept from the image where the reference has the unpack "
           "time, not compared: %s%s"
           % (len (exempted), " ".join (p if len (p) <= 40 else p[:37] + "..." for p in exempted[:8]),
              " ..." if len (exempted) > 8 else ""), file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit (main ())
