/* test_metrics_unit.c - bd_metrics: counters, histograms and gauges after a
 * known sequence of observations, scraped over HTTP from libmicrohttpd with
 * a few lines of socket code; 404, 405, a busy port, bad addresses. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <grpc/status.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "bd_app.h"
#include "bd_metrics.h"

#define AUTHORIZE   "AuthorizeHold" /* bd_grpc names a method by its last path element */
#define RELEASE     "Release"
#define REPLY_MAX   (4u << 20) /* the most a test reads of one HTTP reply */
#define READ_WAIT_S 30         /* a safety net for a hung server, not a sync */
#define US          1000ull
#define MS          1000000ull
#define S           1000000000ull

static bd_metrics *m;

static void setup(void)
{
	cr_assert_eq(bd_metrics_create(&m), 0);
}

static void teardown(void)
{
	bd_metrics_destroy(m);
	m = NULL;
}

TestSuite(metrics, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(http, .init = setup, .fini = teardown, .timeout = 60);

/* ---- a tiny HTTP/1.0 client ---- */

typedef struct reply {
	int status;
	char *head; /* status line and headers */
	char *body;
	size_t body_len;
	char *raw;
} reply;

static reply http_request(int port, const char *request)
{
	reply r = {0};
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = READ_WAIT_S};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
	             strerror(errno));
	size_t len = strlen(request);
	cr_assert_eq(send(fd, request, len, MSG_NOSIGNAL), (ssize_t)len);

	size_t got = 0;
	r.raw = malloc(REPLY_MAX + 1);
	cr_assert_not_null(r.raw);
	for (;;) {
		ssize_t n = recv(fd, r.raw + got, REPLY_MAX - got, 0);
		cr_assert_geq(n, 0, "recv: %s", strerror(errno));
		if (n == 0)
			break; /* HTTP/1.0: the server closes after the reply */
		got += (size_t)n;
		cr_assert_lt(got, REPLY_MAX, "reply too long");
	}
	close(fd);
	r.raw[got] = '\0';

	char *end = strstr(r.raw, "\r\n\r\n");
	cr_assert_not_null(end, "no end of headers in: %s", r.raw);
	*end = '\0';
	r.head = r.raw;
	r.body = end + 4;
	r.body_len = got - (size_t)(r.body - r.raw);
	cr_assert_eq(sscanf(r.head, "HTTP/1.%*d %d", &r.status), 1, "status line: %s", r.head);
	return r;
}

static reply http_get(int port, const char *path)
{
	char req[256];

	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	return http_request(port, req);
}

static void reply_free(reply *r)
{
	free(r->raw);
}

/* Listens on an ephemeral loopback port. */
static int listen_here(bd_metrics_gauge_fn fn, void *ctx)
{
	char err[256];

	cr_assert_eq(bd_metrics_port(m), 0);
	cr_assert_eq(bd_metrics_listen(m, "127.0.0.1:0", fn, ctx, err, sizeof(err)), 0, "%s", err);
	int port = bd_metrics_port(m);
	cr_assert_gt(port, 0);
	return port;
}

/* A scrape of GET /metrics; the body is owned by the caller. */
static char *scrape(int port)
{
	reply r = http_get(port, "/metrics");

	cr_assert_eq(r.status, 200, "%s", r.head);
	char *body = strdup(r.body);
	cr_assert_not_null(body);
	reply_free(&r);
	return body;
}

/* ---- reading the text format ---- */

/* The value of the sample whose name and labels are exactly `key`, e.g.
 * `budgetd_queue_depth` or `x_total{a="b"}`; false when absent. */
static bool find_sample(const char *body, const char *key, char *val, size_t val_len)
{
	size_t kl = strlen(key);

	for (const char *line = body; line && *line;) {
		const char *nl = strchr(line, '\n');
		if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
			const char *v = line + kl + 1;
			size_t n = nl ? (size_t)(nl - v) : strlen(v);
			cr_assert_lt(n, val_len);
			memcpy(val, v, n);
			val[n] = '\0';
			return true;
		}
		line = nl ? nl + 1 : NULL;
	}
	return false;
}

static uint64_t sample_u64(const char *body, const char *key)
{
	char v[64], *end;

	cr_assert(find_sample(body, key, v, sizeof(v)), "no sample `%s` in:\n%s", key, body);
	uint64_t x = strtoull(v, &end, 10);
	cr_assert_eq(*end, '\0', "`%s` is not an integer: %s", key, v);
	return x;
}

static char *sample_text(const char *body, const char *key)
{
	static char v[64];

	cr_assert(find_sample(body, key, v, sizeof(v)), "no sample `%s` in:\n%s", key, body);
	return v;
}

static bool has_sample(const char *body, const char *key)
{
	char v[64];

	return find_sample(body, key, v, sizeof(v));
}

/* Checks one histogram series: buckets in order of le, cumulative, ending
 * with +Inf == _count; returns the count. `labels` is `method="x",` or "". */
static uint64_t check_histogram(const char *body, const char *name, const char *labels,
                                size_t buckets_expected)
{
	char prefix[512], key[512];
	uint64_t prev = 0;
	double prev_le = -1;
	size_t buckets = 0;
	bool inf = false;

	snprintf(prefix, sizeof(prefix), "%s_bucket{%sle=\"", name, labels);
	for (const char *line = body; line && *line;) {
		const char *nl = strchr(line, '\n');
		if (strncmp(line, prefix, strlen(prefix)) == 0) {
			const char *le = line + strlen(prefix);
			cr_assert(!inf, "a bucket after +Inf in %s", name);
			uint64_t v;
			char le_text[32];
			cr_assert_eq(sscanf(le, "%31[^\"]\"} %" SCNu64, le_text, &v), 2, "%.*s",
			             (int)(nl - line), line);
			if (strcmp(le_text, "+Inf") == 0) {
				inf = true;
			} else {
				double x = strtod(le_text, NULL);
				cr_assert_gt(x, prev_le, "le out of order in %s", name);
				prev_le = x;
			}
			cr_assert_geq(v, prev, "%s: buckets are not cumulative at le=%s", name,
			              le_text);
			prev = v;
			buckets++;
		}
		line = nl ? nl + 1 : NULL;
	}
	cr_assert(inf, "%s{%s} has no +Inf bucket", name, labels);
	cr_assert_eq(buckets, buckets_expected + 1, "%s: %zu buckets", name, buckets);
	size_t ll = strlen(labels);
	if (ll) /* `method="x",` becomes `{method="x"}` */
		snprintf(key, sizeof(key), "%s_count{%.*s}", name, (int)ll - 1, labels);
	else
		snprintf(key, sizeof(key), "%s_count", name);
	cr_assert_eq(sample_u64(body, key), prev, "%s: +Inf != _count", name);
	return prev;
}

static uint64_t bucket(const char *body, const char *name, const char *labels, const char *le)
{
	char key[512];

	snprintf(key, sizeof(key), "%s_bucket{%sle=\"%s\"}", name, labels, le);
	return sample_u64(body, key);
}

static char *render(void)
{
	char *body;
	size_t len;

	cr_assert_eq(bd_metrics_render(m, &body, &len), 0);
	cr_assert_eq(strlen(body), len);
	return body;
}

/* ---- counters ---- */

static void observe_known_calls(void)
{
	bd_metrics_observe_call(m, AUTHORIZE, GRPC_STATUS_OK, 50 * US);
	bd_metrics_observe_call(m, AUTHORIZE, GRPC_STATUS_OK, 100 * US);
	bd_metrics_observe_call(m, AUTHORIZE, GRPC_STATUS_OK, 3 * MS);
	bd_metrics_observe_call(m, AUTHORIZE, GRPC_STATUS_RESOURCE_EXHAUSTED, 20 * S);
	bd_metrics_observe_call(m, RELEASE, GRPC_STATUS_INVALID_ARGUMENT, 1 * S);
	bd_metrics_observe_call(m, RELEASE, GRPC_STATUS_INVALID_ARGUMENT, 1 * S);
}

Test(metrics, counters_match_a_known_sequence_of_calls)
{
	observe_known_calls();
	char *body = scrape(listen_here(NULL, NULL));

	cr_expect_eq(sample_u64(body,
	                        "budgetd_rpc_requests_total{method=\"" AUTHORIZE "\",code=\"OK\"}"),
	             3);
	cr_expect_eq(sample_u64(body, "budgetd_rpc_requests_total{method=\"" AUTHORIZE
	                              "\",code=\"RESOURCE_EXHAUSTED\"}"),
	             1);
	cr_expect_eq(sample_u64(body, "budgetd_rpc_requests_total{method=\"" RELEASE
	                              "\",code=\"INVALID_ARGUMENT\"}"),
	             2);
	free(body);
}

Test(metrics, status_codes_never_seen_are_left_out)
{
	observe_known_calls();
	char *body = render();

	cr_expect_not(
	        has_sample(body, "budgetd_rpc_requests_total{method=\"" RELEASE "\",code=\"OK\"}"));
	cr_expect_null(strstr(body, "method=\"other\""), "nothing overflowed");
	free(body);
}

Test(metrics, an_out_of_range_status_counts_as_unknown)
{
	bd_metrics_observe_call(m, AUTHORIZE, 99, 1 * MS);
	bd_metrics_observe_call(m, AUTHORIZE, -1, 1 * MS);
	char *body = render();

	cr_expect_eq(sample_u64(body, "budgetd_rpc_requests_total{method=\"" AUTHORIZE
	                              "\",code=\"UNKNOWN\"}"),
	             2);
	free(body);
}

Test(metrics, rpc_duration_buckets_are_cumulative_and_inf_equals_count)
{
	observe_known_calls();
	char *body = scrape(listen_here(NULL, NULL));
	const char *a = "method=\"" AUTHORIZE "\",";
	const char *name = "budgetd_rpc_duration_seconds";

	cr_expect_eq(check_histogram(body, name, a, 16), 4);
	cr_expect_eq(bucket(body, name, a, "0.0001"), 2, "100 us is inside le=0.0001");
	cr_expect_eq(bucket(body, name, a, "0.0025"), 2);
	cr_expect_eq(bucket(body, name, a, "0.005"), 3);
	cr_expect_eq(bucket(body, name, a, "10"), 3, "20 s is beyond the last bound");
	cr_expect_eq(bucket(body, name, a, "+Inf"), 4);
	cr_expect_str_eq(
	        sample_text(body, "budgetd_rpc_duration_seconds_sum{method=\"" AUTHORIZE "\"}"),
	        "20.003150000");

	const char *r = "method=\"" RELEASE "\",";
	cr_expect_eq(check_histogram(body, name, r, 16), 2);
	cr_expect_eq(bucket(body, name, r, "0.5"), 0);
	cr_expect_eq(bucket(body, name, r, "1"), 2);
	cr_expect_str_eq(
	        sample_text(body, "budgetd_rpc_duration_seconds_sum{method=\"" RELEASE "\"}"),
	        "2.000000000");
	free(body);
}

Test(metrics, batch_size_and_commit_duration_histograms)
{
	bd_metrics_observe_batch(m, 1, 200 * US);
	bd_metrics_observe_batch(m, 3, 2 * MS);
	bd_metrics_observe_batch(m, 4, 2 * MS);
	bd_metrics_observe_batch(m, 256, 40 * MS);
	char *body = scrape(listen_here(NULL, NULL));

	cr_expect_eq(check_histogram(body, "budgetd_commit_batch_size", "", 9), 4);
	cr_expect_eq(bucket(body, "budgetd_commit_batch_size", "", "1"), 1);
	cr_expect_eq(bucket(body, "budgetd_commit_batch_size", "", "2"), 1);
	cr_expect_eq(bucket(body, "budgetd_commit_batch_size", "", "4"), 3);
	cr_expect_eq(bucket(body, "budgetd_commit_batch_size", "", "128"), 3);
	cr_expect_eq(bucket(body, "budgetd_commit_batch_size", "", "256"), 4);
	cr_expect_eq(sample_u64(body, "budgetd_commit_batch_size_sum"), 264);

	cr_expect_eq(check_histogram(body, "budgetd_commit_duration_seconds", "", 16), 4);
	cr_expect_eq(bucket(body, "budgetd_commit_duration_seconds", "", "0.0001"), 0);
	cr_expect_eq(bucket(body, "budgetd_commit_duration_seconds", "", "0.00025"), 1);
	cr_expect_eq(bucket(body, "budgetd_commit_duration_seconds", "", "0.0025"), 3);
	cr_expect_eq(bucket(body, "budgetd_commit_duration_seconds", "", "0.05"), 4);
	cr_expect_str_eq(sample_text(body, "budgetd_commit_duration_seconds_sum"), "0.044200000");
	free(body);
}

Test(metrics, empty_histograms_are_all_zero)
{
	char *body = render();

	cr_expect_eq(check_histogram(body, "budgetd_commit_batch_size", "", 9), 0);
	cr_expect_eq(check_histogram(body, "budgetd_commit_duration_seconds", "", 16), 0);
	cr_expect_str_eq(sample_text(body, "budgetd_commit_duration_seconds_sum"), "0.000000000");
	free(body);
}

Test(metrics, expired_holds_add_up_across_expiry_batches)
{
	char *body = render();

	cr_expect_eq(sample_u64(body, "budgetd_holds_expired_total"), 0, "present from the start");
	free(body);
	bd_metrics_observe_expired(m, 256);
	bd_metrics_observe_expired(m, 4);
	body = render();
	cr_expect_eq(sample_u64(body, "budgetd_holds_expired_total"), 260);
	free(body);
}

Test(metrics, authorize_decisions_by_reason)
{
	bd_metrics_observe_decision(m, true, 0);
	bd_metrics_observe_decision(m, true, 3); /* the reason of an allowed call is ignored */
	bd_metrics_observe_decision(m, false, 1);
	bd_metrics_observe_decision(m, false, 3);
	bd_metrics_observe_decision(m, false, 3);
	char *body = scrape(listen_here(NULL, NULL));
	const char *d = "budgetd_authorize_decisions_total";
	char key[256];

#define DECISION(dec, why)                                                                         \
	(snprintf(key, sizeof(key), "%s{decision=\"%s\",reason=\"%s\"}", d, dec, why),             \
	 sample_u64(body, key))
	cr_expect_eq(DECISION("allowed", "none"), 2);
	cr_expect_eq(DECISION("denied", "max_invocations"), 1);
	cr_expect_eq(DECISION("denied", "max_cost_per_invocation"), 0, "known reasons start at 0");
	cr_expect_eq(DECISION("denied", "max_total_cost"), 2);
	cr_expect_null(strstr(body, "reason=\"unknown\""), "no unknown denial yet");
	free(body);

	bd_metrics_observe_decision(m, false, 0);
	bd_metrics_observe_decision(m, false, 42);
	body = render();
	cr_expect_eq(DECISION("denied", "unknown"), 2);
#undef DECISION
	free(body);
}

static unsigned gauge_calls;

static void gauges_fn(void *ctx, bd_metrics_gauges *out)
{
	const bd_metrics_gauges *g = ctx;

	__atomic_add_fetch(&gauge_calls, 1, __ATOMIC_RELAXED);
	cr_assert_eq(out->queue_depth + out->open_holds + out->db_bytes + out->commit_index, 0,
	             "the module zeroes the figures first");
	*out = *g;
}

Test(metrics, gauges_come_from_the_callback_at_each_scrape)
{
	bd_metrics_gauges g = {.queue_depth = 7,
	                       .open_holds = 3,
	                       .db_bytes = 1 << 20,
	                       .commit_index = 12345678901ull};
	int port = listen_here(gauges_fn, &g);
	char *body = scrape(port);

	cr_expect_eq(sample_u64(body, "budgetd_queue_depth"), 7);
	cr_expect_eq(sample_u64(body, "budgetd_open_holds"), 3);
	cr_expect_eq(sample_u64(body, "budgetd_db_size_bytes"), 1 << 20);
	cr_expect_eq(sample_u64(body, "budgetd_commit_index"), 12345678901ull);
	cr_expect_eq(__atomic_load_n(&gauge_calls, __ATOMIC_RELAXED), 1);
	free(body);

	g.queue_depth = 0;
	g.commit_index++;
	body = scrape(port);
	cr_expect_eq(sample_u64(body, "budgetd_queue_depth"), 0);
	cr_expect_eq(sample_u64(body, "budgetd_commit_index"), 12345678902ull);
	cr_expect_eq(__atomic_load_n(&gauge_calls, __ATOMIC_RELAXED), 2);
	free(body);
}

Test(metrics, gauges_are_left_out_without_a_callback)
{
	char *body = scrape(listen_here(NULL, NULL));

	cr_expect_null(strstr(body, "budgetd_queue_depth"));
	cr_expect_null(strstr(body, "budgetd_commit_index"));
	free(body);
}

Test(metrics, build_info_carries_the_version)
{
	char *body = render();

	cr_expect_eq(sample_u64(body, "budgetd_build_info{version=\"" BD_VERSION "\"}"), 1);
	free(body);
}

/* Every sample follows the HELP and TYPE lines of its family, each family
 * is declared once, and every value is a number. */
Test(metrics, every_sample_belongs_to_a_declared_family)
{
	bd_metrics_gauges g = {1, 2, 3, 4};
	observe_known_calls();
	bd_metrics_observe_batch(m, 2, 1 * MS);
	bd_metrics_observe_decision(m, false, 2);
	char *body = scrape(listen_here(gauges_fn, &g));
	char family[128] = "", type[32] = "", help_of[128] = "";
	char declared[64][128];
	size_t n_declared = 0, samples = 0;

	cr_assert_eq(body[strlen(body) - 1], '\n', "the body ends with a newline");
	for (char *line = strtok(body, "\n"); line; line = strtok(NULL, "\n")) {
		char name[128];
		if (sscanf(line, "# HELP %127s", help_of) == 1)
			continue;
		if (sscanf(line, "# TYPE %127s %31s", family, type) == 2) {
			cr_assert_str_eq(help_of, family, "HELP precedes TYPE for %s", family);
			for (size_t i = 0; i < n_declared; i++)
				cr_assert_str_neq(declared[i], family, "%s declared twice", family);
			cr_assert_lt(n_declared, 64);
			snprintf(declared[n_declared++], sizeof(declared[0]), "%s", family);
			cr_assert(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
			                  strcmp(type, "histogram") == 0,
			          "type %s", type);
			continue;
		}
		cr_assert_neq(line[0], '#', "stray comment: %s", line);
		cr_assert_eq(sscanf(line, "%127[a-zA-Z0-9_:]", name), 1, "%s", line);
		size_t fl = strlen(family);
		cr_assert(strncmp(name, family, fl) == 0, "%s outside its family %s", line, family);
		const char *suffix = name + fl;
		if (strcmp(type, "histogram") == 0)
			cr_assert(strcmp(suffix, "_bucket") == 0 || strcmp(suffix, "_sum") == 0 ||
			                  strcmp(suffix, "_count") == 0,
			          "%s", line);
		else
			cr_assert_str_eq(suffix, "", "%s", line);
		const char *value = strrchr(line, ' ');
		char *end;
		cr_assert_not_null(value);
		strtod(value + 1, &end);
		cr_assert(end != value + 1 && *end == '\0', "bad value: %s", line);
		samples++;
	}
	cr_expect_eq(n_declared, 11, "every family is declared");
	cr_expect_gt(samples, 50);
	free(body);
}

/* ---- bounds ---- */

Test(metrics, methods_beyond_the_table_count_as_other)
{
	char name[64];

	for (int i = 0; i < BD_METRICS_METHODS_MAX + 6; i++) {
		snprintf(name, sizeof(name), "/test.Svc/M%d", i);
		bd_metrics_observe_call(m, name, GRPC_STATUS_OK, 1 * MS);
		bd_metrics_observe_call(m, name, GRPC_STATUS_OK, 1 * MS);
	}
	bd_metrics_observe_call(m, "/test.Svc/M0", GRPC_STATUS_NOT_FOUND, 1 * MS);
	char *body = render();
	char key[256];

	snprintf(key, sizeof(key),
	         "budgetd_rpc_requests_total{method=\"/test.Svc/M%d\",code=\"OK\"}",
	         BD_METRICS_METHODS_MAX - 1);
	cr_expect_eq(sample_u64(body, key), 2);
	snprintf(key, sizeof(key),
	         "budgetd_rpc_requests_total{method=\"/test.Svc/M%d\",code=\"OK\"}",
	         BD_METRICS_METHODS_MAX);
	cr_expect_not(has_sample(body, key), "past the table");
	cr_expect_eq(sample_u64(body, "budgetd_rpc_requests_total{method=\"/test.Svc/M0\",code="
	                              "\"NOT_FOUND\"}"),
	             1);
	cr_expect_eq(sample_u64(body, "budgetd_rpc_requests_total{method=\"other\",code=\"OK\"}"),
	             12);
	cr_expect_eq(check_histogram(body, "budgetd_rpc_duration_seconds", "method=\"other\",", 16),
	             12);
	free(body);
}

Test(metrics, method_names_longer_than_the_limit_count_as_other)
{
	char name[BD_METRICS_METHOD_LEN_MAX + 2];

	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	bd_metrics_observe_call(m, name, GRPC_STATUS_OK, 1 * MS);
	name[BD_METRICS_METHOD_LEN_MAX] = '\0'; /* exactly the limit: its own label */
	bd_metrics_observe_call(m, name, GRPC_STATUS_OK, 1 * MS);
	char *body = render();
	char key[512];

	cr_expect_eq(sample_u64(body, "budgetd_rpc_requests_total{method=\"other\",code=\"OK\"}"),
	             1);
	snprintf(key, sizeof(key), "budgetd_rpc_requests_total{method=\"%s\",code=\"OK\"}", name);
	cr_expect_eq(sample_u64(body, key), 1);
	free(body);
}

Test(metrics, label_values_are_escaped)
{
	bd_metrics_observe_call(m, "/a\"b\\c\nd", GRPC_STATUS_OK, 1 * MS);
	char *body = render();

	cr_expect_eq(sample_u64(body, "budgetd_rpc_requests_total{method=\"/a\\\"b\\\\c\\nd\",code="
	                              "\"OK\"}"),
	             1);
	cr_expect_eq(check_histogram(body, "budgetd_rpc_duration_seconds",
	                             "method=\"/a\\\"b\\\\c\\nd\",", 16),
	             1);
	free(body);
}

#define THREADS       4
#define CALLS_EACH    20000
#define METHODS_RACED 8

static void *observer_main(void *arg)
{
	(void)arg;
	char name[32];

	for (int i = 0; i < CALLS_EACH; i++) {
		snprintf(name, sizeof(name), "/race/M%d", i % METHODS_RACED);
		bd_metrics_observe_call(
		        m, name, (i / METHODS_RACED) % 2 ? GRPC_STATUS_OK : GRPC_STATUS_ABORTED,
		        (uint64_t)i * US);
		bd_metrics_observe_batch(m, (size_t)(i % 300), 1 * MS);
		bd_metrics_observe_decision(m, i % 3 == 0, i % 4);
	}
	return NULL;
}

Test(metrics, concurrent_observers_lose_nothing)
{
	pthread_t t[THREADS];
	bd_metrics_gauges g = {0};
	int port = listen_here(gauges_fn, &g);

	for (int i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, observer_main, NULL), 0);
	free(scrape(port)); /* a scrape while observers run */
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	char *body = scrape(port);
	char key[256];
	uint64_t per_code = THREADS * CALLS_EACH / METHODS_RACED / 2;

	for (int i = 0; i < METHODS_RACED; i++) {
		snprintf(key, sizeof(key),
		         "budgetd_rpc_requests_total{method=\"/race/M%d\",code=\"OK\"}", i);
		cr_expect_eq(sample_u64(body, key), per_code, "%s", key);
		snprintf(key, sizeof(key),
		         "budgetd_rpc_requests_total{method=\"/race/M%d\",code=\"ABORTED\"}", i);
		cr_expect_eq(sample_u64(body, key), per_code, "%s", key);
		snprintf(key, sizeof(key), "method=\"/race/M%d\",", i);
		cr_expect_eq(check_histogram(body, "budgetd_rpc_duration_seconds", key, 16),
		             2 * per_code);
	}
	cr_expect_null(strstr(body, "method=\"other\""), "each name got one slot");
	cr_expect_eq(check_histogram(body, "budgetd_commit_batch_size", "", 9),
	             THREADS * CALLS_EACH);
	free(body);
}

/* ---- HTTP ---- */

Test(http, other_paths_answer_404)
{
	int port = listen_here(NULL, NULL);
	const char *paths[] = {"/", "/metric", "/metrics/", "/metricsx", "/healthz"};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		reply r = http_get(port, paths[i]);
		cr_expect_eq(r.status, 404, "%s: %s", paths[i], r.head);
		reply_free(&r);
	}
}

Test(http, a_query_string_is_ignored)
{
	reply r = http_get(listen_here(NULL, NULL), "/metrics?name[]=budgetd_queue_depth");

	cr_expect_eq(r.status, 200, "%s", r.head);
	reply_free(&r);
}

Test(http, methods_other_than_get_answer_405)
{
	int port = listen_here(NULL, NULL);
	const char *reqs[] = {
	        "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
	        "PUT /metrics HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello",
	        "DELETE /metrics HTTP/1.0\r\n\r\n",
	};

	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		reply r = http_request(port, reqs[i]);
		cr_expect_eq(r.status, 405, "%s", r.head);
		cr_expect_not_null(strstr(r.head, "\r\nAllow: GET, HEAD"), "%s", r.head);
		reply_free(&r);
	}
}

Test(http, head_answers_the_headers_only)
{
	reply r = http_request(listen_here(NULL, NULL), "HEAD /metrics HTTP/1.0\r\n\r\n");

	cr_expect_eq(r.status, 200, "%s", r.head);
	cr_expect_eq(r.body_len, 0);
	reply_free(&r);
}

Test(http, scrape_has_the_prometheus_content_type_and_length)
{
	bd_metrics_observe_call(m, AUTHORIZE, GRPC_STATUS_OK, 1 * MS);
	reply r = http_get(listen_here(NULL, NULL), "/metrics");
	char want[64];

	cr_expect_not_null(strstr(r.head, "\r\nContent-Type: " BD_METRICS_CONTENT_TYPE "\r\n"),
	                   "%s", r.head);
	snprintf(want, sizeof(want), "\r\nContent-Length: %zu", r.body_len);
	cr_expect_not_null(strstr(r.head, want), "%s", r.head);
	reply_free(&r);
}

static int bound_socket(int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 1), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

Test(http, a_busy_port_fails_with_a_clear_error)
{
	int port, fd = bound_socket(&port);
	char addr[64], err[256], want[128];

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	cr_expect_eq(bd_metrics_listen(m, addr, NULL, NULL, err, sizeof(err)), -EADDRINUSE);
	snprintf(want, sizeof(want), "cannot listen on %s: %s", addr, strerror(EADDRINUSE));
	cr_expect_not_null(strstr(err, want), "err: %s", err);
	cr_expect_eq(bd_metrics_port(m), 0);
	close(fd);
}

Test(http, a_port_taken_by_another_registry_is_busy)
{
	bd_metrics *second;
	char addr[64], err[256];

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", listen_here(NULL, NULL));
	cr_assert_eq(bd_metrics_create(&second), 0);
	cr_expect_eq(bd_metrics_listen(second, addr, NULL, NULL, err, sizeof(err)), -EADDRINUSE);
	cr_expect_not_null(strstr(err, addr), "err: %s", err);
	bd_metrics_destroy(second);
}

Test(http, bad_addresses_are_refused)
{
	const char *bad[] = {"",          "9464",         "127.0.0.1",       "127.0.0.1:",
	                     ":9464",     "127.0.0.1:x1", "127.0.0.1:65536", "127.0.0.1:-1",
	                     "[::1:9464", "[::1]",        "127.0.0.1:123456"};
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_expect_eq(bd_metrics_listen(m, bad[i], NULL, NULL, err, sizeof(err)), -EINVAL,
		             "`%s`", bad[i]);
		cr_expect_not_null(strstr(err, "bad listen address"), "`%s`: %s", bad[i], err);
	}
	cr_expect_eq(bd_metrics_port(m), 0);
}

Test(http, listening_twice_is_refused)
{
	char err[256];

	int port = listen_here(NULL, NULL);
	cr_expect_eq(bd_metrics_listen(m, "127.0.0.1:0", NULL, NULL, err, sizeof(err)), -EALREADY);
	cr_expect_not_null(strstr(err, "already listening"), "%s", err);
	cr_expect_eq(bd_metrics_port(m), port);
	free(scrape(port)); /* the first listener still serves */
}

Test(http, destroy_stops_the_listener)
{
	int port = listen_here(NULL, NULL);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	bd_metrics_destroy(m);
	m = NULL;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_expect_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), -1);
	cr_expect_eq(errno, ECONNREFUSED);
	close(fd);
}

Test(http, destroy_without_listening_and_of_null)
{
	bd_metrics_destroy(NULL);
}
