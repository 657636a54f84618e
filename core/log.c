#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>

#include "log.h"

static int current_level = BERTH_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void
log_set_level (int level)
{
  current_level = level;
}

int
log_level (void)
{
  return current_level;
}

int
log_set_level_name (const char *name)
{
  static const struct
  {
    const char *name;
    int level;
  } names[] = {
    { "debug", BERTH_LOG_DEBUG }, { "info", BERTH_LOG_INFO },   { "warn", BERTH_LOG_WARNING },
    { "warning", BERTH_LOG_WARNING }, { "error", BERTH_LOG_ERROR },
  };
  for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
    if (strcmp (name, names[i].name) == 0)
      {
        current_level = names[i].level;
        return 0;
      }
  return BERTH_E_INVALID;
}

static const char *
level_name (int level)
{
  switch (level)
    {
    case BERTH_LOG_ERROR: return "error";
    case BERTH_LOG_WARNING: return "warning";
    case BERTH_LOG_INFO: return "info";
    default: return "debug";
    }
}

void
log_msg (int level, const char *fmt, ...)
{
  if (level > current_level)
    return;
  char msg[2048];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  /* One line per event: fold embedded newlines. */
  for (char *c = msg; *c; c++)
    if (*c == '\n')
      *c = ' ';
  pthread_mutex_lock (&log_lock);
  if (getenv ("JOURNAL_STREAM"))
    fprintf (stderr, "<%d>%s\n", level, msg);
  else
    {
      struct timespec ts;
      struct tm tm;
      char when[32];
      clock_gettime (CLOCK_REALTIME, &ts);
      gmtime_r (&ts.tv_sec, &tm);
      strftime (when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
      fprintf (stderr, "%s.%03ldZ %-7s %s\n", when, ts.tv_nsec / 1000000, level_name (level), msg);
    }
  fflush (stderr);
  pthread_mutex_unlock (&log_lock);
}
