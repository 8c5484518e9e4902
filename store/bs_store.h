/* bs_store.h - the budget store: every budget rule, persisted durably.
 *
 * The store knows SQL and budget rules and nothing of the network. One
 * handle owns its database file; it must only be used by one thread at a
 * time (the daemon's writer thread).
 *
 * Durability: every batch appends its events to the mutation log and is
 * committed (fsync'd) before apply returns. The derived tables (usage rows,
 * holds, the log's indexes) are written behind, in sorted bulk, and rebuilt
 * from the log after a crash, so an acknowledged decision is never lost.
 *
 * Conventions: functions return 0 (BS_OK) or a negative bs_err code; when an
 * error is returned and `err` is not NULL, `err` holds the code and a
 * human-readable message. Strings passed in are borrowed (bs_str); strings
 * handed to visitor callbacks are borrowed and valid only during the call.
 */
#ifndef BS_STORE_H
#define BS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define BS_ID_LEN_MAX          256 /* bytes of any id or authority string */
#define BS_ERROR_MESSAGE_MAX   640 /* bytes of an error message, with NUL */
#define BS_BUDGET_TERM_MAX     (BS_ID_LEN_MAX + 1 + 20 + 1)
#define BS_BATCH_MUTATIONS_MAX 1024 /* mutations in one apply_batch call */
#define BS_LIST_LIMIT_DEFAULT  100  /* rows a list returns when limit is 0 */
#define BS_LIST_LIMIT_MAX      1000 /* rows a list may return at most */
#define BS_GRANT_INDEX_MAX     UINT32_MAX
#define BS_MATERIALIZE_EVENTS  8192    /* log events between derived-table writes */
#define BS_TTL_SECONDS_MAX     2592000 /* 30 days: the longest hold deadline */
/* Event ids the store generates start with this; callers may not use it. */
#define BS_GENERATED_EVENT_ID_PREFIX "budgetd-auto-"

typedef enum bs_err {
	BS_OK = 0,
	BS_EINVAL = -1,        /* invalid argument, decidable from the request alone */
	BS_EPRECONDITION = -2, /* the request conflicts with stored state */
	BS_ECONFLICT = -3,     /* event_id reused differently, or hold already exists */
	BS_EOVERFLOW = -4,     /* a counter or sum would leave its integer range */
	BS_ESTORAGE = -5,      /* the store could not commit; nothing was applied */
	BS_EINTERNAL = -6,     /* a broken invariant or an unexpected library error */
} bs_err;

typedef struct bs_error {
	int code;                           /* a bs_err */
	char message[BS_ERROR_MESSAGE_MAX]; /* what went wrong, for a person */
} bs_error;

/* Returns a static name for a bs_err code ("invalid_argument", ...). */
const char *bs_err_name(int code);

/* A borrowed byte string. ptr == NULL means absent; a present string may be
 * empty (len == 0), which every id field rejects. */
typedef struct bs_str {
	const char *ptr;
	size_t len;
} bs_str;

/* Values are persisted in the mutation log: never renumber. */
typedef enum bs_kind {
	BS_KIND_INCREMENT_INVOCATION = 1,
	BS_KIND_AUTHORIZE_EXPOSURE = 2,
	BS_KIND_REVERSE_EXPOSURE = 3,
	BS_KIND_RELEASE_EXPOSURE = 4,
	BS_KIND_RECONCILE_SPEND = 5,
	BS_KIND_EXPIRE_EXPOSURE = 6, /* recorded by the store itself (expire_due) */
	BS_KIND_EXTEND_HOLD = 7,     /* moves an open hold's deadline */
} bs_kind;

/* Values are persisted with each hold: never renumber. */
typedef enum bs_disposition {
	BS_HOLD_OPEN = 1,
	BS_HOLD_RELEASED = 2,
	BS_HOLD_REVERSED = 3,
	BS_HOLD_RECONCILED = 4,
	BS_HOLD_EXPIRED = 5, /* settled by its deadline, by its on_expiry policy */
} bs_disposition;

/* What happens to an open hold at its deadline. Persisted: never renumber. */
typedef enum bs_expiry {
	BS_EXPIRY_NONE = 0,    /* no policy (a hold without deadline) */
	BS_EXPIRY_CAPTURE = 1, /* realize the whole remaining exposure as spend */
	BS_EXPIRY_RELEASE = 2, /* give the exposure back, keep the invocation */
	BS_EXPIRY_REVERSE = 3, /* give back the exposure and the invocation */
} bs_expiry;

/* Which limit denied an authorize or increment (the first that failed, in
 * the order max_invocations, max_cost_per_invocation, max_total_cost). */
typedef enum bs_denial {
	BS_DENIAL_NONE = 0,
	BS_DENIAL_MAX_INVOCATIONS = 1,
	BS_DENIAL_MAX_COST_PER_INVOCATION = 2,
	BS_DENIAL_MAX_TOTAL_COST = 3,
} bs_denial;

const char *bs_kind_name(bs_kind kind);            /* "authorize_exposure" */
const char *bs_disposition_name(bs_disposition d); /* "open" */
const char *bs_denial_name(bs_denial d);           /* "max_total_cost" */
const char *bs_expiry_name(bs_expiry e);           /* "capture", "" for none */

/* What the authority behind this store can promise; constant per backend. */
typedef enum bs_guarantee {
	BS_GUARANTEE_SINGLE_NODE_ATOMIC = 1,
} bs_guarantee;
#define BS_BUDGET_PROFILE   "authoritative_hold_event"
#define BS_METERING_PROFILE "max_cost_preauthorize_then_reconcile_actual"
const char *bs_guarantee_name(bs_guarantee g); /* "single_node_atomic" */

typedef struct bs_authority {
	bs_str authority_id;
	bs_str lease_id;
	uint64_t lease_epoch;
} bs_authority;

/* One mutation request. Fields that do not apply to `kind` must be left
 * zero/absent. All strings are borrowed and must outlive the apply call. */
typedef struct bs_mutation {
	bs_kind kind;
	bs_str capability_id;
	uint64_t grant_index;     /* must fit in u32 */
	bs_str hold_id;           /* optional; not for increment */
	bs_str event_id;          /* optional idempotency key */
	uint64_t exposure_units;  /* requested / released / reversed / exposed */
	uint64_t realized_units;  /* reconcile only */
	bool has_max_invocations; /* authorize and increment */
	uint64_t max_invocations;
	bool has_max_cost_per_invocation; /* authorize only */
	uint64_t max_cost_per_invocation;
	bool has_max_total_cost_units; /* authorize only */
	uint64_t max_total_cost_units;
	bool has_authority; /* optional; not for increment */
	bs_authority authority;
	bs_str caller;        /* optional: who asks (recorded, not part of idempotency) */
	bool dry_run;         /* authorize only: decide against the current state, record
	                       * nothing, take no sequence value; event_id is ignored */
	uint32_t ttl_seconds; /* authorize with a hold_id (0: no deadline) and
	                       * extend (required): deadline = now + ttl */
	bs_expiry on_expiry;  /* authorize with a ttl: the policy (NONE: capture) */
} bs_mutation;

/* The decision for one mutation, with its commit metadata. Fixed-size and
 * owned by whoever holds the struct. */
typedef struct bs_outcome {
	bs_kind kind;
	bool allowed;     /* false only for a denied authorize or increment */
	bs_denial denial; /* why, when !allowed */
	bool replayed;    /* answered from the log: the event_id was known */
	bool dry_run;     /* decided but not recorded (no commit index) */
	bool has_commit_index;
	uint64_t commit_index; /* the usage row's seq after this mutation */
	uint64_t event_seq;    /* the log position of the recorded event */
	uint32_t invocation_count_after;
	uint64_t exposed_after;
	uint64_t realized_after;
	uint64_t committed_after; /* exposed_after + realized_after */
	bs_guarantee guarantee;
	char event_id[BS_ID_LEN_MAX + 1];     /* given or generated */
	char budget_term[BS_BUDGET_TERM_MAX]; /* "<authority_id>:<epoch>" or "" */
	int64_t expires_at_ns; /* authorize and extend: the hold's deadline, 0 none */
} bs_outcome;

/* One slot of a batch: the caller fills `mutation`; apply fills the rest. */
typedef struct bs_batch_item {
	const bs_mutation *mutation; /* borrowed */
	int result;                  /* BS_OK or a bs_err */
	bs_outcome outcome;          /* valid when result == BS_OK */
	bs_error error;              /* valid when result != BS_OK */
} bs_batch_item;

typedef struct bs_usage {
	bs_str capability_id; /* borrowed, valid during the visitor call */
	uint32_t grant_index;
	uint32_t invocation_count;
	uint64_t total_cost_exposed;
	uint64_t total_cost_realized_spend;
	uint64_t committed_cost; /* exposed + realized */
	uint64_t seq;            /* commit index of the last applied change */
	int64_t updated_at_ns;   /* Unix time, nanoseconds */
} bs_usage;

typedef struct bs_hold {
	bs_str hold_id; /* borrowed, valid during the visitor call */
	bs_str capability_id;
	uint32_t grant_index;
	uint64_t authorized_units;
	uint64_t remaining_units;
	bool debited_invocation;
	bs_disposition disposition;
	bool has_authority;
	bs_authority authority;
	int64_t created_at_ns;
	int64_t updated_at_ns;
	int64_t expires_at_ns; /* the deadline of an open hold; 0: none */
	bs_expiry on_expiry;   /* what its deadline does (NONE without one) */
} bs_hold;

typedef struct bs_event {
	uint64_t event_seq;
	bs_str event_id; /* borrowed, valid during the visitor call */
	bs_str hold_id;  /* absent when the mutation named no hold */
	bs_str capability_id;
	uint32_t grant_index;
	bs_kind kind;
	bool has_allowed; /* authorize and increment only */
	bool allowed;
	bs_denial denial;
	int64_t recorded_at_ns;
	bool has_usage_seq; /* absent for a denied event */
	uint64_t usage_seq;
	uint64_t exposure_units;
	uint64_t realized_units;
	bool has_max_invocations;
	uint64_t max_invocations;
	bool has_max_cost_per_invocation;
	uint64_t max_cost_per_invocation;
	bool has_max_total_cost_units;
	uint64_t max_total_cost_units;
	uint32_t invocation_count_after;
	uint64_t exposed_after;
	uint64_t realized_after;
	bool has_authority;
	bs_authority authority;
	bs_str caller;         /* absent for events recorded without one */
	uint32_t ttl_seconds;  /* authorize and extend: as requested (0: none) */
	int64_t expires_at_ns; /* authorize and extend: the deadline set (0: none) */
	bs_expiry on_expiry;   /* authorize with a deadline: the policy; expire:
	                        * the policy applied */
} bs_event;

/* Visitors: return 0 to continue, anything else to stop the listing (the
 * list call then returns BS_OK). */
typedef int (*bs_usage_cb)(void *ctx, const bs_usage *usage);
typedef int (*bs_hold_cb)(void *ctx, const bs_hold *hold);
typedef int (*bs_event_cb)(void *ctx, const bs_event *event);

typedef enum bs_sync {
	BS_SYNC_FULL = 0,   /* fsync on every commit: survives power loss */
	BS_SYNC_NORMAL = 1, /* survives a process crash, may lose the last
	                     * commits on power loss or an OS crash */
} bs_sync;

typedef int64_t (*bs_clock_fn)(void *ctx); /* Unix time in nanoseconds */

typedef struct bs_options {
	bs_sync sync;      /* writer only */
	bs_clock_fn clock; /* NULL: the system's real-time clock */
	void *clock_ctx;
	const char *vfs; /* SQLite VFS name, NULL for the default */
} bs_options;

typedef struct bs_store bs_store;

/* Opens (creating when needed, with its parent directory) the database at
 * `path`, or a private in-memory one for ":memory:". A store is the only
 * writer of its file: a second open of the same file fails. On success *out is owned by the
 * caller and released with bs_store_close. `opts` may be NULL. */
int bs_store_open(const char *path, const bs_options *opts, bs_store **out, bs_error *err);

/* Closes the store and frees it. NULL is allowed. */
void bs_store_close(bs_store *store);

/* Applies `n` (1..BS_BATCH_MUTATIONS_MAX) mutations in order in one
 * transaction, with one durable commit. Each item gets its own result: a
 * failing mutation changes nothing and the others still apply. Returns
 * BS_OK when the transaction committed; BS_ESTORAGE when it could not (then
 * every item's result is BS_ESTORAGE and nothing of the batch is visible);
 * BS_EINVAL for a bad `n`. */
int bs_store_apply_batch(bs_store *store, bs_batch_item *items, size_t n);

/* bs_store_apply_batch, then, in the same transaction and so with the same
 * durable commit, bs_store_expire_due for up to `expire_max` (0 to
 * BS_BATCH_MUTATIONS_MAX) holds: a writer that expires while it serves
 * pays one fsync for both. *expired: how many expired. Returns as
 * bs_store_apply_batch; when the transaction fails nothing of either part
 * is recorded. */
int bs_store_apply_batch_expire(bs_store *store, bs_batch_item *items, size_t n,
                                uint32_t expire_max, uint32_t *expired);

/* Applies one mutation as a batch of one. `out` and `err` are owned by the
 * caller; `err` may be NULL. */
int bs_store_apply(bs_store *store, const bs_mutation *m, bs_outcome *out, bs_error *err);

/* Calls `cb` once with the usage row of (capability_id, grant_index) when
 * it exists; *found tells whether it did. */
int bs_store_get_usage(bs_store *store, bs_str capability_id, uint64_t grant_index, bs_usage_cb cb,
                       void *ctx, bool *found, bs_error *err);

/* Lists up to `limit` usage rows (0: the default), newest updated_at
 * first, then by capability and grant; optionally of one capability. */
int bs_store_list_usages(bs_store *store, uint32_t limit, bs_str capability_id, bs_usage_cb cb,
                         void *ctx, bs_error *err);

/* Lists up to `limit` events with event_seq > after_seq in event_seq
 * order, optionally only those of one capability and/or grant. */
int bs_store_list_events(bs_store *store, uint32_t limit, bs_str capability_id,
                         bool has_grant_index, uint64_t grant_index, uint64_t after_seq,
                         bs_event_cb cb, void *ctx, bs_error *err);

/* Calls `cb` once with the hold when it exists; *found tells whether. */
int bs_store_get_hold(bs_store *store, bs_str hold_id, bs_hold_cb cb, void *ctx, bool *found,
                      bs_error *err);

/* A page of holds, in (created_at, hold_id) order: oldest first. */
typedef struct bs_hold_query {
	bs_str capability_id; /* absent: every capability */
	bool has_disposition;
	bs_disposition disposition;
	bool has_older_than;
	int64_t older_than_ns; /* only holds created before this */
	bool has_after;        /* the page cursor: holds after this one */
	int64_t after_created_ns;
	bs_str after_hold_id;
	uint32_t limit; /* 0: the default */
} bs_hold_query;

/* Lists the holds `q` selects. */
int bs_store_list_holds(bs_store *store, const bs_hold_query *q, bs_hold_cb cb, void *ctx,
                        bs_error *err);

/* Expires, in one durable transaction, up to `max` (1..BS_BATCH_MUTATIONS_MAX)
 * open holds whose deadline is at or before the store clock's now, earliest
 * deadline first (then by hold_id), each recorded as an expire_exposure
 * event applying its hold's on_expiry policy. *expired: how many were
 * recorded. A hold expires exactly once, and never after it was settled:
 * expiry and settlements go through the same single writer. BS_ESTORAGE:
 * nothing was recorded (try again later). */
int bs_store_expire_due(bs_store *store, uint32_t max, uint32_t *expired, bs_error *err);

/* The earliest deadline of an open hold, 0 when no open hold has one. */
int bs_store_next_deadline(bs_store *store, int64_t *out_ns, bs_error *err);

/* The store's clock (Unix time, nanoseconds): the one deadlines use. */
int64_t bs_store_now(const bs_store *store);

/* The last sequence value taken (0 for an empty store). */
int bs_store_commit_index(bs_store *store, uint64_t *out, bs_error *err);

typedef struct bs_stats {
	uint64_t commit_index; /* the last sequence value taken */
	uint64_t open_holds;   /* holds not yet released, reversed or reconciled */
	uint64_t db_bytes;     /* the database and its WAL on disk (0 in memory) */
} bs_stats;

/* Cheap figures for metrics and status lines. */
int bs_store_stats(bs_store *store, bs_stats *out, bs_error *err);

/* Brings the derived tables (usage, holds, the indexes of the log) up to
 * date with the log and checkpoints the WAL. The store does this by itself
 * every BS_MATERIALIZE_EVENTS events and before lists; calling it when idle
 * keeps restart replay short. */
int bs_store_checkpoint(bs_store *store, bs_error *err);

/* Static description of what this store's backend guarantees. */
bs_guarantee bs_store_guarantee(const bs_store *store);

/* Helpers for callers building requests. */
static inline bs_str bs_str_from(const char *s)
{
	bs_str r = {s, s ? strlen(s) : 0};
	return r;
}

#endif
