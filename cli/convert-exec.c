/* `berth image convert` in berth itself: run berth-convert (convert.h says
 * why) with the whole command line, global options included.
 *
 * Where: $BERTH_CONVERT; else berth-convert next to this berth (a build
 * tree); else $(libexecdir)/berth/berth-convert. */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "images.h"

#ifndef BERTH_CONVERT_BINARY
#define BERTH_CONVERT_BINARY "/usr/libexec/berth/berth-convert"
#endif

/* berth-convert in the directory of /proc/self/exe, or "". */
static void
beside_self (char *buf, size_t len)
{
  buf[0] = '\0';
  char self[PATH_MAX];
  ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0)
    return;
  self[n] = '\0';
  char *slash = strrchr (self, '/');
  if (slash == NULL)
    return;
  *slash = '\0';
  int w = snprintf (buf, len, "%s/berth-convert", self);
  if (w < 0 || (size_t) w >= len || access (buf, X_OK) < 0)
    buf[0] = '\0';
}

int
image_convert_run (struct cli *cli, int argc, char **argv)
{
  (void) cli;
  (void) argc;
  (void) argv;
  char near[PATH_MAX];
  const char *prog = getenv ("BERTH_CONVERT");
  if (prog == NULL || *prog == '\0')
    {
      beside_self (near, sizeof near);
      prog = *near ? near : BERTH_CONVERT_BINARY;
    }
  fflush (NULL);
  execv (prog, cli_argv);
  fprintf (stderr, "berth: image convert: cannot run %s: %s (it comes with berth; set BERTH_CONVERT to its path)\n",
           prog, strerror (errno));
  return CLI_EXIT_FAIL;
}
