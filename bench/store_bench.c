/* store_bench.c - authorize+reconcile pairs per second through batch apply.
 *
 * usage: store_bench DB BATCH NCAPS SECONDS [full|normal]
 *
 * Each round applies BATCH authorizes (each with a hold and a random
 * 128-bit event id, as a client would send) in one batch, then the BATCH
 * matching reconciles in a second batch: one durable commit per batch. The
 * requests are spread uniformly over NCAPS capabilities (1 = all contended
 * on one usage row). Prints pairs/s and commit latency percentiles, then
 * checks the invariants against the store.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bs_store.h"

#define ID_LEN 33

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t next_random(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ull;
}

static void random_id(char *buf)
{
	(void)snprintf(buf, ID_LEN, "%016" PRIx64 "%016" PRIx64, next_random(), next_random());
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

typedef struct slot {
	char cap[32];
	char hold[ID_LEN];
	char auth_event[ID_LEN];
	char rec_event[ID_LEN];
	bs_mutation auth, rec;
} slot;

static void fill_round(slot *slots, int batch, int ncaps)
{
	for (int i = 0; i < batch; i++) {
		slot *s = &slots[i];
		(void)snprintf(s->cap, sizeof(s->cap), "cap-%08d",
		               ncaps == 1 ? 0 : (int)(next_random() % (uint64_t)ncaps));
		random_id(s->hold);
		random_id(s->auth_event);
		random_id(s->rec_event);
		s->auth = (bs_mutation){
		        .kind = BS_KIND_AUTHORIZE_EXPOSURE,
		        .capability_id = bs_str_from(s->cap),
		        .hold_id = bs_str_from(s->hold),
		        .event_id = bs_str_from(s->auth_event),
		        .exposure_units = 1000,
		        .has_max_cost_per_invocation = true,
		        .max_cost_per_invocation = 10000,
		        .has_max_total_cost_units = true,
		        .max_total_cost_units = UINT64_MAX / 4,
		};
		s->rec = (bs_mutation){
		        .kind = BS_KIND_RECONCILE_SPEND,
		        .capability_id = bs_str_from(s->cap),
		        .hold_id = bs_str_from(s->hold),
		        .event_id = bs_str_from(s->rec_event),
		        .exposure_units = 1000,
		        .realized_units = 400,
		};
	}
}

static int apply_round(bs_store *st, bs_batch_item *items, slot *slots, int batch, bool reconcile)
{
	for (int i = 0; i < batch; i++)
		items[i].mutation = reconcile ? &slots[i].rec : &slots[i].auth;
	if (bs_store_apply_batch(st, items, (size_t)batch) != BS_OK) {
		fprintf(stderr, "batch failed: %s\n", items[0].error.message);
		return -1;
	}
	for (int i = 0; i < batch; i++) {
		if (items[i].result != BS_OK || !items[i].outcome.allowed) {
			fprintf(stderr, "mutation failed: %s\n", items[i].error.message);
			return -1;
		}
	}
	return 0;
}

typedef struct totals {
	uint64_t invocations, exposed, realized;
} totals;

static int add_usage(void *ctx, const bs_usage *u)
{
	totals *t = ctx;
	t->invocations += u->invocation_count;
	t->exposed += u->total_cost_exposed;
	t->realized += u->total_cost_realized_spend;
	return 0;
}

static int check(bs_store *st, long pairs, int ncaps)
{
	totals t = {0};
	bs_error err;
	uint64_t seq;
	char cap[32];
	bool found;

	for (int c = 0; c < ncaps; c++) {
		(void)snprintf(cap, sizeof(cap), "cap-%08d", c);
		if (bs_store_get_usage(st, bs_str_from(cap), 0, add_usage, &t, &found, &err)) {
			fprintf(stderr, "get_usage: %s\n", err.message);
			return -1;
		}
	}
	if (bs_store_commit_index(st, &seq, &err))
		return -1;
	if (t.invocations != (uint64_t)pairs || t.exposed != 0 ||
	    t.realized != (uint64_t)pairs * 400 || seq != (uint64_t)pairs * 2) {
		fprintf(stderr, "INVARIANT FAILED\n");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s DB BATCH NCAPS SECONDS [full|normal]\n", argv[0]);
		return 2;
	}
	const char *path = argv[1];
	int batch = atoi(argv[2]), ncaps = atoi(argv[3]);
	double seconds = atof(argv[4]);
	bs_options opts = {.sync = argc > 5 && !strcmp(argv[5], "normal") ? BS_SYNC_NORMAL
	                                                                  : BS_SYNC_FULL};
	if (batch < 1 || batch > BS_BATCH_MUTATIONS_MAX || ncaps < 1 || seconds <= 0) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	rng ^= (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

	bs_store *st;
	bs_error err;
	if (bs_store_open(path, &opts, &st, &err)) {
		fprintf(stderr, "open: %s\n", err.message);
		return 1;
	}
	slot *slots = calloc((size_t)batch, sizeof(*slots));
	bs_batch_item *items = calloc((size_t)batch, sizeof(*items));
	size_t lat_cap = 1 << 20, nlat = 0;
	double *lat = malloc(lat_cap * sizeof(*lat));
	if (!slots || !items || !lat)
		return 1;
	long pairs = 0;
	double t0 = now_s(), end = t0 + seconds;
	while (now_s() < end) {
		fill_round(slots, batch, ncaps);
		for (int phase = 0; phase < 2; phase++) {
			double a = now_s();
			if (apply_round(st, items, slots, batch, phase == 1))
				return 1;
			if (nlat < lat_cap)
				lat[nlat++] = (now_s() - a) * 1e6;
		}
		pairs += batch;
	}
	double elapsed = now_s() - t0;
	qsort(lat, nlat, sizeof(*lat), cmp_double);
	printf("sync=%s batch=%d ncaps=%d pairs=%ld secs=%.2f pairs_per_s=%.0f"
	       " commit_us p50=%.0f p99=%.0f max=%.0f\n",
	       opts.sync == BS_SYNC_FULL ? "full" : "normal", batch, ncaps, pairs, elapsed,
	       (double)pairs / elapsed, lat[nlat / 2], lat[(size_t)((double)nlat * 0.99)],
	       lat[nlat - 1]);
	int rc = check(st, pairs, ncaps);
	bs_store_close(st);
	free(slots);
	free(items);
	free(lat);
	return rc ? 1 : 0;
}
