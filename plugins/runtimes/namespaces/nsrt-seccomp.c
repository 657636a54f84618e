/* berth-runtime: linux.seccomp (OCI runtime spec, config-linux.md#seccomp)
 * compiled with libseccomp.  The filter is built while the init still has
 * its files (libseccomp reads nothing at load time) and loaded last. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "nsrt-sec.h"

struct nsrt_seccomp
{
  scmp_filter_ctx ctx;  /* built by libseccomp, or NULL when bpf is set */
  unsigned char *bpf;   /* a compiled program (nsrt_seccomp_prepare_cached) */
  size_t bpf_len;       /* bytes, a multiple of sizeof (struct sock_filter) */
  unsigned int flags;   /* SECCOMP_FILTER_FLAG_* for seccomp(2) */
};

/* seccomp(2) gives a filter six arguments */
#define SECCOMP_MAX_ARGS 6

/* the value of `key` in o as a non-negative integer (uint64), or the
 * default when absent; *present says which */
static int
json_u64 (json_object *o, const char *key, uint64_t *ret, int *present, const char *where, struct nsrt_err *err)
{
  json_object *v;
  *present = 0;
  if (!json_object_object_get_ex (o, key, &v) || v == NULL)
    return 0;
  if (!json_object_is_type (v, json_type_int))
    return nsrt_errf (err, 0, "%s.%s: not an integer", where, key);
  if (json_object_get_int64 (v) < 0 && json_object_get_uint64 (v) == 0)
    return nsrt_errf (err, 0, "%s.%s: negative", where, key);
  *ret = json_object_get_uint64 (v);
  *present = 1;
  return 0;
}

/* An OCI action name -> libseccomp action.  errno_ret applies to ERRNO
 * and TRACE (EPERM when the spec gives none, as runc does). */
static int
action_parse (const char *name, uint32_t errno_ret, uint32_t *ret, const char *where, struct nsrt_err *err)
{
  if (strcmp (name, "SCMP_ACT_ALLOW") == 0)
    *ret = SCMP_ACT_ALLOW;
  else if (strcmp (name, "SCMP_ACT_ERRNO") == 0)
    *ret = SCMP_ACT_ERRNO (errno_ret);
  else if (strcmp (name, "SCMP_ACT_TRACE") == 0)
    *ret = SCMP_ACT_TRACE (errno_ret);
  else if (strcmp (name, "SCMP_ACT_KILL") == 0 || strcmp (name, "SCMP_ACT_KILL_THREAD") == 0)
    *ret = SCMP_ACT_KILL_THREAD;
  else if (strcmp (name, "SCMP_ACT_KILL_PROCESS") == 0)
    *ret = SCMP_ACT_KILL_PROCESS;
  else if (strcmp (name, "SCMP_ACT_TRAP") == 0)
    *ret = SCMP_ACT_TRAP;
  else if (strcmp (name, "SCMP_ACT_LOG") == 0)
    *ret = SCMP_ACT_LOG;
  else if (strcmp (name, "SCMP_ACT_NOTIFY") == 0)
    return nsrt_errf (err, 0, "%s: SCMP_ACT_NOTIFY is not supported by berth-runtime (no seccomp agent)", where);
  else
    return nsrt_errf (err, 0, "%s: unknown action `%s`", where, name);
  return 0;
}

static int
arch_add (scmp_filter_ctx ctx, const char *name, const char *where, struct nsrt_err *err)
{
  char lower[32];
  size_t len = strlen (name);
  if (len <= 10 || len - 10 >= sizeof lower || strncmp (name, "SCMP_ARCH_", 10) != 0)
    return nsrt_errf (err, 0, "%s: unknown architecture `%s`", where, name);
  for (size_t i = 10; i <= len; i++)
    lower[i - 10] = (char) tolower ((unsigned char) name[i]);
  uint32_t arch = seccomp_arch_resolve_name (lower);
  if (arch == 0)
    return nsrt_errf (err, 0, "%s: unknown architecture `%s`", where, name);
  int r = seccomp_arch_add (ctx, arch);
  if (r < 0 && r != -EEXIST)
    return nsrt_errf (err, -r, "%s: add architecture %s", where, name);
  return 0;
}

static int
flag_set (scmp_filter_ctx ctx, const char *name, const char *where, struct nsrt_err *err)
{
  enum scmp_filter_attr attr;
  if (strcmp (name, "SECCOMP_FILTER_FLAG_TSYNC") == 0)
    attr = SCMP_FLTATR_CTL_TSYNC;
  else if (strcmp (name, "SECCOMP_FILTER_FLAG_LOG") == 0)
    attr = SCMP_FLTATR_CTL_LOG;
  else if (strcmp (name, "SECCOMP_FILTER_FLAG_SPEC_ALLOW") == 0)
    attr = SCMP_FLTATR_CTL_SSB;
  else
    return nsrt_errf (err, 0, "%s: unknown flag `%s`", where, name);
  int r = seccomp_attr_set (ctx, attr, 1);
  if (r < 0)
    return nsrt_errf (err, -r, "%s: %s is not supported by this kernel or libseccomp", where, name);
  return 0;
}

static int
op_parse (const char *name, enum scmp_compare *ret)
{
  static const struct
  {
    const char *name;
    enum scmp_compare op;
  } ops[] = {
    { "SCMP_CMP_NE", SCMP_CMP_NE },
    { "SCMP_CMP_LT", SCMP_CMP_LT },
    { "SCMP_CMP_LE", SCMP_CMP_LE },
    { "SCMP_CMP_EQ", SCMP_CMP_EQ },
    { "SCMP_CMP_GE", SCMP_CMP_GE },
    { "SCMP_CMP_GT", SCMP_CMP_GT },
    { "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
  };
  for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
    if (strcmp (ops[i].name, name) == 0)
      {
        *ret = ops[i].op;
        return 0;
      }
  return -1;
}

/* syscalls[i].args -> comparisons; *n_ret of them */
static int
args_parse (json_object *args, struct scmp_arg_cmp *cmps, unsigned *n_ret, int *repeated, const char *where,
            struct nsrt_err *err)
{
  *n_ret = 0;
  *repeated = 0;
  if (args == NULL)
    return 0;
  if (!json_object_is_type (args, json_type_array))
    return nsrt_errf (err, 0, "%s.args: not an array", where);
  size_t n = json_object_array_length (args);
  if (n > SECCOMP_MAX_ARGS)
    return nsrt_errf (err, 0, "%s.args: %zu comparisons, at most %d", where, n, SECCOMP_MAX_ARGS);
  unsigned seen = 0;
  for (size_t i = 0; i < n; i++)
    {
      char w[160];
      snprintf (w, sizeof w, "%s.args[%zu]", where, i);
      json_object *a = json_object_array_get_idx (args, i), *op;
      if (!json_object_is_type (a, json_type_object))
        return nsrt_errf (err, 0, "%s: not an object", w);
      uint64_t index, value = 0, value2 = 0;
      int has_index, has_value, has_value2;
      if (json_u64 (a, "index", &index, &has_index, w, err) < 0 || json_u64 (a, "value", &value, &has_value, w, err) < 0
          || json_u64 (a, "valueTwo", &value2, &has_value2, w, err) < 0)
        return -1;
      if (!has_index)
        return nsrt_errf (err, 0, "%s.index: missing", w);
      if (index >= SECCOMP_MAX_ARGS)
        return nsrt_errf (err, 0, "%s.index: %llu is out of range (0-%d)", w, (unsigned long long) index,
                          SECCOMP_MAX_ARGS - 1);
      if (!json_object_object_get_ex (a, "op", &op) || !json_object_is_type (op, json_type_string))
        return nsrt_errf (err, 0, "%s.op: missing or not a string", w);
      enum scmp_compare c;
      if (op_parse (json_object_get_string (op), &c) < 0)
        return nsrt_errf (err, 0, "%s.op: unknown operator `%s`", w, json_object_get_string (op));
      /* MASKED_EQ: value is the mask, valueTwo the datum */
      cmps[i] = (struct scmp_arg_cmp) { .arg = (unsigned) index, .op = c, .datum_a = value, .datum_b = value2 };
      if (seen & (1u << index))
        *repeated = 1;
      seen |= 1u << index;
    }
  *n_ret = (unsigned) n;
  return 0;
}

static int
syscall_add (scmp_filter_ctx ctx, json_object *sc, uint32_t default_action, const char *where, struct nsrt_err *err)
{
  if (!json_object_is_type (sc, json_type_object))
    return nsrt_errf (err, 0, "%s: not an object", where);
  json_object *names, *act, *args = NULL;
  if (!json_object_object_get_ex (sc, "action", &act) || !json_object_is_type (act, json_type_string))
    return nsrt_errf (err, 0, "%s.action: missing or not a string", where);
  uint64_t errno_ret = EPERM;
  int has_errno;
  if (json_u64 (sc, "errnoRet", &errno_ret, &has_errno, where, err) < 0)
    return -1;
  if (!has_errno)
    errno_ret = EPERM;
  if (errno_ret > 4095)
    return nsrt_errf (err, 0, "%s.errnoRet: %llu is not an errno", where, (unsigned long long) errno_ret);
  uint32_t action;
  if (action_parse (json_object_get_string (act), (uint32_t) errno_ret, &action, where, err) < 0)
    return -1;
  json_object_object_get_ex (sc, "args", &args);
  struct scmp_arg_cmp cmps[SECCOMP_MAX_ARGS];
  unsigned ncmp;
  int repeated;
  if (args_parse (args, cmps, &ncmp, &repeated, where, err) < 0)
    return -1;
  if (!json_object_object_get_ex (sc, "names", &names) || !json_object_is_type (names, json_type_array))
    return nsrt_errf (err, 0, "%s.names: missing or not an array", where);
  for (size_t i = 0; i < json_object_array_length (names); i++)
    {
      json_object *nm = json_object_array_get_idx (names, i);
      if (!json_object_is_type (nm, json_type_string))
        return nsrt_errf (err, 0, "%s.names[%zu]: not a string", where, i);
      const char *name = json_object_get_string (nm);
      /* the default action already covers it; libseccomp refuses such a rule */
      if (action == default_action)
        continue;
      int nr = seccomp_syscall_resolve_name (name);
      if (nr == __NR_SCMP_ERROR)
        continue; /* unknown to libseccomp on every arch: skipped, as runc does */
      int r;
      if (!repeated)
        r = seccomp_rule_add_array (ctx, action, nr, ncmp, cmps);
      else
        {
          /* libseccomp ANDs comparisons and refuses two on one argument:
           * one rule per comparison instead (an OR), as runc does */
          r = 0;
          for (unsigned k = 0; k < ncmp && r == 0; k++)
            r = seccomp_rule_add_array (ctx, action, nr, 1, &cmps[k]);
        }
      if (r < 0)
        return nsrt_errf (err, -r, "%s: add the rule for `%s`", where, name);
    }
  return 0;
}

int
nsrt_seccomp_prepare (json_object *sec, struct nsrt_seccomp **ret, struct nsrt_err *err)
{
  *ret = NULL;
  if (sec == NULL)
    return 0;
  if (!json_object_is_type (sec, json_type_object))
    return nsrt_errf (err, 0, "linux.seccomp: not an object");
  json_object *v;
  if (json_object_object_get_ex (sec, "listenerPath", &v) && v != NULL && json_object_get_string_len (v) > 0)
    return nsrt_errf (err, 0, "linux.seccomp.listenerPath: seccomp notification is not supported by berth-runtime");
  if (!json_object_object_get_ex (sec, "defaultAction", &v) || !json_object_is_type (v, json_type_string))
    return nsrt_errf (err, 0, "linux.seccomp.defaultAction: missing or not a string");
  uint64_t def_errno = EPERM;
  int has;
  if (json_u64 (sec, "defaultErrnoRet", &def_errno, &has, "linux.seccomp", err) < 0)
    return -1;
  if (!has)
    def_errno = EPERM;
  if (def_errno > 4095)
    return nsrt_errf (err, 0, "linux.seccomp.defaultErrnoRet: %llu is not an errno", (unsigned long long) def_errno);
  uint32_t def;
  if (action_parse (json_object_get_string (v), (uint32_t) def_errno, &def, "linux.seccomp.defaultAction", err) < 0)
    return -1;

  struct nsrt_seccomp *s = calloc (1, sizeof *s);
  if (s == NULL)
    return nsrt_errf (err, ENOMEM, "linux.seccomp");
  s->ctx = seccomp_init (def);
  if (s->ctx == NULL)
    {
      free (s);
      return nsrt_errf (err, 0, "linux.seccomp: seccomp_init failed (is the default action supported by this kernel?)");
    }
  /* OCI: no_new_privs is process.noNewPrivileges' business, not the filter's */
  seccomp_attr_set (s->ctx, SCMP_FLTATR_CTL_NNP, 0);
  /* the kernel's errno from seccomp_load, not -ECANCELED */
  seccomp_attr_set (s->ctx, SCMP_FLTATR_API_SYSRAWRC, 1);

  int r = 0;
  if (json_object_object_get_ex (sec, "architectures", &v) && v != NULL)
    {
      if (!json_object_is_type (v, json_type_array))
        r = nsrt_errf (err, 0, "linux.seccomp.architectures: not an array");
      for (size_t i = 0; r == 0 && i < json_object_array_length (v); i++)
        {
          char w[64];
          snprintf (w, sizeof w, "linux.seccomp.architectures[%zu]", i);
          json_object *a = json_object_array_get_idx (v, i);
          if (!json_object_is_type (a, json_type_string))
            r = nsrt_errf (err, 0, "%s: not a string", w);
          else
            r = arch_add (s->ctx, json_object_get_string (a), w, err);
        }
    }
  if (r == 0 && json_object_object_get_ex (sec, "flags", &v) && v != NULL)
    {
      if (!json_object_is_type (v, json_type_array))
        r = nsrt_errf (err, 0, "linux.seccomp.flags: not an array");
      for (size_t i = 0; r == 0 && i < json_object_array_length (v); i++)
        {
          char w[64];
          snprintf (w, sizeof w, "linux.seccomp.flags[%zu]", i);
          json_object *a = json_object_array_get_idx (v, i);
          if (!json_object_is_type (a, json_type_string))
            r = nsrt_errf (err, 0, "%s: not a string", w);
          else
            r = flag_set (s->ctx, json_object_get_string (a), w, err);
        }
    }
  if (r == 0 && json_object_object_get_ex (sec, "syscalls", &v) && v != NULL)
    {
      if (!json_object_is_type (v, json_type_array))
        r = nsrt_errf (err, 0, "linux.seccomp.syscalls: not an array");
      for (size_t i = 0; r == 0 && i < json_object_array_length (v); i++)
        {
          char w[64];
          snprintf (w, sizeof w, "linux.seccomp.syscalls[%zu]", i);
          r = syscall_add (s->ctx, json_object_array_get_idx (v, i), def, w, err);
        }
    }
  if (r < 0)
    {
      nsrt_seccomp_free (s);
      return -1;
    }
  *ret = s;
  return 0;
}

int
nsrt_seccomp_load (struct nsrt_seccomp *s, struct nsrt_err *err)
{
  if (s == NULL)
    return 0;
  int r;
  if (s->bpf)
    {
      struct sock_fprog prog = { .len = (unsigned short) (s->bpf_len / sizeof (struct sock_filter)),
                                 .filter = (struct sock_filter *) s->bpf };
      r = syscall (SYS_seccomp, SECCOMP_SET_MODE_FILTER, s->flags, &prog) < 0 ? -errno : 0;
    }
  else
    r = seccomp_load (s->ctx);
  if (r == -EACCES)
    return nsrt_errf (err, EACCES,
                      "linux.seccomp: load the filter (without noNewPrivileges this needs CAP_SYS_ADMIN: "
                      "load it before the capabilities are dropped)");
  if (r < 0)
    return nsrt_errf (err, -r, "linux.seccomp: load the filter");
  return 0;
}

void
nsrt_seccomp_free (struct nsrt_seccomp *s)
{
  if (s == NULL)
    return;
  if (s->ctx)
    seccomp_release (s->ctx);
  free (s->bpf);
  free (s);
}

/* ---- the cache of compiled filters ---- */

#define CACHE_MAGIC "berth-seccomp-bpf 1\n"
#define CACHE_MAX (8u << 20)

/* What the program depends on: the spec's text, libseccomp, the machine. */
static char *
cache_key (json_object *sec)
{
  struct utsname u;
  if (uname (&u) < 0)
    return NULL;
  const struct scmp_version *v = seccomp_version ();
  char *key = NULL;
  if (asprintf (&key, "%s %u.%u.%u\n%s", u.machine, v ? v->major : 0, v ? v->minor : 0, v ? v->micro : 0,
                json_object_to_json_string_ext (sec, JSON_C_TO_STRING_PLAIN)) < 0)
    return NULL;
  return key;
}

static uint64_t
fnv1a (const char *s)
{
  uint64_t h = 14695981039346656037ULL;
  for (; *s; s++)
    h = (h ^ (unsigned char) *s) * 1099511628211ULL;
  return h;
}

/* Only root's private files: anyone else could otherwise choose our filter. */
static bool
private_to_root (int fd, bool dir)
{
  struct stat st;
  return fstat (fd, &st) == 0 && st.st_uid == 0 && (st.st_mode & 022) == 0
         && (dir ? S_ISDIR (st.st_mode) : S_ISREG (st.st_mode));
}

static bool
read_all (int fd, unsigned char **ret, size_t *len)
{
  struct stat st;
  if (fstat (fd, &st) < 0 || st.st_size <= 0 || (uint64_t) st.st_size > CACHE_MAX)
    return false;
  unsigned char *b = malloc ((size_t) st.st_size);
  size_t n = 0;
  while (b && n < (size_t) st.st_size)
    {
      ssize_t r = pread (fd, b + n, (size_t) st.st_size - n, (off_t) n);
      if (r <= 0)
        break;
      n += (size_t) r;
    }
  if (b == NULL || n != (size_t) st.st_size)
    {
      free (b);
      return false;
    }
  *ret = b;
  *len = n;
  return true;
}

/* File: magic, "<flags> <key length> <bpf length>\n", key, bpf. */
static bool
cache_lookup (int dirfd, const char *name, const char *key, struct nsrt_seccomp *s)
{
  int fd = openat (dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return false;
  unsigned char *b = NULL;
  size_t len = 0;
  bool ok = private_to_root (fd, false) && read_all (fd, &b, &len);
  close (fd);
  if (!ok)
    return false;
  size_t ml = strlen (CACHE_MAGIC), kl = strlen (key);
  unsigned int flags = 0;
  size_t fkl = 0, fbl = 0;
  int hdr = 0;
  const char *nl = len > ml ? memchr (b + ml, '\n', len - ml) : NULL;
  ok = nl != NULL && memcmp (b, CACHE_MAGIC, ml) == 0
       && sscanf ((const char *) b + ml, "%u %zu %zu\n%n", &flags, &fkl, &fbl, &hdr) == 3
       && (const unsigned char *) nl + 1 == b + ml + hdr && fkl == kl && fbl > 0
       && fbl % sizeof (struct sock_filter) == 0 && fbl / sizeof (struct sock_filter) <= BPF_MAXINSNS
       && ml + hdr + kl + fbl == len && memcmp (b + ml + hdr, key, kl) == 0
       && (flags & ~(unsigned) (SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW)) == 0;
  if (ok)
    {
      s->bpf = malloc (fbl);
      ok = s->bpf != NULL;
      if (ok)
        {
          memcpy (s->bpf, b + ml + hdr + kl, fbl);
          s->bpf_len = fbl;
          s->flags = flags;
        }
    }
  free (b);
  return ok;
}

static void
cache_store (int dirfd, const char *name, const char *key, const struct nsrt_seccomp *s)
{
  char tmp[64];
  snprintf (tmp, sizeof tmp, ".%s.%d", name, (int) getpid ());
  int fd = openat (dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return;
  FILE *f = fdopen (fd, "w");
  if (f == NULL)
    {
      close (fd);
      unlinkat (dirfd, tmp, 0);
      return;
    }
  bool ok = fprintf (f, "%s%u %zu %zu\n", CACHE_MAGIC, s->flags, strlen (key), s->bpf_len) > 0
            && fwrite (key, 1, strlen (key), f) == strlen (key) && fwrite (s->bpf, 1, s->bpf_len, f) == s->bpf_len;
  ok = fclose (f) == 0 && ok;
  if (!ok || renameat (dirfd, tmp, dirfd, name) < 0)
    unlinkat (dirfd, tmp, 0);
}

/* Turn a libseccomp context into the program and the seccomp(2) flags it
 * would load. */
static int
compile (struct nsrt_seccomp *s, struct nsrt_err *err)
{
  static const struct
  {
    enum scmp_filter_attr attr;
    unsigned int flag;
  } attrs[] = {
    { SCMP_FLTATR_CTL_TSYNC, SECCOMP_FILTER_FLAG_TSYNC },
    { SCMP_FLTATR_CTL_LOG, SECCOMP_FILTER_FLAG_LOG },
    { SCMP_FLTATR_CTL_SSB, SECCOMP_FILTER_FLAG_SPEC_ALLOW },
  };
  unsigned int flags = 0;
  for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++)
    {
      uint32_t v = 0;
      if (seccomp_attr_get (s->ctx, attrs[i].attr, &v) == 0 && v)
        flags |= attrs[i].flag;
    }
  int fd = memfd_create ("berth-seccomp", MFD_CLOEXEC);
  if (fd < 0)
    return nsrt_errf (err, errno, "linux.seccomp: memfd_create");
  int r = seccomp_export_bpf (s->ctx, fd);
  unsigned char *b = NULL;
  size_t len = 0;
  bool ok = r == 0 && read_all (fd, &b, &len) && len % sizeof (struct sock_filter) == 0;
  close (fd);
  if (!ok)
    {
      free (b);
      return nsrt_errf (err, r < 0 ? -r : 0, "linux.seccomp: export the compiled filter");
    }
  s->bpf = b;
  s->bpf_len = len;
  s->flags = flags;
  seccomp_release (s->ctx);
  s->ctx = NULL;
  return 0;
}

int
nsrt_seccomp_prepare_cached (json_object *sec, const char *cache_dir, struct nsrt_seccomp **ret, struct nsrt_err *err)
{
  *ret = NULL;
  if (sec == NULL)
    return 0;
  char *key = cache_dir ? cache_key (sec) : NULL;
  if (key == NULL)
    return nsrt_seccomp_prepare (sec, ret, err);
  char name[40];
  snprintf (name, sizeof name, "%016llx.bpf", (unsigned long long) fnv1a (key));
  int dirfd = -1;
  char parent[4096];
  snprintf (parent, sizeof parent, "%s", cache_dir);
  char *slash = strrchr (parent, '/');
  if (slash && slash != parent)
    {
      *slash = '\0';
      (void) mkdir (parent, 0711); /* the runtime's default root, usually there already */
    }
  if (mkdir (cache_dir, 0700) == 0 || errno == EEXIST)
    dirfd = open (cache_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dirfd >= 0 && !private_to_root (dirfd, true))
    {
      close (dirfd);
      dirfd = -1;
    }
  struct nsrt_seccomp *s = calloc (1, sizeof *s);
  if (s == NULL)
    {
      free (key);
      if (dirfd >= 0)
        close (dirfd);
      return nsrt_errf (err, ENOMEM, "linux.seccomp");
    }
  if (dirfd >= 0 && cache_lookup (dirfd, name, key, s))
    {
      close (dirfd);
      free (key);
      *ret = s;
      return 0;
    }
  free (s);
  /* A miss: libseccomp checks the spec and builds; then keep the program. */
  int r = nsrt_seccomp_prepare (sec, &s, err);
  if (r == 0 && s != NULL)
    {
      r = compile (s, err);
      if (r == 0 && dirfd >= 0)
        cache_store (dirfd, name, key, s);
      if (r < 0)
        {
          nsrt_seccomp_free (s);
          s = NULL;
        }
    }
  if (dirfd >= 0)
    close (dirfd);
  free (key);
  *ret = s;
  return r;
}
