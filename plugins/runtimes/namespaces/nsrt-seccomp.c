/* berth-runtime: linux.seccomp (OCI runtime spec, config-linux.md#seccomp)
 * compiled with libseccomp.  The filter is built while the init still has
 * its files (libseccomp reads nothing at load time) and loaded last. */
#include <ctype.h>
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nsrt-sec.h"

struct nsrt_seccomp
{
  scmp_filter_ctx ctx;
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
  int r = seccomp_load (s->ctx);
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
  seccomp_release (s->ctx);
  free (s);
}
