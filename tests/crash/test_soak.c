/* test_soak.c - the load generator's soak mode against a fresh budgetd:
 * no call fails, the server's state matches what the calls observed, and
 * the server's RSS at the end is within twice its RSS after the warm-up (a
 * leak detector, not a speed check: no latency or throughput is asserted).
 *
 * The test runs budgetd through the daemon harness and bench/loadgen as a
 * child, and keeps reading budgetd's sd_notify socket while the load runs:
 * budgetd's notifications are blocking sends, and its STATUS= line changes
 * at every tick under load, so a reader that stopped after READY=1 would
 * stall the daemon within a minute.
 *
 * One call in flight by default: the store's caches (a 64 MiB page cache,
 * maps of usage rows and holds) grow with the database during the first
 * minute, bounded, and at a higher rate they alone would double a 30-second
 * run's RSS (bench/SOAK.md has the figures). SOAK_SECONDS (default 30),
 * SOAK_INTERVAL (5) and SOAK_INFLIGHT (1) change the run; the 10-minute run
 * of bench/SOAK.md is SOAK_SECONDS=600 SOAK_INTERVAL=10 SOAK_INFLIGHT=32.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

#define SOAK_SECONDS_DEFAULT  30
#define SOAK_SECONDS_MAX      3600
#define SOAK_INTERVAL_DEFAULT 5
#define SOAK_INFLIGHT_DEFAULT 1
#define SOAK_WARMUP_S         "5"
#define SOAK_RSS_GROWTH_MAX   "2"
#define SOAK_SLACK_S          120 /* beyond warm-up + soak: drain and verification */
#define NOTIFY_MESSAGE_MAX    1024

extern char **environ;

static td_daemon d;

static void teardown(void)
{
	td_cleanup(&d);
}

TestSuite(soak, .fini = teardown, .timeout = SOAK_SECONDS_MAX + 600);

static int env_int(const char *name, int dflt, int lo, int hi)
{
	const char *v = getenv(name);

	if (!v || !*v)
		return dflt;
	int n = atoi(v);
	cr_assert(n >= lo && n <= hi, "%s must be in %d..%d", name, lo, hi);
	return n;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits (bounded) for `pid` to exit, reading budgetd's notifications
 * meanwhile. Its exit status, or -1 (killed after the deadline). */
static int wait_draining(pid_t pid, int timeout_ms)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0), status;
	int64_t deadline = now_ms() + timeout_ms;
	char msg[NOTIFY_MESSAGE_MAX];

	cr_assert_geq(pfd, 0, "pidfd_open: %s", strerror(errno));
	for (;;) {
		struct pollfd p[2] = {{.fd = pfd, .events = POLLIN},
		                      {.fd = d.notify_fd, .events = POLLIN}};
		int left = (int)(deadline - now_ms());
		if (left <= 0 || poll(p, 2, left) < 0)
			break;
		if (p[1].revents & POLLIN)
			(void)!recv(d.notify_fd, msg, sizeof(msg), MSG_DONTWAIT);
		if (p[0].revents & POLLIN) {
			close(pfd);
			cr_assert_eq(waitpid(pid, &status, 0), pid);
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		}
	}
	close(pfd);
	kill(pid, SIGKILL);
	(void)waitpid(pid, &status, 0);
	return -1;
}

Test(soak, a_soak_fails_no_call_and_keeps_the_server_rss_within_twice_its_warm_value)
{
	int seconds = env_int("SOAK_SECONDS", SOAK_SECONDS_DEFAULT, 1, SOAK_SECONDS_MAX);
	int interval = env_int("SOAK_INTERVAL", SOAK_INTERVAL_DEFAULT, 1, SOAK_SECONDS_MAX);
	int inflight = env_int("SOAK_INFLIGHT", SOAK_INFLIGHT_DEFAULT, 1, 4096);
	const char *loadgen = getenv("LOADGEN");
	char soak_s[16], interval_s[16], pid_s[16], inflight_s[16];
	pid_t pid;

	cr_assert(loadgen && *loadgen, "LOADGEN must name bench/loadgen");
	memset(&d, 0, sizeof(d));
	d.notify_fd = -1;
	/* info: the debug log would write a line per failed call */
	cr_assert_eq(td_start(&d, (const char *const[]){"--log-level", "info", NULL}), 0);
	snprintf(soak_s, sizeof(soak_s), "%d", seconds);
	snprintf(interval_s, sizeof(interval_s), "%d", interval);
	snprintf(pid_s, sizeof(pid_s), "%d", (int)d.pid);
	snprintf(inflight_s, sizeof(inflight_s), "%d", inflight);
	const char *argv[] = {loadgen,
	                      "--target",
	                      d.tcp_addr,
	                      "--server-pid",
	                      pid_s,
	                      "--soak",
	                      soak_s,
	                      "--interval",
	                      interval_s,
	                      "--warmup",
	                      SOAK_WARMUP_S,
	                      "--max-rss-growth",
	                      SOAK_RSS_GROWTH_MAX,
	                      "--inflight",
	                      inflight_s,
	                      "--call-timeout",
	                      "30",
	                      NULL};
	/* its report goes to the test's output */
	int rc = posix_spawn(&pid, loadgen, NULL, NULL, (char *const *)argv, environ);
	cr_assert_eq(rc, 0, "cannot spawn %s: %s", loadgen, strerror(rc));
	int status = wait_draining(pid, (atoi(SOAK_WARMUP_S) + seconds + SOAK_SLACK_S) * 1000);
	cr_assert_eq(status, 0, "loadgen exited with %d (its report is above)", status);
	cr_assert_eq(td_stop(&d), 0, "budgetd did not exit cleanly");
}
