/* berth/failpoint.h: named fault-injection points, header-only.
 *
 *   #include <berth/failpoint.h>
 *   ...
 *   BERTH_FAILPOINT ("content-commit-before-rename");
 *
 * A failpoint does nothing unless the environment variable BERTH_FAILPOINTS
 * names it.  The variable is a comma-separated list of
 *
 *   NAME[@N][=ACTION]
 *
 * NAME     the failpoint's name ([A-Za-z0-9._-], at most 63 bytes);
 * @N       fire only on the N-th time the point is reached in this process
 *          (N >= 1; hits are counted per process, per source file: give
 *          each name one call site, or several in one file);
 * ACTION   kill      SIGKILL the whole process (the default): a crash at
 *                    exactly this point, nothing flushed, no atexit;
 *          exit      _exit (1): the same without the signal;
 *          sleep:MS  sleep MS milliseconds (0..600000), then go on: widens a
 *                    window so that a test can kill or race at will.
 *
 * e.g. BERTH_FAILPOINTS=unpack-entry@40,gc-sweep-blob=sleep:200
 *
 * Before it acts, a firing failpoint writes one line to stderr,
 * "berth failpoint NAME fired (ACTION, hit N)", so that a test can tell
 * from the daemon's log that the point was reached.  Entries that do not
 * parse are ignored with one line on stderr naming them.
 *
 * Cost: the variable is read and parsed once per source file that uses
 * failpoints (pthread_once: thread-safe); afterwards an unset variable costs
 * one pthread_once check and one predictable branch.  So failpoints stay
 * compiled in every build — the fault harness (tests/faults/) runs against
 * the binaries that ship.  Define BERTH_NO_FAILPOINTS before including this
 * header to compile them out.  Under a set-user-ID or set-group-ID program
 * the variable is ignored (secure_getenv).
 *
 * The variable is inherited by child processes; only programs that contain
 * a failpoint of that name react to it.
 *
 * Usable by core, built-in and third-party plugins: needs only libc
 * (pthread_once is in glibc's libc since 2.34), no berth host symbol.
 */
#ifndef BERTH_FAILPOINT_H
#define BERTH_FAILPOINT_H

#ifdef BERTH_NO_FAILPOINTS

#define BERTH_FAILPOINT(name)                                                                                      \
  do                                                                                                               \
    {                                                                                                              \
    }                                                                                                              \
  while (0)

#else

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BERTH_FAILPOINTS_ENV "BERTH_FAILPOINTS"
#define BERTH_FAILPOINT_MAX 32
#define BERTH_FAILPOINT_NAME_MAX 64

enum berth_failpoint_action
{
  BERTH_FP_KILL,
  BERTH_FP_EXIT,
  BERTH_FP_SLEEP,
};

struct berth_failpoint_entry
{
  char name[BERTH_FAILPOINT_NAME_MAX];
  enum berth_failpoint_action action;
  unsigned long nth;  /* 0: every hit */
  unsigned long ms;   /* sleep */
  unsigned long hits; /* atomic */
};

/* One table per translation unit (static): parsed once, then read-only but
 * for the hit counters. */
static struct
{
  pthread_once_t once;
  bool any;
  size_t n;
  struct berth_failpoint_entry e[BERTH_FAILPOINT_MAX];
} berth_failpoints_ __attribute__ ((unused)) = { PTHREAD_ONCE_INIT, false, 0, { { { 0 }, BERTH_FP_KILL, 0, 0, 0 } } };

static inline void
berth_failpoint_say_ (const char *a, const char *b, const char *c)
{
  char line[256];
  int n = snprintf (line, sizeof line, "berth failpoint %s%s%s\n", a, b, c);
  if (n > 0)
    (void) !write (STDERR_FILENO, line, (size_t) n < sizeof line ? (size_t) n : sizeof line - 1);
}

/* Parse an unsigned decimal of at most 9 digits; false on anything else. */
static inline bool
berth_failpoint_number_ (const char *s, size_t len, unsigned long *ret)
{
  if (len == 0 || len > 9)
    return false;
  unsigned long v = 0;
  for (size_t i = 0; i < len; i++)
    {
      if (s[i] < '0' || s[i] > '9')
        return false;
      v = v * 10 + (unsigned long) (s[i] - '0');
    }
  *ret = v;
  return true;
}

/* One "NAME[@N][=ACTION]" of len bytes (not NUL-terminated). */
static inline bool
berth_failpoint_parse_one_ (const char *s, size_t len, struct berth_failpoint_entry *ret)
{
  memset (ret, 0, sizeof *ret);
  const char *eq = memchr (s, '=', len);
  size_t head = eq ? (size_t) (eq - s) : len;
  const char *at = memchr (s, '@', head);
  size_t nlen = at ? (size_t) (at - s) : head;
  if (nlen == 0 || nlen >= BERTH_FAILPOINT_NAME_MAX)
    return false;
  for (size_t i = 0; i < nlen; i++)
    {
      char c = s[i];
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'
            || c == '.'))
        return false;
    }
  memcpy (ret->name, s, nlen);
  if (at && (!berth_failpoint_number_ (at + 1, head - nlen - 1, &ret->nth) || ret->nth == 0))
    return false;
  ret->action = BERTH_FP_KILL;
  if (eq == NULL)
    return true;
  const char *a = eq + 1;
  size_t alen = len - head - 1;
  if (alen == 4 && memcmp (a, "kill", 4) == 0)
    return true;
  if (alen == 4 && memcmp (a, "exit", 4) == 0)
    {
      ret->action = BERTH_FP_EXIT;
      return true;
    }
  if (alen > 6 && memcmp (a, "sleep:", 6) == 0 && berth_failpoint_number_ (a + 6, alen - 6, &ret->ms)
      && ret->ms <= 600000)
    {
      ret->action = BERTH_FP_SLEEP;
      return true;
    }
  return false;
}

static inline void
berth_failpoint_init_ (void)
{
  const char *v;
#if defined(__USE_GNU)
  v = secure_getenv (BERTH_FAILPOINTS_ENV);
#else
  v = getenv (BERTH_FAILPOINTS_ENV);
#endif
  if (v == NULL)
    return;
  size_t total = strnlen (v, 8192);
  for (size_t off = 0; off < total;)
    {
      const char *item = v + off;
      const char *comma = memchr (item, ',', total - off);
      size_t len = comma ? (size_t) (comma - item) : total - off;
      off += len + 1;
      if (len == 0)
        continue;
      struct berth_failpoint_entry e;
      if (berth_failpoints_.n < BERTH_FAILPOINT_MAX && berth_failpoint_parse_one_ (item, len, &e))
        {
          berth_failpoints_.e[berth_failpoints_.n++] = e;
          berth_failpoints_.any = true;
        }
      else
        {
          char bad[80];
          snprintf (bad, sizeof bad, "%.*s", (int) (len < 60 ? len : 60), item);
          berth_failpoint_say_ ("ignored: `", bad, "` (want NAME[@N][=kill|exit|sleep:MS], at most 32)");
        }
    }
}

static inline void
berth_failpoint_fire_ (const struct berth_failpoint_entry *e, unsigned long hit)
{
  static const char *const names[] = { "kill", "exit", "sleep" };
  char what[64];
  snprintf (what, sizeof what, " fired (%s, hit %lu)", names[e->action], hit);
  berth_failpoint_say_ (e->name, what, "");
  switch (e->action)
    {
    case BERTH_FP_KILL:
      kill (getpid (), SIGKILL);
      _exit (137); /* not reached */
    case BERTH_FP_EXIT:
      _exit (1);
    case BERTH_FP_SLEEP:
      {
        struct timespec ts = { (time_t) (e->ms / 1000), (long) (e->ms % 1000) * 1000000L };
        while (nanosleep (&ts, &ts) < 0 && errno == EINTR)
          ;
        break;
      }
    }
}

static inline void
berth_failpoint_hit_ (const char *name)
{
  for (size_t i = 0; i < berth_failpoints_.n; i++)
    {
      struct berth_failpoint_entry *e = &berth_failpoints_.e[i];
      if (strcmp (e->name, name) != 0)
        continue;
      unsigned long hit = __atomic_add_fetch (&e->hits, 1, __ATOMIC_RELAXED);
      if (e->nth == 0 || hit == e->nth)
        berth_failpoint_fire_ (e, hit);
    }
}

/* The check: parse once, then act only when the variable named something. */
#define BERTH_FAILPOINT(name)                                                                                      \
  do                                                                                                               \
    {                                                                                                              \
      pthread_once (&berth_failpoints_.once, berth_failpoint_init_);                                              \
      if (__builtin_expect (berth_failpoints_.any, 0))                                                             \
        berth_failpoint_hit_ (name);                                                                               \
    }                                                                                                              \
  while (0)

#endif /* BERTH_NO_FAILPOINTS */

#endif
