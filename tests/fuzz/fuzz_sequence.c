/* fuzz_sequence.c - libFuzzer target: programs of store operations, applied
 * to a fresh :memory: store and to the reference model (tests/store/model.c)
 * side by side; any difference traps.
 *
 * The input is a program of 8-byte instructions (a shorter tail is ignored):
 *
 *   byte 0  bits 0-3 the operation (OP_* below); bit 4 `raw`: keep the fields
 *           that do not apply to the kind (else they are cleared, so most
 *           mutations get past validation); bit 5 `join`: add this mutation
 *           to the pending batch instead of starting a new one; bit 6: a
 *           batch of one goes through bs_store_apply_batch, not
 *           bs_store_apply; bit 7: advance the clock 1 us first
 *   byte 1  capability: bits 0-3 pick from a small pool (collisions are the
 *           point), bits 4-6 the grant; a malformed capability takes its
 *           variant from bits 4-7
 *   byte 2  hold_id: bits 0-3 absent, fresh, a pool name, a hold the model
 *           knows (bits 4-7 pick which; its capability and grant are taken
 *           too), or malformed
 *   byte 3  event_id: absent, a pool name, fresh, reserved prefix, malformed
 *   byte 4  bits 0-3 exposure units, bits 4-7 realized units (small values,
 *           powers of two, values near UINT64_MAX, and the amounts that make
 *           a settlement match its hold)
 *   byte 5  bits 0-2 which limits are present; bits 4-7 max_total_cost_units
 *   byte 6  bits 0-3 max_invocations, bits 4-7 max_cost_per_invocation
 *           (constants, or the exact boundaries of the current usage row)
 *   byte 7  bits 0-3 authority (none, the picked hold's, a few leases, a
 *           256-byte authority_id with epoch UINT64_MAX, half or malformed
 *           ones); bits 6-7 the caller identity
 *
 * Reads (OP_READ) compare get_usage, get_hold and filtered, limited
 * list_usages / list_events with the model; OP_CHECKPOINT materializes the
 * overlay, so later decisions read the derived tables. After every batch the
 * results, the touched usage rows and holds, the commit index and the open
 * hold count must agree; at the end of the program every usage row, hold and
 * event is compared. The model does not know callers: the harness remembers
 * the caller of each recorded event and checks that the store kept it (and
 * that a replay with another caller is still a replay).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bs_store.h"
#include "fuzz_util.h"
#include "model.h"

#define OP_BYTES    8
#define BATCH_MAX   16
#define HISTORY     8
#define PROGRAM_MAX 1024 /* instructions; libFuzzer's -max_len bounds it first */
#define EVENTS_MAX  (PROGRAM_MAX + 1)
#define ROWS_MAX    1000 /* one list_usages call; the pools allow far fewer */
#define DYN         0xfeedfacecafebeefULL /* table marker: computed from the model */
#define DYN2        0xfeedfacecafebef0ULL

enum {
	OP_AUTHORIZE_A = 0,
	OP_AUTHORIZE_B = 1,
	OP_AUTHORIZE_C = 2,
	OP_AUTHORIZE_D = 3,
	OP_RELEASE_A = 4,
	OP_RELEASE_B = 5,
	OP_REVERSE = 6,
	OP_RECONCILE_A = 7,
	OP_RECONCILE_B = 8,
	OP_INCREMENT_A = 9,
	OP_REPEAT = 10,
	OP_CHECKPOINT = 11,
	OP_READ = 12,
	OP_CLOCK = 13,
	OP_AUTHORIZE_E = 14,
	OP_INCREMENT_B = 15,
};

/* ---- owned strings and requests ---- */

typedef struct fstr {
	bool present;
	size_t len;
	char b[BS_ID_LEN_MAX + 2]; /* room for a too-long id */
} fstr;

typedef struct req {
	bs_kind kind;
	fstr cap, hold, event, auth_id, lease, caller;
	uint64_t grant, exposure, realized;
	bool has_max_inv, has_max_cost, has_max_total, has_auth;
	uint64_t max_inv, max_cost, max_total, epoch;
} req;

static void fs_set(fstr *s, const char *p, size_t len)
{
	s->present = true;
	s->len = len < sizeof(s->b) ? len : sizeof(s->b);
	memcpy(s->b, p, s->len);
}

static void fs_cstr(fstr *s, const char *p)
{
	fs_set(s, p, strlen(p));
}

static void fs_fill(fstr *s, char c, size_t len)
{
	s->present = true;
	s->len = len;
	memset(s->b, c, len);
}

static void fs_from(fstr *s, bs_str from)
{
	memset(s, 0, sizeof(*s));
	if (from.ptr)
		fs_set(s, from.ptr, from.len);
}

static bs_str fs_str(const fstr *s)
{
	return s->present ? (bs_str){s->b, s->len} : (bs_str){0};
}

static bs_mutation to_mutation(const req *r)
{
	bs_mutation m;

	memset(&m, 0, sizeof(m));
	m.kind = r->kind;
	m.capability_id = fs_str(&r->cap);
	m.grant_index = r->grant;
	m.hold_id = fs_str(&r->hold);
	m.event_id = fs_str(&r->event);
	m.exposure_units = r->exposure;
	m.realized_units = r->realized;
	m.has_max_invocations = r->has_max_inv;
	m.max_invocations = r->max_inv;
	m.has_max_cost_per_invocation = r->has_max_cost;
	m.max_cost_per_invocation = r->max_cost;
	m.has_max_total_cost_units = r->has_max_total;
	m.max_total_cost_units = r->max_total;
	m.has_authority = r->has_auth;
	if (r->has_auth) {
		m.authority.authority_id = fs_str(&r->auth_id);
		m.authority.lease_id = fs_str(&r->lease);
		m.authority.lease_epoch = r->epoch;
	}
	m.caller = fs_str(&r->caller);
	return m;
}

/* ---- the pools ---- */

/* Malformed ids, and a few well-formed ones at the edges of the rules. */
static void weird(fstr *s, unsigned v)
{
	static const struct {
		const char *p;
		size_t len;
	} w[] = {
	        {"", 0},                      /* empty */
	        {NULL, BS_ID_LEN_MAX + 1},    /* too long */
	        {"\xff", 1},                  /* not UTF-8 */
	        {"a\x01z", 3},                /* control character */
	        {"a\0z", 3},                  /* NUL inside */
	        {"\xc2\x85", 2},              /* U+0085, a C1 control */
	        {"\x7f", 1},                  /* DEL */
	        {"\xc0\xaf", 2},              /* overlong */
	        {"\xed\xa0\x80", 3},          /* surrogate */
	        {"\xf4\x90\x80\x80", 4},      /* above U+10FFFF */
	        {"\xe2\x82", 2},              /* truncated */
	        {"\xc2\xa0", 2},              /* U+00A0: fine */
	        {NULL, BS_ID_LEN_MAX},        /* 128 x U+00E9: exactly 256 bytes, fine */
	        {"\xf4\x8f\xbf\xbf", 4},      /* U+10FFFF: fine */
	        {"\xc2\x9f", 2},              /* U+009F, the last C1 control */
	        {"\xe0\x80\x80", 3},          /* overlong, 3 bytes */
	};
	v &= 15;
	memset(s, 0, sizeof(*s));
	if (v == 1) {
		fs_fill(s, 'w', BS_ID_LEN_MAX + 1);
	} else if (v == 12) {
		s->present = true;
		for (size_t i = 0; i < BS_ID_LEN_MAX; i += 2)
			memcpy(s->b + i, "\xc3\xa9", 2);
		s->len = BS_ID_LEN_MAX;
	} else {
		fs_set(s, w[v].p, w[v].len);
	}
}

static const uint64_t grants[8] = {0, 0, 1, 1, 2, UINT32_MAX, (uint64_t)UINT32_MAX + 1,
                                   UINT64_MAX};

static const uint64_t amounts[16] = {
        0,          1,          2,          3,          5,          8,
        13,         100,        UINT32_MAX, 1ULL << 32, UINT64_MAX / 2, UINT64_MAX / 2 + 1,
        UINT64_MAX - 2, UINT64_MAX - 1, UINT64_MAX, DYN,
};

static const uint64_t limits[16] = {
        0,   1,    2,          3,          5,          8,          10,   20,
        100, 1000, UINT32_MAX, UINT32_MAX + 1ULL, UINT64_MAX - 1, UINT64_MAX, DYN, DYN2,
};

static const struct {
	const char *id, *lease;
	uint64_t epoch;
} leases[] = {
        {"auth-1", "lease-1", 1}, {"auth-1", "lease-1", 2}, {"auth-1", "lease-1", 0},
        {"auth-1", "lease-2", 1}, {"auth-2", "lease-1", 1},
};

static const char *const callers[4] = {NULL, "unix", "loopback", "spiffe://budgetd.test/kernel"};

/* ---- the run ---- */

typedef struct pending {
	req r;
	bs_mutation m; /* points into r */
	int mrc;       /* the model's answer */
	bs_outcome mout;
	bs_error merr;
	bs_batch_item item;
} pending;

typedef struct run {
	bs_store *store;
	model *model;
	int64_t now;
	size_t step; /* instruction index, for messages */
	unsigned fresh;
	pending batch[BATCH_MAX];
	size_t n_batch;
	bool batch_api; /* a batch of one goes through apply_batch */
	req history[HISTORY];
	size_t n_history;
	/* the caller recorded with each event, by event_seq */
	fstr callers[EVENTS_MAX];
	uint64_t last_seq;
} run;

static run R; /* too big for the stack; reset per input */

static int64_t fake_clock(void *ctx)
{
	return *(const int64_t *)ctx;
}

__attribute__((noreturn, format(printf, 1, 2))) static void differ(const char *fmt, ...);

static void differ(const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fuzz_fail("instruction %zu: store and model differ: %s", R.step, buf);
}

static void fmt_result(char *buf, size_t n, int rc, const bs_outcome *o, const bs_error *e)
{
	if (rc != BS_OK) {
		snprintf(buf, n, "error %d \"%s\"", rc, e->message);
		return;
	}
	snprintf(buf, n,
	         "ok kind=%d allowed=%d denial=%d replayed=%d commit=%d/%" PRIu64
	         " seq=%" PRIu64 " count=%u exposed=%" PRIu64 " realized=%" PRIu64
	         " committed=%" PRIu64 " event_id=%s term=%s",
	         o->kind, o->allowed, o->denial, o->replayed, o->has_commit_index, o->commit_index,
	         o->event_seq, o->invocation_count_after, o->exposed_after, o->realized_after,
	         o->committed_after, o->event_id, o->budget_term);
}

static bool same_result(int ra, const bs_outcome *a, const bs_error *ea, int rb,
                        const bs_outcome *b, const bs_error *eb)
{
	if (ra != rb)
		return false;
	if (ra != BS_OK)
		return strcmp(ea->message, eb->message) == 0;
	return a->kind == b->kind && a->allowed == b->allowed && a->denial == b->denial &&
	       a->replayed == b->replayed && a->has_commit_index == b->has_commit_index &&
	       (!a->has_commit_index || a->commit_index == b->commit_index) &&
	       a->event_seq == b->event_seq &&
	       a->invocation_count_after == b->invocation_count_after &&
	       a->exposed_after == b->exposed_after && a->realized_after == b->realized_after &&
	       a->committed_after == b->committed_after && a->guarantee == b->guarantee &&
	       strcmp(a->event_id, b->event_id) == 0 && strcmp(a->budget_term, b->budget_term) == 0;
}

/* ---- comparing state ---- */

typedef struct usage_row {
	char cap[BS_ID_LEN_MAX + 1];
	bs_usage u;
} usage_row;

static void keep_usage(usage_row *dst, const bs_usage *u)
{
	FUZZ_CHECK(u->capability_id.len <= BS_ID_LEN_MAX, "a %zu-byte capability",
	           u->capability_id.len);
	dst->u = *u;
	memcpy(dst->cap, u->capability_id.ptr, u->capability_id.len);
	dst->u.capability_id.ptr = dst->cap;
}

static bool same_usage(const bs_usage *a, const bs_usage *b)
{
	return fuzz_str_eq(a->capability_id, b->capability_id) && a->grant_index == b->grant_index &&
	       a->invocation_count == b->invocation_count &&
	       a->total_cost_exposed == b->total_cost_exposed &&
	       a->total_cost_realized_spend == b->total_cost_realized_spend &&
	       a->committed_cost == b->committed_cost && a->seq == b->seq &&
	       a->updated_at_ns == b->updated_at_ns;
}

static void fmt_usage(char *buf, size_t n, const bs_usage *u)
{
	snprintf(buf, n,
	         "%.*s/%u count=%u exposed=%" PRIu64 " realized=%" PRIu64 " committed=%" PRIu64
	         " seq=%" PRIu64 " updated_at=%" PRId64,
	         (int)(u->capability_id.len > 40 ? 40 : u->capability_id.len), u->capability_id.ptr,
	         u->grant_index, u->invocation_count, u->total_cost_exposed,
	         u->total_cost_realized_spend, u->committed_cost, u->seq, u->updated_at_ns);
}

static int take_usage(void *ctx, const bs_usage *u)
{
	keep_usage(ctx, u);
	return 0;
}

/* get_usage of (cap, grant) against the model; the pair must be readable. */
static void compare_usage(bs_str cap, uint64_t grant)
{
	usage_row got;
	bs_usage mu;
	bs_error err;
	bool found = false;
	char a[512], b[512];

	memset(&got, 0, sizeof(got));
	memset(&err, 0, sizeof(err));
	int rc = bs_store_get_usage(R.store, cap, grant, take_usage, &got, &found, &err);
	if (rc != BS_OK)
		differ("get_usage failed: %s", err.message);
	bool mfound = model_get_usage(R.model, cap, (uint32_t)grant, &mu);
	if (found != mfound)
		differ("usage %.*s/%" PRIu64 ": store found=%d, model found=%d", (int)cap.len,
		       cap.ptr, grant, found, mfound);
	if (!found)
		return;
	fuzz_check_usage("get_usage", &got.u, fuzz_commit_index(R.store));
	if (!same_usage(&got.u, &mu)) {
		fmt_usage(a, sizeof(a), &got.u);
		fmt_usage(b, sizeof(b), &mu);
		differ("usage row\n  store: %s\n  model: %s", a, b);
	}
}

typedef struct hold_row {
	bool found;
	char id[BS_ID_LEN_MAX + 1], cap[BS_ID_LEN_MAX + 1];
	char authority_id[BS_ID_LEN_MAX + 1], lease_id[BS_ID_LEN_MAX + 1];
	bs_hold h;
} hold_row;

static void keep_str(char *buf, bs_str *s)
{
	if (!s->ptr)
		return;
	FUZZ_CHECK(s->len <= BS_ID_LEN_MAX, "a %zu-byte id", s->len);
	memcpy(buf, s->ptr, s->len);
	s->ptr = buf;
}

static int take_hold(void *ctx, const bs_hold *h)
{
	hold_row *r = ctx;

	r->found = true;
	r->h = *h;
	keep_str(r->id, &r->h.hold_id);
	keep_str(r->cap, &r->h.capability_id);
	keep_str(r->authority_id, &r->h.authority.authority_id);
	keep_str(r->lease_id, &r->h.authority.lease_id);
	return 0;
}

static bool same_hold(const bs_hold *a, const bs_hold *b)
{
	return fuzz_str_eq(a->hold_id, b->hold_id) &&
	       fuzz_str_eq(a->capability_id, b->capability_id) && a->grant_index == b->grant_index &&
	       a->authorized_units == b->authorized_units &&
	       a->remaining_units == b->remaining_units &&
	       a->debited_invocation == b->debited_invocation && a->disposition == b->disposition &&
	       a->has_authority == b->has_authority &&
	       (!a->has_authority ||
	        (fuzz_str_eq(a->authority.authority_id, b->authority.authority_id) &&
	         fuzz_str_eq(a->authority.lease_id, b->authority.lease_id) &&
	         a->authority.lease_epoch == b->authority.lease_epoch)) &&
	       a->created_at_ns == b->created_at_ns && a->updated_at_ns == b->updated_at_ns;
}

/* get_hold of a well-formed id against the model. */
static void compare_hold(bs_str id)
{
	hold_row got;
	bs_hold mh;
	bs_error err;
	bool found = false;

	memset(&got, 0, sizeof(got));
	memset(&err, 0, sizeof(err));
	int rc = bs_store_get_hold(R.store, id, take_hold, &got, &found, &err);
	if (rc != BS_OK)
		differ("get_hold failed: %s", err.message);
	bool mfound = model_get_hold(R.model, id, &mh);
	if (found != mfound || found != got.found)
		differ("hold %.*s: store found=%d, model found=%d", (int)id.len, id.ptr, found,
		       mfound);
	if (!found)
		return;
	fuzz_check_hold("get_hold", &got.h);
	if (!same_hold(&got.h, &mh))
		differ("hold %.*s\n  store: %s/%u authorized=%" PRIu64 " remaining=%" PRIu64
		       " disposition=%d auth=%d/%" PRIu64 " created=%" PRId64 " updated=%" PRId64
		       "\n  model: %.*s/%u authorized=%" PRIu64 " remaining=%" PRIu64
		       " disposition=%d auth=%d/%" PRIu64 " created=%" PRId64 " updated=%" PRId64,
		       (int)id.len, id.ptr, got.cap, got.h.grant_index, got.h.authorized_units,
		       got.h.remaining_units, got.h.disposition, got.h.has_authority,
		       got.h.authority.lease_epoch, got.h.created_at_ns, got.h.updated_at_ns,
		       (int)mh.capability_id.len, mh.capability_id.ptr, mh.grant_index,
		       mh.authorized_units, mh.remaining_units, mh.disposition, mh.has_authority,
		       mh.authority.lease_epoch, mh.created_at_ns, mh.updated_at_ns);
}

static bool readable_pair(bs_str cap, uint64_t grant)
{
	bs_error err;
	bool found;

	/* The store's own validation decides; the visitor is not called. */
	return bs_store_get_usage(R.store, cap, grant, NULL, NULL, &found, &err) != BS_EINVAL;
}

static uint64_t model_open_holds(void)
{
	size_t n = model_hold_count(R.model);
	uint64_t open = 0;
	bs_hold h;

	for (size_t i = 0; i < n; i++) {
		model_hold_at(R.model, i, &h);
		open += h.disposition == BS_HOLD_OPEN;
	}
	return open;
}

static void compare_counters(void)
{
	bs_stats st;
	bs_error err;

	memset(&err, 0, sizeof(err));
	if (bs_store_stats(R.store, &st, &err) != BS_OK)
		differ("stats failed: %s", err.message);
	if (st.commit_index != model_commit_index(R.model))
		differ("commit index: store %" PRIu64 ", model %" PRIu64, st.commit_index,
		       model_commit_index(R.model));
	if (st.open_holds != model_open_holds())
		differ("open holds: store %" PRIu64 ", model %" PRIu64, st.open_holds,
		       model_open_holds());
}

/* ---- events ---- */

typedef struct event_list {
	bs_event *events; /* copies; strings point into the matching strs */
	struct event_strs {
		char id[BS_ID_LEN_MAX + 1], hold[BS_ID_LEN_MAX + 1], cap[BS_ID_LEN_MAX + 1];
		char authority_id[BS_ID_LEN_MAX + 1], lease_id[BS_ID_LEN_MAX + 1];
		char caller[BS_ID_LEN_MAX + 1];
	} *strs;
	size_t n, max;
	uint64_t commit_index;
} event_list;

static int take_event(void *ctx, const bs_event *e)
{
	event_list *l = ctx;

	fuzz_check_event("list_events", e, l->commit_index);
	FUZZ_CHECK(l->n < l->max, "list_events returned more than its limit of %zu", l->max);
	bs_event *d = &l->events[l->n];
	struct event_strs *s = &l->strs[l->n++];
	*d = *e;
	keep_str(s->id, &d->event_id);
	keep_str(s->hold, &d->hold_id);
	keep_str(s->cap, &d->capability_id);
	keep_str(s->authority_id, &d->authority.authority_id);
	keep_str(s->lease_id, &d->authority.lease_id);
	keep_str(s->caller, &d->caller);
	return 0;
}

static bool same_event(const bs_event *s, const bs_event *m)
{
	return s->event_seq == m->event_seq && fuzz_str_eq(s->event_id, m->event_id) &&
	       fuzz_str_eq(s->hold_id, m->hold_id) &&
	       fuzz_str_eq(s->capability_id, m->capability_id) && s->grant_index == m->grant_index &&
	       s->kind == m->kind && s->has_allowed == m->has_allowed &&
	       (!m->has_allowed || s->allowed == m->allowed) && s->denial == m->denial &&
	       s->recorded_at_ns == m->recorded_at_ns && s->has_usage_seq == m->has_usage_seq &&
	       (!m->has_usage_seq || s->usage_seq == m->usage_seq) &&
	       s->exposure_units == m->exposure_units && s->realized_units == m->realized_units &&
	       s->has_max_invocations == m->has_max_invocations &&
	       (!m->has_max_invocations || s->max_invocations == m->max_invocations) &&
	       s->has_max_cost_per_invocation == m->has_max_cost_per_invocation &&
	       (!m->has_max_cost_per_invocation ||
	        s->max_cost_per_invocation == m->max_cost_per_invocation) &&
	       s->has_max_total_cost_units == m->has_max_total_cost_units &&
	       (!m->has_max_total_cost_units ||
	        s->max_total_cost_units == m->max_total_cost_units) &&
	       s->invocation_count_after == m->invocation_count_after &&
	       s->exposed_after == m->exposed_after && s->realized_after == m->realized_after &&
	       s->has_authority == m->has_authority &&
	       (!m->has_authority ||
	        (fuzz_str_eq(s->authority.authority_id, m->authority.authority_id) &&
	         fuzz_str_eq(s->authority.lease_id, m->authority.lease_id) &&
	         s->authority.lease_epoch == m->authority.lease_epoch));
}

static void compare_event(const bs_event *s, const bs_event *m)
{
	if (!same_event(s, m))
		differ("event %" PRIu64 "\n  store: id=%.*s kind=%d %.*s/%u allowed=%d/%d denial=%d "
		       "usage_seq=%d/%" PRIu64 " after=%u/%" PRIu64 "/%" PRIu64 " recorded=%" PRId64
		       "\n  model: id=%.*s kind=%d %.*s/%u allowed=%d/%d denial=%d usage_seq=%d/%" PRIu64
		       " after=%u/%" PRIu64 "/%" PRIu64 " recorded=%" PRId64,
		       m->event_seq, (int)s->event_id.len, s->event_id.ptr, s->kind,
		       (int)s->capability_id.len, s->capability_id.ptr, s->grant_index,
		       s->has_allowed, s->allowed, s->denial, s->has_usage_seq, s->usage_seq,
		       s->invocation_count_after, s->exposed_after, s->realized_after,
		       s->recorded_at_ns, (int)m->event_id.len, m->event_id.ptr, m->kind,
		       (int)m->capability_id.len, m->capability_id.ptr, m->grant_index,
		       m->has_allowed, m->allowed, m->denial, m->has_usage_seq, m->usage_seq,
		       m->invocation_count_after, m->exposed_after, m->realized_after,
		       m->recorded_at_ns);
	const fstr *c = s->event_seq < EVENTS_MAX ? &R.callers[s->event_seq] : NULL;
	if (c && !fuzz_str_eq(s->caller, fs_str(c)))
		differ("event %" PRIu64 ": caller `%.*s`, it was recorded by `%.*s`", s->event_seq,
		       (int)s->caller.len, s->caller.ptr ? s->caller.ptr : "", (int)c->len, c->b);
}

/* list_events with these arguments against the model's log. */
static void compare_event_list(uint32_t limit, bs_str cap, bool has_grant, uint64_t grant,
                               uint64_t after, bool expect_ok)
{
	static bs_event events[BS_LIST_LIMIT_MAX];
	static struct event_strs strs[BS_LIST_LIMIT_MAX];
	uint32_t eff = limit ? limit : BS_LIST_LIMIT_DEFAULT;
	event_list l = {events, strs, 0, eff < BS_LIST_LIMIT_MAX ? eff : BS_LIST_LIMIT_MAX,
	                fuzz_commit_index(R.store)};
	bs_error err;

	memset(&err, 0, sizeof(err));
	int rc = bs_store_list_events(R.store, limit, cap, has_grant, grant, after, take_event, &l,
	                              &err);
	if (!expect_ok) {
		if (rc != BS_EINVAL)
			differ("list_events with a malformed argument answered %d", rc);
		return;
	}
	if (rc != BS_OK)
		differ("list_events failed: %d %s", rc, err.message);
	size_t n = model_event_count(R.model), k = 0;
	bs_event me;
	for (size_t i = 0; i < n && k < eff; i++) {
		model_event_at(R.model, i, &me);
		if (me.event_seq <= after || (cap.ptr && !fuzz_str_eq(me.capability_id, cap)) ||
		    (has_grant && me.grant_index != grant))
			continue;
		if (k >= l.n)
			differ("list_events (limit %u after %" PRIu64 "): store stops at %zu events",
			       limit, after, l.n);
		compare_event(&l.events[k++], &me);
	}
	if (k != l.n)
		differ("list_events (limit %u after %" PRIu64 "): store has %zu events, model %zu",
		       limit, after, l.n, k);
}

typedef struct usage_lister {
	usage_row *rows;
	size_t n, max;
} usage_lister;

static int take_usage_list(void *ctx, const bs_usage *u)
{
	usage_lister *l = ctx;

	FUZZ_CHECK(l->n < l->max, "list_usages returned more than its limit of %zu", l->max);
	keep_usage(&l->rows[l->n++], u);
	return 0;
}

/* list_usages with these arguments against the model. */
static void compare_usage_list(uint32_t limit, bs_str cap, bool expect_ok)
{
	static usage_row rows[ROWS_MAX];
	static bs_usage mrows[ROWS_MAX];
	uint32_t eff = limit ? limit : BS_LIST_LIMIT_DEFAULT;
	usage_lister l = {rows, 0, eff < ROWS_MAX ? eff : ROWS_MAX};
	bs_error err;
	char a[512], b[512];

	memset(&err, 0, sizeof(err));
	int rc = bs_store_list_usages(R.store, limit, cap, take_usage_list, &l, &err);
	if (!expect_ok) {
		if (rc != BS_EINVAL)
			differ("list_usages with a malformed argument answered %d", rc);
		return;
	}
	if (rc != BS_OK)
		differ("list_usages failed: %d %s", rc, err.message);
	size_t total = model_list_usages(R.model, mrows, ROWS_MAX);
	FUZZ_CHECK(total < ROWS_MAX, "the pools made %zu usage rows", total);
	size_t k = 0;
	for (size_t i = 0; i < total && k < eff; i++) {
		if (cap.ptr && !fuzz_str_eq(mrows[i].capability_id, cap))
			continue;
		if (k >= l.n)
			differ("list_usages (limit %u): store stops at %zu rows", limit, l.n);
		fuzz_check_usage("list_usages", &rows[k].u, model_commit_index(R.model));
		if (!same_usage(&rows[k].u, &mrows[i])) {
			fmt_usage(a, sizeof(a), &rows[k].u);
			fmt_usage(b, sizeof(b), &mrows[i]);
			differ("list_usages row %zu (limit %u)\n  store: %s\n  model: %s", k, limit,
			       a, b);
		}
		k++;
	}
	if (k != l.n)
		differ("list_usages (limit %u): store has %zu rows, model %zu", limit, l.n, k);
}
