/* test_idempotency.c - event_id replays and conflicts. */
#include "helpers.h"

TestSuite(idempotency, .init = th_setup_memory, .fini = th_teardown_memory);

static const char *conflict_msg = "event_id `e1` was reused for a different mutation";

/* Applies `m` once, then again, and checks that the second answer is the
 * first one replayed and that nothing was appended or changed. */
static bs_outcome expect_replay(const bs_mutation *m, const bs_outcome *first)
{
	th_snapshot before, after;
	bs_outcome again;

	th_snapshot_take(store, NULL, &before);
	again = apply_ok(store, m);
	th_snapshot_take(store, NULL, &after);
	cr_assert(again.replayed, "the second answer is not marked as a replay");
	cr_assert_not(first->replayed);
	expect_same_outcome(first, &again);
	th_snapshot_expect_same(__FILE__, __LINE__, &before, &after);
	th_snapshot_free(&before);
	th_snapshot_free(&after);
	return again;
}

Test(idempotency, replay_returns_the_identical_outcome_and_appends_nothing)
{
	bs_mutation m = th_authorize("cap", 0, 10, "h1");
	bs_outcome first;
	th_event *ev;
	size_t n;

	th_set_event(&m, "e1");
	th_set_authority(&m, "auth-1", "lease-1", 3);
	th_set_max_total(&m, 100);
	first = apply_ok(store, &m);
	cr_assert_str_eq(first.event_id, "e1");
	cr_assert_eq(th_commit_index(store), 1);
	expect_replay(&m, &first);
	expect_replay(&m, &first);
	cr_assert_eq(th_commit_index(store), 1);
	n = th_events(store, &ev);
	cr_assert_eq(n, 1);
	free(ev);
	expect_usage(store, "cap", 0, 1, 10, 0);
	expect_hold(store, "h1", BS_HOLD_OPEN, 10, 10);
}

Test(idempotency, replay_after_later_changes_returns_the_original_outcome)
{
	bs_mutation m = th_authorize("cap", 0, 10, NULL);
	bs_mutation other = th_authorize("cap", 0, 5, NULL);
	bs_outcome first, again;

	th_set_event(&m, "e1");
	first = apply_ok(store, &m);
	apply_ok(store, &other);
	again = expect_replay(&m, &first);
	cr_assert_eq(again.invocation_count_after, 1);
	cr_assert_eq(again.exposed_after, 10);
	cr_assert_eq(again.commit_index, 1);
	expect_usage(store, "cap", 0, 2, 15, 0);
}

Test(idempotency, replay_of_a_denied_authorize_stays_denied)
{
	bs_mutation fill = th_authorize("cap", 0, 8, "fill");
	bs_mutation m = th_authorize("cap", 0, 5, NULL);
	bs_mutation free_up = th_release("cap", 0, 8, "fill");
	bs_outcome first, again;

	apply_ok(store, &fill);
	th_set_event(&m, "e1");
	th_set_max_total(&m, 10);
	first = apply_ok(store, &m);
	cr_assert_not(first.allowed);
	cr_assert_eq(first.denial, BS_DENIAL_MAX_TOTAL_COST);
	apply_ok(store, &free_up); /* now the same request would be allowed */
	again = expect_replay(&m, &first);
	cr_assert_not(again.allowed);
	cr_assert_eq(again.denial, BS_DENIAL_MAX_TOTAL_COST);
	cr_assert_not(again.has_commit_index);
	expect_usage(store, "cap", 0, 1, 0, 0);
}

Test(idempotency, replay_of_a_denied_increment_stays_denied)
{
	bs_mutation m = th_increment("cap", 0);
	bs_outcome first;

	th_set_event(&m, "e1");
	th_set_max_invocations(&m, 0);
	first = apply_ok(store, &m);
	cr_assert_not(first.allowed);
	cr_assert_not(expect_replay(&m, &first).allowed);
	expect_no_usage(store, "cap", 0);
}

Test(idempotency, replay_of_every_kind_changes_nothing)
{
	bs_mutation ms[5];

	ms[0] = th_authorize("cap", 0, 10, "h1");
	ms[1] = th_release("cap", 0, 2, "h1");
	ms[2] = th_reconcile("cap", 0, 8, 3, "h1");
	ms[3] = th_increment("cap", 0);
	ms[4] = th_reverse("cap", 0, 0, NULL);
	th_set_event(&ms[0], "ev-0");
	th_set_event(&ms[1], "ev-1");
	th_set_event(&ms[2], "ev-2");
	th_set_event(&ms[3], "ev-3");
	th_set_event(&ms[4], "ev-4");
	for (int i = 0; i < 5; i++) {
		bs_outcome first = apply_ok(store, &ms[i]);

		expect_replay(&ms[i], &first);
	}
	expect_usage(store, "cap", 0, 1, 0, 3);
	expect_hold(store, "h1", BS_HOLD_RECONCILED, 10, 0);
	cr_assert_eq(th_commit_index(store), 5);
}

Test(idempotency, replay_is_answered_before_the_state_checks)
{
	bs_mutation a = th_authorize("cap", 0, 10, "h1");
	bs_mutation r = th_release("cap", 0, 10, "h1");
	bs_outcome first;

	apply_ok(store, &a);
	th_set_event(&r, "e1");
	first = apply_ok(store, &r);
	expect_hold(store, "h1", BS_HOLD_RELEASED, 10, 0);
	/* The hold is closed now: a new release would fail, the replay does not. */
	expect_replay(&r, &first);
	th_set_event(&a, "e2");
	apply_err(store, &a, BS_ECONFLICT, "budget hold `h1` already exists");
}

Test(idempotency, validation_comes_before_the_replay)
{
	bs_mutation m = th_authorize("cap", 0, 10, NULL);

	th_set_event(&m, "e1");
	apply_ok(store, &m);
	m.realized_units = 1;
	apply_err(store, &m, BS_EINVAL, "realized_units does not apply to authorize_exposure");
}

Test(idempotency, reuse_for_a_different_amount_is_a_conflict)
{
	bs_mutation m = th_authorize("cap", 0, 10, NULL);

	th_set_event(&m, "e1");
	apply_ok(store, &m);
	m.exposure_units = 11;
	apply_err(store, &m, BS_ECONFLICT, conflict_msg);
}

Test(idempotency, reuse_for_a_different_kind_is_a_conflict)
{
	bs_mutation a = th_authorize("cap", 0, 10, NULL);
	bs_mutation r = th_release("cap", 0, 10, NULL);
	bs_mutation i = th_increment("cap", 0);

	th_set_event(&a, "e1");
	th_set_event(&r, "e1");
	th_set_event(&i, "e1");
	apply_ok(store, &a);
	apply_err(store, &r, BS_ECONFLICT, conflict_msg);
	apply_err(store, &i, BS_ECONFLICT, conflict_msg);
}

Test(idempotency, reuse_for_a_different_capability_or_grant_is_a_conflict)
{
	bs_mutation m = th_authorize("cap", 0, 10, NULL);

	th_set_event(&m, "e1");
	apply_ok(store, &m);
	m.capability_id = bs_str_from("cap-2");
	apply_err(store, &m, BS_ECONFLICT, conflict_msg);
	m.capability_id = bs_str_from("cap");
	m.grant_index = 1;
	apply_err(store, &m, BS_ECONFLICT, conflict_msg);
}

Test(idempotency, reuse_with_a_different_hold_id_is_a_conflict)
{
	bs_mutation m = th_authorize("cap", 0, 10, "h1");

	th_set_event(&m, "e1");
	apply_ok(store, &m);
	m.hold_id = bs_str_from("h2");
	apply_err(store, &m, BS_ECONFLICT, conflict_msg);
	m.hold_id = bs_str_from(NULL);
	apply_err(store, &m, BS_ECONFLICT, conflict_msg);
}

Test(idempotency, reuse_with_a_different_authority_is_a_conflict)
{
	bs_mutation m = th_authorize("cap", 0, 10, "h1");

	th_set_event(&m, "e1");
	th_set_authority(&m, "auth-1", "lease-1", 3);
	apply_ok(store, &m);
	th_set_authority(&m, "auth-1", "lease-1", 4);
	apply_err(store, &m, BS_ECONFLICT, conflict_msg);
	th_set_authority(&m, "auth-2", "lease-1", 3);
	apply_err(store, &m, BS_ECONFLICT, conflict_msg);
	th_set_authority(&m, "auth-1", "lease-2", 3);
	apply_err(store, &m, BS_ECONFLICT, conflict_msg);
	m.has_authority = false;
	memset(&m.authority, 0, sizeof(m.authority));
	apply_err(store, &m, BS_ECONFLICT, conflict_msg);
}

Test(idempotency, reuse_adding_authority_is_a_conflict)
{
	bs_mutation m = th_authorize("cap", 0, 10, NULL);

	th_set_event(&m, "e1");
	apply_ok(store, &m);
	th_set_authority(&m, "auth-1", "lease-1", 3);
	apply_err(store, &m, BS_ECONFLICT, conflict_msg);
}

Test(idempotency, reuse_with_different_limits_is_a_conflict)
{
	bs_mutation m = th_authorize("cap", 0, 10, NULL);
	bs_mutation v;

	th_set_event(&m, "e1");
	th_set_max_invocations(&m, 5);
	th_set_max_cost(&m, 20);
	th_set_max_total(&m, 100);
	apply_ok(store, &m);

	v = m;
	v.max_invocations = 6;
	apply_err(store, &v, BS_ECONFLICT, conflict_msg);
	v = m;
	v.max_cost_per_invocation = 21;
	apply_err(store, &v, BS_ECONFLICT, conflict_msg);
	v = m;
	v.max_total_cost_units = 101;
	apply_err(store, &v, BS_ECONFLICT, conflict_msg);
}

Test(idempotency, reuse_with_a_limit_present_or_absent_is_a_conflict)
{
	bs_mutation m = th_authorize("cap", 0, 10, NULL);
	bs_mutation v;

	th_set_event(&m, "e1");
	th_set_max_total(&m, 100);
	apply_ok(store, &m);

	v = m;
	v.has_max_total_cost_units = false;
	v.max_total_cost_units = 0;
	apply_err(store, &v, BS_ECONFLICT, conflict_msg);
	v = m;
	th_set_max_invocations(&v, 0);
	apply_err(store, &v, BS_ECONFLICT, conflict_msg);
	v = m;
	th_set_max_cost(&v, 0);
	apply_err(store, &v, BS_ECONFLICT, conflict_msg);
}

Test(idempotency, reuse_with_different_realized_units_is_a_conflict)
{
	bs_mutation a = th_authorize("cap", 0, 10, "h1");
	bs_mutation c = th_reconcile("cap", 0, 10, 4, "h1");

	apply_ok(store, &a);
	th_set_event(&c, "e1");
	apply_ok(store, &c);
	c.realized_units = 5;
	apply_err(store, &c, BS_ECONFLICT, conflict_msg);
}

Test(idempotency, event_ids_are_unique_across_capabilities)
{
	bs_mutation a = th_increment("cap-a", 0);
	bs_mutation b = th_increment("cap-b", 0);

	th_set_event(&a, "e1");
	th_set_event(&b, "e1");
	apply_ok(store, &a);
	apply_err(store, &b, BS_ECONFLICT, conflict_msg);
	expect_no_usage(store, "cap-b", 0);
}

Test(idempotency, a_failed_mutation_leaves_its_event_id_free)
{
	bs_mutation r = th_release("cap", 0, 1, "missing");
	bs_mutation a = th_authorize("cap", 0, 1, NULL);
	bs_outcome out;

	th_set_event(&r, "e1");
	apply_err(store, &r, BS_EPRECONDITION, "missing budget hold `missing`");
	th_set_event(&a, "e1");
	out = apply_ok(store, &a);
	cr_assert_not(out.replayed);
	cr_assert_str_eq(out.event_id, "e1");
	cr_assert_eq(out.event_seq, 1);
}

Test(idempotency, an_event_id_rejected_for_a_hold_conflict_stays_free)
{
	bs_mutation a = th_authorize("cap", 0, 1, "h1");
	bs_mutation b = th_authorize("cap", 0, 2, "h1");
	bs_mutation c = th_authorize("cap", 0, 3, "h2");

	apply_ok(store, &a);
	th_set_event(&b, "e1");
	apply_err(store, &b, BS_ECONFLICT, "budget hold `h1` already exists");
	th_set_event(&c, "e1");
	cr_assert_not(apply_ok(store, &c).replayed);
}

Test(idempotency, a_denied_mutation_takes_its_event_id)
{
	bs_mutation d = th_authorize("cap", 0, 50, NULL);
	bs_mutation other = th_authorize("cap", 0, 5, NULL);

	th_set_event(&d, "e1");
	th_set_max_cost(&d, 10);
	cr_assert_not(apply_ok(store, &d).allowed);
	th_set_event(&other, "e1");
	apply_err(store, &other, BS_ECONFLICT, conflict_msg);
}

Test(idempotency, requests_without_event_id_are_never_replays)
{
	bs_mutation m = th_authorize("cap", 0, 1, NULL);
	bs_outcome a = apply_ok(store, &m);
	bs_outcome b = apply_ok(store, &m);

	cr_assert_not(a.replayed);
	cr_assert_not(b.replayed);
	cr_assert_str_neq(a.event_id, b.event_id);
	expect_usage(store, "cap", 0, 2, 2, 0);
}

Test(idempotency, generated_event_ids_use_the_reserved_prefix_and_the_event_seq)
{
	bs_mutation m = th_increment("cap", 0);
	bs_mutation named = th_increment("cap", 0);
	bs_outcome a, b, c;
	th_event *ev;
	size_t n;

	a = apply_ok(store, &m);
	th_set_event(&named, "client-1");
	b = apply_ok(store, &named);
	c = apply_ok(store, &m);
	cr_assert_str_eq(a.event_id, "budgetd-auto-1");
	cr_assert_str_eq(b.event_id, "client-1");
	cr_assert_str_eq(c.event_id, "budgetd-auto-3");
	n = th_events(store, &ev);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(ev[0].event_id, "budgetd-auto-1");
	cr_assert_str_eq(ev[1].event_id, "client-1");
	cr_assert_str_eq(ev[2].event_id, "budgetd-auto-3");
	free(ev);
}

Test(idempotency, generated_event_ids_cannot_be_replayed_by_clients)
{
	bs_mutation m = th_increment("cap", 0);
	bs_outcome a = apply_ok(store, &m);

	th_set_event(&m, a.event_id);
	apply_err(store, &m, BS_EINVAL,
	          "event_id must not start with the reserved prefix `budgetd-auto-`");
}
