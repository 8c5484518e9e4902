/* test_dryrun.c - a dry-run authorize decides against the current state and
 * records nothing. */
#include "helpers.h"

static bs_outcome dry(bs_store *s, bs_mutation m)
{
	m.dry_run = true;
	return apply_ok(s, &m);
}

Test(dry_run, answers_as_if_authorized_and_records_nothing)
{
	bs_store *s = th_open_memory();
	bs_mutation m = th_authorize("c", 0, 40, "h");
	th_set_max_total(&m, 100);
	th_set_event(&m, "e1");

	bs_outcome o = dry(s, m);
	cr_assert(o.allowed);
	cr_assert(o.dry_run);
	cr_assert_not(o.has_commit_index);
	cr_assert_eq(o.committed_after, 40);
	cr_assert_eq(o.invocation_count_after, 1);
	cr_assert_eq(th_commit_index(s), 0, "a dry run took a sequence value");
	th_usage u;
	cr_assert_not(th_get_usage(s, "c", 0, &u), "a dry run created a usage row");
	th_hold h;
	cr_assert_not(th_get_hold(s, "h", &h), "a dry run opened a hold");
	/* The event id was not recorded: the real call is not a replay. */
	bs_outcome real = apply_ok(s, &m);
	cr_assert_not(real.replayed);
	cr_assert_eq(real.commit_index, 1);
	bs_store_close(s);
}

Test(dry_run, reports_the_denial_a_real_call_would_get)
{
	bs_store *s = th_open_memory();
	bs_mutation m = th_authorize("c", 0, 80, NULL);
	th_set_max_total(&m, 100);

	(void)apply_ok(s, &m);
	bs_outcome o = dry(s, m);
	cr_assert_not(o.allowed);
	cr_assert_eq(o.denial, BS_DENIAL_MAX_TOTAL_COST);
	cr_assert_eq(o.committed_after, 80);
	cr_assert_eq(th_commit_index(s), 1, "a denied dry run recorded an event");
	bs_store_close(s);
}

Test(dry_run, sees_the_earlier_mutations_of_its_batch)
{
	bs_store *s = th_open_memory();
	bs_mutation first = th_authorize("c", 0, 60, NULL), probe = first;
	th_set_max_total(&first, 100);
	th_set_max_total(&probe, 100);
	probe.dry_run = true;
	bs_batch_item items[2] = {{.mutation = &first}, {.mutation = &probe}};

	cr_assert_eq(bs_store_apply_batch(s, items, 2), BS_OK);
	cr_assert_eq(items[1].result, BS_OK);
	cr_assert_not(items[1].outcome.allowed, "60 + 60 > 100 once the first one counts");
	bs_store_close(s);
}

Test(dry_run, applies_to_authorize_only)
{
	bs_store *s = th_open_memory();
	bs_mutation m = th_release("c", 0, 1, NULL);
	m.dry_run = true;

	apply_err(s, &m, BS_EINVAL, "dry_run does not apply to release_exposure");
	bs_store_close(s);
}
