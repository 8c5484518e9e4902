/* fixture.c - see fixture.h. */
#include <string.h>

#include "fixture.h"

td_daemon daemon_;
bc_client *client;

bc_client *fx_client(const char *addr, bool retries)
{
	bc_options o = {.target = addr, .deadline_ms = 10000, .disable_retries = !retries};
	bc_client *c = NULL;
	bc_error err;

	cr_assert_eq(bc_client_new(&o, &c, &err), 0, "bc_client_new: %s", err.message);
	return c;
}

void fx_start(const char *const *extra, const char *addr)
{
	cr_assert_eq(td_start(&daemon_, extra), 0, "budgetd did not start");
	/* A restarted daemon listens on a new ephemeral port. */
	bc_client_free(client);
	client = fx_client(addr ? addr : daemon_.tcp_addr, false);
}

void fx_stop(void)
{
	cr_assert_eq(td_stop(&daemon_), 0, "budgetd did not exit cleanly");
}

void fx_setup(void)
{
	memset(&daemon_, 0, sizeof(daemon_));
	client = NULL;
	fx_start(NULL, NULL);
}

void fx_teardown(void)
{
	bc_client_free(client);
	client = NULL;
	if (daemon_.pid)
		fx_stop();
	td_cleanup(&daemon_);
}

bc_authorize_hold_result fx_authorize(const char *cap, uint64_t grant, uint64_t units,
                                      const char *hold, const char *event, bool has_max_total,
                                      uint64_t max_total)
{
	bc_authorize_hold_request req = {
	        .capability_id = cap,
	        .grant_index = grant,
	        .requested_exposure_units = units,
	        .has_max_total_cost_units = has_max_total,
	        .max_total_cost_units = max_total,
	        .hold_id = hold,
	        .event_id = event,
	};
	bc_authorize_hold_result r;
	bc_error err;

	cr_assert_eq(bc_authorize_hold(client, &req, 0, &r, &err), 0, "authorize: %s", err.message);
	return r;
}

bc_hold_mutation_result fx_reconcile(const char *cap, uint64_t grant, const char *hold,
                                     uint64_t exposed, uint64_t realized)
{
	bc_reconcile_hold_request req = {
	        .capability_id = cap,
	        .grant_index = grant,
	        .hold_id = hold,
	        .exposed_cost_units = exposed,
	        .realized_spend_units = realized,
	};
	bc_hold_mutation_result r;
	bc_error err;

	cr_assert_eq(bc_reconcile_hold(client, &req, 0, &r, &err), 0, "reconcile: %s", err.message);
	return r;
}

void fx_expect_error(int rc, const bc_error *err, grpc_status_code code, const char *part)
{
	cr_assert_neq(rc, 0, "the call succeeded; expected status %d", (int)code);
	cr_assert_eq(err->code, (int)code, "status %d (%s), expected %d", err->code, err->message,
	             (int)code);
	cr_assert(strstr(err->message, part), "message `%s` lacks `%s`", err->message, part);
}
