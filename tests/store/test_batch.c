/* test_batch.c - apply_batch: isolated items, one commit, and a commit that
 * fails (through the fault-injecting VFS of fault_vfs.c). */
#include "helpers.h"

#include "bs_faultvfs.h"

TestSuite(batch, .init = th_setup_memory, .fini = th_teardown_memory);

static void setup_fault(void)
{
	th_setup_tmpdir();
	cr_assert_eq(bs_faultvfs_register(NULL), 0, "cannot register the fault VFS");
	bs_faultvfs_fail_writes(false);
	bs_faultvfs_fail_syncs(false);
}

static void teardown_fault(void)
{
	bs_faultvfs_fail_writes(false);
	bs_faultvfs_fail_syncs(false);
	th_teardown_tmpdir();
}

TestSuite(batch_fault, .init = setup_fault, .fini = teardown_fault);

static void fill(bs_batch_item *items, const bs_mutation *ms, size_t n)
{
	memset(items, 0, n * sizeof(*items));
	for (size_t i = 0; i < n; i++)
		items[i].mutation = &ms[i];
}

static void expect_item_ok(const bs_batch_item *it, size_t i)
{
	cr_assert_eq(it->result, BS_OK, "item %zu failed: %d %s", i, it->result, it->error.message);
}

static void expect_item_err(const bs_batch_item *it, size_t i, int code, const char *msg)
{
	cr_assert_eq(it->result, code, "item %zu: expected %d, got %d %s", i, code, it->result,
	             it->error.message);
	cr_assert_eq(it->error.code, code);
	if (msg)
		cr_assert_str_eq(it->error.message, msg);
}

/* --- isolation and ordering ---------------------------------------------- */

Test(batch, a_failing_mutation_in_the_middle_changes_nothing_while_its_neighbours_commit)
{
	bs_mutation ms[5];
	bs_batch_item items[5];
	bs_mutation again;
	th_event *ev;
	th_hold h;
	size_t n;

	ms[0] = th_authorize("cap", 0, 10, "h1");
	ms[1] = th_authorize("cap", 1, 10, "h2");
	ms[2] = th_release("cap", 0, 99, "h1"); /* more than remaining */
	ms[3] = th_increment("cap", 2);
	ms[4] = th_release("cap", 0, 4, "h1");
	th_set_event(&ms[2], "middle");
	ms[1].exposure_units = 11;
	th_set_max_total(&ms[1], 10); /* denied, but recorded */
	fill(items, ms, 5);
	cr_assert_eq(bs_store_apply_batch(store, items, 5), BS_OK);
	expect_item_ok(&items[0], 0);
	expect_item_ok(&items[1], 1);
	expect_item_err(&items[2], 2, BS_EPRECONDITION,
	                "cannot release more than remaining exposure");
	expect_item_ok(&items[3], 3);
	expect_item_ok(&items[4], 4);
	cr_assert_eq(items[0].outcome.commit_index, 1);
	cr_assert_not(items[1].outcome.allowed);
	cr_assert_eq(items[1].outcome.event_seq, 2);
	cr_assert_eq(items[3].outcome.commit_index, 3);
	cr_assert_eq(items[4].outcome.commit_index, 4);
	cr_assert_eq(th_commit_index(store), 4);
	expect_usage(store, "cap", 0, 1, 6, 0);
	expect_no_usage(store, "cap", 1);
	expect_usage(store, "cap", 2, 1, 0, 0);
	expect_hold(store, "h1", BS_HOLD_OPEN, 10, 6);
	cr_assert_not(th_get_hold(store, "h2", &h));
	n = th_events(store, &ev);
	cr_assert_eq(n, 4);
	for (size_t i = 0; i < n; i++)
		cr_assert_str_neq(ev[i].event_id, "middle");
	free(ev);
	/* The failed item's event_id was not taken. */
	again = th_increment("cap", 9);
	th_set_event(&again, "middle");
	cr_assert_not(apply_ok(store, &again).replayed);
}

Test(batch, invalid_and_overflowing_items_fail_alone)
{
	bs_mutation ms[4];
	bs_batch_item items[4];

	ms[0] = th_authorize("cap", 0, U64MAX, NULL);
	ms[1] = th_authorize("cap", 0, 1, NULL); /* overflows */
	ms[2] = th_authorize("", 0, 1, NULL);    /* invalid */
	ms[3] = th_release("cap", 0, 5, NULL);
	fill(items, ms, 4);
	cr_assert_eq(bs_store_apply_batch(store, items, 4), BS_OK);
	expect_item_ok(&items[0], 0);
	expect_item_err(&items[1], 1, BS_EOVERFLOW, "committed cost overflows u64");
	expect_item_err(&items[2], 2, BS_EINVAL, "capability_id must not be empty");
	expect_item_ok(&items[3], 3);
	cr_assert_eq(items[3].outcome.commit_index, 2);
	expect_usage(store, "cap", 0, 1, U64MAX - 5, 0);
}

Test(batch, later_items_see_the_effects_of_earlier_ones)
{
	bs_mutation ms[3];
	bs_batch_item items[3];

	ms[0] = th_authorize("cap", 0, 10, "h1");
	ms[1] = th_release("cap", 0, 4, "h1");
	ms[2] = th_reconcile("cap", 0, 6, 6, "h1");
	fill(items, ms, 3);
	cr_assert_eq(bs_store_apply_batch(store, items, 3), BS_OK);
	for (size_t i = 0; i < 3; i++) {
		expect_item_ok(&items[i], i);
		cr_assert_eq(items[i].outcome.commit_index, i + 1);
	}
	cr_assert_eq(items[1].outcome.exposed_after, 6);
	cr_assert_eq(items[2].outcome.realized_after, 6);
	expect_hold(store, "h1", BS_HOLD_RECONCILED, 10, 0);
	expect_usage(store, "cap", 0, 1, 0, 6);
}

Test(batch, a_hold_opened_earlier_in_the_batch_already_exists)
{
	bs_mutation ms[2];
	bs_batch_item items[2];

	ms[0] = th_authorize("cap", 0, 10, "h1");
	ms[1] = th_authorize("cap", 1, 3, "h1");
	fill(items, ms, 2);
	cr_assert_eq(bs_store_apply_batch(store, items, 2), BS_OK);
	expect_item_ok(&items[0], 0);
	expect_item_err(&items[1], 1, BS_ECONFLICT, "budget hold `h1` already exists");
	expect_no_usage(store, "cap", 1);
}

Test(batch, an_event_id_repeated_in_the_batch_is_a_replay_or_a_conflict)
{
	bs_mutation ms[3];
	bs_batch_item items[3];

	ms[0] = th_increment("cap", 0);
	ms[1] = th_increment("cap", 0);
	ms[2] = th_authorize("cap", 0, 1, NULL);
	th_set_event(&ms[0], "e1");
	th_set_event(&ms[1], "e1");
	th_set_event(&ms[2], "e1");
	fill(items, ms, 3);
	cr_assert_eq(bs_store_apply_batch(store, items, 3), BS_OK);
	expect_item_ok(&items[0], 0);
	expect_item_ok(&items[1], 1);
	cr_assert_not(items[0].outcome.replayed);
	cr_assert(items[1].outcome.replayed);
	expect_same_outcome(&items[0].outcome, &items[1].outcome);
	expect_item_err(&items[2], 2, BS_ECONFLICT,
	                "event_id `e1` was reused for a different mutation");
	expect_usage(store, "cap", 0, 1, 0, 0);
	cr_assert_eq(th_commit_index(store), 1);
}

Test(batch, a_batch_of_only_failures_commits_nothing)
{
	bs_mutation ms[3];
	bs_batch_item items[3];
	th_snapshot before, after;

	ms[0] = th_release("cap", 0, 1, NULL);
	ms[1] = th_reverse("cap", 0, 1, "missing");
	ms[2] = th_reconcile("cap", 0, 1, 2, NULL);
	fill(items, ms, 3);
	th_snapshot_take(store, NULL, &before);
	cr_assert_eq(bs_store_apply_batch(store, items, 3), BS_OK);
	expect_item_err(&items[0], 0, BS_EPRECONDITION, "missing charged budget row");
	expect_item_err(&items[1], 1, BS_EPRECONDITION, "missing budget hold `missing`");
	expect_item_err(&items[2], 2, BS_EINVAL, "cannot realize spend larger than exposed cost");
	th_snapshot_take(store, NULL, &after);
	th_snapshot_expect_same(__FILE__, __LINE__, &before, &after);
	th_snapshot_free(&before);
	th_snapshot_free(&after);
}

Test(batch, single_apply_and_batch_agree)
{
	bs_mutation m = th_authorize("cap", 0, 3, NULL);
	bs_batch_item item;
	bs_outcome out;

	out = apply_ok(store, &m);
	fill(&item, &m, 1);
	cr_assert_eq(bs_store_apply_batch(store, &item, 1), BS_OK);
	expect_item_ok(&item, 0);
	cr_assert_eq(item.outcome.commit_index, out.commit_index + 1);
	cr_assert_eq(item.outcome.invocation_count_after, 2);
	cr_assert_eq(item.outcome.exposed_after, 6);
}

/* --- a commit that fails ------------------------------------------------- */

static bs_store *open_on_fault_vfs(const char *path)
{
	bs_options o = th_options();
	bs_store *s = NULL;
	bs_error err;
	int rc;

	o.vfs = BS_FAULT_VFS_NAME;
	memset(&err, 0, sizeof(err));
	rc = bs_store_open(path, &o, &s, &err);
	cr_assert_eq(rc, BS_OK, "open on the fault VFS: %s", err.message);
	return s;
}

/* A batch of valid mutations touching new rows, a new hold and new event ids. */
static void make_batch(bs_mutation *ms)
{
	ms[0] = th_authorize("cap", 0, 10, "h-new");
	ms[1] = th_increment("fresh", 1);
	ms[2] = th_release("cap", 0, 4, "h-new");
	ms[3] = th_authorize("cap", 5, 1, NULL);
	th_set_event(&ms[0], "b-0");
	th_set_event(&ms[1], "b-1");
	th_set_event(&ms[2], "b-2");
	th_set_event(&ms[3], "b-3");
}

static void expect_commit_failure_leaves_nothing(bool writes, bool syncs)
{
	char path[1024];
	bs_store *s;
	bs_mutation pre = th_increment("pre", 0);
	bs_mutation ms[4];
	bs_batch_item items[4];
	th_snapshot before, after;
	th_hold h;
	uint64_t base;
	int rc;

	th_path(path, sizeof(path), tmpdir, "budget.db");
	s = open_on_fault_vfs(path);
	apply_ok(s, &pre);
	apply_ok(s, &pre);
	base = th_commit_index(s);
	th_snapshot_take(s, "h-new", &before);

	make_batch(ms);
	fill(items, ms, 4);
	bs_faultvfs_fail_writes(writes);
	bs_faultvfs_fail_syncs(syncs);
	rc = bs_store_apply_batch(s, items, 4);
	bs_faultvfs_fail_writes(false);
	bs_faultvfs_fail_syncs(false);
	cr_assert(bs_faultvfs_failed_writes() + bs_faultvfs_failed_syncs() > 0,
	          "the fault was never hit: the batch did not write or sync");
	cr_assert_eq(rc, BS_ESTORAGE, "apply_batch returned %d", rc);
	for (size_t i = 0; i < 4; i++) {
		expect_item_err(&items[i], i, BS_ESTORAGE, NULL);
		cr_assert_gt(strlen(items[i].error.message), 0);
	}

	/* Nothing of the batch is visible. */
	cr_assert_eq(th_commit_index(s), base);
	th_snapshot_take(s, "h-new", &after);
	th_snapshot_expect_same(__FILE__, __LINE__, &before, &after);
	th_snapshot_free(&after);
	expect_no_usage(s, "cap", 0);
	expect_no_usage(s, "fresh", 1);
	cr_assert_not(th_get_hold(s, "h-new", &h));

	/* The same batch applies afterwards: its event_ids are free. */
	fill(items, ms, 4);
	cr_assert_eq(bs_store_apply_batch(s, items, 4), BS_OK);
	for (size_t i = 0; i < 4; i++) {
		expect_item_ok(&items[i], i);
		cr_assert_not(items[i].outcome.replayed, "item %zu was answered as a replay", i);
		cr_assert_eq(items[i].outcome.commit_index, base + 1 + i);
	}
	expect_usage(s, "cap", 0, 1, 6, 0);
	expect_hold(s, "h-new", BS_HOLD_OPEN, 10, 6);
	bs_store_close(s);

	/* And after a restart, exactly the successful batch is there. */
	s = th_open_path(path);
	cr_assert_eq(th_commit_index(s), base + 4);
	expect_usage(s, "cap", 0, 1, 6, 0);
	expect_usage(s, "fresh", 1, 1, 0, 0);
	expect_usage(s, "pre", 0, 2, 0, 0);
	bs_store_close(s);
	th_snapshot_free(&before);
}

Test(batch_fault, a_failed_commit_reports_storage_errors_and_leaves_nothing_behind)
{
	expect_commit_failure_leaves_nothing(true, true);
}

Test(batch_fault, a_failed_fsync_reports_storage_errors_and_leaves_nothing_behind)
{
	expect_commit_failure_leaves_nothing(false, true);
}

Test(batch_fault, a_failed_write_reports_storage_errors_and_leaves_nothing_behind)
{
	expect_commit_failure_leaves_nothing(true, false);
}

Test(batch_fault, a_single_apply_whose_commit_fails_reports_a_storage_error)
{
	char path[1024];
	bs_store *s;
	bs_mutation m = th_authorize("cap", 0, 10, "h1");
	bs_outcome out;
	bs_error err;
	th_hold h;
	int rc;

	th_path(path, sizeof(path), tmpdir, "budget.db");
	s = open_on_fault_vfs(path);
	th_set_event(&m, "e1");
	bs_faultvfs_fail_writes(true);
	bs_faultvfs_fail_syncs(true);
	memset(&err, 0, sizeof(err));
	rc = bs_store_apply(s, &m, &out, &err);
	bs_faultvfs_fail_writes(false);
	bs_faultvfs_fail_syncs(false);
	cr_assert_eq(rc, BS_ESTORAGE);
	cr_assert_eq(err.code, BS_ESTORAGE);
	cr_assert_gt(strlen(err.message), 0);
	cr_assert_eq(th_commit_index(s), 0);
	expect_no_usage(s, "cap", 0);
	cr_assert_not(th_get_hold(s, "h1", &h));
	out = apply_ok(s, &m);
	cr_assert_not(out.replayed);
	cr_assert_eq(out.commit_index, 1);
	bs_store_close(s);
}

Test(batch_fault, the_bs_faultvfs_passes_everything_through_when_disarmed)
{
	char path[1024];
	bs_store *s;
	bs_mutation m = th_increment("cap", 0);
	unsigned long syncs;

	th_path(path, sizeof(path), tmpdir, "budget.db");
	s = open_on_fault_vfs(path);
	syncs = bs_faultvfs_syncs();
	apply_ok(s, &m);
	cr_assert_gt(bs_faultvfs_syncs(), syncs, "a FULL-sync commit did not fsync");
	bs_store_close(s);
	s = th_open_path(path);
	expect_usage(s, "cap", 0, 1, 0, 0);
	bs_store_close(s);
}
