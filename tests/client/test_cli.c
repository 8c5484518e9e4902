/* test_cli.c - the real budgetctl binary ($BUDGETCTL) against a real
 * budgetd: every subcommand in human and JSON output, exit codes, bad
 * arguments and --help. Each run is bounded (RUN_TIMEOUT_MS). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

/* Every suite of this file has the same criterion timeout: with different
 * ones, LeakSanitizer reported a 48-byte leak in criterion 2.4's runner at
 * exit (a timeout record of its bundled BoxFort, bxfi_push_timeout). */
#define TEST_TIMEOUT_S 240
#define RUN_TIMEOUT_MS 60000
#define ARGS_MAX       48
#define ENV_MAX        512
#define OUT_BYTES_MAX  (256 * 1024)
#define ERR_BYTES_MAX  8192
#define ADDR_SIZE      64

extern char **environ;

/* What the last run printed. */
static char out[OUT_BYTES_MAX];
static char err[ERR_BYTES_MAX];

/* Exit codes (budgetctl --help). */
enum {
	EXIT_OK = 0,
	EXIT_DENIED = 1,
	EXIT_USAGE = 2,
	EXIT_GRPC_BASE = 3,
};

static const char *budgetctl_path(void)
{
	const char *p = getenv("BUDGETCTL");
	return p ? p : "budgetctl";
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Appends what is readable on *fd to buf; closes it (-1) at EOF. */
static void drain(int *fd, char *buf, size_t cap, size_t *len)
{
	char scratch[4096];
	ssize_t n;
	bool full = *len + 1 >= cap;

	n = full ? read(*fd, scratch, sizeof(scratch)) : read(*fd, buf + *len, cap - 1 - *len);
	if (n < 0 && errno == EINTR)
		return;
	if (n <= 0) {
		close(*fd);
		*fd = -1;
		return;
	}
	cr_assert_not(full, "budgetctl printed more than %zu bytes", cap - 1);
	*len += (size_t)n;
	buf[*len] = '\0';
}

/* Runs budgetctl with `args` (NULL-terminated, argv[0] excluded) and
 * `env` (one "NAME=value" or NULL) added to our environment, minus
 * BUDGETD_ADDR and gRPC's log settings. Fills `out` and `err`; returns the
 * exit status. */
static int run(const char *const *args, const char *env)
{
	const char *argv[ARGS_MAX];
	char *envp[ENV_MAX];
	int n = 0, e = 0, po[2], pe[2], status;
	size_t olen = 0, elen = 0;
	posix_spawn_file_actions_t fa;
	pid_t pid;

	argv[n++] = budgetctl_path();
	for (int i = 0; args[i]; i++) {
		cr_assert_lt(n, ARGS_MAX - 1);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	for (char **v = environ; *v && e < ENV_MAX - 2; v++)
		if (strncmp(*v, "BUDGETD_ADDR=", 13) && strncmp(*v, "GRPC_VERBOSITY=", 15) &&
		    strncmp(*v, "GRPC_TRACE=", 11))
			envp[e++] = *v;
	if (env)
		envp[e++] = (char *)env;
	envp[e] = NULL;

	cr_assert_eq(pipe2(po, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(pe, O_CLOEXEC), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, po[1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, pe[1], STDERR_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	close(po[1]);
	close(pe[1]);
	cr_assert_eq(rc, 0, "cannot run %s: %s", argv[0], strerror(rc));

	/* Read both pipes to their end, then reap: all within the deadline. */
	int64_t deadline = now_ms() + RUN_TIMEOUT_MS;
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	out[0] = err[0] = '\0';
	while (po[0] >= 0 || pe[0] >= 0) {
		struct pollfd p[2] = {{.fd = po[0], .events = POLLIN},
		                      {.fd = pe[0], .events = POLLIN}};
		int left = (int)(deadline - now_ms());
		if (left <= 0 || poll(p, 2, left) == 0)
			break;
		if (p[0].revents)
			drain(&po[0], out, sizeof(out), &olen);
		if (p[1].revents)
			drain(&pe[0], err, sizeof(err), &elen);
	}
	struct pollfd exited = {.fd = pfd, .events = POLLIN};
	int left = (int)(deadline - now_ms());
	bool done = pfd >= 0 && left > 0 && poll(&exited, 1, left) == 1;
	if (!done)
		kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	if (pfd >= 0)
		close(pfd);
	if (po[0] >= 0)
		close(po[0]);
	if (pe[0] >= 0)
		close(pe[0]);
	cr_assert(done, "budgetctl %s did not end within %d ms", args[0] ? args[0] : "",
	          RUN_TIMEOUT_MS);
	cr_assert(WIFEXITED(status), "budgetctl was killed by signal %d", WTERMSIG(status));
	return WEXITSTATUS(status);
}

#define CTL(...)     run((const char *const[]){__VA_ARGS__, NULL}, NULL)
#define CTL_ENV(...) run((const char *const[]){__VA_ARGS__, NULL}, env_)
/* At the test's budgetd, over TCP. */
#define CTLA(...) run((const char *const[]){"--addr", daemon_.tcp_addr, __VA_ARGS__, NULL}, NULL)

static const char *env_; /* for CTL_ENV */

/* The run succeeded quietly. */
static void expect_ok(int rc)
{
	cr_assert_eq(rc, EXIT_OK, "exit %d; stderr: %s", rc, err);
	cr_assert_str_empty(err);
}

/* The run failed with `code` and one line "budgetctl: ..." on stderr that
 * contains `part`, and printed nothing on stdout. */
static void expect_failure(int rc, int code, const char *part)
{
	cr_assert_eq(rc, code, "exit %d, expected %d; stderr: %s", rc, code, err);
	cr_assert_str_empty(out, "stdout: %s", out);
	cr_assert(strncmp(err, "budgetctl: ", 11) == 0, "stderr: %s", err);
	char *nl = strchr(err, '\n');
	cr_assert(nl && nl[1] == '\0', "not one line: %s", err);
	cr_assert(strstr(err, part), "stderr `%s` lacks `%s`", err, part);
}

static void expect_grpc_error(int rc, int status, const char *part)
{
	expect_failure(rc, EXIT_GRPC_BASE + status, part);
	cr_assert(strstr(err, bc_status_name(status)), "stderr lacks the status name: %s", err);
}

/* ---- human output ------------------------------------------------------------ */

/* The value of `key` in a "key: value" block of `out`, or NULL. */
static const char *kv(const char *key)
{
	static char value[512];
	size_t klen = strlen(key);

	for (const char *line = out; *line;) {
		const char *end = strchrnul(line, '\n');
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			const char *v = line + klen + 1;
			while (*v == ' ')
				v++;
			snprintf(value, sizeof(value), "%.*s", (int)(end - v), v);
			return value;
		}
		line = *end ? end + 1 : end;
	}
	return NULL;
}

static void expect_kv(const char *key, const char *want)
{
	const char *got = kv(key);
	cr_assert(got, "no `%s:` in\n%s", key, out);
	cr_assert_str_eq(got, want, "%s: `%s`, expected `%s`", key, got, want);
}

/* Every line of a "key: value" block has its value in the same column. */
static void expect_kv_aligned(void)
{
	long column = -1;
	int lines = 0;

	for (const char *line = out; *line;) {
		const char *end = strchrnul(line, '\n');
		const char *colon = memchr(line, ':', (size_t)(end - line));
		cr_assert(colon, "not key: value: %.*s", (int)(end - line), line);
		const char *v = colon + 1;
		while (*v == ' ')
			v++;
		if (column < 0)
			column = v - line;
		cr_assert_eq(v - line, column, "misaligned: %.*s", (int)(end - line), line);
		lines++;
		line = *end ? end + 1 : end;
	}
	cr_assert_gt(lines, 1);
}

/* The lines of a table: the header and the rows; `n` of them. */
static size_t table_lines(char lines[][1024], size_t max)
{
	size_t n = 0;

	for (const char *line = out; *line && n < max;) {
		const char *end = strchrnul(line, '\n');
		snprintf(lines[n++], 1024, "%.*s", (int)(end - line), line);
		line = *end ? end + 1 : end;
	}
	return n;
}

/* In every line of a table, column `header` (right-aligned) ends where
 * the header ends. */
static void expect_right_aligned(char lines[][1024], size_t n, const char *header)
{
	const char *h = strstr(lines[0], header);
	cr_assert(h, "no column %s in %s", header, lines[0]);
	size_t end = (size_t)(h - lines[0]) + strlen(header);

	for (size_t i = 1; i < n; i++) {
		cr_assert_geq(strlen(lines[i]), end, "row too short: %s", lines[i]);
		cr_assert_neq(lines[i][end - 1], ' ', "%s not right-aligned in: %s", header,
		              lines[i]);
		cr_assert(lines[i][end] == ' ' || lines[i][end] == '\0', "%s overflows in: %s",
		          header, lines[i]);
	}
}

/* ---- JSON output -------------------------------------------------------------- */

static json_t *json_out(void)
{
	json_error_t jerr;
	json_t *root = json_loads(out, 0, &jerr);

	cr_assert(root, "not JSON (%s, line %d): %s", jerr.text, jerr.line, out);
	return root;
}

/* protobuf's JSON names: lowerCamelCase, no underscores, all the way down. */
static void expect_camel_case(json_t *v)
{
	if (json_is_object(v)) {
		for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
			const char *key = json_object_iter_key(it);

			cr_assert(key[0] >= 'a' && key[0] <= 'z', "key `%s`", key);
			cr_assert_null(strchr(key, '_'), "key `%s`", key);
			expect_camel_case(json_object_iter_value(it));
		}
	} else if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++)
			expect_camel_case(json_array_get(v, i));
	}
}

/* The value at a dotted path ("authorized.metadata.eventId"), or NULL. */
static json_t *jget(json_t *root, const char *path)
{
	char buf[256], *save = NULL;
	json_t *v = root;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *part = strtok_r(buf, ".", &save); part && v; part = strtok_r(NULL, ".", &save))
		v = json_object_get(v, part);
	return v;
}

static void expect_jstr(json_t *root, const char *path, const char *want)
{
	json_t *v = jget(root, path);
	cr_assert(json_is_string(v), "%s is not a string", path);
	cr_assert_str_eq(json_string_value(v), want, "%s", path);
}

/* A 64-bit integer: a string of digits, as protobuf's JSON mapping says. */
static void expect_ju64(json_t *root, const char *path, uint64_t want)
{
	json_t *v = jget(root, path);
	char buf[32];
	cr_assert(json_is_string(v), "%s: a 64-bit integer must be a string", path);
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)want);
	cr_assert_str_eq(json_string_value(v), buf, "%s", path);
}

/* A 32-bit integer: a JSON number. */
static void expect_jint(json_t *root, const char *path, long long want)
{
	json_t *v = jget(root, path);
	cr_assert(json_is_integer(v), "%s: a 32-bit integer must be a number", path);
	cr_assert_eq(json_integer_value(v), want, "%s", path);
}

static void expect_jbool(json_t *root, const char *path, bool want)
{
	json_t *v = jget(root, path);
	cr_assert(json_is_boolean(v), "%s is not a boolean", path);
	cr_assert_eq(json_is_true(v), want, "%s", path);
}

static void expect_jabsent(json_t *root, const char *path)
{
	cr_assert_null(jget(root, path), "%s should be absent", path);
}

/* An RFC 3339 UTC timestamp string. */
static void expect_jtime(json_t *root, const char *path)
{
	json_t *v = jget(root, path);
	cr_assert(json_is_string(v), "%s is not a string", path);
	const char *s = json_string_value(v);
	struct tm tm;
	const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	cr_assert(rest && rest[strlen(rest) - 1] == 'Z' && tm.tm_year >= 100, "%s: `%s`", path, s);
}

static bool is_event_id(const char *s)
{
	return s && strlen(s) == 32 && strspn(s, "0123456789abcdef") == 32;
}

/* ---- addresses nobody answers on ------------------------------------------------ */

/* A bound TCP socket that does not listen: connections are refused, and
 * the port stays ours while the socket is open. */
static int refusing_port(char addr[ADDR_SIZE], bool listening)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (listening) /* never accepts: a server that never answers */
		cr_assert_eq(listen(fd, 16), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(addr, ADDR_SIZE, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
	return fd;
}

/* ---- the commands against budgetd ----------------------------------------------- */

TestSuite(cli, .init = fx_setup, .fini = fx_teardown, .timeout = TEST_TIMEOUT_S);

Test(cli, authorize_prints_the_decision_and_exits_1_when_denied)
{
	expect_ok(CTLA("authorize", "--capability", "cap", "--grant", "1", "--units", "100",
	               "--hold", "h1", "--max-total", "150"));
	expect_kv_aligned();
	expect_kv("decision", "authorized");
	expect_kv("hold_id", "h1");
	expect_kv("authorized_exposure_units", "100");
	expect_kv("committed_cost_units_after", "100");
	expect_kv("invocation_count_after", "1");
	expect_kv("budget_commit_index", "1");
	expect_kv("replayed", "false");
	cr_assert(is_event_id(kv("event_id")), "a generated event_id: %s", kv("event_id"));

	int rc = CTLA("authorize", "--capability", "cap", "--grant", "1", "--units", "100",
	              "--hold", "h2", "--max-total", "150");
	cr_assert_eq(rc, EXIT_DENIED, "exit %d; %s", rc, err);
	cr_assert_str_empty(err, "a denial is an answer, not an error: %s", err);
	expect_kv("decision", "denied");
	expect_kv("denial_reason", "max_total_cost");
	expect_kv("attempted_exposure_units", "100");
	expect_kv("budget_commit_index", "-");

	/* What the CLI sent is what budgetd recorded. */
	bc_usage_result u;
	bc_error e;
	cr_assert_eq(bc_get_usage(client, "cap", 1, 0, &u, &e), 0, "%s", e.message);
	cr_assert_eq(u.usage.total_cost_exposed, 100);
	cr_assert_eq(u.usage.invocation_count, 1);
	bc_usage_result_free(&u);
}

Test(cli, authorize_json_has_protobuf_names_and_64_bit_integers_as_strings)
{
	expect_ok(CTLA("--json", "authorize", "--capability", "cap", "--grant", "7", "--units",
	               "18446744073709551615", "--hold", "big", "--event", "ev-1"));
	json_t *j = json_out();
	expect_camel_case(j);
	expect_jstr(j, "authorized.holdId", "big");
	expect_ju64(j, "authorized.authorizedExposureUnits", UINT64_MAX);
	expect_ju64(j, "authorized.committedCostUnitsAfter", UINT64_MAX);
	expect_jint(j, "authorized.invocationCountAfter", 1);
	expect_jstr(j, "authorized.metadata.eventId", "ev-1");
	expect_ju64(j, "authorized.metadata.budgetCommitIndex", 1);
	expect_jbool(j, "authorized.metadata.replayed", false);
	expect_jstr(j, "authorized.metadata.guaranteeLevel", "GUARANTEE_LEVEL_SINGLE_NODE_ATOMIC");
	expect_jstr(j, "authorized.metadata.budgetProfile",
	            "BUDGET_PROFILE_AUTHORITATIVE_HOLD_EVENT");
	expect_jstr(j, "authorized.metadata.meteringProfile",
	            "METERING_PROFILE_MAX_COST_PREAUTHORIZE_THEN_RECONCILE_ACTUAL");
	expect_jabsent(j, "authorized.metadata.budgetTerm");
	expect_jabsent(j, "denied");
	json_decref(j);

	/* Denied: another top-level key, no commit index. */
	int rc = CTLA("authorize", "--capability", "cap", "--grant", "8", "--units", "5",
	              "--max-cost-per-invocation", "4", "-j");
	cr_assert_eq(rc, EXIT_DENIED, "exit %d; %s", rc, err);
	j = json_out();
	expect_camel_case(j);
	expect_jabsent(j, "authorized");
	expect_jabsent(j, "denied.holdId");
	expect_ju64(j, "denied.attemptedExposureUnits", 5);
	expect_jstr(j, "denied.denialReason", "DENIAL_REASON_MAX_COST_PER_INVOCATION");
	expect_jabsent(j, "denied.metadata.budgetCommitIndex");
	cr_assert(is_event_id(json_string_value(jget(j, "denied.metadata.eventId"))));
	json_decref(j);
}

Test(cli, the_same_event_again_is_a_replay_and_a_different_request_already_exists)
{
	const char *argv_[] = {"--addr", daemon_.tcp_addr, "authorize", "--capability",
	                       "cap",    "--grant",        "0",         "--units",
	                       "10",     "--event",        "retry-me",  NULL};
	expect_ok(run(argv_, NULL));
	expect_kv("replayed", "false");
	expect_kv("budget_commit_index", "1");
	expect_ok(run(argv_, NULL));
	expect_kv("replayed", "true");
	expect_kv("budget_commit_index", "1");
	expect_kv("event_id", "retry-me");

	expect_grpc_error(CTLA("authorize", "--capability", "cap", "--grant", "0", "--units", "11",
	                       "--event", "retry-me"),
	                  BC_STATUS_ALREADY_EXISTS, "was reused for a different mutation");
	expect_ok(CTLA("authorize", "--capability", "cap", "--grant", "0", "--units", "1", "--hold",
	               "h"));
	expect_grpc_error(CTLA("authorize", "--capability", "cap", "--grant", "0", "--units", "1",
	                       "--hold", "h"),
	                  BC_STATUS_ALREADY_EXISTS, "budget hold `h` already exists");
	cr_assert(strstr(err, "AuthorizeHold on 127.0.0.1:"), "names the call: %s", err);
}

Test(cli, release_gives_back_exposure_in_human_and_json_output)
{
	expect_ok(CTLA("authorize", "--capability", "cap", "--grant", "2", "--units", "50",
	               "--hold", "h1"));
	expect_ok(CTLA("release", "--capability", "cap", "--grant", "2", "--hold", "h1", "--units",
	               "20"));
	expect_kv_aligned();
	expect_kv("hold_id", "h1");
	expect_kv("exposure_units", "20");
	expect_kv("realized_spend_units", "0");
	expect_kv("committed_cost_units_after", "30");
	expect_kv("invocation_count_after", "1");
	expect_kv("budget_commit_index", "2");

	expect_ok(CTLA("release", "--json", "--capability", "cap", "--grant", "2", "--hold", "h1",
	               "--units", "30", "--event", "rel-2"));
	json_t *j = json_out();
	expect_camel_case(j);
	expect_jstr(j, "holdId", "h1");
	expect_ju64(j, "exposureUnits", 30);
	expect_ju64(j, "committedCostUnitsAfter", 0);
	expect_jint(j, "invocationCountAfter", 1);
	expect_jstr(j, "metadata.eventId", "rel-2");
	expect_ju64(j, "metadata.budgetCommitIndex", 3);
	json_decref(j);

	expect_ok(CTLA("hold", "h1", "--json"));
	j = json_out();
	expect_jstr(j, "hold.disposition", "HOLD_DISPOSITION_RELEASED");
	json_decref(j);

	expect_grpc_error(CTLA("release", "--capability", "cap", "--grant", "2", "--hold", "h1",
	                       "--units", "1"),
	                  BC_STATUS_FAILED_PRECONDITION, "budget hold `h1` is no longer open");
	expect_grpc_error(CTLA("release", "--capability", "cap", "--grant", "2", "--hold", "nope",
	                       "--units", "1"),
	                  BC_STATUS_FAILED_PRECONDITION, "missing budget hold `nope`");
}

Test(cli, reverse_undoes_the_invocation_in_human_and_json_output)
{
	expect_ok(CTLA("authorize", "--capability", "cap", "--grant", "0", "--units", "7", "--hold",
	               "h1"));
	expect_ok(CTLA("reverse", "--capability", "cap", "--grant", "0", "--hold", "h1", "--units",
	               "7"));
	expect_kv("hold_id", "h1");
	expect_kv("exposure_units", "7");
	expect_kv("invocation_count_after", "0");
	expect_kv("committed_cost_units_after", "0");

	expect_ok(CTLA("increment", "--capability", "cap", "--grant", "0"));
	expect_ok(CTLA("reverse", "--capability", "cap", "--grant", "0", "--units", "0", "--json"));
	json_t *j = json_out();
	expect_camel_case(j);
	expect_jabsent(j, "holdId");
	expect_jint(j, "invocationCountAfter", 0);
	expect_ju64(j, "exposureUnits", 0);
	json_decref(j);

	expect_grpc_error(CTLA("reverse", "--capability", "cap", "--grant", "0", "--units", "0"),
	                  BC_STATUS_FAILED_PRECONDITION, "no invocation to reverse");
}

Test(cli, reconcile_and_capture_settle_alike)
{
	expect_ok(CTLA("authorize", "--capability", "cap", "--grant", "0", "--units", "100",
	               "--hold", "hr"));
	expect_ok(CTLA("authorize", "--capability", "cap", "--grant", "1", "--units", "100",
	               "--hold", "hc"));
	expect_ok(CTLA("reconcile", "--capability", "cap", "--grant", "0", "--hold", "hr",
	               "--exposed", "100", "--realized", "40"));
	expect_kv_aligned();
	expect_kv("hold_id", "hr");
	expect_kv("exposure_units", "100");
	expect_kv("realized_spend_units", "40");
	expect_kv("committed_cost_units_after", "40");
	expect_kv("budget_commit_index", "3");
	char reconciled[OUT_BYTES_MAX];
	snprintf(reconciled, sizeof(reconciled), "%s", out);

	expect_ok(CTLA("capture", "--capability", "cap", "--grant", "1", "--hold", "hc",
	               "--exposed", "100", "--realized", "40"));
	expect_kv("hold_id", "hc");
	expect_kv("realized_spend_units", "40");
	expect_kv("committed_cost_units_after", "40");
	expect_kv("budget_commit_index", "4");
	cr_assert_eq(strlen(out), strlen(reconciled), "the same layout");

	expect_ok(CTLA("authorize", "--capability", "cap", "--grant", "2", "--units", "9", "--hold",
	               "hj"));
	expect_ok(CTLA("capture", "--json", "--capability", "cap", "--grant", "2", "--hold", "hj",
	               "--exposed-cost-units", "9", "--realized-spend-units", "9"));
	json_t *j = json_out();
	expect_camel_case(j);
	expect_jstr(j, "holdId", "hj");
	expect_ju64(j, "exposureUnits", 9);
	expect_ju64(j, "realizedSpendUnits", 9);
	expect_ju64(j, "committedCostUnitsAfter", 9);
	json_decref(j);

	expect_grpc_error(CTLA("reconcile", "--capability", "cap", "--grant", "2", "--exposed", "1",
	                       "--realized", "2"),
	                  BC_STATUS_INVALID_ARGUMENT,
	                  "cannot realize spend larger than exposed cost");
}

Test(cli, increment_counts_and_exits_1_when_denied)
{
	expect_ok(CTLA("increment", "--capability", "calls", "--grant", "3", "--max-invocations",
	               "1"));
	expect_kv_aligned();
	expect_kv("allowed", "true");
	expect_kv("invocation_count_after", "1");
	expect_kv("budget_commit_index", "1");

	int rc = CTLA("increment", "--json", "--capability", "calls", "--grant", "3",
	              "--max-invocations", "1");
	cr_assert_eq(rc, EXIT_DENIED, "exit %d; %s", rc, err);
	cr_assert_str_empty(err);
	json_t *j = json_out();
	expect_camel_case(j);
	expect_jbool(j, "allowed", false);
	expect_jint(j, "invocationCountAfter", 1);
	expect_jabsent(j, "metadata.budgetCommitIndex");
	json_decref(j);
}

Test(cli, usage_shows_one_grant_or_says_there_is_none)
{
	expect_ok(
	        CTLA("authorize", "--capability", "cap", "--grant", "4294967295", "--units", "3"));
	expect_ok(CTLA("usage", "--capability", "cap", "--grant", "4294967295"));
	expect_kv_aligned();
	expect_kv("capability_id", "cap");
	expect_kv("grant_index", "4294967295");
	expect_kv("invocation_count", "1");
	expect_kv("total_cost_exposed", "3");
	expect_kv("total_cost_realized_spend", "0");
	expect_kv("committed_cost_units", "3");
	expect_kv("seq", "1");
	cr_assert(kv("updated_at") && strchr(kv("updated_at"), 'T'), "%s", out);

	expect_ok(CTLA("usage", "--json", "--capability-id", "cap", "--grant-index", "4294967295"));
	json_t *j = json_out();
	expect_camel_case(j);
	expect_jstr(j, "usage.capabilityId", "cap");
	expect_ju64(j, "usage.grantIndex", 4294967295u);
	expect_jint(j, "usage.invocationCount", 1);
	expect_ju64(j, "usage.totalCostExposed", 3);
	expect_ju64(j, "usage.totalCostRealizedSpend", 0);
	expect_ju64(j, "usage.committedCostUnits", 3);
	expect_ju64(j, "usage.seq", 1);
	expect_jtime(j, "usage.updatedAt");
	json_decref(j);

	expect_ok(CTLA("usage", "--capability", "never", "--grant", "0"));
	cr_assert_str_eq(out, "no usage record for capability never grant 0\n");
	expect_ok(CTLA("usage", "--capability", "never", "--grant", "0", "--json"));
	j = json_out();
	cr_assert(json_is_object(j) && json_object_size(j) == 0, "expected {}: %s", out);
	json_decref(j);
}

Test(cli, usages_is_an_aligned_table_and_a_json_list)
{
	expect_ok(CTLA("authorize", "--capability", "a", "--grant", "0", "--units", "5"));
	expect_ok(CTLA("authorize", "--capability", "a-much-longer-capability", "--grant", "12345",
	               "--units", "123456789"));
	expect_ok(CTLA("authorize", "--capability", "a", "--grant", "1", "--units", "5"));

	expect_ok(CTLA("usages"));
	char lines[8][1024];
	size_t n = table_lines(lines, 8);
	cr_assert_eq(n, 4, "a header and 3 rows:\n%s", out);
	cr_assert(strncmp(lines[0], "CAPABILITY", 10) == 0, "%s", lines[0]);
	const char *right[] = {"GRANT", "INVOCATIONS", "EXPOSED", "REALIZED", "COMMITTED", "SEQ"};
	for (size_t i = 0; i < 6; i++)
		expect_right_aligned(lines, n, right[i]);
	size_t at = (size_t)(strstr(lines[0], "UPDATED_AT") - lines[0]);
	for (size_t i = 1; i < n; i++)
		cr_assert(lines[i][at - 1] == ' ' && lines[i][at] == '2', "UPDATED_AT column: %s",
		          lines[i]);
	cr_assert(strncmp(lines[1], "a ", 2) == 0, "most recently updated first: %s", lines[1]);
	cr_assert(strstr(lines[2], "123456789"), "%s", lines[2]);

	expect_ok(CTLA("usages", "--json", "--capability", "a", "--limit", "1"));
	json_t *j = json_out();
	expect_camel_case(j);
	json_t *list = jget(j, "usages");
	cr_assert(json_is_array(list));
	cr_assert_eq(json_array_size(list), 1);
	json_t *u = json_array_get(list, 0);
	expect_jstr(u, "capabilityId", "a");
	expect_ju64(u, "grantIndex", 1);
	expect_ju64(u, "totalCostExposed", 5);
	expect_jint(u, "invocationCount", 1);
	json_decref(j);

	expect_ok(CTLA("usages", "--json", "--capability", "none"));
	j = json_out();
	cr_assert_eq(json_array_size(jget(j, "usages")), 0);
	json_decref(j);
}

Test(cli, events_lists_the_log_and_pages_with_after)
{
	expect_ok(CTLA("authorize", "--capability", "cap", "--grant", "0", "--units", "10",
	               "--hold", "h1", "--max-total", "10", "--event", "e1"));
	int rc = CTLA("authorize", "--capability", "cap", "--grant", "0", "--units", "10",
	              "--max-total", "10", "--event", "e2");
	cr_assert_eq(rc, EXIT_DENIED);
	expect_ok(CTLA("reconcile", "--capability", "cap", "--grant", "0", "--hold", "h1",
	               "--exposed", "10", "--realized", "4", "--event", "e3"));
	expect_ok(CTLA("increment", "--capability", "cap", "--grant", "1", "--event", "e4"));

	expect_ok(CTLA("events"));
	char lines[8][1024];
	size_t n = table_lines(lines, 8);
	cr_assert_eq(n, 6, "a header, 4 events and next_after_commit_index:\n%s", out);
	cr_assert(strncmp(lines[0], "SEQ", 3) == 0, "%s", lines[0]);
	cr_assert_str_eq(lines[5], "next_after_commit_index: 4");
	expect_right_aligned(lines, 5, "SEQ");
	expect_right_aligned(lines, 5, "EXPOSURE");
	expect_right_aligned(lines, 5, "INVOCATIONS_AFTER");
	cr_assert(strstr(lines[1], "authorize_exposure") && strstr(lines[1], "allowed") &&
	                  strstr(lines[1], " e1"),
	          "%s", lines[1]);
	cr_assert(strstr(lines[2], "denied:max_total_cost") && strstr(lines[2], " e2"), "%s",
	          lines[2]);
	cr_assert(strstr(lines[3], "reconcile_spend") && strstr(lines[3], " h1 "), "%s", lines[3]);
	cr_assert(strstr(lines[4], "increment_invocation"), "%s", lines[4]);

	expect_ok(CTLA("events", "--json", "--limit", "2"));
	json_t *j = json_out();
	expect_camel_case(j);
	json_t *list = jget(j, "events");
	cr_assert_eq(json_array_size(list), 2);
	expect_ju64(j, "nextAfterCommitIndex", 2);
	json_t *e = json_array_get(list, 0);
	expect_jstr(e, "eventId", "e1");
	expect_jstr(e, "holdId", "h1");
	expect_jstr(e, "kind", "MUTATION_KIND_AUTHORIZE_EXPOSURE");
	expect_jbool(e, "allowed", true);
	expect_ju64(e, "eventSeq", 1);
	expect_ju64(e, "usageSeq", 1);
	expect_ju64(e, "exposureUnits", 10);
	expect_ju64(e, "maxTotalCostUnits", 10);
	expect_jint(e, "invocationCountAfter", 1);
	expect_ju64(e, "totalCostExposedAfter", 10);
	expect_jtime(e, "recordedAt");
	e = json_array_get(list, 1);
	expect_jbool(e, "allowed", false);
	expect_jstr(e, "denialReason", "DENIAL_REASON_MAX_TOTAL_COST");
	expect_jabsent(e, "usageSeq");
	expect_jabsent(e, "holdId");
	json_decref(j);

	expect_ok(CTLA("events", "--json", "--after", "2"));
	j = json_out();
	list = jget(j, "events");
	cr_assert_eq(json_array_size(list), 2);
	expect_jstr(json_array_get(list, 0), "eventId", "e3");
	expect_jstr(json_array_get(list, 0), "kind", "MUTATION_KIND_RECONCILE_SPEND");
	expect_ju64(json_array_get(list, 0), "realizedSpendUnits", 4);
	expect_jabsent(json_array_get(list, 0), "allowed");
	expect_ju64(j, "nextAfterCommitIndex", 4);
	json_decref(j);

	expect_ok(CTLA("events", "--json", "--capability", "cap", "--grant", "1"));
	j = json_out();
	list = jget(j, "events");
	cr_assert_eq(json_array_size(list), 1);
	expect_jstr(json_array_get(list, 0), "eventId", "e4");
	json_decref(j);

	expect_ok(CTLA("events", "--after", "4"));
	n = table_lines(lines, 8);
	cr_assert_eq(n, 2, "only the header and the cursor:\n%s", out);
	cr_assert_str_eq(lines[1], "next_after_commit_index: 4", "an empty page keeps the cursor");
}

Test(cli, hold_shows_one_hold_or_exits_with_not_found)
{
	expect_ok(CTLA("authorize", "--capability", "cap", "--grant", "5", "--units", "40",
	               "--hold", "h1", "--authority-id", "auth", "--lease-id", "lease",
	               "--lease-epoch", "3"));
	expect_kv("budget_term", "auth:3");
	expect_kv("lease_epoch", "3");

	expect_ok(CTLA("hold", "h1"));
	expect_kv_aligned();
	expect_kv("hold_id", "h1");
	expect_kv("capability_id", "cap");
	expect_kv("grant_index", "5");
	expect_kv("authorized_exposure_units", "40");
	expect_kv("remaining_exposure_units", "40");
	expect_kv("debited_invocation", "true");
	expect_kv("disposition", "open");
	expect_kv("authority_id", "auth");
	expect_kv("lease_id", "lease");

	expect_ok(CTLA("hold", "--json", "--hold", "h1"));
	json_t *j = json_out();
	expect_camel_case(j);
	expect_jstr(j, "hold.holdId", "h1");
	expect_ju64(j, "hold.grantIndex", 5);
	expect_ju64(j, "hold.remainingExposureUnits", 40);
	expect_jbool(j, "hold.debitedInvocation", true);
	expect_jstr(j, "hold.disposition", "HOLD_DISPOSITION_OPEN");
	expect_jstr(j, "hold.authority.authorityId", "auth");
	expect_jstr(j, "hold.authority.leaseId", "lease");
	expect_ju64(j, "hold.authority.leaseEpoch", 3);
	expect_jtime(j, "hold.createdAt");
	expect_jtime(j, "hold.updatedAt");
	json_decref(j);

	expect_grpc_error(CTLA("hold", "nope"), BC_STATUS_NOT_FOUND,
	                  "budget hold `nope` not found");
	cr_assert(strstr(err, "GetHold on "), "%s", err);
	expect_grpc_error(CTLA("hold", "--json", "nope"), BC_STATUS_NOT_FOUND, "not found");

	/* Settling a leased hold needs the lease. */
	expect_grpc_error(CTLA("release", "--capability", "cap", "--grant", "5", "--hold", "h1",
	                       "--units", "1"),
	                  BC_STATUS_FAILED_PRECONDITION, "requires authority lease metadata");
	expect_ok(CTLA("release", "--capability", "cap", "--grant", "5", "--hold", "h1", "--units",
	               "1", "--authority-id", "auth", "--lease-id", "lease", "--lease-epoch", "3",
	               "--json"));
	j = json_out();
	expect_jstr(j, "metadata.budgetTerm", "auth:3");
	expect_ju64(j, "metadata.authority.leaseEpoch", 3);
	json_decref(j);
}

/* ---- hold deadlines, extend and holds ------------------------------------------- */

/* The string at `path` of the JSON in `out`, copied to `buf`. */
static const char *jcopy(const char *path, char *buf, size_t size)
{
	json_t *j = json_out();
	json_t *v = jget(j, path);

	cr_assert(json_is_string(v), "%s is not a string in %s", path, out);
	snprintf(buf, size, "%s", json_string_value(v));
	json_decref(j);
	return buf;
}

Test(cli, authorize_with_a_ttl_shows_the_deadline_and_hold_shows_the_policy)
{
	expect_ok(CTLA("authorize", "--capability", "cap", "--grant", "0", "--units", "10",
	               "--hold", "h1", "--ttl", "120", "--on-expiry", "release"));
	expect_kv_aligned();
	cr_assert(kv("expires_at") && strchr(kv("expires_at"), 'T'), "%s", out);
	char deadline[64];
	snprintf(deadline, sizeof(deadline), "%s", kv("expires_at"));

	expect_ok(CTLA("hold", "h1"));
	expect_kv_aligned();
	expect_kv("expires_at", deadline);
	expect_kv("on_expiry", "release");
	expect_ok(CTLA("hold", "h1", "--json"));
	json_t *j = json_out();
	expect_camel_case(j);
	expect_jstr(j, "hold.expiresAt", deadline);
	expect_jstr(j, "hold.onExpiry", "EXPIRY_POLICY_RELEASE");
	json_decref(j);

	expect_ok(CTLA("authorize", "--json", "--capability", "cap", "--grant", "0", "--units", "1",
	               "--hold", "h2", "--ttl-seconds", "60"));
	j = json_out();
	expect_camel_case(j);
	expect_jtime(j, "authorized.expiresAt");
	json_decref(j);
	expect_ok(CTLA("hold", "h2"));
	expect_kv("on_expiry", "capture");

	/* No ttl, and budgetd has no --hold-ttl: no deadline. */
	expect_ok(CTLA("authorize", "--capability", "cap", "--grant", "0", "--units", "1", "--hold",
	               "h3"));
	expect_kv("expires_at", "-");
	expect_ok(CTLA("hold", "h3"));
	expect_kv("expires_at", "-");
	expect_kv("on_expiry", "-");
	expect_ok(CTLA("hold", "h3", "--json"));
	j = json_out();
	expect_jabsent(j, "hold.expiresAt");
	expect_jstr(j, "hold.onExpiry", "EXPIRY_POLICY_UNSPECIFIED");
	json_decref(j);

	/* The authorize event records the request. */
	expect_ok(CTLA("events", "--json", "--limit", "1"));
	j = json_out();
	json_t *e = json_array_get(jget(j, "events"), 0);
	expect_jint(e, "ttlSeconds", 120);
	expect_jstr(e, "expiresAt", deadline);
	expect_jstr(e, "onExpiry", "EXPIRY_POLICY_RELEASE");
	json_decref(j);
}

Test(cli, extend_moves_the_deadline_in_human_and_json_output)
{
	char first[64], later[64];

	expect_ok(CTLA("authorize", "--json", "--capability", "cap", "--grant", "4", "--units",
	               "10", "--hold", "h1", "--ttl", "30"));
	jcopy("authorized.expiresAt", first, sizeof(first));

	expect_ok(CTLA("extend", "--capability", "cap", "--grant", "4", "--hold", "h1", "--ttl",
	               "600"));
	expect_kv_aligned();
	expect_kv("hold_id", "h1");
	expect_kv("budget_commit_index", "2");
	expect_kv("replayed", "false");
	cr_assert(is_event_id(kv("event_id")), "a generated event_id: %s", kv("event_id"));
	snprintf(later, sizeof(later), "%s", kv("expires_at"));
	cr_assert_gt(strcmp(later, first), 0, "%s is not after %s", later, first);

	expect_ok(CTLA("--json", "extend", "--capability-id", "cap", "--grant-index", "4",
	               "--hold-id", "h1", "--ttl-seconds", "5", "--event-id", "ext-1"));
	json_t *j = json_out();
	expect_camel_case(j);
	expect_jstr(j, "holdId", "h1");
	expect_jstr(j, "expiresAt", later); /* never earlier */
	expect_jstr(j, "metadata.eventId", "ext-1");
	expect_ju64(j, "metadata.budgetCommitIndex", 3);
	expect_jbool(j, "metadata.replayed", false);
	json_decref(j);
	expect_ok(CTLA("extend", "--capability", "cap", "--grant", "4", "--hold", "h1", "--ttl",
	               "5", "--event", "ext-1"));
	expect_kv("replayed", "true");

	expect_ok(CTLA("hold", "h1"));
	expect_kv("expires_at", later);
	expect_kv("on_expiry", "capture");

	expect_ok(CTLA("events"));
	char lines[8][1024];
	size_t n = table_lines(lines, 8);
	cr_assert_eq(n, 5, "a header, 3 events and the cursor:\n%s", out);
	expect_right_aligned(lines, 4, "TTL");
	cr_assert(strstr(lines[0], "ON_EXPIRY") && strstr(lines[0], "EXPIRES_AT"), "%s", lines[0]);
	cr_assert(strstr(lines[2], "extend_hold") && strstr(lines[2], " 600 ") &&
	                  strstr(lines[2], " capture ") && strstr(lines[2], later),
	          "%s", lines[2]);
	expect_ok(CTLA("events", "--json", "--after", "1", "--limit", "1"));
	j = json_out();
	json_t *e = json_array_get(jget(j, "events"), 0);
	expect_jstr(e, "kind", "MUTATION_KIND_EXTEND_HOLD");
	expect_jint(e, "ttlSeconds", 600);
	expect_jstr(e, "expiresAt", later);
	expect_jstr(e, "onExpiry", "EXPIRY_POLICY_CAPTURE");
	json_decref(j);

	expect_grpc_error(CTLA("extend", "--capability", "cap", "--grant", "4", "--hold", "nope",
	                       "--ttl", "5"),
	                  BC_STATUS_FAILED_PRECONDITION, "missing budget hold `nope`");
	cr_assert(strstr(err, "ExtendHold on "), "names the call: %s", err);
	expect_ok(CTLA("reconcile", "--capability", "cap", "--grant", "4", "--hold", "h1",
	               "--exposed", "10", "--realized", "1"));
	expect_grpc_error(CTLA("extend", "--json", "--capability", "cap", "--grant", "4", "--hold",
	                       "h1", "--ttl", "5"),
	                  BC_STATUS_FAILED_PRECONDITION, "is no longer open");
}

Test(cli, an_expired_hold_shows_in_hold_holds_and_events)
{
	expect_ok(CTLA("authorize", "--capability", "due", "--grant", "0", "--units", "10",
	               "--hold", "h1", "--ttl", "1", "--on-expiry", "reverse"));
	for (int i = 0; i < 600; i++) { /* 60 s at most */
		expect_ok(CTLA("hold", "h1"));
		const char *d = kv("disposition");
		cr_assert(d, "%s", out);
		if (strcmp(d, "open") != 0)
			break;
		struct timespec pause = {0, 100 * 1000 * 1000};
		nanosleep(&pause, NULL);
	}
	expect_kv("disposition", "expired");
	expect_kv("on_expiry", "reverse");
	expect_kv("expires_at", "-");
	expect_kv("remaining_exposure_units", "0");

	expect_ok(CTLA("holds", "--disposition", "expired", "--json"));
	json_t *j = json_out();
	json_t *h = json_array_get(jget(j, "holds"), 0);
	expect_jstr(h, "holdId", "h1");
	expect_jstr(h, "disposition", "HOLD_DISPOSITION_EXPIRED");
	expect_jstr(h, "onExpiry", "EXPIRY_POLICY_REVERSE");
	expect_jabsent(h, "expiresAt");
	json_decref(j);

	expect_ok(CTLA("events", "--after", "1"));
	cr_assert(strstr(out, "expire_exposure") && strstr(out, " reverse "), "%s", out);
	expect_ok(CTLA("events", "--json", "--after", "1"));
	j = json_out();
	json_t *e = json_array_get(jget(j, "events"), 0);
	expect_jstr(e, "kind", "MUTATION_KIND_EXPIRE_EXPOSURE");
	expect_jstr(e, "onExpiry", "EXPIRY_POLICY_REVERSE");
	expect_jint(e, "invocationCountAfter", 0);
	json_decref(j);

	expect_grpc_error(CTLA("extend", "--capability", "due", "--grant", "0", "--hold", "h1",
	                       "--ttl", "60"),
	                  BC_STATUS_FAILED_PRECONDITION, "is no longer open");
}

/* The first column of each row of a table in `out` (the header skipped),
 * joined by spaces; the number of rows in *rows. */
static const char *first_column(size_t *rows)
{
	static char ids[4096];
	char lines[64][1024];
	size_t n = table_lines(lines, 64), len = 0;

	ids[0] = '\0';
	*rows = 0;
	for (size_t i = 1; i < n; i++) {
		if (strncmp(lines[i], "next_page_token: ", 17) == 0)
			continue;
		len += (size_t)snprintf(ids + len, sizeof(ids) - len, "%s%.*s", len ? " " : "",
		                        (int)strcspn(lines[i], " "), lines[i]);
		cr_assert_lt(len, sizeof(ids));
		(*rows)++;
	}
	return ids;
}

/* The value of the "next_page_token: " line of `out`, or "". */
static const char *next_token_line(char buf[1024])
{
	const char *at = strstr(out, "next_page_token: ");

	buf[0] = '\0';
	if (at)
		snprintf(buf, 1024, "%.*s", (int)strcspn(at + 17, "\n"), at + 17);
	return buf;
}

Test(cli, holds_is_an_aligned_table_that_pages_and_filters)
{
	const char *caps[] = {"a", "b", "a", "a-much-longer-capability", "a"};
	char hold[16], units[16], token[1024];
	size_t rows;

	for (int i = 0; i < 5; i++) {
		snprintf(hold, sizeof(hold), "hl-%d", i);
		snprintf(units, sizeof(units), "%d", (i + 1) * 1000);
		expect_ok(CTLA("authorize", "--capability", caps[i], "--grant", "7", "--units",
		               units, "--hold", hold, "--ttl", i == 2 ? "300" : "0"));
	}
	expect_ok(CTLA("reconcile", "--capability", "b", "--grant", "7", "--hold", "hl-1",
	               "--exposed", "2000", "--realized", "5"));

	expect_ok(CTLA("holds"));
	char lines[8][1024];
	size_t n = table_lines(lines, 8);
	cr_assert_eq(n, 6, "a header and 5 rows, no cursor:\n%s", out);
	cr_assert(strncmp(lines[0], "HOLD_ID", 7) == 0, "%s", lines[0]);
	const char *right[] = {"GRANT", "AUTHORIZED", "REMAINING"};
	for (size_t i = 0; i < 3; i++)
		expect_right_aligned(lines, n, right[i]);
	cr_assert(strstr(lines[0], "DISPOSITION") && strstr(lines[0], "EXPIRES_AT") &&
	                  strstr(lines[0], "CREATED_AT"),
	          "%s", lines[0]);
	cr_assert_str_eq(first_column(&rows), "hl-0 hl-1 hl-2 hl-3 hl-4", "oldest first");
	cr_assert(strstr(lines[2], " reconciled "), "%s", lines[2]);
	size_t at = (size_t)(strstr(lines[0], "EXPIRES_AT") - lines[0]);
	cr_assert(strstr(lines[3], " open ") && lines[3][at] == '2', "a deadline: %s", lines[3]);
	cr_assert(strstr(lines[1], " open ") && lines[1][at] == '-', "no deadline: %s", lines[1]);

	/* Pages of 2, human and JSON: every hold exactly once. */
	expect_ok(CTLA("holds", "--limit", "2"));
	cr_assert_str_eq(first_column(&rows), "hl-0 hl-1");
	cr_assert_str_neq(next_token_line(token), "", "a cursor:\n%s", out);
	expect_ok(CTLA("holds", "--limit", "2", "--page-token", token));
	cr_assert_str_eq(first_column(&rows), "hl-2 hl-3");
	next_token_line(token);
	expect_ok(CTLA("holds", "--json", "--limit", "2", "--page-token", token));
	json_t *j = json_out();
	expect_camel_case(j);
	cr_assert_eq(json_array_size(jget(j, "holds")), 1);
	expect_jstr(json_array_get(jget(j, "holds"), 0), "holdId", "hl-4");
	expect_jstr(j, "nextPageToken", "");
	json_decref(j);

	expect_ok(CTLA("holds", "--all", "--limit", "2"));
	cr_assert_str_eq(first_column(&rows), "hl-0 hl-1 hl-2 hl-3 hl-4");
	cr_assert_null(strstr(out, "next_page_token"), "--all prints no cursor");
	expect_ok(CTLA("holds", "--json", "--all", "--limit", "1"));
	j = json_out();
	json_t *list = jget(j, "holds");
	cr_assert_eq(json_array_size(list), 5);
	json_t *h = json_array_get(list, 2);
	expect_jstr(h, "holdId", "hl-2");
	expect_jstr(h, "capabilityId", "a");
	expect_ju64(h, "grantIndex", 7);
	expect_ju64(h, "authorizedExposureUnits", 3000);
	expect_ju64(h, "remainingExposureUnits", 3000);
	expect_jstr(h, "disposition", "HOLD_DISPOSITION_OPEN");
	expect_jstr(h, "onExpiry", "EXPIRY_POLICY_CAPTURE");
	expect_jtime(h, "expiresAt");
	expect_jtime(h, "createdAt");
	expect_jabsent(json_array_get(list, 0), "expiresAt");
	expect_jstr(j, "nextPageToken", "");
	json_decref(j);

	/* Filters. */
	expect_ok(CTLA("holds", "--capability", "a"));
	cr_assert_str_eq(first_column(&rows), "hl-0 hl-2 hl-4");
	expect_ok(CTLA("holds", "--disposition", "reconciled"));
	cr_assert_str_eq(first_column(&rows), "hl-1");
	expect_ok(CTLA("holds", "--disposition", "open", "--capability-id", "a", "--limit", "2",
	               "--all"));
	cr_assert_str_eq(first_column(&rows), "hl-0 hl-2 hl-4");
	expect_ok(CTLA("holds", "--disposition", "expired"));
	first_column(&rows);
	cr_assert_eq(rows, 0, "%s", out);

	char created[64];
	expect_ok(CTLA("hold", "hl-3", "--json"));
	jcopy("hold.createdAt", created, sizeof(created));
	expect_ok(CTLA("holds", "--older-than", created));
	cr_assert_str_eq(first_column(&rows), "hl-0 hl-1 hl-2", "created before hl-3");
	expect_ok(CTLA("holds", "--older-than", "1"));
	first_column(&rows);
	cr_assert_eq(rows, 0, "nothing before 1970-01-01T00:00:01Z: %s", out);
	expect_ok(CTLA("holds", "--older-than", "9999-12-31T23:59:59Z", "--capability", "b"));
	cr_assert_str_eq(first_column(&rows), "hl-1");
	expect_ok(CTLA("holds", "--older-than", "2000-01-01T01:00:00+01:00", "--json"));
	j = json_out();
	cr_assert_eq(json_array_size(jget(j, "holds")), 0);
	json_decref(j);

	expect_grpc_error(CTLA("holds", "--page-token", "not-ours"), BC_STATUS_INVALID_ARGUMENT,
	                  "page_token");
	cr_assert(strstr(err, "ListHolds on "), "names the call: %s", err);
}

Test(cli, info_and_health_describe_the_server)
{
	expect_ok(CTLA("increment", "--capability", "cap", "--grant", "0"));
	expect_ok(CTLA("info"));
	expect_kv_aligned();
	expect_kv("version", "0.1.0");
	expect_kv("guarantee_level", "single_node_atomic");
	expect_kv("budget_profile", "authoritative_hold_event");
	expect_kv("metering_profile", "max_cost_preauthorize_then_reconcile_actual");
	expect_kv("commit_index", "1");
	cr_assert(kv("authority_id") && kv("authority_id")[0], "%s", out);

	expect_ok(CTLA("info", "--json"));
	json_t *j = json_out();
	expect_camel_case(j);
	expect_jstr(j, "version", "0.1.0");
	expect_jstr(j, "guaranteeLevel", "GUARANTEE_LEVEL_SINGLE_NODE_ATOMIC");
	expect_ju64(j, "commitIndex", 1);
	expect_jtime(j, "startedAt");
	cr_assert(json_is_string(jget(j, "authorityId")));
	json_decref(j);

	expect_ok(CTLA("health"));
	cr_assert_str_eq(out, "status: serving\n");
	expect_ok(CTLA("health", "--json", "--service", "budgetd.v1.BudgetAuthority"));
	j = json_out();
	expect_jstr(j, "status", "SERVING");
	cr_assert_eq(json_object_size(j), 1);
	json_decref(j);
	expect_grpc_error(CTLA("health", "--service", "no.such.Service"), BC_STATUS_NOT_FOUND,
	                  "unknown service");
}

Test(cli, server_side_errors_map_to_3_plus_the_status_code)
{
	expect_grpc_error(CTLA("authorize", "--capability", "cap", "--grant", "0", "--units", "1",
	                       "--event", "budgetd-auto-1"),
	                  BC_STATUS_INVALID_ARGUMENT, "reserved prefix");
	expect_ok(CTLA("authorize", "--capability", "cap", "--grant", "0", "--units",
	               "18446744073709551610"));
	expect_grpc_error(CTLA("authorize", "--capability", "cap", "--grant", "0", "--units", "10"),
	                  BC_STATUS_OUT_OF_RANGE, "overflows u64");
	expect_grpc_error(CTLA("hold", "x\x01y"), BC_STATUS_INVALID_ARGUMENT, "control character");
}

Test(cli, the_address_can_be_a_unix_socket_an_env_var_or_come_after_the_command)
{
	expect_ok(CTL("--addr", daemon_.unix_addr, "authorize", "--capability", "cap", "--grant",
	              "0", "--units", "5", "--hold", "u1"));
	expect_kv("hold_id", "u1");
	expect_ok(CTL("hold", "u1", "-a", daemon_.tcp_addr));
	expect_kv("remaining_exposure_units", "5");
	expect_ok(
	        CTL("-j", "-a", daemon_.unix_addr, "usage", "--capability", "cap", "--grant", "0"));
	json_t *j = json_out();
	expect_ju64(j, "usage.totalCostExposed", 5);
	json_decref(j);

	char env[400];
	snprintf(env, sizeof(env), "BUDGETD_ADDR=%s", daemon_.unix_addr);
	env_ = env;
	expect_ok(CTL_ENV("hold", "u1", "--timeout", "10"));
	expect_kv("hold_id", "u1");
	/* --addr wins over the environment. */
	char closed[ADDR_SIZE];
	int fd = refusing_port(closed, false);
	expect_grpc_error(CTL_ENV("--no-retry", "--addr", closed, "info"), BC_STATUS_UNAVAILABLE,
	                  closed);
	close(fd);
}

/* ---- failures without a budgetd ------------------------------------------------- */

TestSuite(cli_offline, .timeout = TEST_TIMEOUT_S);

Test(cli_offline, a_closed_port_is_unavailable_with_and_without_retries)
{
	char addr[ADDR_SIZE];
	int fd = refusing_port(addr, false);

	expect_grpc_error(CTL("--addr", addr, "--no-retry", "info"), BC_STATUS_UNAVAILABLE,
	                  "GetServerInfo on ");
	expect_grpc_error(CTL("--addr", addr, "authorize", "--capability", "c", "--grant", "0",
	                      "--units", "1"),
	                  BC_STATUS_UNAVAILABLE, "AuthorizeHold on ");
	expect_grpc_error(CTL("--addr", addr, "health"), BC_STATUS_UNAVAILABLE, "Health/Check");
	expect_grpc_error(CTL("--no-retry", "--addr", "unix:/nonexistent/budgetd.sock", "events"),
	                  BC_STATUS_UNAVAILABLE, "ListMutationEvents on unix:");
	close(fd);
}

Test(cli_offline, a_server_that_never_answers_is_deadline_exceeded)
{
	char addr[ADDR_SIZE];
	int fd = refusing_port(addr, true);

	expect_grpc_error(CTL("--addr", addr, "--timeout", "0.3", "--no-retry", "usages"),
	                  BC_STATUS_DEADLINE_EXCEEDED, "ListUsages on ");
	expect_grpc_error(CTL("--addr", addr, "-t", "0.2", "--no-retry", "increment",
	                      "--capability", "c", "--grant", "0"),
	                  BC_STATUS_DEADLINE_EXCEEDED, "IncrementInvocation on ");
	close(fd);
}

/* Bad command lines: exit 2, one line on stderr naming the problem. The
 * address refuses connections, so a line that wrongly passes parsing ends
 * with 17, not a hang. */
typedef struct bad_line {
	const char *args[14];
	const char *message;
} bad_line;

Test(cli_offline, bad_arguments_exit_2_with_one_line)
{
	static const bad_line cases[] = {
	        {{"authorize", "--capability", "c", "--grant", "0", "--units", "-5"},
	         "--units: expected an integer from 0 to 18446744073709551615, got '-5'"},
	        {{"authorize", "--capability", "c", "--grant", "0", "--units",
	          "18446744073709551616"},
	         "--units: expected an integer"},
	        {{"authorize", "--capability", "c", "--grant", "4294967296", "--units", "1"},
	         "--grant: expected an integer from 0 to 4294967295, got '4294967296'"},
	        {{"authorize", "--capability", "c", "--grant", "-1", "--units", "1"}, "--grant"},
	        {{"authorize", "--capability", "c", "--grant", "+1", "--units", "1"}, "got '+1'"},
	        {{"authorize", "--capability", "c", "--grant", "0x10", "--units", "1"},
	         "got '0x10'"},
	        {{"authorize", "--capability", "c", "--grant", " 1", "--units", "1"}, "got ' 1'"},
	        {{"authorize", "--capability", "c", "--grant", "", "--units", "1"}, "got ''"},
	        {{"authorize", "--capability", "c", "--grant", "0"}, "missing --units"},
	        {{"authorize", "--grant", "0", "--units", "1"}, "missing --capability"},
	        {{"authorize", "--capability", "c", "--units", "1"}, "missing --grant"},
	        {{"authorize", "--capability", "", "--grant", "0", "--units", "1"},
	         "--capability: must not be empty"},
	        {{"authorize", "--capability", "c", "--grant", "0", "--units", "1", "--bogus"},
	         "unknown option '--bogus'"},
	        {{"authorize", "--capability", "c", "--grant", "0", "--units", "1", "extra"},
	         "unexpected argument 'extra'"},
	        {{"authorize", "--capability"}, "option '--capability' needs a value"},
	        {{"authorize", "--capability", "c", "--grant", "0", "--units", "1", "--lease-id",
	          "l"},
	         "--authority-id, --lease-id and --lease-epoch go together"},
	        {{"authorize", "--capability", "c", "--grant", "0", "--units", "1", "--max-total",
	          "-1"},
	         "--max-total"},
	        {{"release", "--capability", "c", "--grant", "0"}, "missing --units"},
	        {{"reverse", "--capability", "c", "--units", "1"}, "missing --grant"},
	        {{"reconcile", "--capability", "c", "--grant", "0", "--exposed", "1"},
	         "missing --realized"},
	        {{"capture", "--capability", "c", "--grant", "0", "--realized", "1"},
	         "missing --exposed"},
	        {{"increment", "--grant", "0"}, "missing --capability"},
	        {{"increment", "--capability", "c", "--grant", "0", "--max-invocations", "1e3"},
	         "--max-invocations"},
	        {{"usage", "--capability", "c"}, "missing --grant"},
	        {{"usages", "--limit", "1001"},
	         "--limit: expected an integer from 0 to 1000, got '1001'"},
	        {{"events", "--limit", "1001"}, "--limit: expected an integer from 0 to 1000"},
	        {{"events", "--after", "-1"}, "--after"},
	        {{"events", "--grant", "99999999999"}, "--grant"},
	        {{"authorize", "--capability", "c", "--grant", "0", "--units", "1", "--ttl", "5"},
	         "--ttl and --on-expiry need --hold"},
	        {{"authorize", "--capability", "c", "--grant", "0", "--units", "1", "--hold", "h",
	          "--ttl", "-1"},
	         "--ttl: expected an integer from 0 to 2592000, got '-1'"},
	        {{"authorize", "--capability", "c", "--grant", "0", "--units", "1", "--hold", "h",
	          "--on-expiry", "never"},
	         "--on-expiry: expected capture, release or reverse, got 'never'"},
	        {{"authorize", "--capability", "c", "--grant", "0", "--units", "1", "--hold", "h",
	          "--ttl", "0", "--on-expiry", "release"},
	         "--on-expiry needs a deadline"},
	        {{"extend", "--capability", "c", "--grant", "0", "--hold", "h"}, "missing --ttl"},
	        {{"extend", "--capability", "c", "--grant", "0", "--ttl", "5"}, "missing --hold"},
	        {{"extend", "--grant", "0", "--hold", "h", "--ttl", "5"}, "missing --capability"},
	        {{"extend", "--capability", "c", "--hold", "h", "--ttl", "5"}, "missing --grant"},
	        {{"extend", "--capability", "c", "--grant", "0", "--hold", "h", "--ttl", "0"},
	         "--ttl: expected an integer from 1 to 2592000, got '0'"},
	        {{"extend", "--capability", "c", "--grant", "0", "--hold", "h", "--ttl", "2592001"},
	         "--ttl: expected an integer from 0 to 2592000, got '2592001'"},
	        {{"extend", "--capability", "c", "--grant", "0", "--hold", "", "--ttl", "5"},
	         "--hold: must not be empty"},
	        {{"extend", "--capability", "c", "--grant", "0", "--hold", "h", "--ttl", "5", "x"},
	         "unexpected argument 'x'"},
	        {{"holds", "--disposition", "closed"},
	         "--disposition: expected open, released, reversed, reconciled or expired, got "
	         "'closed'"},
	        {{"holds", "--disposition", "OPEN"}, "got 'OPEN'"},
	        {{"holds", "--older-than", "yesterday"}, "--older-than: expected an RFC 3339 time"},
	        {{"holds", "--older-than", "2026-02-30T00:00:00Z"}, "got '2026-02-30T00:00:00Z'"},
	        {{"holds", "--older-than", "2026-01-01T00:00:00"}, "--older-than"},
	        {{"holds", "--older-than", "2026-01-01"}, "--older-than"},
	        {{"holds", "--older-than", "253402300800"}, "--older-than"},
	        {{"holds", "--older-than", "-5"}, "--older-than"},
	        {{"holds", "--limit", "1001"}, "--limit: expected an integer from 0 to 1000"},
	        {{"holds", "--page-token", ""}, "--page-token: must not be empty"},
	        {{"holds", "--all", "extra"}, "unexpected argument 'extra'"},
	        {{"holds", "--all=yes"}, "--all"},
	        {{"hold"}, "missing the hold id"},
	        {{"hold", "a", "b"}, "unexpected argument 'b'"},
	        {{"hold", ""}, "hold id: must not be empty"},
	        {{"info", "extra"}, "unexpected argument 'extra'"},
	        {{"health", "-x"}, "unknown option '-x'"},
	        {{"nosuch"}, "unknown command 'nosuch'"},
	        {{"--timeout", "0", "info"}, "--timeout: expected seconds above 0"},
	        {{"--timeout", "abc", "info"}, "got 'abc'"},
	        {{"--timeout", "0.0001", "info"}, "got '0.0001'"},
	        {{"--timeout", "86401", "info"}, "got '86401'"},
	        {{"info", "--timeout", "-1"}, "--timeout"},
	        {{"--addr", "", "info"}, "--addr: empty address"},
	        {{"--bogus", "info"}, "unknown option '--bogus'"},
	        {{"--tls-cert", "x.pem", "info"}, "--tls-cert and --tls-key go together"},
	        {{"--tls-ca", "/nonexistent/ca.pem", "info"}, "cannot open the CA file"},
	        {{"help", "nosuch"}, "unknown command 'nosuch'"},
	        {{NULL}, "missing command"},
	};
	char addr[ADDR_SIZE];
	int fd = refusing_port(addr, false);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *argv_[18] = {"--no-retry", "--addr", addr};
		size_t n = 3;
		for (size_t k = 0; cases[i].args[k]; k++)
			argv_[n++] = cases[i].args[k];
		argv_[n] = NULL;
		int rc = run(argv_, NULL);
		cr_assert_eq(rc, EXIT_USAGE, "case %zu (%s ...): exit %d, stderr: %s", i,
		             cases[i].args[0] ? cases[i].args[0] : "", rc, err);
		expect_failure(rc, EXIT_USAGE, cases[i].message);
	}
	close(fd);
}

Test(cli_offline, every_command_has_help_that_exits_0)
{
	static const char *const commands[] = {
	        "authorize", "release", "reverse", "reconcile", "capture", "extend", "increment",
	        "usage",     "usages",  "events",  "hold",      "holds",   "info",   "health"};
	char want[64];

	expect_ok(CTL("--help"));
	cr_assert(strncmp(out, "usage: budgetctl ", 17) == 0, "%s", out);
	cr_assert(strstr(out, "3+CODE"), "the exit codes are documented");
	char overview[OUT_BYTES_MAX];
	snprintf(overview, sizeof(overview), "%s", out);

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		snprintf(want, sizeof(want), "\n  %s ", commands[i]);
		cr_assert(strstr(overview, want), "--help does not list %s", commands[i]);
		snprintf(want, sizeof(want), "usage: budgetctl %s", commands[i]);

		expect_ok(CTL(commands[i], "--help"));
		cr_assert(strncmp(out, want, strlen(want)) == 0, "%s --help: %s", commands[i], out);
		cr_assert(strstr(out, "Common options"), "%s", out);
		char help[OUT_BYTES_MAX];
		snprintf(help, sizeof(help), "%s", out);

		expect_ok(CTL(commands[i], "-h"));
		cr_assert_str_eq(out, help);
		expect_ok(CTL("help", commands[i]));
		cr_assert_str_eq(out, help);
		/* --help wins over everything else on the line. */
		expect_ok(CTL("--addr", "127.0.0.1:1", commands[i], "--bogus", "--help"));
		cr_assert_str_eq(out, help);
	}
	expect_ok(CTL("--version"));
	cr_assert_str_eq(out, "budgetctl 0.1.0\n");
	expect_ok(CTL("help"));
	cr_assert_str_eq(out, overview);
}
