/* test_caller.c - the caller identity on events, and the v1 -> v2 migration
 * that added it. */
#include <sqlite3.h>

#include "helpers.h"

static bs_mutation with_caller(bs_mutation m, const char *caller)
{
	m.caller = bs_str_from(caller);
	return m;
}

Test(caller, is_recorded_with_each_event)
{
	bs_store *s = th_open_memory();
	bs_mutation m = with_caller(th_authorize("c", 0, 5, "h"), "spiffe://prod/kernel-a");
	th_event ev[2];

	(void)apply_ok(s, &m);
	cr_assert_eq(th_list_events(s, 0, NULL, false, 0, 0, ev, 2), 1);
	cr_assert_str_eq(ev[0].caller, "spiffe://prod/kernel-a");
	bs_store_close(s);
}

Test(caller, is_not_part_of_idempotency)
{
	bs_store *s = th_open_memory();
	bs_mutation m = with_caller(th_authorize("c", 0, 5, "h"), "unix");
	th_set_event(&m, "e1");
	bs_outcome first = apply_ok(s, &m);

	m.caller = bs_str_from("loopback");
	bs_outcome again = apply_ok(s, &m);
	cr_assert(again.replayed, "a retry through another listener is a replay");
	cr_assert_eq(again.commit_index, first.commit_index);
	bs_store_close(s);
}

Test(caller, is_validated_like_an_id)
{
	bs_store *s = th_open_memory();
	bs_mutation m = with_caller(th_authorize("c", 0, 5, NULL), "");

	apply_err(s, &m, BS_EINVAL, "caller must not be empty");
	m.caller = bs_str_from("a\tb");
	apply_err(s, &m, BS_EINVAL, "caller contains a control character");
	bs_store_close(s);
}

/* Undoes schema 4 (hold deadlines). */
#define SCHEMA_4_TO_3                                                                              \
	"DROP INDEX holds_by_deadline; ALTER TABLE events DROP COLUMN ttl_seconds;"                \
	" ALTER TABLE events DROP COLUMN expires_at; ALTER TABLE events DROP COLUMN on_expiry;"    \
	" ALTER TABLE holds DROP COLUMN expires_at; ALTER TABLE holds DROP COLUMN on_expiry;"

static void exec_sql(const char *path, const char *sql)
{
	sqlite3 *db;
	char *msg = NULL;

	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK, "%s: %s", sql,
	             msg ? msg : "");
	sqlite3_close(db);
}

Test(caller, a_version_1_database_is_migrated_and_keeps_its_events)
{
	char *dir = th_mkdtemp(), path[512];
	th_path(path, sizeof(path), dir, "v1.db");
	bs_store *s = th_open_path(path);
	bs_mutation m = th_authorize("c", 0, 5, "h");
	th_set_event(&m, "old");
	(void)apply_ok(s, &m);
	bs_store_close(s);
	/* What a database written by budgetd with schema 1 looks like. */
	exec_sql(path, SCHEMA_4_TO_3 "ALTER TABLE events DROP COLUMN caller;"
	                             " DROP INDEX holds_by_age; PRAGMA user_version = 1;");

	s = th_open_path(path);
	bs_outcome replay = apply_ok(s, &m);
	cr_assert(replay.replayed);
	bs_mutation n = with_caller(th_reconcile("c", 0, 5, 5, "h"), "unix");
	(void)apply_ok(s, &n);
	th_event ev[3];
	cr_assert_eq(th_list_events(s, 0, NULL, false, 0, 0, ev, 3), 2);
	cr_assert_str_eq(ev[0].caller, "", "an event from schema 1 has no caller");
	cr_assert_str_eq(ev[1].caller, "unix");
	bs_store_close(s);
	th_rmtree(dir);
	free(dir);
}
