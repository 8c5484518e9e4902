/* bd_log.c - see bd_log.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bd_log.h"

#define LOG_LINE_MAX 2048
#define LOG_PATH_MAX 4096

static _Atomic int log_level = BD_LOG_INFO;
static _Atomic int log_fd = STDERR_FILENO;
static char log_path[LOG_PATH_MAX];

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int bd_log_parse_level(const char *name, bd_log_level *out)
{
	for (int i = 0; i <= BD_LOG_DEBUG; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (bd_log_level)i;
			return 0;
		}
	}
	return -1;
}

void bd_log_set_level(bd_log_level level)
{
	log_level = level;
}

static int open_log_file(void)
{
	int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd < 0)
		return -errno;
	int old = atomic_exchange(&log_fd, fd);
	if (old != STDERR_FILENO)
		close(old);
	return 0;
}

int bd_log_open(const char *path)
{
	if (!path) {
		log_path[0] = '\0';
		return 0;
	}
	if (snprintf(log_path, sizeof(log_path), "%s", path) >= (int)sizeof(log_path))
		return -ENAMETOOLONG;
	return open_log_file();
}

int bd_log_reopen(void)
{
	return log_path[0] ? open_log_file() : 0;
}

void bd_log(bd_log_level level, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if ((int)level > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
	             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	             ts.tv_nsec / 1000000, level_names[level]);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 2; /* truncated: still one line */
	/* One line stays one line: a message may carry client text. */
	for (int i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	/* A failed log write has nowhere to be reported. */
	(void)!write(log_fd, line, (size_t)n);
}
