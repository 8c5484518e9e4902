/* test_disconnect.c - clients that give up on a call: a 1 ms deadline, a
 * cancel right after the request went out, a channel destroyed with calls
 * pending, a connection cut in the middle of calls. Whatever the daemon
 * made of such a call, it is all or nothing: a retry with the same
 * event_id either replays it (it was applied, exactly as a successful
 * first answer said) or applies it fresh. Afterwards every event_id is in
 * the log once, the usage row is the fold of the mutations, the daemon
 * answers health checks, exits cleanly (ASan/LSan in the sanitizer build)
 * and `budgetd --verify` finds its ledger consistent.
 *
 * Cancels and disconnects use the gRPC C core directly: the C client is
 * synchronous. A connection is cut with the byte-forwarding proxy of the
 * client tests (tests/client/proxy.c), stopped while calls are in flight.
 */
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budgetd/v1/budget_authority.pb-c.h"
#include "fixture.h"
#include "proxy.h"

#define CAP              "dc"
#define ID_SIZE          48
#define OPS_MAX          4096
#define THREADS          4
#define UNITS            10
#define REALIZED         4
#define WAIT_MS          30000 /* any one completion, at most */
#define SVC              "/budgetd.v1.BudgetAuthority/"
#define REQUEST_BYTES    512
#define SHORT_DEADLINE   1 /* ms */
#define CUT_ROUNDS       6
#define CUT_ACKS         12 /* acknowledged calls in a round before the cut */
#define CUT_OPS_PER_CALL 40 /* calls a thread makes in a round, at most */

/* One mutation, its first answer and what a retry found. */
typedef struct dop {
	bc_mutation_kind kind;
	uint64_t grant;
	char hold_id[ID_SIZE]; /* "" for increment */
	char event_id[ID_SIZE];
	uint64_t units;
	uint64_t realized;
	int first;     /* gRPC status of the first attempt */
	char why[128]; /* its message */
	bool first_has_ci;
	uint64_t first_ci;
	bool replayed; /* the retry was a replay */
} dop;

/* Code that may run on other threads does not assert (criterion's asserts
 * belong to the test's thread): it records the first failure here, and
 * returns false; the test's thread asserts. */
static char failure[256];
static pthread_mutex_t failure_mu = PTHREAD_MUTEX_INITIALIZER;

__attribute__((format(printf, 1, 2))) static bool failed(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&failure_mu);
	if (!failure[0]) {
		va_start(ap, fmt);
		vsnprintf(failure, sizeof(failure), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&failure_mu);
	return false;
}

#define need(cond, ...)                                                                            \
	do {                                                                                       \
		if (!(cond))                                                                       \
			return failed(__VA_ARGS__);                                                \
	} while (0)

static dop ops[OPS_MAX];
static size_t n_ops;
static pthread_mutex_t ops_mu = PTHREAD_MUTEX_INITIALIZER;

static dop *new_op(bc_mutation_kind kind, uint64_t grant, const char *hold, const char *tag)
{
	pthread_mutex_lock(&ops_mu);
	size_t i = n_ops < OPS_MAX ? n_ops++ : OPS_MAX;
	pthread_mutex_unlock(&ops_mu);
	if (i == OPS_MAX)
		abort(); /* the tests make far fewer */
	dop *o = &ops[i];
	memset(o, 0, sizeof(*o));
	o->kind = kind;
	o->grant = grant;
	snprintf(o->hold_id, sizeof(o->hold_id), "%s", hold ? hold : "");
	snprintf(o->event_id, sizeof(o->event_id), "%s-%zu", tag, i);
	o->units = kind == BC_MUTATION_KIND_INCREMENT_INVOCATION ? 0 : UNITS;
	o->realized = kind == BC_MUTATION_KIND_RECONCILE_SPEND ? REALIZED : 0;
	return o;
}

/* ---- through the C client ---- */

/* Sends `o` once; 0 or minus a gRPC status. */
static int send_op(bc_client *c, int deadline_ms, const dop *o, bool *replayed, bool *has_ci,
                   uint64_t *ci, bc_error *err)
{
	const char *hold = o->hold_id[0] ? o->hold_id : NULL;
	bc_commit_metadata md = {0};
	int rc;

	switch (o->kind) {
	case BC_MUTATION_KIND_AUTHORIZE_EXPOSURE: {
		bc_authorize_hold_request req = {.capability_id = CAP,
		                                 .grant_index = o->grant,
		                                 .requested_exposure_units = o->units,
		                                 .hold_id = hold,
		                                 .event_id = o->event_id};
		bc_authorize_hold_result r;
		rc = bc_authorize_hold(c, &req, deadline_ms, &r, err);
		if (rc == 0 && !r.authorized) {
			rc = -BC_STATUS_INTERNAL;
			snprintf(err->message, sizeof(err->message), "denied without a limit");
		}
		md = r.metadata;
		*replayed = md.replayed, *has_ci = md.has_budget_commit_index;
		*ci = md.budget_commit_index;
		bc_authorize_hold_result_free(&r);
		return rc;
	}
	case BC_MUTATION_KIND_INCREMENT_INVOCATION: {
		bc_increment_invocation_request req = {
		        .capability_id = CAP, .grant_index = o->grant, .event_id = o->event_id};
		bc_increment_invocation_result r;
		rc = bc_increment_invocation(c, &req, deadline_ms, &r, err);
		md = r.metadata;
		*replayed = md.replayed, *has_ci = md.has_budget_commit_index;
		*ci = md.budget_commit_index;
		bc_increment_invocation_result_free(&r);
		return rc;
	}
	default: {
		bc_hold_mutation_result r;
		if (o->kind == BC_MUTATION_KIND_RELEASE_EXPOSURE) {
			bc_release_hold_request req = {.capability_id = CAP,
			                               .grant_index = o->grant,
			                               .hold_id = hold,
			                               .released_exposure_units = o->units,
			                               .event_id = o->event_id};
			rc = bc_release_hold(c, &req, deadline_ms, &r, err);
		} else {
			bc_reconcile_hold_request req = {.capability_id = CAP,
			                                 .grant_index = o->grant,
			                                 .hold_id = hold,
			                                 .exposed_cost_units = o->units,
			                                 .realized_spend_units = o->realized,
			                                 .event_id = o->event_id};
			rc = bc_reconcile_hold(c, &req, deadline_ms, &r, err);
		}
		md = r.metadata;
		*replayed = md.replayed, *has_ci = md.has_budget_commit_index;
		*ci = md.budget_commit_index;
		bc_hold_mutation_result_free(&r);
		return rc;
	}
	}
}

/* A first attempt may only succeed or end as a client that gave up would
 * (gRPC ends the calls of a destroyed channel with UNKNOWN, "Channel
 * Destroyed"). */
static bool gave_up_status(int code)
{
	return code == BC_STATUS_DEADLINE_EXCEEDED || code == BC_STATUS_CANCELLED ||
	       code == BC_STATUS_UNAVAILABLE || code == BC_STATUS_UNKNOWN;
}

static void first_attempt(bc_client *c, int deadline_ms, dop *o)
{
	bc_error err = {0};
	bool replayed = false;
	int rc = send_op(c, deadline_ms, o, &replayed, &o->first_has_ci, &o->first_ci, &err);

	o->first = rc == 0 ? 0 : err.code;
	snprintf(o->why, sizeof(o->why), "%.120s", rc == 0 ? "" : err.message);
	if (rc == 0 && replayed)
		o->first = -1; /* a fresh event_id cannot be a replay: checked later */
}

/* Holds opened with a patient client, for the calls that settle them. */
static void open_holds(bc_client *c, uint64_t grant, int n, char (*ids)[ID_SIZE])
{
	for (int i = 0; i < n; i++) {
		char hold[ID_SIZE];
		snprintf(hold, sizeof(hold), "open-g%" PRIu64 "-%d-%zu", grant, i, n_ops);
		dop *o = new_op(BC_MUTATION_KIND_AUTHORIZE_EXPOSURE, grant, hold, "setup");
		first_attempt(c, 0, o);
		cr_assert_eq(o->first, 0, "setup authorize %s: status %d", o->event_id, o->first);
		snprintf(ids[i], ID_SIZE, "%s", hold);
	}
}

/* ---- the verdict ---- */

typedef struct fold {
	uint32_t count;
	uint64_t exposed;
	uint64_t realized;
} fold;

/* Retries every mutation, then checks the log, the fold and the health. */
static void retry_all_and_check(void)
{
	bc_client *c = fx_client(daemon_.tcp_addr, true);
	size_t applied_before = 0, fresh = 0, gave_up = 0;
	fold want[THREADS + 1] = {{0}};
	bc_error err;

	for (size_t i = 0; i < n_ops; i++) {
		dop *o = &ops[i];
		bool has_ci;
		uint64_t ci;
		cr_assert_neq(o->first, -1, "%s: the first attempt was answered as a replay",
		              o->event_id);
		cr_assert(o->first == 0 || gave_up_status(o->first), "%s: first attempt %s: %s",
		          o->event_id, bc_status_name(o->first), o->why);
		int rc = send_op(c, 0, o, &o->replayed, &has_ci, &ci, &err);
		cr_assert_eq(rc, 0, "retry of %s (first attempt %s): %s: %s", o->event_id,
		             bc_status_name(o->first), bc_status_name(err.code), err.message);
		cr_assert(has_ci, "%s: no commit index", o->event_id);
		if (o->first == 0) {
			cr_assert(o->replayed,
			          "%s was acknowledged, yet its retry applied it again",
			          o->event_id);
			cr_assert_eq(ci, o->first_ci, "%s: commit index %" PRIu64 ", then %" PRIu64,
			             o->event_id, o->first_ci, ci);
		} else {
			gave_up++;
			applied_before += o->replayed;
			fresh += !o->replayed;
		}
		fold *f = &want[o->grant];
		switch (o->kind) {
		case BC_MUTATION_KIND_AUTHORIZE_EXPOSURE:
			f->count++;
			f->exposed += o->units;
			break;
		case BC_MUTATION_KIND_INCREMENT_INVOCATION:
			f->count++;
			break;
		case BC_MUTATION_KIND_RECONCILE_SPEND:
			f->realized += o->realized;
			f->exposed -= o->units;
			break;
		default:
			f->exposed -= o->units;
			break;
		}
	}
	fprintf(stderr,
	        "disconnect: %zu mutations, %zu given up by their client: %zu had been applied "
	        "(their retry replayed), %zu had not (their retry applied them)\n",
	        n_ops, gave_up, applied_before, fresh);

	/* Every event_id once in the log, nothing else. */
	char *seen = calloc(n_ops, 1);
	size_t events = 0;
	bc_list_mutation_events_request req = {.limit = 1000};
	cr_assert_not_null(seen);
	for (;;) {
		bc_event_list list;
		cr_assert_eq(bc_list_mutation_events(c, &req, 0, &list, &err), 0, "%s",
		             err.message);
		for (size_t k = 0; k < list.count; k++) {
			const char *id = list.events[k].event_id, *dash = strrchr(id, '-');
			size_t i = dash ? strtoul(dash + 1, NULL, 10) : n_ops;
			cr_assert(i < n_ops && strcmp(ops[i].event_id, id) == 0, "unknown event %s",
			          id);
			cr_assert_not(seen[i], "%s is in the log twice", id);
			seen[i] = 1;
		}
		events += list.count;
		size_t got = list.count;
		req.after_commit_index = list.next_after_commit_index;
		bc_event_list_free(&list);
		if (got == 0)
			break;
	}
	cr_assert_eq(events, n_ops, "%zu events for %zu mutations", events, n_ops);
	free(seen);

	/* The usage rows are the fold of the mutations, each applied once. */
	for (uint64_t g = 0; g <= THREADS; g++) {
		bc_usage_result u;
		cr_assert_eq(bc_get_usage(c, CAP, g, 0, &u, &err), 0, "%s", err.message);
		if (want[g].count || want[g].exposed || want[g].realized) {
			cr_assert(u.found, "grant %" PRIu64 ": no usage row", g);
			cr_assert(u.usage.invocation_count == want[g].count &&
			                  u.usage.total_cost_exposed == want[g].exposed &&
			                  u.usage.total_cost_realized_spend == want[g].realized,
			          "grant %" PRIu64 ": usage %u/%" PRIu64 "/%" PRIu64
			          ", fold %u/%" PRIu64 "/%" PRIu64,
			          g, u.usage.invocation_count, u.usage.total_cost_exposed,
			          u.usage.total_cost_realized_spend, want[g].count, want[g].exposed,
			          want[g].realized);
		}
		bc_usage_result_free(&u);
	}

	bc_serving_status st;
	cr_assert_eq(bc_health_check(c, NULL, 0, &st, &err), 0, "health: %s", err.message);
	cr_assert_eq(st, BC_SERVING_STATUS_SERVING);
	bc_client_free(c);
}

static void setup(void)
{
	n_ops = 0;
	fx_setup();
}

/* A clean exit (leaks make it fail under LSan), then an offline check. */
static void teardown(void)
{
	char out[4096];

	bc_client_free(client);
	client = NULL;
	if (daemon_.pid)
		fx_stop();
	int rc = td_run_once((const char *const[]){"--verify", "--db", daemon_.db, NULL}, out,
	                     sizeof(out), 120000);
	cr_assert_eq(rc, 0, "budgetd --verify: %d: %s", rc, out);
	td_cleanup(&daemon_);
}

TestSuite(disconnect, .init = setup, .fini = teardown, .timeout = 300);

/* ---- 1 ms deadlines, and clients freed while others' calls are pending ---- */

#define DEADLINE_HOLDS 16 /* per thread: each settled by one call */

typedef struct hurried {
	uint64_t grant;
	char holds[DEADLINE_HOLDS][ID_SIZE];
} hurried;

static bc_client *short_client(void)
{
	bc_options o = {
	        .target = daemon_.tcp_addr, .deadline_ms = SHORT_DEADLINE, .disable_retries = true};
	bc_client *c = NULL;
	bc_error err;

	return bc_client_new(&o, &c, &err) == 0 ? c : NULL;
}

static void *hurry(void *p)
{
	hurried *h = p;
	bc_client *c = short_client();

	for (int i = 0; i < DEADLINE_HOLDS && c; i++) {
		char hold[ID_SIZE];
		snprintf(hold, sizeof(hold), "hurried-g%" PRIu64 "-%d", h->grant, i);
		first_attempt(c, 0,
		              new_op(BC_MUTATION_KIND_AUTHORIZE_EXPOSURE, h->grant, hold, "dl"));
		first_attempt(c, 0,
		              new_op(i % 2 ? BC_MUTATION_KIND_RECONCILE_SPEND
		                           : BC_MUTATION_KIND_RELEASE_EXPOSURE,
		                     h->grant, h->holds[i], "dl"));
		first_attempt(c, 0,
		              new_op(BC_MUTATION_KIND_INCREMENT_INVOCATION, h->grant, NULL, "dl"));
		if (i % 4 == 3) {
			/* a new connection, while the other threads' calls run */
			bc_client_free(c);
			c = short_client();
		}
	}
	bc_client_free(c);
	return NULL;
}

Test(disconnect, calls_past_a_one_ms_deadline_are_applied_fully_or_not_at_all)
{
	static hurried hs[THREADS];
	pthread_t threads[THREADS];

	for (int t = 0; t < THREADS; t++) {
		hs[t].grant = (uint64_t)t;
		open_holds(client, hs[t].grant, DEADLINE_HOLDS, hs[t].holds);
	}
	for (int t = 0; t < THREADS; t++)
		cr_assert_eq(pthread_create(&threads[t], NULL, hurry, &hs[t]), 0);
	for (int t = 0; t < THREADS; t++)
		pthread_join(threads[t], NULL);
	retry_all_and_check();
}

/* ---- raw calls: cancelled, or their channel destroyed ---- */

typedef struct raw_call {
	dop *o;
	grpc_call *call;
	uint8_t request[REQUEST_BYTES];
	grpc_byte_buffer *send;
	grpc_byte_buffer *recv;
	grpc_metadata_array md, trailing;
	grpc_status_code code;
	grpc_slice details;
} raw_call;

static size_t pack_request(const dop *o, uint8_t *buf)
{
	const ProtobufCMessage *m;
	Budgetd__V1__AuthorizeHoldRequest a = BUDGETD__V1__AUTHORIZE_HOLD_REQUEST__INIT;
	Budgetd__V1__ReleaseHoldRequest r = BUDGETD__V1__RELEASE_HOLD_REQUEST__INIT;

	if (o->kind == BC_MUTATION_KIND_AUTHORIZE_EXPOSURE) {
		a.capability_id = (char *)CAP;
		a.grant_index = o->grant;
		a.requested_exposure_units = o->units;
		a._hold_id_case = BUDGETD__V1__AUTHORIZE_HOLD_REQUEST___HOLD_ID_HOLD_ID;
		a.hold_id = (char *)o->hold_id;
		a._event_id_case = BUDGETD__V1__AUTHORIZE_HOLD_REQUEST___EVENT_ID_EVENT_ID;
		a.event_id = (char *)o->event_id;
		m = &a.base;
	} else {
		r.capability_id = (char *)CAP;
		r.grant_index = o->grant;
		r.released_exposure_units = o->units;
		r._hold_id_case = BUDGETD__V1__RELEASE_HOLD_REQUEST___HOLD_ID_HOLD_ID;
		r.hold_id = (char *)o->hold_id;
		r._event_id_case = BUDGETD__V1__RELEASE_HOLD_REQUEST___EVENT_ID_EVENT_ID;
		r.event_id = (char *)o->event_id;
		m = &r.base;
	}
	if (protobuf_c_message_get_packed_size(m) > REQUEST_BYTES)
		return 0;
	return protobuf_c_message_pack(m, buf);
}

/* Starts the call of `o` on `ch`. false (a failure recorded) if it could
 * not. */
static bool raw_start(raw_call *rc, grpc_channel *ch, grpc_completion_queue *cq, dop *o)
{
	const char *method = o->kind == BC_MUTATION_KIND_AUTHORIZE_EXPOSURE ? SVC "AuthorizeHold"
	                                                                    : SVC "ReleaseHold";
	grpc_slice path = grpc_slice_from_static_string(method);
	gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
	                                     gpr_time_from_millis(WAIT_MS / 2, GPR_TIMESPAN));
	grpc_op batch[6];

	memset(rc, 0, sizeof(*rc));
	rc->o = o;
	size_t len = pack_request(o, rc->request);
	need(len > 0, "%s: the request does not fit %d bytes", o->event_id, REQUEST_BYTES);
	grpc_slice body = grpc_slice_from_static_buffer(rc->request, len);
	rc->send = grpc_raw_byte_buffer_create(&body, 1);
	rc->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, path, NULL,
	                                    deadline, NULL);
	need(rc->call, "%s: cannot create the call", o->event_id);
	grpc_metadata_array_init(&rc->md);
	grpc_metadata_array_init(&rc->trailing);
	rc->details = grpc_empty_slice();
	memset(batch, 0, sizeof(batch));
	batch[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	batch[1].op = GRPC_OP_SEND_MESSAGE;
	batch[1].data.send_message.send_message = rc->send;
	batch[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	batch[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	batch[3].data.recv_initial_metadata.recv_initial_metadata = &rc->md;
	batch[4].op = GRPC_OP_RECV_MESSAGE;
	batch[4].data.recv_message.recv_message = &rc->recv;
	batch[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	batch[5].data.recv_status_on_client.trailing_metadata = &rc->trailing;
	batch[5].data.recv_status_on_client.status = &rc->code;
	batch[5].data.recv_status_on_client.status_details = &rc->details;
	need(grpc_call_start_batch(rc->call, batch, 6, rc, NULL) == GRPC_CALL_OK,
	     "%s: cannot start the call", o->event_id);
	return true;
}

/* Non-blocking: true when the call completed. */
static bool raw_poll(raw_call *rc, grpc_completion_queue *cq)
{
	return grpc_completion_queue_pluck(cq, rc, gpr_inf_past(GPR_CLOCK_REALTIME), NULL).type ==
	       GRPC_OP_COMPLETE;
}

/* Reads a successful reply into the first answer of rc->o. */
static bool raw_answer(raw_call *rc)
{
	grpc_byte_buffer_reader reader;
	const Budgetd__V1__CommitMetadata *md = NULL;
	ProtobufCMessage *m = NULL;

	need(rc->recv && grpc_byte_buffer_reader_init(&reader, rc->recv), "%s: OK without a reply",
	     rc->o->event_id);
	grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	if (rc->o->kind == BC_MUTATION_KIND_AUTHORIZE_EXPOSURE) {
		Budgetd__V1__AuthorizeHoldResponse *r =
		        budgetd__v1__authorize_hold_response__unpack(NULL, GRPC_SLICE_LENGTH(all),
		                                                     GRPC_SLICE_START_PTR(all));
		if (r && r->authorized)
			md = r->authorized->metadata;
		m = r ? &r->base : NULL;
	} else {
		Budgetd__V1__HoldMutationResponse *r = budgetd__v1__hold_mutation_response__unpack(
		        NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
		if (r)
			md = r->metadata;
		m = r ? &r->base : NULL;
	}
	grpc_slice_unref(all);
	if (md) {
		rc->o->first_has_ci =
		        md->_budget_commit_index_case ==
		        BUDGETD__V1__COMMIT_METADATA___BUDGET_COMMIT_INDEX_BUDGET_COMMIT_INDEX;
		rc->o->first_ci = md->budget_commit_index;
		if (md->replayed)
			rc->o->first = -1;
	}
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	need(md, "%s: an undecodable or denied reply", rc->o->event_id);
	return true;
}

/* Waits (bounded) for the completion, records the first answer, frees.
 * false (a failure recorded) when it did not complete or was not right. */
static bool raw_finish(raw_call *rc, grpc_completion_queue *cq, bool completed)
{
	bool ok = true;

	if (!completed) {
		gpr_timespec until = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
		                                  gpr_time_from_millis(WAIT_MS, GPR_TIMESPAN));
		grpc_event ev = grpc_completion_queue_pluck(cq, rc, until, NULL);
		need(ev.type == GRPC_OP_COMPLETE, "%s: no completion in %d ms", rc->o->event_id,
		     WAIT_MS);
	}
	rc->o->first = rc->code;
	char *why = grpc_slice_to_c_string(rc->details);
	snprintf(rc->o->why, sizeof(rc->o->why), "%.120s", why);
	gpr_free(why);
	if (rc->code == GRPC_STATUS_OK)
		ok = raw_answer(rc);
	if (rc->recv)
		grpc_byte_buffer_destroy(rc->recv);
	grpc_byte_buffer_destroy(rc->send);
	grpc_metadata_array_destroy(&rc->md);
	grpc_metadata_array_destroy(&rc->trailing);
	grpc_slice_unref(rc->details);
	grpc_call_unref(rc->call);
	return ok;
}

static grpc_channel *raw_channel(grpc_channel_credentials **creds)
{
	/* A channel of its own (own connection), not shared with others. */
	grpc_arg args[] = {{.type = GRPC_ARG_INTEGER,
	                    .key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL,
	                    .value.integer = 1}};
	grpc_channel_args chargs = {.num_args = 1, .args = args};

	*creds = grpc_insecure_credentials_create();
	return grpc_channel_create(daemon_.tcp_addr, *creds, &chargs);
}

static void destroy_cq(grpc_completion_queue *cq)
{
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
	               .type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
}

/* A health check on `ch`, to its (bounded) end. false (a failure recorded)
 * when it did not answer SERVING in time. */
static bool health_on(grpc_channel *ch, grpc_completion_queue *cq)
{
	static const uint8_t empty[1];
	grpc_slice path = grpc_slice_from_static_string("/grpc.health.v1.Health/Check");
	gpr_timespec until = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
	                                  gpr_time_from_millis(WAIT_MS, GPR_TIMESPAN));
	grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, path,
	                                           NULL, until, NULL);
	grpc_slice body = grpc_slice_from_static_buffer(empty, 0);
	grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&body, 1), *recv = NULL;
	grpc_metadata_array md, trailing;
	grpc_status_code code = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice();
	grpc_op batch[6];

	grpc_metadata_array_init(&md);
	grpc_metadata_array_init(&trailing);
	memset(batch, 0, sizeof(batch));
	batch[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	batch[1].op = GRPC_OP_SEND_MESSAGE;
	batch[1].data.send_message.send_message = send;
	batch[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	batch[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	batch[3].data.recv_initial_metadata.recv_initial_metadata = &md;
	batch[4].op = GRPC_OP_RECV_MESSAGE;
	batch[4].data.recv_message.recv_message = &recv;
	batch[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	batch[5].data.recv_status_on_client.trailing_metadata = &trailing;
	batch[5].data.recv_status_on_client.status = &code;
	batch[5].data.recv_status_on_client.status_details = &details;
	need(call && grpc_call_start_batch(call, batch, 6, call, NULL) == GRPC_CALL_OK,
	     "cannot start a health check");
	need(grpc_completion_queue_pluck(cq, call, until, NULL).type == GRPC_OP_COMPLETE,
	     "no health answer in %d ms", WAIT_MS);
	if (recv)
		grpc_byte_buffer_destroy(recv);
	grpc_byte_buffer_destroy(send);
	grpc_metadata_array_destroy(&md);
	grpc_metadata_array_destroy(&trailing);
	grpc_slice_unref(details);
	grpc_call_unref(call);
	need(code == GRPC_STATUS_OK, "health: status %d", (int)code);
	return true;
}

#define CANCELS      96
#define CANCEL_HOLDS (CANCELS / 2)

Test(disconnect, calls_cancelled_mid_flight_are_applied_fully_or_not_at_all)
{
	static char holds[CANCEL_HOLDS][ID_SIZE];
	grpc_channel_credentials *creds;
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_channel *ch;
	raw_call rc;

	grpc_init();
	ch = raw_channel(&creds);
	cr_assert(health_on(ch, cq), "%s", failure); /* connected */
	open_holds(client, 0, CANCEL_HOLDS, holds);
	for (int i = 0; i < CANCELS; i++) {
		char hold[ID_SIZE];
		snprintf(hold, sizeof(hold), "cancelled-%d", i);
		dop *o = i % 2 ? new_op(BC_MUTATION_KIND_RELEASE_EXPOSURE, 0, holds[i / 2], "cx")
		               : new_op(BC_MUTATION_KIND_AUTHORIZE_EXPOSURE, 0, hold, "cx");
		cr_assert(raw_start(&rc, ch, cq, o), "%s", failure);
		/* Cancel at different points: at once, after a few looks at
		 * the queue, or once budgetd answered a health check sent on
		 * the same connection after the call (it has read the call by
		 * then: its mutation is queued, committing or committed). */
		bool completed = false;
		if (i % 3 == 1)
			for (int k = 0; k < i % 12 && !completed; k++)
				completed = raw_poll(&rc, cq);
		else if (i % 3 == 2)
			cr_assert(health_on(ch, cq), "%s", failure);
		if (!completed)
			grpc_call_cancel(rc.call, NULL);
		cr_assert(raw_finish(&rc, cq, completed), "%s", failure);
	}
	grpc_channel_destroy(ch);
	grpc_channel_credentials_release(creds);
	destroy_cq(cq);
	grpc_shutdown_blocking(); /* LSan runs at exit: finish the cleanup first */
	retry_all_and_check();
}

#define DESTROY_ROUNDS 12
#define CALLS_PENDING  6

static void *destroy_with_calls_pending(void *p)
{
	uint64_t grant = (uint64_t)(uintptr_t)p;
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	raw_call rcs[CALLS_PENDING];

	for (int r = 0; r < DESTROY_ROUNDS; r++) {
		grpc_channel_credentials *creds;
		grpc_channel *ch = raw_channel(&creds);
		/* Destroy the channel at different points: before it connected,
		 * with the calls on the way, or once budgetd has read them (it
		 * answered a health check sent after them). */
		if (r % 3 != 0 && !health_on(ch, cq))
			return NULL; /* failed: the test's thread reports it */
		for (int k = 0; k < CALLS_PENDING; k++) {
			char hold[ID_SIZE];
			snprintf(hold, sizeof(hold), "orphan-g%" PRIu64 "-%d-%d", grant, r, k);
			dop *o = new_op(BC_MUTATION_KIND_AUTHORIZE_EXPOSURE, grant, hold, "orphan");
			if (!raw_start(&rcs[k], ch, cq, o))
				return NULL;
		}
		if (r % 3 == 2 && !health_on(ch, cq))
			return NULL;
		grpc_channel_destroy(ch);
		grpc_channel_credentials_release(creds);
		for (int k = 0; k < CALLS_PENDING; k += 2)
			grpc_call_cancel(rcs[k].call, NULL);
		for (int k = 0; k < CALLS_PENDING; k++)
			if (!raw_finish(&rcs[k], cq, false))
				return NULL;
	}
	destroy_cq(cq);
	return NULL;
}

Test(disconnect, channels_destroyed_with_calls_pending_apply_each_fully_or_not_at_all)
{
	pthread_t threads[THREADS];

	grpc_init();
	for (int t = 0; t < THREADS; t++)
		cr_assert_eq(pthread_create(&threads[t], NULL, destroy_with_calls_pending,
		                            (void *)(uintptr_t)t),
		             0);
	for (int t = 0; t < THREADS; t++)
		pthread_join(threads[t], NULL);
	grpc_shutdown_blocking(); /* LSan runs at exit: finish the cleanup first */
	cr_assert_not(failure[0], "%s", failure);
	retry_all_and_check();
}

/* ---- a connection cut while calls are in flight ---- */

static pthread_mutex_t cut_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cut_cond = PTHREAD_COND_INITIALIZER;
static int cut_acks;

typedef struct cutter {
	bc_client *c;
	uint64_t grant;
	int round;
} cutter;

static void *call_until_cut(void *p)
{
	cutter *k = p;

	for (int i = 0; i < CUT_OPS_PER_CALL; i++) {
		char hold[ID_SIZE];
		snprintf(hold, sizeof(hold), "cut-g%" PRIu64 "-%d-%d", k->grant, k->round, i);
		dop *o = new_op(i % 3 == 2 ? BC_MUTATION_KIND_INCREMENT_INVOCATION
		                           : BC_MUTATION_KIND_AUTHORIZE_EXPOSURE,
		                k->grant, i % 3 == 2 ? NULL : hold, "cut");
		first_attempt(k->c, 0, o);
		pthread_mutex_lock(&cut_mu);
		cut_acks += o->first == 0;
		pthread_cond_broadcast(&cut_cond);
		pthread_mutex_unlock(&cut_mu);
		if (o->first != 0)
			break; /* cut */
	}
	return NULL;
}

Test(disconnect, a_connection_cut_mid_call_applies_each_call_fully_or_not_at_all)
{
	for (int r = 0; r < CUT_ROUNDS; r++) {
		static cutter ks[THREADS];
		pthread_t threads[THREADS];
		proxy px;

		cr_assert_eq(proxy_start(&px, daemon_.tcp_addr), 0);
		pthread_mutex_lock(&cut_mu);
		cut_acks = 0;
		pthread_mutex_unlock(&cut_mu);
		for (int t = 0; t < THREADS; t++) {
			ks[t] = (cutter){
			        .c = fx_client(px.addr, false), .grant = (uint64_t)t, .round = r};
			cr_assert_eq(pthread_create(&threads[t], NULL, call_until_cut, &ks[t]), 0);
		}
		/* Cut after a few answers, with the threads' next calls in flight. */
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += WAIT_MS / 1000;
		pthread_mutex_lock(&cut_mu);
		int wrc = 0;
		while (cut_acks < CUT_ACKS + r && wrc == 0)
			wrc = pthread_cond_timedwait(&cut_cond, &cut_mu, &until);
		pthread_mutex_unlock(&cut_mu);
		proxy_stop(&px);
		for (int t = 0; t < THREADS; t++) {
			pthread_join(threads[t], NULL);
			bc_client_free(ks[t].c);
		}
		cr_assert_eq(wrc, 0, "no %d answers through the proxy in %d ms", CUT_ACKS + r,
		             WAIT_MS);
	}
	retry_all_and_check();
}
