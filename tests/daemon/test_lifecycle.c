/* test_lifecycle.c - start, restart, crash, graceful stop and bad starts of
 * the real budgetd binary. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.h"

TestSuite(lifecycle, .init = fx_setup, .fini = fx_teardown, .timeout = 180);

static uint64_t commit_index(void)
{
	bc_server_info info;
	bc_error err;

	cr_assert_eq(bc_get_server_info(client, 0, &info, &err), 0, "%s", err.message);
	uint64_t index = info.commit_index;
	bc_server_info_free(&info);
	return index;
}

static void expect_usage(const char *cap, uint32_t count, uint64_t exposed, uint64_t realized)
{
	bc_usage_result u;
	bc_error err;

	cr_assert_eq(bc_get_usage(client, cap, 0, 0, &u, &err), 0, "%s", err.message);
	cr_assert(u.found, "no usage for %s", cap);
	cr_assert_eq(u.usage.invocation_count, count);
	cr_assert_eq(u.usage.total_cost_exposed, exposed);
	cr_assert_eq(u.usage.total_cost_realized_spend, realized);
	bc_usage_result_free(&u);
}

static void restart(bool crash)
{
	if (crash)
		td_kill(&daemon_);
	else
		fx_stop();
	fx_start(NULL, NULL);
}

static void persist_and_restart(bool crash)
{
	bc_authorize_hold_result a = fx_authorize("cap", 0, 100, "h1", "e1", false, 0);
	uint64_t index = a.metadata.budget_commit_index;
	bc_authorize_hold_result_free(&a);
	bc_hold_mutation_result r = fx_reconcile("cap", 0, "h1", 100, 60);
	bc_hold_mutation_result_free(&r);
	a = fx_authorize("cap", 0, 5, "h2", NULL, false, 0);
	bc_authorize_hold_result_free(&a);

	restart(crash);

	expect_usage("cap", 2, 5, 60);
	cr_assert_eq(commit_index(), 3);
	a = fx_authorize("cap", 0, 100, "h1", "e1", false, 0);
	cr_assert(a.metadata.replayed, "idempotency must survive a restart");
	cr_assert_eq(a.metadata.budget_commit_index, index);
	bc_authorize_hold_result_free(&a);
	bc_hold h;
	bc_error err;
	cr_assert_eq(bc_get_hold(client, "h2", 0, &h, &err), 0, "%s", err.message);
	cr_assert_eq(h.disposition, BC_HOLD_DISPOSITION_OPEN);
	bc_hold_free(&h);
	a = fx_authorize("cap", 0, 1, NULL, NULL, false, 0);
	cr_assert_eq(a.metadata.budget_commit_index, 4, "the sequence continues");
	bc_authorize_hold_result_free(&a);
}

Test(lifecycle, state_survives_a_clean_restart)
{
	persist_and_restart(false);
}

Test(lifecycle, acknowledged_mutations_survive_sigkill)
{
	persist_and_restart(true);
}

Test(lifecycle, sigterm_sends_stopping_and_exits_zero)
{
	cr_assert_eq(kill(daemon_.pid, SIGTERM), 0);
	cr_assert(td_wait_notify(&daemon_, "STOPPING=1", TD_STOP_TIMEOUT_MS));
	fx_stop();
}

/* ---- graceful shutdown with calls in flight ---- */

#define WRITERS    8
#define WRITES_MAX 2000

typedef struct acked {
	char event_id[40];
	uint64_t commit_index;
} acked;

typedef struct writer_arg {
	int id;
	bc_client *c;
	acked acks[WRITES_MAX];
	int n;
} writer_arg;

static pthread_mutex_t progress_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t progress = PTHREAD_COND_INITIALIZER;
static int writes_done;

static void count_write(void)
{
	pthread_mutex_lock(&progress_lock);
	writes_done++;
	pthread_cond_signal(&progress);
	pthread_mutex_unlock(&progress_lock);
}

static void wait_for_writes(int n)
{
	pthread_mutex_lock(&progress_lock);
	while (writes_done < n)
		pthread_cond_wait(&progress, &progress_lock);
	pthread_mutex_unlock(&progress_lock);
}

static void *writer(void *p)
{
	writer_arg *w = p;

	for (int i = 0; i < WRITES_MAX; i++) {
		char event[40], hold[40];
		snprintf(event, sizeof(event), "w%d-e%d", w->id, i);
		snprintf(hold, sizeof(hold), "w%d-h%d", w->id, i);
		bc_authorize_hold_request req = {.capability_id = "busy",
		                                 .requested_exposure_units = 1,
		                                 .hold_id = hold,
		                                 .event_id = event};
		bc_authorize_hold_result r;
		bc_error err;
		if (bc_authorize_hold(w->c, &req, 0, &r, &err) != 0)
			break; /* the server stopped accepting */
		snprintf(w->acks[w->n].event_id, sizeof(w->acks[w->n].event_id), "%s", event);
		w->acks[w->n++].commit_index = r.metadata.budget_commit_index;
		bc_authorize_hold_result_free(&r);
		count_write();
	}
	return NULL;
}

static void expect_logged(const writer_arg *w)
{
	for (int i = 0; i < w->n; i++) {
		bc_authorize_hold_request req = {.capability_id = "busy",
		                                 .requested_exposure_units = 1,
		                                 .event_id = w->acks[i].event_id};
		char hold[40];
		snprintf(hold, sizeof(hold), "w%d-h%d", w->id, i);
		req.hold_id = hold;
		bc_authorize_hold_result r;
		bc_error err;
		cr_assert_eq(bc_authorize_hold(client, &req, 0, &r, &err), 0, "%s", err.message);
		cr_assert(r.metadata.replayed, "acknowledged %s is missing after the restart",
		          w->acks[i].event_id);
		cr_assert_eq(r.metadata.budget_commit_index, w->acks[i].commit_index);
		bc_authorize_hold_result_free(&r);
	}
}

Test(lifecycle, graceful_stop_keeps_every_acknowledged_mutation)
{
	static writer_arg args[WRITERS];
	pthread_t threads[WRITERS];

	writes_done = 0;
	for (int i = 0; i < WRITERS; i++) {
		args[i] = (writer_arg){.id = i, .c = fx_client(daemon_.tcp_addr, false)};
		cr_assert_eq(pthread_create(&threads[i], NULL, writer, &args[i]), 0);
	}
	/* Stop once the load is really running: the writers report progress. */
	wait_for_writes(WRITERS * 20);
	cr_assert_eq(td_stop(&daemon_), 0, "budgetd did not exit cleanly");
	int total = 0;
	for (int i = 0; i < WRITERS; i++) {
		pthread_join(threads[i], NULL);
		bc_client_free(args[i].c);
		total += args[i].n;
	}
	cr_assert_gt(total, 0);
	fx_start(NULL, NULL);
	for (int i = 0; i < WRITERS; i++)
		expect_logged(&args[i]);
	expect_usage("busy", (uint32_t)total, (uint64_t)total, 0);
}

/* ---- starts that must fail ---- */

static void expect_start_failure(const char *const *argv, int status, const char *part)
{
	char out[4096];
	int rc = td_run_once(argv, out, sizeof(out), 30000);

	cr_assert_eq(rc, status, "exit %d, expected %d; output: %s", rc, status, out);
	cr_assert(strstr(out, part), "output lacks `%s`: %s", part, out);
}

Test(lifecycle, a_bad_flag_exits_2_with_one_line)
{
	expect_start_failure((const char *const[]){"--no-such-flag", NULL}, 2,
	                     "unknown or incomplete option `--no-such-flag`");
	expect_start_failure((const char *const[]){"--sync", "sometimes", NULL}, 2,
	                     "--sync: must be full or normal, not `sometimes`");
	expect_start_failure((const char *const[]){"--log-level", "loud", NULL}, 2, "--log-level");
}

Test(lifecycle, a_second_budgetd_on_the_same_db_fails)
{
	expect_start_failure(
	        (const char *const[]){"--db", daemon_.db, "--listen", "127.0.0.1:0", NULL}, 1,
	        "already in use by another budgetd");
}

Test(lifecycle, a_busy_port_fails_to_start)
{
	char db[400];
	snprintf(db, sizeof(db), "%s/other.db", daemon_.dir);
	expect_start_failure((const char *const[]){"--db", db, "--listen", daemon_.tcp_addr, NULL},
	                     1, "cannot listen on");
}

Test(lifecycle, an_unusable_db_path_fails_to_start)
{
	char db[400];
	snprintf(db, sizeof(db), "%s/budgetd.log/sub/x.db", daemon_.dir);
	expect_start_failure((const char *const[]){"--db", db, "--listen", "127.0.0.1:0", NULL}, 1,
	                     "cannot");
}

Test(lifecycle, help_and_version_exit_0)
{
	expect_start_failure((const char *const[]){"--help", NULL}, 0, "--listen ADDR");
	expect_start_failure((const char *const[]){"--version", NULL}, 0, "budgetd 0.1.0");
}

/* ---- systemd notifications ---- */

Test(lifecycle, the_watchdog_is_pinged_while_the_writer_makes_progress)
{
	static const char *const env[] = {"WATCHDOG_USEC=200000", NULL};

	fx_stop();
	daemon_.env = env;
	fx_start(NULL, NULL);
	cr_assert(td_wait_notify(&daemon_, "WATCHDOG=1", 10000), "no WATCHDOG=1 ping");
	bc_authorize_hold_result a = fx_authorize("wd", 0, 1, "wd-hold", NULL, false, 0);
	bc_authorize_hold_result_free(&a);
	cr_assert(td_wait_notify(&daemon_, "WATCHDOG=1", 10000), "no ping after a commit");
	cr_assert(td_wait_notify(&daemon_, "STATUS=serving; commit index 1", 10000),
	          "status line: %s", daemon_.status);
	cr_assert(strstr(daemon_.status, "; 1 open holds, 0 expired"), "status line: %s",
	          daemon_.status);
	cr_assert_eq(kill(daemon_.pid, SIGTERM), 0);
	cr_assert(td_wait_notify(&daemon_, "STOPPING=1", TD_STOP_TIMEOUT_MS));
	fx_stop();
}
