/* FROZEN COPY at ABI 1.0 (see plugin.h in this directory): never edit. */
/* berth plugin SDK: error codes.
 *
 * Every operation of the plugin ABI returns 0 or one of these negative codes.
 * They are containerd's errdefs classes, so the core maps each one onto a
 * single gRPC status code (see docs/plugin-author-guide.md).  Details go into
 * the host-owned berth_error passed as the last parameter, through
 * host->error_set() / host->error_wrap().
 *
 * Codes are part of the ABI: never renumber, only append.
 */
#ifndef BERTH_ERRORS_H
#define BERTH_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

enum berth_errcode
{
  BERTH_OK = 0,
  BERTH_E_NOTFOUND = -1,      /* NotFound */
  BERTH_E_EXISTS = -2,        /* AlreadyExists */
  BERTH_E_PRECONDITION = -3,  /* FailedPrecondition */
  BERTH_E_INVALID = -4,       /* InvalidArgument */
  BERTH_E_UNAVAILABLE = -5,   /* Unavailable */
  BERTH_E_NOTSUP = -6,        /* Unimplemented */
  BERTH_E_CANCELLED = -7,     /* Canceled */
  BERTH_E_NOMEM = -8,         /* ResourceExhausted */
  BERTH_E_INTERNAL = -9,      /* Internal / Unknown */
  BERTH_E_SKIP = -10,         /* init only: the plugin cannot run here (not an error) */
  BERTH_E_DEADLINE = -11,     /* DeadlineExceeded */
  BERTH_E_PERMISSION = -12,   /* PermissionDenied */
  BERTH_E_UNAUTHENTICATED = -13, /* Unauthenticated */
  BERTH_E_EXHAUSTED = -14,    /* ResourceExhausted (disk full, quota) */
  BERTH_E_CONFLICT = -15,     /* Aborted (conflicting update) */
};

#define BERTH_E_MIN BERTH_E_CONFLICT

/* Opaque, host-owned error record.  Plugins never allocate or free it. */
typedef struct berth_error berth_error;

#ifdef __cplusplus
}
#endif
#endif
