/* test_admin.c - budgetd.v1.BudgetAdmin against a real budgetd: Verify of a
 * good ledger, `budgetd --verify` on files (good, unmaterialized after a
 * crash, tampered, missing), Backup (a verified copy; never replacing a
 * file; under a concurrent write load, a consistent snapshot of the live
 * log) and the budgetctl backup / verify commands. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bs_admin.h"
#include "fixture.h"

/* One timeout for every suite of the file (see test_cli.c on criterion's
 * runner and differing timeouts). */
#define TEST_TIMEOUT_S   240
#define RUN_TIMEOUT_MS   60000
#define OUTPUT_BYTES_MAX 65536
#define PATH_SIZE        512

/* The mix of mutations (mix()). */
#define MIX_EVENTS     13
#define MIX_GRANTS     4
#define MIX_HOLDS      5
#define MIX_OPEN_HOLDS 1

/* The load during a backup. */
#define LOAD_THREADS         8
#define LOAD_EVENTS_BEFORE   400 /* committed before the backup starts */
#define LOAD_DENIAL_EVERY    7   /* every 7th authorize of a thread is denied */
#define LOAD_UNITS           5
#define LOAD_REALIZED        3
#define EXIT_VERIFY_MISMATCH 1
#define EXIT_VERIFY_ERROR    3
#define EXIT_CTL_USAGE       2
#define EXIT_CTL_GRPC_BASE   3

extern char **environ;

/* Backup and Verify need the admin role: local callers get it from a
 * permission file (without one they are only kernels). */
static void setup_admin(void)
{
	static char perms[] = "/tmp/budgetd-perms-XXXXXX";
	static const char *args[] = {"--permissions", perms, NULL};
	int fd = mkstemp(perms);
	static const char text[] = "[loopback]\nrole = admin\n[unix]\nrole = admin\n";

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	memset(&daemon_, 0, sizeof(daemon_));
	client = NULL;
	fx_start(args, NULL);
	unlink(perms); /* read at start */
}

TestSuite(admin, .init = setup_admin, .fini = fx_teardown, .timeout = TEST_TIMEOUT_S);

static char output[OUTPUT_BYTES_MAX];

/* ---- helpers ---- */

static const char *in_dir(char *buf, const char *name)
{
	snprintf(buf, PATH_SIZE, "%s/%s", daemon_.dir, name);
	return buf;
}

static uint64_t server_commit_index(void)
{
	bc_server_info info;
	bc_error err;

	cr_assert_eq(bc_get_server_info(client, 0, &info, &err), 0, "%s", err.message);
	uint64_t index = info.commit_index;
	bc_server_info_free(&info);
	return index;
}

static void authorize(const char *cap, uint64_t grant, uint64_t units, const char *hold,
                      bool has_max_total, uint64_t max_total, bool allowed)
{
	bc_authorize_hold_result r =
	        fx_authorize(cap, grant, units, hold, NULL, has_max_total, max_total);

	cr_assert_eq(r.authorized, allowed, "authorize %s/%llu: authorized %d", cap,
	             (unsigned long long)grant, r.authorized);
	bc_authorize_hold_result_free(&r);
}

static void settle(int kind, const char *cap, uint64_t grant, const char *hold, uint64_t units,
                   uint64_t realized)
{
	bc_hold_mutation_result r;
	bc_error err;
	int rc;

	if (kind == 'l') {
		bc_release_hold_request q = {cap, grant, hold, units, NULL, NULL};
		rc = bc_release_hold(client, &q, 0, &r, &err);
	} else if (kind == 'v') {
		bc_reverse_hold_request q = {cap, grant, hold, units, NULL, NULL};
		rc = bc_reverse_hold(client, &q, 0, &r, &err);
	} else if (kind == 'p') {
		bc_capture_hold_request q = {cap, grant, hold, units, realized, NULL, NULL};
		rc = bc_capture_hold(client, &q, 0, &r, &err);
	} else {
		bc_reconcile_hold_request q = {cap, grant, hold, units, realized, NULL, NULL};
		rc = bc_reconcile_hold(client, &q, 0, &r, &err);
	}
	cr_assert_eq(rc, 0, "settle %c of %s: %s", kind, hold, err.message);
	bc_hold_mutation_result_free(&r);
}

static void increment(const char *cap, uint64_t grant, uint64_t max, bool allowed)
{
	bc_increment_invocation_request q = {cap, grant, true, max, NULL};
	bc_increment_invocation_result r;
	bc_error err;

	cr_assert_eq(bc_increment_invocation(client, &q, 0, &r, &err), 0, "%s", err.message);
	cr_assert_eq(r.allowed, allowed);
	bc_increment_invocation_result_free(&r);
}

/* MIX_EVENTS events of every kind, allowed and denied:
 * MIX_GRANTS usage records, MIX_HOLDS holds of which h5 stays open. */
static void mix(void)
{
	authorize("cap-a", 0, 10, "h1", true, 100, true);
	authorize("cap-a", 0, 500, "h2", true, 100, false);
	settle('l', "cap-a", 0, "h1", 4, 0);
	authorize("cap-a", 0, 20, "h3", false, 0, true);
	settle('v', "cap-a", 0, "h3", 20, 0);
	settle('r', "cap-a", 0, "h1", 6, 5);
	authorize("cap-b", 1, 30, "h4", false, 0, true);
	settle('p', "cap-b", 1, "h4", 30, 30);
	increment("cap-b", 1, 5, true);
	increment("cap-b", 1, 1, false);
	authorize("cap-c", 0, 7, "h5", false, 0, true);
	authorize("cap-d", 0, 9, "h6", false, 0, true);
	settle('l', "cap-d", 0, "h6", 9, 0);
}

/* budgetd ARGS... to its end; its stdout and stderr are in `output`. */
static int budgetd(const char *const *args)
{
	int rc = td_run_once(args, output, sizeof(output), RUN_TIMEOUT_MS);

	cr_assert_geq(rc, 0, "budgetd did not exit normally: %s", output);
	/* bd_main.c gains --verify from the lead: say so, do not skip. */
	cr_assert_not(rc == 2 && strstr(output, "verify"),
	              "this budgetd has no --verify (daemon/bd_main.c must call"
	              " bd_admin_verify_main): %s",
	              output);
	return rc;
}

static int budgetd_verify(const char *path)
{
	return budgetd((const char *const[]){"--verify", "--db", path, NULL});
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ssize_t n;

	cr_assert_geq(in, 0, "cannot open %s", from);
	cr_assert_geq(out, 0, "cannot create %s", to);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		cr_assert_eq(write(out, buf, (size_t)n), n);
	cr_assert_eq(n, 0);
	close(in);
	cr_assert_eq(close(out), 0);
}

static void tamper(const char *path, const char *sql)
{
	sqlite3 *d = NULL;
	char *msg = NULL;

	cr_assert_eq(sqlite3_open_v2(path, &d, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_busy_timeout(d, RUN_TIMEOUT_MS), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(d, sql, NULL, NULL, &msg), SQLITE_OK, "%s: %s", sql,
	             msg ? msg : "");
	cr_assert_eq(sqlite3_close(d), SQLITE_OK);
}

static bc_backup_result backup_ok(const char *path)
{
	bc_backup_result r;
	bc_error err;

	cr_assert_eq(bc_backup(client, path, 60000, &r, &err), 0, "Backup: %s", err.message);
	cr_assert(r.verified, "the backup did not verify: %s; %s", r.summary,
	          r.n_mismatches ? r.mismatches[0] : "-");
	cr_assert_str_eq(r.path, path);
	return r;
}

/* $BUDGETCTL --addr <the daemon> ARGS...; its stdout and stderr in `output`. */
static int budgetctl(const char *const *args)
{
	const char *path = getenv("BUDGETCTL");
	const char *argv[32];
	char tmp[] = "/tmp/budgetctl-out-XXXXXX";
	int n = 0, fd = mkstemp(tmp), status;
	posix_spawn_file_actions_t fa;
	pid_t pid;

	cr_assert_not_null(path, "BUDGETCTL is not set");
	cr_assert_geq(fd, 0);
	argv[n++] = path;
	argv[n++] = "--addr";
	argv[n++] = daemon_.tcp_addr;
	for (int i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fd, STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, fd, STDERR_FILENO);
	cr_assert_eq(posix_spawn(&pid, path, &fa, NULL, (char *const *)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	struct pollfd p = {.fd = pfd, .events = POLLIN};
	bool ended = pfd >= 0 && poll(&p, 1, RUN_TIMEOUT_MS) == 1;
	if (!ended)
		kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	if (pfd >= 0)
		close(pfd);
	ssize_t got = pread(fd, output, sizeof(output) - 1, 0);
	output[got > 0 ? got : 0] = '\0';
	close(fd);
	unlink(tmp);
	cr_assert(ended && WIFEXITED(status), "budgetctl did not end: %s", output);
	return WEXITSTATUS(status);
}

/* ---- Verify ---- */

Test(admin, verify_finds_a_good_ledger_consistent_and_materialized)
{
	bc_verify_result r;
	bc_error err;

	mix();
	cr_assert_eq(bc_verify(client, 60000, &r, &err), 0, "Verify: %s", err.message);
	cr_assert(r.ok, "%s; %s", r.summary, r.n_mismatches ? r.mismatches[0] : "-");
	cr_assert_eq(r.mismatch_count, 0);
	cr_assert_eq(r.n_mismatches, 0);
	cr_assert_eq(r.events, MIX_EVENTS);
	cr_assert_eq(r.commit_index, server_commit_index());
	/* Verify checkpoints first: the derived tables are current. */
	cr_assert_eq(r.materialized_seq, MIX_EVENTS);
	cr_assert_eq(r.usage_records, MIX_GRANTS);
	cr_assert_eq(r.holds, MIX_HOLDS);
	cr_assert_eq(r.open_holds, MIX_OPEN_HOLDS);
	cr_assert(strncmp(r.summary, "consistent:", 11) == 0, "%s", r.summary);
	bc_verify_result_free(&r);
}

Test(admin, a_file_verifies_while_budgetd_serves_from_it)
{
	bs_verify_report r;
	bs_error err = {0};

	mix();
	cr_assert_eq(bs_verify_file(daemon_.db, &r, &err), BS_OK, "%s", err.message);
	cr_assert(r.ok, "%s; %s", r.summary, r.n_mismatches ? r.mismatches[0] : "-");
	cr_assert_eq(r.last_event_seq, server_commit_index());
}

Test(admin, an_unmaterialized_ledger_left_by_a_crash_verifies)
{
	bc_list_usages_request lq = {0};
	bc_usage_list usages;
	bs_verify_report r;
	bs_error err = {0};
	bc_error cerr;

	mix();
	/* A list materializes the derived tables up to here... */
	cr_assert_eq(bc_list_usages(client, &lq, 0, &usages, &cerr), 0, "%s", cerr.message);
	bc_usage_list_free(&usages);
	/* ...then more events, and a crash: they are only in the log. */
	authorize("cap-e", 2, 3, "h7", false, 0, true);
	increment("cap-e", 2, 0, false);
	td_kill(&daemon_);

	cr_assert_eq(bs_verify_file(daemon_.db, &r, &err), BS_OK, "%s", err.message);
	cr_assert(r.ok, "%s; %s", r.summary, r.n_mismatches ? r.mismatches[0] : "-");
	cr_assert_eq(r.last_event_seq, MIX_EVENTS + 2);
	/* At least the list's materialization (the writer may have
	 * materialized the rest when idle for a second before the kill). */
	cr_assert_geq(r.materialized_seq, MIX_EVENTS);
	cr_assert_leq(r.materialized_seq, MIX_EVENTS + 2);
	cr_assert_eq(budgetd_verify(daemon_.db), 0, "%s", output);
	cr_assert(strstr(output, "consistent: events 15"), "%s", output);
}

Test(admin, budgetd_verify_of_a_missing_file_cannot_verify)
{
	char path[PATH_SIZE];

	cr_assert_eq(budgetd_verify(in_dir(path, "nothing-here.db")), EXIT_VERIFY_ERROR, "%s",
	             output);
	cr_assert(strstr(output, "cannot verify"), "%s", output);
	cr_assert_neq(access(path, F_OK), 0, "--verify created the file");
}

/* ---- Backup ---- */

Test(admin, backup_writes_a_verified_self_contained_copy)
{
	char path[PATH_SIZE], side[PATH_SIZE + 8];
	struct stat st;

	mix();
	bc_backup_result r = backup_ok(in_dir(path, "backup.db"));
	cr_assert_eq(r.commit_index, server_commit_index());
	cr_assert_eq(r.materialized_seq, MIX_EVENTS);
	cr_assert_eq(r.mismatch_count, 0);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, r.bytes);
	cr_assert_eq(st.st_mode & 0777, 0640, "mode %o", st.st_mode & 0777);
	snprintf(side, sizeof(side), "%s.tmp", path);
	cr_assert_neq(access(side, F_OK), 0);
	snprintf(side, sizeof(side), "%s-wal", path);
	cr_assert_neq(access(side, F_OK), 0);
	cr_assert(strncmp(r.summary, "consistent:", 11) == 0, "%s", r.summary);
	bc_backup_result_free(&r);
	cr_assert_eq(budgetd_verify(path), 0, "%s", output);
}

/* Each tampering of a backup, and what budgetd --verify says about it. */
static const struct {
	const char *name;
	const char *sql;
	const char *finding;
} tamperings[] = {
        {"usage_exposed", "UPDATE usage SET total_cost_exposed = 999 WHERE capability_id = 'cap-c'",
         "usage row (`cap-c`, 0) differs from the log through event 13: total_cost_exposed 999"
         " (the log: 7)"},
        {"hold_disposition", "UPDATE holds SET disposition = 4 WHERE hold_id = 'h6'",
         "hold `h6` differs from the log through event 13: disposition reconciled (the log:"
         " released)"},
        {"deleted_event", "DROP TRIGGER events_no_delete; DELETE FROM events WHERE event_seq = 9",
         "the mutation log has a gap: event 9 is missing"},
        {"after_value",
         "DROP TRIGGER events_no_update; UPDATE events SET realized_after = 6 WHERE event_seq = 6",
         "event 6 (reconcile_spend of `cap-a`/0) records realized_after 6 (the log: 5)"},
};

Test(admin, budgetd_verify_finds_each_tampering_of_a_backup)
{
	char path[PATH_SIZE], copy[PATH_SIZE];

	mix();
	bc_backup_result r = backup_ok(in_dir(path, "backup.db"));
	bc_backup_result_free(&r);
	for (size_t i = 0; i < sizeof(tamperings) / sizeof(tamperings[0]); i++) {
		char name[64];

		snprintf(name, sizeof(name), "tampered-%s.db", tamperings[i].name);
		copy_file(path, in_dir(copy, name));
		tamper(copy, tamperings[i].sql);
		cr_assert_eq(budgetd_verify(copy), EXIT_VERIFY_MISMATCH, "%s: %s",
		             tamperings[i].name, output);
		cr_assert(strstr(output, "INCONSISTENT:"), "%s: %s", tamperings[i].name, output);
		cr_assert(strstr(output, tamperings[i].finding), "%s: `%s` not in: %s",
		          tamperings[i].name, tamperings[i].finding, output);
	}
	/* The backup itself is untouched. */
	cr_assert_eq(budgetd_verify(path), 0, "%s", output);
}

Test(admin, backup_never_replaces_a_file_and_refuses_bad_paths)
{
	char path[PATH_SIZE], missing[PATH_SIZE];
	bc_backup_result r;
	bc_error err;
	struct stat before, after;

	mix();
	r = backup_ok(in_dir(path, "backup.db"));
	bc_backup_result_free(&r);
	cr_assert_eq(stat(path, &before), 0);
	fx_expect_error(bc_backup(client, path, 60000, &r, &err), &err, GRPC_STATUS_ALREADY_EXISTS,
	                "already exists");
	cr_assert_eq(stat(path, &after), 0);
	cr_assert_eq(before.st_ino, after.st_ino);
	cr_assert_eq(before.st_size, after.st_size);
	fx_expect_error(bc_backup(client, "backup.db", 60000, &r, &err), &err,
	                GRPC_STATUS_INVALID_ARGUMENT, "not absolute");
	fx_expect_error(bc_backup(client, in_dir(missing, "no/such/dir/b.db"), 60000, &r, &err),
	                &err, GRPC_STATUS_INVALID_ARGUMENT, "directory does not exist");
	fx_expect_error(bc_backup(client, "", 60000, &r, &err), &err, GRPC_STATUS_INVALID_ARGUMENT,
	                "required");
	/* The refusals changed nothing: another backup works. */
	r = backup_ok(in_dir(path, "backup-2.db"));
	bc_backup_result_free(&r);
}

typedef struct loader {
	int id;
	bc_client *c;
	atomic_bool *stop;
	uint64_t done;
	int errors;
	char first_error[BC_ERROR_MESSAGE_MAX];
} loader;

/* One authorize (denied every LOAD_DENIAL_EVERY-th time) and, when it was
 * authorized, its reconcile. 0 or the failed call's status. */
static int load_one(loader *l, const char *cap, uint64_t i, bc_error *err)
{
	char hold[64];
	bool deny = i % LOAD_DENIAL_EVERY == LOAD_DENIAL_EVERY - 1;
	bc_authorize_hold_request a = {.capability_id = cap,
	                               .requested_exposure_units = LOAD_UNITS,
	                               .has_max_total_cost_units = deny,
	                               .max_total_cost_units = 0,
	                               .hold_id = hold};
	bc_reconcile_hold_request r = {cap, 0, hold, LOAD_UNITS, LOAD_REALIZED, NULL, NULL};
	bc_authorize_hold_result ar;
	bc_hold_mutation_result rr;
	int rc;

	snprintf(hold, sizeof(hold), "%s-%llu", cap, (unsigned long long)i);
	if ((rc = bc_authorize_hold(l->c, &a, 0, &ar, err)) != 0)
		return rc;
	bool authorized = ar.authorized;
	bc_authorize_hold_result_free(&ar);
	l->done++;
	if (!authorized)
		return 0;
	if ((rc = bc_reconcile_hold(l->c, &r, 0, &rr, err)) != 0)
		return rc;
	bc_hold_mutation_result_free(&rr);
	l->done++;
	return 0;
}

/* Mutates a grant of its own until told to stop. */
static void *load(void *p)
{
	loader *l = p;
	char cap[32];
	bc_error err;

	snprintf(cap, sizeof(cap), "load-%d", l->id);
	for (uint64_t i = 0; !atomic_load(l->stop); i++)
		if (load_one(l, cap, i, &err) != 0 && l->errors++ == 0)
			snprintf(l->first_error, sizeof(l->first_error), "%s", err.message);
	return NULL;
}

/* Every event of the backup is in the live log, identical. */
static void expect_backup_is_a_prefix_of_the_live_log(const char *backup, uint64_t last)
{
	sqlite3 *d = NULL;
	sqlite3_stmt *st = NULL;
	char sql[PATH_SIZE + 64];
	const char *queries[] = {
	        "SELECT count(*), coalesce(max(event_seq), 0) FROM b.events",
	        "SELECT count(*), 0 FROM (SELECT * FROM b.events EXCEPT SELECT * FROM main.events)",
	};

	cr_assert_eq(sqlite3_open_v2(daemon_.db, &d, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL),
	             SQLITE_OK);
	snprintf(sql, sizeof(sql), "ATTACH 'file:%s?mode=ro' AS b", backup);
	cr_assert_eq(sqlite3_exec(d, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(d));
	for (int q = 0; q < 2; q++) {
		cr_assert_eq(sqlite3_prepare_v2(d, queries[q], -1, &st, NULL), SQLITE_OK, "%s",
		             sqlite3_errmsg(d));
		cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sqlite3_errmsg(d));
		int64_t n = sqlite3_column_int64(st, 0), max = sqlite3_column_int64(st, 1);
		if (q == 0) {
			cr_assert_eq((uint64_t)n, last, "the backup has %lld events", (long long)n);
			cr_assert_eq((uint64_t)max, last);
		} else {
			cr_assert_eq(n, 0, "%lld events of the backup differ from the live log",
			             (long long)n);
		}
		sqlite3_finalize(st);
	}
	cr_assert_eq(sqlite3_close(d), SQLITE_OK);
}

Test(admin, backup_under_load_is_a_consistent_snapshot_of_the_live_log)
{
	static loader loaders[LOAD_THREADS];
	pthread_t threads[LOAD_THREADS];
	atomic_bool stop = false;
	char path[PATH_SIZE];

	for (int i = 0; i < LOAD_THREADS; i++) {
		loaders[i] =
		        (loader){.id = i, .c = fx_client(daemon_.tcp_addr, true), .stop = &stop};
		cr_assert_eq(pthread_create(&threads[i], NULL, load, &loaders[i]), 0);
	}
	/* The backup starts while the load runs (polling the commit index, not
	 * sleeping). */
	while (server_commit_index() < LOAD_EVENTS_BEFORE)
		;
	bc_backup_result r = backup_ok(in_dir(path, "under-load.db"));
	atomic_store(&stop, true);
	for (int i = 0; i < LOAD_THREADS; i++) {
		cr_assert_eq(pthread_join(threads[i], NULL), 0);
		bc_client_free(loaders[i].c);
		cr_assert_eq(loaders[i].errors, 0, "loader %d: %d errors, the first: %s", i,
		             loaders[i].errors, loaders[i].first_error);
		cr_assert_gt(loaders[i].done, 0);
	}

	uint64_t live = server_commit_index();
	cr_log_info("backup at commit index %llu; %llu after the load",
	            (unsigned long long)r.commit_index, (unsigned long long)live);
	cr_assert_geq(r.commit_index, LOAD_EVENTS_BEFORE);
	cr_assert_leq(r.commit_index, live);
	expect_backup_is_a_prefix_of_the_live_log(path, r.commit_index);
	bc_backup_result_free(&r);
	cr_assert_eq(budgetd_verify(path), 0, "%s", output);

	/* And the live ledger, which went on, is consistent too. */
	bc_verify_result v;
	bc_error err;
	cr_assert_eq(bc_verify(client, 60000, &v, &err), 0, "%s", err.message);
	cr_assert(v.ok, "%s; %s", v.summary, v.n_mismatches ? v.mismatches[0] : "-");
	cr_assert_eq(v.commit_index, live);
	bc_verify_result_free(&v);
}

/* ---- budgetctl ---- */

Test(admin, budgetctl_verify_and_backup)
{
	char path[PATH_SIZE], arg[PATH_SIZE + 8];

	mix();
	cr_assert_eq(budgetctl((const char *const[]){"verify", NULL}), 0, "%s", output);
	cr_assert(strstr(output, "ok:"), "%s", output);
	cr_assert(strstr(output, "consistent:"), "%s", output);
	cr_assert(strstr(output, "events:"), "%s", output);

	cr_assert_eq(budgetctl((const char *const[]){"--json", "verify", NULL}), 0, "%s", output);
	cr_assert(strstr(output, "\"ok\": true"), "%s", output);
	cr_assert(strstr(output, "\"commitIndex\": \"13\""), "%s", output);
	cr_assert(strstr(output, "\"mismatches\": []"), "%s", output);

	in_dir(path, "ctl-backup.db");
	cr_assert_eq(budgetctl((const char *const[]){"backup", path, NULL}), 0, "%s", output);
	cr_assert(strstr(output, "verified:"), "%s", output);
	cr_assert(strstr(output, "true"), "%s", output);
	cr_assert_eq(access(path, F_OK), 0);

	snprintf(arg, sizeof(arg), "%s", in_dir(path, "ctl-backup-2.db"));
	cr_assert_eq(budgetctl((const char *const[]){"--json", "backup", "--path", arg, NULL}), 0,
	             "%s", output);
	cr_assert(strstr(output, "\"verified\": true"), "%s", output);
	cr_assert(strstr(output, "\"commitIndex\": \"13\""), "%s", output);

	/* The same path again: ALREADY_EXISTS. */
	cr_assert_eq(budgetctl((const char *const[]){"backup", arg, NULL}),
	             EXIT_CTL_GRPC_BASE + BC_STATUS_ALREADY_EXISTS, "%s", output);
	cr_assert(strstr(output, "ALREADY_EXISTS"), "%s", output);
	/* A relative path is refused before any call. */
	cr_assert_eq(budgetctl((const char *const[]){"backup", "rel.db", NULL}), EXIT_CTL_USAGE,
	             "%s", output);
	cr_assert(strstr(output, "server's filesystem"), "%s", output);
	cr_assert_eq(budgetctl((const char *const[]){"backup", NULL}), EXIT_CTL_USAGE, "%s",
	             output);
	cr_assert_eq(budgetctl((const char *const[]){"backup", "--help", NULL}), 0, "%s", output);
	cr_assert(strstr(output, "SERVER'S FILESYSTEM"), "%s", output);
	cr_assert_eq(budgetctl((const char *const[]){"verify", "--help", NULL}), 0, "%s", output);
}

Test(admin, budgetctl_verify_exits_1_on_a_tampered_ledger)
{
	mix();
	/* budgetd's own file, under it: a derived row budgetd only writes at
	 * the next materialization (Verify checkpoints first, which leaves an
	 * up-to-date row alone). */
	bc_verify_result v;
	bc_error err;
	cr_assert_eq(bc_verify(client, 60000, &v, &err), 0, "%s", err.message);
	bc_verify_result_free(&v);
	tamper(daemon_.db, "UPDATE usage SET invocation_count = 77 WHERE capability_id = 'cap-d'");
	cr_assert_eq(budgetctl((const char *const[]){"verify", NULL}), 1, "%s", output);
	cr_assert(strstr(output, "ok:"), "%s", output);
	cr_assert(strstr(output, "false"), "%s", output);
	cr_assert(strstr(output, "invocation_count 77 (the log: 1)"), "%s", output);
	/* Put it back so the daemon stops on a consistent file. */
	tamper(daemon_.db, "UPDATE usage SET invocation_count = 1 WHERE capability_id = 'cap-d'");
}
