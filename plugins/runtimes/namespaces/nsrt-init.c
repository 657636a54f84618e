/* berth-runtime: the container's init (create/run) and exec processes.
 *
 * create: one clone() with every new namespace the spec asks for (the user
 * namespace first, so the others belong to it); the parent writes the
 * uid/gid maps and puts the child in its cgroup, then says "go" over a
 * SOCK_SEQPACKET pair.  The child unshares the cgroup namespace (after it
 * is in its cgroup, so that its cgroup is the namespace's root), joins the
 * namespaces given by path, builds the rootfs, drops privileges, checks
 * that process.args[0] can be executed, reports "ready" and blocks on the
 * exec FIFO until `start`.  Every message is one datagram:
 *   child -> parent: "H" (run prestart/createRuntime hooks now), "R" (ready),
 *                    "P<pid>" (exec: the process's pid), "E<code> <message>"
 *   parent -> child: "g" (go on)
 * An error after "R" (execve itself failing) can only reach the container's
 * stderr: the exit code tells (127 not found, 126 not executable). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "nsrt.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

static const char *
jstr (json_object *o, const char *key)
{
  json_object *v;
  if (o && json_object_object_get_ex (o, key, &v) && json_object_is_type (v, json_type_string))
    return json_object_get_string (v);
  return NULL;
}

static json_object *
jget (json_object *o, const char *key)
{
  json_object *v;
  if (o && json_object_object_get_ex (o, key, &v))
    return v;
  return NULL;
}

/* ---- namespaces ---- */

static const struct
{
  const char *type;
  const char *proc; /* /proc/<pid>/ns/<proc> */
  int flag;
} ns_types[] = {
  /* setns order for exec: user first (it owns the others), mount last */
  { "user", "user", CLONE_NEWUSER },  { "ipc", "ipc", CLONE_NEWIPC },     { "uts", "uts", CLONE_NEWUTS },
  { "network", "net", CLONE_NEWNET }, { "pid", "pid", CLONE_NEWPID },     { "cgroup", "cgroup", CLONE_NEWCGROUP },
  { "mount", "mnt", CLONE_NEWNS },    { "time", "time", 0x00000080 /* CLONE_NEWTIME */ },
};
#define NS_N (sizeof ns_types / sizeof ns_types[0])

struct ns_plan
{
  int new_flags;      /* namespaces to create */
  int join_fd[NS_N];  /* namespaces to join by path, -1 otherwise */
};

/* open_paths false: check the list only (nsrt_spec_check), opening nothing. */
static int
ns_plan_parse (json_object *config, struct ns_plan *p, bool open_paths, struct nsrt_err *err)
{
  bool join_user = false;
  p->new_flags = 0;
  for (size_t k = 0; k < NS_N; k++)
    p->join_fd[k] = -1;
  json_object *nss = jget (jget (config, "linux"), "namespaces");
  if (nss == NULL)
    return 0;
  if (!json_object_is_type (nss, json_type_array))
    return nsrt_errf (err, 0, "linux.namespaces: not an array");
  int seen = 0;
  for (size_t i = 0; i < json_object_array_length (nss); i++)
    {
      json_object *n = json_object_array_get_idx (nss, i);
      const char *type = jstr (n, "type"), *path = jstr (n, "path");
      if (type == NULL)
        return nsrt_errf (err, 0, "linux.namespaces[%zu].type: missing or not a string", i);
      size_t k;
      for (k = 0; k < NS_N; k++)
        if (strcmp (type, ns_types[k].type) == 0)
          break;
      if (k == NS_N)
        return nsrt_errf (err, 0, "linux.namespaces[%zu].type: unknown namespace type `%s`", i, type);
      if (seen & (1 << k))
        return nsrt_errf (err, 0, "linux.namespaces[%zu]: namespace `%s` given twice", i, type);
      seen |= 1 << k;
      if (jget (n, "path") && path == NULL)
        return nsrt_errf (err, 0, "linux.namespaces[%zu].path: not a string", i);
      if (path && path[0])
        {
          join_user |= k == 0;
          if (!open_paths)
            continue;
          p->join_fd[k] = open (path, O_RDONLY | O_CLOEXEC);
          if (p->join_fd[k] < 0)
            return nsrt_errf (err, errno, "linux.namespaces[%zu].path: open %s", i, path);
        }
      else if (strcmp (type, "time") == 0)
        /* CLONE_NEWTIME shares its bit with clone()'s exit signal */
        return nsrt_errf (err, 0, "linux.namespaces[%zu]: a new time namespace is not supported (join one by path)", i);
      else
        p->new_flags |= ns_types[k].flag;
    }
  if (join_user && (p->new_flags & CLONE_NEWPID))
    return nsrt_errf (err, 0, "linux.namespaces: joining a user namespace by path with a new pid namespace is not supported");
  return 0;
}

static void
ns_plan_close (struct ns_plan *p)
{
  for (size_t k = 0; k < NS_N; k++)
    if (p->join_fd[k] >= 0)
      close (p->join_fd[k]), p->join_fd[k] = -1;
}

/* "0 100000 65536\n..." from linux.uidMappings */
static int
id_map_text (json_object *a, const char *what, char *buf, size_t size, struct nsrt_err *err)
{
  size_t len = 0;
  buf[0] = '\0';
  if (a == NULL)
    return 0;
  if (!json_object_is_type (a, json_type_array))
    return nsrt_errf (err, 0, "linux.%s: not an array", what);
  for (size_t i = 0; i < json_object_array_length (a); i++)
    {
      json_object *m = json_object_array_get_idx (a, i);
      json_object *c = jget (m, "containerID"), *h = jget (m, "hostID"), *s = jget (m, "size");
      if (!c || !h || !s || !json_object_is_type (c, json_type_int) || !json_object_is_type (h, json_type_int)
          || !json_object_is_type (s, json_type_int) || json_object_get_int64 (c) < 0
          || json_object_get_int64 (h) < 0 || json_object_get_int64 (s) <= 0)
        return nsrt_errf (err, 0, "linux.%s[%zu]: needs non-negative containerID, hostID and a positive size", what,
                          i);
      int n = snprintf (buf + len, size - len, "%lld %lld %lld\n", (long long) json_object_get_int64 (c),
                        (long long) json_object_get_int64 (h), (long long) json_object_get_int64 (s));
      if (n < 0 || (size_t) n >= size - len)
        return nsrt_errf (err, 0, "linux.%s: too many mappings", what);
      len += n;
    }
  return 0;
}

static int
write_proc (pid_t pid, const char *file, const char *text, struct nsrt_err *err)
{
  char path[64];
  snprintf (path, sizeof path, "/proc/%d/%s", (int) pid, file);
  int fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return nsrt_errf (err, errno, "open %s", path);
  ssize_t w = write (fd, text, strlen (text));
  int e = errno;
  close (fd);
  if (w < 0)
    return nsrt_errf (err, e, "write %s (\"%.*s\")", path, (int) strcspn (text, "\n"), text);
  return 0;
}

/* ---- the sync channel ---- */

static void
send_msg (int fd, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
static void
send_msg (int fd, const char *fmt, ...)
{
  char buf[16384];
  va_list ap;
  va_start (ap, fmt);
  int n = vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  if (n < 0)
    return;
  if ((size_t) n >= sizeof buf)
    n = sizeof buf - 1;
  while (send (fd, buf, n, MSG_NOSIGNAL) < 0 && errno == EINTR)
    ;
}

static ssize_t
recv_msg (int fd, char *buf, size_t size)
{
  ssize_t n;
  do
    n = recv (fd, buf, size - 1, 0);
  while (n < 0 && errno == EINTR);
  if (n >= 0)
    buf[n] = '\0';
  return n;
}

/* In a child: report the error and leave. */
static __attribute__ ((noreturn)) void
child_fail (int sync, int code, const struct nsrt_err *err)
{
  send_msg (sync, "E%d %s", code, err->msg);
  _exit (code ? code : 1);
}

/* ---- the process: user, caps, tty, binary ---- */

struct proc_setup
{
  int proc_fd_dir;  /* the init's /proc/self/fd, opened before pivot_root */
  json_object *process;
  json_object *config;
  int console_fd;  /* connected --console-socket, or -1 */
  int sync;
  struct nsrt_seccomp *seccomp; /* linux.seccomp, prepared before pivot_root (cache), or NULL */
};

/* Compiled seccomp filters are cached here (nsrt_seccomp_prepare_cached);
 * BERTH_RUNTIME_SECCOMP_CACHE overrides, "" disables. */
static const char *
seccomp_cache_dir (void)
{
  const char *e = getenv ("BERTH_RUNTIME_SECCOMP_CACHE");
  if (e)
    return *e ? e : NULL;
  return NSRT_DEFAULT_ROOT "/seccomp-cache";
}

static int
setup_terminal (int console_fd, struct nsrt_err *err)
{
  int master = open ("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0)
    return nsrt_errf (err, errno, "process.terminal: open /dev/ptmx (is /dev/pts mounted?)");
  char name[128];
  int unlock = 0;
  if (ioctl (master, TIOCSPTLCK, &unlock) < 0 || ptsname_r (master, name, sizeof name) != 0)
    return nsrt_errf (err, errno, "process.terminal: unlock the pty");
  int slave = open (name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0)
    return nsrt_errf (err, errno, "process.terminal: open %s", name);
  /* runc's console protocol: the master fd in SCM_RIGHTS, the pty name as data */
  struct iovec iov = { .iov_base = name, .iov_len = strlen (name) };
  char cbuf[CMSG_SPACE (sizeof (int))] = { 0 };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  struct cmsghdr *c = CMSG_FIRSTHDR (&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN (sizeof (int));
  memcpy (CMSG_DATA (c), &master, sizeof (int));
  if (sendmsg (console_fd, &msg, MSG_NOSIGNAL) < 0)
    return nsrt_errf (err, errno, "send the pty master over --console-socket");
  close (master);
  close (console_fd);
  if (setsid () < 0 && errno != EPERM)
    return nsrt_errf (err, errno, "setsid");
  if (ioctl (slave, TIOCSCTTY, 0) < 0)
    return nsrt_errf (err, errno, "make %s the controlling terminal", name);
  for (int i = 0; i < 3; i++)
    if (dup2 (slave, i) < 0)
      return nsrt_errf (err, errno, "dup2 the pty slave");
  if (slave > 2)
    close (slave);
  return 0;
}

static const char *
env_get (char **envp, const char *name)
{
  size_t n = strlen (name);
  for (; envp && *envp; envp++)
    if (strncmp (*envp, name, n) == 0 && (*envp)[n] == '=')
      return *envp + n + 1;
  return NULL;
}

/* PATH lookup inside the container (after pivot_root): 0 with the path,
 * or the exit code (127/126) with a message naming the path. */
static int
find_binary (const char *arg0, char **envp, char *out, size_t size, struct nsrt_err *err)
{
  struct stat st;
  if (strchr (arg0, '/'))
    {
      snprintf (out, size, "%s", arg0);
      if (stat (out, &st) < 0)
        {
          nsrt_errf (err, errno, "exec: \"%s\"", arg0);
          return errno == ENOENT || errno == ENOTDIR ? NSRT_EXIT_NOTFOUND : NSRT_EXIT_NOEXEC;
        }
      if (S_ISDIR (st.st_mode))
        {
          nsrt_errf (err, 0, "exec: \"%s\": is a directory", arg0);
          return NSRT_EXIT_NOEXEC;
        }
      if (access (out, X_OK) < 0)
        {
          nsrt_errf (err, errno, "exec: \"%s\"", arg0);
          return NSRT_EXIT_NOEXEC;
        }
      return 0;
    }
  const char *path = env_get (envp, "PATH");
  if (path == NULL)
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  bool denied = false;
  while (*path)
    {
      size_t n = strcspn (path, ":");
      snprintf (out, size, "%.*s%s%s", (int) n, path, n ? "/" : "", arg0);
      path += n + (path[n] == ':');
      if (stat (out, &st) == 0 && !S_ISDIR (st.st_mode))
        {
          if (access (out, X_OK) == 0)
            return 0;
          denied = true;
        }
    }
  if (denied)
    {
      nsrt_errf (err, EACCES, "exec: \"%s\"", arg0);
      return NSRT_EXIT_NOEXEC;
    }
  nsrt_errf (err, 0, "exec: \"%s\": executable file not found in $PATH", arg0);
  return NSRT_EXIT_NOTFOUND;
}

static char **
strv_from (json_object *a)
{
  size_t n = a ? json_object_array_length (a) : 0;
  char **v = calloc (n + 1, sizeof *v);
  if (v == NULL)
    abort ();
  for (size_t i = 0; i < n; i++)
    v[i] = (char *) json_object_get_string (json_object_array_get_idx (a, i));
  return v;
}

static int
validate_process (json_object *process, struct nsrt_err *err)
{
  if (process == NULL || !json_object_is_type (process, json_type_object))
    return nsrt_errf (err, 0, "process: missing or not an object");
  json_object *args = jget (process, "args");
  if (args == NULL || !json_object_is_type (args, json_type_array) || json_object_array_length (args) == 0)
    return nsrt_errf (err, 0, "process.args: missing or empty");
  for (size_t i = 0; i < json_object_array_length (args); i++)
    if (!json_object_is_type (json_object_array_get_idx (args, i), json_type_string))
      return nsrt_errf (err, 0, "process.args[%zu]: not a string", i);
  json_object *env = jget (process, "env");
  if (env && !json_object_is_type (env, json_type_array))
    return nsrt_errf (err, 0, "process.env: not an array");
  for (size_t i = 0; env && i < json_object_array_length (env); i++)
    {
      json_object *e = json_object_array_get_idx (env, i);
      if (!json_object_is_type (e, json_type_string) || !strchr (json_object_get_string (e), '='))
        return nsrt_errf (err, 0, "process.env[%zu]: not a NAME=value string", i);
    }
  const char *cwd = jstr (process, "cwd");
  if (jget (process, "cwd") && (cwd == NULL || cwd[0] != '/'))
    return nsrt_errf (err, 0, "process.cwd: must be an absolute path");
  json_object *user = jget (process, "user"), *v;
  if (user && !json_object_is_type (user, json_type_object))
    return nsrt_errf (err, 0, "process.user: not an object");
  static const char *const ids[] = { "uid", "gid", "umask" };
  for (size_t i = 0; i < 3; i++)
    if ((v = jget (user, ids[i]))
        && (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < 0
            || json_object_get_int64 (v) > UINT32_MAX - 1))
      return nsrt_errf (err, 0, "process.user.%s: not a valid id", ids[i]);
  json_object *ag = jget (user, "additionalGids");
  if (ag && !json_object_is_type (ag, json_type_array))
    return nsrt_errf (err, 0, "process.user.additionalGids: not an array");
  for (size_t i = 0; ag && i < json_object_array_length (ag); i++)
    {
      v = json_object_array_get_idx (ag, i);
      if (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < 0
          || json_object_get_int64 (v) > UINT32_MAX - 1)
        return nsrt_errf (err, 0, "process.user.additionalGids[%zu]: not a valid gid", i);
    }
  if (ag && json_object_array_length (ag) > 65536)
    return nsrt_errf (err, 0, "process.user.additionalGids: too many");
  return 0;
}

/* From here on the child runs as the container's process: switch the
 * user, apply the limits and capabilities, find the binary, report ready,
 * wait on the FIFO when there is one, load seccomp, execve. */
static __attribute__ ((noreturn)) void
exec_process (const struct proc_setup *s, int fifo_fd, const char *start_hooks_state)
{
  struct nsrt_err err = { "" };
  int sync = s->sync;
  json_object *p = s->process, *v;
  /* No host fd reaches the container: everything above 2 (inherited from
   * our caller, or ours) closes at execve.  Marked now: the seccomp filter
   * may forbid close_range later; every fd opened below is O_CLOEXEC. */
  if (syscall (SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
    for (int fd = 3; fd < 65536; fd++)
      fcntl (fd, F_SETFD, FD_CLOEXEC);
  bool nnp = (v = jget (p, "noNewPrivileges")) && json_object_get_boolean (v);
  if (s->console_fd >= 0 && setup_terminal (s->console_fd, &err) < 0)
    child_fail (sync, 1, &err);
  if ((v = jget (p, "rlimits")) && nsrt_rlimits_apply (v, &err) < 0)
    child_fail (sync, 1, &err);
  if ((v = jget (p, "oomScoreAdj")) && nsrt_oom_score_adj (json_object_get_int (v), &err) < 0)
    child_fail (sync, 1, &err);
  struct nsrt_seccomp *sc = s->seccomp;
  json_object *seccomp = jget (jget (s->config, "linux"), "seccomp");
  if (sc == NULL && seccomp && nsrt_seccomp_prepare (seccomp, &sc, &err) < 0)
    child_fail (sync, 1, &err);
  if (nsrt_caps_prepare (&err) < 0)
    child_fail (sync, 1, &err);
  /* Without no_new_privs the kernel wants CAP_SYS_ADMIN to load a filter:
   * load it now, before the user and capability changes (runc's order);
   * with no_new_privs, as late as possible, right before execve. */
  if (sc && !nnp && nsrt_seccomp_load (sc, &err) < 0)
    child_fail (sync, 1, &err);
  json_object *user = jget (p, "user");
  uid_t uid = (v = jget (user, "uid")) ? (uid_t) json_object_get_int64 (v) : 0;
  gid_t gid = (v = jget (user, "gid")) ? (gid_t) json_object_get_int64 (v) : 0;
  json_object *ag = jget (user, "additionalGids");
  size_t ng = ag && json_object_is_type (ag, json_type_array) ? json_object_array_length (ag) : 0;
  gid_t groups[ng + 1];
  for (size_t i = 0; i < ng; i++)
    groups[i] = json_object_get_int64 (json_object_array_get_idx (ag, i));
  /* setgroups is denied in a user namespace with setgroups=deny: only an
   * error when groups were asked for */
  if (setgroups (ng, groups) < 0 && (ng > 0 || errno != EPERM))
    {
      nsrt_errf (&err, errno, "process.user.additionalGids: setgroups");
      child_fail (sync, 1, &err);
    }
  if (setresgid (gid, gid, gid) < 0)
    {
      nsrt_errf (&err, errno, "process.user.gid %u: setresgid", (unsigned) gid);
      child_fail (sync, 1, &err);
    }
  if (setresuid (uid, uid, uid) < 0)
    {
      nsrt_errf (&err, errno, "process.user.uid %u: setresuid", (unsigned) uid);
      child_fail (sync, 1, &err);
    }
  /* an exec process without capabilities gets the container's (runc),
   * never the runtime's full set */
  json_object *caps = jget (p, "capabilities");
  if (caps == NULL)
    caps = jget (jget (s->config, "process"), "capabilities");
  if (caps && nsrt_caps_apply (caps, &err) < 0)
    child_fail (sync, 1, &err);
  umask ((v = jget (user, "umask")) ? (mode_t) json_object_get_int (v) & 0777 : 022);
  const char *cwd = jstr (p, "cwd");
  if (cwd == NULL)
    cwd = "/";
  if (chdir (cwd) < 0)
    {
      nsrt_errf (&err, errno, "process.cwd: chdir %s", cwd);
      child_fail (sync, 1, &err);
    }
  /* CVE-2024-21626: a cwd such as /proc/self/fd/N reaches whatever host
   * directory fd N is (O_CLOEXEC does not help before execve).  getcwd()
   * fails with ENOENT, or (raw syscall) answers "(unreachable)...", when the
   * cwd is outside our root: refuse to start there. */
  char where[4096];
  if (getcwd (where, sizeof where) == NULL || where[0] != '/')
    {
      nsrt_errf (&err, 0, "process.cwd %s is outside the container's root filesystem", cwd);
      child_fail (sync, 1, &err);
    }
  char **argv = strv_from (jget (p, "args"));
  char **envp = strv_from (jget (p, "env"));
  char bin[4096];
  int code = find_binary (argv[0], envp, bin, sizeof bin, &err);
  if (code)
    child_fail (sync, code, &err);
  if (nnp && prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    {
      nsrt_errf (&err, errno, "process.noNewPrivileges");
      child_fail (sync, 1, &err);
    }
  /* our creator may go away now: the container outlives `create` */
  prctl (PR_SET_PDEATHSIG, 0);
  send_msg (sync, "R");
  close (sync);
  if (fifo_fd >= 0)
    {
      /* reopen the O_PATH fd for writing: this blocks until `start` opens
       * the FIFO for reading */
      char path[64];
      snprintf (path, sizeof path, "%d", fifo_fd);
      int w = openat (s->proc_fd_dir, path, O_WRONLY | O_CLOEXEC);
      if (w < 0)
        {
          dprintf (2, "berth-runtime: open the exec fifo (fd %s): %s\n", path, strerror (errno));
          _exit (1);
        }
      if (write (w, "0", 1) != 1)
        _exit (1);
      close (w);
      close (fifo_fd);
    }
  /* The host's /proc/<pid>/fd: nothing may resolve a path through it from
   * here on (a #! interpreter named /proc/self/fd/N/.. is looked up inside
   * execve, before the O_CLOEXEC fds go). */
  if (s->proc_fd_dir >= 0)
    close (s->proc_fd_dir);
  /* startContainer: in the container, after start, before the process */
  if (start_hooks_state && nsrt_hooks_run (s->config, "startContainer", start_hooks_state, &err) < 0)
    {
      dprintf (2, "berth-runtime: %s\n", err.msg);
      _exit (1);
    }
  /* Close, not only mark: every fd above 2 is ours or our caller's and
   * none is the container's.  Before the filter, which may refuse
   * close_range; without no_new_privs the filter is already in, and the
   * marks made at the top still close them at execve. */
  syscall (SYS_close_range, 3U, ~0U, 0U);
  if (sc && nnp && nsrt_seccomp_load (sc, &err) < 0)
    {
      dprintf (2, "berth-runtime: %s\n", err.msg);
      _exit (1);
    }
  execve (bin, argv, envp);
  int e = errno;
  dprintf (2, "berth-runtime: exec %s: %s\n", bin, strerror (e));
  _exit (e == ENOENT ? NSRT_EXIT_NOTFOUND : NSRT_EXIT_NOEXEC);
}

static int
console_connect (const char *path, struct nsrt_err *err)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  if (strlen (path) >= sizeof sa.sun_path)
    return nsrt_errf (err, 0, "--console-socket %s: path too long", path);
  strcpy (sa.sun_path, path);
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect (fd, (struct sockaddr *) &sa, sizeof sa) < 0)
    {
      int e = errno;
      if (fd >= 0)
        close (fd);
      return nsrt_errf (err, e, "--console-socket %s: connect", path);
    }
  return fd;
}

/* ---- create ---- */

struct init_ctx
{
  json_object *config;
  const char *rootfs;
  struct ns_plan ns;
  bool no_pivot;
  bool hooks;          /* prestart/createRuntime: the parent runs them */
  bool ctr_hooks;      /* createContainer/startContainer: the init runs them */
  int sync;
  int fifo_fd;
  int console_fd;
  struct nsrt_seccomp *seccomp;
};

/* Set IFF_UP on lo in the current network namespace. */
static int
loopback_up (struct nsrt_err *err)
{
  int fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return nsrt_errf (err, errno, "loopback: socket");
  struct ifreq ifr = { 0 };
  snprintf (ifr.ifr_name, sizeof ifr.ifr_name, "lo");
  int r = 0;
  if (ioctl (fd, SIOCGIFFLAGS, &ifr) < 0)
    r = nsrt_errf (err, errno, "loopback: get the flags of lo");
  else if (!(ifr.ifr_flags & IFF_UP))
    {
      ifr.ifr_flags |= IFF_UP;
      if (ioctl (fd, SIOCSIFFLAGS, &ifr) < 0)
        r = nsrt_errf (err, errno, "loopback: bring lo up");
    }
  close (fd);
  return r;
}

static __attribute__ ((noreturn)) void
init_main (struct init_ctx *c)
{
  struct nsrt_err err = { "" };
  char buf[64];
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (getppid () == 1)
    _exit (1);
  if (recv_msg (c->sync, buf, sizeof buf) <= 0 || buf[0] != 'g')
    _exit (1);
  /* the state JSON for the hooks that run in the container (the pid as
   * the host sees it: only the parent knows it) */
  static char state_json[16384];
  if (c->ctr_hooks && recv_msg (c->sync, state_json, sizeof state_json) <= 0)
    _exit (1);
  if (c->ns.new_flags & CLONE_NEWUSER)
    {
      /* root of the new user namespace (the maps are written) */
      if (setresgid (0, 0, 0) < 0 || setresuid (0, 0, 0) < 0)
        {
          nsrt_errf (&err, errno, "become root in the user namespace (is 0 mapped?)");
          child_fail (c->sync, 1, &err);
        }
    }
  for (size_t k = 0; k < NS_N; k++)
    if (c->ns.join_fd[k] >= 0 && ns_types[k].flag != CLONE_NEWPID)
      {
        if (setns (c->ns.join_fd[k], ns_types[k].flag) < 0)
          {
            nsrt_errf (&err, errno, "join the %s namespace", ns_types[k].type);
            child_fail (c->sync, 1, &err);
          }
        close (c->ns.join_fd[k]);
      }
  /* before the cgroup namespace hides them: the host paths of our cgroups,
   * for binding them where the kernel refuses a cgroup mount */
  char cglines[8192] = "";
  int cfd = open ("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
  if (cfd >= 0)
    {
      ssize_t n = read (cfd, cglines, sizeof cglines - 1);
      cglines[n > 0 ? n : 0] = '\0';
      close (cfd);
    }
  if ((c->ns.new_flags & CLONE_NEWCGROUP) && unshare (CLONE_NEWCGROUP) < 0)
    {
      nsrt_errf (&err, errno, "unshare the cgroup namespace");
      child_fail (c->sync, 1, &err);
    }
  /* A new network namespace starts with lo down; runc brings it up, and
   * "loopback only" is what berth promises until CNI networking lands. */
  if ((c->ns.new_flags & CLONE_NEWNET) && loopback_up (&err) < 0)
    child_fail (c->sync, 1, &err);
  const char *hn = jstr (c->config, "hostname"), *dn = jstr (c->config, "domainname");
  if ((hn || dn) && !(c->ns.new_flags & CLONE_NEWUTS))
    {
      if ((hn && hn[0]) || (dn && dn[0]))
        {
          nsrt_errf (&err, 0, "hostname/domainname: needs a new uts namespace in linux.namespaces");
          child_fail (c->sync, 1, &err);
        }
    }
  else
    {
      if (hn && sethostname (hn, strlen (hn)) < 0)
        {
          nsrt_errf (&err, errno, "hostname `%s`", hn);
          child_fail (c->sync, 1, &err);
        }
      if (dn && setdomainname (dn, strlen (dn)) < 0)
        {
          nsrt_errf (&err, errno, "domainname `%s`", dn);
          child_fail (c->sync, 1, &err);
        }
    }
  umask (0);
  struct nsrt_mount_ctx m = {
    .config = c->config,
    .rootfs = c->rootfs,
    .userns = (c->ns.new_flags & CLONE_NEWUSER) || c->ns.join_fd[0] >= 0,
    .no_pivot = c->no_pivot,
    .new_mntns = (c->ns.new_flags & CLONE_NEWNS) != 0,
    .cgroupns = (c->ns.new_flags & CLONE_NEWCGROUP) || c->ns.join_fd[5] >= 0,
    .cgroup_lines = cglines,
  };
  if (c->hooks)
    {
      /* prestart/createRuntime: after the namespaces exist, before pivot_root */
      send_msg (c->sync, "H");
      if (recv_msg (c->sync, buf, sizeof buf) <= 0 || buf[0] != 'g')
        _exit (1);
    }
  if (c->ctr_hooks && nsrt_hooks_run (c->config, "createContainer", state_json, &err) < 0)
    child_fail (c->sync, 1, &err);
  int proc_fd_dir = open ("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (proc_fd_dir < 0)
    {
      nsrt_errf (&err, errno, "open /proc/self/fd");
      child_fail (c->sync, 1, &err);
    }
  if (m.new_mntns || m.no_pivot)
    {
      if (nsrt_rootfs_prepare (&m, &err) < 0)
        child_fail (c->sync, 1, &err);
      if (nsrt_rootfs_finish (&m, &err) < 0)
        child_fail (c->sync, 1, &err);
    }
  else if (c->ns.join_fd[6] < 0)
    {
      nsrt_errf (&err, 0, "linux.namespaces: a mount namespace is needed (or --no-pivot)");
      child_fail (c->sync, 1, &err);
    }
  struct proc_setup s = {
    .proc_fd_dir = proc_fd_dir,
    .process = jget (c->config, "process"),
    .config = c->config,
    .console_fd = c->console_fd,
    .sync = c->sync,
    .seccomp = c->seccomp,
  };
  exec_process (&s, c->fifo_fd, c->ctr_hooks ? state_json : NULL);
}

static int
read_child (int sync, pid_t pid, json_object *config, struct nsrt_state *st, int *code, struct nsrt_err *err)
{
  char buf[1300];
  for (;;)
    {
      ssize_t n = recv_msg (sync, buf, sizeof buf);
      if (n <= 0)
        {
          int status = 0;
          unsigned long ooms = 0;
          /* The socket closes as the init dies; it may not be reapable yet. */
          pid_t w = 0;
          for (int i = 0; i < 200 && (w = waitpid (pid, &status, WNOHANG)) == 0; i++)
            {
              struct timespec d = { 0, 1000000 };
              nanosleep (&d, NULL);
            }
          if (w == pid && WIFSIGNALED (status))
            {
              if (WTERMSIG (status) == SIGKILL && st->cg && nsrt_cgroup_oom_count (st->cg, &ooms) == 0 && ooms > 0)
                return nsrt_errf (err, 0, "container init was killed by the OOM killer during set-up: "
                                  "linux.resources.memory.limit is below what the container needs");
              return nsrt_errf (err, 0, "container init died during set-up (signal %d)", WTERMSIG (status));
            }
          return nsrt_errf (err, 0, "container init exited during set-up");
        }
      if (buf[0] == 'R')
        return 0;
      if (buf[0] == 'E')
        {
          char *sp = strchr (buf, ' ');
          *code = atoi (buf + 1);
          snprintf (err->msg, sizeof err->msg, "%s", sp ? sp + 1 : "container set-up failed");
          return -1;
        }
      if (buf[0] == 'H')
        {
          json_object *j = nsrt_state_json (st, "creating");
          json_object_object_add (j, "pid", json_object_new_int (pid));
          const char *s = json_object_to_json_string_ext (j, JSON_C_TO_STRING_PLAIN);
          int r = nsrt_hooks_run (config, "prestart", s, err);
          if (r == 0)
            r = nsrt_hooks_run (config, "createRuntime", s, err);
          json_object_put (j);
          if (r < 0)
            return -1;
          send_msg (sync, "g");
        }
    }
}

static int
mkdir_p (const char *path, mode_t mode)
{
  char buf[4096];
  snprintf (buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++)
    if (*p == '/')
      {
        *p = '\0';
        if (mkdir (buf, mode) < 0 && errno != EEXIST)
          return -1;
        *p = '/';
      }
  return mkdir (buf, mode) < 0 && errno != EEXIST ? -1 : 0;
}

static void
now_rfc3339 (char *out, size_t size)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r (&ts.tv_sec, &tm);
  snprintf (out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
            tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
}

static pid_t forward_to;
static void
forward_signal (int sig)
{
  if (forward_to > 0)
    kill (forward_to, sig);
}

/* Wait for pid (our child or, as subreaper, our orphaned grandchild),
 * forwarding the usual signals; its exit code as a shell reports it. */
static int
wait_forwarding (pid_t pid)
{
  forward_to = pid;
  static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };
  struct sigaction sa = { .sa_handler = forward_signal, .sa_flags = SA_RESTART };
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    sigaction (sigs[i], &sa, NULL);
  int status = 0;
  for (;;)
    {
      pid_t w = waitpid (-1, &status, 0);
      if (w == pid)
        break;
      if (w < 0 && errno != EINTR)
        return 255;
    }
  return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

static const char *
abs_path (const char *p, char *buf, size_t size)
{
  if (p == NULL || p[0] == '/')
    return p;
  char cwd[4096];
  if (getcwd (cwd, sizeof cwd) == NULL)
    return p;
  if ((size_t) snprintf (buf, size, "%s/%s", cwd, p) >= size)
    return p;
  return buf;
}

int
nsrt_spec_check (json_object *config, struct nsrt_err *err)
{
  if (config == NULL || !json_object_is_type (config, json_type_object))
    return nsrt_errf (err, 0, "config.json: not a JSON object");
  json_object *process = jget (config, "process"), *lnx = jget (config, "linux");
  if (validate_process (process, err) < 0)
    return -1;
  json_object *term = jget (process, "terminal");
  if (term && !json_object_is_type (term, json_type_boolean))
    return nsrt_errf (err, 0, "process.terminal: not a boolean");
  json_object *root = jget (config, "root");
  if (root && !json_object_is_type (root, json_type_object))
    return nsrt_errf (err, 0, "root: not an object");
  const char *rootp = jstr (root, "path");
  if (rootp == NULL || rootp[0] == '\0')
    return nsrt_errf (err, 0, "root.path: missing");
  if (lnx && !json_object_is_type (lnx, json_type_object))
    return nsrt_errf (err, 0, "linux: not an object");
  struct ns_plan ns;
  if (ns_plan_parse (config, &ns, false, err) < 0)
    return -1;
  char uidmap[4096], gidmap[4096];
  if (id_map_text (jget (lnx, "uidMappings"), "uidMappings", uidmap, sizeof uidmap, err) < 0
      || id_map_text (jget (lnx, "gidMappings"), "gidMappings", gidmap, sizeof gidmap, err) < 0)
    return -1;
  if ((ns.new_flags & CLONE_NEWUSER) && (!uidmap[0] || !gidmap[0]))
    return nsrt_errf (err, 0, "linux.uidMappings/gidMappings: a new user namespace needs both");
  return nsrt_mounts_check (config, err);
}

int
nsrt_create (const struct nsrt_opts *o, const struct nsrt_create_args *a)
{
  struct nsrt_err err = { "" };
  int code = 1;
  if (nsrt_validate_id (a->id, &err) < 0)
    goto out_msg;
  char bundle[4096];
  if (realpath (a->bundle ? a->bundle : ".", bundle) == NULL)
    {
      nsrt_errf (&err, errno, "bundle %s", a->bundle ? a->bundle : ".");
      goto out_msg;
    }
  /* as runc: relative paths of the command line are the caller's, relative
   * bind sources and root.path the bundle's (we chdir there) */
  char pid_file[8200], console_socket[8200];
  const char *pf = abs_path (a->pid_file, pid_file, sizeof pid_file);
  const char *cs = abs_path (a->console_socket, console_socket, sizeof console_socket);
  if (chdir (bundle) < 0)
    {
      nsrt_errf (&err, errno, "chdir to the bundle %s", bundle);
      goto out_msg;
    }
  char cfgpath[4200];
  snprintf (cfgpath, sizeof cfgpath, "%s/config.json", bundle);
  json_object *config = nsrt_json_read_file (cfgpath, &err);
  if (config == NULL)
    goto out_msg;
  if (!json_object_is_type (config, json_type_object))
    {
      nsrt_errf (&err, 0, "%s: not a JSON object", cfgpath);
      json_object_put (config);
      goto out_msg;
    }
  json_object *process = jget (config, "process");
  const char *rootp = jstr (jget (config, "root"), "path");
  char rootfs[8300];
  struct ns_plan ns;
  for (size_t k = 0; k < NS_N; k++)
    ns.join_fd[k] = -1;
  struct nsrt_state *st = NULL;
  struct nsrt_cgroup *cg = NULL;
  int sync[2] = { -1, -1 }, console_fd = -1, fifo_fd = -1;
  pid_t pid = -1;
  bool dir_made = false;
  if (nsrt_spec_check (config, &err) < 0)
    goto fail;
  snprintf (rootfs, sizeof rootfs, "%s%s%s", rootp[0] == '/' ? "" : bundle, rootp[0] == '/' ? "" : "/", rootp);
  struct stat sb;
  if (stat (rootfs, &sb) < 0 || !S_ISDIR (sb.st_mode))
    {
      nsrt_errf (&err, errno ? errno : ENOTDIR, "root.path %s", rootfs);
      goto fail;
    }
  if (ns_plan_parse (config, &ns, true, &err) < 0)
    goto fail;
  char uidmap[4096], gidmap[4096];
  json_object *lnx = jget (config, "linux");
  if (id_map_text (jget (lnx, "uidMappings"), "uidMappings", uidmap, sizeof uidmap, &err) < 0
      || id_map_text (jget (lnx, "gidMappings"), "gidMappings", gidmap, sizeof gidmap, &err) < 0)
    goto fail;
  if ((ns.new_flags & CLONE_NEWUSER) && (!uidmap[0] || !gidmap[0]))
    {
      nsrt_errf (&err, 0, "linux.uidMappings/gidMappings: a new user namespace needs both");
      goto fail;
    }
  json_object *term = jget (process, "terminal");
  bool terminal = term && json_object_get_boolean (term);
  if (terminal && cs == NULL)
    {
      nsrt_errf (&err, 0, "process.terminal is true: --console-socket is required");
      goto fail;
    }
  if (!terminal && cs)
    {
      nsrt_errf (&err, 0, "--console-socket given but process.terminal is false");
      goto fail;
    }

  st = calloc (1, sizeof *st);
  if (st == NULL)
    abort ();
  st->id = strdup (a->id);
  st->dir = nsrt_state_dir (o, a->id);
  st->bundle = strdup (bundle);
  st->config = json_object_get (config);
  char created[64];
  now_rfc3339 (created, sizeof created);
  st->created = strdup (created);
  if (mkdir_p (o->root, 0711) < 0)
    {
      nsrt_errf (&err, errno, "--root %s", o->root);
      goto fail;
    }
  if (mkdir (st->dir, 0711) < 0)
    {
      if (errno == EEXIST)
        nsrt_errf (&err, 0, "container `%s` already exists", a->id);
      else
        nsrt_errf (&err, errno, "mkdir %s", st->dir);
      goto fail;
    }
  dir_made = true;
  char fifo[4200];
  snprintf (fifo, sizeof fifo, "%s/exec.fifo", st->dir);
  if (mkfifo (fifo, 0622) < 0 || chmod (fifo, 0622) < 0)
    {
      nsrt_errf (&err, errno, "mkfifo %s", fifo);
      goto fail;
    }
  fifo_fd = open (fifo, O_PATH | O_CLOEXEC);
  if (fifo_fd < 0)
    {
      nsrt_errf (&err, errno, "open %s", fifo);
      goto fail;
    }
  const char *cgpath = jstr (lnx, "cgroupsPath");
  if (nsrt_cgroup_create (cgpath, a->id, o->systemd_cgroup, &cg, &err) < 0)
    goto fail;
  json_object *resources = jget (lnx, "resources");
  if (resources && nsrt_cgroup_apply (cg, resources, &err) < 0)
    goto fail;
  if (terminal && (console_fd = console_connect (cs, &err)) < 0)
    goto fail;
  if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sync) < 0)
    {
      nsrt_errf (&err, errno, "socketpair");
      goto fail;
    }
  json_object *hooks = jget (config, "hooks");
  struct init_ctx ic = {
    .config = config,
    .rootfs = rootfs,
    .ns = ns,
    .no_pivot = a->no_pivot,
    .hooks = jget (hooks, "prestart") || jget (hooks, "createRuntime"),
    .ctr_hooks = jget (hooks, "createContainer") || jget (hooks, "startContainer"),
    .sync = sync[1],
    .fifo_fd = fifo_fd,
    .console_fd = console_fd,
  };
  if (ns.join_fd[4] >= 0 && setns (ns.join_fd[4], CLONE_NEWPID) < 0)
    {
      nsrt_errf (&err, errno, "join the pid namespace");
      goto fail;
    }
  /* The filter is compiled (or taken from the cache) here, on the host's
   * filesystem; the init inherits it. */
  if (nsrt_seccomp_prepare_cached (jget (lnx, "seccomp"), seccomp_cache_dir (), &ic.seccomp, &err) < 0)
    goto fail;
  fflush (NULL);
  /* new namespaces except cgroup: it is unshared once in its cgroup */
  pid = syscall (SYS_clone, (unsigned long) ((ns.new_flags & ~CLONE_NEWCGROUP) | SIGCHLD), NULL, NULL, NULL, 0);
  if (pid == 0)
    {
      close (sync[0]);
      init_main (&ic);
    }
  nsrt_seccomp_free (ic.seccomp); /* the init has its own copy */
  ic.seccomp = NULL;
  if (pid < 0)
    {
      nsrt_errf (&err, errno, "clone the container init");
      goto fail;
    }
  close (sync[1]);
  sync[1] = -1;
  if (console_fd >= 0)
    close (console_fd), console_fd = -1;
  if (ns.new_flags & CLONE_NEWUSER)
    {
      if (write_proc (pid, "uid_map", uidmap, &err) < 0 || write_proc (pid, "gid_map", gidmap, &err) < 0)
        goto fail;
    }
  if (nsrt_cgroup_enter (cg, pid, &err) < 0)
    goto fail;
  st->pid = pid;
  st->cg = cg;
  send_msg (sync[0], "g");
  if (ic.ctr_hooks)
    {
      json_object *j = nsrt_state_json (st, "creating");
      json_object_object_add (j, "pid", json_object_new_int (pid));
      send_msg (sync[0], "%s", json_object_to_json_string_ext (j, JSON_C_TO_STRING_PLAIN));
      json_object_put (j);
    }
  if (read_child (sync[0], pid, config, st, &code, &err) < 0)
    {
      st->cg = NULL;
      goto fail;
    }
  close (sync[0]);
  sync[0] = -1;
  st->start_time = nsrt_pid_start_time (pid);
  if (nsrt_state_save (st, &err) < 0)
    {
      st->cg = NULL;
      goto fail;
    }
  if (pf && nsrt_write_pid_file (pf, pid, &err) < 0)
    {
      st->cg = NULL;
      goto fail;
    }
  close (fifo_fd);
  ns_plan_close (&ns);
  json_object_put (config);
  if (!a->start)
    {
      nsrt_state_free (st);
      return 0;
    }
  /* run */
  if (nsrt_start (o, st, &err) < 0)
    {
      nsrt_log (o, "error", "%s", err.msg);
      nsrt_kill_wait (st, SIGKILL, 2000);
      nsrt_destroy (o, st, &err);
      nsrt_state_free (st);
      return 1;
    }
  if (a->detach)
    {
      nsrt_state_free (st);
      return 0;
    }
  code = wait_forwarding (pid);
  if (!a->keep)
    {
      nsrt_kill_wait (st, SIGKILL, 2000); /* the rest of a pid namespace-less container */
      if (nsrt_destroy (o, st, &err) < 0)
        nsrt_log (o, "error", "%s", err.msg);
    }
  nsrt_state_free (st);
  return code;

fail:
  if (pid > 0)
    {
      kill (pid, SIGKILL);
      waitpid (pid, NULL, 0);
    }
  if (cg)
    {
      struct nsrt_err e2;
      if (nsrt_cgroup_destroy (cg, &e2) < 0)
        nsrt_log (o, "warning", "%s", e2.msg);
      nsrt_cgroup_free (cg);
    }
  if (dir_made)
    nsrt_rm_rf (st->dir);
  for (int i = 0; i < 2; i++)
    if (sync[i] >= 0)
      close (sync[i]);
  if (console_fd >= 0)
    close (console_fd);
  if (fifo_fd >= 0)
    close (fifo_fd);
  ns_plan_close (&ns);
  nsrt_state_free (st);
  json_object_put (config);
out_msg:
  nsrt_log (o, "error", "%s", err.msg);
  return code ? code : 1;
}

/* ---- start / kill / delete ---- */

int
nsrt_start (const struct nsrt_opts *o, struct nsrt_state *st, struct nsrt_err *err)
{
  const char *status = nsrt_state_status (st);
  if (strcmp (status, "created") != 0)
    return nsrt_errf (err, 0, "cannot start container `%s`: it is %s, not created", st->id, status);
  char fifo[4200];
  snprintf (fifo, sizeof fifo, "%s/exec.fifo", st->dir);
  int fd = open (fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return nsrt_errf (err, errno, "open %s", fifo);
  for (;;)
    {
      struct pollfd p = { .fd = fd, .events = POLLIN };
      int r = poll (&p, 1, 100);
      char c;
      if (r > 0 && read (fd, &c, 1) == 1)
        break;
      if (!nsrt_pid_alive (st->pid, st->start_time))
        {
          close (fd);
          return nsrt_errf (err, 0, "container `%s`: its init exited before start", st->id);
        }
    }
  close (fd);
  unlink (fifo);
  json_object *hooks = jget (st->config, "hooks");
  if (jget (hooks, "poststart"))
    {
      json_object *j = nsrt_state_json (st, "running");
      struct nsrt_err e2;
      /* the spec: a poststart failure is logged, the container runs on */
      if (nsrt_hooks_run (st->config, "poststart", json_object_to_json_string (j), &e2) < 0)
        nsrt_log (o, "warning", "%s", e2.msg);
      json_object_put (j);
    }
  return 0;
}

void
nsrt_kill_wait (struct nsrt_state *st, int sig, int timeout_ms)
{
  if (st->cg)
    {
      pid_t *pids = NULL;
      size_t n = 0;
      struct nsrt_err e;
      if (nsrt_cgroup_pids (st->cg, &pids, &n, &e) == 0)
        for (size_t i = 0; i < n; i++)
          kill (pids[i], sig);
      free (pids);
    }
  if (nsrt_pid_alive (st->pid, st->start_time))
    kill (st->pid, sig);
  for (int waited = 0; waited < timeout_ms && nsrt_pid_alive (st->pid, st->start_time); waited += 2)
    {
      /* reap it when it is ours (run) */
      waitpid (st->pid, NULL, WNOHANG);
      struct timespec d = { 0, 2000000 };
      nanosleep (&d, NULL);
    }
}

int
nsrt_destroy (const struct nsrt_opts *o, struct nsrt_state *st, struct nsrt_err *err)
{
  json_object *hooks = jget (st->config, "hooks");
  if (jget (hooks, "poststop"))
    {
      json_object *j = nsrt_state_json (st, "stopped");
      struct nsrt_err e2;
      /* the spec: poststop failures are logged, delete goes on */
      if (nsrt_hooks_run (st->config, "poststop", json_object_to_json_string (j), &e2) < 0)
        nsrt_log (o, "warning", "%s", e2.msg);
      json_object_put (j);
    }
  int r = 0;
  if (st->cg && nsrt_cgroup_destroy (st->cg, err) < 0)
    r = -1;
  if (nsrt_rm_rf (st->dir) < 0 && errno != ENOENT && r == 0)
    r = nsrt_errf (err, errno, "remove %s", st->dir);
  return r;
}

/* ---- exec ---- */

int
nsrt_exec (const struct nsrt_opts *o, const struct nsrt_exec_args *a)
{
  struct nsrt_err err = { "" };
  struct nsrt_state *st = NULL;
  int code = 1, sync[2] = { -1, -1 }, console_fd = -1;
  int nsfd[NS_N];
  for (size_t k = 0; k < NS_N; k++)
    nsfd[k] = -1;
  if (nsrt_state_load (o, a->id, &st, &err) < 0)
    goto out;
  const char *status = nsrt_state_status (st);
  if (strcmp (status, "stopped") == 0 || strcmp (status, "paused") == 0)
    {
      nsrt_errf (&err, 0, "cannot exec in container `%s`: it is %s", a->id, status);
      goto out;
    }
  if (validate_process (a->process, &err) < 0)
    goto out;
  json_object *term = jget (a->process, "terminal");
  bool terminal = term && json_object_get_boolean (term);
  if (terminal != (a->console_socket != NULL))
    {
      nsrt_errf (&err, 0, terminal ? "process.terminal is true: --console-socket is required"
                                   : "--console-socket given but process.terminal is false");
      goto out;
    }
  for (size_t k = 0; k < NS_N; k++)
    {
      char path[64], self[64];
      snprintf (path, sizeof path, "/proc/%d/ns/%s", (int) st->pid, ns_types[k].proc);
      snprintf (self, sizeof self, "/proc/self/ns/%s", ns_types[k].proc);
      struct stat s1, s2;
      if (stat (path, &s1) < 0 || stat (self, &s2) < 0)
        continue;
      if (s1.st_ino == s2.st_ino && s1.st_dev == s2.st_dev)
        continue; /* shared with the host: nothing to join */
      nsfd[k] = open (path, O_RDONLY | O_CLOEXEC);
      if (nsfd[k] < 0)
        {
          nsrt_errf (&err, errno, "open %s", path);
          goto out;
        }
    }
  /* re-check: the pid could have been reused between the state read and the opens */
  if (!nsrt_pid_alive (st->pid, st->start_time))
    {
      nsrt_errf (&err, 0, "cannot exec in container `%s`: it stopped", a->id);
      goto out;
    }
  if (terminal && (console_fd = console_connect (a->console_socket, &err)) < 0)
    goto out;
  if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sync) < 0)
    {
      nsrt_errf (&err, errno, "socketpair");
      goto out;
    }
  if (!a->detach)
    prctl (PR_SET_CHILD_SUBREAPER, 1);
  /* Here, still in our own mount namespace: the cache is on the host. */
  struct nsrt_seccomp *sc = NULL;
  if (nsrt_seccomp_prepare_cached (jget (jget (st->config, "linux"), "seccomp"), seccomp_cache_dir (), &sc, &err) < 0)
    goto out;
  fflush (NULL);
  pid_t mid = fork ();
  if (mid != 0)
    nsrt_seccomp_free (sc); /* the child has its own copy */
  if (mid < 0)
    {
      nsrt_errf (&err, errno, "fork");
      goto out;
    }
  if (mid == 0)
    {
      close (sync[0]);
      prctl (PR_SET_PDEATHSIG, SIGKILL);
      for (size_t k = 0; k < NS_N; k++)
        if (nsfd[k] >= 0 && setns (nsfd[k], ns_types[k].flag) < 0)
          {
            nsrt_errf (&err, errno, "join the container's %s namespace", ns_types[k].type);
            child_fail (sync[1], 1, &err);
          }
      /* setns(pid) applies to children: fork once more into it */
      pid_t pid = fork ();
      if (pid < 0)
        {
          nsrt_errf (&err, errno, "fork into the pid namespace");
          child_fail (sync[1], 1, &err);
        }
      if (pid > 0)
        {
          send_msg (sync[1], "P%d", (int) pid);
          _exit (0);
        }
      /* no PDEATHSIG: our parent exits right away; the sync socket's EOF
       * tells us when the exec command goes away */
      char buf[16];
      if (recv_msg (sync[1], buf, sizeof buf) <= 0 || buf[0] != 'g')
        _exit (1);
      if (nsfd[0] >= 0 && (setresgid (0, 0, 0) < 0 || setresuid (0, 0, 0) < 0))
        {
          nsrt_errf (&err, errno, "become root in the container's user namespace");
          child_fail (sync[1], 1, &err);
        }
      struct proc_setup s = { .proc_fd_dir = -1, .process = a->process, .config = st->config,
                              .console_fd = console_fd, .sync = sync[1], .seccomp = sc };
      exec_process (&s, -1, NULL);
    }
  close (sync[1]);
  sync[1] = -1;
  if (console_fd >= 0)
    close (console_fd), console_fd = -1;
  char buf[1300];
  int mstatus;
  ssize_t n = recv_msg (sync[0], buf, sizeof buf);
  waitpid (mid, &mstatus, 0);
  if (n <= 0 || buf[0] != 'P')
    {
      if (n > 0 && buf[0] == 'E')
        {
          char *sp = strchr (buf, ' ');
          code = atoi (buf + 1);
          snprintf (err.msg, sizeof err.msg, "%s", sp ? sp + 1 : "exec set-up failed");
        }
      else
        nsrt_errf (&err, 0, "exec: the set-up process exited");
      goto out;
    }
  pid_t pid = atoi (buf + 1);
  if (st->cg && nsrt_cgroup_enter (st->cg, pid, &err) < 0)
    {
      kill (pid, SIGKILL);
      goto out;
    }
  send_msg (sync[0], "g");
  n = recv_msg (sync[0], buf, sizeof buf);
  if (n <= 0 || buf[0] != 'R')
    {
      if (n > 0 && buf[0] == 'E')
        {
          char *sp = strchr (buf, ' ');
          code = atoi (buf + 1);
          snprintf (err.msg, sizeof err.msg, "%s", sp ? sp + 1 : "exec set-up failed");
        }
      else
        nsrt_errf (&err, 0, "exec: the process died during set-up");
      kill (pid, SIGKILL);
      if (!a->detach)
        waitpid (pid, NULL, 0);
      goto out;
    }
  close (sync[0]);
  sync[0] = -1;
  for (size_t k = 0; k < NS_N; k++)
    if (nsfd[k] >= 0)
      close (nsfd[k]);
  if (a->pid_file && nsrt_write_pid_file (a->pid_file, pid, &err) < 0)
    {
      kill (pid, SIGKILL);
      nsrt_log (o, "error", "%s", err.msg);
      nsrt_state_free (st);
      return 1;
    }
  nsrt_state_free (st);
  if (a->detach)
    return 0;
  return wait_forwarding (pid);

out:
  for (size_t k = 0; k < NS_N; k++)
    if (nsfd[k] >= 0)
      close (nsfd[k]);
  for (int i = 0; i < 2; i++)
    if (sync[i] >= 0)
      close (sync[i]);
  if (console_fd >= 0)
    close (console_fd);
  nsrt_state_free (st);
  nsrt_log (o, "error", "%s", err.msg);
  return code ? code : 1;
}
