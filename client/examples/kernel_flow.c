/* kernel_flow.c - how an agent kernel meters a tool call with budgetd.
 *
 *   kernel_flow TARGET        e.g. kernel_flow 127.0.0.1:50051
 *
 * Three tool calls against one grant (capability "example.search", grant 0,
 * at most 1000 cost units in total, at most 100 per call):
 *   1. authorize -> the tool runs -> reconcile with the actual cost;
 *   2. authorize -> the sandbox refuses to start the tool -> reverse
 *      (the call never ran: its invocation and exposure are taken back);
 *   3. authorize -> the user aborts midway -> release the exposure.
 * Then it prints the grant's usage.
 *
 * Every mutation gets a fresh event_id from the client, and is retried with
 * that same id if the server is briefly unreachable, so each one is applied
 * exactly once. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <budgetd/client.h>

#define CAPABILITY  "example.search"
#define GRANT       0
#define MAX_PER_RUN 100 /* cost units one call may reach */

/* Prints a failed call the way a kernel would log it. */
static int fail(const char *what, const bc_error *err)
{
	fprintf(stderr, "kernel_flow: %s: %s: %s\n", what, bc_status_name(err->code), err->message);
	return 1;
}

/* Authorizes one call of at most MAX_PER_RUN units under a new hold.
 * Returns 0 when authorized, 1 when denied (reported), -1 on error. */
static int authorize(bc_client *client, char hold_id[64])
{
	bc_authorize_hold_request req = {0};
	bc_authorize_hold_result res;
	char rnd[BC_EVENT_ID_SIZE];
	bc_error err;

	/* Hold ids are the kernel's own: here, random. */
	if (bc_event_id_new(rnd, &err) != 0) {
		fail("hold id", &err);
		return -1;
	}
	snprintf(hold_id, 64, "call-%.16s", rnd);

	req.capability_id = CAPABILITY;
	req.grant_index = GRANT;
	req.requested_exposure_units = MAX_PER_RUN;
	req.has_max_cost_per_invocation = true;
	req.max_cost_per_invocation = 100;
	req.has_max_total_cost_units = true;
	req.max_total_cost_units = 1000;
	req.hold_id = hold_id;
	/* If this kernel dies before settling, budgetd captures the hold's
	 * exposure after 10 minutes instead of keeping it reserved forever. */
	req.has_ttl_seconds = true;
	req.ttl_seconds = 600;
	req.on_expiry = BC_EXPIRY_POLICY_CAPTURE;
	if (bc_authorize_hold(client, &req, 0, &res, &err) != 0) {
		fail("authorize", &err);
		return -1;
	}

	int rc = 0;

	if (res.authorized) {
		printf("authorized %s: %" PRIu64 " units exposed, grant now at %" PRIu64
		       " committed (event %s, commit index %" PRIu64 ")\n",
		       hold_id, res.authorized_exposure_units, res.committed_cost_units_after,
		       res.metadata.event_id, res.metadata.budget_commit_index);
	} else {
		printf("denied %s: %s\n", hold_id, bc_denial_reason_name(res.denial_reason));
		rc = 1;
	}
	bc_authorize_hold_result_free(&res);
	return rc;
}

static int reconcile(bc_client *client, const char *hold_id, uint64_t actual)
{
	bc_reconcile_hold_request req = {
	        .capability_id = CAPABILITY,
	        .grant_index = GRANT,
	        .hold_id = hold_id,
	        .exposed_cost_units = MAX_PER_RUN, /* the hold's whole exposure */
	        .realized_spend_units = actual,
	};
	bc_hold_mutation_result res;
	bc_error err;

	if (bc_reconcile_hold(client, &req, 0, &res, &err) != 0)
		return fail("reconcile", &err);
	printf("reconciled %s: spent %" PRIu64 " of %" PRIu64 "%s\n", hold_id,
	       res.realized_spend_units, res.exposure_units,
	       res.metadata.replayed ? " (replayed)" : "");
	bc_hold_mutation_result_free(&res);
	return 0;
}

static int reverse(bc_client *client, const char *hold_id)
{
	bc_reverse_hold_request req = {
	        .capability_id = CAPABILITY,
	        .grant_index = GRANT,
	        .hold_id = hold_id,
	        .reversed_exposure_units = MAX_PER_RUN,
	};
	bc_hold_mutation_result res;
	bc_error err;

	if (bc_reverse_hold(client, &req, 0, &res, &err) != 0)
		return fail("reverse", &err);
	printf("reversed %s: invocation and %" PRIu64 " units taken back\n", hold_id,
	       res.exposure_units);
	bc_hold_mutation_result_free(&res);
	return 0;
}

static int release(bc_client *client, const char *hold_id)
{
	bc_release_hold_request req = {
	        .capability_id = CAPABILITY,
	        .grant_index = GRANT,
	        .hold_id = hold_id,
	        .released_exposure_units = MAX_PER_RUN,
	};
	bc_hold_mutation_result res;
	bc_error err;

	if (bc_release_hold(client, &req, 0, &res, &err) != 0)
		return fail("release", &err);
	printf("released %s: %" PRIu64 " units given back\n", hold_id, res.exposure_units);
	bc_hold_mutation_result_free(&res);
	return 0;
}

/* Stand-ins for the tool and its sandbox. */
static uint64_t run_tool(void)
{
	return 42; /* what the call really cost */
}

int main(int argc, char **argv)
{
	bc_options opts = {0};
	bc_client *client;
	bc_usage_result usage;
	bc_error err;
	char hold_id[64];
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: kernel_flow TARGET   (e.g. 127.0.0.1:50051)\n");
		return 2;
	}
	opts.target = argv[1];
	opts.deadline_ms = 2000;
	if (bc_client_new(&opts, &client, &err) != 0)
		return fail("connect", &err);

	/* 1. The tool runs: settle the hold with the actual cost. */
	if ((rc = authorize(client, hold_id)) < 0)
		goto out;
	if (rc == 0 && (rc = reconcile(client, hold_id, run_tool())) != 0)
		goto out;

	/* 2. The call never ran: reverse it. */
	if ((rc = authorize(client, hold_id)) < 0)
		goto out;
	if (rc == 0 && (rc = reverse(client, hold_id)) != 0)
		goto out;

	/* 3. Aborted: release what was exposed. */
	if ((rc = authorize(client, hold_id)) < 0)
		goto out;
	if (rc == 0 && (rc = release(client, hold_id)) != 0)
		goto out;

	if (bc_get_usage(client, CAPABILITY, GRANT, 0, &usage, &err) != 0) {
		rc = fail("usage", &err);
		goto out;
	}
	if (usage.found)
		printf("usage of %s/%d: %" PRIu32 " invocations, %" PRIu64 " exposed, %" PRIu64
		       " spent\n",
		       CAPABILITY, GRANT, usage.usage.invocation_count,
		       usage.usage.total_cost_exposed, usage.usage.total_cost_realized_spend);
	bc_usage_result_free(&usage);
	rc = 0;
out:
	bc_client_free(client);
	return rc < 0 ? 1 : rc;
}
