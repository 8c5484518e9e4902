/* test_model.c - randomized model-based test of the store.
 *
 * Thousands of random mutations, with fixed seeds, are applied to a
 * :memory: store (one by one and in batches) and to the reference model of
 * model.c. After every step the answers (result, message, outcome) and the
 * touched usage rows must agree; every few steps all usage rows, holds and
 * events are compared; invariants are checked throughout. A mismatch prints
 * the seed, the step and both sides.
 */
#include "helpers.h"

#include <inttypes.h>
#include <stdarg.h>

#include "model.h"

#define STEPS            5000
#define GENERATION_STEPS 250 /* then the small capabilities are renamed */
#define FULL_CHECK_EVERY 100
#define BATCH_MAX        7
#define SMALL_CAPS       3
#define GRANTS           3
#define ALL_CAPS         4 /* the small ones and "cap-big" */
#define USAGE_ROWS_MAX   1000

static const struct {
	const char *id;
	const char *lease;
	uint64_t epoch;
} auths[] = {
        {"auth-1", "lease-1", 1}, {"auth-1", "lease-1", 2}, {"auth-1", "lease-1", 0},
        {"auth-1", "lease-2", 1}, {"auth-2", "lease-1", 1},
};
#define N_AUTHS (sizeof(auths) / sizeof(auths[0]))

/* --- a self-contained request -------------------------------------------- */

typedef struct req {
	bs_kind kind;
	bool has_cap;
	size_t cap_len;
	char cap[BS_ID_LEN_MAX + 8];
	uint64_t grant;
	bool has_hold;
	char hold[BS_ID_LEN_MAX + 1];
	bool has_event;
	char event[64];
	uint64_t exposure;
	uint64_t realized;
	bool has_max_inv;
	uint64_t max_inv;
	bool has_max_cost;
	uint64_t max_cost;
	bool has_max_total;
	uint64_t max_total;
	bool has_auth;
	bool has_auth_id;
	char auth_id[BS_ID_LEN_MAX + 1];
	bool has_lease;
	char lease[BS_ID_LEN_MAX + 1];
	uint64_t epoch;
} req;

static bs_mutation to_mutation(const req *r)
{
	bs_mutation m;

	memset(&m, 0, sizeof(m));
	m.kind = r->kind;
	if (r->has_cap)
		m.capability_id = (bs_str){r->cap, r->cap_len};
	m.grant_index = r->grant;
	if (r->has_hold)
		m.hold_id = bs_str_from(r->hold);
	if (r->has_event)
		m.event_id = bs_str_from(r->event);
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
		if (r->has_auth_id)
			m.authority.authority_id = bs_str_from(r->auth_id);
		if (r->has_lease)
			m.authority.lease_id = bs_str_from(r->lease);
		m.authority.lease_epoch = r->epoch;
	}
	return m;
}

static void set_cap(req *r, const char *cap)
{
	r->has_cap = true;
	r->cap_len = strlen(cap);
	memcpy(r->cap, cap, r->cap_len + 1);
}

static void set_auth(req *r, const char *id, const char *lease, uint64_t epoch)
{
	r->has_auth = true;
	r->has_auth_id = true;
	r->has_lease = true;
	snprintf(r->auth_id, sizeof(r->auth_id), "%s", id);
	snprintf(r->lease, sizeof(r->lease), "%s", lease);
	r->epoch = epoch;
}

static const char *opt(bool has, uint64_t v, char *buf, size_t n)
{
	if (!has)
		return "-";
	snprintf(buf, n, "%" PRIu64, v);
	return buf;
}

static void describe(const req *r, char *buf, size_t n)
{
	char a[24], b[24], c[24];

	snprintf(buf, n,
	         "%s cap=%.*s%s grant=%" PRIu64 " hold=%s event=%s exposure=%" PRIu64
	         " realized=%" PRIu64 " max_inv=%s max_cost=%s max_total=%s auth=%s%s/%s/%" PRIu64,
	         r->kind == BS_KIND_AUTHORIZE_EXPOSURE     ? "authorize"
	         : r->kind == BS_KIND_RELEASE_EXPOSURE     ? "release"
	         : r->kind == BS_KIND_REVERSE_EXPOSURE     ? "reverse"
	         : r->kind == BS_KIND_RECONCILE_SPEND      ? "reconcile"
	         : r->kind == BS_KIND_INCREMENT_INVOCATION ? "increment"
	                                                   : "?",
	         r->has_cap ? (int)(r->cap_len > 40 ? 40 : r->cap_len) : 6,
	         r->has_cap ? r->cap : "(none)", r->has_cap && r->cap_len > 40 ? "..." : "",
	         r->grant, r->has_hold ? r->hold : "(none)", r->has_event ? r->event : "(none)",
	         r->exposure, r->realized, opt(r->has_max_inv, r->max_inv, a, sizeof(a)),
	         opt(r->has_max_cost, r->max_cost, b, sizeof(b)),
	         opt(r->has_max_total, r->max_total, c, sizeof(c)), r->has_auth ? "" : "(none) ",
	         r->has_auth_id ? r->auth_id : "-", r->has_lease ? r->lease : "-", r->epoch);
}

/* --- randomness ---------------------------------------------------------- */

typedef struct rng {
	uint64_t s;
} rng;

static uint64_t rnd(rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t below(rng *r, uint64_t n)
{
	return n ? rnd(r) % n : 0;
}

static bool chance(rng *r, unsigned percent)
{
	return below(r, 100) < percent;
}

/* 0..v inclusive, for any v */
static uint64_t upto(rng *r, uint64_t v)
{
	return v == UINT64_MAX ? rnd(r) : below(r, v + 1);
}

/* --- the run ------------------------------------------------------------- */

typedef struct run {
	unsigned seed;
	int step;
	int generation;          /* fresh small capabilities, so budgets do not
	                          * stay exhausted for the whole run */
	char caps[ALL_CAPS][32]; /* the current capability names */
	rng r;
	bs_store *store;
	model *m;
	int next_hold;
	int next_event;
	req *history; /* requests sent with a client event_id */
	size_t n_history, cap_history;
	bool total_ok[ALL_CAPS][GRANTS]; /* always authorized with the policy's max_total */
	bool inv_ok[ALL_CAPS][GRANTS];   /* always sent with the policy's max_invocations */
	uint64_t last_commit_index;
	uint64_t last_event_seq;
	size_t events_checked;
	unsigned long applied, denied, failed, replayed;
	unsigned long denials[4]; /* by bs_denial */
	struct {
		char message[160]; /* with the quoted ids blanked out */
		unsigned long n;
	} errors[64];
	size_t n_errors;
} run;

static void new_generation(run *u)
{
	u->generation++;
	for (int c = 0; c < SMALL_CAPS; c++)
		snprintf(u->caps[c], sizeof(u->caps[c]), "cap-%c-%d", 'a' + c, u->generation);
	snprintf(u->caps[SMALL_CAPS], sizeof(u->caps[SMALL_CAPS]), "cap-big");
	for (int c = 0; c < ALL_CAPS; c++)
		for (int g = 0; g < GRANTS; g++)
			u->total_ok[c][g] = u->inv_ok[c][g] = c < SMALL_CAPS;
}

static uint64_t policy_total(int cap, int grant)
{
	return 40 + 20 * (uint64_t)((cap * GRANTS + grant) % 4);
}

static uint64_t policy_inv(int cap, int grant)
{
	return 6 + 3 * (uint64_t)((cap + grant) % 4);
}

static bool policy_has_cost(int cap, int grant)
{
	return (cap * GRANTS + grant) % 2 == 1;
}

/* The index of the request's capability among the current ones, or -1. */
static int cap_index(const run *u, const req *r)
{
	if (!r->has_cap)
		return -1;
	for (int i = 0; i < ALL_CAPS; i++)
		if (r->cap_len == strlen(u->caps[i]) && memcmp(r->cap, u->caps[i], r->cap_len) == 0)
			return i;
	return -1;
}

static void remember(run *u, const req *r)
{
	if (u->n_history == u->cap_history) {
		u->cap_history = u->cap_history ? u->cap_history * 2 : 64;
		u->history = realloc(u->history, u->cap_history * sizeof(*u->history));
		cr_assert_not_null(u->history);
	}
	u->history[u->n_history++] = *r;
}

static void pick_pair(run *u, req *r, int *cap, int *grant)
{
	if (chance(&u->r, 90)) {
		*cap = (int)below(&u->r, SMALL_CAPS);
		*grant = (int)below(&u->r, GRANTS);
	} else {
		*cap = SMALL_CAPS;
		*grant = (int)below(&u->r, 2);
	}
	set_cap(r, u->caps[*cap]);
	r->grant = (uint64_t)*grant;
}

static void random_auth(run *u, req *r)
{
	size_t i = chance(&u->r, 60) ? 0 : below(&u->r, N_AUTHS);

	set_auth(r, auths[i].id, auths[i].lease, auths[i].epoch);
}

/* A random hold of the model: open ones when `open`, else any. */
static bool pick_hold(run *u, bool open, bs_hold *out)
{
	size_t n = model_hold_count(u->m), n_open = 0, k;
	bs_hold h;

	if (n == 0)
		return false;
	if (!open) {
		model_hold_at(u->m, below(&u->r, n), out);
		return true;
	}
	for (size_t i = 0; i < n; i++) {
		model_hold_at(u->m, i, &h);
		n_open += h.disposition == BS_HOLD_OPEN;
	}
	if (n_open == 0)
		return false;
	k = below(&u->r, n_open);
	for (size_t i = 0; i < n; i++) {
		model_hold_at(u->m, i, &h);
		if (h.disposition != BS_HOLD_OPEN)
			continue;
		if (k-- == 0) {
			*out = h;
			return true;
		}
	}
	return false;
}

static void copy_id(char *dst, size_t size, bs_str s)
{
	size_t n = s.len < size - 1 ? s.len : size - 1;

	memcpy(dst, s.ptr, n);
	dst[n] = '\0';
}

static void gen_authorize(run *u, req *r)
{
	int cap, grant;
	bs_hold h;

	r->kind = BS_KIND_AUTHORIZE_EXPOSURE;
	pick_pair(u, r, &cap, &grant);
	if (cap == SMALL_CAPS) {
		static const uint64_t big[] = {UINT64_MAX,
		                               UINT64_MAX - 1,
		                               UINT64_MAX / 2,
		                               UINT64_MAX / 2 + 1,
		                               UINT64_MAX / 3,
		                               0,
		                               1,
		                               7};

		r->exposure = big[below(&u->r, sizeof(big) / sizeof(big[0]))];
		if (chance(&u->r, 40)) {
			r->has_max_total = true;
			r->max_total = UINT64_MAX - below(&u->r, 3);
		}
		if (chance(&u->r, 20)) {
			r->has_max_inv = true;
			r->max_inv = below(&u->r, 6);
		}
	} else {
		r->exposure = chance(&u->r, 10) ? 0 : below(&u->r, 16);
		if (chance(&u->r, 85)) {
			r->has_max_total = true;
			r->max_total = policy_total(cap, grant);
			r->has_max_inv = true;
			r->max_inv = policy_inv(cap, grant);
			if (policy_has_cost(cap, grant)) {
				r->has_max_cost = true;
				r->max_cost = 12;
			}
		} else {
			if ((r->has_max_inv = chance(&u->r, 50)))
				r->max_inv = below(&u->r, 8);
			if ((r->has_max_cost = chance(&u->r, 50)))
				r->max_cost = below(&u->r, 20);
			if ((r->has_max_total = chance(&u->r, 50)))
				r->max_total = below(&u->r, 90);
		}
	}
	if (chance(&u->r, 65)) {
		r->has_hold = true;
		snprintf(r->hold, sizeof(r->hold), "h%d", u->next_hold++);
	} else if (chance(&u->r, 30) && pick_hold(u, false, &h)) {
		r->has_hold = true;
		copy_id(r->hold, sizeof(r->hold), h.hold_id);
	}
	if (chance(&u->r, 45))
		random_auth(u, r);
}

static uint64_t near(run *u, uint64_t v)
{
	if (chance(&u->r, 50))
		return v == UINT64_MAX ? v - 1 : v + 1;
	return v == 0 ? 1 : v - 1;
}

static void gen_settle(run *u, req *r, bs_kind kind)
{
	uint64_t p = below(&u->r, 100);
	bs_hold h;
	int cap, grant;

	r->kind = kind;
	if (p < 70 && pick_hold(u, true, &h)) {
		r->has_cap = true;
		r->cap_len = h.capability_id.len;
		copy_id(r->cap, sizeof(r->cap), h.capability_id);
		r->grant = h.grant_index;
		r->has_hold = true;
		copy_id(r->hold, sizeof(r->hold), h.hold_id);
		switch (kind) {
		case BS_KIND_RELEASE_EXPOSURE:
			if (chance(&u->r, 50))
				r->exposure = upto(&u->r, h.remaining_units);
			else if (chance(&u->r, 50))
				r->exposure = h.remaining_units;
			else
				r->exposure = near(u, h.remaining_units);
			break;
		default:
			r->exposure =
			        chance(&u->r, 75) ? h.remaining_units : near(u, h.remaining_units);
			break;
		}
		if (chance(&u->r, 80)) {
			if (h.has_authority) {
				char id[BS_ID_LEN_MAX + 1], lease[BS_ID_LEN_MAX + 1];

				copy_id(id, sizeof(id), h.authority.authority_id);
				copy_id(lease, sizeof(lease), h.authority.lease_id);
				set_auth(r, id, lease, h.authority.lease_epoch);
			}
		} else if (chance(&u->r, 70)) {
			random_auth(u, r);
		}
	} else if (p < 78 && pick_hold(u, false, &h)) {
		/* a hold used with another capability or grant */
		r->has_hold = true;
		copy_id(r->hold, sizeof(r->hold), h.hold_id);
		if (chance(&u->r, 50)) {
			r->has_cap = true;
			r->cap_len = h.capability_id.len;
			copy_id(r->cap, sizeof(r->cap), h.capability_id);
			r->grant = (h.grant_index + 1) % GRANTS;
		} else {
			pick_pair(u, r, &cap, &grant);
		}
		r->exposure = h.remaining_units;
	} else if (p < 88) {
		/* a closed or missing hold */
		pick_pair(u, r, &cap, &grant);
		r->has_hold = true;
		if (pick_hold(u, false, &h) && chance(&u->r, 70)) {
			r->has_cap = true;
			r->cap_len = h.capability_id.len;
			copy_id(r->cap, sizeof(r->cap), h.capability_id);
			r->grant = h.grant_index;
			copy_id(r->hold, sizeof(r->hold), h.hold_id);
			r->exposure = h.remaining_units;
		} else {
			snprintf(r->hold, sizeof(r->hold), "missing-%d", (int)below(&u->r, 5));
			r->exposure = below(&u->r, 5);
		}
	} else {
		/* no hold: the usage row alone */
		pick_pair(u, r, &cap, &grant);
		r->exposure =
		        cap == SMALL_CAPS && chance(&u->r, 30) ? UINT64_MAX / 2 : below(&u->r, 8);
		if (chance(&u->r, 20))
			random_auth(u, r);
	}
	if (kind == BS_KIND_RECONCILE_SPEND) {
		if (chance(&u->r, 92))
			r->realized = upto(&u->r, r->exposure);
		else if (r->exposure < UINT64_MAX)
			r->realized = r->exposure + 1; /* invalid */
	}
}

static void gen_increment(run *u, req *r)
{
	int cap, grant;

	r->kind = BS_KIND_INCREMENT_INVOCATION;
	pick_pair(u, r, &cap, &grant);
	if (cap < SMALL_CAPS && chance(&u->r, 80)) {
		r->has_max_inv = true;
		r->max_inv = policy_inv(cap, grant);
	} else if (chance(&u->r, 40)) {
		r->has_max_inv = true;
		r->max_inv = below(&u->r, 8);
	}
}

/* A previous request with a client event_id, sent again: mostly identical
 * (a replay, when the first one was recorded), sometimes changed (a
 * conflict). Returns false when there is no history yet. */
static bool gen_replay(run *u, req *r)
{
	if (u->n_history == 0)
		return false;
	*r = u->history[below(&u->r, u->n_history)];
	if (chance(&u->r, 70))
		return true;
	switch (below(&u->r, 5)) {
	case 0:
		if (r->kind == BS_KIND_INCREMENT_INVOCATION) {
			r->has_max_inv = !r->has_max_inv;
			r->max_inv = r->has_max_inv ? 5 : 0;
		} else {
			r->exposure = r->exposure == UINT64_MAX ? 0 : r->exposure + 1;
			if (r->realized > r->exposure)
				r->realized = r->exposure;
		}
		break;
	case 1:
		r->grant = (r->grant + 1) % GRANTS;
		break;
	case 2:
		if (r->kind == BS_KIND_AUTHORIZE_EXPOSURE) {
			r->kind = BS_KIND_RELEASE_EXPOSURE;
			r->has_max_inv = r->has_max_cost = r->has_max_total = false;
			r->max_inv = r->max_cost = r->max_total = 0;
		} else if (r->kind == BS_KIND_RECONCILE_SPEND) {
			r->kind = BS_KIND_RELEASE_EXPOSURE;
			r->realized = 0;
		} else if (r->kind == BS_KIND_INCREMENT_INVOCATION) {
			r->kind = BS_KIND_AUTHORIZE_EXPOSURE;
		} else {
			r->kind = r->kind == BS_KIND_RELEASE_EXPOSURE ? BS_KIND_REVERSE_EXPOSURE
			                                              : BS_KIND_RELEASE_EXPOSURE;
		}
		break;
	case 3:
		if (r->kind == BS_KIND_INCREMENT_INVOCATION)
			r->grant = (r->grant + 2) % GRANTS;
		else if (r->has_auth)
			r->epoch++;
		else
			set_auth(r, "auth-1", "lease-1", 1);
		break;
	default:
		if (r->kind == BS_KIND_AUTHORIZE_EXPOSURE) {
			r->has_max_total = !r->has_max_total;
			r->max_total = r->has_max_total ? 50 : 0;
		} else if (r->kind != BS_KIND_INCREMENT_INVOCATION) {
			r->has_hold = !r->has_hold;
			snprintf(r->hold, sizeof(r->hold), "%s", r->has_hold ? "h0" : "");
		} else {
			set_cap(r, u->caps[(cap_index(u, r) + 1) % ALL_CAPS]);
		}
		break;
	}
	return true;
}

static void gen_invalid(run *u, req *r)
{
	/* Each variant breaks exactly one validation rule; the order of the
	 * checks is covered by test_validation.c. */
	switch (below(&u->r, 10)) {
	case 0:
		gen_settle(u, r, BS_KIND_RECONCILE_SPEND);
		r->exposure = below(&u->r, 5);
		r->realized = r->exposure + 1 + below(&u->r, 3);
		break;
	case 1:
		gen_increment(u, r);
		r->has_event = true;
		snprintf(r->event, sizeof(r->event), "budgetd-auto-%d", (int)below(&u->r, 50));
		break;
	case 2:
		gen_settle(u, r, BS_KIND_RELEASE_EXPOSURE);
		r->has_hold = true;
		r->hold[0] = '\0';
		break;
	case 3:
		gen_increment(u, r);
		r->has_hold = true;
		snprintf(r->hold, sizeof(r->hold), "h1");
		break;
	case 4:
		gen_settle(u, r, BS_KIND_RELEASE_EXPOSURE);
		r->has_max_cost = true;
		r->max_cost = 1 + below(&u->r, 5);
		break;
	case 5:
		gen_increment(u, r);
		r->grant = (1ULL << 32) + below(&u->r, 3);
		break;
	case 6:
		gen_authorize(u, r);
		random_auth(u, r);
		if (chance(&u->r, 50))
			r->has_lease = false;
		else
			r->auth_id[0] = '\0';
		break;
	case 7:
		gen_increment(u, r);
		if (chance(&u->r, 40)) {
			r->has_cap = false;
		} else if (chance(&u->r, 50)) {
			r->cap_len = 0;
			r->cap[0] = '\0';
		} else {
			memset(r->cap, 'c', BS_ID_LEN_MAX + 1);
			r->cap[BS_ID_LEN_MAX + 1] = '\0';
			r->cap_len = BS_ID_LEN_MAX + 1;
		}
		break;
	case 8:
		gen_authorize(u, r);
		r->realized = 1;
		break;
	default:
		gen_authorize(u, r);
		r->has_hold = true;
		snprintf(r->hold, sizeof(r->hold), "h\xff%d", (int)below(&u->r, 3));
		break;
	}
}

static void gen_zero(run *u, req *r)
{
	int cap, grant;

	pick_pair(u, r, &cap, &grant);
	switch (below(&u->r, 4)) {
	case 0:
		r->kind = BS_KIND_RELEASE_EXPOSURE;
		break;
	case 1:
		r->kind = BS_KIND_REVERSE_EXPOSURE;
		break;
	case 2:
		r->kind = BS_KIND_RECONCILE_SPEND;
		break;
	default:
		r->kind = BS_KIND_AUTHORIZE_EXPOSURE;
		r->has_hold = true;
		snprintf(r->hold, sizeof(r->hold), "h%d", u->next_hold++);
		break;
	}
}

static void gen(run *u, req *r)
{
	uint64_t p = below(&u->r, 100);
	bool replay = false;

	memset(r, 0, sizeof(*r));
	if (p < 30)
		gen_authorize(u, r);
	else if (p < 44)
		gen_settle(u, r, BS_KIND_RELEASE_EXPOSURE);
	else if (p < 53)
		gen_settle(u, r, BS_KIND_REVERSE_EXPOSURE);
	else if (p < 66)
		gen_settle(u, r, BS_KIND_RECONCILE_SPEND);
	else if (p < 76)
		gen_increment(u, r);
	else if (p < 89) {
		replay = gen_replay(u, r);
		if (!replay)
			gen_authorize(u, r);
	} else if (p < 93)
		gen_invalid(u, r);
	else
		gen_zero(u, r);
	if (replay || r->has_event)
		return;
	if (chance(&u->r, 45)) {
		r->has_event = true;
		snprintf(r->event, sizeof(r->event), "ev-%d", u->next_event++);
		remember(u, r);
	} else if (u->n_history && chance(&u->r, 4)) {
		/* someone else's event_id for a fresh request */
		r->has_event = true;
		snprintf(r->event, sizeof(r->event), "%s",
		         u->history[below(&u->r, u->n_history)].event);
	}
}

/* --- comparing ----------------------------------------------------------- */

static void fmt_result(char *buf, size_t n, int rc, const bs_outcome *o, const bs_error *e)
{
	if (rc != BS_OK) {
		snprintf(buf, n, "error %d (%s) \"%s\"", rc, bs_err_name(rc), e->message);
		return;
	}
	snprintf(buf, n,
	         "ok kind=%d allowed=%d denial=%d replayed=%d commit_index=%s%" PRIu64
	         " event_seq=%" PRIu64 " count=%u exposed=%" PRIu64 " realized=%" PRIu64
	         " committed=%" PRIu64 " guarantee=%d event_id=%s budget_term=%s",
	         o->kind, o->allowed, o->denial, o->replayed, o->has_commit_index ? "" : "none/",
	         o->commit_index, o->event_seq, o->invocation_count_after, o->exposed_after,
	         o->realized_after, o->committed_after, o->guarantee, o->event_id, o->budget_term);
}

static bool same_result(int rc_a, const bs_outcome *a, const bs_error *ea, int rc_b,
                        const bs_outcome *b, const bs_error *eb)
{
	if (rc_a != rc_b)
		return false;
	if (rc_a != BS_OK)
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

/* Fails the test with the seed, the step and what differs. */
__attribute__((format(printf, 2, 3))) static void mismatch(const run *u, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	cr_assert_fail("seed %u step %d: %s", u->seed, u->step, buf);
	abort(); /* not reached */
}

static bool same_usage(const bs_usage *a, const bs_usage *b)
{
	return a->capability_id.len == b->capability_id.len &&
	       memcmp(a->capability_id.ptr, b->capability_id.ptr, a->capability_id.len) == 0 &&
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
	         (int)u->capability_id.len, u->capability_id.ptr, u->grant_index,
	         u->invocation_count, u->total_cost_exposed, u->total_cost_realized_spend,
	         u->committed_cost, u->seq, u->updated_at_ns);
}

struct one_usage {
	bool found;
	th_usage u;
};

static int take_usage(void *ctx, const bs_usage *u)
{
	struct one_usage *o = ctx;

	o->found = true;
	th_copy_usage(&o->u, u);
	return 0;
}

static void compare_usage_of(run *u, const req *r)
{
	struct one_usage got = {false};
	bs_usage su, mu;
	bool found = false, mfound;
	bs_error err;
	bs_str cap;
	char a[512], b[512];
	int rc;

	/* Only requests whose capability and grant are valid for a read. */
	if (!r->has_cap || r->cap_len == 0 || r->cap_len > BS_ID_LEN_MAX || r->grant > UINT32_MAX)
		return;
	cap = (bs_str){r->cap, r->cap_len};
	rc = bs_store_get_usage(u->store, cap, r->grant, take_usage, &got, &found, &err);
	if (rc != BS_OK)
		mismatch(u, "get_usage failed: %s", err.message);
	mfound = model_get_usage(u->m, cap, (uint32_t)r->grant, &mu);
	if (found != mfound)
		mismatch(u, "usage row %.*s/%" PRIu64 ": store found=%d, model found=%d",
		         (int)r->cap_len, r->cap, r->grant, found, mfound);
	if (!found)
		return;
	su = got.u.u;
	su.capability_id = bs_str_from(got.u.cap);
	if (!same_usage(&su, &mu)) {
		fmt_usage(a, sizeof(a), &su);
		fmt_usage(b, sizeof(b), &mu);
		mismatch(u, "usage row differs\n  store: %s\n  model: %s", a, b);
	}
}

static void check_invariants(run *u, const req *r)
{
	int c = cap_index(u, r);
	th_usage su;

	if (c < 0 || c >= SMALL_CAPS || r->grant >= GRANTS)
		return;
	if (!th_get_usage(u->store, u->caps[c], (uint32_t)r->grant, &su))
		return;
	if (u->total_ok[c][r->grant] && su.u.total_cost_exposed + su.u.total_cost_realized_spend >
	                                        policy_total(c, (int)r->grant))
		mismatch(u, "invariant: %s/%" PRIu64 " committed %" PRIu64 " > max_total %" PRIu64,
		         u->caps[c], r->grant, su.u.committed_cost, policy_total(c, (int)r->grant));
	if (u->inv_ok[c][r->grant] && su.u.invocation_count > policy_inv(c, (int)r->grant))
		mismatch(u,
		         "invariant: %s/%" PRIu64 " invocation_count %u > max_invocations %" PRIu64,
		         u->caps[c], r->grant, su.u.invocation_count, policy_inv(c, (int)r->grant));
	if (su.u.committed_cost != su.u.total_cost_exposed + su.u.total_cost_realized_spend)
		mismatch(u, "invariant: committed != exposed + realized");
}

/* Marks the pairs whose limits this request breaks the "always the same
 * limit" condition of the invariants for. */
static void taint(run *u, const req *r)
{
	int c = cap_index(u, r);
	int g;

	if (c < 0 || r->grant >= GRANTS)
		return;
	g = (int)r->grant;
	if (r->kind == BS_KIND_AUTHORIZE_EXPOSURE &&
	    !(r->has_max_total && r->max_total == policy_total(c, g)))
		u->total_ok[c][g] = false;
	if ((r->kind == BS_KIND_AUTHORIZE_EXPOSURE || r->kind == BS_KIND_INCREMENT_INVOCATION) &&
	    !(r->has_max_inv && r->max_inv == policy_inv(c, g)))
		u->inv_ok[c][g] = false;
}

static void check_sequence(run *u, int rc, const bs_outcome *o)
{
	if (rc != BS_OK || o->replayed)
		return;
	if (o->event_seq <= u->last_event_seq)
		mismatch(u, "event_seq %" PRIu64 " after %" PRIu64, o->event_seq,
		         u->last_event_seq);
	u->last_event_seq = o->event_seq;
	if (!o->has_commit_index)
		return;
	if (o->commit_index <= u->last_commit_index)
		mismatch(u, "commit index %" PRIu64 " not above %" PRIu64, o->commit_index,
		         u->last_commit_index);
	u->last_commit_index = o->commit_index;
}

/* Counts an error by its message, with the quoted ids blanked out. */
static void count_error(run *u, const char *message)
{
	char norm[160];
	size_t j = 0;
	bool quoted = false;

	for (const char *p = message; *p && j < sizeof(norm) - 2; p++) {
		if (*p == '`') {
			quoted = !quoted;
			norm[j++] = '`';
			if (quoted)
				norm[j++] = '_';
			continue;
		}
		if (!quoted)
			norm[j++] = *p;
	}
	norm[j] = '\0';
	for (size_t i = 0; i < u->n_errors; i++) {
		if (strcmp(u->errors[i].message, norm) == 0) {
			u->errors[i].n++;
			return;
		}
	}
	if (u->n_errors < sizeof(u->errors) / sizeof(u->errors[0])) {
		snprintf(u->errors[u->n_errors].message, sizeof(u->errors[0].message), "%s", norm);
		u->errors[u->n_errors++].n = 1;
	}
}

static unsigned long errors_seen(const run *u, const char *norm)
{
	for (size_t i = 0; i < u->n_errors; i++)
		if (strcmp(u->errors[i].message, norm) == 0)
			return u->errors[i].n;
	return 0;
}

static void count(run *u, int rc, const bs_outcome *o, const bs_error *e)
{
	if (rc != BS_OK) {
		u->failed++;
		count_error(u, e->message);
	} else if (o->replayed) {
		u->replayed++;
	} else if (!o->allowed) {
		u->denied++;
		u->denials[o->denial & 3]++;
	} else {
		u->applied++;
	}
}

/* --- full comparisons ---------------------------------------------------- */

struct usage_list {
	th_usage *rows;
	size_t n;
};

static int list_visit(void *ctx, const bs_usage *u)
{
	struct usage_list *l = ctx;

	th_copy_usage(&l->rows[l->n++], u);
	return 0;
}

static void compare_all_usages(run *u)
{
	th_usage *rows = calloc(USAGE_ROWS_MAX, sizeof(*rows));
	bs_usage *mrows = calloc(USAGE_ROWS_MAX, sizeof(*mrows));
	struct usage_list l = {rows, 0};
	bs_error err;
	size_t mn;
	char a[512], b[512];

	cr_assert(rows && mrows);
	if (bs_store_list_usages(u->store, USAGE_ROWS_MAX, bs_str_from(NULL), list_visit, &l,
	                         &err) != BS_OK)
		mismatch(u, "list_usages failed: %s", err.message);
	mn = model_list_usages(u->m, mrows, USAGE_ROWS_MAX);
	if (mn >= USAGE_ROWS_MAX)
		mismatch(u, "too many usage rows for one list: %zu", mn);
	if (l.n != mn)
		mismatch(u, "list_usages: store has %zu rows, model %zu", l.n, mn);
	for (size_t i = 0; i < mn; i++) {
		bs_usage su = rows[i].u;

		su.capability_id = bs_str_from(rows[i].cap);
		if (!same_usage(&su, &mrows[i])) {
			fmt_usage(a, sizeof(a), &su);
			fmt_usage(b, sizeof(b), &mrows[i]);
			mismatch(u, "list_usages row %zu differs\n  store: %s\n  model: %s", i, a,
			         b);
		}
	}
	free(rows);
	free(mrows);
}

static bool str_eq(bs_str a, const char *b)
{
	return a.ptr && strlen(b) == a.len && memcmp(a.ptr, b, a.len) == 0;
}

static void compare_all_holds(run *u)
{
	size_t n = model_hold_count(u->m);
	bs_hold mh;
	th_hold sh;

	for (size_t i = 0; i < n; i++) {
		char id[BS_ID_LEN_MAX + 1];
		const bs_hold *s = &sh.h;

		model_hold_at(u->m, i, &mh);
		copy_id(id, sizeof(id), mh.hold_id);
		if (!th_get_hold(u->store, id, &sh))
			mismatch(u, "hold %s is missing from the store", id);
		if (!str_eq(mh.capability_id, sh.cap) || s->grant_index != mh.grant_index ||
		    s->authorized_units != mh.authorized_units ||
		    s->remaining_units != mh.remaining_units ||
		    s->debited_invocation != mh.debited_invocation ||
		    s->disposition != mh.disposition || s->has_authority != mh.has_authority ||
		    s->created_at_ns != mh.created_at_ns || s->updated_at_ns != mh.updated_at_ns ||
		    (mh.has_authority && (!str_eq(mh.authority.authority_id, sh.authority_id) ||
		                          !str_eq(mh.authority.lease_id, sh.lease_id) ||
		                          s->authority.lease_epoch != mh.authority.lease_epoch)))
			mismatch(u,
			         "hold %s differs\n  store: %s/%u authorized=%" PRIu64
			         " remaining=%" PRIu64
			         " disposition=%d debited=%d auth=%d created=%" PRId64
			         " updated=%" PRId64 "\n  model: authorized=%" PRIu64
			         " remaining=%" PRIu64
			         " disposition=%d debited=%d auth=%d created=%" PRId64
			         " updated=%" PRId64,
			         id, sh.cap, s->grant_index, s->authorized_units,
			         s->remaining_units, s->disposition, s->debited_invocation,
			         s->has_authority, s->created_at_ns, s->updated_at_ns,
			         mh.authorized_units, mh.remaining_units, mh.disposition,
			         mh.debited_invocation, mh.has_authority, mh.created_at_ns,
			         mh.updated_at_ns);
	}
	for (int k = 0; k < 5; k++) {
		char id[32];

		snprintf(id, sizeof(id), "missing-%d", k);
		if (th_get_hold(u->store, id, &sh))
			mismatch(u, "hold %s exists in the store only", id);
	}
}

static bool same_opt_str(bs_str a, const char *b, bool b_present)
{
	if (!b_present)
		return a.ptr == NULL;
	return str_eq(a, b);
}

static void compare_new_events(run *u)
{
	size_t mn = model_event_count(u->m);
	th_event *page = calloc(BS_LIST_LIMIT_MAX, sizeof(*page));
	bs_event me;

	cr_assert_not_null(page);
	while (u->events_checked < mn) {
		uint64_t after = u->events_checked; /* event i has seq i + 1 */
		size_t n = th_list_events(u->store, BS_LIST_LIMIT_MAX, NULL, false, 0, after, page,
		                          BS_LIST_LIMIT_MAX);

		if (n == 0)
			mismatch(u, "the store lists no events after %" PRIu64 ", model has %zu",
			         after, mn);
		for (size_t i = 0; i < n && u->events_checked < mn; i++, u->events_checked++) {
			const th_event *se = &page[i];
			const bs_event *s = &se->e;

			model_event_at(u->m, u->events_checked, &me);
			if (s->event_seq != me.event_seq || !str_eq(me.event_id, se->event_id) ||
			    !same_opt_str(me.hold_id, se->hold_id, se->has_hold) ||
			    !str_eq(me.capability_id, se->cap) ||
			    s->grant_index != me.grant_index || s->kind != me.kind ||
			    s->has_allowed != me.has_allowed ||
			    (me.has_allowed && s->allowed != me.allowed) ||
			    s->denial != me.denial || s->recorded_at_ns != me.recorded_at_ns ||
			    s->has_usage_seq != me.has_usage_seq ||
			    (me.has_usage_seq && s->usage_seq != me.usage_seq) ||
			    s->exposure_units != me.exposure_units ||
			    s->realized_units != me.realized_units ||
			    s->has_max_invocations != me.has_max_invocations ||
			    (me.has_max_invocations && s->max_invocations != me.max_invocations) ||
			    s->has_max_cost_per_invocation != me.has_max_cost_per_invocation ||
			    (me.has_max_cost_per_invocation &&
			     s->max_cost_per_invocation != me.max_cost_per_invocation) ||
			    s->has_max_total_cost_units != me.has_max_total_cost_units ||
			    (me.has_max_total_cost_units &&
			     s->max_total_cost_units != me.max_total_cost_units) ||
			    s->invocation_count_after != me.invocation_count_after ||
			    s->exposed_after != me.exposed_after ||
			    s->realized_after != me.realized_after ||
			    s->has_authority != me.has_authority ||
			    (me.has_authority &&
			     (!str_eq(me.authority.authority_id, se->authority_id) ||
			      !str_eq(me.authority.lease_id, se->lease_id) ||
			      s->authority.lease_epoch != me.authority.lease_epoch)))
				mismatch(u,
				         "event %" PRIu64
				         " differs\n  store: id=%s kind=%d cap=%s/%u "
				         "allowed=%d/%d denial=%d usage_seq=%d/%" PRIu64
				         " after=%u/%" PRIu64 "/%" PRIu64 " recorded=%" PRId64
				         "\n  model: id=%.*s kind=%d allowed=%d/%d denial=%d "
				         "usage_seq=%d/%" PRIu64 " after=%u/%" PRIu64 "/%" PRIu64
				         " recorded=%" PRId64,
				         me.event_seq, se->event_id, s->kind, se->cap,
				         s->grant_index, s->has_allowed, s->allowed, s->denial,
				         s->has_usage_seq, s->usage_seq, s->invocation_count_after,
				         s->exposed_after, s->realized_after, s->recorded_at_ns,
				         (int)me.event_id.len, me.event_id.ptr, me.kind,
				         me.has_allowed, me.allowed, me.denial, me.has_usage_seq,
				         me.usage_seq, me.invocation_count_after, me.exposed_after,
				         me.realized_after, me.recorded_at_ns);
		}
	}
	free(page);
}

static void full_check(run *u)
{
	uint64_t ci = th_commit_index(u->store);

	if (ci != model_commit_index(u->m))
		mismatch(u, "commit index: store %" PRIu64 ", model %" PRIu64, ci,
		         model_commit_index(u->m));
	compare_all_usages(u);
	compare_all_holds(u);
	compare_new_events(u);
	for (int c = 0; c < ALL_CAPS; c++)
		for (int g = 0; g < GRANTS; g++) {
			req r;

			memset(&r, 0, sizeof(r));
			set_cap(&r, u->caps[c]);
			r.grant = (uint64_t)g;
			compare_usage_of(u, &r);
			check_invariants(u, &r);
		}
}

/* --- one step: one mutation or a batch ----------------------------------- */

static void step(run *u)
{
	req reqs[BATCH_MAX];
	bs_mutation ms[BATCH_MAX];
	bs_batch_item items[BATCH_MAX];
	bs_outcome mout[BATCH_MAX];
	bs_error merr[BATCH_MAX];
	int mrc[BATCH_MAX];
	size_t n = chance(&u->r, 30) ? 2 + below(&u->r, BATCH_MAX - 1) : 1;
	uint64_t ci;

	th_now += (int64_t)below(&u->r, 3) * 1000;
	for (size_t i = 0; i < n; i++) {
		gen(u, &reqs[i]);
		taint(u, &reqs[i]);
		ms[i] = to_mutation(&reqs[i]);
		memset(&mout[i], 0, sizeof(mout[i]));
		mrc[i] = model_apply(u->m, &ms[i], th_now, &mout[i], &merr[i]);
	}
	memset(items, 0, sizeof(items));
	if (n == 1 && chance(&u->r, 70)) {
		items[0].mutation = &ms[0];
		items[0].result =
		        bs_store_apply(u->store, &ms[0], &items[0].outcome, &items[0].error);
	} else {
		int rc;

		for (size_t i = 0; i < n; i++)
			items[i].mutation = &ms[i];
		rc = bs_store_apply_batch(u->store, items, n);
		if (rc != BS_OK)
			mismatch(u, "apply_batch of %zu returned %d", n, rc);
	}
	for (size_t i = 0; i < n; i++) {
		char d[1024], a[1200], b[1200];

		if (!same_result(items[i].result, &items[i].outcome, &items[i].error, mrc[i],
		                 &mout[i], &merr[i])) {
			describe(&reqs[i], d, sizeof(d));
			fmt_result(a, sizeof(a), items[i].result, &items[i].outcome,
			           &items[i].error);
			fmt_result(b, sizeof(b), mrc[i], &mout[i], &merr[i]);
			mismatch(u,
			         "item %zu of %zu: results differ\n  request: %s\n  store: %s\n  "
			         "model: %s",
			         i, n, d, a, b);
		}
		check_sequence(u, items[i].result, &items[i].outcome);
		count(u, items[i].result, &items[i].outcome, &items[i].error);
	}
	for (size_t i = 0; i < n; i++) {
		if (mrc[i] != BS_EINVAL)
			compare_usage_of(u, &reqs[i]);
		check_invariants(u, &reqs[i]);
	}
	ci = th_commit_index(u->store);
	if (ci != model_commit_index(u->m))
		mismatch(u, "commit index: store %" PRIu64 ", model %" PRIu64, ci,
		         model_commit_index(u->m));
}

/* Errors every run must have produced, or the generator lost its reach. */
static const char *const expected_errors[] = {
        "budget hold `_` already exists",
        "missing budget hold `_`",
        "budget hold `_` does not match capability/grant",
        "budget hold `_` is no longer open",
        "cannot release more than remaining exposure",
        "budget hold `_` does not match reverse amount",
        "budget hold `_` does not match reconciled exposure",
        "budget hold `_` was created without authority lease metadata",
        "budget hold `_` requires authority lease metadata",
        "authority_id does not match the open lease",
        "lease_id does not match the open lease epoch",
        "authority lease epoch regressed",
        "authority lease epoch advanced beyond the open lease",
        "missing charged budget row",
        "committed cost overflows u64",
        "event_id `_` was reused for a different mutation",
        "cannot realize spend larger than exposed cost",
        "event_id must not start with the reserved prefix `_`",
};

static void run_seed(unsigned seed, int steps)
{
	run u;

	memset(&u, 0, sizeof(u));
	u.seed = seed;
	u.r.s = seed * 0x2545f4914f6cdd1dULL + 1;
	u.store = store;
	u.m = model_new();
	for (u.step = 0; u.step < steps; u.step++) {
		if (u.step % GENERATION_STEPS == 0) {
			if (u.step)
				full_check(&u);
			new_generation(&u);
		}
		step(&u);
		if (u.step % FULL_CHECK_EVERY == FULL_CHECK_EVERY - 1)
			full_check(&u);
	}
	full_check(&u);
	cr_log_info("seed %u: %d steps, %lu applied, %lu denied (%lu/%lu/%lu), %lu failed, "
	            "%lu replayed, commit index %" PRIu64,
	            seed, steps, u.applied, u.denied, u.denials[1], u.denials[2], u.denials[3],
	            u.failed, u.replayed, model_commit_index(u.m));
	for (size_t i = 0; i < u.n_errors; i++)
		cr_log_info("seed %u: %6lu x %s", seed, u.errors[i].n, u.errors[i].message);
	/* The run must have exercised every kind of answer, or it proves little. */
	cr_assert_gt(u.applied, (unsigned long)steps / 2);
	cr_assert_gt(u.denials[BS_DENIAL_MAX_INVOCATIONS], 20);
	cr_assert_gt(u.denials[BS_DENIAL_MAX_COST_PER_INVOCATION], 20);
	cr_assert_gt(u.denials[BS_DENIAL_MAX_TOTAL_COST], 20);
	cr_assert_gt(u.replayed, 100);
	for (size_t i = 0; i < sizeof(expected_errors) / sizeof(expected_errors[0]); i++)
		cr_assert_gt(errors_seen(&u, expected_errors[i]), 0,
		             "seed %u never produced \"%s\"", seed, expected_errors[i]);
	model_free(u.m);
	free(u.history);
}

TestSuite(model, .init = th_setup_memory, .fini = th_teardown_memory, .timeout = 120);

Test(model, random_operations_agree_with_the_reference_model_seed_1)
{
	run_seed(1, STEPS);
}

Test(model, random_operations_agree_with_the_reference_model_seed_2)
{
	run_seed(2, STEPS);
}

Test(model, random_operations_agree_with_the_reference_model_seed_3)
{
	run_seed(3, STEPS);
}

Test(model, random_operations_agree_with_the_reference_model_seed_20240601)
{
	run_seed(20240601, STEPS);
}
