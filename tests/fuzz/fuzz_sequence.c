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
 *   byte 5  bits 0-2 which limits are present; bit 3 dry_run; bits 4-7
 *           max_total_cost_units
 *   byte 6  bits 0-3 max_invocations, bits 4-7 max_cost_per_invocation
 *           (constants, or the exact boundaries of the current usage row)
 *   byte 7  bits 0-3 authority (none, the picked hold's, a few leases, a
 *           256-byte authority_id with epoch UINT64_MAX, half or malformed
 *           ones); bits 6-7 the caller identity
 *
 * Reads (OP_READ) compare get_usage, get_hold and filtered, limited
 * list_usages / list_events / list_holds (with a page cursor) with the
 * model; OP_CHECKPOINT materializes the overlay, so later decisions read the
 * derived tables. After every batch the results, the touched usage rows and
 * holds, the commit index and the open hold count must agree; at the end of
 * the program every usage row, hold and event is compared.
 *
 * The model knows neither callers nor dry runs. The harness remembers the
 * caller of each recorded event and checks that the store kept it (and that
 * a replay with another caller is still a replay). A dry run must answer
 * what the model answers for the same authorize (without its event_id,
 * which a dry run ignores) on a scratch model replaying the program so far.
 *
 * BUDGETD_FUZZ_TRACE=1 prints every answer (to see what an input does).
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
#define ROWS_MAX    1000                  /* one list_usages call; the pools allow far fewer */
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
	bool has_max_inv, has_max_cost, has_max_total, has_auth, dry_run;
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
	m.dry_run = r->dry_run;
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
	        {"", 0},                   /* empty */
	        {NULL, BS_ID_LEN_MAX + 1}, /* too long */
	        {"\xff", 1},               /* not UTF-8 */
	        {"a\x01z", 3},             /* control character */
	        {"a\0z", 3},               /* NUL inside */
	        {"\xc2\x85", 2},           /* U+0085, a C1 control */
	        {"\x7f", 1},               /* DEL */
	        {"\xc0\xaf", 2},           /* overlong */
	        {"\xed\xa0\x80", 3},       /* surrogate */
	        {"\xf4\x90\x80\x80", 4},   /* above U+10FFFF */
	        {"\xe2\x82", 2},           /* truncated */
	        {"\xc2\xa0", 2},           /* U+00A0: fine */
	        {NULL, BS_ID_LEN_MAX},     /* 128 x U+00E9: exactly 256 bytes, fine */
	        {"\xf4\x8f\xbf\xbf", 4},   /* U+10FFFF: fine */
	        {"\xc2\x9f", 2},           /* U+009F, the last C1 control */
	        {"\xc3(", 2},              /* a bad continuation byte */
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

static const uint64_t grants[8] = {0, 0, 1, 1, 2, UINT32_MAX, (uint64_t)UINT32_MAX + 1, UINT64_MAX};

/* clang-format off */
static const uint64_t amounts[16] = {
	0, 1, 2, 3, 5, 8, 13, 100, UINT32_MAX, 1ULL << 32, UINT64_MAX / 2, UINT64_MAX / 2 + 1,
	UINT64_MAX - 2, UINT64_MAX - 1, UINT64_MAX, DYN,
};

static const uint64_t limits[16] = {
	0, 1, 2, 3, 5, 8, 10, 20, 100, 1000, UINT32_MAX, UINT32_MAX + 1ULL, UINT64_MAX - 1,
	UINT64_MAX, DYN, DYN2,
};
/* clang-format on */

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
	size_t n_log; /* entries of `mutation_log` */
} run;

/* Every mutation given to the model, to replay it into a scratch model. */
static struct logged {
	req r;
	int64_t now;
} mutation_log[PROGRAM_MAX];

static run R;      /* too big for the stack; reset per input */
static bool trace; /* BUDGETD_FUZZ_TRACE: print every answer */

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
	         "ok kind=%d allowed=%d denial=%d replayed=%d dry_run=%d commit=%d/%" PRIu64
	         " seq=%" PRIu64 " count=%u exposed=%" PRIu64 " realized=%" PRIu64
	         " committed=%" PRIu64 " event_id=%s term=%s",
	         o->kind, o->allowed, o->denial, o->replayed, o->dry_run, o->has_commit_index,
	         o->commit_index, o->event_seq, o->invocation_count_after, o->exposed_after,
	         o->realized_after, o->committed_after, o->event_id, o->budget_term);
}

static bool same_result(int ra, const bs_outcome *a, const bs_error *ea, int rb,
                        const bs_outcome *b, const bs_error *eb)
{
	if (ra != rb)
		return false;
	if (ra != BS_OK)
		return strcmp(ea->message, eb->message) == 0;
	return a->kind == b->kind && a->allowed == b->allowed && a->denial == b->denial &&
	       a->replayed == b->replayed && a->dry_run == b->dry_run &&
	       a->has_commit_index == b->has_commit_index &&
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
	return fuzz_str_eq(a->capability_id, b->capability_id) &&
	       a->grant_index == b->grant_index && a->invocation_count == b->invocation_count &&
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
	       fuzz_str_eq(a->capability_id, b->capability_id) &&
	       a->grant_index == b->grant_index && a->authorized_units == b->authorized_units &&
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
	} * strs;
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
	       fuzz_str_eq(s->capability_id, m->capability_id) &&
	       s->grant_index == m->grant_index && s->kind == m->kind &&
	       s->has_allowed == m->has_allowed && (!m->has_allowed || s->allowed == m->allowed) &&
	       s->denial == m->denial && s->recorded_at_ns == m->recorded_at_ns &&
	       s->has_usage_seq == m->has_usage_seq &&
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
		differ("event %" PRIu64
		       "\n  store: id=%.*s kind=%d %.*s/%u allowed=%d/%d denial=%d "
		       "usage_seq=%d/%" PRIu64 " after=%u/%" PRIu64 "/%" PRIu64 " recorded=%" PRId64
		       "\n  model: id=%.*s kind=%d %.*s/%u allowed=%d/%d denial=%d "
		       "usage_seq=%d/%" PRIu64 " after=%u/%" PRIu64 "/%" PRIu64
		       " recorded=%" PRId64,
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
			differ("list_events (limit %u after %" PRIu64
			       "): store stops at %zu events",
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

/* ---- holds, listed ---- */

typedef struct hold_lister {
	hold_row *rows;
	size_t n, max;
} hold_lister;

static int take_hold_list(void *ctx, const bs_hold *h)
{
	hold_lister *l = ctx;

	FUZZ_CHECK(l->n < l->max, "list_holds returned more than its limit of %zu", l->max);
	take_hold(&l->rows[l->n++], h);
	return 0;
}

static int cmp_bytes(bs_str a, bs_str b)
{
	int c = memcmp(a.ptr, b.ptr, a.len < b.len ? a.len : b.len);

	return c ? c : (a.len > b.len) - (a.len < b.len);
}

/* (created_at, hold_id): the order of list_holds and of its cursor. */
static int cmp_hold_key(int64_t ta, bs_str a, int64_t tb, bs_str b)
{
	if (ta != tb)
		return ta < tb ? -1 : 1;
	return cmp_bytes(a, b);
}

static int cmp_holds(const void *pa, const void *pb)
{
	const bs_hold *a = pa, *b = pb;

	return cmp_hold_key(a->created_at_ns, a->hold_id, b->created_at_ns, b->hold_id);
}

/* list_holds with `q` against the model's holds. */
static void compare_hold_list(const bs_hold_query *q, bool expect_ok)
{
	static hold_row rows[BS_LIST_LIMIT_MAX];
	static bs_hold mholds[PROGRAM_MAX];
	uint32_t eff = q->limit ? q->limit : BS_LIST_LIMIT_DEFAULT;
	hold_lister l = {rows, 0, eff < BS_LIST_LIMIT_MAX ? eff : BS_LIST_LIMIT_MAX};
	size_t n = model_hold_count(R.model), k = 0;
	bs_error err;

	memset(&err, 0, sizeof(err));
	int rc = bs_store_list_holds(R.store, q, take_hold_list, &l, &err);
	if (!expect_ok) {
		if (rc != BS_EINVAL)
			differ("list_holds with a malformed argument answered %d", rc);
		return;
	}
	if (rc != BS_OK)
		differ("list_holds failed: %d %s", rc, err.message);
	FUZZ_CHECK(n <= PROGRAM_MAX, "%zu holds from %d instructions", n, PROGRAM_MAX);
	for (size_t i = 0; i < n; i++)
		model_hold_at(R.model, i, &mholds[i]);
	qsort(mholds, n, sizeof(mholds[0]), cmp_holds);
	for (size_t i = 0; i < n && k < eff; i++) {
		const bs_hold *h = &mholds[i];
		if ((q->capability_id.ptr && !fuzz_str_eq(h->capability_id, q->capability_id)) ||
		    (q->has_disposition && h->disposition != q->disposition) ||
		    (q->has_older_than && !(h->created_at_ns < q->older_than_ns)) ||
		    (q->has_after && cmp_hold_key(h->created_at_ns, h->hold_id, q->after_created_ns,
		                                  q->after_hold_id) <= 0))
			continue;
		if (k >= l.n)
			differ("list_holds (limit %u): the store stops at %zu holds", q->limit,
			       l.n);
		fuzz_check_hold("list_holds", &rows[k].h);
		if (!same_hold(&rows[k].h, h))
			differ("list_holds (limit %u) item %zu: store %.*s, model %.*s", q->limit,
			       k, (int)rows[k].h.hold_id.len, rows[k].h.hold_id.ptr,
			       (int)h->hold_id.len, h->hold_id.ptr);
		k++;
	}
	if (k != l.n)
		differ("list_holds (limit %u): store has %zu holds, model %zu", q->limit, l.n, k);
}

/* ---- decoding an instruction ---- */

static void pick_cap(req *r, uint8_t b)
{
	static const char *const pool[] = {
	        "cap-a",
	        "cap-a",
	        "cap-a",
	        "cap-b",
	        "cap-b",
	        "cap-b",
	        "cap-c",
	        "cap-c",
	        "cap-\xc3\xa9",
	        NULL,
	        "cap-a\xf0\x9f\x92\xb8",
	};
	unsigned v = b & 15;

	memset(&r->cap, 0, sizeof(r->cap));
	r->grant = grants[(b >> 4) & 7];
	if (v == 9)
		fs_fill(&r->cap, 'k', BS_ID_LEN_MAX);
	else if (v < 11)
		fs_cstr(&r->cap, pool[v]);
	else if (v > 11)
		weird(&r->cap, b >> 4);
	/* 11: absent */
}

static bool model_hold_by_id(const fstr *id, bs_hold *out)
{
	return id->present && model_get_hold(R.model, fs_str(id), out);
}

/* The k-th hold of the model (only open ones when `open` and there are). */
static bool model_hold_pick(unsigned k, bool open, bs_hold *out)
{
	size_t n = model_hold_count(R.model), n_open = 0;

	if (n == 0)
		return false;
	for (size_t i = 0; open && i < n; i++) {
		model_hold_at(R.model, i, out);
		n_open += out->disposition == BS_HOLD_OPEN;
	}
	if (n_open == 0) {
		model_hold_at(R.model, k % n, out);
		return true;
	}
	k %= n_open;
	for (size_t i = 0; i < n; i++) {
		model_hold_at(R.model, i, out);
		if (out->disposition == BS_HOLD_OPEN && k-- == 0)
			return true;
	}
	return false;
}

/* Sets r->hold; *picked receives the model's hold of that id, if any (its
 * strings are copied into *own, which must outlive *picked's use). */
static bool pick_hold(req *r, uint8_t b, bs_hold *picked, req *own)
{
	unsigned v = b & 15, k = b >> 4;
	char name[32];

	memset(&r->hold, 0, sizeof(r->hold));
	switch (v) {
	case 0:
	case 1:
	case 2:
		return false;
	case 3:
		snprintf(name, sizeof(name), "f%u", R.fresh++);
		fs_cstr(&r->hold, name);
		break;
	case 4:
	case 5:
	case 6:
	case 7:
		snprintf(name, sizeof(name), "h%u", v - 4);
		fs_cstr(&r->hold, name);
		break;
	case 8:
		fs_cstr(&r->hold, "h\xc3\xa9");
		break;
	case 9:
		fs_fill(&r->hold, 'h', BS_ID_LEN_MAX);
		break;
	case 14:
		fs_set(&r->hold, "", 0);
		return false;
	case 15:
		weird(&r->hold, k);
		break;
	default: /* 10: any hold of the model, 11-13: an open one */
		if (!model_hold_pick(k, v != 10, picked))
			return false;
		fs_from(&r->hold, picked->hold_id);
		fs_from(&r->cap, picked->capability_id);
		r->grant = picked->grant_index;
		break;
	}
	if (!model_hold_by_id(&r->hold, picked))
		return false;
	/* Keep what the rest of the decoding needs past the next model call. */
	fs_from(&own->auth_id,
	        picked->has_authority ? picked->authority.authority_id : (bs_str){0});
	fs_from(&own->lease, picked->has_authority ? picked->authority.lease_id : (bs_str){0});
	own->epoch = picked->authority.lease_epoch;
	own->has_auth = picked->has_authority;
	own->exposure = picked->remaining_units;
	return true;
}

static void pick_event(req *r, uint8_t b)
{
	static const char *const reserved[4] = {"budgetd-auto", "budgetd-auto-", "budgetd-auto-1",
	                                        "budgetd-auto-x"};
	unsigned v = b & 15, k = b >> 4;
	char name[32];

	memset(&r->event, 0, sizeof(r->event));
	if (v < 7)
		return;
	if (v < 12) {
		snprintf(name, sizeof(name), "e%u", v - 7);
		fs_cstr(&r->event, name);
	} else if (v == 12) {
		fs_fill(&r->event, 'e', BS_ID_LEN_MAX);
	} else if (v == 13) {
		fs_cstr(&r->event, reserved[k & 3]);
	} else if (v == 14) {
		snprintf(name, sizeof(name), "u%u", R.fresh++);
		fs_cstr(&r->event, name);
	} else {
		weird(&r->event, k);
	}
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	uint64_t s;

	return __builtin_add_overflow(a, b, &s) ? UINT64_MAX : s;
}

static uint64_t sat_dec(uint64_t a)
{
	return a ? a - 1 : 0;
}

/* The model's usage row of the request's pair (zeros when none). */
static bs_usage model_row(const req *r)
{
	bs_usage u;

	memset(&u, 0, sizeof(u));
	if (r->cap.present && r->grant <= UINT32_MAX &&
	    !model_get_usage(R.model, fs_str(&r->cap), (uint32_t)r->grant, &u))
		memset(&u, 0, sizeof(u));
	return u;
}

static void pick_amounts(req *r, uint8_t b4, uint8_t b5, uint8_t b6, bool has_hold,
                         const req *hold_info)
{
	bs_usage u = model_row(r);
	unsigned rv = b4 >> 4;

	r->exposure = amounts[b4 & 15];
	if (r->exposure == DYN)
		r->exposure = has_hold ? hold_info->exposure : u.total_cost_exposed;
	switch (rv) {
	case 0:
		r->realized = 0;
		break;
	case 1:
	case 15:
		r->realized = r->exposure;
		break;
	case 2:
		r->realized = r->exposure / 2;
		break;
	case 3:
		r->realized = sat_dec(r->exposure);
		break;
	case 4:
		r->realized = sat_add(r->exposure, 1);
		break;
	case 5:
		r->realized = 1;
		break;
	case 6:
		r->realized = UINT64_MAX;
		break;
	default:
		r->realized = amounts[rv];
		break;
	}
	uint64_t committed = sat_add(u.total_cost_exposed, u.total_cost_realized_spend);
	r->has_max_inv = b5 & 1;
	r->max_inv = limits[b6 & 15];
	if (r->max_inv == DYN)
		r->max_inv = u.invocation_count;
	else if (r->max_inv == DYN2)
		r->max_inv = (uint64_t)u.invocation_count + 1;
	r->has_max_cost = b5 & 2;
	r->max_cost = limits[b6 >> 4];
	if (r->max_cost == DYN)
		r->max_cost = r->exposure;
	else if (r->max_cost == DYN2)
		r->max_cost = sat_dec(r->exposure);
	r->has_max_total = b5 & 4;
	r->dry_run = b5 & 8;
	r->max_total = limits[b5 >> 4];
	if (r->max_total == DYN)
		r->max_total = sat_add(committed, r->exposure);
	else if (r->max_total == DYN2)
		r->max_total = sat_dec(sat_add(committed, r->exposure));
	if (!r->has_max_inv)
		r->max_inv = 0;
	if (!r->has_max_cost)
		r->max_cost = 0;
	if (!r->has_max_total)
		r->max_total = 0;
}

static void pick_authority(req *r, uint8_t b7, bool has_hold, const req *hold_info)
{
	unsigned v = b7 & 15, k = b7 >> 4;

	r->has_auth = false;
	memset(&r->auth_id, 0, sizeof(r->auth_id));
	memset(&r->lease, 0, sizeof(r->lease));
	r->epoch = 0;
	memset(&r->caller, 0, sizeof(r->caller));
	if (callers[b7 >> 6])
		fs_cstr(&r->caller, callers[b7 >> 6]);
	if (v < 6)
		return;
	r->has_auth = true;
	if (v == 6) {
		r->has_auth = has_hold && hold_info->has_auth;
		r->auth_id = hold_info->auth_id;
		r->lease = hold_info->lease;
		r->epoch = hold_info->epoch;
	} else if (v < 12) {
		fs_cstr(&r->auth_id, leases[v - 7].id);
		fs_cstr(&r->lease, leases[v - 7].lease);
		r->epoch = leases[v - 7].epoch;
	} else if (v == 12) {
		fs_fill(&r->auth_id, 'a', BS_ID_LEN_MAX);
		fs_cstr(&r->lease, "lease-1");
		r->epoch = UINT64_MAX;
	} else if (v == 13) {
		fs_cstr(&r->lease, "lease-1"); /* no authority_id */
		r->epoch = 1;
	} else if (v == 14) {
		fs_cstr(&r->auth_id, "auth-1"); /* no lease_id */
		r->epoch = 1;
	} else if (k < 8) {
		weird(&r->auth_id, k);
		fs_cstr(&r->lease, "lease-1");
	} else {
		fs_cstr(&r->auth_id, "auth-1");
		weird(&r->lease, k);
	}
	if (!r->has_auth) {
		memset(&r->auth_id, 0, sizeof(r->auth_id));
		memset(&r->lease, 0, sizeof(r->lease));
		r->epoch = 0;
	}
}

/* Clears what does not belong to the kind (unless the instruction is raw). */
static void shape(req *r)
{
	bool authorize = r->kind == BS_KIND_AUTHORIZE_EXPOSURE;
	bool increment = r->kind == BS_KIND_INCREMENT_INVOCATION;

	if (increment) {
		memset(&r->hold, 0, sizeof(r->hold));
		r->has_auth = false;
		memset(&r->auth_id, 0, sizeof(r->auth_id));
		memset(&r->lease, 0, sizeof(r->lease));
		r->epoch = 0;
		r->exposure = 0;
	}
	if (r->kind != BS_KIND_RECONCILE_SPEND)
		r->realized = 0;
	if (!authorize) {
		r->has_max_cost = r->has_max_total = false;
		r->max_cost = r->max_total = 0;
	}
	if (!authorize && !increment) {
		r->has_max_inv = false;
		r->max_inv = 0;
	}
	if (!authorize)
		r->dry_run = false;
}

static void decode(const uint8_t *b, bs_kind kind, req *r)
{
	req hold_info;
	bs_hold picked;

	memset(r, 0, sizeof(*r));
	memset(&hold_info, 0, sizeof(hold_info));
	r->kind = kind;
	pick_cap(r, b[1]);
	bool has_hold = pick_hold(r, b[2], &picked, &hold_info);
	pick_event(r, b[3]);
	pick_amounts(r, b[4], b[5], b[6], has_hold, &hold_info);
	pick_authority(r, b[7], has_hold, &hold_info);
	if (!(b[0] & 0x10))
		shape(r);
}

/* ---- applying ---- */

static int noop_usage(void *ctx, const bs_usage *u)
{
	(void)ctx;
	(void)u;
	return 0;
}

static int noop_hold(void *ctx, const bs_hold *h)
{
	(void)ctx;
	(void)h;
	return 0;
}

static bool readable_hold(bs_str id)
{
	bs_error err;
	bool found;

	return id.ptr && bs_store_get_hold(R.store, id, noop_hold, NULL, &found, &err) != BS_EINVAL;
}

static void flush(void)
{
	static bs_batch_item items[BATCH_MAX];
	size_t n = R.n_batch;
	char a[1024], b[1024];

	if (n == 0)
		return;
	R.n_batch = 0;
	memset(items, 0, sizeof(items));
	for (size_t i = 0; i < n; i++)
		items[i].mutation = &R.batch[i].m;
	if (n == 1 && !R.batch_api) {
		items[0].result =
		        bs_store_apply(R.store, &R.batch[0].m, &items[0].outcome, &items[0].error);
	} else {
		int rc = bs_store_apply_batch(R.store, items, n);
		if (rc != BS_OK)
			differ("apply_batch of %zu answered %d", n, rc);
	}
	for (size_t i = 0; i < n; i++) {
		const pending *p = &R.batch[i];
		const bs_batch_item *it = &items[i];

		if (!same_result(it->result, &it->outcome, &it->error, p->mrc, &p->mout,
		                 &p->merr)) {
			fmt_result(a, sizeof(a), it->result, &it->outcome, &it->error);
			fmt_result(b, sizeof(b), p->mrc, &p->mout, &p->merr);
			differ("item %zu of %zu (%s)\n  store: %s\n  model: %s", i, n,
			       bs_kind_name(p->m.kind), a, b);
		}
		if (trace) {
			fmt_result(a, sizeof(a), it->result, &it->outcome, &it->error);
			fprintf(stderr, "[%zu] %s item %zu/%zu: %s\n", R.step,
			        bs_kind_name(p->m.kind), i + 1, n, a);
		}
		if (it->result != BS_OK)
			continue;
		fuzz_check_outcome(&p->m, &it->outcome);
		if (it->outcome.replayed || it->outcome.dry_run)
			continue;
		FUZZ_CHECK(it->outcome.event_seq == R.last_seq + 1,
		           "event_seq %" PRIu64 " after %" PRIu64, it->outcome.event_seq,
		           R.last_seq);
		R.last_seq = it->outcome.event_seq;
		if (R.last_seq < EVENTS_MAX)
			R.callers[R.last_seq] = p->r.caller;
	}
	for (size_t i = 0; i < n; i++) {
		const bs_mutation *m = &R.batch[i].m;

		if (m->capability_id.ptr &&
		    bs_store_get_usage(R.store, m->capability_id, m->grant_index, noop_usage, NULL,
		                       &(bool){false}, &(bs_error){0}) == BS_OK)
			compare_usage(m->capability_id, m->grant_index);
		if (readable_hold(m->hold_id))
			compare_hold(m->hold_id);
	}
	compare_counters();
}

/* What a dry run must answer: the model's answer for the same mutation,
 * not dry, without its event_id, on a scratch model that replays the log. */
static void expect_dry_run(pending *p)
{
	static const char realize[] = "cannot realize spend larger than exposed cost";
	bs_mutation m = p->m;
	bs_outcome o;
	bs_error e;

	m.dry_run = false;
	/* Validation first: it does not depend on the state. */
	model *v = model_new();
	p->mrc = model_apply(v, &m, R.now, &p->mout, &p->merr);
	model_free(v);
	bool invalid = p->mrc == BS_EINVAL;
	if (m.kind != BS_KIND_AUTHORIZE_EXPOSURE) {
		/* Only the realized-units check comes after the dry_run one. */
		if (!invalid || strcmp(p->merr.message, realize) == 0) {
			p->mrc = BS_EINVAL;
			p->merr.code = BS_EINVAL;
			snprintf(p->merr.message, sizeof(p->merr.message),
			         "dry_run does not apply to %s", bs_kind_name(m.kind));
		}
		return;
	}
	if (invalid)
		return;
	v = model_new();
	for (size_t i = 0; i < R.n_log; i++) {
		bs_mutation lm = to_mutation(&mutation_log[i].r);
		(void)model_apply(v, &lm, mutation_log[i].now, &o, &e);
	}
	m.event_id = (bs_str){0};
	memset(&p->mout, 0, sizeof(p->mout));
	p->mrc = model_apply(v, &m, R.now, &p->mout, &p->merr);
	model_free(v);
	if (p->mrc != BS_OK)
		return;
	p->mout.dry_run = true;
	p->mout.event_seq = 0;
	p->mout.has_commit_index = false;
	p->mout.commit_index = 0;
	snprintf(p->mout.event_id, sizeof(p->mout.event_id), "%.*s", (int)p->m.event_id.len,
	         p->m.event_id.ptr ? p->m.event_id.ptr : "");
}

static void add_mutation(const req *r, const uint8_t *b)
{
	bool join = b[0] & 0x20;

	if (!join || R.n_batch == BATCH_MAX)
		flush();
	if (R.n_batch == 0) {
		R.batch_api = b[0] & 0x40;
		if ((b[0] & 0x80) && __builtin_add_overflow(R.now, 1000, &R.now))
			R.now = INT64_MAX;
	}
	pending *p = &R.batch[R.n_batch++];
	p->r = *r;
	p->m = to_mutation(&p->r);
	memset(&p->mout, 0, sizeof(p->mout));
	memset(&p->merr, 0, sizeof(p->merr));
	if (p->m.dry_run) {
		expect_dry_run(p);
	} else {
		p->mrc = model_apply(R.model, &p->m, R.now, &p->mout, &p->merr);
		mutation_log[R.n_log].r = *r;
		mutation_log[R.n_log++].now = R.now;
	}
	if (R.n_history == HISTORY) {
		memmove(&R.history[0], &R.history[1], (HISTORY - 1) * sizeof(R.history[0]));
		R.n_history--;
	}
	R.history[R.n_history++] = *r;
}

static void op_clock(uint8_t b)
{
	static const int64_t deltas[8] = {0, 1, 1000, 1000000, 1000000000, -1, -1000000000, 0};
	int64_t now;

	flush();
	if ((b & 7) == 7)
		R.now = 0;
	else if (__builtin_add_overflow(R.now, deltas[b & 7], &now))
		R.now = deltas[b & 7] > 0 ? INT64_MAX : INT64_MIN;
	else
		R.now = now;
}

/* byte 6: bits 0-2 disposition (none, the five, two invalid ones), bits 3-4
 * older_than (none, now, now + 1, INT64_MIN), bits 5-6 the page cursor (none,
 * just after a hold of the model, a malformed or well-formed id at INT64_MIN,
 * past everything); byte 7 which hold / which id. */
static void op_list_holds(const uint8_t *b, bs_str cap, uint32_t limit, bool cap_ok)
{
	static const int dispositions[8] = {
	        -1, BS_HOLD_OPEN,        BS_HOLD_RELEASED, BS_HOLD_REVERSED, BS_HOLD_RECONCILED,
	        0,  BS_HOLD_EXPIRED + 1, BS_HOLD_EXPIRED};
	bs_hold_query q;
	fstr cursor;
	bs_hold h;
	bool ok = cap_ok && limit <= BS_LIST_LIMIT_MAX;

	memset(&q, 0, sizeof(q));
	memset(&cursor, 0, sizeof(cursor));
	q.capability_id = cap;
	q.limit = limit;
	int d = dispositions[b[6] & 7];
	if (d >= 0) {
		q.has_disposition = true;
		q.disposition = (bs_disposition)d;
		ok &= d >= BS_HOLD_OPEN && d <= BS_HOLD_EXPIRED;
	}
	switch ((b[6] >> 3) & 3) {
	case 1:
		q.has_older_than = true, q.older_than_ns = R.now;
		break;
	case 2:
		q.has_older_than = true;
		q.older_than_ns = R.now == INT64_MAX ? R.now : R.now + 1;
		break;
	case 3:
		q.has_older_than = true, q.older_than_ns = INT64_MIN;
		break;
	}
	switch ((b[6] >> 5) & 3) {
	case 1:
		if (model_hold_count(R.model) == 0)
			break;
		model_hold_at(R.model, b[7] % model_hold_count(R.model), &h);
		fs_from(&cursor, h.hold_id);
		q.has_after = true;
		q.after_created_ns = h.created_at_ns;
		break;
	case 2:
		weird(&cursor, b[7]);
		q.has_after = true;
		q.after_created_ns = INT64_MIN;
		ok &= readable_hold(fs_str(&cursor));
		break;
	case 3:
		fs_cstr(&cursor, "h0");
		q.has_after = true;
		q.after_created_ns = INT64_MAX;
		break;
	}
	q.after_hold_id = fs_str(&cursor);
	compare_hold_list(&q, ok);
}

static void op_read(const uint8_t *b)
{
	static const uint32_t list_limits[8] = {0, 1, 2, 3, 5, 100, 1000, 1001};
	req q, hold_info;
	bs_hold picked;
	uint64_t ci = model_commit_index(R.model);
	const uint64_t afters[8] = {0, 1, 2, 5, sat_dec(ci), ci, ci + 1, UINT64_MAX};

	flush();
	memset(&q, 0, sizeof(q));
	pick_cap(&q, b[1]);
	(void)pick_hold(&q, b[2], &picked, &hold_info);
	bs_str cap = fs_str(&q.cap);
	uint32_t limit = list_limits[b[4] & 7];
	bool cap_ok = !cap.ptr || bs_store_get_usage(R.store, cap, 0, noop_usage, NULL,
	                                             &(bool){false}, &(bs_error){0}) == BS_OK;
	bool has_grant = b[5] & 1;
	bool ok = cap_ok && limit <= BS_LIST_LIMIT_MAX && (!has_grant || q.grant <= UINT32_MAX);
	compare_event_list(limit, cap, has_grant, q.grant, afters[b[3] & 7], ok);
	compare_usage_list(limit, cap, cap_ok && limit <= BS_LIST_LIMIT_MAX);
	op_list_holds(b, cap, limit, cap_ok);
	if (cap.ptr && cap_ok && q.grant <= UINT32_MAX)
		compare_usage(cap, q.grant);
	if (readable_hold(fs_str(&q.hold)))
		compare_hold(fs_str(&q.hold));
}

static void op_checkpoint(void)
{
	bs_error err;

	flush();
	memset(&err, 0, sizeof(err));
	if (bs_store_checkpoint(R.store, &err) != BS_OK)
		differ("checkpoint failed: %s", err.message);
	compare_counters();
}

/* Everything the store and the model know, compared. */
static void full_check(void)
{
	static const char *const pool[] = {"h0", "h1", "h2", "h3", "missing"};
	uint64_t ci = model_commit_index(R.model);
	size_t n = model_hold_count(R.model);
	bs_hold h;
	fstr id;

	flush();
	compare_counters();
	compare_usage_list(BS_LIST_LIMIT_MAX, (bs_str){0}, true);
	for (size_t i = 0; i < n; i++) {
		model_hold_at(R.model, i, &h);
		fs_from(&id, h.hold_id);
		compare_hold(fs_str(&id));
	}
	for (size_t i = 0; i < sizeof(pool) / sizeof(pool[0]); i++)
		compare_hold(bs_str_from(pool[i]));
	for (uint64_t after = 0; after < ci; after += BS_LIST_LIMIT_MAX)
		compare_event_list(BS_LIST_LIMIT_MAX, (bs_str){0}, false, 0, after, true);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	trace = getenv("BUDGETD_FUZZ_TRACE") != NULL;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t steps = size / OP_BYTES;
	bs_error err;
	req r;

	if (steps > PROGRAM_MAX)
		steps = PROGRAM_MAX;
	memset(&R, 0, sizeof(R));
	memset(&err, 0, sizeof(err));
	R.now = 1700000000000000000;
	bs_options opts = {.clock = fake_clock, .clock_ctx = &R.now};
	if (bs_store_open(":memory:", &opts, &R.store, &err) != BS_OK)
		fuzz_fail("cannot open a :memory: store: %s", err.message);
	R.model = model_new();
	for (R.step = 0; R.step < steps; R.step++) {
		const uint8_t *b = data + R.step * OP_BYTES;
		switch (b[0] & 15) {
		case OP_RELEASE_A:
		case OP_RELEASE_B:
			decode(b, BS_KIND_RELEASE_EXPOSURE, &r);
			add_mutation(&r, b);
			break;
		case OP_REVERSE:
			decode(b, BS_KIND_REVERSE_EXPOSURE, &r);
			add_mutation(&r, b);
			break;
		case OP_RECONCILE_A:
		case OP_RECONCILE_B:
			decode(b, BS_KIND_RECONCILE_SPEND, &r);
			add_mutation(&r, b);
			break;
		case OP_INCREMENT_A:
		case OP_INCREMENT_B:
			decode(b, BS_KIND_INCREMENT_INVOCATION, &r);
			add_mutation(&r, b);
			break;
		case OP_REPEAT:
			if (R.n_history == 0)
				break;
			r = R.history[R.n_history - 1 - (b[1] & 7) % R.n_history];
			if (b[2] & 1) { /* another caller: still the same mutation */
				memset(&r.caller, 0, sizeof(r.caller));
				if (callers[(b[2] >> 1) & 3])
					fs_cstr(&r.caller, callers[(b[2] >> 1) & 3]);
			}
			add_mutation(&r, b);
			break;
		case OP_CHECKPOINT:
			op_checkpoint();
			break;
		case OP_READ:
			op_read(b);
			break;
		case OP_CLOCK:
			op_clock(b[1]);
			break;
		default:
			decode(b, BS_KIND_AUTHORIZE_EXPOSURE, &r);
			add_mutation(&r, b);
			break;
		}
	}
	R.step = steps;
	/* Its list_usages materializes the overlay first, so the holds are
	 * then compared as read back from the derived tables. */
	full_check();
	bs_store_close(R.store);
	model_free(R.model);
	return 0;
}
