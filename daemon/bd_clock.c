/* bd_clock.c - see bd_clock.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bd_clock.h"
#include "bd_log.h"

#define NS_PER_S         1000000000LL
#define OFFSET_S_MAX     (100LL * 365 * 24 * 3600) /* a century either way */
#define OFFSET_BYTES_MAX 32

int bd_clock_init(bd_clock *c)
{
	const char *path = getenv(BD_CLOCK_FILE_ENV);

	memset(c, 0, sizeof(*c));
	if (!path || !*path)
		return 0;
	if (strlen(path) >= sizeof(c->offset_file))
		return -ENAMETOOLONG;
	memcpy(c->offset_file, path, strlen(path) + 1);
	return 0;
}

bool bd_clock_is_offset(const bd_clock *c)
{
	return c->offset_file[0] != '\0';
}

/* The file's offset in seconds: 0 when it is missing or empty (time not
 * moved yet); a bad one is logged once and counts as 0. */
static int64_t read_offset_s(bd_clock *c)
{
	char buf[OFFSET_BYTES_MAX + 1];
	int fd = open(c->offset_file, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, OFFSET_BYTES_MAX);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *end;
	errno = 0;
	long long s = strtoll(buf, &end, 10);
	while (*end == '\n' || *end == ' ')
		end++;
	if (errno || end == buf || *end || s > OFFSET_S_MAX || s < -OFFSET_S_MAX) {
		if (!c->warned)
			bd_log_warn("%s: `%.*s` is not an offset in seconds; using 0",
			            c->offset_file, (int)strcspn(buf, "\n"), buf);
		c->warned = true;
		return 0;
	}
	return s;
}

int64_t bd_clock_now(void *ctx)
{
	bd_clock *c = ctx;
	struct timespec ts;

	/* Cannot fail for CLOCK_REALTIME with a valid pointer. */
	(void)clock_gettime(CLOCK_REALTIME, &ts);
	int64_t now = (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
	if (c && c->offset_file[0])
		now += read_offset_s(c) * NS_PER_S;
	return now;
}
