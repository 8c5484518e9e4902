/* bd_convert.c - see bd_convert.h. */
#include "bd_convert.h"

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
	if (!m->event_id || !m->capability_id || !m->recorded_at || (e->hold_id.ptr && !m->hold_id))
		return NULL;
	return m;
}
