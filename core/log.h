/* berthd's log: one line per event on stderr.  Under systemd (JOURNAL_STREAM
 * set) each line starts with the syslog priority "<N>" that journald reads;
 * otherwise with a timestamp and the level name. */
#ifndef BERTH_CORE_LOG_H
#define BERTH_CORE_LOG_H

#include <berth/plugin.h>

/* "debug", "info", "warn"/"warning", "error"; returns BERTH_E_INVALID otherwise. */
int log_set_level_name (const char *name);
void log_set_level (int level);
int log_level (void);
void log_msg (int level, const char *fmt, ...) BERTH_PRINTF (2, 3);

#define log_error(...) log_msg (BERTH_LOG_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg (BERTH_LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg (BERTH_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg (BERTH_LOG_DEBUG, __VA_ARGS__)

#endif
