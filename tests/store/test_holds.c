/* test_holds.c - release, reverse and reconcile, with and without a hold. */
#include "helpers.h"

TestSuite(release, .init = th_setup_memory, .fini = th_teardown_memory);
TestSuite(reverse, .init = th_setup_memory, .fini = th_teardown_memory);
TestSuite(reconcile, .init = th_setup_memory, .fini = th_teardown_memory);
TestSuite(hold, .init = th_setup_memory, .fini = th_teardown_memory);

static void open_hold(const char *cap, uint64_t grant, uint64_t units, const char *hold)
{
	bs_mutation m = th_authorize(cap, grant, units, hold);

	cr_assert(apply_ok(store, &m).allowed);
}

/* --- release ------------------------------------------------------------- */

Test(release, partial_release_keeps_the_hold_open)
{
	bs_mutation r = th_release("cap", 0, 4, "h1");
	bs_outcome out;

	open_hold("cap", 0, 10, "h1");
	out = apply_ok(store, &r);
	cr_assert_eq(out.kind, BS_KIND_RELEASE_EXPOSURE);
	cr_assert(out.allowed);
	cr_assert(out.has_commit_index);
	cr_assert_eq(out.commit_index, 2);
	cr_assert_eq(out.invocation_count_after, 1);
	cr_assert_eq(out.exposed_after, 6);
	cr_assert_eq(out.committed_after, 6);
	expect_hold(store, "h1", BS_HOLD_OPEN, 10, 6);
	expect_usage(store, "cap", 0, 1, 6, 0);
}

Test(release, releasing_the_remaining_units_closes_the_hold_as_released)
{
	bs_mutation r = th_release("cap", 0, 4, "h1");

	open_hold("cap", 0, 10, "h1");
	apply_ok(store, &r);
	r.exposure_units = 6;
	apply_ok(store, &r);
	expect_hold(store, "h1", BS_HOLD_RELEASED, 10, 0);
	expect_usage(store, "cap", 0, 1, 0, 0);
}

Test(release, leaves_the_invocation_count_unchanged)
{
	bs_mutation r = th_release("cap", 0, 10, "h1");

	open_hold("cap", 0, 10, "h1");
	apply_ok(store, &r);
	expect_usage(store, "cap", 0, 1, 0, 0);
}

Test(release, more_than_remaining_is_rejected)
{
	bs_mutation r = th_release("cap", 0, 4, "h1");

	open_hold("cap", 0, 10, "h1");
	apply_ok(store, &r);
	r.exposure_units = 7;
	apply_err(store, &r, BS_EPRECONDITION, "cannot release more than remaining exposure");
	expect_hold(store, "h1", BS_HOLD_OPEN, 10, 6);
}

Test(release, of_zero_units_keeps_a_nonempty_hold_open)
{
	bs_mutation r = th_release("cap", 0, 0, "h1");

	open_hold("cap", 0, 10, "h1");
	apply_ok(store, &r);
	expect_hold(store, "h1", BS_HOLD_OPEN, 10, 10);
}

Test(release, updates_the_hold_time_but_not_its_creation_time)
{
	bs_mutation r = th_release("cap", 0, 1, "h1");
	th_hold h;

	th_now = 1000;
	open_hold("cap", 0, 10, "h1");
	th_now = 2000;
	apply_ok(store, &r);
	cr_assert(th_get_hold(store, "h1", &h));
	cr_assert_eq(h.h.created_at_ns, 1000);
	cr_assert_eq(h.h.updated_at_ns, 2000);
}

Test(release, without_hold_gives_back_exposure_of_the_row)
{
	bs_mutation a = th_authorize("cap", 0, 10, NULL);
	bs_mutation r = th_release("cap", 0, 3, NULL);
	bs_outcome out;

	apply_ok(store, &a);
	out = apply_ok(store, &r);
	cr_assert_eq(out.exposed_after, 7);
	expect_usage(store, "cap", 0, 1, 7, 0);
}

Test(release, without_hold_and_without_usage_row_is_rejected)
{
	bs_mutation r = th_release("cap", 0, 0, NULL);

	apply_err(store, &r, BS_EPRECONDITION, "missing charged budget row");
}

Test(release, without_hold_more_than_charged_exposure_is_rejected)
{
	bs_mutation a = th_authorize("cap", 0, 3, NULL);
	bs_mutation r = th_release("cap", 0, 4, NULL);

	apply_ok(store, &a);
	apply_err(store, &r, BS_EPRECONDITION, "cannot release more than charged exposure");
}

Test(release, with_hold_more_than_charged_exposure_is_rejected)
{
	bs_mutation drain = th_release("cap", 0, 8, NULL);
	bs_mutation r = th_release("cap", 0, 5, "h1");

	open_hold("cap", 0, 10, "h1");
	apply_ok(store, &drain); /* the row now has 2 exposed, the hold 10 remaining */
	apply_err(store, &r, BS_EPRECONDITION, "cannot release more than charged exposure");
}

/* --- reverse ------------------------------------------------------------- */

Test(reverse, exact_amount_undoes_the_invocation_and_exposure)
{
	bs_mutation a = th_authorize("cap", 0, 3, NULL);
	bs_mutation v = th_reverse("cap", 0, 10, "h1");
	bs_outcome out;

	apply_ok(store, &a);
	open_hold("cap", 0, 10, "h1");
	out = apply_ok(store, &v);
	cr_assert_eq(out.kind, BS_KIND_REVERSE_EXPOSURE);
	cr_assert(out.allowed);
	cr_assert_eq(out.invocation_count_after, 1);
	cr_assert_eq(out.exposed_after, 3);
	expect_hold(store, "h1", BS_HOLD_REVERSED, 10, 0);
	expect_usage(store, "cap", 0, 1, 3, 0);
}

Test(reverse, with_a_different_amount_is_rejected)
{
	bs_mutation v = th_reverse("cap", 0, 9, "h1");

	open_hold("cap", 0, 10, "h1");
	apply_err(store, &v, BS_EPRECONDITION, "budget hold `h1` does not match reverse amount");
	v.exposure_units = 11;
	apply_err(store, &v, BS_EPRECONDITION, "budget hold `h1` does not match reverse amount");
	expect_hold(store, "h1", BS_HOLD_OPEN, 10, 10);
}

Test(reverse, after_partial_release_must_match_the_remaining_amount)
{
	bs_mutation r = th_release("cap", 0, 4, "h1");
	bs_mutation v = th_reverse("cap", 0, 10, "h1");

	open_hold("cap", 0, 10, "h1");
	apply_ok(store, &r);
	apply_err(store, &v, BS_EPRECONDITION, "budget hold `h1` does not match reverse amount");
	v.exposure_units = 6;
	apply_ok(store, &v);
	expect_hold(store, "h1", BS_HOLD_REVERSED, 10, 0);
	expect_usage(store, "cap", 0, 0, 0, 0);
}

Test(reverse, zero_unit_hold_can_be_reversed)
{
	bs_mutation v = th_reverse("cap", 0, 0, "h0");

	open_hold("cap", 0, 0, "h0");
	apply_ok(store, &v);
	expect_hold(store, "h0", BS_HOLD_REVERSED, 0, 0);
	expect_usage(store, "cap", 0, 0, 0, 0);
}

Test(reverse, without_hold_undoes_one_invocation)
{
	bs_mutation a = th_authorize("cap", 0, 5, NULL);
	bs_mutation v = th_reverse("cap", 0, 5, NULL);

	apply_ok(store, &a);
	apply_ok(store, &v);
	expect_usage(store, "cap", 0, 0, 0, 0);
}

Test(reverse, of_zero_units_without_hold_settles_an_invocation_only_row)
{
	bs_mutation i = th_increment("cap", 0);
	bs_mutation v = th_reverse("cap", 0, 0, NULL);

	apply_ok(store, &i);
	apply_ok(store, &v);
	expect_usage(store, "cap", 0, 0, 0, 0);
}

Test(reverse, without_usage_row_is_rejected)
{
	bs_mutation v = th_reverse("cap", 0, 0, NULL);

	apply_err(store, &v, BS_EPRECONDITION, "missing charged budget row");
}

Test(reverse, without_invocation_is_rejected)
{
	bs_mutation a = th_authorize("cap", 0, 0, NULL);
	bs_mutation v = th_reverse("cap", 0, 0, NULL);

	apply_ok(store, &a);
	apply_ok(store, &v);
	expect_usage(store, "cap", 0, 0, 0, 0);
	apply_err(store, &v, BS_EPRECONDITION, "no invocation to reverse");
}

Test(reverse, with_hold_but_no_invocation_left_is_rejected)
{
	bs_mutation drain = th_reverse("cap", 0, 0, NULL);
	bs_mutation v = th_reverse("cap", 0, 10, "h1");

	open_hold("cap", 0, 10, "h1");
	apply_ok(store, &drain); /* count 0, the hold is still open */
	apply_err(store, &v, BS_EPRECONDITION, "no invocation to reverse");
}

Test(reverse, more_than_charged_exposure_is_rejected)
{
	bs_mutation a = th_authorize("cap", 0, 3, NULL);
	bs_mutation v = th_reverse("cap", 0, 4, NULL);
	bs_mutation drain = th_release("cap", 0, 5, NULL);
	bs_mutation vh = th_reverse("cap", 1, 10, "h1");

	apply_ok(store, &a);
	apply_err(store, &v, BS_EPRECONDITION, "cannot reverse more than charged exposure");
	open_hold("cap", 1, 10, "h1");
	drain.grant_index = 1;
	apply_ok(store, &drain);
	apply_err(store, &vh, BS_EPRECONDITION, "cannot reverse more than charged exposure");
}

/* --- reconcile ----------------------------------------------------------- */

Test(reconcile, settles_exposure_to_realized_spend)
{
	bs_mutation c = th_reconcile("cap", 0, 10, 7, "h1");
	bs_outcome out;

	open_hold("cap", 0, 10, "h1");
	out = apply_ok(store, &c);
	cr_assert_eq(out.kind, BS_KIND_RECONCILE_SPEND);
	cr_assert(out.allowed);
	cr_assert_eq(out.invocation_count_after, 1);
	cr_assert_eq(out.exposed_after, 0);
	cr_assert_eq(out.realized_after, 7);
	cr_assert_eq(out.committed_after, 7);
	expect_hold(store, "h1", BS_HOLD_RECONCILED, 10, 0);
	expect_usage(store, "cap", 0, 1, 0, 7);
}

Test(reconcile, realizing_exactly_the_exposure_is_allowed)
{
	bs_mutation c = th_reconcile("cap", 0, 10, 10, "h1");

	open_hold("cap", 0, 10, "h1");
	apply_ok(store, &c);
	expect_usage(store, "cap", 0, 1, 0, 10);
}

Test(reconcile, partial_release_then_exact_reconcile)
{
	bs_mutation r = th_release("cap", 0, 4, "h1");
	bs_mutation c = th_reconcile("cap", 0, 6, 5, "h1");

	open_hold("cap", 0, 10, "h1");
	apply_ok(store, &r);
	apply_ok(store, &c);
	expect_hold(store, "h1", BS_HOLD_RECONCILED, 10, 0);
	expect_usage(store, "cap", 0, 1, 0, 5);
}

Test(reconcile, with_exposure_other_than_remaining_is_rejected)
{
	bs_mutation r = th_release("cap", 0, 4, "h1");
	bs_mutation c = th_reconcile("cap", 0, 10, 5, "h1");

	open_hold("cap", 0, 10, "h1");
	apply_ok(store, &r);
	apply_err(store, &c, BS_EPRECONDITION,
	          "budget hold `h1` does not match reconciled exposure");
	c.exposure_units = 5;
	apply_err(store, &c, BS_EPRECONDITION,
	          "budget hold `h1` does not match reconciled exposure");
	expect_hold(store, "h1", BS_HOLD_OPEN, 10, 6);
}

Test(reconcile, without_hold_settles_the_row)
{
	bs_mutation a = th_authorize("cap", 0, 10, NULL);
	bs_mutation c = th_reconcile("cap", 0, 10, 3, NULL);

	apply_ok(store, &a);
	apply_ok(store, &c);
	expect_usage(store, "cap", 0, 1, 0, 3);
}

Test(reconcile, of_zero_units_without_hold_settles_an_invocation_only_row)
{
	bs_mutation i = th_increment("cap", 0);
	bs_mutation c = th_reconcile("cap", 0, 0, 0, NULL);
	bs_outcome out;

	apply_ok(store, &i);
	out = apply_ok(store, &c);
	cr_assert(out.has_commit_index);
	cr_assert_eq(out.commit_index, 2);
	expect_usage(store, "cap", 0, 1, 0, 0);
}

Test(reconcile, without_usage_row_is_rejected)
{
	bs_mutation c = th_reconcile("cap", 0, 0, 0, NULL);

	apply_err(store, &c, BS_EPRECONDITION, "missing charged budget row");
}

Test(reconcile, without_invocation_is_rejected)
{
	bs_mutation a = th_authorize("cap", 0, 4, NULL);
	bs_mutation v = th_reverse("cap", 0, 0, NULL);
	bs_mutation c = th_reconcile("cap", 0, 4, 4, NULL);
	bs_mutation ch = th_reconcile("cap", 1, 10, 1, "h1");
	bs_mutation drain = th_reverse("cap", 1, 0, NULL);

	apply_ok(store, &a);
	apply_ok(store, &v); /* count 0, exposed 4 */
	apply_err(store, &c, BS_EPRECONDITION, "no invocation to reconcile");
	open_hold("cap", 1, 10, "h1");
	apply_ok(store, &drain);
	apply_err(store, &ch, BS_EPRECONDITION, "no invocation to reconcile");
}

Test(reconcile, more_than_charged_exposure_is_rejected)
{
	bs_mutation a = th_authorize("cap", 0, 4, NULL);
	bs_mutation c = th_reconcile("cap", 0, 5, 0, NULL);
	bs_mutation drain = th_release("cap", 1, 5, NULL);
	bs_mutation ch = th_reconcile("cap", 1, 10, 1, "h1");

	apply_ok(store, &a);
	apply_err(store, &c, BS_EPRECONDITION, "cannot reconcile more than charged exposure");
	open_hold("cap", 1, 10, "h1");
	apply_ok(store, &drain);
	apply_err(store, &ch, BS_EPRECONDITION, "cannot reconcile more than charged exposure");
}

/* --- hold checks common to release, reverse and reconcile ----------------- */

static bs_mutation settle(bs_kind kind, const char *cap, uint64_t grant, uint64_t units,
                          const char *hold)
{
	switch (kind) {
	case BS_KIND_RELEASE_EXPOSURE:
		return th_release(cap, grant, units, hold);
	case BS_KIND_REVERSE_EXPOSURE:
		return th_reverse(cap, grant, units, hold);
	default:
		return th_reconcile(cap, grant, units, 0, hold);
	}
}

static const bs_kind settle_kinds[] = {BS_KIND_RELEASE_EXPOSURE, BS_KIND_REVERSE_EXPOSURE,
                                       BS_KIND_RECONCILE_SPEND};

Test(hold, missing_hold_is_rejected_for_every_operation)
{
	open_hold("cap", 0, 5, NULL);
	for (int i = 0; i < 3; i++) {
		bs_mutation m = settle(settle_kinds[i], "cap", 0, 0, "nope");

		apply_err(store, &m, BS_EPRECONDITION, "missing budget hold `nope`");
	}
}

Test(hold, used_with_another_grant_is_rejected)
{
	open_hold("cap", 0, 5, "h1");
	open_hold("cap", 1, 5, NULL);
	for (int i = 0; i < 3; i++) {
		bs_mutation m = settle(settle_kinds[i], "cap", 1, 5, "h1");

		apply_err(store, &m, BS_EPRECONDITION,
		          "budget hold `h1` does not match capability/grant");
	}
	expect_hold(store, "h1", BS_HOLD_OPEN, 5, 5);
}

Test(hold, used_with_another_capability_is_rejected)
{
	open_hold("cap", 0, 5, "h1");
	open_hold("other", 0, 5, NULL);
	for (int i = 0; i < 3; i++) {
		bs_mutation m = settle(settle_kinds[i], "other", 0, 5, "h1");

		apply_err(store, &m, BS_EPRECONDITION,
		          "budget hold `h1` does not match capability/grant");
	}
}

static void expect_every_operation_rejected_on_closed(const char *hold)
{
	char msg[96];

	snprintf(msg, sizeof(msg), "budget hold `%s` is no longer open", hold);
	for (int i = 0; i < 3; i++) {
		bs_mutation zero = settle(settle_kinds[i], "cap", 0, 0, hold);
		bs_mutation full = settle(settle_kinds[i], "cap", 0, 10, hold);

		apply_err(store, &zero, BS_EPRECONDITION, msg);
		apply_err(store, &full, BS_EPRECONDITION, msg);
	}
	snprintf(msg, sizeof(msg), "budget hold `%s` already exists", hold);
	{
		bs_mutation a = th_authorize("cap", 0, 10, hold);

		apply_err(store, &a, BS_ECONFLICT, msg);
	}
}

Test(hold, every_operation_on_a_released_hold_is_rejected)
{
	bs_mutation r = th_release("cap", 0, 10, "h1");

	open_hold("cap", 0, 10, "h1");
	open_hold("cap", 0, 10, NULL); /* leave exposure and invocations on the row */
	apply_ok(store, &r);
	expect_hold(store, "h1", BS_HOLD_RELEASED, 10, 0);
	expect_every_operation_rejected_on_closed("h1");
}

Test(hold, every_operation_on_a_reversed_hold_is_rejected)
{
	bs_mutation v = th_reverse("cap", 0, 10, "h1");

	open_hold("cap", 0, 10, "h1");
	open_hold("cap", 0, 10, NULL);
	apply_ok(store, &v);
	expect_hold(store, "h1", BS_HOLD_REVERSED, 10, 0);
	expect_every_operation_rejected_on_closed("h1");
}

Test(hold, every_operation_on_a_reconciled_hold_is_rejected)
{
	bs_mutation c = th_reconcile("cap", 0, 10, 2, "h1");

	open_hold("cap", 0, 10, "h1");
	open_hold("cap", 0, 10, NULL);
	apply_ok(store, &c);
	expect_hold(store, "h1", BS_HOLD_RECONCILED, 10, 0);
	expect_every_operation_rejected_on_closed("h1");
}

Test(hold, capability_grant_mismatch_is_checked_before_disposition)
{
	bs_mutation c = th_reconcile("cap", 0, 5, 0, "h1");
	bs_mutation m = th_release("cap", 1, 0, "h1");

	open_hold("cap", 0, 5, "h1");
	open_hold("cap", 1, 5, NULL);
	apply_ok(store, &c);
	apply_err(store, &m, BS_EPRECONDITION, "budget hold `h1` does not match capability/grant");
}

Test(hold, disposition_is_checked_before_the_amount)
{
	bs_mutation c = th_reconcile("cap", 0, 5, 0, "h1");
	bs_mutation m = th_release("cap", 0, 99, "h1");

	open_hold("cap", 0, 5, "h1");
	apply_ok(store, &c);
	apply_err(store, &m, BS_EPRECONDITION, "budget hold `h1` is no longer open");
}

Test(hold, hold_checks_come_before_usage_row_checks)
{
	bs_mutation drain = th_release("cap", 0, 10, NULL);
	bs_mutation r = th_release("cap", 0, 11, "h1");

	open_hold("cap", 0, 10, "h1");
	apply_ok(store, &drain); /* the row has 0 exposed */
	apply_err(store, &r, BS_EPRECONDITION, "cannot release more than remaining exposure");
}

Test(hold, lifecycle_allows_no_move_out_of_a_final_state)
{
	bs_mutation r = th_release("cap", 0, 3, "h1");
	bs_mutation c = th_reconcile("cap", 0, 7, 7, "h1");

	open_hold("cap", 0, 10, "h1");
	apply_ok(store, &r);
	expect_hold(store, "h1", BS_HOLD_OPEN, 10, 7);
	apply_ok(store, &c);
	expect_hold(store, "h1", BS_HOLD_RECONCILED, 10, 0);
	r.exposure_units = 0;
	apply_err(store, &r, BS_EPRECONDITION, "budget hold `h1` is no longer open");
	expect_usage(store, "cap", 0, 1, 0, 7);
}
