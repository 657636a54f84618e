/* A plain (non-libFuzzer) driver for a fuzz target: linked with one
 * tests/fuzz/fuzz-*.c, it feeds LLVMFuzzerTestOneInput every file of the
 * target's checked-in seed corpus and of its regression inputs, so that
 * `make check` (gcc, ASan/UBSan) replays every crash ever found.
 *
 *   tests/fuzz/replay-fuzz-toml                 the default directories:
 *       FUZZ_DIR/corpus/<target> and FUZZ_DIR/regressions/<target>
 *   tests/fuzz/replay-fuzz-toml FILE|DIR...     just those
 *
 * A target reports a broken invariant by aborting, a sanitizer by exiting
 * non-zero, a hang by the alarm: each fails the test.  Ends with
 * "N passed, 0 failed". */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
const char *__asan_default_options (void);

/* As libFuzzer's -rss_limit_mb=2048 of fuzz-smoke: an input that makes the
 * code under test allocate without bound (an out-of-memory finding) fails
 * here too instead of eating the machine.  Read only under ASan. */
const char *
__asan_default_options (void)
{
  return "hard_rss_limit_mb=2048:malloc_limit_mb=2048";
}

static unsigned passed;
static const char *current;

/* A hang finding (libFuzzer -timeout) fails here too: an input gets
 * FUZZ_REPLAY_TIMEOUT seconds of CPU time (default 5: a seed takes
 * milliseconds under ASan; CPU time, so that a busy machine does not
 * count). */
static void
on_alarm (int sig)
{
  static const char msg[] = "replay: timed out: ";
  (void) sig;
  if (write (2, msg, sizeof msg - 1) < 0 || write (2, current, strlen (current)) < 0 || write (2, "\n", 1) < 0)
    {
    }
  _exit (1);
}

static int
replay_file (const char *path)
{
  FILE *f = fopen (path, "rb");
  if (f == NULL)
    {
      fprintf (stderr, "replay: %s: %s\n", path, strerror (errno));
      return -1;
    }
  size_t cap = 4096, len = 0, n;
  uint8_t *buf = malloc (cap);
  while (buf && (n = fread (buf + len, 1, cap - len, f)) > 0)
    {
      len += n;
      if (len == cap)
        {
          uint8_t *nb = realloc (buf, cap * 2);
          if (nb == NULL)
            free (buf);
          buf = nb;
          cap *= 2;
        }
    }
  int bad = ferror (f);
  fclose (f);
  if (buf == NULL || bad)
    {
      fprintf (stderr, "replay: %s: read failed\n", path);
      free (buf);
      return -1;
    }
  /* an exact-size copy, so that a read past the end is caught */
  uint8_t *exact = malloc (len ? len : 1);
  if (exact == NULL)
    abort ();
  memcpy (exact, buf, len);
  free (buf);
  fprintf (stderr, "replay: %s (%zu bytes)\n", path, len);
  const char *t = getenv ("FUZZ_REPLAY_TIMEOUT");
  current = path;
  struct itimerval limit = { .it_value = { .tv_sec = t && atoi (t) > 0 ? atoi (t) : 5 } }, off = { 0 };
  setitimer (ITIMER_PROF, &limit, NULL);
  LLVMFuzzerTestOneInput (exact, len);
  setitimer (ITIMER_PROF, &off, NULL);
  free (exact);
  passed++;
  return 0;
}

static int
by_name (const struct dirent **a, const struct dirent **b)
{
  return strcmp ((*a)->d_name, (*b)->d_name);
}

static int
replay_path (const char *path, int missing_ok)
{
  struct stat st;
  if (stat (path, &st) < 0)
    {
      if (missing_ok && errno == ENOENT)
        return 0;
      fprintf (stderr, "replay: %s: %s\n", path, strerror (errno));
      return -1;
    }
  if (!S_ISDIR (st.st_mode))
    return replay_file (path);
  struct dirent **ents;
  int n = scandir (path, &ents, NULL, by_name), r = 0;
  if (n < 0)
    {
      fprintf (stderr, "replay: %s: %s\n", path, strerror (errno));
      return -1;
    }
  for (int i = 0; i < n; i++)
    {
      if (ents[i]->d_name[0] != '.' && r == 0)
        {
          char p[4096];
          snprintf (p, sizeof p, "%s/%s", path, ents[i]->d_name);
          r = replay_path (p, 0);
        }
      free (ents[i]);
    }
  free (ents);
  return r;
}

int
main (int argc, char **argv)
{
  int r = 0;
  signal (SIGPROF, on_alarm);
  if (argc > 1)
    for (int i = 1; i < argc && r == 0; i++)
      r = replay_path (argv[i], 0);
  else
    {
      static const char *const sub[] = { "corpus", "regressions" };
      for (size_t i = 0; i < 2 && r == 0; i++)
        {
          char p[4096];
          snprintf (p, sizeof p, "%s/%s/%s", FUZZ_DIR, sub[i], FUZZ_TARGET);
          r = replay_path (p, 1);
        }
    }
  printf ("%s: %u passed, %d failed\n", FUZZ_TARGET, passed, r < 0 ? 1 : 0);
  return r < 0 ? 1 : 0;
}
