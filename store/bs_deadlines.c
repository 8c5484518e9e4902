/* bs_deadlines.c - see bs_deadlines.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bs_deadlines.h"

#define HEAP_CAP_MIN 64

struct bs_deadline {
	bs_map_node node; /* key: id */
	int64_t at;
	size_t pos; /* index in heap */
	size_t id_len;
	char id[];
};

int bs_deadlines_init(bs_deadlines *d)
{
	memset(d, 0, sizeof(*d));
	return bs_map_init(&d->by_id);
}

static void drop_node(bs_map_node *node)
{
	free(node); /* the node is the first member of its one allocation */
}

void bs_deadlines_destroy(bs_deadlines *d)
{
	bs_map_destroy(&d->by_id, drop_node);
	free(d->heap);
	d->heap = NULL;
	d->len = d->cap = 0;
}

/* Allocation-free, so the map and the heap can never disagree after it:
 * every entry is in both, and the heap lists them all. */
void bs_deadlines_clear(bs_deadlines *d)
{
	for (size_t i = 0; i < d->len; i++)
		free(d->heap[i]);
	if (d->by_id.cap)
		memset(d->by_id.slots, 0, d->by_id.cap * sizeof(*d->by_id.slots));
	d->by_id.len = 0;
	d->len = 0;
}

/* Strict order on (at, id): ties between equal deadlines are decided by
 * the id, so expiry order does not depend on insertion history. */
static bool earlier(const bs_deadline *a, const bs_deadline *b)
{
	if (a->at != b->at)
		return a->at < b->at;
	size_t n = a->id_len < b->id_len ? a->id_len : b->id_len;
	int c = memcmp(a->id, b->id, n);
	return c ? c < 0 : a->id_len < b->id_len;
}

static void place(bs_deadlines *d, size_t pos, bs_deadline *x)
{
	d->heap[pos] = x;
	x->pos = pos;
}

static void sift_up(bs_deadlines *d, size_t pos)
{
	bs_deadline *x = d->heap[pos];

	while (pos > 0 && earlier(x, d->heap[(pos - 1) / 2])) {
		place(d, pos, d->heap[(pos - 1) / 2]);
		pos = (pos - 1) / 2;
	}
	place(d, pos, x);
}

static void sift_down(bs_deadlines *d, size_t pos)
{
	bs_deadline *x = d->heap[pos];

	for (;;) {
		size_t child = 2 * pos + 1;
		if (child >= d->len)
			break;
		if (child + 1 < d->len && earlier(d->heap[child + 1], d->heap[child]))
			child++;
		if (!earlier(d->heap[child], x))
			break;
		place(d, pos, d->heap[child]);
		pos = child;
	}
	place(d, pos, x);
}

/* After heap[pos] changed: it moves up or down, never both. */
static void reposition(bs_deadlines *d, size_t pos)
{
	bs_deadline *x = d->heap[pos];

	sift_up(d, pos);
	sift_down(d, x->pos);
}

static int reserve(bs_deadlines *d)
{
	if (d->len < d->cap)
		return 0;
	size_t cap = d->cap ? d->cap * 2 : HEAP_CAP_MIN;
	bs_deadline **heap = realloc(d->heap, cap * sizeof(*heap));
	if (!heap)
		return -ENOMEM;
	d->heap = heap;
	d->cap = cap;
	return 0;
}

static bs_deadline *find(const bs_deadlines *d, bs_str id)
{
	return (bs_deadline *)bs_map_get(&d->by_id, id.ptr, id.len,
	                                 bs_map_hash(&d->by_id, id.ptr, id.len));
}

int bs_deadlines_set(bs_deadlines *d, bs_str hold_id, int64_t at_ns)
{
	bs_deadline *x = find(d, hold_id);

	if (x) {
		x->at = at_ns;
		reposition(d, x->pos);
		return 0;
	}
	if (reserve(d))
		return -ENOMEM;
	x = malloc(sizeof(*x) + hold_id.len);
	if (!x)
		return -ENOMEM;
	memcpy(x->id, hold_id.ptr, hold_id.len);
	x->id_len = hold_id.len;
	x->at = at_ns;
	x->node = (bs_map_node){bs_map_hash(&d->by_id, x->id, x->id_len), x->id, x->id_len};
	if (bs_map_put(&d->by_id, &x->node)) {
		free(x);
		return -ENOMEM;
	}
	d->heap[d->len] = x;
	x->pos = d->len++;
	sift_up(d, x->pos);
	return 0;
}

void bs_deadlines_remove(bs_deadlines *d, bs_str hold_id)
{
	bs_deadline *x =
	        (bs_deadline *)bs_map_remove(&d->by_id, hold_id.ptr, hold_id.len,
	                                     bs_map_hash(&d->by_id, hold_id.ptr, hold_id.len));

	if (!x)
		return;
	size_t pos = x->pos;
	bs_deadline *last = d->heap[--d->len];
	if (pos < d->len) {
		place(d, pos, last);
		reposition(d, pos);
	}
	free(x);
}

bool bs_deadlines_first(const bs_deadlines *d, int64_t *at_ns, bs_str *hold_id)
{
	if (d->len == 0)
		return false;
	*at_ns = d->heap[0]->at;
	*hold_id = (bs_str){d->heap[0]->id, d->heap[0]->id_len};
	return true;
}
