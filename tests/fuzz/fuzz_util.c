/* fuzz_util.c - see fuzz_util.h. */
#include "fuzz_util.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("\n*** budgetd fuzz invariant violated: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
	fflush(stderr);
	__builtin_trap();
}

bool fuzz_id_shape_ok(bs_str s)
{
	/* The store's own validation decides; here only what must obviously
	 * hold of anything it accepted: present, 1..256 bytes, no NUL. */
	return s.ptr && s.len > 0 && s.len <= BS_ID_LEN_MAX && !memchr(s.ptr, '\0', s.len);
}

bool fuzz_str_eq(bs_str a, bs_str b)
{
	if (!a.ptr || !b.ptr)
		return !a.ptr && !b.ptr;
	return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

static void check_authority(const char *what, bool has, const bs_authority *a)
{
	if (!has)
		return;
	FUZZ_CHECK(fuzz_id_shape_ok(a->authority_id) && fuzz_id_shape_ok(a->lease_id),
	           "%s: authority with a malformed authority_id or lease_id", what);
}

void fuzz_check_usage(const char *what, const bs_usage *u, uint64_t commit_index)
{
	uint64_t sum;

	FUZZ_CHECK(fuzz_id_shape_ok(u->capability_id), "%s: usage row with a malformed capability",
	           what);
	FUZZ_CHECK(
	        !__builtin_add_overflow(u->total_cost_exposed, u->total_cost_realized_spend, &sum),
	        "%s: usage %.*s/%u: exposed %" PRIu64 " + realized %" PRIu64 " overflows u64", what,
	        (int)u->capability_id.len, u->capability_id.ptr, u->grant_index,
	        u->total_cost_exposed, u->total_cost_realized_spend);
	FUZZ_CHECK(u->committed_cost == sum,
	           "%s: usage %.*s/%u: committed %" PRIu64 " != exposed %" PRIu64
	           " + realized %" PRIu64,
	           what, (int)u->capability_id.len, u->capability_id.ptr, u->grant_index,
	           u->committed_cost, u->total_cost_exposed, u->total_cost_realized_spend);
	FUZZ_CHECK(u->seq >= 1 && u->seq <= commit_index,
	           "%s: usage %.*s/%u: seq %" PRIu64 " outside 1..commit index %" PRIu64, what,
	           (int)u->capability_id.len, u->capability_id.ptr, u->grant_index, u->seq,
	           commit_index);
}

void fuzz_check_hold(const char *what, const bs_hold *h)
{
	FUZZ_CHECK(fuzz_id_shape_ok(h->hold_id) && fuzz_id_shape_ok(h->capability_id),
	           "%s: hold with a malformed hold_id or capability_id", what);
	FUZZ_CHECK(h->disposition >= BS_HOLD_OPEN && h->disposition <= BS_HOLD_EXPIRED,
	           "%s: hold %.*s: disposition %d", what, (int)h->hold_id.len, h->hold_id.ptr,
	           (int)h->disposition);
	FUZZ_CHECK(h->remaining_units <= h->authorized_units,
	           "%s: hold %.*s: remaining %" PRIu64 " > authorized %" PRIu64, what,
	           (int)h->hold_id.len, h->hold_id.ptr, h->remaining_units, h->authorized_units);
	FUZZ_CHECK(h->disposition == BS_HOLD_OPEN || h->remaining_units == 0,
	           "%s: hold %.*s: final (%s) with %" PRIu64 " remaining", what,
	           (int)h->hold_id.len, h->hold_id.ptr, bs_disposition_name(h->disposition),
	           h->remaining_units);
	FUZZ_CHECK(h->debited_invocation, "%s: hold %.*s did not debit an invocation", what,
	           (int)h->hold_id.len, h->hold_id.ptr);
	check_authority(what, h->has_authority, &h->authority);
}

void fuzz_check_event(const char *what, const bs_event *e, uint64_t commit_index)
{
	bool limited =
	        e->kind == BS_KIND_AUTHORIZE_EXPOSURE || e->kind == BS_KIND_INCREMENT_INVOCATION;
	uint64_t sum;

	FUZZ_CHECK(e->event_seq >= 1 && e->event_seq <= commit_index,
	           "%s: event_seq %" PRIu64 " outside 1..commit index %" PRIu64, what, e->event_seq,
	           commit_index);
	FUZZ_CHECK(fuzz_id_shape_ok(e->event_id) && fuzz_id_shape_ok(e->capability_id),
	           "%s: event %" PRIu64 " with a malformed event_id or capability_id", what,
	           e->event_seq);
	FUZZ_CHECK(!e->hold_id.ptr || fuzz_id_shape_ok(e->hold_id),
	           "%s: event %" PRIu64 " with a malformed hold_id", what, e->event_seq);
	FUZZ_CHECK(!e->caller.ptr || fuzz_id_shape_ok(e->caller),
	           "%s: event %" PRIu64 " with a malformed caller", what, e->event_seq);
	FUZZ_CHECK(e->kind >= BS_KIND_INCREMENT_INVOCATION && e->kind <= BS_KIND_EXTEND_HOLD,
	           "%s: event %" PRIu64 " of kind %d", what, e->event_seq, (int)e->kind);
	FUZZ_CHECK(e->has_allowed == limited, "%s: event %" PRIu64 " (%s): has_allowed=%d", what,
	           e->event_seq, bs_kind_name(e->kind), e->has_allowed);
	bool denied = e->has_allowed && !e->allowed;
	FUZZ_CHECK(denied ? e->denial != BS_DENIAL_NONE : e->denial == BS_DENIAL_NONE,
	           "%s: event %" PRIu64 ": allowed=%d but denial=%d", what, e->event_seq,
	           e->allowed, (int)e->denial);
	FUZZ_CHECK(e->kind == BS_KIND_AUTHORIZE_EXPOSURE || e->denial == BS_DENIAL_NONE ||
	                   e->denial == BS_DENIAL_MAX_INVOCATIONS,
	           "%s: event %" PRIu64 ": increment denied by %d", what, e->event_seq,
	           (int)e->denial);
	FUZZ_CHECK(e->has_usage_seq == !denied, "%s: event %" PRIu64 ": denied=%d has_usage_seq=%d",
	           what, e->event_seq, denied, e->has_usage_seq);
	FUZZ_CHECK(!e->has_usage_seq || e->usage_seq == e->event_seq,
	           "%s: event %" PRIu64 ": usage_seq %" PRIu64, what, e->event_seq, e->usage_seq);
	FUZZ_CHECK(!__builtin_add_overflow(e->exposed_after, e->realized_after, &sum),
	           "%s: event %" PRIu64 ": exposed_after + realized_after overflows", what,
	           e->event_seq);
	FUZZ_CHECK(e->kind == BS_KIND_RECONCILE_SPEND || e->kind == BS_KIND_EXPIRE_EXPOSURE
	                   ? e->realized_units <= e->exposure_units
	                   : e->realized_units == 0,
	           "%s: event %" PRIu64 " (%s): realized %" PRIu64 ", exposure %" PRIu64, what,
	           e->event_seq, bs_kind_name(e->kind), e->realized_units, e->exposure_units);
	FUZZ_CHECK(e->kind != BS_KIND_INCREMENT_INVOCATION ||
	                   (e->exposure_units == 0 && !e->hold_id.ptr && !e->has_authority),
	           "%s: increment event %" PRIu64 " with exposure, hold or authority", what,
	           e->event_seq);
	FUZZ_CHECK(e->kind == BS_KIND_AUTHORIZE_EXPOSURE ||
	                   (!e->has_max_cost_per_invocation && !e->has_max_total_cost_units),
	           "%s: event %" PRIu64 " (%s) with cost limits", what, e->event_seq,
	           bs_kind_name(e->kind));
	FUZZ_CHECK(limited || !e->has_max_invocations,
	           "%s: event %" PRIu64 " (%s) with max_invocations", what, e->event_seq,
	           bs_kind_name(e->kind));
	check_authority(what, e->has_authority, &e->authority);
}

void fuzz_check_outcome(const bs_mutation *m, const bs_outcome *o)
{
	bool limited =
	        m->kind == BS_KIND_AUTHORIZE_EXPOSURE || m->kind == BS_KIND_INCREMENT_INVOCATION;
	char expect[BS_BUDGET_TERM_MAX];
	uint64_t sum;

	FUZZ_CHECK(o->kind == m->kind, "outcome kind %d for a %s", (int)o->kind,
	           bs_kind_name(m->kind));
	FUZZ_CHECK(o->guarantee == BS_GUARANTEE_SINGLE_NODE_ATOMIC, "outcome guarantee %d",
	           (int)o->guarantee);
	FUZZ_CHECK(limited || o->allowed, "a %s was denied", bs_kind_name(m->kind));
	FUZZ_CHECK(o->allowed ? o->denial == BS_DENIAL_NONE : o->denial != BS_DENIAL_NONE,
	           "outcome allowed=%d denial=%d", o->allowed, (int)o->denial);
	FUZZ_CHECK(!__builtin_add_overflow(o->exposed_after, o->realized_after, &sum) &&
	                   sum == o->committed_after,
	           "outcome committed %" PRIu64 " != exposed %" PRIu64 " + realized %" PRIu64,
	           o->committed_after, o->exposed_after, o->realized_after);
	FUZZ_CHECK(memchr(o->event_id, '\0', sizeof(o->event_id)) &&
	                   memchr(o->budget_term, '\0', sizeof(o->budget_term)),
	           "outcome strings are not terminated");
	FUZZ_CHECK(o->dry_run == m->dry_run, "outcome dry_run=%d for a request with dry_run=%d",
	           o->dry_run, m->dry_run);
	if (m->dry_run) {
		/* Decided, not recorded: no sequence value, the event_id echoed. */
		FUZZ_CHECK(!o->replayed && !o->has_commit_index && o->commit_index == 0 &&
		                   o->event_seq == 0,
		           "dry run outcome replayed=%d has_commit_index=%d commit_index=%" PRIu64
		           " event_seq=%" PRIu64,
		           o->replayed, o->has_commit_index, o->commit_index, o->event_seq);
	} else {
		FUZZ_CHECK(o->has_commit_index == o->allowed,
		           "outcome allowed=%d has_commit_index=%d", o->allowed,
		           o->has_commit_index);
		FUZZ_CHECK(!o->has_commit_index || o->commit_index == o->event_seq,
		           "outcome commit_index %" PRIu64 " != event_seq %" PRIu64,
		           o->commit_index, o->event_seq);
		FUZZ_CHECK(o->event_seq >= 1, "outcome event_seq 0");
	}
	if (m->event_id.ptr) {
		FUZZ_CHECK(strlen(o->event_id) == m->event_id.len &&
		                   memcmp(o->event_id, m->event_id.ptr, m->event_id.len) == 0,
		           "outcome event_id `%s` is not the request's", o->event_id);
	} else if (m->dry_run) {
		FUZZ_CHECK(o->event_id[0] == '\0', "dry run outcome event_id `%s`", o->event_id);
	} else {
		(void)snprintf(expect, sizeof(expect), "%s%" PRIu64, BS_GENERATED_EVENT_ID_PREFIX,
		               o->event_seq);
		FUZZ_CHECK(strcmp(o->event_id, expect) == 0 && !o->replayed,
		           "outcome event_id `%s`, expected `%s` (replayed=%d)", o->event_id,
		           expect, o->replayed);
	}
	expect[0] = '\0';
	if (m->has_authority)
		(void)snprintf(expect, sizeof(expect), "%.*s:%" PRIu64,
		               (int)m->authority.authority_id.len, m->authority.authority_id.ptr,
		               m->authority.lease_epoch);
	FUZZ_CHECK(strcmp(o->budget_term, expect) == 0, "outcome budget_term `%s`, expected `%s`",
	           o->budget_term, expect);
}

uint64_t fuzz_commit_index(bs_store *s)
{
	bs_error err;
	uint64_t ci = 0;

	memset(&err, 0, sizeof(err));
	if (bs_store_commit_index(s, &ci, &err) != BS_OK)
		fuzz_fail("bs_store_commit_index failed: %s", err.message);
	return ci;
}
