/* bd_budget.c - the budgetd.v1.BudgetAuthority service.
 *
 * Each handler turns its request into a store mutation or a read job and
 * hands it to the writer; the reply is built when the job comes back. The
 * store validates everything it is given: handlers only translate, so every
 * rule and its message lives in one place (store/RULES.md).
 *
 * Reads run on the writer thread and pack their reply there, off the loop.
 */
#include <errno.h>
#include <string.h>

#include "bd_app.h"
#include "bd_auth.h"
#include "bd_convert.h"
#include "bd_log.h"
#include "bd_status.h"
#include "bd_translate.h"
#include "budgetd/v1/budget_authority.pb-c.h"

#define SERVICE         "/budgetd.v1.BudgetAuthority/"
#define ARMED_MUTATIONS 32 /* calls requested ahead for the hot methods */
#define ARMED_READS     4

typedef struct mutation_call mutation_call;
typedef void (*reply_fn)(mutation_call *mc);

/* One mutation RPC in flight; allocated in the call's arena. */
struct mutation_call {
	bd_job job;
	bs_mutation m;
	bd_unary *call;
	const Budgetd__V1__Authority *authority; /* echoed in the metadata */
	reply_fn reply;
};

/* One read RPC in flight; the writer thread fills the result. */
typedef struct read_call {
	bd_job job;
	bd_unary *call;
	grpc_byte_buffer *response;
	grpc_status_code code;
	char message[BS_ERROR_MESSAGE_MAX];
} read_call;

/* ---- store to reply ---- */

static Budgetd__V1__CommitMetadata *metadata(mutation_call *mc)
{
	bd_arena *a = bd_unary_arena(mc->call);
	const bs_outcome *o = &mc->job.outcome;
	Budgetd__V1__CommitMetadata *md = bd_arena_alloc(a, sizeof(*md));

	if (!md)
		return NULL;
	budgetd__v1__commit_metadata__init(md);
	md->authority = (Budgetd__V1__Authority *)mc->authority;
	md->guarantee_level = BUDGETD__V1__GUARANTEE_LEVEL__GUARANTEE_LEVEL_SINGLE_NODE_ATOMIC;
	md->budget_profile = BUDGETD__V1__BUDGET_PROFILE__BUDGET_PROFILE_AUTHORITATIVE_HOLD_EVENT;
	md->metering_profile =
	        BUDGETD__V1__METERING_PROFILE__METERING_PROFILE_MAX_COST_PREAUTHORIZE_THEN_RECONCILE_ACTUAL;
	if (o->has_commit_index) {
		md->_budget_commit_index_case =
		        BUDGETD__V1__COMMIT_METADATA___BUDGET_COMMIT_INDEX_BUDGET_COMMIT_INDEX;
		md->budget_commit_index = o->commit_index;
	}
	md->event_id = (char *)o->event_id;
	if (o->budget_term[0]) {
		md->_budget_term_case = BUDGETD__V1__COMMIT_METADATA___BUDGET_TERM_BUDGET_TERM;
		md->budget_term = (char *)o->budget_term;
	}
	md->replayed = o->replayed;
	md->dry_run = o->dry_run;
	return md;
}

static void reply_or_fail(bd_unary *call, const ProtobufCMessage *msg, bool built)
{
	if (built)
		bd_unary_reply(call, msg);
	else
		bd_unary_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
		              "out of memory building the reply");
}

static void reply_authorize(mutation_call *mc)
{
	const bs_outcome *o = &mc->job.outcome;
	bd_app *app = bd_unary_app(mc->call);
	Budgetd__V1__AuthorizeHoldResponse resp = BUDGETD__V1__AUTHORIZE_HOLD_RESPONSE__INIT;
	Budgetd__V1__AuthorizeHoldAuthorized ok = BUDGETD__V1__AUTHORIZE_HOLD_AUTHORIZED__INIT;
	Budgetd__V1__AuthorizeHoldDenied no = BUDGETD__V1__AUTHORIZE_HOLD_DENIED__INIT;
	Budgetd__V1__CommitMetadata *md = metadata(mc);
	bool failed = md == NULL;

	if (o->allowed) {
		resp.decision_case = BUDGETD__V1__AUTHORIZE_HOLD_RESPONSE__DECISION_AUTHORIZED;
		resp.authorized = &ok;
		if (mc->m.hold_id.ptr) {
			ok._hold_id_case = BUDGETD__V1__AUTHORIZE_HOLD_AUTHORIZED___HOLD_ID_HOLD_ID;
			ok.hold_id = (char *)mc->m.hold_id.ptr;
		}
		ok.authorized_exposure_units = mc->m.exposure_units;
		ok.committed_cost_units_after = o->committed_after;
		ok.invocation_count_after = o->invocation_count_after;
		ok.metadata = md;
		ok.expires_at =
		        bd_deadline_msg(bd_unary_arena(mc->call), o->expires_at_ns, &failed);
	} else {
		resp.decision_case = BUDGETD__V1__AUTHORIZE_HOLD_RESPONSE__DECISION_DENIED;
		resp.denied = &no;
		if (mc->m.hold_id.ptr) {
			no._hold_id_case = BUDGETD__V1__AUTHORIZE_HOLD_DENIED___HOLD_ID_HOLD_ID;
			no.hold_id = (char *)mc->m.hold_id.ptr;
		}
		no.attempted_exposure_units = mc->m.exposure_units;
		no.committed_cost_units_after = o->committed_after;
		no.invocation_count_after = o->invocation_count_after;
		no.metadata = md;
		no.denial_reason = (Budgetd__V1__DenialReason)o->denial;
	}
	if (app->metrics && !o->replayed && !o->dry_run)
		bd_metrics_observe_decision(app->metrics, o->allowed, (int)o->denial);
	reply_or_fail(mc->call, &resp.base, !failed);
}

static void reply_settlement(mutation_call *mc)
{
	const bs_outcome *o = &mc->job.outcome;
	Budgetd__V1__HoldMutationResponse resp = BUDGETD__V1__HOLD_MUTATION_RESPONSE__INIT;

	if (mc->m.hold_id.ptr) {
		resp._hold_id_case = BUDGETD__V1__HOLD_MUTATION_RESPONSE___HOLD_ID_HOLD_ID;
		resp.hold_id = (char *)mc->m.hold_id.ptr;
	}
	resp.exposure_units = mc->m.exposure_units;
	resp.realized_spend_units = mc->m.realized_units;
	resp.committed_cost_units_after = o->committed_after;
	resp.invocation_count_after = o->invocation_count_after;
	resp.metadata = metadata(mc);
	reply_or_fail(mc->call, &resp.base, resp.metadata != NULL);
}

static void reply_increment(mutation_call *mc)
{
	const bs_outcome *o = &mc->job.outcome;
	Budgetd__V1__IncrementInvocationResponse resp =
	        BUDGETD__V1__INCREMENT_INVOCATION_RESPONSE__INIT;

	resp.allowed = o->allowed;
	resp.invocation_count_after = o->invocation_count_after;
	resp.metadata = metadata(mc);
	reply_or_fail(mc->call, &resp.base, resp.metadata != NULL);
}

static void reply_extend(mutation_call *mc)
{
	const bs_outcome *o = &mc->job.outcome;
	Budgetd__V1__ExtendHoldResponse resp = BUDGETD__V1__EXTEND_HOLD_RESPONSE__INIT;
	bool failed = false;

	resp.hold_id = (char *)mc->m.hold_id.ptr;
	resp.expires_at = bd_deadline_msg(bd_unary_arena(mc->call), o->expires_at_ns, &failed);
	resp.metadata = metadata(mc);
	reply_or_fail(mc->call, &resp.base, resp.metadata != NULL && !failed);
}

/* ---- submitting to the writer ---- */

static bool submit(bd_unary *call, bd_job *job)
{
	bd_app *app = bd_unary_app(call);
	int rc = bd_writer_submit(app->writer, job);

	if (rc == -EAGAIN)
		bd_unary_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
		              "the write queue is full (%u requests waiting); retry with backoff",
		              bd_writer_queue_max(app->writer));
	else if (rc == -ESHUTDOWN)
		bd_unary_fail(call, GRPC_STATUS_UNAVAILABLE,
		              "budgetd is shutting down; nothing was applied");
	else if (rc)
		bd_unary_fail(call, GRPC_STATUS_INTERNAL, "cannot queue the request: %s",
		              strerror(-rc));
	return rc == 0;
}

static void mutation_done(bd_job *job)
{
	mutation_call *mc = bd_container_of(job, mutation_call, job);

	if (job->result == BS_OK) {
		mc->reply(mc);
		return;
	}
	grpc_status_code code = bd_status_from_store(job->result);
	if (code == GRPC_STATUS_UNAVAILABLE)
		bd_unary_fail(mc->call, code, "%s; retry with the same event_id",
		              job->error.message);
	else
		bd_unary_fail(mc->call, code, "%s", job->error.message);
}

/* Capability prefixes of the caller's identity (bd_auth). A missing id is
 * the store's to reject. */
static bool capability_permitted(bd_unary *call, const char *cap)
{
	if (!cap || !*cap || bd_auth_capability_allowed(bd_unary_principal(call), cap))
		return true;
	bd_unary_fail(call, GRPC_STATUS_PERMISSION_DENIED,
	              "identity `%s` may not use capability `%s`", bd_unary_identity(call), cap);
	return false;
}

/* A restricted identity lists only what it may see: its prefix, named. */
static bool listing_permitted(bd_unary *call, int has_cap, const char *cap)
{
	if (has_cap || !bd_auth_restricted(bd_unary_principal(call)))
		return capability_permitted(call, has_cap ? cap : NULL);
	bd_unary_fail(call, GRPC_STATUS_PERMISSION_DENIED,
	              "identity `%s` may only list its own capabilities: give capability_id",
	              bd_unary_identity(call));
	return false;
}

/* Every mutation RPC: translate, queue, reply when durable. */
static void handle_mutation(bd_unary *call, reply_fn reply)
{
	mutation_call *mc = bd_arena_alloc(bd_unary_arena(call), sizeof(*mc));

	if (!mc) {
		bd_unary_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	mc->call = call;
	mc->reply = reply;
	mc->job.mutation = &mc->m;
	mc->job.done = mutation_done;
	const bd_app *app = bd_unary_app(call);
	if (bd_translate_mutation(bd_unary_request(call), &app->hold_defaults, &mc->m,
	                          &mc->authority)) {
		bd_unary_fail(call, GRPC_STATUS_INTERNAL, "not a mutation request");
		return;
	}
	if (!capability_permitted(call, mc->m.capability_id.ptr))
		return;
	if (*bd_unary_identity(call))
		mc->m.caller = bs_str_from(bd_unary_identity(call));
	submit(call, &mc->job);
}

static void handle_authorize(bd_unary *call)
{
	handle_mutation(call, reply_authorize);
}

static void handle_settlement(bd_unary *call)
{
	handle_mutation(call, reply_settlement);
}

static void handle_increment(bd_unary *call)
{
	handle_mutation(call, reply_increment);
}

static void handle_extend(bd_unary *call)
{
	handle_mutation(call, reply_extend);
}

/* ---- reads ---- */

static void read_done(bd_job *job)
{
	read_call *rc = bd_container_of(job, read_call, job);

	if (rc->code == GRPC_STATUS_OK)
		bd_unary_reply_packed(rc->call, rc->response);
	else
		bd_unary_fail(rc->call, rc->code, "%s", rc->message);
}

/* Queues `fn` for the writer; `ctx` (arena memory, or NULL) is job.ctx. */
static void start_read_with(bd_unary *call, bd_job_read_fn fn, void *ctx)
{
	read_call *rc = bd_arena_alloc(bd_unary_arena(call), sizeof(*rc));

	if (!rc) {
		bd_unary_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	rc->call = call;
	rc->job.read = fn;
	rc->job.done = read_done;
	rc->job.ctx = ctx;
	submit(call, &rc->job);
}

static void start_read(bd_unary *call, bd_job_read_fn fn)
{
	start_read_with(call, fn, NULL);
}

/* Writer thread: record a store error, or pack the reply. */
static void read_finish(read_call *rc, int store_rc, const bs_error *err,
                        const ProtobufCMessage *resp, bool built)
{
	if (store_rc != BS_OK) {
		rc->code = bd_status_from_store(store_rc);
		(void)snprintf(rc->message, sizeof(rc->message), "%s", err->message);
	} else if (!built || bd_pack(resp, &rc->response) != 0) {
		rc->code = GRPC_STATUS_RESOURCE_EXHAUSTED;
		(void)snprintf(rc->message, sizeof(rc->message),
		               "out of memory building the reply");
	}
}

static Budgetd__V1__UsageRecord *usage_msg(bd_arena *a, const bs_usage *u)
{
	Budgetd__V1__UsageRecord *m = bd_arena_alloc(a, sizeof(*m));

	if (!m)
		return NULL;
	budgetd__v1__usage_record__init(m);
	m->capability_id = bd_copy_str(a, u->capability_id);
	m->grant_index = u->grant_index;
	m->invocation_count = u->invocation_count;
	m->total_cost_exposed = u->total_cost_exposed;
	m->total_cost_realized_spend = u->total_cost_realized_spend;
	m->committed_cost_units = u->committed_cost;
	m->seq = u->seq;
	m->updated_at = bd_timestamp_msg(a, u->updated_at_ns);
	return m->capability_id && m->updated_at ? m : NULL;
}

/* Collects visited rows into an arena array of at most BS_LIST_LIMIT_MAX. */
typedef struct collector {
	bd_arena *arena;
	void **items;
	size_t n;
	bool failed;
	uint64_t last_seq;
} collector;

static int collect_usage(void *ctx, const bs_usage *u)
{
	collector *c = ctx;

	if (c->n == BS_LIST_LIMIT_MAX || !(c->items[c->n] = usage_msg(c->arena, u))) {
		c->failed = true;
		return 1;
	}
	c->n++;
	return 0;
}

static void read_get_usage(bd_job *job, bs_store *store)
{
	read_call *rc = bd_container_of(job, read_call, job);
	const Budgetd__V1__GetUsageRequest *r = bd_unary_request(rc->call);
	Budgetd__V1__UsageRecord *rec = NULL;
	Budgetd__V1__GetUsageResponse resp = BUDGETD__V1__GET_USAGE_RESPONSE__INIT;
	collector c = {bd_unary_arena(rc->call), (void **)&rec, 0, false, 0};
	bs_error err;
	bool found;

	int src = bs_store_get_usage(store, bd_required_str(r->capability_id), r->grant_index,
	                             collect_usage, &c, &found, &err);
	resp.usage = rec;
	read_finish(rc, src, &err, &resp.base, !c.failed);
}

static void handle_get_usage(bd_unary *call)
{
	const Budgetd__V1__GetUsageRequest *r = bd_unary_request(call);

	if (capability_permitted(call, r->capability_id))
		start_read(call, read_get_usage);
}

static void read_list_usages(bd_job *job, bs_store *store)
{
	read_call *rc = bd_container_of(job, read_call, job);
	const Budgetd__V1__ListUsagesRequest *r = bd_unary_request(rc->call);
	Budgetd__V1__ListUsagesResponse resp = BUDGETD__V1__LIST_USAGES_RESPONSE__INIT;
	bd_arena *a = bd_unary_arena(rc->call);
	collector c = {a, bd_arena_alloc(a, BS_LIST_LIMIT_MAX * sizeof(void *)), 0, false, 0};
	bs_error err;

	if (!c.items) {
		read_finish(rc, BS_OK, NULL, NULL, false);
		return;
	}
	int src = bs_store_list_usages(store, r->limit,
	                               bd_optional_str(r->_capability_id_case, r->capability_id),
	                               collect_usage, &c, &err);
	resp.usages = (Budgetd__V1__UsageRecord **)c.items;
	resp.n_usages = c.n;
	read_finish(rc, src, &err, &resp.base, !c.failed);
}

static void handle_list_usages(bd_unary *call)
{
	const Budgetd__V1__ListUsagesRequest *r = bd_unary_request(call);

	if (listing_permitted(call, r->_capability_id_case, r->capability_id))
		start_read(call, read_list_usages);
}

static int collect_event(void *ctx, const bs_event *e)
{
	collector *c = ctx;

	if (c->n == BS_LIST_LIMIT_MAX || !(c->items[c->n] = bd_event_msg(c->arena, e))) {
		c->failed = true;
		return 1;
	}
	c->n++;
	c->last_seq = e->event_seq;
	return 0;
}

static void read_list_events(bd_job *job, bs_store *store)
{
	read_call *rc = bd_container_of(job, read_call, job);
	const Budgetd__V1__ListMutationEventsRequest *r = bd_unary_request(rc->call);
	Budgetd__V1__ListMutationEventsResponse resp =
	        BUDGETD__V1__LIST_MUTATION_EVENTS_RESPONSE__INIT;
	bd_arena *a = bd_unary_arena(rc->call);
	collector c = {a, bd_arena_alloc(a, BS_LIST_LIMIT_MAX * sizeof(void *)), 0, false,
	               r->after_commit_index};
	bs_error err;

	if (!c.items) {
		read_finish(rc, BS_OK, NULL, NULL, false);
		return;
	}
	int src = bs_store_list_events(store, r->limit,
	                               bd_optional_str(r->_capability_id_case, r->capability_id),
	                               r->_grant_index_case != 0, r->grant_index,
	                               r->after_commit_index, collect_event, &c, &err);
	resp.events = (Budgetd__V1__MutationEvent **)c.items;
	resp.n_events = c.n;
	/* With nothing new the cursor stays where the caller is. */
	resp.next_after_commit_index = c.last_seq;
	read_finish(rc, src, &err, &resp.base, !c.failed);
}

static void handle_list_events(bd_unary *call)
{
	const Budgetd__V1__ListMutationEventsRequest *r = bd_unary_request(call);

	if (listing_permitted(call, r->_capability_id_case, r->capability_id))
		start_read(call, read_list_events);
}

static int collect_hold(void *ctx, const bs_hold *h)
{
	collector *c = ctx;

	if (!(c->items[0] = bd_hold_msg(c->arena, h)))
		c->failed = true;
	return 0;
}

static void read_get_hold(bd_job *job, bs_store *store)
{
	read_call *rc = bd_container_of(job, read_call, job);
	const Budgetd__V1__GetHoldRequest *r = bd_unary_request(rc->call);
	Budgetd__V1__GetHoldResponse resp = BUDGETD__V1__GET_HOLD_RESPONSE__INIT;
	Budgetd__V1__Hold *hold = NULL;
	collector c = {bd_unary_arena(rc->call), (void **)&hold, 0, false, 0};
	bs_error err;
	bool found = false;

	int src = bs_store_get_hold(store, bd_required_str(r->hold_id), collect_hold, &c, &found,
	                            &err);
	if (src == BS_OK && !found) {
		rc->code = GRPC_STATUS_NOT_FOUND;
		(void)snprintf(rc->message, sizeof(rc->message), "budget hold `%s` not found",
		               r->hold_id);
		return;
	}
	/* The principal is immutable: reading it here, off the loop, is safe. */
	if (hold &&
	    !bd_auth_capability_allowed(bd_unary_principal(rc->call), hold->capability_id)) {
		rc->code = GRPC_STATUS_PERMISSION_DENIED;
		(void)snprintf(rc->message, sizeof(rc->message),
		               "identity `%s` may not see holds of capability `%s`",
		               bd_unary_identity(rc->call), hold->capability_id);
		return;
	}
	resp.hold = hold;
	read_finish(rc, src, &err, &resp.base, !c.failed);
}

static void handle_get_hold(bd_unary *call)
{
	start_read(call, read_get_hold);
}

/* Collects a page of holds, remembering where the last one stands. */
typedef struct hold_page {
	collector c;
	char next_token[BD_PAGE_TOKEN_LEN_MAX + 1];
} hold_page;

static int collect_page_hold(void *ctx, const bs_hold *h)
{
	hold_page *p = ctx;
	collector *c = &p->c;

	if (c->n == BS_LIST_LIMIT_MAX || !(c->items[c->n] = bd_hold_msg(c->arena, h))) {
		c->failed = true;
		return 1;
	}
	c->n++;
	bd_page_token(h, p->next_token);
	return 0;
}

/* A ListHolds call, translated and allocated on the loop thread, so the
 * writer only runs the query (and a bad page token never reaches it). */
typedef struct hold_listing {
	bs_hold_query q;
	char id_buf[BS_ID_LEN_MAX]; /* the page token's hold id */
	hold_page page;
} hold_listing;

static void read_list_holds(bd_job *job, bs_store *store)
{
	read_call *rc = bd_container_of(job, read_call, job);
	hold_listing *l = job->ctx;
	Budgetd__V1__ListHoldsResponse resp = BUDGETD__V1__LIST_HOLDS_RESPONSE__INIT;
	bs_error err;

	int src = bs_store_list_holds(store, &l->q, collect_page_hold, &l->page, &err);
	resp.holds = (Budgetd__V1__Hold **)l->page.c.items;
	resp.n_holds = l->page.c.n;
	/* A full page may have a successor; a short one is the last. */
	uint32_t limit = l->q.limit ? l->q.limit : BS_LIST_LIMIT_DEFAULT;
	resp.next_page_token = l->page.c.n == limit ? l->page.next_token : "";
	read_finish(rc, src, &err, &resp.base, !l->page.c.failed);
}

static void handle_list_holds(bd_unary *call)
{
	const Budgetd__V1__ListHoldsRequest *r = bd_unary_request(call);
	bd_arena *a = bd_unary_arena(call);
	char why[BS_ERROR_MESSAGE_MAX];

	if (!listing_permitted(call, r->_capability_id_case, r->capability_id))
		return;
	hold_listing *l = bd_arena_alloc(a, sizeof(*l));
	void **items = bd_arena_alloc(a, BS_LIST_LIMIT_MAX * sizeof(void *));
	if (!l || !items) {
		bd_unary_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	if (bd_translate_hold_query(r, &l->q, l->id_buf, why, sizeof(why))) {
		bd_unary_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", why);
		return;
	}
	l->page.c = (collector){a, items, 0, false, 0};
	l->page.next_token[0] = '\0';
	start_read_with(call, read_list_holds, l);
}

static void read_server_info(bd_job *job, bs_store *store)
{
	read_call *rc = bd_container_of(job, read_call, job);
	bd_app *app = bd_unary_app(rc->call);
	Budgetd__V1__GetServerInfoResponse resp = BUDGETD__V1__GET_SERVER_INFO_RESPONSE__INIT;
	bs_error err;

	int src = bs_store_commit_index(store, &resp.commit_index, &err);
	resp.version = BD_VERSION;
	resp.authority_id = (char *)app->authority_id;
	resp.guarantee_level = BUDGETD__V1__GUARANTEE_LEVEL__GUARANTEE_LEVEL_SINGLE_NODE_ATOMIC;
	resp.budget_profile = BUDGETD__V1__BUDGET_PROFILE__BUDGET_PROFILE_AUTHORITATIVE_HOLD_EVENT;
	resp.metering_profile =
	        BUDGETD__V1__METERING_PROFILE__METERING_PROFILE_MAX_COST_PREAUTHORIZE_THEN_RECONCILE_ACTUAL;
	resp.started_at = bd_timestamp_msg(bd_unary_arena(rc->call), app->started_at_ns);
	read_finish(rc, src, &err, &resp.base, resp.started_at != NULL);
}

static void handle_server_info(bd_unary *call)
{
	start_read(call, read_server_info);
}

/* ---- registration ---- */

static const bd_unary_method methods[] = {
        {SERVICE "AuthorizeHold", &budgetd__v1__authorize_hold_request__descriptor,
         handle_authorize, ARMED_MUTATIONS, BD_ACCESS_MUTATE},
        {SERVICE "ReleaseHold", &budgetd__v1__release_hold_request__descriptor, handle_settlement,
         ARMED_READS, BD_ACCESS_MUTATE},
        {SERVICE "ReverseHold", &budgetd__v1__reverse_hold_request__descriptor, handle_settlement,
         ARMED_READS, BD_ACCESS_MUTATE},
        {SERVICE "ReconcileHold", &budgetd__v1__reconcile_hold_request__descriptor,
         handle_settlement, ARMED_MUTATIONS, BD_ACCESS_MUTATE},
        {SERVICE "CaptureHold", &budgetd__v1__capture_hold_request__descriptor, handle_settlement,
         ARMED_READS, BD_ACCESS_MUTATE},
        {SERVICE "IncrementInvocation", &budgetd__v1__increment_invocation_request__descriptor,
         handle_increment, ARMED_READS, BD_ACCESS_MUTATE},
        {SERVICE "GetUsage", &budgetd__v1__get_usage_request__descriptor, handle_get_usage,
         ARMED_READS, BD_ACCESS_READ},
        {SERVICE "ListUsages", &budgetd__v1__list_usages_request__descriptor, handle_list_usages,
         ARMED_READS, BD_ACCESS_READ},
        {SERVICE "ListMutationEvents", &budgetd__v1__list_mutation_events_request__descriptor,
         handle_list_events, ARMED_READS, BD_ACCESS_READ},
        {SERVICE "GetHold", &budgetd__v1__get_hold_request__descriptor, handle_get_hold,
         ARMED_READS, BD_ACCESS_READ},
        {SERVICE "ExtendHold", &budgetd__v1__extend_hold_request__descriptor, handle_extend,
         ARMED_READS, BD_ACCESS_MUTATE},
        {SERVICE "ListHolds", &budgetd__v1__list_holds_request__descriptor, handle_list_holds,
         ARMED_READS, BD_ACCESS_READ},
        {SERVICE "GetServerInfo", &budgetd__v1__get_server_info_request__descriptor,
         handle_server_info, ARMED_READS, BD_ACCESS_READ},
};

int bd_budget_register(bd_server *server)
{
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		int rc = bd_server_add_unary(server, &methods[i]);
		if (rc)
			return rc;
	}
	return 0;
}
