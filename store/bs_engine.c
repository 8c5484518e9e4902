/* bs_engine.c - the SQLite backend: decisions over an in-memory overlay.
 *
 * A batch appends one log row per recorded mutation and commits: that is
 * the whole durable write of the hot path. Decisions read usage rows and
 * holds from the overlay (loaded from the derived tables on a miss), and
 * every recorded event is then applied to the overlay by the same function
 * that replays the log after a restart. Every BS_MATERIALIZE_EVENTS events,
 * and before a list, the dirty overlay is written to the derived tables in
 * sorted bulk together with store_meta.materialized_seq.
 *
 * If a batch cannot commit, SQLite rolls it back and the overlay is rebuilt
 * from the database, so nothing of the batch survives anywhere.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bs_deadlines.h"
#include "bs_map.h"
#include "bs_sql.h"

#define USAGE_CACHE_MAX 262144 /* clean usage rows kept in memory */
#define HOLD_CACHE_MAX  262144 /* clean holds kept in memory */
#define USAGE_KEY_MAX   (BS_ID_LEN_MAX + 4)

typedef struct usage_entry {
	bs_map_node node; /* key: capability bytes, then the grant (4 bytes) */
	bool dirty;       /* changed since the last materialization */
	bs_usage u;       /* u.capability_id points into key */
	char key[];
} usage_entry;

typedef struct hold_entry {
	bs_map_node node; /* key: hold_id */
	bool dirty;
	bs_hold h; /* strings point into buf */
	char buf[];
} hold_entry;

typedef struct recent_entry {
	bs_map_node node; /* key: a client event_id logged after materialized_seq */
	uint64_t seq;
	char id[];
} recent_entry;

typedef struct engine {
	bs_db *db;
	bs_map usage;
	bs_map holds;
	bs_map recent;
	bs_deadlines deadlines;    /* of every open hold that has one */
	uint64_t last_seq;         /* the last sequence value taken */
	uint64_t materialized_seq; /* the derived tables are current up to here */
	bs_clock_fn clock;
	void *clock_ctx;
	uint64_t open_holds; /* holds whose disposition is open */
	bool broken;         /* the overlay could not be rebuilt: refuse everything */
	bs_error broken_err;
} engine;

static int64_t real_clock(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool is_generated_id(bs_str id)
{
	static const char prefix[] = BS_GENERATED_EVENT_ID_PREFIX;

	return id.len >= sizeof(prefix) - 1 && memcmp(id.ptr, prefix, sizeof(prefix) - 1) == 0;
}

static void drop_node(bs_map_node *node)
{
	/* Every entry type embeds its node first and is one allocation. */
	free(node);
}

static int out_of_memory(bs_error *err)
{
	return bs_errorf(err, BS_EINTERNAL, "out of memory");
}

/* ---- the usage overlay ---- */

static size_t usage_key(char *buf, bs_str cap, uint32_t grant)
{
	memcpy(buf, cap.ptr, cap.len);
	memcpy(buf + cap.len, &grant, sizeof(grant));
	return cap.len + sizeof(grant);
}

static usage_entry *usage_new(engine *e, bs_str cap, uint32_t grant, const bs_usage *from)
{
	char key[USAGE_KEY_MAX];
	size_t len = usage_key(key, cap, grant);
	usage_entry *u = calloc(1, sizeof(*u) + len);

	if (!u)
		return NULL;
	memcpy(u->key, key, len);
	u->node = (bs_map_node){bs_map_hash(&e->usage, key, len), u->key, len};
	if (from)
		u->u = *from;
	u->u.capability_id = (bs_str){u->key, cap.len};
	u->u.grant_index = grant;
	if (bs_map_put(&e->usage, &u->node)) {
		free(u);
		return NULL;
	}
	return u;
}

static int copy_usage_row(void *ctx, const bs_usage *row)
{
	*(bs_usage *)ctx = *row;
	return 0;
}

/* The overlay entry of (cap, grant), loading it from the usage table on a
 * miss; *out is NULL when the row exists nowhere. */
static int usage_find(engine *e, bs_str cap, uint32_t grant, usage_entry **out, bs_error *err)
{
	char key[USAGE_KEY_MAX];
	size_t len = usage_key(key, cap, grant);
	bs_usage row = {0};
	bool found;
	int rc;

	*out = (usage_entry *)bs_map_get(&e->usage, key, len, bs_map_hash(&e->usage, key, len));
	if (*out)
		return BS_OK;
	if ((rc = bs_db_get_usage(e->db, cap, grant, copy_usage_row, &row, &found, err)) || !found)
		return rc;
	*out = usage_new(e, cap, grant, &row);
	return *out ? BS_OK : out_of_memory(err);
}

/* ---- the hold overlay ---- */

static void copy_into(char **cursor, bs_str *s)
{
	if (!s->ptr)
		return;
	memcpy(*cursor, s->ptr, s->len);
	s->ptr = *cursor;
	*cursor += s->len;
}

static hold_entry *hold_new(engine *e, const bs_hold *from)
{
	const bs_authority *a = &from->authority;
	size_t len = from->hold_id.len + from->capability_id.len;
	hold_entry *h;
	char *cursor;

	if (from->has_authority)
		len += a->authority_id.len + a->lease_id.len;
	h = calloc(1, sizeof(*h) + len);
	if (!h)
		return NULL;
	h->h = *from;
	cursor = h->buf;
	copy_into(&cursor, &h->h.hold_id);
	copy_into(&cursor, &h->h.capability_id);
	if (from->has_authority) {
		copy_into(&cursor, &h->h.authority.authority_id);
		copy_into(&cursor, &h->h.authority.lease_id);
	} else {
		h->h.authority = (bs_authority){0};
	}
	h->node = (bs_map_node){bs_map_hash(&e->holds, h->h.hold_id.ptr, h->h.hold_id.len),
	                        h->h.hold_id.ptr, h->h.hold_id.len};
	if (bs_map_put(&e->holds, &h->node)) {
		free(h);
		return NULL;
	}
	return h;
}

typedef struct hold_load {
	engine *e;
	hold_entry *entry;
} hold_load;

static int cache_hold_row(void *ctx, const bs_hold *row)
{
	hold_load *l = ctx;

	l->entry = hold_new(l->e, row);
	return 0;
}

/* The overlay entry of a hold, loading it on a miss; *out NULL: no hold. */
static int hold_find(engine *e, bs_str hold_id, hold_entry **out, bs_error *err)
{
	hold_load l = {e, NULL};
	bool found;
	int rc;

	*out = (hold_entry *)bs_map_get(&e->holds, hold_id.ptr, hold_id.len,
	                                bs_map_hash(&e->holds, hold_id.ptr, hold_id.len));
	if (*out)
		return BS_OK;
	if ((rc = bs_db_get_hold(e->db, hold_id, cache_hold_row, &l, &found, err)) || !found)
		return rc;
	*out = l.entry;
	return *out ? BS_OK : out_of_memory(err);
}

/* ---- recently logged event ids (not yet in event_index) ---- */

static int recent_add(engine *e, bs_str id, uint64_t seq, bs_error *err)
{
	recent_entry *r = malloc(sizeof(*r) + id.len);

	if (!r)
		return out_of_memory(err);
	memcpy(r->id, id.ptr, id.len);
	r->seq = seq;
	r->node = (bs_map_node){bs_map_hash(&e->recent, r->id, id.len), r->id, id.len};
	if (bs_map_put(&e->recent, &r->node)) {
		free(r);
		return out_of_memory(err);
	}
	return BS_OK;
}

/* Where the event with this client id sits in the log, if anywhere. */
static int recorded_seq(engine *e, bs_str id, uint64_t *seq, bool *found, bs_error *err)
{
	recent_entry *r = (recent_entry *)bs_map_get(&e->recent, id.ptr, id.len,
	                                             bs_map_hash(&e->recent, id.ptr, id.len));

	if (r) {
		*seq = r->seq;
		*found = true;
		return BS_OK;
	}
	return bs_db_indexed_event_seq(e->db, id, seq, found, err);
}

/* ---- applying a recorded event to the overlay (live and replay) ---- */

/* The hold's deadline after a recorded change of an existing hold: moved
 * by an extension, gone once the hold is final. */
static int deadline_apply(engine *e, bs_hold *h, const bs_event *ev, bs_error *err)
{
	if (ev->kind == BS_KIND_EXTEND_HOLD) {
		h->expires_at_ns = ev->expires_at_ns;
		h->on_expiry = ev->on_expiry;
		if (bs_deadlines_set(&e->deadlines, h->hold_id, h->expires_at_ns))
			return out_of_memory(err);
		return BS_OK;
	}
	if (h->disposition == BS_HOLD_OPEN)
		return BS_OK;
	if (ev->kind == BS_KIND_EXPIRE_EXPOSURE)
		h->on_expiry = ev->on_expiry;
	h->expires_at_ns = 0;
	bs_deadlines_remove(&e->deadlines, h->hold_id);
	return BS_OK;
}

static int hold_apply(engine *e, const bs_event *ev, bs_error *err)
{
	hold_entry *h;
	int rc;

	if (ev->kind == BS_KIND_AUTHORIZE_EXPOSURE) {
		bs_hold fresh = {
		        .hold_id = ev->hold_id,
		        .capability_id = ev->capability_id,
		        .grant_index = ev->grant_index,
		        .authorized_units = ev->exposure_units,
		        .remaining_units = ev->exposure_units,
		        .debited_invocation = true,
		        .disposition = BS_HOLD_OPEN,
		        .has_authority = ev->has_authority,
		        .authority = ev->authority,
		        .created_at_ns = ev->recorded_at_ns,
		        .updated_at_ns = ev->recorded_at_ns,
		        .expires_at_ns = ev->expires_at_ns,
		        .on_expiry = ev->expires_at_ns ? ev->on_expiry : BS_EXPIRY_NONE,
		};
		h = hold_new(e, &fresh);
		if (!h)
			return out_of_memory(err);
		h->dirty = true;
		e->open_holds++;
		if (fresh.expires_at_ns &&
		    bs_deadlines_set(&e->deadlines, fresh.hold_id, fresh.expires_at_ns))
			return out_of_memory(err);
		return BS_OK;
	}
	if ((rc = hold_find(e, ev->hold_id, &h, err)))
		return rc;
	if (!h)
		return bs_errorf(err, BS_EINTERNAL, "event %" PRIu64 " settles unknown hold `%.*s`",
		                 ev->event_seq, (int)ev->hold_id.len, ev->hold_id.ptr);
	rc = bs_rules_hold_after_event(&h->h, ev, &h->h.remaining_units, &h->h.disposition, err);
	h->h.updated_at_ns = ev->recorded_at_ns;
	h->dirty = true;
	if (rc == BS_OK)
		rc = deadline_apply(e, &h->h, ev, err);
	if (rc == BS_OK && h->h.disposition != BS_HOLD_OPEN)
		e->open_holds--;
	return rc;
}

static int overlay_apply(engine *e, const bs_event *ev, bs_error *err)
{
	usage_entry *u;
	int rc;

	if (ev->has_usage_seq) {
		if ((rc = usage_find(e, ev->capability_id, ev->grant_index, &u, err)))
			return rc;
		if (!u && !(u = usage_new(e, ev->capability_id, ev->grant_index, NULL)))
			return out_of_memory(err);
		u->u.invocation_count = ev->invocation_count_after;
		u->u.total_cost_exposed = ev->exposed_after;
		u->u.total_cost_realized_spend = ev->realized_after;
		u->u.committed_cost = ev->exposed_after + ev->realized_after;
		u->u.seq = ev->usage_seq;
		u->u.updated_at_ns = ev->recorded_at_ns;
		u->dirty = true;
		if (ev->hold_id.ptr && (rc = hold_apply(e, ev, err)))
			return rc;
	}
	if (!is_generated_id(ev->event_id))
		return recent_add(e, ev->event_id, ev->event_seq, err);
	return BS_OK;
}

/* ---- materialization ---- */

static int cmp_nodes(const void *a, const void *b)
{
	const bs_map_node *x = *(bs_map_node *const *)a, *y = *(bs_map_node *const *)b;
	int c = memcmp(x->key, y->key, x->key_len < y->key_len ? x->key_len : y->key_len);

	return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* The dirty nodes of a map, sorted by key (so B-tree pages fill in order).
 * *out is malloc'd (NULL when none) and owned by the caller. */
static int dirty_sorted(const bs_map *map, size_t dirty_offset, bs_map_node ***out, size_t *n,
                        bs_error *err)
{
	*out = NULL;
	*n = 0;
	if (map->len == 0)
		return BS_OK;
	bs_map_node **v = malloc(map->len * sizeof(*v));
	if (!v)
		return out_of_memory(err);
	for (size_t i = 0; i < map->cap; i++)
		if (map->slots[i] && *((bool *)map->slots[i] + dirty_offset))
			v[(*n)++] = map->slots[i];
	qsort(v, *n, sizeof(*v), cmp_nodes);
	*out = v;
	return BS_OK;
}

static int write_dirty_usage(engine *e, bs_error *err)
{
	bs_map_node **v;
	size_t n;
	int rc = dirty_sorted(&e->usage, offsetof(usage_entry, dirty), &v, &n, err);

	for (size_t i = 0; rc == BS_OK && i < n; i++)
		rc = bs_db_put_usage(e->db, &((usage_entry *)v[i])->u, err);
	free(v);
	return rc;
}

static int write_dirty_holds(engine *e, bs_error *err)
{
	bs_map_node **v;
	size_t n;
	int rc = dirty_sorted(&e->holds, offsetof(hold_entry, dirty), &v, &n, err);

	for (size_t i = 0; rc == BS_OK && i < n; i++)
		rc = bs_db_put_hold(e->db, &((hold_entry *)v[i])->h, err);
	free(v);
	return rc;
}

/* Writes the derived state inside the caller's transaction. */
static int materialize_writes(engine *e, bs_error *err)
{
	int rc = bs_db_index_events(e->db, e->materialized_seq, err);

	if (rc == BS_OK)
		rc = write_dirty_usage(e, err);
	if (rc == BS_OK)
		rc = write_dirty_holds(e, err);
	if (rc == BS_OK)
		rc = bs_db_set_materialized_seq(e->db, e->last_seq, err);
	return rc;
}

static bool keep_open_hold(bs_map_node *node)
{
	return ((hold_entry *)node)->h.disposition == BS_HOLD_OPEN;
}

static bool keep_none(bs_map_node *node)
{
	(void)node;
	return false;
}

static void clean_usage(engine *e)
{
	for (size_t i = 0; i < e->usage.cap; i++)
		if (e->usage.slots[i])
			((usage_entry *)e->usage.slots[i])->dirty = false;
	if (e->usage.len > USAGE_CACHE_MAX)
		bs_map_retain(&e->usage, keep_none, drop_node);
}

static void clean_holds(engine *e)
{
	for (size_t i = 0; i < e->holds.cap; i++)
		if (e->holds.slots[i])
			((hold_entry *)e->holds.slots[i])->dirty = false;
	/* Settled holds are rarely touched again; reads find them on disk. */
	bs_map_retain(&e->holds, e->holds.len > HOLD_CACHE_MAX ? keep_none : keep_open_hold,
	              drop_node);
}

/* After the materializing transaction committed: everything is on disk. */
static void mark_materialized(engine *e)
{
	clean_usage(e);
	clean_holds(e);
	bs_map_retain(&e->recent, keep_none, drop_node);
	e->materialized_seq = e->last_seq;
}

static int materialize(engine *e, bs_error *err)
{
	int rc;

	if (e->materialized_seq == e->last_seq)
		return BS_OK;
	if ((rc = bs_db_begin(e->db, err)))
		return rc;
	if ((rc = materialize_writes(e, err)) || (rc = bs_db_commit(e->db, err))) {
		/* The overlay is still right (and still dirty): try again later. */
		bs_db_rollback(e->db);
		return rc;
	}
	mark_materialized(e);
	return BS_OK;
}

/* ---- rebuilding the overlay from the database ---- */

typedef struct replay_ctx {
	engine *e;
	int rc;
	bs_error *err;
} replay_ctx;

static int replay_event(void *ctx, const bs_event *ev)
{
	replay_ctx *r = ctx;

	if (ev->event_seq != r->e->last_seq + 1) {
		r->rc = bs_errorf(r->err, BS_EINTERNAL,
		                  "the mutation log has a gap: event %" PRIu64 " follows %" PRIu64,
		                  ev->event_seq, r->e->last_seq);
		return 1;
	}
	r->rc = overlay_apply(r->e, ev, r->err);
	r->e->last_seq = ev->event_seq;
	return r->rc != BS_OK;
}

static void clear_overlay(engine *e)
{
	bs_map_retain(&e->usage, keep_none, drop_node);
	bs_map_retain(&e->holds, keep_none, drop_node);
	bs_map_retain(&e->recent, keep_none, drop_node);
	bs_deadlines_clear(&e->deadlines);
}

static int seed_deadline(void *ctx, bs_str hold_id, int64_t expires_at_ns)
{
	return bs_deadlines_set(ctx, hold_id, expires_at_ns);
}

/* Replays the log after materialized_seq into an empty overlay. */
static int reload(engine *e, bs_error *err)
{
	replay_ctx r = {e, BS_OK, err};
	uint64_t max_seq;
	int rc;

	clear_overlay(e);
	if ((rc = bs_db_get_materialized_seq(e->db, &e->materialized_seq, err)) ||
	    (rc = bs_db_max_seq(e->db, &max_seq, err)) ||
	    (rc = bs_db_count_open_holds(e->db, &e->open_holds, err)) ||
	    (rc = bs_db_scan_deadlines(e->db, seed_deadline, &e->deadlines, err)))
		return rc;
	if (e->materialized_seq > max_seq)
		return bs_errorf(err, BS_EINTERNAL,
		                 "derived tables claim event %" PRIu64
		                 " but the log ends at %" PRIu64,
		                 e->materialized_seq, max_seq);
	e->last_seq = e->materialized_seq;
	if ((rc = bs_db_scan_events(e->db, e->materialized_seq, replay_event, &r, err)))
		return rc;
	return r.rc;
}

/* ---- the write path ---- */

typedef struct replay_match {
	const bs_mutation *m;
	bs_outcome *out;
	bs_error *err;
	int rc;
} replay_match;

static int match_recorded(void *ctx, const bs_event *ev)
{
	replay_match *r = ctx;

	if (bs_event_matches(ev, r->m)) {
		bs_outcome_from_event(ev, r->out);
		r->out->replayed = true;
		r->rc = BS_OK;
	} else {
		r->rc = bs_errorf(r->err, BS_ECONFLICT,
		                  "event_id `%.*s` was reused for a different mutation",
		                  (int)r->m->event_id.len, r->m->event_id.ptr);
	}
	return 0;
}

/* *handled: the event_id was known and the answer is already in out/err. */
static int check_replay(engine *e, const bs_mutation *m, bs_outcome *out, bool *handled,
                        bs_error *err)
{
	replay_match r = {m, out, err, BS_OK};
	uint64_t seq;
	bool found;
	int rc;

	*handled = false;
	if (!m->event_id.ptr)
		return BS_OK;
	if ((rc = recorded_seq(e, m->event_id, &seq, &found, err)) || !found)
		return rc;
	if ((rc = bs_db_event_by_seq(e->db, seq, match_recorded, &r, &found, err)))
		return rc;
	if (!found)
		return bs_errorf(err, BS_EINTERNAL, "event_id `%.*s` is indexed but not logged",
		                 (int)m->event_id.len, m->event_id.ptr);
	*handled = true;
	return r.rc;
}

/* The log entry a decision records. `idbuf` receives a generated id. */
static void event_for(const bs_mutation *m, const bs_decision *d, uint64_t seq, int64_t now,
                      bs_event *ev, char *idbuf, size_t idsize)
{
	static const char self[] = "budgetd";

	memset(ev, 0, sizeof(*ev));
	ev->event_seq = seq;
	ev->event_id = m->event_id;
	if (!ev->event_id.ptr) {
		bs_generated_event_id(seq, idbuf, idsize);
		ev->event_id = bs_str_from(idbuf);
	}
	ev->hold_id = m->hold_id;
	ev->capability_id = m->capability_id;
	ev->grant_index = (uint32_t)m->grant_index;
	ev->kind = m->kind;
	ev->has_allowed =
	        m->kind == BS_KIND_AUTHORIZE_EXPOSURE || m->kind == BS_KIND_INCREMENT_INVOCATION;
	ev->allowed = d->allowed;
	ev->denial = d->denial;
	ev->recorded_at_ns = now;
	ev->has_usage_seq = d->allowed;
	ev->usage_seq = d->allowed ? seq : 0;
	ev->exposure_units = m->exposure_units;
	ev->realized_units = m->realized_units;
	ev->has_max_invocations = m->has_max_invocations;
	ev->max_invocations = m->max_invocations;
	ev->has_max_cost_per_invocation = m->has_max_cost_per_invocation;
	ev->max_cost_per_invocation = m->max_cost_per_invocation;
	ev->has_max_total_cost_units = m->has_max_total_cost_units;
	ev->max_total_cost_units = m->max_total_cost_units;
	ev->invocation_count_after = d->usage_after.invocation_count;
	ev->exposed_after = d->usage_after.exposed;
	ev->realized_after = d->usage_after.realized;
	ev->has_authority = m->has_authority;
	ev->authority = m->authority;
	ev->caller =
	        m->kind == BS_KIND_EXPIRE_EXPOSURE ? (bs_str){self, sizeof(self) - 1} : m->caller;
	ev->ttl_seconds = m->ttl_seconds;
	ev->expires_at_ns = d->allowed ? d->expires_at_ns : 0;
	ev->on_expiry = d->on_expiry;
}

static int decide(engine *e, const bs_mutation *m, int64_t now, bs_decision *d, bs_error *err)
{
	bs_usage_state state = {0};
	hold_entry *h = NULL;
	usage_entry *u;
	int rc;

	if ((rc = usage_find(e, m->capability_id, (uint32_t)m->grant_index, &u, err)))
		return rc;
	if (u)
		state = (bs_usage_state){true, u->u.invocation_count, u->u.total_cost_exposed,
		                         u->u.total_cost_realized_spend, u->u.seq};
	if (m->hold_id.ptr && (rc = hold_find(e, m->hold_id, &h, err)))
		return rc;
	return bs_rules_decide(m, &state, h != NULL, h ? &h->h : NULL, now, d, err);
}

/* The decision an authorize would get now, with nothing recorded: no
 * event, no sequence value, no change to the overlay. */
static int dry_run(engine *e, const bs_mutation *m, int64_t now, bs_outcome *out, bs_error *err)
{
	char idbuf[64];
	bs_decision d;
	bs_event ev;
	int rc = decide(e, m, now, &d, err);

	if (rc)
		return rc;
	event_for(m, &d, 0, now, &ev, idbuf, sizeof(idbuf));
	ev.has_usage_seq = false;
	ev.event_id = m->event_id.ptr ? m->event_id : (bs_str){"", 0};
	bs_outcome_from_event(&ev, out);
	out->dry_run = true;
	return BS_OK;
}

/* Decides and records one mutation. *fatal: the batch must be rolled back
 * (the log and the overlay may disagree). */
static int apply_one(engine *e, const bs_mutation *m, int64_t now, bs_outcome *out, bool *fatal,
                     bs_error *err)
{
	char idbuf[64];
	bs_decision d;
	bs_event ev;
	bool handled;
	int rc;

	*fatal = false;
	if (m->dry_run)
		return dry_run(e, m, now, out, err);
	if ((rc = check_replay(e, m, out, &handled, err)) || handled)
		return rc;
	if ((rc = decide(e, m, now, &d, err)))
		return rc;
	event_for(m, &d, e->last_seq + 1, now, &ev, idbuf, sizeof(idbuf));
	if ((rc = bs_db_append_event(e->db, &ev, m->event_id.ptr != NULL, err)) == BS_OK) {
		e->last_seq = ev.event_seq;
		rc = overlay_apply(e, &ev, err);
	}
	*fatal = rc != BS_OK;
	if (rc == BS_OK)
		bs_outcome_from_event(&ev, out);
	return rc;
}

static void fail_batch(bs_batch_item *items, size_t n, const char *why)
{
	for (size_t i = 0; i < n; i++)
		items[i].result =
		        bs_errorf(&items[i].error, BS_ESTORAGE,
		                  "storage failure, nothing of this batch was applied: %s", why);
}

/* A store that could not rebuild its overlay refuses everything until a
 * rebuild works (the disk recovered): nothing half-applied is ever used. */
static int refuse_if_broken(engine *e, bs_error *err)
{
	bs_error why;

	if (!e->broken)
		return BS_OK;
	if (reload(e, &why) == BS_OK) {
		e->broken = false;
		return BS_OK;
	}
	return bs_errorf(err, BS_ESTORAGE, "%s", e->broken_err.message);
}

/* After a rolled-back batch the overlay holds changes SQLite undid. */
static void recover_overlay(engine *e)
{
	bs_error err = {0};

	if (reload(e, &err) == BS_OK)
		return;
	e->broken = true;
	(void)bs_errorf(
	        &e->broken_err, BS_ESTORAGE,
	        "the store could not recover from a failed commit and must be restarted: %s",
	        err.message);
}

/* The work of one transaction, at the batch's time `now`. A failure
 * rolls the whole transaction back. */
typedef int (*batch_body)(engine *e, int64_t now, void *ctx, bs_error *err);

static int run_body(engine *e, batch_body body, void *ctx, bool *materialized, bs_error *err)
{
	int rc = body(e, e->clock(e->clock_ctx), ctx, err);

	if (rc)
		return rc;
	/* Piggyback the derived tables on this commit: one fsync for both. */
	*materialized = e->last_seq - e->materialized_seq >= BS_MATERIALIZE_EVENTS;
	if (*materialized && (rc = materialize_writes(e, err)))
		return rc;
	return bs_db_commit(e->db, err);
}

/* Runs `body` in one transaction with one durable commit; when anything
 * fails, nothing of it survives, on disk or in the overlay. */
static int transact(engine *e, batch_body body, void *ctx, bs_error *err)
{
	bool materialized = false;
	int rc;

	if ((rc = refuse_if_broken(e, err)) || (rc = bs_db_begin(e->db, err)))
		return rc;
	if ((rc = run_body(e, body, ctx, &materialized, err)) == BS_OK) {
		if (materialized)
			mark_materialized(e);
		return BS_OK;
	}
	bs_db_rollback(e->db);
	recover_overlay(e);
	return rc;
}

/* ---- expiry ---- */

typedef struct expiry_run {
	uint32_t max;
	uint32_t expired;
} expiry_run;

/* Records the expiry of open hold `id` by its policy. The hold's strings
 * are copied first: applying the event frees the deadline entry `id`
 * points into. */
static int expire_hold(engine *e, bs_str id, int64_t now, bool *recorded, bs_error *err)
{
	char hold_id[BS_ID_LEN_MAX], cap[BS_ID_LEN_MAX];
	bs_usage_state state = {0};
	bs_error why = {0};
	hold_entry *h;
	usage_entry *u;
	bs_mutation m;
	bs_outcome out;
	bool fatal;
	int rc;

	*recorded = false;
	if ((rc = hold_find(e, id, &h, err)))
		return rc;
	if (!h || h->h.disposition != BS_HOLD_OPEN) {
		bs_deadlines_remove(&e->deadlines, id); /* cannot happen; never loop on it */
		return BS_OK;
	}
	bs_hold copy = h->h;
	memcpy(hold_id, copy.hold_id.ptr, copy.hold_id.len);
	memcpy(cap, copy.capability_id.ptr, copy.capability_id.len);
	copy.hold_id.ptr = hold_id;
	copy.capability_id.ptr = cap;
	if ((rc = usage_find(e, copy.capability_id, copy.grant_index, &u, err)))
		return rc;
	if (u)
		state = (bs_usage_state){true, u->u.invocation_count, u->u.total_cost_exposed,
		                         u->u.total_cost_realized_spend, u->u.seq};
	bs_rules_expiry(&copy, &state, &m);
	rc = apply_one(e, &m, now, &out, &fatal, &why);
	if (fatal || rc == BS_ESTORAGE) {
		*err = why; /* the transaction rolls back; the next one retries */
		return rc;
	}
	/* A hold whose expiry cannot be decided (its realized spend would leave
	 * u64) stays open, its exposure still reserved, until the next start,
	 * rather than block every other expiry or the live batch it rides in. */
	if (rc)
		bs_deadlines_remove(&e->deadlines, copy.hold_id);
	*recorded = rc == BS_OK;
	return BS_OK;
}

static int expire_batch(engine *e, int64_t now, void *ctx, bs_error *err)
{
	expiry_run *run = ctx;
	int64_t at;
	bs_str id;

	while (run->expired < run->max && bs_deadlines_first(&e->deadlines, &at, &id) &&
	       at <= now) {
		bool recorded;
		int rc = expire_hold(e, id, now, &recorded, err);
		if (rc)
			return rc;
		run->expired += recorded;
	}
	return BS_OK;
}

typedef struct batch {
	bs_batch_item *items;
	size_t n;
	expiry_run expiry; /* max 0: none */
} batch;

static int apply_items(engine *e, int64_t now, void *ctx, bs_error *err)
{
	batch *b = ctx;
	bool fatal;

	for (size_t i = 0; i < b->n; i++) {
		bs_batch_item *it = &b->items[i];
		if (it->result != BS_OK)
			continue;
		it->result = apply_one(e, it->mutation, now, &it->outcome, &fatal, &it->error);
		if (fatal) {
			*err = it->error;
			return it->result;
		}
	}
	return expire_batch(e, now, &b->expiry, err);
}

static int engine_apply_batch(void *impl, bs_batch_item *items, size_t n, uint32_t expire_max,
                              uint32_t *expired)
{
	batch b = {items, n, {expire_max, 0}};
	bs_error err = {0};

	if (transact(impl, apply_items, &b, &err) == BS_OK) {
		*expired = b.expiry.expired;
		return BS_OK;
	}
	fail_batch(items, n, err.message);
	return BS_ESTORAGE;
}

static int engine_expire_due(void *impl, uint32_t max, uint32_t *expired, bs_error *err)
{
	engine *e = impl;
	expiry_run run = {max, 0};
	int64_t at;
	bs_str id;

	if (e->broken || !bs_deadlines_first(&e->deadlines, &at, &id) ||
	    at > e->clock(e->clock_ctx))
		return e->broken ? refuse_if_broken(e, err) : BS_OK;
	bs_error why = {0};
	if (transact(e, expire_batch, &run, &why))
		return bs_errorf(err, BS_ESTORAGE, "storage failure, no hold was expired: %s",
		                 why.message);
	*expired = run.expired;
	return BS_OK;
}

static int engine_next_deadline(void *impl, int64_t *out_ns, bs_error *err)
{
	engine *e = impl;
	bs_str id;

	(void)err;
	if (!bs_deadlines_first(&e->deadlines, out_ns, &id))
		*out_ns = 0;
	return BS_OK;
}

static int64_t engine_now(const void *impl)
{
	const engine *e = impl;

	return e->clock(e->clock_ctx);
}

/* ---- reads ---- */

static int engine_get_usage(void *impl, bs_str cap, uint32_t grant, bs_usage_cb cb, void *ctx,
                            bool *found, bs_error *err)
{
	engine *e = impl;
	char key[USAGE_KEY_MAX];
	size_t len = usage_key(key, cap, grant);
	int rc = refuse_if_broken(e, err);

	if (rc)
		return rc;
	usage_entry *u =
	        (usage_entry *)bs_map_get(&e->usage, key, len, bs_map_hash(&e->usage, key, len));
	if (!u)
		return bs_db_get_usage(e->db, cap, grant, cb, ctx, found, err);
	*found = true;
	(void)cb(ctx, &u->u);
	return BS_OK;
}

static int engine_get_hold(void *impl, bs_str hold_id, bs_hold_cb cb, void *ctx, bool *found,
                           bs_error *err)
{
	engine *e = impl;
	int rc = refuse_if_broken(e, err);

	if (rc)
		return rc;
	hold_entry *h = (hold_entry *)bs_map_get(&e->holds, hold_id.ptr, hold_id.len,
	                                         bs_map_hash(&e->holds, hold_id.ptr, hold_id.len));
	if (!h)
		return bs_db_get_hold(e->db, hold_id, cb, ctx, found, err);
	*found = true;
	(void)cb(ctx, &h->h);
	return BS_OK;
}

static int engine_list_usages(void *impl, uint32_t limit, bs_str cap, bs_usage_cb cb, void *ctx,
                              bs_error *err)
{
	engine *e = impl;
	int rc = refuse_if_broken(e, err);

	if (rc == BS_OK)
		rc = materialize(e, err);
	return rc ? rc : bs_db_list_usages(e->db, limit, cap, cb, ctx, err);
}

static int engine_list_events(void *impl, uint32_t limit, bs_str cap, bool has_grant,
                              uint32_t grant, uint64_t after_seq, bs_event_cb cb, void *ctx,
                              bs_error *err)
{
	engine *e = impl;
	int rc = refuse_if_broken(e, err);

	/* The log itself is always current; only its capability index lags. */
	if (rc == BS_OK && cap.ptr)
		rc = materialize(e, err);
	return rc ? rc
	          : bs_db_list_events(e->db, limit, cap, has_grant, grant, after_seq, cb, ctx, err);
}

static int engine_list_holds(void *impl, const bs_hold_query *q, bs_hold_cb cb, void *ctx,
                             bs_error *err)
{
	engine *e = impl;
	int rc = refuse_if_broken(e, err);

	if (rc == BS_OK)
		rc = materialize(e, err);
	return rc ? rc : bs_db_list_holds(e->db, q, cb, ctx, err);
}

static int engine_commit_index(void *impl, uint64_t *out, bs_error *err)
{
	engine *e = impl;

	(void)err;
	*out = e->last_seq;
	return BS_OK;
}

static int engine_stats(void *impl, bs_stats *out, bs_error *err)
{
	engine *e = impl;

	out->commit_index = e->last_seq;
	out->open_holds = e->open_holds;
	return bs_db_file_bytes(e->db, &out->db_bytes, err);
}

static int engine_checkpoint(void *impl, bs_error *err)
{
	engine *e = impl;
	int rc = refuse_if_broken(e, err);

	if (rc == BS_OK)
		rc = materialize(e, err);
	return rc ? rc : bs_db_checkpoint(e->db, err);
}

/* ---- open and close ---- */

static void engine_close(void *impl)
{
	engine *e = impl;
	bs_error err = {0};

	if (!e)
		return;
	/* Best effort: a failure here only means a longer replay at next open. */
	if (e->db && !e->broken)
		(void)materialize(e, &err);
	bs_db_close(e->db);
	bs_map_destroy(&e->usage, drop_node);
	bs_map_destroy(&e->holds, drop_node);
	bs_map_destroy(&e->recent, drop_node);
	bs_deadlines_destroy(&e->deadlines);
	free(e);
}

static const bs_backend_ops engine_ops = {
        .apply_batch = engine_apply_batch,
        .get_usage = engine_get_usage,
        .list_usages = engine_list_usages,
        .list_events = engine_list_events,
        .get_hold = engine_get_hold,
        .list_holds = engine_list_holds,
        .expire_due = engine_expire_due,
        .next_deadline = engine_next_deadline,
        .now = engine_now,
        .commit_index = engine_commit_index,
        .checkpoint = engine_checkpoint,
        .stats = engine_stats,
        .close = engine_close,
        .guarantee = BS_GUARANTEE_SINGLE_NODE_ATOMIC,
};

int bs_engine_open(const char *path, const bs_options *opts, const bs_backend_ops **ops,
                   void **impl, bs_error *err)
{
	engine *e = calloc(1, sizeof(*e));
	int rc;

	if (!e)
		return out_of_memory(err);
	e->clock = opts->clock ? opts->clock : real_clock;
	e->clock_ctx = opts->clock_ctx;
	if (bs_map_init(&e->usage) || bs_map_init(&e->holds) || bs_map_init(&e->recent) ||
	    bs_deadlines_init(&e->deadlines)) {
		free(e);
		return bs_errorf(err, BS_EINTERNAL, "cannot seed hash keys: %s", strerror(errno));
	}
	if ((rc = bs_db_open(path, opts, &e->db, err)) || (rc = reload(e, err)) ||
	    (rc = materialize(e, err))) {
		e->broken = true; /* nothing to save on close */
		engine_close(e);
		return rc;
	}
	*ops = &engine_ops;
	*impl = e;
	return BS_OK;
}
