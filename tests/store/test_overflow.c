/* test_overflow.c - sums at the u64 bounds and the u32 invocation count.
 *
 * An overflow is an error (BS_EOVERFLOW) that leaves the store exactly as it
 * was; apply_err checks that on every call.
 */
#include "helpers.h"

#include <sqlite3.h>

TestSuite(overflow, .init = th_setup_memory, .fini = th_teardown_memory);
TestSuite(overflow_file, .init = th_setup_tmpdir, .fini = th_teardown_tmpdir);

static const char *committed_msg = "committed cost overflows u64";
static const char *count_msg = "invocation_count overflows u32";

Test(overflow, authorize_reaching_exactly_u64_max_is_allowed)
{
	bs_mutation a = th_authorize("cap", 0, U64MAX - 1, NULL);
	bs_mutation b = th_authorize("cap", 0, 1, NULL);
	bs_outcome out;

	apply_ok(store, &a);
	out = apply_ok(store, &b);
	cr_assert_eq(out.exposed_after, U64MAX);
	cr_assert_eq(out.committed_after, U64MAX);
	expect_usage(store, "cap", 0, 2, U64MAX, 0);
}

Test(overflow, authorize_beyond_u64_exposure_is_rejected_and_changes_nothing)
{
	bs_mutation a = th_authorize("cap", 0, U64MAX, "h1");
	bs_mutation b = th_authorize("cap", 0, 1, "h2");
	bs_mutation big = th_authorize("cap", 0, U64MAX, NULL);
	th_hold h;

	apply_ok(store, &a);
	th_set_event(&b, "e1");
	apply_err(store, &b, BS_EOVERFLOW, committed_msg);
	apply_err(store, &big, BS_EOVERFLOW, committed_msg);
	expect_usage(store, "cap", 0, 1, U64MAX, 0);
	cr_assert_not(th_get_hold(store, "h2", &h));
	cr_assert_eq(th_commit_index(store), 1);
}

Test(overflow, a_failed_overflowing_authorize_leaves_its_event_id_free)
{
	bs_mutation a = th_authorize("cap", 0, U64MAX, NULL);
	bs_mutation b = th_authorize("cap", 0, 1, NULL);
	bs_mutation r = th_release("cap", 0, 1, NULL);

	apply_ok(store, &a);
	th_set_event(&b, "e1");
	apply_err(store, &b, BS_EOVERFLOW, committed_msg);
	apply_ok(store, &r);
	/* Same event_id and request: evaluated anew, not a replay, now it fits. */
	cr_assert_not(apply_ok(store, &b).replayed);
	expect_usage(store, "cap", 0, 2, U64MAX, 0);
}

Test(overflow, authorize_overflowing_with_max_total_set_is_an_error_not_a_denial)
{
	bs_mutation a = th_authorize("cap", 0, U64MAX - 5, NULL);
	bs_mutation b = th_authorize("cap", 0, 10, NULL);

	apply_ok(store, &a);
	th_set_max_total(&b, U64MAX);
	apply_err(store, &b, BS_EOVERFLOW, committed_msg);
	th_set_max_invocations(&b, 10);
	th_set_max_cost(&b, 10);
	apply_err(store, &b, BS_EOVERFLOW, committed_msg);
}

Test(overflow, max_total_at_the_bound_still_denies_without_overflowing)
{
	bs_mutation a = th_authorize("cap", 0, U64MAX - 1, NULL);
	bs_mutation b = th_authorize("cap", 0, 1, NULL);
	bs_outcome out;

	apply_ok(store, &a);
	th_set_max_total(&b, U64MAX - 1);
	out = apply_ok(store, &b);
	cr_assert_not(out.allowed);
	cr_assert_eq(out.denial, BS_DENIAL_MAX_TOTAL_COST);
	th_set_max_total(&b, U64MAX);
	cr_assert(apply_ok(store, &b).allowed);
}

Test(overflow, an_earlier_failing_limit_denies_before_the_total_is_summed)
{
	bs_mutation a = th_authorize("cap", 0, U64MAX, NULL);
	bs_mutation b = th_authorize("cap", 0, 10, NULL);
	bs_outcome out;

	apply_ok(store, &a);
	th_set_max_invocations(&b, 1);
	th_set_max_total(&b, U64MAX);
	out = apply_ok(store, &b);
	cr_assert_not(out.allowed);
	cr_assert_eq(out.denial, BS_DENIAL_MAX_INVOCATIONS);
	b.has_max_invocations = false;
	th_set_max_cost(&b, 5);
	out = apply_ok(store, &b);
	cr_assert_not(out.allowed);
	cr_assert_eq(out.denial, BS_DENIAL_MAX_COST_PER_INVOCATION);
}

Test(overflow, authorize_overflowing_committed_through_realized_spend_is_rejected)
{
	bs_mutation a = th_authorize("cap", 0, U64MAX - 10, "h1");
	bs_mutation c = th_reconcile("cap", 0, U64MAX - 10, U64MAX - 10, "h1");
	bs_mutation b = th_authorize("cap", 0, 11, NULL);

	apply_ok(store, &a);
	apply_ok(store, &c);
	expect_usage(store, "cap", 0, 1, 0, U64MAX - 10);
	/* exposed + 11 fits in u64, exposed + realized + 11 does not. */
	apply_err(store, &b, BS_EOVERFLOW, committed_msg);
	b.exposure_units = 10;
	cr_assert(apply_ok(store, &b).allowed);
	expect_usage(store, "cap", 0, 2, 10, U64MAX - 10);
	b.exposure_units = 0;
	cr_assert(apply_ok(store, &b).allowed, "a 0-unit authorize at the bound fits");
	b.exposure_units = 1;
	apply_err(store, &b, BS_EOVERFLOW, committed_msg);
}

Test(overflow, settling_u64_max_units_works_at_the_bound)
{
	bs_mutation a = th_authorize("cap", 0, U64MAX, "h1");
	bs_mutation r = th_release("cap", 0, U64MAX - 1, "h1");
	bs_mutation c = th_reconcile("cap", 0, 1, 1, "h1");
	bs_mutation a2 = th_authorize("cap", 0, U64MAX - 1, "h2");
	bs_mutation c2 = th_reconcile("cap", 0, U64MAX - 1, U64MAX - 1, "h2");

	apply_ok(store, &a);
	apply_ok(store, &r);
	apply_ok(store, &c);
	expect_usage(store, "cap", 0, 1, 0, 1);
	apply_ok(store, &a2);
	apply_ok(store, &c2);
	expect_usage(store, "cap", 0, 2, 0, U64MAX);
	expect_hold(store, "h2", BS_HOLD_RECONCILED, U64MAX - 1, 0);
}

/* --- the u32 invocation count -------------------------------------------- */

/* Sets invocation_count of every usage row directly in the database file,
 * in whatever table has a column of that exact name. The store must be
 * closed. Returns the number of rows changed. */
static int set_invocation_counts(const char *path, sqlite3_int64 value)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *tables = NULL;
	int changed = 0;

	cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table'",
	                                -1, &tables, NULL),
	             SQLITE_OK, "%s", sqlite3_errmsg(db));
	while (sqlite3_step(tables) == SQLITE_ROW) {
		const char *table = (const char *)sqlite3_column_text(tables, 0);
		sqlite3_stmt *cols = NULL, *upd = NULL;
		bool has_column = false;
		char *sql;

		sql = sqlite3_mprintf("PRAGMA table_info(\"%w\")", table);
		cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &cols, NULL), SQLITE_OK);
		sqlite3_free(sql);
		while (sqlite3_step(cols) == SQLITE_ROW)
			if (strcmp((const char *)sqlite3_column_text(cols, 1),
			           "invocation_count") == 0)
				has_column = true;
		sqlite3_finalize(cols);
		if (!has_column)
			continue;
		sql = sqlite3_mprintf("UPDATE \"%w\" SET invocation_count = ?", table);
		cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &upd, NULL), SQLITE_OK, "%s",
		             sqlite3_errmsg(db));
		sqlite3_free(sql);
		sqlite3_bind_int64(upd, 1, value);
		cr_assert_eq(sqlite3_step(upd), SQLITE_DONE, "%s", sqlite3_errmsg(db));
		changed += sqlite3_changes(db);
		sqlite3_finalize(upd);
	}
	sqlite3_finalize(tables);
	sqlite3_close(db);
	return changed;
}

/* The name of the usage table's column whose name contains `part` (and
 * does not end in "_after"), in the table that has an invocation_count
 * column. Returns false when there is none. */
static bool find_usage_column(sqlite3 *db, const char *part, char *table, char *column, size_t size)
{
	sqlite3_stmt *tables = NULL;
	bool found = false;

	cr_assert_eq(sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table'",
	                                -1, &tables, NULL),
	             SQLITE_OK);
	while (!found && sqlite3_step(tables) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(tables, 0);
		sqlite3_stmt *cols = NULL;
		bool is_usage = false;
		char match[128] = "";
		char *sql = sqlite3_mprintf("PRAGMA table_info(\"%w\")", t);

		cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &cols, NULL), SQLITE_OK);
		sqlite3_free(sql);
		while (sqlite3_step(cols) == SQLITE_ROW) {
			const char *c = (const char *)sqlite3_column_text(cols, 1);
			size_t n = strlen(c);

			if (strcmp(c, "invocation_count") == 0)
				is_usage = true;
			if (strstr(c, part) && !(n > 6 && strcmp(c + n - 6, "_after") == 0))
				snprintf(match, sizeof(match), "%s", c);
		}
		sqlite3_finalize(cols);
		if (is_usage && match[0]) {
			snprintf(table, size, "%s", t);
			snprintf(column, size, "%s", match);
			found = true;
		}
	}
	sqlite3_finalize(tables);
	return found;
}

/* realized + realized_units cannot overflow while the committed invariant
 * holds (realized_units <= exposure_units <= exposed), so no request can
 * reach the bound: the test copies the u64-max exposure into the realized
 * column of the file, breaking the invariant on purpose. */
Test(overflow_file, realized_spend_beyond_u64_is_rejected)
{
	char path[512], table[128], exposed[128], realized[128], *sql;
	bs_mutation a = th_authorize("cap", 0, U64MAX, NULL);
	bs_mutation c = th_reconcile("cap", 0, 1, 1, NULL);
	bs_options o = th_options();
	bs_outcome out;
	bs_error err;
	sqlite3 *db = NULL;
	bs_store *s = NULL;
	int rc;

	th_path(path, sizeof(path), tmpdir, "budget.db");
	s = th_open_path(path);
	apply_ok(s, &a);
	memset(&err, 0, sizeof(err));
	cr_assert_eq(bs_store_checkpoint(s, &err), BS_OK, "%s", err.message);
	bs_store_close(s);

	cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	cr_assert(find_usage_column(db, "exposed", table, exposed, sizeof(table)),
	          "no exposed column in a usage table");
	cr_assert(find_usage_column(db, "realized", table, realized, sizeof(table)),
	          "no realized column in a usage table");
	sql = sqlite3_mprintf("UPDATE \"%w\" SET \"%w\" = \"%w\"", table, realized, exposed);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	sqlite3_free(sql);
	cr_assert_eq(sqlite3_changes(db), 1);
	sqlite3_close(db);

	s = NULL;
	memset(&err, 0, sizeof(err));
	if (bs_store_open(path, &o, &s, &err) != BS_OK)
		cr_skip_test("the store refuses a database whose committed cost overflows: %s",
		             err.message);
	cr_assert_eq(th_commit_index(s), 1);
	memset(&err, 0, sizeof(err));
	th_set_event(&c, "e1");
	rc = bs_store_apply(s, &c, &out, &err);
	if (rc == BS_EPRECONDITION || (rc == BS_OK && out.realized_after != U64MAX)) {
		bs_store_close(s);
		cr_skip_test("the store rebuilt its usage rows from the log; the realized bound "
		             "cannot be reached from outside");
	}
	cr_assert_eq(rc, BS_EOVERFLOW, "got %d %s", rc, err.message);
	cr_assert_str_eq(err.message, "realized spend overflows u64");
	cr_assert_eq(th_commit_index(s), 1, "the failed reconcile took a sequence value");
	/* Its event_id is still free. */
	c.exposure_units = 0;
	c.realized_units = 0;
	memset(&err, 0, sizeof(err));
	cr_assert_eq(bs_store_apply(s, &c, &out, &err), BS_OK, "%s", err.message);
	cr_assert_not(out.replayed);
	cr_assert_eq(out.event_seq, 2);
	bs_store_close(s);
}

Test(overflow_file, invocation_count_at_u32_max_cannot_grow)
{
	char path[512];
	bs_store *s;
	bs_mutation a = th_authorize("cap", 0, 1, "h1");
	bs_mutation i = th_increment("cap", 1);
	bs_mutation r = th_release("cap", 0, 1, "h1");
	bs_mutation v = th_reverse("cap", 1, 0, NULL);
	bs_outcome out;

	th_path(path, sizeof(path), tmpdir, "budget.db");
	th_usage u;
	bs_error err;

	s = th_open_path(path);
	apply_ok(s, &a);
	apply_ok(s, &i);
	memset(&err, 0, sizeof(err));
	cr_assert_eq(bs_store_checkpoint(s, &err), BS_OK, "%s", err.message);
	bs_store_close(s);
	/* No request can count to 2^32 in a test: set the count in the file. */
	cr_assert_geq(set_invocation_counts(path, (sqlite3_int64)U32MAX), 2,
	              "no usage table with an invocation_count column was found");
	s = th_open_path(path);
	cr_assert(th_get_usage(s, "cap", 0, &u));
	if (u.u.invocation_count != U32MAX) {
		bs_store_close(s);
		cr_skip_test("the store rebuilt its usage rows from the log; the u32 bound "
		             "cannot be reached from outside");
	}
	expect_usage(s, "cap", 0, U32MAX, 1, 0);
	expect_usage(s, "cap", 1, U32MAX, 0, 0);

	/* Allowed by every limit, but the count cannot take one more. */
	a.hold_id = bs_str_from("h2");
	apply_err(s, &a, BS_EOVERFLOW, count_msg);
	apply_err(s, &i, BS_EOVERFLOW, count_msg);
	th_set_max_invocations(&i, U64MAX);
	apply_err(s, &i, BS_EOVERFLOW, count_msg);
	th_set_max_invocations(&a, U64MAX);
	apply_err(s, &a, BS_EOVERFLOW, count_msg);

	/* A limit that fails first denies instead. */
	th_set_max_invocations(&i, U32MAX);
	out = apply_ok(s, &i);
	cr_assert_not(out.allowed);
	cr_assert_eq(out.denial, BS_DENIAL_MAX_INVOCATIONS);
	cr_assert_eq(out.invocation_count_after, U32MAX);

	/* Settling still works, and one below the bound can reach it. */
	apply_ok(s, &r);
	apply_ok(s, &v);
	expect_usage(s, "cap", 1, U32MAX - 1, 0, 0);
	i.has_max_invocations = false;
	out = apply_ok(s, &i);
	cr_assert(out.allowed);
	cr_assert_eq(out.invocation_count_after, U32MAX);
	apply_err(s, &i, BS_EOVERFLOW, count_msg);
	bs_store_close(s);
}
