/* bd_arena.c - see bd_arena.h. */
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bd_arena.h"

struct bd_arena_chunk {
	bd_arena_chunk *next;
	alignas(max_align_t) char data[];
};

void bd_arena_init(bd_arena *a)
{
	memset(a, 0, sizeof(*a));
}

void bd_arena_reset(bd_arena *a)
{
	while (a->chunks) {
		bd_arena_chunk *next = a->chunks->next;
		free(a->chunks);
		a->chunks = next;
	}
	bd_arena_init(a);
}

void *bd_arena_alloc(bd_arena *a, size_t size)
{
	const size_t align = alignof(max_align_t);

	/* Rounding up and the chunk header must not wrap; one call's memory is
	 * bounded. */
	if (size > BD_ARENA_BYTES_MAX || a->total + size > BD_ARENA_BYTES_MAX)
		return NULL;
	size = (size + align - 1) & ~(align - 1);
	if (size == 0)
		size = align;
	if (size > a->left) {
		size_t cap = size > BD_ARENA_CHUNK_BYTES ? size : BD_ARENA_CHUNK_BYTES;
		bd_arena_chunk *c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->next = a->chunks;
		a->chunks = c;
		a->cursor = c->data;
		a->left = cap;
	}
	void *p = a->cursor;
	a->cursor += size;
	a->left -= size;
	a->total += size;
	memset(p, 0, size);
	return p;
}

char *bd_arena_strndup(bd_arena *a, const char *s, size_t len)
{
	char *p = bd_arena_alloc(a, len + 1);

	if (p) {
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}
