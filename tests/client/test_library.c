/* test_library.c - libbudgetd-client against a real budgetd: safe retries
 * (a lost reply, a daemon restarted between attempts), deadlines, one
 * client shared by many threads, and what tests/daemon/test_rpc.c (which
 * already calls every RPC through this library) leaves out.
 *
 * TLS: budgetd does not serve TLS yet, so there is no handshake to test;
 * only the client's checks of its TLS options are tested here. Add
 * handshake tests (CA, client certificate, server name) when it does. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "proxy.h"

/* Every suite of this file has the same criterion timeout: with different
 * ones, LeakSanitizer reported a 48-byte leak in criterion 2.4's runner at
 * exit (a timeout record of its bundled BoxFort, bxfi_push_timeout). */
#define TEST_TIMEOUT_S       240
#define WAIT_MS              60000 /* bound of every wait for another thread */
#define JOIN_S               180   /* bound of a call made on another thread */
#define RETRY_DEADLINE_MS    60000 /* per attempt: a restart of budgetd fits */
#define RETRY_MAX_ATTEMPTS   20
#define RETRY_BACKOFF_MAX_MS 500

static proxy px;

static void setup_with_proxy(void)
{
	fx_setup();
	cr_assert_eq(proxy_start(&px, daemon_.tcp_addr), 0);
}

static void teardown_with_proxy(void)
{
	proxy_stop(&px);
	fx_teardown();
}

/* A client of `target` with the given retry policy. */
static bc_client *new_client(const char *target, bool retries, int deadline_ms)
{
	bc_options o = {
	        .target = target,
	        .deadline_ms = deadline_ms,
	        .disable_retries = !retries,
	        .max_attempts = RETRY_MAX_ATTEMPTS,
	        .backoff_max_ms = RETRY_BACKOFF_MAX_MS,
	};
	bc_client *c = NULL;
	bc_error err;

	cr_assert_eq(bc_client_new(&o, &c, &err), 0, "bc_client_new: %s", err.message);
	return c;
}

static bool is_event_id(const char *s)
{
	if (!s || strlen(s) != 32)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

/* The events of `cap` in the log (the fixture's direct client). */
static bc_event_list events_of(const char *cap)
{
	bc_list_mutation_events_request req = {.limit = 1000, .capability_id = cap};
	bc_event_list list;
	bc_error err;

	cr_assert_eq(bc_list_mutation_events(client, &req, 0, &list, &err), 0, "%s", err.message);
	return list;
}

/* How many events of `cap` carry `event_id`; the last one in *found. */
static size_t count_event(const bc_event_list *list, const char *event_id,
                          const bc_mutation_event **found)
{
	size_t n = 0;

	for (size_t i = 0; i < list->count; i++)
		if (strcmp(list->events[i].event_id, event_id) == 0) {
			n++;
			*found = &list->events[i];
		}
	return n;
}

static bc_usage_result usage_of(const char *cap, uint64_t grant)
{
	bc_usage_result u;
	bc_error err;

	cr_assert_eq(bc_get_usage(client, cap, grant, 0, &u, &err), 0, "%s", err.message);
	return u;
}

/* ---- safe retries ----------------------------------------------------------- */

TestSuite(retry, .init = setup_with_proxy, .fini = teardown_with_proxy, .timeout = TEST_TIMEOUT_S);

Test(retry, reply_lost_on_the_way_back_is_retried_and_answered_as_a_replay)
{
	bc_client *c = new_client(px.addr, true, RETRY_DEADLINE_MS);
	bc_authorize_hold_request req = {
	        .capability_id = "lost",
	        .requested_exposure_units = 40,
	        .hold_id = "hold-lost-reply-1",
	};
	bc_authorize_hold_result r;
	bc_error err;

	proxy_drop_reply(&px, req.hold_id, PROXY_FORWARD, 0);
	cr_assert_eq(bc_authorize_hold(c, &req, 0, &r, &err), 0, "%s: %s", bc_status_name(err.code),
	             err.message);
	cr_assert_eq(proxy_drops(&px), 1, "the first reply was lost");
	cr_assert(r.authorized);
	cr_assert(r.metadata.replayed, "the retry is answered from the log");
	cr_assert(is_event_id(r.metadata.event_id), "generated event_id `%s`", r.metadata.event_id);
	cr_assert(r.metadata.has_budget_commit_index);

	bc_event_list list = events_of("lost");
	const bc_mutation_event *e = NULL;
	cr_assert_eq(count_event(&list, r.metadata.event_id, &e), 1,
	             "both attempts sent the same event_id, applied once");
	cr_assert_eq(list.count, 1);
	cr_assert_eq(e->event_seq, r.metadata.budget_commit_index);
	cr_assert_eq(e->usage_seq, r.metadata.budget_commit_index);
	bc_event_list_free(&list);

	bc_usage_result u = usage_of("lost", 0);
	cr_assert_eq(u.usage.invocation_count, 1);
	cr_assert_eq(u.usage.total_cost_exposed, 40);
	bc_usage_result_free(&u);
	bc_authorize_hold_result_free(&r);
	bc_client_free(c);
}

Test(retry, reply_lost_without_retries_is_unavailable_and_still_applied_once)
{
	bc_client *c = new_client(px.addr, false, RETRY_DEADLINE_MS);
	char event_id[BC_EVENT_ID_SIZE];
	bc_error err;

	cr_assert_eq(bc_event_id_new(event_id, &err), 0);
	bc_reconcile_hold_request rec = {.capability_id = "lost",
	                                 .hold_id = "hold-lost-reply-2",
	                                 .exposed_cost_units = 40,
	                                 .realized_spend_units = 25,
	                                 .event_id = event_id};
	bc_authorize_hold_result a = fx_authorize("lost", 0, 40, rec.hold_id, NULL, false, 0);
	bc_authorize_hold_result_free(&a);
	bc_hold_mutation_result r;

	proxy_drop_reply(&px, rec.hold_id, PROXY_FORWARD, 0);
	int rc = bc_reconcile_hold(c, &rec, 0, &r, &err);
	cr_assert_eq(rc, -BC_STATUS_UNAVAILABLE, "rc %d, %s: %s", rc, bc_status_name(err.code),
	             err.message);
	cr_assert_eq(err.code, BC_STATUS_UNAVAILABLE);
	cr_assert_eq(proxy_drops(&px), 1);
	bc_client_free(c);

	bc_event_list list = events_of("lost");
	const bc_mutation_event *e = NULL;
	cr_assert_eq(count_event(&list, event_id, &e), 1, "the lost reply's mutation is logged");
	cr_assert_eq(e->kind, BC_MUTATION_KIND_RECONCILE_SPEND);
	uint64_t seq = e->event_seq;
	bc_event_list_free(&list);

	/* The caller retries by hand with the same event_id. */
	cr_assert_eq(bc_reconcile_hold(client, &rec, 0, &r, &err), 0, "%s", err.message);
	cr_assert(r.metadata.replayed);
	cr_assert_str_eq(r.metadata.event_id, event_id);
	cr_assert_eq(r.metadata.budget_commit_index, seq);
	cr_assert_eq(r.realized_spend_units, 25);
	bc_hold_mutation_result_free(&r);

	list = events_of("lost");
	cr_assert_eq(count_event(&list, event_id, &e), 1, "the manual retry applied nothing");
	cr_assert_eq(list.count, 2, "authorize and one reconcile");
	bc_event_list_free(&list);
	bc_usage_result u = usage_of("lost", 0);
	cr_assert_eq(u.usage.total_cost_realized_spend, 25);
	cr_assert_eq(u.usage.total_cost_exposed, 0);
	bc_usage_result_free(&u);
}

Test(retry, extend_reply_lost_is_retried_with_the_same_event_id_and_applied_once)
{
	bc_client *c = new_client(px.addr, true, RETRY_DEADLINE_MS);
	bc_authorize_hold_request auth = {.capability_id = "lost",
	                                  .requested_exposure_units = 5,
	                                  .hold_id = "hold-lost-extend",
	                                  .has_ttl_seconds = true,
	                                  .ttl_seconds = 30};
	bc_extend_hold_request req = {
	        .capability_id = "lost", .hold_id = auth.hold_id, .ttl_seconds = 900};
	bc_authorize_hold_result a;
	bc_extend_hold_result r;
	bc_error err;

	cr_assert_eq(bc_authorize_hold(client, &auth, 0, &a, &err), 0, "%s", err.message);
	bc_authorize_hold_result_free(&a);
	proxy_drop_reply(&px, req.hold_id, PROXY_FORWARD, 0);
	cr_assert_eq(bc_extend_hold(c, &req, 0, &r, &err), 0, "%s: %s", bc_status_name(err.code),
	             err.message);
	cr_assert_eq(proxy_drops(&px), 1, "the first reply was lost");
	cr_assert(r.metadata.replayed, "the retry is answered from the log");
	cr_assert(is_event_id(r.metadata.event_id), "generated event_id `%s`", r.metadata.event_id);
	cr_assert(r.has_expires_at);

	bc_event_list list = events_of("lost");
	const bc_mutation_event *e = NULL;
	cr_assert_eq(count_event(&list, r.metadata.event_id, &e), 1, "applied once");
	cr_assert_eq(e->kind, BC_MUTATION_KIND_EXTEND_HOLD);
	cr_assert_eq(list.count, 2, "authorize and one extension");
	bc_event_list_free(&list);
	bc_extend_hold_result_free(&r);
	bc_client_free(c);
}

/* A call made on another thread, so that the test can act meanwhile. */
typedef struct pending_increment {
	pthread_t thread;
	bc_client *client;
	bc_increment_invocation_request req;
	bc_increment_invocation_result res;
	bc_error err;
	int rc;
} pending_increment;

static void *increment_thread(void *arg)
{
	pending_increment *p = arg;

	p->rc = bc_increment_invocation(p->client, &p->req, 0, &p->res, &p->err);
	return NULL;
}

static void join_bounded(pthread_t t)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += JOIN_S;
	cr_assert_eq(pthread_timedjoin_np(t, NULL, &until), 0, "the call did not end");
}

Test(retry, mutation_retried_across_a_daemon_restart_is_applied_once)
{
	static pending_increment call;
	/* IncrementInvocation's response has no hold_id: the marker is the
	 * event_id, which CommitMetadata echoes. */
	char event_id[BC_EVENT_ID_SIZE];
	bc_error err;

	cr_assert_eq(bc_event_id_new(event_id, &err), 0);
	call.client = new_client(px.addr, true, RETRY_DEADLINE_MS);
	call.req = (bc_increment_invocation_request){
	        .capability_id = "restart", .grant_index = 3, .event_id = event_id};
	/* While budgetd is down the proxy refuses two connections, then holds
	 * the next one until budgetd is back. */
	proxy_drop_reply(&px, event_id, PROXY_PAUSED, 2);
	cr_assert_eq(pthread_create(&call.thread, NULL, increment_thread, &call), 0);

	cr_assert(proxy_wait_drops(&px, 1, WAIT_MS), "budgetd's reply never came");
	fx_stop(); /* exit 0 */
	cr_assert(proxy_wait_refused(&px, 2, WAIT_MS), "the client did not retry");
	fx_start(NULL, NULL); /* the same directory, a new port */
	proxy_set(&px, daemon_.tcp_addr, PROXY_FORWARD);
	join_bounded(call.thread);

	cr_assert_eq(call.rc, 0, "%s: %s", bc_status_name(call.err.code), call.err.message);
	cr_assert(call.res.allowed);
	cr_assert(call.res.metadata.replayed, "the restarted daemon answers from its log");
	cr_assert_str_eq(call.res.metadata.event_id, event_id);
	cr_assert_eq(call.res.invocation_count_after, 1);
	bc_increment_invocation_result_free(&call.res);
	bc_client_free(call.client);

	bc_usage_result u = usage_of("restart", 3);
	cr_assert(u.found);
	cr_assert_eq(u.usage.invocation_count, 1, "applied once");
	bc_usage_result_free(&u);
	bc_event_list list = events_of("restart");
	const bc_mutation_event *e = NULL;
	cr_assert_eq(list.count, 1);
	cr_assert_eq(count_event(&list, event_id, &e), 1);
	bc_event_list_free(&list);
}

typedef struct pending_info {
	pthread_t thread;
	bc_client *client;
	bc_server_info res;
	bc_error err;
	int rc;
} pending_info;

static void *info_thread(void *arg)
{
	pending_info *p = arg;

	p->rc = bc_get_server_info(p->client, 0, &p->res, &p->err);
	return NULL;
}

Test(retry, read_is_retried_on_unavailable_until_the_server_answers)
{
	static pending_info call;

	/* Two connections refused, then the proxy holds the next one until
	 * it forwards again: GetServerInfo succeeds only by being retried. */
	proxy_pause(&px, 2);
	call.client = new_client(px.addr, true, RETRY_DEADLINE_MS);
	cr_assert_eq(pthread_create(&call.thread, NULL, info_thread, &call), 0);
	cr_assert(proxy_wait_refused(&px, 2, WAIT_MS), "the client did not retry");
	proxy_set(&px, NULL, PROXY_FORWARD);
	join_bounded(call.thread);
	cr_assert_eq(call.rc, 0, "%s: %s", bc_status_name(call.err.code), call.err.message);
	cr_assert_str_eq(call.res.version, "0.1.0");
	bc_server_info_free(&call.res);
	bc_client_free(call.client);
}

Test(retry, read_without_retries_fails_at_once_with_unavailable)
{
	bc_client *c = new_client(px.addr, false, RETRY_DEADLINE_MS);
	bc_usage_result u;
	bc_error err;

	proxy_pause(&px, 1000);
	cr_assert_eq(bc_get_usage(c, "cap", 0, 0, &u, &err), -BC_STATUS_UNAVAILABLE, "%s: %s",
	             bc_status_name(err.code), err.message);
	cr_assert_eq(err.code, BC_STATUS_UNAVAILABLE);
	cr_assert_not(u.found);
	bc_client_free(c);
}

Test(retry, a_call_without_event_id_gets_a_fresh_random_one)
{
	bc_authorize_hold_result a = fx_authorize("gen", 0, 1, NULL, NULL, false, 0);
	bc_authorize_hold_result b = fx_authorize("gen", 0, 1, NULL, NULL, false, 0);
	bc_increment_invocation_request inc = {.capability_id = "gen"};
	bc_increment_invocation_result i;
	bc_error err;

	cr_assert(is_event_id(a.metadata.event_id), "`%s`", a.metadata.event_id);
	cr_assert(is_event_id(b.metadata.event_id), "`%s`", b.metadata.event_id);
	cr_assert_str_neq(a.metadata.event_id, b.metadata.event_id);
	cr_assert_not(b.metadata.replayed);
	cr_assert_eq(b.invocation_count_after, 2, "two distinct mutations");
	cr_assert_eq(bc_increment_invocation(client, &inc, 0, &i, &err), 0, "%s", err.message);
	cr_assert(is_event_id(i.metadata.event_id));
	cr_assert_str_neq(i.metadata.event_id, a.metadata.event_id);
	bc_increment_invocation_result_free(&i);

	bc_event_list list = events_of("gen");
	const bc_mutation_event *e = NULL;
	cr_assert_eq(count_event(&list, a.metadata.event_id, &e), 1, "the log keeps our id");
	bc_event_list_free(&list);
	bc_authorize_hold_result_free(&a);
	bc_authorize_hold_result_free(&b);

	char x[BC_EVENT_ID_SIZE], y[BC_EVENT_ID_SIZE];
	cr_assert_eq(bc_event_id_new(x, &err), 0);
	cr_assert_eq(bc_event_id_new(y, &err), 0);
	cr_assert(is_event_id(x) && is_event_id(y));
	cr_assert_str_neq(x, y);
}

/* ---- deadlines ---------------------------------------------------------------- */

/* A TCP port that accepts connections (the kernel's backlog) and never
 * answers: nobody calls accept(). Returns the listening socket. */
static int black_hole(char addr[PROXY_ADDR_SIZE])
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 16), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(addr, PROXY_ADDR_SIZE, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
	return fd;
}

TestSuite(deadline, .timeout = TEST_TIMEOUT_S);

Test(deadline, a_server_that_never_answers_gives_deadline_exceeded)
{
	char addr[PROXY_ADDR_SIZE];
	int fd = black_hole(addr);
	bc_client *c = new_client(addr, false, 0);
	bc_authorize_hold_request req = {.capability_id = "cap", .requested_exposure_units = 1};
	bc_authorize_hold_result a;
	bc_usage_result u;
	bc_error err;

	cr_assert_eq(bc_authorize_hold(c, &req, 300, &a, &err), -BC_STATUS_DEADLINE_EXCEEDED,
	             "%s: %s", bc_status_name(err.code), err.message);
	cr_assert_eq(err.code, BC_STATUS_DEADLINE_EXCEEDED);
	cr_assert_not(a.authorized, "the result stays zeroed");
	cr_assert_null(a.metadata.event_id);
	cr_assert_eq(bc_get_usage(c, "cap", 0, 300, &u, &err), -BC_STATUS_DEADLINE_EXCEEDED,
	             "%s: %s", bc_status_name(err.code), err.message);
	bc_client_free(c);
	close(fd);
}

Test(deadline, the_clients_default_deadline_applies_when_a_call_gives_none)
{
	char addr[PROXY_ADDR_SIZE];
	int fd = black_hole(addr);
	bc_client *c = new_client(addr, false, 300);
	bc_server_info info;
	bc_error err;

	cr_assert_eq(bc_get_server_info(c, 0, &info, &err), -BC_STATUS_DEADLINE_EXCEEDED, "%s: %s",
	             bc_status_name(err.code), err.message);
	bc_client_free(c);
	close(fd);
}

Test(deadline, a_mutation_retried_on_deadline_exceeded_still_ends_with_it)
{
	char addr[PROXY_ADDR_SIZE];
	int fd = black_hole(addr);
	bc_options o = {
	        .target = addr, .deadline_ms = 200, .max_attempts = 3, .backoff_base_ms = 1};
	bc_client *c;
	bc_increment_invocation_request req = {.capability_id = "cap"};
	bc_increment_invocation_result r;
	bc_error err;

	cr_assert_eq(bc_client_new(&o, &c, &err), 0, "%s", err.message);
	cr_assert_eq(bc_increment_invocation(c, &req, 0, &r, &err), -BC_STATUS_DEADLINE_EXCEEDED,
	             "%s: %s", bc_status_name(err.code), err.message);
	bc_client_free(c);
	close(fd);
}

/* ---- one client, many threads ------------------------------------------------- */

#define MT_THREADS 16
#define MT_ROUNDS  20
#define MT_UNITS   10

typedef struct mt_worker {
	pthread_t thread;
	int id;
	bc_client *c;
	int authorized, reconciled, released, reversed, incremented;
	uint64_t realized;
	int failures; /* calls that failed or answered for someone else */
	char first_failure[BC_ERROR_MESSAGE_MAX + 64];
} mt_worker;

static void mt_fail(mt_worker *w, const char *what, const bc_error *err)
{
	if (w->failures++ == 0)
		snprintf(w->first_failure, sizeof(w->first_failure), "%s: %s", what,
		         err ? err->message : "wrong result");
}

/* Checks that hold `id` is in `disposition`. */
static void mt_check_hold(mt_worker *w, const char *id, bc_hold_disposition disposition)
{
	bc_hold h;
	bc_error err;

	if (bc_get_hold(w->c, id, 0, &h, &err) != 0) {
		mt_fail(w, "GetHold", &err);
		return;
	}
	if (strcmp(h.hold_id, id) != 0 || strcmp(h.capability_id, "mt") != 0 ||
	    h.disposition != disposition)
		mt_fail(w, "GetHold answered another hold or state", NULL);
	bc_hold_free(&h);
}

/* Each round: authorize a hold, settle it one of three ways, count an
 * invocation, and read a little. */
static void *mt_run(void *arg)
{
	mt_worker *w = arg;
	bc_error err;

	for (int round = 0; round < MT_ROUNDS; round++) {
		char hold[32];
		snprintf(hold, sizeof(hold), "t%d-r%d", w->id, round);
		bc_authorize_hold_request areq = {.capability_id = "mt",
		                                  .requested_exposure_units = MT_UNITS,
		                                  .hold_id = hold};
		bc_authorize_hold_result a;
		if (bc_authorize_hold(w->c, &areq, 0, &a, &err) != 0) {
			mt_fail(w, "AuthorizeHold", &err);
			continue;
		}
		if (!a.authorized || !a.hold_id || strcmp(a.hold_id, hold) != 0)
			mt_fail(w, "AuthorizeHold answered another request", NULL);
		bc_authorize_hold_result_free(&a);
		w->authorized++;
		mt_check_hold(w, hold, BC_HOLD_DISPOSITION_OPEN);

		bc_hold_mutation_result m;
		int rc;
		bc_hold_disposition after;
		switch ((w->id + round) % 3) {
		case 0: {
			uint64_t realized = (uint64_t)(w->id % 5) + 1;
			bc_reconcile_hold_request r = {.capability_id = "mt",
			                               .hold_id = hold,
			                               .exposed_cost_units = MT_UNITS,
			                               .realized_spend_units = realized};
			rc = bc_reconcile_hold(w->c, &r, 0, &m, &err);
			if (rc == 0) {
				w->reconciled++;
				w->realized += realized;
			}
			after = BC_HOLD_DISPOSITION_RECONCILED;
			break;
		}
		case 1: {
			bc_release_hold_request r = {.capability_id = "mt",
			                             .hold_id = hold,
			                             .released_exposure_units = MT_UNITS};
			rc = bc_release_hold(w->c, &r, 0, &m, &err);
			w->released += rc == 0;
			after = BC_HOLD_DISPOSITION_RELEASED;
			break;
		}
		default: {
			bc_reverse_hold_request r = {.capability_id = "mt",
			                             .hold_id = hold,
			                             .reversed_exposure_units = MT_UNITS};
			rc = bc_reverse_hold(w->c, &r, 0, &m, &err);
			w->reversed += rc == 0;
			after = BC_HOLD_DISPOSITION_REVERSED;
			break;
		}
		}
		if (rc != 0) {
			mt_fail(w, "settle", &err);
			continue;
		}
		if (!m.hold_id || strcmp(m.hold_id, hold) != 0)
			mt_fail(w, "settle answered another hold", NULL);
		bc_hold_mutation_result_free(&m);
		mt_check_hold(w, hold, after);

		bc_increment_invocation_request ireq = {.capability_id = "mt"};
		bc_increment_invocation_result inc;
		if (bc_increment_invocation(w->c, &ireq, 0, &inc, &err) != 0) {
			mt_fail(w, "IncrementInvocation", &err);
			continue;
		}
		w->incremented += inc.allowed;
		bc_increment_invocation_result_free(&inc);

		if (round % 5 == 0) {
			bc_list_mutation_events_request lreq = {.limit = 10, .capability_id = "mt"};
			bc_event_list events;
			bc_usage_result u;
			bc_serving_status st;
			if (bc_list_mutation_events(w->c, &lreq, 0, &events, &err) != 0)
				mt_fail(w, "ListMutationEvents", &err);
			bc_event_list_free(&events);
			if (bc_get_usage(w->c, "mt", 0, 0, &u, &err) != 0 || !u.found)
				mt_fail(w, "GetUsage", &err);
			bc_usage_result_free(&u);
			if (bc_health_check(w->c, NULL, 0, &st, &err) != 0 ||
			    st != BC_SERVING_STATUS_SERVING)
				mt_fail(w, "Health/Check", &err);
		}
	}
	return NULL;
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

TestSuite(threads, .init = fx_setup, .fini = fx_teardown, .timeout = TEST_TIMEOUT_S);

Test(threads, sixteen_threads_sharing_one_client_add_up_to_the_usage_record)
{
	static mt_worker workers[MT_THREADS];
	bc_client *shared = new_client(daemon_.tcp_addr, true, 30000);
	int authorized = 0, reversed = 0, incremented = 0, settled = 0;
	uint64_t realized = 0;

	for (int i = 0; i < MT_THREADS; i++) {
		workers[i] = (mt_worker){.id = i, .c = shared};
		cr_assert_eq(pthread_create(&workers[i].thread, NULL, mt_run, &workers[i]), 0);
	}
	for (int i = 0; i < MT_THREADS; i++) {
		join_bounded(workers[i].thread);
		cr_expect_eq(workers[i].failures, 0, "thread %d: %d failures, the first: %s", i,
		             workers[i].failures, workers[i].first_failure);
		authorized += workers[i].authorized;
		reversed += workers[i].reversed;
		incremented += workers[i].incremented;
		settled += workers[i].reconciled + workers[i].released + workers[i].reversed;
		realized += workers[i].realized;
	}
	bc_client_free(shared);
	cr_assert_eq(authorized, MT_THREADS * MT_ROUNDS);
	cr_assert_eq(settled, MT_THREADS * MT_ROUNDS);
	cr_assert_eq(incremented, MT_THREADS * MT_ROUNDS);

	bc_usage_result u = usage_of("mt", 0);
	cr_assert_eq(u.usage.invocation_count, (uint32_t)(authorized - reversed + incremented));
	cr_assert_eq(u.usage.total_cost_exposed, 0, "every hold was settled");
	cr_assert_eq(u.usage.total_cost_realized_spend, realized);

	/* The log: one event per mutation, each with its own event_id. */
	size_t mutations = (size_t)(authorized + settled + incremented);
	char **ids = calloc(mutations, sizeof(*ids));
	size_t n = 0;
	bc_list_mutation_events_request req = {.limit = 1000, .capability_id = "mt"};
	for (;;) {
		bc_event_list list;
		bc_error err;
		cr_assert_eq(bc_list_mutation_events(client, &req, 0, &list, &err), 0, "%s",
		             err.message);
		for (size_t i = 0; i < list.count; i++) {
			cr_assert_lt(n, mutations, "more events than mutations");
			ids[n++] = strdup(list.events[i].event_id);
		}
		size_t got = list.count;
		req.after_commit_index = list.next_after_commit_index;
		bc_event_list_free(&list);
		if (got == 0)
			break;
	}
	cr_assert_eq(n, mutations);
	qsort(ids, n, sizeof(*ids), compare_strings);
	for (size_t i = 0; i < n; i++) {
		cr_assert(is_event_id(ids[i]), "`%s`", ids[i]);
		if (i > 0)
			cr_assert_str_neq(ids[i - 1], ids[i], "an event_id used twice");
	}
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);

	bc_server_info info;
	bc_error err;
	cr_assert_eq(bc_get_server_info(client, 0, &info, &err), 0, "%s", err.message);
	cr_assert_eq(info.commit_index, mutations);
	cr_assert_eq(u.usage.seq, info.commit_index, "the last mutation set the row's seq");
	bc_server_info_free(&info);
	bc_usage_result_free(&u);
}

/* ---- what test_rpc.c leaves out ------------------------------------------------- */

TestSuite(library, .init = fx_setup, .fini = fx_teardown, .timeout = TEST_TIMEOUT_S);

Test(library, list_usages_filters_by_capability)
{
	const char *caps[] = {"alpha", "beta", "alpha", "gamma"};
	for (size_t i = 0; i < 4; i++) {
		bc_authorize_hold_result a =
		        fx_authorize(caps[i], (uint64_t)i, 5, NULL, NULL, false, 0);
		bc_authorize_hold_result_free(&a);
	}
	bc_list_usages_request req = {.capability_id = "alpha"};
	bc_usage_list list;
	bc_error err;

	cr_assert_eq(bc_list_usages(client, &req, 0, &list, &err), 0, "%s", err.message);
	cr_assert_eq(list.count, 2);
	cr_assert_str_eq(list.usages[0].capability_id, "alpha");
	cr_assert_eq(list.usages[0].grant_index, 2, "most recently updated first");
	cr_assert_eq(list.usages[1].grant_index, 0);
	cr_assert(list.usages[0].has_updated_at);
	bc_usage_list_free(&list);

	req = (bc_list_usages_request){.capability_id = "none"};
	cr_assert_eq(bc_list_usages(client, &req, 0, &list, &err), 0, "%s", err.message);
	cr_assert_eq(list.count, 0);
	cr_assert_null(list.usages);
	bc_usage_list_free(&list);

	req = (bc_list_usages_request){.limit = 1};
	cr_assert_eq(bc_list_usages(client, &req, 0, &list, &err), 0, "%s", err.message);
	cr_assert_eq(list.count, 1);
	cr_assert_str_eq(list.usages[0].capability_id, "gamma");
	bc_usage_list_free(&list);
}

Test(library, events_filter_by_capability_and_grant)
{
	for (uint64_t g = 0; g < 3; g++)
		for (int i = 0; i < 2; i++) {
			bc_authorize_hold_result a =
			        fx_authorize("cap", g, 1, NULL, NULL, false, 0);
			bc_authorize_hold_result_free(&a);
		}
	bc_authorize_hold_result other = fx_authorize("other", 1, 1, NULL, NULL, false, 0);
	bc_authorize_hold_result_free(&other);

	bc_list_mutation_events_request req = {
	        .capability_id = "cap", .has_grant_index = true, .grant_index = 1};
	bc_event_list list;
	bc_error err;
	cr_assert_eq(bc_list_mutation_events(client, &req, 0, &list, &err), 0, "%s", err.message);
	cr_assert_eq(list.count, 2);
	for (size_t i = 0; i < list.count; i++) {
		cr_assert_str_eq(list.events[i].capability_id, "cap");
		cr_assert_eq(list.events[i].grant_index, 1);
	}
	cr_assert_lt(list.events[0].event_seq, list.events[1].event_seq);
	cr_assert_eq(list.next_after_commit_index, list.events[1].event_seq);
	bc_event_list_free(&list);

	/* Grant 0 is a filter too, not "all grants". */
	req.grant_index = 0;
	cr_assert_eq(bc_list_mutation_events(client, &req, 0, &list, &err), 0, "%s", err.message);
	cr_assert_eq(list.count, 2);
	cr_assert_eq(list.events[0].grant_index, 0);
	bc_event_list_free(&list);

	req.has_grant_index = false;
	cr_assert_eq(bc_list_mutation_events(client, &req, 0, &list, &err), 0, "%s", err.message);
	cr_assert_eq(list.count, 6);
	bc_event_list_free(&list);
}

Test(library, capture_and_reconcile_are_the_same_mutation)
{
	bc_authorize_hold_result a = fx_authorize("cap", 0, 50, "h-rec", NULL, false, 0);
	bc_authorize_hold_result_free(&a);
	a = fx_authorize("cap", 1, 50, "h-cap", NULL, false, 0);
	bc_authorize_hold_result_free(&a);

	bc_reconcile_hold_request rec = {.capability_id = "cap",
	                                 .grant_index = 0,
	                                 .hold_id = "h-rec",
	                                 .exposed_cost_units = 50,
	                                 .realized_spend_units = 20,
	                                 .event_id = "settle-0"};
	bc_capture_hold_request cap = rec;
	cap.grant_index = 1;
	cap.hold_id = "h-cap";
	cap.event_id = "settle-1";
	bc_hold_mutation_result r1, r2;
	bc_error err;
	cr_assert_eq(bc_reconcile_hold(client, &rec, 0, &r1, &err), 0, "%s", err.message);
	cr_assert_eq(bc_capture_hold(client, &cap, 0, &r2, &err), 0, "%s", err.message);
	cr_assert_eq(r1.exposure_units, r2.exposure_units);
	cr_assert_eq(r1.realized_spend_units, r2.realized_spend_units);
	cr_assert_eq(r1.committed_cost_units_after, r2.committed_cost_units_after);
	cr_assert_eq(r1.invocation_count_after, r2.invocation_count_after);
	bc_hold_mutation_result_free(&r1);
	bc_hold_mutation_result_free(&r2);

	bc_usage_result u0 = usage_of("cap", 0), u1 = usage_of("cap", 1);
	cr_assert_eq(u0.usage.invocation_count, u1.usage.invocation_count);
	cr_assert_eq(u0.usage.total_cost_exposed, u1.usage.total_cost_exposed);
	cr_assert_eq(u0.usage.total_cost_realized_spend, u1.usage.total_cost_realized_spend);
	bc_usage_result_free(&u0);
	bc_usage_result_free(&u1);

	bc_hold h;
	cr_assert_eq(bc_get_hold(client, "h-cap", 0, &h, &err), 0, "%s", err.message);
	cr_assert_eq(h.disposition, BC_HOLD_DISPOSITION_RECONCILED);
	bc_hold_free(&h);

	bc_event_list list = events_of("cap");
	const bc_mutation_event *e = NULL;
	cr_assert_eq(count_event(&list, "settle-1", &e), 1);
	cr_assert_eq(e->kind, BC_MUTATION_KIND_RECONCILE_SPEND, "a capture is logged as reconcile");
	bc_event_list_free(&list);

	/* The same event_id through the other RPC is a replay, not a conflict. */
	cr_assert_eq(bc_reconcile_hold(client, &cap, 0, &r2, &err), 0, "%s", err.message);
	cr_assert(r2.metadata.replayed);
	bc_hold_mutation_result_free(&r2);
	cr_assert_eq(bc_capture_hold(client, &rec, 0, &r1, &err), 0, "%s", err.message);
	cr_assert(r1.metadata.replayed);
	bc_hold_mutation_result_free(&r1);
}

Test(library, reverse_without_a_hold_undoes_a_counted_invocation)
{
	bc_increment_invocation_request inc = {.capability_id = "calls", .grant_index = 4};
	bc_increment_invocation_result ir;
	bc_error err;
	cr_assert_eq(bc_increment_invocation(client, &inc, 0, &ir, &err), 0, "%s", err.message);
	cr_assert_eq(ir.invocation_count_after, 1);
	bc_increment_invocation_result_free(&ir);

	bc_reverse_hold_request rev = {.capability_id = "calls", .grant_index = 4};
	bc_hold_mutation_result r;
	cr_assert_eq(bc_reverse_hold(client, &rev, 0, &r, &err), 0, "%s", err.message);
	cr_assert_null(r.hold_id);
	cr_assert_eq(r.invocation_count_after, 0);
	cr_assert_eq(r.exposure_units, 0);
	cr_assert(r.metadata.has_budget_commit_index);
	bc_hold_mutation_result_free(&r);

	bc_usage_result u = usage_of("calls", 4);
	cr_assert(u.found);
	cr_assert_eq(u.usage.invocation_count, 0);
	bc_usage_result_free(&u);

	fx_expect_error(bc_reverse_hold(client, &rev, 0, &r, &err), &err,
	                GRPC_STATUS_FAILED_PRECONDITION, "no invocation to reverse");
	bc_event_list list = events_of("calls");
	cr_assert_eq(list.count, 2);
	cr_assert_eq(list.events[1].kind, BC_MUTATION_KIND_REVERSE_EXPOSURE);
	cr_assert_null(list.events[1].hold_id);
	cr_assert_not(list.events[1].has_allowed, "only authorize and increment say allowed");
	bc_event_list_free(&list);
}

Test(library, release_and_reconcile_without_a_hold_settle_the_grant)
{
	bc_authorize_hold_result a = fx_authorize("direct", 0, 100, NULL, NULL, false, 0);
	cr_assert_null(a.hold_id);
	bc_authorize_hold_result_free(&a);

	bc_release_hold_request rel = {.capability_id = "direct", .released_exposure_units = 30};
	bc_hold_mutation_result r;
	bc_error err;
	cr_assert_eq(bc_release_hold(client, &rel, 0, &r, &err), 0, "%s", err.message);
	cr_assert_eq(r.exposure_units, 30);
	cr_assert_eq(r.committed_cost_units_after, 70);
	bc_hold_mutation_result_free(&r);

	bc_hold_mutation_result s = fx_reconcile("direct", 0, NULL, 70, 60);
	cr_assert_null(s.hold_id);
	cr_assert_eq(s.realized_spend_units, 60);
	cr_assert_eq(s.committed_cost_units_after, 60);
	cr_assert_eq(s.invocation_count_after, 1);
	bc_hold_mutation_result_free(&s);
}

Test(library, every_denial_reason_reaches_the_caller_and_the_log)
{
	bc_authorize_hold_request req = {.capability_id = "lim",
	                                 .requested_exposure_units = 10,
	                                 .has_max_invocations = true,
	                                 .max_invocations = 1};
	bc_authorize_hold_result r;
	bc_error err;

	cr_assert_eq(bc_authorize_hold(client, &req, 0, &r, &err), 0, "%s", err.message);
	cr_assert(r.authorized);
	cr_assert_eq(r.denial_reason, BC_DENIAL_REASON_UNSPECIFIED);
	bc_authorize_hold_result_free(&r);
	cr_assert_eq(bc_authorize_hold(client, &req, 0, &r, &err), 0, "%s", err.message);
	cr_assert_not(r.authorized);
	cr_assert_eq(r.denial_reason, BC_DENIAL_REASON_MAX_INVOCATIONS);
	cr_assert_eq(r.invocation_count_after, 1);
	bc_authorize_hold_result_free(&r);

	req = (bc_authorize_hold_request){.capability_id = "lim",
	                                  .requested_exposure_units = 11,
	                                  .has_max_cost_per_invocation = true,
	                                  .max_cost_per_invocation = 10};
	cr_assert_eq(bc_authorize_hold(client, &req, 0, &r, &err), 0, "%s", err.message);
	cr_assert_not(r.authorized);
	cr_assert_eq(r.denial_reason, BC_DENIAL_REASON_MAX_COST_PER_INVOCATION);
	cr_assert_eq(r.attempted_exposure_units, 11);
	cr_assert(is_event_id(r.metadata.event_id), "a denial has its event_id too");
	bc_authorize_hold_result_free(&r);

	bc_increment_invocation_request inc = {
	        .capability_id = "lim", .has_max_invocations = true, .max_invocations = 1};
	bc_increment_invocation_result ir;
	cr_assert_eq(bc_increment_invocation(client, &inc, 0, &ir, &err), 0, "%s", err.message);
	cr_assert_not(ir.allowed);
	cr_assert_not(ir.metadata.has_budget_commit_index);
	bc_increment_invocation_result_free(&ir);

	bc_event_list list = events_of("lim");
	cr_assert_eq(list.count, 4);
	const bc_denial_reason want[] = {
	        BC_DENIAL_REASON_UNSPECIFIED, BC_DENIAL_REASON_MAX_INVOCATIONS,
	        BC_DENIAL_REASON_MAX_COST_PER_INVOCATION, BC_DENIAL_REASON_MAX_INVOCATIONS};
	for (size_t i = 0; i < 4; i++) {
		cr_assert(list.events[i].has_allowed);
		cr_assert_eq(list.events[i].allowed, i == 0);
		cr_assert_eq(list.events[i].denial_reason, want[i], "event %zu", i);
		cr_assert_eq(list.events[i].has_usage_seq, i == 0, "a denial has no usage_seq");
	}
	cr_assert(list.events[1].has_max_invocations);
	cr_assert_eq(list.events[1].max_invocations, 1);
	cr_assert(list.events[2].has_max_cost_per_invocation);
	cr_assert_not(list.events[2].has_max_total_cost_units);
	bc_event_list_free(&list);
}

Test(library, the_authority_lease_is_recorded_in_the_event)
{
	bc_authority auth = {"auth-a", "lease-7", 7};
	bc_authorize_hold_request req = {.capability_id = "leased",
	                                 .requested_exposure_units = 3,
	                                 .hold_id = "h1",
	                                 .authority = &auth};
	bc_authorize_hold_result a;
	bc_error err;
	cr_assert_eq(bc_authorize_hold(client, &req, 0, &a, &err), 0, "%s", err.message);
	bc_authorize_hold_result_free(&a);

	/* Settling without the lease is refused; with it, accepted. */
	bc_release_hold_request rel = {
	        .capability_id = "leased", .hold_id = "h1", .released_exposure_units = 3};
	bc_hold_mutation_result r;
	fx_expect_error(bc_release_hold(client, &rel, 0, &r, &err), &err,
	                GRPC_STATUS_FAILED_PRECONDITION, "requires authority lease metadata");
	rel.authority = &auth;
	cr_assert_eq(bc_release_hold(client, &rel, 0, &r, &err), 0, "%s", err.message);
	cr_assert_str_eq(r.metadata.budget_term, "auth-a:7");
	bc_hold_mutation_result_free(&r);

	bc_event_list list = events_of("leased");
	cr_assert_eq(list.count, 2);
	for (size_t i = 0; i < 2; i++) {
		cr_assert(list.events[i].has_authority);
		cr_assert_str_eq(list.events[i].authority.authority_id, "auth-a");
		cr_assert_str_eq(list.events[i].authority.lease_id, "lease-7");
		cr_assert_eq(list.events[i].authority.lease_epoch, 7);
	}
	cr_assert(list.events[0].has_recorded_at);
	bc_event_list_free(&list);
}

/* ---- hold deadlines, ExtendHold and ListHolds ------------------------------------ */

static int64_t unix_now(void)
{
	struct timespec ts;

	cr_assert_eq(clock_gettime(CLOCK_REALTIME, &ts), 0);
	return (int64_t)ts.tv_sec;
}

/* The deadline is `ttl` seconds after a moment in [before, after]. */
static void expect_deadline(bool has, const bc_timestamp *t, int64_t before, int64_t after,
                            uint32_t ttl)
{
	cr_assert(has, "no deadline");
	cr_assert_geq(t->seconds, before + (int64_t)ttl, "%lld", (long long)t->seconds);
	cr_assert_leq(t->seconds, after + (int64_t)ttl, "%lld", (long long)t->seconds);
	cr_assert(t->nanos >= 0 && t->nanos <= 999999999);
}

static bool same_time(const bc_timestamp *a, const bc_timestamp *b)
{
	return a->seconds == b->seconds && a->nanos == b->nanos;
}

static int time_cmp(const bc_timestamp *a, const bc_timestamp *b)
{
	if (a->seconds != b->seconds)
		return a->seconds < b->seconds ? -1 : 1;
	return a->nanos < b->nanos ? -1 : a->nanos > b->nanos;
}

/* Authorizes a hold with a deadline (ttl 0: none requested). */
static bc_authorize_hold_result authorize_ttl(const char *cap, uint64_t grant, const char *hold,
                                              uint32_t ttl, bc_expiry_policy policy)
{
	bc_authorize_hold_request req = {
	        .capability_id = cap,
	        .grant_index = grant,
	        .requested_exposure_units = 10,
	        .hold_id = hold,
	        .has_ttl_seconds = ttl > 0,
	        .ttl_seconds = ttl,
	        .on_expiry = policy,
	};
	bc_authorize_hold_result r;
	bc_error err;

	cr_assert_eq(bc_authorize_hold(client, &req, 0, &r, &err), 0, "authorize %s: %s", hold,
	             err.message);
	cr_assert(r.authorized);
	return r;
}

static bc_hold hold_of(const char *hold_id)
{
	bc_hold h;
	bc_error err;

	cr_assert_eq(bc_get_hold(client, hold_id, 0, &h, &err), 0, "%s: %s", hold_id, err.message);
	return h;
}

static int extend(const char *cap, uint64_t grant, const char *hold, uint32_t ttl,
                  const char *event_id, bc_extend_hold_result *out, bc_error *err)
{
	bc_extend_hold_request req = {
	        .capability_id = cap,
	        .grant_index = grant,
	        .hold_id = hold,
	        .ttl_seconds = ttl,
	        .event_id = event_id,
	};

	return bc_extend_hold(client, &req, 0, out, err);
}

TestSuite(expiry, .init = fx_setup, .fini = fx_teardown, .timeout = TEST_TIMEOUT_S);

Test(expiry, authorize_with_a_ttl_opens_a_hold_with_a_deadline_and_a_policy)
{
	int64_t before = unix_now();
	bc_authorize_hold_result a =
	        authorize_ttl("ttl", 0, "h-ttl", 120, BC_EXPIRY_POLICY_RELEASE);
	int64_t after = unix_now();

	expect_deadline(a.has_expires_at, &a.expires_at, before, after, 120);
	bc_hold h = hold_of("h-ttl");
	cr_assert(h.has_expires_at);
	cr_assert(same_time(&h.expires_at, &a.expires_at), "the hold has the answer's deadline");
	cr_assert_eq(h.on_expiry, BC_EXPIRY_POLICY_RELEASE);
	cr_assert_eq(h.disposition, BC_HOLD_DISPOSITION_OPEN);
	bc_hold_free(&h);

	bc_event_list list = events_of("ttl");
	cr_assert_eq(list.count, 1);
	const bc_mutation_event *e = &list.events[0];
	cr_assert_eq(e->kind, BC_MUTATION_KIND_AUTHORIZE_EXPOSURE);
	cr_assert(e->has_ttl_seconds);
	cr_assert_eq(e->ttl_seconds, 120);
	cr_assert(e->has_expires_at && same_time(&e->expires_at, &a.expires_at));
	cr_assert_eq(e->on_expiry, BC_EXPIRY_POLICY_RELEASE);
	bc_event_list_free(&list);
	bc_authorize_hold_result_free(&a);

	/* Without a ttl (and no budgetd --hold-ttl): no deadline anywhere. */
	a = authorize_ttl("ttl", 0, "h-none", 0, BC_EXPIRY_POLICY_UNSPECIFIED);
	cr_assert_not(a.has_expires_at);
	cr_assert_eq(a.expires_at.seconds, 0);
	h = hold_of("h-none");
	cr_assert_not(h.has_expires_at);
	cr_assert_eq(h.on_expiry, BC_EXPIRY_POLICY_UNSPECIFIED);
	bc_hold_free(&h);
	bc_authorize_hold_result_free(&a);

	/* A ttl without a policy: CAPTURE. */
	a = authorize_ttl("ttl", 0, "h-default", 60, BC_EXPIRY_POLICY_UNSPECIFIED);
	h = hold_of("h-default");
	cr_assert_eq(h.on_expiry, BC_EXPIRY_POLICY_CAPTURE);
	bc_hold_free(&h);
	bc_authorize_hold_result_free(&a);
}

Test(expiry, extend_moves_the_deadline_later_and_never_earlier)
{
	bc_authorize_hold_result a = authorize_ttl("ext", 3, "h-ext", 30, BC_EXPIRY_POLICY_REVERSE);
	bc_extend_hold_result r;
	bc_error err;

	int64_t before = unix_now();
	cr_assert_eq(extend("ext", 3, "h-ext", 3600, NULL, &r, &err), 0, "%s", err.message);
	int64_t after = unix_now();
	cr_assert_str_eq(r.hold_id, "h-ext");
	expect_deadline(r.has_expires_at, &r.expires_at, before, after, 3600);
	cr_assert_gt(time_cmp(&r.expires_at, &a.expires_at), 0, "later than the first deadline");
	cr_assert(is_event_id(r.metadata.event_id), "a generated event_id `%s`",
	          r.metadata.event_id);
	cr_assert(r.metadata.has_budget_commit_index);
	cr_assert_eq(r.metadata.budget_commit_index, 2);
	cr_assert_not(r.metadata.replayed);

	bc_hold h = hold_of("h-ext");
	cr_assert(same_time(&h.expires_at, &r.expires_at));
	cr_assert_eq(h.on_expiry, BC_EXPIRY_POLICY_REVERSE, "the hold keeps its policy");
	cr_assert_eq(h.disposition, BC_HOLD_DISPOSITION_OPEN);
	cr_assert_eq(h.remaining_exposure_units, 10);
	bc_hold_free(&h);

	bc_event_list list = events_of("ext");
	cr_assert_eq(list.count, 2);
	const bc_mutation_event *e = &list.events[1];
	cr_assert_eq(e->kind, BC_MUTATION_KIND_EXTEND_HOLD);
	cr_assert_str_eq(e->hold_id, "h-ext");
	cr_assert_str_eq(e->event_id, r.metadata.event_id);
	cr_assert(e->has_ttl_seconds);
	cr_assert_eq(e->ttl_seconds, 3600);
	cr_assert(e->has_expires_at && same_time(&e->expires_at, &r.expires_at));
	cr_assert_eq(e->on_expiry, BC_EXPIRY_POLICY_REVERSE);
	cr_assert_eq(e->exposure_units, 0);
	cr_assert_eq(e->total_cost_exposed_after, 10, "an extension moves no money");
	bc_event_list_free(&list);

	/* A shorter ttl keeps the later deadline. */
	bc_extend_hold_result shorter;
	cr_assert_eq(extend("ext", 3, "h-ext", 1, "ext-short", &shorter, &err), 0, "%s",
	             err.message);
	cr_assert(same_time(&shorter.expires_at, &r.expires_at), "never earlier");
	cr_assert_str_eq(shorter.metadata.event_id, "ext-short");

	/* The same event_id again is a replay. */
	bc_extend_hold_result again;
	cr_assert_eq(extend("ext", 3, "h-ext", 1, "ext-short", &again, &err), 0, "%s", err.message);
	cr_assert(again.metadata.replayed);
	cr_assert_eq(again.metadata.budget_commit_index, shorter.metadata.budget_commit_index);
	bc_extend_hold_result_free(&again);
	bc_extend_hold_result_free(&shorter);
	bc_extend_hold_result_free(&r);
	bc_authorize_hold_result_free(&a);
}

Test(expiry, extend_gives_a_hold_without_a_deadline_one_with_capture)
{
	bc_authorize_hold_result a = authorize_ttl("ext", 0, "h-plain", 0, 0);
	bc_extend_hold_result r;
	bc_error err;

	int64_t before = unix_now();
	cr_assert_eq(extend("ext", 0, "h-plain", 90, NULL, &r, &err), 0, "%s", err.message);
	expect_deadline(r.has_expires_at, &r.expires_at, before, unix_now(), 90);
	bc_hold h = hold_of("h-plain");
	cr_assert(h.has_expires_at && same_time(&h.expires_at, &r.expires_at));
	cr_assert_eq(h.on_expiry, BC_EXPIRY_POLICY_CAPTURE);
	bc_hold_free(&h);
	bc_extend_hold_result_free(&r);
	bc_authorize_hold_result_free(&a);
}

Test(expiry, extend_rejects_bad_ttls_and_missing_mismatched_or_closed_holds)
{
	bc_authorize_hold_result a = authorize_ttl("ext", 1, "h-bad", 60, 0);
	bc_authorize_hold_result_free(&a);
	bc_extend_hold_result r;
	bc_error err;
	int rc;

	rc = extend("ext", 1, "h-bad", 0, NULL, &r, &err);
	fx_expect_error(rc, &err, GRPC_STATUS_INVALID_ARGUMENT, "ttl_seconds");
	rc = extend("ext", 1, "h-bad", BC_TTL_SECONDS_MAX + 1, NULL, &r, &err);
	fx_expect_error(rc, &err, GRPC_STATUS_INVALID_ARGUMENT, "ttl_seconds");
	rc = extend("ext", 1, "nope", 10, NULL, &r, &err);
	fx_expect_error(rc, &err, GRPC_STATUS_FAILED_PRECONDITION, "missing budget hold `nope`");
	rc = extend("ext", 2, "h-bad", 10, NULL, &r, &err);
	fx_expect_error(rc, &err, GRPC_STATUS_FAILED_PRECONDITION, "does not match");

	/* A settled hold is final: no deadline, no extension. */
	bc_hold_mutation_result m = fx_reconcile("ext", 1, "h-bad", 10, 4);
	bc_hold_mutation_result_free(&m);
	bc_hold h = hold_of("h-bad");
	cr_assert_eq(h.disposition, BC_HOLD_DISPOSITION_RECONCILED);
	cr_assert_not(h.has_expires_at, "a final hold has no deadline");
	bc_hold_free(&h);
	rc = extend("ext", 1, "h-bad", 10, NULL, &r, &err);
	fx_expect_error(rc, &err, GRPC_STATUS_FAILED_PRECONDITION, "is no longer open");
	cr_assert_null(r.hold_id, "a failed call leaves the result zeroed");
}

/* Waits (bounded) until the hold leaves OPEN; returns it. */
static bc_hold wait_settled(const char *hold_id)
{
	struct timespec pause = {0, 50 * 1000 * 1000};

	for (int i = 0; i < WAIT_MS / 50; i++) {
		bc_hold h = hold_of(hold_id);

		if (h.disposition != BC_HOLD_DISPOSITION_OPEN)
			return h;
		bc_hold_free(&h);
		nanosleep(&pause, NULL);
	}
	cr_assert_fail("hold %s is still open after %d ms", hold_id, WAIT_MS);
	return (bc_hold){0};
}

Test(expiry, a_hold_past_its_deadline_is_expired_listed_and_final)
{
	bc_authorize_hold_result a = authorize_ttl("due", 0, "h-due", 1, BC_EXPIRY_POLICY_CAPTURE);
	bc_authorize_hold_result_free(&a);

	bc_hold h = wait_settled("h-due");
	cr_assert_eq(h.disposition, BC_HOLD_DISPOSITION_EXPIRED);
	cr_assert_eq(h.on_expiry, BC_EXPIRY_POLICY_CAPTURE, "the policy it was settled by");
	cr_assert_not(h.has_expires_at, "a final hold has no deadline");
	cr_assert_eq(h.remaining_exposure_units, 0);
	bc_hold_free(&h);

	bc_event_list list = events_of("due");
	cr_assert_eq(list.count, 2);
	const bc_mutation_event *e = &list.events[1];
	cr_assert_eq(e->kind, BC_MUTATION_KIND_EXPIRE_EXPOSURE);
	cr_assert_str_eq(e->hold_id, "h-due");
	cr_assert_eq(e->on_expiry, BC_EXPIRY_POLICY_CAPTURE);
	cr_assert_eq(e->exposure_units, 10);
	cr_assert_eq(e->realized_spend_units, 10, "captured");
	cr_assert_not(e->has_ttl_seconds);
	cr_assert_str_eq(e->caller, "budgetd");
	bc_event_list_free(&list);

	bc_list_holds_request req = {.has_disposition = true,
	                             .disposition = BC_HOLD_DISPOSITION_EXPIRED};
	bc_hold_list l;
	bc_error err;
	cr_assert_eq(bc_list_holds(client, &req, 0, &l, &err), 0, "%s", err.message);
	cr_assert_eq(l.count, 1);
	cr_assert_str_eq(l.holds[0].hold_id, "h-due");
	cr_assert_eq(l.holds[0].disposition, BC_HOLD_DISPOSITION_EXPIRED);
	bc_hold_list_free(&l);

	bc_extend_hold_result r;
	fx_expect_error(extend("due", 0, "h-due", 60, NULL, &r, &err), &err,
	                GRPC_STATUS_FAILED_PRECONDITION, "is no longer open");
}

/* Every hold of all pages of `req` (limit per page), in order. */
static size_t list_all_holds(bc_list_holds_request req, char ids[][32], size_t max, size_t *pages)
{
	char token[1024] = "";
	size_t n = 0;

	*pages = 0;
	for (;;) {
		bc_hold_list page;
		bc_error err;

		req.page_token = token;
		cr_assert_eq(bc_list_holds(client, &req, 0, &page, &err), 0, "%s", err.message);
		(*pages)++;
		cr_assert_leq(page.count, req.limit);
		cr_assert_not_null(page.next_page_token);
		for (size_t i = 0; i < page.count; i++) {
			cr_assert_lt(n, max);
			snprintf(ids[n++], 32, "%s", page.holds[i].hold_id);
		}
		cr_assert_lt(strlen(page.next_page_token), sizeof(token));
		snprintf(token, sizeof(token), "%s", page.next_page_token);
		bc_hold_list_free(&page);
		if (!token[0])
			return n;
		cr_assert_lt(*pages, 1000, "paging does not end");
	}
}

Test(expiry, list_holds_pages_through_every_hold_exactly_once_oldest_first)
{
	enum { HOLDS = 23 };
	char want[HOLDS][32], got[HOLDS + 8][32];
	size_t pages;

	for (int i = 0; i < HOLDS; i++) {
		snprintf(want[i], sizeof(want[i]), "page-%02d", i);
		bc_authorize_hold_result a =
		        fx_authorize(i % 2 ? "odd" : "even", 0, 1, want[i], NULL, false, 0);
		bc_authorize_hold_result_free(&a);
	}
	bc_list_holds_request req = {.limit = 4};
	size_t n = list_all_holds(req, got, HOLDS + 8, &pages);
	cr_assert_eq(n, HOLDS);
	cr_assert_eq(pages, (HOLDS + 3) / 4, "%zu pages", pages);
	for (int i = 0; i < HOLDS; i++)
		cr_assert_str_eq(got[i], want[i], "oldest first, each once");

	req = (bc_list_holds_request){.limit = 5, .capability_id = "odd"};
	n = list_all_holds(req, got, HOLDS + 8, &pages);
	cr_assert_eq(n, HOLDS / 2);
	for (size_t i = 0; i < n; i++)
		cr_assert_str_eq(got[i], want[2 * i + 1]);

	/* One page of all: the default limit is 100. */
	bc_hold_list all;
	bc_error err;
	req = (bc_list_holds_request){0};
	cr_assert_eq(bc_list_holds(client, &req, 0, &all, &err), 0, "%s", err.message);
	cr_assert_eq(all.count, HOLDS);
	cr_assert_str_empty(all.next_page_token);
	for (size_t i = 1; i < all.count; i++)
		cr_assert_leq(time_cmp(&all.holds[i - 1].created_at, &all.holds[i].created_at), 0);
	cr_assert_str_eq(all.holds[0].capability_id, "even");
	cr_assert_eq(all.holds[0].authorized_exposure_units, 1);
	cr_assert(all.holds[0].has_created_at && all.holds[0].debited_invocation);
	bc_hold_list_free(&all);
}

Test(expiry, list_holds_filters_by_disposition_and_age)
{
	const char *ids[] = {"f-open", "f-released", "f-reconciled", "f-reversed", "f-late"};
	bc_error err;

	for (size_t i = 0; i < 4; i++) {
		bc_authorize_hold_result a = fx_authorize("filt", i, 10, ids[i], NULL, false, 0);
		bc_authorize_hold_result_free(&a);
	}
	bc_release_hold_request rel = {.capability_id = "filt",
	                               .grant_index = 1,
	                               .hold_id = "f-released",
	                               .released_exposure_units = 10};
	bc_reverse_hold_request rev = {.capability_id = "filt",
	                               .grant_index = 3,
	                               .hold_id = "f-reversed",
	                               .reversed_exposure_units = 10};
	bc_hold_mutation_result m;
	cr_assert_eq(bc_release_hold(client, &rel, 0, &m, &err), 0, "%s", err.message);
	bc_hold_mutation_result_free(&m);
	cr_assert_eq(bc_reverse_hold(client, &rev, 0, &m, &err), 0, "%s", err.message);
	bc_hold_mutation_result_free(&m);
	m = fx_reconcile("filt", 2, "f-reconciled", 10, 3);
	bc_hold_mutation_result_free(&m);
	/* Its own later group commit: created after every hold above. */
	bc_authorize_hold_result late = authorize_ttl("filt", 9, "f-late", 600, 0);
	bc_authorize_hold_result_free(&late);

	static const struct {
		bc_hold_disposition d;
		const char *first;
		size_t count;
	} cases[] = {
	        {BC_HOLD_DISPOSITION_OPEN, "f-open", 2},
	        {BC_HOLD_DISPOSITION_RELEASED, "f-released", 1},
	        {BC_HOLD_DISPOSITION_REVERSED, "f-reversed", 1},
	        {BC_HOLD_DISPOSITION_RECONCILED, "f-reconciled", 1},
	        {BC_HOLD_DISPOSITION_EXPIRED, NULL, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bc_list_holds_request req = {.has_disposition = true, .disposition = cases[i].d};
		bc_hold_list l;

		cr_assert_eq(bc_list_holds(client, &req, 0, &l, &err), 0, "%s", err.message);
		cr_assert_eq(l.count, cases[i].count, "disposition %d: %zu holds", cases[i].d,
		             l.count);
		for (size_t k = 0; k < l.count; k++)
			cr_assert_eq(l.holds[k].disposition, cases[i].d);
		if (cases[i].first)
			cr_assert_str_eq(l.holds[0].hold_id, cases[i].first);
		bc_hold_list_free(&l);
	}

	/* older_than: the holds created before f-late's creation. */
	bc_hold h = hold_of("f-late");
	cr_assert(h.has_expires_at && h.on_expiry == BC_EXPIRY_POLICY_CAPTURE);
	bc_list_holds_request req = {
	        .capability_id = "filt", .has_older_than = true, .older_than = h.created_at};
	bc_hold_list l;
	cr_assert_eq(bc_list_holds(client, &req, 0, &l, &err), 0, "%s", err.message);
	cr_assert_eq(l.count, 4, "all but f-late");
	for (size_t k = 0; k < l.count; k++)
		cr_assert_str_neq(l.holds[k].hold_id, "f-late");
	bc_hold_list_free(&l);

	/* The listed hold carries its deadline and policy. */
	req = (bc_list_holds_request){.capability_id = "filt",
	                              .has_disposition = true,
	                              .disposition = BC_HOLD_DISPOSITION_OPEN};
	cr_assert_eq(bc_list_holds(client, &req, 0, &l, &err), 0, "%s", err.message);
	cr_assert_eq(l.count, 2);
	cr_assert_str_eq(l.holds[1].hold_id, "f-late");
	cr_assert(l.holds[1].has_expires_at && same_time(&l.holds[1].expires_at, &h.expires_at));
	cr_assert_eq(l.holds[1].on_expiry, BC_EXPIRY_POLICY_CAPTURE);
	cr_assert_not(l.holds[0].has_expires_at);
	bc_hold_list_free(&l);
	bc_hold_free(&h);

	req = (bc_list_holds_request){.limit = 1001};
	fx_expect_error(bc_list_holds(client, &req, 0, &l, &err), &err,
	                GRPC_STATUS_INVALID_ARGUMENT, "limit");
	cr_assert_eq(l.count, 0);
	cr_assert_null(l.next_page_token);
	req = (bc_list_holds_request){.page_token = "not-a-token-of-ours"};
	fx_expect_error(bc_list_holds(client, &req, 0, &l, &err), &err,
	                GRPC_STATUS_INVALID_ARGUMENT, "page_token");
}

/* ---- the client's own checks (no server needed) --------------------------------- */

TestSuite(local, .timeout = TEST_TIMEOUT_S);

Test(local, bad_options_are_invalid_argument)
{
	bc_options bad[] = {
	        {.target = NULL},
	        {.target = ""},
	        {.target = "127.0.0.1:1", .deadline_ms = -1},
	        {.target = "127.0.0.1:1", .max_attempts = BC_MAX_ATTEMPTS_MAX + 1},
	        {.target = "127.0.0.1:1", .backoff_base_ms = 100, .backoff_max_ms = 50},
	        {.target = "127.0.0.1:1", .cert_file = "/dev/null"},
	        {.target = "127.0.0.1:1", .ca_file = "/nonexistent/ca.pem"},
	        {.target = "127.0.0.1:1", .ca_file = "/dev/null"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bc_client *c = (bc_client *)&bad[i]; /* must be reset to NULL */
		bc_error err = {0};
		cr_assert_eq(bc_client_new(&bad[i], &c, &err), -BC_STATUS_INVALID_ARGUMENT,
		             "options %zu", i);
		cr_assert_eq(err.code, BC_STATUS_INVALID_ARGUMENT);
		cr_assert_neq(err.message[0], '\0');
		cr_assert_null(c);
	}
	cr_assert_eq(bc_client_new(NULL, NULL, NULL), -BC_STATUS_INVALID_ARGUMENT);
}

Test(local, null_arguments_and_bad_deadlines_are_invalid_argument)
{
	bc_client *c = new_client("127.0.0.1:1", false, 0);
	bc_authorize_hold_result a;
	bc_usage_result u;
	bc_error err;

	cr_assert_eq(bc_authorize_hold(c, NULL, 0, &a, &err), -BC_STATUS_INVALID_ARGUMENT);
	cr_assert_eq(bc_authorize_hold(NULL, NULL, 0, &a, &err), -BC_STATUS_INVALID_ARGUMENT);
	bc_authorize_hold_request req = {.capability_id = "cap"};
	cr_assert_eq(bc_authorize_hold(c, &req, 0, NULL, &err), -BC_STATUS_INVALID_ARGUMENT);
	cr_assert_eq(bc_authorize_hold(c, &req, -5, &a, &err), -BC_STATUS_INVALID_ARGUMENT);
	cr_assert(strstr(err.message, "deadline"), "%s", err.message);
	cr_assert_eq(bc_get_usage(c, "cap", 0, -1, &u, &err), -BC_STATUS_INVALID_ARGUMENT);
	cr_assert_eq(bc_event_id_new(NULL, &err), -BC_STATUS_INVALID_ARGUMENT);

	bc_extend_hold_request ext = {.capability_id = "cap", .hold_id = "h", .ttl_seconds = 1};
	bc_extend_hold_result x = {.hold_id = (char *)"garbage"};
	cr_assert_eq(bc_extend_hold(c, NULL, 0, &x, &err), -BC_STATUS_INVALID_ARGUMENT);
	cr_assert_null(x.hold_id, "the result is zeroed first");
	cr_assert_eq(bc_extend_hold(c, &ext, 0, NULL, &err), -BC_STATUS_INVALID_ARGUMENT);
	cr_assert_eq(bc_extend_hold(NULL, &ext, 0, &x, &err), -BC_STATUS_INVALID_ARGUMENT);
	cr_assert_eq(bc_extend_hold(c, &ext, -1, &x, &err), -BC_STATUS_INVALID_ARGUMENT);
	bc_list_holds_request lh = {0};
	bc_hold_list l;
	cr_assert_eq(bc_list_holds(c, NULL, 0, &l, &err), -BC_STATUS_INVALID_ARGUMENT);
	cr_assert_eq(l.count, 0);
	cr_assert_null(l.next_page_token);
	cr_assert_eq(bc_list_holds(c, &lh, 0, NULL, &err), -BC_STATUS_INVALID_ARGUMENT);
	cr_assert_eq(bc_list_holds(c, &lh, -1, &l, &err), -BC_STATUS_INVALID_ARGUMENT);
	bc_client_free(c);
	bc_client_free(NULL);
}

Test(local, free_functions_accept_zeroed_and_freed_results)
{
	bc_authorize_hold_result a = {0};
	bc_hold_mutation_result m = {0};
	bc_increment_invocation_result i = {0};
	bc_usage_result u = {0};
	bc_usage_list ul = {0};
	bc_event_list el = {0};
	bc_hold h = {0};
	bc_server_info s = {0};
	bc_extend_hold_result x = {0};
	bc_hold_list hl = {0};

	for (int twice = 0; twice < 2; twice++) {
		bc_authorize_hold_result_free(&a);
		bc_hold_mutation_result_free(&m);
		bc_increment_invocation_result_free(&i);
		bc_usage_result_free(&u);
		bc_usage_list_free(&ul);
		bc_event_list_free(&el);
		bc_hold_free(&h);
		bc_server_info_free(&s);
		bc_extend_hold_result_free(&x);
		bc_hold_list_free(&hl);
	}
	bc_authorize_hold_result_free(NULL);
	bc_event_list_free(NULL);
	bc_extend_hold_result_free(NULL);
	bc_hold_list_free(NULL);
}

Test(local, names_of_codes_and_enum_values)
{
	cr_assert_str_eq(bc_status_name(BC_STATUS_UNAVAILABLE), "UNAVAILABLE");
	cr_assert_str_eq(bc_status_name(BC_STATUS_OK), "OK");
	cr_assert_str_eq(bc_status_name(99), "UNKNOWN");
	cr_assert_str_eq(bc_status_name(-1), "UNKNOWN");
	cr_assert_str_eq(bc_mutation_kind_name(BC_MUTATION_KIND_RECONCILE_SPEND),
	                 "MUTATION_KIND_RECONCILE_SPEND");
	cr_assert_str_eq(bc_hold_disposition_name(BC_HOLD_DISPOSITION_REVERSED),
	                 "HOLD_DISPOSITION_REVERSED");
	cr_assert_str_eq(bc_denial_reason_name(BC_DENIAL_REASON_MAX_TOTAL_COST),
	                 "DENIAL_REASON_MAX_TOTAL_COST");
	cr_assert_str_eq(bc_serving_status_name(BC_SERVING_STATUS_NOT_SERVING), "NOT_SERVING");
	cr_assert_str_eq(bc_guarantee_level_name(1), "GUARANTEE_LEVEL_SINGLE_NODE_ATOMIC");
	cr_assert_str_eq(bc_mutation_kind_name(BC_MUTATION_KIND_EXPIRE_EXPOSURE),
	                 "MUTATION_KIND_EXPIRE_EXPOSURE");
	cr_assert_str_eq(bc_mutation_kind_name(BC_MUTATION_KIND_EXTEND_HOLD),
	                 "MUTATION_KIND_EXTEND_HOLD");
	cr_assert_str_eq(bc_hold_disposition_name(BC_HOLD_DISPOSITION_EXPIRED),
	                 "HOLD_DISPOSITION_EXPIRED");
	cr_assert_str_eq(bc_expiry_policy_name(BC_EXPIRY_POLICY_UNSPECIFIED),
	                 "EXPIRY_POLICY_UNSPECIFIED");
	cr_assert_str_eq(bc_expiry_policy_name(BC_EXPIRY_POLICY_REVERSE), "EXPIRY_POLICY_REVERSE");
	cr_assert_null(bc_expiry_policy_name(4));
	cr_assert_null(bc_hold_disposition_name(6));
	cr_assert_null(bc_mutation_kind_name(8), "a value from a newer server");
	cr_assert_null(bc_denial_reason_name(-1));
	cr_assert_null(bc_budget_profile_name(2));
	cr_assert_null(bc_metering_profile_name(2));
}
