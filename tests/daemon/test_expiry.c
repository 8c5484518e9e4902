/* test_expiry.c - hold deadlines against a real budgetd: each on_expiry
 * policy, the --hold-ttl/--on-expiry defaults, ExtendHold, settle against
 * expiry (one winner, whichever it is), holds that fell due while budgetd
 * was down, ListHolds filters and pages, and a mass expiry under live
 * traffic.
 *
 * Time moves through the test hook BUDGETD_TEST_CLOCK_FILE (an offset in
 * seconds, replaced atomically). No sleeps: the tests wait for expire
 * events on a WatchMutationEvents stream, with a bounded deadline. Expiry
 * runs in deadline order, so a "sentinel" hold with a later deadline proves
 * that every hold due before it was decided. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

#define TTL_S             60
#define PAST_TTL_S        120    /* a clock offset past every TTL_S deadline */
#define WATCH_DEADLINE_MS 120000 /* a bound for a stuck test, never reached */
#define ID_LEN_MAX        64
#define EXPIRY_BATCH_MAX  256 /* BD_BATCH_MUTATIONS_MAX */
#define NS_PER_S          1000000000LL

static char clock_file[96], clock_env[160];
static char fault_file[96], fault_env[160];

static void start_with(const char *const *extra, bool faults)
{
	static const char *env[3];

	memset(&daemon_, 0, sizeof(daemon_));
	client = NULL;
	snprintf(clock_file, sizeof(clock_file), "/tmp/budgetd-clock-%d", (int)getpid());
	unlink(clock_file);
	snprintf(clock_env, sizeof(clock_env), "BUDGETD_TEST_CLOCK_FILE=%s", clock_file);
	snprintf(fault_file, sizeof(fault_file), "/tmp/budgetd-expiry-faults-%d", (int)getpid());
	unlink(fault_file);
	snprintf(fault_env, sizeof(fault_env), "BUDGETD_TEST_FAULT_FILE=%s", fault_file);
	env[0] = clock_env;
	env[1] = faults ? fault_env : NULL;
	env[2] = NULL;
	daemon_.env = env;
	fx_start(extra, NULL);
}

static void setup_expiry(void)
{
	start_with(NULL, false);
}

static void setup_defaults(void)
{
	static const char *args[] = {"--hold-ttl", "60", "--on-expiry", "release", NULL};

	start_with(args, false);
}

static void setup_faults(void)
{
	start_with(NULL, true);
}

static void teardown_expiry(void)
{
	unlink(clock_file);
	unlink(fault_file);
	fx_teardown();
}

TestSuite(expiry, .init = setup_expiry, .fini = teardown_expiry, .timeout = 300);
TestSuite(hold_defaults, .init = setup_defaults, .fini = teardown_expiry, .timeout = 300);
TestSuite(storage_faults, .init = setup_faults, .fini = teardown_expiry, .timeout = 300);

/* ---- time ---- */

/* budgetd's clock becomes real time + offset_s: a rename, so budgetd
 * never reads a half-written file. */
static void set_clock(long long offset_s)
{
	char tmp[128];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", clock_file);
	cr_assert_not_null(f = fopen(tmp, "w"));
	fprintf(f, "%lld\n", offset_s);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(rename(tmp, clock_file), 0);
}

static int64_t ts_ns(bc_timestamp t)
{
	return t.seconds * NS_PER_S + t.nanos;
}

/* ---- calls ---- */

#define TTL_UNSET (-1)

/* An authorize that must be allowed; ttl TTL_UNSET leaves it to budgetd. */
static bc_authorize_hold_result authorize(const char *cap, const char *hold, uint64_t units,
                                          int ttl, bc_expiry_policy policy)
{
	bc_authorize_hold_request req = {
	        .capability_id = cap,
	        .requested_exposure_units = units,
	        .hold_id = hold,
	        .has_ttl_seconds = ttl != TTL_UNSET,
	        .ttl_seconds = ttl == TTL_UNSET ? 0 : (uint32_t)ttl,
	        .on_expiry = policy,
	};
	bc_authorize_hold_result r;
	bc_error err;

	cr_assert_eq(bc_authorize_hold(client, &req, 0, &r, &err), 0, "authorize %s: %s",
	             hold ? hold : "-", err.message);
	cr_assert(r.authorized, "authorize %s was denied", hold ? hold : "-");
	return r;
}

static void open_hold(const char *cap, const char *hold, uint64_t units, int ttl,
                      bc_expiry_policy policy)
{
	bc_authorize_hold_result r = authorize(cap, hold, units, ttl, policy);
	bc_authorize_hold_result_free(&r);
}

static bc_hold get_hold(const char *hold)
{
	bc_hold h;
	bc_error err;

	cr_assert_eq(bc_get_hold(client, hold, 0, &h, &err), 0, "GetHold %s: %s", hold,
	             err.message);
	return h;
}

static bc_hold_disposition disposition_of(const char *hold)
{
	bc_hold h = get_hold(hold);
	bc_hold_disposition d = h.disposition;

	bc_hold_free(&h);
	return d;
}

static void expect_usage(const char *cap, uint32_t count, uint64_t exposed, uint64_t realized)
{
	bc_usage_result u;
	bc_error err;

	cr_assert_eq(bc_get_usage(client, cap, 0, 0, &u, &err), 0, "%s", err.message);
	cr_assert(u.found, "%s has no usage", cap);
	cr_assert_eq(u.usage.invocation_count, count, "%s: count %u, expected %u", cap,
	             u.usage.invocation_count, count);
	cr_assert_eq(u.usage.total_cost_exposed, exposed,
	             "%s: exposed %" PRIu64 ", expected %" PRIu64, cap, u.usage.total_cost_exposed,
	             exposed);
	cr_assert_eq(u.usage.total_cost_realized_spend, realized,
	             "%s: realized %" PRIu64 ", expected %" PRIu64, cap,
	             u.usage.total_cost_realized_spend, realized);
	bc_usage_result_free(&u);
}

static uint64_t commit_index(void)
{
	bc_server_info info;
	bc_error err;

	cr_assert_eq(bc_get_server_info(client, 0, &info, &err), 0, "%s", err.message);
	uint64_t ci = info.commit_index;
	bc_server_info_free(&info);
	return ci;
}

static int extend(const char *cap, const char *hold, uint32_t ttl, bc_extend_hold_result *r,
                  bc_error *err)
{
	bc_extend_hold_request req = {.capability_id = cap, .hold_id = hold, .ttl_seconds = ttl};

	return bc_extend_hold(client, &req, 0, r, err);
}

static int reconcile(bc_client *c, const char *cap, const char *hold, uint64_t exposed,
                     uint64_t realized, bc_error *err)
{
	bc_reconcile_hold_request req = {
	        .capability_id = cap,
	        .hold_id = hold,
	        .exposed_cost_units = exposed,
	        .realized_spend_units = realized,
	};
	bc_hold_mutation_result r;
	int rc = bc_reconcile_hold(c, &req, 0, &r, err);

	if (rc == 0)
		bc_hold_mutation_result_free(&r);
	return rc;
}

/* ---- the change stream ---- */

typedef struct seen {
	uint64_t seq;
	bc_mutation_kind kind;
	char hold[ID_LEN_MAX];
	char cap[ID_LEN_MAX];
	int64_t recorded_ns;
	uint64_t exposure, realized;
	bc_expiry_policy on_expiry;
	char caller[ID_LEN_MAX];
} seen;

typedef struct stream {
	seen *ev;
	size_t n, cap;
	size_t expired;        /* expire events seen */
	size_t want_expired;   /* stop after this many (0: no) */
	const char *stop_hold; /* ... or after this hold's expire event */
	bool out_of_memory;
} stream;

static int on_event(void *ctx, const bc_mutation_event *e)
{
	stream *s = ctx;

	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 1024;
		seen *more = realloc(s->ev, cap * sizeof(*more));
		if (!more) {
			s->out_of_memory = true;
			return 1;
		}
		s->ev = more;
		s->cap = cap;
	}
	seen *v = &s->ev[s->n++];
	memset(v, 0, sizeof(*v));
	v->seq = e->event_seq;
	v->kind = e->kind;
	snprintf(v->hold, sizeof(v->hold), "%s", e->hold_id ? e->hold_id : "");
	snprintf(v->cap, sizeof(v->cap), "%s", e->capability_id);
	v->recorded_ns = ts_ns(e->recorded_at);
	v->exposure = e->exposure_units;
	v->realized = e->realized_spend_units;
	v->on_expiry = e->on_expiry;
	snprintf(v->caller, sizeof(v->caller), "%s", e->caller);
	if (e->kind != BC_MUTATION_KIND_EXPIRE_EXPOSURE)
		return 0;
	s->expired++;
	return (s->want_expired && s->expired >= s->want_expired) ||
	       (s->stop_hold && strcmp(v->hold, s->stop_hold) == 0);
}

/* Reads the log after `after` on its own connection until the stream's
 * stop condition; bounded by WATCH_DEADLINE_MS. Any thread (no asserts). */
static int watch(stream *s, uint64_t after, bc_error *err)
{
	bc_options o = {.target = daemon_.unix_addr, .disable_retries = true};
	bc_watch_request req = {.after_commit_index = after};
	bc_client *c = NULL;
	int rc = bc_client_new(&o, &c, err);

	if (rc == 0)
		rc = bc_watch_mutation_events(c, &req, WATCH_DEADLINE_MS, on_event, s, NULL, err);
	bc_client_free(c);
	return rc;
}

static void watch_until(stream *s, uint64_t after)
{
	bc_error err;

	cr_assert_eq(watch(s, after, &err), 0, "the watch ended: %s", err.message);
	cr_assert(!s->out_of_memory);
}

static const seen *find(const stream *s, bc_mutation_kind kind, const char *hold)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->ev[i].kind == kind && strcmp(s->ev[i].hold, hold) == 0)
			return &s->ev[i];
	return NULL;
}

static const seen *must_find(const stream *s, bc_mutation_kind kind, const char *hold)
{
	const seen *e = find(s, kind, hold);

	cr_assert_not_null(e, "no %s event for %s", bc_mutation_kind_name((int)kind), hold);
	return e;
}

/* ---- policies ---- */

Test(expiry, each_policy_settles_an_expired_hold_as_it_says)
{
	static const struct {
		const char *cap, *hold;
		bc_expiry_policy policy;
		uint32_t count;
		uint64_t realized;
	} cases[] = {
	        {"cap-capture", "h-capture", BC_EXPIRY_POLICY_CAPTURE, 1, 10},
	        {"cap-release", "h-release", BC_EXPIRY_POLICY_RELEASE, 1, 0},
	        {"cap-reverse", "h-reverse", BC_EXPIRY_POLICY_REVERSE, 0, 0},
	};
	uint64_t before = commit_index();

	for (size_t i = 0; i < 3; i++) {
		bc_authorize_hold_result r =
		        authorize(cases[i].cap, cases[i].hold, 10, TTL_S, cases[i].policy);
		bc_hold h = get_hold(cases[i].hold);
		cr_assert(r.has_expires_at && h.has_expires_at);
		cr_assert_eq(ts_ns(r.expires_at), ts_ns(h.created_at) + TTL_S * NS_PER_S,
		             "the deadline is created_at + ttl");
		cr_assert_eq(ts_ns(h.expires_at), ts_ns(r.expires_at));
		cr_assert_eq(h.on_expiry, cases[i].policy);
		bc_hold_free(&h);
		bc_authorize_hold_result_free(&r);
	}
	set_clock(PAST_TTL_S);
	stream s = {.want_expired = 3};
	watch_until(&s, before);
	for (size_t i = 0; i < 3; i++) {
		const seen *e = must_find(&s, BC_MUTATION_KIND_EXPIRE_EXPOSURE, cases[i].hold);
		cr_assert_eq(e->on_expiry, cases[i].policy);
		cr_assert_eq(e->exposure, 10);
		cr_assert_eq(e->realized, cases[i].realized);
		cr_assert_str_eq(e->caller, "budgetd");
		expect_usage(cases[i].cap, cases[i].count, 0, cases[i].realized);
		bc_hold h = get_hold(cases[i].hold);
		cr_assert_eq(h.disposition, BC_HOLD_DISPOSITION_EXPIRED);
		cr_assert_eq(h.remaining_exposure_units, 0);
		cr_assert_eq(h.on_expiry, cases[i].policy, "an expired hold keeps its policy");
		cr_assert(!h.has_expires_at, "a final hold has no deadline");
		bc_hold_free(&h);
	}
	free(s.ev);
}

Test(expiry, a_hold_without_ttl_never_expires)
{
	open_hold("cap", "sentinel", 1, TTL_S, BC_EXPIRY_POLICY_UNSPECIFIED);
	open_hold("cap", "forever", 5, TTL_UNSET, BC_EXPIRY_POLICY_UNSPECIFIED);
	open_hold("cap", "explicit-zero", 5, 0, BC_EXPIRY_POLICY_UNSPECIFIED);
	uint64_t before = commit_index();
	set_clock(10 * PAST_TTL_S);
	stream s = {.stop_hold = "sentinel"};
	watch_until(&s, before);
	cr_assert_eq(s.expired, 1);
	cr_assert_eq(s.ev[s.n - 1].on_expiry, BC_EXPIRY_POLICY_CAPTURE, "the default policy");
	bc_hold h = get_hold("forever");
	cr_assert_eq(h.disposition, BC_HOLD_DISPOSITION_OPEN);
	cr_assert(!h.has_expires_at);
	cr_assert_eq(h.on_expiry, BC_EXPIRY_POLICY_UNSPECIFIED);
	bc_hold_free(&h);
	cr_assert_eq(disposition_of("explicit-zero"), BC_HOLD_DISPOSITION_OPEN);
	expect_usage("cap", 3, 10, 1);
	free(s.ev);
}

/* A watcher on its own thread, so the test can act while it waits. */
typedef struct watcher {
	stream s;
	uint64_t after;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	size_t seen; /* events so far, for the test thread */
	int rc;
	bc_error err;
} watcher;

static int on_watched(void *ctx, const bc_mutation_event *e)
{
	watcher *w = ctx;
	int stop = on_event(&w->s, e);

	pthread_mutex_lock(&w->lock);
	w->seen = w->s.n;
	pthread_cond_broadcast(&w->changed);
	pthread_mutex_unlock(&w->lock);
	return stop;
}

static void *watch_main(void *p)
{
	watcher *w = p;
	bc_options o = {.target = daemon_.unix_addr, .disable_retries = true};
	bc_watch_request req = {.after_commit_index = w->after};
	bc_client *c = NULL;

	w->rc = bc_client_new(&o, &c, &w->err);
	if (w->rc == 0)
		w->rc = bc_watch_mutation_events(c, &req, WATCH_DEADLINE_MS, on_watched, w, NULL,
		                                 &w->err);
	bc_client_free(c);
	pthread_mutex_lock(&w->lock);
	w->seen = SIZE_MAX; /* ended */
	pthread_cond_broadcast(&w->changed);
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* With nothing else to do, budgetd wakes for a deadline by itself: the
 * clock moves while the only client is a watcher that has caught up. */
Test(expiry, an_idle_budgetd_expires_due_holds_by_itself)
{
	watcher w = {.after = commit_index(), .s = {.stop_hold = "h"}};

	open_hold("cap", "h", 10, TTL_S, BC_EXPIRY_POLICY_RELEASE);
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.changed, NULL);
	cr_assert_eq(pthread_create(&w.thread, NULL, watch_main, &w), 0);
	pthread_mutex_lock(&w.lock);
	while (w.seen < 1) /* the authorize: the stream is live */
		pthread_cond_wait(&w.changed, &w.lock);
	pthread_mutex_unlock(&w.lock);
	set_clock(PAST_TTL_S);
	cr_assert_eq(pthread_join(w.thread, NULL), 0);
	cr_assert_eq(w.rc, 0, "the watch ended: %s", w.err.message);
	cr_assert_eq(w.s.expired, 1);
	expect_usage("cap", 1, 0, 0);
	free(w.s.ev);
	pthread_cond_destroy(&w.changed);
	pthread_mutex_destroy(&w.lock);
}

/* ---- storage faults ---- */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	cr_assert_geq(fputs(text, f), 0);
	cr_assert_eq(fclose(f), 0);
}

/* Waits (bounded) until budgetd's log has a line containing `part`. */
static void wait_for_log(const char *part)
{
	char line[2048];

	for (int tries = 0; tries < 2000; tries++) {
		FILE *f = fopen(daemon_.log, "r");
		cr_assert_not_null(f);
		bool found = false;
		while (!found && fgets(line, sizeof(line), f))
			found = strstr(line, part) != NULL;
		fclose(f);
		if (found)
			return;
		/* Polling a file: nothing to wait on. A GetUsage (a writer turn) per try. */
		expect_usage("cap", 1, 10, 0);
	}
	cr_assert_fail("the log never said `%s`", part);
}

Test(storage_faults, a_failed_expiry_is_retried_and_budgetd_stays_up)
{
	uint64_t before = commit_index();

	open_hold("cap", "h", 10, TTL_S, BC_EXPIRY_POLICY_RELEASE);
	write_file(fault_file, "sync");
	set_clock(PAST_TTL_S);
	wait_for_log("expiring due holds failed, none expired");
	cr_assert_eq(disposition_of("h"), BC_HOLD_DISPOSITION_OPEN, "nothing was recorded");
	expect_usage("cap", 1, 10, 0);
	cr_assert_eq(unlink(fault_file), 0);
	stream s = {.stop_hold = "h"};
	watch_until(&s, before);
	cr_assert_eq(s.expired, 1, "expired exactly once");
	expect_usage("cap", 1, 0, 0);
	free(s.ev);
}

/* ---- defaults (--hold-ttl 60 --on-expiry release) ---- */

Test(hold_defaults, holds_without_ttl_get_the_configured_deadline_and_policy)
{
	bc_authorize_hold_result r =
	        authorize("cap", "by-default", 10, TTL_UNSET, BC_EXPIRY_POLICY_UNSPECIFIED);
	cr_assert(r.has_expires_at, "--hold-ttl gives a deadline");
	bc_authorize_hold_result_free(&r);
	open_hold("cap", "reverse-by-default-ttl", 3, TTL_UNSET, BC_EXPIRY_POLICY_REVERSE);
	open_hold("cap", "explicit-zero", 7, 0, BC_EXPIRY_POLICY_UNSPECIFIED);
	r = authorize("cap", NULL, 2, TTL_UNSET, BC_EXPIRY_POLICY_UNSPECIFIED);
	cr_assert(!r.has_expires_at, "without a hold there is nothing to expire");
	bc_authorize_hold_result_free(&r);

	bc_hold h = get_hold("by-default");
	cr_assert(h.has_expires_at);
	cr_assert_eq(ts_ns(h.expires_at), ts_ns(h.created_at) + 60 * NS_PER_S);
	cr_assert_eq(h.on_expiry, BC_EXPIRY_POLICY_RELEASE);
	bc_hold_free(&h);
	h = get_hold("explicit-zero");
	cr_assert(!h.has_expires_at, "an explicit ttl_seconds 0 means no deadline");
	cr_assert_eq(h.on_expiry, BC_EXPIRY_POLICY_UNSPECIFIED);
	bc_hold_free(&h);
	expect_usage("cap", 4, 22, 0);

	uint64_t before = commit_index();
	set_clock(PAST_TTL_S);
	stream s = {.want_expired = 2};
	watch_until(&s, before);
	cr_assert_eq(must_find(&s, BC_MUTATION_KIND_EXPIRE_EXPOSURE, "by-default")->on_expiry,
	             BC_EXPIRY_POLICY_RELEASE);
	cr_assert_eq(must_find(&s, BC_MUTATION_KIND_EXPIRE_EXPOSURE, "reverse-by-default-ttl")
	                     ->on_expiry,
	             BC_EXPIRY_POLICY_REVERSE);
	/* release keeps the invocation, reverse gives it back */
	expect_usage("cap", 3, 9, 0);
	cr_assert_eq(disposition_of("explicit-zero"), BC_HOLD_DISPOSITION_OPEN);
	free(s.ev);
}

/* ---- ExtendHold ---- */

Test(expiry, extend_pushes_the_deadline_and_never_pulls_it_in)
{
	bc_extend_hold_result r;
	bc_error err;

	open_hold("cap", "h", 10, TTL_S, BC_EXPIRY_POLICY_RELEASE);
	open_hold("cap", "sentinel", 1, 2 * TTL_S, BC_EXPIRY_POLICY_UNSPECIFIED);
	bc_hold before = get_hold("h");
	cr_assert_eq(extend("cap", "h", 10 * TTL_S, &r, &err), 0, "extend: %s", err.message);
	cr_assert(r.has_expires_at);
	int64_t pushed = ts_ns(r.expires_at);
	cr_assert_geq(pushed, ts_ns(before.expires_at) + 9 * TTL_S * NS_PER_S);
	cr_assert(r.metadata.has_budget_commit_index);
	bc_extend_hold_result_free(&r);
	bc_hold_free(&before);

	cr_assert_eq(extend("cap", "h", 1, &r, &err), 0, "extend: %s", err.message);
	cr_assert_eq(ts_ns(r.expires_at), pushed, "a shorter ttl leaves the deadline");
	bc_extend_hold_result_free(&r);
	bc_hold h = get_hold("h");
	cr_assert_eq(ts_ns(h.expires_at), pushed);
	cr_assert_eq(h.on_expiry, BC_EXPIRY_POLICY_RELEASE, "extend keeps the policy");
	bc_hold_free(&h);

	/* Past the old deadline and the sentinel's, before the new one. */
	uint64_t at = commit_index();
	set_clock(3 * TTL_S);
	stream s = {.stop_hold = "sentinel"};
	watch_until(&s, at);
	cr_assert_null(find(&s, BC_MUTATION_KIND_EXPIRE_EXPOSURE, "h"));
	cr_assert_eq(disposition_of("h"), BC_HOLD_DISPOSITION_OPEN);

	at = s.ev[s.n - 1].seq;
	set_clock(20 * TTL_S);
	stream s2 = {.stop_hold = "h"};
	watch_until(&s2, at);
	cr_assert_eq(disposition_of("h"), BC_HOLD_DISPOSITION_EXPIRED);
	expect_usage("cap", 2, 0, 1);
	free(s.ev);
	free(s2.ev);
}

Test(expiry, extend_gives_a_hold_without_deadline_one_with_capture)
{
	bc_extend_hold_result r;
	bc_error err;

	open_hold("cap", "h", 4, TTL_UNSET, BC_EXPIRY_POLICY_UNSPECIFIED);
	cr_assert_eq(extend("cap", "h", TTL_S, &r, &err), 0, "extend: %s", err.message);
	bc_extend_hold_result_free(&r);
	bc_hold h = get_hold("h");
	cr_assert(h.has_expires_at);
	cr_assert_eq(h.on_expiry, BC_EXPIRY_POLICY_CAPTURE);
	bc_hold_free(&h);
}

Test(expiry, extend_of_an_expired_hold_is_refused)
{
	bc_extend_hold_result r;
	bc_error err;

	uint64_t before = commit_index();
	open_hold("cap", "h", 10, TTL_S, BC_EXPIRY_POLICY_UNSPECIFIED);
	set_clock(PAST_TTL_S);
	stream s = {.stop_hold = "h"};
	watch_until(&s, before);
	uint64_t after = commit_index();
	fx_expect_error(extend("cap", "h", TTL_S, &r, &err), &err, GRPC_STATUS_FAILED_PRECONDITION,
	                "is no longer open");
	fx_expect_error(extend("cap", "nope", TTL_S, &r, &err), &err,
	                GRPC_STATUS_FAILED_PRECONDITION, "missing budget hold `nope`");
	cr_assert_eq(commit_index(), after, "a refused extend records nothing");
	free(s.ev);
}

/* ---- settle against expiry ---- */

Test(expiry, a_settle_after_expiry_loses_and_the_log_has_one_settlement)
{
	bc_error err;
	uint64_t before = commit_index();

	open_hold("cap", "h", 10, TTL_S, BC_EXPIRY_POLICY_UNSPECIFIED);
	set_clock(PAST_TTL_S);
	stream s = {.stop_hold = "h"};
	watch_until(&s, before);
	fx_expect_error(reconcile(client, "cap", "h", 10, 3, &err), &err,
	                GRPC_STATUS_FAILED_PRECONDITION, "is no longer open");
	bc_list_mutation_events_request q = {.capability_id = "cap", .after_commit_index = before};
	bc_event_list l;
	cr_assert_eq(bc_list_mutation_events(client, &q, 0, &l, &err), 0, "%s", err.message);
	size_t settlements = 0;
	for (size_t i = 0; i < l.count; i++)
		settlements += l.events[i].kind == BC_MUTATION_KIND_EXPIRE_EXPOSURE ||
		               l.events[i].kind == BC_MUTATION_KIND_RECONCILE_SPEND;
	cr_assert_eq(settlements, 1);
	bc_event_list_free(&l);
	expect_usage("cap", 1, 0, 10);
	free(s.ev);
}

#define RACE_HOLDS 200

/* Settles race the expiry batch: whichever wins, each hold is settled
 * exactly once, the loser is told "is no longer open", and the usage
 * adds up for the mix of winners. */
Test(expiry, settles_racing_expiry_each_get_exactly_one_winner)
{
	char id[ID_LEN_MAX];
	bool reconciled[RACE_HOLDS];
	bc_error err;
	uint64_t before = commit_index();

	for (int i = 0; i < RACE_HOLDS; i++) {
		snprintf(id, sizeof(id), "r%03d", i);
		open_hold("cap", id, 10, TTL_S, BC_EXPIRY_POLICY_CAPTURE);
	}
	open_hold("cap", "sentinel", 1, TTL_S + 1, BC_EXPIRY_POLICY_CAPTURE);
	set_clock(PAST_TTL_S);
	/* The last deadlines first: expiry starts from the other end. */
	for (int i = RACE_HOLDS - 1; i >= 0; i--) {
		snprintf(id, sizeof(id), "r%03d", i);
		int rc = reconcile(client, "cap", id, 10, 4, &err);
		reconciled[i] = rc == 0;
		if (rc)
			fx_expect_error(rc, &err, GRPC_STATUS_FAILED_PRECONDITION,
			                "is no longer open");
	}
	stream s = {.stop_hold = "sentinel"};
	watch_until(&s, before);
	uint64_t realized = 1;
	int won = 0;
	for (int i = 0; i < RACE_HOLDS; i++) {
		snprintf(id, sizeof(id), "r%03d", i);
		bool expired = find(&s, BC_MUTATION_KIND_EXPIRE_EXPOSURE, id) != NULL;
		bool settled = find(&s, BC_MUTATION_KIND_RECONCILE_SPEND, id) != NULL;
		cr_assert(expired != settled, "%s: expired=%d reconciled=%d", id, expired, settled);
		cr_assert_eq(settled, reconciled[i], "%s: the reply and the log disagree", id);
		cr_assert_eq(disposition_of(id), settled ? BC_HOLD_DISPOSITION_RECONCILED
		                                         : BC_HOLD_DISPOSITION_EXPIRED);
		realized += settled ? 4 : 10;
		won += settled;
	}
	cr_log_info("reconcile won %d of %d races", won, RACE_HOLDS);
	expect_usage("cap", RACE_HOLDS + 1, 0, realized);
	free(s.ev);
}

/* ---- restart ---- */

Test(expiry, holds_due_while_down_expire_at_start_in_deadline_order)
{
	static const struct {
		const char *hold;
		int ttl;
	} holds[] = {{"late", 300}, {"early", 100}, {"middle", 200}, {"not-due", 5000}};

	for (size_t i = 0; i < 4; i++)
		open_hold("cap", holds[i].hold, 10, holds[i].ttl, BC_EXPIRY_POLICY_RELEASE);
	uint64_t before = commit_index();
	fx_stop();
	set_clock(1000);
	fx_start(NULL, NULL);
	stream s = {.want_expired = 3};
	watch_until(&s, before);
	cr_assert_eq(s.n, 3, "only expire events since the stop");
	cr_assert_str_eq(s.ev[0].hold, "early");
	cr_assert_str_eq(s.ev[1].hold, "middle");
	cr_assert_str_eq(s.ev[2].hold, "late");
	cr_assert_eq(disposition_of("not-due"), BC_HOLD_DISPOSITION_OPEN);
	expect_usage("cap", 4, 10, 0);
	free(s.ev);
}

/* ---- ListHolds ---- */

static bc_hold_list list_holds(const bc_list_holds_request *q)
{
	bc_hold_list l;
	bc_error err;

	cr_assert_eq(bc_list_holds(client, q, 0, &l, &err), 0, "ListHolds: %s", err.message);
	return l;
}

static bool listed(const bc_hold_list *l, const char *hold)
{
	for (size_t i = 0; i < l->count; i++)
		if (strcmp(l->holds[i].hold_id, hold) == 0)
			return true;
	return false;
}

Test(expiry, list_holds_filters_by_capability_disposition_and_age)
{
	uint64_t before = commit_index();

	open_hold("a", "a-open", 5, TTL_UNSET, BC_EXPIRY_POLICY_UNSPECIFIED);
	open_hold("a", "a-reconciled", 5, TTL_UNSET, BC_EXPIRY_POLICY_UNSPECIFIED);
	bc_hold_mutation_result m = fx_reconcile("a", 0, "a-reconciled", 5, 5);
	bc_hold_mutation_result_free(&m);
	open_hold("b", "b-expiring", 5, TTL_S, BC_EXPIRY_POLICY_UNSPECIFIED);
	open_hold("b", "b-open", 5, TTL_UNSET, BC_EXPIRY_POLICY_UNSPECIFIED);
	set_clock(PAST_TTL_S);
	stream s = {.stop_hold = "b-expiring"};
	watch_until(&s, before);
	free(s.ev);

	bc_list_holds_request q = {.capability_id = "a"};
	bc_hold_list l = list_holds(&q);
	cr_assert_eq(l.count, 2);
	cr_assert_str_eq(l.holds[0].hold_id, "a-open", "oldest first");
	cr_assert_str_eq(l.holds[1].hold_id, "a-reconciled");
	cr_assert_str_eq(l.next_page_token, "", "a short page is the last");
	bc_hold_list_free(&l);

	q = (bc_list_holds_request){.has_disposition = true,
	                            .disposition = BC_HOLD_DISPOSITION_EXPIRED};
	l = list_holds(&q);
	cr_assert_eq(l.count, 1);
	cr_assert_str_eq(l.holds[0].hold_id, "b-expiring");
	cr_assert_eq(l.holds[0].on_expiry, BC_EXPIRY_POLICY_CAPTURE);
	bc_hold_list_free(&l);

	q = (bc_list_holds_request){.capability_id = "b",
	                            .has_disposition = true,
	                            .disposition = BC_HOLD_DISPOSITION_OPEN};
	l = list_holds(&q);
	cr_assert_eq(l.count, 1);
	cr_assert_str_eq(l.holds[0].hold_id, "b-open");
	bc_hold_list_free(&l);

	/* older_than: strictly before the creation of b-expiring */
	bc_hold h = get_hold("b-expiring");
	q = (bc_list_holds_request){.has_older_than = true, .older_than = h.created_at};
	bc_hold_free(&h);
	l = list_holds(&q);
	cr_assert_eq(l.count, 2);
	cr_assert(listed(&l, "a-open") && listed(&l, "a-reconciled"));
	bc_hold_list_free(&l);
}

#define PAGED_HOLDS 25
#define PAGE_LIMIT  7

Test(expiry, list_holds_pages_return_every_hold_exactly_once)
{
	/* Ids the page token must carry intact: dots, non-ASCII, prefixes. */
	static const char *odd[] = {"p.1", "p.1.", "p", "p\xc3\xa9/x", "1.0.70"};
	char id[ID_LEN_MAX];
	int seen_count[PAGED_HOLDS] = {0};
	size_t n_odd = sizeof(odd) / sizeof(odd[0]);

	for (int i = 0; i < PAGED_HOLDS; i++) {
		if ((size_t)i < n_odd)
			snprintf(id, sizeof(id), "%s", odd[i]);
		else
			snprintf(id, sizeof(id), "page-%02d", i);
		open_hold("cap", id, 1, TTL_UNSET, BC_EXPIRY_POLICY_UNSPECIFIED);
	}
	char token[1100] = "";
	int pages = 0;
	size_t total = 0;
	for (;;) {
		bc_list_holds_request q = {
		        .capability_id = "cap", .limit = PAGE_LIMIT, .page_token = token};
		bc_hold_list l = list_holds(&q);
		pages++;
		cr_assert_leq(pages, PAGED_HOLDS / PAGE_LIMIT + 2, "the paging does not end");
		for (size_t i = 0; i < l.count; i++) {
			int k = -1;
			for (size_t j = 0; j < n_odd; j++)
				if (strcmp(l.holds[i].hold_id, odd[j]) == 0)
					k = (int)j;
			if (k < 0)
				cr_assert_eq(sscanf(l.holds[i].hold_id, "page-%d", &k), 1, "%s",
				             l.holds[i].hold_id);
			cr_assert(k >= 0 && k < PAGED_HOLDS);
			seen_count[k]++;
		}
		total += l.count;
		cr_assert_eq(l.count == PAGE_LIMIT, l.next_page_token[0] != '\0',
		             "a token exactly when the page is full");
		snprintf(token, sizeof(token), "%s", l.next_page_token);
		bc_hold_list_free(&l);
		if (!token[0])
			break;
	}
	cr_assert_eq(total, PAGED_HOLDS);
	for (int k = 0; k < PAGED_HOLDS; k++)
		cr_assert_eq(seen_count[k], 1, "hold %d listed %d times", k, seen_count[k]);
	cr_assert_eq(pages, PAGED_HOLDS / PAGE_LIMIT + 1);

	bc_list_holds_request q = {.page_token = "1.5.zz"};
	bc_hold_list l;
	bc_error err;
	fx_expect_error(bc_list_holds(client, &q, 0, &l, &err), &err, GRPC_STATUS_INVALID_ARGUMENT,
	                "page_token is not one this server made");
}

/* ---- a mass expiry under live traffic ---- */

#define MASS_HOLDS_DEFAULT 20000
#define MASS_CREATORS      50
#define LIVE_WRITERS       4
#define LIVE_UNITS         1
#define MASS_UNITS         3
#define LIVE_CAP           "live"
#define MASS_CAP           "mass"

/* BUDGETD_TEST_MASS_HOLDS=100000 for the full size (about 35 s
 * here, most of it opening the holds); the default keeps the suite quick. */
static int mass_holds(void)
{
	const char *v = getenv("BUDGETD_TEST_MASS_HOLDS");
	int n = v ? atoi(v) : MASS_HOLDS_DEFAULT;

	return n >= MASS_CREATORS && n <= 1000000 ? n - n % MASS_CREATORS : MASS_HOLDS_DEFAULT;
}

static int mass_n; /* mass_holds() of this run */

typedef struct worker {
	pthread_t thread;
	int id;
	bc_client *c;
	volatile bool *stop; /* live writers: until set */
	int done;            /* calls that succeeded */
	int failed;
	bc_error err; /* the last failure */
} worker;

static void *create_main(void *p)
{
	worker *w = p;
	char id[ID_LEN_MAX];

	for (int i = 0; i < mass_n / MASS_CREATORS; i++) {
		snprintf(id, sizeof(id), "m%d-%d", w->id, i);
		bc_authorize_hold_request req = {.capability_id = MASS_CAP,
		                                 .requested_exposure_units = MASS_UNITS,
		                                 .hold_id = id,
		                                 .has_ttl_seconds = true,
		                                 .ttl_seconds = TTL_S};
		bc_authorize_hold_result r;
		if (bc_authorize_hold(w->c, &req, 0, &r, &w->err) == 0 && r.authorized)
			w->done++;
		else
			w->failed++;
		bc_authorize_hold_result_free(&r);
	}
	return NULL;
}

static void *live_main(void *p)
{
	worker *w = p;

	while (!__atomic_load_n(w->stop, __ATOMIC_ACQUIRE)) {
		bc_authorize_hold_request req = {.capability_id = LIVE_CAP,
		                                 .requested_exposure_units = LIVE_UNITS};
		bc_authorize_hold_result r;
		if (bc_authorize_hold(w->c, &req, 0, &r, &w->err) == 0 && r.authorized)
			w->done++;
		else
			w->failed++;
		bc_authorize_hold_result_free(&r);
	}
	return NULL;
}

static void run_workers(worker *w, int n, void *(*fn)(void *), volatile bool *stop)
{
	for (int i = 0; i < n; i++) {
		w[i] = (worker){.id = i, .c = client, .stop = stop};
		cr_assert_eq(pthread_create(&w[i].thread, NULL, fn, &w[i]), 0);
	}
}

static int join_workers(worker *w, int n)
{
	int done = 0;

	for (int i = 0; i < n; i++) {
		cr_assert_eq(pthread_join(w[i].thread, NULL), 0);
		cr_assert_eq(w[i].failed, 0, "worker %d: %d failed calls, the last: %s", i,
		             w[i].failed, w[i].err.message);
		done += w[i].done;
	}
	return done;
}

/* One transaction's events share its recorded_at: consecutive expire events
 * with one recorded_at are one expiry batch. */
static void check_batches(const stream *s)
{
	size_t first = SIZE_MAX, last = 0, batches = 0, run = 0, live_between = 0;
	int64_t at = 0;

	for (size_t i = 0; i < s->n; i++) {
		const seen *e = &s->ev[i];
		if (e->kind != BC_MUTATION_KIND_EXPIRE_EXPOSURE) {
			run = 0;
			continue;
		}
		first = first == SIZE_MAX ? i : first;
		last = i;
		if (run == 0 || e->recorded_ns != at)
			batches++, run = 0;
		at = e->recorded_ns;
		cr_assert_leq(++run, EXPIRY_BATCH_MAX,
		              "an expiry transaction of more than %d holds", EXPIRY_BATCH_MAX);
	}
	for (size_t i = first; i < last; i++)
		live_between += s->ev[i].kind != BC_MUTATION_KIND_EXPIRE_EXPOSURE;
	cr_assert_geq(batches, (size_t)(mass_n + EXPIRY_BATCH_MAX - 1) / EXPIRY_BATCH_MAX);
	cr_assert_gt(live_between, 0, "live traffic waited for the whole mass expiry");
	cr_log_info("%d holds expired in %zu batches over %.0f ms; %zu live events interleaved",
	            mass_n, batches,
	            (double)(s->ev[last].recorded_ns - s->ev[first].recorded_ns) / 1e6,
	            live_between);
}

Test(expiry, a_mass_expiry_runs_in_bounded_batches_while_live_traffic_goes_on)
{
	worker creators[MASS_CREATORS], live[LIVE_WRITERS];
	volatile bool stop = false;

	mass_n = mass_holds();
	run_workers(creators, MASS_CREATORS, create_main, &stop);
	cr_assert_eq(join_workers(creators, MASS_CREATORS), mass_n);
	uint64_t before = commit_index();
	run_workers(live, LIVE_WRITERS, live_main, &stop);
	set_clock(PAST_TTL_S);
	stream s = {.want_expired = (size_t)mass_n};
	bc_error err;
	int rc = watch(&s, before, &err);
	__atomic_store_n(&stop, true, __ATOMIC_RELEASE);
	int live_done = join_workers(live, LIVE_WRITERS);
	cr_assert_eq(rc, 0, "the watch ended: %s", err.message);
	cr_assert(!s.out_of_memory);
	cr_assert_eq(s.expired, (size_t)mass_n);
	check_batches(&s);
	expect_usage(MASS_CAP, (uint32_t)mass_n, 0, (uint64_t)mass_n * MASS_UNITS);
	expect_usage(LIVE_CAP, (uint32_t)live_done, (uint64_t)live_done * LIVE_UNITS, 0);
	bc_list_holds_request q = {.capability_id = MASS_CAP,
	                           .has_disposition = true,
	                           .disposition = BC_HOLD_DISPOSITION_OPEN};
	bc_hold_list l = list_holds(&q);
	cr_assert_eq(l.count, 0, "every mass hold expired");
	bc_hold_list_free(&l);
	free(s.ev);
}
