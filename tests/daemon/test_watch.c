/* test_watch.c - WatchMutationEvents against a real budgetd: the backlog,
 * then new events as they commit, with no gap and no duplicate while
 * writers run; resuming from a commit index; the capability filter and
 * prefixes; the slow-consumer limit; cancellation by the client; shutdown;
 * and budgetctl events --follow across a restart.
 *
 * No sleeps: a watcher's callback signals what it has seen, writers and
 * watchers meet on those signals and on event ids. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>

#include "budgetd/v1/budget_authority.pb-c.h"
#include "fixture.h"

#define LAG_MAX           "1000" /* the smallest --watch-lag-max */
#define WATCH_DEADLINE_MS 120000 /* a bound for a stuck test, never reached */
#define WRITERS           8
#define EVENT_ID_LEN_MAX  64
#define SLOW_ROUND_EVENTS 1000
#define SLOW_ROUNDS_MAX   200

/* ---- a watcher on its own thread ---- */

typedef struct seen_event {
	uint64_t seq;
	char id[EVENT_ID_LEN_MAX];
	char capability[EVENT_ID_LEN_MAX];
} seen_event;

typedef struct watcher {
	/* given */
	const char *addr; /* its own connection: a stalled stream must not
	                   * hold up the writers' replies */
	bc_watch_request req;
	int deadline_ms;
	const char *stop_id; /* stop after the event with this id (NULL: no) */
	size_t stop_count;   /* ... or after this many events (0: no) */
	/* filled (criterion asserts only on the test's own thread: the
	 * watcher's thread records what went wrong instead) */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	seen_event *events;
	size_t n, cap;
	bool done;
	bool out_of_memory;
	int rc;
	bc_error err;
	uint64_t resume;
	pthread_t thread;
} watcher;

static int on_event(void *ctx, const bc_mutation_event *e)
{
	watcher *w = ctx;
	int stop = 0;

	pthread_mutex_lock(&w->lock);
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 1024;
		seen_event *more = realloc(w->events, cap * sizeof(*w->events));
		if (!more) {
			w->out_of_memory = true;
			pthread_mutex_unlock(&w->lock);
			return 1;
		}
		w->events = more;
		w->cap = cap;
	}
	seen_event *s = &w->events[w->n++];
	s->seq = e->event_seq;
	snprintf(s->id, sizeof(s->id), "%s", e->event_id);
	snprintf(s->capability, sizeof(s->capability), "%s", e->capability_id);
	pthread_cond_broadcast(&w->changed);
	if ((w->stop_id && strcmp(e->event_id, w->stop_id) == 0) ||
	    (w->stop_count && w->n >= w->stop_count))
		stop = 1;
	pthread_mutex_unlock(&w->lock);
	return stop;
}

static void *watch_main(void *p)
{
	watcher *w = p;
	bc_options o = {.target = w->addr, .disable_retries = true};
	bc_client *c = NULL;
	bc_error err = {0};
	uint64_t resume = 0;

	int rc = bc_client_new(&o, &c, &err);
	if (rc == 0)
		rc = bc_watch_mutation_events(c, &w->req, w->deadline_ms, on_event, w, &resume,
		                              &err);
	bc_client_free(c);
	pthread_mutex_lock(&w->lock);
	w->rc = rc;
	w->err = err;
	w->resume = resume;
	w->done = true;
	pthread_cond_broadcast(&w->changed);
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void watch_start(watcher *w)
{
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->changed, NULL);
	if (!w->addr)
		w->addr = daemon_.unix_addr;
	if (!w->deadline_ms)
		w->deadline_ms = WATCH_DEADLINE_MS;
	cr_assert_eq(pthread_create(&w->thread, NULL, watch_main, w), 0);
}

static void watch_join(watcher *w)
{
	cr_assert_eq(pthread_join(w->thread, NULL), 0);
	cr_assert(!w->out_of_memory);
}

static void watch_free(watcher *w)
{
	free(w->events);
	pthread_cond_destroy(&w->changed);
	pthread_mutex_destroy(&w->lock);
}

/* Waits until the watcher has seen `count` events or ended. */
static void watch_wait_count(watcher *w, size_t count)
{
	pthread_mutex_lock(&w->lock);
	while (w->n < count && !w->done)
		pthread_cond_wait(&w->changed, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

/* ---- writing events ---- */

/* One event; its event_seq in *seq. Any thread. */
static int try_increment(bc_client *c, const char *cap, const char *event_id, uint64_t *seq,
                         bc_error *err)
{
	bc_increment_invocation_request q = {.capability_id = cap, .event_id = event_id};
	bc_increment_invocation_result r;
	int rc = bc_increment_invocation(c, &q, 0, &r, err);

	*seq = r.metadata.budget_commit_index;
	bc_increment_invocation_result_free(&r);
	return rc;
}

static uint64_t increment(bc_client *c, const char *cap, const char *event_id)
{
	uint64_t seq;
	bc_error err;

	cr_assert_eq(try_increment(c, cap, event_id, &seq, &err), 0, "increment: %s", err.message);
	return seq;
}

static unsigned written; /* makes every event id unique */

typedef struct writer {
	pthread_t thread;
	int id;
	int count;
	bc_client *c;
	int failed;   /* increments that failed */
	bc_error err; /* the last failure */
} writer;

static void *write_main(void *p)
{
	writer *wr = p;
	char cap[32], id[EVENT_ID_LEN_MAX];

	snprintf(cap, sizeof(cap), "w%d", wr->id);
	for (int i = 0; i < wr->count; i++) {
		snprintf(id, sizeof(id), "w%d-%u", wr->id,
		         __atomic_fetch_add(&written, 1, __ATOMIC_RELAXED));
		uint64_t seq;
		if (try_increment(wr->c, cap, id, &seq, &wr->err) != 0)
			wr->failed++;
	}
	return NULL;
}

/* WRITERS threads write `each` events each, on `c` (shared). */
static void write_concurrently(bc_client *c, int each)
{
	writer w[WRITERS];

	for (int i = 0; i < WRITERS; i++) {
		w[i] = (writer){.id = i, .count = each, .c = c};
		cr_assert_eq(pthread_create(&w[i].thread, NULL, write_main, &w[i]), 0);
	}
	for (int i = 0; i < WRITERS; i++) {
		cr_assert_eq(pthread_join(w[i].thread, NULL), 0);
		cr_assert_eq(w[i].failed, 0, "writer %d: %s", i, w[i].err.message);
	}
}

/* The log as ListMutationEvents pages it, up to and including `last`. */
static seen_event *list_log(const char *cap, uint64_t after, uint64_t last, size_t *count)
{
	bc_list_mutation_events_request req = {
	        .limit = 1000, .capability_id = cap, .after_commit_index = after};
	seen_event *out = NULL;
	size_t n = 0, cap_n = 0;
	bc_error err;

	for (;;) {
		bc_event_list list;
		cr_assert_eq(bc_list_mutation_events(client, &req, 0, &list, &err), 0, "%s",
		             err.message);
		bool past = list.count == 0;
		for (size_t i = 0; i < list.count && !past; i++) {
			if (list.events[i].event_seq > last) {
				past = true;
				break;
			}
			if (n == cap_n) {
				cap_n = cap_n ? 2 * cap_n : 1024;
				seen_event *more = realloc(out, cap_n * sizeof(*out));
				cr_assert_not_null(more);
				out = more;
			}
			out[n].seq = list.events[i].event_seq;
			snprintf(out[n].id, sizeof(out[n].id), "%s", list.events[i].event_id);
			snprintf(out[n].capability, sizeof(out[n].capability), "%s",
			         list.events[i].capability_id);
			n++;
		}
		req.after_commit_index = list.next_after_commit_index;
		bc_event_list_free(&list);
		if (past)
			break;
	}
	*count = n;
	return out;
}

/* The watcher saw exactly what the log holds, in order. */
static void expect_same(const seen_event *got, size_t n_got, const seen_event *want, size_t n_want)
{
	cr_assert_eq(n_got, n_want, "the watcher saw %zu events, the log has %zu", n_got, n_want);
	for (size_t i = 0; i < n_want; i++) {
		cr_assert_eq(got[i].seq, want[i].seq, "event %zu: seq %llu, the log has %llu", i,
		             (unsigned long long)got[i].seq, (unsigned long long)want[i].seq);
		cr_assert_str_eq(got[i].id, want[i].id, "event %zu (seq %llu)", i,
		                 (unsigned long long)want[i].seq);
	}
}

/* fx_stop, without our idle client: nobody polls its connection, so it
 * would see budgetd's GOAWAY only at gRPC's backup poll (5 s), and budgetd
 * waits for its connections to close. */
static void stop_daemon(void)
{
	bc_client_free(client);
	client = NULL;
	fx_stop();
}

/* ---- the stream ---- */

/* One suite, each test with its own daemon set-up: criterion 2.4 run with
 * --jobs leaks a suite's bookkeeping when tests of two suites overlap. */
TestSuite(watch, .timeout = 300);

#define DEFAULT_DAEMON .init = fx_setup, .fini = fx_teardown /* budgetd with its defaults */

Test(watch, backlog_then_live_events_without_gap_or_duplicate_under_concurrent_writes,
     DEFAULT_DAEMON)
{
	watcher w = {.stop_id = "final"};

	write_concurrently(client, 100); /* a backlog of 800: several pages */
	watch_start(&w);
	write_concurrently(client, 150); /* while it streams */
	uint64_t last = increment(client, "final-cap", "final");
	watch_join(&w);
	cr_assert_eq(w.rc, 0, "the watch ended: %s", w.err.message);
	cr_assert_eq(last, 2001);

	size_t n_log;
	seen_event *log = list_log(NULL, 0, last, &n_log);
	expect_same(w.events, w.n, log, n_log);
	for (size_t i = 0; i < w.n; i++)
		cr_assert_eq(w.events[i].seq, i + 1, "the log's sequence has a gap");
	cr_assert_eq(w.resume, last);
	free(log);
	watch_free(&w);
}

Test(watch, several_watchers_at_different_positions_see_the_same_log, DEFAULT_DAEMON)
{
	/* From the start, from the middle, and from past the end of the log. */
	watcher w[3] = {{.stop_id = "final"},
	                {.stop_id = "final", .req = {.after_commit_index = 150}},
	                {.stop_id = "final2", .req = {.after_commit_index = 401}}};

	write_concurrently(client, 25);
	for (int i = 0; i < 3; i++)
		watch_start(&w[i]);
	write_concurrently(client, 25);
	increment(client, "final-cap", "final");
	for (int i = 0; i < 2; i++) {
		watch_join(&w[i]);
		cr_assert_eq(w[i].rc, 0, "%s", w[i].err.message);
		size_t n_log;
		seen_event *log = list_log(NULL, w[i].req.after_commit_index, 401, &n_log);
		expect_same(w[i].events, w[i].n, log, n_log);
		free(log);
	}
	/* The third waited for the log to pass its index. */
	increment(client, "final-cap", "final2");
	watch_join(&w[2]);
	cr_assert_eq(w[2].rc, 0, "%s", w[2].err.message);
	cr_assert_eq(w[2].n, 1);
	cr_assert_eq(w[2].events[0].seq, 402);
	for (int i = 0; i < 3; i++)
		watch_free(&w[i]);
}

Test(watch, resumes_after_a_commit_index, DEFAULT_DAEMON)
{
	char id[32];

	for (int i = 1; i <= 10; i++) {
		snprintf(id, sizeof(id), "e%d", i);
		increment(client, "cap", id);
	}
	watcher w = {.stop_count = 3, .req = {.after_commit_index = 4}};
	watch_start(&w);
	watch_join(&w);
	cr_assert_eq(w.rc, 0, "%s", w.err.message);
	cr_assert_eq(w.n, 3);
	cr_assert_eq(w.events[0].seq, 5);
	cr_assert_str_eq(w.events[0].id, "e5");
	cr_assert_eq(w.events[2].seq, 7);
	cr_assert_eq(w.resume, 7, "resume %llu", (unsigned long long)w.resume);

	/* Resuming where it stopped gives the rest, then the new events. */
	watcher more = {.stop_id = "e11", .req = {.after_commit_index = w.resume}};
	watch_start(&more);
	watch_wait_count(&more, 3);
	increment(client, "cap", "e11");
	watch_join(&more);
	cr_assert_eq(more.rc, 0, "%s", more.err.message);
	cr_assert_eq(more.n, 4);
	for (size_t i = 0; i < more.n; i++)
		cr_assert_eq(more.events[i].seq, 8 + i);
	cr_assert_str_eq(more.events[3].id, "e11");
	watch_free(&w);
	watch_free(&more);
}

Test(watch, the_capability_filter_sends_that_capability_only, DEFAULT_DAEMON)
{
	char id[32];

	/* "a" and names that share its prefix: the filter is exact. */
	for (int i = 0; i < 300; i++) {
		const char *cap = i % 3 == 0 ? "a" : i % 3 == 1 ? "ab" : "b";
		snprintf(id, sizeof(id), "%s-%d", cap, i);
		increment(client, cap, id);
	}
	watcher w = {.stop_id = "a-final", .req = {.capability_id = "a"}};
	watch_start(&w);
	watch_wait_count(&w, 100); /* the backlog's 100 events of "a" */
	increment(client, "b", "b-final");
	increment(client, "a", "a-final");
	watch_join(&w);
	cr_assert_eq(w.rc, 0, "%s", w.err.message);
	size_t n_log;
	seen_event *log = list_log("a", 0, 302, &n_log);
	cr_assert_eq(n_log, 101);
	expect_same(w.events, w.n, log, n_log);
	for (size_t i = 0; i < w.n; i++)
		cr_assert_str_eq(w.events[i].capability, "a");
	free(log);
	watch_free(&w);
}

Test(watch, a_bad_capability_id_is_invalid_argument, DEFAULT_DAEMON)
{
	static const char *const bad[] = {"", "with\ttab"};
	static const char *const why[] = {"capability_id must not be empty",
	                                  "capability_id contains a control character"};

	for (size_t i = 0; i < 2; i++) {
		watcher w = {.req = {.capability_id = bad[i]}};
		watch_start(&w);
		watch_join(&w);
		fx_expect_error(w.rc, &w.err, GRPC_STATUS_INVALID_ARGUMENT, why[i]);
		watch_free(&w);
	}
}

Test(watch, an_idle_stream_cancelled_by_its_deadline_leaves_budgetd_healthy, DEFAULT_DAEMON)
{
	increment(client, "cap", "before");
	watcher w = {.deadline_ms = 300};
	watch_start(&w);
	watch_join(&w);
	fx_expect_error(w.rc, &w.err, GRPC_STATUS_DEADLINE_EXCEEDED, "");
	cr_assert_eq(w.n, 1);
	cr_assert_eq(w.resume, 1);
	watch_free(&w);

	bc_serving_status st;
	bc_error err;
	cr_assert_eq(bc_health_check(client, NULL, 0, &st, &err), 0, "%s", err.message);
	cr_assert_eq(st, BC_SERVING_STATUS_SERVING);
	/* fx_teardown: the daemon still stops cleanly. */
}

Test(watch, streams_stopped_by_the_client_free_their_slot, DEFAULT_DAEMON)
{
	/* More streams than budgetd keeps open at once (256), one after the
	 * other: each cancelled stream must give its slot back. */
	for (int i = 1; i <= 4; i++) {
		char id[16];
		snprintf(id, sizeof(id), "e%d", i);
		increment(client, "cap", id);
	}
	bc_client *c = fx_client(daemon_.unix_addr, false);
	for (int i = 0; i < 300; i++) {
		watcher w = {.stop_count = 1, .addr = daemon_.unix_addr};
		bc_watch_request req = {.after_commit_index = (uint64_t)(i % 4)};
		uint64_t resume;
		bc_error err;

		pthread_mutex_init(&w.lock, NULL);
		pthread_cond_init(&w.changed, NULL);
		int rc = bc_watch_mutation_events(c, &req, WATCH_DEADLINE_MS, on_event, &w, &resume,
		                                  &err);
		cr_assert_eq(rc, 0, "stream %d: %s", i, err.message);
		cr_assert_eq(resume, (uint64_t)(i % 4) + 1);
		watch_free(&w);
	}
	bc_client_free(c);
	/* A stream stopped while events keep coming. */
	watcher busy = {.stop_count = 50};
	watch_start(&busy);
	write_concurrently(client, 20);
	watch_join(&busy);
	cr_assert_eq(busy.rc, 0, "%s", busy.err.message);
	cr_assert_eq(busy.n, 50);
	watch_free(&busy);
	increment(client, "cap", "after");
}

Test(watch, shutdown_ends_streams_with_unavailable_and_the_resume_index, DEFAULT_DAEMON)
{
	watcher w[2] = {{0}, {.req = {.capability_id = "other"}}};

	for (int i = 0; i < 2; i++)
		watch_start(&w[i]);
	for (int i = 1; i <= 5; i++) {
		char id[16];
		snprintf(id, sizeof(id), "e%d", i);
		increment(client, "cap", id);
	}
	watch_wait_count(&w[0], 5);
	stop_daemon(); /* asserts a clean exit while the streams are open */
	for (int i = 0; i < 2; i++) {
		watch_join(&w[i]);
		fx_expect_error(w[i].rc, &w[i].err, GRPC_STATUS_UNAVAILABLE,
		                "budgetd is shutting down; resume from commit index");
	}
	cr_assert_eq(w[0].n, 5);
	cr_assert_eq(w[0].resume, 5);
	/* The filtered stream had nothing to send: it resumes at the index it
	 * had scanned to, at most the end of the log. */
	cr_assert_eq(w[1].n, 0);
	cr_assert_leq(w[1].resume, 5);
	for (int i = 0; i < 2; i++)
		watch_free(&w[i]);
}

/* ---- the slow-consumer limit ---- */

static void start_with_small_lag_limit(void)
{
	static const char *const args[] = {"--watch-lag-max", LAG_MAX, NULL};

	memset(&daemon_, 0, sizeof(daemon_));
	client = NULL;
	fx_start(args, NULL);
}

/* True once budgetd logged that it ended a watcher for its lag. */
static bool log_says_dropped(void)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen(daemon_.log, "r");

	cr_assert_not_null(f, "%s: %s", daemon_.log, strerror(errno));
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, "--watch-lag-max " LAG_MAX) != NULL;
	fclose(f);
	return found;
}

/* A watcher on a bare gRPC channel without BDP probing: while nobody
 * reads, its transport takes in one flow-control window (64 KiB) and no
 * more, so budgetd soon has a stalled stream. (The client library's
 * channel may grow its window to megabytes.) */
typedef struct raw_watch {
	grpc_channel *channel;
	grpc_completion_queue *cq;
	grpc_call *call;
	grpc_byte_buffer *request;
	grpc_metadata_array initial_md, trailing_md;
	grpc_status_code status;
	grpc_slice details;
	int tag_start, tag_status, tag_recv;
} raw_watch;

static void raw_start(raw_watch *r, const char *addr)
{
	grpc_arg arg = {GRPC_ARG_INTEGER, (char *)GRPC_ARG_HTTP2_BDP_PROBE, {.integer = 0}};
	grpc_channel_args args = {1, &arg};
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	grpc_slice empty = grpc_empty_slice(); /* after_commit_index 0 */
	grpc_op ops[4];

	grpc_init();
	memset(r, 0, sizeof(*r));
	r->channel = grpc_channel_create(addr, creds, &args);
	grpc_channel_credentials_release(creds);
	r->cq = grpc_completion_queue_create_for_pluck(NULL);
	r->call = grpc_channel_create_call(
	        r->channel, NULL, GRPC_PROPAGATE_DEFAULTS, r->cq,
	        grpc_slice_from_static_string("/budgetd.v1.BudgetAuthority/WatchMutationEvents"),
	        NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	r->request = grpc_raw_byte_buffer_create(&empty, 1);
	r->details = grpc_empty_slice();
	grpc_metadata_array_init(&r->initial_md);
	grpc_metadata_array_init(&r->trailing_md);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = r->request;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &r->initial_md;
	cr_assert_eq(grpc_call_start_batch(r->call, ops, 4, &r->tag_start, NULL), GRPC_CALL_OK);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[0].data.recv_status_on_client.trailing_metadata = &r->trailing_md;
	ops[0].data.recv_status_on_client.status = &r->status;
	ops[0].data.recv_status_on_client.status_details = &r->details;
	cr_assert_eq(grpc_call_start_batch(r->call, ops, 1, &r->tag_status, NULL), GRPC_CALL_OK);
	grpc_event ev = grpc_completion_queue_pluck(r->cq, &r->tag_start,
	                                            gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	cr_assert_eq(ev.type, GRPC_OP_COMPLETE);
}

/* The next event's event_seq; false at the end of the stream. */
static bool raw_next(raw_watch *r, uint64_t *seq)
{
	grpc_byte_buffer *bb = NULL;
	grpc_byte_buffer_reader reader;
	grpc_op op;

	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &bb;
	cr_assert_eq(grpc_call_start_batch(r->call, &op, 1, &r->tag_recv, NULL), GRPC_CALL_OK);
	grpc_event ev = grpc_completion_queue_pluck(r->cq, &r->tag_recv,
	                                            gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	cr_assert_eq(ev.type, GRPC_OP_COMPLETE);
	if (!bb)
		return false;
	cr_assert(grpc_byte_buffer_reader_init(&reader, bb));
	grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
	Budgetd__V1__MutationEvent *e = budgetd__v1__mutation_event__unpack(
	        NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
	cr_assert_not_null(e);
	*seq = e->event_seq;
	budgetd__v1__mutation_event__free_unpacked(e, NULL);
	grpc_slice_unref(all);
	grpc_byte_buffer_reader_destroy(&reader);
	grpc_byte_buffer_destroy(bb);
	return true;
}

/* After the end of the stream: its status and message. */
static grpc_status_code raw_finish(raw_watch *r, char *message, size_t len)
{
	grpc_event ev = grpc_completion_queue_pluck(r->cq, &r->tag_status,
	                                            gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	cr_assert_eq(ev.type, GRPC_OP_COMPLETE);
	snprintf(message, len, "%.*s", (int)GRPC_SLICE_LENGTH(r->details),
	         (const char *)GRPC_SLICE_START_PTR(r->details));
	grpc_status_code status = r->status;
	grpc_slice_unref(r->details);
	grpc_metadata_array_destroy(&r->initial_md);
	grpc_metadata_array_destroy(&r->trailing_md);
	grpc_byte_buffer_destroy(r->request);
	grpc_call_unref(r->call);
	grpc_completion_queue_shutdown(r->cq);
	grpc_completion_queue_destroy(r->cq);
	grpc_channel_destroy(r->channel);
	grpc_shutdown();
	return status;
}

Test(watch, a_consumer_too_far_behind_is_ended_with_resource_exhausted_and_resumes,
     .init = start_with_small_lag_limit, .fini = fx_teardown)
{
	char message[1024], want[256];
	uint64_t seq = 0, received = 0;
	int rounds = 0;
	raw_watch r;

	raw_start(&r, daemon_.unix_addr);
	increment(client, "cap", "first");
	cr_assert(raw_next(&r, &seq)); /* live */
	cr_assert_eq(seq, 1);
	received = 1;
	/* Now it reads nothing: write until budgetd gives up on it. */
	while (!log_says_dropped()) {
		cr_assert_lt(rounds++, SLOW_ROUNDS_MAX, "budgetd never ended the stalled stream");
		write_concurrently(client, SLOW_ROUND_EVENTS / WRITERS);
	}
	/* Everything sent before the status arrives first, in order. */
	while (raw_next(&r, &seq)) {
		cr_assert_eq(seq, received + 1, "event %llu after %llu", (unsigned long long)seq,
		             (unsigned long long)received);
		received = seq;
	}
	cr_assert_eq(raw_finish(&r, message, sizeof(message)), GRPC_STATUS_RESOURCE_EXHAUSTED, "%s",
	             message);
	snprintf(want, sizeof(want),
	         "the watcher fell too far behind (more than " LAG_MAX
	         " events committed since it started are unsent); resume from commit index %llu",
	         (unsigned long long)received);
	cr_assert_str_eq(message, want);
	bc_server_info info;
	bc_error err;
	cr_assert_eq(bc_get_server_info(client, 0, &info, &err), 0, "%s", err.message);
	cr_assert_gt(info.commit_index - received, 1000);
	bc_server_info_free(&info);

	/* Resuming from there gives the rest: the whole log, once. */
	watcher rest = {.stop_id = "final", .req = {.after_commit_index = received}};
	watch_start(&rest);
	uint64_t last = increment(client, "cap", "final");
	watch_join(&rest);
	cr_assert_eq(rest.rc, 0, "%s", rest.err.message);
	cr_assert_eq(received + rest.n, last);
	for (size_t i = 0; i < rest.n; i++)
		cr_assert_eq(rest.events[i].seq, received + 1 + i);
	watch_free(&rest);
}

/* ---- access ---- */

static char perms_file[64];

static void start_with_restricted_reader(void)
{
	static const char text[] = "[unix]\nrole = kernel\n"
	                           "[loopback]\nrole = reader\ncapability_prefix = team-a/\n";
	static const char *args[] = {"--permissions", perms_file, NULL};

	snprintf(perms_file, sizeof(perms_file), "/tmp/budgetd-watch-perm-XXXXXX");
	int fd = mkstemp(perms_file);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	memset(&daemon_, 0, sizeof(daemon_));
	client = NULL;
	fx_start(args, NULL); /* the client is `loopback`: the reader */
}

static void stop_restricted(void)
{
	fx_teardown();
	unlink(perms_file);
}

Test(watch, a_restricted_reader_watches_only_its_prefix, .init = start_with_restricted_reader,
     .fini = stop_restricted)
{
	bc_client *kernel = fx_client(daemon_.unix_addr, false);
	increment(kernel, "team-a/x", "a1");
	increment(kernel, "team-b/x", "b1");

	watcher all = {.addr = daemon_.tcp_addr};
	watch_start(&all);
	watch_join(&all);
	fx_expect_error(all.rc, &all.err, GRPC_STATUS_PERMISSION_DENIED,
	                "may only list its own capabilities: give capability_id");

	watcher other = {.addr = daemon_.tcp_addr, .req = {.capability_id = "team-b/x"}};
	watch_start(&other);
	watch_join(&other);
	fx_expect_error(other.rc, &other.err, GRPC_STATUS_PERMISSION_DENIED,
	                "may not use capability `team-b/x`");

	watcher own = {
	        .addr = daemon_.tcp_addr, .stop_id = "a2", .req = {.capability_id = "team-a/x"}};
	watch_start(&own);
	watch_wait_count(&own, 1);
	increment(kernel, "team-a/x", "a2");
	watch_join(&own);
	cr_assert_eq(own.rc, 0, "%s", own.err.message);
	cr_assert_eq(own.n, 2);
	cr_assert_str_eq(own.events[0].id, "a1");
	cr_assert_str_eq(own.events[1].id, "a2");
	bc_client_free(kernel);
	watch_free(&all);
	watch_free(&other);
	watch_free(&own);
}

/* ---- budgetctl events --follow ---- */

typedef struct ctl {
	pid_t pid;
	FILE *out; /* its stdout */
} ctl;

static void ctl_start(ctl *c, const char *const *args)
{
	const char *path = getenv("BUDGETCTL");
	const char *argv[16];
	int fds[2], n = 0;

	cr_assert_not_null(path, "BUDGETCTL is not set");
	argv[n++] = path;
	for (; *args; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	cr_assert_eq(pipe(fds), 0);
	c->pid = fork();
	cr_assert_geq(c->pid, 0);
	if (c->pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	c->out = fdopen(fds[0], "r");
	cr_assert_not_null(c->out);
}

/* Reads JSON lines until one has this event id; counts every id seen. */
static void ctl_read_until(ctl *c, const char *event_id, int *counts, int n_counts)
{
	char line[4096], want[64];

	snprintf(want, sizeof(want), "\"eventId\":\"%s\"", event_id);
	while (fgets(line, sizeof(line), c->out)) {
		for (int i = 1; i <= n_counts; i++) {
			char id[64];
			snprintf(id, sizeof(id), "\"eventId\":\"e%d\"", i);
			counts[i - 1] += strstr(line, id) != NULL;
		}
		if (strstr(line, want))
			return;
	}
	cr_assert_fail("budgetctl ended before printing %s", event_id);
}

Test(watch, budgetctl_follow_prints_events_and_resumes_across_a_restart, DEFAULT_DAEMON)
{
	char addr[400];
	int counts[6] = {0};
	ctl c;

	snprintf(addr, sizeof(addr), "%s", daemon_.unix_addr);
	increment(client, "cap", "e1");
	increment(client, "cap", "e2");
	ctl_start(&c, (const char *const[]){"--addr", addr, "--json", "events", "--follow",
	                                    "--timeout", "120", NULL});
	ctl_read_until(&c, "e2", counts, 6);
	increment(client, "cap", "e3");
	ctl_read_until(&c, "e3", counts, 6);
	stop_daemon();
	fx_start(NULL, NULL); /* the same database and unix socket */
	increment(client, "cap", "e4");
	increment(client, "other", "e5");
	increment(client, "cap", "e6");
	ctl_read_until(&c, "e6", counts, 6);
	kill(c.pid, SIGTERM);
	int status;
	cr_assert_eq(waitpid(c.pid, &status, 0), c.pid);
	fclose(c.out);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(counts[i], 1, "e%d printed %d times", i + 1, counts[i]);
}

Test(watch, budgetctl_follow_ends_at_its_timeout, DEFAULT_DAEMON)
{
	char addr[400];
	int counts[2] = {0};
	ctl c;

	snprintf(addr, sizeof(addr), "%s", daemon_.unix_addr);
	increment(client, "cap", "e1");
	increment(client, "dog", "e2");
	ctl_start(&c, (const char *const[]){"--addr", addr, "--json", "events", "--follow",
	                                    "--capability", "dog", "--timeout", "0.5", NULL});
	ctl_read_until(&c, "e2", counts, 2);
	int status;
	cr_assert_eq(waitpid(c.pid, &status, 0), c.pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
	fclose(c.out);
	cr_assert_eq(counts[0], 0);
	cr_assert_eq(counts[1], 1);

	/* Paging options make no sense on a stream. */
	ctl usage;
	ctl_start(&usage, (const char *const[]){"--addr", addr, "events", "--follow", "--limit",
	                                        "5", NULL});
	cr_assert_eq(waitpid(usage.pid, &status, 0), usage.pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "status %d", status);
	fclose(usage.out);
}
