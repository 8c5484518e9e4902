/* budgetd/client.h - the C client of budgetd, the budget authority.
 *
 * One function per RPC of budgetd.v1.BudgetAuthority (see
 * proto/budgetd/v1/budget_authority.proto for the meaning of every field),
 * plus grpc.health.v1.Health/Check and budgetd.v1.BudgetAdmin (backup and
 * verification, at the end of this file). Calls are synchronous and bounded by a
 * deadline. No gRPC or protobuf type appears here: requests and results are
 * plain C structs whose fields carry the .proto field names.
 *
 * Conventions:
 * - Every call returns 0 on success, or minus a gRPC status code (a
 *   negative BC_STATUS_* value) on failure; when `err` is not NULL it then
 *   holds the code and a message. A denial by a budget limit is NOT an
 *   error: it is a successful call whose result says authorized = false
 *   (or allowed = false).
 * - Strings in requests are borrowed for the duration of the call. An
 *   optional string is absent when NULL; an optional number is absent when
 *   its has_ flag is false.
 * - `deadline_ms` of every call is the deadline of each attempt in
 *   milliseconds; 0 means the client's default (bc_options.deadline_ms).
 * - Results are structs the caller allocates (usually on the stack). The
 *   call zeroes `*out` first and fills it on success; the strings and arrays
 *   inside belong to the result and are released with the result type's
 *   *_free function, which also accepts a zeroed or already freed result.
 *   Required strings in a result are never NULL (possibly ""); optional ones
 *   are NULL when unset.
 * - Thread safety: one bc_client may be used by any number of threads at
 *   once. bc_client_free must not race with calls on the same client.
 * - Process: gRPC starts threads of its own; do not fork() while a client
 *   exists.
 *
 * Safe retries: for the mutations (authorize, release, reverse, reconcile,
 * capture, increment, extend) the client sends an event_id with every
 * request: the caller's, or a fresh random one (128 bits as 32 lowercase
 * hex digits, returned in the result's metadata.event_id). An attempt that
 * fails with UNAVAILABLE or DEADLINE_EXCEEDED is repeated with the same
 * event_id, after a bounded exponential backoff with jitter, so the server
 * applies the mutation at most once (a repeat of an applied mutation
 * answers with metadata.replayed = true). Reads are retried on UNAVAILABLE
 * only. Each attempt gets the whole per-call deadline. To retry across a
 * failed call (or a process restart) yourself, choose the event_id up
 * front, e.g. with bc_event_id_new, and send the same one again.
 */
#ifndef BUDGETD_CLIENT_H
#define BUDGETD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define BC_API __attribute__((visibility("default")))
#else
#define BC_API
#endif

#define BC_DEADLINE_MS_DEFAULT     5000 /* per attempt, when none is given */
#define BC_MAX_ATTEMPTS_DEFAULT    5    /* attempts of one call, the first included */
#define BC_MAX_ATTEMPTS_MAX        100
#define BC_BACKOFF_BASE_MS_DEFAULT 50   /* wait before the first retry */
#define BC_BACKOFF_MAX_MS_DEFAULT  2000 /* longest wait between two attempts */
#define BC_RECV_MESSAGE_BYTES_MAX  (8 * 1024 * 1024)
#define BC_EVENT_ID_SIZE           33 /* 32 hex digits and the NUL */
#define BC_ERROR_MESSAGE_MAX       512
#define BC_TTL_SECONDS_MAX         2592000 /* 30 days: the longest hold deadline */

/* gRPC status codes (the values of grpc_status_code). */
enum {
	BC_STATUS_OK = 0,
	BC_STATUS_CANCELLED = 1,
	BC_STATUS_UNKNOWN = 2,
	BC_STATUS_INVALID_ARGUMENT = 3,
	BC_STATUS_DEADLINE_EXCEEDED = 4,
	BC_STATUS_NOT_FOUND = 5,
	BC_STATUS_ALREADY_EXISTS = 6,
	BC_STATUS_PERMISSION_DENIED = 7,
	BC_STATUS_RESOURCE_EXHAUSTED = 8,
	BC_STATUS_FAILED_PRECONDITION = 9,
	BC_STATUS_ABORTED = 10,
	BC_STATUS_OUT_OF_RANGE = 11,
	BC_STATUS_UNIMPLEMENTED = 12,
	BC_STATUS_INTERNAL = 13,
	BC_STATUS_UNAVAILABLE = 14,
	BC_STATUS_DATA_LOSS = 15,
	BC_STATUS_UNAUTHENTICATED = 16,
};

/* An error: a gRPC status code and a message for a person. Errors found by
 * the client itself use the same codes: INVALID_ARGUMENT (bad options or
 * arguments), INTERNAL (an undecodable response), RESOURCE_EXHAUSTED (out
 * of memory). */
typedef struct bc_error {
	int code;                           /* a BC_STATUS_* value */
	char message[BC_ERROR_MESSAGE_MAX]; /* the server's status message, or ours */
} bc_error;

/* "UNAVAILABLE" for BC_STATUS_UNAVAILABLE, ...; "UNKNOWN" for other values. */
BC_API const char *bc_status_name(int code);

/* ---- enums: the values of the .proto enums ------------------------------ */

typedef enum bc_guarantee_level {
	BC_GUARANTEE_LEVEL_UNSPECIFIED = 0,
	BC_GUARANTEE_LEVEL_SINGLE_NODE_ATOMIC = 1,
} bc_guarantee_level;

typedef enum bc_budget_profile {
	BC_BUDGET_PROFILE_UNSPECIFIED = 0,
	BC_BUDGET_PROFILE_AUTHORITATIVE_HOLD_EVENT = 1,
} bc_budget_profile;

typedef enum bc_metering_profile {
	BC_METERING_PROFILE_UNSPECIFIED = 0,
	BC_METERING_PROFILE_MAX_COST_PREAUTHORIZE_THEN_RECONCILE_ACTUAL = 1,
} bc_metering_profile;

typedef enum bc_mutation_kind {
	BC_MUTATION_KIND_UNSPECIFIED = 0,
	BC_MUTATION_KIND_INCREMENT_INVOCATION = 1,
	BC_MUTATION_KIND_AUTHORIZE_EXPOSURE = 2,
	BC_MUTATION_KIND_REVERSE_EXPOSURE = 3,
	BC_MUTATION_KIND_RELEASE_EXPOSURE = 4,
	BC_MUTATION_KIND_RECONCILE_SPEND = 5,
	BC_MUTATION_KIND_EXPIRE_EXPOSURE = 6, /* budgetd settled a hold at its deadline */
	BC_MUTATION_KIND_EXTEND_HOLD = 7,
} bc_mutation_kind;

typedef enum bc_hold_disposition {
	BC_HOLD_DISPOSITION_UNSPECIFIED = 0,
	BC_HOLD_DISPOSITION_OPEN = 1,
	BC_HOLD_DISPOSITION_RELEASED = 2,
	BC_HOLD_DISPOSITION_REVERSED = 3,
	BC_HOLD_DISPOSITION_RECONCILED = 4,
	BC_HOLD_DISPOSITION_EXPIRED = 5, /* settled by budgetd at its deadline */
} bc_hold_disposition;

/* What budgetd does with an open hold when its deadline passes. */
typedef enum bc_expiry_policy {
	BC_EXPIRY_POLICY_UNSPECIFIED = 0, /* request: the server's default; hold: no deadline */
	BC_EXPIRY_POLICY_CAPTURE = 1,     /* realize the remaining exposure as spend */
	BC_EXPIRY_POLICY_RELEASE = 2,     /* give the exposure back, keep the invocation */
	BC_EXPIRY_POLICY_REVERSE = 3,     /* give back the exposure and the invocation */
} bc_expiry_policy;

typedef enum bc_denial_reason {
	BC_DENIAL_REASON_UNSPECIFIED = 0, /* not denied */
	BC_DENIAL_REASON_MAX_INVOCATIONS = 1,
	BC_DENIAL_REASON_MAX_COST_PER_INVOCATION = 2,
	BC_DENIAL_REASON_MAX_TOTAL_COST = 3,
} bc_denial_reason;

/* grpc.health.v1.HealthCheckResponse.ServingStatus */
typedef enum bc_serving_status {
	BC_SERVING_STATUS_UNKNOWN = 0,
	BC_SERVING_STATUS_SERVING = 1,
	BC_SERVING_STATUS_NOT_SERVING = 2,
	BC_SERVING_STATUS_SERVICE_UNKNOWN = 3,
} bc_serving_status;

/* The .proto value names ("MUTATION_KIND_RECONCILE_SPEND", "SERVING", ...),
 * static strings; NULL for a value this client does not know (a newer
 * server may send one: enums in results keep the number). */
BC_API const char *bc_guarantee_level_name(int value);
BC_API const char *bc_budget_profile_name(int value);
BC_API const char *bc_metering_profile_name(int value);
BC_API const char *bc_mutation_kind_name(int value);
BC_API const char *bc_hold_disposition_name(int value);
BC_API const char *bc_expiry_policy_name(int value);
BC_API const char *bc_denial_reason_name(int value);
BC_API const char *bc_serving_status_name(int value);

/* ---- the client ---------------------------------------------------------- */

/* How to reach budgetd. A zeroed struct (plus `target`) gives the defaults. */
typedef struct bc_options {
	const char *target;   /* "host:port", "unix:/path" (any gRPC target); required */
	int deadline_ms;      /* per attempt; 0: BC_DEADLINE_MS_DEFAULT */
	bool disable_retries; /* true: one attempt per call */
	int max_attempts;     /* 0: BC_MAX_ATTEMPTS_DEFAULT; at most BC_MAX_ATTEMPTS_MAX */
	int backoff_base_ms;  /* 0: BC_BACKOFF_BASE_MS_DEFAULT */
	int backoff_max_ms;   /* 0: BC_BACKOFF_MAX_MS_DEFAULT; at least backoff_base_ms */
	/* TLS: used when any of these is set; otherwise the connection is
	 * plaintext. Files are PEM and read once, by bc_client_new. */
	bool tls;                    /* TLS with the system's CA roots */
	const char *ca_file;         /* roots to verify the server with */
	const char *cert_file;       /* client certificate chain (with key_file) */
	const char *key_file;        /* client private key (with cert_file) */
	const char *tls_server_name; /* name to verify instead of the target's host */
} bc_options;

typedef struct bc_client bc_client;

/* Creates a client for `opts->target`. No connection is made yet (the first
 * call connects). `opts` is copied; its strings need not outlive the call.
 * On success *out is owned by the caller and released with bc_client_free.
 * Fails with INVALID_ARGUMENT for bad options or unreadable TLS files. */
BC_API int bc_client_new(const bc_options *opts, bc_client **out, bc_error *err);

/* Closes the channel and frees the client. NULL is allowed. */
BC_API void bc_client_free(bc_client *client);

/* Writes a new random event id (32 lowercase hex digits) into `out`. */
BC_API int bc_event_id_new(char out[BC_EVENT_ID_SIZE], bc_error *err);

/* ---- requests and results ------------------------------------------------ */

/* The authority lease of a request (borrowed strings). */
typedef struct bc_authority {
	const char *authority_id;
	const char *lease_id;
	uint64_t lease_epoch;
} bc_authority;

/* The authority lease in a result (strings owned by the result). */
typedef struct bc_authority_info {
	char *authority_id;
	char *lease_id;
	uint64_t lease_epoch;
} bc_authority_info;

/* google.protobuf.Timestamp: Unix time. */
typedef struct bc_timestamp {
	int64_t seconds;
	int32_t nanos; /* 0..999999999 */
} bc_timestamp;

/* CommitMetadata: how and where a mutation was committed. */
typedef struct bc_commit_metadata {
	bool has_authority;
	bc_authority_info authority;
	bc_guarantee_level guarantee_level;
	bc_budget_profile budget_profile;
	bc_metering_profile metering_profile;
	bool has_budget_commit_index; /* false for a denial */
	uint64_t budget_commit_index;
	char *event_id;    /* the event's idempotency key */
	char *budget_term; /* "<authority_id>:<lease_epoch>"; NULL without authority */
	bool replayed;     /* answered from the log: this call changed nothing */
	bool dry_run;      /* a dry run: nothing was recorded */
} bc_commit_metadata;

/* AuthorizeHold. */
typedef struct bc_authorize_hold_request {
	const char *capability_id;
	uint64_t grant_index;
	bool has_max_invocations;
	uint64_t max_invocations;
	uint64_t requested_exposure_units;
	bool has_max_cost_per_invocation;
	uint64_t max_cost_per_invocation;
	bool has_max_total_cost_units;
	uint64_t max_total_cost_units;
	const char *hold_id;           /* the hold to open; NULL: none */
	const char *event_id;          /* NULL: the client generates one */
	const bc_authority *authority; /* NULL: none */
	bool dry_run;                  /* decide against the current state, record nothing */
	/* The hold's deadline: budgetd settles it by `on_expiry` when it is
	 * still open ttl_seconds after it opened. Only with a hold_id. */
	bool has_ttl_seconds;       /* false: the server's default (budgetd --hold-ttl) */
	uint32_t ttl_seconds;       /* 1 to BC_TTL_SECONDS_MAX; 0: no deadline */
	bc_expiry_policy on_expiry; /* UNSPECIFIED: the server's default */
} bc_authorize_hold_request;

/* AuthorizeHoldResponse: authorized, or denied by a limit. */
typedef struct bc_authorize_hold_result {
	bool authorized;
	char *hold_id;                      /* NULL when the request named none */
	uint64_t authorized_exposure_units; /* when authorized */
	uint64_t attempted_exposure_units;  /* when denied */
	uint64_t committed_cost_units_after;
	uint32_t invocation_count_after;
	bc_denial_reason denial_reason; /* when denied */
	bc_commit_metadata metadata;
	bool has_expires_at;     /* authorized with a deadline; otherwise false and */
	bc_timestamp expires_at; /* expires_at is zero */
} bc_authorize_hold_result;

BC_API int bc_authorize_hold(bc_client *client, const bc_authorize_hold_request *req,
                             int deadline_ms, bc_authorize_hold_result *out, bc_error *err);
BC_API void bc_authorize_hold_result_free(bc_authorize_hold_result *result);

/* ReleaseHold. */
typedef struct bc_release_hold_request {
	const char *capability_id;
	uint64_t grant_index;
	const char *hold_id; /* NULL: release from the grant directly */
	uint64_t released_exposure_units;
	const char *event_id;          /* NULL: the client generates one */
	const bc_authority *authority; /* NULL: none */
} bc_release_hold_request;

/* ReverseHold. */
typedef struct bc_reverse_hold_request {
	const char *capability_id;
	uint64_t grant_index;
	const char *hold_id; /* NULL: reverse on the grant directly */
	uint64_t reversed_exposure_units;
	const char *event_id;          /* NULL: the client generates one */
	const bc_authority *authority; /* NULL: none */
} bc_reverse_hold_request;

/* ReconcileHold, and CaptureHold (the same fields). */
typedef struct bc_reconcile_hold_request {
	const char *capability_id;
	uint64_t grant_index;
	const char *hold_id; /* NULL: settle on the grant directly */
	uint64_t exposed_cost_units;
	uint64_t realized_spend_units;
	const char *event_id;          /* NULL: the client generates one */
	const bc_authority *authority; /* NULL: none */
} bc_reconcile_hold_request;
typedef bc_reconcile_hold_request bc_capture_hold_request;

/* HoldMutationResponse: the result of release, reverse, reconcile, capture. */
typedef struct bc_hold_mutation_result {
	char *hold_id;           /* NULL when the request named none */
	uint64_t exposure_units; /* removed from the grant's exposure */
	uint64_t realized_spend_units;
	uint64_t committed_cost_units_after;
	uint32_t invocation_count_after;
	bc_commit_metadata metadata;
} bc_hold_mutation_result;

BC_API int bc_release_hold(bc_client *client, const bc_release_hold_request *req, int deadline_ms,
                           bc_hold_mutation_result *out, bc_error *err);
BC_API int bc_reverse_hold(bc_client *client, const bc_reverse_hold_request *req, int deadline_ms,
                           bc_hold_mutation_result *out, bc_error *err);
BC_API int bc_reconcile_hold(bc_client *client, const bc_reconcile_hold_request *req,
                             int deadline_ms, bc_hold_mutation_result *out, bc_error *err);
BC_API int bc_capture_hold(bc_client *client, const bc_capture_hold_request *req, int deadline_ms,
                           bc_hold_mutation_result *out, bc_error *err);
BC_API void bc_hold_mutation_result_free(bc_hold_mutation_result *result);

/* IncrementInvocation. */
typedef struct bc_increment_invocation_request {
	const char *capability_id;
	uint64_t grant_index;
	bool has_max_invocations;
	uint64_t max_invocations;
	const char *event_id; /* NULL: the client generates one */
} bc_increment_invocation_request;

typedef struct bc_increment_invocation_result {
	bool allowed; /* false: max_invocations denied it */
	uint32_t invocation_count_after;
	bc_commit_metadata metadata;
} bc_increment_invocation_result;

BC_API int bc_increment_invocation(bc_client *client, const bc_increment_invocation_request *req,
                                   int deadline_ms, bc_increment_invocation_result *out,
                                   bc_error *err);
BC_API void bc_increment_invocation_result_free(bc_increment_invocation_result *result);

/* UsageRecord: the usage of one grant. */
typedef struct bc_usage_record {
	char *capability_id;
	uint64_t grant_index;
	uint32_t invocation_count;
	uint64_t total_cost_exposed;
	uint64_t total_cost_realized_spend;
	uint64_t committed_cost_units; /* exposed + realized */
	uint64_t seq;                  /* commit index of the last change */
	bool has_updated_at;
	bc_timestamp updated_at;
} bc_usage_record;

/* GetUsage: `found` is false when the grant has no usage record. */
typedef struct bc_usage_result {
	bool found;
	bc_usage_record usage;
} bc_usage_result;

BC_API int bc_get_usage(bc_client *client, const char *capability_id, uint64_t grant_index,
                        int deadline_ms, bc_usage_result *out, bc_error *err);
BC_API void bc_usage_result_free(bc_usage_result *result);

/* ListUsages. */
typedef struct bc_list_usages_request {
	uint32_t limit;            /* 0: the server's default (100); at most 1000 */
	const char *capability_id; /* NULL: all capabilities */
} bc_list_usages_request;

typedef struct bc_usage_list {
	size_t count;
	bc_usage_record *usages; /* `count` records, most recently updated first */
} bc_usage_list;

BC_API int bc_list_usages(bc_client *client, const bc_list_usages_request *req, int deadline_ms,
                          bc_usage_list *out, bc_error *err);
BC_API void bc_usage_list_free(bc_usage_list *list);

/* MutationEvent: one entry of the mutation log. */
typedef struct bc_mutation_event {
	char *event_id;
	char *hold_id; /* NULL when the mutation named none */
	char *capability_id;
	uint64_t grant_index;
	bc_mutation_kind kind;
	bool has_allowed; /* authorize and increment only */
	bool allowed;
	bc_denial_reason denial_reason;
	bool has_recorded_at;
	bc_timestamp recorded_at;
	uint64_t event_seq;
	bool has_usage_seq; /* false for a denial */
	uint64_t usage_seq;
	uint64_t exposure_units;
	uint64_t realized_spend_units;
	bool has_max_invocations;
	uint64_t max_invocations;
	bool has_max_cost_per_invocation;
	uint64_t max_cost_per_invocation;
	bool has_max_total_cost_units;
	uint64_t max_total_cost_units;
	uint32_t invocation_count_after;
	uint64_t total_cost_exposed_after;
	uint64_t total_cost_realized_spend_after;
	bool has_authority;
	bc_authority_info authority;
	char *caller;         /* who recorded it, as budgetd authenticated them ("" if unknown) */
	bool has_ttl_seconds; /* authorize and extend_hold: the ttl_seconds requested */
	uint32_t ttl_seconds;
	bool has_expires_at; /* authorize and extend_hold: the hold's deadline after it */
	bc_timestamp expires_at;
	bc_expiry_policy on_expiry; /* the hold's policy; expire_exposure: the one applied */
} bc_mutation_event;

/* ListMutationEvents. */
typedef struct bc_list_mutation_events_request {
	uint32_t limit;            /* 0: the server's default (100); at most 1000 */
	const char *capability_id; /* NULL: all capabilities */
	bool has_grant_index;      /* false: all grants */
	uint64_t grant_index;
	uint64_t after_commit_index; /* events with event_seq above this */
} bc_list_mutation_events_request;

typedef struct bc_event_list {
	size_t count;
	bc_mutation_event *events;        /* `count` events in event_seq order */
	uint64_t next_after_commit_index; /* pass back as after_commit_index */
} bc_event_list;

BC_API int bc_list_mutation_events(bc_client *client, const bc_list_mutation_events_request *req,
                                   int deadline_ms, bc_event_list *out, bc_error *err);
BC_API void bc_event_list_free(bc_event_list *list);

/* WatchMutationEvents: a stream of the mutation log. */
typedef struct bc_watch_request {
	uint64_t after_commit_index; /* events with event_seq above this */
	const char *capability_id;   /* NULL: all capabilities */
} bc_watch_request;

/* Receives one event of a watch, in event_seq order, on the thread that
 * called bc_watch_mutation_events. The event is borrowed for the call
 * (copy what you keep). Return 0 to go on, anything else to stop. */
typedef int (*bc_event_fn)(void *ctx, const bc_mutation_event *event);

/* Streams the backlog (the events after req->after_commit_index), then
 * every new event as it commits, to `fn`. Blocks until:
 * - `fn` returns non-zero: the stream is cancelled and the call returns 0;
 * - `deadline_ms` passes (0: never; unlike other calls, the client's
 *   default deadline does not apply): DEADLINE_EXCEEDED;
 * - the server ends the stream: RESOURCE_EXHAUSTED when this consumer fell
 *   too far behind or too many streams are open, UNAVAILABLE when it shuts
 *   down (or the connection is lost); or an error at the start
 *   (INVALID_ARGUMENT, PERMISSION_DENIED, ...).
 * *resume (may be NULL) is set in every case to the after_commit_index to
 * resume with: the last event_seq received, or the commit index up to
 * which the server said the stream was complete, when larger. One attempt:
 * the client's retry options do not apply; resume to go on. */
BC_API int bc_watch_mutation_events(bc_client *client, const bc_watch_request *req, int deadline_ms,
                                    bc_event_fn fn, void *ctx, uint64_t *resume, bc_error *err);

/* Hold. */
typedef struct bc_hold {
	char *hold_id;
	char *capability_id;
	uint64_t grant_index;
	uint64_t authorized_exposure_units;
	uint64_t remaining_exposure_units;
	bool debited_invocation;
	bc_hold_disposition disposition;
	bool has_authority;
	bc_authority_info authority;
	bool has_created_at;
	bc_timestamp created_at;
	bool has_updated_at;
	bc_timestamp updated_at;
	bool has_expires_at;     /* false: no deadline (or the hold is final) */
	bc_timestamp expires_at; /* when budgetd settles it if still open */
	/* UNSPECIFIED: it never had a deadline; an EXPIRED hold: the policy
	 * it was settled by. */
	bc_expiry_policy on_expiry;
} bc_hold;

/* GetHold: fails with NOT_FOUND when no hold has that id. */
BC_API int bc_get_hold(bc_client *client, const char *hold_id, int deadline_ms, bc_hold *out,
                       bc_error *err);
BC_API void bc_hold_free(bc_hold *hold);

/* ExtendHold: moves the deadline of an open hold to ttl_seconds from now
 * (never earlier than its current one; a hold without a deadline gets one,
 * with the policy CAPTURE). A mutation: retried with its event_id. Fails
 * with INVALID_ARGUMENT (ttl_seconds 0 or above BC_TTL_SECONDS_MAX) and
 * FAILED_PRECONDITION (a missing, mismatched or no longer open hold; an
 * authority mismatch). */
typedef struct bc_extend_hold_request {
	const char *capability_id;     /* the hold's */
	uint64_t grant_index;          /* the hold's */
	const char *hold_id;           /* required */
	uint32_t ttl_seconds;          /* 1 to BC_TTL_SECONDS_MAX */
	const char *event_id;          /* NULL: the client generates one */
	const bc_authority *authority; /* NULL: none; must match the hold's */
} bc_extend_hold_request;

typedef struct bc_extend_hold_result {
	char *hold_id;
	bool has_expires_at;
	bc_timestamp expires_at; /* the hold's deadline now */
	bc_commit_metadata metadata;
} bc_extend_hold_result;

BC_API int bc_extend_hold(bc_client *client, const bc_extend_hold_request *req, int deadline_ms,
                          bc_extend_hold_result *out, bc_error *err);
BC_API void bc_extend_hold_result_free(bc_extend_hold_result *result);

/* ListHolds: holds oldest first (by created_at, then hold_id), one page at
 * a time. Fails with INVALID_ARGUMENT (a limit above 1000, a page_token
 * this server did not make) and PERMISSION_DENIED (an identity restricted
 * to capability prefixes gave no capability_id under them). */
typedef struct bc_list_holds_request {
	uint32_t limit;            /* 0: the server's default (100); at most 1000 */
	const char *capability_id; /* NULL: all capabilities */
	bool has_disposition;      /* false: holds in any disposition */
	bc_hold_disposition disposition;
	bool has_older_than;     /* false: no bound */
	bc_timestamp older_than; /* only holds created before this time */
	const char *page_token;  /* NULL or "": from the oldest hold; else a
	                          * next_page_token got with the same filters */
} bc_list_holds_request;

typedef struct bc_hold_list {
	size_t count;
	bc_hold *holds;        /* `count` holds, oldest first */
	char *next_page_token; /* pass back as page_token; "" after the last page */
} bc_hold_list;

BC_API int bc_list_holds(bc_client *client, const bc_list_holds_request *req, int deadline_ms,
                         bc_hold_list *out, bc_error *err);
BC_API void bc_hold_list_free(bc_hold_list *list);

/* GetServerInfo. */
typedef struct bc_server_info {
	char *version;
	char *authority_id;
	bc_guarantee_level guarantee_level;
	bc_budget_profile budget_profile;
	bc_metering_profile metering_profile;
	uint64_t commit_index;
	bool has_started_at;
	bc_timestamp started_at;
} bc_server_info;

BC_API int bc_get_server_info(bc_client *client, int deadline_ms, bc_server_info *out,
                              bc_error *err);
BC_API void bc_server_info_free(bc_server_info *info);

/* grpc.health.v1.Health/Check of `service` (NULL or "": the whole server).
 * A NOT_SERVING answer is a success with *status = NOT_SERVING. */
BC_API int bc_health_check(bc_client *client, const char *service, int deadline_ms,
                           bc_serving_status *status, bc_error *err);

/* ---- administration (budgetd.v1.BudgetAdmin) ------------------------------
 *
 * Operator calls; see proto/budgetd/v1/budget_admin.proto. They may take
 * long on a large database: pass a deadline_ms that allows for it (the
 * server finishes the work even when the caller stops waiting). Both are
 * retried like reads (on UNAVAILABLE only). A Backup retried after its
 * reply was lost answers ALREADY_EXISTS: the first attempt wrote the file.
 */

#define BC_ADMIN_MISMATCHES_MAX 20 /* mismatch descriptions a result carries */

/* BackupResponse. */
typedef struct bc_backup_result {
	char *path;                /* the backup file written (on the server) */
	uint64_t bytes;            /* its size */
	uint64_t commit_index;     /* its last event_seq */
	uint64_t materialized_seq; /* how far its derived tables reach */
	bool verified;             /* the copy verified with no mismatch */
	char *summary;             /* the verification of the copy, for a person */
	size_t n_mismatches;       /* entries in `mismatches` (the first ones found) */
	char **mismatches;         /* one line each; NULL when none */
	uint64_t mismatch_count;   /* mismatches found in all */
} bc_backup_result;

/* Backup: writes a consistent copy of the server's database to `path`, an
 * absolute path ON THE SERVER'S FILESYSTEM where no file exists yet, and
 * verifies it. A copy with mismatches is written too: verified = false.
 * Fails with INVALID_ARGUMENT (bad path), ALREADY_EXISTS (the file exists),
 * FAILED_PRECONDITION (a backup is already running), UNAVAILABLE. */
BC_API int bc_backup(bc_client *client, const char *path, int deadline_ms, bc_backup_result *out,
                     bc_error *err);
BC_API void bc_backup_result_free(bc_backup_result *result);

/* VerifyResponse. */
typedef struct bc_verify_result {
	bool ok;                   /* no mismatch */
	char *summary;             /* what was checked and the verdict, for a person */
	size_t n_mismatches;       /* entries in `mismatches` (the first ones found) */
	char **mismatches;         /* one line each; NULL when none */
	uint64_t mismatch_count;   /* mismatches found in all */
	uint64_t events;           /* events in the mutation log */
	uint64_t commit_index;     /* the last event_seq the snapshot holds */
	uint64_t materialized_seq; /* how far the derived tables reach */
	uint64_t usage_records;    /* usage records the log folds to */
	uint64_t holds;            /* holds the log folds to */
	uint64_t open_holds;       /* of those, still open */
} bc_verify_result;

/* Verify: replays the server's mutation log and checks the ledger. A
 * ledger with mismatches is a success with ok = false. Fails with
 * FAILED_PRECONDITION (a verification is already running), UNAVAILABLE. */
BC_API int bc_verify(bc_client *client, int deadline_ms, bc_verify_result *out, bc_error *err);
BC_API void bc_verify_result_free(bc_verify_result *result);

#ifdef __cplusplus
}
#endif

#endif
