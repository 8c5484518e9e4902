/* rpc.c - one function per RPC: the public request struct to the protobuf-c
 * request, the call, and the protobuf-c response to the public result. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "bc_internal.h"
#include "budgetd/v1/budget_admin.pb-c.h"
#include "budgetd/v1/budget_authority.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"

#define METHOD(name) "/budgetd.v1.BudgetAuthority/" name
#define HEALTH_CHECK "/grpc.health.v1.Health/Check"

#define ADMIN_METHOD(name) "/budgetd.v1.BudgetAdmin/" name

/* ---- requests ------------------------------------------------------------ */

/* protobuf-c wants `char *` for strings it only reads while packing. */
static char *req_str(const char *s)
{
	return (char *)(s ? s : "");
}

static Budgetd__V1__Authority *req_authority(const bc_authority *a, Budgetd__V1__Authority *buf)
{
	if (!a)
		return NULL;
	budgetd__v1__authority__init(buf);
	buf->authority_id = req_str(a->authority_id);
	buf->lease_id = req_str(a->lease_id);
	buf->lease_epoch = a->lease_epoch;
	return buf;
}

static Google__Protobuf__Timestamp *req_time(const bc_timestamp *t,
                                             Google__Protobuf__Timestamp *buf)
{
	google__protobuf__timestamp__init(buf);
	buf->seconds = t->seconds;
	buf->nanos = t->nanos;
	return buf;
}

/* The event_id a mutation is sent with: the caller's, or a new random one
 * in `buf`. */
static int req_event_id(const char *given, char buf[BC_EVENT_ID_SIZE], char **out, bc_error *err)
{
	int rc;

	if (given) {
		*out = (char *)given;
		return 0;
	}
	if ((rc = bc_event_id_new(buf, err)) != 0)
		return rc;
	*out = buf;
	return 0;
}

/* ---- results ------------------------------------------------------------- */

/* Conversion state: string copies that fail set `oom`, checked once at the
 * end, so converters need no error paths. */
typedef struct conv {
	bool oom;
} conv;

static char *cv_str(conv *cv, const char *s)
{
	char *d = strdup(s ? s : "");

	if (!d)
		cv->oom = true;
	return d;
}

static void cv_authority(conv *cv, const Budgetd__V1__Authority *a, bool *has,
                         bc_authority_info *out)
{
	*has = a != NULL;
	if (!a)
		return;
	out->authority_id = cv_str(cv, a->authority_id);
	out->lease_id = cv_str(cv, a->lease_id);
	out->lease_epoch = a->lease_epoch;
}

static void free_authority(bc_authority_info *a)
{
	free(a->authority_id);
	free(a->lease_id);
}

static void cv_time(const Google__Protobuf__Timestamp *t, bool *has, bc_timestamp *out)
{
	*has = t != NULL;
	if (t) {
		out->seconds = t->seconds;
		out->nanos = t->nanos;
	}
}

static void cv_metadata(conv *cv, const Budgetd__V1__CommitMetadata *m, bc_commit_metadata *out)
{
	if (!m) {
		out->event_id = cv_str(cv, "");
		return;
	}
	cv_authority(cv, m->authority, &out->has_authority, &out->authority);
	out->guarantee_level = (bc_guarantee_level)m->guarantee_level;
	out->budget_profile = (bc_budget_profile)m->budget_profile;
	out->metering_profile = (bc_metering_profile)m->metering_profile;
	out->has_budget_commit_index =
	        m->_budget_commit_index_case ==
	        BUDGETD__V1__COMMIT_METADATA___BUDGET_COMMIT_INDEX_BUDGET_COMMIT_INDEX;
	if (out->has_budget_commit_index)
		out->budget_commit_index = m->budget_commit_index;
	out->event_id = cv_str(cv, m->event_id);
	if (m->_budget_term_case == BUDGETD__V1__COMMIT_METADATA___BUDGET_TERM_BUDGET_TERM)
		out->budget_term = cv_str(cv, m->budget_term);
	out->replayed = m->replayed;
	out->dry_run = m->dry_run;
}

static void free_metadata(bc_commit_metadata *m)
{
	free_authority(&m->authority);
	free(m->event_id);
	free(m->budget_term);
}

static void cv_usage(conv *cv, const Budgetd__V1__UsageRecord *u, bc_usage_record *out)
{
	out->capability_id = cv_str(cv, u->capability_id);
	out->grant_index = u->grant_index;
	out->invocation_count = u->invocation_count;
	out->total_cost_exposed = u->total_cost_exposed;
	out->total_cost_realized_spend = u->total_cost_realized_spend;
	out->committed_cost_units = u->committed_cost_units;
	out->seq = u->seq;
	cv_time(u->updated_at, &out->has_updated_at, &out->updated_at);
}

static void free_usage(bc_usage_record *u)
{
	free(u->capability_id);
}

static void cv_event(conv *cv, const Budgetd__V1__MutationEvent *e, bc_mutation_event *out)
{
	out->event_id = cv_str(cv, e->event_id);
	if (e->_hold_id_case == BUDGETD__V1__MUTATION_EVENT___HOLD_ID_HOLD_ID)
		out->hold_id = cv_str(cv, e->hold_id);
	out->capability_id = cv_str(cv, e->capability_id);
	out->grant_index = e->grant_index;
	out->kind = (bc_mutation_kind)e->kind;
	out->has_allowed = e->_allowed_case == BUDGETD__V1__MUTATION_EVENT___ALLOWED_ALLOWED;
	out->allowed = out->has_allowed && e->allowed;
	out->denial_reason = (bc_denial_reason)e->denial_reason;
	cv_time(e->recorded_at, &out->has_recorded_at, &out->recorded_at);
	out->event_seq = e->event_seq;
	out->has_usage_seq =
	        e->_usage_seq_case == BUDGETD__V1__MUTATION_EVENT___USAGE_SEQ_USAGE_SEQ;
	if (out->has_usage_seq)
		out->usage_seq = e->usage_seq;
	out->exposure_units = e->exposure_units;
	out->realized_spend_units = e->realized_spend_units;
	out->has_max_invocations = e->_max_invocations_case ==
	                           BUDGETD__V1__MUTATION_EVENT___MAX_INVOCATIONS_MAX_INVOCATIONS;
	if (out->has_max_invocations)
		out->max_invocations = e->max_invocations;
	out->has_max_cost_per_invocation =
	        e->_max_cost_per_invocation_case ==
	        BUDGETD__V1__MUTATION_EVENT___MAX_COST_PER_INVOCATION_MAX_COST_PER_INVOCATION;
	if (out->has_max_cost_per_invocation)
		out->max_cost_per_invocation = e->max_cost_per_invocation;
	out->has_max_total_cost_units =
	        e->_max_total_cost_units_case ==
	        BUDGETD__V1__MUTATION_EVENT___MAX_TOTAL_COST_UNITS_MAX_TOTAL_COST_UNITS;
	if (out->has_max_total_cost_units)
		out->max_total_cost_units = e->max_total_cost_units;
	out->invocation_count_after = e->invocation_count_after;
	out->total_cost_exposed_after = e->total_cost_exposed_after;
	out->total_cost_realized_spend_after = e->total_cost_realized_spend_after;
	cv_authority(cv, e->authority, &out->has_authority, &out->authority);
	out->caller = cv_str(cv, e->caller);
	out->has_ttl_seconds =
	        e->_ttl_seconds_case == BUDGETD__V1__MUTATION_EVENT___TTL_SECONDS_TTL_SECONDS;
	if (out->has_ttl_seconds)
		out->ttl_seconds = e->ttl_seconds;
	cv_time(e->expires_at, &out->has_expires_at, &out->expires_at);
	out->on_expiry = (bc_expiry_policy)e->on_expiry;
}

static void cv_hold(conv *cv, const Budgetd__V1__Hold *h, bc_hold *out)
{
	out->hold_id = cv_str(cv, h->hold_id);
	out->capability_id = cv_str(cv, h->capability_id);
	out->grant_index = h->grant_index;
	out->authorized_exposure_units = h->authorized_exposure_units;
	out->remaining_exposure_units = h->remaining_exposure_units;
	out->debited_invocation = h->debited_invocation;
	out->disposition = (bc_hold_disposition)h->disposition;
	cv_authority(cv, h->authority, &out->has_authority, &out->authority);
	cv_time(h->created_at, &out->has_created_at, &out->created_at);
	cv_time(h->updated_at, &out->has_updated_at, &out->updated_at);
	cv_time(h->expires_at, &out->has_expires_at, &out->expires_at);
	out->on_expiry = (bc_expiry_policy)h->on_expiry;
}

static void free_hold(bc_hold *h)
{
	free(h->hold_id);
	free(h->capability_id);
	free_authority(&h->authority);
}

static void free_event(bc_mutation_event *e)
{
	free(e->caller);
	free(e->event_id);
	free(e->hold_id);
	free(e->capability_id);
	free_authority(&e->authority);
}

/* Ends a conversion: on a failed copy frees the partial result. */
#define CONV_END(cv, free_fn, out, err)                                                            \
	((cv).oom ? (free_fn(out), bc__fail(err, BC_STATUS_RESOURCE_EXHAUSTED, "out of memory"))   \
	          : 0)

/* ---- free functions -------------------------------------------------------- */

void bc_authorize_hold_result_free(bc_authorize_hold_result *r)
{
	if (!r)
		return;
	free(r->hold_id);
	free_metadata(&r->metadata);
	memset(r, 0, sizeof(*r));
}

void bc_hold_mutation_result_free(bc_hold_mutation_result *r)
{
	if (!r)
		return;
	free(r->hold_id);
	free_metadata(&r->metadata);
	memset(r, 0, sizeof(*r));
}

void bc_increment_invocation_result_free(bc_increment_invocation_result *r)
{
	if (!r)
		return;
	free_metadata(&r->metadata);
	memset(r, 0, sizeof(*r));
}

void bc_usage_result_free(bc_usage_result *r)
{
	if (!r)
		return;
	free_usage(&r->usage);
	memset(r, 0, sizeof(*r));
}

void bc_usage_list_free(bc_usage_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->count; i++)
		free_usage(&l->usages[i]);
	free(l->usages);
	memset(l, 0, sizeof(*l));
}

void bc_event_list_free(bc_event_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->count; i++)
		free_event(&l->events[i]);
	free(l->events);
	memset(l, 0, sizeof(*l));
}

void bc_hold_free(bc_hold *h)
{
	if (!h)
		return;
	free_hold(h);
	memset(h, 0, sizeof(*h));
}

void bc_hold_list_free(bc_hold_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->count; i++)
		free_hold(&l->holds[i]);
	free(l->holds);
	free(l->next_page_token);
	memset(l, 0, sizeof(*l));
}

void bc_extend_hold_result_free(bc_extend_hold_result *r)
{
	if (!r)
		return;
	free(r->hold_id);
	free_metadata(&r->metadata);
	memset(r, 0, sizeof(*r));
}

void bc_server_info_free(bc_server_info *i)
{
	if (!i)
		return;
	free(i->version);
	free(i->authority_id);
	memset(i, 0, sizeof(*i));
}

/* ---- the RPCs -------------------------------------------------------------- */

/* Zeroes the result and checks the pointers; `req_ok` is false when a
 * required request argument is NULL. */
#define CHECK_ARGS(client, req_ok, out, err)                                                       \
	do {                                                                                       \
		if (out)                                                                           \
			memset(out, 0, sizeof(*(out)));                                            \
		if (!(client) || !(req_ok) || !(out))                                              \
			return bc__fail(err, BC_STATUS_INVALID_ARGUMENT,                           \
			                "%s: a NULL client, request or result", __func__);         \
	} while (0)

int bc_authorize_hold(bc_client *client, const bc_authorize_hold_request *req, int deadline_ms,
                      bc_authorize_hold_result *out, bc_error *err)
{
	Budgetd__V1__AuthorizeHoldRequest pr = BUDGETD__V1__AUTHORIZE_HOLD_REQUEST__INIT;
	Budgetd__V1__AuthorizeHoldResponse *resp = NULL;
	ProtobufCMessage *msg = NULL;
	Budgetd__V1__Authority authority;
	char event_id[BC_EVENT_ID_SIZE];
	conv cv = {false};
	int rc;

	CHECK_ARGS(client, req != NULL, out, err);
	pr.capability_id = req_str(req->capability_id);
	pr.grant_index = req->grant_index;
	pr.requested_exposure_units = req->requested_exposure_units;
	if (req->has_max_invocations) {
		pr._max_invocations_case =
		        BUDGETD__V1__AUTHORIZE_HOLD_REQUEST___MAX_INVOCATIONS_MAX_INVOCATIONS;
		pr.max_invocations = req->max_invocations;
	}
	if (req->has_max_cost_per_invocation) {
		pr._max_cost_per_invocation_case =
		        BUDGETD__V1__AUTHORIZE_HOLD_REQUEST___MAX_COST_PER_INVOCATION_MAX_COST_PER_INVOCATION;
		pr.max_cost_per_invocation = req->max_cost_per_invocation;
	}
	if (req->has_max_total_cost_units) {
		pr._max_total_cost_units_case =
		        BUDGETD__V1__AUTHORIZE_HOLD_REQUEST___MAX_TOTAL_COST_UNITS_MAX_TOTAL_COST_UNITS;
		pr.max_total_cost_units = req->max_total_cost_units;
	}
	if (req->hold_id) {
		pr._hold_id_case = BUDGETD__V1__AUTHORIZE_HOLD_REQUEST___HOLD_ID_HOLD_ID;
		pr.hold_id = (char *)req->hold_id;
	}
	if ((rc = req_event_id(req->event_id, event_id, &pr.event_id, err)) != 0)
		return rc;
	pr._event_id_case = BUDGETD__V1__AUTHORIZE_HOLD_REQUEST___EVENT_ID_EVENT_ID;
	pr.authority = req_authority(req->authority, &authority);
	pr.dry_run = req->dry_run;
	if (req->has_ttl_seconds) {
		pr._ttl_seconds_case =
		        BUDGETD__V1__AUTHORIZE_HOLD_REQUEST___TTL_SECONDS_TTL_SECONDS;
		pr.ttl_seconds = req->ttl_seconds;
	}
	pr.on_expiry = (Budgetd__V1__ExpiryPolicy)req->on_expiry;

	rc = bc__unary(client, METHOD("AuthorizeHold"), &pr.base,
	               &budgetd__v1__authorize_hold_response__descriptor, BC__RETRY_MUTATION,
	               deadline_ms, &msg, err);
	if (rc != 0)
		return rc;
	resp = (void *)msg;

	if (resp->decision_case == BUDGETD__V1__AUTHORIZE_HOLD_RESPONSE__DECISION_AUTHORIZED) {
		const Budgetd__V1__AuthorizeHoldAuthorized *a = resp->authorized;

		out->authorized = true;
		if (a->_hold_id_case == BUDGETD__V1__AUTHORIZE_HOLD_AUTHORIZED___HOLD_ID_HOLD_ID)
			out->hold_id = cv_str(&cv, a->hold_id);
		out->authorized_exposure_units = a->authorized_exposure_units;
		out->committed_cost_units_after = a->committed_cost_units_after;
		out->invocation_count_after = a->invocation_count_after;
		cv_metadata(&cv, a->metadata, &out->metadata);
		cv_time(a->expires_at, &out->has_expires_at, &out->expires_at);
	} else if (resp->decision_case == BUDGETD__V1__AUTHORIZE_HOLD_RESPONSE__DECISION_DENIED) {
		const Budgetd__V1__AuthorizeHoldDenied *d = resp->denied;

		out->authorized = false;
		if (d->_hold_id_case == BUDGETD__V1__AUTHORIZE_HOLD_DENIED___HOLD_ID_HOLD_ID)
			out->hold_id = cv_str(&cv, d->hold_id);
		out->attempted_exposure_units = d->attempted_exposure_units;
		out->committed_cost_units_after = d->committed_cost_units_after;
		out->invocation_count_after = d->invocation_count_after;
		out->denial_reason = (bc_denial_reason)d->denial_reason;
		cv_metadata(&cv, d->metadata, &out->metadata);
	} else {
		rc = bc__fail(err, BC_STATUS_INTERNAL,
		              "the server's AuthorizeHoldResponse has no decision");
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	if (rc != 0)
		return rc;
	return CONV_END(cv, bc_authorize_hold_result_free, out, err);
}

/* The four hold mutations share their response. */
static int hold_mutation(bc_client *client, const char *method, const ProtobufCMessage *pr,
                         int deadline_ms, bc_hold_mutation_result *out, bc_error *err)
{
	Budgetd__V1__HoldMutationResponse *resp = NULL;
	ProtobufCMessage *msg = NULL;
	conv cv = {false};
	int rc;

	rc = bc__unary(client, method, pr, &budgetd__v1__hold_mutation_response__descriptor,
	               BC__RETRY_MUTATION, deadline_ms, &msg, err);
	if (rc != 0)
		return rc;
	resp = (void *)msg;
	if (resp->_hold_id_case == BUDGETD__V1__HOLD_MUTATION_RESPONSE___HOLD_ID_HOLD_ID)
		out->hold_id = cv_str(&cv, resp->hold_id);
	out->exposure_units = resp->exposure_units;
	out->realized_spend_units = resp->realized_spend_units;
	out->committed_cost_units_after = resp->committed_cost_units_after;
	out->invocation_count_after = resp->invocation_count_after;
	cv_metadata(&cv, resp->metadata, &out->metadata);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return CONV_END(cv, bc_hold_mutation_result_free, out, err);
}

int bc_release_hold(bc_client *client, const bc_release_hold_request *req, int deadline_ms,
                    bc_hold_mutation_result *out, bc_error *err)
{
	Budgetd__V1__ReleaseHoldRequest pr = BUDGETD__V1__RELEASE_HOLD_REQUEST__INIT;
	Budgetd__V1__Authority authority;
	char event_id[BC_EVENT_ID_SIZE];
	int rc;

	CHECK_ARGS(client, req != NULL, out, err);
	pr.capability_id = req_str(req->capability_id);
	pr.grant_index = req->grant_index;
	if (req->hold_id) {
		pr._hold_id_case = BUDGETD__V1__RELEASE_HOLD_REQUEST___HOLD_ID_HOLD_ID;
		pr.hold_id = (char *)req->hold_id;
	}
	pr.released_exposure_units = req->released_exposure_units;
	if ((rc = req_event_id(req->event_id, event_id, &pr.event_id, err)) != 0)
		return rc;
	pr._event_id_case = BUDGETD__V1__RELEASE_HOLD_REQUEST___EVENT_ID_EVENT_ID;
	pr.authority = req_authority(req->authority, &authority);
	return hold_mutation(client, METHOD("ReleaseHold"), &pr.base, deadline_ms, out, err);
}

int bc_reverse_hold(bc_client *client, const bc_reverse_hold_request *req, int deadline_ms,
                    bc_hold_mutation_result *out, bc_error *err)
{
	Budgetd__V1__ReverseHoldRequest pr = BUDGETD__V1__REVERSE_HOLD_REQUEST__INIT;
	Budgetd__V1__Authority authority;
	char event_id[BC_EVENT_ID_SIZE];
	int rc;

	CHECK_ARGS(client, req != NULL, out, err);
	pr.capability_id = req_str(req->capability_id);
	pr.grant_index = req->grant_index;
	if (req->hold_id) {
		pr._hold_id_case = BUDGETD__V1__REVERSE_HOLD_REQUEST___HOLD_ID_HOLD_ID;
		pr.hold_id = (char *)req->hold_id;
	}
	pr.reversed_exposure_units = req->reversed_exposure_units;
	if ((rc = req_event_id(req->event_id, event_id, &pr.event_id, err)) != 0)
		return rc;
	pr._event_id_case = BUDGETD__V1__REVERSE_HOLD_REQUEST___EVENT_ID_EVENT_ID;
	pr.authority = req_authority(req->authority, &authority);
	return hold_mutation(client, METHOD("ReverseHold"), &pr.base, deadline_ms, out, err);
}

int bc_reconcile_hold(bc_client *client, const bc_reconcile_hold_request *req, int deadline_ms,
                      bc_hold_mutation_result *out, bc_error *err)
{
	Budgetd__V1__ReconcileHoldRequest pr = BUDGETD__V1__RECONCILE_HOLD_REQUEST__INIT;
	Budgetd__V1__Authority authority;
	char event_id[BC_EVENT_ID_SIZE];
	int rc;

	CHECK_ARGS(client, req != NULL, out, err);
	pr.capability_id = req_str(req->capability_id);
	pr.grant_index = req->grant_index;
	if (req->hold_id) {
		pr._hold_id_case = BUDGETD__V1__RECONCILE_HOLD_REQUEST___HOLD_ID_HOLD_ID;
		pr.hold_id = (char *)req->hold_id;
	}
	pr.exposed_cost_units = req->exposed_cost_units;
	pr.realized_spend_units = req->realized_spend_units;
	if ((rc = req_event_id(req->event_id, event_id, &pr.event_id, err)) != 0)
		return rc;
	pr._event_id_case = BUDGETD__V1__RECONCILE_HOLD_REQUEST___EVENT_ID_EVENT_ID;
	pr.authority = req_authority(req->authority, &authority);
	return hold_mutation(client, METHOD("ReconcileHold"), &pr.base, deadline_ms, out, err);
}

int bc_capture_hold(bc_client *client, const bc_capture_hold_request *req, int deadline_ms,
                    bc_hold_mutation_result *out, bc_error *err)
{
	Budgetd__V1__CaptureHoldRequest pr = BUDGETD__V1__CAPTURE_HOLD_REQUEST__INIT;
	Budgetd__V1__Authority authority;
	char event_id[BC_EVENT_ID_SIZE];
	int rc;

	CHECK_ARGS(client, req != NULL, out, err);
	pr.capability_id = req_str(req->capability_id);
	pr.grant_index = req->grant_index;
	if (req->hold_id) {
		pr._hold_id_case = BUDGETD__V1__CAPTURE_HOLD_REQUEST___HOLD_ID_HOLD_ID;
		pr.hold_id = (char *)req->hold_id;
	}
	pr.exposed_cost_units = req->exposed_cost_units;
	pr.realized_spend_units = req->realized_spend_units;
	if ((rc = req_event_id(req->event_id, event_id, &pr.event_id, err)) != 0)
		return rc;
	pr._event_id_case = BUDGETD__V1__CAPTURE_HOLD_REQUEST___EVENT_ID_EVENT_ID;
	pr.authority = req_authority(req->authority, &authority);
	return hold_mutation(client, METHOD("CaptureHold"), &pr.base, deadline_ms, out, err);
}

int bc_increment_invocation(bc_client *client, const bc_increment_invocation_request *req,
                            int deadline_ms, bc_increment_invocation_result *out, bc_error *err)
{
	Budgetd__V1__IncrementInvocationRequest pr =
	        BUDGETD__V1__INCREMENT_INVOCATION_REQUEST__INIT;
	Budgetd__V1__IncrementInvocationResponse *resp = NULL;
	ProtobufCMessage *msg = NULL;
	char event_id[BC_EVENT_ID_SIZE];
	conv cv = {false};
	int rc;

	CHECK_ARGS(client, req != NULL, out, err);
	pr.capability_id = req_str(req->capability_id);
	pr.grant_index = req->grant_index;
	if (req->has_max_invocations) {
		pr._max_invocations_case =
		        BUDGETD__V1__INCREMENT_INVOCATION_REQUEST___MAX_INVOCATIONS_MAX_INVOCATIONS;
		pr.max_invocations = req->max_invocations;
	}
	if ((rc = req_event_id(req->event_id, event_id, &pr.event_id, err)) != 0)
		return rc;
	pr._event_id_case = BUDGETD__V1__INCREMENT_INVOCATION_REQUEST___EVENT_ID_EVENT_ID;

	rc = bc__unary(client, METHOD("IncrementInvocation"), &pr.base,
	               &budgetd__v1__increment_invocation_response__descriptor, BC__RETRY_MUTATION,
	               deadline_ms, &msg, err);
	if (rc != 0)
		return rc;
	resp = (void *)msg;
	out->allowed = resp->allowed;
	out->invocation_count_after = resp->invocation_count_after;
	cv_metadata(&cv, resp->metadata, &out->metadata);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return CONV_END(cv, bc_increment_invocation_result_free, out, err);
}

int bc_get_usage(bc_client *client, const char *capability_id, uint64_t grant_index,
                 int deadline_ms, bc_usage_result *out, bc_error *err)
{
	Budgetd__V1__GetUsageRequest pr = BUDGETD__V1__GET_USAGE_REQUEST__INIT;
	Budgetd__V1__GetUsageResponse *resp = NULL;
	ProtobufCMessage *msg = NULL;
	conv cv = {false};
	int rc;

	CHECK_ARGS(client, capability_id != NULL, out, err);
	pr.capability_id = req_str(capability_id);
	pr.grant_index = grant_index;
	rc = bc__unary(client, METHOD("GetUsage"), &pr.base,
	               &budgetd__v1__get_usage_response__descriptor, BC__RETRY_READ, deadline_ms,
	               &msg, err);
	if (rc != 0)
		return rc;
	resp = (void *)msg;
	out->found = resp->usage != NULL;
	if (resp->usage)
		cv_usage(&cv, resp->usage, &out->usage);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return CONV_END(cv, bc_usage_result_free, out, err);
}

int bc_list_usages(bc_client *client, const bc_list_usages_request *req, int deadline_ms,
                   bc_usage_list *out, bc_error *err)
{
	Budgetd__V1__ListUsagesRequest pr = BUDGETD__V1__LIST_USAGES_REQUEST__INIT;
	Budgetd__V1__ListUsagesResponse *resp = NULL;
	ProtobufCMessage *msg = NULL;
	conv cv = {false};
	int rc;

	CHECK_ARGS(client, req != NULL, out, err);
	pr.limit = req->limit;
	if (req->capability_id) {
		pr._capability_id_case =
		        BUDGETD__V1__LIST_USAGES_REQUEST___CAPABILITY_ID_CAPABILITY_ID;
		pr.capability_id = (char *)req->capability_id;
	}
	rc = bc__unary(client, METHOD("ListUsages"), &pr.base,
	               &budgetd__v1__list_usages_response__descriptor, BC__RETRY_READ, deadline_ms,
	               &msg, err);
	if (rc != 0)
		return rc;
	resp = (void *)msg;
	if (resp->n_usages > 0) {
		out->usages = calloc(resp->n_usages, sizeof(*out->usages));
		if (out->usages) {
			out->count = resp->n_usages;
			for (size_t i = 0; i < resp->n_usages; i++)
				cv_usage(&cv, resp->usages[i], &out->usages[i]);
		} else {
			cv.oom = true;
		}
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return CONV_END(cv, bc_usage_list_free, out, err);
}

int bc_list_mutation_events(bc_client *client, const bc_list_mutation_events_request *req,
                            int deadline_ms, bc_event_list *out, bc_error *err)
{
	Budgetd__V1__ListMutationEventsRequest pr = BUDGETD__V1__LIST_MUTATION_EVENTS_REQUEST__INIT;
	Budgetd__V1__ListMutationEventsResponse *resp = NULL;
	ProtobufCMessage *msg = NULL;
	conv cv = {false};
	int rc;

	CHECK_ARGS(client, req != NULL, out, err);
	pr.limit = req->limit;
	if (req->capability_id) {
		pr._capability_id_case =
		        BUDGETD__V1__LIST_MUTATION_EVENTS_REQUEST___CAPABILITY_ID_CAPABILITY_ID;
		pr.capability_id = (char *)req->capability_id;
	}
	if (req->has_grant_index) {
		pr._grant_index_case =
		        BUDGETD__V1__LIST_MUTATION_EVENTS_REQUEST___GRANT_INDEX_GRANT_INDEX;
		pr.grant_index = req->grant_index;
	}
	pr.after_commit_index = req->after_commit_index;
	rc = bc__unary(client, METHOD("ListMutationEvents"), &pr.base,
	               &budgetd__v1__list_mutation_events_response__descriptor, BC__RETRY_READ,
	               deadline_ms, &msg, err);
	if (rc != 0)
		return rc;
	resp = (void *)msg;
	out->next_after_commit_index = resp->next_after_commit_index;
	if (resp->n_events > 0) {
		out->events = calloc(resp->n_events, sizeof(*out->events));
		if (out->events) {
			out->count = resp->n_events;
			for (size_t i = 0; i < resp->n_events; i++)
				cv_event(&cv, resp->events[i], &out->events[i]);
		} else {
			cv.oom = true;
		}
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return CONV_END(cv, bc_event_list_free, out, err);
}

/* One watch in progress: the caller's callback and how far it got. */
typedef struct watch_state {
	bc_event_fn fn;
	void *ctx;
	uint64_t last_seq; /* the after_commit_index to resume with */
	bool oom;
} watch_state;

static int on_watched_event(void *p, const ProtobufCMessage *msg)
{
	watch_state *w = p;
	bc_mutation_event e;
	conv cv = {false};

	memset(&e, 0, sizeof(e));
	cv_event(&cv, (const Budgetd__V1__MutationEvent *)msg, &e);
	if (cv.oom) {
		free_event(&e);
		w->oom = true;
		return 1;
	}
	if (e.event_seq > w->last_seq)
		w->last_seq = e.event_seq;
	int stop = w->fn(w->ctx, &e);
	free_event(&e);
	return stop;
}

/* The N of "resume from commit index N" in a status message, or 0. */
static uint64_t resume_index(const char *message)
{
	static const char phrase[] = "resume from commit index ";
	const char *at = strstr(message, phrase);
	uint64_t n = 0;

	if (!at)
		return 0;
	for (at += sizeof(phrase) - 1; *at >= '0' && *at <= '9'; at++) {
		if (n > (UINT64_MAX - 9) / 10)
			return 0;
		n = n * 10 + (uint64_t)(*at - '0');
	}
	return n;
}

int bc_watch_mutation_events(bc_client *client, const bc_watch_request *req, int deadline_ms,
                             bc_event_fn fn, void *ctx, uint64_t *resume, bc_error *err)
{
	Budgetd__V1__WatchMutationEventsRequest pr =
	        BUDGETD__V1__WATCH_MUTATION_EVENTS_REQUEST__INIT;
	watch_state w = {fn, ctx, req ? req->after_commit_index : 0, false};
	bc_error local = {0};
	int rc;

	if (resume)
		*resume = w.last_seq;
	if (!client || !req || !fn)
		return bc__fail(err, BC_STATUS_INVALID_ARGUMENT,
		                "%s: a NULL client, request or callback", __func__);
	pr.after_commit_index = req->after_commit_index;
	if (req->capability_id) {
		pr._capability_id_case =
		        BUDGETD__V1__WATCH_MUTATION_EVENTS_REQUEST___CAPABILITY_ID_CAPABILITY_ID;
		pr.capability_id = (char *)req->capability_id;
	}
	rc = bc__server_stream(client, METHOD("WatchMutationEvents"), &pr.base,
	                       &budgetd__v1__mutation_event__descriptor, deadline_ms,
	                       on_watched_event, &w, &local);
	if (rc == 0 && w.oom)
		rc = bc__fail(&local, BC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	if (rc != 0 && resume_index(local.message) > w.last_seq)
		w.last_seq = resume_index(local.message);
	if (resume)
		*resume = w.last_seq;
	if (rc != 0 && err)
		*err = local;
	return rc;
}

int bc_get_hold(bc_client *client, const char *hold_id, int deadline_ms, bc_hold *out,
                bc_error *err)
{
	Budgetd__V1__GetHoldRequest pr = BUDGETD__V1__GET_HOLD_REQUEST__INIT;
	Budgetd__V1__GetHoldResponse *resp = NULL;
	ProtobufCMessage *msg = NULL;
	conv cv = {false};
	int rc;

	CHECK_ARGS(client, hold_id != NULL, out, err);
	pr.hold_id = req_str(hold_id);
	rc = bc__unary(client, METHOD("GetHold"), &pr.base,
	               &budgetd__v1__get_hold_response__descriptor, BC__RETRY_READ, deadline_ms,
	               &msg, err);
	if (rc != 0)
		return rc;
	resp = (void *)msg;
	if (!resp->hold) {
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		return bc__fail(err, BC_STATUS_INTERNAL,
		                "the server's GetHoldResponse has no hold");
	}
	cv_hold(&cv, resp->hold, out);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return CONV_END(cv, bc_hold_free, out, err);
}

int bc_extend_hold(bc_client *client, const bc_extend_hold_request *req, int deadline_ms,
                   bc_extend_hold_result *out, bc_error *err)
{
	Budgetd__V1__ExtendHoldRequest pr = BUDGETD__V1__EXTEND_HOLD_REQUEST__INIT;
	Budgetd__V1__ExtendHoldResponse *resp = NULL;
	ProtobufCMessage *msg = NULL;
	Budgetd__V1__Authority authority;
	char event_id[BC_EVENT_ID_SIZE];
	conv cv = {false};
	int rc;

	CHECK_ARGS(client, req != NULL, out, err);
	pr.capability_id = req_str(req->capability_id);
	pr.grant_index = req->grant_index;
	pr.hold_id = req_str(req->hold_id);
	pr.ttl_seconds = req->ttl_seconds;
	if ((rc = req_event_id(req->event_id, event_id, &pr.event_id, err)) != 0)
		return rc;
	pr._event_id_case = BUDGETD__V1__EXTEND_HOLD_REQUEST___EVENT_ID_EVENT_ID;
	pr.authority = req_authority(req->authority, &authority);

	rc = bc__unary(client, METHOD("ExtendHold"), &pr.base,
	               &budgetd__v1__extend_hold_response__descriptor, BC__RETRY_MUTATION,
	               deadline_ms, &msg, err);
	if (rc != 0)
		return rc;
	resp = (void *)msg;
	out->hold_id = cv_str(&cv, resp->hold_id);
	cv_time(resp->expires_at, &out->has_expires_at, &out->expires_at);
	cv_metadata(&cv, resp->metadata, &out->metadata);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return CONV_END(cv, bc_extend_hold_result_free, out, err);
}

/* The public ListHolds request as the protobuf-c one (borrowing its
 * strings; `older_than` is the storage of the timestamp). */
static void list_holds_request(const bc_list_holds_request *req, Budgetd__V1__ListHoldsRequest *pr,
                               Google__Protobuf__Timestamp *older_than)
{
	pr->limit = req->limit;
	if (req->capability_id) {
		pr->_capability_id_case =
		        BUDGETD__V1__LIST_HOLDS_REQUEST___CAPABILITY_ID_CAPABILITY_ID;
		pr->capability_id = (char *)req->capability_id;
	}
	if (req->has_disposition) {
		pr->_disposition_case = BUDGETD__V1__LIST_HOLDS_REQUEST___DISPOSITION_DISPOSITION;
		pr->disposition = (Budgetd__V1__HoldDisposition)req->disposition;
	}
	if (req->has_older_than)
		pr->older_than = req_time(&req->older_than, older_than);
	pr->page_token = req_str(req->page_token);
}

int bc_list_holds(bc_client *client, const bc_list_holds_request *req, int deadline_ms,
                  bc_hold_list *out, bc_error *err)
{
	Budgetd__V1__ListHoldsRequest pr = BUDGETD__V1__LIST_HOLDS_REQUEST__INIT;
	Budgetd__V1__ListHoldsResponse *resp = NULL;
	Google__Protobuf__Timestamp older_than;
	ProtobufCMessage *msg = NULL;
	conv cv = {false};
	int rc;

	CHECK_ARGS(client, req != NULL, out, err);
	list_holds_request(req, &pr, &older_than);
	rc = bc__unary(client, METHOD("ListHolds"), &pr.base,
	               &budgetd__v1__list_holds_response__descriptor, BC__RETRY_READ, deadline_ms,
	               &msg, err);
	if (rc != 0)
		return rc;
	resp = (void *)msg;
	out->next_page_token = cv_str(&cv, resp->next_page_token);
	if (resp->n_holds > 0) {
		out->holds = calloc(resp->n_holds, sizeof(*out->holds));
		if (out->holds) {
			out->count = resp->n_holds;
			for (size_t i = 0; i < resp->n_holds; i++)
				cv_hold(&cv, resp->holds[i], &out->holds[i]);
		} else {
			cv.oom = true;
		}
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return CONV_END(cv, bc_hold_list_free, out, err);
}

int bc_get_server_info(bc_client *client, int deadline_ms, bc_server_info *out, bc_error *err)
{
	Budgetd__V1__GetServerInfoRequest pr = BUDGETD__V1__GET_SERVER_INFO_REQUEST__INIT;
	Budgetd__V1__GetServerInfoResponse *resp = NULL;
	ProtobufCMessage *msg = NULL;
	conv cv = {false};
	int rc;

	CHECK_ARGS(client, true, out, err);
	rc = bc__unary(client, METHOD("GetServerInfo"), &pr.base,
	               &budgetd__v1__get_server_info_response__descriptor, BC__RETRY_READ,
	               deadline_ms, &msg, err);
	if (rc != 0)
		return rc;
	resp = (void *)msg;
	out->version = cv_str(&cv, resp->version);
	out->authority_id = cv_str(&cv, resp->authority_id);
	out->guarantee_level = (bc_guarantee_level)resp->guarantee_level;
	out->budget_profile = (bc_budget_profile)resp->budget_profile;
	out->metering_profile = (bc_metering_profile)resp->metering_profile;
	out->commit_index = resp->commit_index;
	cv_time(resp->started_at, &out->has_started_at, &out->started_at);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return CONV_END(cv, bc_server_info_free, out, err);
}

int bc_health_check(bc_client *client, const char *service, int deadline_ms,
                    bc_serving_status *status, bc_error *err)
{
	Grpc__Health__V1__HealthCheckRequest pr = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	Grpc__Health__V1__HealthCheckResponse *resp = NULL;
	ProtobufCMessage *msg = NULL;
	int rc;

	CHECK_ARGS(client, true, status, err);
	pr.service = req_str(service);
	rc = bc__unary(client, HEALTH_CHECK, &pr.base,
	               &grpc__health__v1__health_check_response__descriptor, BC__RETRY_READ,
	               deadline_ms, &msg, err);
	if (rc != 0)
		return rc;
	resp = (void *)msg;
	*status = (bc_serving_status)resp->status;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}

/* ---- administration -------------------------------------------------------- */

/* Copies a repeated string field; *out is NULL when n is 0. */
static void cv_strings(conv *cv, char *const *src, size_t n, char ***out, size_t *count)
{
	*out = NULL;
	*count = 0;
	if (n == 0)
		return;
	*out = calloc(n, sizeof(**out));
	if (!*out) {
		cv->oom = true;
		return;
	}
	*count = n;
	for (size_t i = 0; i < n; i++)
		(*out)[i] = cv_str(cv, src[i]);
}

static void free_strings(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

void bc_backup_result_free(bc_backup_result *r)
{
	if (!r)
		return;
	free(r->path);
	free(r->summary);
	free_strings(r->mismatches, r->n_mismatches);
	memset(r, 0, sizeof(*r));
}

void bc_verify_result_free(bc_verify_result *r)
{
	if (!r)
		return;
	free(r->summary);
	free_strings(r->mismatches, r->n_mismatches);
	memset(r, 0, sizeof(*r));
}

int bc_backup(bc_client *client, const char *path, int deadline_ms, bc_backup_result *out,
              bc_error *err)
{
	Budgetd__V1__BackupRequest pr = BUDGETD__V1__BACKUP_REQUEST__INIT;
	Budgetd__V1__BackupResponse *resp = NULL;
	ProtobufCMessage *msg = NULL;
	conv cv = {false};
	int rc;

	CHECK_ARGS(client, path != NULL, out, err);
	pr.path = req_str(path);
	rc = bc__unary(client, ADMIN_METHOD("Backup"), &pr.base,
	               &budgetd__v1__backup_response__descriptor, BC__RETRY_READ, deadline_ms, &msg,
	               err);
	if (rc != 0)
		return rc;
	resp = (void *)msg;
	out->path = cv_str(&cv, resp->path);
	out->bytes = resp->bytes;
	out->commit_index = resp->commit_index;
	out->materialized_seq = resp->materialized_seq;
	out->verified = resp->verified;
	out->summary = cv_str(&cv, resp->summary);
	cv_strings(&cv, resp->mismatches, resp->n_mismatches, &out->mismatches, &out->n_mismatches);
	out->mismatch_count = resp->mismatch_count;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return CONV_END(cv, bc_backup_result_free, out, err);
}

int bc_verify(bc_client *client, int deadline_ms, bc_verify_result *out, bc_error *err)
{
	Budgetd__V1__VerifyRequest pr = BUDGETD__V1__VERIFY_REQUEST__INIT;
	Budgetd__V1__VerifyResponse *resp = NULL;
	ProtobufCMessage *msg = NULL;
	conv cv = {false};
	int rc;

	CHECK_ARGS(client, true, out, err);
	rc = bc__unary(client, ADMIN_METHOD("Verify"), &pr.base,
	               &budgetd__v1__verify_response__descriptor, BC__RETRY_READ, deadline_ms, &msg,
	               err);
	if (rc != 0)
		return rc;
	resp = (void *)msg;
	out->ok = resp->ok;
	out->summary = cv_str(&cv, resp->summary);
	cv_strings(&cv, resp->mismatches, resp->n_mismatches, &out->mismatches, &out->n_mismatches);
	out->mismatch_count = resp->mismatch_count;
	out->events = resp->events;
	out->commit_index = resp->commit_index;
	out->materialized_seq = resp->materialized_seq;
	out->usage_records = resp->usage_records;
	out->holds = resp->holds;
	out->open_holds = resp->open_holds;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return CONV_END(cv, bc_verify_result_free, out, err);
}
