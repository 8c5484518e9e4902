/* test_authority.c - the authority rule between a hold and a request. */
#include "helpers.h"

TestSuite(authority, .init = th_setup_memory, .fini = th_teardown_memory);

static const bs_kind settle_kinds[] = {BS_KIND_RELEASE_EXPOSURE, BS_KIND_REVERSE_EXPOSURE,
                                       BS_KIND_RECONCILE_SPEND};

/* A request settling all of hold `hold` (10 units) with kind `kind`. */
static bs_mutation settle_all(bs_kind kind, const char *hold)
{
	switch (kind) {
	case BS_KIND_RELEASE_EXPOSURE:
		return th_release("cap", 0, 10, hold);
	case BS_KIND_REVERSE_EXPOSURE:
		return th_reverse("cap", 0, 10, hold);
	default:
		return th_reconcile("cap", 0, 10, 4, hold);
	}
}

/* Opens a 10-unit hold, with the authority (auth-1, lease-1, 5) or none. */
static void open_hold(const char *hold, bool with_authority)
{
	bs_mutation m = th_authorize("cap", 0, 10, hold);

	if (with_authority)
		th_set_authority(&m, "auth-1", "lease-1", 5);
	cr_assert(apply_ok(store, &m).allowed);
}

/* For each settling kind: open a hold, expect the request to fail with
 * `message` (NULL: "budget hold `H` <suffix>"), then succeed when sent with
 * the hold's own authority. */
static void expect_rule(bool hold_has_authority, bool req_has_authority, const char *authority_id,
                        const char *lease_id, uint64_t epoch, const char *message,
                        const char *suffix)
{
	static int next_hold;

	for (int i = 0; i < 3; i++) {
		char hold[16], msg[128];
		bs_mutation m;

		snprintf(hold, sizeof(hold), "h%d", next_hold++);
		open_hold(hold, hold_has_authority);
		m = settle_all(settle_kinds[i], hold);
		if (req_has_authority)
			th_set_authority(&m, authority_id, lease_id, epoch);
		if (message)
			snprintf(msg, sizeof(msg), "%s", message);
		else
			snprintf(msg, sizeof(msg), "budget hold `%s` %s", hold,
			         suffix ? suffix : "");
		apply_err(store, &m, BS_EPRECONDITION, msg);
		expect_hold(store, hold, BS_HOLD_OPEN, 10, 10);

		m.has_authority = false;
		memset(&m.authority, 0, sizeof(m.authority));
		if (hold_has_authority)
			th_set_authority(&m, "auth-1", "lease-1", 5);
		apply_ok(store, &m);
	}
}

Test(authority, both_absent_is_accepted)
{
	for (int i = 0; i < 3; i++) {
		char hold[16];
		bs_mutation m;

		snprintf(hold, sizeof(hold), "h%d", i);
		open_hold(hold, false);
		m = settle_all(settle_kinds[i], hold);
		cr_assert_str_eq(apply_ok(store, &m).budget_term, "");
	}
}

Test(authority, identical_authority_is_accepted_and_echoed)
{
	for (int i = 0; i < 3; i++) {
		char hold[16];
		bs_mutation m;
		bs_outcome out;

		snprintf(hold, sizeof(hold), "h%d", i);
		open_hold(hold, true);
		m = settle_all(settle_kinds[i], hold);
		th_set_authority(&m, "auth-1", "lease-1", 5);
		out = apply_ok(store, &m);
		cr_assert_str_eq(out.budget_term, "auth-1:5");
	}
}

Test(authority, request_authority_on_a_hold_created_without_it_is_rejected)
{
	expect_rule(false, true, "auth-1", "lease-1", 5, NULL,
	            "was created without authority lease metadata");
}

Test(authority, missing_request_authority_on_a_hold_with_it_is_rejected)
{
	expect_rule(true, false, NULL, NULL, 0, NULL, "requires authority lease metadata");
}

Test(authority, different_authority_id_is_rejected)
{
	expect_rule(true, true, "auth-2", "lease-1", 5,
	            "authority_id does not match the open lease", NULL);
}

Test(authority, different_lease_id_is_rejected)
{
	expect_rule(true, true, "auth-1", "lease-2", 5,
	            "lease_id does not match the open lease epoch", NULL);
}

Test(authority, lower_lease_epoch_is_rejected_as_regressed)
{
	expect_rule(true, true, "auth-1", "lease-1", 4, "authority lease epoch regressed", NULL);
	expect_rule(true, true, "auth-1", "lease-1", 0, "authority lease epoch regressed", NULL);
}

Test(authority, higher_lease_epoch_is_rejected_as_advanced)
{
	expect_rule(true, true, "auth-1", "lease-1", 6,
	            "authority lease epoch advanced beyond the open lease", NULL);
	expect_rule(true, true, "auth-1", "lease-1", U64MAX,
	            "authority lease epoch advanced beyond the open lease", NULL);
}

Test(authority, authority_id_is_compared_before_lease_id_and_epoch)
{
	expect_rule(true, true, "auth-2", "lease-2", 9,
	            "authority_id does not match the open lease", NULL);
}

Test(authority, lease_id_is_compared_before_epoch)
{
	expect_rule(true, true, "auth-1", "lease-2", 1,
	            "lease_id does not match the open lease epoch", NULL);
}

Test(authority, comparison_is_exact_bytes)
{
	expect_rule(true, true, "auth-1 ", "lease-1", 5,
	            "authority_id does not match the open lease", NULL);
	expect_rule(true, true, "AUTH-1", "lease-1", 5,
	            "authority_id does not match the open lease", NULL);
	expect_rule(true, true, "auth-1", "lease-", 5,
	            "lease_id does not match the open lease epoch", NULL);
}

Test(authority, amount_is_checked_before_authority)
{
	bs_mutation r = th_release("cap", 0, 11, "h1");
	bs_mutation v = th_reverse("cap", 0, 9, "h1");
	bs_mutation c = th_reconcile("cap", 0, 9, 0, "h1");

	open_hold("h1", true);
	apply_err(store, &r, BS_EPRECONDITION, "cannot release more than remaining exposure");
	apply_err(store, &v, BS_EPRECONDITION, "budget hold `h1` does not match reverse amount");
	apply_err(store, &c, BS_EPRECONDITION,
	          "budget hold `h1` does not match reconciled exposure");
}

Test(authority, disposition_is_checked_before_authority)
{
	bs_mutation c = th_reconcile("cap", 0, 10, 1, "h1");
	bs_mutation r = th_release("cap", 0, 0, "h1");

	open_hold("h1", true);
	th_set_authority(&c, "auth-1", "lease-1", 5);
	apply_ok(store, &c);
	apply_err(store, &r, BS_EPRECONDITION, "budget hold `h1` is no longer open");
}

Test(authority, authority_is_checked_before_the_usage_row)
{
	bs_mutation drain = th_release("cap", 0, 10, NULL);
	bs_mutation r = th_release("cap", 0, 10, "h1");

	open_hold("h1", true);
	apply_ok(store, &drain); /* exposure 0 on the row; the hold keeps 10 */
	apply_err(store, &r, BS_EPRECONDITION,
	          "budget hold `h1` requires authority lease metadata");
	th_set_authority(&r, "auth-1", "lease-1", 5);
	apply_err(store, &r, BS_EPRECONDITION, "cannot release more than charged exposure");
}

Test(authority, partial_releases_keep_checking_the_hold_authority)
{
	bs_mutation r = th_release("cap", 0, 3, "h1");

	open_hold("h1", true);
	th_set_authority(&r, "auth-1", "lease-1", 5);
	apply_ok(store, &r);
	th_set_authority(&r, "auth-1", "lease-1", 6);
	apply_err(store, &r, BS_EPRECONDITION,
	          "authority lease epoch advanced beyond the open lease");
	th_set_authority(&r, "auth-1", "lease-1", 5);
	apply_ok(store, &r);
	expect_hold(store, "h1", BS_HOLD_OPEN, 10, 4);
}

Test(authority, without_a_hold_any_authority_is_accepted_and_echoed)
{
	bs_mutation a = th_authorize("cap", 0, 10, NULL);
	bs_mutation r = th_release("cap", 0, 2, NULL);
	bs_outcome out;

	th_set_authority(&a, "auth-9", "lease-9", 9);
	out = apply_ok(store, &a);
	cr_assert_str_eq(out.budget_term, "auth-9:9");
	th_set_authority(&r, "other", "lease", 1);
	out = apply_ok(store, &r);
	cr_assert_str_eq(out.budget_term, "other:1");
	expect_usage(store, "cap", 0, 1, 8, 0);
}

Test(authority, is_recorded_in_the_event_log)
{
	bs_mutation a = th_authorize("cap", 0, 10, "h1");
	bs_mutation r = th_release("cap", 0, 10, "h1");
	th_event *ev;
	size_t n;

	th_set_authority(&a, "auth-1", "lease-1", 5);
	th_set_authority(&r, "auth-1", "lease-1", 5);
	apply_ok(store, &a);
	apply_ok(store, &r);
	n = th_events(store, &ev);
	cr_assert_eq(n, 2);
	for (size_t i = 0; i < n; i++) {
		cr_assert(ev[i].e.has_authority);
		cr_assert_str_eq(ev[i].authority_id, "auth-1");
		cr_assert_str_eq(ev[i].lease_id, "lease-1");
		cr_assert_eq(ev[i].e.authority.lease_epoch, 5);
	}
	free(ev);
}
