/* io.berth.snapshotter.v1.fuse: the layer server, berth-fuse, run from
 * the plugin (fuse.h).  berth-fuse gets the blob as inherited fd 3, never
 * by path: the content store's layout is its own business. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fuse.h"

int
fz_blob_fd (struct fz *s, berth_ctx *ctx, const char *digest, int *ret_fd, berth_error *err)
{
  struct berth_plugin_ref ref = { .size = sizeof ref };
  int r = s->host->lookup (s->plugin, "io.berth.content.v1", s->content_id, &ref);
  if (r < 0)
    return s->host->error_set (err, BERTH_E_NOTSUP, 0, "content store %s is not available", s->content_id);
  const struct berth_content_ops *ops = ref.ops;
  if (!BERTH_HAS (struct berth_content_ops, ops, blob_fd) || ops->blob_fd == NULL)
    return s->host->error_set (err, BERTH_E_NOTSUP, 0, "content store %s cannot hand out blob files (ABI 1.2 "
                               "blob_fd)", s->content_id);
  return ops->blob_fd (ref.self, ctx, digest, ret_fd, err);
}

/* The last line berth-fuse wrote to stderr, for an error message. */
static void
last_line (const char *path, char *buf, size_t len)
{
  buf[0] = '\0';
  FILE *f = fopen (path, "re");
  if (f == NULL)
    return;
  char line[1024];
  while (fgets (line, sizeof line, f))
    if (line[0] != '\n')
      {
        size_t n = strnlen (line, len - 1);
        memcpy (buf, line, n);
        buf[n] = '\0';
      }
  fclose (f);
  buf[strcspn (buf, "\n")] = '\0';
}

/* Run berth-fuse with argv (argv[0] is s->binary), blob_fd (or nothing,
 * when -1) as its fd 3, stderr into a file of its own in dir (two runs may
 * share a dir: the watcher indexing an adopted blob, a remount); wait at
 * most s->timeout_s, and kill it when the plugin stops.  ret_msg (may be
 * NULL) gets what failed: plugins cannot read a berth_error back. */
static int
run_helper (struct fz *s, int blob_fd, const char *dir, char *const argv[], char *ret_msg, size_t msglen,
            berth_error *err)
{
  char *errpath = fz_path ("%s/berth-fuse-XXXXXX.err", dir);
  if (errpath == NULL)
    return s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  int efd = mkostemps (errpath, 4, O_CLOEXEC);
  if (efd < 0)
    {
      int e = errno;
      free (errpath);
      return s->host->error_set (err, BERTH_E_INTERNAL, e, "creating %s/berth-fuse-XXXXXX.err", dir);
    }
  pid_t pid = fork ();
  if (pid == 0)
    {
      /* Only async-signal-safe calls from here: berthd has threads. */
      int null = open ("/dev/null", O_RDWR);
      if (null < 0 || dup2 (null, 0) < 0 || dup2 (null, 1) < 0 || dup2 (efd, 2) < 0)
        _exit (126);
      if (blob_fd >= 0 && (blob_fd == 3 ? fcntl (3, F_SETFD, 0) < 0 : dup2 (blob_fd, 3) < 0))
        _exit (126);
      close_range (blob_fd >= 0 ? 4 : 3, ~0U, 0);
      sigset_t none;
      sigemptyset (&none);
      sigprocmask (SIG_SETMASK, &none, NULL);
      execv (argv[0], argv);
      _exit (127);
    }
  int e = errno;
  close (efd);
  if (pid < 0)
    {
      unlink (errpath);
      free (errpath);
      if (ret_msg != NULL && msglen > 0)
        snprintf (ret_msg, msglen, "starting %s: %s", argv[0], strerror (e));
      return s->host->error_set (err, BERTH_E_INTERNAL, e, "starting %s", argv[0]);
    }
  int status = 0;
  struct timespec start;
  clock_gettime (CLOCK_MONOTONIC, &start);
  for (;;)
    {
      pid_t w = waitpid (pid, &status, WNOHANG);
      if (w == pid || (w < 0 && errno != EINTR))
        break;
      struct timespec now;
      clock_gettime (CLOCK_MONOTONIC, &now);
      bool stopping = s->stopping;
      if (stopping || now.tv_sec - start.tv_sec >= s->timeout_s)
        {
          kill (pid, SIGKILL);
          waitpid (pid, &status, 0);
          unlink (errpath);
          free (errpath);
          if (ret_msg != NULL && msglen > 0)
            snprintf (ret_msg, msglen, "berth-fuse %s: %s", argv[1],
                      stopping ? "killed: the plugin is stopping" : "did not finish in time (killed)");
          if (stopping)
            return s->host->error_set (err, BERTH_E_CANCELLED, 0, "%s %s killed: the plugin is stopping", argv[0],
                                       argv[1]);
          return s->host->error_set (err, BERTH_E_DEADLINE, 0, "%s %s did not finish in %d s (killed)", argv[0],
                                     argv[1], s->timeout_s);
        }
      struct timespec tick = { 0, 5 * 1000 * 1000 };
      nanosleep (&tick, NULL);
    }
  char msg[512];
  last_line (errpath, msg, sizeof msg);
  unlink (errpath);
  free (errpath);
  if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
    return 0;
  if (ret_msg != NULL && msglen > 0)
    {
      if (WIFEXITED (status))
        snprintf (ret_msg, msglen, "berth-fuse %s: exit %d%s%s", argv[1], WEXITSTATUS (status), *msg ? ": " : "",
                  msg);
      else
        snprintf (ret_msg, msglen, "berth-fuse %s: killed by signal %d%s%s", argv[1], WTERMSIG (status),
                  *msg ? ": " : "", msg);
    }
  /* berth-fuse: exit 3 is content it cannot serve (a sparse file); 127 no binary. */
  int code = !WIFEXITED (status)            ? BERTH_E_INTERNAL
             : WEXITSTATUS (status) == 127 ? BERTH_E_NOTFOUND
             : WEXITSTATUS (status) == 3   ? BERTH_E_NOTSUP
                                           : BERTH_E_INTERNAL;
  if (WIFEXITED (status))
    return s->host->error_set (err, code, 0, "%s %s failed (exit %d)%s%s", argv[0], argv[1], WEXITSTATUS (status),
                               *msg ? ": " : "", msg);
  return s->host->error_set (err, code, 0, "%s %s killed by signal %d%s%s", argv[0], argv[1], WTERMSIG (status),
                             *msg ? ": " : "", msg);
}

int
fz_index (struct fz *s, int blob_fd, const char *dir, const char *name, const char *media_type,
          const char *diff_id, char *ret_msg, size_t msglen, berth_error *err)
{
  char *out = fz_path ("%s/%s", dir, name);
  if (out == NULL)
    return s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  char *argv[] = { s->binary, "index",        "--blob",         "/dev/fd/3", "--media-type",
                   (char *) media_type, "--out", out, diff_id ? "--diff-id" : NULL, (char *) diff_id, NULL };
  int r = run_helper (s, blob_fd, dir, argv, ret_msg, msglen, err);
  free (out);
  return r;
}

int
fz_mount (struct fz *s, int blob_fd, const char *dir, char *ret_msg, size_t msglen, berth_error *err)
{
  char *index = fz_path ("%s/index", dir);
  char *log = fz_path ("%s/server.log", dir);
  char *fs = fz_path ("%s/fs", dir);
  int r;
  if (index == NULL || log == NULL || fs == NULL)
    r = s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  else
    {
      char *argv[] = { s->binary, "mount", "--blob", "/dev/fd/3", "--index", index, "--log", log, fs, NULL };
      r = run_helper (s, blob_fd, dir, argv, ret_msg, msglen, err);
    }
  free (index);
  free (log);
  free (fs);
  return r;
}

int
fz_mount_lazy (struct fz *s, const char *dir, const char *digest, const struct fz_remote *rm, char *ret_msg,
               size_t msglen, berth_error *err)
{
  char size[32];
  snprintf (size, sizeof size, "%" PRIu64, rm->size);
  char *cache = fz_path ("%s/blob", dir);
  char *log = fz_path ("%s/server.log", dir);
  char *fs = fz_path ("%s/fs", dir);
  int r;
  if (cache == NULL || log == NULL || fs == NULL)
    r = s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  else
    {
      char *argv[32];
      size_t n = 0;
      argv[n++] = s->binary;
      argv[n++] = "mount";
      argv[n++] = "--estargz";
      argv[n++] = "--remote-url";
      argv[n++] = rm->url;
      argv[n++] = "--blob-size";
      argv[n++] = size;
      argv[n++] = "--blob-digest";
      argv[n++] = (char *) digest;
      argv[n++] = "--remote-cache";
      argv[n++] = cache;
      /* A headers file berthd has removed (the blob was adopted, or the
       * state directory is gone after a reboot): without, a public
       * registry still answers. */
      if (rm->headers_file && access (rm->headers_file, R_OK) == 0)
        {
          argv[n++] = "--remote-headers-file";
          argv[n++] = rm->headers_file;
        }
      if (rm->ca_file)
        {
          argv[n++] = "--remote-ca";
          argv[n++] = rm->ca_file;
        }
      if (rm->plain_http)
        argv[n++] = "--remote-plain-http";
      if (rm->toc_digest)
        {
          argv[n++] = "--toc-digest";
          argv[n++] = rm->toc_digest;
        }
      char timeout[16], retries[16];
      if (s->remote_timeout_s > 0)
        {
          snprintf (timeout, sizeof timeout, "%d", s->remote_timeout_s);
          argv[n++] = "--remote-timeout";
          argv[n++] = timeout;
        }
      snprintf (retries, sizeof retries, "%d", s->remote_retries);
      argv[n++] = "--remote-retries";
      argv[n++] = retries;
      argv[n++] = "--log";
      argv[n++] = log;
      argv[n++] = fs;
      argv[n] = NULL;
      r = run_helper (s, -1, dir, argv, ret_msg, msglen, err);
    }
  free (cache);
  free (log);
  free (fs);
  return r;
}

void
fz_remote_clear (struct fz_remote *rm)
{
  free (rm->ns);
  free (rm->url);
  free (rm->toc_digest);
  free (rm->diff_id);
  free (rm->headers_file);
  free (rm->ca_file);
  *rm = (struct fz_remote) { 0 };
}

/* "key value" lines; a value never holds a newline (checked at prepare). */
int
fz_remote_write (const char *dir, const struct fz_remote *rm)
{
  char *path = fz_path ("%s/remote", dir);
  char *tmp = fz_path ("%s/remote.new", dir);
  int r = 0;
  if (path == NULL || tmp == NULL)
    r = -ENOMEM;
  int fd = r == 0 ? open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600) : -1;
  if (r == 0 && fd < 0)
    r = -errno;
  if (r == 0
      && (dprintf (fd, "version 1\nns %s\nurl %s\nsize %" PRIu64 "\nplain-http %d\n", rm->ns, rm->url, rm->size,
                   rm->plain_http ? 1 : 0) < 0
          || (rm->toc_digest && dprintf (fd, "toc-digest %s\n", rm->toc_digest) < 0)
          || (rm->diff_id && dprintf (fd, "diff-id %s\n", rm->diff_id) < 0)
          || (rm->headers_file && dprintf (fd, "headers-file %s\n", rm->headers_file) < 0)
          || (rm->ca_file && dprintf (fd, "ca-file %s\n", rm->ca_file) < 0) || fsync (fd) < 0))
    r = -errno;
  if (fd >= 0)
    close (fd);
  if (r == 0 && rename (tmp, path) < 0)
    r = -errno;
  if (r < 0 && tmp)
    unlink (tmp);
  free (path);
  free (tmp);
  return r;
}

static int
set_str (char **dst, const char *value)
{
  free (*dst);
  *dst = strdup (value);
  return *dst ? 0 : -ENOMEM;
}

int
fz_remote_read (const char *dir, struct fz_remote *rm)
{
  *rm = (struct fz_remote) { 0 };
  char *path = fz_path ("%s/remote", dir);
  if (path == NULL)
    return -ENOMEM;
  FILE *f = fopen (path, "re");
  free (path);
  if (f == NULL)
    return -errno;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  int r = 0, version = 0;
  while (r == 0 && (len = getline (&line, &cap, f)) > 0)
    {
      if (line[len - 1] == '\n')
        line[--len] = '\0';
      char *v = strchr (line, ' ');
      if (v == NULL)
        continue;
      *v++ = '\0';
      if (strcmp (line, "version") == 0)
        version = atoi (v);
      else if (strcmp (line, "ns") == 0)
        r = set_str (&rm->ns, v);
      else if (strcmp (line, "url") == 0)
        r = set_str (&rm->url, v);
      else if (strcmp (line, "size") == 0)
        rm->size = strtoull (v, NULL, 10);
      else if (strcmp (line, "plain-http") == 0)
        rm->plain_http = strcmp (v, "1") == 0;
      else if (strcmp (line, "toc-digest") == 0)
        r = set_str (&rm->toc_digest, v);
      else if (strcmp (line, "diff-id") == 0)
        r = set_str (&rm->diff_id, v);
      else if (strcmp (line, "headers-file") == 0)
        r = set_str (&rm->headers_file, v);
      else if (strcmp (line, "ca-file") == 0)
        r = set_str (&rm->ca_file, v);
    }
  free (line);
  fclose (f);
  if (r == 0 && (version != 1 || rm->ns == NULL || rm->url == NULL || rm->size == 0))
    r = -EINVAL;
  if (r < 0)
    fz_remote_clear (rm);
  return r;
}

/* remote.c's state file header (struct state_header there): magic[8],
 * u32 version, u32 block size, u64 blob size, u32 state, u32 verify
 * failures, char digest[96]; host byte order. */
#define STATE_MAGIC "BRTHRB\0\1"
#define STATE_HEADER_SIZE 128
#define STATE_OFF_BLOB_SIZE 16
#define STATE_OFF_STATE 24
#define STATE_OFF_DIGEST 32

int
fz_remote_state (const char *dir, const char *digest, uint64_t size)
{
  char *path = fz_path ("%s/blob.state", dir);
  if (path == NULL)
    return -ENOMEM;
  int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  free (path);
  if (fd < 0)
    return -errno;
  unsigned char h[STATE_HEADER_SIZE];
  ssize_t n = pread (fd, h, sizeof h, 0);
  int e = errno;
  close (fd);
  if (n < 0)
    return -e;
  uint64_t bs;
  uint32_t state;
  memcpy (&bs, h + STATE_OFF_BLOB_SIZE, sizeof bs);
  memcpy (&state, h + STATE_OFF_STATE, sizeof state);
  if (n != (ssize_t) sizeof h || memcmp (h, STATE_MAGIC, 8) != 0 || bs != size
      || strncmp ((const char *) h + STATE_OFF_DIGEST, digest, STATE_HEADER_SIZE - STATE_OFF_DIGEST) != 0)
    return -ESTALE;
  return (int) state;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void
unescape (char *p)
{
  char *o = p;
  for (; *p; p++)
    if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7')
      {
        *o++ = (char) (((p[1] - '0') << 6) | ((p[2] - '0') << 3) | (p[3] - '0'));
        p += 3;
      }
    else
      *o++ = *p;
  *o = '\0';
}

/* The file system type of the mount at path, or "" when none. */
static void
mount_type (const char *path, char *type, size_t len)
{
  type[0] = '\0';
  FILE *f = fopen ("/proc/self/mountinfo", "re");
  if (f == NULL)
    return;
  char *line = NULL;
  size_t cap = 0;
  while (getline (&line, &cap, f) > 0)
    {
      /* id parent major:minor root mountpoint options [optional...] - fstype source super */
      char *save = NULL, *mp = NULL;
      char *tok = strtok_r (line, " ", &save);
      for (int i = 0; tok && i < 4; i++)
        tok = strtok_r (NULL, " ", &save);
      mp = tok;
      while (tok && strcmp (tok, "-") != 0)
        tok = strtok_r (NULL, " ", &save);
      char *fstype = tok ? strtok_r (NULL, " ", &save) : NULL;
      if (mp == NULL || fstype == NULL)
        continue;
      unescape (mp);
      if (strcmp (mp, path) == 0)
        snprintf (type, len, "%s", fstype); /* the last one listed is on top */
    }
  free (line);
  fclose (f);
}

int
fz_mount_state (const char *dir)
{
  char *fs = fz_path ("%s/fs", dir);
  if (fs == NULL)
    return 0;
  char type[64];
  mount_type (fs, type, sizeof type);
  /* statfs, not stat: the kernel answers stat from its attribute cache
   * (a day, the layer never changes), statfs always asks the server. */
  struct statfs sf;
  int state = 0;
  if (strcmp (type, "fuse.berth") == 0)
    state = statfs (fs, &sf) < 0 && errno == ENOTCONN ? -1 : 1;
  else if (*type)
    state = -1; /* something else is mounted there: not ours to serve */
  free (fs);
  return state;
}

int
fz_unmount (const char *dir)
{
  char *fs = fz_path ("%s/fs", dir);
  if (fs == NULL)
    return -ENOMEM;
  int r = 0;
  for (int i = 0; i < 8; i++) /* stacked mounts: each one */
    {
      char type[64];
      mount_type (fs, type, sizeof type);
      if (*type == '\0')
        break;
      if (umount2 (fs, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        {
          r = -errno;
          break;
        }
    }
  free (fs);
  return r;
}

int
fz_layer_read (const char *dir, char *digest, size_t dlen, char *media_type, size_t mlen)
{
  char *path = fz_path ("%s/layer", dir);
  if (path == NULL)
    return -ENOMEM;
  FILE *f = fopen (path, "re");
  free (path);
  if (f == NULL)
    return -errno;
  int r = fgets (digest, (int) dlen, f) && fgets (media_type, (int) mlen, f) ? 0 : -EINVAL;
  fclose (f);
  digest[strcspn (digest, "\n")] = '\0';
  media_type[strcspn (media_type, "\n")] = '\0';
  return r == 0 && *digest && *media_type ? 0 : -EINVAL;
}

int
fz_layer_write (const char *dir, const char *digest, const char *media_type)
{
  char *path = fz_path ("%s/layer", dir);
  if (path == NULL)
    return -ENOMEM;
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  free (path);
  if (fd < 0)
    return -errno;
  int r = dprintf (fd, "%s\n%s\n", digest, media_type) < 0 || fsync (fd) < 0 ? -errno : 0;
  close (fd);
  return r;
}
