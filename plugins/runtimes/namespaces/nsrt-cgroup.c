/* berth-runtime: the container's cgroup on v1, v2 and hybrid hosts.
 *
 * The layout comes from /proc/self/mountinfo, never from fixed paths:
 *   v1      one hierarchy per mount (co-mounted controllers share one),
 *           named ones (name=systemd) included;
 *   v2      one cgroup2 mount with the controllers;
 *   hybrid  v1 controllers plus a cgroup2 mount (systemd's "unified") that
 *           usually has no controllers: limits go to v1, the process is also
 *           placed in the unified path (so cgroup.kill works there).
 * Each hierarchy remembers how many trailing path components this code
 * created, so that destroy never removes a directory it did not make. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nsrt-sec.h"

#define CG_MAX_HIER 24
#define CG_PATH_MAX 512
#define CG_DIR_MAX (2 * CG_PATH_MAX + 8)

enum cg_layout
{
  CG_V1,
  CG_V2,
  CG_HYBRID
};
static const char *const layout_names[] = { "v1", "v2", "hybrid" };

struct cg_hier
{
  char mount[CG_PATH_MAX];
  char ctrls[256]; /* v1 super options kept: "cpu,cpuacct", "name=systemd"; "" on v2 */
  int v2;
  int created; /* trailing components of path made by us */
};

struct nsrt_cgroup
{
  char path[CG_PATH_MAX]; /* "/berth/<id>": relative to every hierarchy's root */
  enum cg_layout layout;
  size_t n;
  struct cg_hier h[CG_MAX_HIER];
};

static const char *const v1_known[] = { "cpu",     "cpuacct",  "cpuset",     "memory", "devices", "freezer", "net_cls",
                                        "blkio",   "perf_event", "net_prio", "hugetlb", "pids",    "rdma",    "misc" };

static void
sleep_ms (long ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  nanosleep (&ts, NULL);
}

static void
hier_dir (const struct nsrt_cgroup *cg, const struct cg_hier *h, char *buf, size_t size)
{
  snprintf (buf, size, "%s%s", h->mount, cg->path);
}

/* ---- mountinfo ---- */

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static void
unescape (char *s)
{
  char *w = s;
  for (char *r = s; *r; r++)
    {
      if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7')
        {
          *w++ = (char) (((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
          r += 3;
        }
      else
        *w++ = *r;
    }
  *w = '\0';
}

static int
has_token (const char *list, const char *tok)
{
  size_t len = strlen (tok);
  for (const char *p = list; p && *p;)
    {
      const char *end = strchr (p, ',');
      size_t l = end ? (size_t) (end - p) : strlen (p);
      if (l == len && strncmp (p, tok, len) == 0)
        return 1;
      p = end ? end + 1 : NULL;
    }
  return 0;
}

/* Fills cg->h[] and cg->layout from /proc/self/mountinfo. */
static int
mounts_detect (struct nsrt_cgroup *cg, struct nsrt_err *err)
{
  FILE *f = fopen ("/proc/self/mountinfo", "re");
  if (f == NULL)
    return nsrt_errf (err, errno, "cgroup: open /proc/self/mountinfo");
  char *line = NULL;
  size_t cap = 0;
  char seen[CG_MAX_HIER][32];
  int has_v1 = 0, has_v2 = 0;
  struct cg_hier v1[CG_MAX_HIER], v2 = { 0 };
  size_t n1 = 0;
  char v2dev[32] = "";
  while (getline (&line, &cap, f) > 0)
    {
      line[strcspn (line, "\n")] = '\0';
      char *sep = strstr (line, " - ");
      if (sep == NULL)
        continue;
      *sep = '\0';
      char *fields[6] = { 0 }, *save = NULL, *tok = strtok_r (line, " ", &save);
      for (int i = 0; i < 6 && tok; i++, tok = strtok_r (NULL, " ", &save))
        fields[i] = tok;
      char *fstype = strtok_r (sep + 3, " ", &save);
      strtok_r (NULL, " ", &save); /* source */
      char *super = strtok_r (NULL, " ", &save);
      if (fields[4] == NULL || fstype == NULL)
        continue;
      unescape (fields[4]);
      if (strlen (fields[4]) >= CG_PATH_MAX - 64)
        continue;
      if (strcmp (fstype, "cgroup2") == 0)
        {
          if (has_v2 && strcmp (v2dev, fields[2]) == 0)
            continue; /* the same hierarchy mounted twice: the first wins */
          if (has_v2)
            continue;
          has_v2 = 1;
          snprintf (v2dev, sizeof v2dev, "%s", fields[2]);
          snprintf (v2.mount, sizeof v2.mount, "%s", fields[4]);
          v2.v2 = 1;
        }
      else if (strcmp (fstype, "cgroup") == 0 && super)
        {
          int dup = 0;
          for (size_t i = 0; i < n1; i++)
            dup |= strcmp (seen[i], fields[2]) == 0;
          if (dup || n1 >= CG_MAX_HIER - 1)
            continue;
          struct cg_hier *h = &v1[n1];
          memset (h, 0, sizeof *h);
          char *s2 = NULL;
          for (char *o = strtok_r (super, ",", &s2); o; o = strtok_r (NULL, ",", &s2))
            {
              int keep = strncmp (o, "name=", 5) == 0;
              for (size_t k = 0; k < sizeof v1_known / sizeof *v1_known; k++)
                if (strcmp (o, v1_known[k]) == 0)
                  keep = has_v1 = 1;
              if (keep && strlen (h->ctrls) + strlen (o) + 2 < sizeof h->ctrls)
                {
                  if (h->ctrls[0])
                    strcat (h->ctrls, ",");
                  strcat (h->ctrls, o);
                }
            }
          if (h->ctrls[0] == '\0')
            continue;
          snprintf (h->mount, sizeof h->mount, "%s", fields[4]);
          snprintf (seen[n1], sizeof seen[n1], "%s", fields[2]);
          n1++;
        }
    }
  free (line);
  fclose (f);
  cg->n = 0;
  if (has_v1)
    {
      memcpy (cg->h, v1, n1 * sizeof *v1);
      cg->n = n1;
      cg->layout = CG_V1;
      if (has_v2)
        {
          cg->h[cg->n++] = v2;
          cg->layout = CG_HYBRID;
        }
    }
  else if (has_v2)
    {
      cg->h[cg->n++] = v2;
      cg->layout = CG_V2;
    }
  else
    return nsrt_errf (err, 0, "cgroup: no cgroup filesystem is mounted (see /proc/self/mountinfo)");
  return 0;
}

/* the hierarchy holding controller `c` (v1), or the unified one on v2 */
static struct cg_hier *
hier_for (struct nsrt_cgroup *cg, const char *c)
{
  for (size_t i = 0; i < cg->n; i++)
    {
      if (cg->layout == CG_V2 && cg->h[i].v2)
        return &cg->h[i];
      if (!cg->h[i].v2 && has_token (cg->h[i].ctrls, c))
        return &cg->h[i];
    }
  return NULL;
}

static struct cg_hier *
hier_v2 (struct nsrt_cgroup *cg)
{
  for (size_t i = 0; i < cg->n; i++)
    if (cg->h[i].v2)
      return &cg->h[i];
  return NULL;
}

/* ---- files ---- */

static int
cg_write (const char *dir, const char *file, const char *value, struct nsrt_err *err)
{
  char p[CG_DIR_MAX + 64];
  snprintf (p, sizeof p, "%s/%s", dir, file);
  int fd = open (p, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return nsrt_errf (err, errno, "cgroup: open %s", p);
  ssize_t n = write (fd, value, strlen (value));
  int e = errno;
  close (fd);
  if (n < 0)
    return nsrt_errf (err, e, "cgroup: write \"%s\" to %s", value, p);
  return 0;
}

static int
cg_read (const char *dir, const char *file, char *buf, size_t size)
{
  char p[CG_DIR_MAX + 64];
  snprintf (p, sizeof p, "%s/%s", dir, file);
  int fd = open (p, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  size_t got = 0;
  ssize_t n;
  while (got + 1 < size && (n = read (fd, buf + got, size - 1 - got)) > 0)
    got += (size_t) n;
  close (fd);
  buf[got] = '\0';
  return 0;
}

static int
cg_exists (const char *dir, const char *file)
{
  char p[CG_DIR_MAX + 64];
  snprintf (p, sizeof p, "%s/%s", dir, file);
  return access (p, F_OK) == 0;
}

/* one number ("max" = UINT64_MAX); 0 when unreadable */
static uint64_t
cg_u64 (const char *dir, const char *file)
{
  char buf[64];
  if (cg_read (dir, file, buf, sizeof buf) < 0)
    return 0;
  if (strncmp (buf, "max", 3) == 0)
    return UINT64_MAX;
  return strtoull (buf, NULL, 10);
}

/* "key value" line of a flat-keyed file (memory.stat, cpu.stat, ...) */
static uint64_t
kv_get (const char *text, const char *key)
{
  size_t len = strlen (key);
  for (const char *p = text; p && *p; p = strchr (p, '\n') ? strchr (p, '\n') + 1 : NULL)
    if (strncmp (p, key, len) == 0 && p[len] == ' ')
      return strtoull (p + len + 1, NULL, 10);
  return 0;
}

/* ---- paths ---- */

static int
component_ok (const char *c, size_t len)
{
  if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
    return 0;
  return 1;
}

/* "a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice" (systemd.slice(5)) */
static int
slice_expand (const char *slice, char *out, size_t size)
{
  size_t len = strlen (slice);
  out[0] = '\0';
  if (strcmp (slice, "-.slice") == 0)
    return 0;
  if (len <= 6 || strcmp (slice + len - 6, ".slice") != 0 || strchr (slice, '/'))
    return -1;
  size_t base = len - 6;
  for (size_t i = 0; i <= base; i++)
    if (i == base || slice[i] == '-')
      {
        if (i == 0 || slice[i - 1] == '-')
          return -1;
        size_t used = strlen (out);
        if (snprintf (out + used, size - used, "/%.*s.slice", (int) i, slice) >= (int) (size - used))
          return -1;
      }
  return 0;
}

static int
path_resolve (const char *path, const char *id, int systemd, char *out, size_t size, struct nsrt_err *err)
{
  if (path == NULL || path[0] == '\0')
    {
      if (id == NULL || id[0] == '\0' || strchr (id, '/') || !component_ok (id, strlen (id)))
        return nsrt_errf (err, 0, "cgroup: container id `%s` cannot name a cgroup", id ? id : "");
      if ((size_t) snprintf (out, size, "/berth/%s", id) >= size)
        return nsrt_errf (err, 0, "cgroup: container id too long");
      return 0;
    }
  if (strchr (path, ':'))
    {
      if (!systemd)
        return nsrt_errf (err, 0,
                          "linux.cgroupsPath \"%s\" is a systemd path (slice:prefix:name); berth-runtime manages "
                          "cgroupfs paths unless --systemd-cgroup is given",
                          path);
      char slice[256], prefix[256], name[256];
      const char *c1 = strchr (path, ':'), *c2 = c1 ? strchr (c1 + 1, ':') : NULL;
      if (c2 == NULL || strchr (c2 + 1, ':') || (size_t) (c1 - path) >= sizeof slice
          || (size_t) (c2 - c1 - 1) >= sizeof prefix || strlen (c2 + 1) >= sizeof name)
        return nsrt_errf (err, 0, "linux.cgroupsPath \"%s\": not slice:prefix:name", path);
      snprintf (slice, sizeof slice, "%.*s", (int) (c1 - path), path);
      snprintf (prefix, sizeof prefix, "%.*s", (int) (c2 - c1 - 1), c1 + 1);
      snprintf (name, sizeof name, "%s", c2 + 1);
      if (slice[0] == '\0')
        strcpy (slice, "system.slice");
      char expanded[CG_PATH_MAX];
      if (slice_expand (slice, expanded, sizeof expanded) < 0)
        return nsrt_errf (err, 0, "linux.cgroupsPath \"%s\": `%s` is not a valid slice name", path, slice);
      if (name[0] == '\0' || strchr (name, '/') || strchr (prefix, '/') || !component_ok (name, strlen (name)))
        return nsrt_errf (err, 0, "linux.cgroupsPath \"%s\": bad prefix or name", path);
      int r = prefix[0] ? snprintf (out, size, "%s/%s-%s.scope", expanded, prefix, name)
                        : snprintf (out, size, "%s/%s.scope", expanded, name);
      if (r < 0 || (size_t) r >= size)
        return nsrt_errf (err, 0, "linux.cgroupsPath \"%s\": too long", path);
      return 0;
    }
  /* cgroupfs: normalise to "/a/b", refusing "." and ".." (the path must
   * stay inside the hierarchy) and the root itself */
  size_t w = 0;
  for (const char *p = path; *p;)
    {
      while (*p == '/')
        p++;
      if (*p == '\0')
        break;
      size_t len = strcspn (p, "/");
      if (!component_ok (p, len))
        return nsrt_errf (err, 0, "linux.cgroupsPath \"%s\": `.` and `..` are not allowed", path);
      if (w + len + 2 >= size)
        return nsrt_errf (err, 0, "linux.cgroupsPath \"%s\": too long", path);
      out[w++] = '/';
      memcpy (out + w, p, len);
      w += len;
      p += len;
    }
  out[w] = '\0';
  if (w == 0)
    return nsrt_errf (err, 0, "linux.cgroupsPath \"%s\": the root cgroup cannot be a container's", path);
  return 0;
}

/* ---- create / destroy ---- */

static void
v2_enable_controllers (const char *dir)
{
  char avail[512];
  if (cg_read (dir, "cgroup.controllers", avail, sizeof avail) < 0)
    return;
  static const char *const wanted[] = { "cpuset", "cpu", "io", "memory", "pids", "hugetlb" };
  for (size_t i = 0; i < sizeof wanted / sizeof *wanted; i++)
    {
      char tok[32];
      snprintf (tok, sizeof tok, " %s ", wanted[i]);
      char padded[520];
      snprintf (padded, sizeof padded, " %s ", avail);
      padded[strcspn (padded, "\n")] = ' ';
      if (strstr (padded, tok) == NULL)
        continue;
      char plus[32];
      snprintf (plus, sizeof plus, "+%s", wanted[i]);
      /* fails with EBUSY on an ancestor that holds processes itself (the
       * "no internal processes" rule): apply then names the missing file */
      cg_write (dir, "cgroup.subtree_control", plus, NULL);
    }
}

/* a new v1 cpuset is empty and takes no task: start from the parent's */
static int
cpuset_inherit (const char *dir, struct nsrt_err *err)
{
  char parent[CG_DIR_MAX], val[4096];
  snprintf (parent, sizeof parent, "%s", dir);
  char *slash = strrchr (parent, '/');
  if (slash == NULL)
    return 0;
  *slash = '\0';
  static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
  for (size_t i = 0; i < 2; i++)
    {
      if (cg_read (dir, files[i], val, sizeof val) == 0 && val[0] != '\n' && val[0] != '\0')
        continue;
      if (cg_read (parent, files[i], val, sizeof val) < 0)
        return nsrt_errf (err, errno, "cgroup: read %s/%s", parent, files[i]);
      val[strcspn (val, "\n")] = '\0';
      if (val[0] && cg_write (dir, files[i], val, err) < 0)
        return -1;
    }
  return 0;
}

static int
hier_mkdir (struct nsrt_cgroup *cg, struct cg_hier *h, struct nsrt_err *err)
{
  char dir[CG_DIR_MAX];
  size_t ncomp = 0;
  for (const char *p = cg->path; *p; p++)
    ncomp += *p == '/';
  for (int attempt = 0;; attempt++)
    {
      snprintf (dir, sizeof dir, "%s", h->mount);
      size_t k = 0;
      int failed = 0;
      for (const char *p = cg->path; *p && !failed;)
        {
          size_t len = strcspn (p + 1, "/") + 1;
          if (h->v2 && cg->layout == CG_V2)
            v2_enable_controllers (dir);
          strncat (dir, p, len);
          p += len;
          k++;
          if (mkdir (dir, 0755) == 0)
            {
              if (h->created == 0)
                h->created = (int) (ncomp - k + 1);
              if (!h->v2 && has_token (h->ctrls, "cpuset") && cpuset_inherit (dir, err) < 0)
                return -1;
            }
          else if (errno == ENOENT && attempt < 3)
            failed = 1; /* an ancestor went away under us (another destroy): again */
          else if (errno != EEXIST)
            return nsrt_errf (err, errno, "cgroup: mkdir %s", dir);
        }
      if (!failed)
        return 0;
      h->created = 0;
    }
}

static void
rmdir_children (const char *dir, int depth)
{
  DIR *d = opendir (dir);
  if (d == NULL || depth > 32)
    {
      if (d)
        closedir (d);
      return;
    }
  struct dirent *de;
  while ((de = readdir (d)))
    {
      if (de->d_type != DT_DIR || strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      char sub[CG_DIR_MAX + 256];
      if ((size_t) snprintf (sub, sizeof sub, "%s/%s", dir, de->d_name) >= sizeof sub)
        continue;
      rmdir_children (sub, depth + 1);
      for (int t = 0; t < 100 && rmdir (sub) < 0 && errno == EBUSY; t++)
        sleep_ms (10);
    }
  closedir (d);
}

/* Removes what this hierarchy created: the leaf (after its children) with
 * retries while exiting tasks still hold it, then the ancestors we made
 * unless someone else uses them now. */
static int
hier_rmdir (const struct nsrt_cgroup *cg, struct cg_hier *h, struct nsrt_err *err)
{
  if (h->created <= 0)
    return 0;
  char dir[CG_DIR_MAX];
  hier_dir (cg, h, dir, sizeof dir);
  rmdir_children (dir, 0);
  int r = -1;
  for (int t = 0; t < 200; t++)
    {
      r = rmdir (dir);
      if (r == 0 || errno == ENOENT || errno != EBUSY)
        break;
      sleep_ms (10);
    }
  if (r < 0 && errno != ENOENT)
    return nsrt_errf (err, errno, "cgroup: rmdir %s", dir);
  for (int k = 1; k < h->created; k++)
    {
      char *slash = strrchr (dir, '/');
      if (slash == NULL || (size_t) (slash - dir) <= strlen (h->mount))
        break;
      *slash = '\0';
      if (rmdir (dir) < 0)
        break; /* another container's cgroup is there now */
    }
  h->created = 0;
  return 0;
}

int
nsrt_cgroup_create (const char *path, const char *id, int systemd_cgroup, struct nsrt_cgroup **ret,
                    struct nsrt_err *err)
{
  struct nsrt_cgroup *cg = calloc (1, sizeof *cg);
  if (cg == NULL)
    return nsrt_errf (err, ENOMEM, "cgroup");
  if (path_resolve (path, id, systemd_cgroup, cg->path, sizeof cg->path, err) < 0 || mounts_detect (cg, err) < 0)
    {
      free (cg);
      return -1;
    }
  for (size_t i = 0; i < cg->n; i++)
    if (strlen (cg->h[i].mount) + strlen (cg->path) >= CG_PATH_MAX)
      {
        free (cg);
        return nsrt_errf (err, 0, "cgroup: path %s is too long", cg->path);
      }
  for (size_t i = 0; i < cg->n; i++)
    if (hier_mkdir (cg, &cg->h[i], err) < 0)
      {
        for (size_t k = 0; k <= i; k++)
          hier_rmdir (cg, &cg->h[k], NULL);
        free (cg);
        return -1;
      }
  *ret = cg;
  return 0;
}

int
nsrt_cgroup_enter (struct nsrt_cgroup *cg, pid_t pid, struct nsrt_err *err)
{
  char buf[32], dir[CG_PATH_MAX];
  snprintf (buf, sizeof buf, "%d", (int) pid);
  for (size_t i = 0; i < cg->n; i++)
    {
      hier_dir (cg, &cg->h[i], dir, sizeof dir);
      if (cg_write (dir, "cgroup.procs", buf, err) < 0)
        return -1;
    }
  return 0;
}

/* ---- pids ---- */

static int
pids_collect (const char *dir, int depth, pid_t **arr, size_t *n, size_t *cap)
{
  char p[CG_DIR_MAX + 256];
  snprintf (p, sizeof p, "%s/cgroup.procs", dir);
  FILE *f = fopen (p, "re");
  if (f == NULL)
    return depth == 0 ? -1 : 0; /* a child cgroup may vanish meanwhile */
  long v;
  while (fscanf (f, "%ld", &v) == 1)
    {
      if (*n == *cap)
        {
          size_t nc = *cap ? *cap * 2 : 64;
          pid_t *na = realloc (*arr, nc * sizeof *na);
          if (na == NULL)
            {
              fclose (f);
              errno = ENOMEM;
              return -1;
            }
          *arr = na;
          *cap = nc;
        }
      (*arr)[(*n)++] = (pid_t) v;
    }
  fclose (f);
  if (depth >= 32)
    return 0;
  DIR *d = opendir (dir);
  if (d == NULL)
    return 0;
  struct dirent *de;
  int r = 0;
  while (r == 0 && (de = readdir (d)))
    {
      if (de->d_type != DT_DIR || strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      if ((size_t) snprintf (p, sizeof p, "%s/%s", dir, de->d_name) < sizeof p)
        r = pids_collect (p, depth + 1, arr, n, cap);
    }
  closedir (d);
  return r;
}

/* where to list processes: pids/freezer/memory v1 hierarchies hold every
 * task we placed; else the unified one */
static struct cg_hier *
hier_for_pids (struct nsrt_cgroup *cg)
{
  static const char *const pref[] = { "pids", "freezer", "memory", "cpu" };
  if (cg->layout != CG_V2)
    for (size_t i = 0; i < sizeof pref / sizeof *pref; i++)
      {
        struct cg_hier *h = hier_for (cg, pref[i]);
        if (h)
          return h;
      }
  struct cg_hier *h = hier_v2 (cg);
  return h ? h : &cg->h[0];
}

int
nsrt_cgroup_pids (struct nsrt_cgroup *cg, pid_t **ret, size_t *n, struct nsrt_err *err)
{
  char dir[CG_DIR_MAX];
  hier_dir (cg, hier_for_pids (cg), dir, sizeof dir);
  pid_t *arr = NULL;
  size_t cap = 0;
  *n = 0;
  *ret = NULL;
  if (pids_collect (dir, 0, &arr, n, &cap) < 0)
    {
      int e = errno;
      free (arr);
      *n = 0;
      return nsrt_errf (err, e, "cgroup: list the processes of %s", dir);
    }
  *ret = arr;
  return 0;
}

/* ---- freeze ---- */

static int
wait_for (const char *dir, const char *file, const char *want, struct nsrt_err *err)
{
  char buf[512];
  for (int t = 0; t < 500; t++)
    {
      if (cg_read (dir, file, buf, sizeof buf) < 0)
        return nsrt_errf (err, errno, "cgroup: read %s/%s", dir, file);
      if (strstr (buf, want))
        return 0;
      sleep_ms (t < 10 ? 1 : 10);
    }
  return nsrt_errf (err, ETIMEDOUT, "cgroup: %s/%s never showed \"%s\"", dir, file, want);
}

int
nsrt_cgroup_freeze (struct nsrt_cgroup *cg, int frozen, struct nsrt_err *err)
{
  char dir[CG_DIR_MAX];
  struct cg_hier *h = cg->layout == CG_V2 ? NULL : hier_for (cg, "freezer");
  if (h)
    {
      hier_dir (cg, h, dir, sizeof dir);
      if (cg_write (dir, "freezer.state", frozen ? "FROZEN" : "THAWED", err) < 0)
        return -1;
      return wait_for (dir, "freezer.state", frozen ? "FROZEN" : "THAWED", err);
    }
  h = hier_v2 (cg);
  if (h == NULL)
    return nsrt_errf (err, 0, "cgroup: no freezer (neither the v1 freezer controller nor cgroup2 is mounted)");
  hier_dir (cg, h, dir, sizeof dir);
  if (cg_write (dir, "cgroup.freeze", frozen ? "1" : "0", err) < 0)
    return -1;
  return wait_for (dir, "cgroup.events", frozen ? "frozen 1" : "frozen 0", err);
}

/* ---- resources ---- */

/* integer field: *has = 0 when absent or null; wrong types are errors */
static int
res_int (json_object *o, const char *key, int64_t *ret, int *has, const char *where, struct nsrt_err *err)
{
  json_object *v;
  *has = 0;
  if (o == NULL || !json_object_object_get_ex (o, key, &v) || v == NULL)
    return 0;
  if (!json_object_is_type (v, json_type_int))
    return nsrt_errf (err, 0, "linux.resources.%s.%s: not an integer", where, key);
  *ret = json_object_get_int64 (v);
  if (*ret == INT64_MAX && json_object_get_uint64 (v) > (uint64_t) INT64_MAX)
    return nsrt_errf (err, 0, "linux.resources.%s.%s: too large", where, key);
  *has = 1;
  return 0;
}

static int
res_uint (json_object *o, const char *key, int64_t *ret, int *has, const char *where, struct nsrt_err *err)
{
  if (res_int (o, key, ret, has, where, err) < 0)
    return -1;
  if (*has && *ret < 0)
    return nsrt_errf (err, 0, "linux.resources.%s.%s: negative", where, key);
  return 0;
}

static int
res_str (json_object *o, const char *key, const char **ret, const char *where, struct nsrt_err *err)
{
  json_object *v;
  *ret = NULL;
  if (o == NULL || !json_object_object_get_ex (o, key, &v) || v == NULL)
    return 0;
  if (!json_object_is_type (v, json_type_string))
    return nsrt_errf (err, 0, "linux.resources.%s.%s: not a string", where, key);
  *ret = json_object_get_string (v);
  if (strchr (*ret, '\n'))
    return nsrt_errf (err, 0, "linux.resources.%s.%s: contains a newline", where, key);
  return 0;
}

static json_object *
res_obj (json_object *res, const char *key, struct nsrt_err *err, int *bad)
{
  json_object *v;
  if (!json_object_object_get_ex (res, key, &v) || v == NULL)
    return NULL;
  if (!json_object_is_type (v, json_type_object))
    {
      nsrt_errf (err, 0, "linux.resources.%s: not an object", key);
      *bad = 1;
      return NULL;
    }
  return v;
}

static struct cg_hier *
need_hier (struct nsrt_cgroup *cg, const char *ctrl, const char *what, char *dir, struct nsrt_err *err)
{
  struct cg_hier *h = hier_for (cg, ctrl);
  if (h == NULL)
    {
      nsrt_errf (err, 0, "linux.resources.%s: the %s cgroup controller is not mounted", what, ctrl);
      return NULL;
    }
  hier_dir (cg, h, dir, CG_DIR_MAX);
  if (h->v2)
    {
      /* cgroup2: the controller must be enabled in the parent's
       * subtree_control (create does it where the kernel lets it) */
      char avail[512], tok[32], padded[520];
      if (cg_read (dir, "cgroup.controllers", avail, sizeof avail) < 0)
        {
          nsrt_errf (err, errno, "linux.resources.%s: read %s/cgroup.controllers", what, dir);
          return NULL;
        }
      avail[strcspn (avail, "\n")] = '\0';
      snprintf (padded, sizeof padded, " %s ", avail);
      snprintf (tok, sizeof tok, " %s ", ctrl);
      if (strstr (padded, tok) == NULL)
        {
          nsrt_errf (err, 0,
                     "linux.resources.%s: the %s controller is not enabled for %s (it has: %s); enable it in the "
                     "parent's cgroup.subtree_control",
                     what, ctrl, dir, avail[0] ? avail : "none");
          return NULL;
        }
    }
  return h;
}

static int
write_i64 (const char *dir, const char *file, int64_t v, struct nsrt_err *err)
{
  char buf[32];
  snprintf (buf, sizeof buf, "%" PRId64, v);
  return cg_write (dir, file, buf, err);
}

/* "-1" and values the kernel calls unlimited -> "max" (v2) */
static void
v2_value (int64_t v, char *buf, size_t size)
{
  if (v < 0)
    snprintf (buf, size, "max");
  else
    snprintf (buf, size, "%" PRId64, v);
}

static int
mem_hint (int r, const char *file, struct nsrt_err *err)
{
  /* the kernel says EBUSY when the container already uses more */
  if (r < 0 && err && strstr (err->msg, "Device or resource busy"))
    {
      size_t len = strlen (err->msg);
      snprintf (err->msg + len, sizeof err->msg - len, " (%s below what the cgroup already uses?)", file);
    }
  return r;
}

static int
apply_memory (struct nsrt_cgroup *cg, json_object *m, struct nsrt_err *err)
{
  int64_t limit = 0, swap = 0, resv = 0, swappiness = 0, v;
  int hl, hs, hr, hw, hd, has;
  if (res_int (m, "limit", &limit, &hl, "memory", err) < 0 || res_int (m, "swap", &swap, &hs, "memory", err) < 0
      || res_int (m, "reservation", &resv, &hr, "memory", err) < 0
      || res_uint (m, "swappiness", &swappiness, &hw, "memory", err) < 0
      || res_int (m, "kernel", &v, &has, "memory", err) < 0 || res_int (m, "kernelTCP", &v, &has, "memory", err) < 0)
    return -1;
  json_object *dis = NULL;
  hd = json_object_object_get_ex (m, "disableOOMKiller", &dis) && dis != NULL;
  if (hd && !json_object_is_type (dis, json_type_boolean))
    return nsrt_errf (err, 0, "linux.resources.memory.disableOOMKiller: not a boolean");
  /* 0 means "not set" for the limits, as in runc; -1 means unlimited */
  hl = hl && limit != 0;
  hs = hs && swap != 0;
  hr = hr && resv != 0;
  if ((hl && limit < -1) || (hs && swap < -1) || (hr && resv < -1))
    return nsrt_errf (err, 0, "linux.resources.memory: a limit below -1");
  if (hw && swappiness > 100)
    return nsrt_errf (err, 0, "linux.resources.memory.swappiness: %" PRId64 " is above 100", swappiness);
  if (!hl && !hs && !hr && !hw && !(hd && json_object_get_boolean (dis)))
    return 0;
  char dir[CG_DIR_MAX];
  if (need_hier (cg, "memory", "memory", dir, err) == NULL)
    return -1;
  if (cg->layout != CG_V2)
    {
      int memsw = cg_exists (dir, "memory.memsw.limit_in_bytes");
      if (hl)
        {
          int r = write_i64 (dir, "memory.limit_in_bytes", limit, err);
          if (r < 0 && hs && memsw)
            {
              /* raising both: memsw must grow first (limit <= memsw) */
              struct nsrt_err first = *err;
              r = write_i64 (dir, "memory.memsw.limit_in_bytes", swap, err) == 0
                      ? write_i64 (dir, "memory.limit_in_bytes", limit, err)
                      : -1;
              if (r < 0)
                *err = first;
              else
                hs = 0;
            }
          if (mem_hint (r, "memory.limit_in_bytes", err) < 0)
            return -1;
        }
      if (hs && memsw && mem_hint (write_i64 (dir, "memory.memsw.limit_in_bytes", swap, err), "memory+swap", err) < 0)
        return -1;
      if (hr && write_i64 (dir, "memory.soft_limit_in_bytes", resv, err) < 0)
        return -1;
      if (hw && write_i64 (dir, "memory.swappiness", swappiness, err) < 0)
        return -1;
      if (hd && json_object_get_boolean (dis) && cg_write (dir, "memory.oom_control", "1", err) < 0)
        return -1;
      return 0;
    }
  char buf[32];
  if (hl)
    {
      v2_value (limit, buf, sizeof buf);
      if (mem_hint (cg_write (dir, "memory.max", buf, err), "memory.max", err) < 0)
        return -1;
    }
  if (hs)
    {
      /* OCI's swap is memory+swap; cgroup2's swap.max is swap alone */
      if (swap == -1)
        snprintf (buf, sizeof buf, "max");
      else if (!hl || limit == -1)
        return nsrt_errf (err, 0, "linux.resources.memory.swap: a swap limit needs a memory limit");
      else if (swap < limit)
        return nsrt_errf (err, 0,
                          "linux.resources.memory.swap: memory+swap %" PRId64 " is below the memory limit %" PRId64,
                          swap, limit);
      else
        snprintf (buf, sizeof buf, "%" PRId64, swap - limit);
      if (cg_exists (dir, "memory.swap.max") && cg_write (dir, "memory.swap.max", buf, err) < 0)
        return -1;
    }
  if (hr)
    {
      v2_value (resv, buf, sizeof buf);
      if (cg_write (dir, "memory.low", buf, err) < 0)
        return -1;
    }
  if (hd && json_object_get_boolean (dis))
    return nsrt_errf (err, 0, "linux.resources.memory.disableOOMKiller: not available on cgroup v2");
  return 0;
}

static int
apply_cpu (struct nsrt_cgroup *cg, json_object *c, struct nsrt_err *err)
{
  int64_t shares = 0, quota = 0, period = 0, rt_rt = 0, rt_per = 0, burst = 0;
  int hsh, hq, hp, hrr, hrp, hb;
  const char *cpus, *mems;
  if (res_uint (c, "shares", &shares, &hsh, "cpu", err) < 0 || res_int (c, "quota", &quota, &hq, "cpu", err) < 0
      || res_uint (c, "period", &period, &hp, "cpu", err) < 0
      || res_int (c, "realtimeRuntime", &rt_rt, &hrr, "cpu", err) < 0
      || res_uint (c, "realtimePeriod", &rt_per, &hrp, "cpu", err) < 0
      || res_uint (c, "burst", &burst, &hb, "cpu", err) < 0 || res_str (c, "cpus", &cpus, "cpu", err) < 0
      || res_str (c, "mems", &mems, "cpu", err) < 0)
    return -1;
  hsh = hsh && shares != 0;
  hq = hq && quota != 0;
  hp = hp && period != 0;
  hrr = hrr && rt_rt != 0;
  hrp = hrp && rt_per != 0;
  char dir[CG_DIR_MAX];
  if (hsh || hq || hp || hrr || hrp || hb)
    {
      if (need_hier (cg, "cpu", "cpu", dir, err) == NULL)
        return -1;
      if (cg->layout != CG_V2)
        {
          if (hsh && write_i64 (dir, "cpu.shares", shares, err) < 0)
            return -1;
          if (hp && write_i64 (dir, "cpu.cfs_period_us", period, err) < 0)
            return -1;
          if (hq && write_i64 (dir, "cpu.cfs_quota_us", quota < 0 ? -1 : quota, err) < 0)
            return -1;
          if (hb && write_i64 (dir, "cpu.cfs_burst_us", burst, err) < 0)
            return -1;
          if (hrp && write_i64 (dir, "cpu.rt_period_us", rt_per, err) < 0)
            return -1;
          if (hrr && write_i64 (dir, "cpu.rt_runtime_us", rt_rt, err) < 0)
            return -1;
        }
      else
        {
          if (hrr || hrp)
            return nsrt_errf (err, 0, "linux.resources.cpu.realtime*: not available on cgroup v2");
          if (hsh)
            {
              /* cgroup v1 shares [2, 262144] -> v2 weight [1, 10000], the
               * linear map runc and crun document */
              if (shares < 2)
                shares = 2;
              if (shares > 262144)
                shares = 262144;
              if (write_i64 (dir, "cpu.weight", 1 + ((shares - 2) * 9999) / 262142, err) < 0)
                return -1;
            }
          if (hq || hp)
            {
              char buf[64];
              if (hq && quota > 0)
                snprintf (buf, sizeof buf, "%" PRId64, quota);
              else
                snprintf (buf, sizeof buf, "max");
              if (hp)
                snprintf (buf + strlen (buf), sizeof buf - strlen (buf), " %" PRId64, period);
              if (cg_write (dir, "cpu.max", buf, err) < 0)
                return -1;
            }
          if (hb && write_i64 (dir, "cpu.max.burst", burst, err) < 0)
            return -1;
        }
    }
  if ((cpus && cpus[0]) || (mems && mems[0]))
    {
      if (need_hier (cg, "cpuset", "cpu.cpus", dir, err) == NULL)
        return -1;
      if (cpus && cpus[0] && cg_write (dir, "cpuset.cpus", cpus, err) < 0)
        return -1;
      if (mems && mems[0] && cg_write (dir, "cpuset.mems", mems, err) < 0)
        return -1;
    }
  return 0;
}

static int
apply_pids (struct nsrt_cgroup *cg, json_object *p, struct nsrt_err *err)
{
  int64_t limit;
  int has;
  if (res_int (p, "limit", &limit, &has, "pids", err) < 0)
    return -1;
  if (!has)
    return 0;
  char dir[CG_DIR_MAX], buf[32];
  if (need_hier (cg, "pids", "pids", dir, err) == NULL)
    return -1;
  v2_value (limit > 0 ? limit : -1, buf, sizeof buf);
  return cg_write (dir, "pids.max", buf, err);
}

/* blockIO's device lists: "<major>:<minor> <value>" lines */
static int
blkio_devices (json_object *b, const char *key, const char *valkey, const char *dir, const char *file,
               const char *v2key, struct nsrt_err *err)
{
  json_object *a;
  if (!json_object_object_get_ex (b, key, &a) || a == NULL)
    return 0;
  if (!json_object_is_type (a, json_type_array))
    return nsrt_errf (err, 0, "linux.resources.blockIO.%s: not an array", key);
  for (size_t i = 0; i < json_object_array_length (a); i++)
    {
      json_object *e = json_object_array_get_idx (a, i);
      char where[64];
      snprintf (where, sizeof where, "blockIO.%s[%zu]", key, i);
      if (!json_object_is_type (e, json_type_object))
        return nsrt_errf (err, 0, "linux.resources.%s: not an object", where);
      int64_t maj, min, val;
      int h1, h2, h3;
      if (res_uint (e, "major", &maj, &h1, where, err) < 0 || res_uint (e, "minor", &min, &h2, where, err) < 0
          || res_uint (e, valkey, &val, &h3, where, err) < 0)
        return -1;
      if (!h1 || !h2)
        return nsrt_errf (err, 0, "linux.resources.%s: needs major and minor", where);
      if (!h3)
        continue;
      char buf[96];
      if (v2key && strcmp (v2key, "weight") == 0)
        {
          /* io.weight is 1..10000, blkio's weight 10..1000 */
          if (val < 10 || val > 1000)
            return nsrt_errf (err, 0, "linux.resources.%s.weight: %" PRId64 " is outside 10..1000", where, val);
          snprintf (buf, sizeof buf, "%" PRId64 ":%" PRId64 " %" PRId64, maj, min, 1 + (val - 10) * 9999 / 990);
        }
      else if (v2key) /* io.max: "8:0 rbps=N" */
        snprintf (buf, sizeof buf, "%" PRId64 ":%" PRId64 " %s=%" PRId64, maj, min, v2key, val);
      else
        snprintf (buf, sizeof buf, "%" PRId64 ":%" PRId64 " %" PRId64, maj, min, val);
      if (cg_write (dir, file, buf, err) < 0)
        return -1;
    }
  return 0;
}

static int
apply_blkio (struct nsrt_cgroup *cg, json_object *b, struct nsrt_err *err)
{
  int64_t weight = 0, leaf = 0;
  int hw, hl;
  if (res_uint (b, "weight", &weight, &hw, "blockIO", err) < 0
      || res_uint (b, "leafWeight", &leaf, &hl, "blockIO", err) < 0)
    return -1;
  hw = hw && weight != 0;
  hl = hl && leaf != 0;
  static const char *const lists[] = { "weightDevice", "throttleReadBpsDevice", "throttleWriteBpsDevice",
                                       "throttleReadIOPSDevice", "throttleWriteIOPSDevice" };
  int any = hw || hl;
  for (size_t i = 0; i < 5; i++)
    {
      json_object *a;
      if (json_object_object_get_ex (b, lists[i], &a) && a && json_object_is_type (a, json_type_array)
          && json_object_array_length (a) > 0)
        any = 1;
    }
  if (!any)
    return 0;
  char dir[CG_DIR_MAX];
  if (cg->layout != CG_V2)
    {
      if (need_hier (cg, "blkio", "blockIO", dir, err) == NULL)
        return -1;
      /* CFQ is gone from current kernels: BFQ's file stands in */
      const char *wfile = cg_exists (dir, "blkio.weight") ? "blkio.weight" : "blkio.bfq.weight";
      if (hw && !cg_exists (dir, wfile))
        return nsrt_errf (err, 0, "linux.resources.blockIO.weight: this kernel has neither blkio.weight nor "
                                  "blkio.bfq.weight (no CFQ/BFQ scheduler)");
      if (hw && write_i64 (dir, wfile, weight, err) < 0)
        return -1;
      if (hl && cg_exists (dir, "blkio.leaf_weight") && write_i64 (dir, "blkio.leaf_weight", leaf, err) < 0)
        return -1;
      const char *wdev = cg_exists (dir, "blkio.weight_device") ? "blkio.weight_device" : "blkio.bfq.weight_device";
      return blkio_devices (b, "weightDevice", "weight", dir, wdev, NULL, err) < 0
                     || blkio_devices (b, "throttleReadBpsDevice", "rate", dir, "blkio.throttle.read_bps_device", NULL,
                                       err) < 0
                     || blkio_devices (b, "throttleWriteBpsDevice", "rate", dir, "blkio.throttle.write_bps_device",
                                       NULL, err) < 0
                     || blkio_devices (b, "throttleReadIOPSDevice", "rate", dir, "blkio.throttle.read_iops_device",
                                       NULL, err) < 0
                     || blkio_devices (b, "throttleWriteIOPSDevice", "rate", dir, "blkio.throttle.write_iops_device",
                                       NULL, err) < 0
                 ? -1
                 : 0;
    }
  if (need_hier (cg, "io", "blockIO", dir, err) == NULL)
    return -1;
  if (hw)
    {
      if (weight < 10 || weight > 1000)
        return nsrt_errf (err, 0, "linux.resources.blockIO.weight: %" PRId64 " is outside 10..1000", weight);
      if (cg_exists (dir, "io.bfq.weight"))
        {
          if (write_i64 (dir, "io.bfq.weight", weight, err) < 0)
            return -1;
        }
      else
        {
          char buf[48];
          snprintf (buf, sizeof buf, "default %" PRId64, 1 + (weight - 10) * 9999 / 990);
          if (cg_write (dir, "io.weight", buf, err) < 0)
            return -1;
        }
    }
  return blkio_devices (b, "weightDevice", "weight", dir, "io.weight", "weight", err) < 0
                 || blkio_devices (b, "throttleReadBpsDevice", "rate", dir, "io.max", "rbps", err) < 0
                 || blkio_devices (b, "throttleWriteBpsDevice", "rate", dir, "io.max", "wbps", err) < 0
                 || blkio_devices (b, "throttleReadIOPSDevice", "rate", dir, "io.max", "riops", err) < 0
                 || blkio_devices (b, "throttleWriteIOPSDevice", "rate", dir, "io.max", "wiops", err) < 0
             ? -1
             : 0;
}

/* What runc always allows after the spec's rules (OCI runtime spec,
 * "Default Devices": the runtime supplies them, so the container must be
 * able to use them): mknod of any device, null, zero, full, random,
 * urandom, tty, console, ptmx and the pts slaves. */
static const char *const default_allowed[] = {
  "c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
  "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",
};

/* linux.resources.devices: v1's devices.allow / devices.deny, in order,
 * then the default devices */
static int
apply_devices (struct nsrt_cgroup *cg, json_object *a, struct nsrt_err *err)
{
  if (!json_object_is_type (a, json_type_array))
    return nsrt_errf (err, 0, "linux.resources.devices: not an array");
  size_t n = json_object_array_length (a);
  /* validate everything before writing anything */
  char (*lines)[64] = calloc (n ? n : 1, sizeof *lines);
  int *allow = calloc (n ? n : 1, sizeof *allow);
  int r = 0;
  if (lines == NULL || allow == NULL)
    r = nsrt_errf (err, ENOMEM, "linux.resources.devices");
  for (size_t i = 0; r == 0 && i < n; i++)
    {
      json_object *e = json_object_array_get_idx (a, i), *v;
      char where[40];
      snprintf (where, sizeof where, "devices[%zu]", i);
      if (!json_object_is_type (e, json_type_object))
        {
          r = nsrt_errf (err, 0, "linux.resources.%s: not an object", where);
          break;
        }
      if (!json_object_object_get_ex (e, "allow", &v) || !json_object_is_type (v, json_type_boolean))
        {
          r = nsrt_errf (err, 0, "linux.resources.%s.allow: missing or not a boolean", where);
          break;
        }
      allow[i] = json_object_get_boolean (v);
      const char *type = NULL, *access = NULL;
      int64_t maj = -1, min = -1;
      int hmaj, hmin;
      if (res_str (e, "type", &type, where, err) < 0 || res_str (e, "access", &access, where, err) < 0
          || res_int (e, "major", &maj, &hmaj, where, err) < 0 || res_int (e, "minor", &min, &hmin, where, err) < 0)
        {
          r = -1;
          break;
        }
      if (type == NULL || type[0] == '\0')
        type = "a";
      if (access == NULL || access[0] == '\0')
        access = "rwm";
      if (strcmp (type, "a") && strcmp (type, "b") && strcmp (type, "c"))
        {
          r = nsrt_errf (err, 0, "linux.resources.%s.type: `%s` is not a, b or c", where, type);
          break;
        }
      if (strspn (access, "rwm") != strlen (access) || strlen (access) > 3)
        {
          r = nsrt_errf (err, 0, "linux.resources.%s.access: `%s` is not made of r, w, m", where, access);
          break;
        }
      if ((hmaj && maj < -1) || (hmin && min < -1) || maj > 0xfffffff || min > 0xfffffff)
        {
          r = nsrt_errf (err, 0, "linux.resources.%s: bad major/minor", where);
          break;
        }
      char smaj[24] = "*", smin[24] = "*";
      if (hmaj && maj >= 0)
        snprintf (smaj, sizeof smaj, "%" PRId64, maj);
      if (hmin && min >= 0)
        snprintf (smin, sizeof smin, "%" PRId64, min);
      if (type[0] == 'a')
        snprintf (lines[i], sizeof lines[i], "a");
      else
        snprintf (lines[i], sizeof lines[i], "%s %s:%s %s", type, smaj, smin, access);
    }
  if (r == 0 && n > 0)
    {
      char dir[CG_DIR_MAX];
      struct cg_hier *h = cg->layout == CG_V2 ? NULL : hier_for (cg, "devices");
      /* cgroup v2 controls devices with an eBPF program only: not done
       * here, the container sees what its /dev holds (runc attaches BPF) */
      if (h)
        {
          hier_dir (cg, h, dir, sizeof dir);
          for (size_t i = 0; r == 0 && i < n; i++)
            r = cg_write (dir, allow[i] ? "devices.allow" : "devices.deny", lines[i], err);
          for (size_t i = 0; r == 0 && i < sizeof default_allowed / sizeof *default_allowed; i++)
            r = cg_write (dir, "devices.allow", default_allowed[i], err);
        }
    }
  free (lines);
  free (allow);
  return r;
}

/* linux.resources.unified: cgroup2 file -> value, written as is */
static int
apply_unified (struct nsrt_cgroup *cg, json_object *u, struct nsrt_err *err)
{
  if (!json_object_is_type (u, json_type_object))
    return nsrt_errf (err, 0, "linux.resources.unified: not an object");
  if (json_object_object_length (u) == 0)
    return 0;
  struct cg_hier *h = hier_v2 (cg);
  if (cg->layout != CG_V2 || h == NULL)
    return nsrt_errf (err, 0, "linux.resources.unified: needs cgroup v2 (this host's layout is %s)",
                      layout_names[cg->layout]);
  char dir[CG_DIR_MAX];
  hier_dir (cg, h, dir, sizeof dir);
  json_object_object_foreach (u, key, val)
  {
    if (strchr (key, '/') || key[0] == '.' || key[0] == '\0' || strncmp (key, "cgroup.", 7) == 0)
      return nsrt_errf (err, 0, "linux.resources.unified: `%s` is not a controller file", key);
    if (!json_object_is_type (val, json_type_string))
      return nsrt_errf (err, 0, "linux.resources.unified.%s: not a string", key);
    if (cg_write (dir, key, json_object_get_string (val), err) < 0)
      return -1;
  }
  return 0;
}

int
nsrt_cgroup_apply (struct nsrt_cgroup *cg, json_object *res, struct nsrt_err *err)
{
  if (res == NULL)
    return 0;
  if (!json_object_is_type (res, json_type_object))
    return nsrt_errf (err, 0, "linux.resources: not an object");
  int bad = 0;
  json_object *o, *a;
  if ((o = res_obj (res, "memory", err, &bad)) && apply_memory (cg, o, err) < 0)
    return -1;
  if ((o = res_obj (res, "cpu", err, &bad)) && apply_cpu (cg, o, err) < 0)
    return -1;
  if ((o = res_obj (res, "pids", err, &bad)) && apply_pids (cg, o, err) < 0)
    return -1;
  if ((o = res_obj (res, "blockIO", err, &bad)) && apply_blkio (cg, o, err) < 0)
    return -1;
  if (bad)
    return -1;
  if (json_object_object_get_ex (res, "devices", &a) && a && apply_devices (cg, a, err) < 0)
    return -1;
  if (json_object_object_get_ex (res, "unified", &a) && a && apply_unified (cg, a, err) < 0)
    return -1;
  /* hugepageLimits, network (classID, priorities) and rdma are not
   * applied: no hugetlb/net_cls hierarchy is managed by berth-runtime */
  return 0;
}

/* ---- stats ---- */

static void
add_u64 (json_object *o, const char *k, uint64_t v)
{
  json_object_object_add (o, k, json_object_new_uint64 (v));
}

static json_object *
mem_entry (const char *dir, const char *prefix, int v2)
{
  json_object *e = json_object_new_object ();
  char f[96];
  if (!v2)
    {
      snprintf (f, sizeof f, "%s.limit_in_bytes", prefix);
      add_u64 (e, "limit", cg_u64 (dir, f));
      snprintf (f, sizeof f, "%s.usage_in_bytes", prefix);
      add_u64 (e, "usage", cg_u64 (dir, f));
      snprintf (f, sizeof f, "%s.max_usage_in_bytes", prefix);
      add_u64 (e, "max", cg_u64 (dir, f));
      snprintf (f, sizeof f, "%s.failcnt", prefix);
      add_u64 (e, "failcnt", cg_u64 (dir, f));
    }
  else
    {
      snprintf (f, sizeof f, "%s.max", prefix);
      add_u64 (e, "limit", cg_u64 (dir, f));
      snprintf (f, sizeof f, "%s.current", prefix);
      add_u64 (e, "usage", cg_u64 (dir, f));
      snprintf (f, sizeof f, "%s.peak", prefix);
      add_u64 (e, "max", cg_u64 (dir, f));
      add_u64 (e, "failcnt", 0);
    }
  return e;
}

static json_object *
stats_raw (const char *text)
{
  json_object *raw = json_object_new_object ();
  for (const char *p = text; p && *p;)
    {
      const char *sp = strchr (p, ' '), *nl = strchr (p, '\n');
      if (sp && (!nl || sp < nl) && sp - p < 128)
        {
          char key[128];
          snprintf (key, sizeof key, "%.*s", (int) (sp - p), p);
          add_u64 (raw, key, strtoull (sp + 1, NULL, 10));
        }
      p = nl ? nl + 1 : NULL;
    }
  return raw;
}

static json_object *
percpu_list (const char *dir, const char *file)
{
  char buf[8192];
  json_object *a = json_object_new_array ();
  if (cg_read (dir, file, buf, sizeof buf) == 0)
    {
      char *p = buf, *end;
      for (;;)
        {
          unsigned long long v = strtoull (p, &end, 10);
          if (end == p)
            break;
          json_object_array_add (a, json_object_new_uint64 (v));
          p = end;
        }
    }
  return a;
}

/* v1 blkio "8:0 Read 4096" lines -> [{major, minor, op, value}] */
static json_object *
blkio_v1_list (const char *dir, const char *file)
{
  char buf[16384];
  json_object *a = json_object_new_array ();
  if (cg_read (dir, file, buf, sizeof buf) < 0)
    return a;
  char *save = NULL;
  for (char *l = strtok_r (buf, "\n", &save); l; l = strtok_r (NULL, "\n", &save))
    {
      unsigned maj, min;
      char op[32];
      unsigned long long v;
      if (sscanf (l, "%u:%u %31s %llu", &maj, &min, op, &v) != 4)
        continue;
      json_object *e = json_object_new_object ();
      add_u64 (e, "major", maj);
      add_u64 (e, "minor", min);
      json_object_object_add (e, "op", json_object_new_string (op));
      add_u64 (e, "value", v);
      json_object_array_add (a, e);
    }
  return a;
}

/* v2 io.stat "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ..." */
static void
blkio_v2 (const char *dir, json_object *bytes, json_object *ios)
{
  char buf[16384];
  if (cg_read (dir, "io.stat", buf, sizeof buf) < 0)
    return;
  char *save = NULL;
  for (char *l = strtok_r (buf, "\n", &save); l; l = strtok_r (NULL, "\n", &save))
    {
      unsigned maj, min;
      if (sscanf (l, "%u:%u", &maj, &min) != 2)
        continue;
      static const struct
      {
        const char *key, *op;
        int bytes;
      } keys[] = { { "rbytes=", "Read", 1 }, { "wbytes=", "Write", 1 }, { "rios=", "Read", 0 }, { "wios=", "Write", 0 } };
      for (size_t k = 0; k < 4; k++)
        {
          char *p = strstr (l, keys[k].key);
          if (p == NULL)
            continue;
          json_object *e = json_object_new_object ();
          add_u64 (e, "major", maj);
          add_u64 (e, "minor", min);
          json_object_object_add (e, "op", json_object_new_string (keys[k].op));
          add_u64 (e, "value", strtoull (p + strlen (keys[k].key), NULL, 10));
          json_object_array_add (keys[k].bytes ? bytes : ios, e);
        }
    }
}

int
nsrt_cgroup_stats (struct nsrt_cgroup *cg, const char *id, json_object **ret, struct nsrt_err *err)
{
  (void) err;
  char dir[CG_DIR_MAX], buf[16384];
  int v2 = cg->layout == CG_V2;
  struct cg_hier *h;
  json_object *data = json_object_new_object ();

  /* cpu: usage in ns, throttling from cpu.stat */
  json_object *cpu = json_object_new_object (), *usage = json_object_new_object (),
              *thr = json_object_new_object ();
  if (v2 && (h = hier_v2 (cg)))
    {
      hier_dir (cg, h, dir, sizeof dir);
      if (cg_read (dir, "cpu.stat", buf, sizeof buf) == 0)
        {
          add_u64 (usage, "total", kv_get (buf, "usage_usec") * 1000);
          add_u64 (usage, "kernel", kv_get (buf, "system_usec") * 1000);
          add_u64 (usage, "user", kv_get (buf, "user_usec") * 1000);
          add_u64 (thr, "periods", kv_get (buf, "nr_periods"));
          add_u64 (thr, "throttled_periods", kv_get (buf, "nr_throttled"));
          add_u64 (thr, "throttled_time", kv_get (buf, "throttled_usec") * 1000);
        }
    }
  else
    {
      if ((h = hier_for (cg, "cpuacct")))
        {
          hier_dir (cg, h, dir, sizeof dir);
          add_u64 (usage, "total", cg_u64 (dir, "cpuacct.usage"));
          json_object_object_add (usage, "percpu", percpu_list (dir, "cpuacct.usage_percpu"));
          if (cg_exists (dir, "cpuacct.usage_percpu_sys"))
            {
              json_object_object_add (usage, "percpu_kernel", percpu_list (dir, "cpuacct.usage_percpu_sys"));
              json_object_object_add (usage, "percpu_user", percpu_list (dir, "cpuacct.usage_percpu_user"));
            }
          /* cpuacct.stat counts USER_HZ ticks */
          if (cg_read (dir, "cpuacct.stat", buf, sizeof buf) == 0)
            {
              long hz = sysconf (_SC_CLK_TCK);
              uint64_t ns = hz > 0 ? 1000000000ULL / (uint64_t) hz : 10000000ULL;
              add_u64 (usage, "kernel", kv_get (buf, "system") * ns);
              add_u64 (usage, "user", kv_get (buf, "user") * ns);
            }
        }
      if ((h = hier_for (cg, "cpu")))
        {
          hier_dir (cg, h, dir, sizeof dir);
          if (cg_read (dir, "cpu.stat", buf, sizeof buf) == 0)
            {
              add_u64 (thr, "periods", kv_get (buf, "nr_periods"));
              add_u64 (thr, "throttled_periods", kv_get (buf, "nr_throttled"));
              add_u64 (thr, "throttled_time", kv_get (buf, "throttled_time"));
            }
        }
    }
  json_object_object_add (cpu, "usage", usage);
  json_object_object_add (cpu, "throttling", thr);
  json_object_object_add (data, "cpu", cpu);

  json_object *mem = json_object_new_object ();
  if ((h = hier_for (cg, "memory")))
    {
      hier_dir (cg, h, dir, sizeof dir);
      json_object *raw = cg_read (dir, "memory.stat", buf, sizeof buf) == 0 ? stats_raw (buf) : json_object_new_object ();
      json_object *c = NULL;
      if (json_object_object_get_ex (raw, v2 ? "file" : "cache", &c))
        add_u64 (mem, "cache", json_object_get_uint64 (c));
      json_object_object_add (mem, "usage", mem_entry (dir, "memory", v2));
      if (!v2)
        {
          json_object_object_add (mem, "swap", mem_entry (dir, "memory.memsw", 0));
          json_object_object_add (mem, "kernel", mem_entry (dir, "memory.kmem", 0));
          json_object_object_add (mem, "kernelTCP", mem_entry (dir, "memory.kmem.tcp", 0));
        }
      else
        json_object_object_add (mem, "swap", mem_entry (dir, "memory.swap", 1));
      json_object_object_add (mem, "raw", raw);
    }
  json_object_object_add (data, "memory", mem);

  json_object *pids = json_object_new_object ();
  if ((h = hier_for (cg, "pids")))
    {
      hier_dir (cg, h, dir, sizeof dir);
      uint64_t lim = cg_u64 (dir, "pids.max");
      add_u64 (pids, "current", cg_u64 (dir, "pids.current"));
      add_u64 (pids, "limit", lim == UINT64_MAX ? 0 : lim);
    }
  json_object_object_add (data, "pids", pids);

  json_object *blk = json_object_new_object ();
  if (v2 && (h = hier_v2 (cg)))
    {
      hier_dir (cg, h, dir, sizeof dir);
      json_object *bytes = json_object_new_array (), *ios = json_object_new_array ();
      blkio_v2 (dir, bytes, ios);
      json_object_object_add (blk, "ioServiceBytesRecursive", bytes);
      json_object_object_add (blk, "ioServicedRecursive", ios);
    }
  else if ((h = hier_for (cg, "blkio")))
    {
      hier_dir (cg, h, dir, sizeof dir);
      int cfq = cg_exists (dir, "blkio.io_service_bytes_recursive");
      json_object_object_add (blk, "ioServiceBytesRecursive",
                              blkio_v1_list (dir, cfq ? "blkio.io_service_bytes_recursive"
                                                      : "blkio.throttle.io_service_bytes_recursive"));
      json_object_object_add (
          blk, "ioServicedRecursive",
          blkio_v1_list (dir, cfq ? "blkio.io_serviced_recursive" : "blkio.throttle.io_serviced_recursive"));
    }
  json_object_object_add (data, "blkio", blk);
  json_object_object_add (data, "hugetlb", json_object_new_object ());

  json_object *o = json_object_new_object ();
  json_object_object_add (o, "type", json_object_new_string ("stats"));
  json_object_object_add (o, "id", json_object_new_string (id ? id : ""));
  json_object_object_add (o, "data", data);
  *ret = o;
  return 0;
}

int
nsrt_cgroup_oom_count (struct nsrt_cgroup *cg, unsigned long *ret)
{
  char dir[CG_DIR_MAX], buf[4096];
  struct cg_hier *h = hier_for (cg, "memory");
  *ret = 0;
  if (h == NULL)
    return -1;
  hier_dir (cg, h, dir, sizeof dir);
  if (cg_read (dir, cg->layout == CG_V2 ? "memory.events" : "memory.oom_control", buf, sizeof buf) < 0)
    return -1;
  *ret = (unsigned long) kv_get (buf, "oom_kill");
  return 0;
}

/* ---- destroy ---- */

int
nsrt_cgroup_destroy (struct nsrt_cgroup *cg, struct nsrt_err *err)
{
  if (cg == NULL)
    return 0;
  int ours = 0;
  for (size_t i = 0; i < cg->n; i++)
    ours |= cg->h[i].created > 0;
  /* a cgroup we joined but did not make is someone else's: leave its
   * processes alone (and never kill the members of a shared parent) */
  if (ours)
    {
      char dir[CG_DIR_MAX];
      struct cg_hier *h2 = hier_v2 (cg);
      int killed = 0;
      if (h2)
        {
          hier_dir (cg, h2, dir, sizeof dir);
          killed = cg_exists (dir, "cgroup.kill") && cg_write (dir, "cgroup.kill", "1", NULL) == 0;
        }
      for (int t = 0; t < 300; t++)
        {
          pid_t *pids = NULL;
          size_t n = 0;
          if (nsrt_cgroup_pids (cg, &pids, &n, NULL) < 0 || n == 0)
            {
              free (pids);
              break;
            }
          if (!killed || t > 0)
            {
              /* v1: freeze so that nothing forks between listing and killing */
              int frozen = !killed && cg->layout != CG_V2 && hier_for (cg, "freezer")
                           && nsrt_cgroup_freeze (cg, 1, NULL) == 0;
              for (size_t i = 0; i < n; i++)
                kill (pids[i], SIGKILL);
              if (frozen)
                nsrt_cgroup_freeze (cg, 0, NULL);
            }
          free (pids);
          sleep_ms (t < 10 ? 1 : 10);
        }
    }
  int r = 0;
  for (size_t i = 0; i < cg->n; i++)
    if (hier_rmdir (cg, &cg->h[i], r < 0 ? NULL : err) < 0)
      r = -1;
  return r;
}

/* ---- state ---- */

json_object *
nsrt_cgroup_to_json (const struct nsrt_cgroup *cg)
{
  json_object *o = json_object_new_object (), *a = json_object_new_array ();
  json_object_object_add (o, "path", json_object_new_string (cg->path));
  json_object_object_add (o, "layout", json_object_new_string (layout_names[cg->layout]));
  for (size_t i = 0; i < cg->n; i++)
    {
      json_object *h = json_object_new_object ();
      json_object_object_add (h, "mount", json_object_new_string (cg->h[i].mount));
      json_object_object_add (h, "controllers", json_object_new_string (cg->h[i].ctrls));
      json_object_object_add (h, "v2", json_object_new_boolean (cg->h[i].v2));
      json_object_object_add (h, "created", json_object_new_int (cg->h[i].created));
      json_object_array_add (a, h);
    }
  json_object_object_add (o, "hierarchies", a);
  return o;
}

/* The state file is re-validated against today's mounts: a stored mount
 * that is no longer a cgroup hierarchy is an error, and the path must be
 * one create could have made. */
int
nsrt_cgroup_from_json (json_object *o, struct nsrt_cgroup **ret, struct nsrt_err *err)
{
  json_object *p, *a;
  if (!json_object_is_type (o, json_type_object) || !json_object_object_get_ex (o, "path", &p)
      || !json_object_is_type (p, json_type_string) || !json_object_object_get_ex (o, "hierarchies", &a)
      || !json_object_is_type (a, json_type_array))
    return nsrt_errf (err, 0, "state: cgroup: needs path and hierarchies");
  struct nsrt_cgroup *cg = calloc (1, sizeof *cg);
  if (cg == NULL)
    return nsrt_errf (err, ENOMEM, "state: cgroup");
  char norm[CG_PATH_MAX];
  if (path_resolve (json_object_get_string (p), NULL, 0, norm, sizeof norm, err) < 0
      || strcmp (norm, json_object_get_string (p)) != 0)
    {
      free (cg);
      return nsrt_errf (err, 0, "state: cgroup: path \"%s\" is not a cgroup path", json_object_get_string (p));
    }
  snprintf (cg->path, sizeof cg->path, "%s", norm);
  if (mounts_detect (cg, err) < 0)
    {
      free (cg);
      return -1;
    }
  for (size_t i = 0; i < json_object_array_length (a); i++)
    {
      json_object *h = json_object_array_get_idx (a, i), *m, *c;
      if (!json_object_is_type (h, json_type_object) || !json_object_object_get_ex (h, "mount", &m)
          || !json_object_is_type (m, json_type_string) || !json_object_object_get_ex (h, "created", &c)
          || !json_object_is_type (c, json_type_int))
        {
          free (cg);
          return nsrt_errf (err, 0, "state: cgroup.hierarchies[%zu]: needs mount and created", i);
        }
      size_t k;
      for (k = 0; k < cg->n; k++)
        if (strcmp (cg->h[k].mount, json_object_get_string (m)) == 0)
          break;
      if (k == cg->n)
        {
          free (cg);
          return nsrt_errf (err, 0, "state: cgroup: %s is no longer a cgroup mount", json_object_get_string (m));
        }
      int created = json_object_get_int (c), ncomp = 0;
      for (const char *q = cg->path; *q; q++)
        ncomp += *q == '/';
      if (created < 0 || created > ncomp)
        {
          free (cg);
          return nsrt_errf (err, 0, "state: cgroup.hierarchies[%zu].created: %d is out of range", i, created);
        }
      cg->h[k].created = created;
    }
  *ret = cg;
  return 0;
}

void
nsrt_cgroup_free (struct nsrt_cgroup *cg)
{
  free (cg);
}
