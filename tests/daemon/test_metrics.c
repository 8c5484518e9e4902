/* test_metrics.c - scrape a real budgetd after a known sequence of calls. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.h"

static const char *const with_metrics[] = {"--metrics-listen", "127.0.0.1:0", NULL};

static void setup_metrics(void)
{
	memset(&daemon_, 0, sizeof(daemon_));
	client = NULL;
	fx_start(with_metrics, NULL);
}

TestSuite(metrics, .init = setup_metrics, .fini = fx_teardown, .timeout = 120);

static int metrics_port(void)
{
	const char *p = strstr(daemon_.status, "metrics on port ");
	cr_assert_not_null(p, "no metrics port in the READY status: %s", daemon_.status);
	return atoi(p + strlen("metrics on port "));
}

/* GET /metrics over HTTP/1.0; the body lands in buf. */
static void scrape(char *buf, size_t len)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(metrics_port())};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	size_t used = 0;
	ssize_t n;

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
	while (used < len - 1 && (n = read(fd, buf + used, len - 1 - used)) > 0)
		used += (size_t)n;
	buf[used] = '\0';
	close(fd);
	cr_assert(strstr(buf, "200 OK"), "%s", buf);
}

static void expect_line(const char *body, const char *line)
{
	char want[256];
	snprintf(want, sizeof(want), "\n%s\n", line);
	cr_assert(strstr(body, want), "no line `%s` in:\n%s", line, body);
}

Test(metrics, counters_match_a_known_sequence_of_calls)
{
	static char body[1 << 20];
	bc_authorize_hold_result a;
	bc_error err;

	a = fx_authorize("m", 0, 60, "h1", NULL, true, 100);
	bc_authorize_hold_result_free(&a);
	a = fx_authorize("m", 0, 60, "h2", NULL, true, 100); /* denied: max_total */
	bc_authorize_hold_result_free(&a);
	bc_hold_mutation_result r = fx_reconcile("m", 0, "h1", 60, 10);
	bc_hold_mutation_result_free(&r);
	bc_hold h;
	cr_assert_neq(bc_get_hold(client, "nope", 0, &h, &err), 0);

	scrape(body, sizeof(body));
	expect_line(body, "budgetd_rpc_requests_total{method=\"AuthorizeHold\",code=\"OK\"} 2");
	expect_line(body, "budgetd_rpc_requests_total{method=\"ReconcileHold\",code=\"OK\"} 1");
	expect_line(body, "budgetd_rpc_requests_total{method=\"GetHold\",code=\"NOT_FOUND\"} 1");
	expect_line(body,
	            "budgetd_authorize_decisions_total{decision=\"allowed\",reason=\"none\"} 1");
	expect_line(
	        body,
	        "budgetd_authorize_decisions_total{decision=\"denied\",reason=\"max_total_cost\"}"
	        " 1");
	expect_line(body, "budgetd_commit_index 3");
	expect_line(body, "budgetd_open_holds 0");
	expect_line(body, "budgetd_commit_batch_size_sum 3");
	expect_line(body, "budgetd_queue_depth 0");
	cr_assert(strstr(body, "\nbudgetd_db_size_bytes "), "%s", body);
	cr_assert(strstr(body, "budgetd_rpc_duration_seconds_count{method=\"AuthorizeHold\"} 2"),
	          "%s", body);
}
