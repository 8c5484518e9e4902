/* bs_internal.h - shared between the store's own files; not installed.
 *
 * The store is split in three layers: validation (the request alone), rules
 * (the request against loaded state, no I/O) and a backend (loading state,
 * writing decisions, the log). A backend implements bs_backend_ops.
 */
#ifndef BS_INTERNAL_H
#define BS_INTERNAL_H

#include "bs_store.h"

#define BS_SCHEMA_VERSION 4

/* Sets err (when not NULL) and returns `code`. */
int bs_errorf(bs_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Validates one id-shaped field. `required` false: an absent value is ok. */
int bs_validate_id(const char *field, bs_str value, bool required, bs_error *err);

/* grant_index must fit in u32. */
int bs_validate_grant(uint64_t grant_index, bs_error *err);

/* Everything decidable from the request alone (RULES.md "Validation"). */
int bs_validate_mutation(const bs_mutation *m, bs_error *err);

/* 0 means the default page size; more than the maximum is invalid. */
int bs_validate_limit(uint32_t limit, uint32_t *effective, bs_error *err);

/* The usage row a decision starts from; exists == false means no row. */
typedef struct bs_usage_state {
	bool exists;
	uint32_t invocation_count;
	uint64_t exposed;
	uint64_t realized;
	uint64_t seq;
} bs_usage_state;

/* A decision: what the event records. The hold's change follows from the
 * recorded event (bs_rules_hold_after_event), so replay and live decisions
 * move holds through the same code. */
typedef struct bs_decision {
	bool allowed;
	bs_denial denial;
	bs_usage_state usage_after; /* equal to the input when nothing applies */
	int64_t expires_at_ns;      /* authorize, extend: the hold's deadline */
	bs_expiry on_expiry;        /* authorize with a ttl, extend, expire */
} bs_decision;

/* Decides `m` (already validated and not a replay) against the loaded usage
 * row and hold (`hold` NULL when the mutation names none or it does not
 * exist; hold_found tells which) at time `now`. Pure: no I/O, nothing kept. */
int bs_rules_decide(const bs_mutation *m, const bs_usage_state *usage, bool hold_found,
                    const bs_hold *hold, int64_t now, bs_decision *d, bs_error *err);

/* The expire_exposure mutation that settles open hold `h` (of usage `u`) by
 * its policy. `m` borrows h's strings. */
void bs_rules_expiry(const bs_hold *h, const bs_usage_state *u, bs_mutation *m);

/* The hold's remaining units and disposition after a recorded settlement
 * event (release, reverse, reconcile) of that hold. */
int bs_rules_hold_after_event(const bs_hold *h, const bs_event *ev, uint64_t *remaining,
                              bs_disposition *next, bs_error *err);

/* Idempotency: true when the recorded event was made by this very request. */
bool bs_event_matches(const bs_event *ev, const bs_mutation *m);

/* Fills an outcome from a recorded event (replay and fresh decisions alike). */
void bs_outcome_from_event(const bs_event *ev, bs_outcome *out);

/* Writes "budgetd-auto-<seq>" into buf. */
void bs_generated_event_id(uint64_t seq, char *buf, size_t size);

bool bs_str_eq(bs_str a, bs_str b);

/* A backend. Validation has run before apply_batch: items whose result is
 * already an error are skipped. All functions follow the public API. */
typedef struct bs_backend_ops {
	int (*apply_batch)(void *impl, bs_batch_item *items, size_t n, uint32_t expire_max,
	                   uint32_t *expired);
	int (*get_usage)(void *impl, bs_str cap, uint32_t grant, bs_usage_cb cb, void *ctx,
	                 bool *found, bs_error *err);
	int (*list_usages)(void *impl, uint32_t limit, bs_str cap, bs_usage_cb cb, void *ctx,
	                   bs_error *err);
	int (*list_events)(void *impl, uint32_t limit, bs_str cap, bool has_grant, uint32_t grant,
	                   uint64_t after_seq, bs_event_cb cb, void *ctx, bs_error *err);
	int (*get_hold)(void *impl, bs_str hold_id, bs_hold_cb cb, void *ctx, bool *found,
	                bs_error *err);
	int (*list_holds)(void *impl, const bs_hold_query *q, bs_hold_cb cb, void *ctx,
	                  bs_error *err);
	int (*expire_due)(void *impl, uint32_t max, uint32_t *expired, bs_error *err);
	int (*next_deadline)(void *impl, int64_t *out_ns, bs_error *err);
	int64_t (*now)(const void *impl);
	int (*commit_index)(void *impl, uint64_t *out, bs_error *err);
	int (*checkpoint)(void *impl, bs_error *err);
	int (*stats)(void *impl, bs_stats *out, bs_error *err);
	void (*close)(void *impl);
	bs_guarantee guarantee;
} bs_backend_ops;

/* The SQLite backend (bs_engine.c). On success *impl is owned by the
 * caller and released with ops->close. */
int bs_engine_open(const char *path, const bs_options *opts, const bs_backend_ops **ops,
                   void **impl, bs_error *err);

#endif
