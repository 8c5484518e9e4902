/* loadgen.c - closed-loop gRPC load generator for budgetd (gRPC C core).
 *
 * usage: loadgen --target HOST:PORT [--mode health|pairs|pairs-hot] [options]
 *
 * Keeps --inflight unary calls outstanding at all times (closed loop): each
 * completion immediately starts the next call on the same slot. Calls are
 * spread over --channels channels (one HTTP/2 connection each) and driven by
 * --threads threads, each with its own completion queue.
 *
 * Modes:
 *   health     grpc.health.v1.Health/Check: the empty-RPC baseline.
 *   pairs      AuthorizeHold (fresh random hold_id and event_id, limits that
 *              never deny) and, once it succeeded, ReconcileHold of that
 *              hold with realized < exposed; capabilities drawn uniformly
 *              from --caps.
 *   pairs-hot  the same on one capability.
 *
 * Only calls that complete inside the --duration window after --warmup are
 * measured. At the end of the window no new pair starts; the outstanding
 * authorizations are still reconciled, so every hold is closed. Then the
 * generator checks the server against what it observed: GetUsage of every
 * capability (invocations, realized spend, exposure) and the growth of
 * GetServerInfo.commit_index (exactly the acknowledged mutations; skip with
 * --shared when other clients use the daemon).
 *
 * Every non-OK status, unexpected reply and verification mismatch is
 * counted and makes the exit status 1; the first error is printed. The whole
 * run is bounded by --max-time: past it, outstanding calls are cancelled.
 *
 * Soak: --soak S measures for S seconds and prints, every --interval
 * seconds, that interval's calls/s, p50 and p99 and (with --server-pid) the
 * server's resident memory (VmRSS from /proc/PID/status), so that flat
 * latency and memory over a long run can be shown. --max-rss-growth X makes
 * the run fail when the server's RSS at the end exceeds X times its RSS
 * after the warm-up: a leak detector, not a speed check.
 */
#include <errno.h>
#include <getopt.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "budgetd/v1/budget_authority.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"

#define LG_INFLIGHT_MAX      4096   /* calls in flight, all threads */
#define LG_THREADS_MAX       64     /* worker threads */
#define LG_CHANNELS_MAX      64     /* channels (HTTP/2 connections) */
#define LG_CAPS_MAX          100000 /* capabilities of the pairs mode */
#define LG_SECONDS_MAX       3600.0 /* any duration option */
#define LG_ID_LEN            33     /* 32 hex digits + NUL */
#define LG_CAP_ID_LEN        96     /* capability id incl. NUL */
#define LG_PREFIX_LEN_MAX    64     /* --cap-prefix, bytes */
#define LG_REQUEST_BYTES_MAX 512    /* one packed request */
#define LG_ERROR_LEN         512    /* first error text */
#define LG_POLL_MS           100    /* completion queue wait per turn */
#define LG_DRAIN_GRACE_S     30.0   /* default --max-time beyond warmup + duration */
#define LG_VERIFY_TIME_S     60.0   /* budget for the final verification */
#define LG_MISMATCHES_SHOWN  5      /* verification mismatches printed */
#define LG_INTERVAL_S        5.0    /* default --interval of a soak */
#define LG_INTERVAL_MIN_S    0.5    /* --interval at least */
#define LG_RSS_GROWTH_MAX    1000.0 /* --max-rss-growth at most */

/* The pair workload (as in shared/peers): limits are never hit. */
#define LG_COST_UNITS              1000
#define LG_REALIZED_UNITS          400
#define LG_MAX_COST_PER_INVOCATION 10000
#define LG_MAX_TOTAL_COST_UNITS    (UINT64_MAX / 4)
#define LG_GRANT_INDEX             0

/* Log-linear latency histogram in ns: exact below 128, then 64 linear
 * sub-buckets per power of two (relative error < 1.6 %), up to 2^64. */
#define HIST_SUB_BITS 7
#define HIST_HALF     (1u << (HIST_SUB_BITS - 1))
#define HIST_BUCKETS  ((64 - HIST_SUB_BITS + 2) * HIST_HALF)

typedef struct lg_hist {
	uint64_t count;
	uint64_t sum_ns;
	uint64_t max_ns;
	uint64_t buckets[HIST_BUCKETS];
} lg_hist;

typedef enum lg_mode { LG_MODE_HEALTH, LG_MODE_PAIRS, LG_MODE_PAIRS_HOT } lg_mode;

/* The RPCs this generator makes; also the index of registered methods. */
typedef enum lg_kind {
	LG_HEALTH,
	LG_AUTHORIZE,
	LG_RECONCILE,
	LG_GET_USAGE,
	LG_SERVER_INFO,
	LG_KINDS
} lg_kind;

static const char *const kind_methods[LG_KINDS] = {
        "/grpc.health.v1.Health/Check",
        "/budgetd.v1.BudgetAuthority/AuthorizeHold",
        "/budgetd.v1.BudgetAuthority/ReconcileHold",
        "/budgetd.v1.BudgetAuthority/GetUsage",
        "/budgetd.v1.BudgetAuthority/GetServerInfo",
};

static const char *const kind_names[LG_KINDS] = {"health", "authorize", "reconcile", "get_usage",
                                                 "server_info"};

typedef struct lg_config {
	const char *target;
	lg_mode mode;
	int inflight;
	int threads;
	int channels;
	int caps;
	double duration_s;
	double warmup_s;
	double max_time_s; /* 0: warmup + duration + LG_DRAIN_GRACE_S */
	double call_timeout_s;
	char cap_prefix[LG_PREFIX_LEN_MAX + 1];
	long server_pid; /* 0: no server CPU figures */
	bool shared;     /* other clients may mutate: skip the commit index check */
	bool json;
	bool soak;             /* report every interval_s of the duration */
	double interval_s;     /* soak report interval */
	double rss_growth_max; /* 0: no check; else end RSS <= this x RSS after warm-up */
} lg_config;

typedef struct lg_channel {
	grpc_channel *channel;
	void *methods[LG_KINDS]; /* grpc_channel_register_call handles */
} lg_channel;

/* Shared, read-only while the workers run. */
typedef struct lg_run {
	const lg_config *cfg;
	lg_channel channels[LG_CHANNELS_MAX];
	char (*cap_ids)[LG_CAP_ID_LEN];
	uint64_t start_ns;
	uint64_t measure_start_ns;
	uint64_t measure_end_ns;
	uint64_t hard_end_ns;
} lg_run;

struct lg_worker;

/* One call slot: at most one call in flight. */
typedef struct lg_slot {
	struct lg_worker *w;
	const lg_channel *ch;
	grpc_call *call; /* NULL when idle */
	lg_kind kind;
	uint64_t started_ns;
	uint32_t cap;
	char hold_id[LG_ID_LEN];
	grpc_byte_buffer *send;
	grpc_byte_buffer *recv;
	grpc_metadata_array initial_md;
	grpc_metadata_array trailing_md;
	grpc_status_code status;
	grpc_slice details;
	grpc_op ops[6];
	uint8_t request[LG_REQUEST_BYTES_MAX];
} lg_slot;

typedef struct lg_worker {
	int id;
	pthread_t thread;
	const lg_run *run;
	grpc_completion_queue *cq;
	lg_slot *slots;
	int nslots;
	int active;            /* slots with a call in flight */
	bool cancelled;        /* hard time cap reached */
	uint64_t rng;          /* xorshift64* state */
	uint32_t *auth_ok;     /* per capability, whole run */
	uint32_t *rec_ok;      /* per capability, whole run */
	uint64_t ok[LG_KINDS]; /* successful calls, whole run */
	uint64_t errors;       /* failed calls, whole run */
	uint64_t first_error_ns;
	char first_error[LG_ERROR_LEN];
	lg_hist hist[LG_KINDS]; /* measured successful calls */
	/* soak: the current interval, handed to the main thread under imu */
	pthread_mutex_t imu;
	lg_hist ihist;    /* measured successful calls of the interval */
	uint64_t ierrors; /* failed calls of the interval */
} lg_worker;

/* ---- small helpers ------------------------------------------------------ */

static uint64_t now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		perror("loadgen: clock_gettime");
		abort();
	}
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until_ns(uint64_t t)
{
	struct timespec ts = {.tv_sec = (time_t)(t / 1000000000u),
	                      .tv_nsec = (long)(t % 1000000000u)};
	int rc;

	while ((rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR)
		;
	if (rc != 0) {
		fprintf(stderr, "loadgen: clock_nanosleep: %s\n", strerror(rc));
		abort();
	}
}

static gpr_timespec deadline_in(double seconds)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
	                    gpr_time_from_millis((int64_t)(seconds * 1000.0), GPR_TIMESPAN));
}

static uint64_t next_random(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 2685821657736338717ull;
}

static int seed_random(uint64_t *state)
{
	uint64_t seed = 0;

	if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
		perror("loadgen: getrandom");
		return -1;
	}
	*state = seed ? seed : 0x9E3779B97F4A7C15ull;
	return 0;
}

/* A random 128-bit id as 32 hex digits, like a client's idempotency key. */
static void random_id(uint64_t *state, char out[LG_ID_LEN])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t a = next_random(state), b = next_random(state);

	for (int i = 0; i < 16; i++) {
		out[i] = hex[(a >> (60 - 4 * i)) & 0xf];
		out[16 + i] = hex[(b >> (60 - 4 * i)) & 0xf];
	}
	out[32] = '\0';
}

/* ---- histogram ---------------------------------------------------------- */

static unsigned hist_index(uint64_t v)
{
	if (v < 2 * HIST_HALF)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = e - (HIST_SUB_BITS - 1);
	return shift * HIST_HALF + (unsigned)(v >> shift);
}

/* The largest value that falls in bucket `b`. */
static uint64_t hist_bucket_high(unsigned b)
{
	if (b < 2 * HIST_HALF)
		return b;
	unsigned shift = b / HIST_HALF - 1;
	uint64_t m = b % HIST_HALF + HIST_HALF;
	return (m << shift) + ((UINT64_C(1) << shift) - 1); /* no overflow: m < 2^7 */
}

static void hist_add(lg_hist *h, uint64_t v)
{
	h->buckets[hist_index(v)]++;
	h->count++;
	h->sum_ns += v;
	if (v > h->max_ns)
		h->max_ns = v;
}

static void hist_merge(lg_hist *into, const lg_hist *h)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->buckets[i] += h->buckets[i];
	into->count += h->count;
	into->sum_ns += h->sum_ns;
	if (h->max_ns > into->max_ns)
		into->max_ns = h->max_ns;
}

/* The value at quantile q (0 < q <= 1), in µs; 0 for an empty histogram. */
static double hist_quantile_us(const lg_hist *h, double q)
{
	if (h->count == 0)
		return 0;
	uint64_t rank = (uint64_t)((double)h->count * q + 0.999999);
	uint64_t seen = 0;

	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			uint64_t v = hist_bucket_high(i);
			return (double)(v < h->max_ns ? v : h->max_ns) / 1000.0;
		}
	}
	return (double)h->max_ns / 1000.0;
}

static double hist_mean_us(const lg_hist *h)
{
	return h->count ? (double)h->sum_ns / (double)h->count / 1000.0 : 0;
}

/* ---- errors ------------------------------------------------------------- */

/* Keeps the first error's text (the one printed at the end). */
__attribute__((format(printf, 2, 0))) static void note_first_error(lg_worker *w, const char *fmt,
                                                                   va_list ap)
{
	if (w->first_error[0])
		return;
	(void)vsnprintf(w->first_error, sizeof(w->first_error), fmt, ap);
	w->first_error_ns = now_ns();
}

/* Counts one failed call and keeps the first error's text. */
__attribute__((format(printf, 2, 3))) static void worker_error(lg_worker *w, const char *fmt, ...)
{
	va_list ap;

	w->errors++;
	va_start(ap, fmt);
	note_first_error(w, fmt, ap);
	va_end(ap);
}

/* Keeps the text as the first error without counting a failed call. */
__attribute__((format(printf, 2, 3))) static void worker_note(lg_worker *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	note_first_error(w, fmt, ap);
	va_end(ap);
}

static const char *status_name(grpc_status_code c)
{
	static const char *const names[] = {"OK",
	                                    "CANCELLED",
	                                    "UNKNOWN",
	                                    "INVALID_ARGUMENT",
	                                    "DEADLINE_EXCEEDED",
	                                    "NOT_FOUND",
	                                    "ALREADY_EXISTS",
	                                    "PERMISSION_DENIED",
	                                    "RESOURCE_EXHAUSTED",
	                                    "FAILED_PRECONDITION",
	                                    "ABORTED",
	                                    "OUT_OF_RANGE",
	                                    "UNIMPLEMENTED",
	                                    "INTERNAL",
	                                    "UNAVAILABLE",
	                                    "DATA_LOSS",
	                                    "UNAUTHENTICATED"};
	if ((unsigned)c < sizeof(names) / sizeof(names[0]))
		return names[c];
	return "?";
}

/* ---- protobuf <-> byte buffer -------------------------------------------- */

/* Packs `msg` into `buf` and wraps it (not copied) in a byte buffer. */
static grpc_byte_buffer *pack_static(const ProtobufCMessage *msg, uint8_t *buf, size_t cap)
{
	size_t len = protobuf_c_message_get_packed_size(msg);

	if (len > cap)
		return NULL;
	if (protobuf_c_message_pack(msg, buf) != len)
		return NULL;
	grpc_slice slice = grpc_slice_from_static_buffer(buf, len);
	return grpc_raw_byte_buffer_create(&slice, 1);
}

static ProtobufCMessage *unpack_buffer(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d)
{
	grpc_byte_buffer_reader reader;

	if (!grpc_byte_buffer_reader_init(&reader, bb))
		return NULL;
	grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(all),
	                                                GRPC_SLICE_START_PTR(all));
	grpc_slice_unref(all);
	return m;
}

/* ---- one call ------------------------------------------------------------ */

static grpc_byte_buffer *build_request(lg_worker *w, lg_slot *s)
{
	const lg_run *run = w->run;
	char event_id[LG_ID_LEN];

	switch (s->kind) {
	case LG_HEALTH: {
		Grpc__Health__V1__HealthCheckRequest req =
		        GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
		return pack_static(&req.base, s->request, sizeof(s->request));
	}
	case LG_AUTHORIZE: {
		Budgetd__V1__AuthorizeHoldRequest req = BUDGETD__V1__AUTHORIZE_HOLD_REQUEST__INIT;
		s->cap = run->cfg->caps == 1
		                 ? 0
		                 : (uint32_t)(next_random(&w->rng) % (uint64_t)run->cfg->caps);
		random_id(&w->rng, s->hold_id);
		random_id(&w->rng, event_id);
		req.capability_id = run->cap_ids[s->cap];
		req.grant_index = LG_GRANT_INDEX;
		req.requested_exposure_units = LG_COST_UNITS;
		req._max_cost_per_invocation_case =
		        BUDGETD__V1__AUTHORIZE_HOLD_REQUEST___MAX_COST_PER_INVOCATION_MAX_COST_PER_INVOCATION;
		req.max_cost_per_invocation = LG_MAX_COST_PER_INVOCATION;
		req._max_total_cost_units_case =
		        BUDGETD__V1__AUTHORIZE_HOLD_REQUEST___MAX_TOTAL_COST_UNITS_MAX_TOTAL_COST_UNITS;
		req.max_total_cost_units = LG_MAX_TOTAL_COST_UNITS;
		req._hold_id_case = BUDGETD__V1__AUTHORIZE_HOLD_REQUEST___HOLD_ID_HOLD_ID;
		req.hold_id = s->hold_id;
		req._event_id_case = BUDGETD__V1__AUTHORIZE_HOLD_REQUEST___EVENT_ID_EVENT_ID;
		req.event_id = event_id;
		return pack_static(&req.base, s->request, sizeof(s->request));
	}
	case LG_RECONCILE: {
		Budgetd__V1__ReconcileHoldRequest req = BUDGETD__V1__RECONCILE_HOLD_REQUEST__INIT;
		random_id(&w->rng, event_id);
		req.capability_id = run->cap_ids[s->cap];
		req.grant_index = LG_GRANT_INDEX;
		req._hold_id_case = BUDGETD__V1__RECONCILE_HOLD_REQUEST___HOLD_ID_HOLD_ID;
		req.hold_id = s->hold_id;
		req.exposed_cost_units = LG_COST_UNITS;
		req.realized_spend_units = LG_REALIZED_UNITS;
		req._event_id_case = BUDGETD__V1__RECONCILE_HOLD_REQUEST___EVENT_ID_EVENT_ID;
		req.event_id = event_id;
		return pack_static(&req.base, s->request, sizeof(s->request));
	}
	case LG_GET_USAGE:
	case LG_SERVER_INFO:
	case LG_KINDS:
		break;
	}
	return NULL;
}

static void start_call(lg_worker *w, lg_slot *s, lg_kind kind)
{
	s->kind = kind;
	s->send = build_request(w, s);
	if (!s->send) {
		worker_error(w, "%s: cannot pack the request", kind_names[kind]);
		return;
	}
	s->call = grpc_channel_create_registered_call(
	        s->ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, w->cq, s->ch->methods[kind],
	        w->run->cfg->call_timeout_s > 0 ? deadline_in(w->run->cfg->call_timeout_s)
	                                        : gpr_inf_future(GPR_CLOCK_MONOTONIC),
	        NULL);
	if (!s->call) {
		worker_error(w, "%s: grpc_channel_create_registered_call failed", kind_names[kind]);
		grpc_byte_buffer_destroy(s->send);
		s->send = NULL;
		return;
	}
	grpc_metadata_array_init(&s->initial_md);
	grpc_metadata_array_init(&s->trailing_md);
	s->recv = NULL;
	s->status = GRPC_STATUS_UNKNOWN;
	s->details = grpc_empty_slice();

	grpc_op *op = s->ops;
	memset(s->ops, 0, sizeof(s->ops));
	op->op = GRPC_OP_SEND_INITIAL_METADATA;
	op++;
	op->op = GRPC_OP_SEND_MESSAGE;
	op->data.send_message.send_message = s->send;
	op++;
	op->op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	op++;
	op->op = GRPC_OP_RECV_INITIAL_METADATA;
	op->data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
	op++;
	op->op = GRPC_OP_RECV_MESSAGE;
	op->data.recv_message.recv_message = &s->recv;
	op++;
	op->op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	op->data.recv_status_on_client.trailing_metadata = &s->trailing_md;
	op->data.recv_status_on_client.status = &s->status;
	op->data.recv_status_on_client.status_details = &s->details;
	op++;

	s->started_ns = now_ns();
	grpc_call_error e = grpc_call_start_batch(s->call, s->ops, (size_t)(op - s->ops), s, NULL);
	if (e != GRPC_CALL_OK) {
		worker_error(w, "%s: grpc_call_start_batch: error %d", kind_names[kind], (int)e);
		grpc_call_unref(s->call);
		s->call = NULL;
		grpc_byte_buffer_destroy(s->send);
		s->send = NULL;
		grpc_metadata_array_destroy(&s->initial_md);
		grpc_metadata_array_destroy(&s->trailing_md);
		return;
	}
	w->active++;
}

/* Checks a successful reply; returns false (after recording why) when it is
 * not what this workload must get. */
static bool check_reply(lg_worker *w, lg_slot *s)
{
	bool good = false;

	switch (s->kind) {
	case LG_HEALTH: {
		Grpc__Health__V1__HealthCheckResponse *r =
		        (Grpc__Health__V1__HealthCheckResponse *)unpack_buffer(
		                s->recv, &grpc__health__v1__health_check_response__descriptor);
		if (!r)
			worker_error(w, "health: undecodable reply");
		else if (r->status !=
		         GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING)
			worker_error(w, "health: status %d, not SERVING", (int)r->status);
		else
			good = true;
		if (r)
			protobuf_c_message_free_unpacked(&r->base, NULL);
		return good;
	}
	case LG_AUTHORIZE: {
		Budgetd__V1__AuthorizeHoldResponse *r =
		        (Budgetd__V1__AuthorizeHoldResponse *)unpack_buffer(
		                s->recv, &budgetd__v1__authorize_hold_response__descriptor);
		const Budgetd__V1__AuthorizeHoldAuthorized *a = NULL;
		if (r &&
		    r->decision_case == BUDGETD__V1__AUTHORIZE_HOLD_RESPONSE__DECISION_AUTHORIZED)
			a = r->authorized;
		if (!r)
			worker_error(w, "authorize: undecodable reply");
		else if (!a)
			worker_error(w, "authorize %s: not authorized (decision %d)", s->hold_id,
			             (int)r->decision_case);
		else if (a->_hold_id_case !=
		                 BUDGETD__V1__AUTHORIZE_HOLD_AUTHORIZED___HOLD_ID_HOLD_ID ||
		         strcmp(a->hold_id, s->hold_id) != 0 ||
		         a->authorized_exposure_units != LG_COST_UNITS || !a->metadata ||
		         a->metadata->replayed)
			worker_error(w, "authorize %s: unexpected reply (exposure %" PRIu64 ")",
			             s->hold_id, a->authorized_exposure_units);
		else
			good = true;
		if (r)
			protobuf_c_message_free_unpacked(&r->base, NULL);
		return good;
	}
	case LG_RECONCILE: {
		Budgetd__V1__HoldMutationResponse *r =
		        (Budgetd__V1__HoldMutationResponse *)unpack_buffer(
		                s->recv, &budgetd__v1__hold_mutation_response__descriptor);
		if (!r)
			worker_error(w, "reconcile: undecodable reply");
		else if (r->exposure_units != LG_COST_UNITS ||
		         r->realized_spend_units != LG_REALIZED_UNITS || !r->metadata ||
		         r->metadata->replayed)
			worker_error(w,
			             "reconcile %s: unexpected reply (exposure %" PRIu64
			             ", realized %" PRIu64 ")",
			             s->hold_id, r->exposure_units, r->realized_spend_units);
		else
			good = true;
		if (r)
			protobuf_c_message_free_unpacked(&r->base, NULL);
		return good;
	}
	case LG_GET_USAGE:
	case LG_SERVER_INFO:
	case LG_KINDS:
		break;
	}
	worker_error(w, "internal: unexpected kind %d", (int)s->kind);
	return false;
}

/* Handles the completion of slot `s`'s call; returns true when it succeeded. */
static bool finish_call(lg_worker *w, lg_slot *s, bool batch_ok, uint64_t now)
{
	const lg_run *run = w->run;
	bool good = false;

	if (!batch_ok) {
		worker_error(w, "%s: batch failed", kind_names[s->kind]);
	} else if (s->status != GRPC_STATUS_OK) {
		worker_error(w, "%s: %s: %.*s", kind_names[s->kind], status_name(s->status),
		             (int)GRPC_SLICE_LENGTH(s->details),
		             (const char *)GRPC_SLICE_START_PTR(s->details));
	} else if (!s->recv) {
		worker_error(w, "%s: OK without a reply message", kind_names[s->kind]);
	} else {
		good = check_reply(w, s);
	}

	if (good) {
		w->ok[s->kind]++;
		if (s->kind == LG_AUTHORIZE)
			w->auth_ok[s->cap]++;
		else if (s->kind == LG_RECONCILE)
			w->rec_ok[s->cap]++;
		if (now >= run->measure_start_ns && now < run->measure_end_ns)
			hist_add(&w->hist[s->kind], now - s->started_ns);
	}
	if (run->cfg->soak && now >= run->measure_start_ns && now < run->measure_end_ns) {
		pthread_mutex_lock(&w->imu);
		if (good)
			hist_add(&w->ihist, now - s->started_ns);
		else
			w->ierrors++;
		pthread_mutex_unlock(&w->imu);
	}

	grpc_call_unref(s->call);
	s->call = NULL;
	grpc_byte_buffer_destroy(s->send);
	s->send = NULL;
	if (s->recv)
		grpc_byte_buffer_destroy(s->recv);
	s->recv = NULL;
	grpc_metadata_array_destroy(&s->initial_md);
	grpc_metadata_array_destroy(&s->trailing_md);
	grpc_slice_unref(s->details);
	w->active--;
	return good;
}

static void cancel_all(lg_worker *w)
{
	int n = 0;

	w->cancelled = true;
	for (int i = 0; i < w->nslots; i++) {
		if (w->slots[i].call) {
			(void)grpc_call_cancel(w->slots[i].call, NULL);
			n++;
		}
	}
	/* The cancelled calls are counted as they complete. */
	worker_note(w, "hard time cap reached: cancelled %d calls in flight", n);
}

static void *worker_main(void *arg)
{
	lg_worker *w = arg;
	const lg_run *run = w->run;
	lg_kind first = run->cfg->mode == LG_MODE_HEALTH ? LG_HEALTH : LG_AUTHORIZE;

	for (int i = 0; i < w->nslots; i++)
		start_call(w, &w->slots[i], first);

	while (w->active > 0) {
		grpc_event ev = grpc_completion_queue_next(
		        w->cq,
		        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
		                     gpr_time_from_millis(LG_POLL_MS, GPR_TIMESPAN)),
		        NULL);
		uint64_t now = now_ns();
		if (ev.type == GRPC_OP_COMPLETE) {
			lg_slot *s = ev.tag;
			lg_kind done = s->kind;
			bool good = finish_call(w, s, ev.success != 0, now);
			/* After an authorization, always close its hold (even past
			 * the end of the window); otherwise start a new call while
			 * the window lasts. Nothing starts after a cancellation. */
			if (!w->cancelled && done == LG_AUTHORIZE && good)
				start_call(w, s, LG_RECONCILE);
			else if (!w->cancelled && now < run->measure_end_ns)
				start_call(w, s, first);
		} else if (ev.type == GRPC_QUEUE_SHUTDOWN) {
			worker_error(w, "completion queue shut down early");
			break;
		}
		if (now >= run->hard_end_ns && !w->cancelled)
			cancel_all(w);
	}
	return NULL;
}

/* ---- blocking unary calls for the setup and the verification ------------ */

typedef struct lg_unary {
	const lg_channel *ch;
	grpc_completion_queue *cq; /* for pluck */
	uint64_t deadline_ns;      /* overall budget */
	double call_timeout_s;
} lg_unary;

/* One blocking call; *out is the decoded reply (caller frees). Returns 0, or
 * -1 with `err` set. */
static int unary_call(const lg_unary *u, lg_kind kind, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **out,
                      char *err, size_t errlen)
{
	uint8_t buf[LG_REQUEST_BYTES_MAX];
	grpc_byte_buffer *send = pack_static(req, buf, sizeof(buf));
	grpc_byte_buffer *recv = NULL;
	grpc_metadata_array imd, tmd;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice();
	grpc_op ops[6];
	int rc = -1;
	uint64_t now = now_ns();
	double left = u->deadline_ns > now ? (double)(u->deadline_ns - now) / 1e9 : 0;

	*out = NULL;
	if (!send) {
		(void)snprintf(err, errlen, "%s: cannot pack the request", kind_names[kind]);
		return -1;
	}
	if (left <= 0) {
		(void)snprintf(err, errlen, "%s: verification time budget exhausted",
		               kind_names[kind]);
		grpc_byte_buffer_destroy(send);
		return -1;
	}
	grpc_call *call = grpc_channel_create_registered_call(
	        u->ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, u->cq, u->ch->methods[kind],
	        deadline_in(left < u->call_timeout_s ? left : u->call_timeout_s), NULL);
	if (!call) {
		(void)snprintf(err, errlen, "%s: cannot create the call", kind_names[kind]);
		grpc_byte_buffer_destroy(send);
		return -1;
	}
	grpc_metadata_array_init(&imd);
	grpc_metadata_array_init(&tmd);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &imd;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &tmd;
	ops[5].data.recv_status_on_client.status = &status;
	ops[5].data.recv_status_on_client.status_details = &details;

	grpc_call_error e = grpc_call_start_batch(call, ops, 6, call, NULL);
	if (e != GRPC_CALL_OK) {
		(void)snprintf(err, errlen, "%s: grpc_call_start_batch: error %d", kind_names[kind],
		               (int)e);
		goto out;
	}
	/* The call has its own deadline, so the pluck ends; the extra second
	 * only guards against a lost completion. */
	grpc_event ev = grpc_completion_queue_pluck(u->cq, call,
	                                            deadline_in(u->call_timeout_s + 1.0), NULL);
	if (ev.type != GRPC_OP_COMPLETE) {
		(void)snprintf(err, errlen, "%s: no completion", kind_names[kind]);
		(void)grpc_call_cancel(call, NULL);
		ev = grpc_completion_queue_pluck(u->cq, call, gpr_inf_future(GPR_CLOCK_MONOTONIC),
		                                 NULL);
		goto out;
	}
	if (!ev.success || status != GRPC_STATUS_OK || !recv) {
		(void)snprintf(err, errlen, "%s: %s: %.*s", kind_names[kind], status_name(status),
		               (int)GRPC_SLICE_LENGTH(details),
		               (const char *)GRPC_SLICE_START_PTR(details));
		goto out;
	}
	*out = unpack_buffer(recv, resp_desc);
	if (!*out) {
		(void)snprintf(err, errlen, "%s: undecodable reply", kind_names[kind]);
		goto out;
	}
	rc = 0;
out:
	grpc_call_unref(call);
	grpc_byte_buffer_destroy(send);
	if (recv)
		grpc_byte_buffer_destroy(recv);
	grpc_metadata_array_destroy(&imd);
	grpc_metadata_array_destroy(&tmd);
	grpc_slice_unref(details);
	return rc;
}

static int get_commit_index(const lg_unary *u, uint64_t *out, char *err, size_t errlen)
{
	Budgetd__V1__GetServerInfoRequest req = BUDGETD__V1__GET_SERVER_INFO_REQUEST__INIT;
	ProtobufCMessage *m;

	if (unary_call(u, LG_SERVER_INFO, &req.base,
	               &budgetd__v1__get_server_info_response__descriptor, &m, err, errlen))
		return -1;
	*out = ((Budgetd__V1__GetServerInfoResponse *)m)->commit_index;
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

/* Compares every capability's usage with what the workers observed.
 * Returns the number of mismatches, or -1 when the server could not be
 * asked (err set). */
static long verify_usages(const lg_unary *u, const lg_run *run, const uint64_t *auth,
                          const uint64_t *rec, char *err, size_t errlen)
{
	long bad = 0;

	for (int c = 0; c < run->cfg->caps; c++) {
		Budgetd__V1__GetUsageRequest req = BUDGETD__V1__GET_USAGE_REQUEST__INIT;
		ProtobufCMessage *m;

		req.capability_id = run->cap_ids[c];
		req.grant_index = LG_GRANT_INDEX;
		if (unary_call(u, LG_GET_USAGE, &req.base,
		               &budgetd__v1__get_usage_response__descriptor, &m, err, errlen))
			return -1;
		const Budgetd__V1__UsageRecord *r = ((Budgetd__V1__GetUsageResponse *)m)->usage;
		uint64_t inv = r ? r->invocation_count : 0;
		uint64_t realized = r ? r->total_cost_realized_spend : 0;
		uint64_t exposed = r ? r->total_cost_exposed : 0;
		uint64_t want_exposed = auth[c] >= rec[c] ? (auth[c] - rec[c]) * LG_COST_UNITS : 0;
		if (inv != auth[c] || realized != rec[c] * LG_REALIZED_UNITS ||
		    exposed != want_exposed || auth[c] < rec[c]) {
			if (bad < LG_MISMATCHES_SHOWN)
				fprintf(stderr,
				        "loadgen: verify: %s: server has invocations %" PRIu64
				        ", realized %" PRIu64 ", exposed %" PRIu64
				        "; observed %" PRIu64 " authorized, %" PRIu64
				        " reconciled (want %" PRIu64 ", %" PRIu64 ", %" PRIu64
				        ")\n",
				        run->cap_ids[c], inv, realized, exposed, auth[c], rec[c],
				        auth[c], rec[c] * LG_REALIZED_UNITS, want_exposed);
			bad++;
		}
		protobuf_c_message_free_unpacked(m, NULL);
	}
	return bad;
}

/* ---- CPU accounting ------------------------------------------------------ */

typedef struct lg_cpu {
	double client_s; /* this process, user + system */
	double server_s; /* --server-pid, user + system; < 0 when unknown */
} lg_cpu;

static double process_cpu_s(long pid)
{
	char path[64], line[1024];
	unsigned long utime, stime;

	(void)snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(line, 1, sizeof(line) - 1, f);
	(void)fclose(f);
	line[n] = '\0';
	/* Fields after the command name "(...)": state is field 3; utime and
	 * stime are fields 14 and 15. */
	const char *p = strrchr(line, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
	                 &stime) != 2)
		return -1;
	long hz = sysconf(_SC_CLK_TCK);
	return hz > 0 ? (double)(utime + stime) / (double)hz : -1;
}

static lg_cpu sample_cpu(long server_pid)
{
	lg_cpu c = {.client_s = -1, .server_s = -1};
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) == 0)
		c.client_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		             (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	if (server_pid > 0)
		c.server_s = process_cpu_s(server_pid);
	return c;
}

/* The resident set of `pid` in KiB (VmRSS), or -1 when unknown. */
static long process_rss_kib(long pid)
{
	char path[64], line[256];
	long kib = -1;

	if (pid <= 0)
		return -1;
	(void)snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	(void)fclose(f);
	return kib;
}

/* ---- soak reports -------------------------------------------------------- */

typedef struct lg_soak {
	long rss_start_kib; /* after the warm-up; -1 unknown */
	long rss_end_kib;
	long rss_max_kib;
	int intervals;
} lg_soak;

/* Takes the workers' interval figures and prints one line for the interval
 * that ended `t_s` seconds into the measurement. */
static void soak_report(const lg_config *cfg, lg_worker *workers, double t_s, double len_s,
                        lg_soak *soak, lg_hist *scratch)
{
	uint64_t errors = 0;

	memset(scratch, 0, sizeof(*scratch));
	for (int t = 0; t < cfg->threads; t++) {
		lg_worker *w = &workers[t];
		pthread_mutex_lock(&w->imu);
		hist_merge(scratch, &w->ihist);
		errors += w->ierrors;
		memset(&w->ihist, 0, sizeof(w->ihist));
		w->ierrors = 0;
		pthread_mutex_unlock(&w->imu);
	}
	long rss = process_rss_kib(cfg->server_pid);
	if (rss > soak->rss_max_kib)
		soak->rss_max_kib = rss;
	soak->intervals++;
	if (cfg->json)
		printf("{\"interval\":%d,\"t_s\":%.1f,\"calls_per_s\":%.1f,\"p50_us\":%.1f,"
		       "\"p99_us\":%.1f,\"max_us\":%.1f,\"errors\":%" PRIu64
		       ",\"server_rss_kib\":%ld}\n",
		       soak->intervals, t_s, (double)scratch->count / len_s,
		       hist_quantile_us(scratch, 0.50), hist_quantile_us(scratch, 0.99),
		       (double)scratch->max_ns / 1000.0, errors, rss);
	else
		printf("  [%6.1f s] calls/s %7.0f  p50 %6.0f us  p99 %7.0f us  max %7.0f us  "
		       "errors %" PRIu64 "  server RSS %ld KiB\n",
		       t_s, (double)scratch->count / len_s, hist_quantile_us(scratch, 0.50),
		       hist_quantile_us(scratch, 0.99), (double)scratch->max_ns / 1000.0, errors,
		       rss);
	(void)fflush(stdout);
}

/* Sleeps through the measured window, reporting every interval. */
static void soak_run(const lg_config *cfg, const lg_run *run, lg_worker *workers, lg_soak *soak)
{
	uint64_t step = (uint64_t)(cfg->interval_s * 1e9), start = run->measure_start_ns;
	static lg_hist scratch;

	if (!cfg->json)
		printf("loadgen: soak of %.0f s, a line every %.1f s (server pid %ld)\n",
		       cfg->duration_s, cfg->interval_s, cfg->server_pid);
	for (uint64_t t = start + step; t - step < run->measure_end_ns; t += step) {
		uint64_t end = t < run->measure_end_ns ? t : run->measure_end_ns;
		sleep_until_ns(end);
		soak_report(cfg, workers, (double)(end - start) / 1e9,
		            (double)(end - (t - step)) / 1e9, soak, &scratch);
	}
}

/* ---- command line -------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: loadgen --target HOST:PORT [options]\n"
	        "\n"
	        "Closed-loop gRPC load against budgetd: N unary calls always in flight.\n"
	        "\n"
	        "  --target ADDR        budgetd address (host:port or unix:/path); required\n"
	        "  --mode MODE          health | pairs | pairs-hot (default pairs)\n"
	        "  --inflight N         calls in flight (default 64, at most %d)\n"
	        "  --threads T          threads, each with a completion queue (default 1)\n"
	        "  --channels C         channels = HTTP/2 connections (default 4)\n"
	        "  --caps N             capabilities for pairs (default 1000; pairs-hot: 1)\n"
	        "  --warmup S           seconds before measuring (default 2)\n"
	        "  --duration S         measured seconds (default 10)\n"
	        "  --max-time S         hard cap on the whole run (default warmup +\n"
	        "                       duration + %.0f); calls are cancelled past it\n"
	        "  --call-timeout S     deadline of each call (default 10; 0: none, only\n"
	        "                       the hard cap)\n"
	        "  --cap-prefix STR     capability id prefix (default lg-<random>)\n"
	        "  --server-pid PID     also report the server's CPU use (from /proc)\n"
	        "  --shared             other clients use the daemon: skip the commit\n"
	        "                       index check\n"
	        "  --json               print one JSON line instead of text\n"
	        "  --soak S             soak: measure for S seconds (like --duration),\n"
	        "                       printing a line (JSON with --json) every interval:\n"
	        "                       calls/s, p50, p99, errors, the server's RSS\n"
	        "  --interval S         soak report interval (default %.0f)\n"
	        "  --max-rss-growth X   fail when the server's RSS at the end exceeds X\n"
	        "                       times its RSS after the warm-up (needs\n"
	        "                       --server-pid; a leak check, not a speed check)\n"
	        "  --help               this text\n"
	        "\n"
	        "Exit status: 0 when every call succeeded and the server's state matches\n"
	        "what was observed (and its RSS stayed within --max-rss-growth); 1\n"
	        "otherwise; 2 on bad usage.\n",
	        LG_INFLIGHT_MAX, LG_DRAIN_GRACE_S, LG_INTERVAL_S);
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);

	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

static int parse_seconds(const char *s, double lo, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);

	if (errno || end == s || *end || !(v >= lo) || v > LG_SECONDS_MAX)
		return -1;
	*out = v;
	return 0;
}

static int parse_args(int argc, char **argv, lg_config *cfg)
{
	enum {
		OPT_TARGET = 256,
		OPT_MODE,
		OPT_INFLIGHT,
		OPT_THREADS,
		OPT_CHANNELS,
		OPT_CAPS,
		OPT_WARMUP,
		OPT_DURATION,
		OPT_MAX_TIME,
		OPT_CALL_TIMEOUT,
		OPT_CAP_PREFIX,
		OPT_SERVER_PID,
		OPT_SHARED,
		OPT_JSON,
		OPT_SOAK,
		OPT_INTERVAL,
		OPT_MAX_RSS_GROWTH,
		OPT_HELP,
	};
	static const struct option opts[] = {
	        {"target", required_argument, NULL, OPT_TARGET},
	        {"mode", required_argument, NULL, OPT_MODE},
	        {"inflight", required_argument, NULL, OPT_INFLIGHT},
	        {"threads", required_argument, NULL, OPT_THREADS},
	        {"channels", required_argument, NULL, OPT_CHANNELS},
	        {"caps", required_argument, NULL, OPT_CAPS},
	        {"warmup", required_argument, NULL, OPT_WARMUP},
	        {"duration", required_argument, NULL, OPT_DURATION},
	        {"max-time", required_argument, NULL, OPT_MAX_TIME},
	        {"call-timeout", required_argument, NULL, OPT_CALL_TIMEOUT},
	        {"cap-prefix", required_argument, NULL, OPT_CAP_PREFIX},
	        {"server-pid", required_argument, NULL, OPT_SERVER_PID},
	        {"shared", no_argument, NULL, OPT_SHARED},
	        {"json", no_argument, NULL, OPT_JSON},
	        {"soak", required_argument, NULL, OPT_SOAK},
	        {"interval", required_argument, NULL, OPT_INTERVAL},
	        {"max-rss-growth", required_argument, NULL, OPT_MAX_RSS_GROWTH},
	        {"help", no_argument, NULL, OPT_HELP},
	        {NULL, 0, NULL, 0},
	};
	bool caps_given = false;
	int c, pid = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int bad = 0;
		switch (c) {
		case OPT_TARGET:
			cfg->target = optarg;
			break;
		case OPT_MODE:
			if (strcmp(optarg, "health") == 0)
				cfg->mode = LG_MODE_HEALTH;
			else if (strcmp(optarg, "pairs") == 0)
				cfg->mode = LG_MODE_PAIRS;
			else if (strcmp(optarg, "pairs-hot") == 0)
				cfg->mode = LG_MODE_PAIRS_HOT;
			else
				bad = 1;
			break;
		case OPT_INFLIGHT:
			bad = parse_int(optarg, 1, LG_INFLIGHT_MAX, &cfg->inflight);
			break;
		case OPT_THREADS:
			bad = parse_int(optarg, 1, LG_THREADS_MAX, &cfg->threads);
			break;
		case OPT_CHANNELS:
			bad = parse_int(optarg, 1, LG_CHANNELS_MAX, &cfg->channels);
			break;
		case OPT_CAPS:
			bad = parse_int(optarg, 1, LG_CAPS_MAX, &cfg->caps);
			caps_given = true;
			break;
		case OPT_WARMUP:
			bad = parse_seconds(optarg, 0, &cfg->warmup_s);
			break;
		case OPT_DURATION:
			bad = parse_seconds(optarg, 0.1, &cfg->duration_s);
			break;
		case OPT_MAX_TIME:
			bad = parse_seconds(optarg, 0.1, &cfg->max_time_s);
			break;
		case OPT_CALL_TIMEOUT:
			bad = parse_seconds(optarg, 0, &cfg->call_timeout_s) ||
			      (cfg->call_timeout_s > 0 && cfg->call_timeout_s < 0.01);
			break;
		case OPT_CAP_PREFIX: {
			int n = snprintf(cfg->cap_prefix, sizeof(cfg->cap_prefix), "%s", optarg);
			bad = n < 1 || n >= (int)sizeof(cfg->cap_prefix);
			break;
		}
		case OPT_SERVER_PID:
			bad = parse_int(optarg, 1, INT_MAX, &pid);
			cfg->server_pid = pid;
			break;
		case OPT_SHARED:
			cfg->shared = true;
			break;
		case OPT_JSON:
			cfg->json = true;
			break;
		case OPT_SOAK:
			bad = parse_seconds(optarg, 1, &cfg->duration_s);
			cfg->soak = true;
			break;
		case OPT_INTERVAL:
			bad = parse_seconds(optarg, LG_INTERVAL_MIN_S, &cfg->interval_s);
			break;
		case OPT_MAX_RSS_GROWTH:
			bad = parse_seconds(optarg, 1, &cfg->rss_growth_max) ||
			      cfg->rss_growth_max > LG_RSS_GROWTH_MAX;
			break;
		case OPT_HELP:
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
		if (bad) {
			fprintf(stderr, "loadgen: bad value for --%s: %s\n",
			        opts[c - OPT_TARGET].name, optarg);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "loadgen: unexpected argument: %s\n", argv[optind]);
		return -1;
	}
	if (!cfg->target) {
		fprintf(stderr, "loadgen: --target is required\n");
		return -1;
	}
	if (cfg->threads > cfg->inflight) {
		fprintf(stderr, "loadgen: --threads must be at most --inflight\n");
		return -1;
	}
	if (cfg->mode == LG_MODE_PAIRS_HOT) {
		if (caps_given && cfg->caps != 1) {
			fprintf(stderr, "loadgen: pairs-hot uses one capability\n");
			return -1;
		}
		cfg->caps = 1;
	}
	if (cfg->rss_growth_max > 0 && cfg->server_pid == 0) {
		fprintf(stderr, "loadgen: --max-rss-growth needs --server-pid\n");
		return -1;
	}
	if (cfg->max_time_s == 0)
		cfg->max_time_s = cfg->warmup_s + cfg->duration_s + LG_DRAIN_GRACE_S;
	if (cfg->max_time_s <= cfg->warmup_s + cfg->duration_s) {
		fprintf(stderr, "loadgen: --max-time must exceed --warmup + --duration\n");
		return -1;
	}
	return 0;
}

/* ---- output -------------------------------------------------------------- */

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static const char *mode_name(lg_mode m)
{
	return m == LG_MODE_HEALTH ? "health" : m == LG_MODE_PAIRS ? "pairs" : "pairs-hot";
}

typedef struct lg_result {
	lg_hist all;
	lg_hist per_kind[LG_KINDS];
	uint64_t calls;     /* measured successful calls */
	uint64_t pairs;     /* measured successful reconciles */
	uint64_t errors;    /* whole run */
	uint64_t mutations; /* successful authorizes + reconciles, whole run */
	double window_s;
	double client_cpu_s; /* during the window; < 0 unknown */
	double server_cpu_s;
	const char *verify; /* "ok", "failed", "error" */
	char first_error[LG_ERROR_LEN];
	lg_soak soak; /* server RSS figures (-1: unknown) */
} lg_result;

static void print_text(const lg_config *cfg, const lg_result *r)
{
	double calls_s = (double)r->calls / r->window_s;

	printf("loadgen: mode=%s target=%s inflight=%d threads=%d channels=%d caps=%d "
	       "warmup=%.1fs duration=%.1fs\n",
	       mode_name(cfg->mode), cfg->target, cfg->inflight, cfg->threads, cfg->channels,
	       cfg->caps, cfg->warmup_s, cfg->duration_s);
	printf("  calls/s %.0f (%" PRIu64 " calls in %.2f s)", calls_s, r->calls, r->window_s);
	if (cfg->mode != LG_MODE_HEALTH)
		printf(", pairs/s %.0f", (double)r->pairs / r->window_s);
	printf("\n  latency us: p50 %.0f  p99 %.0f  p999 %.0f  max %.0f  mean %.0f\n",
	       hist_quantile_us(&r->all, 0.50), hist_quantile_us(&r->all, 0.99),
	       hist_quantile_us(&r->all, 0.999), (double)r->all.max_ns / 1000.0,
	       hist_mean_us(&r->all));
	for (int k = 0; k < LG_KINDS; k++) {
		const lg_hist *h = &r->per_kind[k];
		if (!h->count || cfg->mode == LG_MODE_HEALTH)
			continue;
		printf("    %-9s p50 %.0f  p99 %.0f  p999 %.0f  max %.0f\n", kind_names[k],
		       hist_quantile_us(h, 0.50), hist_quantile_us(h, 0.99),
		       hist_quantile_us(h, 0.999), (double)h->max_ns / 1000.0);
	}
	if (r->client_cpu_s >= 0 && r->calls) {
		printf("  cpu: client %.0f%% of a core (%.1f us/call)",
		       100 * r->client_cpu_s / r->window_s,
		       1e6 * r->client_cpu_s / (double)r->calls);
		if (r->server_cpu_s >= 0)
			printf(", server %.0f%% (%.1f us/call)",
			       100 * r->server_cpu_s / r->window_s,
			       1e6 * r->server_cpu_s / (double)r->calls);
		printf("\n");
	}
	if (r->soak.rss_start_kib > 0)
		printf("  server RSS KiB: after warm-up %ld, at the end %ld, max %ld\n",
		       r->soak.rss_start_kib, r->soak.rss_end_kib, r->soak.rss_max_kib);
	printf("  errors %" PRIu64 "; verify %s\n", r->errors, r->verify);
	if (r->first_error[0])
		printf("  first error: %s\n", r->first_error);
}

static void print_json(const lg_config *cfg, const lg_result *r)
{
	printf("{\"mode\":\"%s\",\"inflight\":%d,\"threads\":%d,\"channels\":%d,\"caps\":%d,"
	       "\"warmup_s\":%.3f,\"duration_s\":%.3f,\"calls\":%" PRIu64 ",\"calls_per_s\":%.1f,"
	       "\"pairs_per_s\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
	       "\"max_us\":%.1f,\"mean_us\":%.1f,",
	       mode_name(cfg->mode), cfg->inflight, cfg->threads, cfg->channels,
	       cfg->mode == LG_MODE_HEALTH ? 0 : cfg->caps, cfg->warmup_s, r->window_s, r->calls,
	       (double)r->calls / r->window_s, (double)r->pairs / r->window_s,
	       hist_quantile_us(&r->all, 0.50), hist_quantile_us(&r->all, 0.99),
	       hist_quantile_us(&r->all, 0.999), (double)r->all.max_ns / 1000.0,
	       hist_mean_us(&r->all));
	for (int k = LG_AUTHORIZE; k <= LG_RECONCILE; k++)
		printf("\"%s_p50_us\":%.1f,\"%s_p99_us\":%.1f,", kind_names[k],
		       hist_quantile_us(&r->per_kind[k], 0.50), kind_names[k],
		       hist_quantile_us(&r->per_kind[k], 0.99));
	printf("\"server_rss_start_kib\":%ld,\"server_rss_end_kib\":%ld,\"server_rss_max_kib\":%"
	       "ld,",
	       r->soak.rss_start_kib, r->soak.rss_end_kib, r->soak.rss_max_kib);
	printf("\"client_cpu_pct\":%.1f,\"server_cpu_pct\":%.1f,\"mutations\":%" PRIu64
	       ",\"errors\":%" PRIu64 ",\"verify\":\"%s\",\"first_error\":",
	       r->client_cpu_s >= 0 ? 100 * r->client_cpu_s / r->window_s : -1.0,
	       r->server_cpu_s >= 0 ? 100 * r->server_cpu_s / r->window_s : -1.0, r->mutations,
	       r->errors, r->verify);
	json_string(stdout, r->first_error);
	printf("}\n");
}

/* ---- main ---------------------------------------------------------------- */

static int open_channels(lg_run *run)
{
	/* A local subchannel pool gives every channel its own connection;
	 * retries are off so that no failure is hidden. */
	grpc_arg args[] = {
	        {.type = GRPC_ARG_INTEGER,
	         .key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL,
	         .value.integer = 1},
	        {.type = GRPC_ARG_INTEGER,
	         .key = (char *)GRPC_ARG_ENABLE_RETRIES,
	         .value.integer = 0},
	};
	grpc_channel_args chargs = {.num_args = sizeof(args) / sizeof(args[0]), .args = args};

	for (int i = 0; i < run->cfg->channels; i++) {
		grpc_channel_credentials *creds = grpc_insecure_credentials_create();
		if (!creds) {
			fprintf(stderr, "loadgen: cannot create insecure credentials\n");
			return -1;
		}
		lg_channel *ch = &run->channels[i];
		ch->channel = grpc_channel_create(run->cfg->target, creds, &chargs);
		grpc_channel_credentials_release(creds);
		if (!ch->channel) {
			fprintf(stderr, "loadgen: cannot create a channel to %s\n",
			        run->cfg->target);
			return -1;
		}
		for (int k = 0; k < LG_KINDS; k++) {
			ch->methods[k] = grpc_channel_register_call(ch->channel, kind_methods[k],
			                                            NULL, NULL);
			if (!ch->methods[k]) {
				fprintf(stderr, "loadgen: cannot register %s\n", kind_methods[k]);
				return -1;
			}
		}
	}
	return 0;
}

static void destroy_cq(grpc_completion_queue *cq)
{
	grpc_completion_queue_shutdown(cq);
	for (;;) {
		grpc_event ev =
		        grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
	}
	grpc_completion_queue_destroy(cq);
}

static void destroy_pluck_cq(grpc_completion_queue *cq)
{
	grpc_completion_queue_shutdown(cq);
	for (;;) {
		grpc_event ev = grpc_completion_queue_pluck(
		        cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
	}
	grpc_completion_queue_destroy(cq);
}

int main(int argc, char **argv)
{
	lg_config cfg = {
	        .mode = LG_MODE_PAIRS,
	        .inflight = 64,
	        .threads = 1,
	        .channels = 4,
	        .caps = 1000,
	        .duration_s = 10,
	        .warmup_s = 2,
	        .call_timeout_s = 10,
	        .interval_s = LG_INTERVAL_S,
	};
	lg_soak soak = {.rss_start_kib = -1, .rss_end_kib = -1, .rss_max_kib = -1};
	static lg_run run;
	lg_worker *workers = NULL;
	lg_slot *slots = NULL;
	uint64_t *auth = NULL, *rec = NULL;
	lg_result *res = NULL;
	grpc_completion_queue *ucq = NULL;
	int threads_started = 0, rc = 1;
	uint64_t seed;
	char err[LG_ERROR_LEN] = "";

	if (parse_args(argc, argv, &cfg))
		return 2;
	if (seed_random(&seed))
		return 1;
	if (!cfg.cap_prefix[0])
		(void)snprintf(cfg.cap_prefix, sizeof(cfg.cap_prefix), "lg-%08" PRIx64,
		               next_random(&seed) & 0xffffffffu);

	grpc_init();
	run.cfg = &cfg;
	run.cap_ids = calloc((size_t)cfg.caps, sizeof(*run.cap_ids));
	workers = calloc((size_t)cfg.threads, sizeof(*workers));
	slots = calloc((size_t)cfg.inflight, sizeof(*slots));
	auth = calloc((size_t)cfg.caps, sizeof(*auth));
	rec = calloc((size_t)cfg.caps, sizeof(*rec));
	res = calloc(1, sizeof(*res));
	if (!run.cap_ids || !workers || !slots || !auth || !rec || !res) {
		fprintf(stderr, "loadgen: out of memory\n");
		goto done;
	}
	for (int t = 0; t < cfg.threads; t++)
		pthread_mutex_init(&workers[t].imu, NULL);
	for (int c = 0; c < cfg.caps; c++) {
		int n = snprintf(run.cap_ids[c], LG_CAP_ID_LEN, "%s-%06d", cfg.cap_prefix, c);
		if (n < 0 || n >= LG_CAP_ID_LEN) {
			fprintf(stderr, "loadgen: capability id too long\n");
			goto done;
		}
	}
	if (open_channels(&run))
		goto done;

	/* The commit index before the load (this also connects channel 0). */
	ucq = grpc_completion_queue_create_for_pluck(NULL);
	if (!ucq) {
		fprintf(stderr, "loadgen: cannot create a completion queue\n");
		goto done;
	}
	lg_unary u = {.ch = &run.channels[0],
	              .cq = ucq,
	              .deadline_ns = now_ns() + (uint64_t)(LG_VERIFY_TIME_S * 1e9),
	              .call_timeout_s = cfg.call_timeout_s > 0 ? cfg.call_timeout_s : 10};
	uint64_t index_before = 0, index_after = 0;
	if (get_commit_index(&u, &index_before, err, sizeof(err))) {
		fprintf(stderr, "loadgen: %s: %s\n", cfg.target, err);
		goto done;
	}

	for (int t = 0; t < cfg.threads; t++) {
		lg_worker *w = &workers[t];
		int lo = cfg.inflight * t / cfg.threads, hi = cfg.inflight * (t + 1) / cfg.threads;
		w->id = t;
		w->run = &run;
		w->slots = &slots[lo];
		w->nslots = hi - lo;
		w->rng = next_random(&seed) | 1;
		w->auth_ok = calloc((size_t)cfg.caps, sizeof(*w->auth_ok));
		w->rec_ok = calloc((size_t)cfg.caps, sizeof(*w->rec_ok));
		w->cq = grpc_completion_queue_create_for_next(NULL);
		if (!w->auth_ok || !w->rec_ok || !w->cq) {
			fprintf(stderr, "loadgen: cannot set up worker %d\n", t);
			goto done;
		}
		for (int i = lo; i < hi; i++) {
			slots[i].w = w;
			slots[i].ch = &run.channels[i % cfg.channels];
		}
	}

	run.start_ns = now_ns();
	run.measure_start_ns = run.start_ns + (uint64_t)(cfg.warmup_s * 1e9);
	run.measure_end_ns = run.measure_start_ns + (uint64_t)(cfg.duration_s * 1e9);
	run.hard_end_ns = run.start_ns + (uint64_t)(cfg.max_time_s * 1e9);
	for (; threads_started < cfg.threads; threads_started++) {
		int e = pthread_create(&workers[threads_started].thread, NULL, worker_main,
		                       &workers[threads_started]);
		if (e) {
			fprintf(stderr, "loadgen: pthread_create: %s\n", strerror(e));
			/* The running workers stop at the hard cap at the latest. */
			break;
		}
	}
	if (threads_started == cfg.threads) {
		sleep_until_ns(run.measure_start_ns);
		lg_cpu c0 = sample_cpu(cfg.server_pid);
		soak.rss_start_kib = soak.rss_max_kib = process_rss_kib(cfg.server_pid);
		if (cfg.soak)
			soak_run(&cfg, &run, workers, &soak);
		else
			sleep_until_ns(run.measure_end_ns);
		lg_cpu c1 = sample_cpu(cfg.server_pid);
		soak.rss_end_kib = process_rss_kib(cfg.server_pid);
		if (soak.rss_end_kib > soak.rss_max_kib)
			soak.rss_max_kib = soak.rss_end_kib;
		res->client_cpu_s =
		        c0.client_s >= 0 && c1.client_s >= 0 ? c1.client_s - c0.client_s : -1;
		res->server_cpu_s =
		        c0.server_s >= 0 && c1.server_s >= 0 ? c1.server_s - c0.server_s : -1;
	}
	for (int t = 0; t < threads_started; t++) {
		int e = pthread_join(workers[t].thread, NULL);
		if (e)
			fprintf(stderr, "loadgen: pthread_join: %s\n", strerror(e));
	}
	if (threads_started != cfg.threads)
		goto done;

	/* Merge the workers' observations. */
	res->window_s = cfg.duration_s;
	uint64_t first_ns = UINT64_MAX;
	for (int t = 0; t < cfg.threads; t++) {
		const lg_worker *w = &workers[t];
		for (int k = 0; k < LG_KINDS; k++) {
			hist_merge(&res->per_kind[k], &w->hist[k]);
			hist_merge(&res->all, &w->hist[k]);
		}
		res->errors += w->errors;
		res->mutations += w->ok[LG_AUTHORIZE] + w->ok[LG_RECONCILE];
		for (int c = 0; c < cfg.caps; c++) {
			auth[c] += w->auth_ok[c];
			rec[c] += w->rec_ok[c];
		}
		if (w->first_error[0] && w->first_error_ns < first_ns) {
			first_ns = w->first_error_ns;
			(void)snprintf(res->first_error, sizeof(res->first_error), "%s",
			               w->first_error);
		}
	}
	res->calls = res->all.count;
	res->pairs = res->per_kind[LG_RECONCILE].count;

	/* Verify the server's state against the observations. */
	u.deadline_ns = now_ns() + (uint64_t)(LG_VERIFY_TIME_S * 1e9);
	res->verify = "ok";
	if (cfg.mode != LG_MODE_HEALTH) {
		long bad = verify_usages(&u, &run, auth, rec, err, sizeof(err));
		if (bad < 0) {
			res->verify = "error";
			fprintf(stderr, "loadgen: verify: %s\n", err);
		} else if (bad > 0) {
			res->verify = "failed";
			fprintf(stderr, "loadgen: verify: %ld of %d capabilities differ%s\n", bad,
			        cfg.caps,
			        res->errors
			                ? " (expected after failed calls: their outcome is unknown)"
			                : "");
		}
	}
	if (get_commit_index(&u, &index_after, err, sizeof(err))) {
		res->verify = "error";
		fprintf(stderr, "loadgen: verify: %s\n", err);
	} else if (!cfg.shared && index_after - index_before != res->mutations) {
		res->verify = "failed";
		fprintf(stderr,
		        "loadgen: verify: commit index grew by %" PRIu64 " (%" PRIu64 " -> %" PRIu64
		        ") but %" PRIu64 " mutations were acknowledged\n",
		        index_after - index_before, index_before, index_after, res->mutations);
		if (res->errors)
			fprintf(stderr,
			        "loadgen: verify: (expected after failed calls: their outcome "
			        "is unknown)\n");
	}

	/* A leak check: the server's memory after the load against after the
	 * warm-up. */
	bool rss_ok = true;
	if (cfg.rss_growth_max > 0) {
		rss_ok =
		        soak.rss_start_kib > 0 && soak.rss_end_kib > 0 &&
		        (double)soak.rss_end_kib <= cfg.rss_growth_max * (double)soak.rss_start_kib;
		if (!rss_ok)
			fprintf(stderr,
			        "loadgen: server RSS grew from %ld KiB after the warm-up to %ld "
			        "KiB at "
			        "the end: more than %.2fx\n",
			        soak.rss_start_kib, soak.rss_end_kib, cfg.rss_growth_max);
	}
	if (res->errors)
		fprintf(stderr, "loadgen: %" PRIu64 " failed calls; first: %s\n", res->errors,
		        res->first_error);
	res->soak = soak;
	if (cfg.json)
		print_json(&cfg, res);
	else
		print_text(&cfg, res);
	rc = res->errors == 0 && strcmp(res->verify, "ok") == 0 && rss_ok ? 0 : 1;

done:
	if (fflush(stdout) != 0)
		rc = 1;
	for (int t = 0; workers && t < cfg.threads; t++) {
		pthread_mutex_destroy(&workers[t].imu);
		if (workers[t].cq)
			destroy_cq(workers[t].cq);
		free(workers[t].auth_ok);
		free(workers[t].rec_ok);
	}
	if (ucq)
		destroy_pluck_cq(ucq);
	for (int i = 0; i < LG_CHANNELS_MAX; i++)
		if (run.channels[i].channel)
			grpc_channel_destroy(run.channels[i].channel);
	free(run.cap_ids);
	free(workers);
	free(slots);
	free(auth);
	free(rec);
	free(res);
	grpc_shutdown();
	return rc;
}
