/* bd_convert.c - see bd_convert.h. */
#include "bd_convert.h"

/* The wire enums are the store's, number for number: conversions cast. */
_Static_assert(BUDGETD__V1__MUTATION_KIND__MUTATION_KIND_EXPIRE_EXPOSURE ==
                               (int)BS_KIND_EXPIRE_EXPOSURE &&
                       BUDGETD__V1__MUTATION_KIND__MUTATION_KIND_EXTEND_HOLD ==
                               (int)BS_KIND_EXTEND_HOLD,
               "mutation kinds");
_Static_assert(BUDGETD__V1__HOLD_DISPOSITION__HOLD_DISPOSITION_EXPIRED == (int)BS_HOLD_EXPIRED,
               "hold dispositions");
_Static_assert(BUDGETD__V1__EXPIRY_POLICY__EXPIRY_POLICY_UNSPECIFIED == (int)BS_EXPIRY_NONE &&
                       BUDGETD__V1__EXPIRY_POLICY__EXPIRY_POLICY_CAPTURE ==
                               (int)BS_EXPIRY_CAPTURE &&
                       BUDGETD__V1__EXPIRY_POLICY__EXPIRY_POLICY_RELEASE ==
                               (int)BS_EXPIRY_RELEASE &&
                       BUDGETD__V1__EXPIRY_POLICY__EXPIRY_POLICY_REVERSE == (int)BS_EXPIRY_REVERSE,
               "expiry policies");

Google__Protobuf__Timestamp *bd_timestamp_msg(bd_arena *a, int64_t ns)
{
	Google__Protobuf__Timestamp *t = bd_arena_alloc(a, sizeof(*t));

	if (!t)
		return NULL;
	google__protobuf__timestamp__init(t);
	int64_t sec = ns / 1000000000, nsec = ns % 1000000000;
	if (nsec < 0) {
		sec--;
		nsec += 1000000000;
	}
	t->seconds = sec;
	t->nanos = (int32_t)nsec;
	return t;
}

char *bd_copy_str(bd_arena *a, bs_str s)
{
	return bd_arena_strndup(a, s.ptr ? s.ptr : "", s.len);
}

Google__Protobuf__Timestamp *bd_deadline_msg(bd_arena *a, int64_t ns, bool *failed)
{
	Google__Protobuf__Timestamp *t = ns ? bd_timestamp_msg(a, ns) : NULL;

	if (ns && !t)
		*failed = true;
	return t;
}

Budgetd__V1__Authority *bd_authority_msg(bd_arena *a, const bs_authority *src)
{
	Budgetd__V1__Authority *m = bd_arena_alloc(a, sizeof(*m));

	if (!m)
		return NULL;
	budgetd__v1__authority__init(m);
	m->authority_id = bd_copy_str(a, src->authority_id);
	m->lease_id = bd_copy_str(a, src->lease_id);
	m->lease_epoch = src->lease_epoch;
	return m->authority_id && m->lease_id ? m : NULL;
}

/* The deadline part of an event: unset where the event set none. */
static bool expiry_fields(bd_arena *a, const bs_event *e, Budgetd__V1__MutationEvent *m)
{
	bool failed = false;

	if (e->ttl_seconds > 0) {
		m->_ttl_seconds_case = BUDGETD__V1__MUTATION_EVENT___TTL_SECONDS_TTL_SECONDS;
		m->ttl_seconds = e->ttl_seconds;
	}
	m->expires_at = bd_deadline_msg(a, e->expires_at_ns, &failed);
	m->on_expiry = (Budgetd__V1__ExpiryPolicy)e->on_expiry;
	return !failed;
}

Budgetd__V1__MutationEvent *bd_event_msg(bd_arena *a, const bs_event *e)
{
	Budgetd__V1__MutationEvent *m = bd_arena_alloc(a, sizeof(*m));

	if (!m)
		return NULL;
	budgetd__v1__mutation_event__init(m);
	m->event_id = bd_copy_str(a, e->event_id);
	if (e->hold_id.ptr) {
		m->_hold_id_case = BUDGETD__V1__MUTATION_EVENT___HOLD_ID_HOLD_ID;
		m->hold_id = bd_copy_str(a, e->hold_id);
	}
	m->capability_id = bd_copy_str(a, e->capability_id);
	m->grant_index = e->grant_index;
	m->kind = (Budgetd__V1__MutationKind)e->kind;
	if (e->has_allowed) {
		m->_allowed_case = BUDGETD__V1__MUTATION_EVENT___ALLOWED_ALLOWED;
		m->allowed = e->allowed;
	}
	m->denial_reason = (Budgetd__V1__DenialReason)e->denial;
	m->recorded_at = bd_timestamp_msg(a, e->recorded_at_ns);
	m->event_seq = e->event_seq;
	if (e->has_usage_seq) {
		m->_usage_seq_case = BUDGETD__V1__MUTATION_EVENT___USAGE_SEQ_USAGE_SEQ;
		m->usage_seq = e->usage_seq;
	}
	m->exposure_units = e->exposure_units;
	m->realized_spend_units = e->realized_units;
	if (e->has_max_invocations) {
		m->_max_invocations_case =
		        BUDGETD__V1__MUTATION_EVENT___MAX_INVOCATIONS_MAX_INVOCATIONS;
		m->max_invocations = e->max_invocations;
	}
	if (e->has_max_cost_per_invocation) {
		m->_max_cost_per_invocation_case =
		        BUDGETD__V1__MUTATION_EVENT___MAX_COST_PER_INVOCATION_MAX_COST_PER_INVOCATION;
		m->max_cost_per_invocation = e->max_cost_per_invocation;
	}
	if (e->has_max_total_cost_units) {
		m->_max_total_cost_units_case =
		        BUDGETD__V1__MUTATION_EVENT___MAX_TOTAL_COST_UNITS_MAX_TOTAL_COST_UNITS;
		m->max_total_cost_units = e->max_total_cost_units;
	}
	m->invocation_count_after = e->invocation_count_after;
	m->total_cost_exposed_after = e->exposed_after;
	m->total_cost_realized_spend_after = e->realized_after;
	if (e->has_authority && !(m->authority = bd_authority_msg(a, &e->authority)))
		return NULL;
	if (e->caller.ptr && !(m->caller = bd_copy_str(a, e->caller)))
		return NULL;
	if (!expiry_fields(a, e, m))
		return NULL;
	if (!m->event_id || !m->capability_id || !m->recorded_at || (e->hold_id.ptr && !m->hold_id))
		return NULL;
	return m;
}

Budgetd__V1__Hold *bd_hold_msg(bd_arena *a, const bs_hold *h)
{
	Budgetd__V1__Hold *m = bd_arena_alloc(a, sizeof(*m));
	bool failed = false;

	if (!m)
		return NULL;
	budgetd__v1__hold__init(m);
	m->hold_id = bd_copy_str(a, h->hold_id);
	m->capability_id = bd_copy_str(a, h->capability_id);
	m->grant_index = h->grant_index;
	m->authorized_exposure_units = h->authorized_units;
	m->remaining_exposure_units = h->remaining_units;
	m->debited_invocation = h->debited_invocation;
	m->disposition = (Budgetd__V1__HoldDisposition)h->disposition;
	if (h->has_authority && !(m->authority = bd_authority_msg(a, &h->authority)))
		return NULL;
	m->created_at = bd_timestamp_msg(a, h->created_at_ns);
	m->updated_at = bd_timestamp_msg(a, h->updated_at_ns);
	m->expires_at = bd_deadline_msg(a, h->expires_at_ns, &failed);
	m->on_expiry = (Budgetd__V1__ExpiryPolicy)h->on_expiry;
	return m->hold_id && m->capability_id && m->created_at && m->updated_at && !failed ? m
	                                                                                   : NULL;
}
