/* berth-runtime: process.capabilities (libcap), process.rlimits,
 * process.oomScoreAdj, and the error helper of the security half.
 * Everything here runs in the container's init after pivot_root. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "nsrt-sec.h"

int
nsrt_errf (struct nsrt_err *err, int errnum, const char *fmt, ...)
{
  if (err == NULL)
    return -1;
  va_list ap;
  va_start (ap, fmt);
  int n = vsnprintf (err->msg, sizeof err->msg, fmt, ap);
  va_end (ap);
  if (errnum && n >= 0 && (size_t) n < sizeof err->msg)
    snprintf (err->msg + n, sizeof err->msg - n, ": %s", strerror (errnum));
  return -1;
}

/* ---- capabilities ---- */

/* The five OCI sets, in the order of process.capabilities' fields. */
enum
{
  SET_BOUNDING,
  SET_EFFECTIVE,
  SET_PERMITTED,
  SET_INHERITABLE,
  SET_AMBIENT,
  SET_N
};
static const char *const set_names[SET_N] = { "bounding", "effective", "permitted", "inheritable", "ambient" };

/* One bit per capability number; 64 is far beyond CAP_LAST_CAP today and
 * names libcap does not know never get here. */
typedef uint64_t cap_bits;

/* "CAP_NET_RAW" -> its number.  Returns 0 and *ret = -1 for a name libcap
 * knows but this kernel does not (skipped, as runc does), -1 for a name
 * nobody knows. */
static int
cap_parse (const char *name, int *ret)
{
  char lower[64];
  size_t len = strlen (name);
  if (len < 5 || len >= sizeof lower || strncmp (name, "CAP_", 4) != 0)
    return -1;
  for (size_t i = 0; i <= len; i++)
    lower[i] = (char) tolower ((unsigned char) name[i]);
  cap_value_t v;
  /* cap_from_name also takes numbers ("cap_12" is not a name, but "12" is):
   * OCI wants names, so insist on letters after CAP_ */
  for (size_t i = 4; i < len; i++)
    if (!isalpha ((unsigned char) lower[i]) && lower[i] != '_')
      return -1;
  if (cap_from_name (lower, &v) < 0)
    return -1;
  *ret = (v >= 0 && v < cap_max_bits () && v < 64) ? (int) v : -1;
  return 0;
}

static int
caps_parse (json_object *caps, cap_bits sets[SET_N], struct nsrt_err *err)
{
  if (!json_object_is_type (caps, json_type_object))
    return nsrt_errf (err, 0, "process.capabilities: not an object");
  for (int s = 0; s < SET_N; s++)
    {
      json_object *a;
      sets[s] = 0;
      if (!json_object_object_get_ex (caps, set_names[s], &a) || a == NULL)
        continue;
      if (!json_object_is_type (a, json_type_array))
        return nsrt_errf (err, 0, "process.capabilities.%s: not an array", set_names[s]);
      for (size_t i = 0; i < json_object_array_length (a); i++)
        {
          json_object *e = json_object_array_get_idx (a, i);
          if (!json_object_is_type (e, json_type_string))
            return nsrt_errf (err, 0, "process.capabilities.%s[%zu]: not a string", set_names[s], i);
          int v;
          if (cap_parse (json_object_get_string (e), &v) < 0)
            return nsrt_errf (err, 0, "process.capabilities.%s[%zu]: unknown capability `%s`", set_names[s], i,
                              json_object_get_string (e));
          if (v >= 0)
            sets[s] |= (cap_bits) 1 << v;
        }
    }
  return 0;
}

int
nsrt_caps_prepare (struct nsrt_err *err)
{
  /* keep the permitted set across setresuid() to a non-zero uid; effective
   * is cleared by the kernel and rebuilt by nsrt_caps_apply */
  if (prctl (PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
    return nsrt_errf (err, errno, "process.capabilities: prctl(PR_SET_KEEPCAPS)");
  return 0;
}

static int
caps_set (cap_t c, cap_flag_t flag, cap_bits bits)
{
  int last = cap_max_bits ();
  for (int v = 0; v < last && v < 64; v++)
    {
      cap_value_t cv = v;
      if (cap_set_flag (c, flag, 1, &cv, (bits >> v) & 1 ? CAP_SET : CAP_CLEAR) < 0)
        return -1;
    }
  return 0;
}

int
nsrt_caps_apply (json_object *capabilities, struct nsrt_err *err)
{
  cap_bits sets[SET_N];
  if (caps_parse (capabilities, sets, err) < 0)
    return -1;
  int last = cap_max_bits ();

  /* After a setuid away from 0 only `permitted` survived (keepcaps):
   * raise effective to it so that CAP_SETPCAP allows the bounding drop. */
  cap_t cur = cap_get_proc ();
  if (cur == NULL)
    return nsrt_errf (err, errno, "process.capabilities: cap_get_proc");
  cap_bits perm = 0;
  for (int v = 0; v < last && v < 64; v++)
    {
      cap_flag_value_t fv;
      if (cap_get_flag (cur, v, CAP_PERMITTED, &fv) == 0 && fv == CAP_SET)
        perm |= (cap_bits) 1 << v;
    }
  if (caps_set (cur, CAP_EFFECTIVE, perm) < 0 || cap_set_proc (cur) < 0)
    {
      int e = errno;
      cap_free (cur);
      return nsrt_errf (err, e, "process.capabilities: raise the effective set");
    }
  cap_free (cur);

  for (int v = 0; v < last && v < 64; v++)
    {
      if ((sets[SET_BOUNDING] >> v) & 1)
        continue;
      if (CAP_IS_SUPPORTED (v) && cap_drop_bound (v) < 0)
        {
          char *name = cap_to_name (v);
          nsrt_errf (err, errno, "process.capabilities.bounding: drop %s", name ? name : "?");
          cap_free (name);
          return -1;
        }
    }

  cap_t c = cap_init ();
  if (c == NULL)
    return nsrt_errf (err, errno, "process.capabilities: cap_init");
  if (caps_set (c, CAP_EFFECTIVE, sets[SET_EFFECTIVE]) < 0 || caps_set (c, CAP_PERMITTED, sets[SET_PERMITTED]) < 0
      || caps_set (c, CAP_INHERITABLE, sets[SET_INHERITABLE]) < 0)
    {
      cap_free (c);
      return nsrt_errf (err, errno, "process.capabilities: cap_set_flag");
    }
  if (cap_set_proc (c) < 0)
    {
      int e = errno;
      cap_free (c);
      return nsrt_errf (err, e,
                        "process.capabilities: set effective/permitted/inheritable "
                        "(effective must be a subset of permitted)");
    }
  cap_free (c);

  /* The kernel raises an ambient cap only when it is permitted and
   * inheritable; runc warns and goes on for the others (runc spec's
   * default config lists ambient caps without inheritable ones), and so
   * does this, silently: a library has no log. */
  cap_bits ambient = sets[SET_AMBIENT] & sets[SET_PERMITTED] & sets[SET_INHERITABLE];
  if (CAP_AMBIENT_SUPPORTED ())
    {
      if (cap_reset_ambient () < 0 && ambient)
        return nsrt_errf (err, errno, "process.capabilities.ambient: reset");
      for (int v = 0; v < last && v < 64; v++)
        {
          if (!((ambient >> v) & 1))
            continue;
          if (cap_set_ambient (v, CAP_SET) < 0)
            {
              char *name = cap_to_name (v);
              nsrt_errf (err, errno, "process.capabilities.ambient: raise %s", name ? name : "?");
              cap_free (name);
              return -1;
            }
        }
    }
  prctl (PR_SET_KEEPCAPS, 0, 0, 0, 0);
  return 0;
}

/* ---- rlimits ---- */

static const struct
{
  const char *name;
  int resource;
} rlimit_names[] = {
  { "RLIMIT_AS", RLIMIT_AS },
  { "RLIMIT_CORE", RLIMIT_CORE },
  { "RLIMIT_CPU", RLIMIT_CPU },
  { "RLIMIT_DATA", RLIMIT_DATA },
  { "RLIMIT_FSIZE", RLIMIT_FSIZE },
  { "RLIMIT_LOCKS", RLIMIT_LOCKS },
  { "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK },
  { "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE },
  { "RLIMIT_NICE", RLIMIT_NICE },
  { "RLIMIT_NOFILE", RLIMIT_NOFILE },
  { "RLIMIT_NPROC", RLIMIT_NPROC },
  { "RLIMIT_RSS", RLIMIT_RSS },
  { "RLIMIT_RTPRIO", RLIMIT_RTPRIO },
  { "RLIMIT_RTTIME", RLIMIT_RTTIME },
  { "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING },
  { "RLIMIT_STACK", RLIMIT_STACK },
};

static int
rlimit_value (json_object *e, const char *key, size_t i, rlim_t *ret, struct nsrt_err *err)
{
  json_object *v;
  if (!json_object_object_get_ex (e, key, &v) || !json_object_is_type (v, json_type_int))
    return nsrt_errf (err, 0, "process.rlimits[%zu].%s: missing or not an integer", i, key);
  /* json-c keeps values above INT64_MAX as uint64; a negative one is an error */
  if (json_object_get_int64 (v) < 0 && json_object_get_uint64 (v) == 0)
    return nsrt_errf (err, 0, "process.rlimits[%zu].%s: negative", i, key);
  *ret = (rlim_t) json_object_get_uint64 (v);
  return 0;
}

int
nsrt_rlimits_apply (json_object *rlimits, struct nsrt_err *err)
{
  if (rlimits == NULL)
    return 0;
  if (!json_object_is_type (rlimits, json_type_array))
    return nsrt_errf (err, 0, "process.rlimits: not an array");
  for (size_t i = 0; i < json_object_array_length (rlimits); i++)
    {
      json_object *e = json_object_array_get_idx (rlimits, i), *t;
      if (!json_object_is_type (e, json_type_object))
        return nsrt_errf (err, 0, "process.rlimits[%zu]: not an object", i);
      if (!json_object_object_get_ex (e, "type", &t) || !json_object_is_type (t, json_type_string))
        return nsrt_errf (err, 0, "process.rlimits[%zu].type: missing or not a string", i);
      const char *name = json_object_get_string (t);
      int res = -1;
      for (size_t k = 0; k < sizeof rlimit_names / sizeof *rlimit_names; k++)
        if (strcmp (rlimit_names[k].name, name) == 0)
          res = rlimit_names[k].resource;
      if (res < 0)
        return nsrt_errf (err, 0, "process.rlimits[%zu]: unknown rlimit `%s`", i, name);
      struct rlimit rl;
      if (rlimit_value (e, "soft", i, &rl.rlim_cur, err) < 0 || rlimit_value (e, "hard", i, &rl.rlim_max, err) < 0)
        return -1;
      if (rl.rlim_cur > rl.rlim_max)
        return nsrt_errf (err, 0, "process.rlimits[%zu]: %s soft limit %llu is above the hard limit %llu", i, name,
                          (unsigned long long) rl.rlim_cur, (unsigned long long) rl.rlim_max);
      if (setrlimit (res, &rl) < 0)
        return nsrt_errf (err, errno, "process.rlimits: setrlimit %s soft %llu hard %llu", name,
                          (unsigned long long) rl.rlim_cur, (unsigned long long) rl.rlim_max);
    }
  return 0;
}

/* ---- oom_score_adj ---- */

static int
oom_read (int *ret)
{
  char buf[32];
  int fd = open ("/proc/self/oom_score_adj", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  ssize_t n = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  *ret = atoi (buf);
  return 0;
}

int
nsrt_oom_score_adj (int value, struct nsrt_err *err)
{
  if (value < -1000 || value > 1000)
    return nsrt_errf (err, 0, "process.oomScoreAdj: %d is outside -1000..1000", value);
  int fd = open ("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return nsrt_errf (err, errno, "process.oomScoreAdj: open /proc/self/oom_score_adj");
  char buf[16];
  int len = snprintf (buf, sizeof buf, "%d", value);
  int r = (int) write (fd, buf, len), e = errno;
  close (fd);
  if (r == len)
    return 0;
  /* Lowering below the minimum needs CAP_SYS_RESOURCE: keep the current
   * value instead of failing, as containerd does for unprivileged hosts. */
  int cur;
  if (e == EACCES && oom_read (&cur) == 0 && value < cur)
    return 0;
  return nsrt_errf (err, r < 0 ? e : EIO, "process.oomScoreAdj: write %d to /proc/self/oom_score_adj", value);
}
