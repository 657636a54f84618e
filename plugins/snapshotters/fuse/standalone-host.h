/* A host table for a program outside berthd that uses the plugin SDK's
 * libraries (libberth-layerindex, remote.c): berth-fuse, and the remote
 * reader's test driver.  Include it once per program.
 *
 * berth_error is the host's type (opaque to the libraries): here a code and
 * a fixed message buffer; a message that does not fit is cut, its start
 * says what failed.  log writes "<program>: message" to stderr. */
#ifndef BERTH_FUSE_STANDALONE_HOST_H
#define BERTH_FUSE_STANDALONE_HOST_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <berth/plugin.h>

struct berth_error
{
  int code;
  char msg[1024];
};

static void
host_log (berth_plugin *p, int level, const char *fmt, ...)
{
  (void) p;
  (void) level;
  va_list ap;
  va_start (ap, fmt);
  fprintf (stderr, "%s: ", program_invocation_short_name);
  vfprintf (stderr, fmt, ap);
  fputc ('\n', stderr);
  va_end (ap);
}

static int
host_error_set (berth_error *err, int code, int errnum, const char *fmt, ...)
{
  if (err == NULL)
    return code;
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (err->msg, sizeof err->msg, fmt, ap);
  va_end (ap);
  if (errnum != 0)
    {
      size_t n = strlen (err->msg);
      snprintf (err->msg + n, sizeof err->msg - n, ": %s", strerror (errnum));
    }
  err->code = code;
  return code;
}

static int
host_error_wrap (berth_error *err, const char *fmt, ...)
{
  if (err == NULL)
    return BERTH_E_INTERNAL;
  char prefix[512], old[sizeof err->msg];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (prefix, sizeof prefix, fmt, ap);
  va_end (ap);
  memcpy (old, err->msg, sizeof old);
  size_t n = strlen (prefix);
  if (n > sizeof err->msg - 3)
    n = sizeof err->msg - 3;
  memcpy (err->msg, prefix, n);
  memcpy (err->msg + n, ": ", 2);
  size_t room = sizeof err->msg - n - 3, m = strnlen (old, room);
  memcpy (err->msg + n + 2, old, m);
  err->msg[n + 2 + m] = '\0';
  return err->code != 0 ? err->code : BERTH_E_INTERNAL;
}

static const struct berth_host host = {
  .size = sizeof (struct berth_host),
  .abi_major = BERTH_ABI_MAJOR,
  .abi_minor = BERTH_ABI_MINOR,
  .log = host_log,
  .error_set = host_error_set,
  .error_wrap = host_error_wrap,
};

#endif
