/* bs_map.c - see bs_map.h. Linear probing, load factor at most 1/2. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "bs_map.h"

#define MAP_CAP_MIN 64

static uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

#define SIPROUND(v0, v1, v2, v3)                                                                   \
	do {                                                                                       \
		v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32);                          \
		v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;                                             \
		v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;                                             \
		v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32);                          \
	} while (0)

/* SipHash-1-3: fast, and keyed so colliding keys cannot be precomputed. */
uint64_t bs_map_hash(const bs_map *map, const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t v0 = map->k0 ^ 0x736f6d6570736575ull, v1 = map->k1 ^ 0x646f72616e646f6dull;
	uint64_t v2 = map->k0 ^ 0x6c7967656e657261ull, v3 = map->k1 ^ 0x7465646279746573ull;
	uint64_t m, b = (uint64_t)len << 56;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&m, p + i, 8);
		v3 ^= m;
		SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)p[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

int bs_map_init(bs_map *map)
{
	memset(map, 0, sizeof(*map));
	uint64_t key[2];
	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
		return -errno;
	map->k0 = key[0];
	map->k1 = key[1];
	return 0;
}

void bs_map_destroy(bs_map *map, void (*drop)(bs_map_node *node))
{
	for (size_t i = 0; drop && i < map->cap; i++)
		if (map->slots[i])
			drop(map->slots[i]);
	free(map->slots);
	map->slots = NULL;
	map->cap = map->len = 0;
}

static size_t probe_start(const bs_map *map, uint64_t hash)
{
	return (size_t)hash & (map->cap - 1);
}

/* The slot holding the key; false when it is not mapped. */
static bool find_slot(const bs_map *map, const void *key, size_t len, uint64_t hash, size_t *slot)
{
	if (map->cap == 0)
		return false;
	for (size_t i = probe_start(map, hash);; i = (i + 1) & (map->cap - 1)) {
		const bs_map_node *n = map->slots[i];
		if (!n)
			return false;
		if (n->hash == hash && n->key_len == len && memcmp(n->key, key, len) == 0) {
			*slot = i;
			return true;
		}
	}
}

bs_map_node *bs_map_get(const bs_map *map, const void *key, size_t len, uint64_t hash)
{
	size_t i;

	return find_slot(map, key, len, hash, &i) ? map->slots[i] : NULL;
}

static void insert_slot(bs_map *map, bs_map_node *node)
{
	size_t i = probe_start(map, node->hash);

	while (map->slots[i])
		i = (i + 1) & (map->cap - 1);
	map->slots[i] = node;
}

static int resize(bs_map *map, size_t cap)
{
	bs_map_node **old = map->slots;
	size_t old_cap = map->cap;

	map->slots = calloc(cap, sizeof(*map->slots));
	if (!map->slots) {
		map->slots = old;
		return -ENOMEM;
	}
	map->cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i])
			insert_slot(map, old[i]);
	free(old);
	return 0;
}

int bs_map_put(bs_map *map, bs_map_node *node)
{
	if ((map->len + 1) * 2 > map->cap) {
		int rc = resize(map, map->cap ? map->cap * 2 : MAP_CAP_MIN);
		if (rc)
			return rc;
	}
	insert_slot(map, node);
	map->len++;
	return 0;
}

/* Backward-shift deletion: every later node of the probe run that could
 * live in the freed slot moves up, so lookups never need tombstones. */
static void unlink_slot(bs_map *map, size_t hole)
{
	const size_t mask = map->cap - 1;

	map->slots[hole] = NULL;
	for (size_t i = (hole + 1) & mask; map->slots[i]; i = (i + 1) & mask) {
		size_t home = probe_start(map, map->slots[i]->hash);
		/* The node stays unless its home lies cyclically outside (hole, i]. */
		if (((i - home) & mask) >= ((i - hole) & mask)) {
			map->slots[hole] = map->slots[i];
			map->slots[i] = NULL;
			hole = i;
		}
	}
}

bs_map_node *bs_map_remove(bs_map *map, const void *key, size_t len, uint64_t hash)
{
	size_t i;

	if (!find_slot(map, key, len, hash, &i))
		return NULL;
	bs_map_node *n = map->slots[i];
	unlink_slot(map, i);
	map->len--;
	return n;
}

void bs_map_retain(bs_map *map, bool (*keep)(bs_map_node *node), void (*drop)(bs_map_node *node))
{
	bs_map_node **old = map->slots;
	size_t old_cap = map->cap;

	/* Rebuilding in place keeps probe chains intact without tombstones. */
	map->slots = calloc(old_cap ? old_cap : 1, sizeof(*map->slots));
	if (!map->slots) {
		/* Cannot shrink without memory: keep everything, still correct. */
		map->slots = old;
		return;
	}
	map->len = 0;
	for (size_t i = 0; i < old_cap; i++) {
		if (!old[i])
			continue;
		if (keep(old[i])) {
			insert_slot(map, old[i]);
			map->len++;
		} else if (drop) {
			drop(old[i]);
		}
	}
	free(old);
}
