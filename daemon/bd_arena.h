/* bd_arena.h - a bump allocator for everything one call allocates; freed
 * at once when the call ends. Not thread-safe: one owner at a time. */
#ifndef BD_ARENA_H
#define BD_ARENA_H

#include <stddef.h>

#define BD_ARENA_CHUNK_BYTES 8192
#define BD_ARENA_BYTES_MAX   (32u * 1024 * 1024) /* what one call may allocate */

typedef struct bd_arena_chunk bd_arena_chunk;

typedef struct bd_arena {
	bd_arena_chunk *chunks; /* malloc'd chunks, newest first */
	char *cursor;
	size_t left;
	size_t total; /* bytes handed out, to bound a call's memory */
} bd_arena;

void bd_arena_init(bd_arena *a);

/* Frees every chunk; the arena can be reused after. */
void bd_arena_reset(bd_arena *a);

/* Zeroed, max-aligned memory owned by the arena; NULL when out of memory
 * or past BD_ARENA_BYTES_MAX for this arena. */
void *bd_arena_alloc(bd_arena *a, size_t size);

/* A NUL-terminated copy of len bytes owned by the arena, or NULL. */
char *bd_arena_strndup(bd_arena *a, const char *s, size_t len);

#endif
