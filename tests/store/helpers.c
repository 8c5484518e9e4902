/* helpers.c - shared helpers for the store's criterion tests. */
#define _GNU_SOURCE
#include "helpers.h"

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TH_CLOCK_START 1700000000000000000LL

int64_t th_now = TH_CLOCK_START;
bs_store *store;
char *tmpdir;

int64_t th_clock(void *ctx)
{
	return *(const int64_t *)ctx;
}

bs_options th_options(void)
{
	bs_options o;

	memset(&o, 0, sizeof(o));
	o.sync = BS_SYNC_FULL;
	o.clock = th_clock;
	o.clock_ctx = &th_now;
	return o;
}

bs_store *th_open_memory(void)
{
	return th_open_path(":memory:");
}

bs_store *th_open_path(const char *path)
{
	bs_options o = th_options();
	bs_store *s = NULL;
	bs_error err;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = bs_store_open(path, &o, &s, &err);
	cr_assert_eq(rc, BS_OK, "bs_store_open(%s) failed: %d %s", path, rc, err.message);
	cr_assert_not_null(s);
	return s;
}

char *th_mkdtemp(void)
{
	char *dir = strdup("/tmp/bs-store-test-XXXXXX");

	cr_assert_not_null(dir);
	cr_assert_not_null(mkdtemp(dir), "mkdtemp failed");
	return dir;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void th_rmtree(const char *path)
{
	if (path == NULL)
		return;
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void th_path(char *buf, size_t size, const char *dir, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", dir, name);

	cr_assert(n > 0 && (size_t)n < size, "path too long");
}

void th_setup_memory(void)
{
	th_now = TH_CLOCK_START;
	store = th_open_memory();
}

void th_teardown_memory(void)
{
	bs_store_close(store);
	store = NULL;
}

void th_setup_tmpdir(void)
{
	th_now = TH_CLOCK_START;
	tmpdir = th_mkdtemp();
}

void th_teardown_tmpdir(void)
{
	th_rmtree(tmpdir);
	free(tmpdir);
	tmpdir = NULL;
}

/* --- mutation builders --------------------------------------------------- */

static bs_mutation base(bs_kind kind, const char *cap, uint64_t grant, const char *hold)
{
	bs_mutation m;

	memset(&m, 0, sizeof(m));
	m.kind = kind;
	m.capability_id = bs_str_from(cap);
	m.grant_index = grant;
	m.hold_id = bs_str_from(hold);
	return m;
}

bs_mutation th_authorize(const char *cap, uint64_t grant, uint64_t units, const char *hold)
{
	bs_mutation m = base(BS_KIND_AUTHORIZE_EXPOSURE, cap, grant, hold);

	m.exposure_units = units;
	return m;
}

bs_mutation th_release(const char *cap, uint64_t grant, uint64_t units, const char *hold)
{
	bs_mutation m = base(BS_KIND_RELEASE_EXPOSURE, cap, grant, hold);

	m.exposure_units = units;
	return m;
}

bs_mutation th_reverse(const char *cap, uint64_t grant, uint64_t units, const char *hold)
{
	bs_mutation m = base(BS_KIND_REVERSE_EXPOSURE, cap, grant, hold);

	m.exposure_units = units;
	return m;
}

bs_mutation th_reconcile(const char *cap, uint64_t grant, uint64_t exposed, uint64_t realized,
                         const char *hold)
{
	bs_mutation m = base(BS_KIND_RECONCILE_SPEND, cap, grant, hold);

	m.exposure_units = exposed;
	m.realized_units = realized;
	return m;
}

bs_mutation th_increment(const char *cap, uint64_t grant)
{
	return base(BS_KIND_INCREMENT_INVOCATION, cap, grant, NULL);
}

void th_set_event(bs_mutation *m, const char *event_id)
{
	m->event_id = bs_str_from(event_id);
}

void th_set_authority(bs_mutation *m, const char *authority_id, const char *lease_id,
                      uint64_t epoch)
{
	m->has_authority = true;
	m->authority.authority_id = bs_str_from(authority_id);
	m->authority.lease_id = bs_str_from(lease_id);
	m->authority.lease_epoch = epoch;
}

void th_set_max_invocations(bs_mutation *m, uint64_t v)
{
	m->has_max_invocations = true;
	m->max_invocations = v;
}

void th_set_max_cost(bs_mutation *m, uint64_t v)
{
	m->has_max_cost_per_invocation = true;
	m->max_cost_per_invocation = v;
}

void th_set_max_total(bs_mutation *m, uint64_t v)
{
	m->has_max_total_cost_units = true;
	m->max_total_cost_units = v;
}

/* --- copies -------------------------------------------------------------- */

void th_copy_str(char *dst, bs_str s)
{
	size_t n = s.len;

	if (s.ptr == NULL) {
		dst[0] = '\0';
		return;
	}
	cr_assert(n <= BS_ID_LEN_MAX, "a string handed out by the store is %zu bytes", n);
	memcpy(dst, s.ptr, n);
	dst[n] = '\0';
}

static const bs_str no_str = {NULL, 0};

void th_copy_usage(th_usage *dst, const bs_usage *u)
{
	th_copy_str(dst->cap, u->capability_id);
	dst->u = *u;
	dst->u.capability_id = no_str;
}

void th_copy_hold(th_hold *dst, const bs_hold *h)
{
	th_copy_str(dst->id, h->hold_id);
	th_copy_str(dst->cap, h->capability_id);
	th_copy_str(dst->authority_id, h->has_authority ? h->authority.authority_id : no_str);
	th_copy_str(dst->lease_id, h->has_authority ? h->authority.lease_id : no_str);
	dst->h = *h;
	dst->h.hold_id = no_str;
	dst->h.capability_id = no_str;
	dst->h.authority.authority_id = no_str;
	dst->h.authority.lease_id = no_str;
}

void th_copy_event(th_event *dst, const bs_event *e)
{
	th_copy_str(dst->event_id, e->event_id);
	dst->has_hold = e->hold_id.ptr != NULL;
	th_copy_str(dst->hold_id, e->hold_id);
	th_copy_str(dst->cap, e->capability_id);
	th_copy_str(dst->authority_id, e->has_authority ? e->authority.authority_id : no_str);
	th_copy_str(dst->lease_id, e->has_authority ? e->authority.lease_id : no_str);
	th_copy_str(dst->caller, e->caller);
	dst->e = *e;
	dst->e.event_id = no_str;
	dst->e.hold_id = no_str;
	dst->e.capability_id = no_str;
	dst->e.authority.authority_id = no_str;
	dst->e.authority.lease_id = no_str;
	dst->e.caller = no_str;
}

/* --- queries ------------------------------------------------------------- */

struct usage_sink {
	th_usage *rows;
	size_t max;
	size_t n;
};

static int usage_visit(void *ctx, const bs_usage *u)
{
	struct usage_sink *sink = ctx;

	if (sink->n < sink->max)
		th_copy_usage(&sink->rows[sink->n], u);
	sink->n++;
	return 0;
}

bool th_get_usage(bs_store *s, const char *cap, uint32_t grant, th_usage *out)
{
	struct usage_sink sink = {out, 1, 0};
	bs_error err;
	bool found = false;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = bs_store_get_usage(s, bs_str_from(cap), grant, usage_visit, &sink, &found, &err);
	cr_assert_eq(rc, BS_OK, "get_usage(%s, %u) failed: %d %s", cap, grant, rc, err.message);
	cr_assert_eq(sink.n, found ? 1u : 0u, "get_usage visited %zu rows, found=%d", sink.n,
	             found);
	return found;
}

struct hold_sink {
	th_hold *hold;
	size_t n;
};

static int hold_visit(void *ctx, const bs_hold *h)
{
	struct hold_sink *sink = ctx;

	if (sink->n == 0)
		th_copy_hold(sink->hold, h);
	sink->n++;
	return 0;
}

bool th_get_hold(bs_store *s, const char *hold, th_hold *out)
{
	struct hold_sink sink = {out, 0};
	bs_error err;
	bool found = false;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = bs_store_get_hold(s, bs_str_from(hold), hold_visit, &sink, &found, &err);
	cr_assert_eq(rc, BS_OK, "get_hold(%s) failed: %d %s", hold, rc, err.message);
	cr_assert_eq(sink.n, found ? 1u : 0u, "get_hold visited %zu holds, found=%d", sink.n,
	             found);
	return found;
}

uint64_t th_commit_index(bs_store *s)
{
	bs_error err;
	uint64_t v = 0;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = bs_store_commit_index(s, &v, &err);
	cr_assert_eq(rc, BS_OK, "commit_index failed: %d %s", rc, err.message);
	return v;
}

struct event_sink {
	th_event *events;
	size_t max;
	size_t n;
	bool grow;
};

static int event_visit(void *ctx, const bs_event *e)
{
	struct event_sink *sink = ctx;

	if (sink->grow && sink->n == sink->max) {
		sink->max = sink->max ? sink->max * 2 : 64;
		sink->events = realloc(sink->events, sink->max * sizeof(*sink->events));
		cr_assert_not_null(sink->events);
	}
	if (sink->n < sink->max)
		th_copy_event(&sink->events[sink->n], e);
	sink->n++;
	return 0;
}

size_t th_list_events(bs_store *s, uint32_t limit, const char *cap, bool has_grant, uint64_t grant,
                      uint64_t after_seq, th_event *out, size_t max)
{
	struct event_sink sink = {out, max, 0, false};
	bs_error err;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = bs_store_list_events(s, limit, bs_str_from(cap), has_grant, grant, after_seq,
	                          event_visit, &sink, &err);
	cr_assert_eq(rc, BS_OK, "list_events failed: %d %s", rc, err.message);
	return sink.n;
}

size_t th_events(bs_store *s, th_event **out)
{
	struct event_sink sink = {NULL, 0, 0, true};
	uint64_t after = 0;
	bs_error err;
	int rc;

	for (;;) {
		size_t before = sink.n;

		memset(&err, 0, sizeof(err));
		rc = bs_store_list_events(s, BS_LIST_LIMIT_MAX, no_str, false, 0, after,
		                          event_visit, &sink, &err);
		cr_assert_eq(rc, BS_OK, "list_events failed: %d %s", rc, err.message);
		if (sink.n == before)
			break;
		after = sink.events[sink.n - 1].e.event_seq;
		if (sink.n - before < BS_LIST_LIMIT_MAX)
			break;
	}
	for (size_t i = 1; i < sink.n; i++)
		cr_assert(sink.events[i - 1].e.event_seq < sink.events[i].e.event_seq,
		          "events out of order at %zu", i);
	*out = sink.events;
	return sink.n;
}

size_t th_list_usages(bs_store *s, uint32_t limit, const char *cap, th_usage *out, size_t max)
{
	struct usage_sink sink = {out, max, 0};
	bs_error err;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = bs_store_list_usages(s, limit, bs_str_from(cap), usage_visit, &sink, &err);
	cr_assert_eq(rc, BS_OK, "list_usages failed: %d %s", rc, err.message);
	return sink.n;
}

/* --- snapshots ----------------------------------------------------------- */

static bool id_shape_ok(const char *id)
{
	size_t n;

	if (id == NULL)
		return false;
	n = strlen(id);
	if (n == 0 || n > BS_ID_LEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)id[i];

		if (c < 0x20 || c >= 0x7f)
			return false; /* only plain ASCII ids are looked up */
	}
	return true;
}

void th_snapshot_take(bs_store *s, const char *hold, th_snapshot *snap)
{
	memset(snap, 0, sizeof(*snap));
	snap->commit_index = th_commit_index(s);
	snap->n_events = th_events(s, &snap->events);
	snap->usages = calloc(BS_LIST_LIMIT_MAX, sizeof(*snap->usages));
	cr_assert_not_null(snap->usages);
	snap->n_usages =
	        th_list_usages(s, BS_LIST_LIMIT_MAX, NULL, snap->usages, BS_LIST_LIMIT_MAX);
	cr_assert(snap->n_usages < BS_LIST_LIMIT_MAX, "too many usage rows for a snapshot");
	if (id_shape_ok(hold))
		snap->hold_found = th_get_hold(s, hold, &snap->hold);
}

static void expect_same_usage(const char *file, int line, const th_usage *a, const th_usage *b)
{
	cr_assert_str_eq(a->cap, b->cap, "%s:%d: usage capability %s != %s", file, line, a->cap,
	                 b->cap);
	cr_assert(a->u.grant_index == b->u.grant_index &&
	                  a->u.invocation_count == b->u.invocation_count &&
	                  a->u.total_cost_exposed == b->u.total_cost_exposed &&
	                  a->u.total_cost_realized_spend == b->u.total_cost_realized_spend &&
	                  a->u.committed_cost == b->u.committed_cost && a->u.seq == b->u.seq &&
	                  a->u.updated_at_ns == b->u.updated_at_ns,
	          "%s:%d: usage row %s/%u changed: count %u->%u exposed %" PRIu64 "->%" PRIu64
	          " realized %" PRIu64 "->%" PRIu64 " seq %" PRIu64 "->%" PRIu64,
	          file, line, a->cap, a->u.grant_index, a->u.invocation_count,
	          b->u.invocation_count, a->u.total_cost_exposed, b->u.total_cost_exposed,
	          a->u.total_cost_realized_spend, b->u.total_cost_realized_spend, a->u.seq,
	          b->u.seq);
}

void th_snapshot_expect_same(const char *file, int line, const th_snapshot *a, const th_snapshot *b)
{
	cr_assert_eq(a->commit_index, b->commit_index,
	             "%s:%d: commit index moved from %" PRIu64 " to %" PRIu64, file, line,
	             a->commit_index, b->commit_index);
	cr_assert_eq(a->n_events, b->n_events, "%s:%d: event count moved from %zu to %zu", file,
	             line, a->n_events, b->n_events);
	for (size_t i = 0; i < a->n_events; i++) {
		cr_assert_eq(a->events[i].e.event_seq, b->events[i].e.event_seq,
		             "%s:%d: event %zu changed", file, line, i);
		cr_assert_str_eq(a->events[i].event_id, b->events[i].event_id,
		                 "%s:%d: event %zu changed", file, line, i);
	}
	cr_assert_eq(a->n_usages, b->n_usages, "%s:%d: usage row count moved from %zu to %zu", file,
	             line, a->n_usages, b->n_usages);
	for (size_t i = 0; i < a->n_usages; i++)
		expect_same_usage(file, line, &a->usages[i], &b->usages[i]);
	cr_assert_eq(a->hold_found, b->hold_found, "%s:%d: hold appeared or vanished", file, line);
	if (a->hold_found) {
		const bs_hold *x = &a->hold.h, *y = &b->hold.h;

		cr_assert(x->disposition == y->disposition &&
		                  x->remaining_units == y->remaining_units &&
		                  x->authorized_units == y->authorized_units &&
		                  x->updated_at_ns == y->updated_at_ns,
		          "%s:%d: hold %s changed", file, line, a->hold.id);
	}
}

void th_snapshot_free(th_snapshot *snap)
{
	free(snap->events);
	free(snap->usages);
	snap->events = NULL;
	snap->usages = NULL;
}

/* --- applying ------------------------------------------------------------ */

bs_outcome th_apply_ok(const char *file, int line, bs_store *s, const bs_mutation *m)
{
	bs_outcome out;
	bs_error err;
	int rc;

	memset(&out, 0, sizeof(out));
	memset(&err, 0, sizeof(err));
	rc = bs_store_apply(s, m, &out, &err);
	cr_assert_eq(rc, BS_OK, "%s:%d: apply failed: %d (%s) %s", file, line, rc, bs_err_name(rc),
	             err.message);
	return out;
}

void th_apply_err(const char *file, int line, bs_store *s, const bs_mutation *m, int code,
                  const char *message)
{
	th_snapshot before, after;
	char hold[BS_ID_LEN_MAX + 1] = "";
	bs_outcome out;
	bs_error err;
	int rc;

	if (m->hold_id.ptr && m->hold_id.len <= BS_ID_LEN_MAX) {
		memcpy(hold, m->hold_id.ptr, m->hold_id.len);
		hold[m->hold_id.len] = '\0';
	}
	th_snapshot_take(s, hold, &before);
	memset(&out, 0, sizeof(out));
	memset(&err, 0, sizeof(err));
	rc = bs_store_apply(s, m, &out, &err);
	cr_assert_eq(rc, code, "%s:%d: expected %d (%s) \"%s\", got %d (%s) \"%s\"", file, line,
	             code, bs_err_name(code), message, rc, bs_err_name(rc), err.message);
	cr_assert_eq(err.code, code, "%s:%d: err.code %d != returned %d", file, line, err.code, rc);
	if (message)
		cr_assert_str_eq(err.message, message, "%s:%d: expected message \"%s\", got \"%s\"",
		                 file, line, message, err.message);
	th_snapshot_take(s, hold, &after);
	th_snapshot_expect_same(file, line, &before, &after);
	th_snapshot_free(&before);
	th_snapshot_free(&after);
}

void th_expect_usage(const char *file, int line, bs_store *s, const char *cap, uint32_t grant,
                     uint32_t count, uint64_t exposed, uint64_t realized)
{
	th_usage u;

	cr_assert(th_get_usage(s, cap, grant, &u), "%s:%d: no usage row %s/%u", file, line, cap,
	          grant);
	cr_assert_str_eq(u.cap, cap, "%s:%d", file, line);
	cr_assert_eq(u.u.grant_index, grant, "%s:%d", file, line);
	cr_assert_eq(u.u.invocation_count, count, "%s:%d: invocation_count %u, expected %u", file,
	             line, u.u.invocation_count, count);
	cr_assert_eq(u.u.total_cost_exposed, exposed,
	             "%s:%d: exposed %" PRIu64 ", expected %" PRIu64, file, line,
	             u.u.total_cost_exposed, exposed);
	cr_assert_eq(u.u.total_cost_realized_spend, realized,
	             "%s:%d: realized %" PRIu64 ", expected %" PRIu64, file, line,
	             u.u.total_cost_realized_spend, realized);
	cr_assert_eq(u.u.committed_cost, exposed + realized,
	             "%s:%d: committed %" PRIu64 ", expected %" PRIu64, file, line,
	             u.u.committed_cost, exposed + realized);
}

void th_expect_no_usage(const char *file, int line, bs_store *s, const char *cap, uint32_t grant)
{
	th_usage u;

	cr_assert_not(th_get_usage(s, cap, grant, &u), "%s:%d: unexpected usage row %s/%u", file,
	              line, cap, grant);
}

void th_expect_hold(const char *file, int line, bs_store *s, const char *hold,
                    bs_disposition disposition, uint64_t authorized, uint64_t remaining)
{
	th_hold h;

	cr_assert(th_get_hold(s, hold, &h), "%s:%d: hold %s not found", file, line, hold);
	cr_assert_str_eq(h.id, hold, "%s:%d", file, line);
	cr_assert_eq(h.h.disposition, disposition, "%s:%d: hold %s is %d, expected %d", file, line,
	             hold, h.h.disposition, disposition);
	cr_assert_eq(h.h.authorized_units, authorized,
	             "%s:%d: authorized %" PRIu64 ", expected %" PRIu64, file, line,
	             h.h.authorized_units, authorized);
	cr_assert_eq(h.h.remaining_units, remaining,
	             "%s:%d: remaining %" PRIu64 ", expected %" PRIu64, file, line,
	             h.h.remaining_units, remaining);
}

void th_expect_same_outcome(const char *file, int line, const bs_outcome *a, const bs_outcome *b)
{
	cr_assert_eq(a->kind, b->kind, "%s:%d: kind", file, line);
	cr_assert_eq(a->allowed, b->allowed, "%s:%d: allowed", file, line);
	cr_assert_eq(a->denial, b->denial, "%s:%d: denial", file, line);
	cr_assert_eq(a->has_commit_index, b->has_commit_index, "%s:%d: has_commit_index", file,
	             line);
	if (a->has_commit_index)
		cr_assert_eq(a->commit_index, b->commit_index,
		             "%s:%d: commit_index %" PRIu64 " != %" PRIu64, file, line,
		             a->commit_index, b->commit_index);
	cr_assert_eq(a->event_seq, b->event_seq, "%s:%d: event_seq %" PRIu64 " != %" PRIu64, file,
	             line, a->event_seq, b->event_seq);
	cr_assert_eq(a->invocation_count_after, b->invocation_count_after,
	             "%s:%d: invocation_count_after", file, line);
	cr_assert_eq(a->exposed_after, b->exposed_after, "%s:%d: exposed_after", file, line);
	cr_assert_eq(a->realized_after, b->realized_after, "%s:%d: realized_after", file, line);
	cr_assert_eq(a->committed_after, b->committed_after, "%s:%d: committed_after", file, line);
	cr_assert_eq(a->guarantee, b->guarantee, "%s:%d: guarantee", file, line);
	cr_assert_str_eq(a->event_id, b->event_id, "%s:%d: event_id", file, line);
	cr_assert_str_eq(a->budget_term, b->budget_term, "%s:%d: budget_term", file, line);
}
