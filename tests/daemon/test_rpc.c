/* test_rpc.c - every BudgetAuthority RPC against a real budgetd, over TCP
 * and a unix socket, with the status codes the issue maps. */
#include <stdio.h>
#include <string.h>

#include "fixture.h"

TestSuite(rpc, .init = fx_setup, .fini = fx_teardown, .timeout = 120);

Test(rpc, authorize_then_reconcile_updates_usage_and_commit_index)
{
	bc_authorize_hold_result a = fx_authorize("cap", 1, 100, "h1", "e1", true, 1000);
	cr_assert(a.authorized);
	cr_assert_str_eq(a.hold_id, "h1");
	cr_assert_eq(a.authorized_exposure_units, 100);
	cr_assert_eq(a.committed_cost_units_after, 100);
	cr_assert_eq(a.invocation_count_after, 1);
	cr_assert(a.metadata.has_budget_commit_index);
	cr_assert_eq(a.metadata.budget_commit_index, 1);
	cr_assert_str_eq(a.metadata.event_id, "e1");
	cr_assert_eq(a.metadata.guarantee_level, BC_GUARANTEE_LEVEL_SINGLE_NODE_ATOMIC);
	cr_assert_not(a.metadata.replayed);
	bc_authorize_hold_result_free(&a);

	bc_hold_mutation_result r = fx_reconcile("cap", 1, "h1", 100, 30);
	cr_assert_eq(r.committed_cost_units_after, 30);
	cr_assert_eq(r.metadata.budget_commit_index, 2);
	bc_hold_mutation_result_free(&r);

	bc_usage_result u;
	bc_error err;
	cr_assert_eq(bc_get_usage(client, "cap", 1, 0, &u, &err), 0, "%s", err.message);
	cr_assert(u.found);
	cr_assert_eq(u.usage.invocation_count, 1);
	cr_assert_eq(u.usage.total_cost_exposed, 0);
	cr_assert_eq(u.usage.total_cost_realized_spend, 30);
	cr_assert_eq(u.usage.committed_cost_units, 30);
	cr_assert_eq(u.usage.seq, 2);
	bc_usage_result_free(&u);
}

Test(rpc, denial_is_an_ok_response_with_a_reason_and_no_commit_index)
{
	bc_authorize_hold_result a = fx_authorize("cap", 0, 80, "h1", NULL, true, 100);
	bc_authorize_hold_result_free(&a);
	bc_authorize_hold_result d = fx_authorize("cap", 0, 30, "h2", NULL, true, 100);
	cr_assert_not(d.authorized);
	cr_assert_eq(d.denial_reason, BC_DENIAL_REASON_MAX_TOTAL_COST);
	cr_assert_eq(d.attempted_exposure_units, 30);
	cr_assert_eq(d.committed_cost_units_after, 80);
	cr_assert_not(d.metadata.has_budget_commit_index);
	bc_authorize_hold_result_free(&d);
}

Test(rpc, replay_over_the_wire_returns_the_recorded_outcome)
{
	bc_authorize_hold_result a = fx_authorize("cap", 0, 10, "h1", "same", false, 0);
	bc_authorize_hold_result b = fx_authorize("cap", 0, 10, "h1", "same", false, 0);
	cr_assert(b.metadata.replayed);
	cr_assert_eq(b.metadata.budget_commit_index, a.metadata.budget_commit_index);
	cr_assert_eq(b.invocation_count_after, 1);
	bc_authorize_hold_result_free(&a);
	bc_authorize_hold_result_free(&b);

	bc_server_info info;
	bc_error err;
	cr_assert_eq(bc_get_server_info(client, 0, &info, &err), 0);
	cr_assert_eq(info.commit_index, 1, "a replay must not take a sequence value");
	bc_server_info_free(&info);
}

Test(rpc, event_id_reuse_is_already_exists)
{
	bc_authorize_hold_result a = fx_authorize("cap", 0, 10, "h1", "e", false, 0);
	bc_authorize_hold_result_free(&a);
	bc_authorize_hold_request req = {.capability_id = "cap",
	                                 .requested_exposure_units = 11,
	                                 .hold_id = "h1",
	                                 .event_id = "e"};
	bc_authorize_hold_result r;
	bc_error err;
	int rc = bc_authorize_hold(client, &req, 0, &r, &err);
	fx_expect_error(rc, &err, GRPC_STATUS_ALREADY_EXISTS,
	                "event_id `e` was reused for a different mutation");
}

Test(rpc, existing_hold_is_already_exists)
{
	bc_authorize_hold_result a = fx_authorize("cap", 0, 10, "h1", NULL, false, 0);
	bc_authorize_hold_result_free(&a);
	bc_authorize_hold_request req = {
	        .capability_id = "cap", .requested_exposure_units = 10, .hold_id = "h1"};
	bc_authorize_hold_result r;
	bc_error err;
	int rc = bc_authorize_hold(client, &req, 0, &r, &err);
	fx_expect_error(rc, &err, GRPC_STATUS_ALREADY_EXISTS, "budget hold `h1` already exists");
}

Test(rpc, invalid_arguments_name_the_field)
{
	bc_authorize_hold_request req = {.capability_id = "", .requested_exposure_units = 1};
	bc_authorize_hold_result r;
	bc_error err;

	fx_expect_error(bc_authorize_hold(client, &req, 0, &r, &err), &err,
	                GRPC_STATUS_INVALID_ARGUMENT, "capability_id is required");
	req.capability_id = "cap";
	req.grant_index = 1ull << 32;
	fx_expect_error(bc_authorize_hold(client, &req, 0, &r, &err), &err,
	                GRPC_STATUS_INVALID_ARGUMENT, "grant_index 4294967296 is larger than");
	req.grant_index = 0;
	req.event_id = "budgetd-auto-7";
	fx_expect_error(bc_authorize_hold(client, &req, 0, &r, &err), &err,
	                GRPC_STATUS_INVALID_ARGUMENT, "reserved prefix");
	char long_id[300];
	memset(long_id, 'x', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	req.event_id = NULL;
	req.hold_id = long_id;
	fx_expect_error(bc_authorize_hold(client, &req, 0, &r, &err), &err,
	                GRPC_STATUS_INVALID_ARGUMENT, "hold_id is longer than 256 bytes");
	bc_list_usages_request lreq = {.limit = 1001};
	bc_usage_list list;
	fx_expect_error(bc_list_usages(client, &lreq, 0, &list, &err), &err,
	                GRPC_STATUS_INVALID_ARGUMENT, "limit 1001 is larger than 1000");
}

Test(rpc, settling_a_closed_hold_is_failed_precondition)
{
	bc_authorize_hold_result a = fx_authorize("cap", 0, 10, "h1", NULL, false, 0);
	bc_authorize_hold_result_free(&a);
	bc_hold_mutation_result r = fx_reconcile("cap", 0, "h1", 10, 10);
	bc_hold_mutation_result_free(&r);
	bc_release_hold_request rel = {
	        .capability_id = "cap", .hold_id = "h1", .released_exposure_units = 1};
	bc_error err;
	fx_expect_error(bc_release_hold(client, &rel, 0, &r, &err), &err,
	                GRPC_STATUS_FAILED_PRECONDITION, "budget hold `h1` is no longer open");
	rel.hold_id = "missing";
	fx_expect_error(bc_release_hold(client, &rel, 0, &r, &err), &err,
	                GRPC_STATUS_FAILED_PRECONDITION, "missing budget hold `missing`");
}

Test(rpc, overflow_is_out_of_range)
{
	bc_authorize_hold_result a = fx_authorize("cap", 0, UINT64_MAX - 5, "h1", NULL, false, 0);
	bc_authorize_hold_result_free(&a);
	bc_authorize_hold_request req = {.capability_id = "cap", .requested_exposure_units = 10};
	bc_error err;
	fx_expect_error(bc_authorize_hold(client, &req, 0, &a, &err), &err,
	                GRPC_STATUS_OUT_OF_RANGE, "overflows u64");
}

Test(rpc, release_reverse_capture_and_increment_work)
{
	bc_authorize_hold_result a = fx_authorize("cap", 2, 50, "h1", NULL, false, 0);
	bc_authorize_hold_result_free(&a);
	bc_release_hold_request rel = {.capability_id = "cap",
	                               .grant_index = 2,
	                               .hold_id = "h1",
	                               .released_exposure_units = 20};
	bc_hold_mutation_result r;
	bc_error err;
	cr_assert_eq(bc_release_hold(client, &rel, 0, &r, &err), 0, "%s", err.message);
	cr_assert_eq(r.committed_cost_units_after, 30);
	bc_hold_mutation_result_free(&r);
	bc_capture_hold_request cap = {.capability_id = "cap",
	                               .grant_index = 2,
	                               .hold_id = "h1",
	                               .exposed_cost_units = 30,
	                               .realized_spend_units = 25};
	cr_assert_eq(bc_capture_hold(client, &cap, 0, &r, &err), 0, "%s", err.message);
	cr_assert_eq(r.committed_cost_units_after, 25);
	bc_hold_mutation_result_free(&r);

	a = fx_authorize("cap", 2, 7, "h2", NULL, false, 0);
	bc_authorize_hold_result_free(&a);
	bc_reverse_hold_request rev = {.capability_id = "cap",
	                               .grant_index = 2,
	                               .hold_id = "h2",
	                               .reversed_exposure_units = 7};
	cr_assert_eq(bc_reverse_hold(client, &rev, 0, &r, &err), 0, "%s", err.message);
	cr_assert_eq(r.invocation_count_after, 1);
	bc_hold_mutation_result_free(&r);

	bc_increment_invocation_request inc = {
	        .capability_id = "calls", .has_max_invocations = true, .max_invocations = 1};
	bc_increment_invocation_result ir;
	cr_assert_eq(bc_increment_invocation(client, &inc, 0, &ir, &err), 0, "%s", err.message);
	cr_assert(ir.allowed);
	bc_increment_invocation_result_free(&ir);
	cr_assert_eq(bc_increment_invocation(client, &inc, 0, &ir, &err), 0, "%s", err.message);
	cr_assert_not(ir.allowed);
	cr_assert_eq(ir.invocation_count_after, 1);
	bc_increment_invocation_result_free(&ir);
}

Test(rpc, get_hold_reports_state_and_not_found)
{
	bc_authority auth = {"auth", "lease", 3};
	bc_authorize_hold_request req = {.capability_id = "cap",
	                                 .requested_exposure_units = 40,
	                                 .hold_id = "h1",
	                                 .authority = &auth};
	bc_authorize_hold_result a;
	bc_error err;
	cr_assert_eq(bc_authorize_hold(client, &req, 0, &a, &err), 0, "%s", err.message);
	cr_assert_str_eq(a.metadata.budget_term, "auth:3");
	cr_assert(a.metadata.has_authority);
	cr_assert_str_eq(a.metadata.authority.lease_id, "lease");
	bc_authorize_hold_result_free(&a);

	bc_hold h;
	cr_assert_eq(bc_get_hold(client, "h1", 0, &h, &err), 0, "%s", err.message);
	cr_assert_eq(h.disposition, BC_HOLD_DISPOSITION_OPEN);
	cr_assert_eq(h.remaining_exposure_units, 40);
	cr_assert(h.has_authority);
	cr_assert_str_eq(h.authority.authority_id, "auth");
	cr_assert_eq(h.authority.lease_epoch, 3);
	cr_assert(h.has_created_at);
	bc_hold_free(&h);
	fx_expect_error(bc_get_hold(client, "nope", 0, &h, &err), &err, GRPC_STATUS_NOT_FOUND,
	                "budget hold `nope` not found");
}

Test(rpc, list_usages_and_events_page_through_everything)
{
	for (int i = 0; i < 5; i++) {
		char cap[16];
		snprintf(cap, sizeof(cap), "cap-%d", i);
		bc_authorize_hold_result a = fx_authorize(cap, 0, 1, NULL, NULL, false, 0);
		bc_authorize_hold_result_free(&a);
	}
	bc_list_usages_request lreq = {.limit = 10};
	bc_usage_list list;
	bc_error err;
	cr_assert_eq(bc_list_usages(client, &lreq, 0, &list, &err), 0, "%s", err.message);
	cr_assert_eq(list.count, 5);
	cr_assert_str_eq(list.usages[0].capability_id, "cap-4", "newest first");
	bc_usage_list_free(&list);

	bc_list_mutation_events_request ereq = {.limit = 2};
	uint64_t seen = 0;
	for (int page = 0; page < 4; page++) {
		bc_event_list events;
		cr_assert_eq(bc_list_mutation_events(client, &ereq, 0, &events, &err), 0, "%s",
		             err.message);
		for (size_t i = 0; i < events.count; i++)
			cr_assert_eq(events.events[i].event_seq, ++seen);
		if (events.count)
			cr_assert_eq(events.next_after_commit_index, seen);
		ereq.after_commit_index = events.next_after_commit_index;
		bc_event_list_free(&events);
	}
	cr_assert_eq(seen, 5);

	bc_list_mutation_events_request one = {.capability_id = "cap-3"};
	bc_event_list events;
	cr_assert_eq(bc_list_mutation_events(client, &one, 0, &events, &err), 0, "%s", err.message);
	cr_assert_eq(events.count, 1);
	cr_assert_str_eq(events.events[0].capability_id, "cap-3");
	cr_assert_eq(events.events[0].kind, BC_MUTATION_KIND_AUTHORIZE_EXPOSURE);
	bc_event_list_free(&events);
}

Test(rpc, get_usage_of_an_unused_grant_is_absent_not_an_error)
{
	bc_usage_result u;
	bc_error err;

	cr_assert_eq(bc_get_usage(client, "never", 0, 0, &u, &err), 0, "%s", err.message);
	cr_assert_not(u.found);
	bc_usage_result_free(&u);
}

Test(rpc, server_info_and_health)
{
	bc_server_info info;
	bc_serving_status st;
	bc_error err;

	cr_assert_eq(bc_get_server_info(client, 0, &info, &err), 0, "%s", err.message);
	cr_assert_str_eq(info.version, "0.1.0");
	cr_assert_eq(info.guarantee_level, BC_GUARANTEE_LEVEL_SINGLE_NODE_ATOMIC);
	cr_assert(info.has_started_at);
	bc_server_info_free(&info);
	cr_assert_eq(bc_health_check(client, "", 0, &st, &err), 0, "%s", err.message);
	cr_assert_eq(st, BC_SERVING_STATUS_SERVING);
	cr_assert_eq(bc_health_check(client, "budgetd.v1.BudgetAuthority", 0, &st, &err), 0);
	cr_assert_eq(st, BC_SERVING_STATUS_SERVING);
	fx_expect_error(bc_health_check(client, "no.such.Service", 0, &st, &err), &err,
	                GRPC_STATUS_NOT_FOUND, "unknown service");
}

Test(rpc, the_unix_socket_serves_the_same_store)
{
	bc_authorize_hold_result a = fx_authorize("cap", 0, 5, "h1", NULL, false, 0);
	bc_authorize_hold_result_free(&a);
	bc_client *local = fx_client(daemon_.unix_addr, false);
	bc_hold h;
	bc_error err;
	cr_assert_eq(bc_get_hold(local, "h1", 0, &h, &err), 0, "%s", err.message);
	cr_assert_eq(h.remaining_exposure_units, 5);
	bc_hold_free(&h);
	bc_client_free(local);
}

Test(rpc, undecodable_message_is_invalid_argument)
{
	static const unsigned char garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
	grpc_status_code code;
	char details[512];

	grpc_init();
	cr_assert_eq(td_raw_call(daemon_.tcp_addr, "/budgetd.v1.BudgetAuthority/AuthorizeHold",
	                         garbage, sizeof(garbage), &code, details, sizeof(details), 10000),
	             0);
	cr_assert_eq(code, GRPC_STATUS_INVALID_ARGUMENT, "%d %s", code, details);
	cr_assert(strstr(details, "not a valid budgetd.v1.AuthorizeHoldRequest"), "%s", details);
	grpc_shutdown_blocking(); /* LSan runs at exit: finish the cleanup first */
}

Test(rpc, a_nul_byte_in_an_id_is_rejected_not_truncated)
{
	/* AuthorizeHoldRequest{capability_id: "ab\0cd", requested_exposure_units: 1} */
	static const unsigned char msg[] = {0x0a, 0x05, 'a', 'b', 0x00, 'c', 'd', 0x18, 0x01};
	grpc_status_code code;
	char details[512];

	grpc_init();
	cr_assert_eq(td_raw_call(daemon_.tcp_addr, "/budgetd.v1.BudgetAuthority/AuthorizeHold", msg,
	                         sizeof(msg), &code, details, sizeof(details), 10000),
	             0);
	cr_assert_eq(code, GRPC_STATUS_INVALID_ARGUMENT, "%d %s", code, details);
	cr_assert(strstr(details, "NUL"), "%s", details);
	grpc_shutdown_blocking(); /* LSan runs at exit: finish the cleanup first */
}

Test(rpc, unknown_method_is_unimplemented)
{
	grpc_status_code code;
	char details[512];

	grpc_init();
	cr_assert_eq(td_raw_call(daemon_.tcp_addr, "/budgetd.v1.BudgetAuthority/Nope", "", 0, &code,
	                         details, sizeof(details), 10000),
	             0);
	cr_assert_eq(code, GRPC_STATUS_UNIMPLEMENTED, "%d %s", code, details);
	grpc_shutdown_blocking(); /* LSan runs at exit: finish the cleanup first */
}
