/* test_expiry.c - hold deadlines: authorize with a ttl, extend, and the
 * store's own expiry by each policy, bounded, ordered, exactly once. */
#include <sqlite3.h>

#include "helpers.h"

#include "bs_faultvfs.h"

#define SEC 1000000000LL

static bs_mutation with_ttl(bs_mutation m, uint32_t ttl, bs_expiry policy)
{
	m.ttl_seconds = ttl;
	m.on_expiry = policy;
	return m;
}

static bs_mutation extend(const char *cap, uint64_t grant, const char *hold, uint32_t ttl)
{
	bs_mutation m = {0};

	m.kind = BS_KIND_EXTEND_HOLD;
	m.capability_id = bs_str_from(cap);
	m.grant_index = grant;
	m.hold_id = bs_str_from(hold);
	m.ttl_seconds = ttl;
	return m;
}

static uint32_t expire(bs_store *s, uint32_t max)
{
	uint32_t n = 99999;
	bs_error err = {0};

	cr_assert_eq(bs_store_expire_due(s, max, &n, &err), BS_OK, "%s", err.message);
	cr_assert_leq(n, max, "expire_due(%u) expired %u holds", max, n);
	return n;
}

static int64_t next_deadline(bs_store *s)
{
	int64_t at = -1;
	bs_error err = {0};

	cr_assert_eq(bs_store_next_deadline(s, &at, &err), BS_OK, "%s", err.message);
	return at;
}

static th_event last_event(bs_store *s)
{
	th_event *all, last;
	size_t n = th_events(s, &all);

	cr_assert_gt(n, 0);
	last = all[n - 1];
	free(all);
	return last;
}

static th_hold hold_of(bs_store *s, const char *id)
{
	th_hold h;

	cr_assert(th_get_hold(s, id, &h), "hold %s is missing", id);
	return h;
}

TestSuite(expiry, .init = th_setup_memory, .fini = th_teardown_memory);

Test(expiry, authorize_with_ttl_sets_deadline_and_default_policy)
{
	const int64_t t0 = th_now;
	bs_mutation m = with_ttl(th_authorize("c", 0, 100, "h"), 30, BS_EXPIRY_NONE);
	bs_outcome o = apply_ok(store, &m);

	cr_assert_eq(o.expires_at_ns, t0 + 30 * SEC);
	th_hold h = hold_of(store, "h");
	cr_assert_eq(h.h.expires_at_ns, t0 + 30 * SEC);
	cr_assert_eq(h.h.on_expiry, BS_EXPIRY_CAPTURE, "the default policy is capture");
	th_event ev = last_event(store);
	cr_assert_eq(ev.e.ttl_seconds, 30);
	cr_assert_eq(ev.e.expires_at_ns, t0 + 30 * SEC);
	cr_assert_eq(ev.e.on_expiry, BS_EXPIRY_CAPTURE);
	cr_assert_eq(next_deadline(store), t0 + 30 * SEC);
}

Test(expiry, a_hold_without_ttl_never_expires)
{
	bs_mutation m = th_authorize("c", 0, 100, "h");
	bs_outcome o = apply_ok(store, &m);

	cr_assert_eq(o.expires_at_ns, 0);
	cr_assert_eq(hold_of(store, "h").h.on_expiry, BS_EXPIRY_NONE);
	th_now += 365 * 24 * 3600 * SEC;
	cr_assert_eq(next_deadline(store), 0);
	cr_assert_eq(expire(store, 10), 0);
	expect_hold(store, "h", BS_HOLD_OPEN, 100, 100);
}

Test(expiry, nothing_expires_before_its_deadline)
{
	bs_mutation m = with_ttl(th_authorize("c", 0, 100, "h"), 10, BS_EXPIRY_CAPTURE);
	(void)apply_ok(store, &m);
	uint64_t index = th_commit_index(store);

	th_now += 10 * SEC - 1;
	cr_assert_eq(expire(store, 10), 0);
	cr_assert_eq(th_commit_index(store), index, "an early expiry recorded something");
	th_now += 1;
	cr_assert_eq(expire(store, 10), 1, "the deadline itself is due");
}

Test(expiry, capture_realizes_the_remaining_exposure)
{
	bs_mutation m = with_ttl(th_authorize("c", 0, 100, "h"), 10, BS_EXPIRY_CAPTURE);
	bs_mutation part = th_release("c", 0, 30, "h");
	(void)apply_ok(store, &m);
	(void)apply_ok(store, &part);

	th_now += 10 * SEC;
	cr_assert_eq(expire(store, 10), 1);
	expect_usage(store, "c", 0, 1, 0, 70);
	expect_hold(store, "h", BS_HOLD_EXPIRED, 100, 0);
	th_hold h = hold_of(store, "h");
	cr_assert_eq(h.h.expires_at_ns, 0, "a final hold keeps no deadline");
	cr_assert_eq(h.h.on_expiry, BS_EXPIRY_CAPTURE);
	th_event ev = last_event(store);
	cr_assert_eq(ev.e.kind, BS_KIND_EXPIRE_EXPOSURE);
	cr_assert_str_eq(ev.hold_id, "h");
	cr_assert_eq(ev.e.exposure_units, 70);
	cr_assert_eq(ev.e.realized_units, 70);
	cr_assert_eq(ev.e.on_expiry, BS_EXPIRY_CAPTURE);
	cr_assert_str_eq(ev.caller, "budgetd");
	cr_assert_not(ev.e.has_allowed);
	cr_assert(ev.e.has_usage_seq, "an expiry is an applied mutation with a commit index");
	cr_assert_eq(ev.e.usage_seq, ev.e.event_seq);
	th_usage u;
	cr_assert(th_get_usage(store, "c", 0, &u));
	cr_assert_eq(u.u.seq, ev.e.event_seq);
}

Test(expiry, release_gives_exposure_back_and_keeps_the_invocation)
{
	bs_mutation m = with_ttl(th_authorize("c", 0, 100, "h"), 10, BS_EXPIRY_RELEASE);
	(void)apply_ok(store, &m);

	th_now += 10 * SEC;
	cr_assert_eq(expire(store, 10), 1);
	expect_usage(store, "c", 0, 1, 0, 0);
	expect_hold(store, "h", BS_HOLD_EXPIRED, 100, 0);
	th_event ev = last_event(store);
	cr_assert_eq(ev.e.exposure_units, 100);
	cr_assert_eq(ev.e.realized_units, 0);
	cr_assert_eq(ev.e.on_expiry, BS_EXPIRY_RELEASE);
}

Test(expiry, reverse_gives_back_exposure_and_invocation)
{
	bs_mutation m = with_ttl(th_authorize("c", 0, 100, "h"), 10, BS_EXPIRY_REVERSE);
	bs_mutation other = th_authorize("c", 0, 5, NULL);
	(void)apply_ok(store, &m);
	(void)apply_ok(store, &other);

	th_now += 10 * SEC;
	cr_assert_eq(expire(store, 10), 1);
	expect_usage(store, "c", 0, 1, 5, 0);
	cr_assert_eq(last_event(store).e.on_expiry, BS_EXPIRY_REVERSE);
}

Test(expiry, extend_pushes_the_deadline)
{
	const int64_t t0 = th_now;
	bs_mutation m = with_ttl(th_authorize("c", 0, 100, "h"), 10, BS_EXPIRY_RELEASE);
	(void)apply_ok(store, &m);

	th_now += 5 * SEC;
	bs_mutation x = extend("c", 0, "h", 20);
	bs_outcome o = apply_ok(store, &x);
	cr_assert_eq(o.expires_at_ns, t0 + 25 * SEC);
	cr_assert(o.has_commit_index, "an extension is recorded with a commit index");
	cr_assert_eq(hold_of(store, "h").h.on_expiry, BS_EXPIRY_RELEASE, "the policy stays");
	th_event ev = last_event(store);
	cr_assert_eq(ev.e.kind, BS_KIND_EXTEND_HOLD);
	cr_assert_eq(ev.e.ttl_seconds, 20);
	cr_assert_eq(ev.e.expires_at_ns, t0 + 25 * SEC);

	th_now = t0 + 24 * SEC;
	cr_assert_eq(expire(store, 10), 0, "the old deadline passed but the hold was extended");
	th_now = t0 + 25 * SEC;
	cr_assert_eq(expire(store, 10), 1);
	expect_usage(store, "c", 0, 1, 0, 0);
}

Test(expiry, extend_never_shortens_a_deadline)
{
	const int64_t t0 = th_now;
	bs_mutation m = with_ttl(th_authorize("c", 0, 100, "h"), 100, BS_EXPIRY_CAPTURE);
	bs_mutation x = extend("c", 0, "h", 10);
	(void)apply_ok(store, &m);

	bs_outcome o = apply_ok(store, &x);
	cr_assert_eq(o.expires_at_ns, t0 + 100 * SEC);
	cr_assert_eq(hold_of(store, "h").h.expires_at_ns, t0 + 100 * SEC);
}

Test(expiry, extend_gives_a_hold_without_deadline_one_that_captures)
{
	const int64_t t0 = th_now;
	bs_mutation m = th_authorize("c", 0, 100, "h");
	bs_mutation x = extend("c", 0, "h", 10);
	(void)apply_ok(store, &m);
	(void)apply_ok(store, &x);

	th_hold h = hold_of(store, "h");
	cr_assert_eq(h.h.expires_at_ns, t0 + 10 * SEC);
	cr_assert_eq(h.h.on_expiry, BS_EXPIRY_CAPTURE);
	th_now += 10 * SEC;
	cr_assert_eq(expire(store, 10), 1);
	expect_usage(store, "c", 0, 1, 0, 100);
}

Test(expiry, extend_of_a_missing_mismatched_or_closed_hold_fails)
{
	bs_mutation m = with_ttl(th_authorize("c", 0, 100, "h"), 10, BS_EXPIRY_CAPTURE);
	bs_mutation missing = extend("c", 0, "nope", 10);
	bs_mutation wrong_grant = extend("c", 1, "h", 10);
	bs_mutation x = extend("c", 0, "h", 10);
	(void)apply_ok(store, &m);

	apply_err(store, &missing, BS_EPRECONDITION, "missing budget hold `nope`");
	apply_err(store, &wrong_grant, BS_EPRECONDITION,
	          "budget hold `h` does not match capability/grant");
	th_now += 10 * SEC;
	cr_assert_eq(expire(store, 10), 1);
	apply_err(store, &x, BS_EPRECONDITION, "budget hold `h` is no longer open");
}

Test(expiry, extend_follows_the_authority_rule)
{
	bs_mutation m = with_ttl(th_authorize("c", 0, 100, "h"), 10, BS_EXPIRY_CAPTURE);
	bs_mutation x = extend("c", 0, "h", 10);
	th_set_authority(&m, "a", "l", 3);
	(void)apply_ok(store, &m);

	apply_err(store, &x, BS_EPRECONDITION, "budget hold `h` requires authority lease metadata");
	th_set_authority(&x, "a", "l", 3);
	(void)apply_ok(store, &x);
}

Test(expiry, a_settled_hold_never_expires)
{
	bs_mutation m = with_ttl(th_authorize("c", 0, 100, "h"), 10, BS_EXPIRY_CAPTURE);
	bs_mutation r = th_reconcile("c", 0, 100, 40, "h");
	(void)apply_ok(store, &m);
	(void)apply_ok(store, &r);
	uint64_t index = th_commit_index(store);

	cr_assert_eq(next_deadline(store), 0, "a settled hold left its deadline behind");
	th_now += 10 * SEC;
	cr_assert_eq(expire(store, 10), 0);
	cr_assert_eq(th_commit_index(store), index);
	expect_hold(store, "h", BS_HOLD_RECONCILED, 100, 0);
	expect_usage(store, "c", 0, 1, 0, 40);
}

Test(expiry, a_settlement_after_expiry_loses)
{
	bs_mutation m = with_ttl(th_authorize("c", 0, 100, "h"), 10, BS_EXPIRY_CAPTURE);
	bs_mutation r = th_reconcile("c", 0, 100, 40, "h");
	(void)apply_ok(store, &m);

	th_now += 10 * SEC;
	cr_assert_eq(expire(store, 10), 1);
	apply_err(store, &r, BS_EPRECONDITION, "budget hold `h` is no longer open");
	expect_usage(store, "c", 0, 1, 0, 100);
	cr_assert_eq(expire(store, 10), 0, "a hold expired twice");
}

Test(expiry, expire_due_is_bounded_and_earliest_first)
{
	static const char *const ids[] = {"e", "d", "c", "b", "a"};
	const int64_t t0 = th_now;

	/* Deadlines in the reverse order of the ids; "x" and "y" tie. */
	for (uint32_t i = 0; i < 5; i++) {
		bs_mutation m =
		        with_ttl(th_authorize("c", 0, 1, ids[i]), 10 + i, BS_EXPIRY_CAPTURE);
		(void)apply_ok(store, &m);
	}
	bs_mutation y = with_ttl(th_authorize("c", 0, 1, "y"), 5, BS_EXPIRY_CAPTURE);
	bs_mutation x = with_ttl(th_authorize("c", 0, 1, "x"), 5, BS_EXPIRY_CAPTURE);
	(void)apply_ok(store, &y);
	(void)apply_ok(store, &x);
	uint64_t before = th_commit_index(store);

	th_now = t0 + 60 * SEC;
	cr_assert_eq(expire(store, 3), 3);
	cr_assert_eq(expire(store, 3), 3);
	cr_assert_eq(expire(store, 3), 1);
	cr_assert_eq(expire(store, 3), 0);
	static const char *const order[] = {"x", "y", "e", "d", "c", "b", "a"};
	th_event *all;
	size_t n = th_events(store, &all);
	cr_assert_eq(n, before + 7);
	for (size_t i = 0; i < 7; i++)
		cr_assert_str_eq(all[before + i].hold_id, order[i], "expiry %zu", i);
	free(all);
}

Test(expiry, extend_and_authorize_with_ttl_are_idempotent)
{
	bs_mutation m = with_ttl(th_authorize("c", 0, 100, "h"), 10, BS_EXPIRY_NONE);
	bs_mutation again = with_ttl(th_authorize("c", 0, 100, "h"), 10, BS_EXPIRY_CAPTURE);
	bs_mutation other = with_ttl(th_authorize("c", 0, 100, "h"), 11, BS_EXPIRY_CAPTURE);
	th_set_event(&m, "a1");
	th_set_event(&again, "a1");
	th_set_event(&other, "a1");
	bs_outcome first = apply_ok(store, &m);

	bs_outcome replay = apply_ok(store, &again);
	cr_assert(replay.replayed, "capture is the default: the same request");
	cr_assert_eq(replay.expires_at_ns, first.expires_at_ns);
	apply_err(store, &other, BS_ECONFLICT, "event_id `a1` was reused for a different mutation");

	bs_mutation x = extend("c", 0, "h", 30), y = extend("c", 0, "h", 31);
	th_set_event(&x, "x1");
	th_set_event(&y, "x1");
	bs_outcome ext = apply_ok(store, &x);
	th_now += SEC;
	bs_outcome ext2 = apply_ok(store, &x);
	cr_assert(ext2.replayed);
	cr_assert_eq(ext2.expires_at_ns, ext.expires_at_ns, "a replay moved the deadline");
	apply_err(store, &y, BS_ECONFLICT, "event_id `x1` was reused for a different mutation");
}

Test(expiry, dry_run_shows_the_deadline_and_records_nothing)
{
	bs_mutation m = with_ttl(th_authorize("c", 0, 100, "h"), 10, BS_EXPIRY_CAPTURE);
	m.dry_run = true;

	bs_outcome o = apply_ok(store, &m);
	cr_assert_eq(o.expires_at_ns, th_now + 10 * SEC);
	cr_assert_eq(th_commit_index(store), 0);
	cr_assert_eq(next_deadline(store), 0);
}

Test(expiry, deadlines_are_validated)
{
	bs_mutation no_hold = with_ttl(th_authorize("c", 0, 1, NULL), 10, BS_EXPIRY_CAPTURE);
	bs_mutation no_ttl = with_ttl(th_authorize("c", 0, 1, "h"), 0, BS_EXPIRY_RELEASE);
	bs_mutation too_long = with_ttl(th_authorize("c", 0, 1, "h"), BS_TTL_SECONDS_MAX + 1, 0);
	bs_mutation bad_policy = with_ttl(th_authorize("c", 0, 1, "h"), 10, (bs_expiry)4);
	bs_mutation zero = extend("c", 0, "h", 0);
	bs_mutation holdless = extend("c", 0, NULL, 10);
	bs_mutation on_release = th_release("c", 0, 1, "h");
	bs_mutation expiry = th_release("c", 0, 1, "h");
	on_release.ttl_seconds = 5;
	expiry.kind = BS_KIND_EXPIRE_EXPOSURE;
	expiry.exposure_units = 0;

	apply_err(store, &no_hold, BS_EINVAL, "ttl_seconds needs a hold_id: only holds expire");
	apply_err(store, &no_ttl, BS_EINVAL,
	          "on_expiry needs ttl_seconds: a hold without deadline never expires");
	apply_err(store, &too_long, BS_EINVAL, "ttl_seconds 2592001 is larger than 2592000");
	apply_err(store, &bad_policy, BS_EINVAL, "on_expiry 4 is not an expiry policy");
	apply_err(store, &zero, BS_EINVAL, "ttl_seconds must be at least 1");
	apply_err(store, &holdless, BS_EINVAL, "hold_id is required");
	apply_err(store, &on_release, BS_EINVAL, "ttl_seconds does not apply to release_exposure");
	apply_err(store, &expiry, BS_EINVAL, "expire_exposure is recorded by budgetd itself");
	cr_assert_eq(th_commit_index(store), 0);
}

Test(expiry, expire_due_takes_1_to_the_batch_limit)
{
	uint32_t n;
	bs_error err = {0};

	cr_assert_eq(bs_store_expire_due(store, 0, &n, &err), BS_EINVAL);
	cr_assert_eq(bs_store_expire_due(store, BS_BATCH_MUTATIONS_MAX + 1, &n, &err), BS_EINVAL);
}

Test(expiry, mass_expiry_runs_in_bounded_batches_between_live_mutations)
{
	enum { HOLDS = 100000, PER_BATCH = 1000 };
	static char ids[HOLDS][16];
	static bs_mutation ms[PER_BATCH];
	static bs_batch_item items[PER_BATCH];
	const uint32_t max = 256;

	for (uint32_t i = 0; i < HOLDS; i += PER_BATCH) {
		for (uint32_t j = 0; j < PER_BATCH; j++) {
			(void)snprintf(ids[i + j], sizeof(ids[i + j]), "h%06u", i + j);
			ms[j] = with_ttl(th_authorize("mass", i % 7, 3, ids[i + j]), 60,
			                 (bs_expiry)(1 + (i + j) % 3));
			items[j] = (bs_batch_item){.mutation = &ms[j]};
		}
		cr_assert_eq(bs_store_apply_batch(store, items, PER_BATCH), BS_OK);
	}
	th_now += 60 * SEC;
	uint32_t total = 0, calls = 0;
	for (uint32_t n; (n = expire(store, max)) > 0; calls++) {
		total += n;
		/* Live traffic gets its turn between two expiry batches. */
		bs_mutation live = th_authorize("live", 0, 1, NULL);
		cr_assert_eq(apply_ok(store, &live).invocation_count_after, calls + 1);
	}
	cr_assert_eq(total, HOLDS);
	cr_assert_eq(calls, (HOLDS + max - 1) / max);
	bs_stats st;
	bs_error err = {0};
	cr_assert_eq(bs_store_stats(store, &st, &err), BS_OK);
	cr_assert_eq(st.open_holds, 0);
	cr_assert_eq(next_deadline(store), 0);
	/* Policies cycle capture, release, reverse over consecutive holds. */
	uint64_t count = 0, realized = 0;
	for (uint32_t g = 0; g < 7; g++) {
		th_usage u;
		cr_assert(th_get_usage(store, "mass", g, &u));
		cr_assert_eq(u.u.total_cost_exposed, 0);
		count += u.u.invocation_count;
		realized += u.u.total_cost_realized_spend;
	}
	const uint64_t captured = (HOLDS + 2) / 3, reversed = HOLDS / 3;
	cr_assert_eq(realized, 3 * captured);
	cr_assert_eq(count, HOLDS - reversed);
}

TestSuite(expiry_on_disk, .init = th_setup_tmpdir, .fini = th_teardown_tmpdir);

Test(expiry_on_disk, deadlines_survive_a_restart_and_due_holds_expire_in_order)
{
	char path[512];
	th_path(path, sizeof(path), tmpdir, "b.db");
	bs_store *s = th_open_path(path);
	const int64_t t0 = th_now;
	/* Enough events that the first deadlines are read back from the holds
	 * table and the last ones from replaying the log. */
	for (uint32_t i = 0; i < BS_MATERIALIZE_EVENTS + 100; i++) {
		char id[16];
		(void)snprintf(id, sizeof(id), "h%05u", i);
		bs_mutation m =
		        with_ttl(th_authorize("c", 0, 1, id), 1000 - (i % 500), BS_EXPIRY_RELEASE);
		(void)apply_ok(s, &m);
	}
	bs_mutation settled = th_release("c", 0, 1, "h00000");
	(void)apply_ok(s, &settled);
	bs_store_close(s);

	th_now = t0 + 2000 * SEC;
	s = th_open_path(path);
	cr_assert_eq(next_deadline(s), t0 + 501 * SEC);
	uint64_t before = th_commit_index(s);
	uint32_t total = 0;
	for (uint32_t n; (n = expire(s, 256)) > 0;)
		total += n;
	cr_assert_eq(total, BS_MATERIALIZE_EVENTS + 100 - 1, "the released hold expired");
	expect_usage(s, "c", 0, BS_MATERIALIZE_EVENTS + 100, 0, 0);
	th_event *all;
	size_t n = th_events(s, &all);
	int64_t prev = 0;
	for (size_t i = before; i < n; i++) {
		th_hold h = hold_of(s, all[i].hold_id);
		cr_assert_eq(h.h.disposition, BS_HOLD_EXPIRED);
		/* The deadline is gone from the hold; recompute it from the id. */
		unsigned k = (unsigned)strtoul(all[i].hold_id + 1, NULL, 10);
		int64_t at = t0 + (int64_t)(1000 - (k % 500)) * SEC;
		cr_assert_geq(at, prev, "expiry out of deadline order at event %zu", i);
		prev = at;
	}
	free(all);
	bs_store_close(s);

	s = th_open_path(path);
	cr_assert_eq(next_deadline(s), 0);
	cr_assert_eq(expire(s, 256), 0, "a hold expired twice across a restart");
	bs_store_close(s);
}

Test(expiry_on_disk, a_version_3_database_is_migrated_and_its_holds_can_get_deadlines)
{
	char path[512];
	sqlite3 *db;
	th_path(path, sizeof(path), tmpdir, "v3.db");
	bs_store *s = th_open_path(path);
	bs_mutation m = th_authorize("c", 0, 5, "h");
	(void)apply_ok(s, &m);
	bs_store_close(s);
	/* What a database written by budgetd with schema 3 looks like. */
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(
	        sqlite3_exec(db,
	                     "DROP INDEX holds_by_deadline;"
	                     " ALTER TABLE events DROP COLUMN ttl_seconds;"
	                     " ALTER TABLE events DROP COLUMN expires_at;"
	                     " ALTER TABLE events DROP COLUMN on_expiry;"
	                     " ALTER TABLE holds DROP COLUMN expires_at;"
	                     " ALTER TABLE holds DROP COLUMN on_expiry; PRAGMA user_version = 3;",
	                     NULL, NULL, NULL),
	        SQLITE_OK, "%s", sqlite3_errmsg(db));
	sqlite3_close(db);

	s = th_open_path(path);
	th_hold h = hold_of(s, "h");
	cr_assert_eq(h.h.expires_at_ns, 0);
	cr_assert_eq(h.h.on_expiry, BS_EXPIRY_NONE);
	bs_mutation x = extend("c", 0, "h", 10);
	(void)apply_ok(s, &x);
	th_now += 10 * SEC;
	cr_assert_eq(expire(s, 10), 1);
	expect_usage(s, "c", 0, 1, 0, 5);
	bs_store_close(s);
}

Test(expiry, a_group_commit_can_carry_a_bounded_expiry_batch)
{
	bs_mutation holds[3];
	static const char *const ids[] = {"a", "b", "c"};
	for (int i = 0; i < 3; i++) {
		holds[i] = with_ttl(th_authorize("c", 0, 10, ids[i]), 10, BS_EXPIRY_RELEASE);
		(void)apply_ok(store, &holds[i]);
	}
	th_now += 10 * SEC;
	bs_mutation live = th_authorize("c", 1, 1, NULL);
	bs_batch_item item = {.mutation = &live};
	uint32_t expired = 99;

	cr_assert_eq(bs_store_apply_batch_expire(store, &item, 1, 2, &expired), BS_OK);
	cr_assert_eq(item.result, BS_OK);
	cr_assert_eq(expired, 2, "the expiry part is bounded by its own limit");
	cr_assert_eq(item.outcome.commit_index, 4, "the batch's mutations come first");
	th_event *all;
	size_t n = th_events(store, &all);
	cr_assert_eq(n, 6);
	cr_assert_eq(all[4].e.kind, BS_KIND_EXPIRE_EXPOSURE);
	cr_assert_eq(all[4].e.recorded_at_ns, all[3].e.recorded_at_ns, "one transaction");
	free(all);
	cr_assert_eq(bs_store_apply_batch_expire(store, &item, 1, 0, &expired), BS_OK);
	cr_assert_eq(expired, 0, "expire_max 0 expires nothing");
	cr_assert_eq(expire(store, 10), 1);
	cr_assert_eq(
	        bs_store_apply_batch_expire(store, &item, 1, BS_BATCH_MUTATIONS_MAX + 1, &expired),
	        BS_EINVAL);
}

/* Runs after the suite's own init (the temporary directory) and before
 * its fini. */
static void setup_fault(void)
{
	cr_assert_eq(bs_faultvfs_register(NULL), 0, "cannot register the fault VFS");
	bs_faultvfs_fail_syncs(false);
}

static void teardown_fault(void)
{
	bs_faultvfs_fail_syncs(false);
}

Test(expiry_on_disk, a_failed_expiry_records_nothing_says_why_and_is_retried, .init = setup_fault,
     .fini = teardown_fault)
{
	char path[512];
	bs_options o = th_options();
	bs_store *s;
	bs_error err = {0};
	th_path(path, sizeof(path), tmpdir, "f.db");
	o.vfs = BS_FAULT_VFS_NAME;
	cr_assert_eq(bs_store_open(path, &o, &s, &err), BS_OK, "%s", err.message);
	bs_mutation m = with_ttl(th_authorize("c", 0, 10, "h"), 10, BS_EXPIRY_RELEASE);
	(void)apply_ok(s, &m);
	uint64_t index = th_commit_index(s);

	th_now += 10 * SEC;
	bs_faultvfs_fail_syncs(true);
	uint32_t n = 99;
	cr_assert_eq(bs_store_expire_due(s, 10, &n, &err), BS_ESTORAGE);
	cr_assert_eq(n, 0);
	cr_assert(strstr(err.message, "storage failure, no hold was expired: ") &&
	                  strstr(err.message, "I/O error") &&
	                  !strstr(err.message, "expired: storage failure, no hold"),
	          "the cause is lost: %s", err.message);
	bs_faultvfs_fail_syncs(false);
	cr_assert_eq(th_commit_index(s), index, "a failed expiry took a sequence value");
	expect_hold(s, "h", BS_HOLD_OPEN, 10, 10);
	cr_assert_eq(expire(s, 10), 1, "the expiry is retried once the disk works");
	expect_hold(s, "h", BS_HOLD_EXPIRED, 10, 0);
	bs_store_close(s);
}
