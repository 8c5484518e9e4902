/* bs_validate.c - everything decidable from a request alone (RULES.md). */
#include <string.h>

#include "bs_internal.h"

/* Length of the UTF-8 sequence starting at s[0] (at most `avail` bytes), or
 * 0 when it is malformed: overlong forms, surrogates and code points above
 * U+10FFFF are rejected. *cp receives the code point. */
static size_t utf8_decode(const unsigned char *s, size_t avail, uint32_t *cp)
{
	size_t len;
	uint32_t min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xE0) == 0xC0) {
		len = 2, min = 0x80, *cp = s[0] & 0x1F;
	} else if ((s[0] & 0xF0) == 0xE0) {
		len = 3, min = 0x800, *cp = s[0] & 0x0F;
	} else if ((s[0] & 0xF8) == 0xF0) {
		len = 4, min = 0x10000, *cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > avail)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		*cp = (*cp << 6) | (s[i] & 0x3F);
	}
	if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF))
		return 0;
	return len;
}

static bool is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

int bs_validate_id(const char *field, bs_str value, bool required, bs_error *err)
{
	const unsigned char *s = (const unsigned char *)value.ptr;

	if (!value.ptr)
		return required ? bs_errorf(err, BS_EINVAL, "%s is required", field) : BS_OK;
	if (value.len == 0)
		return bs_errorf(err, BS_EINVAL, "%s must not be empty", field);
	if (value.len > BS_ID_LEN_MAX)
		return bs_errorf(err, BS_EINVAL, "%s is longer than %d bytes", field,
		                 BS_ID_LEN_MAX);
	bool control = false;
	for (size_t i = 0; i < value.len;) {
		uint32_t cp;
		size_t n = utf8_decode(s + i, value.len - i, &cp);
		if (n == 0)
			return bs_errorf(err, BS_EINVAL, "%s is not valid UTF-8", field);
		control |= is_control(cp);
		i += n;
	}
	/* UTF-8 is reported first: a control byte in a broken string is noise. */
	if (control)
		return bs_errorf(err, BS_EINVAL, "%s contains a control character", field);
	return BS_OK;
}

int bs_validate_grant(uint64_t grant_index, bs_error *err)
{
	if (grant_index > BS_GRANT_INDEX_MAX)
		return bs_errorf(err, BS_EINVAL, "grant_index %llu is larger than %u",
		                 (unsigned long long)grant_index, BS_GRANT_INDEX_MAX);
	return BS_OK;
}

int bs_validate_limit(uint32_t limit, uint32_t *effective, bs_error *err)
{
	if (limit > BS_LIST_LIMIT_MAX)
		return bs_errorf(err, BS_EINVAL, "limit %u is larger than %d", limit,
		                 BS_LIST_LIMIT_MAX);
	*effective = limit ? limit : BS_LIST_LIMIT_DEFAULT;
	return BS_OK;
}

/* Which optional parts each kind accepts. */
typedef struct kind_shape {
	bool hold_and_authority;
	bool max_invocations;
	bool cost_limits;
	bool exposure_units;
	bool realized_units;
	bool ttl;
} kind_shape;

static int shape_of(bs_kind kind, kind_shape *shape, bs_error *err)
{
	static const kind_shape shapes[] = {
	        [BS_KIND_INCREMENT_INVOCATION] = {false, true, false, false, false, false},
	        [BS_KIND_AUTHORIZE_EXPOSURE] = {true, true, true, true, false, true},
	        [BS_KIND_REVERSE_EXPOSURE] = {true, false, false, true, false, false},
	        [BS_KIND_RELEASE_EXPOSURE] = {true, false, false, true, false, false},
	        [BS_KIND_RECONCILE_SPEND] = {true, false, false, true, true, false},
	        [BS_KIND_EXTEND_HOLD] = {true, false, false, false, false, true},
	};
	if (kind == BS_KIND_EXPIRE_EXPOSURE)
		return bs_errorf(err, BS_EINVAL, "expire_exposure is recorded by budgetd itself");
	if (kind < BS_KIND_INCREMENT_INVOCATION || kind > BS_KIND_EXTEND_HOLD)
		return bs_errorf(err, BS_EINVAL, "unknown mutation kind %d", (int)kind);
	*shape = shapes[kind];
	return BS_OK;
}

static int check_fields_belong(const bs_mutation *m, const kind_shape *shape, bs_error *err)
{
	const char *k = bs_kind_name(m->kind);

	if (!shape->hold_and_authority && m->hold_id.ptr)
		return bs_errorf(err, BS_EINVAL, "hold_id does not apply to %s", k);
	if (!shape->hold_and_authority && m->has_authority)
		return bs_errorf(err, BS_EINVAL, "authority does not apply to %s", k);
	if (!shape->cost_limits && m->has_max_cost_per_invocation)
		return bs_errorf(err, BS_EINVAL, "max_cost_per_invocation does not apply to %s", k);
	if (!shape->cost_limits && m->has_max_total_cost_units)
		return bs_errorf(err, BS_EINVAL, "max_total_cost_units does not apply to %s", k);
	if (!shape->max_invocations && m->has_max_invocations)
		return bs_errorf(err, BS_EINVAL, "max_invocations does not apply to %s", k);
	if (!shape->realized_units && m->realized_units)
		return bs_errorf(err, BS_EINVAL, "realized_units does not apply to %s", k);
	if (!shape->exposure_units && m->exposure_units)
		return bs_errorf(err, BS_EINVAL, "exposure_units does not apply to %s", k);
	if (!shape->ttl && m->ttl_seconds)
		return bs_errorf(err, BS_EINVAL, "ttl_seconds does not apply to %s", k);
	if (m->kind != BS_KIND_AUTHORIZE_EXPOSURE && m->on_expiry)
		return bs_errorf(err, BS_EINVAL, "on_expiry does not apply to %s", k);
	return BS_OK;
}

/* Presence of both parts first: "lease_id is required" is the more useful
 * message when a caller sent half an authority. */
static int check_authority(const bs_mutation *m, bs_error *err)
{
	const bs_authority *a = &m->authority;
	int rc;

	if (!m->has_authority)
		return BS_OK;
	if (!a->authority_id.ptr)
		return bs_errorf(err, BS_EINVAL, "authority.authority_id is required");
	if (!a->lease_id.ptr)
		return bs_errorf(err, BS_EINVAL, "authority.lease_id is required");
	if ((rc = bs_validate_id("authority.authority_id", a->authority_id, true, err)))
		return rc;
	return bs_validate_id("authority.lease_id", a->lease_id, true, err);
}

/* ttl_seconds and on_expiry: a deadline belongs to a hold, and a policy to
 * a deadline. */
static int check_deadline(const bs_mutation *m, bs_error *err)
{
	if (m->ttl_seconds > BS_TTL_SECONDS_MAX)
		return bs_errorf(err, BS_EINVAL, "ttl_seconds %u is larger than %d", m->ttl_seconds,
		                 BS_TTL_SECONDS_MAX);
	if (m->on_expiry > BS_EXPIRY_REVERSE)
		return bs_errorf(err, BS_EINVAL, "on_expiry %d is not an expiry policy",
		                 (int)m->on_expiry);
	if (m->kind == BS_KIND_EXTEND_HOLD) {
		if (!m->hold_id.ptr)
			return bs_errorf(err, BS_EINVAL, "hold_id is required");
		if (m->ttl_seconds == 0)
			return bs_errorf(err, BS_EINVAL, "ttl_seconds must be at least 1");
	}
	if (m->kind != BS_KIND_AUTHORIZE_EXPOSURE)
		return BS_OK;
	if (m->ttl_seconds && !m->hold_id.ptr)
		return bs_errorf(err, BS_EINVAL, "ttl_seconds needs a hold_id: only holds expire");
	if (m->on_expiry && !m->ttl_seconds)
		return bs_errorf(
		        err, BS_EINVAL,
		        "on_expiry needs ttl_seconds: a hold without deadline never expires");
	return BS_OK;
}

int bs_validate_mutation(const bs_mutation *m, bs_error *err)
{
	kind_shape shape = {0};
	int rc;

	if ((rc = shape_of(m->kind, &shape, err)))
		return rc;
	if ((rc = bs_validate_id("capability_id", m->capability_id, true, err)))
		return rc;
	if ((rc = bs_validate_grant(m->grant_index, err)))
		return rc;
	if ((rc = check_fields_belong(m, &shape, err)))
		return rc;
	if ((rc = bs_validate_id("hold_id", m->hold_id, false, err)))
		return rc;
	if ((rc = bs_validate_id("event_id", m->event_id, false, err)))
		return rc;
	static const char prefix[] = BS_GENERATED_EVENT_ID_PREFIX;
	if (m->event_id.len >= sizeof(prefix) - 1 &&
	    memcmp(m->event_id.ptr, prefix, sizeof(prefix) - 1) == 0)
		return bs_errorf(err, BS_EINVAL,
		                 "event_id must not start with the reserved prefix `%s`", prefix);
	if ((rc = check_authority(m, err)))
		return rc;
	if ((rc = bs_validate_id("caller", m->caller, false, err)))
		return rc;
	if (m->dry_run && m->kind != BS_KIND_AUTHORIZE_EXPOSURE)
		return bs_errorf(err, BS_EINVAL, "dry_run does not apply to %s",
		                 bs_kind_name(m->kind));
	if (m->kind == BS_KIND_RECONCILE_SPEND && m->realized_units > m->exposure_units)
		return bs_errorf(err, BS_EINVAL, "cannot realize spend larger than exposed cost");
	return check_deadline(m, err);
}
