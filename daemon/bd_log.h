/* bd_log.h - one line per event on stderr (or a file), with a level. */
#ifndef BD_LOG_H
#define BD_LOG_H

typedef enum bd_log_level {
	BD_LOG_ERROR = 0,
	BD_LOG_WARN = 1,
	BD_LOG_INFO = 2,
	BD_LOG_DEBUG = 3,
} bd_log_level;

/* Parses "error", "warn", "info", "debug". 0 or -1. */
int bd_log_parse_level(const char *name, bd_log_level *out);

void bd_log_set_level(bd_log_level level);

/* Logs to `path` (appending) instead of stderr; NULL: stderr. 0 or -errno. */
int bd_log_open(const char *path);

/* Re-opens the log file (after rotation; SIGHUP). 0 or -errno. */
int bd_log_reopen(void);

/* Thread-safe: each call writes one whole line with a single write(2). */
void bd_log(bd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define bd_log_error(...) bd_log(BD_LOG_ERROR, __VA_ARGS__)
#define bd_log_warn(...)  bd_log(BD_LOG_WARN, __VA_ARGS__)
#define bd_log_info(...)  bd_log(BD_LOG_INFO, __VA_ARGS__)
#define bd_log_debug(...) bd_log(BD_LOG_DEBUG, __VA_ARGS__)

#endif
