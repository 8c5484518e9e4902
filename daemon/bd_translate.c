/* bd_translate.c - see bd_translate.h. */
#include <errno.h>
#include <string.h>

#include "bd_translate.h"

bs_str bd_required_str(const char *s)
{
	return s && *s ? bs_str_from(s) : (bs_str){0};
}

bs_str bd_optional_str(int present_case, const char *s)
{
	return present_case ? bs_str_from(s) : (bs_str){0};
}

static void set_authority(bs_mutation *m, const Budgetd__V1__Authority *a)
{
	if (!a)
		return;
	m->has_authority = true;
	m->authority.authority_id = bd_required_str(a->authority_id);
	m->authority.lease_id = bd_required_str(a->lease_id);
	m->authority.lease_epoch = a->lease_epoch;
}

static void from_authorize(const Budgetd__V1__AuthorizeHoldRequest *r, bs_mutation *m)
{
	m->kind = BS_KIND_AUTHORIZE_EXPOSURE;
	m->capability_id = bd_required_str(r->capability_id);
	m->grant_index = r->grant_index;
	m->exposure_units = r->requested_exposure_units;
	m->has_max_invocations = r->_max_invocations_case != 0;
	m->max_invocations = r->max_invocations;
	m->has_max_cost_per_invocation = r->_max_cost_per_invocation_case != 0;
	m->max_cost_per_invocation = r->max_cost_per_invocation;
	m->has_max_total_cost_units = r->_max_total_cost_units_case != 0;
	m->max_total_cost_units = r->max_total_cost_units;
	m->hold_id = bd_optional_str(r->_hold_id_case, r->hold_id);
	m->event_id = bd_optional_str(r->_event_id_case, r->event_id);
	m->dry_run = r->dry_run;
	set_authority(m, r->authority);
}

/* Release, reverse, reconcile and capture share the rest of their shape. */
static void from_settlement(bs_kind kind, const char *cap, uint64_t grant, uint64_t exposed,
                            uint64_t realized, bs_str hold_id, bs_str event_id,
                            const Budgetd__V1__Authority *a, bs_mutation *m)
{
	m->kind = kind;
	m->capability_id = bd_required_str(cap);
	m->grant_index = grant;
	m->exposure_units = exposed;
	m->realized_units = realized;
	m->hold_id = hold_id;
	m->event_id = event_id;
	set_authority(m, a);
}

static void from_increment(const Budgetd__V1__IncrementInvocationRequest *r, bs_mutation *m)
{
	m->kind = BS_KIND_INCREMENT_INVOCATION;
	m->capability_id = bd_required_str(r->capability_id);
	m->grant_index = r->grant_index;
	m->has_max_invocations = r->_max_invocations_case != 0;
	m->max_invocations = r->max_invocations;
	m->event_id = bd_optional_str(r->_event_id_case, r->event_id);
}

#define SETTLE(kind, r, exposed, realized, out)                                                    \
	from_settlement(kind, (r)->capability_id, (r)->grant_index, exposed, realized,             \
	                bd_optional_str((r)->_hold_id_case, (r)->hold_id),                         \
	                bd_optional_str((r)->_event_id_case, (r)->event_id), (r)->authority, out)

int bd_translate_mutation(const ProtobufCMessage *req, bs_mutation *m,
                          const Budgetd__V1__Authority **authority)
{
	const ProtobufCMessageDescriptor *d = req->descriptor;
	const Budgetd__V1__Authority *a = NULL;

	memset(m, 0, sizeof(*m));
	if (d == &budgetd__v1__authorize_hold_request__descriptor) {
		const Budgetd__V1__AuthorizeHoldRequest *r = (const void *)req;
		from_authorize(r, m);
		a = r->authority;
	} else if (d == &budgetd__v1__release_hold_request__descriptor) {
		const Budgetd__V1__ReleaseHoldRequest *r = (const void *)req;
		SETTLE(BS_KIND_RELEASE_EXPOSURE, r, r->released_exposure_units, 0, m);
		a = r->authority;
	} else if (d == &budgetd__v1__reverse_hold_request__descriptor) {
		const Budgetd__V1__ReverseHoldRequest *r = (const void *)req;
		SETTLE(BS_KIND_REVERSE_EXPOSURE, r, r->reversed_exposure_units, 0, m);
		a = r->authority;
	} else if (d == &budgetd__v1__reconcile_hold_request__descriptor) {
		const Budgetd__V1__ReconcileHoldRequest *r = (const void *)req;
		SETTLE(BS_KIND_RECONCILE_SPEND, r, r->exposed_cost_units, r->realized_spend_units,
		       m);
		a = r->authority;
	} else if (d == &budgetd__v1__capture_hold_request__descriptor) {
		/* Capture is reconcile under the name some kernels use. */
		const Budgetd__V1__CaptureHoldRequest *r = (const void *)req;
		SETTLE(BS_KIND_RECONCILE_SPEND, r, r->exposed_cost_units, r->realized_spend_units,
		       m);
		a = r->authority;
	} else if (d == &budgetd__v1__increment_invocation_request__descriptor) {
		from_increment((const void *)req, m);
	} else {
		return -EINVAL;
	}
	if (authority)
		*authority = a;
	return 0;
}
