/* test_verify.c - bs_verify_file and bs_backup_file on real database files:
 * a good ledger verifies (materialized or not, and while the store has it
 * open, with hold deadlines set, extended and expired by each policy, and
 * in a schema v3 file), every kind of tampering is found with its own
 * message, and a backup is a consistent, verified, self-contained copy that
 * never replaces a file. */
#define _GNU_SOURCE
#include "helpers.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bs_admin.h"

TestSuite(verify, .init = th_setup_tmpdir, .fini = th_teardown_tmpdir);
TestSuite(tamper, .init = th_setup_tmpdir, .fini = th_teardown_tmpdir);
TestSuite(backup, .init = th_setup_tmpdir, .fini = th_teardown_tmpdir);
TestSuite(expiry, .init = th_setup_tmpdir, .fini = th_teardown_tmpdir);
TestSuite(tamper_expiry, .init = th_setup_tmpdir, .fini = th_teardown_tmpdir);

#define LEDGER_EVENTS     15
#define LEDGER_GRANTS     4
#define LEDGER_HOLDS      4
#define LEDGER_OPEN_HOLDS 1
#define CLOCK_STEP_NS     1000
#define PREFILL_BATCHES   80 /* of BATCH_SIZE events: a database of many backup steps */
#define BATCH_SIZE        1000
#define SEC               ((int64_t)1000000000)
/* The expiry ledger (build_expiry_ledger). */
#define EXPIRY_EVENTS     16
#define EXPIRY_GRANTS     2
#define EXPIRY_HOLDS      6
#define EXPIRY_OPEN_HOLDS 1 /* h-ext */
#define EXPIRY_EXPIRED    4 /* h-cap, h-rel, h-rev, h-late */
#define EXPIRY_WAIT_NS    (120 * SEC)

static char db_path[1024];

static const char *db(void)
{
	th_path(db_path, sizeof(db_path), tmpdir, "budget.db");
	return db_path;
}

static void step(bs_store *s, const bs_mutation *m, bool allowed)
{
	th_now += CLOCK_STEP_NS;
	bs_outcome o = apply_ok(s, m);
	cr_assert_eq(o.allowed, allowed, "event %llu: allowed %d", (unsigned long long)o.event_seq,
	             o.allowed);
}

/* Events 1 .. `upto` of the reference ledger: every kind, allowed and
 * denied, with and without holds, event ids and an authority lease.
 *   cap-a/0: 1 authorize h-rec (e-1), 2 denied (max_total), 3 authorize h-rel
 *            (lease a1/l1/3), 4 release part, 5 release the rest, 6 reconcile h-rec
 *   cap-b/1: 7 authorize h-rev, 8 reverse, 9 increment, 10 denied increment
 *   cap-c/2: 11 authorize (no hold), 12 reconcile (no hold), 13 denied (max cost)
 *   cap-d/0: 14 authorize h-open (e-14), left open
 *   cap-e/0: 15 denied increment (no usage record) */
static void build_ledger(bs_store *s, int from, int upto)
{
	for (int i = from; i <= upto; i++) {
		bs_mutation m;
		bool allowed = true;

		switch (i) {
		case 1:
			m = th_authorize("cap-a", 0, 10, "h-rec");
			th_set_event(&m, "e-1");
			th_set_max_total(&m, 100);
			break;
		case 2:
			m = th_authorize("cap-a", 0, 500, "h-denied");
			th_set_max_total(&m, 100);
			allowed = false;
			break;
		case 3:
			m = th_authorize("cap-a", 0, 20, "h-rel");
			th_set_authority(&m, "a1", "l1", 3);
			break;
		case 4:
			m = th_release("cap-a", 0, 5, "h-rel");
			th_set_authority(&m, "a1", "l1", 3);
			break;
		case 5:
			m = th_release("cap-a", 0, 15, "h-rel");
			th_set_authority(&m, "a1", "l1", 3);
			th_set_event(&m, "e-5");
			break;
		case 6:
			m = th_reconcile("cap-a", 0, 10, 7, "h-rec");
			break;
		case 7:
			m = th_authorize("cap-b", 1, 30, "h-rev");
			break;
		case 8:
			m = th_reverse("cap-b", 1, 30, "h-rev");
			break;
		case 9:
			m = th_increment("cap-b", 1);
			th_set_max_invocations(&m, 5);
			break;
		case 10:
			m = th_increment("cap-b", 1);
			th_set_max_invocations(&m, 1);
			allowed = false;
			break;
		case 11:
			m = th_authorize("cap-c", 2, 40, NULL);
			th_set_max_cost(&m, 50);
			break;
		case 12:
			m = th_reconcile("cap-c", 2, 40, 40, NULL);
			break;
		case 13:
			m = th_authorize("cap-c", 2, 60, NULL);
			th_set_max_cost(&m, 50);
			allowed = false;
			break;
		case 14:
			m = th_authorize("cap-d", 0, 25, "h-open");
			th_set_event(&m, "e-14");
			break;
		default:
			m = th_increment("cap-e", 0);
			th_set_max_invocations(&m, 0);
			allowed = false;
			break;
		}
		step(s, &m, allowed);
	}
}

/* The whole ledger, closed: the store materializes everything at close. */
static void closed_ledger(void)
{
	bs_store *s = th_open_path(db());

	build_ledger(s, 1, LEDGER_EVENTS);
	bs_store_close(s);
}

static bs_verify_report *verify_ok(const char *path)
{
	static bs_verify_report r;
	bs_error err = {0};

	cr_assert_eq(bs_verify_file(path, &r, &err), BS_OK, "bs_verify_file: %s", err.message);
	for (size_t i = 0; i < r.n_mismatches; i++)
		cr_log_info("mismatch: %s", r.mismatches[i]);
	return &r;
}

static void expect_consistent(const bs_verify_report *r, uint64_t events, uint64_t materialized)
{
	cr_assert(r->ok, "%s; first mismatch: %s", r->summary,
	          r->n_mismatches ? r->mismatches[0] : "-");
	cr_assert_eq(r->mismatch_count, 0);
	cr_assert_eq(r->events, events);
	cr_assert_eq(r->last_event_seq, events);
	cr_assert_eq(r->materialized_seq, materialized);
	cr_assert(strncmp(r->summary, "consistent:", 11) == 0, "summary: %s", r->summary);
}

/* Runs `sql` on the file with a connection of its own. */
static void tamper(const char *sql)
{
	sqlite3 *d = NULL;
	char *msg = NULL;

	cr_assert_eq(sqlite3_open(db(), &d), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(d, sql, NULL, NULL, &msg), SQLITE_OK, "%s: %s", sql,
	             msg ? msg : "");
	cr_assert_eq(sqlite3_close(d), SQLITE_OK);
}

/* Verifies the tampered file: inconsistent, with a mismatch containing
 * `part`; returns the report. */
static bs_verify_report *expect_mismatch(const char *part)
{
	bs_verify_report *r = verify_ok(db());
	bool found = false;

	cr_assert_not(r->ok, "tampering went unnoticed: %s", r->summary);
	cr_assert_gt(r->mismatch_count, 0);
	cr_assert(strncmp(r->summary, "INCONSISTENT:", 13) == 0, "summary: %s", r->summary);
	for (size_t i = 0; i < r->n_mismatches; i++)
		found = found || strstr(r->mismatches[i], part) != NULL;
	cr_assert(found, "no mismatch contains `%s`; the first is `%s`", part,
	          r->n_mismatches ? r->mismatches[0] : "-");
	return r;
}

/* --- a good ledger ---------------------------------------------------------- */

Test(verify, a_closed_ledger_is_consistent_and_fully_materialized)
{
	closed_ledger();
	bs_verify_report *r = verify_ok(db());

	expect_consistent(r, LEDGER_EVENTS, LEDGER_EVENTS);
	cr_assert_eq(r->usage_records, LEDGER_GRANTS);
	cr_assert_eq(r->holds, LEDGER_HOLDS);
	cr_assert_eq(r->open_holds, LEDGER_OPEN_HOLDS);
	cr_assert_eq(r->derived_usage_rows, LEDGER_GRANTS);
	cr_assert_eq(r->derived_holds, LEDGER_HOLDS);
	cr_assert(strstr(r->summary, "events 15 (last event_seq 15)"), "summary: %s", r->summary);
}

Test(verify, a_live_unmaterialized_ledger_is_consistent)
{
	bs_store *s = th_open_path(db());

	build_ledger(s, 1, LEDGER_EVENTS);
	/* The store is open and has written only the log (a read-only reader
	 * of its WAL): the derived tables are still empty. */
	bs_verify_report *r = verify_ok(db());
	expect_consistent(r, LEDGER_EVENTS, 0);
	cr_assert_eq(r->derived_usage_rows, 0);
	cr_assert_eq(r->usage_records, LEDGER_GRANTS);
	bs_store_close(s);
}

Test(verify, a_ledger_materialized_half_way_is_consistent)
{
	bs_store *s = th_open_path(db());
	bs_error err;

	build_ledger(s, 1, 7);
	cr_assert_eq(bs_store_checkpoint(s, &err), BS_OK, "%s", err.message);
	build_ledger(s, 8, LEDGER_EVENTS);
	bs_verify_report *r = verify_ok(db());
	expect_consistent(r, LEDGER_EVENTS, 7);
	/* Through event 7: cap-a/0 and cap-b/1, and h-rec, h-rel, h-rev. */
	cr_assert_eq(r->derived_usage_rows, 2);
	cr_assert_eq(r->derived_holds, 3);
	bs_store_close(s);
}

Test(verify, an_empty_store_is_consistent)
{
	bs_store_close(th_open_path(db()));
	bs_verify_report *r = verify_ok(db());

	expect_consistent(r, 0, 0);
	cr_assert_eq(r->usage_records, 0);
}

Test(verify, a_missing_file_is_an_error_and_is_not_created)
{
	bs_verify_report r;
	bs_error err = {0};

	cr_assert_eq(bs_verify_file(db(), &r, &err), BS_ESTORAGE);
	cr_assert(strstr(err.message, "cannot open"), "%s", err.message);
	cr_assert_neq(access(db(), F_OK), 0, "verification created the file");
	cr_assert_eq(bs_verify_file("", &r, &err), BS_EINVAL);
}

Test(verify, a_foreign_database_is_an_error)
{
	tamper("CREATE TABLE t (x); INSERT INTO t VALUES (1)");
	bs_verify_report r;
	bs_error err = {0};

	cr_assert_eq(bs_verify_file(db(), &r, &err), BS_ESTORAGE);
	cr_assert(strstr(err.message, "not a budgetd database"), "%s", err.message);
}

/* --- tampered copies ---------------------------------------------------------- */

Test(tamper, a_usage_rows_exposed_cost)
{
	closed_ledger();
	tamper("UPDATE usage SET total_cost_exposed = 999 WHERE capability_id = 'cap-a'");
	bs_verify_report *r = expect_mismatch("usage row (`cap-a`, 0) differs from the log through"
	                                      " event 15: total_cost_exposed 999 (the log: 0)");
	cr_assert_eq(r->mismatch_count, 1);
}

Test(tamper, a_holds_disposition)
{
	closed_ledger();
	tamper("UPDATE holds SET disposition = 1 WHERE hold_id = 'h-rel'");
	bs_verify_report *r =
	        expect_mismatch("hold `h-rel` differs from the log through event 15: disposition"
	                        " open (the log: released)");
	cr_assert_eq(r->mismatch_count, 1);
}

Test(tamper, a_deleted_event_is_a_gap)
{
	closed_ledger();
	tamper("DROP TRIGGER events_no_delete; DELETE FROM events WHERE event_seq = 9");
	expect_mismatch("the mutation log has a gap: event 9 is missing");
	/* The increment is gone from the fold too. */
	expect_mismatch("event 10 (denied increment_invocation of `cap-b`/1) records"
	                " invocation_count_after 1 (the log: 0)");
}

Test(tamper, an_events_after_value)
{
	closed_ledger();
	tamper("DROP TRIGGER events_no_update;"
	       " UPDATE events SET exposed_after = 12345 WHERE event_seq = 4");
	bs_verify_report *r = expect_mismatch("event 4 (release_exposure of `cap-a`/0) records"
	                                      " exposed_after 12345 (the log: 25)");
	/* The fold goes on with its own value: reported once. */
	cr_assert_eq(r->mismatch_count, 1);
}

Test(tamper, an_events_amount_shows_in_its_grant)
{
	closed_ledger();
	tamper("DROP TRIGGER events_no_update;"
	       " UPDATE events SET exposure_units = 11 WHERE event_seq = 7");
	expect_mismatch("event 7 (authorize_exposure of `cap-b`/1) records exposed_after 30 (the"
	                " log: 11)");
	expect_mismatch("event 8 (reverse_exposure) settles 30 units of hold `h-rev`, which has 11"
	                " remaining");
}

Test(tamper, a_settlement_of_a_closed_hold)
{
	closed_ledger();
	/* A release of the released hold, otherwise well-formed. */
	tamper("INSERT INTO events (event_seq, event_id, hold_id, capability_id, grant_index,"
	       " kind, allowed, denial, recorded_at, usage_seq, exposure_units, realized_units,"
	       " invocation_count_after, exposed_after, realized_after, authority_id, lease_id,"
	       " lease_epoch) VALUES (16, NULL, 'h-rel', 'cap-a', 0, 4, NULL, 0, 99, 16, 0, 0,"
	       " 2, 0, 7, 'a1', 'l1', 3)");
	bs_verify_report *r = expect_mismatch("event 16 (release_exposure) moves hold `h-rel` out"
	                                      " of released; only an open hold moves");
	cr_assert_eq(r->mismatch_count, 1);
	cr_assert_eq(r->last_event_seq, 16);
}

Test(tamper, a_decision_the_limits_do_not_give)
{
	closed_ledger();
	tamper("DROP TRIGGER events_no_update;"
	       " UPDATE events SET max_total_cost_units = 100000 WHERE event_seq = 2");
	expect_mismatch("event 2 (authorize_exposure) was denied for max_total_cost, but the"
	                " limits give none");
}

Test(tamper, a_denied_event_with_a_commit_index)
{
	closed_ledger();
	tamper("DROP TRIGGER events_no_update; UPDATE events SET usage_seq = 13 WHERE event_seq = "
	       "13");
	expect_mismatch("event 13 was denied but has usage_seq 13");
}

Test(tamper, an_applied_event_with_another_usage_seq)
{
	closed_ledger();
	tamper("DROP TRIGGER events_no_update; UPDATE events SET usage_seq = 3 WHERE event_seq = "
	       "11");
	expect_mismatch("event 11 has usage_seq 3; an applied event's usage_seq is its event_seq");
}

Test(tamper, an_unknown_kind_and_a_misplaced_decision)
{
	closed_ledger();
	tamper("DROP TRIGGER events_no_update; UPDATE events SET kind = 9 WHERE event_seq = 15;"
	       " UPDATE events SET allowed = 1 WHERE event_seq = 6");
	expect_mismatch("event 15 has unknown kind 9");
	expect_mismatch("event 6 (reconcile_spend) records a decision (allowed = 1); only"
	                " authorize and increment do");
}

Test(tamper, a_reused_event_id)
{
	closed_ledger();
	tamper("DROP TRIGGER events_no_update; UPDATE events SET event_id = 'e-1'"
	       " WHERE event_seq = 14");
	expect_mismatch(
	        "event_id `e-1` is recorded 2 times (events 1 to 14); event ids are unique");
}

Test(tamper, a_missing_hold_row)
{
	closed_ledger();
	tamper("DELETE FROM holds WHERE hold_id = 'h-open'");
	bs_verify_report *r = expect_mismatch("hold `h-open` is missing; event 14 opened it");
	cr_assert_eq(r->mismatch_count, 1);
}

Test(tamper, an_extra_usage_row)
{
	closed_ledger();
	tamper("INSERT INTO usage VALUES ('ghost', 7, 1, 1, 0, 3, 5)");
	expect_mismatch("usage row (`ghost`, 7): no applied event up to materialized_seq 15"
	                " charges it");
}

Test(tamper, a_usage_row_of_the_wrong_type)
{
	closed_ledger();
	tamper("UPDATE usage SET invocation_count = 'two' WHERE capability_id = 'cap-a'");
	expect_mismatch("usage row (`cap-a`, 0): column invocation_count holds a text, not an"
	                " integer");
}

Test(tamper, the_event_index)
{
	closed_ledger();
	tamper("DELETE FROM event_index WHERE event_id = 'e-14';"
	       " UPDATE event_index SET event_seq = 6 WHERE event_id = 'e-5'");
	expect_mismatch("event_index lacks event 14 (event_id `e-14`)");
	expect_mismatch("event_index maps `e-5` to event 6, whose event_id is generated");
}

Test(tamper, the_capability_index)
{
	closed_ledger();
	tamper("DELETE FROM events_by_capability WHERE event_seq = 12;"
	       " INSERT INTO events_by_capability VALUES ('cap-z', 3, 0)");
	expect_mismatch("events_by_capability lacks event 12");
	expect_mismatch("events_by_capability lists (`cap-z`, event 3, grant 0), which does not"
	                " match the log");
}

Test(tamper, a_materialized_seq_beyond_the_log)
{
	closed_ledger();
	tamper("UPDATE store_meta SET value = 99 WHERE key = 'materialized_seq'");
	expect_mismatch("materialized_seq 99 is beyond the end of the log (event 15)");
}

Test(tamper, more_mismatches_than_kept_are_counted)
{
	closed_ledger();
	tamper("DROP TRIGGER events_no_update; UPDATE events SET recorded_at = recorded_at + 1,"
	       " kind = 9");
	bs_verify_report *r = expect_mismatch("has unknown kind 9");
	cr_assert_eq(r->n_mismatches, BS_VERIFY_MISMATCHES_MAX);
	cr_assert_gt(r->mismatch_count, BS_VERIFY_MISMATCHES_MAX);
}

/* --- hold deadlines: authorize with a ttl, extend, expire ------------------------- */

static bs_mutation with_ttl(bs_mutation m, uint32_t ttl, bs_expiry policy)
{
	m.ttl_seconds = ttl;
	m.on_expiry = policy;
	return m;
}

static bs_mutation extend(const char *cap, uint64_t grant, const char *hold, uint32_t ttl)
{
	bs_mutation m = th_authorize(cap, grant, 0, hold);

	m.kind = BS_KIND_EXTEND_HOLD;
	m.ttl_seconds = ttl;
	return m;
}

static uint32_t expire_due(bs_store *s)
{
	uint32_t n = 0;
	bs_error err = {0};

	cr_assert_eq(bs_store_expire_due(s, 100, &n, &err), BS_OK, "%s", err.message);
	return n;
}

/* Events 1 .. 12 set, move, keep and drop deadlines; then the clock moves
 * past all but one and the store expires the rest (13 .. 16):
 *   cap-x/0: 1 authorize h-cap (10, ttl 60, capture by default), 2 authorize
 *            h-rel (20, ttl 60, release), 3 authorize h-rev (30, ttl 60,
 *            reverse), 4 release 4 of h-cap (its deadline stays)
 *   cap-y/1: 5 authorize h-ext (40, ttl 30, lease a1/l1/3), 6 extend h-ext
 *            (ttl 600), 7 extend h-ext (ttl 10: the deadline stays),
 *            8 authorize h-late (5, no deadline), 9 extend h-late (ttl 60:
 *            capture), 10 authorize h-done (7, ttl 60, reverse),
 *            11 reconcile h-done (drops its deadline), 12 denied authorize
 *            with a ttl (max_total)
 *   120 s later: 13 expire h-cap (6 captured), 14 h-rel (20 released),
 *            15 h-rev (30 and its invocation given back), 16 h-late (5
 *            captured); h-ext stays open. */
static void build_expiry_ledger(bs_store *s)
{
	bs_mutation m[12];

	m[0] = with_ttl(th_authorize("cap-x", 0, 10, "h-cap"), 60, BS_EXPIRY_NONE);
	m[1] = with_ttl(th_authorize("cap-x", 0, 20, "h-rel"), 60, BS_EXPIRY_RELEASE);
	m[2] = with_ttl(th_authorize("cap-x", 0, 30, "h-rev"), 60, BS_EXPIRY_REVERSE);
	m[3] = th_release("cap-x", 0, 4, "h-cap");
	m[4] = with_ttl(th_authorize("cap-y", 1, 40, "h-ext"), 30, BS_EXPIRY_NONE);
	m[5] = extend("cap-y", 1, "h-ext", 600);
	m[6] = extend("cap-y", 1, "h-ext", 10);
	for (int i = 4; i <= 6; i++)
		th_set_authority(&m[i], "a1", "l1", 3);
	th_set_event(&m[5], "x-6");
	m[7] = th_authorize("cap-y", 1, 5, "h-late");
	m[8] = extend("cap-y", 1, "h-late", 60);
	m[9] = with_ttl(th_authorize("cap-y", 1, 7, "h-done"), 60, BS_EXPIRY_REVERSE);
	m[10] = th_reconcile("cap-y", 1, 7, 7, "h-done");
	m[11] = with_ttl(th_authorize("cap-y", 1, 100, "h-denied"), 60, BS_EXPIRY_RELEASE);
	th_set_max_total(&m[11], 10);
	for (int i = 0; i < 12; i++)
		step(s, &m[i], i != 11);
	th_now += EXPIRY_WAIT_NS;
	cr_assert_eq(expire_due(s), EXPIRY_EXPIRED);
	cr_assert_eq(expire_due(s), 0, "a hold expires once");
}

/* The store did what the ledger above says (so that a clean verification
 * means something). */
static void expect_expiry_ledger(bs_store *s)
{
	cr_assert_eq(th_commit_index(s), EXPIRY_EVENTS);
	expect_usage(s, "cap-x", 0, 2, 0, 6);
	expect_usage(s, "cap-y", 1, 3, 40, 12);
	expect_hold(s, "h-cap", BS_HOLD_EXPIRED, 10, 0);
	expect_hold(s, "h-rel", BS_HOLD_EXPIRED, 20, 0);
	expect_hold(s, "h-rev", BS_HOLD_EXPIRED, 30, 0);
	expect_hold(s, "h-late", BS_HOLD_EXPIRED, 5, 0);
	expect_hold(s, "h-done", BS_HOLD_RECONCILED, 7, 0);
	expect_hold(s, "h-ext", BS_HOLD_OPEN, 40, 40);
}

static void closed_expiry_ledger(void)
{
	bs_store *s = th_open_path(db());

	build_expiry_ledger(s);
	expect_expiry_ledger(s);
	bs_store_close(s);
}

/* One integer from the file (the first column of the first row). */
static int64_t query(const char *sql)
{
	sqlite3 *d = NULL;
	sqlite3_stmt *st = NULL;
	int64_t x;

	cr_assert_eq(sqlite3_open_v2(db(), &d, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(d, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
	             sqlite3_errmsg(d));
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s: no row", sql);
	x = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	cr_assert_eq(sqlite3_close(d), SQLITE_OK);
	return x;
}

/* The event_seq of the expiry of `hold`. */
static int64_t expiry_of(const char *hold)
{
	char sql[200];

	snprintf(sql, sizeof(sql), "SELECT event_seq FROM events WHERE kind = 6 AND hold_id = '%s'",
	         hold);
	return query(sql);
}

/* expect_mismatch with a formatted part. */
__attribute__((format(printf, 1, 2))) static bs_verify_report *expect_mismatchf(const char *fmt,
                                                                                ...)
{
	char part[BS_VERIFY_MISMATCH_LEN_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(part, sizeof(part), fmt, ap);
	va_end(ap);
	return expect_mismatch(part);
}

Test(expiry, a_closed_ledger_with_deadlines_is_consistent)
{
	closed_expiry_ledger();
	bs_verify_report *r = verify_ok(db());

	expect_consistent(r, EXPIRY_EVENTS, EXPIRY_EVENTS);
	cr_assert_eq(r->usage_records, EXPIRY_GRANTS);
	cr_assert_eq(r->holds, EXPIRY_HOLDS);
	cr_assert_eq(r->open_holds, EXPIRY_OPEN_HOLDS);
	cr_assert_eq(r->derived_holds, EXPIRY_HOLDS);
	/* What was verified is what the spec says the store records. */
	cr_assert_eq(query("SELECT count(*) FROM events WHERE kind = 6 AND event_id IS NULL"
	                   " AND allowed IS NULL AND usage_seq = event_seq AND caller = 'budgetd'"),
	             EXPIRY_EXPIRED);
	cr_assert_eq(query("SELECT count(*) FROM holds WHERE expires_at IS NOT NULL"), 1);
	cr_assert_eq(query("SELECT on_expiry FROM holds WHERE hold_id = 'h-late'"),
	             BS_EXPIRY_CAPTURE);
	cr_assert_eq(query("SELECT on_expiry FROM events WHERE event_seq = 15"), BS_EXPIRY_REVERSE);
}

Test(expiry, a_live_ledger_with_deadlines_is_consistent_at_every_materialization)
{
	bs_store *s = th_open_path(db());
	bs_error err = {0};

	build_expiry_ledger(s);
	expect_consistent(verify_ok(db()), EXPIRY_EVENTS, 0);
	cr_assert_eq(bs_store_checkpoint(s, &err), BS_OK, "%s", err.message);
	expect_consistent(verify_ok(db()), EXPIRY_EVENTS, EXPIRY_EVENTS);
	/* One more extend and expiry after the checkpoint. */
	bs_mutation m = extend("cap-y", 1, "h-ext", 30);
	th_set_authority(&m, "a1", "l1", 3);
	step(s, &m, true);
	th_now += 700 * SEC;
	cr_assert_eq(expire_due(s), 1);
	expect_hold(s, "h-ext", BS_HOLD_EXPIRED, 40, 0);
	bs_verify_report *r = verify_ok(db());
	expect_consistent(r, EXPIRY_EVENTS + 2, EXPIRY_EVENTS);
	cr_assert_eq(r->open_holds, 0);
	bs_store_close(s);
	expect_consistent(verify_ok(db()), EXPIRY_EVENTS + 2, EXPIRY_EVENTS + 2);
}

/* A file of schema v3 (budgetd before deadlines): the classic ledger, with
 * the v4 columns and index removed again. */
Test(expiry, a_schema_v3_database_is_consistent)
{
	closed_ledger();
	tamper("DROP INDEX holds_by_deadline;"
	       " ALTER TABLE holds DROP COLUMN expires_at; ALTER TABLE holds DROP COLUMN on_expiry;"
	       " ALTER TABLE events DROP COLUMN ttl_seconds;"
	       " ALTER TABLE events DROP COLUMN expires_at;"
	       " ALTER TABLE events DROP COLUMN on_expiry; PRAGMA user_version = 3");
	bs_verify_report *r = verify_ok(db());

	expect_consistent(r, LEDGER_EVENTS, LEDGER_EVENTS);
	cr_assert_eq(r->holds, LEDGER_HOLDS);
	/* v3 has no expiry kinds. */
	tamper("DROP TRIGGER events_no_update; UPDATE events SET kind = 7 WHERE event_seq = 15");
	expect_mismatch("event 15 has unknown kind 7");
}

Test(expiry, an_older_or_newer_schema_is_an_error)
{
	closed_ledger();
	bs_verify_report r;
	bs_error err = {0};

	tamper("PRAGMA user_version = 2");
	cr_assert_eq(bs_verify_file(db(), &r, &err), BS_ESTORAGE);
	cr_assert(strstr(err.message, "not a budgetd database of schema version 3 to"), "%s",
	          err.message);
	tamper("PRAGMA user_version = 99");
	cr_assert_eq(bs_verify_file(db(), &r, &err), BS_ESTORAGE);
	cr_assert(strstr(err.message, "(it has version 99)"), "%s", err.message);
}

Test(tamper_expiry, an_expirys_amount)
{
	closed_expiry_ledger();
	int64_t n = expiry_of("h-cap");
	tamper("DROP TRIGGER events_no_update; UPDATE events SET exposure_units = 5,"
	       " realized_units = 5 WHERE kind = 6 AND hold_id = 'h-cap'");
	bs_verify_report *r = expect_mismatchf(
	        "event %" PRId64 " (expire_exposure of hold `h-cap`, on_expiry capture) records"
	        " exposure_units 5 (the log: 6), realized_units 5 (the log: 6)",
	        n);
	/* The fold takes what the hold had: the after-values still agree. */
	cr_assert_eq(r->mismatch_count, 1);
}

Test(tamper_expiry, an_expiry_that_realizes_by_release)
{
	closed_expiry_ledger();
	int64_t n = expiry_of("h-rel");
	tamper("DROP TRIGGER events_no_update; UPDATE events SET realized_units = 20"
	       " WHERE kind = 6 AND hold_id = 'h-rel'");
	expect_mismatchf("event %" PRId64 " (expire_exposure, on_expiry release) realizes 20 of the"
	                 " 20 units it takes",
	                 n);
	expect_mismatchf("event %" PRId64 " (expire_exposure of hold `h-rel`, on_expiry release)"
	                 " records realized_units 20 (the log: 0)",
	                 n);
}

Test(tamper_expiry, an_expiry_under_another_policy)
{
	closed_expiry_ledger();
	int64_t n = expiry_of("h-rev");
	tamper("DROP TRIGGER events_no_update; UPDATE events SET on_expiry = 2"
	       " WHERE kind = 6 AND hold_id = 'h-rev'");
	bs_verify_report *r = expect_mismatchf("event %" PRId64 " (expire_exposure) applies"
	                                       " on_expiry release to hold `h-rev`, whose"
	                                       " on_expiry is reverse",
	                                       n);
	cr_assert_eq(r->mismatch_count, 1);
}

Test(tamper_expiry, an_expiry_before_the_deadline)
{
	closed_expiry_ledger();
	int64_t n = expiry_of("h-rel");
	int64_t deadline = query("SELECT expires_at FROM events WHERE hold_id = 'h-rel'"
	                         " AND kind = 2");
	int64_t at = query("SELECT recorded_at FROM events WHERE kind = 6 AND hold_id = 'h-rel'");
	tamper("DROP TRIGGER events_no_update; UPDATE events SET recorded_at = recorded_at - 61"
	       " * 1000000000 WHERE kind = 6 AND hold_id = 'h-rel'");
	expect_mismatchf("event %" PRId64 " (expire_exposure) expires hold `h-rel` at %" PRId64
	                 ", before its deadline %" PRId64,
	                 n, at - 61 * SEC, deadline);
}

Test(tamper_expiry, an_expiry_of_a_hold_without_deadline)
{
	closed_expiry_ledger();
	int64_t n = expiry_of("h-late");
	/* h-late's deadline came from event 9, the extend: make it another kind. */
	tamper("DROP TRIGGER events_no_update; UPDATE events SET kind = 4, ttl_seconds = NULL,"
	       " expires_at = NULL, on_expiry = NULL WHERE event_seq = 9");
	expect_mismatchf("event %" PRId64 " (expire_exposure) expires hold `h-late`, which has no"
	                 " deadline",
	                 n);
}

Test(tamper_expiry, an_expiry_of_a_settled_hold)
{
	closed_expiry_ledger();
	/* h-done was reconciled: a forged expiry of it, otherwise well-formed. */
	tamper("INSERT INTO events (event_seq, event_id, hold_id, capability_id, grant_index,"
	       " kind, allowed, denial, recorded_at, usage_seq, exposure_units, realized_units,"
	       " invocation_count_after, exposed_after, realized_after, caller, on_expiry)"
	       " VALUES (17, NULL, 'h-done', 'cap-y', 1, 6, NULL, 0, 9000000000000000000, 17, 0,"
	       " 0, 3, 40, 12, 'budgetd', 1)");
	bs_verify_report *r = expect_mismatch("event 17 (expire_exposure) moves hold `h-done` out"
	                                      " of reconciled; only an open hold moves");
	cr_assert_eq(r->mismatch_count, 1);
}

Test(tamper_expiry, a_settlement_of_an_expired_hold)
{
	closed_expiry_ledger();
	tamper("INSERT INTO events (event_seq, event_id, hold_id, capability_id, grant_index,"
	       " kind, allowed, denial, recorded_at, usage_seq, exposure_units, realized_units,"
	       " invocation_count_after, exposed_after, realized_after)"
	       " VALUES (17, NULL, 'h-rel', 'cap-x', 0, 4, NULL, 0, 9000000000000000000, 17, 0, 0,"
	       " 2, 0, 6)");
	bs_verify_report *r = expect_mismatch("event 17 (release_exposure) moves hold `h-rel` out"
	                                      " of expired; only an open hold moves");
	cr_assert_eq(r->mismatch_count, 1);
}

Test(tamper_expiry, an_expiry_recorded_as_a_client_mutation)
{
	closed_expiry_ledger();
	int64_t n = expiry_of("h-cap");
	tamper("DROP TRIGGER events_no_update; UPDATE events SET event_id = 'forged',"
	       " caller = 'mallory', authority_id = 'a1', lease_id = 'l1', lease_epoch = 3,"
	       " allowed = 1, ttl_seconds = 5 WHERE kind = 6 AND hold_id = 'h-cap'");
	expect_mismatchf("event %" PRId64 " (expire_exposure) stores event_id `forged`; budgetd"
	                 " generates the id of an expiry",
	                 n);
	expect_mismatchf("event %" PRId64 " (expire_exposure) records caller `mallory`, not"
	                 " `budgetd`",
	                 n);
	expect_mismatchf("event %" PRId64 " (expire_exposure) has an authority", n);
	expect_mismatchf("event %" PRId64 " (expire_exposure) records a decision (allowed = 1)", n);
	expect_mismatchf("event %" PRId64 " (expire_exposure) records ttl_seconds, which its kind"
	                 " does not have",
	                 n);
}

Test(tamper_expiry, an_extend_that_moves_the_deadline_earlier)
{
	closed_expiry_ledger();
	int64_t want = query("SELECT expires_at FROM events WHERE event_seq = 6");
	/* Event 7 (ttl 10) keeps the deadline event 6 set; claim it moved. */
	tamper("DROP TRIGGER events_no_update; UPDATE events SET expires_at = recorded_at + 10"
	       " * 1000000000 WHERE event_seq = 7");
	int64_t claimed = query("SELECT expires_at FROM events WHERE event_seq = 7");
	bs_verify_report *r = expect_mismatchf("event 7 (extend_hold of hold `h-ext`) records"
	                                       " expires_at %" PRId64 " (the log: %" PRId64 ")",
	                                       claimed, want);
	cr_assert_eq(r->mismatch_count, 1);
}

Test(tamper_expiry, an_extend_with_exposure_and_without_ttl)
{
	closed_expiry_ledger();
	tamper("DROP TRIGGER events_no_update; UPDATE events SET exposure_units = 3,"
	       " ttl_seconds = NULL WHERE event_seq = 9");
	expect_mismatch("event 9 (extend_hold) has exposure_units 3");
	expect_mismatch("event 9 (extend_hold) records no ttl_seconds");
}

Test(tamper_expiry, an_extend_under_another_authority)
{
	closed_expiry_ledger();
	tamper("DROP TRIGGER events_no_update; UPDATE events SET lease_epoch = 4"
	       " WHERE event_seq = 6");
	expect_mismatch("event 6 (extend_hold) extends hold `h-ext` under another authority than"
	                " the one it was opened with");
}

Test(tamper_expiry, an_authorizes_deadline)
{
	closed_expiry_ledger();
	int64_t want =
	        query("SELECT recorded_at + 60 * 1000000000 FROM events WHERE event_seq = 2");
	tamper("DROP TRIGGER events_no_update; UPDATE events SET expires_at = expires_at + 5"
	       " WHERE event_seq = 2");
	bs_verify_report *r =
	        expect_mismatchf("event 2 (authorize_exposure of hold `h-rel`) records"
	                         " expires_at %" PRId64 " (the log: %" PRId64 ")",
	                         want + 5, want);
	cr_assert_eq(r->mismatch_count, 1);
}

Test(tamper_expiry, a_denied_authorize_with_a_deadline)
{
	closed_expiry_ledger();
	tamper("DROP TRIGGER events_no_update; UPDATE events SET expires_at = 1 WHERE event_seq ="
	       " 12");
	expect_mismatch("event 12 (authorize_exposure) records expires_at 1 but opens no hold with"
	                " a deadline");
}

Test(tamper_expiry, a_holds_deadline)
{
	closed_expiry_ledger();
	int64_t want = query("SELECT expires_at FROM events WHERE event_seq = 6");
	tamper("UPDATE holds SET expires_at = expires_at + 1 WHERE hold_id = 'h-ext'");
	bs_verify_report *r = expect_mismatchf("hold `h-ext` differs from the log through event %d:"
	                                       " expires_at %" PRId64 " (the log: %" PRId64 ")",
	                                       EXPIRY_EVENTS, want + 1, want);
	cr_assert_eq(r->mismatch_count, 1);
}

Test(tamper_expiry, a_final_holds_deadline_and_policy)
{
	closed_expiry_ledger();
	tamper("UPDATE holds SET expires_at = 5 WHERE hold_id = 'h-done';"
	       " UPDATE holds SET on_expiry = 1 WHERE hold_id = 'h-rel'");
	expect_mismatchf("hold `h-done` differs from the log through event %d: expires_at 5 (the"
	                 " log: unset)",
	                 EXPIRY_EVENTS);
	expect_mismatchf("hold `h-rel` differs from the log through event %d: on_expiry capture"
	                 " (the log: release)",
	                 EXPIRY_EVENTS);
}

Test(tamper_expiry, a_hold_marked_expired_without_an_expiry)
{
	closed_expiry_ledger();
	tamper("UPDATE holds SET disposition = 5, remaining_units = 0, expires_at = NULL"
	       " WHERE hold_id = 'h-ext'");
	expect_mismatchf("hold `h-ext` differs from the log through event %d: remaining_units 0"
	                 " (the log: 40), disposition expired (the log: open), expires_at unset",
	                 EXPIRY_EVENTS);
}

Test(tamper_expiry, a_deleted_expiry)
{
	closed_expiry_ledger();
	int64_t n = expiry_of("h-rev");
	tamper("DROP TRIGGER events_no_delete; DELETE FROM events WHERE kind = 6 AND hold_id ="
	       " 'h-rev'");
	expect_mismatchf("the mutation log has a gap: event %" PRId64 " is missing", n);
	expect_mismatchf("hold `h-rev` differs from the log through event %d: remaining_units 0"
	                 " (the log: 30), disposition expired (the log: open)",
	                 EXPIRY_EVENTS);
	/* Its invocation and exposure stay on the grant in the fold. */
	expect_mismatchf("usage row (`cap-x`, 0) differs from the log through event %d:"
	                 " invocation_count 2 (the log: 3), total_cost_exposed 0 (the log: 30)",
	                 EXPIRY_EVENTS);
}

/* --- backup ---------------------------------------------------------------------- */

static char dest_path[1024];

static const char *dest(void)
{
	th_path(dest_path, sizeof(dest_path), tmpdir, "backup.db");
	return dest_path;
}

Test(backup, copies_a_live_store_into_a_verified_self_contained_file)
{
	bs_store *s = th_open_path(db());
	bs_backup_report r;
	bs_error err = {0};
	unsigned char header[100];
	struct stat st;
	char tmp[1100];

	build_ledger(s, 1, 7);
	cr_assert_eq(bs_store_checkpoint(s, &err), BS_OK);
	build_ledger(s, 8, LEDGER_EVENTS);
	cr_assert_eq(bs_backup_file(db(), dest(), &r, &err), BS_OK, "%s", err.message);
	bs_store_close(s);

	cr_assert(r.verify.ok, "%s", r.verify.summary);
	cr_assert_eq(r.commit_index, LEDGER_EVENTS);
	cr_assert_eq(r.materialized_seq, 7);
	cr_assert_eq(stat(dest(), &st), 0);
	cr_assert_eq((uint64_t)st.st_size, r.bytes);
	cr_assert_eq(st.st_mode & 0777, BS_BACKUP_FILE_MODE, "mode %o", st.st_mode & 0777);
	snprintf(tmp, sizeof(tmp), "%s.tmp", dest());
	cr_assert_neq(access(tmp, F_OK), 0, "the temporary file is left");
	snprintf(tmp, sizeof(tmp), "%s-wal", dest());
	cr_assert_neq(access(tmp, F_OK), 0, "the backup has a WAL");
	/* Rollback-journal mode in the header (bytes 18 and 19 are 1). */
	int fd = open(dest(), O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(read(fd, header, sizeof(header)), (ssize_t)sizeof(header));
	close(fd);
	cr_assert_eq(header[18], 1);
	cr_assert_eq(header[19], 1);

	/* budgetd can serve from it: the same ledger. */
	s = th_open_path(dest());
	cr_assert_eq(th_commit_index(s), LEDGER_EVENTS);
	expect_usage(s, "cap-a", 0, 2, 0, 7);
	expect_hold(s, "h-open", BS_HOLD_OPEN, 25, 25);
	bs_store_close(s);
}

Test(backup, never_replaces_a_file)
{
	bs_backup_report r;
	bs_error err = {0};
	char buf[16] = {0};

	closed_ledger();
	FILE *f = fopen(dest(), "w");
	cr_assert_not_null(f);
	fputs("precious", f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(bs_backup_file(db(), dest(), &r, &err), BS_ECONFLICT);
	cr_assert(strstr(err.message, "already exists"), "%s", err.message);
	f = fopen(dest(), "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	cr_assert_str_eq(buf, "precious");
}

Test(backup, refuses_a_left_over_temporary_file)
{
	bs_backup_report r;
	bs_error err = {0};
	char tmp[1100];

	closed_ledger();
	snprintf(tmp, sizeof(tmp), "%s.tmp", dest());
	FILE *f = fopen(tmp, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(bs_backup_file(db(), dest(), &r, &err), BS_ECONFLICT);
	cr_assert(strstr(err.message, "interrupted"), "%s", err.message);
	cr_assert_neq(access(dest(), F_OK), 0);
}

Test(backup, refuses_bad_paths)
{
	bs_backup_report r;
	bs_error err = {0};
	char missing[1100];

	closed_ledger();
	cr_assert_eq(bs_backup_file(db(), "relative.db", &r, &err), BS_EINVAL);
	cr_assert(strstr(err.message, "not absolute"), "%s", err.message);
	cr_assert_eq(bs_backup_file(db(), "", &r, &err), BS_EINVAL);
	snprintf(missing, sizeof(missing), "%s/no/such/dir/b.db", tmpdir);
	cr_assert_eq(bs_backup_file(db(), missing, &r, &err), BS_EINVAL);
	cr_assert(strstr(err.message, "directory does not exist"), "%s", err.message);
	snprintf(missing, sizeof(missing), "%s/", tmpdir);
	cr_assert_eq(bs_backup_file(db(), missing, &r, &err), BS_EINVAL);
}

Test(backup, of_a_missing_source_leaves_nothing)
{
	bs_backup_report r;
	bs_error err = {0};
	char tmp[1100];

	cr_assert_eq(bs_backup_file(db(), dest(), &r, &err), BS_ESTORAGE);
	cr_assert_neq(access(dest(), F_OK), 0);
	snprintf(tmp, sizeof(tmp), "%s.tmp", dest());
	cr_assert_neq(access(tmp, F_OK), 0);
	cr_assert_neq(access(db(), F_OK), 0, "the backup created its source");
}

Test(backup, of_an_inconsistent_source_is_kept_and_reported)
{
	bs_backup_report r;
	bs_error err = {0};

	closed_ledger();
	tamper("UPDATE holds SET remaining_units = 3 WHERE hold_id = 'h-open'");
	cr_assert_eq(bs_backup_file(db(), dest(), &r, &err), BS_OK, "%s", err.message);
	cr_assert_not(r.verify.ok);
	cr_assert_eq(r.verify.mismatch_count, 1);
	cr_assert(strstr(r.verify.mismatches[0], "remaining_units 3 (the log: 25)"), "%s",
	          r.verify.mismatches[0]);
	cr_assert_eq(access(dest(), F_OK), 0);
}

/* A writer applying batches to the store until told to stop; the only
 * user of the store meanwhile. */
typedef struct writer {
	bs_store *s;
	atomic_bool stop;
	atomic_uint batches;
	int failures;
} writer;

/* One batch: authorizations on holds of their own, each followed by its
 * reconcile, on a few grants. */
static int write_batch(bs_store *s, unsigned n)
{
	static bs_mutation m[BATCH_SIZE];
	static bs_batch_item items[BATCH_SIZE];
	static char holds[BATCH_SIZE / 2][32];

	for (unsigned i = 0; i < BATCH_SIZE / 2; i++) {
		snprintf(holds[i], sizeof(holds[i]), "w%u-%u", n, i);
		m[2 * i] = th_authorize("load", i % 8, 10, holds[i]);
		m[2 * i + 1] = th_reconcile("load", i % 8, 10, i % 11, holds[i]);
	}
	for (unsigned i = 0; i < BATCH_SIZE; i++)
		items[i] = (bs_batch_item){.mutation = &m[i]};
	int rc = bs_store_apply_batch(s, items, BATCH_SIZE);
	for (unsigned i = 0; rc == BS_OK && i < BATCH_SIZE; i++)
		rc = items[i].result;
	return rc;
}

static void *keep_writing(void *p)
{
	writer *w = p;

	for (unsigned n = PREFILL_BATCHES; !atomic_load(&w->stop); n++) {
		if (write_batch(w->s, n) != BS_OK)
			w->failures++;
		atomic_fetch_add(&w->batches, 1);
	}
	return NULL;
}

/* The number of events of `copy` that differ from or are missing in `live`. */
static int64_t events_not_in(const char *copy, const char *live, int64_t *copied)
{
	sqlite3 *d = NULL;
	sqlite3_stmt *st = NULL;
	char sql[1200];
	int64_t differ;

	cr_assert_eq(sqlite3_open_v2(live, &d, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	snprintf(sql, sizeof(sql), "ATTACH '%s' AS b", copy);
	cr_assert_eq(sqlite3_exec(d, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(d));
	cr_assert_eq(sqlite3_prepare_v2(d,
	                                "SELECT (SELECT count(*) FROM b.events), (SELECT count(*)"
	                                " FROM (SELECT * FROM b.events EXCEPT"
	                                " SELECT * FROM main.events))",
	                                -1, &st, NULL),
	             SQLITE_OK, "%s", sqlite3_errmsg(d));
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	*copied = sqlite3_column_int64(st, 0);
	differ = sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
	cr_assert_eq(sqlite3_close(d), SQLITE_OK);
	return differ;
}

Test(backup, of_a_store_being_written_is_a_consistent_snapshot)
{
	writer w = {.s = th_open_path(db())};
	bs_backup_report r;
	bs_error err = {0};
	pthread_t t;
	int64_t copied;

	for (unsigned n = 0; n < PREFILL_BATCHES; n++)
		cr_assert_eq(write_batch(w.s, n), BS_OK);
	cr_assert_eq(pthread_create(&t, NULL, keep_writing, &w), 0);
	while (atomic_load(&w.batches) == 0) /* the writer is under way */
		;
	int rc = bs_backup_file(db(), dest(), &r, &err);
	unsigned during = atomic_load(&w.batches);
	atomic_store(&w.stop, true);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(rc, BS_OK, "%s", err.message);
	cr_assert_eq(w.failures, 0);

	uint64_t live = th_commit_index(w.s);
	cr_log_info("backup at %llu of %llu events (%u batches while it ran), %llu bytes",
	            (unsigned long long)r.commit_index, (unsigned long long)live, during,
	            (unsigned long long)r.bytes);
	cr_assert(r.verify.ok, "%s; %s", r.verify.summary,
	          r.verify.n_mismatches ? r.verify.mismatches[0] : "-");
	/* Several backup steps' worth of pages. */
	cr_assert_gt(r.bytes, (uint64_t)BS_BACKUP_STEP_PAGES * 4096);
	cr_assert_geq(r.commit_index, (uint64_t)PREFILL_BATCHES * BATCH_SIZE);
	cr_assert_leq(r.commit_index, live);
	cr_assert_eq(events_not_in(dest(), db(), &copied), 0);
	cr_assert_eq((uint64_t)copied, r.commit_index);
	bs_store_close(w.s);
}
