/* test_stats.c - bs_store_stats: commit index, open holds, bytes on disk. */
#include "helpers.h"

static bs_stats stats_of(bs_store *s)
{
	bs_stats st;
	bs_error err;

	cr_assert_eq(bs_store_stats(s, &st, &err), BS_OK, "%s", err.message);
	return st;
}

static void apply(bs_store *s, bs_mutation m)
{
	(void)apply_ok(s, &m);
}

Test(stats, open_holds_follow_the_hold_lifecycle)
{
	bs_store *s = th_open_memory();

	apply(s, th_authorize("c", 0, 10, "h1"));
	apply(s, th_authorize("c", 0, 10, "h2"));
	apply(s, th_authorize("c", 0, 10, "h3"));
	cr_assert_eq(stats_of(s).open_holds, 3);
	apply(s, th_release("c", 0, 4, "h1"));
	cr_assert_eq(stats_of(s).open_holds, 3, "a partial release keeps the hold open");
	apply(s, th_release("c", 0, 6, "h1"));
	apply(s, th_reverse("c", 0, 10, "h2"));
	apply(s, th_reconcile("c", 0, 10, 3, "h3"));
	bs_stats st = stats_of(s);
	cr_assert_eq(st.open_holds, 0);
	cr_assert_eq(st.commit_index, 7);
	cr_assert_eq(st.db_bytes, 0, "an in-memory store has nothing on disk");
	bs_store_close(s);
}

Test(stats, open_holds_survive_a_restart_before_and_after_materialization)
{
	char *dir = th_mkdtemp(), path[512];
	th_path(path, sizeof(path), dir, "s.db");
	bs_store *s = th_open_path(path);

	apply(s, th_authorize("c", 0, 1, "a"));
	apply(s, th_authorize("c", 0, 1, "b"));
	bs_error err;
	cr_assert_eq(bs_store_checkpoint(s, &err), BS_OK, "%s", err.message);
	apply(s, th_authorize("c", 0, 1, "c"));
	apply(s, th_reconcile("c", 0, 1, 1, "a"));
	cr_assert_gt(stats_of(s).db_bytes, 0);
	bs_store_close(s);
	s = th_open_path(path);
	cr_assert_eq(stats_of(s).open_holds, 2);
	bs_store_close(s);
	th_rmtree(dir);
	free(dir);
}
