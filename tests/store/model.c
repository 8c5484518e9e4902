/* model.c - an in-memory reference model of the store's rules (RULES.md).
 *
 * Plain arrays and linear searches: slow, obvious, and independent of the
 * SQL implementation it checks.
 */
#include "model.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESERVED_PREFIX "budgetd-auto-"

typedef struct m_id {
	bool present;
	size_t len;
	char b[BS_ID_LEN_MAX + 1];
} m_id;

typedef struct m_auth {
	bool present;
	m_id authority_id;
	m_id lease_id;
	uint64_t epoch;
} m_auth;

typedef struct m_usage {
	m_id cap;
	uint32_t grant;
	uint32_t count;
	uint64_t exposed;
	uint64_t realized;
	uint64_t seq;
	int64_t updated_at;
} m_usage;

typedef struct m_hold {
	m_id id;
	m_id cap;
	uint32_t grant;
	uint64_t authorized;
	uint64_t remaining;
	bool debited;
	bs_disposition disposition;
	m_auth auth;
	int64_t created_at;
	int64_t updated_at;
} m_hold;

/* A recorded event: the request as given, what it did, and the answer. */
typedef struct m_event {
	uint64_t seq;
	m_id event_id;
	m_id hold_id;
	m_id cap;
	uint32_t grant;
	bs_kind kind;
	uint64_t exposure;
	uint64_t realized;
	bool has_max_inv;
	uint64_t max_inv;
	bool has_max_cost;
	uint64_t max_cost;
	bool has_max_total;
	uint64_t max_total;
	m_auth auth;
	bool has_allowed;
	bool allowed;
	bs_denial denial;
	int64_t recorded_at;
	bool has_usage_seq;
	uint64_t usage_seq;
	uint32_t count_after;
	uint64_t exposed_after;
	uint64_t realized_after;
	bs_outcome outcome;
} m_event;

struct model {
	uint64_t seq;
	m_usage *usages;
	size_t n_usages, cap_usages;
	m_hold *holds;
	size_t n_holds, cap_holds;
	m_event *events;
	size_t n_events, cap_events;
};

/* --- small helpers ------------------------------------------------------- */

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return p;
	*cap = *cap ? *cap * 2 : 16;
	p = realloc(p, *cap * size);
	if (p == NULL)
		abort();
	return p;
}

static void id_set(m_id *id, bs_str s)
{
	memset(id, 0, sizeof(*id));
	if (s.ptr == NULL)
		return;
	id->present = true;
	id->len = s.len;
	memcpy(id->b, s.ptr, s.len);
}

static bool id_eq(const m_id *id, bs_str s)
{
	if (!id->present || s.ptr == NULL)
		return id->present == (s.ptr != NULL);
	return id->len == s.len && memcmp(id->b, s.ptr, s.len) == 0;
}

static bool id_eq_id(const m_id *a, const m_id *b)
{
	bs_str s = {b->present ? b->b : NULL, b->len};

	return id_eq(a, s);
}

static bs_str id_str(const m_id *id)
{
	bs_str s = {id->present ? id->b : NULL, id->present ? id->len : 0};

	return s;
}

static void auth_set(m_auth *a, const bs_mutation *mut)
{
	memset(a, 0, sizeof(*a));
	if (!mut->has_authority)
		return;
	a->present = true;
	id_set(&a->authority_id, mut->authority.authority_id);
	id_set(&a->lease_id, mut->authority.lease_id);
	a->epoch = mut->authority.lease_epoch;
}

static bool auth_eq(const m_auth *a, const m_auth *b)
{
	if (a->present != b->present)
		return false;
	if (!a->present)
		return true;
	return id_eq_id(&a->authority_id, &b->authority_id) &&
	       id_eq_id(&a->lease_id, &b->lease_id) && a->epoch == b->epoch;
}

static void auth_out(const m_auth *a, bool *has, bs_authority *out)
{
	memset(out, 0, sizeof(*out));
	*has = a->present;
	if (!a->present)
		return;
	out->authority_id = id_str(&a->authority_id);
	out->lease_id = id_str(&a->lease_id);
	out->lease_epoch = a->epoch;
}

__attribute__((format(printf, 3, 4))) static int fail(bs_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return code;
}

static const char *kind_name(bs_kind k)
{
	switch (k) {
	case BS_KIND_INCREMENT_INVOCATION:
		return "increment_invocation";
	case BS_KIND_AUTHORIZE_EXPOSURE:
		return "authorize_exposure";
	case BS_KIND_REVERSE_EXPOSURE:
		return "reverse_exposure";
	case BS_KIND_RELEASE_EXPOSURE:
		return "release_exposure";
	case BS_KIND_RECONCILE_SPEND:
		return "reconcile_spend";
	case BS_KIND_EXPIRE_EXPOSURE:
		return "expire_exposure";
	case BS_KIND_EXTEND_HOLD:
		return "extend_hold";
	}
	return "unknown";
}

/* --- validation ---------------------------------------------------------- */

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, <= U+10FFFF.
 * Sets *control when a decoded code point is a control character. */
static bool utf8_scan(const unsigned char *p, size_t n, bool *control)
{
	size_t i = 0;

	*control = false;
	while (i < n) {
		unsigned char c = p[i];
		uint32_t cp;
		size_t need;

		if (c < 0x80) {
			cp = c;
			need = 0;
		} else if (c >= 0xc2 && c <= 0xdf) {
			cp = c & 0x1f;
			need = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			cp = c & 0x0f;
			need = 2;
		} else if (c >= 0xf0 && c <= 0xf4) {
			cp = c & 0x07;
			need = 3;
		} else {
			return false;
		}
		if (n - i - 1 < need)
			return false;
		for (size_t k = 1; k <= need; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			*control = true;
		i += need + 1;
	}
	return true;
}

static int check_shape(const char *field, bs_str s, bool required, bs_error *err)
{
	bool control;

	if (s.ptr == NULL) {
		if (required)
			return fail(err, BS_EINVAL, "%s is required", field);
		return BS_OK;
	}
	if (s.len == 0)
		return fail(err, BS_EINVAL, "%s must not be empty", field);
	if (s.len > BS_ID_LEN_MAX)
		return fail(err, BS_EINVAL, "%s is longer than 256 bytes", field);
	if (!utf8_scan((const unsigned char *)s.ptr, s.len, &control))
		return fail(err, BS_EINVAL, "%s is not valid UTF-8", field);
	if (control)
		return fail(err, BS_EINVAL, "%s contains a control character", field);
	return BS_OK;
}

static int validate(const bs_mutation *mut, bs_error *err)
{
	const char *k = kind_name(mut->kind);
	bool incr = mut->kind == BS_KIND_INCREMENT_INVOCATION;
	bool auth = mut->kind == BS_KIND_AUTHORIZE_EXPOSURE;
	int rc;

	rc = check_shape("capability_id", mut->capability_id, true, err);
	if (rc)
		return rc;
	if (mut->grant_index > UINT32_MAX)
		return fail(err, BS_EINVAL, "grant_index %" PRIu64 " is larger than 4294967295",
		            mut->grant_index);
	if (incr && mut->hold_id.ptr != NULL)
		return fail(err, BS_EINVAL, "hold_id does not apply to increment_invocation");
	if (incr && mut->has_authority)
		return fail(err, BS_EINVAL, "authority does not apply to increment_invocation");
	if (!auth && mut->has_max_cost_per_invocation)
		return fail(err, BS_EINVAL, "max_cost_per_invocation does not apply to %s", k);
	if (!auth && mut->has_max_total_cost_units)
		return fail(err, BS_EINVAL, "max_total_cost_units does not apply to %s", k);
	if (!auth && !incr && mut->has_max_invocations)
		return fail(err, BS_EINVAL, "max_invocations does not apply to %s", k);
	if (mut->kind != BS_KIND_RECONCILE_SPEND && mut->realized_units != 0)
		return fail(err, BS_EINVAL, "realized_units does not apply to %s", k);
	if (incr && mut->exposure_units != 0)
		return fail(err, BS_EINVAL,
		            "exposure_units does not apply to increment_invocation");
	rc = check_shape("hold_id", mut->hold_id, false, err);
	if (rc)
		return rc;
	rc = check_shape("event_id", mut->event_id, false, err);
	if (rc)
		return rc;
	if (mut->event_id.ptr != NULL && mut->event_id.len >= strlen(RESERVED_PREFIX) &&
	    memcmp(mut->event_id.ptr, RESERVED_PREFIX, strlen(RESERVED_PREFIX)) == 0)
		return fail(err, BS_EINVAL,
		            "event_id must not start with the reserved prefix `" RESERVED_PREFIX
		            "`");
	if (mut->has_authority) {
		if (mut->authority.authority_id.ptr == NULL)
			return fail(err, BS_EINVAL, "authority.authority_id is required");
		if (mut->authority.lease_id.ptr == NULL)
			return fail(err, BS_EINVAL, "authority.lease_id is required");
		rc = check_shape("authority.authority_id", mut->authority.authority_id, true, err);
		if (rc)
			return rc;
		rc = check_shape("authority.lease_id", mut->authority.lease_id, true, err);
		if (rc)
			return rc;
	}
	if (mut->kind == BS_KIND_RECONCILE_SPEND && mut->realized_units > mut->exposure_units)
		return fail(err, BS_EINVAL, "cannot realize spend larger than exposed cost");
	return BS_OK;
}

/* --- lookups ------------------------------------------------------------- */

static m_usage *find_usage(const model *m, bs_str cap, uint32_t grant)
{
	for (size_t i = 0; i < m->n_usages; i++)
		if (m->usages[i].grant == grant && id_eq(&m->usages[i].cap, cap))
			return &m->usages[i];
	return NULL;
}

static m_hold *find_hold(const model *m, bs_str id)
{
	for (size_t i = 0; i < m->n_holds; i++)
		if (id_eq(&m->holds[i].id, id))
			return &m->holds[i];
	return NULL;
}

static m_event *find_event(const model *m, bs_str id)
{
	for (size_t i = 0; i < m->n_events; i++)
		if (id_eq(&m->events[i].event_id, id))
			return &m->events[i];
	return NULL;
}

/* Same request as recorded: capability, grant, kind, hold_id, authority,
 * units and the three limits, presence included. */
static bool same_request(const m_event *e, const bs_mutation *mut)
{
	m_auth a;

	auth_set(&a, mut);
	if (e->kind != mut->kind || e->grant != mut->grant_index ||
	    !id_eq(&e->cap, mut->capability_id))
		return false;
	if (!id_eq(&e->hold_id, mut->hold_id) || !auth_eq(&e->auth, &a))
		return false;
	if (e->exposure != mut->exposure_units || e->realized != mut->realized_units)
		return false;
	if (e->has_max_inv != mut->has_max_invocations ||
	    (e->has_max_inv && e->max_inv != mut->max_invocations))
		return false;
	if (e->has_max_cost != mut->has_max_cost_per_invocation ||
	    (e->has_max_cost && e->max_cost != mut->max_cost_per_invocation))
		return false;
	if (e->has_max_total != mut->has_max_total_cost_units ||
	    (e->has_max_total && e->max_total != mut->max_total_cost_units))
		return false;
	return true;
}

/* --- the rules ----------------------------------------------------------- */

static int authority_rule(const m_hold *h, const bs_mutation *mut, bs_error *err)
{
	const char *hid = h->id.b;

	if (!h->auth.present && !mut->has_authority)
		return BS_OK;
	if (!h->auth.present)
		return fail(err, BS_EPRECONDITION,
		            "budget hold `%s` was created without authority lease metadata", hid);
	if (!mut->has_authority)
		return fail(err, BS_EPRECONDITION,
		            "budget hold `%s` requires authority lease metadata", hid);
	if (!id_eq(&h->auth.authority_id, mut->authority.authority_id))
		return fail(err, BS_EPRECONDITION, "authority_id does not match the open lease");
	if (!id_eq(&h->auth.lease_id, mut->authority.lease_id))
		return fail(err, BS_EPRECONDITION, "lease_id does not match the open lease epoch");
	if (mut->authority.lease_epoch < h->auth.epoch)
		return fail(err, BS_EPRECONDITION, "authority lease epoch regressed");
	if (mut->authority.lease_epoch > h->auth.epoch)
		return fail(err, BS_EPRECONDITION,
		            "authority lease epoch advanced beyond the open lease");
	return BS_OK;
}

/* Hold checks 1-3 (exists, matches, open); the amount check is per kind. */
static int hold_basic(model *m, const bs_mutation *mut, m_hold **out, bs_error *err)
{
	m_hold *h = find_hold(m, mut->hold_id);
	m_id hid;

	id_set(&hid, mut->hold_id);
	if (h == NULL)
		return fail(err, BS_EPRECONDITION, "missing budget hold `%s`", hid.b);
	if (h->grant != mut->grant_index || !id_eq(&h->cap, mut->capability_id))
		return fail(err, BS_EPRECONDITION,
		            "budget hold `%s` does not match capability/grant", hid.b);
	if (h->disposition != BS_HOLD_OPEN)
		return fail(err, BS_EPRECONDITION, "budget hold `%s` is no longer open", hid.b);
	*out = h;
	return BS_OK;
}

static m_usage *usage_for_write(model *m, bs_str cap, uint32_t grant)
{
	m_usage *u = find_usage(m, cap, grant);

	if (u)
		return u;
	m->usages = grow(m->usages, &m->cap_usages, m->n_usages, sizeof(*m->usages));
	u = &m->usages[m->n_usages++];
	memset(u, 0, sizeof(*u));
	id_set(&u->cap, cap);
	u->grant = grant;
	return u;
}

static void fill_outcome(const m_event *e, bs_outcome *out)
{
	memset(out, 0, sizeof(*out));
	out->kind = e->kind;
	out->allowed = e->has_allowed ? e->allowed : true;
	out->denial = e->denial;
	out->replayed = false;
	out->has_commit_index = e->has_usage_seq;
	out->commit_index = e->has_usage_seq ? e->usage_seq : 0;
	out->event_seq = e->seq;
	out->invocation_count_after = e->count_after;
	out->exposed_after = e->exposed_after;
	out->realized_after = e->realized_after;
	out->committed_after = e->exposed_after + e->realized_after;
	out->guarantee = BS_GUARANTEE_SINGLE_NODE_ATOMIC;
	snprintf(out->event_id, sizeof(out->event_id), "%s", e->event_id.b);
	if (e->auth.present)
		snprintf(out->budget_term, sizeof(out->budget_term), "%s:%" PRIu64,
		         e->auth.authority_id.b, e->auth.epoch);
}

/* Records the event for `mut` with the next sequence value. `u` is the
 * usage row after the mutation (NULL: none exists). */
static m_event *record(model *m, const bs_mutation *mut, int64_t now, bool has_allowed,
                       bool allowed, bs_denial denial, const m_usage *u)
{
	m_event *e;

	m->events = grow(m->events, &m->cap_events, m->n_events, sizeof(*m->events));
	e = &m->events[m->n_events++];
	memset(e, 0, sizeof(*e));
	e->seq = ++m->seq;
	if (mut->event_id.ptr) {
		id_set(&e->event_id, mut->event_id);
	} else {
		e->event_id.present = true;
		snprintf(e->event_id.b, sizeof(e->event_id.b), RESERVED_PREFIX "%" PRIu64, e->seq);
		e->event_id.len = strlen(e->event_id.b);
	}
	id_set(&e->hold_id, mut->hold_id);
	id_set(&e->cap, mut->capability_id);
	e->grant = (uint32_t)mut->grant_index;
	e->kind = mut->kind;
	e->exposure = mut->exposure_units;
	e->realized = mut->realized_units;
	e->has_max_inv = mut->has_max_invocations;
	e->max_inv = mut->has_max_invocations ? mut->max_invocations : 0;
	e->has_max_cost = mut->has_max_cost_per_invocation;
	e->max_cost = mut->has_max_cost_per_invocation ? mut->max_cost_per_invocation : 0;
	e->has_max_total = mut->has_max_total_cost_units;
	e->max_total = mut->has_max_total_cost_units ? mut->max_total_cost_units : 0;
	auth_set(&e->auth, mut);
	e->has_allowed = has_allowed;
	e->allowed = allowed;
	e->denial = denial;
	e->recorded_at = now;
	e->has_usage_seq = allowed;
	e->usage_seq = allowed ? e->seq : 0;
	if (u) {
		e->count_after = u->count;
		e->exposed_after = u->exposed;
		e->realized_after = u->realized;
	}
	fill_outcome(e, &e->outcome);
	return e;
}

static int do_authorize(model *m, const bs_mutation *mut, int64_t now, bs_outcome *out,
                        bs_error *err)
{
	uint32_t grant = (uint32_t)mut->grant_index;
	m_usage *u = find_usage(m, mut->capability_id, grant);
	uint32_t count = u ? u->count : 0;
	uint64_t exposed = u ? u->exposed : 0, realized = u ? u->realized : 0;
	uint64_t req = mut->exposure_units, sum, tmp;
	bs_denial denial = BS_DENIAL_NONE;
	m_event *e;
	m_hold *h;

	if (mut->has_max_invocations && !((uint64_t)count < mut->max_invocations)) {
		denial = BS_DENIAL_MAX_INVOCATIONS;
	} else if (mut->has_max_cost_per_invocation && !(req <= mut->max_cost_per_invocation)) {
		denial = BS_DENIAL_MAX_COST_PER_INVOCATION;
	} else if (mut->has_max_total_cost_units) {
		if (__builtin_add_overflow(exposed, realized, &sum) ||
		    __builtin_add_overflow(sum, req, &sum))
			return fail(err, BS_EOVERFLOW, "committed cost overflows u64");
		if (sum > mut->max_total_cost_units)
			denial = BS_DENIAL_MAX_TOTAL_COST;
	}
	if (denial != BS_DENIAL_NONE) {
		e = record(m, mut, now, true, false, denial, u);
		*out = e->outcome;
		return BS_OK;
	}
	if (mut->hold_id.ptr && find_hold(m, mut->hold_id)) {
		m_id hid;

		id_set(&hid, mut->hold_id);
		return fail(err, BS_ECONFLICT, "budget hold `%s` already exists", hid.b);
	}
	if (count == UINT32_MAX)
		return fail(err, BS_EOVERFLOW, "invocation_count overflows u32");
	if (__builtin_add_overflow(exposed, req, &tmp) ||
	    __builtin_add_overflow(exposed, realized, &sum) ||
	    __builtin_add_overflow(sum, req, &sum))
		return fail(err, BS_EOVERFLOW, "committed cost overflows u64");
	u = usage_for_write(m, mut->capability_id, grant);
	u->count++;
	u->exposed += req;
	u->seq = m->seq + 1;
	u->updated_at = now;
	if (mut->hold_id.ptr) {
		m->holds = grow(m->holds, &m->cap_holds, m->n_holds, sizeof(*m->holds));
		h = &m->holds[m->n_holds++];
		memset(h, 0, sizeof(*h));
		id_set(&h->id, mut->hold_id);
		id_set(&h->cap, mut->capability_id);
		h->grant = grant;
		h->authorized = req;
		h->remaining = req;
		h->debited = true;
		h->disposition = BS_HOLD_OPEN;
		auth_set(&h->auth, mut);
		h->created_at = now;
		h->updated_at = now;
	}
	e = record(m, mut, now, true, true, BS_DENIAL_NONE, u);
	*out = e->outcome;
	return BS_OK;
}

static int do_increment(model *m, const bs_mutation *mut, int64_t now, bs_outcome *out,
                        bs_error *err)
{
	uint32_t grant = (uint32_t)mut->grant_index;
	m_usage *u = find_usage(m, mut->capability_id, grant);
	uint32_t count = u ? u->count : 0;
	m_event *e;

	if (mut->has_max_invocations && !((uint64_t)count < mut->max_invocations)) {
		e = record(m, mut, now, true, false, BS_DENIAL_MAX_INVOCATIONS, u);
		*out = e->outcome;
		return BS_OK;
	}
	if (count == UINT32_MAX)
		return fail(err, BS_EOVERFLOW, "invocation_count overflows u32");
	u = usage_for_write(m, mut->capability_id, grant);
	u->count++;
	u->seq = m->seq + 1;
	u->updated_at = now;
	e = record(m, mut, now, true, true, BS_DENIAL_NONE, u);
	*out = e->outcome;
	return BS_OK;
}

/* release, reverse and reconcile */
static int do_settle(model *m, const bs_mutation *mut, int64_t now, bs_outcome *out, bs_error *err)
{
	uint32_t grant = (uint32_t)mut->grant_index;
	uint64_t units = mut->exposure_units;
	m_hold *h = NULL;
	m_usage *u;
	m_event *e;
	int rc;

	if (mut->hold_id.ptr) {
		rc = hold_basic(m, mut, &h, err);
		if (rc)
			return rc;
		switch (mut->kind) {
		case BS_KIND_RELEASE_EXPOSURE:
			if (h->remaining < units)
				return fail(err, BS_EPRECONDITION,
				            "cannot release more than remaining exposure");
			break;
		case BS_KIND_REVERSE_EXPOSURE:
			if (h->remaining != units || !h->debited)
				return fail(err, BS_EPRECONDITION,
				            "budget hold `%s` does not match reverse amount",
				            h->id.b);
			break;
		default:
			if (h->remaining != units)
				return fail(err, BS_EPRECONDITION,
				            "budget hold `%s` does not match reconciled exposure",
				            h->id.b);
			break;
		}
		rc = authority_rule(h, mut, err);
		if (rc)
			return rc;
	}
	u = find_usage(m, mut->capability_id, grant);
	if (u == NULL)
		return fail(err, BS_EPRECONDITION, "missing charged budget row");
	switch (mut->kind) {
	case BS_KIND_RELEASE_EXPOSURE:
		if (u->exposed < units)
			return fail(err, BS_EPRECONDITION,
			            "cannot release more than charged exposure");
		u->exposed -= units;
		if (h) {
			h->remaining -= units;
			if (h->remaining == 0)
				h->disposition = BS_HOLD_RELEASED;
		}
		break;
	case BS_KIND_REVERSE_EXPOSURE:
		if (u->count == 0)
			return fail(err, BS_EPRECONDITION, "no invocation to reverse");
		if (u->exposed < units)
			return fail(err, BS_EPRECONDITION,
			            "cannot reverse more than charged exposure");
		u->count--;
		u->exposed -= units;
		if (h) {
			h->remaining = 0;
			h->disposition = BS_HOLD_REVERSED;
		}
		break;
	default:
		if (u->count == 0)
			return fail(err, BS_EPRECONDITION, "no invocation to reconcile");
		if (u->exposed < units)
			return fail(err, BS_EPRECONDITION,
			            "cannot reconcile more than charged exposure");
		if (u->realized > UINT64_MAX - mut->realized_units)
			return fail(err, BS_EOVERFLOW, "realized spend overflows u64");
		u->exposed -= units;
		u->realized += mut->realized_units;
		if (h) {
			h->remaining = 0;
			h->disposition = BS_HOLD_RECONCILED;
		}
		break;
	}
	if (h)
		h->updated_at = now;
	u->seq = m->seq + 1;
	u->updated_at = now;
	e = record(m, mut, now, false, true, BS_DENIAL_NONE, u);
	*out = e->outcome;
	return BS_OK;
}

int model_apply(model *m, const bs_mutation *mut, int64_t now, bs_outcome *out, bs_error *err)
{
	m_event *e;
	int rc;

	if (err)
		memset(err, 0, sizeof(*err));
	rc = validate(mut, err);
	if (rc)
		return rc;
	if (mut->event_id.ptr && (e = find_event(m, mut->event_id)) != NULL) {
		if (!same_request(e, mut))
			return fail(err, BS_ECONFLICT,
			            "event_id `%s` was reused for a different mutation",
			            e->event_id.b);
		*out = e->outcome;
		out->replayed = true;
		return BS_OK;
	}
	switch (mut->kind) {
	case BS_KIND_AUTHORIZE_EXPOSURE:
		return do_authorize(m, mut, now, out, err);
	case BS_KIND_INCREMENT_INVOCATION:
		return do_increment(m, mut, now, out, err);
	case BS_KIND_RELEASE_EXPOSURE:
	case BS_KIND_REVERSE_EXPOSURE:
	case BS_KIND_RECONCILE_SPEND:
		return do_settle(m, mut, now, out, err);
	case BS_KIND_EXPIRE_EXPOSURE:
	case BS_KIND_EXTEND_HOLD:
		break; /* deadlines are tested on their own (test_expiry.c) */
	}
	return fail(err, BS_EINVAL, "unknown kind %d", (int)mut->kind);
}

/* --- the model's life and queries ---------------------------------------- */

model *model_new(void)
{
	model *m = calloc(1, sizeof(*m));

	if (m == NULL)
		abort();
	return m;
}

void model_free(model *m)
{
	if (m == NULL)
		return;
	free(m->usages);
	free(m->holds);
	free(m->events);
	free(m);
}

uint64_t model_commit_index(const model *m)
{
	return m->seq;
}

static void usage_out(const m_usage *u, bs_usage *out)
{
	memset(out, 0, sizeof(*out));
	out->capability_id = id_str(&u->cap);
	out->grant_index = u->grant;
	out->invocation_count = u->count;
	out->total_cost_exposed = u->exposed;
	out->total_cost_realized_spend = u->realized;
	out->committed_cost = u->exposed + u->realized;
	out->seq = u->seq;
	out->updated_at_ns = u->updated_at;
}

bool model_get_usage(const model *m, bs_str cap, uint32_t grant, bs_usage *out)
{
	const m_usage *u = find_usage(m, cap, grant);

	if (u)
		usage_out(u, out);
	return u != NULL;
}

static void hold_out(const m_hold *h, bs_hold *out)
{
	memset(out, 0, sizeof(*out));
	out->hold_id = id_str(&h->id);
	out->capability_id = id_str(&h->cap);
	out->grant_index = h->grant;
	out->authorized_units = h->authorized;
	out->remaining_units = h->remaining;
	out->debited_invocation = h->debited;
	out->disposition = h->disposition;
	auth_out(&h->auth, &out->has_authority, &out->authority);
	out->created_at_ns = h->created_at;
	out->updated_at_ns = h->updated_at;
}

bool model_get_hold(const model *m, bs_str hold_id, bs_hold *out)
{
	const m_hold *h = find_hold(m, hold_id);

	if (h)
		hold_out(h, out);
	return h != NULL;
}

static int cmp_bytes(bs_str a, bs_str b)
{
	size_t n = a.len < b.len ? a.len : b.len;
	int c = memcmp(a.ptr, b.ptr, n);

	if (c)
		return c;
	return (a.len > b.len) - (a.len < b.len);
}

static int cmp_list_order(const void *pa, const void *pb)
{
	const bs_usage *a = pa, *b = pb;
	int c;

	if (a->updated_at_ns != b->updated_at_ns)
		return a->updated_at_ns > b->updated_at_ns ? -1 : 1;
	c = cmp_bytes(a->capability_id, b->capability_id);
	if (c)
		return c;
	return (a->grant_index > b->grant_index) - (a->grant_index < b->grant_index);
}

size_t model_list_usages(const model *m, bs_usage *out, size_t max)
{
	bs_usage *all = calloc(m->n_usages + 1, sizeof(*all));

	if (all == NULL)
		abort();
	for (size_t i = 0; i < m->n_usages; i++)
		usage_out(&m->usages[i], &all[i]);
	qsort(all, m->n_usages, sizeof(*all), cmp_list_order);
	for (size_t i = 0; i < m->n_usages && i < max; i++)
		out[i] = all[i];
	free(all);
	return m->n_usages;
}

size_t model_hold_count(const model *m)
{
	return m->n_holds;
}

void model_hold_at(const model *m, size_t i, bs_hold *out)
{
	hold_out(&m->holds[i], out);
}

size_t model_event_count(const model *m)
{
	return m->n_events;
}

void model_event_at(const model *m, size_t i, bs_event *out)
{
	const m_event *e = &m->events[i];

	memset(out, 0, sizeof(*out));
	out->event_seq = e->seq;
	out->event_id = id_str(&e->event_id);
	out->hold_id = id_str(&e->hold_id);
	out->capability_id = id_str(&e->cap);
	out->grant_index = e->grant;
	out->kind = e->kind;
	out->has_allowed = e->has_allowed;
	out->allowed = e->allowed;
	out->denial = e->denial;
	out->recorded_at_ns = e->recorded_at;
	out->has_usage_seq = e->has_usage_seq;
	out->usage_seq = e->usage_seq;
	out->exposure_units = e->exposure;
	out->realized_units = e->realized;
	out->has_max_invocations = e->has_max_inv;
	out->max_invocations = e->max_inv;
	out->has_max_cost_per_invocation = e->has_max_cost;
	out->max_cost_per_invocation = e->max_cost;
	out->has_max_total_cost_units = e->has_max_total;
	out->max_total_cost_units = e->max_total;
	out->invocation_count_after = e->count_after;
	out->exposed_after = e->exposed_after;
	out->realized_after = e->realized_after;
	auth_out(&e->auth, &out->has_authority, &out->authority);
}
