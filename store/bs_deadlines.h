/* bs_deadlines.h - the deadlines of open holds, earliest first: a binary
 * heap indexed by hold_id, so a settled or extended hold's deadline moves
 * or leaves in O(log n). Internal to the store; one per engine. */
#ifndef BS_DEADLINES_H
#define BS_DEADLINES_H

#include "bs_map.h"
#include "bs_store.h"

typedef struct bs_deadline bs_deadline;

typedef struct bs_deadlines {
	bs_map by_id;
	bs_deadline **heap; /* heap[0] is the earliest (at, hold_id) */
	size_t len, cap;
} bs_deadlines;

/* 0 or -errno. */
int bs_deadlines_init(bs_deadlines *d);
void bs_deadlines_destroy(bs_deadlines *d);
void bs_deadlines_clear(bs_deadlines *d);

/* Sets (adds or moves) the deadline of `hold_id` (copied). 0 or -ENOMEM,
 * which leaves the set as it was. */
int bs_deadlines_set(bs_deadlines *d, bs_str hold_id, int64_t at_ns);

/* Forgets the deadline of `hold_id`, if it has one. */
void bs_deadlines_remove(bs_deadlines *d, bs_str hold_id);

/* The earliest deadline; false when there is none. *hold_id is borrowed
 * until the set changes. */
bool bs_deadlines_first(const bs_deadlines *d, int64_t *at_ns, bs_str *hold_id);

#endif
