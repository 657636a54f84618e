#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "error.h"

berth_error *
berth_error_new (void)
{
  return calloc (1, sizeof (berth_error));
}

void
berth_error_free (berth_error *e)
{
  if (e == NULL)
    return;
  free (e->msg);
  free (e);
}

int
berth_error_vset_into (berth_error *e, int code, int errnum, const char *fmt, va_list ap)
{
  if (code >= 0)
    code = BERTH_E_INTERNAL;
  if (e == NULL)
    return code;
  char *msg = NULL;
  if (vasprintf (&msg, fmt, ap) < 0)
    msg = NULL;
  if (msg && errnum)
    {
      char *full = NULL;
      if (asprintf (&full, "%s: %s", msg, strerror (errnum)) >= 0)
        {
          free (msg);
          msg = full;
        }
    }
  free (e->msg);
  e->msg = msg;
  e->code = code;
  e->errnum = errnum;
  return code;
}

int
berth_error_vwrap_into (berth_error *e, const char *fmt, va_list ap)
{
  if (e == NULL)
    return BERTH_E_INTERNAL;
  if (e->code >= 0)
    e->code = BERTH_E_INTERNAL;
  char *ctx = NULL;
  if (vasprintf (&ctx, fmt, ap) < 0)
    return e->code;
  char *full = NULL;
  if (asprintf (&full, "%s: %s", ctx, e->msg ? e->msg : berth_errcode_name (e->code)) >= 0)
    {
      free (e->msg);
      e->msg = full;
    }
  free (ctx);
  return e->code;
}

int
berth_error_set_into (berth_error *e, int code, int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  int r = berth_error_vset_into (e, code, errnum, fmt, ap);
  va_end (ap);
  return r;
}

int
berth_error_wrap_into (berth_error *e, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  int r = berth_error_vwrap_into (e, fmt, ap);
  va_end (ap);
  return r;
}

int
berth_error_set (berth_error **err, int code, int errnum, const char *fmt, ...)
{
  if (code >= 0)
    code = BERTH_E_INTERNAL;
  if (err == NULL)
    return code;
  if (*err == NULL)
    {
      *err = berth_error_new ();
      if (*err == NULL)
        return BERTH_E_NOMEM;
    }
  va_list ap;
  va_start (ap, fmt);
  int r = berth_error_vset_into (*err, code, errnum, fmt, ap);
  va_end (ap);
  return r;
}

int
berth_error_wrap (berth_error **err, const char *fmt, ...)
{
  if (err == NULL)
    return BERTH_E_INTERNAL;
  if (*err == NULL)
    {
      *err = berth_error_new ();
      if (*err == NULL)
        return BERTH_E_NOMEM;
      (*err)->code = BERTH_E_INTERNAL;
    }
  va_list ap;
  va_start (ap, fmt);
  int r = berth_error_vwrap_into (*err, fmt, ap);
  va_end (ap);
  return r;
}

int
berth_error_take (berth_error **err, berth_error *e)
{
  int code = e && e->code < 0 ? e->code : BERTH_E_INTERNAL;
  if (e && e->code >= 0)
    e->code = code;
  if (err == NULL)
    {
      berth_error_free (e);
      return code;
    }
  berth_error_free (*err);
  *err = e;
  return code;
}

const char *
berth_error_message (const berth_error *e)
{
  if (e == NULL)
    return "unknown error";
  if (e->msg)
    return e->msg;
  return berth_errcode_name (e->code);
}

static const struct
{
  int code;
  const char *name;
  int grpc;
} codes[] = {
  { BERTH_OK, "ok", 0 },
  { BERTH_E_NOTFOUND, "not found", 5 },
  { BERTH_E_EXISTS, "already exists", 6 },
  { BERTH_E_PRECONDITION, "failed precondition", 9 },
  { BERTH_E_INVALID, "invalid argument", 3 },
  { BERTH_E_UNAVAILABLE, "unavailable", 14 },
  { BERTH_E_NOTSUP, "not implemented", 12 },
  { BERTH_E_CANCELLED, "cancelled", 1 },
  { BERTH_E_NOMEM, "out of memory", 8 },
  { BERTH_E_INTERNAL, "internal error", 13 },
  { BERTH_E_SKIP, "skipped", 9 },
  { BERTH_E_DEADLINE, "deadline exceeded", 4 },
  { BERTH_E_PERMISSION, "permission denied", 7 },
  { BERTH_E_UNAUTHENTICATED, "unauthenticated", 16 },
  { BERTH_E_EXHAUSTED, "resource exhausted", 8 },
  { BERTH_E_CONFLICT, "conflict", 10 },
};

const char *
berth_errcode_name (int code)
{
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
    if (codes[i].code == code)
      return codes[i].name;
  return "unknown error";
}

int
berth_errcode_to_grpc (int code)
{
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
    if (codes[i].code == code)
      return codes[i].grpc;
  return 2; /* UNKNOWN */
}

int
berth_errcode_from_grpc (int grpc_code)
{
  switch (grpc_code)
    {
    case 0: return BERTH_OK;
    case 1: return BERTH_E_CANCELLED;
    case 3: return BERTH_E_INVALID;
    case 4: return BERTH_E_DEADLINE;
    case 5: return BERTH_E_NOTFOUND;
    case 6: return BERTH_E_EXISTS;
    case 7: return BERTH_E_PERMISSION;
    case 8: return BERTH_E_EXHAUSTED;
    case 9: return BERTH_E_PRECONDITION;
    case 10: return BERTH_E_CONFLICT;
    case 11: return BERTH_E_INVALID; /* OUT_OF_RANGE */
    case 12: return BERTH_E_NOTSUP;
    case 14: return BERTH_E_UNAVAILABLE;
    case 16: return BERTH_E_UNAUTHENTICATED;
    default: return BERTH_E_INTERNAL;
    }
}

int
berth_errcode_from_errno (int errnum)
{
  switch (errnum)
    {
    case 0: return BERTH_OK;
    case ENOENT: return BERTH_E_NOTFOUND;
    case EEXIST: return BERTH_E_EXISTS;
    case EINVAL: return BERTH_E_INVALID;
    case ENOMEM: return BERTH_E_NOMEM;
    case ENOSPC:
    case EDQUOT: return BERTH_E_EXHAUSTED;
    case EACCES:
    case EPERM: return BERTH_E_PERMISSION;
    case ENOSYS:
    case EOPNOTSUPP: return BERTH_E_NOTSUP;
    case ETIMEDOUT: return BERTH_E_DEADLINE;
    case ECANCELED: return BERTH_E_CANCELLED;
    case EAGAIN:
    case EBUSY:
    case ECONNREFUSED: return BERTH_E_UNAVAILABLE;
    default: return BERTH_E_INTERNAL;
    }
}
