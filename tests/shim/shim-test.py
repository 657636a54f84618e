#!/usr/bin/env python3
"""berth-shim driven directly over its SOCK_SEQPACKET socket, with real runc
and a busybox rootfs.  Run by tests/shim/shim.sh (root; SKIP otherwise).

Every case prints what it starts so that a failure can be repeated by hand;
everything created (task dirs, runc state, containers, shims) is removed."""
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SHIM = os.environ["SHIM"]
RUNC = os.environ.get("RUNC", "/usr/sbin/runc")
BUSYBOX = os.environ.get("BUSYBOX", "/bin/busybox")
TOP = tempfile.mkdtemp(prefix="berth-shim-test.")
os.chmod(TOP, 0o755)
failures = []
started = []  # (task dir, id) to clean up


def log(msg):
    print(msg, flush=True)


def check(cond, what):
    if cond:
        log("ok: " + what)
    else:
        log("FAIL: " + what)
        failures.append(what)
    return cond


def make_rootfs():
    root = os.path.join(TOP, "rootfs")
    os.makedirs(os.path.join(root, "bin"))
    for d in ("proc", "sys", "dev", "tmp", "etc"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy(BUSYBOX, os.path.join(root, "bin", "busybox"))
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True).stdout.split()
    for a in applets:
        p = os.path.join(root, "bin", a)
        if not os.path.exists(p):
            os.symlink("busybox", p)
    return root


ROOTFS = None
SPEC = None


def bundle(name, args, terminal=False, memory=None):
    b = os.path.join(TOP, "b-" + name)
    os.makedirs(b)
    spec = json.loads(json.dumps(SPEC))
    spec["root"] = {"path": ROOTFS, "readonly": True}
    spec["process"]["args"] = args
    spec["process"]["terminal"] = terminal
    spec["hostname"] = name
    if memory:
        spec["linux"].setdefault("resources", {})["memory"] = {"limit": memory}
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(spec, f)
    return b


class Task:
    def __init__(self, name, args, terminal=False, stdin=False, stdout=True, stderr=True, logged=True,
                 log_max_size=0, log_max_files=0, runtime=None, extra=(), memory=None, long_dir=False):
        self.name = name
        self.id = "shimtest-%d-%s" % (os.getpid(), name)
        self.dir = os.path.join(TOP, "t-" + name + ("-" + "d" * 100 if long_dir else ""))
        os.makedirs(self.dir)
        self.bundle = bundle(name, args, terminal, memory)
        self.fifos = {}
        argv = [SHIM, "--namespace", "test", "--id", self.id, "--bundle", self.bundle, "--task-dir", self.dir,
                "--runtime", runtime or RUNC]
        for k, want in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)):
            if want:
                p = os.path.join(TOP, "%s.%s" % (name, k))
                os.mkfifo(p)
                self.fifos[k] = p
                argv += ["--" + k, p]
        if terminal:
            argv.append("--terminal")
        self.log = None
        if logged:
            self.log = os.path.join(TOP, "logs", name, "container.log")
            argv += ["--log", self.log, "--log-max-size", str(log_max_size), "--log-max-files", str(log_max_files)]
        argv += list(extra)
        r, w = os.pipe()
        argv += ["--ready-fd", str(w)]
        log("+ " + " ".join(argv))
        started.append((self.dir, self.id))
        self.starter = subprocess.Popen(argv, pass_fds=(w,), stdin=subprocess.DEVNULL)
        os.close(w)
        self.ready = read_line(r, 30)
        os.close(r)
        self.starter.wait(10)
        log("  ready: %r" % self.ready)
        self.init_pid = int(self.ready.split()[1]) if self.ready.startswith("ok ") else None
        # Readers of the output FIFOs (held open like ctr does).
        self.readers = {}
        for k in ("stdout", "stderr"):
            if k in self.fifos and self.init_pid:
                self.readers[k] = os.open(self.fifos[k], os.O_RDONLY | os.O_NONBLOCK)

    def shim_pid(self):
        try:
            with open(os.path.join(self.dir, "shim.pid")) as f:
                return int(f.read())
        except OSError:
            return None

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(30)
        fd = os.open(self.dir, os.O_PATH)
        try:
            s.connect("/proc/self/fd/%d/shim.sock" % fd)
        finally:
            os.close(fd)
        return s

    def call(self, *fields, sock=None):
        s = sock or self.connect()
        s.send("\0".join(fields).encode())
        reply = s.recv(1 << 22).decode(errors="replace").split("\0")
        if sock is None:
            s.close()
        return reply

    def read_out(self, k, wait=3.0, until=None):
        fd = self.readers[k]
        data = b""
        end = time.time() + wait
        while time.time() < end:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    break
                data += chunk
                if until and until.encode() in data:
                    break
        return data.decode(errors="replace")

    def close_readers(self):
        for fd in self.readers.values():
            os.close(fd)
        self.readers = {}


def read_line(fd, timeout):
    buf = b""
    end = time.time() + timeout
    while time.time() < end and b"\n" not in buf:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            c = os.read(fd, 4096)
            if not c:
                break
            buf += c
    return buf.decode(errors="replace").strip()


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def gone_after(pid, secs=5.0):
    end = time.time() + secs
    while time.time() < end:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def no_leftovers(t):
    rt_state = os.path.join(t.dir, "runtime", t.id)
    mounts = open("/proc/self/mounts").read()
    cg = [p for p in ("/sys/fs/cgroup/memory/" + t.id, "/sys/fs/cgroup/pids/" + t.id, "/sys/fs/cgroup/unified/" + t.id,
                      "/sys/fs/cgroup/" + t.id) if os.path.exists(p)]
    left = [p for p in (rt_state, os.path.join(t.dir, "shim.sock")) if os.path.exists(p)] + cg
    if t.bundle in mounts:
        left.append("mounts under " + t.bundle)
    if left:
        log("  left behind: %r" % left)
    return not left


def case_run_to_completion():
    t = Task("complete", ["sh", "-c", "echo hello; echo oops >&2; exit 3"])
    if not check(t.init_pid, "create reports ok <pid>"):
        return
    check(t.call("state", "")[:3] == ["ok", "created", str(t.init_pid)], "state after create is created with the pid")
    sub = t.connect()
    check(t.call("subscribe", sock=sub) == ["ok"], "subscribe answers ok")
    check(t.call("start", "") == ["ok", str(t.init_pid)], "start answers ok <pid>")
    w = t.call("wait", "")
    check(w[:2] == ["ok", "3"] and int(w[2]) > 0, "wait returns exit status 3 and exited_at (%r)" % w)
    out = t.read_out("stdout", until="hello")
    err = t.read_out("stderr", until="oops")
    check(out == "hello\n", "stdout FIFO carries the output (%r)" % out)
    check(err == "oops\n", "stderr FIFO carries the error output (%r)" % err)
    ev = sub.recv(4096).decode().split("\0")
    check(ev[:4] == ["exit", "", str(t.init_pid), "3"], "subscriber gets the exit event (%r)" % ev)
    sub.close()
    exitf = open(os.path.join(t.dir, "exit")).read()
    check(re.fullmatch(r"3 \d{19}\n", exitf) is not None, "exit file holds status and exited_at (%r)" % exitf)
    st = t.call("state", "")
    check(st[1] == "stopped" and st[3] == "3", "state after exit is stopped/3 (%r)" % st)
    logt = open(t.log).read()
    ts = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"
    check(re.search("^%s stdout F hello$" % ts, logt, re.M) and re.search("^%s stderr F oops$" % ts, logt, re.M),
          "container log is in CRI format (%r)" % logt)
    check(t.call("kill", "", "9", "0")[:2] == ["err", "notfound"], "kill after exit: not found")
    spid = t.shim_pid()
    d = t.call("delete", "")
    check(d[:2] == ["ok", "3"], "delete returns the exit (%r)" % d)
    check(gone_after(spid), "the shim exits after delete")
    check(no_leftovers(t), "delete leaves no runtime state, socket, mount or cgroup")
    t.close_readers()


def case_log_rotation():
    t = Task("rotate", ["sh", "-c", "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done"],
             log_max_size=2000, log_max_files=2, stdout=False, stderr=False)
    t.call("start", "")
    t.call("wait", "")
    sizes = [os.path.getsize(t.log + s) if os.path.exists(t.log + s) else None for s in ("", ".1", ".2", ".3")]
    check(all(s is not None and s <= 2000 for s in sizes[:3]) and sizes[3] is None,
          "log rotates by size and keeps 2 files (%r)" % sizes)
    check("stdout F line-299" in open(t.log).read(), "the newest line is in container.log")
    t.call("delete", "")


def case_stdin():
    t = Task("stdin", ["sh", "-c", "cat; echo done"], stdin=True, stderr=False, logged=False)
    wfd = os.open(t.fifos["stdin"], os.O_WRONLY | os.O_NONBLOCK)
    t.call("start", "")
    os.write(wfd, b"ping\npong\n")
    os.close(wfd)
    time.sleep(0.2)
    check(t.call("state", "")[1] == "running", "the container still runs while stdin is open")
    check(t.call("closeio", "") == ["ok"], "closeio answers ok")
    w = t.call("wait", "")
    out = t.read_out("stdout", until="done")
    check(w[:2] == ["ok", "0"] and out == "ping\npong\ndone\n", "stdin reaches the container, closeio ends it (%r)" % out)
    t.call("delete", "")
    t.close_readers()


def case_exec_kill():
    t = Task("exec", ["sleep", "1000"], logged=False)
    t.call("start", "")
    proc = dict(SPEC["process"])
    proc.update({"args": ["sh", "-c", "echo fromexec; exit 7"], "terminal": False})
    pj = os.path.join(TOP, "exec-process.json")
    with open(pj, "w") as f:
        json.dump(proc, f)
    ofifo = os.path.join(TOP, "e1-exec.stdout")
    os.mkfifo(ofifo)
    rfd = os.open(ofifo, os.O_RDONLY | os.O_NONBLOCK)
    sub = t.connect()
    t.call("subscribe", sock=sub)
    check(t.call("exec", "e1", pj, "0", "", ofifo, "") == ["ok"], "exec records the process")
    check(t.call("exec", "e1", pj, "0", "", "", "")[:2] == ["err", "exists"], "a second exec e1: exists")
    check(t.call("exec", "../x", pj, "0", "", "", "")[:2] == ["err", "invalid"], "a hostile exec id: invalid")
    check(t.call("exec", "e2", pj, "0", "", "/dev/null", "") == ["ok"] and
          t.call("start", "e2")[:2] == ["err", "invalid"] and t.call("delete", "e2")[0] == "ok",
          "an exec whose stdout is not a FIFO is refused at start")
    check(t.call("state", "e1")[1] == "created", "exec state is created before start")
    s = t.call("start", "e1")
    check(s[0] == "ok" and int(s[1]) > 0, "start e1 runs it (%r)" % s)
    w = t.call("wait", "e1")
    check(w[:2] == ["ok", "7"], "wait e1 returns 7 (%r)" % w)
    data = b""
    end = time.time() + 3
    while time.time() < end and b"fromexec" not in data:
        try:
            data += os.read(rfd, 4096)
        except BlockingIOError:
            time.sleep(0.05)
    os.close(rfd)
    check(b"fromexec\n" in data, "exec output reaches its FIFO (%r)" % data)
    ev = sub.recv(4096).decode().split("\0")
    check(ev[:2] == ["exit", "e1"] and ev[3] == "7", "subscriber gets the exec's exit (%r)" % ev)
    check(t.call("delete", "e1")[:2] == ["ok", "7"], "delete e1 returns its exit")
    check(t.call("state", "e1")[:2] == ["err", "notfound"], "e1 is gone after delete")
    # exec -t: the pty of the exec arrives over the console socket.
    tproc = dict(proc)
    tproc.update({"args": ["sh", "-c", "tty; echo t-done"], "terminal": True})
    tpj = os.path.join(TOP, "exec-tty.json")
    with open(tpj, "w") as f:
        json.dump(tproc, f)
    tfifo = os.path.join(TOP, "t1-exec.stdout")
    os.mkfifo(tfifo)
    tfd = os.open(tfifo, os.O_RDONLY | os.O_NONBLOCK)
    check(t.call("exec", "t1", tpj, "1", "", tfifo, "") == ["ok"], "exec with a terminal")
    s = t.call("start", "t1")
    check(s[0] == "ok", "start t1 (%r)" % s)
    check(t.call("resize", "t1", "80", "25") == ["ok"] or t.call("state", "t1")[1] == "stopped", "resize t1")
    w = t.call("wait", "t1")
    data = b""
    end = time.time() + 3
    while time.time() < end and b"t-done" not in data:
        try:
            data += os.read(tfd, 4096)
        except BlockingIOError:
            time.sleep(0.05)
    os.close(tfd)
    check(w[:2] == ["ok", "0"] and b"/dev/pts/" in data and b"t-done" in data, "exec -t output (%r)" % data)
    ev = sub.recv(4096).decode().split("\0")
    check(ev[:2] == ["exit", "t1"], "subscriber gets t1's exit")
    check(t.call("delete", "t1")[0] == "ok", "delete t1")
    check(t.call("delete", "")[:2] == ["err", "precondition"], "delete of a running task is refused")
    pids = t.call("pids")
    check(pids[0] == "ok" and json.loads(pids[1]) == [t.init_pid], "pids lists the init (%r)" % pids)
    stats = t.call("stats")
    check(stats[0] == "ok" and json.loads(stats[1]).get("type") == "stats", "stats is runc's events --stats JSON")
    check(t.call("pause") == ["ok"] and t.call("state", "")[1] == "paused", "pause")
    check(t.call("resume") == ["ok"] and t.call("state", "")[1] == "running", "resume")
    # sleep as pid 1 has no SIGTERM handler: the kernel ignores the signal.
    check(t.call("kill", "", "15", "0") == ["ok"], "kill SIGTERM answers ok")
    time.sleep(0.3)
    check(t.call("state", "")[1] == "running", "a container ignoring SIGTERM keeps running")
    check(t.call("kill", "", "9", "0") == ["ok"], "kill SIGKILL answers ok")
    w = t.call("wait", "")
    check(w[:2] == ["ok", "137"], "SIGKILL gives exit status 137 (%r)" % w)
    ev = sub.recv(4096).decode().split("\0")
    check(ev[:4] == ["exit", "", str(t.init_pid), "137"], "subscriber gets the init's exit (%r)" % ev)
    sub.close()
    t.call("delete", "")
    check(no_leftovers(t) and not alive(t.init_pid), "nothing left after kill + delete")
    t.close_readers()


def case_subscribe_redelivery():
    t = Task("redeliver", ["true"], logged=False, stdout=False, stderr=False)
    t.call("start", "")
    t.call("wait", "")
    sub = t.connect()
    t.call("subscribe", sock=sub)
    ev = sub.recv(4096).decode().split("\0")
    check(ev[:4] == ["exit", "", str(t.init_pid), "0"], "an exit nobody received is re-sent on subscribe (%r)" % ev)
    sub.close()
    sub2 = t.connect()
    t.call("subscribe", sock=sub2)
    sub2.settimeout(0.5)
    try:
        again = sub2.recv(4096)
    except socket.timeout:
        again = None
    check(again is None, "a delivered exit is not re-sent")
    sub2.close()
    t.call("delete", "")


def case_oom():
    t = Task("oom", ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"],
             logged=False, stdout=False, stderr=False, memory=16 << 20)
    sub = t.connect()
    t.call("subscribe", sock=sub)
    t.call("start", "")
    w = t.call("wait", "")
    sub.settimeout(5)
    got = []
    try:
        while True:
            got.append(sub.recv(4096).decode().split("\0")[0])
            if "exit" in got:
                break
    except socket.timeout:
        pass
    sub.close()
    if not check(w[:2] == ["ok", "137"] and "oom" in got, "an OOM kill is reported to subscribers (%r, %r)" % (w, got)):
        log(open(os.path.join(t.dir, "shim.log")).read())
    t.call("delete", "")


def case_terminal():
    t = Task("tty", ["sh", "-c", "read x; tty; echo got-$x; stty size"], terminal=True, stdin=True, stderr=False)
    if not check(t.init_pid, "create with --terminal gets the pty over the console socket (%s)" % t.ready):
        return
    check(t.call("resize", "", "100", "40") == ["ok"], "resize answers ok")
    check(t.call("state", "")[5] == "1", "state reports the terminal")
    t.call("start", "")
    wfd = os.open(t.fifos["stdin"], os.O_WRONLY | os.O_NONBLOCK)
    os.write(wfd, b"abc\n")
    os.close(wfd)
    w = t.call("wait", "")
    out = t.read_out("stdout", until="40 100")
    check(w[:2] == ["ok", "0"] and "/dev/pts/" in out and "got-abc" in out and "40 100" in out,
          "terminal output, input and size go through the pty (%r)" % out)
    logt = open(t.log).read()
    check(re.search(r" stdout F got-abc\r?$", logt, re.M) is not None, "terminal output is logged as stdout")
    check(t.call("resize", "", "x", "1")[:2] == ["err", "invalid"], "a bad resize: invalid")
    t.call("delete", "")
    t.close_readers()


def case_long_task_dir():
    """A task dir too long for sun_path: shim.sock is bound through
    /proc/self/fd, console.sock lives in a short directory, removed after."""
    before = set(d for d in os.listdir("/tmp") if d.startswith("berth-shim-"))
    t = Task("long", ["sh", "-c", "tty"], terminal=True, stderr=False, logged=False, long_dir=True)
    if not check(t.init_pid, "a long task dir works with a terminal (%s)" % t.ready):
        return
    fd = os.open(t.dir, os.O_PATH)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect("/proc/self/fd/%d/shim.sock" % fd)
    os.close(fd)
    s.send(b"start\0")
    check(s.recv(4096).startswith(b"ok"), "its socket answers through /proc/self/fd")
    s.send(b"wait\0")
    w = s.recv(4096).split(b"\0")
    out = t.read_out("stdout", until="pts")
    check(w[:2] == [b"ok", b"0"] and "/dev/pts/" in out, "the container ran with its pty (%r)" % out)
    s.send(b"delete\0")
    s.recv(4096)
    s.close()
    after = set(d for d in os.listdir("/tmp") if d.startswith("berth-shim-"))
    check(after <= before, "no console directory is left in /tmp (%r)" % (after - before))
    t.close_readers()


def case_survives_parent_kill():
    t = Task("survive", ["sleep", "1000"], logged=False, stdout=False, stderr=False,
             extra=[])
    spid = t.shim_pid()
    # A "berthd" that starts the shim and is killed with SIGKILL.
    d2 = os.path.join(TOP, "t-survive2")
    os.makedirs(d2)
    b2 = bundle("survive2", ["sleep", "1000"])
    tid = "shimtest-%d-survive2" % os.getpid()
    started.append((d2, tid))
    parent = subprocess.Popen(["bash", "-c", '"$@" --ready-fd 1 | cat; sleep 1000', "x", SHIM, "--namespace", "test",
                               "--id", tid, "--bundle", b2, "--task-dir", d2, "--runtime", RUNC],
                              stdout=subprocess.PIPE)
    line = read_line(parent.stdout.fileno(), 30)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    parent.stdout.close()
    time.sleep(0.3)
    with open(os.path.join(d2, "shim.pid")) as f:
        spid2 = int(f.read())
    check(line.startswith("ok ") and alive(spid2), "the shim survives its starter's SIGKILL (%r)" % line)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(10)
    s.connect(os.path.join(d2, "shim.sock"))
    s.send(b"start\0")
    check(s.recv(4096).decode().startswith("ok"), "and still serves its socket")
    s.close()
    rss = None
    with open("/proc/%d/status" % spid2) as f:
        for l in f:
            if l.startswith("VmRSS:"):
                rss = int(l.split()[1])
    log("measure: berth-shim VmRSS with a running container: %s kB" % rss)
    check(rss is not None and rss <= 1024, "shim RSS <= 1 MiB (%s kB)" % rss)
    for (d, i) in ((d2, tid), (t.dir, t.id)):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(10)
        s.connect(os.path.join(d, "shim.sock"))
        for req in (b"kill\0\x009\x000", b"wait\0", b"delete\0"):
            s.send(req)
            s.recv(4096)
        s.close()
    check(gone_after(spid) and gone_after(spid2), "both shims exit after delete")


def case_bad_input():
    t = Task("bad", ["sleep", "1000"], logged=False, stdout=False, stderr=False)
    s = t.connect()
    s.send(b"x" * 100000)
    r = s.recv(4096).decode().split("\0")
    check(r[:2] == ["err", "invalid"], "a huge request: invalid (%r)" % r[:3])
    check(t.call("frobnicate")[:2] == ["err", "notsup"], "an unknown verb: not supported")
    check(t.call("state", "nope")[:2] == ["err", "notfound"], "state of an unknown process: not found")
    check(t.call("kill", "", "abc", "0")[:2] == ["err", "invalid"], "a bad signal: invalid")
    check(t.call(*(["state"] * 40))[:2] == ["err", "invalid"], "too many fields: invalid")
    check(t.call("update", "relative.json")[:2] == ["err", "invalid"], "a relative update path: invalid")
    # Disconnect in the middle of a wait, and with a request half-sent.
    w = t.connect()
    w.send(b"wait\0")
    w.close()
    h = t.connect()
    h.shutdown(socket.SHUT_WR)
    h.close()
    check(t.call("state", "")[0] == "ok", "the shim survives clients that go away mid-request")
    r = t.call("start", "e9")
    check(r[:2] == ["err", "notfound"], "start of an unknown exec: not found")
    check(t.call("delete", "")[0] == "ok", "delete of a created (never started) task works")
    check(no_leftovers(t), "no leftovers after deleting a created task")


def case_failures():
    t = Task("nobin", ["true"], runtime="/nonexistent/runc", logged=False, stdout=False, stderr=False)
    check(t.ready.startswith("err ") and "/nonexistent/runc" in t.ready and "No such file" in t.ready,
          "a missing runtime binary is named in the error (%r)" % t.ready)
    check(not os.path.exists(os.path.join(t.dir, "shim.sock")), "and the shim left no socket")
    t = Task("nope", ["/nope"], logged=False, stdout=False, stderr=False)
    check(t.ready.startswith("err ") and '"/nope"' in t.ready and "no such file" in t.ready.lower(),
          "a missing container binary gives runc's reason (%r)" % t.ready)
    check(not os.path.exists(os.path.join(t.dir, "runtime", t.id)), "and no runtime state is left")
    r = subprocess.run([SHIM, "--namespace", "test", "--bundle", "/", "--task-dir", TOP, "--runtime", RUNC],
                       capture_output=True, text=True)
    check(r.returncode == 2 and "--id" in r.stderr, "a missing --id is refused (%r)" % r.stderr.strip())
    r = subprocess.run([SHIM, "--bogus", "1"], capture_output=True, text=True)
    check(r.returncode == 2 and "unknown flag --bogus" in r.stderr, "an unknown flag is refused")


def cleanup():
    for d, i in started:
        try:
            with open(os.path.join(d, "shim.pid")) as f:
                pid = int(f.read())
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass
        subprocess.run([RUNC, "--root", os.path.join(d, "runtime"), "delete", "--force", i],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(TOP, ignore_errors=True)


def main():
    global ROOTFS, SPEC
    ROOTFS = make_rootfs()
    sd = os.path.join(TOP, "spec")
    os.makedirs(sd)
    subprocess.run([RUNC, "spec"], cwd=sd, check=True)
    with open(os.path.join(sd, "config.json")) as f:
        SPEC = json.load(f)
    SPEC["process"]["env"] = ["PATH=/bin", "TERM=xterm"]
    # runc's default spec raises ambient capabilities that are not
    # inheritable; runc ignores that, berth-runtime refuses it.
    SPEC["process"].get("capabilities", {}).pop("ambient", None)
    cases = [case_run_to_completion, case_log_rotation, case_stdin, case_exec_kill, case_subscribe_redelivery,
             case_oom, case_terminal, case_long_task_dir, case_survives_parent_kill, case_bad_input, case_failures]
    only = sys.argv[1:]
    for c in cases:
        if only and c.__name__ not in only:
            continue
        log("== " + c.__name__)
        try:
            c()
        except Exception as e:  # a case that crashes is a failure, the others still run
            import traceback
            traceback.print_exc()
            check(False, "%s raised %r" % (c.__name__, e))
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        cleanup()
    if failures:
        log("%d failure(s): %s" % (len(failures), "; ".join(failures)))
    sys.exit(rc)
