#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 for the pull tests: forwards to a registry,
slowing the server-to-client direction to --rate bytes/s, and optionally
cutting the first connection whose response carries more than --cut-after
bytes (to prove that a pull resumes with an HTTP Range request).

Usage: throttle-proxy.py --listen-port-file F --target HOST:PORT [--rate B] [--cut-after N]
Prints nothing; writes the chosen port to F.  Stops on SIGTERM.  Standard
library only.
"""
import argparse
import signal
import socket
import sys
import threading
import time

cut_done = threading.Event()


def pump(src, dst, rate, cut_after):
    sent = 0
    start = time.monotonic()
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if cut_after and not cut_done.is_set() and sent + len(data) > cut_after:
                dst.sendall(data[: max(0, cut_after - sent)])
                cut_done.set()
                break
            dst.sendall(data)
            sent += len(data)
            if rate:
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client, target, rate, cut_after):
    host, port = target.rsplit(":", 1)
    try:
        upstream = socket.create_connection((host, int(port)), timeout=10)
        upstream.settimeout(None)
    except OSError:
        client.close()
        return
    threading.Thread(target=pump, args=(client, upstream, 0, 0), daemon=True).start()
    pump(upstream, client, rate, cut_after)
    client.close()
    upstream.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen-port-file", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--rate", type=int, default=0)
    ap.add_argument("--cut-after", type=int, default=0)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    with open(a.listen_port_file, "w") as f:
        f.write(str(ls.getsockname()[1]))
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c, a.target, a.rate, a.cut_after), daemon=True).start()


if __name__ == "__main__":
    main()
