/* The error record behind the ABI's opaque berth_error, and the core's
 * helpers around it (STYLE.md, "Errors: one shape everywhere").
 *
 * Core functions take `berth_error **err` last: the callee allocates and
 * fills *err (if err != NULL and *err == NULL) and returns the negative code;
 * callers add context on the way out with berth_error_wrap().
 */
#ifndef BERTH_LIB_ERROR_H
#define BERTH_LIB_ERROR_H

#include <berth/errors.h>
#include <berth/plugin.h>

struct berth_error
{
  int code;   /* negative BERTH_E_* */
  int errnum; /* errno behind it, 0 if none */
  char *msg;  /* full message, context first */
};

berth_error *berth_error_new (void);
void berth_error_free (berth_error *e);
static inline void
berth_error_freep (berth_error **e)
{
  berth_error_free (*e);
  *e = NULL;
}
#define _cleanup_error_ __attribute__ ((cleanup (berth_error_freep)))

/* Fill *err (allocating it) and return code.  errnum != 0 appends ": strerror". */
int berth_error_set (berth_error **err, int code, int errnum, const char *fmt, ...) BERTH_PRINTF (4, 5);
/* Prefix the message with "context: "; returns the error's code (BERTH_E_INTERNAL if none). */
int berth_error_wrap (berth_error **err, const char *fmt, ...) BERTH_PRINTF (2, 3);
/* The ABI forms, on a host-owned record. */
int berth_error_vset_into (berth_error *e, int code, int errnum, const char *fmt, va_list ap) BERTH_PRINTF (4, 0);
int berth_error_vwrap_into (berth_error *e, const char *fmt, va_list ap) BERTH_PRINTF (2, 0);
/* The same, variadic: exactly struct berth_host's error_set and error_wrap,
 * for every host table built on these records (berthd's, the CLI's, tests'). */
int berth_error_set_into (berth_error *e, int code, int errnum, const char *fmt, ...) BERTH_PRINTF (4, 5);
int berth_error_wrap_into (berth_error *e, const char *fmt, ...) BERTH_PRINTF (2, 3);
/* Move a filled record into *err (taking ownership); returns its code. */
int berth_error_take (berth_error **err, berth_error *e);

const char *berth_error_message (const berth_error *e);
/* "not found", "already exists", ... */
const char *berth_errcode_name (int code);
/* gRPC status code for a BERTH_E_* code, and back. */
int berth_errcode_to_grpc (int code);
int berth_errcode_from_grpc (int grpc_code);
/* errno → BERTH_E_* class (ENOENT → NOTFOUND, ENOSPC → EXHAUSTED, ...). */
int berth_errcode_from_errno (int errnum);

#endif
