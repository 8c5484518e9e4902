/* test_sequence.c - the store-wide sequence and the commit index. */
#include "helpers.h"

TestSuite(sequence, .init = th_setup_memory, .fini = th_teardown_memory);

Test(sequence, an_empty_store_has_commit_index_zero)
{
	cr_assert_eq(th_commit_index(store), 0);
}

Test(sequence, each_applied_mutation_takes_the_next_value_as_its_commit_index)
{
	bs_mutation a = th_authorize("cap", 0, 10, "h1");
	bs_mutation r = th_release("cap", 0, 4, "h1");
	bs_mutation c = th_reconcile("cap", 0, 6, 6, "h1");
	bs_mutation i = th_increment("cap", 0);
	bs_outcome out[4];
	th_usage u;
	th_event *ev;
	size_t n;

	out[0] = apply_ok(store, &a);
	out[1] = apply_ok(store, &r);
	out[2] = apply_ok(store, &c);
	out[3] = apply_ok(store, &i);
	n = th_events(store, &ev);
	cr_assert_eq(n, 4);
	for (int k = 0; k < 4; k++) {
		cr_assert(out[k].has_commit_index);
		cr_assert_eq(out[k].event_seq, (uint64_t)k + 1);
		cr_assert_eq(out[k].commit_index, (uint64_t)k + 1);
		cr_assert_eq(ev[k].e.event_seq, (uint64_t)k + 1);
		cr_assert(ev[k].e.has_usage_seq);
		cr_assert_eq(ev[k].e.usage_seq, (uint64_t)k + 1);
	}
	free(ev);
	cr_assert(th_get_usage(store, "cap", 0, &u));
	cr_assert_eq(u.u.seq, 4);
	cr_assert_eq(th_commit_index(store), 4);
}

Test(sequence, is_store_wide_across_capabilities_and_grants)
{
	bs_mutation a = th_increment("cap-a", 0);
	bs_mutation b = th_increment("cap-b", 0);
	bs_mutation a1 = th_increment("cap-a", 1);
	th_usage u;

	cr_assert_eq(apply_ok(store, &a).commit_index, 1);
	cr_assert_eq(apply_ok(store, &b).commit_index, 2);
	cr_assert_eq(apply_ok(store, &a1).commit_index, 3);
	cr_assert_eq(apply_ok(store, &a).commit_index, 4);
	cr_assert_eq(apply_ok(store, &b).commit_index, 5);
	cr_assert(th_get_usage(store, "cap-a", 0, &u));
	cr_assert_eq(u.u.seq, 4);
	cr_assert(th_get_usage(store, "cap-b", 0, &u));
	cr_assert_eq(u.u.seq, 5);
	cr_assert(th_get_usage(store, "cap-a", 1, &u));
	cr_assert_eq(u.u.seq, 3);
	cr_assert_eq(th_commit_index(store), 5);
}

Test(sequence, denied_events_consume_a_value_but_have_no_usage_seq)
{
	bs_mutation ok = th_authorize("cap", 0, 1, NULL);
	bs_mutation denied = th_authorize("cap", 0, 100, NULL);
	bs_mutation denied_other = th_increment("fresh", 0);
	bs_outcome d1, d2, next;
	th_usage u;
	th_event *ev;
	size_t n;

	apply_ok(store, &ok);
	th_set_max_cost(&denied, 10);
	d1 = apply_ok(store, &denied);
	cr_assert_not(d1.allowed);
	cr_assert_not(d1.has_commit_index);
	cr_assert_eq(d1.event_seq, 2);
	cr_assert_eq(th_commit_index(store), 2);
	th_set_max_invocations(&denied_other, 0);
	d2 = apply_ok(store, &denied_other);
	cr_assert_not(d2.allowed);
	cr_assert_eq(d2.event_seq, 3);
	expect_no_usage(store, "fresh", 0);
	next = apply_ok(store, &ok);
	cr_assert_eq(next.commit_index, 4);
	cr_assert(th_get_usage(store, "cap", 0, &u));
	cr_assert_eq(u.u.seq, 4);

	n = th_events(store, &ev);
	cr_assert_eq(n, 4);
	cr_assert_not(ev[1].e.has_usage_seq);
	cr_assert_not(ev[2].e.has_usage_seq);
	cr_assert(ev[3].e.has_usage_seq);
	cr_assert_eq(ev[3].e.usage_seq, 4);
	free(ev);
}

Test(sequence, denied_events_do_not_touch_the_usage_row_seq)
{
	bs_mutation ok = th_authorize("cap", 0, 1, NULL);
	bs_mutation denied = th_authorize("cap", 0, 1, NULL);
	th_usage u;

	apply_ok(store, &ok);
	th_set_max_invocations(&denied, 1);
	cr_assert_not(apply_ok(store, &denied).allowed);
	cr_assert(th_get_usage(store, "cap", 0, &u));
	cr_assert_eq(u.u.seq, 1);
	cr_assert_eq(th_commit_index(store), 2);
}

Test(sequence, failed_mutations_take_no_value)
{
	bs_mutation ok = th_increment("cap", 0);
	bs_mutation bad = th_release("cap", 0, 5, "missing");
	bs_mutation invalid = th_release("", 0, 5, NULL);

	cr_assert_eq(apply_ok(store, &ok).commit_index, 1);
	apply_err(store, &bad, BS_EPRECONDITION, "missing budget hold `missing`");
	apply_err(store, &invalid, BS_EINVAL, "capability_id must not be empty");
	cr_assert_eq(th_commit_index(store), 1);
	cr_assert_eq(apply_ok(store, &ok).commit_index, 2);
}

Test(sequence, replays_take_no_value)
{
	bs_mutation m = th_increment("cap", 0);
	bs_mutation other = th_increment("cap", 1);

	th_set_event(&m, "e1");
	apply_ok(store, &m);
	apply_ok(store, &m);
	apply_ok(store, &m);
	cr_assert_eq(th_commit_index(store), 1);
	cr_assert_eq(apply_ok(store, &other).commit_index, 2);
}

Test(sequence, commit_index_strictly_increases_within_a_batch)
{
	bs_mutation ms[6];
	bs_batch_item items[6];
	uint64_t last = 0;

	for (int i = 0; i < 6; i++)
		ms[i] = th_increment(i % 2 ? "cap-a" : "cap-b", (uint64_t)i % 3);
	memset(items, 0, sizeof(items));
	for (int i = 0; i < 6; i++)
		items[i].mutation = &ms[i];
	cr_assert_eq(bs_store_apply_batch(store, items, 6), BS_OK);
	for (int i = 0; i < 6; i++) {
		cr_assert_eq(items[i].result, BS_OK);
		cr_assert(items[i].outcome.has_commit_index);
		cr_assert_gt(items[i].outcome.commit_index, last);
		last = items[i].outcome.commit_index;
	}
	cr_assert_eq(last, 6);
	cr_assert_eq(th_commit_index(store), 6);
}
