/* test_linearizability.c - concurrent clients see budgetd as one sequential
 * store: every per-grant history is linearizable against the reference model
 * of the rules (tests/store/model.c), and commit order respects real time.
 *
 * Each round uses fresh grants. The main thread first opens two holds on
 * each grant; then threads, released together, race on the grants: they
 * authorize holds of their own against a tight max_total (and, on some
 * grants, max_invocations or max_cost_per_invocation), increment, and
 * release, reverse or reconcile the two shared holds, so that who wins
 * depends on the order the daemon chose. Every call is stamped with a
 * global counter when it is invoked and when it completes (ordering only).
 *
 * Per grant, a Wing & Gong search looks for an order of the operations that
 * respects real time (a call that completed before another was invoked
 * comes first) and in which the model gives every call the answer it got
 * (the decision, the counts after, the error code). The search memoizes
 * failed sets of linearized calls: in this model the state after a set of
 * calls with known answers does not depend on their order. A history
 * without such an order fails the test and is printed.
 *
 * Across all grants, the mutation log's event_seq (and the commit index of
 * applied mutations) must be ordered like non-overlapping calls.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "model.h"

#define THREADS          4
#define ROUNDS           40
#define GRANTS_PER_ROUND 3
#define SETUP_HOLDS      2 /* opened by the main thread, raced for */
#define OPS_PER_THREAD   2 /* per grant and round */
#define HISTORY_MAX      (SETUP_HOLDS + THREADS * OPS_PER_THREAD)
#define HISTORIES        (ROUNDS * GRANTS_PER_ROUND)
#define ID_SIZE          48
#define SETUP_UNITS      20
#define MAX_TOTAL        100 /* setup holds take 40 of it */
#define MAX_INVOCATIONS  4   /* setup holds take 2 of them */
#define MAX_COST         30
#define CALL_DEADLINE_MS 30000
#define SEED             0x5eed1ea7ull

_Static_assert(HISTORY_MAX <= 12, "the checker is meant for short histories");

/* One call of a history: the request, its stamps and its answer. */
typedef struct lop {
	int thread; /* -1: the main thread's setup */
	bs_kind kind;
	char cap[ID_SIZE];
	uint64_t grant;
	char hold_id[ID_SIZE]; /* "" for none */
	char event_id[ID_SIZE];
	uint64_t units;
	uint64_t realized;
	bool has_max_inv;
	bool has_max_cost;
	bool has_max_total;
	uint64_t invoke, complete; /* the global counter */
	/* the answer */
	int code; /* gRPC status */
	char message[160];
	bool allowed;
	int denial;
	uint32_t count_after;
	bool has_committed;
	uint64_t committed_after;
	bool has_ci;
	uint64_t ci;
} lop;

typedef struct history {
	lop ops[HISTORY_MAX];
	int n;
	pthread_mutex_t mu; /* threads append */
} history;

static history histories[HISTORIES];
static atomic_uint_fast64_t ticks;
static pthread_barrier_t start_line;
static int round_no;

static uint64_t tick(void)
{
	return atomic_fetch_add(&ticks, 1) + 1;
}

static uint64_t next_random(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 2685821657736338717ull;
}

/* ---- calling budgetd ---- */

static void answer_meta(lop *o, const bc_commit_metadata *md)
{
	o->has_ci = md->has_budget_commit_index;
	o->ci = md->budget_commit_index;
}

/* Sends `o` once and records the answer and the stamps. */
static void call(bc_client *c, lop *o)
{
	const char *hold = o->hold_id[0] ? o->hold_id : NULL;
	bc_error err = {0};
	int rc;

	o->invoke = tick();
	switch (o->kind) {
	case BS_KIND_AUTHORIZE_EXPOSURE: {
		bc_authorize_hold_request req = {
		        .capability_id = o->cap,
		        .grant_index = o->grant,
		        .has_max_invocations = o->has_max_inv,
		        .max_invocations = MAX_INVOCATIONS,
		        .requested_exposure_units = o->units,
		        .has_max_cost_per_invocation = o->has_max_cost,
		        .max_cost_per_invocation = MAX_COST,
		        .has_max_total_cost_units = o->has_max_total,
		        .max_total_cost_units = MAX_TOTAL,
		        .hold_id = hold,
		        .event_id = o->event_id,
		};
		bc_authorize_hold_result r;
		rc = bc_authorize_hold(c, &req, CALL_DEADLINE_MS, &r, &err);
		o->complete = tick();
		if (rc == 0) {
			o->allowed = r.authorized;
			o->denial = r.denial_reason;
			o->count_after = r.invocation_count_after;
			o->has_committed = true;
			o->committed_after = r.committed_cost_units_after;
			answer_meta(o, &r.metadata);
		}
		bc_authorize_hold_result_free(&r);
		break;
	}
	case BS_KIND_INCREMENT_INVOCATION: {
		bc_increment_invocation_request req = {.capability_id = o->cap,
		                                       .grant_index = o->grant,
		                                       .has_max_invocations = o->has_max_inv,
		                                       .max_invocations = MAX_INVOCATIONS,
		                                       .event_id = o->event_id};
		bc_increment_invocation_result r;
		rc = bc_increment_invocation(c, &req, CALL_DEADLINE_MS, &r, &err);
		o->complete = tick();
		if (rc == 0) {
			o->allowed = r.allowed;
			o->denial = r.allowed ? 0 : BC_DENIAL_REASON_MAX_INVOCATIONS;
			o->count_after = r.invocation_count_after;
			answer_meta(o, &r.metadata);
		}
		bc_increment_invocation_result_free(&r);
		break;
	}
	default: {
		bc_hold_mutation_result r;
		if (o->kind == BS_KIND_RELEASE_EXPOSURE) {
			bc_release_hold_request req = {.capability_id = o->cap,
			                               .grant_index = o->grant,
			                               .hold_id = hold,
			                               .released_exposure_units = o->units,
			                               .event_id = o->event_id};
			rc = bc_release_hold(c, &req, CALL_DEADLINE_MS, &r, &err);
		} else if (o->kind == BS_KIND_REVERSE_EXPOSURE) {
			bc_reverse_hold_request req = {.capability_id = o->cap,
			                               .grant_index = o->grant,
			                               .hold_id = hold,
			                               .reversed_exposure_units = o->units,
			                               .event_id = o->event_id};
			rc = bc_reverse_hold(c, &req, CALL_DEADLINE_MS, &r, &err);
		} else {
			bc_reconcile_hold_request req = {.capability_id = o->cap,
			                                 .grant_index = o->grant,
			                                 .hold_id = hold,
			                                 .exposed_cost_units = o->units,
			                                 .realized_spend_units = o->realized,
			                                 .event_id = o->event_id};
			rc = bc_reconcile_hold(c, &req, CALL_DEADLINE_MS, &r, &err);
		}
		o->complete = tick();
		if (rc == 0) {
			o->allowed = true;
			o->count_after = r.invocation_count_after;
			o->has_committed = true;
			o->committed_after = r.committed_cost_units_after;
			answer_meta(o, &r.metadata);
		}
		bc_hold_mutation_result_free(&r);
		break;
	}
	}
	o->code = rc == 0 ? 0 : err.code;
	snprintf(o->message, sizeof(o->message), "%.150s", rc == 0 ? "" : err.message);
}

static void record(history *h, const lop *o)
{
	pthread_mutex_lock(&h->mu);
	if (h->n < HISTORY_MAX) /* by construction */
		h->ops[h->n++] = *o;
	pthread_mutex_unlock(&h->mu);
}

/* ---- the workload ---- */

static void grant_of(int round, int g, char cap[ID_SIZE], uint64_t *grant)
{
	snprintf(cap, ID_SIZE, "lin-r%03d", round);
	*grant = (uint64_t)g;
}

/* Limits: every grant has max_total; grant 1 max_invocations, grant 2
 * max_cost_per_invocation (all calls on a grant send the same limits). */
static void limits_of(lop *o, int g)
{
	bool lim = o->kind == BS_KIND_AUTHORIZE_EXPOSURE;

	o->has_max_total = lim;
	o->has_max_cost = lim && g == 2;
	o->has_max_inv = (lim || o->kind == BS_KIND_INCREMENT_INVOCATION) && g == 1;
}

typedef struct racer {
	int id;
	bc_client *c;
	uint64_t rng;
	int errors;
	char error[256];
} racer;

/* The thread's next call on grant g: its own hold (if it has one open), a
 * shared one, an authorize or an increment. */
static void next_call(racer *r, int g, int step, lop *o, char own[ID_SIZE], uint64_t *own_units)
{
	uint64_t x = next_random(&r->rng) % 8;
	static const uint64_t sizes[] = {10, 20, 30, 40};

	memset(o, 0, sizeof(*o));
	o->thread = r->id;
	grant_of(round_no, g, o->cap, &o->grant);
	snprintf(o->event_id, sizeof(o->event_id), "e-r%03d-g%d-t%d-%d", round_no, g, r->id, step);
	if (own[0] && x >= 5) {
		snprintf(o->hold_id, sizeof(o->hold_id), "%s", own);
		o->units = *own_units;
		o->kind = x == 5   ? BS_KIND_RELEASE_EXPOSURE
		          : x == 6 ? BS_KIND_REVERSE_EXPOSURE
		                   : BS_KIND_RECONCILE_SPEND;
		o->realized = o->kind == BS_KIND_RECONCILE_SPEND ? *own_units / 2 : 0;
		own[0] = '\0';
	} else if (x <= 1) {
		o->kind = BS_KIND_AUTHORIZE_EXPOSURE;
		o->units = sizes[next_random(&r->rng) % 4];
		snprintf(o->hold_id, sizeof(o->hold_id), "h-r%03d-g%d-t%d-%d", round_no, g, r->id,
		         step);
	} else if (x == 2) {
		o->kind = BS_KIND_INCREMENT_INVOCATION;
	} else {
		snprintf(o->hold_id, sizeof(o->hold_id), "s-r%03d-g%d-%d", round_no, g,
		         (int)(next_random(&r->rng) % SETUP_HOLDS));
		uint64_t how = next_random(&r->rng) % 5;
		o->kind = how <= 1   ? BS_KIND_RELEASE_EXPOSURE
		          : how == 2 ? BS_KIND_REVERSE_EXPOSURE
		                     : BS_KIND_RECONCILE_SPEND;
		/* partial release, or a settle of the whole or of what a partial
		 * release left: which of them succeed depends on the order */
		o->units = how == 0 ? 5 : how == 4 ? SETUP_UNITS - 5 : SETUP_UNITS;
		o->realized = o->kind == BS_KIND_RECONCILE_SPEND ? 3 : 0;
	}
	limits_of(o, g);
}

static void *race(void *p)
{
	racer *r = p;
	char own[GRANTS_PER_ROUND][ID_SIZE] = {{0}};
	uint64_t own_units[GRANTS_PER_ROUND] = {0};

	pthread_barrier_wait(&start_line);
	for (int step = 0; step < OPS_PER_THREAD; step++) {
		int first = (int)(next_random(&r->rng) % GRANTS_PER_ROUND);
		for (int k = 0; k < GRANTS_PER_ROUND; k++) {
			int g = (first + k) % GRANTS_PER_ROUND;
			lop o;
			next_call(r, g, step, &o, own[g], &own_units[g]);
			call(r->c, &o);
			if (o.code != 0 && o.code != BC_STATUS_FAILED_PRECONDITION) {
				r->errors++;
				snprintf(r->error, sizeof(r->error), "%s: %s: %s", o.event_id,
				         bc_status_name(o.code), o.message);
			}
			if (o.code == 0 && o.kind == BS_KIND_AUTHORIZE_EXPOSURE && o.allowed) {
				snprintf(own[g], ID_SIZE, "%s", o.hold_id);
				own_units[g] = o.units;
			}
			record(&histories[round_no * GRANTS_PER_ROUND + g], &o);
		}
	}
	return NULL;
}

/* ---- the checker ---- */

static int status_of(int store_rc)
{
	switch (store_rc) {
	case BS_OK:
		return BC_STATUS_OK;
	case BS_EINVAL:
		return BC_STATUS_INVALID_ARGUMENT;
	case BS_EPRECONDITION:
		return BC_STATUS_FAILED_PRECONDITION;
	case BS_ECONFLICT:
		return BC_STATUS_ALREADY_EXISTS;
	case BS_EOVERFLOW:
		return BC_STATUS_OUT_OF_RANGE;
	default:
		return BC_STATUS_INTERNAL;
	}
}

static bs_mutation mutation_of(const lop *o)
{
	bs_mutation m = {.kind = o->kind,
	                 .capability_id = bs_str_from(o->cap),
	                 .grant_index = o->grant,
	                 .event_id = bs_str_from(o->event_id),
	                 .exposure_units = o->units,
	                 .realized_units = o->realized,
	                 .has_max_invocations = o->has_max_inv,
	                 .max_invocations = MAX_INVOCATIONS,
	                 .has_max_cost_per_invocation = o->has_max_cost,
	                 .max_cost_per_invocation = MAX_COST,
	                 .has_max_total_cost_units = o->has_max_total,
	                 .max_total_cost_units = MAX_TOTAL};

	if (o->hold_id[0])
		m.hold_id = bs_str_from(o->hold_id);
	return m;
}

/* Does the model, in state `m`, give `o` the answer it got? */
static bool model_agrees(model *m, const lop *o)
{
	bs_mutation mut = mutation_of(o);
	bs_outcome out;
	bs_error err;
	int rc = model_apply(m, &mut, 0, &out, &err);

	if (status_of(rc) != o->code)
		return false;
	if (rc != BS_OK)
		return true;
	return out.allowed == o->allowed && (int)out.denial == o->denial &&
	       out.invocation_count_after == o->count_after &&
	       (!o->has_committed || out.committed_after == o->committed_after) &&
	       out.has_commit_index == o->has_ci;
}

typedef struct search {
	const lop *ops;
	int n;
	unsigned char failed[1u << HISTORY_MAX]; /* sets known to lead nowhere */
	int order[HISTORY_MAX];
	uint64_t steps;
} search;

/* The model after the first `depth` calls of s->order. */
static model *replay(const search *s, int depth)
{
	model *m = model_new();

	for (int i = 0; i < depth; i++) {
		bs_mutation mut = mutation_of(&s->ops[s->order[i]]);
		bs_outcome out;
		(void)model_apply(m, &mut, 0, &out, NULL);
	}
	return m;
}

static bool linearize(search *s, unsigned done, int depth)
{
	if (depth == s->n)
		return true;
	if (s->failed[done])
		return false;
	for (int i = 0; i < s->n; i++) {
		if (done & (1u << i))
			continue;
		/* i may go next only if no pending call completed before it began */
		bool minimal = true;
		for (int j = 0; j < s->n && minimal; j++)
			if (j != i && !(done & (1u << j)) && s->ops[j].complete < s->ops[i].invoke)
				minimal = false;
		if (!minimal)
			continue;
		s->steps++;
		model *m = replay(s, depth);
		bool agrees = model_agrees(m, &s->ops[i]);
		model_free(m);
		if (!agrees)
			continue;
		s->order[depth] = i;
		if (linearize(s, done | (1u << i), depth + 1))
			return true;
	}
	s->failed[done] = 1;
	return false;
}

static const char *kind_short(bs_kind k)
{
	switch (k) {
	case BS_KIND_AUTHORIZE_EXPOSURE:
		return "authorize";
	case BS_KIND_INCREMENT_INVOCATION:
		return "increment";
	case BS_KIND_RELEASE_EXPOSURE:
		return "release";
	case BS_KIND_REVERSE_EXPOSURE:
		return "reverse";
	case BS_KIND_RECONCILE_SPEND:
		return "reconcile";
	case BS_KIND_EXPIRE_EXPOSURE:
		return "expire";
	case BS_KIND_EXTEND_HOLD:
		return "extend";
	}
	return "?";
}

static void print_history(const lop *ops, int n)
{
	fprintf(stderr, "history of %s/%" PRIu64 " (%d calls; [invoke, complete]):\n",
	        n ? ops[0].cap : "?", n ? ops[0].grant : 0, n);
	for (int i = 0; i < n; i++) {
		const lop *o = &ops[i];
		fprintf(stderr,
		        "  [%4" PRIu64 ", %4" PRIu64 "] thread %2d %-9s hold %-18s units %3" PRIu64
		        " realized %2" PRIu64 " -> ",
		        o->invoke, o->complete, o->thread, kind_short(o->kind),
		        o->hold_id[0] ? o->hold_id : "-", o->units, o->realized);
		if (o->code)
			fprintf(stderr, "%s: %s\n", bc_status_name(o->code), o->message);
		else
			fprintf(stderr,
			        "%s%s count %u committed %" PRIu64 " commit index %" PRIu64 "\n",
			        o->allowed ? "allowed" : "denied ",
			        o->allowed ? "" : bc_denial_reason_name(o->denial), o->count_after,
			        o->committed_after, o->ci);
	}
}

/* true when the history is linearizable; otherwise it is printed (when
 * `print`). */
static bool check_history(const lop *ops, int n, uint64_t *steps, bool print)
{
	search *s = calloc(1, sizeof(*s));

	cr_assert_not_null(s);
	s->ops = ops;
	s->n = n;
	bool ok = linearize(s, 0, 0);
	*steps += s->steps;
	if (!ok && print) {
		fprintf(stderr, "NOT LINEARIZABLE against the model of store/RULES.md:\n");
		print_history(ops, n);
	}
	free(s);
	return ok;
}

/* ---- the tests ---- */

TestSuite(linearizability, .init = fx_setup, .fini = fx_teardown, .timeout = 300);

static void setup_round(bc_client *c)
{
	for (int g = 0; g < GRANTS_PER_ROUND; g++) {
		for (int k = 0; k < SETUP_HOLDS; k++) {
			lop o = {.thread = -1,
			         .kind = BS_KIND_AUTHORIZE_EXPOSURE,
			         .units = SETUP_UNITS};
			grant_of(round_no, g, o.cap, &o.grant);
			snprintf(o.hold_id, sizeof(o.hold_id), "s-r%03d-g%d-%d", round_no, g, k);
			snprintf(o.event_id, sizeof(o.event_id), "e-r%03d-g%d-setup-%d", round_no,
			         g, k);
			limits_of(&o, g);
			call(c, &o);
			cr_assert_eq(o.code, 0, "setup %s: %s", o.event_id, o.message);
			cr_assert(o.allowed, "setup %s was denied", o.event_id);
			record(&histories[round_no * GRANTS_PER_ROUND + g], &o);
		}
	}
}

typedef struct seq_of {
	char event_id[ID_SIZE];
	uint64_t seq;
} seq_of;

static int cmp_seq_of(const void *a, const void *b)
{
	return strcmp(((const seq_of *)a)->event_id, ((const seq_of *)b)->event_id);
}

/* event_seq of every logged event, sorted by event_id. */
static seq_of *read_seqs(size_t *n)
{
	bc_list_mutation_events_request req = {.limit = 1000};
	seq_of *all = NULL;
	size_t cap = 0;
	bc_error err;

	*n = 0;
	for (;;) {
		bc_event_list list;
		cr_assert_eq(bc_list_mutation_events(client, &req, 0, &list, &err), 0, "%s",
		             err.message);
		for (size_t i = 0; i < list.count; i++) {
			if (*n == cap) {
				cap = cap ? cap * 2 : 1024;
				seq_of *grown = realloc(all, cap * sizeof(*all));
				cr_assert_not_null(grown);
				all = grown;
			}
			snprintf(all[*n].event_id, ID_SIZE, "%s", list.events[i].event_id);
			all[(*n)++].seq = list.events[i].event_seq;
		}
		size_t got = list.count;
		req.after_commit_index = list.next_after_commit_index;
		bc_event_list_free(&list);
		if (got == 0)
			break;
	}
	qsort(all, *n, sizeof(*all), cmp_seq_of);
	return all;
}

Test(linearizability, concurrent_histories_per_grant_match_the_sequential_model)
{
	static racer racers[THREADS];
	pthread_t threads[THREADS];
	uint64_t rng = SEED, steps = 0;
	int bad = 0, failed_calls = 0, ops_total = 0, overlapping = 0;

	for (int i = 0; i < HISTORIES; i++)
		pthread_mutex_init(&histories[i].mu, NULL);
	for (int t = 0; t < THREADS; t++)
		racers[t] = (racer){.id = t,
		                    .c = fx_client(daemon_.tcp_addr, false),
		                    .rng = next_random(&rng) | 1};
	for (round_no = 0; round_no < ROUNDS; round_no++) {
		setup_round(client);
		cr_assert_eq(pthread_barrier_init(&start_line, NULL, THREADS), 0);
		for (int t = 0; t < THREADS; t++)
			cr_assert_eq(pthread_create(&threads[t], NULL, race, &racers[t]), 0);
		for (int t = 0; t < THREADS; t++)
			pthread_join(threads[t], NULL);
		pthread_barrier_destroy(&start_line);
	}
	for (int t = 0; t < THREADS; t++) {
		cr_assert_eq(racers[t].errors, 0, "thread %d: %d unexpected errors, last %s", t,
		             racers[t].errors, racers[t].error);
		bc_client_free(racers[t].c);
	}

	/* Each grant's history against the model. */
	for (int i = 0; i < HISTORIES; i++) {
		const history *h = &histories[i];
		ops_total += h->n;
		for (int k = 0; k < h->n; k++) {
			failed_calls += h->ops[k].code != 0;
			for (int j = k + 1; j < h->n; j++)
				overlapping += h->ops[k].invoke < h->ops[j].complete &&
				               h->ops[j].invoke < h->ops[k].complete;
		}
		if (!check_history(h->ops, h->n, &steps, true))
			bad++;
	}
	fprintf(stderr,
	        "linearizability: %d histories, %d calls (%d refused by a precondition), "
	        "%d pairs of overlapping calls, %" PRIu64 " search steps\n",
	        HISTORIES, ops_total, failed_calls, overlapping, steps);
	cr_assert_eq(bad, 0, "%d of %d histories are not linearizable (printed above)", bad,
	             HISTORIES);

	/* Real time orders the log: a call that completed before another was
	 * invoked has the smaller event_seq (and commit index). */
	size_t n_seqs;
	seq_of *seqs = read_seqs(&n_seqs);
	static const lop *logged[HISTORIES * HISTORY_MAX];
	static uint64_t seq[HISTORIES * HISTORY_MAX];
	int n = 0;
	for (int i = 0; i < HISTORIES; i++)
		for (int k = 0; k < histories[i].n; k++) {
			const lop *o = &histories[i].ops[k];
			seq_of key = {.seq = 0};
			snprintf(key.event_id, ID_SIZE, "%s", o->event_id);
			const seq_of *f = bsearch(&key, seqs, n_seqs, sizeof(*seqs), cmp_seq_of);
			cr_assert_eq(f != NULL, o->code == 0, "%s: logged %d, answered %s",
			             o->event_id, f != NULL, bc_status_name(o->code));
			if (!f)
				continue;
			cr_assert(!o->has_ci || o->ci == f->seq,
			          "%s: commit index %" PRIu64 ", event_seq %" PRIu64, o->event_id,
			          o->ci, f->seq);
			logged[n] = o;
			seq[n++] = f->seq;
		}
	for (int a = 0; a < n; a++)
		for (int b = 0; b < n; b++)
			if (logged[a]->complete < logged[b]->invoke)
				cr_assert_lt(
				        seq[a], seq[b],
				        "%s completed (tick %" PRIu64 ") before %s was invoked "
				        "(tick %" PRIu64 ") but has event_seq %" PRIu64
				        " >= %" PRIu64,
				        logged[a]->event_id, logged[a]->complete,
				        logged[b]->event_id, logged[b]->invoke, seq[a], seq[b]);
	free(seqs);
	for (int i = 0; i < HISTORIES; i++)
		pthread_mutex_destroy(&histories[i].mu);
}

/* The checker itself: histories that no sequential order explains. (The
 * same timeout as the other suite: criterion leaks a timer otherwise.) */
TestSuite(linearizability_checker, .timeout = 300);

static lop incr(uint64_t invoke, uint64_t complete, const char *event, uint32_t count_after)
{
	lop o = {.kind = BS_KIND_INCREMENT_INVOCATION,
	         .invoke = invoke,
	         .complete = complete,
	         .allowed = true,
	         .count_after = count_after,
	         .has_ci = true};

	snprintf(o.cap, sizeof(o.cap), "c");
	snprintf(o.event_id, sizeof(o.event_id), "%s", event);
	return o;
}

Test(linearizability_checker, rejects_answers_in_an_order_real_time_forbids)
{
	/* a completes before b starts, yet a saw b's increment */
	lop h[2] = {incr(1, 2, "a", 2), incr(3, 4, "b", 1)};
	uint64_t steps = 0;

	cr_assert_not(check_history(h, 2, &steps, false));
	/* overlapping, the same answers are fine */
	h[0].complete = 5;
	cr_assert(check_history(h, 2, &steps, false));
}

Test(linearizability_checker, rejects_two_winners_of_one_hold)
{
	lop open = {.kind = BS_KIND_AUTHORIZE_EXPOSURE,
	            .units = 20,
	            .invoke = 1,
	            .complete = 2,
	            .allowed = true,
	            .count_after = 1,
	            .has_committed = true,
	            .committed_after = 20,
	            .has_ci = true};
	snprintf(open.cap, ID_SIZE, "c");
	snprintf(open.hold_id, ID_SIZE, "h");
	snprintf(open.event_id, ID_SIZE, "open");
	lop rel = open;
	rel.kind = BS_KIND_RELEASE_EXPOSURE;
	rel.invoke = 3;
	rel.complete = 6;
	rel.count_after = 1;
	rel.committed_after = 0;
	snprintf(rel.event_id, ID_SIZE, "release");
	lop rev = rel;
	rev.kind = BS_KIND_REVERSE_EXPOSURE;
	rev.invoke = 4;
	rev.complete = 5;
	rev.count_after = 0;
	snprintf(rev.event_id, ID_SIZE, "reverse");
	lop h[3] = {open, rel, rev};
	uint64_t steps = 0;

	cr_assert_not(check_history(h, 3, &steps, false), "both settled the one hold");
	h[1].code = BC_STATUS_FAILED_PRECONDITION;
	cr_assert(check_history(h, 3, &steps, false), "the release lost the race");
}
