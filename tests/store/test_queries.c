/* test_queries.c - get_usage, get_hold, list_usages, list_events, names. */
#include "helpers.h"

TestSuite(queries, .init = th_setup_memory, .fini = th_teardown_memory);

static void increment(const char *cap, uint64_t grant)
{
	bs_mutation m = th_increment(cap, grant);

	cr_assert(apply_ok(store, &m).allowed);
}

/* --- get_usage / get_hold ------------------------------------------------ */

Test(queries, get_usage_of_an_unknown_row_finds_nothing)
{
	expect_no_usage(store, "cap", 0);
	increment("cap", 0);
	expect_no_usage(store, "cap", 1);
	expect_no_usage(store, "cap2", 0);
}

Test(queries, get_usage_reports_every_field)
{
	bs_mutation a = th_authorize("cap", 7, 10, "h1");
	bs_mutation c = th_reconcile("cap", 7, 10, 4, "h1");
	bs_mutation b = th_authorize("cap", 7, 3, NULL);
	th_usage u;

	th_now = 1000;
	apply_ok(store, &a);
	th_now = 2000;
	apply_ok(store, &c);
	th_now = 3000;
	apply_ok(store, &b);
	cr_assert(th_get_usage(store, "cap", 7, &u));
	cr_assert_str_eq(u.cap, "cap");
	cr_assert_eq(u.u.grant_index, 7);
	cr_assert_eq(u.u.invocation_count, 2);
	cr_assert_eq(u.u.total_cost_exposed, 3);
	cr_assert_eq(u.u.total_cost_realized_spend, 4);
	cr_assert_eq(u.u.committed_cost, 7);
	cr_assert_eq(u.u.seq, 3);
	cr_assert_eq(u.u.updated_at_ns, 3000);
}

Test(queries, get_hold_of_an_unknown_hold_finds_nothing)
{
	th_hold h;

	cr_assert_not(th_get_hold(store, "h1", &h));
	increment("cap", 0);
	cr_assert_not(th_get_hold(store, "h1", &h));
}

/* --- list_usages --------------------------------------------------------- */

static void expect_row(const th_usage *u, const char *cap, uint32_t grant)
{
	cr_assert_str_eq(u->cap, cap);
	cr_assert_eq(u->u.grant_index, grant, "expected %s/%u, got %s/%u", cap, grant, u->cap,
	             u->u.grant_index);
}

Test(queries, list_usages_orders_newest_first_then_capability_then_grant)
{
	th_usage rows[8];
	size_t n;

	th_now = 100;
	increment("b", 1);
	th_now = 200;
	increment("a", 2);
	increment("c", 0);
	increment("a", 0);
	increment("B", 9);
	th_now = 300;
	increment("z", 5);
	n = th_list_usages(store, 0, NULL, rows, 8);
	cr_assert_eq(n, 6);
	expect_row(&rows[0], "z", 5);
	expect_row(&rows[1], "B", 9); /* bytewise: 'B' < 'a' */
	expect_row(&rows[2], "a", 0);
	expect_row(&rows[3], "a", 2);
	expect_row(&rows[4], "c", 0);
	expect_row(&rows[5], "b", 1);
	cr_assert_eq(rows[0].u.updated_at_ns, 300);
	cr_assert_eq(rows[5].u.updated_at_ns, 100);

	th_now = 400;
	increment("b", 1);
	n = th_list_usages(store, 0, NULL, rows, 8);
	cr_assert_eq(n, 6);
	expect_row(&rows[0], "b", 1);
	expect_row(&rows[1], "z", 5);
}

Test(queries, list_usages_orders_grants_numerically)
{
	th_usage rows[4];
	size_t n;

	increment("cap", 10);
	increment("cap", 9);
	increment("cap", U32MAX);
	increment("cap", 0);
	n = th_list_usages(store, 0, NULL, rows, 4);
	cr_assert_eq(n, 4);
	expect_row(&rows[0], "cap", 0);
	expect_row(&rows[1], "cap", 9);
	expect_row(&rows[2], "cap", 10);
	expect_row(&rows[3], "cap", U32MAX);
}

Test(queries, list_usages_filters_by_capability)
{
	th_usage rows[8];
	size_t n;

	increment("a", 1);
	increment("b", 0);
	increment("a", 0);
	increment("ab", 0);
	n = th_list_usages(store, 0, "a", rows, 8);
	cr_assert_eq(n, 2);
	expect_row(&rows[0], "a", 0);
	expect_row(&rows[1], "a", 1);
	n = th_list_usages(store, 0, "nothing", rows, 8);
	cr_assert_eq(n, 0);
}

Test(queries, list_usages_honours_the_limit)
{
	th_usage rows[8];

	for (uint64_t g = 0; g < 5; g++)
		increment("cap", g);
	cr_assert_eq(th_list_usages(store, 3, NULL, rows, 8), 3);
	expect_row(&rows[2], "cap", 2);
	cr_assert_eq(th_list_usages(store, 1, "cap", rows, 8), 1);
}

static void increment_many(const char *cap, size_t n, bool vary_grant)
{
	bs_batch_item *items = calloc(n, sizeof(*items));
	bs_mutation *ms = calloc(n, sizeof(*ms));

	cr_assert(items && ms);
	for (size_t i = 0; i < n; i++) {
		ms[i] = th_increment(cap, vary_grant ? i : 0);
		items[i].mutation = &ms[i];
	}
	cr_assert_eq(bs_store_apply_batch(store, items, n), BS_OK);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(items[i].result, BS_OK);
	free(items);
	free(ms);
}

Test(queries, list_usages_limit_zero_means_one_hundred)
{
	th_usage *rows = calloc(200, sizeof(*rows));

	increment_many("cap", 120, true);
	cr_assert_eq(th_list_usages(store, 0, NULL, rows, 200), BS_LIST_LIMIT_DEFAULT);
	cr_assert_eq(th_list_usages(store, 1000, NULL, rows, 200), 120);
	cr_assert_eq(th_list_usages(store, 0, "cap", rows, 200), BS_LIST_LIMIT_DEFAULT);
	free(rows);
}

static int stop_after_one(void *ctx, const bs_usage *u)
{
	(void)u;
	(*(int *)ctx)++;
	return 1;
}

Test(queries, a_visitor_can_stop_the_listing)
{
	bs_error err;
	int seen = 0;

	increment("a", 0);
	increment("b", 0);
	increment("c", 0);
	memset(&err, 0, sizeof(err));
	cr_assert_eq(bs_store_list_usages(store, 0, bs_str_from(NULL), stop_after_one, &seen, &err),
	             BS_OK);
	cr_assert_eq(seen, 1);
}

/* --- list_events --------------------------------------------------------- */

/* 25 increments: event i+1 is on capability (i odd ? "a" : "b"), grant i%3. */
static void make_25_events(void)
{
	for (int i = 0; i < 25; i++)
		increment(i % 2 ? "a" : "b", (uint64_t)i % 3);
}

Test(queries, list_events_pages_through_every_event_in_order)
{
	th_event page[10];
	uint64_t after = 0, expect = 1;
	size_t n, pages = 0;

	make_25_events();
	do {
		n = th_list_events(store, 7, NULL, false, 0, after, page, 10);
		cr_assert(n <= 7);
		for (size_t i = 0; i < n; i++) {
			cr_assert_eq(page[i].e.event_seq, expect, "expected seq %llu, got %llu",
			             (unsigned long long)expect,
			             (unsigned long long)page[i].e.event_seq);
			expect++;
		}
		if (n)
			after = page[n - 1].e.event_seq;
		pages++;
	} while (n == 7);
	cr_assert_eq(expect, 26);
	cr_assert_eq(pages, 4);
}

Test(queries, list_events_after_the_last_seq_is_empty)
{
	th_event page[4];

	make_25_events();
	cr_assert_eq(th_list_events(store, 0, NULL, false, 0, 25, page, 4), 0);
	cr_assert_eq(th_list_events(store, 0, NULL, false, 0, U64MAX, page, 4), 0);
	cr_assert_eq(th_list_events(store, 0, NULL, false, 0, 24, page, 4), 1);
	cr_assert_eq(page[0].e.event_seq, 25);
}

Test(queries, list_events_filters_by_capability)
{
	th_event page[32];
	size_t n;

	make_25_events();
	n = th_list_events(store, 0, "a", false, 0, 0, page, 32);
	cr_assert_eq(n, 12);
	for (size_t i = 0; i < n; i++) {
		cr_assert_str_eq(page[i].cap, "a");
		cr_assert_eq(page[i].e.event_seq, 2 * i + 2);
	}
}

Test(queries, list_events_filters_by_grant_across_capabilities)
{
	th_event page[32];
	size_t n;

	make_25_events();
	n = th_list_events(store, 0, NULL, true, 1, 0, page, 32);
	cr_assert_eq(n, 8);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(page[i].e.grant_index, 1);
		cr_assert_eq(page[i].e.event_seq, 3 * i + 2);
	}
}

Test(queries, list_events_filters_by_capability_and_grant)
{
	th_event page[32];
	size_t n;

	make_25_events();
	n = th_list_events(store, 0, "a", true, 1, 0, page, 32);
	cr_assert_eq(n, 4); /* i = 1, 7, 13, 19 */
	for (size_t i = 0; i < n; i++) {
		cr_assert_str_eq(page[i].cap, "a");
		cr_assert_eq(page[i].e.grant_index, 1);
		cr_assert_eq(page[i].e.event_seq, 6 * i + 2);
	}
}

Test(queries, list_events_pages_with_a_filter)
{
	th_event page[8];
	uint64_t after = 0;
	size_t n, total = 0;

	make_25_events();
	do {
		n = th_list_events(store, 5, "b", false, 0, after, page, 8);
		for (size_t i = 0; i < n; i++) {
			cr_assert_str_eq(page[i].cap, "b");
			cr_assert_eq(page[i].e.event_seq, 2 * (total + i) + 1);
		}
		total += n;
		if (n)
			after = page[n - 1].e.event_seq;
	} while (n == 5);
	cr_assert_eq(total, 13);
}

Test(queries, list_events_limit_zero_means_one_hundred)
{
	th_event *page = calloc(200, sizeof(*page));

	increment_many("cap", 130, false);
	cr_assert_eq(th_list_events(store, 0, NULL, false, 0, 0, page, 200), BS_LIST_LIMIT_DEFAULT);
	cr_assert_eq(page[99].e.event_seq, 100);
	cr_assert_eq(th_list_events(store, 1000, NULL, false, 0, 0, page, 200), 130);
	free(page);
}

Test(queries, events_record_the_request_and_its_result)
{
	bs_mutation a = th_authorize("cap", 4, 9, "h1");
	bs_mutation c = th_reconcile("cap", 4, 9, 4, "h1");
	bs_mutation d = th_authorize("cap", 4, 50, NULL);
	th_event *ev;
	const bs_event *e;
	size_t n;

	th_set_event(&a, "e1");
	th_set_max_invocations(&a, 3);
	th_set_max_cost(&a, 10);
	th_set_max_total(&a, 100);
	th_set_authority(&a, "auth", "lease", 2);
	th_set_authority(&c, "auth", "lease", 2);
	th_set_max_total(&d, 20);
	th_now = 777;
	apply_ok(store, &a);
	th_now = 888;
	apply_ok(store, &c);
	th_now = 999;
	cr_assert_not(apply_ok(store, &d).allowed);
	n = th_events(store, &ev);
	cr_assert_eq(n, 3);

	e = &ev[0].e;
	cr_assert_eq(e->event_seq, 1);
	cr_assert_str_eq(ev[0].event_id, "e1");
	cr_assert(ev[0].has_hold);
	cr_assert_str_eq(ev[0].hold_id, "h1");
	cr_assert_str_eq(ev[0].cap, "cap");
	cr_assert_eq(e->grant_index, 4);
	cr_assert_eq(e->kind, BS_KIND_AUTHORIZE_EXPOSURE);
	cr_assert(e->has_allowed);
	cr_assert(e->allowed);
	cr_assert_eq(e->denial, BS_DENIAL_NONE);
	cr_assert_eq(e->recorded_at_ns, 777);
	cr_assert(e->has_usage_seq);
	cr_assert_eq(e->usage_seq, 1);
	cr_assert_eq(e->exposure_units, 9);
	cr_assert_eq(e->realized_units, 0);
	cr_assert(e->has_max_invocations);
	cr_assert_eq(e->max_invocations, 3);
	cr_assert(e->has_max_cost_per_invocation);
	cr_assert_eq(e->max_cost_per_invocation, 10);
	cr_assert(e->has_max_total_cost_units);
	cr_assert_eq(e->max_total_cost_units, 100);
	cr_assert_eq(e->invocation_count_after, 1);
	cr_assert_eq(e->exposed_after, 9);
	cr_assert_eq(e->realized_after, 0);
	cr_assert(e->has_authority);
	cr_assert_str_eq(ev[0].authority_id, "auth");
	cr_assert_str_eq(ev[0].lease_id, "lease");
	cr_assert_eq(e->authority.lease_epoch, 2);

	e = &ev[1].e;
	cr_assert_eq(e->event_seq, 2);
	cr_assert_str_eq(ev[1].event_id, "budgetd-auto-2");
	cr_assert_str_eq(ev[1].hold_id, "h1");
	cr_assert_eq(e->kind, BS_KIND_RECONCILE_SPEND);
	cr_assert_not(e->has_allowed);
	cr_assert_eq(e->recorded_at_ns, 888);
	cr_assert(e->has_usage_seq);
	cr_assert_eq(e->usage_seq, 2);
	cr_assert_eq(e->exposure_units, 9);
	cr_assert_eq(e->realized_units, 4);
	cr_assert_not(e->has_max_invocations);
	cr_assert_not(e->has_max_cost_per_invocation);
	cr_assert_not(e->has_max_total_cost_units);
	cr_assert_eq(e->invocation_count_after, 1);
	cr_assert_eq(e->exposed_after, 0);
	cr_assert_eq(e->realized_after, 4);
	cr_assert(e->has_authority);

	e = &ev[2].e;
	cr_assert_eq(e->event_seq, 3);
	cr_assert_not(ev[2].has_hold);
	cr_assert_eq(e->kind, BS_KIND_AUTHORIZE_EXPOSURE);
	cr_assert(e->has_allowed);
	cr_assert_not(e->allowed);
	cr_assert_eq(e->denial, BS_DENIAL_MAX_TOTAL_COST);
	cr_assert_eq(e->recorded_at_ns, 999);
	cr_assert_not(e->has_usage_seq);
	cr_assert_eq(e->exposure_units, 50);
	cr_assert(e->has_max_total_cost_units);
	cr_assert_eq(e->max_total_cost_units, 20);
	cr_assert_eq(e->invocation_count_after, 1);
	cr_assert_eq(e->exposed_after, 0);
	cr_assert_eq(e->realized_after, 4);
	cr_assert_not(e->has_authority);
	free(ev);
}

Test(queries, u64_extremes_round_trip_through_the_log)
{
	bs_mutation a = th_authorize("cap", U32MAX, U64MAX, "h1");
	th_event *ev;
	th_hold h;
	size_t n;

	th_set_max_invocations(&a, U64MAX);
	th_set_max_cost(&a, U64MAX);
	th_set_max_total(&a, U64MAX);
	th_set_authority(&a, "auth", "lease", U64MAX);
	cr_assert(apply_ok(store, &a).allowed);
	n = th_events(store, &ev);
	cr_assert_eq(n, 1);
	cr_assert_eq(ev[0].e.grant_index, U32MAX);
	cr_assert_eq(ev[0].e.exposure_units, U64MAX);
	cr_assert_eq(ev[0].e.max_invocations, U64MAX);
	cr_assert_eq(ev[0].e.max_cost_per_invocation, U64MAX);
	cr_assert_eq(ev[0].e.max_total_cost_units, U64MAX);
	cr_assert_eq(ev[0].e.exposed_after, U64MAX);
	cr_assert_eq(ev[0].e.authority.lease_epoch, U64MAX);
	free(ev);
	cr_assert(th_get_hold(store, "h1", &h));
	cr_assert_eq(h.h.authorized_units, U64MAX);
	cr_assert_eq(h.h.remaining_units, U64MAX);
	cr_assert_eq(h.h.authority.lease_epoch, U64MAX);
	expect_usage(store, "cap", U32MAX, 1, U64MAX, 0);
}

Test(queries, large_clock_values_round_trip)
{
	bs_mutation a = th_authorize("cap", 0, 1, "h1");
	th_usage u;
	th_hold h;

	th_now = INT64_MAX;
	apply_ok(store, &a);
	cr_assert(th_get_usage(store, "cap", 0, &u));
	cr_assert_eq(u.u.updated_at_ns, INT64_MAX);
	cr_assert(th_get_hold(store, "h1", &h));
	cr_assert_eq(h.h.created_at_ns, INT64_MAX);
}

/* --- metadata and names -------------------------------------------------- */

Test(queries, every_outcome_carries_the_commit_metadata)
{
	bs_mutation a = th_authorize("cap", 0, 1, NULL);
	bs_mutation d = th_increment("cap", 0);
	bs_outcome out;

	out = apply_ok(store, &a);
	cr_assert_eq(out.guarantee, BS_GUARANTEE_SINGLE_NODE_ATOMIC);
	th_set_max_invocations(&d, 0);
	out = apply_ok(store, &d);
	cr_assert_eq(out.guarantee, BS_GUARANTEE_SINGLE_NODE_ATOMIC);
	cr_assert_eq(bs_store_guarantee(store), BS_GUARANTEE_SINGLE_NODE_ATOMIC);
	cr_assert_str_eq(bs_guarantee_name(BS_GUARANTEE_SINGLE_NODE_ATOMIC), "single_node_atomic");
	cr_assert_str_eq(BS_BUDGET_PROFILE, "authoritative_hold_event");
	cr_assert_str_eq(BS_METERING_PROFILE, "max_cost_preauthorize_then_reconcile_actual");
}

Test(queries, kind_disposition_and_denial_names)
{
	cr_assert_str_eq(bs_kind_name(BS_KIND_INCREMENT_INVOCATION), "increment_invocation");
	cr_assert_str_eq(bs_kind_name(BS_KIND_AUTHORIZE_EXPOSURE), "authorize_exposure");
	cr_assert_str_eq(bs_kind_name(BS_KIND_REVERSE_EXPOSURE), "reverse_exposure");
	cr_assert_str_eq(bs_kind_name(BS_KIND_RELEASE_EXPOSURE), "release_exposure");
	cr_assert_str_eq(bs_kind_name(BS_KIND_RECONCILE_SPEND), "reconcile_spend");
	cr_assert_str_eq(bs_disposition_name(BS_HOLD_OPEN), "open");
	cr_assert_str_eq(bs_disposition_name(BS_HOLD_RELEASED), "released");
	cr_assert_str_eq(bs_disposition_name(BS_HOLD_REVERSED), "reversed");
	cr_assert_str_eq(bs_disposition_name(BS_HOLD_RECONCILED), "reconciled");
	cr_assert_str_eq(bs_denial_name(BS_DENIAL_MAX_INVOCATIONS), "max_invocations");
	cr_assert_str_eq(bs_denial_name(BS_DENIAL_MAX_COST_PER_INVOCATION),
	                 "max_cost_per_invocation");
	cr_assert_str_eq(bs_denial_name(BS_DENIAL_MAX_TOTAL_COST), "max_total_cost");
}

Test(queries, error_kinds_have_distinct_names)
{
	const int codes[] = {BS_OK,        BS_EINVAL,   BS_EPRECONDITION, BS_ECONFLICT,
	                     BS_EOVERFLOW, BS_ESTORAGE, BS_EINTERNAL};
	const size_t n = sizeof(codes) / sizeof(codes[0]);

	cr_assert_str_eq(bs_err_name(BS_EINVAL), "invalid_argument");
	for (size_t i = 0; i < n; i++) {
		cr_assert_not_null(bs_err_name(codes[i]));
		cr_assert_gt(strlen(bs_err_name(codes[i])), 0);
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(bs_err_name(codes[i]), bs_err_name(codes[j]));
	}
}
