/* bs_verify.c - replays the mutation log and checks the ledger (bs_admin.h).
 *
 * Written independently of bs_engine.c and bs_rules.c: the fold, the limit
 * checks, the settlement checks and the hold lifecycle are derived again
 * here from RULES.md, so a bug there shows up as a mismatch instead of
 * being reproduced. Only the hash map (bs_map) and small helpers (names,
 * bs_str_eq) are shared.
 *
 * One read-only connection, one read transaction: the log is streamed in
 * event_seq order by one statement and folded into per-grant and per-hold
 * state in memory. When the stream passes store_meta.materialized_seq the
 * fold is exactly the state the derived tables claim, and they are compared
 * there (the other statements run on the same connection, in the same
 * snapshot, while the stream waits).
 *
 * The fold goes on with its own values after a mismatch (a replay from zero
 * never trusts a recorded after-value), so one damaged after-value is
 * reported once, while a damaged input (an amount, a deleted event) also
 * shows in the later events of its grant.
 */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bs_admin.h"
#include "bs_internal.h"
#include "bs_map.h"

#define VERIFY_BUSY_TIMEOUT_MS 5000
#define GRANT_KEY_LEN_MAX      (BS_ID_LEN_MAX + sizeof(uint32_t))
#define DETAIL_LEN_MAX         400 /* bytes of the field differences of one row */
#define NS_PER_SECOND          1000000000LL
#define EXPIRY_CALLER          "budgetd" /* who records every expire_exposure event */
/* The oldest schema read: v4 only added the expiry columns (events:
 * ttl_seconds, expires_at, on_expiry; holds: expires_at, on_expiry) and
 * kinds, and a v3 file reads as if every one of them were NULL. */
#define VERIFY_SCHEMA_MIN    3
#define VERIFY_SCHEMA_EXPIRY 4 /* the first with deadlines */

/* ---- the fold's state ---- */

/* One usage record. */
typedef struct grant_entry {
	bs_map_node node; /* key: capability bytes, then the grant (4 bytes) */
	uint32_t count;
	uint64_t exposed;
	uint64_t realized;
	uint64_t seq;       /* the last applied event */
	int64_t updated_at; /* its recorded_at */
	bool seen;          /* matched by a row of the usage table */
	size_t cap_len;
	char key[];
} grant_entry;

/* One hold. Strings live in buf: hold_id, capability_id, then the
 * authority's two ids. */
typedef struct hold_entry {
	bs_map_node node; /* key: hold_id */
	bs_str cap;
	uint32_t grant;
	uint64_t authorized;
	uint64_t remaining;
	bool debited;
	bs_disposition disposition;
	bool has_authority;
	bs_str authority_id;
	bs_str lease_id;
	uint64_t lease_epoch;
	int64_t created_at;
	int64_t updated_at;
	int64_t expires_at; /* the deadline; 0: none (always 0 once final) */
	int64_t on_expiry;  /* a bs_expiry; NONE until a deadline is set */
	uint64_t opened_by; /* the authorize event */
	bool seen;          /* matched by a row of the holds table */
	char buf[];
} hold_entry;

typedef struct verifier {
	sqlite3 *db;
	bs_verify_report *report;
	bs_error *err;
	int fatal;       /* a bs_err that stops the verification */
	uint64_t schema; /* PRAGMA user_version: VERIFY_SCHEMA_MIN .. BS_SCHEMA_VERSION */
	bs_map grants;
	bs_map holds;
	uint64_t prev_seq;         /* the last event_seq streamed */
	uint64_t materialized_seq; /* M */
	bool compared;             /* the derived tables were compared with the fold at M */
} verifier;

/* One event as read from the log; strings borrowed from the statement. */
typedef struct logged {
	uint64_t seq;
	bs_str event_id;
	bs_str hold_id;
	bs_str cap;
	int64_t grant_raw;
	uint32_t grant;
	int64_t kind;
	bool has_allowed;
	int64_t allowed;
	int64_t denial;
	int64_t recorded_at;
	bool has_usage_seq;
	uint64_t usage_seq;
	uint64_t exposure;
	uint64_t realized;
	bool has_max_invocations;
	uint64_t max_invocations;
	bool has_max_cost_per_invocation;
	uint64_t max_cost_per_invocation;
	bool has_max_total;
	uint64_t max_total;
	int64_t count_after_raw;
	uint64_t exposed_after;
	uint64_t realized_after;
	bs_str authority_id;
	bs_str lease_id;
	bool has_lease_epoch;
	uint64_t lease_epoch;
	bs_str caller;
	bool has_ttl;
	int64_t ttl; /* seconds */
	bool has_expires_at;
	int64_t expires_at;
	bool has_on_expiry;
	int64_t on_expiry;
} logged;

/* ---- reporting ---- */

__attribute__((format(printf, 2, 3))) static void mismatch(verifier *v, const char *fmt, ...)
{
	bs_verify_report *r = v->report;
	va_list ap;

	r->mismatch_count++;
	if (r->n_mismatches == BS_VERIFY_MISMATCHES_MAX)
		return;
	va_start(ap, fmt);
	/* Truncation is acceptable: ids are bounded, the rest is numbers. */
	(void)vsnprintf(r->mismatches[r->n_mismatches], BS_VERIFY_MISMATCH_LEN_MAX, fmt, ap);
	va_end(ap);
	r->n_mismatches++;
}

/* Stops the verification with an error (the first one wins). */
__attribute__((format(printf, 3, 4))) static int fail(verifier *v, int code, const char *fmt, ...)
{
	char message[BS_ERROR_MESSAGE_MAX];
	va_list ap;

	if (v->fatal)
		return v->fatal;
	va_start(ap, fmt);
	(void)vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	v->fatal = bs_errorf(v->err, code, "%s", message);
	return v->fatal;
}

static int sql_failure(verifier *v, const char *what)
{
	return fail(v, BS_ESTORAGE, "cannot read the database: %s: %s", what,
	            sqlite3_errmsg(v->db));
}

/* Field differences of one row, appended as "name X (the log: Y)". */
typedef struct detail {
	char text[DETAIL_LEN_MAX];
	size_t len;
	unsigned count;
} detail;

__attribute__((format(printf, 2, 3))) static void detail_add(detail *d, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (d->len >= sizeof(d->text) - 1)
		return;
	if (d->count++ > 0) {
		n = snprintf(d->text + d->len, sizeof(d->text) - d->len, ", ");
		d->len += n > 0 ? (size_t)n : 0;
		if (d->len >= sizeof(d->text))
			d->len = sizeof(d->text) - 1;
	}
	va_start(ap, fmt);
	n = vsnprintf(d->text + d->len, sizeof(d->text) - d->len, fmt, ap);
	va_end(ap);
	d->len += n > 0 ? (size_t)n : 0;
	if (d->len >= sizeof(d->text))
		d->len = sizeof(d->text) - 1;
}

static void detail_u64(detail *d, const char *field, uint64_t found, uint64_t want)
{
	if (found != want)
		detail_add(d, "%s %" PRIu64 " (the log: %" PRIu64 ")", field, found, want);
}

static void detail_i64(detail *d, const char *field, int64_t found, int64_t want)
{
	if (found != want)
		detail_add(d, "%s %" PRId64 " (the log: %" PRId64 ")", field, found, want);
}

static void detail_str(detail *d, const char *field, bs_str found, bs_str want)
{
	if (bs_str_eq(found, want))
		return;
	if (!found.ptr || !want.ptr)
		detail_add(d, "%s %s (the log: %s)", field, found.ptr ? "set" : "unset",
		           want.ptr ? "set" : "unset");
	else
		detail_add(d, "%s `%.*s` (the log: `%.*s`)", field, (int)found.len, found.ptr,
		           (int)want.len, want.ptr);
}

static const char *kind_name(int64_t kind)
{
	return kind >= BS_KIND_INCREMENT_INVOCATION && kind <= BS_KIND_EXTEND_HOLD
	               ? bs_kind_name((bs_kind)kind)
	               : "unknown";
}

static const char *disposition_name(int64_t d)
{
	return d >= BS_HOLD_OPEN && d <= BS_HOLD_EXPIRED ? bs_disposition_name((bs_disposition)d)
	                                                 : "unknown";
}

static const char *expiry_name(int64_t e)
{
	if (e == BS_EXPIRY_NONE)
		return "none";
	return e > BS_EXPIRY_NONE && e <= BS_EXPIRY_REVERSE ? bs_expiry_name((bs_expiry)e)
	                                                    : "unknown";
}

static const char *denial_name(int64_t d)
{
	return d >= BS_DENIAL_NONE && d <= BS_DENIAL_MAX_TOTAL_COST ? bs_denial_name((bs_denial)d)
	                                                            : "unknown";
}

/* ---- column access ---- */

static bs_str col_str(sqlite3_stmt *st, int i)
{
	bs_str s = {(const char *)sqlite3_column_text(st, i), 0};

	if (s.ptr)
		s.len = (size_t)sqlite3_column_bytes(st, i);
	return s;
}

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
	return (uint64_t)sqlite3_column_int64(st, i);
}

static int64_t col_i64(sqlite3_stmt *st, int i)
{
	return (int64_t)sqlite3_column_int64(st, i);
}

static bool col_null(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL;
}

typedef struct column_rule {
	const char *name;
	int type; /* SQLITE_INTEGER or SQLITE_TEXT */
	bool nullable;
} column_rule;

/* Every value of a row must have its column's declared type: a text where
 * a number belongs would otherwise be read as 0. */
static void check_types(verifier *v, sqlite3_stmt *st, const column_rule *rules, int n,
                        const char *row_name)
{
	for (int i = 0; i < n; i++) {
		int t = sqlite3_column_type(st, i);

		if (t == rules[i].type || (t == SQLITE_NULL && rules[i].nullable))
			continue;
		mismatch(v, "%s: column %s holds a %s, not %s%s", row_name, rules[i].name,
		         t == SQLITE_NULL      ? "NULL"
		         : t == SQLITE_INTEGER ? "integer"
		         : t == SQLITE_TEXT    ? "text"
		         : t == SQLITE_FLOAT   ? "real"
		                               : "blob",
		         rules[i].type == SQLITE_INTEGER ? "an integer" : "text",
		         rules[i].nullable ? " or NULL" : "");
	}
}

/* ---- the maps ---- */

static void drop_node(bs_map_node *node)
{
	free(node); /* every entry is one allocation with its node first */
}

static size_t grant_key(char *buf, bs_str cap, uint32_t grant)
{
	memcpy(buf, cap.ptr, cap.len);
	memcpy(buf + cap.len, &grant, sizeof(grant));
	return cap.len + sizeof(grant);
}

/* `cap` must be at most BS_ID_LEN_MAX bytes. */
static grant_entry *grant_get(verifier *v, bs_str cap, uint32_t grant)
{
	char key[GRANT_KEY_LEN_MAX];
	size_t len = grant_key(key, cap, grant);

	return (grant_entry *)bs_map_get(&v->grants, key, len, bs_map_hash(&v->grants, key, len));
}

static grant_entry *grant_new(verifier *v, bs_str cap, uint32_t grant)
{
	char key[GRANT_KEY_LEN_MAX];
	size_t len = grant_key(key, cap, grant);
	grant_entry *g;

	if (v->grants.len >= BS_VERIFY_GRANTS_MAX) {
		fail(v, BS_EPRECONDITION,
		     "the ledger has more than %d usage records; verification keeps every one in"
		     " memory and refuses more",
		     BS_VERIFY_GRANTS_MAX);
		return NULL;
	}
	g = calloc(1, sizeof(*g) + len);
	if (!g) {
		fail(v, BS_EINTERNAL, "out of memory folding the log");
		return NULL;
	}
	memcpy(g->key, key, len);
	g->cap_len = cap.len;
	g->node = (bs_map_node){bs_map_hash(&v->grants, key, len), g->key, len};
	if (bs_map_put(&v->grants, &g->node) != 0) {
		free(g);
		fail(v, BS_EINTERNAL, "out of memory folding the log");
		return NULL;
	}
	v->report->usage_records++;
	return g;
}

static hold_entry *hold_get(verifier *v, bs_str hold_id)
{
	return (hold_entry *)bs_map_get(&v->holds, hold_id.ptr, hold_id.len,
	                                bs_map_hash(&v->holds, hold_id.ptr, hold_id.len));
}

static void place(char **cursor, bs_str *s)
{
	if (!s->ptr)
		return;
	memcpy(*cursor, s->ptr, s->len);
	s->ptr = *cursor;
	*cursor += s->len;
}

/* A new open hold from an applied authorize event, with its deadline
 * (0: none). */
static hold_entry *hold_open(verifier *v, const logged *e, int64_t expires_at)
{
	bool has_authority = e->authority_id.ptr != NULL;
	size_t len = e->hold_id.len + e->cap.len;
	hold_entry *h;
	char *cursor;

	if (v->holds.len >= BS_VERIFY_HOLDS_MAX) {
		fail(v, BS_EPRECONDITION,
		     "the ledger has more than %d holds; verification keeps every one in memory"
		     " and refuses more",
		     BS_VERIFY_HOLDS_MAX);
		return NULL;
	}
	if (has_authority)
		len += e->authority_id.len + e->lease_id.len;
	h = calloc(1, sizeof(*h) + len);
	if (!h) {
		fail(v, BS_EINTERNAL, "out of memory folding the log");
		return NULL;
	}
	cursor = h->buf;
	bs_str id = e->hold_id;
	place(&cursor, &id);
	h->cap = e->cap;
	place(&cursor, &h->cap);
	h->grant = e->grant;
	h->authorized = e->exposure;
	h->remaining = e->exposure;
	h->debited = true;
	h->disposition = BS_HOLD_OPEN;
	h->has_authority = has_authority;
	if (has_authority) {
		h->authority_id = e->authority_id;
		h->lease_id = e->lease_id;
		place(&cursor, &h->authority_id);
		place(&cursor, &h->lease_id);
		h->lease_epoch = e->lease_epoch;
	}
	h->created_at = e->recorded_at;
	h->updated_at = e->recorded_at;
	h->expires_at = expires_at;
	if (expires_at)
		h->on_expiry = e->has_on_expiry ? e->on_expiry : BS_EXPIRY_CAPTURE;
	h->opened_by = e->seq;
	h->node = (bs_map_node){bs_map_hash(&v->holds, id.ptr, id.len), id.ptr, id.len};
	if (bs_map_put(&v->holds, &h->node) != 0) {
		free(h);
		fail(v, BS_EINTERNAL, "out of memory folding the log");
		return NULL;
	}
	v->report->holds++;
	v->report->open_holds++;
	return h;
}

/* ---- the hold lifecycle (RULES.md "Hold lifecycle") ---- */

typedef enum move {
	MOVE_RELEASE_PART, /* exposure stays on the hold */
	MOVE_RELEASE_ALL,  /* the release takes it to 0 */
	MOVE_REVERSE,
	MOVE_RECONCILE,
	MOVE_EXPIRE, /* budgetd settles it at its deadline */
	MOVE_EXTEND, /* its deadline moves */
	MOVE_COUNT,
} move;

/* The state a hold moves to; 0: the move is illegal. Final states have no
 * row: nothing moves them. */
static const bs_disposition lifecycle[BS_HOLD_EXPIRED + 1][MOVE_COUNT] = {
        [BS_HOLD_OPEN] =
                {
                        [MOVE_RELEASE_PART] = BS_HOLD_OPEN,
                        [MOVE_RELEASE_ALL] = BS_HOLD_RELEASED,
                        [MOVE_REVERSE] = BS_HOLD_REVERSED,
                        [MOVE_RECONCILE] = BS_HOLD_RECONCILED,
                        [MOVE_EXPIRE] = BS_HOLD_EXPIRED,
                        [MOVE_EXTEND] = BS_HOLD_OPEN,
                },
};

static bs_disposition lifecycle_next(bs_disposition from, move how)
{
	if (from < BS_HOLD_OPEN || from > BS_HOLD_EXPIRED)
		return 0;
	return lifecycle[from][how];
}

/* ---- checking one event ---- */

static bool decides(int64_t kind)
{
	return kind == BS_KIND_AUTHORIZE_EXPOSURE || kind == BS_KIND_INCREMENT_INVOCATION;
}

static bool settles(int64_t kind)
{
	return kind == BS_KIND_RELEASE_EXPOSURE || kind == BS_KIND_REVERSE_EXPOSURE ||
	       kind == BS_KIND_RECONCILE_SPEND;
}

/* The kinds of schema v4 that exist only for a hold: they always name one. */
static bool tends_hold(int64_t kind)
{
	return kind == BS_KIND_EXPIRE_EXPOSURE || kind == BS_KIND_EXTEND_HOLD;
}

static bool known_kind(const verifier *v, int64_t kind)
{
	return decides(kind) || settles(kind) ||
	       (v->schema >= VERIFY_SCHEMA_EXPIRY && tends_hold(kind));
}

static void decode_event(sqlite3_stmt *st, logged *e)
{
	memset(e, 0, sizeof(*e));
	e->seq = col_u64(st, 0);
	e->event_id = col_str(st, 1);
	e->hold_id = col_str(st, 2);
	e->cap = col_str(st, 3);
	e->grant_raw = col_i64(st, 4);
	e->grant = (uint32_t)e->grant_raw;
	e->kind = col_i64(st, 5);
	e->has_allowed = !col_null(st, 6);
	e->allowed = col_i64(st, 6);
	e->denial = col_i64(st, 7);
	e->recorded_at = col_i64(st, 8);
	e->has_usage_seq = !col_null(st, 9);
	e->usage_seq = col_u64(st, 9);
	e->exposure = col_u64(st, 10);
	e->realized = col_u64(st, 11);
	e->has_max_invocations = !col_null(st, 12);
	e->max_invocations = col_u64(st, 12);
	e->has_max_cost_per_invocation = !col_null(st, 13);
	e->max_cost_per_invocation = col_u64(st, 13);
	e->has_max_total = !col_null(st, 14);
	e->max_total = col_u64(st, 14);
	e->count_after_raw = col_i64(st, 15);
	e->exposed_after = col_u64(st, 16);
	e->realized_after = col_u64(st, 17);
	e->authority_id = col_str(st, 18);
	e->lease_id = col_str(st, 19);
	e->has_lease_epoch = !col_null(st, 20);
	e->lease_epoch = col_u64(st, 20);
	e->caller = col_str(st, 21);
	e->has_ttl = !col_null(st, 22);
	e->ttl = col_i64(st, 22);
	e->has_expires_at = !col_null(st, 23);
	e->expires_at = col_i64(st, 23);
	e->has_on_expiry = !col_null(st, 24);
	e->on_expiry = col_i64(st, 24);
}

static const column_rule event_columns[] = {
        {"event_seq", SQLITE_INTEGER, false},
        {"event_id", SQLITE_TEXT, true},
        {"hold_id", SQLITE_TEXT, true},
        {"capability_id", SQLITE_TEXT, false},
        {"grant_index", SQLITE_INTEGER, false},
        {"kind", SQLITE_INTEGER, false},
        {"allowed", SQLITE_INTEGER, true},
        {"denial", SQLITE_INTEGER, false},
        {"recorded_at", SQLITE_INTEGER, false},
        {"usage_seq", SQLITE_INTEGER, true},
        {"exposure_units", SQLITE_INTEGER, false},
        {"realized_units", SQLITE_INTEGER, false},
        {"max_invocations", SQLITE_INTEGER, true},
        {"max_cost_per_invocation", SQLITE_INTEGER, true},
        {"max_total_cost_units", SQLITE_INTEGER, true},
        {"invocation_count_after", SQLITE_INTEGER, false},
        {"exposed_after", SQLITE_INTEGER, false},
        {"realized_after", SQLITE_INTEGER, false},
        {"authority_id", SQLITE_TEXT, true},
        {"lease_id", SQLITE_TEXT, true},
        {"lease_epoch", SQLITE_INTEGER, true},
        {"caller", SQLITE_TEXT, true},
        {"ttl_seconds", SQLITE_INTEGER, true},
        {"expires_at", SQLITE_INTEGER, true},
        {"on_expiry", SQLITE_INTEGER, true},
};
#define EVENT_COLUMN_COUNT ((int)(sizeof(event_columns) / sizeof(event_columns[0])))

static bool valid_id(verifier *v, uint64_t seq, const char *field, bs_str id)
{
	if (!id.ptr)
		return true;
	if (id.len == 0 || id.len > BS_ID_LEN_MAX) {
		mismatch(v, "event %" PRIu64 ": %s is %zu bytes long (1 to %d allowed)", seq, field,
		         id.len, BS_ID_LEN_MAX);
		return false;
	}
	return true;
}

/* Which of the expiry fields each kind records; the others are NULL. */
typedef enum presence {
	ABSENT,
	OPTIONAL,
	REQUIRED,
} presence;

typedef struct expiry_fields {
	presence ttl_seconds, expires_at, on_expiry;
} expiry_fields;

static const expiry_fields expiry_fields_of[BS_KIND_EXTEND_HOLD + 1] = {
        /* ttl_seconds and on_expiry as requested (together); expires_at when
         * it opened a hold with a deadline */
        [BS_KIND_AUTHORIZE_EXPOSURE] = {OPTIONAL, OPTIONAL, OPTIONAL},
        [BS_KIND_EXPIRE_EXPOSURE] = {ABSENT, ABSENT, REQUIRED}, /* the policy applied */
        [BS_KIND_EXTEND_HOLD] = {REQUIRED, REQUIRED, REQUIRED}, /* the hold's after */
};

static void check_presence(verifier *v, const logged *e, const char *field, bool present,
                           presence rule)
{
	if (present && rule == ABSENT)
		mismatch(v, "event %" PRIu64 " (%s) records %s, which its kind does not have",
		         e->seq, kind_name(e->kind), field);
	else if (!present && rule == REQUIRED)
		mismatch(v, "event %" PRIu64 " (%s) records no %s", e->seq, kind_name(e->kind),
		         field);
}

/* ttl_seconds, expires_at and on_expiry on their own (their values against
 * the hold are checked by the fold). */
static void check_expiry_shape(verifier *v, const logged *e, bool applied)
{
	const expiry_fields *f = &expiry_fields_of[e->kind];
	const uint64_t n = e->seq;
	const char *k = kind_name(e->kind);
	const bool opens_deadline = applied && e->hold_id.ptr && e->has_ttl;

	check_presence(v, e, "ttl_seconds", e->has_ttl, f->ttl_seconds);
	check_presence(v, e, "expires_at", e->has_expires_at, f->expires_at);
	check_presence(v, e, "on_expiry", e->has_on_expiry, f->on_expiry);
	if (e->has_ttl && (e->ttl < 1 || e->ttl > BS_TTL_SECONDS_MAX))
		mismatch(v, "event %" PRIu64 ": ttl_seconds %" PRId64 " is out of range (1 to %d)",
		         n, e->ttl, BS_TTL_SECONDS_MAX);
	if (e->has_on_expiry &&
	    (e->on_expiry < BS_EXPIRY_CAPTURE || e->on_expiry > BS_EXPIRY_REVERSE))
		mismatch(v, "event %" PRIu64 ": on_expiry %" PRId64 " is not an expiry policy", n,
		         e->on_expiry);
	if (e->kind != BS_KIND_AUTHORIZE_EXPOSURE)
		return;
	if (e->has_ttl && !e->hold_id.ptr)
		mismatch(v, "event %" PRIu64 " (%s) has ttl_seconds but no hold", n, k);
	if (e->has_ttl != e->has_on_expiry)
		mismatch(v, "event %" PRIu64 " (%s) has %s without %s", n, k,
		         e->has_ttl ? "ttl_seconds" : "on_expiry",
		         e->has_ttl ? "on_expiry" : "ttl_seconds");
	if (e->has_expires_at && !opens_deadline)
		mismatch(v,
		         "event %" PRIu64 " (%s) records expires_at %" PRId64
		         " but opens no hold with a deadline",
		         n, k, e->expires_at);
	else if (!e->has_expires_at && opens_deadline)
		mismatch(v,
		         "event %" PRIu64 " (%s) opens hold `%.*s` with a deadline but records"
		         " no expires_at",
		         n, k, (int)e->hold_id.len, e->hold_id.ptr);
}

/* What budgetd records for an expiry that no client asks for. */
static void check_expiry_origin(verifier *v, const logged *e)
{
	const uint64_t n = e->seq;
	const char *k = kind_name(e->kind);

	if (e->event_id.ptr)
		mismatch(v,
		         "event %" PRIu64 " (%s) stores event_id `%.*s`; budgetd generates the id"
		         " of an expiry",
		         n, k, (int)e->event_id.len, e->event_id.ptr);
	if (!e->caller.ptr)
		mismatch(v, "event %" PRIu64 " (%s) records no caller (budgetd records `%s`)", n, k,
		         EXPIRY_CALLER);
	else if (!bs_str_eq(e->caller, bs_str_from(EXPIRY_CALLER)))
		mismatch(v, "event %" PRIu64 " (%s) records caller `%.*s`, not `%s`", n, k,
		         (int)(e->caller.len > BS_ID_LEN_MAX ? BS_ID_LEN_MAX : e->caller.len),
		         e->caller.ptr, EXPIRY_CALLER);
}

/* An expiry realizes what it takes by capture, nothing otherwise. */
static void check_expiry_realized(verifier *v, const logged *e)
{
	const bool capture = e->has_on_expiry && e->on_expiry == BS_EXPIRY_CAPTURE;

	if (e->realized != (capture ? e->exposure : 0))
		mismatch(v,
		         "event %" PRIu64 " (%s, on_expiry %s) realizes %" PRIu64 " of the %" PRIu64
		         " units it takes (capture realizes all, release and reverse none)",
		         e->seq, kind_name(e->kind),
		         expiry_name(e->has_on_expiry ? e->on_expiry : BS_EXPIRY_NONE), e->realized,
		         e->exposure);
}

/* The checks of one event on its own. False: it cannot be folded (its kind
 * or its key is unusable); the mismatch is already reported. */
static bool check_shape(verifier *v, const logged *e, bool *applied)
{
	static const char generated[] = BS_GENERATED_EVENT_ID_PREFIX;
	const uint64_t n = e->seq;
	const char *k = kind_name(e->kind);
	bool usable = true;

	if (!known_kind(v, e->kind)) {
		mismatch(v, "event %" PRIu64 " has unknown kind %" PRId64, n, e->kind);
		return false;
	}
	if (e->grant_raw < 0 || e->grant_raw > UINT32_MAX) {
		mismatch(v, "event %" PRIu64 ": grant_index %" PRId64 " is out of range", n,
		         e->grant_raw);
		usable = false;
	}
	if (!e->cap.ptr) {
		mismatch(v, "event %" PRIu64 " has no capability_id", n);
		usable = false;
	}
	usable = valid_id(v, n, "capability_id", e->cap) && usable;
	usable = valid_id(v, n, "hold_id", e->hold_id) && usable;
	(void)valid_id(v, n, "event_id", e->event_id);
	if (e->event_id.ptr && e->event_id.len >= sizeof(generated) - 1 &&
	    memcmp(e->event_id.ptr, generated, sizeof(generated) - 1) == 0)
		mismatch(v,
		         "event %" PRIu64 " stores event_id `%.*s`, which has the generated form"
		         " (generated ids are not stored)",
		         n, (int)e->event_id.len, e->event_id.ptr);
	if (e->kind == BS_KIND_EXPIRE_EXPOSURE)
		check_expiry_origin(v, e);

	/* The decision. */
	*applied = true;
	if (decides(e->kind)) {
		if (!e->has_allowed)
			mismatch(v, "event %" PRIu64 " (%s) records no decision (allowed is NULL)",
			         n, k);
		else if (e->allowed != 0 && e->allowed != 1)
			mismatch(v, "event %" PRIu64 " has allowed = %" PRId64 ", not 0 or 1", n,
			         e->allowed);
		*applied = !e->has_allowed || e->allowed != 0;
	} else if (e->has_allowed) {
		mismatch(v,
		         "event %" PRIu64 " (%s) records a decision (allowed = %" PRId64
		         "); only authorize and increment do",
		         n, k, e->allowed);
	}
	if (*applied && e->denial != BS_DENIAL_NONE)
		mismatch(v, "event %" PRIu64 " (%s) was applied but records denial %s", n, k,
		         denial_name(e->denial));
	if (!*applied &&
	    (e->denial < BS_DENIAL_MAX_INVOCATIONS || e->denial > BS_DENIAL_MAX_TOTAL_COST ||
	     (e->kind == BS_KIND_INCREMENT_INVOCATION && e->denial != BS_DENIAL_MAX_INVOCATIONS)))
		mismatch(v, "event %" PRIu64 " (%s) was denied with no valid denial (%" PRId64 ")",
		         n, k, e->denial);
	if (*applied && !e->has_usage_seq)
		mismatch(v, "event %" PRIu64 " (%s) was applied but has no usage_seq", n, k);
	else if (*applied && e->usage_seq != e->seq)
		mismatch(v,
		         "event %" PRIu64 " has usage_seq %" PRIu64
		         "; an applied event's usage_seq is its event_seq",
		         n, e->usage_seq);
	else if (!*applied && e->has_usage_seq)
		mismatch(v, "event %" PRIu64 " was denied but has usage_seq %" PRIu64, n,
		         e->usage_seq);

	/* Fields that do not belong to the kind. */
	if (e->kind == BS_KIND_INCREMENT_INVOCATION && e->hold_id.ptr)
		mismatch(v, "event %" PRIu64 " (%s) names hold `%.*s`", n, k, (int)e->hold_id.len,
		         e->hold_id.ptr);
	if (tends_hold(e->kind) && !e->hold_id.ptr)
		mismatch(v, "event %" PRIu64 " (%s) names no hold", n, k);
	if ((e->kind == BS_KIND_INCREMENT_INVOCATION || e->kind == BS_KIND_EXPIRE_EXPOSURE) &&
	    (e->authority_id.ptr || e->lease_id.ptr || e->has_lease_epoch))
		mismatch(v, "event %" PRIu64 " (%s) has an authority", n, k);
	if ((e->kind == BS_KIND_INCREMENT_INVOCATION || e->kind == BS_KIND_EXTEND_HOLD) &&
	    e->exposure != 0)
		mismatch(v, "event %" PRIu64 " (%s) has exposure_units %" PRIu64, n, k,
		         e->exposure);
	if (e->kind != BS_KIND_AUTHORIZE_EXPOSURE &&
	    (e->has_max_cost_per_invocation || e->has_max_total))
		mismatch(v, "event %" PRIu64 " (%s) has a cost limit; only authorize has", n, k);
	if (!decides(e->kind) && e->has_max_invocations)
		mismatch(v, "event %" PRIu64 " (%s) has max_invocations", n, k);
	if (e->kind == BS_KIND_EXPIRE_EXPOSURE)
		check_expiry_realized(v, e);
	else if (e->kind != BS_KIND_RECONCILE_SPEND && e->realized != 0)
		mismatch(v, "event %" PRIu64 " (%s) has realized_units %" PRIu64, n, k,
		         e->realized);
	if (e->kind == BS_KIND_RECONCILE_SPEND && e->realized > e->exposure)
		mismatch(v,
		         "event %" PRIu64 " realizes %" PRIu64 " units of %" PRIu64
		         " exposed (more than exposed)",
		         n, e->realized, e->exposure);
	if ((e->authority_id.ptr != NULL) != (e->lease_id.ptr != NULL) ||
	    (e->authority_id.ptr != NULL) != e->has_lease_epoch)
		mismatch(v,
		         "event %" PRIu64 " has a partial authority (authority_id, lease_id and"
		         " lease_epoch go together)",
		         n);
	if (e->count_after_raw < 0 || e->count_after_raw > UINT32_MAX)
		mismatch(v, "event %" PRIu64 ": invocation_count_after %" PRId64 " is out of range",
		         n, e->count_after_raw);
	check_expiry_shape(v, e, *applied);
	return usable;
}

/* The denial the limits give for a decision against `g` (NULL: no record). */
static bs_denial recompute_denial(const logged *e, const grant_entry *g, bool *overflows)
{
	uint32_t count = g ? g->count : 0;
	uint64_t exposed = g ? g->exposed : 0, realized = g ? g->realized : 0, total;

	*overflows = false;
	if (e->has_max_invocations && count >= e->max_invocations)
		return BS_DENIAL_MAX_INVOCATIONS;
	if (e->kind == BS_KIND_INCREMENT_INVOCATION)
		return BS_DENIAL_NONE;
	if (e->has_max_cost_per_invocation && e->exposure > e->max_cost_per_invocation)
		return BS_DENIAL_MAX_COST_PER_INVOCATION;
	if (e->has_max_total) {
		if (__builtin_add_overflow(exposed, realized, &total) ||
		    __builtin_add_overflow(total, e->exposure, &total)) {
			*overflows = true;
			return BS_DENIAL_NONE;
		}
		if (total > e->max_total)
			return BS_DENIAL_MAX_TOTAL_COST;
	}
	return BS_DENIAL_NONE;
}

static void check_decision(verifier *v, const logged *e, const grant_entry *g, bool applied)
{
	bool overflows;
	bs_denial want = recompute_denial(e, g, &overflows);

	if (overflows)
		mismatch(v,
		         "event %" PRIu64 " was recorded, but its max_total_cost_units check"
		         " overflows u64 (the store refuses such a request)",
		         e->seq);
	else if (applied && want != BS_DENIAL_NONE)
		mismatch(v, "event %" PRIu64 " (%s) was allowed, but the limits deny it (%s)",
		         e->seq, kind_name(e->kind), bs_denial_name(want));
	else if (!applied && want != (bs_denial)e->denial)
		mismatch(v, "event %" PRIu64 " (%s) was denied for %s, but the limits give %s",
		         e->seq, kind_name(e->kind), denial_name(e->denial), bs_denial_name(want));
}

/* What an applied event takes off its grant or adds to it: the recorded
 * amounts, except for an expiry, whose amounts follow from its hold (the
 * store computes them; so does the fold). */
typedef struct amounts {
	uint64_t exposure;
	uint64_t realized;
	bool uncount; /* an expiry by reverse gives back the hold's invocation */
} amounts;

static const char *hold_verb(int64_t kind)
{
	if (kind == BS_KIND_EXPIRE_EXPOSURE)
		return "expires";
	return kind == BS_KIND_EXTEND_HOLD ? "extends" : "settles";
}

static move move_of(const logged *e, const hold_entry *h)
{
	switch (e->kind) {
	case BS_KIND_REVERSE_EXPOSURE:
		return MOVE_REVERSE;
	case BS_KIND_RECONCILE_SPEND:
		return MOVE_RECONCILE;
	case BS_KIND_EXPIRE_EXPOSURE:
		return MOVE_EXPIRE;
	case BS_KIND_EXTEND_HOLD:
		return MOVE_EXTEND;
	default:
		return e->exposure >= h->remaining ? MOVE_RELEASE_ALL : MOVE_RELEASE_PART;
	}
}

/* The amount check of a settlement (RULES.md, per kind). */
static bool check_settled_amount(verifier *v, const logged *e, const hold_entry *h, move how)
{
	const int hl = (int)e->hold_id.len;
	const char *hp = e->hold_id.ptr;

	if (e->kind == BS_KIND_RELEASE_EXPOSURE && e->exposure > h->remaining) {
		mismatch(v,
		         "event %" PRIu64 " releases %" PRIu64 " units from hold `%.*s`, which has"
		         " %" PRIu64 " remaining",
		         e->seq, e->exposure, hl, hp, h->remaining);
		return false;
	}
	if (e->kind != BS_KIND_RELEASE_EXPOSURE &&
	    (e->exposure != h->remaining || (how == MOVE_REVERSE && !h->debited))) {
		mismatch(v,
		         "event %" PRIu64 " (%s) settles %" PRIu64 " units of hold `%.*s`, which"
		         " has %" PRIu64 " remaining",
		         e->seq, kind_name(e->kind), e->exposure, hl, hp, h->remaining);
		return false;
	}
	return true;
}

/* The authority rule: the event's authority is the one the hold was
 * opened with. */
static bool check_authority(verifier *v, const logged *e, const hold_entry *h)
{
	bool has = e->authority_id.ptr != NULL;

	if (has == h->has_authority &&
	    (!has || (bs_str_eq(e->authority_id, h->authority_id) &&
	              bs_str_eq(e->lease_id, h->lease_id) && e->lease_epoch == h->lease_epoch)))
		return true;
	mismatch(v,
	         "event %" PRIu64 " (%s) %s hold `%.*s` under another authority than the one it"
	         " was opened with",
	         e->seq, kind_name(e->kind), hold_verb(e->kind), (int)e->hold_id.len,
	         e->hold_id.ptr);
	return false;
}

/* An expiry comes at or after the hold's deadline and applies its policy.
 * budgetd decides both itself: a mismatch is reported and the hold still
 * expires. */
static void check_expiry(verifier *v, const logged *e, const hold_entry *h)
{
	const uint64_t n = e->seq;
	const int hl = (int)e->hold_id.len;
	const char *hp = e->hold_id.ptr, *k = kind_name(e->kind);

	if (!h->expires_at)
		mismatch(v, "event %" PRIu64 " (%s) expires hold `%.*s`, which has no deadline", n,
		         k, hl, hp);
	else if (e->recorded_at < h->expires_at)
		mismatch(v,
		         "event %" PRIu64 " (%s) expires hold `%.*s` at %" PRId64
		         ", before its deadline %" PRId64,
		         n, k, hl, hp, e->recorded_at, h->expires_at);
	if (e->has_on_expiry && h->on_expiry != BS_EXPIRY_NONE && e->on_expiry != h->on_expiry)
		mismatch(v,
		         "event %" PRIu64 " (%s) applies on_expiry %s to hold `%.*s`, whose"
		         " on_expiry is %s",
		         n, k, expiry_name(e->on_expiry), hl, hp, expiry_name(h->on_expiry));
}

/* The hold checks of an event that moves a hold (RULES.md, in order).
 * Returns the state the hold moves to, or 0 after reporting why the store
 * would refuse the event. */
static bs_disposition check_hold_move(verifier *v, const logged *e, const hold_entry *h)
{
	const uint64_t n = e->seq;
	const int hl = (int)e->hold_id.len;
	const char *hp = e->hold_id.ptr, *k = kind_name(e->kind), *verb = hold_verb(e->kind);
	move how;
	bs_disposition next;

	if (!h) {
		mismatch(v, "event %" PRIu64 " (%s) %s hold `%.*s`, which no event opened", n, k,
		         verb, hl, hp);
		return 0;
	}
	if (!bs_str_eq(h->cap, e->cap) || h->grant != e->grant) {
		mismatch(v,
		         "event %" PRIu64 " (%s) %s hold `%.*s` of `%.*s`/%" PRIu32
		         " for `%.*s`/%" PRIu32,
		         n, k, verb, hl, hp, (int)h->cap.len, h->cap.ptr, h->grant, (int)e->cap.len,
		         e->cap.ptr, e->grant);
		return 0;
	}
	how = move_of(e, h);
	next = lifecycle_next(h->disposition, how);
	if (!next) {
		mismatch(v,
		         "event %" PRIu64 " (%s) moves hold `%.*s` out of %s; only an open hold"
		         " moves",
		         n, k, hl, hp, disposition_name(h->disposition));
		return 0;
	}
	if (settles(e->kind) && !check_settled_amount(v, e, h, how))
		return 0;
	if (e->kind == BS_KIND_EXPIRE_EXPOSURE) {
		check_expiry(v, e, h); /* budgetd takes no authority to expire */
		return next;
	}
	return check_authority(v, e, h) ? next : 0;
}

/* The amounts of an expiry of `h` (open, of this grant; `g` its usage
 * record before): it takes min(remaining, exposed), realized by capture;
 * reverse also gives back the invocation the hold counted. The policy is
 * the hold's (the event's when the hold has none: already reported). */
static void expire_amounts(verifier *v, const logged *e, const hold_entry *h, const grant_entry *g,
                           amounts *a)
{
	const uint64_t exposed = g ? g->exposed : 0;
	const int64_t policy = h->on_expiry != BS_EXPIRY_NONE ? h->on_expiry : e->on_expiry;
	detail d = {{0}, 0, 0};

	a->exposure = h->remaining < exposed ? h->remaining : exposed;
	a->realized = policy == BS_EXPIRY_CAPTURE ? a->exposure : 0;
	a->uncount = policy == BS_EXPIRY_REVERSE && h->debited;
	detail_u64(&d, "exposure_units", e->exposure, a->exposure);
	detail_u64(&d, "realized_units", e->realized, a->realized);
	if (d.count)
		mismatch(v, "event %" PRIu64 " (%s of hold `%.*s`, on_expiry %s) records %s",
		         e->seq, kind_name(e->kind), (int)e->hold_id.len, e->hold_id.ptr,
		         expiry_name(policy), d.text);
}

/* recorded_at + ttl_seconds: the deadline an authorize or an extend sets. */
static int64_t deadline_of(verifier *v, const logged *e)
{
	int64_t ns, at;

	if (__builtin_mul_overflow(e->ttl, NS_PER_SECOND, &ns) ||
	    __builtin_add_overflow(e->recorded_at, ns, &at)) {
		mismatch(v, "event %" PRIu64 ": recorded_at + ttl_seconds overflows i64", e->seq);
		return INT64_MAX;
	}
	return at;
}

/* The deadline an applied authorize opens its hold with (0: none). */
static int64_t authorize_deadline(verifier *v, const logged *e)
{
	int64_t at;

	if (!e->has_ttl)
		return 0;
	at = deadline_of(v, e);
	if (e->has_expires_at && e->expires_at != at)
		mismatch(v,
		         "event %" PRIu64 " (%s of hold `%.*s`) records expires_at %" PRId64
		         " (the log: %" PRId64 ")",
		         e->seq, kind_name(e->kind), (int)e->hold_id.len, e->hold_id.ptr,
		         e->expires_at, at);
	return at;
}

/* An extend never moves the deadline earlier; the hold keeps its policy
 * (CAPTURE when it had none). */
static void extend_hold(verifier *v, const logged *e, hold_entry *h)
{
	int64_t at = deadline_of(v, e);
	const int64_t policy = h->on_expiry != BS_EXPIRY_NONE ? h->on_expiry : BS_EXPIRY_CAPTURE;
	detail d = {{0}, 0, 0};

	if (h->expires_at > at)
		at = h->expires_at;
	if (e->has_expires_at)
		detail_i64(&d, "expires_at", e->expires_at, at);
	if (e->has_on_expiry && e->on_expiry != policy)
		detail_add(&d, "on_expiry %s (the log: %s)", expiry_name(e->on_expiry),
		           expiry_name(policy));
	if (d.count)
		mismatch(v, "event %" PRIu64 " (%s of hold `%.*s`) records %s", e->seq,
		         kind_name(e->kind), (int)e->hold_id.len, e->hold_id.ptr, d.text);
	h->expires_at = at;
	h->on_expiry = policy;
}

/* Moves `h` to `next` (checked by check_hold_move). */
static void move_hold(verifier *v, const logged *e, hold_entry *h, bs_disposition next,
                      const amounts *a)
{
	if (e->kind == BS_KIND_EXTEND_HOLD)
		extend_hold(v, e, h);
	else if (e->kind == BS_KIND_RELEASE_EXPOSURE)
		h->remaining -= a->exposure;
	else
		h->remaining = 0;
	h->disposition = next;
	h->updated_at = e->recorded_at;
	if (next != BS_HOLD_OPEN) {
		h->expires_at = 0; /* a final hold has no deadline; it keeps its policy */
		v->report->open_holds--;
	}
}

/* The usage after an applied event, from the usage before (`g`, NULL: no
 * record). Reports what the store would have refused. */
static void fold_usage(verifier *v, const logged *e, const amounts *a, const grant_entry *g,
                       uint32_t *count, uint64_t *exposed, uint64_t *realized)
{
	const uint64_t n = e->seq;
	const char *k = kind_name(e->kind);

	*count = g ? g->count : 0;
	*exposed = g ? g->exposed : 0;
	*realized = g ? g->realized : 0;
	if (decides(e->kind)) {
		if (*count == UINT32_MAX)
			mismatch(v, "event %" PRIu64 " (%s) takes invocation_count beyond u32", n,
			         k);
		else
			(*count)++;
		if (__builtin_add_overflow(*exposed, a->exposure, exposed))
			mismatch(v, "event %" PRIu64 " (%s) takes the exposed cost beyond u64", n,
			         k);
		return;
	}
	if (!g)
		mismatch(v,
		         "event %" PRIu64 " (%s) %s `%.*s`/%" PRIu32 ", which has no usage record",
		         n, k, e->kind == BS_KIND_EXTEND_HOLD ? "extends a hold of" : "settles",
		         (int)e->cap.len, e->cap.ptr, e->grant);
	if (e->kind == BS_KIND_EXTEND_HOLD)
		return; /* the amounts stay; only the record's seq moves */
	if (e->kind == BS_KIND_REVERSE_EXPOSURE || e->kind == BS_KIND_RECONCILE_SPEND) {
		if (*count == 0)
			mismatch(v, "event %" PRIu64 " (%s) finds no invocation to settle", n, k);
		else if (e->kind == BS_KIND_REVERSE_EXPOSURE)
			(*count)--;
	} else if (a->uncount && *count > 0) {
		(*count)--;
	}
	if (*exposed < a->exposure)
		mismatch(v,
		         "event %" PRIu64 " (%s) removes %" PRIu64 " units of %" PRIu64 " exposed",
		         n, k, a->exposure, *exposed);
	else
		*exposed -= a->exposure;
	if ((e->kind == BS_KIND_RECONCILE_SPEND || e->kind == BS_KIND_EXPIRE_EXPOSURE) &&
	    __builtin_add_overflow(*realized, a->realized, realized))
		mismatch(v, "event %" PRIu64 " takes the realized spend beyond u64", n);
}

static void check_after_values(verifier *v, const logged *e, uint32_t count, uint64_t exposed,
                               uint64_t realized, bool applied)
{
	detail d = {{0}, 0, 0};

	detail_i64(&d, "invocation_count_after", e->count_after_raw, count);
	detail_u64(&d, "exposed_after", e->exposed_after, exposed);
	detail_u64(&d, "realized_after", e->realized_after, realized);
	if (d.count)
		mismatch(v, "event %" PRIu64 " (%s%s of `%.*s`/%" PRIu32 ") records %s", e->seq,
		         applied ? "" : "denied ", kind_name(e->kind), (int)e->cap.len, e->cap.ptr,
		         e->grant, d.text);
}

static void fold_event(verifier *v, const logged *e, bool applied)
{
	grant_entry *g = grant_get(v, e->cap, e->grant);
	hold_entry *h = NULL;
	bs_disposition next = 0;
	amounts a = {e->exposure, e->realized,
	             e->kind == BS_KIND_EXPIRE_EXPOSURE && e->on_expiry == BS_EXPIRY_REVERSE};
	uint32_t count;
	uint64_t exposed, realized;

	if (decides(e->kind))
		check_decision(v, e, g, applied);
	if (!applied) {
		check_after_values(v, e, g ? g->count : 0, g ? g->exposed : 0, g ? g->realized : 0,
		                   false);
		return;
	}
	if (e->hold_id.ptr && !decides(e->kind)) {
		h = hold_get(v, e->hold_id);
		next = check_hold_move(v, e, h);
		if (next && e->kind == BS_KIND_EXPIRE_EXPOSURE)
			expire_amounts(v, e, h, g, &a);
	}
	fold_usage(v, e, &a, g, &count, &exposed, &realized);
	check_after_values(v, e, count, exposed, realized, true);
	if (e->hold_id.ptr && e->kind == BS_KIND_AUTHORIZE_EXPOSURE) {
		const hold_entry *opened = hold_get(v, e->hold_id);
		if (opened)
			mismatch(v,
			         "event %" PRIu64 " opens hold `%.*s`, which event %" PRIu64
			         " already opened",
			         e->seq, (int)e->hold_id.len, e->hold_id.ptr, opened->opened_by);
		else if (!hold_open(v, e, authorize_deadline(v, e)))
			return;
	} else if (next) {
		move_hold(v, e, h, next, &a);
	}
	if (!g && !(g = grant_new(v, e->cap, e->grant)))
		return;
	g->count = count;
	g->exposed = exposed;
	g->realized = realized;
	g->seq = e->seq;
	g->updated_at = e->recorded_at;
}

/* ---- the derived tables against the fold at materialized_seq ---- */

static int prepare(verifier *v, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v2(v->db, sql, -1, st, NULL) != SQLITE_OK)
		return fail(v, BS_ESTORAGE, "not a usable budgetd database: %s",
		            sqlite3_errmsg(v->db));
	return BS_OK;
}

static const column_rule usage_columns[] = {
        {"capability_id", SQLITE_TEXT, false},
        {"grant_index", SQLITE_INTEGER, false},
        {"invocation_count", SQLITE_INTEGER, false},
        {"total_cost_exposed", SQLITE_INTEGER, false},
        {"total_cost_realized_spend", SQLITE_INTEGER, false},
        {"seq", SQLITE_INTEGER, false},
        {"updated_at", SQLITE_INTEGER, false},
};

static void compare_usage_row(verifier *v, sqlite3_stmt *st)
{
	char row[BS_ID_LEN_MAX + 64];
	bs_str cap = col_str(st, 0);
	int64_t grant = col_i64(st, 1);
	grant_entry *g = NULL;
	detail d = {{0}, 0, 0};

	(void)snprintf(row, sizeof(row), "usage row (`%.*s`, %" PRId64 ")",
	               (int)(cap.len > BS_ID_LEN_MAX ? BS_ID_LEN_MAX : cap.len),
	               cap.ptr ? cap.ptr : "", grant);
	check_types(v, st, usage_columns, 7, row);
	if (cap.ptr && cap.len <= BS_ID_LEN_MAX && grant >= 0 && grant <= UINT32_MAX)
		g = grant_get(v, cap, (uint32_t)grant);
	if (!g) {
		mismatch(v, "%s: no applied event up to materialized_seq %" PRIu64 " charges it",
		         row, v->materialized_seq);
		return;
	}
	g->seen = true;
	detail_i64(&d, "invocation_count", col_i64(st, 2), g->count);
	detail_u64(&d, "total_cost_exposed", col_u64(st, 3), g->exposed);
	detail_u64(&d, "total_cost_realized_spend", col_u64(st, 4), g->realized);
	detail_u64(&d, "seq", col_u64(st, 5), g->seq);
	detail_i64(&d, "updated_at", col_i64(st, 6), g->updated_at);
	if (d.count)
		mismatch(v, "%s differs from the log through event %" PRIu64 ": %s", row,
		         v->materialized_seq, d.text);
}

static int compare_usage(verifier *v)
{
	sqlite3_stmt *st;
	int step;

	if (prepare(v,
	            "SELECT capability_id, grant_index, invocation_count, total_cost_exposed,"
	            " total_cost_realized_spend, seq, updated_at FROM usage",
	            &st))
		return v->fatal;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		v->report->derived_usage_rows++;
		compare_usage_row(v, st);
	}
	sqlite3_finalize(st);
	if (step != SQLITE_DONE)
		return sql_failure(v, "reading usage");
	for (size_t i = 0; i < v->grants.cap; i++) {
		const grant_entry *g = (const grant_entry *)v->grants.slots[i];

		if (!g || g->seen)
			continue;
		uint32_t grant;
		memcpy(&grant, g->key + g->cap_len, sizeof(grant));
		mismatch(v,
		         "usage row (`%.*s`, %" PRIu32 ") is missing; the log charges it through"
		         " event %" PRIu64,
		         (int)g->cap_len, g->key, grant, g->seq);
	}
	return BS_OK;
}

static const column_rule hold_columns[] = {
        {"hold_id", SQLITE_TEXT, false},
        {"capability_id", SQLITE_TEXT, false},
        {"grant_index", SQLITE_INTEGER, false},
        {"authorized_units", SQLITE_INTEGER, false},
        {"remaining_units", SQLITE_INTEGER, false},
        {"debited_invocation", SQLITE_INTEGER, false},
        {"disposition", SQLITE_INTEGER, false},
        {"authority_id", SQLITE_TEXT, true},
        {"lease_id", SQLITE_TEXT, true},
        {"lease_epoch", SQLITE_INTEGER, true},
        {"created_at", SQLITE_INTEGER, false},
        {"updated_at", SQLITE_INTEGER, false},
        {"expires_at", SQLITE_INTEGER, true},
        {"on_expiry", SQLITE_INTEGER, true},
};
#define HOLD_COLUMN_COUNT ((int)(sizeof(hold_columns) / sizeof(hold_columns[0])))

#define VALUE_LEN_MAX 24

static void format_value(char *buf, int64_t x, const char *(*name)(int64_t))
{
	if (name)
		(void)snprintf(buf, VALUE_LEN_MAX, "%s", name(x));
	else
		(void)snprintf(buf, VALUE_LEN_MAX, "%" PRId64, x);
}

/* A column where NULL stands for 0 (no deadline, no policy): a stored 0 is
 * a mismatch too. `name` prints a value (NULL: as a number). */
static void detail_nullable(detail *d, const char *field, sqlite3_stmt *st, int i, int64_t want,
                            const char *(*name)(int64_t))
{
	const bool null = col_null(st, i);
	const int64_t found = col_i64(st, i);
	char f[VALUE_LEN_MAX] = "unset", w[VALUE_LEN_MAX] = "unset";

	if (null ? want == 0 : found == want && want != 0)
		return;
	if (!null)
		format_value(f, found, name);
	if (want)
		format_value(w, want, name);
	detail_add(d, "%s %s (the log: %s)", field, f, w);
}

static void compare_hold_row(verifier *v, sqlite3_stmt *st)
{
	char row[BS_ID_LEN_MAX + 32];
	bs_str id = col_str(st, 0);
	hold_entry *h = NULL;
	detail d = {{0}, 0, 0};

	(void)snprintf(row, sizeof(row), "hold `%.*s`",
	               (int)(id.len > BS_ID_LEN_MAX ? BS_ID_LEN_MAX : id.len),
	               id.ptr ? id.ptr : "");
	check_types(v, st, hold_columns, HOLD_COLUMN_COUNT, row);
	if (id.ptr && id.len <= BS_ID_LEN_MAX)
		h = hold_get(v, id);
	if (!h) {
		mismatch(v, "%s: no applied event up to materialized_seq %" PRIu64 " opens it", row,
		         v->materialized_seq);
		return;
	}
	h->seen = true;
	int64_t disposition = col_i64(st, 6);
	detail_str(&d, "capability_id", col_str(st, 1), h->cap);
	detail_i64(&d, "grant_index", col_i64(st, 2), h->grant);
	detail_u64(&d, "authorized_units", col_u64(st, 3), h->authorized);
	detail_u64(&d, "remaining_units", col_u64(st, 4), h->remaining);
	detail_i64(&d, "debited_invocation", col_i64(st, 5), h->debited);
	if (disposition != (int64_t)h->disposition)
		detail_add(&d, "disposition %s (the log: %s)", disposition_name(disposition),
		           disposition_name(h->disposition));
	detail_str(&d, "authority_id", col_str(st, 7),
	           h->has_authority ? h->authority_id : (bs_str){0});
	detail_str(&d, "lease_id", col_str(st, 8), h->has_authority ? h->lease_id : (bs_str){0});
	if (col_null(st, 9) != !h->has_authority)
		detail_add(&d, "lease_epoch %s (the log: %s)", col_null(st, 9) ? "unset" : "set",
		           h->has_authority ? "set" : "unset");
	else if (h->has_authority)
		detail_u64(&d, "lease_epoch", col_u64(st, 9), h->lease_epoch);
	detail_i64(&d, "created_at", col_i64(st, 10), h->created_at);
	detail_i64(&d, "updated_at", col_i64(st, 11), h->updated_at);
	detail_nullable(&d, "expires_at", st, 12, h->expires_at, NULL);
	detail_nullable(&d, "on_expiry", st, 13, h->on_expiry, expiry_name);
	if (d.count)
		mismatch(v, "%s differs from the log through event %" PRIu64 ": %s", row,
		         v->materialized_seq, d.text);
}

#define HOLD_SELECT                                                                                \
	"SELECT hold_id, capability_id, grant_index, authorized_units, remaining_units,"           \
	" debited_invocation, disposition, authority_id, lease_id, lease_epoch, created_at,"       \
	" updated_at"

static int compare_holds(verifier *v)
{
	sqlite3_stmt *st;
	int step;

	if (prepare(v,
	            v->schema >= VERIFY_SCHEMA_EXPIRY ? HOLD_SELECT
	                    ", expires_at, on_expiry FROM holds"
	                                              : HOLD_SELECT ", NULL, NULL FROM holds",
	            &st))
		return v->fatal;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		v->report->derived_holds++;
		compare_hold_row(v, st);
	}
	sqlite3_finalize(st);
	if (step != SQLITE_DONE)
		return sql_failure(v, "reading holds");
	for (size_t i = 0; i < v->holds.cap; i++) {
		const hold_entry *h = (const hold_entry *)v->holds.slots[i];

		if (h && !h->seen)
			mismatch(v, "hold `%.*s` is missing; event %" PRIu64 " opened it",
			         (int)h->node.key_len, h->node.key, h->opened_by);
	}
	return BS_OK;
}

/* Runs once, when the fold has exactly the events up to M. */
static int compare_derived(verifier *v)
{
	int rc;

	v->compared = true;
	if ((rc = compare_usage(v)) == BS_OK)
		rc = compare_holds(v);
	return rc;
}

/* ---- checks in SQL: the log's indexes and event id uniqueness ---- */

/* Runs `sql` (?1 bound to M) and reports every row with `report`. */
static int each_row(verifier *v, const char *sql, void (*report)(verifier *, sqlite3_stmt *),
                    const char *what)
{
	sqlite3_stmt *st;
	int step;

	if (prepare(v, sql, &st))
		return v->fatal;
	if (sqlite3_bind_parameter_count(st) > 0 &&
	    sqlite3_bind_int64(st, 1, (sqlite3_int64)v->materialized_seq) != SQLITE_OK) {
		sqlite3_finalize(st);
		return sql_failure(v, what);
	}
	while ((step = sqlite3_step(st)) == SQLITE_ROW)
		report(v, st);
	sqlite3_finalize(st);
	return step == SQLITE_DONE ? BS_OK : sql_failure(v, what);
}

static void report_duplicate_id(verifier *v, sqlite3_stmt *st)
{
	bs_str id = col_str(st, 0);

	mismatch(v,
	         "event_id `%.*s` is recorded %" PRId64 " times (events %" PRId64 " to %" PRId64
	         "); event ids are unique",
	         (int)(id.len > BS_ID_LEN_MAX ? BS_ID_LEN_MAX : id.len), id.ptr ? id.ptr : "",
	         col_i64(st, 1), col_i64(st, 2), col_i64(st, 3));
}

static void report_bad_index_entry(verifier *v, sqlite3_stmt *st)
{
	bs_str id = col_str(st, 0), logged_id = col_str(st, 3);
	int64_t seq = col_i64(st, 1);
	int idl = (int)(id.len > BS_ID_LEN_MAX ? BS_ID_LEN_MAX : id.len);
	const char *idp = id.ptr ? id.ptr : "";

	if (sqlite3_column_int(st, 2))
		mismatch(v, "event_index maps `%.*s` to event %" PRId64 ", which is not in the log",
		         idl, idp, seq);
	else if (!logged_id.ptr)
		mismatch(v,
		         "event_index maps `%.*s` to event %" PRId64
		         ", whose event_id is generated",
		         idl, idp, seq);
	else if (!bs_str_eq(id, logged_id))
		mismatch(v,
		         "event_index maps `%.*s` to event %" PRId64 ", whose event_id is `%.*s`",
		         idl, idp, seq,
		         (int)(logged_id.len > BS_ID_LEN_MAX ? BS_ID_LEN_MAX : logged_id.len),
		         logged_id.ptr);
	else
		mismatch(v,
		         "event_index maps `%.*s` to event %" PRId64
		         ", beyond materialized_seq %" PRIu64,
		         idl, idp, seq, v->materialized_seq);
}

static void report_unindexed_id(verifier *v, sqlite3_stmt *st)
{
	bs_str id = col_str(st, 1);

	mismatch(v, "event_index lacks event %" PRId64 " (event_id `%.*s`)", col_i64(st, 0),
	         (int)(id.len > BS_ID_LEN_MAX ? BS_ID_LEN_MAX : id.len), id.ptr ? id.ptr : "");
}

static void report_bad_capability_entry(verifier *v, sqlite3_stmt *st)
{
	bs_str cap = col_str(st, 0);

	mismatch(v,
	         "events_by_capability lists (`%.*s`, event %" PRId64 ", grant %" PRId64
	         "), which does not match the log up to materialized_seq %" PRIu64,
	         (int)(cap.len > BS_ID_LEN_MAX ? BS_ID_LEN_MAX : cap.len), cap.ptr ? cap.ptr : "",
	         col_i64(st, 1), col_i64(st, 2), v->materialized_seq);
}

static void report_uncapability_event(verifier *v, sqlite3_stmt *st)
{
	mismatch(v, "events_by_capability lacks event %" PRId64, col_i64(st, 0));
}

static int check_indexes(verifier *v)
{
	int rc;

	if ((rc = each_row(v,
	                   "SELECT event_id, count(*), min(event_seq), max(event_seq) FROM events"
	                   " WHERE event_id IS NOT NULL"
	                   " GROUP BY event_id HAVING count(*) > 1",
	                   report_duplicate_id, "checking event id uniqueness")) ||
	    (rc = each_row(v,
	                   "SELECT i.event_id, i.event_seq, e.event_seq IS NULL, e.event_id"
	                   " FROM event_index i LEFT JOIN events e ON e.event_seq = i.event_seq"
	                   " WHERE e.event_seq IS NULL OR e.event_id IS NOT i.event_id"
	                   " OR i.event_seq > ?1",
	                   report_bad_index_entry, "reading event_index")) ||
	    (rc = each_row(v,
	                   "SELECT e.event_seq, e.event_id FROM events e"
	                   " WHERE e.event_seq <= ?1 AND e.event_id IS NOT NULL AND NOT EXISTS"
	                   " (SELECT 1 FROM event_index i WHERE i.event_id = e.event_id"
	                   " AND i.event_seq = e.event_seq)",
	                   report_unindexed_id, "reading event_index")) ||
	    (rc = each_row(v,
	                   "SELECT c.capability_id, c.event_seq, c.grant_index"
	                   " FROM events_by_capability c"
	                   " LEFT JOIN events e ON e.event_seq = c.event_seq"
	                   " WHERE e.event_seq IS NULL OR e.capability_id IS NOT c.capability_id"
	                   " OR e.grant_index IS NOT c.grant_index OR c.event_seq > ?1",
	                   report_bad_capability_entry, "reading events_by_capability")))
		return rc;
	return each_row(v,
	                "SELECT e.event_seq FROM events e WHERE e.event_seq <= ?1 AND NOT EXISTS"
	                " (SELECT 1 FROM events_by_capability c"
	                " WHERE c.capability_id = e.capability_id AND c.event_seq = e.event_seq"
	                " AND c.grant_index = e.grant_index)",
	                report_uncapability_event, "reading events_by_capability");
}

/* ---- the stream ---- */

static void check_sequence(verifier *v, uint64_t seq)
{
	const uint64_t want = v->prev_seq + 1;

	if ((int64_t)seq <= 0)
		mismatch(v, "event_seq %" PRId64 " is not positive", (int64_t)seq);
	else if (seq == want + 1)
		mismatch(v, "the mutation log has a gap: event %" PRIu64 " is missing", want);
	else if (seq > want)
		mismatch(v,
		         "the mutation log has a gap: events %" PRIu64 " to %" PRIu64
		         " are missing",
		         want, seq - 1);
	v->prev_seq = seq;
}

#define EVENT_SELECT                                                                               \
	"SELECT event_seq, event_id, hold_id, capability_id, grant_index, kind, allowed, denial,"  \
	" recorded_at, usage_seq, exposure_units, realized_units, max_invocations,"                \
	" max_cost_per_invocation, max_total_cost_units, invocation_count_after, exposed_after,"   \
	" realized_after, authority_id, lease_id, lease_epoch, caller"

static int stream_events(verifier *v)
{
	sqlite3_stmt *st;
	char row[48];
	logged e;
	bool applied;
	int step = SQLITE_DONE;

	if (prepare(v,
	            v->schema >= VERIFY_SCHEMA_EXPIRY
	                    ? EVENT_SELECT ", ttl_seconds, expires_at, on_expiry"
	                                   " FROM events ORDER BY event_seq"
	                    : EVENT_SELECT ", NULL, NULL, NULL FROM events ORDER BY event_seq",
	            &st))
		return v->fatal;
	while (!v->fatal && (step = sqlite3_step(st)) == SQLITE_ROW) {
		decode_event(st, &e);
		if (!v->compared && e.seq > v->materialized_seq && compare_derived(v))
			break;
		v->report->events++;
		check_sequence(v, e.seq);
		(void)snprintf(row, sizeof(row), "event %" PRIu64, e.seq);
		check_types(v, st, event_columns, EVENT_COLUMN_COUNT, row);
		if (check_shape(v, &e, &applied))
			fold_event(v, &e, applied);
	}
	sqlite3_finalize(st);
	if (v->fatal)
		return v->fatal;
	if (step != SQLITE_DONE)
		return sql_failure(v, "reading the mutation log");
	return BS_OK;
}

/* ---- open, read, summarize ---- */

static int query_u64(verifier *v, const char *sql, uint64_t *out, bool *found)
{
	sqlite3_stmt *st;
	int step;

	*out = 0;
	*found = false;
	if (prepare(v, sql, &st))
		return v->fatal;
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		*out = col_u64(st, 0);
		*found = true;
	}
	sqlite3_finalize(st);
	return step == SQLITE_ROW || step == SQLITE_DONE ? BS_OK : sql_failure(v, sql);
}

static int open_database(verifier *v, const char *path)
{
	bool found;
	int rc = sqlite3_open_v2(path, &v->db,
	                         SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
	                         NULL);

	if (rc != SQLITE_OK)
		return fail(v, BS_ESTORAGE, "cannot open %s read-only: %s", path,
		            v->db ? sqlite3_errmsg(v->db) : sqlite3_errstr(rc));
	if (sqlite3_busy_timeout(v->db, VERIFY_BUSY_TIMEOUT_MS) != SQLITE_OK)
		return sql_failure(v, "setting the busy timeout");
	if (query_u64(v, "PRAGMA user_version", &v->schema, &found))
		return fail(v, BS_ESTORAGE, "%s is not a readable SQLite database: %s", path,
		            sqlite3_errmsg(v->db));
	if (v->schema < VERIFY_SCHEMA_MIN || v->schema > BS_SCHEMA_VERSION)
		return fail(v, BS_ESTORAGE,
		            "%s is not a budgetd database of schema version %d to %d (it has"
		            " version %" PRIu64 ")",
		            path, VERIFY_SCHEMA_MIN, BS_SCHEMA_VERSION, v->schema);
	return BS_OK;
}

static void summarize(bs_verify_report *r)
{
	int n = snprintf(r->summary, sizeof(r->summary),
	                 "%s: events %" PRIu64 " (last event_seq %" PRIu64
	                 "), usage records %" PRIu64 ", holds %" PRIu64 " (open %" PRIu64
	                 "); derived tables materialized"
	                 " through event %" PRIu64 " (usage rows %" PRIu64 ", holds %" PRIu64
	                 "); mismatches %" PRIu64,
	                 r->ok ? "consistent" : "INCONSISTENT", r->events, r->last_event_seq,
	                 r->usage_records, r->holds, r->open_holds, r->materialized_seq,
	                 r->derived_usage_rows, r->derived_holds, r->mismatch_count);

	if (n < 0)
		r->summary[0] = '\0';
}

static int verify(verifier *v, const char *path)
{
	uint64_t count;
	bool found;
	int rc;

	if ((rc = open_database(v, path)))
		return rc;
	/* One read transaction for everything below: one snapshot. */
	if (sqlite3_exec(v->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return sql_failure(v, "BEGIN");
	if ((rc = query_u64(v, "SELECT count(*) FROM events", &count, &found)) ||
	    (rc = query_u64(v, "SELECT coalesce(max(event_seq), 0) FROM events",
	                    &v->report->last_event_seq, &found)) ||
	    (rc = query_u64(v, "SELECT value FROM store_meta WHERE key = 'materialized_seq'",
	                    &v->materialized_seq, &found)))
		return rc;
	if (!found)
		mismatch(v, "store_meta has no materialized_seq");
	v->report->materialized_seq = v->materialized_seq;
	if (v->materialized_seq > v->report->last_event_seq)
		mismatch(v,
		         "materialized_seq %" PRIu64 " is beyond the end of the log (event %" PRIu64
		         ")",
		         v->materialized_seq, v->report->last_event_seq);
	if ((rc = stream_events(v)))
		return rc;
	if (!v->compared && (rc = compare_derived(v)))
		return rc;
	if ((rc = check_indexes(v)))
		return rc;
	if (count != v->report->events)
		return fail(v, BS_EINTERNAL,
		            "the log changed while it was read (%" PRIu64 " rows, %" PRIu64
		            " streamed)",
		            count, v->report->events);
	(void)sqlite3_exec(v->db, "COMMIT", NULL, NULL, NULL);
	return BS_OK;
}

int bs_verify_file(const char *path, bs_verify_report *out, bs_error *err)
{
	verifier v;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!path || !*path)
		return bs_errorf(err, BS_EINVAL, "a database path is required");
	if (strlen(path) > BS_ADMIN_PATH_LEN_MAX)
		return bs_errorf(err, BS_EINVAL, "the database path is longer than %d bytes",
		                 BS_ADMIN_PATH_LEN_MAX);
	memset(&v, 0, sizeof(v));
	v.report = out;
	v.err = err;
	if (bs_map_init(&v.grants) != 0 || bs_map_init(&v.holds) != 0)
		return bs_errorf(err, BS_EINTERNAL, "cannot seed the hash maps (getrandom failed)");
	rc = verify(&v, path);
	if (v.db && sqlite3_close(v.db) != SQLITE_OK)
		(void)sqlite3_close_v2(v.db);
	bs_map_destroy(&v.grants, drop_node);
	bs_map_destroy(&v.holds, drop_node);
	if (rc != BS_OK) {
		memset(out, 0, sizeof(*out));
		return rc;
	}
	out->ok = out->mismatch_count == 0;
	summarize(out);
	return BS_OK;
}
