/* model.h - an in-memory reference model of the store's rules (RULES.md).
 *
 * Written from RULES.md alone, without SQL, so that the randomized test can
 * compare the real store against an independent reading of the rules. It
 * speaks the public types of bs_store.h but calls nothing of the store.
 */
#ifndef TEST_STORE_MODEL_H
#define TEST_STORE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bs_store.h"

typedef struct model model;

model *model_new(void);
void model_free(model *m);

/* Applies one mutation at time `now`, like bs_store_apply. */
int model_apply(model *m, const bs_mutation *mut, int64_t now, bs_outcome *out, bs_error *err);

/* The last sequence value taken (0 when none). */
uint64_t model_commit_index(const model *m);

/* Lookups. The bs_str fields point into the model and stay valid until the
 * next model_apply. */
bool model_get_usage(const model *m, bs_str cap, uint32_t grant, bs_usage *out);
bool model_get_hold(const model *m, bs_str hold_id, bs_hold *out);

/* Usage rows in list order: newest updated_at first, then capability
 * (bytewise), then grant. Returns how many rows exist; copies up to max. */
size_t model_list_usages(const model *m, bs_usage *out, size_t max);

/* Holds in creation order. */
size_t model_hold_count(const model *m);
void model_hold_at(const model *m, size_t i, bs_hold *out);

/* Recorded events in event_seq order. */
size_t model_event_count(const model *m);
void model_event_at(const model *m, size_t i, bs_event *out);

#endif
