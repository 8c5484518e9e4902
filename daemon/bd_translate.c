/* bd_translate.c - see bd_translate.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
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

/* An unset ttl_seconds takes the server's default, but only for a hold:
 * without one there is nothing to expire (and the store refuses a ttl).
 * An explicit 0 means no deadline. The policy is filled in only where a
 * deadline exists, so a policy without one still reaches the store's check. */
static void expiry_from_authorize(const Budgetd__V1__AuthorizeHoldRequest *r,
                                  const bd_hold_defaults *d, bs_mutation *m)
{
	if (r->_ttl_seconds_case)
		m->ttl_seconds = r->ttl_seconds;
	else if (d && m->hold_id.ptr)
		m->ttl_seconds = d->ttl_seconds;
	m->on_expiry = (bs_expiry)r->on_expiry;
	if (m->on_expiry == BS_EXPIRY_NONE && m->ttl_seconds > 0)
		m->on_expiry =
		        d && d->on_expiry != BS_EXPIRY_NONE ? d->on_expiry : BS_EXPIRY_CAPTURE;
}

static void from_authorize(const Budgetd__V1__AuthorizeHoldRequest *r, const bd_hold_defaults *d,
                           bs_mutation *m)
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
	expiry_from_authorize(r, d, m);
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

static void from_extend(const Budgetd__V1__ExtendHoldRequest *r, bs_mutation *m)
{
	m->kind = BS_KIND_EXTEND_HOLD;
	m->capability_id = bd_required_str(r->capability_id);
	m->grant_index = r->grant_index;
	m->hold_id = bd_required_str(r->hold_id);
	m->ttl_seconds = r->ttl_seconds;
	m->event_id = bd_optional_str(r->_event_id_case, r->event_id);
	set_authority(m, r->authority);
}

#define SETTLE(kind, r, exposed, realized, out)                                                    \
	from_settlement(kind, (r)->capability_id, (r)->grant_index, exposed, realized,             \
	                bd_optional_str((r)->_hold_id_case, (r)->hold_id),                         \
	                bd_optional_str((r)->_event_id_case, (r)->event_id), (r)->authority, out)

int bd_translate_mutation(const ProtobufCMessage *req, const bd_hold_defaults *defaults,
                          bs_mutation *m, const Budgetd__V1__Authority **authority)
{
	const ProtobufCMessageDescriptor *d = req->descriptor;
	const Budgetd__V1__Authority *a = NULL;

	memset(m, 0, sizeof(*m));
	if (d == &budgetd__v1__authorize_hold_request__descriptor) {
		const Budgetd__V1__AuthorizeHoldRequest *r = (const void *)req;
		from_authorize(r, defaults, m);
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
	} else if (d == &budgetd__v1__extend_hold_request__descriptor) {
		const Budgetd__V1__ExtendHoldRequest *r = (const void *)req;
		from_extend(r, m);
		a = r->authority;
	} else {
		return -EINVAL;
	}
	if (authority)
		*authority = a;
	return 0;
}

/* ---- ListHolds ---- */

#define NS_PER_S 1000000000

/* A wire Timestamp as Unix nanoseconds; times beyond what int64
 * nanoseconds hold (before 1678, after 2262) are clamped, which keeps the
 * meaning of "older than" for every hold. */
static int timestamp_ns(const Google__Protobuf__Timestamp *t, int64_t *out)
{
	if (t->nanos < 0 || t->nanos >= NS_PER_S)
		return -EINVAL;
	if (t->seconds > INT64_MAX / NS_PER_S - 1)
		*out = INT64_MAX;
	else if (t->seconds < INT64_MIN / NS_PER_S + 1)
		*out = INT64_MIN;
	else
		*out = t->seconds * NS_PER_S + t->nanos;
	return 0;
}

void bd_page_token(const bs_hold *h, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t len = h->hold_id.len <= BS_ID_LEN_MAX ? h->hold_id.len : BS_ID_LEN_MAX;
	int n = snprintf(out, BD_PAGE_TOKEN_LEN_MAX + 1, "1.%" PRId64 ".", h->created_at_ns);

	/* Hex keeps any hold id bytes intact, dots and all. */
	for (size_t i = 0; n > 0 && i < len; i++) {
		unsigned char c = (unsigned char)h->hold_id.ptr[i];
		out[n++] = hex[c >> 4];
		out[n++] = hex[c & 15];
	}
	out[n > 0 ? n : 0] = '\0';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Reads "1.<created_at_ns>.<hex>" and accepts it only in the exact form
 * bd_page_token writes: anything else was not made by this server. */
static int parse_page_token(const char *token, bs_hold_query *q, char *id_buf)
{
	size_t len = strlen(token);
	char *end;
	char again[BD_PAGE_TOKEN_LEN_MAX + 1];

	if (len > BD_PAGE_TOKEN_LEN_MAX || strncmp(token, "1.", 2) != 0)
		return -EINVAL;
	errno = 0;
	long long created = strtoll(token + 2, &end, 10);
	if (errno || end == token + 2 || *end != '.')
		return -EINVAL;
	const char *hex = end + 1;
	size_t hex_len = strlen(hex);
	if (hex_len == 0 || hex_len % 2 || hex_len / 2 > BS_ID_LEN_MAX)
		return -EINVAL;
	for (size_t i = 0; i < hex_len; i += 2) {
		int hi = hex_value(hex[i]), lo = hex_value(hex[i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		id_buf[i / 2] = (char)(hi << 4 | lo);
	}
	q->has_after = true;
	q->after_created_ns = created;
	q->after_hold_id = (bs_str){id_buf, hex_len / 2};
	bs_hold at = {.hold_id = q->after_hold_id, .created_at_ns = created};
	bd_page_token(&at, again);
	return strcmp(again, token) == 0 ? 0 : -EINVAL; /* "+1", "01", "-0": not ours */
}

int bd_translate_hold_query(const Budgetd__V1__ListHoldsRequest *r, bs_hold_query *q, char *id_buf,
                            char *why, size_t why_len)
{
	memset(q, 0, sizeof(*q));
	q->limit = r->limit;
	q->capability_id = bd_optional_str(r->_capability_id_case, r->capability_id);
	q->has_disposition = r->_disposition_case != 0;
	q->disposition = (bs_disposition)r->disposition;
	if (r->older_than) {
		q->has_older_than = true;
		if (timestamp_ns(r->older_than, &q->older_than_ns)) {
			(void)snprintf(why, why_len, "older_than.nanos %d is not 0 to 999999999",
			               (int)r->older_than->nanos);
			return -EINVAL;
		}
	}
	if (r->page_token && *r->page_token && parse_page_token(r->page_token, q, id_buf)) {
		(void)snprintf(why, why_len, "page_token is not one this server made");
		return -EINVAL;
	}
	return 0;
}
