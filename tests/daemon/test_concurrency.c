/* test_concurrency.c - many clients against one grant: the limit holds and
 * the usage row equals the fold of the mutation log. */
#include <pthread.h>
#include <stdio.h>

#include "fixture.h"

TestSuite(concurrency, .init = fx_setup, .fini = fx_teardown, .timeout = 180);

#define CLIENTS  64
#define ATTEMPTS 20
#define UNITS    10
#define LIMIT    5000 /* 500 of the 1280 attempts fit */

typedef struct racer {
	int id;
	bc_client *c;
	uint64_t authorized_units;
	int errors;
} racer;

static void *race(void *p)
{
	racer *r = p;

	for (int i = 0; i < ATTEMPTS; i++) {
		char hold[32];
		snprintf(hold, sizeof(hold), "r%d-%d", r->id, i);
		bc_authorize_hold_request req = {.capability_id = "shared",
		                                 .requested_exposure_units = UNITS,
		                                 .has_max_total_cost_units = true,
		                                 .max_total_cost_units = LIMIT,
		                                 .hold_id = hold};
		bc_authorize_hold_result res;
		bc_error err;
		if (bc_authorize_hold(r->c, &req, 0, &res, &err) != 0) {
			r->errors++;
			continue;
		}
		if (res.authorized)
			r->authorized_units += res.authorized_exposure_units;
		bc_authorize_hold_result_free(&res);
	}
	return NULL;
}

/* Sums the log: allowed authorize events and their exposure. */
static void fold_log(uint64_t *allowed, uint64_t *exposure, uint64_t *events)
{
	bc_list_mutation_events_request req = {.limit = 1000, .capability_id = "shared"};
	bc_error err;

	*allowed = *exposure = *events = 0;
	for (;;) {
		bc_event_list list;
		cr_assert_eq(bc_list_mutation_events(client, &req, 0, &list, &err), 0, "%s",
		             err.message);
		for (size_t i = 0; i < list.count; i++) {
			const bc_mutation_event *e = &list.events[i];
			cr_assert(e->has_allowed);
			if (e->allowed) {
				(*allowed)++;
				*exposure += e->exposure_units;
				cr_assert_leq(e->total_cost_exposed_after, LIMIT);
			}
		}
		*events += list.count;
		size_t n = list.count;
		req.after_commit_index = list.next_after_commit_index;
		bc_event_list_free(&list);
		if (n == 0)
			break;
	}
}

Test(concurrency, sixty_four_clients_never_exceed_max_total_cost)
{
	static racer racers[CLIENTS];
	pthread_t threads[CLIENTS];
	uint64_t authorized = 0;

	for (int i = 0; i < CLIENTS; i++) {
		racers[i] = (racer){.id = i, .c = fx_client(daemon_.tcp_addr, false)};
		cr_assert_eq(pthread_create(&threads[i], NULL, race, &racers[i]), 0);
	}
	for (int i = 0; i < CLIENTS; i++) {
		pthread_join(threads[i], NULL);
		bc_client_free(racers[i].c);
		cr_assert_eq(racers[i].errors, 0, "client %d saw errors", i);
		authorized += racers[i].authorized_units;
	}
	cr_assert_eq(authorized, LIMIT, "exactly the limit fits: %llu",
	             (unsigned long long)authorized);

	bc_usage_result u;
	bc_error err;
	cr_assert_eq(bc_get_usage(client, "shared", 0, 0, &u, &err), 0, "%s", err.message);
	uint64_t allowed, exposure, events;
	fold_log(&allowed, &exposure, &events);
	cr_assert_eq(events, CLIENTS * ATTEMPTS, "every attempt is logged once");
	cr_assert_eq(u.usage.total_cost_exposed, exposure);
	cr_assert_eq(u.usage.invocation_count, allowed);
	cr_assert_eq(exposure, LIMIT);
	bc_usage_result_free(&u);
}
