/* test_list_holds.c - bs_store_list_holds: filters and paging. */
#include "helpers.h"

typedef struct page {
	th_hold rows[16];
	size_t n;
} page;

static int collect(void *ctx, const bs_hold *h)
{
	page *p = ctx;

	cr_assert_lt(p->n, 16);
	th_copy_hold(&p->rows[p->n++], h);
	return 0;
}

static page list(bs_store *s, const bs_hold_query *q)
{
	page p = {0};
	bs_error err;

	cr_assert_eq(bs_store_list_holds(s, q, collect, &p, &err), BS_OK, "%s", err.message);
	return p;
}

/* Six holds, one per clock tick: a..f; b and e are settled; f on "other". */
static bs_store *fixture(void)
{
	bs_store *s = th_open_memory();
	const char *ids[] = {"a", "b", "c", "d", "e"};

	for (int i = 0; i < 5; i++) {
		th_now = 1000 + i;
		bs_mutation m = th_authorize("cap", 0, 10, ids[i]);
		(void)apply_ok(s, &m);
	}
	th_now = 1005;
	bs_mutation f = th_authorize("other", 0, 10, "f");
	(void)apply_ok(s, &f);
	th_now = 1006;
	bs_mutation rb = th_reconcile("cap", 0, 10, 5, "b");
	bs_mutation re = th_release("cap", 0, 10, "e");
	(void)apply_ok(s, &rb);
	(void)apply_ok(s, &re);
	return s;
}

static void expect_ids(const page *p, const char *want)
{
	char got[64] = "";
	for (size_t i = 0; i < p->n; i++)
		strcat(got, p->rows[i].id);
	cr_assert_str_eq(got, want);
}

Test(list_holds, lists_oldest_first)
{
	bs_store *s = fixture();
	bs_hold_query q = {0};

	expect_ids((page[]){list(s, &q)}, "abcdef");
	bs_store_close(s);
}

Test(list_holds, filters_by_capability_disposition_and_age)
{
	bs_store *s = fixture();
	bs_hold_query q = {.capability_id = bs_str_from("cap")};

	expect_ids((page[]){list(s, &q)}, "abcde");
	q.has_disposition = true;
	q.disposition = BS_HOLD_OPEN;
	expect_ids((page[]){list(s, &q)}, "acd");
	q.has_older_than = true;
	q.older_than_ns = 1003; /* created before tick 1003: a, c (b is closed) */
	expect_ids((page[]){list(s, &q)}, "ac");
	bs_hold_query closed = {.has_disposition = true, .disposition = BS_HOLD_RELEASED};
	expect_ids((page[]){list(s, &closed)}, "e");
	bs_store_close(s);
}

Test(list_holds, pages_with_a_cursor_without_gaps_or_repeats)
{
	bs_store *s = fixture();
	bs_hold_query q = {.limit = 4};
	page p1 = list(s, &q);

	expect_ids(&p1, "abcd");
	q.has_after = true;
	q.after_created_ns = p1.rows[3].h.created_at_ns;
	q.after_hold_id = bs_str_from(p1.rows[3].id);
	page p2 = list(s, &q);
	expect_ids(&p2, "ef");
	bs_store_close(s);
}

Test(list_holds, ties_in_time_are_ordered_by_id)
{
	bs_store *s = th_open_memory();
	const char *ids[] = {"z", "m", "a"};

	th_now = 5;
	for (int i = 0; i < 3; i++) {
		bs_mutation m = th_authorize("c", 0, 1, ids[i]);
		(void)apply_ok(s, &m);
	}
	bs_hold_query q = {.limit = 2};
	page p1 = list(s, &q);
	expect_ids(&p1, "am");
	q.has_after = true;
	q.after_created_ns = 5;
	q.after_hold_id = bs_str_from("m");
	expect_ids((page[]){list(s, &q)}, "z");
	bs_store_close(s);
}

Test(list_holds, rejects_bad_queries)
{
	bs_store *s = th_open_memory();
	bs_hold_query q = {.limit = 1001};
	bs_error err;
	page p = {0};

	cr_assert_eq(bs_store_list_holds(s, &q, collect, &p, &err), BS_EINVAL);
	cr_assert_str_eq(err.message, "limit 1001 is larger than 1000");
	q = (bs_hold_query){.has_disposition = true, .disposition = 9};
	cr_assert_eq(bs_store_list_holds(s, &q, collect, &p, &err), BS_EINVAL);
	cr_assert_str_eq(err.message, "disposition 9 is not a hold disposition");
	q = (bs_hold_query){.has_after = true, .after_hold_id = bs_str_from("")};
	cr_assert_eq(bs_store_list_holds(s, &q, collect, &p, &err), BS_EINVAL);
	bs_store_close(s);
}
