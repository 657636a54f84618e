/* The task manager (see tasks.h). */
#include <config.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <berth/failpoint.h>

#include "cleanup.h"
#include "events.h"
#include "fs.h"
#include "log.h"
#include "plugin-calls.h"
#include "snapshots.h"
#include "tasks.h"
#include "github.com/containerd/containerd/runtime/v2/runc/options/oci.pb-c.h"

#define RUNTIME_TYPE "io.berth.runtime.v1"
#define RUNC_OPTIONS_TYPE "containerd.runc.v1.Options"
#define MAX_ETC_FILE (1 << 20)

/* What the core knows of a task's init process without asking its shim:
 * List and Get answer from here, so that a shim that does not answer costs
 * nobody but the callers that need that shim (docs/design-notes.md, "A
 * frozen shim").  Updated by the calls that reach the shim (create, start,
 * pause, resume, wait, and any call's success or deadline), by the exit
 * events of the runtime plugin, and by the refresher's probes.  Under
 * tasks->lock. */
struct task_cache
{
  struct berth_process_state st; /* status, pid, exit status/time, io */
  uint64_t gen;                  /* bumped by every update of st */
  int64_t answered_ms;           /* CLOCK_MONOTONIC of the shim's last answer */
  int64_t answered_ns;           /* the same, CLOCK_REALTIME, for display */
  bool stuck;                    /* the last probe or call missed its deadline */
  bool probing;                  /* a probe is in flight */
  int calls;                     /* API calls waiting for the shim (call_begin) */
  char why[256];                 /* the runtime's error, when stuck */
};

struct task
{
  char *ns;
  char *id;
  plugin *rt;
  char *bundle;
  int refs;
  bool busy; /* being created or deleted */
  bool gone; /* removed from the table */
  struct task_cache c;
  struct task *next;
};

/* One refresh round: PROBE_THREADS threads take the tasks in turn. */
#define PROBE_THREADS 4
/* A listing starts a round when the last one ended this long ago... */
#define REFRESH_KICK_MS 2000
/* ...and rounds run by themselves this often. */
#define REFRESH_INTERVAL_MS 10000

struct probe_round;
struct probe_worker
{
  struct probe_round *pr;
  berth_ctx ctx; /* cancelled by tasks_shutdown */
};

struct probe_round
{
  tasks *t;
  struct task **v;
  size_t n;
  atomic_size_t next;
  struct probe_worker w[PROBE_THREADS];
};

struct tasks
{
  struct daemon *d;
  pthread_mutex_t lock;
  struct task *list;

  /* The refresher (tasks_recover starts it, tasks_shutdown stops it). */
  pthread_cond_t cond;
  pthread_t refresher;
  bool refresher_started;
  bool stopping;
  bool kicked;
  int64_t round_ended_ms;
  struct probe_round *round; /* the round in progress, for tasks_shutdown */
};

static int64_t mono_ms (void);
static int64_t real_ns (void);

static void
task_free (struct task *tk)
{
  if (tk == NULL)
    return;
  free (tk->ns);
  free (tk->id);
  free (tk->bundle);
  free (tk);
}

int
tasks_new (struct daemon *d, tasks **ret, berth_error **err)
{
  tasks *t = calloc (1, sizeof *t);
  if (t == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "tasks");
  t->d = d;
  pthread_mutex_init (&t->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&t->cond, &ca);
  pthread_condattr_destroy (&ca);
  *ret = t;
  return 0;
}

void
tasks_free (tasks *t)
{
  if (t == NULL)
    return;
  tasks_shutdown (t);
  pthread_cond_destroy (&t->cond);
  for (struct task *tk = t->list, *n; tk; tk = n)
    {
      n = tk->next;
      task_free (tk);
    }
  pthread_mutex_destroy (&t->lock);
  free (t);
}

static struct task *
find_locked (tasks *t, const char *ns, const char *id)
{
  for (struct task *tk = t->list; tk; tk = tk->next)
    if (strcmp (tk->ns, ns) == 0 && strcmp (tk->id, id) == 0)
      return tk;
  return NULL;
}

/* A reference to the task (ns, id), or BERTH_E_NOTFOUND as containerd says it. */
static int
task_get (tasks *t, const char *ns, const char *id, struct task **ret, berth_error **err)
{
  pthread_mutex_lock (&t->lock);
  struct task *tk = id ? find_locked (t, ns, id) : NULL;
  if (tk && !tk->busy)
    tk->refs++;
  pthread_mutex_unlock (&t->lock);
  if (tk == NULL || tk->busy)
    return berth_error_set (err, BERTH_E_NOTFOUND, 0, "task %s: not found", id ? id : "");
  *ret = tk;
  return 0;
}

static void
task_put (tasks *t, struct task *tk)
{
  if (tk == NULL)
    return;
  pthread_mutex_lock (&t->lock);
  bool last = --tk->refs == 0 && tk->gone;
  pthread_mutex_unlock (&t->lock);
  if (last)
    task_free (tk);
}

/* Unlink tk from the table; freed with its last reference. */
static void
task_remove (tasks *t, struct task *tk)
{
  pthread_mutex_lock (&t->lock);
  for (struct task **p = &t->list; *p; p = &(*p)->next)
    if (*p == tk)
      {
        *p = tk->next;
        break;
      }
  tk->gone = true;
  pthread_mutex_unlock (&t->lock);
}

static struct task *
task_add (tasks *t, const char *ns, const char *id, plugin *rt, const char *bundle, bool busy)
{
  struct task *tk = calloc (1, sizeof *tk);
  if (tk == NULL || (tk->ns = strdup (ns)) == NULL || (tk->id = strdup (id)) == NULL
      || (tk->bundle = strdup (bundle)) == NULL)
    {
      task_free (tk);
      return NULL;
    }
  tk->rt = rt;
  tk->busy = busy;
  tk->refs = 1;
  tk->c.st.size = sizeof tk->c.st;
  tk->c.answered_ms = mono_ms ();
  tk->c.answered_ns = real_ns ();
  pthread_mutex_lock (&t->lock);
  tk->next = t->list;
  t->list = tk;
  pthread_mutex_unlock (&t->lock);
  return tk;
}

bool
tasks_exists (tasks *t, const char *ns, const char *id)
{
  pthread_mutex_lock (&t->lock);
  bool r = find_locked (t, ns, id) != NULL;
  pthread_mutex_unlock (&t->lock);
  return r;
}

static int64_t
mono_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
publish (tasks *t, const char *ns, const char *topic, const char *const *fields)
{
  if (t->d->events)
    events_publish_fields (t->d->events, ns, topic, fields);
}

/* ---- the state cache ------------------------------------------------------ */

static int64_t
real_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
cache_answered_locked (struct task *tk)
{
  tk->c.answered_ms = mono_ms ();
  tk->c.answered_ns = real_ns ();
  tk->c.stuck = false;
  tk->c.why[0] = '\0';
}

/* The shim answered: st (when not NULL) is its init process now. */
static void
cache_update (tasks *t, struct task *tk, const struct berth_process_state *st)
{
  pthread_mutex_lock (&t->lock);
  if (st)
    {
      tk->c.st = *st;
      tk->c.st.size = sizeof tk->c.st;
      tk->c.gen++;
    }
  cache_answered_locked (tk);
  pthread_mutex_unlock (&t->lock);
}

/* One field of the cached state changed (status, and pid when > 0). */
static void
cache_set_status (tasks *t, struct task *tk, uint32_t status, int32_t pid)
{
  pthread_mutex_lock (&t->lock);
  /* An exit seen before start's answer came back stays: init runs once. */
  if (tk->c.st.status != BERTH_TASK_STOPPED)
    tk->c.st.status = status;
  if (pid > 0)
    tk->c.st.pid = pid;
  tk->c.gen++;
  cache_answered_locked (tk);
  pthread_mutex_unlock (&t->lock);
}

/* init exited (an exit event, or a Wait that returned). */
static void
cache_set_exit (tasks *t, struct task *tk, uint32_t status, int64_t exited_at)
{
  pthread_mutex_lock (&t->lock);
  tk->c.st.status = BERTH_TASK_STOPPED;
  tk->c.st.exit_status = status;
  tk->c.st.exited_at = exited_at;
  tk->c.gen++;
  cache_answered_locked (tk);
  pthread_mutex_unlock (&t->lock);
}

/* The outcome of a call that tried to reach tk's shim: success proves it
 * alive; a missed deadline marks it stuck until it answers again.  Other
 * errors may come from the plugin without the shim being asked, and so say
 * nothing either way. */
static void
cache_note_call (tasks *t, struct task *tk, int r, const berth_error *err)
{
  if (r == BERTH_E_DEADLINE)
    {
      pthread_mutex_lock (&t->lock);
      tk->c.stuck = true;
      snprintf (tk->c.why, sizeof tk->c.why, "%s", err ? berth_error_message (err) : "no answer in time");
      pthread_mutex_unlock (&t->lock);
    }
  else if (r == 0)
    cache_update (t, tk, NULL);
}

/* An API call is about to wait for tk's shim.  While the shim is stuck,
 * one call at a time may wait for it (and fail after its deadline, naming
 * the shim); the others are refused at once, so that clients retrying on a
 * frozen container cannot hold every worker thread for a call deadline
 * each.  call_end when the call returns. */
static int
call_begin (tasks *t, struct task *tk, berth_error **err)
{
  pthread_mutex_lock (&t->lock);
  bool refuse = tk->c.stuck && tk->c.calls > 0;
  int64_t silent = mono_ms () - tk->c.answered_ms;
  char why[sizeof tk->c.why];
  snprintf (why, sizeof why, "%s", tk->c.why);
  if (!refuse)
    tk->c.calls++;
  pthread_mutex_unlock (&t->lock);
  if (refuse)
    return berth_error_set (err, BERTH_E_UNAVAILABLE, 0,
                            "task %s: its shim has not answered for %" PRId64
                            " s and another call to it is already waiting (%s)",
                            tk->id, silent / 1000, why);
  return 0;
}

static void
call_end (tasks *t, struct task *tk)
{
  pthread_mutex_lock (&t->lock);
  tk->c.calls--;
  pthread_mutex_unlock (&t->lock);
}

/* Wake the refresher for a round, unless one ran less than REFRESH_KICK_MS
 * ago or is running. */
static void
refresh_kick (tasks *t)
{
  pthread_mutex_lock (&t->lock);
  if (t->refresher_started && !t->kicked && t->round == NULL && mono_ms () - t->round_ended_ms >= REFRESH_KICK_MS)
    {
      t->kicked = true;
      pthread_cond_signal (&t->cond);
    }
  pthread_mutex_unlock (&t->lock);
}

/* The cached state of tk as List and Get give it: a stuck shim's task is
 * UNKNOWN (as containerd reports a task whose shim misses the 2 s state
 * deadline), with the pid last known. */
static void
cache_read_locked (const struct task *tk, struct berth_process_state *ret, struct task_health *ret_health)
{
  *ret = tk->c.st;
  ret->size = sizeof *ret;
  if (tk->c.stuck)
    ret->status = BERTH_TASK_UNKNOWN;
  if (ret_health)
    {
      ret_health->answering = !tk->c.stuck;
      ret_health->last_answer_ns = tk->c.answered_ns;
      ret_health->silent_ms = tk->c.stuck ? mono_ms () - tk->c.answered_ms : 0;
      snprintf (ret_health->why, sizeof ret_health->why, "%s", tk->c.stuck ? tk->c.why : "");
    }
}

/* ---- runtime selection ----------------------------------------------- */

static bool
is_containerd_runtime (const char *name)
{
  return strcmp (name, "io.containerd.runc.v2") == 0 || strcmp (name, "io.containerd.runc.v1") == 0
         || strcmp (name, "io.containerd.runtime.v1.linux") == 0;
}

static plugin *
runtime_by_full_name (registry *reg, const char *full)
{
  size_t tl = strlen (RUNTIME_TYPE);
  if (strncmp (full, RUNTIME_TYPE ".", tl + 1) != 0)
    return NULL;
  return registry_find (reg, RUNTIME_TYPE, full + tl + 1);
}

static int
runtime_select (tasks *t, const char *name, plugin **ret, berth_error **err)
{
  registry *reg = t->d->reg;
  plugin *p = NULL;
  if (name == NULL || *name == '\0')
    return berth_error_set (err, BERTH_E_INVALID, 0, "container has no runtime name");
  if (is_containerd_runtime (name))
    {
      const char *def = t->d->cfg->runtime.default_runtime;
      p = runtime_by_full_name (reg, def);
      if (p && p->status == PLUGIN_OK)
        {
          *ret = p;
          return 0;
        }
      plugin *oci = registry_find (reg, RUNTIME_TYPE, "oci");
      if (oci && oci->status == PLUGIN_OK && p != oci)
        {
          log_info ("runtime %s: [runtime] default %s is %s%s%s; using %s", name, def,
                    p ? plugin_status_name (p->status) : "not loaded", p && p->error ? ": " : "",
                    p && p->error ? p->error : "", oci->full_name);
          *ret = oci;
          return 0;
        }
      return berth_error_set (
          err, BERTH_E_NOTFOUND, 0,
          "runtime %s: neither [runtime] default %s (%s%s%s) nor " RUNTIME_TYPE ".oci (%s) is loaded", name, def,
          p ? plugin_status_name (p->status) : "not loaded", p && p->error ? ": " : "", p && p->error ? p->error : "",
          oci ? (oci->error ? oci->error : plugin_status_name (oci->status)) : "not loaded");
    }
  p = runtime_by_full_name (reg, name);
  if (p == NULL)
    return berth_error_set (err, BERTH_E_NOTFOUND, 0,
                            "runtime %s is not supported: use " RUNTIME_TYPE ".namespaces, " RUNTIME_TYPE
                            ".oci or io.containerd.runc.v2",
                            name);
  if (p->status != PLUGIN_OK)
    return berth_error_set (err, BERTH_E_NOTFOUND, 0, "runtime %s is not loaded (%s%s%s)", name,
                            plugin_status_name (p->status), p->error ? ": " : "", p->error ? p->error : "");
  *ret = p;
  return 0;
}

/* ---- containerd.runc.v1.Options (runtime/v2/runc/options/oci.proto) ----
 * Only binary_name and systemd_cgroup are used. */
struct runc_options
{
  char *binary_name;
  bool systemd_cgroup;
};

static int
runc_options_decode (const uint8_t *p, size_t len, struct runc_options *ret, berth_error **err)
{
  Containerd__Runc__V1__Options *o = containerd__runc__v1__options__unpack (NULL, len, p);
  if (o == NULL)
    return berth_error_set (err, BERTH_E_INVALID, 0, RUNC_OPTIONS_TYPE ": malformed protobuf message");
  int r = 0;
  ret->systemd_cgroup = o->systemd_cgroup;
  if (o->binary_name && *o->binary_name)
    {
      free (ret->binary_name);
      ret->binary_name = strdup (o->binary_name);
      if (ret->binary_name == NULL)
        r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
    }
  containerd__runc__v1__options__free_unpacked (o, NULL);
  return r;
}

/* ---- bundles ------------------------------------------------------------ */

static char *
bundle_path (tasks *t, const char *ns, const char *id)
{
  char *p = NULL;
  if (asprintf (&p, "%s/bundles/%s/%s", t->d->cfg->state, ns, id) < 0)
    return NULL;
  return p;
}

static const struct
{
  const char *name;
  unsigned long set, clear;
} mount_flags[] = {
  { "ro", MS_RDONLY, 0 },           { "rw", 0, MS_RDONLY },         { "bind", MS_BIND, 0 },
  { "rbind", MS_BIND | MS_REC, 0 }, { "nosuid", MS_NOSUID, 0 },     { "suid", 0, MS_NOSUID },
  { "nodev", MS_NODEV, 0 },         { "dev", 0, MS_NODEV },         { "noexec", MS_NOEXEC, 0 },
  { "exec", 0, MS_NOEXEC },         { "noatime", MS_NOATIME, 0 },   { "relatime", MS_RELATIME, 0 },
  { "sync", MS_SYNCHRONOUS, 0 },    { "async", 0, MS_SYNCHRONOUS },
};

/* containerd's mount.Mount.Mount: known options become flags, the rest the
 * data string; a read-only bind is remounted read-only. */
static int
mount_one (const struct berth_mount *m, const char *target, berth_error **err)
{
  unsigned long flags = 0;
  _cleanup_free_ char *data = NULL;
  size_t dlen = 0;
  for (char **o = m->options; o && *o; o++)
    {
      size_t k;
      for (k = 0; k < ARRAY_SIZE (mount_flags); k++)
        if (strcmp (*o, mount_flags[k].name) == 0)
          {
            flags = (flags | mount_flags[k].set) & ~mount_flags[k].clear;
            break;
          }
      if (k < ARRAY_SIZE (mount_flags))
        continue;
      size_t ol = strlen (*o);
      char *nd = realloc (data, dlen + ol + 2);
      if (nd == NULL)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
      data = nd;
      if (dlen)
        data[dlen++] = ',';
      memcpy (data + dlen, *o, ol + 1);
      dlen += ol;
    }
  const char *type = m->type && *m->type ? m->type : "none";
  if (strcmp (type, "bind") == 0 || strcmp (type, "rbind") == 0)
    flags |= MS_BIND | (strcmp (type, "rbind") == 0 ? MS_REC : 0);
  if (mount (m->source, target, type, flags & ~(unsigned long)(flags & MS_BIND ? MS_RDONLY : 0), data) < 0)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "mounting %s (%s) on %s: %s",
                            m->source ? m->source : "-", type, target, strerror (errno));
  if ((flags & MS_BIND) && (flags & MS_RDONLY)
      && mount (NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
    {
      int e = errno;
      umount2 (target, MNT_DETACH);
      return berth_error_set (err, BERTH_E_INTERNAL, e, "remounting %s read-only: %s", target, strerror (e));
    }
  return 0;
}

/* Unmount everything stacked on dir (at most 32 layers). */
static int
unmount_all (const char *dir, berth_error **err)
{
  for (int i = 0; i < 32; i++)
    {
      if (umount2 (dir, 0) == 0)
        continue;
      if (errno == EINVAL || errno == ENOENT)
        return 0;
      if (errno == EBUSY && umount2 (dir, MNT_DETACH) == 0)
        continue;
      return berth_error_set (err, berth_errcode_from_errno (errno), errno, "unmounting %s: %s", dir, strerror (errno));
    }
  return berth_error_set (err, BERTH_E_INTERNAL, 0, "unmounting %s: still mounted after 32 unmounts", dir);
}

static int
rm_entry (const char *path, const struct stat *st, int type, struct FTW *f)
{
  if (type == FTW_DP || type == FTW_D)
    return rmdir (path) < 0 && errno != ENOENT ? -1 : 0;
  return unlink (path) < 0 && errno != ENOENT ? -1 : 0;
}

/* Unmount <bundle>/rootfs and remove the bundle.  FTW_MOUNT keeps the walk
 * off anything still mounted (it then fails on rmdir, never deletes a
 * container's files). */
static int
bundle_remove (const char *bundle, berth_error **err)
{
  _cleanup_free_ char *rootfs = NULL;
  if (asprintf (&rootfs, "%s/rootfs", bundle) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  int r = unmount_all (rootfs, err);
  if (r < 0)
    return r;
  if (nftw (bundle, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 && errno != ENOENT)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "removing bundle %s: %s", bundle,
                            strerror (errno));
  return 0;
}

/* ---- /etc files and users (annotations of berth's spec generator) -------- */

/* Read <rootfs>/etc/<name> without following symlinks (the image is not
 * trusted: /etc/passwd -> /host/file must not be read).  *ret NULL when
 * it does not exist. */
static int
read_image_etc (const char *rootfs, const char *name, char **ret, berth_error **err)
{
  *ret = NULL;
  _cleanup_close_ int root = open (rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root < 0)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "opening %s", rootfs);
  _cleanup_close_ int etc = openat (root, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (etc < 0)
    return errno == ENOENT ? 0 : berth_error_set (err, BERTH_E_INVALID, errno, "image /etc: %s", strerror (errno));
  _cleanup_close_ int fd = openat (etc, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return errno == ENOENT ? 0
                           : berth_error_set (err, BERTH_E_INVALID, errno, "image /etc/%s: %s", name, strerror (errno));
  struct stat st;
  if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode) || st.st_size > MAX_ETC_FILE)
    return berth_error_set (err, BERTH_E_INVALID, 0, "image /etc/%s: not a regular file of at most 1 MiB", name);
  char *buf = malloc ((size_t)st.st_size + 1);
  if (buf == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  size_t n = 0;
  while (n < (size_t)st.st_size)
    {
      ssize_t k = read (fd, buf + n, (size_t)st.st_size - n);
      if (k <= 0)
        break;
      n += (size_t)k;
    }
  buf[n] = '\0';
  *ret = buf;
  return 0;
}

/* The n-th ':' field of line (0-based) copied into out, or false. */
static bool
colon_field (const char *line, int n, char *out, size_t size)
{
  const char *p = line;
  for (int i = 0; i < n; i++)
    {
      p = strchr (p, ':');
      if (p == NULL)
        return false;
      p++;
    }
  size_t len = strcspn (p, ":\n");
  if (len >= size)
    return false;
  memcpy (out, p, len);
  out[len] = '\0';
  return true;
}

static bool
parse_id (const char *s, uint32_t *ret)
{
  if (*s == '\0' || !isdigit ((unsigned char)*s))
    return false;
  char *end;
  errno = 0;
  unsigned long v = strtoul (s, &end, 10);
  if (errno || *end || v > UINT32_MAX - 1)
    return false;
  *ret = (uint32_t)v;
  return true;
}

/* Find the entry whose field 0 (by name) or field 2 (by id) matches. */
static bool
db_lookup (const char *db, const char *key, bool by_id, char *ret_name, size_t name_size, uint32_t *ret_id,
           uint32_t *ret_gid)
{
  for (const char *line = db; line && *line; line = strchr (line, '\n') ? strchr (line, '\n') + 1 : NULL)
    {
      char name[256], id[32], gid[32];
      if (*line == '#' || !colon_field (line, 0, name, sizeof name) || !colon_field (line, 2, id, sizeof id))
        continue;
      if (by_id ? strcmp (id, key) != 0 : strcmp (name, key) != 0)
        continue;
      uint32_t v;
      if (!parse_id (id, &v))
        continue;
      *ret_id = v;
      if (ret_name)
        snprintf (ret_name, name_size, "%s", name);
      if (ret_gid && colon_field (line, 3, gid, sizeof gid))
        parse_id (gid, ret_gid);
      return true;
    }
  return false;
}

/* "name[:group]" (either may be numeric) → process.user. */
static int
resolve_user (json_object *spec, const char *rootfs, const char *user, berth_error **err)
{
  _cleanup_free_ char *passwd = NULL, *group = NULL;
  int r = read_image_etc (rootfs, "passwd", &passwd, err);
  if (r == 0)
    r = read_image_etc (rootfs, "group", &group, err);
  if (r < 0)
    return r;
  char uname[256] = "", gname[256] = "";
  const char *colon = strchr (user, ':');
  size_t ul = colon ? (size_t)(colon - user) : strlen (user);
  if (ul == 0 || ul >= sizeof uname || (colon && strlen (colon + 1) >= sizeof gname))
    return berth_error_set (err, BERTH_E_INVALID, 0, "user \"%s\": malformed (expected name[:group])", user);
  memcpy (uname, user, ul);
  uname[ul] = '\0';
  if (colon)
    snprintf (gname, sizeof gname, "%s", colon + 1);
  uint32_t uid = 0, gid = 0;
  char pwname[256] = "";
  if (parse_id (uname, &uid))
    {
      if (!db_lookup (passwd, uname, true, pwname, sizeof pwname, &uid, &gid))
        gid = 0;
    }
  else if (!db_lookup (passwd, uname, false, pwname, sizeof pwname, &uid, &gid))
    return berth_error_set (err, BERTH_E_NOTFOUND, 0, "user \"%s\" not found in the image's /etc/passwd", uname);
  if (*gname && !parse_id (gname, &gid) && !db_lookup (group, gname, false, NULL, 0, &gid, NULL))
    return berth_error_set (err, BERTH_E_NOTFOUND, 0, "group \"%s\" not found in the image's /etc/group", gname);
  json_object *process = NULL;
  if (!json_object_object_get_ex (spec, "process", &process) || !json_object_is_type (process, json_type_object))
    return berth_error_set (err, BERTH_E_INVALID, 0, "spec has no process");
  json_object *ju = json_object_new_object ();
  json_object *extra = json_object_new_array ();
  json_object_object_add (ju, "uid", json_object_new_int64 (uid));
  json_object_object_add (ju, "gid", json_object_new_int64 (gid));
  /* Supplementary groups: every /etc/group entry listing the user. */
  for (const char *line = group; *pwname && line && *line; line = strchr (line, '\n') ? strchr (line, '\n') + 1 : NULL)
    {
      char members[4096], id[32];
      uint32_t g;
      if (!colon_field (line, 2, id, sizeof id) || !parse_id (id, &g) || !colon_field (line, 3, members, sizeof members)
          || g == gid)
        continue;
      for (char *save = NULL, *m = strtok_r (members, ",", &save); m; m = strtok_r (NULL, ",", &save))
        if (strcmp (m, pwname) == 0)
          json_object_array_add (extra, json_object_new_int64 (g));
    }
  if (json_object_array_length (extra) > 0)
    json_object_object_add (ju, "additionalGids", extra);
  else
    json_object_put (extra);
  json_object_object_add (process, "user", ju);
  return 0;
}

static int
write_file (const char *path, const char *text, berth_error **err)
{
  _cleanup_close_ int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  size_t len = strlen (text);
  if (fd < 0 || write (fd, text, len) != (ssize_t)len)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "writing %s: %s", path, strerror (errno));
  return 0;
}

static bool
spec_has_netns (json_object *spec)
{
  json_object *linux_, *nss;
  if (!json_object_object_get_ex (spec, "linux", &linux_) || !json_object_object_get_ex (linux_, "namespaces", &nss)
      || !json_object_is_type (nss, json_type_array))
    return false;
  for (size_t i = 0; i < json_object_array_length (nss); i++)
    {
      json_object *type, *path;
      json_object *ns = json_object_array_get_idx (nss, i);
      if (json_object_object_get_ex (ns, "type", &type) && strcmp (json_object_get_string (type), "network") == 0)
        return !json_object_object_get_ex (ns, "path", &path) || *json_object_get_string (path) == '\0';
    }
  return false;
}

static bool
is_loopback_nameserver (const char *line)
{
  const char *p = line + strlen ("nameserver");
  p += strspn (p, " \t");
  return strncmp (p, "127.", 4) == 0 || strncmp (p, "::1", 3) == 0;
}

/* resolv.conf for a container with its own network namespace: the host's
 * without loopback nameservers (they do not answer inside). */
static char *
resolv_conf (bool private_net)
{
  _cleanup_fclose_ FILE *f = fopen ("/etc/resolv.conf", "re");
  char line[1024];
  char *out = NULL;
  size_t len = 0;
  _cleanup_fclose_ FILE *o = open_memstream (&out, &len);
  if (o == NULL)
    return NULL;
  bool any = false;
  while (f && fgets (line, sizeof line, f))
    {
      bool ns = strncmp (line, "nameserver", 10) == 0;
      if (ns && private_net && is_loopback_nameserver (line))
        continue;
      any = any || ns;
      fputs (line, o);
    }
  if (!any)
    fputs ("# berth: the host's resolv.conf names no nameserver reachable from the container\n", o);
  fclose (TAKE_PTR (o));
  return out;
}

static void
add_bind (json_object *mounts, const char *dest, const char *src)
{
  json_object *m = json_object_new_object ();
  json_object_object_add (m, "destination", json_object_new_string (dest));
  json_object_object_add (m, "type", json_object_new_string ("bind"));
  json_object_object_add (m, "source", json_object_new_string (src));
  json_object *opts = json_object_new_array ();
  json_object_array_add (opts, json_object_new_string ("rbind"));
  json_object_array_add (opts, json_object_new_string ("rprivate"));
  json_object_array_add (opts, json_object_new_string ("ro"));
  json_object_object_add (m, "options", opts);
  json_object_array_add (mounts, m);
}

static int
write_etc_files (json_object *spec, const char *bundle, berth_error **err)
{
  _cleanup_free_ char *dir = NULL, *hosts = NULL, *hostname = NULL, *resolv = NULL, *htext = NULL;
  if (asprintf (&dir, "%s/etc", bundle) < 0 || asprintf (&hosts, "%s/hosts", dir) < 0
      || asprintf (&hostname, "%s/hostname", dir) < 0 || asprintf (&resolv, "%s/resolv.conf", dir) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  if (mkdir (dir, 0755) < 0 && errno != EEXIST)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "creating %s", dir);
  json_object *jh;
  const char *hn = json_object_object_get_ex (spec, "hostname", &jh) ? json_object_get_string (jh) : "";
  char host_hn[256] = "";
  bool private_net = spec_has_netns (spec);
  if (!private_net)
    gethostname (host_hn, sizeof host_hn - 1);
  if (!*hn)
    hn = host_hn;
  for (const char *c = hn; *c; c++)
    if (!isalnum ((unsigned char)*c) && *c != '-' && *c != '.')
      return berth_error_set (err, BERTH_E_INVALID, 0, "spec hostname \"%s\": not a valid host name", hn);
  if (asprintf (&htext,
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
                "%s%s%s",
                *hn ? "127.0.1.1\t" : "", hn, *hn ? "\n" : "")
      < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  _cleanup_free_ char *hnline = NULL, *rtext = resolv_conf (private_net);
  if (asprintf (&hnline, "%s\n", hn) < 0 || rtext == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  int r = write_file (hosts, htext, err);
  if (r == 0)
    r = write_file (hostname, hnline, err);
  if (r == 0)
    r = write_file (resolv, rtext, err);
  if (r < 0)
    return r;
  json_object *mounts;
  if (!json_object_object_get_ex (spec, "mounts", &mounts) || !json_object_is_type (mounts, json_type_array))
    {
      mounts = json_object_new_array ();
      json_object_object_add (spec, "mounts", mounts);
    }
  add_bind (mounts, "/etc/hosts", hosts);
  add_bind (mounts, "/etc/hostname", hostname);
  add_bind (mounts, "/etc/resolv.conf", resolv);
  return 0;
}

static const char *
annotation (json_object *spec, const char *key)
{
  json_object *anns, *v;
  if (json_object_object_get_ex (spec, "annotations", &anns) && json_object_is_type (anns, json_type_object)
      && json_object_object_get_ex (anns, key, &v) && json_object_is_type (v, json_type_string))
    return json_object_get_string (v);
  return NULL;
}

/* ---- create ------------------------------------------------------------- */

static int
log_path_of (tasks *t, const char *ns, const char *id, char **ret, berth_error **err)
{
  _cleanup_free_ char *dir = NULL;
  if (asprintf (&dir, "%s/logs/%s/%s", t->d->cfg->root, ns, id) < 0 || asprintf (ret, "%s/container.log", dir) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  int r = fs_mkdir_p (dir, 0700);
  if (r < 0)
    return berth_error_set (err, berth_errcode_from_errno (-r), -r, "creating %s", dir);
  return 0;
}

static char *
options_json (const char *log_path, const char *runtime, const struct runc_options *ro)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "log_path", json_object_new_string (log_path));
  json_object_object_add (o, "runtime", json_object_new_string (runtime ? runtime : ""));
  json_object_object_add (o, "binary_name", json_object_new_string (ro->binary_name ? ro->binary_name : ""));
  json_object_object_add (o, "systemd_cgroup", json_object_new_boolean (ro->systemd_cgroup));
  char *s = strdup (json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN));
  json_object_put (o);
  return s;
}

/* The rootfs mounts: the request's, else the container's snapshot. */
static int
rootfs_mounts (tasks *t, const struct task_create *req, const struct meta_container *c, berth_mounts *ret,
               bool *ret_any, berth_error **err)
{
  if (req->rootfs && req->rootfs->n > 0)
    {
      for (size_t i = 0; i < req->rootfs->n; i++)
        {
          const struct berth_mount *m = &req->rootfs->items[i];
          if (mounts_add (ret, m->type, m->source, m->target, (const char *const *)m->options) < 0)
            return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
        }
      *ret_any = true;
      return 0;
    }
  *ret_any = false;
  if (c->snapshot_key[0] == '\0')
    return 0;
  struct snaps s = { .m = t->d->meta, .snapshotter = c->snapshotter, .ns = req->ns };
  int r = snaps_plugin (t->d->reg, c->snapshotter, &s.p, err);
  if (r == 0)
    r = snaps_mounts (&s, c->snapshot_key, ret, err);
  if (r < 0)
    return berth_error_wrap (err, "container \"%s\": mounts of snapshot %s", c->id, c->snapshot_key);
  *ret_any = true;
  return 0;
}

static int
prepare_bundle (tasks *t, const struct task_create *req, const struct meta_container *c, const char *bundle,
                berth_error **err)
{
  _cleanup_free_ char *rootfs = NULL, *config = NULL, *tmp = NULL;
  if (asprintf (&rootfs, "%s/rootfs", bundle) < 0 || asprintf (&config, "%s/config.json", bundle) < 0
      || asprintf (&tmp, "%s/config.json.tmp", bundle) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  if (c->spec.value == NULL || c->spec.len == 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "container \"%s\": spec is empty", c->id);
  json_tokener *tok = json_tokener_new ();
  if (tok == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  json_object *spec = json_tokener_parse_ex (tok, (const char *)c->spec.value, (int)c->spec.len);
  enum json_tokener_error je = json_tokener_get_error (tok);
  json_tokener_free (tok);
  if (spec == NULL || je != json_tokener_success || !json_object_is_type (spec, json_type_object))
    {
      json_object_put (spec);
      return berth_error_set (err, BERTH_E_INVALID, 0,
                              "container \"%s\": spec (%s) is not a JSON object (OCI runtime spec): %s", c->id,
                              c->spec.type_url, json_tokener_error_desc (je));
    }
  int r = fs_mkdir_p (rootfs, 0711);
  if (r < 0)
    {
      json_object_put (spec);
      return berth_error_set (err, berth_errcode_from_errno (-r), -r, "creating %s", rootfs);
    }
  berth_mounts ms = { 0 };
  bool any = false;
  r = rootfs_mounts (t, req, c, &ms, &any, err);
  for (size_t i = 0; r == 0 && i < ms.n; i++)
    r = mount_one (&ms.items[i], rootfs, err);
  mounts_clear (&ms);
  const char *user = r == 0 ? annotation (spec, "io.berth.user") : NULL;
  if (r == 0 && user && *user)
    r = resolve_user (spec, rootfs, user, err);
  const char *etc = r == 0 ? annotation (spec, "io.berth.etc-files") : NULL;
  if (r == 0 && etc && strcmp (etc, "1") == 0)
    r = write_etc_files (spec, bundle, err);
  BERTH_FAILPOINT ("task-create-before-config");
  if (r == 0)
    {
      const char *text = json_object_to_json_string_ext (spec, JSON_C_TO_STRING_PLAIN);
      r = write_file (tmp, text, err);
      if (r == 0 && rename (tmp, config) < 0)
        r = berth_error_set (err, berth_errcode_from_errno (errno), errno, "renaming %s", tmp);
    }
  json_object_put (spec);
  return r;
}

int
tasks_create (tasks *t, const struct task_create *req, char **ret_bundle, struct berth_process_state *ret_state,
              berth_error **err)
{
  meta *m = t->d->meta;
  const char *ns = req->ns, *id = req->container_id;
  if (id == NULL || *id == '\0')
    return berth_error_set (err, BERTH_E_INVALID, 0, "container_id is required");
  struct meta_container c = { 0 };
  int r = meta_container_get (m, ns, id, &c, err);
  if (r < 0)
    return r;
  plugin *rt = NULL;
  struct runc_options ro = { 0 };
  _cleanup_free_ char *bundle = bundle_path (t, ns, id);
  _cleanup_free_ char *log_path = NULL, *opts = NULL;
  r = runtime_select (t, c.runtime_name, &rt, err);
  if (r == 0 && c.runtime_options.type_url && strcmp (c.runtime_options.type_url, RUNC_OPTIONS_TYPE) == 0)
    r = runc_options_decode (c.runtime_options.value, c.runtime_options.len, &ro, err);
  if (r == 0 && req->options_type && strcmp (req->options_type, RUNC_OPTIONS_TYPE) == 0)
    r = runc_options_decode (req->options, req->options_len, &ro, err);
  if (r == 0 && bundle == NULL)
    r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  if (r < 0)
    {
      meta_container_clear (&c);
      free (ro.binary_name);
      return r;
    }
  /* Reserve the id. */
  pthread_mutex_lock (&t->lock);
  struct task *tk = find_locked (t, ns, id);
  pthread_mutex_unlock (&t->lock);
  if (tk)
    {
      meta_container_clear (&c);
      free (ro.binary_name);
      return berth_error_set (err, BERTH_E_EXISTS, 0, "task %s: already exists", id);
    }
  tk = task_add (t, ns, id, rt, bundle, true);
  if (tk == NULL)
    {
      meta_container_clear (&c);
      free (ro.binary_name);
      return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
    }
  /* A stale bundle (a crash between create and delete) goes first. */
  _cleanup_error_ berth_error *e2 = NULL;
  if (access (bundle, F_OK) == 0 && bundle_remove (bundle, &e2) < 0)
    log_warning ("task %s/%s: stale bundle: %s", ns, id, berth_error_message (e2));
  r = fs_mkdir_p (bundle, 0711);
  if (r < 0)
    r = berth_error_set (err, berth_errcode_from_errno (-r), -r, "creating bundle %s", bundle);
  if (r == 0)
    r = prepare_bundle (t, req, &c, bundle, err);
  BERTH_FAILPOINT ("task-create-after-mount");
  if (r == 0)
    r = log_path_of (t, ns, id, &log_path, err);
  if (r == 0)
    r = meta_container_set_label (m, ns, id, TASKS_LABEL_LOG_PATH, log_path, err);
  if (r == 0)
    {
      const char *oci = strcmp (rt->desc.id, "oci") == 0 ? labels_get (&c.labels, TASKS_LABEL_OCI_RUNTIME) : NULL;
      opts = options_json (log_path, oci, &ro);
      if (opts == NULL)
        r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
    }
  if (r == 0)
    {
      berth_ctx ctx;
      ctx_init (&ctx, ns, NULL);
      struct berth_task_create cr = {
        .size = sizeof cr,
        .id = id,
        .bundle = bundle,
        .io = req->io,
        .options_json = opts,
      };
      cr.io.size = sizeof cr.io;
      memset (ret_state, 0, sizeof *ret_state);
      ret_state->size = sizeof *ret_state;
      r = runtime_create (rt, &ctx, &cr, ret_state, err);
    }
  if (r < 0)
    {
      _cleanup_error_ berth_error *e3 = NULL;
      if (bundle_remove (bundle, &e3) < 0)
        log_warning ("task %s/%s: cleaning up after a failed create: %s", ns, id, berth_error_message (e3));
      task_remove (t, tk);
      task_put (t, tk);
    }
  else
    {
      cache_update (t, tk, ret_state);
      pthread_mutex_lock (&t->lock);
      tk->busy = false;
      pthread_mutex_unlock (&t->lock);
      /* task_add's reference is the table's: tasks_delete drops it. */
      char pid[16], term[4];
      snprintf (pid, sizeof pid, "%d", (int)ret_state->pid);
      snprintf (term, sizeof term, "%d", req->io.terminal ? 1 : 0);
      const char *f[] = { "container_id",
                          id,
                          "bundle",
                          bundle,
                          "pid",
                          pid,
                          "stdin",
                          req->io.stdin_path ?: "",
                          "stdout",
                          req->io.stdout_path ?: "",
                          "stderr",
                          req->io.stderr_path ?: "",
                          "terminal",
                          term,
                          NULL };
      publish (t, ns, "/tasks/create", f);
      if (ret_bundle)
        *ret_bundle = TAKE_PTR (bundle);
    }
  meta_container_clear (&c);
  free (ro.binary_name);
  return r;
}

/* ---- the other calls ------------------------------------------------------ */

static bool
is_init (const char *exec_id)
{
  return exec_id == NULL || *exec_id == '\0';
}

int
tasks_start (tasks *t, const char *ns, const char *id, const char *exec_id, int32_t *ret_pid, berth_error **err)
{
  struct task *tk;
  int r = task_get (t, ns, id, &tk, err);
  if (r < 0)
    return r;
  if ((r = call_begin (t, tk, err)) < 0)
    {
      task_put (t, tk);
      return r;
    }
  berth_ctx ctx;
  ctx_init (&ctx, ns, NULL);
  r = runtime_start (tk->rt, &ctx, id, is_init (exec_id) ? NULL : exec_id, ret_pid, err);
  call_end (t, tk);
  if (r == 0 && is_init (exec_id))
    cache_set_status (t, tk, BERTH_TASK_RUNNING, *ret_pid);
  else
    cache_note_call (t, tk, r, *err);
  task_put (t, tk);
  if (r < 0)
    return r;
  char pid[16];
  snprintf (pid, sizeof pid, "%d", (int)*ret_pid);
  if (is_init (exec_id))
    {
      const char *f[] = { "container_id", id, "pid", pid, NULL };
      publish (t, ns, "/tasks/start", f);
    }
  else
    {
      const char *f[] = { "container_id", id, "exec_id", exec_id, "pid", pid, NULL };
      publish (t, ns, "/tasks/exec-started", f);
    }
  return 0;
}

int
tasks_delete (tasks *t, const char *ns, const char *id, const char *exec_id, struct berth_task_exit *ret_exit,
              berth_error **err)
{
  berth_ctx ctx;
  ctx_init (&ctx, ns, NULL);
  memset (ret_exit, 0, sizeof *ret_exit);
  ret_exit->size = sizeof *ret_exit;
  if (!is_init (exec_id))
    {
      struct task *tk;
      int r = task_get (t, ns, id, &tk, err);
      if (r < 0)
        return r;
      if ((r = call_begin (t, tk, err)) == 0)
        {
          r = runtime_delete (tk->rt, &ctx, id, exec_id, ret_exit, err);
          call_end (t, tk);
          cache_note_call (t, tk, r, *err);
        }
      task_put (t, tk);
      return r;
    }
  /* Take the task out of reach of other calls while it goes. */
  pthread_mutex_lock (&t->lock);
  struct task *tk = find_locked (t, ns, id);
  bool busy = tk && tk->busy;
  if (tk && !busy)
    {
      tk->busy = true;
      tk->refs++;
    }
  pthread_mutex_unlock (&t->lock);
  if (tk == NULL || busy)
    return berth_error_set (err, BERTH_E_NOTFOUND, 0, "task %s: not found", id);
  int r = runtime_delete (tk->rt, &ctx, id, NULL, ret_exit, err);
  if (r < 0 && r != BERTH_E_NOTFOUND)
    {
      cache_note_call (t, tk, r, *err);
      pthread_mutex_lock (&t->lock);
      tk->busy = false;
      pthread_mutex_unlock (&t->lock);
      task_put (t, tk);
      return r;
    }
  if (r == BERTH_E_NOTFOUND) /* the shim is gone: the task is, too */
    {
      log_warning ("task %s/%s: the runtime no longer knows it (%s); removing it", ns, id, berth_error_message (*err));
      berth_error_free (*err);
      *err = NULL;
      r = 0;
    }
  BERTH_FAILPOINT ("task-delete-before-bundle");
  _cleanup_error_ berth_error *e2 = NULL;
  if (bundle_remove (tk->bundle, &e2) < 0)
    log_warning ("task %s/%s: %s", ns, id, berth_error_message (e2));
  task_remove (t, tk);
  task_put (t, tk); /* ours */
  task_put (t, tk); /* the table's */
  char pid[16], status[16], at[24];
  snprintf (pid, sizeof pid, "%d", (int)ret_exit->pid);
  snprintf (status, sizeof status, "%u", ret_exit->exit_status);
  snprintf (at, sizeof at, "%" PRId64, ret_exit->exited_at);
  const char *f[] = { "container_id", id, "id", id, "pid", pid, "exit_status", status, "exited_at", at, NULL };
  publish (t, ns, "/tasks/delete", f);
  return 0;
}

int
tasks_state (tasks *t, const char *ns, const char *id, const char *exec_id, struct berth_process_state *ret,
             berth_error **err)
{
  struct task *tk;
  int r = task_get (t, ns, id, &tk, err);
  if (r < 0)
    return r;
  if (is_init (exec_id))
    {
      pthread_mutex_lock (&t->lock);
      cache_read_locked (tk, ret, NULL);
      pthread_mutex_unlock (&t->lock);
      task_put (t, tk);
      refresh_kick (t);
      return 0;
    }
  berth_ctx ctx;
  ctx_init (&ctx, ns, NULL);
  ctx.deadline_ms = mono_ms () + t->d->cfg->runtime.state_timeout_ms;
  memset (ret, 0, sizeof *ret);
  ret->size = sizeof *ret;
  if ((r = call_begin (t, tk, err)) == 0)
    {
      r = runtime_state (tk->rt, &ctx, id, exec_id, ret, err);
      call_end (t, tk);
      cache_note_call (t, tk, r, *err);
    }
  task_put (t, tk);
  return r;
}

int
tasks_health (tasks *t, const char *ns, const char *id, struct task_health *ret, berth_error **err)
{
  pthread_mutex_lock (&t->lock);
  struct task *tk = id ? find_locked (t, ns, id) : NULL;
  struct berth_process_state st;
  if (tk)
    cache_read_locked (tk, &st, ret);
  pthread_mutex_unlock (&t->lock);
  if (tk == NULL)
    return berth_error_set (err, BERTH_E_NOTFOUND, 0, "task %s: not found", id ? id : "");
  return 0;
}

struct list_entry
{
  char *id;
  struct berth_process_state st;
};

/* A snapshot of the namespace's tasks taken under the lock (states from the
 * cache), then handed to fn without it: no shim is asked. */
static int
list_tasks (tasks *t, const char *ns, bool with_state, tasks_list_fn fn, void *data, berth_error **err)
{
  struct list_entry *v = NULL;
  size_t n = 0, cap = 0;
  int r = 0;
  pthread_mutex_lock (&t->lock);
  for (struct task *tk = t->list; tk && r == 0; tk = tk->next)
    {
      if (tk->busy || strcmp (tk->ns, ns) != 0)
        continue;
      if (n == cap)
        {
          size_t nc = cap ? cap * 2 : 16;
          struct list_entry *nv = realloc (v, nc * sizeof *nv);
          if (nv == NULL)
            {
              r = BERTH_E_NOMEM;
              break;
            }
          v = nv;
          cap = nc;
        }
      if ((v[n].id = strdup (tk->id)) == NULL)
        {
          r = BERTH_E_NOMEM;
          break;
        }
      if (with_state)
        cache_read_locked (tk, &v[n].st, NULL);
      else
        v[n].st = (struct berth_process_state){ .size = sizeof v[n].st, .status = BERTH_TASK_UNKNOWN };
      n++;
    }
  pthread_mutex_unlock (&t->lock);
  for (size_t i = 0; i < n; i++)
    {
      if (r == 0)
        r = fn (v[i].id, &v[i].st, data);
      free (v[i].id);
    }
  free (v);
  if (with_state)
    refresh_kick (t);
  if (r < 0)
    return berth_error_set (err, r, 0, "listing tasks");
  return 0;
}

int
tasks_list (tasks *t, const char *ns, tasks_list_fn fn, void *data, berth_error **err)
{
  return list_tasks (t, ns, true, fn, data, err);
}

int
tasks_list_ids (tasks *t, const char *ns, tasks_list_fn fn, void *data, berth_error **err)
{
  return list_tasks (t, ns, false, fn, data, err);
}

#define SIMPLE_CALL(expr)                                                                                              \
  struct task *tk;                                                                                                     \
  int r = task_get (t, ns, id, &tk, err);                                                                              \
  if (r < 0)                                                                                                           \
    return r;                                                                                                          \
  if ((r = call_begin (t, tk, err)) < 0)                                                                               \
    {                                                                                                                  \
      task_put (t, tk);                                                                                                \
      return r;                                                                                                        \
    }                                                                                                                  \
  berth_ctx ctx;                                                                                                       \
  ctx_init (&ctx, ns, NULL);                                                                                           \
  r = (expr);                                                                                                          \
  call_end (t, tk);                                                                                                    \
  cache_note_call (t, tk, r, *err);                                                                                    \
  task_put (t, tk);

int
tasks_kill (tasks *t, const char *ns, const char *id, const char *exec_id, int sig, bool all, berth_error **err)
{
  if (sig <= 0 || sig >= 65)
    return berth_error_set (err, BERTH_E_INVALID, 0, "signal %d: out of range", sig);
  SIMPLE_CALL (runtime_kill (tk->rt, &ctx, id, is_init (exec_id) ? NULL : exec_id, sig, all, err));
  return r;
}

int
tasks_exec (tasks *t, const char *ns, const char *id, const char *exec_id, const char *process_json,
            const struct berth_task_io *io, berth_error **err)
{
  if (is_init (exec_id))
    return berth_error_set (err, BERTH_E_INVALID, 0, "exec id is required");
  SIMPLE_CALL (runtime_exec (tk->rt, &ctx, id, exec_id, process_json, io, err));
  if (r == 0)
    {
      const char *f[] = { "container_id", id, "exec_id", exec_id, NULL };
      publish (t, ns, "/tasks/exec-added", f);
    }
  return r;
}

int
tasks_resize (tasks *t, const char *ns, const char *id, const char *exec_id, uint32_t w, uint32_t h, berth_error **err)
{
  SIMPLE_CALL (runtime_resize_pty (tk->rt, &ctx, id, is_init (exec_id) ? NULL : exec_id, w, h, err));
  return r;
}

int
tasks_close_io (tasks *t, const char *ns, const char *id, const char *exec_id, berth_error **err)
{
  SIMPLE_CALL (runtime_close_io (tk->rt, &ctx, id, is_init (exec_id) ? NULL : exec_id, 1, err));
  return r;
}

int
tasks_pause (tasks *t, const char *ns, const char *id, bool pause, berth_error **err)
{
  struct task *tk;
  int r = task_get (t, ns, id, &tk, err);
  if (r < 0)
    return r;
  if ((r = call_begin (t, tk, err)) < 0)
    {
      task_put (t, tk);
      return r;
    }
  berth_ctx ctx;
  ctx_init (&ctx, ns, NULL);
  r = pause ? runtime_pause (tk->rt, &ctx, id, err) : runtime_resume (tk->rt, &ctx, id, err);
  call_end (t, tk);
  if (r == 0)
    cache_set_status (t, tk, pause ? BERTH_TASK_PAUSED : BERTH_TASK_RUNNING, 0);
  else
    cache_note_call (t, tk, r, *err);
  task_put (t, tk);
  if (r == 0)
    {
      const char *f[] = { "container_id", id, NULL };
      publish (t, ns, pause ? "/tasks/paused" : "/tasks/resumed", f);
    }
  return r;
}

int
tasks_pids (tasks *t, const char *ns, const char *id, berth_pid_fn fn, void *data, berth_error **err)
{
  SIMPLE_CALL (runtime_pids (tk->rt, &ctx, id, fn, data, err));
  return r;
}

int
tasks_update (tasks *t, const char *ns, const char *id, const char *resources_json, berth_error **err)
{
  SIMPLE_CALL (runtime_update (tk->rt, &ctx, id, resources_json, err));
  return r;
}

int
tasks_stats (tasks *t, const char *ns, const char *id, berth_buf *ret_json, berth_error **err)
{
  /* A shim known not to answer is not asked (Metrics skips the task
   * instead of waiting a call deadline per listing). */
  struct task *tk;
  int r = task_get (t, ns, id, &tk, err);
  if (r < 0)
    return r;
  pthread_mutex_lock (&t->lock);
  bool stuck = tk->c.stuck;
  int64_t silent = mono_ms () - tk->c.answered_ms;
  pthread_mutex_unlock (&t->lock);
  if (stuck)
    {
      task_put (t, tk);
      return berth_error_set (err, BERTH_E_UNAVAILABLE, 0, "task %s: its shim has not answered for %" PRId64 " s", id,
                              silent / 1000);
    }
  berth_ctx ctx;
  ctx_init (&ctx, ns, NULL);
  ctx.deadline_ms = mono_ms () + t->d->cfg->runtime.state_timeout_ms;
  r = runtime_stats (tk->rt, &ctx, id, ret_json, err);
  cache_note_call (t, tk, r, *err);
  task_put (t, tk);
  return r;
}

int
tasks_wait (tasks *t, berth_ctx *ctx, const char *id, const char *exec_id, struct berth_task_exit *ret_exit,
            berth_error **err)
{
  const char *ns = ctx->namespace;
  struct task *tk;
  int r = task_get (t, ns, id, &tk, err);
  if (r < 0)
    return r;
  memset (ret_exit, 0, sizeof *ret_exit);
  ret_exit->size = sizeof *ret_exit;
  r = runtime_wait (tk->rt, ctx, id, is_init (exec_id) ? NULL : exec_id, ret_exit, err);
  if (r == 0 && is_init (exec_id))
    cache_set_exit (t, tk, ret_exit->exit_status, ret_exit->exited_at);
  task_put (t, tk);
  return r;
}

/* ---- events from the plugins -------------------------------------------- */

void
tasks_plugin_event (tasks *t, const char *ns, const char *topic, const char *const *fields)
{
  if (t == NULL || topic == NULL)
    return;
  log_debug ("event %s (namespace %s) from a runtime plugin", topic, ns ? ns : "-");
  if (ns && strcmp (topic, "/tasks/exit") == 0)
    {
      /* An exit of init (id == container_id): the task is STOPPED. */
      const char *cid = NULL, *pid = NULL, *status = NULL, *at = NULL, *eid = NULL;
      for (const char *const *f = fields; f && f[0] && f[1]; f += 2)
        {
          if (strcmp (f[0], "container_id") == 0)
            cid = f[1];
          else if (strcmp (f[0], "id") == 0)
            eid = f[1];
          else if (strcmp (f[0], "pid") == 0)
            pid = f[1];
          else if (strcmp (f[0], "exit_status") == 0)
            status = f[1];
          else if (strcmp (f[0], "exited_at") == 0)
            at = f[1];
        }
      struct task *tk = NULL;
      if (cid && eid && strcmp (cid, eid) == 0 && task_get (t, ns, cid, &tk, NULL) == 0)
        {
          (void)pid;
          cache_set_exit (t, tk, status ? (uint32_t)strtoul (status, NULL, 10) : 255,
                          at ? strtoll (at, NULL, 10) : real_ns ());
          task_put (t, tk);
        }
    }
  publish (t, ns, topic, fields);
}

/* ---- the refresher ----------------------------------------------------------
 * One thread that runs refresh rounds: every task's shim is asked its state
 * by PROBE_THREADS threads in parallel, each call within the state deadline.
 * A shim that misses it is marked stuck (listed UNKNOWN, "not answering")
 * without anybody waiting for it; the next answer (a probe, a call, an
 * event) clears the mark.  A probe's answer replaces the cached state only
 * if nothing else updated it meanwhile (an exit event is newer than a state
 * the shim gave just before). */

static void
probe_one (tasks *t, struct task *tk, berth_ctx *ctx)
{
  pthread_mutex_lock (&t->lock);
  uint64_t gen = tk->c.gen;
  pthread_mutex_unlock (&t->lock);
  int64_t started = mono_ms ();
  int64_t limit = t->d->cfg->runtime.state_timeout_ms;
  ctx->namespace = tk->ns;
  ctx->deadline_ms = started + limit;
  struct berth_process_state st = { .size = sizeof st };
  _cleanup_error_ berth_error *e = NULL;
  int r = runtime_state (tk->rt, ctx, tk->id, NULL, &st, &e);
  pthread_mutex_lock (&t->lock);
  tk->c.probing = false;
  if (ctx_is_cancelled (ctx))
    ; /* shutting down: what the probe saw says nothing */
  else if ((r < 0 && r != BERTH_E_NOTFOUND) || (r == 0 && st.status == BERTH_TASK_UNKNOWN))
    {
      /* No answer (shimrt answers UNKNOWN for a shim that misses the
       * deadline).  Unless the shim spoke meanwhile, it is stuck. */
      if (tk->c.answered_ms <= started)
        {
          if (!tk->c.stuck)
            log_warning ("task %s/%s: its shim is not answering (%s); listed as UNKNOWN until it does", tk->ns, tk->id,
                         e ? berth_error_message (e) : "no answer to `state` in time");
          tk->c.stuck = true;
          if (e)
            snprintf (tk->c.why, sizeof tk->c.why, "%s", berth_error_message (e));
          else
            snprintf (tk->c.why, sizeof tk->c.why, "no answer to `state` within %" PRId64 " ms", limit);
        }
    }
  else if (r == BERTH_E_NOTFOUND)
    {
      /* The runtime lost it (its state is gone): UNKNOWN, so that it can
       * still be deleted. */
      tk->c.st.status = BERTH_TASK_UNKNOWN;
      tk->c.gen++;
    }
  else
    {
      if (tk->c.stuck)
        log_info ("task %s/%s: its shim answers again (silent for %" PRId64 " ms)", tk->ns, tk->id,
                  mono_ms () - tk->c.answered_ms);
      if (tk->c.gen == gen)
        {
          tk->c.st = st;
          tk->c.st.size = sizeof tk->c.st;
          tk->c.gen++;
        }
      cache_answered_locked (tk);
    }
  pthread_mutex_unlock (&t->lock);
}

static void *
probe_thread (void *data)
{
  struct probe_worker *w = data;
  struct probe_round *pr = w->pr;
  for (size_t k; (k = atomic_fetch_add (&pr->next, 1)) < pr->n;)
    if (!ctx_is_cancelled (&w->ctx))
      probe_one (pr->t, pr->v[k], &w->ctx);
  return NULL;
}

static void
refresh_round (tasks *t)
{
  struct probe_round pr = { .t = t };
  atomic_init (&pr.next, 0);
  size_t cap = 0;
  pthread_mutex_lock (&t->lock);
  for (struct task *tk = t->list; tk; tk = tk->next)
    cap++;
  pr.v = calloc (cap ? cap : 1, sizeof *pr.v);
  for (struct task *tk = t->list; pr.v && tk; tk = tk->next)
    if (!tk->busy && !tk->c.probing && tk->c.st.status != BERTH_TASK_STOPPED)
      {
        tk->refs++;
        tk->c.probing = true;
        pr.v[pr.n++] = tk;
      }
  for (size_t i = 0; i < PROBE_THREADS; i++)
    {
      pr.w[i].pr = &pr;
      ctx_init (&pr.w[i].ctx, NULL, NULL);
    }
  t->round = &pr;
  pthread_mutex_unlock (&t->lock);

  pthread_t th[PROBE_THREADS];
  bool started[PROBE_THREADS] = { false };
  size_t nth = pr.n < PROBE_THREADS ? pr.n : PROBE_THREADS;
  sigset_t all, old;
  sigfillset (&all);
  pthread_sigmask (SIG_BLOCK, &all, &old);
  for (size_t i = 1; i < nth; i++)
    started[i] = pthread_create (&th[i], NULL, probe_thread, &pr.w[i]) == 0;
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (nth > 0)
    probe_thread (&pr.w[0]); /* this thread is one of them, and takes over what a failed create left */
  for (size_t i = 1; i < nth; i++)
    if (started[i])
      pthread_join (th[i], NULL);

  pthread_mutex_lock (&t->lock);
  t->round = NULL;
  t->round_ended_ms = mono_ms ();
  for (size_t i = 0; i < pr.n; i++)
    pr.v[i]->c.probing = false; /* those a cancelled round skipped */
  pthread_mutex_unlock (&t->lock);
  for (size_t i = 0; i < pr.n; i++)
    task_put (t, pr.v[i]);
  free (pr.v);
}

static void *
refresher_main (void *data)
{
  tasks *t = data;
  pthread_mutex_lock (&t->lock);
  for (;;)
    {
      int64_t due = t->round_ended_ms + REFRESH_INTERVAL_MS;
      while (!t->stopping && !t->kicked && mono_ms () < due)
        {
          int64_t ms = due;
          struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
          pthread_cond_timedwait (&t->cond, &t->lock, &ts);
        }
      if (t->stopping)
        break;
      t->kicked = false;
      pthread_mutex_unlock (&t->lock);
      refresh_round (t);
      pthread_mutex_lock (&t->lock);
    }
  pthread_mutex_unlock (&t->lock);
  return NULL;
}

static void
refresher_start (tasks *t)
{
  sigset_t all, old;
  sigfillset (&all);
  pthread_sigmask (SIG_BLOCK, &all, &old);
  pthread_mutex_lock (&t->lock);
  t->round_ended_ms = mono_ms ();
  int e = pthread_create (&t->refresher, NULL, refresher_main, t);
  t->refresher_started = e == 0;
  pthread_mutex_unlock (&t->lock);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (e != 0)
    log_warning ("tasks: cannot start the state refresher (%s); states come from events and calls only", strerror (e));
}

void
tasks_shutdown (tasks *t)
{
  if (t == NULL)
    return;
  pthread_mutex_lock (&t->lock);
  bool started = t->refresher_started;
  t->refresher_started = false;
  t->stopping = true;
  if (t->round)
    for (size_t i = 0; i < PROBE_THREADS; i++)
      atomic_store (&t->round->w[i].ctx.cancelled, 1);
  pthread_cond_broadcast (&t->cond);
  pthread_mutex_unlock (&t->lock);
  if (started)
    pthread_join (t->refresher, NULL);
}

/* ---- recovery -------------------------------------------------------------- */

struct recover
{
  tasks *t;
  plugin *rt;
};

static int
recover_one (const char *ns, const char *id, const struct berth_process_state *st, void *data)
{
  struct recover *rc = data;
  tasks *t = rc->t;
  _cleanup_free_ char *bundle = bundle_path (t, ns, id);
  if (bundle == NULL)
    return 0;
  struct meta_container c = { 0 };
  _cleanup_error_ berth_error *err = NULL;
  if (meta_container_get (t->d->meta, ns, id, &c, &err) == 0)
    {
      meta_container_clear (&c);
      if (tasks_exists (t, ns, id))
        {
          log_warning ("task %s/%s: known to more than one runtime; keeping the one of %s", ns, id, rc->rt->full_name);
          return 0;
        }
      struct task *tk = task_add (t, ns, id, rc->rt, bundle, false);
      if (tk)
        {
          pthread_mutex_lock (&t->lock);
          /* The plugin's struct may be an older, shorter one. */
          size_t len = st->size < sizeof tk->c.st ? st->size : sizeof tk->c.st;
          memcpy (&tk->c.st, st, len);
          tk->c.st.size = sizeof tk->c.st;
          if (st->status == BERTH_TASK_UNKNOWN)
            {
              tk->c.stuck = true;
              snprintf (tk->c.why, sizeof tk->c.why, "no answer to `state` at start-up");
            }
          pthread_mutex_unlock (&t->lock);
        }
      if (tk)
        log_info ("task %s/%s: reconnected (%s, pid %d, status %u)", ns, id, rc->rt->full_name, (int)st->pid,
                  st->status);
      return 0;
    }
  log_warning ("task %s/%s: its container record is gone; deleting the task", ns, id);
  berth_ctx ctx;
  ctx_init (&ctx, ns, NULL);
  _cleanup_error_ berth_error *e2 = NULL, *e3 = NULL, *e4 = NULL;
  struct berth_task_exit ex = { .size = sizeof ex };
  runtime_kill (rc->rt, &ctx, id, NULL, SIGKILL, 1, &e2);
  if (runtime_delete (rc->rt, &ctx, id, NULL, &ex, &e3) < 0)
    log_warning ("task %s/%s: delete: %s", ns, id, berth_error_message (e3));
  if (bundle_remove (bundle, &e4) < 0)
    log_warning ("task %s/%s: %s", ns, id, berth_error_message (e4));
  return 0;
}

void
tasks_recover (tasks *t)
{
  registry *reg = t->d->reg;
  for (size_t i = 0; i < registry_count (reg); i++)
    {
      plugin *p = registry_at (reg, i);
      if (p->status != PLUGIN_OK || p->desc.kind != BERTH_KIND_RUNTIME)
        continue;
      berth_ctx ctx;
      ctx_init (&ctx, NULL, NULL);
      struct recover rc = { .t = t, .rt = p };
      _cleanup_error_ berth_error *err = NULL;
      if (runtime_list (p, &ctx, recover_one, &rc, &err) < 0)
        log_warning ("recovery: listing the tasks of %s: %s", p->full_name, berth_error_message (err));
    }
  /* Bundles no task owns: left by a crash between create and delete. */
  _cleanup_free_ char *root = NULL;
  if (asprintf (&root, "%s/bundles", t->d->cfg->state) < 0)
    return;
  DIR *nsd = opendir (root);
  struct dirent *ne;
  while (nsd && (ne = readdir (nsd)) != NULL)
    {
      if (ne->d_name[0] == '.')
        continue;
      _cleanup_free_ char *nsdir = NULL;
      if (asprintf (&nsdir, "%s/%s", root, ne->d_name) < 0)
        break;
      DIR *idd = opendir (nsdir);
      struct dirent *ie;
      while (idd && (ie = readdir (idd)) != NULL)
        {
          if (ie->d_name[0] == '.' || tasks_exists (t, ne->d_name, ie->d_name))
            continue;
          _cleanup_free_ char *b = NULL;
          if (asprintf (&b, "%s/%s", nsdir, ie->d_name) < 0)
            break;
          _cleanup_error_ berth_error *err = NULL;
          if (bundle_remove (b, &err) < 0)
            log_warning ("recovery: %s", berth_error_message (err));
          else
            log_info ("recovery: removed bundle %s (no task)", b);
        }
      if (idd)
        closedir (idd);
    }
  if (nsd)
    closedir (nsd);
  refresher_start (t);
}
