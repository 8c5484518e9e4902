/* test_authorize.c - authorize_exposure and increment_invocation. */
#include "helpers.h"

#include <string.h>

TestSuite(authorize, .init = th_setup_memory, .fini = th_teardown_memory);
TestSuite(increment, .init = th_setup_memory, .fini = th_teardown_memory);

/* --- allowed ------------------------------------------------------------- */

Test(authorize, without_limits_is_allowed_and_charges_the_usage_row)
{
	bs_mutation m = th_authorize("cap", 3, 7, NULL);
	bs_outcome out = apply_ok(store, &m);

	cr_assert_eq(out.kind, BS_KIND_AUTHORIZE_EXPOSURE);
	cr_assert(out.allowed);
	cr_assert_eq(out.denial, BS_DENIAL_NONE);
	cr_assert_not(out.replayed);
	cr_assert(out.has_commit_index);
	cr_assert_eq(out.commit_index, 1);
	cr_assert_eq(out.event_seq, 1);
	cr_assert_eq(out.invocation_count_after, 1);
	cr_assert_eq(out.exposed_after, 7);
	cr_assert_eq(out.realized_after, 0);
	cr_assert_eq(out.committed_after, 7);
	cr_assert_eq(out.guarantee, BS_GUARANTEE_SINGLE_NODE_ATOMIC);
	cr_assert_str_eq(out.budget_term, "");
	expect_usage(store, "cap", 3, 1, 7, 0);
}

Test(authorize, accumulates_invocations_and_exposure)
{
	bs_mutation m = th_authorize("cap", 0, 4, NULL);
	bs_outcome out;

	apply_ok(store, &m);
	m.exposure_units = 6;
	out = apply_ok(store, &m);
	cr_assert_eq(out.invocation_count_after, 2);
	cr_assert_eq(out.exposed_after, 10);
	cr_assert_eq(out.committed_after, 10);
	expect_usage(store, "cap", 0, 2, 10, 0);
}

Test(authorize, with_hold_id_opens_the_hold)
{
	bs_mutation m = th_authorize("cap", 2, 9, "h1");
	th_hold h;

	th_now = 5000;
	apply_ok(store, &m);
	cr_assert(th_get_hold(store, "h1", &h));
	cr_assert_str_eq(h.id, "h1");
	cr_assert_str_eq(h.cap, "cap");
	cr_assert_eq(h.h.grant_index, 2);
	cr_assert_eq(h.h.authorized_units, 9);
	cr_assert_eq(h.h.remaining_units, 9);
	cr_assert(h.h.debited_invocation);
	cr_assert_eq(h.h.disposition, BS_HOLD_OPEN);
	cr_assert_not(h.h.has_authority);
	cr_assert_eq(h.h.created_at_ns, 5000);
	cr_assert_eq(h.h.updated_at_ns, 5000);
}

Test(authorize, without_hold_id_opens_no_hold)
{
	bs_mutation m = th_authorize("cap", 0, 9, NULL);
	bs_outcome out = apply_ok(store, &m);
	th_event *ev;
	size_t n = th_events(store, &ev);

	cr_assert(out.allowed);
	cr_assert_eq(n, 1);
	cr_assert_not(ev[0].has_hold);
	free(ev);
}

Test(authorize, with_authority_records_it_on_the_hold_and_echoes_the_budget_term)
{
	bs_mutation m = th_authorize("cap", 0, 9, "h1");
	bs_outcome out;
	th_hold h;

	th_set_authority(&m, "auth-1", "lease-1", 7);
	out = apply_ok(store, &m);
	cr_assert_str_eq(out.budget_term, "auth-1:7");
	cr_assert(th_get_hold(store, "h1", &h));
	cr_assert(h.h.has_authority);
	cr_assert_str_eq(h.authority_id, "auth-1");
	cr_assert_str_eq(h.lease_id, "lease-1");
	cr_assert_eq(h.h.authority.lease_epoch, 7);
}

Test(authorize, of_zero_units_is_allowed_and_opens_an_empty_hold)
{
	bs_mutation m = th_authorize("cap", 0, 0, "h0");
	bs_outcome out = apply_ok(store, &m);

	cr_assert(out.allowed);
	cr_assert_eq(out.invocation_count_after, 1);
	cr_assert_eq(out.exposed_after, 0);
	expect_usage(store, "cap", 0, 1, 0, 0);
	expect_hold(store, "h0", BS_HOLD_OPEN, 0, 0);
}

Test(authorize, zero_unit_hold_is_closed_by_a_zero_reconcile)
{
	bs_mutation a = th_authorize("cap", 0, 0, "h0");
	bs_mutation r = th_reconcile("cap", 0, 0, 0, "h0");

	apply_ok(store, &a);
	apply_ok(store, &r);
	expect_hold(store, "h0", BS_HOLD_RECONCILED, 0, 0);
	expect_usage(store, "cap", 0, 1, 0, 0);
}

/* --- limits -------------------------------------------------------------- */

Test(authorize, below_max_invocations_is_allowed_and_at_it_denied)
{
	bs_mutation m = th_authorize("cap", 0, 1, NULL);
	bs_outcome out;

	th_set_max_invocations(&m, 2);
	cr_assert(apply_ok(store, &m).allowed);
	cr_assert(apply_ok(store, &m).allowed);
	out = apply_ok(store, &m);
	cr_assert_not(out.allowed);
	cr_assert_eq(out.denial, BS_DENIAL_MAX_INVOCATIONS);
	expect_usage(store, "cap", 0, 2, 2, 0);
}

Test(authorize, max_invocations_zero_always_denies)
{
	bs_mutation m = th_authorize("cap", 0, 1, NULL);
	bs_outcome out;

	th_set_max_invocations(&m, 0);
	out = apply_ok(store, &m);
	cr_assert_not(out.allowed);
	cr_assert_eq(out.denial, BS_DENIAL_MAX_INVOCATIONS);
	expect_no_usage(store, "cap", 0);
}

Test(authorize, requested_equal_to_max_cost_per_invocation_is_allowed)
{
	bs_mutation m = th_authorize("cap", 0, 5, NULL);

	th_set_max_cost(&m, 5);
	cr_assert(apply_ok(store, &m).allowed);
}

Test(authorize, requested_above_max_cost_per_invocation_is_denied)
{
	bs_mutation m = th_authorize("cap", 0, 6, NULL);
	bs_outcome out;

	th_set_max_cost(&m, 5);
	out = apply_ok(store, &m);
	cr_assert_not(out.allowed);
	cr_assert_eq(out.denial, BS_DENIAL_MAX_COST_PER_INVOCATION);
}

Test(authorize, reaching_max_total_exactly_is_allowed_and_beyond_denied)
{
	bs_mutation m = th_authorize("cap", 0, 6, NULL);
	bs_outcome out;

	th_set_max_total(&m, 10);
	cr_assert(apply_ok(store, &m).allowed);
	m.exposure_units = 5;
	out = apply_ok(store, &m);
	cr_assert_not(out.allowed);
	cr_assert_eq(out.denial, BS_DENIAL_MAX_TOTAL_COST);
	m.exposure_units = 4;
	out = apply_ok(store, &m);
	cr_assert(out.allowed);
	cr_assert_eq(out.committed_after, 10);
	expect_usage(store, "cap", 0, 2, 10, 0);
}

Test(authorize, max_total_counts_realized_spend)
{
	bs_mutation a = th_authorize("cap", 0, 8, "h1");
	bs_mutation r = th_reconcile("cap", 0, 8, 6, "h1");
	bs_mutation b = th_authorize("cap", 0, 5, NULL);
	bs_outcome out;

	apply_ok(store, &a);
	apply_ok(store, &r);
	expect_usage(store, "cap", 0, 1, 0, 6);
	th_set_max_total(&b, 10);
	out = apply_ok(store, &b);
	cr_assert_not(out.allowed, "6 realized + 5 requested exceeds 10");
	cr_assert_eq(out.denial, BS_DENIAL_MAX_TOTAL_COST);
	b.exposure_units = 4;
	cr_assert(apply_ok(store, &b).allowed);
	expect_usage(store, "cap", 0, 2, 4, 6);
}

Test(authorize, denial_names_max_invocations_first)
{
	bs_mutation m = th_authorize("cap", 0, 50, NULL);
	bs_outcome out;

	th_set_max_invocations(&m, 0);
	th_set_max_cost(&m, 10);
	th_set_max_total(&m, 10);
	out = apply_ok(store, &m);
	cr_assert_eq(out.denial, BS_DENIAL_MAX_INVOCATIONS);
}

Test(authorize, denial_names_max_cost_per_invocation_before_max_total)
{
	bs_mutation m = th_authorize("cap", 0, 50, NULL);
	bs_outcome out;

	th_set_max_invocations(&m, 5);
	th_set_max_cost(&m, 10);
	th_set_max_total(&m, 10);
	out = apply_ok(store, &m);
	cr_assert_eq(out.denial, BS_DENIAL_MAX_COST_PER_INVOCATION);
}

Test(authorize, limits_are_per_capability_and_grant)
{
	bs_mutation m = th_authorize("cap", 0, 1, NULL);

	th_set_max_invocations(&m, 1);
	cr_assert(apply_ok(store, &m).allowed);
	cr_assert_not(apply_ok(store, &m).allowed);
	m.grant_index = 1;
	cr_assert(apply_ok(store, &m).allowed);
	m.capability_id = bs_str_from("other");
	m.grant_index = 0;
	cr_assert(apply_ok(store, &m).allowed);
}

/* --- denials ------------------------------------------------------------- */

Test(authorize, denial_is_recorded_but_creates_no_usage_row)
{
	bs_mutation m = th_authorize("cap", 0, 11, "h1");
	bs_outcome out;
	th_event *ev;
	size_t n;

	th_set_max_total(&m, 10);
	out = apply_ok(store, &m);
	cr_assert_not(out.allowed);
	cr_assert_not(out.has_commit_index);
	cr_assert_eq(out.event_seq, 1);
	cr_assert_eq(out.invocation_count_after, 0);
	cr_assert_eq(out.exposed_after, 0);
	cr_assert_eq(out.realized_after, 0);
	cr_assert_eq(out.committed_after, 0);
	cr_assert_str_eq(out.event_id, "budgetd-auto-1");
	expect_no_usage(store, "cap", 0);
	cr_assert_eq(th_commit_index(store), 1);
	n = th_events(store, &ev);
	cr_assert_eq(n, 1);
	cr_assert(ev[0].e.has_allowed);
	cr_assert_not(ev[0].e.allowed);
	cr_assert_eq(ev[0].e.denial, BS_DENIAL_MAX_TOTAL_COST);
	cr_assert_not(ev[0].e.has_usage_seq);
	free(ev);
}

Test(authorize, denial_opens_no_hold_and_the_hold_id_stays_usable)
{
	bs_mutation m = th_authorize("cap", 0, 11, "h1");
	th_hold h;

	th_set_max_total(&m, 10);
	cr_assert_not(apply_ok(store, &m).allowed);
	cr_assert_not(th_get_hold(store, "h1", &h));
	m.exposure_units = 10;
	cr_assert(apply_ok(store, &m).allowed);
	expect_hold(store, "h1", BS_HOLD_OPEN, 10, 10);
}

Test(authorize, denial_reports_current_values_and_leaves_the_row_untouched)
{
	bs_mutation a = th_authorize("cap", 0, 6, NULL);
	bs_mutation d = th_authorize("cap", 0, 6, NULL);
	th_usage before, after;
	bs_outcome out;

	th_now = 100;
	apply_ok(store, &a);
	cr_assert(th_get_usage(store, "cap", 0, &before));
	th_now = 200;
	th_set_max_total(&d, 10);
	out = apply_ok(store, &d);
	cr_assert_not(out.allowed);
	cr_assert_eq(out.invocation_count_after, 1);
	cr_assert_eq(out.exposed_after, 6);
	cr_assert_eq(out.committed_after, 6);
	cr_assert(th_get_usage(store, "cap", 0, &after));
	cr_assert_eq(after.u.seq, before.u.seq);
	cr_assert_eq(after.u.updated_at_ns, 100);
	cr_assert_eq(after.u.invocation_count, 1);
	cr_assert_eq(after.u.total_cost_exposed, 6);
}

Test(authorize, denied_with_an_existing_hold_id_is_a_denial_not_a_conflict)
{
	bs_mutation a = th_authorize("cap", 0, 5, "h1");
	bs_mutation d = th_authorize("cap", 0, 50, "h1");
	bs_outcome out;

	apply_ok(store, &a);
	th_set_max_cost(&d, 10);
	out = apply_ok(store, &d);
	cr_assert_not(out.allowed);
	cr_assert_eq(out.denial, BS_DENIAL_MAX_COST_PER_INVOCATION);
	expect_hold(store, "h1", BS_HOLD_OPEN, 5, 5);
}

/* --- hold already exists ------------------------------------------------- */

Test(authorize, with_an_existing_open_hold_id_is_a_conflict)
{
	bs_mutation m = th_authorize("cap", 0, 5, "h1");

	apply_ok(store, &m);
	apply_err(store, &m, BS_ECONFLICT, "budget hold `h1` already exists");
	expect_usage(store, "cap", 0, 1, 5, 0);
}

Test(authorize, with_a_closed_hold_id_is_a_conflict)
{
	const char *holds[] = {"released", "reversed", "reconciled"};
	bs_mutation close[3];

	close[0] = th_release("cap", 0, 5, "released");
	close[1] = th_reverse("cap", 0, 5, "reversed");
	close[2] = th_reconcile("cap", 0, 5, 1, "reconciled");
	for (int i = 0; i < 3; i++) {
		bs_mutation m = th_authorize("cap", 0, 5, holds[i]);
		char msg[96];

		apply_ok(store, &m);
		apply_ok(store, &close[i]);
		snprintf(msg, sizeof(msg), "budget hold `%s` already exists", holds[i]);
		apply_err(store, &m, BS_ECONFLICT, msg);
	}
}

Test(authorize, hold_ids_are_unique_across_capabilities)
{
	bs_mutation a = th_authorize("cap-a", 0, 5, "shared");
	bs_mutation b = th_authorize("cap-b", 1, 5, "shared");

	apply_ok(store, &a);
	apply_err(store, &b, BS_ECONFLICT, "budget hold `shared` already exists");
	expect_no_usage(store, "cap-b", 1);
}

/* --- increment_invocation ------------------------------------------------ */

Test(increment, without_max_is_allowed_and_counts_one_invocation)
{
	bs_mutation m = th_increment("cap", 1);
	bs_outcome out = apply_ok(store, &m);

	cr_assert_eq(out.kind, BS_KIND_INCREMENT_INVOCATION);
	cr_assert(out.allowed);
	cr_assert(out.has_commit_index);
	cr_assert_eq(out.commit_index, out.event_seq);
	cr_assert_eq(out.invocation_count_after, 1);
	cr_assert_eq(out.exposed_after, 0);
	cr_assert_str_eq(out.budget_term, "");
	apply_ok(store, &m);
	expect_usage(store, "cap", 1, 2, 0, 0);
}

Test(increment, below_max_is_allowed_and_at_max_denied)
{
	bs_mutation m = th_increment("cap", 0);
	bs_outcome out;

	th_set_max_invocations(&m, 2);
	cr_assert(apply_ok(store, &m).allowed);
	cr_assert(apply_ok(store, &m).allowed);
	out = apply_ok(store, &m);
	cr_assert_not(out.allowed);
	cr_assert_eq(out.denial, BS_DENIAL_MAX_INVOCATIONS);
	cr_assert_not(out.has_commit_index);
	cr_assert_eq(out.invocation_count_after, 2);
	cr_assert_eq(out.event_seq, 3);
	expect_usage(store, "cap", 0, 2, 0, 0);
}

Test(increment, denial_is_recorded_and_creates_no_usage_row)
{
	bs_mutation m = th_increment("cap", 0);
	bs_outcome out;
	th_event *ev;
	size_t n;

	th_set_max_invocations(&m, 0);
	out = apply_ok(store, &m);
	cr_assert_not(out.allowed);
	cr_assert_eq(out.denial, BS_DENIAL_MAX_INVOCATIONS);
	expect_no_usage(store, "cap", 0);
	n = th_events(store, &ev);
	cr_assert_eq(n, 1);
	cr_assert_eq(ev[0].e.kind, BS_KIND_INCREMENT_INVOCATION);
	cr_assert(ev[0].e.has_allowed);
	cr_assert_not(ev[0].e.allowed);
	cr_assert_eq(ev[0].e.denial, BS_DENIAL_MAX_INVOCATIONS);
	cr_assert_not(ev[0].e.has_usage_seq);
	free(ev);
}

Test(increment, shares_the_invocation_count_with_authorize)
{
	bs_mutation a = th_authorize("cap", 0, 3, NULL);
	bs_mutation i = th_increment("cap", 0);

	th_set_max_invocations(&i, 2);
	th_set_max_invocations(&a, 2);
	apply_ok(store, &a);
	cr_assert(apply_ok(store, &i).allowed);
	cr_assert_not(apply_ok(store, &i).allowed);
	cr_assert_not(apply_ok(store, &a).allowed);
	expect_usage(store, "cap", 0, 2, 3, 0);
}
