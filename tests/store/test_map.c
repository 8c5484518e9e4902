/* test_map.c - the store's internal hash map and deadline heap against
 * plain arrays, under random insertions, moves and removals. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bs_deadlines.h"
#include "bs_map.h"

enum { KEYS = 4096, STEPS = 200000 };

typedef struct entry {
	bs_map_node node;
	char key[16];
} entry;

static uint64_t rng = 88172645463325252ULL;

static uint64_t next_random(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static entry *lookup(bs_map *map, const char *key)
{
	size_t len = strlen(key);

	return (entry *)bs_map_get(map, key, len, bs_map_hash(map, key, len));
}

Test(map, removal_keeps_every_other_key_reachable)
{
	static entry entries[KEYS];
	static bool present[KEYS];
	bs_map map;
	size_t len = 0;

	cr_assert_eq(bs_map_init(&map), 0);
	for (int i = 0; i < KEYS; i++) {
		(void)snprintf(entries[i].key, sizeof(entries[i].key), "k%d", i);
		size_t n = strlen(entries[i].key);
		entries[i].node =
		        (bs_map_node){bs_map_hash(&map, entries[i].key, n), entries[i].key, n};
	}
	for (int step = 0; step < STEPS; step++) {
		int i = (int)(next_random() % KEYS);
		size_t n = strlen(entries[i].key);
		if (present[i]) {
			bs_map_node *got =
			        bs_map_remove(&map, entries[i].key, n, entries[i].node.hash);
			cr_assert_eq(got, &entries[i].node, "step %d: removing %s", step,
			             entries[i].key);
			present[i] = false;
			len--;
		} else {
			cr_assert_eq(bs_map_put(&map, &entries[i].node), 0);
			present[i] = true;
			len++;
		}
		if (step % 997 == 0)
			for (int k = 0; k < KEYS; k++)
				cr_assert_eq(lookup(&map, entries[k].key) != NULL, present[k],
				             "step %d: %s", step, entries[k].key);
	}
	cr_assert_eq(map.len, len);
	cr_assert_null(bs_map_remove(&map, "absent", 6, bs_map_hash(&map, "absent", 6)));
	bs_map_destroy(&map, NULL);
}

Test(deadlines, the_first_is_always_the_earliest_remaining)
{
	static int64_t at[KEYS];
	static bool present[KEYS];
	bs_deadlines d;

	cr_assert_eq(bs_deadlines_init(&d), 0);
	for (int step = 0; step < STEPS / 4; step++) {
		int i = (int)(next_random() % KEYS);
		char key[16];
		(void)snprintf(key, sizeof(key), "h%05d", i);
		bs_str id = {key, strlen(key)};
		if (present[i] && next_random() % 2) {
			bs_deadlines_remove(&d, id);
			present[i] = false;
		} else {
			at[i] = (int64_t)(next_random() % 1000);
			cr_assert_eq(bs_deadlines_set(&d, id, at[i]), 0);
			present[i] = true;
		}
		int best = -1;
		for (int k = 0; k < KEYS; k++)
			if (present[k] && (best < 0 || at[k] < at[best]))
				best = k; /* ties: the lower index is the lower id */
		int64_t first_at;
		bs_str first;
		cr_assert_eq(bs_deadlines_first(&d, &first_at, &first), best >= 0);
		if (best < 0)
			continue;
		char want[16];
		(void)snprintf(want, sizeof(want), "h%05d", best);
		cr_assert_eq(first_at, at[best], "step %d", step);
		cr_assert(first.len == strlen(want) && memcmp(first.ptr, want, first.len) == 0,
		          "step %d: first is %.*s, want %s", step, (int)first.len, first.ptr, want);
	}
	bs_deadlines_destroy(&d);
}
