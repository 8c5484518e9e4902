/* bs_map.h - an open-addressing hash map of caller-owned nodes with byte
 * string keys, hashed with keyed SipHash so clients cannot pick colliding
 * ids. Internal to the store. */
#ifndef BS_MAP_H
#define BS_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Embed first in an entry; `key` must stay valid while the node is mapped. */
typedef struct bs_map_node {
	uint64_t hash;
	const char *key;
	size_t key_len;
} bs_map_node;

typedef struct bs_map {
	bs_map_node **slots;
	size_t cap; /* a power of two, or 0 */
	size_t len;
	uint64_t k0, k1; /* SipHash key, random per map */
} bs_map;

/* Initialises an empty map with a fresh random hash key. 0 or -errno. */
int bs_map_init(bs_map *map);

/* Frees the slot array; calls `drop` (may be NULL) on every node. */
void bs_map_destroy(bs_map *map, void (*drop)(bs_map_node *node));

uint64_t bs_map_hash(const bs_map *map, const void *key, size_t len);

/* The node with this key, or NULL. `hash` from bs_map_hash. */
bs_map_node *bs_map_get(const bs_map *map, const void *key, size_t len, uint64_t hash);

/* Adds a node whose key is not in the map yet (node->hash set by caller).
 * The map borrows the node. 0 or -ENOMEM. */
int bs_map_put(bs_map *map, bs_map_node *node);

/* Unmaps the node with this key and returns it (NULL when absent); the
 * caller owns it again. */
bs_map_node *bs_map_remove(bs_map *map, const void *key, size_t len, uint64_t hash);

/* Keeps the nodes for which keep() is true; hands the others to drop(). */
void bs_map_retain(bs_map *map, bool (*keep)(bs_map_node *node), void (*drop)(bs_map_node *node));

#endif
