/* test_restart.c - file databases: persistence across restarts, the single
 * writer, and databases that must not open. */
#define _GNU_SOURCE
#include "helpers.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(restart, .init = th_setup_tmpdir, .fini = th_teardown_tmpdir);
TestSuite(open, .init = th_setup_tmpdir, .fini = th_teardown_tmpdir);

static char db_path[1024];

static const char *db(void)
{
	th_path(db_path, sizeof(db_path), tmpdir, "budget.db");
	return db_path;
}

/* Opens `path` expecting a failure; returns the error. */
static bs_error open_fails(const char *path, const bs_options *opts)
{
	bs_store *s = NULL;
	bs_error err;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = bs_store_open(path, opts, &s, &err);
	cr_assert_neq(rc, BS_OK, "opening %s should have failed", path);
	cr_assert_eq(err.code, rc, "err.code %d, returned %d", err.code, rc);
	cr_assert_gt(strlen(err.message), 0, "the failure has no message");
	return err;
}

static void write_file(const char *path, const void *buf, size_t n)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f, "cannot create %s", path);
	cr_assert_eq(fwrite(buf, 1, n, f), n);
	cr_assert_eq(fclose(f), 0);
}

static size_t read_file(const char *path, void *buf, size_t max)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	cr_assert_not_null(f, "cannot read %s", path);
	n = fread(buf, 1, max, f);
	fclose(f);
	return n;
}

/* --- persistence --------------------------------------------------------- */

Test(restart, usage_holds_idempotency_and_sequence_survive_a_restart)
{
	bs_mutation a = th_authorize("cap", 2, 10, "h1");
	bs_mutation d = th_increment("cap", 3);
	bs_mutation r = th_release("cap", 2, 4, "h1");
	bs_mutation c = th_reconcile("cap", 2, 6, 5, "h1");
	bs_mutation next = th_increment("other", 0);
	bs_outcome first, again, after;
	th_usage u;
	th_hold h;
	th_event *ev;
	size_t n;
	bs_store *s;

	th_now = 1000;
	s = th_open_path(db());
	th_set_event(&a, "e1");
	th_set_authority(&a, "auth-1", "lease-1", 4);
	th_set_max_total(&a, 100);
	first = apply_ok(s, &a);
	th_set_max_invocations(&d, 0);
	cr_assert_not(apply_ok(s, &d).allowed);
	th_set_authority(&r, "auth-1", "lease-1", 4);
	apply_ok(s, &r);
	cr_assert_eq(th_commit_index(s), 3);
	bs_store_close(s);

	th_now = 2000;
	s = th_open_path(db());
	cr_assert_eq(th_commit_index(s), 3, "the sequence did not survive");
	expect_usage(s, "cap", 2, 1, 6, 0);
	cr_assert(th_get_usage(s, "cap", 2, &u));
	cr_assert_eq(u.u.seq, 3);
	cr_assert_eq(u.u.updated_at_ns, 1000);
	expect_no_usage(s, "cap", 3);
	cr_assert(th_get_hold(s, "h1", &h));
	cr_assert_eq(h.h.disposition, BS_HOLD_OPEN);
	cr_assert_eq(h.h.authorized_units, 10);
	cr_assert_eq(h.h.remaining_units, 6);
	cr_assert(h.h.debited_invocation);
	cr_assert(h.h.has_authority);
	cr_assert_str_eq(h.authority_id, "auth-1");
	cr_assert_str_eq(h.lease_id, "lease-1");
	cr_assert_eq(h.h.authority.lease_epoch, 4);
	cr_assert_eq(h.h.created_at_ns, 1000);

	/* Idempotency continues: the same request is a replay... */
	again = apply_ok(s, &a);
	cr_assert(again.replayed);
	expect_same_outcome(&first, &again);
	/* ...and a different one under the same id a conflict. */
	a.exposure_units = 11;
	apply_err(s, &a, BS_ECONFLICT, "event_id `e1` was reused for a different mutation");

	/* The hold rules continue, with the recorded authority. */
	apply_err(s, &c, BS_EPRECONDITION, "budget hold `h1` requires authority lease metadata");
	th_set_authority(&c, "auth-1", "lease-1", 4);
	after = apply_ok(s, &c);
	cr_assert_eq(after.commit_index, 4, "the sequence did not continue");
	after = apply_ok(s, &next);
	cr_assert_eq(after.commit_index, 5);
	cr_assert_str_eq(after.event_id, "budgetd-auto-5");
	bs_store_close(s);

	s = th_open_path(db());
	expect_usage(s, "cap", 2, 1, 0, 5);
	expect_hold(s, "h1", BS_HOLD_RECONCILED, 10, 0);
	n = th_events(s, &ev);
	cr_assert_eq(n, 5);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(ev[i].e.event_seq, i + 1);
	cr_assert_not(ev[1].e.has_usage_seq);
	free(ev);
	bs_store_close(s);
}

Test(restart, u64_values_survive_a_restart)
{
	bs_mutation a = th_authorize("cap", U32MAX, U64MAX, "h1");
	bs_mutation r = th_release("cap", U32MAX, U64MAX, "h1");
	th_hold h;
	bs_store *s;

	th_set_max_total(&a, U64MAX);
	th_set_authority(&a, "auth", "lease", U64MAX);
	s = th_open_path(db());
	apply_ok(s, &a);
	bs_store_close(s);
	s = th_open_path(db());
	expect_usage(s, "cap", U32MAX, 1, U64MAX, 0);
	cr_assert(th_get_hold(s, "h1", &h));
	cr_assert_eq(h.h.remaining_units, U64MAX);
	cr_assert_eq(h.h.authority.lease_epoch, U64MAX);
	th_set_authority(&r, "auth", "lease", U64MAX);
	apply_ok(s, &r);
	expect_usage(s, "cap", U32MAX, 1, 0, 0);
	bs_store_close(s);
}

Test(restart, an_empty_database_reopens_with_commit_index_zero)
{
	bs_store *s = th_open_path(db());

	bs_store_close(s);
	s = th_open_path(db());
	cr_assert_eq(th_commit_index(s), 0);
	bs_store_close(s);
}

Test(restart, sync_normal_also_persists_across_a_clean_restart)
{
	bs_options o = th_options();
	bs_mutation m = th_increment("cap", 0);
	bs_store *s = NULL;
	bs_error err;

	o.sync = BS_SYNC_NORMAL;
	cr_assert_eq(bs_store_open(db(), &o, &s, &err), BS_OK, "%s", err.message);
	apply_ok(s, &m);
	bs_store_close(s);
	s = th_open_path(db());
	expect_usage(s, "cap", 0, 1, 0, 0);
	bs_store_close(s);
}

Test(restart, memory_stores_are_private)
{
	bs_store *a = th_open_memory();
	bs_store *b = th_open_memory();
	bs_mutation m = th_increment("cap", 0);

	apply_ok(a, &m);
	expect_usage(a, "cap", 0, 1, 0, 0);
	expect_no_usage(b, "cap", 0);
	cr_assert_eq(th_commit_index(b), 0);
	bs_store_close(a);
	bs_store_close(b);
}

Test(restart, checkpoint_changes_nothing_observable)
{
	bs_mutation a = th_authorize("cap", 0, 10, "h1");
	bs_mutation r = th_release("cap", 0, 3, "h1");
	th_snapshot before, after;
	bs_error err;
	bs_store *s = th_open_path(db());

	apply_ok(s, &a);
	memset(&err, 0, sizeof(err));
	cr_assert_eq(bs_store_checkpoint(s, &err), BS_OK, "%s", err.message);
	apply_ok(s, &r);
	th_snapshot_take(s, "h1", &before);
	cr_assert_eq(bs_store_checkpoint(s, &err), BS_OK, "%s", err.message);
	cr_assert_eq(bs_store_checkpoint(s, &err), BS_OK, "%s", err.message);
	th_snapshot_take(s, "h1", &after);
	th_snapshot_expect_same(__FILE__, __LINE__, &before, &after);
	th_snapshot_free(&after);
	bs_store_close(s);
	s = th_open_path(db());
	th_snapshot_take(s, "h1", &after);
	th_snapshot_expect_same(__FILE__, __LINE__, &before, &after);
	th_snapshot_free(&before);
	th_snapshot_free(&after);
	bs_store_close(s);
}

/* The child applies mutations and exits without closing the store, like a
 * crashed daemon; everything it was told is committed must be there. */
Test(restart, acknowledged_decisions_survive_a_process_crash)
{
	bs_mutation a = th_authorize("cap", 0, 10, "h1");
	bs_mutation d = th_authorize("cap", 0, 500, NULL);
	bs_mutation r = th_release("cap", 0, 4, "h1");
	bs_mutation inc = th_increment("other", 1);
	bs_mutation bulk = th_increment("bulk", 7);
	bs_outcome first, again;
	th_event *ev;
	bs_store *s;
	pid_t pid;
	int status;

	th_set_event(&a, "e1");
	th_set_max_cost(&d, 100);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		bs_store *c = NULL;
		bs_options o = th_options();
		bs_outcome out;
		int ok = 1;

		if (bs_store_open(db(), &o, &c, NULL) != BS_OK)
			_exit(10);
		ok &= bs_store_apply(c, &a, &out, NULL) == BS_OK && out.allowed;
		ok &= bs_store_apply(c, &d, &out, NULL) == BS_OK && !out.allowed;
		ok &= bs_store_apply(c, &r, &out, NULL) == BS_OK;
		for (int i = 0; i < 40; i++)
			ok &= bs_store_apply(c, &inc, &out, NULL) == BS_OK;
		for (int b = 0; b < 30; b++) {
			static bs_batch_item items[100];

			for (int i = 0; i < 100; i++)
				items[i].mutation = &bulk;
			ok &= bs_store_apply_batch(c, items, 100) == BS_OK;
			for (int i = 0; i < 100; i++)
				ok &= items[i].result == BS_OK;
		}
		_exit(ok ? 0 : 11); /* no close: a crash as far as the store knows */
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child failed: %d", status);

	s = th_open_path(db());
	cr_assert_eq(th_commit_index(s), 3043);
	expect_usage(s, "cap", 0, 1, 6, 0);
	expect_usage(s, "other", 1, 40, 0, 0);
	expect_usage(s, "bulk", 7, 3000, 0, 0);
	expect_hold(s, "h1", BS_HOLD_OPEN, 10, 6);
	cr_assert_eq(th_events(s, &ev), 3043);
	cr_assert_not(ev[1].e.has_usage_seq);
	free(ev);
	/* The replay answers what the crashed process answered. */
	again = apply_ok(s, &a);
	cr_assert(again.replayed);
	cr_assert_eq(again.event_seq, 1);
	cr_assert_eq(again.commit_index, 1);
	cr_assert_eq(again.exposed_after, 10);
	first = apply_ok(s, &inc);
	cr_assert_eq(first.commit_index, 3044);
	cr_assert_eq(first.invocation_count_after, 41);
	bs_store_close(s);
}

/* --- the single writer --------------------------------------------------- */

Test(open, a_second_writer_on_the_same_file_fails_while_the_first_is_open)
{
	bs_options o = th_options();
	bs_mutation m = th_increment("cap", 0);
	bs_store *first = th_open_path(db());
	bs_store *again;

	apply_ok(first, &m);
	open_fails(db(), &o);
	/* The first writer is unaffected. */
	apply_ok(first, &m);
	expect_usage(first, "cap", 0, 2, 0, 0);
	bs_store_close(first);
	/* Once it is closed, a new writer may open. */
	again = th_open_path(db());
	expect_usage(again, "cap", 0, 2, 0, 0);
	bs_store_close(again);
}

/* --- databases that must not open ---------------------------------------- */

Test(open, a_database_from_a_newer_schema_version_fails_with_a_clear_message)
{
	bs_options o = th_options();
	bs_mutation m = th_increment("cap", 0);
	bs_store *s = th_open_path(db());
	sqlite3 *raw = NULL;
	sqlite3_stmt *st = NULL;
	bs_error err;

	apply_ok(s, &m);
	bs_store_close(s);
	cr_assert_eq(sqlite3_open_v2(db(), &raw, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(raw, "PRAGMA user_version = 999", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(raw);

	err = open_fails(db(), &o);
	cr_assert_not_null(strcasestr(err.message, "version"),
	                   "the message does not mention the version: %s", err.message);

	/* The database was neither migrated nor rewritten. */
	cr_assert_eq(sqlite3_open_v2(db(), &raw, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(raw, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	cr_assert_eq(sqlite3_column_int(st, 0), 999);
	sqlite3_finalize(st);
	sqlite3_close(raw);
}

Test(open, a_garbage_file_fails_to_open_and_is_not_overwritten)
{
	static unsigned char garbage[8192], after[16384];
	bs_options o = th_options();
	size_t n;

	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (unsigned char)((i * 131u + 7u) ^ (i >> 5));
	write_file(db(), garbage, sizeof(garbage));
	open_fails(db(), &o);
	n = read_file(db(), after, sizeof(after));
	cr_assert_eq(n, sizeof(garbage), "the file changed size: %zu", n);
	cr_assert_eq(memcmp(garbage, after, sizeof(garbage)), 0, "the file was overwritten");
}

Test(open, a_text_file_fails_to_open_and_is_not_overwritten)
{
	static const char text[] = "this is not a database, it is a note\n";
	bs_options o = th_options();
	char after[256];
	size_t n;

	write_file(db(), text, sizeof(text) - 1);
	open_fails(db(), &o);
	n = read_file(db(), after, sizeof(after));
	cr_assert_eq(n, sizeof(text) - 1);
	cr_assert_eq(memcmp(text, after, n), 0);
}

Test(open, creates_missing_parent_directories)
{
	char path[1024];
	struct stat st;
	bs_mutation m = th_increment("cap", 0);
	bs_store *s;

	th_path(path, sizeof(path), tmpdir, "a/b/c/budget.db");
	s = th_open_path(path);
	apply_ok(s, &m);
	bs_store_close(s);
	cr_assert_eq(stat(path, &st), 0, "%s was not created", path);
	cr_assert(S_ISREG(st.st_mode));
	s = th_open_path(path);
	expect_usage(s, "cap", 0, 1, 0, 0);
	bs_store_close(s);
}

Test(open, a_path_below_a_regular_file_fails_to_open)
{
	static const char content[] = "plain file";
	bs_options o = th_options();
	char file[1024], path[1100], after[64];

	th_path(file, sizeof(file), tmpdir, "file");
	write_file(file, content, sizeof(content) - 1);
	th_path(path, sizeof(path), file, "sub/budget.db");
	open_fails(path, &o);
	th_path(path, sizeof(path), file, "budget.db");
	open_fails(path, &o);
	cr_assert_eq(read_file(file, after, sizeof(after)), sizeof(content) - 1);
	cr_assert_eq(memcmp(after, content, sizeof(content) - 1), 0);
}
