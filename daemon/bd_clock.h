/* bd_clock.h - the one clock of budgetd: hold deadlines, recorded times.
 *
 * Real time, unless the test hook BUDGETD_TEST_CLOCK_FILE names a file:
 * then real time plus the offset in whole seconds that file holds ("3600",
 * "-5"; missing or empty: 0). The file is read at every call, so a test
 * moves time by rewriting it. The store is given this clock (bs_options),
 * so deadlines and the writer's expiry see the same time.
 */
#ifndef BD_CLOCK_H
#define BD_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

#define BD_CLOCK_FILE_ENV "BUDGETD_TEST_CLOCK_FILE"
#define BD_CLOCK_PATH_MAX 4096

typedef struct bd_clock {
	char offset_file[BD_CLOCK_PATH_MAX]; /* "" for real time */
	bool warned;                         /* a bad offset file was logged */
} bd_clock;

/* Sets the clock up from the environment. 0, or -ENAMETOOLONG. */
int bd_clock_init(bd_clock *c);

/* True when the test hook is on. */
bool bd_clock_is_offset(const bd_clock *c);

/* Unix time in nanoseconds (a bs_clock_fn; ctx is the bd_clock, or NULL
 * for real time). The store calls it on the writer thread only. */
int64_t bd_clock_now(void *ctx);

#endif
