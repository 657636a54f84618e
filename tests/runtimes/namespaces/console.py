#!/usr/bin/env python3
"""Receive a pty master over a --console-socket (SCM_RIGHTS), as a shim does;
send `input` to it, copy what the container writes to `out` until it hangs up."""
import array, os, socket, sys

path, out = sys.argv[1], sys.argv[2]
data = sys.argv[3].encode() if len(sys.argv) > 3 else b""
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(1)
s.settimeout(15)
c, _ = s.accept()
fds = array.array("i")
msg, anc, _, _ = c.recvmsg(1024, socket.CMSG_SPACE(fds.itemsize))
for level, kind, payload in anc:
    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
        fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
if not fds:
    sys.exit("no fd received")
master = fds[0]
if data:
    os.write(master, data)
with open(out, "wb") as f:
    f.write(b"NAME=" + msg + b"\n")
    while True:
        try:
            b = os.read(master, 4096)
        except OSError:
            break
        if not b:
            break
        f.write(b)
