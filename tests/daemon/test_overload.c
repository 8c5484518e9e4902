/* test_overload.c - a full queue answers RESOURCE_EXHAUSTED at once, and a
 * store that cannot commit answers UNAVAILABLE with nothing applied.
 *
 * The writer is held deterministically: the test takes SQLite's write lock
 * on budgetd's database with its own connection, so the writer waits in
 * BEGIN (up to the store's 5 s busy timeout). */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"

static const char *const small_queue[] = {"--queue-depth", "2", NULL};

static void setup_small_queue(void)
{
	memset(&daemon_, 0, sizeof(daemon_));
	client = NULL;
	fx_start(small_queue, NULL);
}

TestSuite(overload, .init = setup_small_queue, .fini = fx_teardown, .timeout = 180);

static sqlite3 *lock_store(void)
{
	sqlite3 *db = NULL;

	cr_assert_eq(sqlite3_open(daemon_.db, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK,
	             "cannot take the write lock: %s", sqlite3_errmsg(db));
	return db;
}

static void unlock_store(sqlite3 *db)
{
	cr_assert_eq(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

#define CALLERS 6 /* more than twice the queue: someone must be refused */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int refused, finished;

typedef struct caller {
	int id;
	int rc;
	bc_error err;
} caller;

static void *call(void *p)
{
	caller *c = p;
	char event[32];
	bc_authorize_hold_result r;

	snprintf(event, sizeof(event), "ov-%d", c->id);
	bc_authorize_hold_request req = {
	        .capability_id = "ov", .requested_exposure_units = 1, .event_id = event};
	c->rc = bc_authorize_hold(client, &req, 60000, &r, &c->err);
	if (c->rc == 0)
		bc_authorize_hold_result_free(&r);
	pthread_mutex_lock(&lock);
	refused += c->rc != 0 && c->err.code == GRPC_STATUS_RESOURCE_EXHAUSTED;
	finished++;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
	return NULL;
}

Test(overload, a_full_queue_refuses_at_once_and_the_accepted_calls_complete)
{
	static caller callers[CALLERS];
	pthread_t threads[CALLERS];
	sqlite3 *db = lock_store();

	for (int i = 0; i < CALLERS; i++) {
		callers[i] = (caller){.id = i};
		cr_assert_eq(pthread_create(&threads[i], NULL, call, &callers[i]), 0);
	}
	pthread_mutex_lock(&lock);
	while (refused == 0)
		pthread_cond_wait(&changed, &lock);
	pthread_mutex_unlock(&lock);
	unlock_store(db);
	int ok = 0;
	for (int i = 0; i < CALLERS; i++) {
		pthread_join(threads[i], NULL);
		if (callers[i].rc == 0) {
			ok++;
			continue;
		}
		cr_assert_eq(callers[i].err.code, GRPC_STATUS_RESOURCE_EXHAUSTED, "%d: %s",
		             callers[i].err.code, callers[i].err.message);
		cr_assert(strstr(callers[i].err.message, "write queue is full"), "%s",
		          callers[i].err.message);
	}
	cr_assert_geq(ok, 1);
	bc_usage_result u;
	bc_error err;
	cr_assert_eq(bc_get_usage(client, "ov", 0, 0, &u, &err), 0, "%s", err.message);
	cr_assert_eq(u.usage.invocation_count, (uint32_t)ok, "exactly the accepted calls applied");
	bc_usage_result_free(&u);
	bc_serving_status st;
	cr_assert_eq(bc_health_check(client, "", 0, &st, &err), 0, "health stays responsive");
}

Test(overload, a_store_that_cannot_commit_answers_unavailable_and_applies_nothing)
{
	sqlite3 *db = lock_store();
	bc_authorize_hold_request req = {.capability_id = "locked",
	                                 .requested_exposure_units = 1,
	                                 .hold_id = "h",
	                                 .event_id = "locked-1"};
	bc_authorize_hold_result r;
	bc_error err;

	int rc = bc_authorize_hold(client, &req, 60000, &r, &err);
	fx_expect_error(rc, &err, GRPC_STATUS_UNAVAILABLE, "nothing of this batch was applied");
	cr_assert(strstr(err.message, "retry with the same event_id"), "%s", err.message);
	unlock_store(db);

	bc_usage_result u;
	cr_assert_eq(bc_get_usage(client, "locked", 0, 0, &u, &err), 0, "%s", err.message);
	cr_assert_not(u.found, "a failed commit left a usage row");
	bc_usage_result_free(&u);
	cr_assert_eq(bc_authorize_hold(client, &req, 0, &r, &err), 0, "%s", err.message);
	cr_assert_not(r.metadata.replayed, "the failed attempt must not have been recorded");
	cr_assert_eq(r.metadata.budget_commit_index, 1);
	bc_authorize_hold_result_free(&r);
}
