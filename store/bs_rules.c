/* bs_rules.c - the budget rules: a request against loaded state, no I/O.
 *
 * Every check runs in the order RULES.md gives, and nothing is decided
 * until all checks passed, so a failing mutation never half-applies.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bs_internal.h"

/* ---- the hold lifecycle: one table, one transition function ---- */

typedef enum hold_event {
	HOLD_EVENT_RELEASE_PART, /* some exposure stays on the hold */
	HOLD_EVENT_RELEASE_ALL,  /* the release takes the hold to 0 */
	HOLD_EVENT_REVERSE,
	HOLD_EVENT_RECONCILE,
	HOLD_EVENT_EXPIRE, /* its deadline passed */
	HOLD_EVENT_EXTEND, /* its deadline moved */
	HOLD_EVENT_COUNT,
} hold_event;

/* next state per (state, event); 0 marks a move that is not allowed. Only an
 * open hold moves: released, reversed, reconciled and expired are final. */
static const bs_disposition hold_next[BS_HOLD_EXPIRED + 1][HOLD_EVENT_COUNT] = {
        [BS_HOLD_OPEN] =
                {
                        [HOLD_EVENT_RELEASE_PART] = BS_HOLD_OPEN,
                        [HOLD_EVENT_RELEASE_ALL] = BS_HOLD_RELEASED,
                        [HOLD_EVENT_REVERSE] = BS_HOLD_REVERSED,
                        [HOLD_EVENT_RECONCILE] = BS_HOLD_RECONCILED,
                        [HOLD_EVENT_EXPIRE] = BS_HOLD_EXPIRED,
                        [HOLD_EVENT_EXTEND] = BS_HOLD_OPEN,
                },
};

static int hold_transition(const bs_hold *h, hold_event ev, bs_disposition *next, bs_error *err)
{
	bs_disposition to = 0;

	if (h->disposition >= BS_HOLD_OPEN && h->disposition <= BS_HOLD_EXPIRED)
		to = hold_next[h->disposition][ev];
	if (!to)
		return bs_errorf(err, BS_EPRECONDITION, "budget hold `%.*s` is no longer open",
		                 (int)h->hold_id.len, h->hold_id.ptr);
	*next = to;
	return BS_OK;
}

bool bs_str_eq(bs_str a, bs_str b)
{
	if (!a.ptr || !b.ptr)
		return !a.ptr && !b.ptr;
	return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

/* ---- authority rule ---- */

static int check_authority_rule(const bs_hold *h, const bs_mutation *m, bs_error *err)
{
	const int hl = (int)h->hold_id.len;
	const char *hp = h->hold_id.ptr;

	if (!h->has_authority && !m->has_authority)
		return BS_OK;
	if (!h->has_authority)
		return bs_errorf(err, BS_EPRECONDITION,
		                 "budget hold `%.*s` was created without authority lease metadata",
		                 hl, hp);
	if (!m->has_authority)
		return bs_errorf(err, BS_EPRECONDITION,
		                 "budget hold `%.*s` requires authority lease metadata", hl, hp);
	if (!bs_str_eq(h->authority.authority_id, m->authority.authority_id))
		return bs_errorf(err, BS_EPRECONDITION,
		                 "authority_id does not match the open lease");
	if (!bs_str_eq(h->authority.lease_id, m->authority.lease_id))
		return bs_errorf(err, BS_EPRECONDITION,
		                 "lease_id does not match the open lease epoch");
	if (m->authority.lease_epoch < h->authority.lease_epoch)
		return bs_errorf(err, BS_EPRECONDITION, "authority lease epoch regressed");
	if (m->authority.lease_epoch > h->authority.lease_epoch)
		return bs_errorf(err, BS_EPRECONDITION,
		                 "authority lease epoch advanced beyond the open lease");
	return BS_OK;
}

/* ---- authorize and increment ---- */

static bs_denial first_failing_limit(const bs_mutation *m, const bs_usage_state *u, int *rc,
                                     bs_error *err)
{
	*rc = BS_OK;
	if (m->has_max_invocations && u->invocation_count >= m->max_invocations)
		return BS_DENIAL_MAX_INVOCATIONS;
	if (m->has_max_cost_per_invocation && m->exposure_units > m->max_cost_per_invocation)
		return BS_DENIAL_MAX_COST_PER_INVOCATION;
	if (m->has_max_total_cost_units) {
		uint64_t total;
		if (__builtin_add_overflow(u->exposed, u->realized, &total) ||
		    __builtin_add_overflow(total, m->exposure_units, &total)) {
			*rc = bs_errorf(err, BS_EOVERFLOW, "committed cost overflows u64");
			return BS_DENIAL_NONE;
		}
		if (total > m->max_total_cost_units)
			return BS_DENIAL_MAX_TOTAL_COST;
	}
	return BS_DENIAL_NONE;
}

static int count_one_invocation(bs_usage_state *u, bs_error *err)
{
	if (u->invocation_count == UINT32_MAX)
		return bs_errorf(err, BS_EOVERFLOW, "invocation_count overflows u32");
	u->invocation_count++;
	return BS_OK;
}

/* now + ttl, saturating: a clock at the end of time gives no overflow. */
static int64_t deadline_after(int64_t now, uint32_t ttl_seconds)
{
	int64_t at;

	if (__builtin_add_overflow(now, (int64_t)ttl_seconds * 1000000000, &at))
		return INT64_MAX;
	return at;
}

static int decide_authorize(const bs_mutation *m, const bs_usage_state *u, bool hold_found,
                            int64_t now, bs_decision *d, bs_error *err)
{
	int rc;

	/* Recorded with every outcome, so a retry matches a denial too. */
	if (m->ttl_seconds)
		d->on_expiry = m->on_expiry ? m->on_expiry : BS_EXPIRY_CAPTURE;

	d->denial = first_failing_limit(m, u, &rc, err);
	if (rc)
		return rc;
	if (d->denial != BS_DENIAL_NONE) {
		d->allowed = false;
		return BS_OK;
	}
	if (m->hold_id.ptr && hold_found)
		return bs_errorf(err, BS_ECONFLICT, "budget hold `%.*s` already exists",
		                 (int)m->hold_id.len, m->hold_id.ptr);
	if ((rc = count_one_invocation(&d->usage_after, err)))
		return rc;
	uint64_t exposed, committed;
	if (__builtin_add_overflow(u->exposed, m->exposure_units, &exposed) ||
	    __builtin_add_overflow(exposed, u->realized, &committed))
		return bs_errorf(err, BS_EOVERFLOW, "committed cost overflows u64");
	d->usage_after.exposed = exposed;
	if (m->ttl_seconds)
		d->expires_at_ns = deadline_after(now, m->ttl_seconds);
	return BS_OK;
}

static int decide_increment(const bs_mutation *m, const bs_usage_state *u, bs_decision *d,
                            bs_error *err)
{
	if (m->has_max_invocations && u->invocation_count >= m->max_invocations) {
		d->allowed = false;
		d->denial = BS_DENIAL_MAX_INVOCATIONS;
		return BS_OK;
	}
	return count_one_invocation(&d->usage_after, err);
}

/* ---- release, reverse, reconcile ---- */

/* The per-kind part of a settlement, so the common checks are written once. */
typedef struct settlement {
	const char *verb;           /* for "cannot <verb> more than charged exposure" */
	bool needs_invocation;      /* reverse and reconcile need invocation_count > 0 */
	const char *no_invocation;  /* message when it is 0 */
	const char *amount_message; /* hold amount check (NULL: release's own) */
} settlement;

static const settlement settlements[] = {
        [BS_KIND_RELEASE_EXPOSURE] = {"release", false, NULL, NULL},
        [BS_KIND_REVERSE_EXPOSURE] = {"reverse", true, "no invocation to reverse",
                                      "does not match reverse amount"},
        [BS_KIND_RECONCILE_SPEND] = {"reconcile", true, "no invocation to reconcile",
                                     "does not match reconciled exposure"},
};

static hold_event settlement_event(bs_kind kind, uint64_t units, uint64_t remaining)
{
	switch (kind) {
	case BS_KIND_REVERSE_EXPOSURE:
		return HOLD_EVENT_REVERSE;
	case BS_KIND_RECONCILE_SPEND:
		return HOLD_EVENT_RECONCILE;
	case BS_KIND_EXPIRE_EXPOSURE:
		return HOLD_EVENT_EXPIRE;
	case BS_KIND_EXTEND_HOLD:
		return HOLD_EVENT_EXTEND;
	default:
		return units >= remaining ? HOLD_EVENT_RELEASE_ALL : HOLD_EVENT_RELEASE_PART;
	}
}

static int check_hold_amount(const bs_mutation *m, const bs_hold *h, bs_error *err)
{
	const settlement *s = &settlements[m->kind];
	bool ok;

	if (m->kind == BS_KIND_RELEASE_EXPOSURE) {
		if (h->remaining_units < m->exposure_units)
			return bs_errorf(err, BS_EPRECONDITION,
			                 "cannot release more than remaining exposure");
		return BS_OK;
	}
	ok = h->remaining_units == m->exposure_units;
	if (m->kind == BS_KIND_REVERSE_EXPOSURE)
		ok = ok && h->debited_invocation;
	if (!ok)
		return bs_errorf(err, BS_EPRECONDITION, "budget hold `%.*s` %s",
		                 (int)h->hold_id.len, h->hold_id.ptr, s->amount_message);
	return BS_OK;
}

static int check_hold(const bs_mutation *m, bool found, const bs_hold *h, bs_error *err)
{
	bs_disposition next = 0;
	int rc;

	if (!found)
		return bs_errorf(err, BS_EPRECONDITION, "missing budget hold `%.*s`",
		                 (int)m->hold_id.len, m->hold_id.ptr);
	if (!bs_str_eq(h->capability_id, m->capability_id) || h->grant_index != m->grant_index)
		return bs_errorf(err, BS_EPRECONDITION,
		                 "budget hold `%.*s` does not match capability/grant",
		                 (int)m->hold_id.len, m->hold_id.ptr);
	rc = hold_transition(h, settlement_event(m->kind, m->exposure_units, h->remaining_units),
	                     &next, err);
	/* Expiry is budgetd's own act: no amount asked, no lease to show. */
	if (rc || m->kind == BS_KIND_EXPIRE_EXPOSURE)
		return rc;
	if (m->kind != BS_KIND_EXTEND_HOLD && (rc = check_hold_amount(m, h, err)))
		return rc;
	return check_authority_rule(h, m, err);
}

int bs_rules_hold_after_event(const bs_hold *h, const bs_event *ev, uint64_t *remaining,
                              bs_disposition *next, bs_error *err)
{
	int rc = hold_transition(
	        h, settlement_event(ev->kind, ev->exposure_units, h->remaining_units), next, err);

	if (rc)
		return rc;
	if (ev->kind == BS_KIND_EXTEND_HOLD) {
		*remaining = h->remaining_units;
	} else if (ev->kind != BS_KIND_RELEASE_EXPOSURE) {
		*remaining = 0;
	} else if (ev->exposure_units <= h->remaining_units) {
		*remaining = h->remaining_units - ev->exposure_units;
	} else {
		return bs_errorf(err, BS_EINTERNAL,
		                 "event %llu releases more than hold `%.*s` has remaining",
		                 (unsigned long long)ev->event_seq, (int)h->hold_id.len,
		                 h->hold_id.ptr);
	}
	return BS_OK;
}

static int decide_settlement(const bs_mutation *m, const bs_usage_state *u, bool hold_found,
                             const bs_hold *h, bs_decision *d, bs_error *err)
{
	const settlement *s = &settlements[m->kind];
	int rc;

	if (m->hold_id.ptr && (rc = check_hold(m, hold_found, h, err)))
		return rc;
	if (!u->exists)
		return bs_errorf(err, BS_EPRECONDITION, "missing charged budget row");
	if (s->needs_invocation && u->invocation_count == 0)
		return bs_errorf(err, BS_EPRECONDITION, "%s", s->no_invocation);
	if (u->exposed < m->exposure_units)
		return bs_errorf(err, BS_EPRECONDITION, "cannot %s more than charged exposure",
		                 s->verb);
	d->usage_after.exposed = u->exposed - m->exposure_units;
	if (m->kind == BS_KIND_REVERSE_EXPOSURE)
		d->usage_after.invocation_count--;
	if (m->kind == BS_KIND_RECONCILE_SPEND &&
	    __builtin_add_overflow(u->realized, m->realized_units, &d->usage_after.realized))
		return bs_errorf(err, BS_EOVERFLOW, "realized spend overflows u64");
	return BS_OK;
}

/* ---- deadlines ---- */

static int decide_extend(const bs_mutation *m, const bs_usage_state *u, bool hold_found,
                         const bs_hold *h, int64_t now, bs_decision *d, bs_error *err)
{
	int rc = check_hold(m, hold_found, h, err);

	if (rc)
		return rc;
	if (!u->exists)
		return bs_errorf(err, BS_EPRECONDITION, "missing charged budget row");
	/* Extending never shortens: a later deadline already set stays. */
	d->expires_at_ns = deadline_after(now, m->ttl_seconds);
	if (h->expires_at_ns > d->expires_at_ns)
		d->expires_at_ns = h->expires_at_ns;
	d->on_expiry = h->on_expiry ? h->on_expiry : BS_EXPIRY_CAPTURE;
	return BS_OK;
}

void bs_rules_expiry(const bs_hold *h, const bs_usage_state *u, bs_mutation *m)
{
	memset(m, 0, sizeof(*m));
	m->kind = BS_KIND_EXPIRE_EXPOSURE;
	m->capability_id = h->capability_id;
	m->grant_index = h->grant_index;
	m->hold_id = h->hold_id;
	m->on_expiry = h->on_expiry ? h->on_expiry : BS_EXPIRY_CAPTURE;
	/* The grant may hold less than the hold claims (a hold-less reverse or
	 * release took some): never take more than is there. */
	m->exposure_units = h->remaining_units < u->exposed ? h->remaining_units : u->exposed;
	if (m->on_expiry == BS_EXPIRY_CAPTURE)
		m->realized_units = m->exposure_units;
}

static int decide_expire(const bs_mutation *m, const bs_usage_state *u, bool hold_found,
                         const bs_hold *h, bs_decision *d, bs_error *err)
{
	int rc = check_hold(m, hold_found, h, err);

	if (rc)
		return rc;
	if (!u->exists || u->exposed < m->exposure_units)
		return bs_errorf(err, BS_EINTERNAL,
		                 "hold `%.*s` expires more than its grant exposes",
		                 (int)h->hold_id.len, h->hold_id.ptr);
	d->on_expiry = m->on_expiry;
	d->usage_after.exposed = u->exposed - m->exposure_units;
	if (__builtin_add_overflow(u->realized, m->realized_units, &d->usage_after.realized))
		return bs_errorf(err, BS_EOVERFLOW, "realized spend overflows u64");
	if (m->on_expiry == BS_EXPIRY_REVERSE && h->debited_invocation && u->invocation_count > 0)
		d->usage_after.invocation_count--;
	return BS_OK;
}

int bs_rules_decide(const bs_mutation *m, const bs_usage_state *usage, bool hold_found,
                    const bs_hold *hold, int64_t now, bs_decision *d, bs_error *err)
{
	memset(d, 0, sizeof(*d));
	d->allowed = true;
	d->usage_after = *usage;
	switch (m->kind) {
	case BS_KIND_AUTHORIZE_EXPOSURE:
		return decide_authorize(m, usage, hold_found, now, d, err);
	case BS_KIND_INCREMENT_INVOCATION:
		return decide_increment(m, usage, d, err);
	case BS_KIND_RELEASE_EXPOSURE:
	case BS_KIND_REVERSE_EXPOSURE:
	case BS_KIND_RECONCILE_SPEND:
		return decide_settlement(m, usage, hold_found, hold, d, err);
	case BS_KIND_EXTEND_HOLD:
		return decide_extend(m, usage, hold_found, hold, now, d, err);
	case BS_KIND_EXPIRE_EXPOSURE:
		return decide_expire(m, usage, hold_found, hold, d, err);
	}
	return bs_errorf(err, BS_EINTERNAL, "unknown mutation kind %d", (int)m->kind);
}

/* ---- idempotency ---- */

static bool limit_eq(bool ha, uint64_t a, bool hb, uint64_t b)
{
	return ha == hb && (!ha || a == b);
}

bool bs_event_matches(const bs_event *ev, const bs_mutation *m)
{
	if (ev->kind != m->kind || ev->grant_index != m->grant_index ||
	    !bs_str_eq(ev->capability_id, m->capability_id) || !bs_str_eq(ev->hold_id, m->hold_id))
		return false;
	if (ev->exposure_units != m->exposure_units || ev->realized_units != m->realized_units)
		return false;
	if (ev->ttl_seconds != m->ttl_seconds)
		return false;
	if (m->kind == BS_KIND_AUTHORIZE_EXPOSURE && m->ttl_seconds &&
	    ev->on_expiry != (m->on_expiry ? m->on_expiry : BS_EXPIRY_CAPTURE))
		return false;
	if (!limit_eq(ev->has_max_invocations, ev->max_invocations, m->has_max_invocations,
	              m->max_invocations) ||
	    !limit_eq(ev->has_max_cost_per_invocation, ev->max_cost_per_invocation,
	              m->has_max_cost_per_invocation, m->max_cost_per_invocation) ||
	    !limit_eq(ev->has_max_total_cost_units, ev->max_total_cost_units,
	              m->has_max_total_cost_units, m->max_total_cost_units))
		return false;
	if (ev->has_authority != m->has_authority)
		return false;
	return !m->has_authority ||
	       (bs_str_eq(ev->authority.authority_id, m->authority.authority_id) &&
	        bs_str_eq(ev->authority.lease_id, m->authority.lease_id) &&
	        ev->authority.lease_epoch == m->authority.lease_epoch);
}

void bs_generated_event_id(uint64_t seq, char *buf, size_t size)
{
	(void)snprintf(buf, size, "%s%" PRIu64, BS_GENERATED_EVENT_ID_PREFIX, seq);
}

void bs_outcome_from_event(const bs_event *ev, bs_outcome *out)
{
	memset(out, 0, sizeof(*out));
	out->kind = ev->kind;
	out->allowed = !ev->has_allowed || ev->allowed;
	out->denial = ev->denial;
	out->has_commit_index = ev->has_usage_seq;
	out->commit_index = ev->usage_seq;
	out->event_seq = ev->event_seq;
	out->invocation_count_after = ev->invocation_count_after;
	out->exposed_after = ev->exposed_after;
	out->realized_after = ev->realized_after;
	out->committed_after = ev->exposed_after + ev->realized_after;
	out->guarantee = BS_GUARANTEE_SINGLE_NODE_ATOMIC;
	out->expires_at_ns = ev->expires_at_ns;
	(void)snprintf(out->event_id, sizeof(out->event_id), "%.*s", (int)ev->event_id.len,
	               ev->event_id.ptr);
	if (ev->has_authority)
		(void)snprintf(out->budget_term, sizeof(out->budget_term), "%.*s:%" PRIu64,
		               (int)ev->authority.authority_id.len, ev->authority.authority_id.ptr,
		               ev->authority.lease_epoch);
}
