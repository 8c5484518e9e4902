/* test_crash.c - SIGKILL budgetd under load, again and again: no
 * acknowledged decision is lost, none is applied twice, no limit is ever
 * exceeded, and the usage rows stay the fold of the mutation log.
 *
 * Client threads run a mixed load (authorize, release, reverse, reconcile,
 * increment) over a few hot grants that every thread shares and many cold
 * ones. Each thread keeps its own holds' state machine, so every settle it
 * sends is one the rules accept; every mutation carries an event_id of its
 * own. Some threads talk to the unix socket (the same address across
 * restarts: their channel reconnects, and the client library's own retries
 * resend the same event_id), the others to the TCP listener, whose port
 * changes at every restart (they make a new client and resend themselves).
 *
 * The main thread kills budgetd with SIGKILL whenever the count of
 * acknowledged mutations reaches the next threshold, drawn by a seeded RNG,
 * and restarts it on the same database. A mutation without an answer is
 * sent again with the same event_id until it is answered. After the cycles
 * (CRASH_CYCLES, default 25; CRASH_SEED to repeat a run) the test checks:
 *  - the mutation log has every acknowledged mutation once, with the
 *    acknowledged outcome and commit index, and nothing else;
 *  - event_seq and commit indices strictly increase along the log;
 *  - the log, replayed in order through the reference model of the rules
 *    (tests/store/model.c), gives every event its recorded outcome;
 *  - no grant ever went past its max_total_cost_units or max_invocations;
 *  - usage rows and holds equal the model's fold of the log;
 *  - a retry of every acknowledged mutation is a replay with the same fields;
 *  - after a clean stop, `budgetd --verify` finds the ledger consistent.
 * Long form by hand: CRASH_CYCLES=100 build/tests/crash/test_crash
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixture.h"
#include "model.h"

#define THREADS              8  /* client threads */
#define UNIX_THREADS         3  /* of them, on the unix socket */
#define HOT_GRANTS           3  /* shared by every thread */
#define COLD_GRANTS          48 /* picked at random */
#define GRANTS               (HOT_GRANTS + COLD_GRANTS)
#define OPEN_HOLDS_MAX       4    /* per thread */
#define CYCLES_DEFAULT       25   /* kill + restart, in the test command */
#define CYCLES_MAX           100  /* CRASH_CYCLES at most */
#define KILL_AFTER_MIN       60   /* acknowledged mutations between two kills */
#define KILL_AFTER_MAX       360  /* ... at most */
#define TAIL_ACKS            120  /* after the last restart */
#define OPS_PER_THREAD_MAX   8192 /* mutations a thread may issue */
#define HOLDS_PER_THREAD_MAX 4096
#define ID_SIZE              40
#define ACK_WAIT_MS          120000 /* the next threshold must come within */
#define ANSWER_WAIT_MS       120000 /* one mutation must be answered within */
#define ATTEMPTS_MAX         1000   /* the thread's attempts of one mutation */
#define UNIX_ATTEMPTS        20     /* the library's attempts of one call (unix) */
#define CALL_DEADLINE_MS     10000
#define LIST_PAGE            1000
#define ERROR_SIZE           512

/* ---- the grants and their limits ---- */

typedef struct grant_spec {
	char cap[24];
	uint64_t grant_index;
	uint64_t max_total; /* every authorize sends it */
	bool has_max_inv;   /* every authorize and increment sends it */
	uint64_t max_inv;
	bool has_max_cost; /* every authorize sends it */
	uint64_t max_cost;
} grant_spec;

static grant_spec grants[GRANTS];

static void init_grants(void)
{
	for (int g = 0; g < GRANTS; g++) {
		grant_spec *s = &grants[g];
		memset(s, 0, sizeof(*s));
		if (g < HOT_GRANTS) {
			snprintf(s->cap, sizeof(s->cap), "hot");
			s->grant_index = (uint64_t)g;
			s->max_total = g == 0 ? 40000 : g == 1 ? 12000 : 4000;
		} else {
			snprintf(s->cap, sizeof(s->cap), "cold-%02d", g - HOT_GRANTS);
			s->grant_index = 1000u + (uint64_t)(g % 4);
			s->max_total = 1500;
		}
		s->has_max_inv = g % 2 == 1;
		s->max_inv = g < HOT_GRANTS ? 400 : 25;
		s->has_max_cost = g % 3 == 2;
		s->max_cost = 80;
	}
}

/* ---- what the threads record ---- */

typedef struct op {
	char event_id[ID_SIZE];
	bc_mutation_kind kind;
	int grant;
	char hold_id[ID_SIZE]; /* "" when none (increment) */
	uint64_t units;        /* requested / released / reversed / exposed */
	uint64_t realized;     /* reconcile */
	/* the acknowledged answer */
	bool acked;
	bool allowed;
	int denial;
	bool has_ci;
	uint64_t ci;
	uint32_t count_after;
	bool has_committed; /* not for increment */
	uint64_t committed_after;
	bool replayed;
	int attempts;
} op;

typedef struct hold {
	char id[ID_SIZE];
	int grant;
	uint64_t authorized;
	uint64_t remaining;
	bc_hold_disposition disposition;
} hold;

typedef struct worker {
	int id;
	pthread_t thread;
	uint64_t rng;
	bool unix_socket;
	bc_client *c;
	unsigned generation; /* of the daemon c talks to (TCP) */
	op *ops;
	size_t n_ops;
	hold *holds;
	size_t n_holds;
	int open[OPEN_HOLDS_MAX]; /* indexes into holds */
	int n_open;
	uint64_t retried;  /* attempts beyond the first */
	uint64_t replayed; /* answers that were replays */
	char error[ERROR_SIZE];
} worker;

/* ---- shared state: the daemon's life, under mu ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER; /* acks, generation, stop */
static uint64_t acks;
static uint64_t ack_target = UINT64_MAX; /* main wants a signal at this count */
static unsigned generation;              /* restarts so far */
static bool down;                        /* killed, not yet restarted */
static bool stopping;                    /* no new mutations */
static bool failed;                      /* a thread gave up */
static char tcp_addr[64];

static uint64_t seed;
static worker workers[THREADS];

#define check(cond, ...) cr_assert(cond, "[seed %" PRIu64 "] %s", seed, fmt_msg(__VA_ARGS__))

__attribute__((format(printf, 1, 2))) static const char *fmt_msg(const char *fmt, ...)
{
	static char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return buf;
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

static uint64_t rand_range(uint64_t *s, uint64_t lo, uint64_t hi)
{
	return lo + next_random(s) % (hi - lo + 1);
}

static struct timespec deadline_after(int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

__attribute__((format(printf, 2, 3))) static void give_up(worker *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->error, sizeof(w->error), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&mu);
	failed = true;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&mu);
}

static bc_client *new_client(const char *target, bool unix_socket)
{
	/* Unix-socket clients keep their channel across restarts: the
	 * library's own retries (same event_id) wait for it to reconnect, with
	 * a short backoff. TCP clients make one attempt per call: the thread
	 * retries, on a new client after a restart. */
	bc_options o = {.target = target,
	                .deadline_ms = CALL_DEADLINE_MS,
	                .disable_retries = !unix_socket,
	                .max_attempts = unix_socket ? UNIX_ATTEMPTS : 0,
	                .backoff_base_ms = unix_socket ? 10 : 0,
	                .backoff_max_ms = unix_socket ? 100 : 0};
	bc_client *c = NULL;
	bc_error err;

	if (bc_client_new(&o, &c, &err) != 0)
		return NULL;
	return c;
}

/* ---- one mutation, sent until it is answered ---- */

static void fill_meta(op *o, const bc_commit_metadata *md)
{
	o->has_ci = md->has_budget_commit_index;
	o->ci = md->budget_commit_index;
	o->replayed = md->replayed;
}

/* One attempt. 0, or minus a gRPC status (err set). */
static int attempt(bc_client *c, op *o, bc_error *err)
{
	const grant_spec *g = &grants[o->grant];
	int rc;

	switch (o->kind) {
	case BC_MUTATION_KIND_AUTHORIZE_EXPOSURE: {
		bc_authorize_hold_request req = {
		        .capability_id = g->cap,
		        .grant_index = g->grant_index,
		        .has_max_invocations = g->has_max_inv,
		        .max_invocations = g->max_inv,
		        .requested_exposure_units = o->units,
		        .has_max_cost_per_invocation = g->has_max_cost,
		        .max_cost_per_invocation = g->max_cost,
		        .has_max_total_cost_units = true,
		        .max_total_cost_units = g->max_total,
		        .hold_id = o->hold_id,
		        .event_id = o->event_id,
		};
		bc_authorize_hold_result r;
		rc = bc_authorize_hold(c, &req, 0, &r, err);
		if (rc == 0) {
			o->allowed = r.authorized;
			o->denial = r.denial_reason;
			o->count_after = r.invocation_count_after;
			o->has_committed = true;
			o->committed_after = r.committed_cost_units_after;
			fill_meta(o, &r.metadata);
		}
		bc_authorize_hold_result_free(&r);
		return rc;
	}
	case BC_MUTATION_KIND_INCREMENT_INVOCATION: {
		bc_increment_invocation_request req = {
		        .capability_id = g->cap,
		        .grant_index = g->grant_index,
		        .has_max_invocations = g->has_max_inv,
		        .max_invocations = g->max_inv,
		        .event_id = o->event_id,
		};
		bc_increment_invocation_result r;
		rc = bc_increment_invocation(c, &req, 0, &r, err);
		if (rc == 0) {
			o->allowed = r.allowed;
			o->denial = r.allowed ? 0 : BC_DENIAL_REASON_MAX_INVOCATIONS;
			o->count_after = r.invocation_count_after;
			o->has_committed = false;
			fill_meta(o, &r.metadata);
		}
		bc_increment_invocation_result_free(&r);
		return rc;
	}
	case BC_MUTATION_KIND_RELEASE_EXPOSURE:
	case BC_MUTATION_KIND_REVERSE_EXPOSURE:
	case BC_MUTATION_KIND_RECONCILE_SPEND: {
		bc_hold_mutation_result r;
		if (o->kind == BC_MUTATION_KIND_RELEASE_EXPOSURE) {
			bc_release_hold_request req = {.capability_id = g->cap,
			                               .grant_index = g->grant_index,
			                               .hold_id = o->hold_id,
			                               .released_exposure_units = o->units,
			                               .event_id = o->event_id};
			rc = bc_release_hold(c, &req, 0, &r, err);
		} else if (o->kind == BC_MUTATION_KIND_REVERSE_EXPOSURE) {
			bc_reverse_hold_request req = {.capability_id = g->cap,
			                               .grant_index = g->grant_index,
			                               .hold_id = o->hold_id,
			                               .reversed_exposure_units = o->units,
			                               .event_id = o->event_id};
			rc = bc_reverse_hold(c, &req, 0, &r, err);
		} else {
			bc_reconcile_hold_request req = {.capability_id = g->cap,
			                                 .grant_index = g->grant_index,
			                                 .hold_id = o->hold_id,
			                                 .exposed_cost_units = o->units,
			                                 .realized_spend_units = o->realized,
			                                 .event_id = o->event_id};
			rc = bc_reconcile_hold(c, &req, 0, &r, err);
		}
		if (rc == 0) {
			o->allowed = true;
			o->denial = 0;
			o->count_after = r.invocation_count_after;
			o->has_committed = true;
			o->committed_after = r.committed_cost_units_after;
			fill_meta(o, &r.metadata);
			if (r.exposure_units != o->units || r.realized_spend_units != o->realized) {
				err->code = BC_STATUS_INTERNAL;
				snprintf(err->message, sizeof(err->message),
				         "the reply says exposure %" PRIu64 ", realized %" PRIu64,
				         r.exposure_units, r.realized_spend_units);
				rc = -BC_STATUS_INTERNAL;
			}
		}
		bc_hold_mutation_result_free(&r);
		return rc;
	}
	case BC_MUTATION_KIND_UNSPECIFIED:
	case BC_MUTATION_KIND_EXPIRE_EXPOSURE: /* this test neither expires nor extends */
	case BC_MUTATION_KIND_EXTEND_HOLD:
		break;
	}
	err->code = BC_STATUS_INTERNAL;
	snprintf(err->message, sizeof(err->message), "bad kind %d", (int)o->kind);
	return -BC_STATUS_INTERNAL;
}

static bool transient(int rc)
{
	return rc == -BC_STATUS_UNAVAILABLE || rc == -BC_STATUS_DEADLINE_EXCEEDED ||
	       rc == -BC_STATUS_CANCELLED || rc == -BC_STATUS_RESOURCE_EXHAUSTED;
}

/* The client to use for the current daemon; NULL when the thread must give
 * up. A TCP client is replaced after every restart (new port). */
static bc_client *current_client(worker *w)
{
	char addr[64];
	unsigned gen;

	if (w->unix_socket)
		return w->c;
	pthread_mutex_lock(&mu);
	gen = generation;
	snprintf(addr, sizeof(addr), "%s", tcp_addr);
	pthread_mutex_unlock(&mu);
	if (w->c && w->generation == gen)
		return w->c;
	bc_client_free(w->c);
	w->c = new_client(addr, false);
	w->generation = gen;
	return w->c;
}

/* Sends `o` until it is answered. false when the thread gave up. */
static bool send_until_answered(worker *w, op *o)
{
	struct timespec until = deadline_after(ANSWER_WAIT_MS);
	bc_error err = {0};

	for (o->attempts = 1; o->attempts <= ATTEMPTS_MAX; o->attempts++) {
		pthread_mutex_lock(&mu);
		unsigned gen = generation;
		pthread_mutex_unlock(&mu);
		bc_client *c = current_client(w);
		if (!c) {
			give_up(w, "cannot create a client");
			return false;
		}
		int rc = attempt(c, o, &err);
		if (rc == 0) {
			o->acked = true;
			w->replayed += o->replayed;
			pthread_mutex_lock(&mu);
			acks++;
			if (acks >= ack_target)
				pthread_cond_broadcast(&changed);
			pthread_mutex_unlock(&mu);
			return true;
		}
		if (!transient(rc)) {
			give_up(w, "%s: event %s: %s: %s (attempt %d)",
			        bc_mutation_kind_name(o->kind), o->event_id,
			        bc_status_name(err.code), err.message, o->attempts);
			return false;
		}
		w->retried++;
		/* Killed: wait (bounded) for the restart before the next try.
		 * Otherwise (the channel reconnects, a slow reply) try again. */
		pthread_mutex_lock(&mu);
		int wrc = 0;
		while (down && generation == gen && !failed && wrc == 0)
			wrc = pthread_cond_timedwait(&changed, &mu, &until);
		bool gave_up = failed;
		pthread_mutex_unlock(&mu);
		if (gave_up)
			return false;
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		if (wrc != 0 || now.tv_sec > until.tv_sec) {
			give_up(w, "%s: event %s: no answer in %d ms (last: %s: %s)",
			        bc_mutation_kind_name(o->kind), o->event_id, ANSWER_WAIT_MS,
			        bc_status_name(err.code), err.message);
			return false;
		}
	}
	give_up(w, "event %s: no answer after %d attempts (last: %s)", o->event_id, ATTEMPTS_MAX,
	        err.message);
	return false;
}

/* ---- the thread's workload: a state machine per hold ---- */

static int pick_grant(worker *w)
{
	if (next_random(&w->rng) % 2)
		return (int)(next_random(&w->rng) % HOT_GRANTS);
	return HOT_GRANTS + (int)(next_random(&w->rng) % COLD_GRANTS);
}

/* Fills the next mutation; NULL when the thread's arrays are full. */
static op *next_op(worker *w, int *open_slot)
{
	if (w->n_ops == OPS_PER_THREAD_MAX || w->n_holds == HOLDS_PER_THREAD_MAX)
		return NULL;
	op *o = &w->ops[w->n_ops];
	uint64_t r = next_random(&w->rng) % 100;

	memset(o, 0, sizeof(*o));
	snprintf(o->event_id, sizeof(o->event_id), "ev-t%02d-%06zu", w->id, w->n_ops);
	*open_slot = -1;
	if (r < 15 || (w->n_open == 0 && r < 40)) {
		o->kind = BC_MUTATION_KIND_INCREMENT_INVOCATION;
		o->grant = pick_grant(w);
	} else if (w->n_open < OPEN_HOLDS_MAX && (r < 55 || w->n_open == 0)) {
		o->kind = BC_MUTATION_KIND_AUTHORIZE_EXPOSURE;
		o->grant = pick_grant(w);
		o->units = rand_range(&w->rng, 1, 100);
		snprintf(o->hold_id, sizeof(o->hold_id), "h-t%02d-%06zu", w->id, w->n_holds);
	} else {
		*open_slot = (int)(next_random(&w->rng) % (uint64_t)w->n_open);
		const hold *h = &w->holds[w->open[*open_slot]];
		snprintf(o->hold_id, sizeof(o->hold_id), "%s", h->id);
		o->grant = h->grant;
		uint64_t how = next_random(&w->rng) % 4;
		if (how == 0 && h->remaining > 1) {
			o->kind = BC_MUTATION_KIND_RELEASE_EXPOSURE;
			o->units = rand_range(&w->rng, 1, h->remaining - 1);
		} else if (how <= 1) {
			o->kind = BC_MUTATION_KIND_RELEASE_EXPOSURE;
			o->units = h->remaining;
		} else if (how == 2) {
			o->kind = BC_MUTATION_KIND_REVERSE_EXPOSURE;
			o->units = h->remaining;
		} else {
			o->kind = BC_MUTATION_KIND_RECONCILE_SPEND;
			o->units = h->remaining;
			o->realized = rand_range(&w->rng, 0, h->remaining / 3);
		}
	}
	w->n_ops++;
	return o;
}

/* Moves the thread's holds along with an acknowledged answer. */
static void apply_answer(worker *w, const op *o, int open_slot)
{
	if (o->kind == BC_MUTATION_KIND_AUTHORIZE_EXPOSURE) {
		if (!o->allowed)
			return;
		hold *h = &w->holds[w->n_holds];
		snprintf(h->id, sizeof(h->id), "%s", o->hold_id);
		h->grant = o->grant;
		h->authorized = h->remaining = o->units;
		h->disposition = BC_HOLD_DISPOSITION_OPEN;
		w->open[w->n_open++] = (int)w->n_holds++;
		return;
	}
	if (open_slot < 0)
		return;
	hold *h = &w->holds[w->open[open_slot]];
	h->remaining -= o->units;
	if (o->kind == BC_MUTATION_KIND_RELEASE_EXPOSURE && h->remaining > 0)
		return;
	h->remaining = 0;
	h->disposition = o->kind == BC_MUTATION_KIND_RELEASE_EXPOSURE ? BC_HOLD_DISPOSITION_RELEASED
	                 : o->kind == BC_MUTATION_KIND_REVERSE_EXPOSURE
	                         ? BC_HOLD_DISPOSITION_REVERSED
	                         : BC_HOLD_DISPOSITION_RECONCILED;
	w->open[open_slot] = w->open[--w->n_open];
}

static void *worker_main(void *arg)
{
	worker *w = arg;

	for (;;) {
		pthread_mutex_lock(&mu);
		bool stop = stopping || failed;
		pthread_mutex_unlock(&mu);
		if (stop)
			break;
		int slot;
		op *o = next_op(w, &slot);
		if (!o) {
			give_up(w, "out of room for mutations (%d at most)", OPS_PER_THREAD_MAX);
			break;
		}
		if (!send_until_answered(w, o))
			break;
		/* (the library's retries may end in a replay) */
		if (!w->unix_socket && o->attempts == 1 && o->replayed) {
			give_up(w, "event %s: the first attempt was answered as a replay",
			        o->event_id);
			break;
		}
		apply_answer(w, o, slot);
	}
	return NULL;
}

/* ---- the killer ---- */

static td_daemon d;

static void restart(void)
{
	pthread_mutex_lock(&mu);
	down = true;
	pthread_mutex_unlock(&mu);
	td_kill(&d);
	check(td_start(&d, NULL) == 0, "budgetd did not restart after a kill");
	pthread_mutex_lock(&mu);
	snprintf(tcp_addr, sizeof(tcp_addr), "%s", d.tcp_addr);
	generation++;
	down = false;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&mu);
}

/* Waits (bounded) until `target` mutations were acknowledged. */
static void wait_acks(uint64_t target)
{
	struct timespec until = deadline_after(ACK_WAIT_MS);
	int rc = 0;

	pthread_mutex_lock(&mu);
	ack_target = target;
	while (acks < target && !failed && rc == 0)
		rc = pthread_cond_timedwait(&changed, &mu, &until);
	uint64_t got = acks;
	bool f = failed;
	pthread_mutex_unlock(&mu);
	if (f)
		return; /* the threads' errors are reported after the join */
	check(got >= target, "only %" PRIu64 " of %" PRIu64 " acknowledgements in %d ms", got,
	      target, ACK_WAIT_MS);
}

/* ---- the checks ---- */

typedef struct logged {
	bc_mutation_event e;
	const op *o; /* the mutation that recorded it */
} logged;

static bc_mutation_event *log_events;
static size_t n_log;

static void read_log(bc_client *c)
{
	bc_list_mutation_events_request req = {.limit = LIST_PAGE};
	size_t cap = 0;
	bc_error err;

	for (;;) {
		bc_event_list list;
		check(bc_list_mutation_events(c, &req, 30000, &list, &err) == 0,
		      "ListMutationEvents: %s", err.message);
		if (n_log + list.count > cap) {
			cap = (n_log + list.count) * 2;
			bc_mutation_event *grown = realloc(log_events, cap * sizeof(*log_events));
			cr_assert_not_null(grown);
			log_events = grown;
		}
		/* The events' strings now belong to log_events. */
		if (list.count)
			memcpy(&log_events[n_log], list.events, list.count * sizeof(*list.events));
		n_log += list.count;
		size_t n = list.count;
		req.after_commit_index = list.next_after_commit_index;
		free(list.events);
		if (n == 0)
			break;
	}
}

static void free_log(void)
{
	for (size_t i = 0; i < n_log; i++) {
		bc_event_list one = {.count = 1, .events = malloc(sizeof(bc_mutation_event))};
		cr_assert_not_null(one.events);
		one.events[0] = log_events[i];
		bc_event_list_free(&one);
	}
	free(log_events);
	log_events = NULL;
	n_log = 0;
}

static int cmp_op_ptr(const void *a, const void *b)
{
	return strcmp((*(const op *const *)a)->event_id, (*(const op *const *)b)->event_id);
}

static const op *find_op(const op **sorted, size_t n, const char *event_id)
{
	op key = {.kind = BC_MUTATION_KIND_UNSPECIFIED};
	const op *k = &key;

	snprintf(key.event_id, sizeof(key.event_id), "%s", event_id);
	const op **found = bsearch(&k, sorted, n, sizeof(*sorted), cmp_op_ptr);
	return found ? *found : NULL;
}

static bs_mutation to_mutation(const op *o)
{
	const grant_spec *g = &grants[o->grant];
	bs_mutation m = {.kind = (bs_kind)o->kind,
	                 .capability_id = bs_str_from(g->cap),
	                 .grant_index = g->grant_index,
	                 .event_id = bs_str_from(o->event_id),
	                 .exposure_units = o->units,
	                 .realized_units = o->realized};

	if (o->hold_id[0])
		m.hold_id = bs_str_from(o->hold_id);
	if (o->kind == BC_MUTATION_KIND_AUTHORIZE_EXPOSURE) {
		m.has_max_total_cost_units = true;
		m.max_total_cost_units = g->max_total;
		m.has_max_cost_per_invocation = g->has_max_cost;
		m.max_cost_per_invocation = g->max_cost;
	}
	if (o->kind == BC_MUTATION_KIND_AUTHORIZE_EXPOSURE ||
	    o->kind == BC_MUTATION_KIND_INCREMENT_INVOCATION) {
		m.has_max_invocations = g->has_max_inv;
		m.max_invocations = g->max_inv;
	}
	return m;
}

/* The log against the acknowledgements, the rules and the limits. */
static void check_log(const op **sorted, size_t n_ops)
{
	model *m = model_new();
	char *seen = calloc(n_ops, 1);

	cr_assert_not_null(seen);
	for (size_t i = 0; i < n_log; i++) {
		const bc_mutation_event *e = &log_events[i];
		const op *o = find_op(sorted, n_ops, e->event_id);

		check(o, "event %s (seq %" PRIu64 ") was never sent", e->event_id, e->event_seq);
		size_t k = (size_t)((const op **)bsearch(&o, sorted, n_ops, sizeof(*sorted),
		                                         cmp_op_ptr) -
		                    sorted);
		check(!seen[k], "event %s is in the log twice (seq %" PRIu64 ")", e->event_id,
		      e->event_seq);
		seen[k] = 1;
		/* sequence: strictly increasing, without gaps */
		check(e->event_seq == i + 1, "event %s at log position %zu has seq %" PRIu64,
		      e->event_id, i + 1, e->event_seq);
		if (i > 0 && e->has_usage_seq)
			for (size_t j = i; j-- > 0;)
				if (log_events[j].has_usage_seq) {
					check(log_events[j].usage_seq < e->usage_seq,
					      "commit index %" PRIu64 " of %s follows %" PRIu64
					      " of %s",
					      e->usage_seq, e->event_id, log_events[j].usage_seq,
					      log_events[j].event_id);
					break;
				}
		/* the request */
		const grant_spec *g = &grants[o->grant];
		check(e->kind == o->kind && strcmp(e->capability_id, g->cap) == 0 &&
		              e->grant_index == g->grant_index &&
		              strcmp(e->hold_id ? e->hold_id : "", o->hold_id) == 0,
		      "event %s: logged %s %s/%" PRIu64 " hold %s; sent %s %s/%" PRIu64 " hold %s",
		      e->event_id, bc_mutation_kind_name(e->kind), e->capability_id, e->grant_index,
		      e->hold_id ? e->hold_id : "-", bc_mutation_kind_name(o->kind), g->cap,
		      g->grant_index, o->hold_id);
		/* the acknowledged answer */
		bool allowed = e->has_allowed ? e->allowed : true;
		check(allowed == o->allowed && (int)e->denial_reason == o->denial &&
		              e->has_usage_seq == o->has_ci &&
		              (!o->has_ci || e->usage_seq == o->ci) &&
		              e->invocation_count_after == o->count_after &&
		              (!o->has_committed ||
		               e->total_cost_exposed_after + e->total_cost_realized_spend_after ==
		                       o->committed_after),
		      "event %s: logged allowed %d denial %d commit index %s%" PRIu64
		      " count %u committed %" PRIu64 "; acknowledged allowed %d denial %d commit "
		      "index %s%" PRIu64 " count %u committed %" PRIu64 " (attempts %d)",
		      e->event_id, allowed, (int)e->denial_reason, e->has_usage_seq ? "" : "none ",
		      e->usage_seq, e->invocation_count_after,
		      e->total_cost_exposed_after + e->total_cost_realized_spend_after, o->allowed,
		      o->denial, o->has_ci ? "" : "none ", o->ci, o->count_after,
		      o->committed_after, o->attempts);
		check(!e->has_usage_seq || e->usage_seq == e->event_seq,
		      "event %s: commit index %" PRIu64 " but seq %" PRIu64, e->event_id,
		      e->usage_seq, e->event_seq);
		/* the limits */
		check(e->total_cost_exposed_after + e->total_cost_realized_spend_after <=
		              g->max_total,
		      "event %s: %s/%" PRIu64 " committed %" PRIu64 " > max_total %" PRIu64,
		      e->event_id, g->cap, g->grant_index,
		      e->total_cost_exposed_after + e->total_cost_realized_spend_after,
		      g->max_total);
		check(!g->has_max_inv || e->invocation_count_after <= g->max_inv,
		      "event %s: %s/%" PRIu64 " invocations %u > max_invocations %" PRIu64,
		      e->event_id, g->cap, g->grant_index, e->invocation_count_after, g->max_inv);
		/* the rules: the model, fed the log in order, agrees */
		bs_mutation mut = to_mutation(o);
		bs_outcome out;
		bs_error err;
		int rc = model_apply(m, &mut, 0, &out, &err);
		check(rc == BS_OK, "event %s: the model rejects it after %zu events: %s",
		      e->event_id, i, err.message);
		check(!out.replayed && out.event_seq == e->event_seq && out.allowed == allowed &&
		              (int)out.denial == (int)e->denial_reason &&
		              out.has_commit_index == e->has_usage_seq &&
		              out.invocation_count_after == e->invocation_count_after &&
		              out.exposed_after == e->total_cost_exposed_after &&
		              out.realized_after == e->total_cost_realized_spend_after,
		      "event %s (seq %" PRIu64 "): the model says allowed %d denial %d count %u "
		      "exposed %" PRIu64 " realized %" PRIu64 "; the log says allowed %d denial %d "
		      "count %u exposed %" PRIu64 " realized %" PRIu64,
		      e->event_id, e->event_seq, out.allowed, (int)out.denial,
		      out.invocation_count_after, out.exposed_after, out.realized_after, allowed,
		      (int)e->denial_reason, e->invocation_count_after, e->total_cost_exposed_after,
		      e->total_cost_realized_spend_after);
	}

	for (size_t k = 0; k < n_ops; k++)
		check(seen[k], "acknowledged event %s (commit index %" PRIu64 ") is not in the log",
		      sorted[k]->event_id, sorted[k]->ci);

	/* The fold: usage rows and holds. */
	bc_client *c = new_client(d.tcp_addr, false);
	bc_error err;
	cr_assert_not_null(c);
	for (int g = 0; g < GRANTS; g++) {
		bs_usage mu_;
		bool in_model = model_get_usage(m, bs_str_from(grants[g].cap),
		                                (uint32_t)grants[g].grant_index, &mu_);
		bc_usage_result u;
		check(bc_get_usage(c, grants[g].cap, grants[g].grant_index, 30000, &u, &err) == 0,
		      "GetUsage: %s", err.message);
		check(u.found == in_model, "%s/%" PRIu64 ": usage row found %d, model %d",
		      grants[g].cap, grants[g].grant_index, u.found, in_model);
		if (u.found)
			check(u.usage.invocation_count == mu_.invocation_count &&
			              u.usage.total_cost_exposed == mu_.total_cost_exposed &&
			              u.usage.total_cost_realized_spend ==
			                      mu_.total_cost_realized_spend &&
			              u.usage.seq == mu_.seq,
			      "%s/%" PRIu64 ": usage %u/%" PRIu64 "/%" PRIu64 " seq %" PRIu64
			      "; the fold of the log %u/%" PRIu64 "/%" PRIu64 " seq %" PRIu64,
			      grants[g].cap, grants[g].grant_index, u.usage.invocation_count,
			      u.usage.total_cost_exposed, u.usage.total_cost_realized_spend,
			      u.usage.seq, mu_.invocation_count, mu_.total_cost_exposed,
			      mu_.total_cost_realized_spend, mu_.seq);
		bc_usage_result_free(&u);
	}
	for (int t = 0; t < THREADS; t++) {
		for (size_t i = 0; i < workers[t].n_holds; i++) {
			const hold *h = &workers[t].holds[i];
			bs_hold mh;
			bc_hold got;
			check(model_get_hold(m, bs_str_from(h->id), &mh),
			      "hold %s: not in the model", h->id);
			check(bc_get_hold(c, h->id, 30000, &got, &err) == 0, "GetHold %s: %s",
			      h->id, err.message);
			check(got.remaining_exposure_units == h->remaining &&
			              got.authorized_exposure_units == h->authorized &&
			              got.disposition == h->disposition &&
			              mh.remaining_units == h->remaining &&
			              (int)mh.disposition == (int)h->disposition,
			      "hold %s: daemon %s remaining %" PRIu64
			      ", model %d remaining %" PRIu64
			      ", the thread's %s remaining %" PRIu64,
			      h->id, bc_hold_disposition_name(got.disposition),
			      got.remaining_exposure_units, (int)mh.disposition, mh.remaining_units,
			      bc_hold_disposition_name(h->disposition), h->remaining);
			bc_hold_free(&got);
		}
	}
	bc_client_free(c);
	model_free(m);
	free(seen);
}

/* A retry of every acknowledged mutation is a replay with the same fields. */
static void check_replays(const op **sorted, size_t n_ops)
{
	bc_client *c = new_client(d.unix_addr, true);

	cr_assert_not_null(c);
	for (size_t i = 0; i < n_ops; i++) {
		op again = *sorted[i];
		bc_error err;

		memset(&again.acked, 0, sizeof(again) - offsetof(op, acked));
		int rc = attempt(c, &again, &err);
		check(rc == 0, "retry of %s: %s: %s", again.event_id, bc_status_name(err.code),
		      err.message);
		const op *o = sorted[i];
		check(again.replayed && again.allowed == o->allowed && again.denial == o->denial &&
		              again.has_ci == o->has_ci && again.ci == o->ci &&
		              again.count_after == o->count_after &&
		              again.committed_after == o->committed_after,
		      "retry of %s: replayed %d allowed %d denial %d commit index %" PRIu64
		      " count %u committed %" PRIu64 "; first answer allowed %d denial %d commit "
		      "index %" PRIu64 " count %u committed %" PRIu64,
		      o->event_id, again.replayed, again.allowed, again.denial, again.ci,
		      again.count_after, again.committed_after, o->allowed, o->denial, o->ci,
		      o->count_after, o->committed_after);
	}
	bc_client_free(c);
}

static int env_int(const char *name, int dflt, int lo, int hi)
{
	const char *v = getenv(name);

	if (!v || !*v)
		return dflt;
	int n = atoi(v);
	cr_assert(n >= lo && n <= hi, "%s must be in %d..%d", name, lo, hi);
	return n;
}

static uint64_t env_seed(void)
{
	const char *v = getenv("CRASH_SEED");
	struct timespec ts;

	if (v && *v)
		return strtoull(v, NULL, 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void teardown(void)
{
	for (int t = 0; t < THREADS; t++) {
		bc_client_free(workers[t].c);
		free(workers[t].ops);
		free(workers[t].holds);
	}
	free_log();
	td_cleanup(&d);
}

TestSuite(crash, .fini = teardown, .timeout = 1800);

Test(crash, sigkill_under_load_loses_no_acknowledged_mutation_and_applies_none_twice)
{
	int cycles = env_int("CRASH_CYCLES", CYCLES_DEFAULT, 1, CYCLES_MAX);
	uint64_t rng;

	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	seed = env_seed();
	rng = seed | 1;
	fprintf(stderr, "crash: seed %" PRIu64 ", %d cycles (repeat with CRASH_SEED=%" PRIu64 ")\n",
	        seed, cycles, seed);
	init_grants();
	memset(&d, 0, sizeof(d));
	d.notify_fd = -1;
	cr_assert_eq(td_start(&d, NULL), 0, "budgetd did not start");
	snprintf(tcp_addr, sizeof(tcp_addr), "%s", d.tcp_addr);

	for (int t = 0; t < THREADS; t++) {
		worker *w = &workers[t];
		w->id = t;
		w->rng = next_random(&rng) | 1;
		w->unix_socket = t < UNIX_THREADS;
		w->ops = calloc(OPS_PER_THREAD_MAX, sizeof(*w->ops));
		w->holds = calloc(HOLDS_PER_THREAD_MAX, sizeof(*w->holds));
		cr_assert(w->ops && w->holds);
		if (w->unix_socket)
			cr_assert_not_null(w->c = new_client(d.unix_addr, true));
	}
	for (int t = 0; t < THREADS; t++)
		cr_assert_eq(pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]), 0);

	uint64_t target = 0;
	for (int k = 0; k < cycles && !failed; k++) {
		target += rand_range(&rng, KILL_AFTER_MIN, KILL_AFTER_MAX);
		wait_acks(target);
		if (failed)
			break;
		restart();
	}
	if (!failed)
		wait_acks(target + TAIL_ACKS);
	pthread_mutex_lock(&mu);
	stopping = true;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&mu);
	for (int t = 0; t < THREADS; t++)
		pthread_join(workers[t].thread, NULL);
	for (int t = 0; t < THREADS; t++)
		check(!workers[t].error[0], "thread %d: %s", t, workers[t].error);

	/* Every mutation sent was answered; sort them by event_id. */
	size_t n_ops = 0, k = 0, denied = 0;
	uint64_t retried = 0, replayed = 0;
	for (int t = 0; t < THREADS; t++) {
		n_ops += workers[t].n_ops;
		retried += workers[t].retried;
		replayed += workers[t].replayed;
		for (size_t i = 0; i < workers[t].n_ops; i++)
			denied += !workers[t].ops[i].allowed;
	}
	const op **sorted = calloc(n_ops, sizeof(*sorted));
	cr_assert_not_null(sorted);
	for (int t = 0; t < THREADS; t++)
		for (size_t i = 0; i < workers[t].n_ops; i++) {
			check(workers[t].ops[i].acked, "event %s was never answered",
			      workers[t].ops[i].event_id);
			sorted[k++] = &workers[t].ops[i];
		}
	qsort(sorted, n_ops, sizeof(*sorted), cmp_op_ptr);
	fprintf(stderr,
	        "crash: %d kills, %zu mutations acknowledged (%zu denied by a limit), %" PRIu64
	        " attempts retried, %" PRIu64 " answered as replays; load took %.1f s\n",
	        cycles, n_ops, denied, retried, replayed, seconds_since(&t0));

	bc_client *c = new_client(d.tcp_addr, false);
	cr_assert_not_null(c);
	read_log(c);
	bc_client_free(c);
	check_log(sorted, n_ops);
	check_replays(sorted, n_ops);

	/* A clean stop, then the ledger is verified offline. (The clients go
	 * first: budgetd's stop waits for open connections, up to its grace.) */
	for (int t = 0; t < THREADS; t++) {
		bc_client_free(workers[t].c);
		workers[t].c = NULL;
	}
	check(td_stop(&d) == 0, "budgetd did not exit cleanly");
	char out[4096];
	int rc = td_run_once((const char *const[]){"--verify", "--db", d.db, NULL}, out,
	                     sizeof(out), 120000);
	check(rc == 0, "budgetd --verify exited with %d: %s", rc, out);
	fprintf(stderr, "crash: checked in %.1f s in all\n", seconds_since(&t0));
	free(sorted);
}
