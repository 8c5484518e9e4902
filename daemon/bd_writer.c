/* bd_writer.c - see bd_writer.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bd_log.h"
#include "bd_writer.h"

#define NS_PER_MS 1000000ULL

struct bd_writer {
	uv_loop_t *loop;
	bs_store *store;
	uv_thread_t thread;
	uv_mutex_t lock;
	uv_cond_t wake;
	/* guarded by lock */
	bd_job *queue_head, *queue_tail;
	unsigned queued;
	bool stopping;
	unsigned queue_max;
	bd_job *done_head, *done_tail;
	bd_writer_stats stats;
	bd_expiry_observer expiry_observer; /* called with the lock held */
	void *expiry_observer_ctx;
	/* writer thread only */
	bs_batch_item items[BD_BATCH_MUTATIONS_MAX];
	bd_batch_observer observer;
	void *observer_ctx;
	int64_t deadline_ns;  /* the earliest deadline of an open hold; 0: none */
	bool deadline_known;  /* false: ask the store before relying on it */
	uint64_t retry_at_ns; /* uv_hrtime before which expiry waits (a failure) */
	uint64_t live_at_ns;  /* uv_hrtime of the last group commit */
	size_t live_n;        /* its mutations */
	/* loop thread only */
	bd_commit_listener listener;
	void *listener_ctx;
	uint64_t announced; /* the commit index the listener last heard */
	uv_async_t delivered;
};

static void append(bd_job **head, bd_job **tail, bd_job *job)
{
	job->next = NULL;
	if (*head)
		(*tail)->next = job;
	else
		*head = job;
	*tail = job;
}

/* Takes up to BD_BATCH_MUTATIONS_MAX mutations and every read queued before
 * the last of them (in order). Waits up to `wait_ns` when the queue is
 * empty: NULL with *timed_out when nothing came, NULL without it when
 * stopping with nothing left. */
static bd_job *take(bd_writer *w, uint64_t wait_ns, bool *timed_out)
{
	bd_job *taken = NULL, *tail = NULL;
	unsigned mutations = 0;
	uint64_t until = uv_hrtime() + wait_ns;

	*timed_out = false;
	uv_mutex_lock(&w->lock);
	while (!w->queue_head && !w->stopping) {
		uint64_t now = uv_hrtime();
		if (now >= until) {
			*timed_out = true;
			break;
		}
		/* A timeout or a spurious wake-up: the loop decides. */
		(void)uv_cond_timedwait(&w->wake, &w->lock, until - now);
	}
	while (w->queue_head && mutations < BD_BATCH_MUTATIONS_MAX) {
		bd_job *job = w->queue_head;
		w->queue_head = job->next;
		w->queued--;
		mutations += job->mutation != NULL;
		append(&taken, &tail, job);
	}
	if (!w->queue_head)
		w->queue_tail = NULL;
	w->stats.queue_depth = w->queued;
	uv_mutex_unlock(&w->lock);
	return taken;
}

/* The store's figures for stats and metrics, after a commit. */
static void publish_figures(bd_writer *w)
{
	bs_stats figures = {0};
	bs_error err;

	(void)bs_store_stats(w->store, &figures, &err); /* best effort: metrics only */
	uv_mutex_lock(&w->lock);
	w->stats.commit_index = figures.commit_index;
	w->stats.open_holds = figures.open_holds;
	w->stats.db_bytes = figures.db_bytes;
	uv_mutex_unlock(&w->lock);
}

/* A hold got this deadline: it may come before the one known. A deadline
 * known too early only costs an empty expiry batch. */
static void note_deadline(bd_writer *w, int64_t ns)
{
	if (ns && w->deadline_known && (w->deadline_ns == 0 || ns < w->deadline_ns))
		w->deadline_ns = ns;
}

static void hand_back(bd_writer *w, bd_job *jobs)
{
	uv_mutex_lock(&w->lock);
	bool was_empty = w->done_head == NULL;
	while (jobs) {
		bd_job *next = jobs->next;
		append(&w->done_head, &w->done_tail, jobs);
		jobs = next;
	}
	uv_mutex_unlock(&w->lock);
	if (was_empty)
		uv_async_send(&w->delivered);
}

static void checkpoint(bd_writer *w)
{
	bs_error err;

	if (bs_store_checkpoint(w->store, &err) != BS_OK)
		bd_log_warn("idle store checkpoint failed (will retry): %s", err.message);
}

/* ---- expiry ---- */

static void pause_expiry(bd_writer *w)
{
	w->retry_at_ns = uv_hrtime() + BD_EXPIRY_RETRY_MS * NS_PER_MS;
}

static void refresh_deadline(bd_writer *w)
{
	bs_error err;
	int64_t next = 0;

	if (bs_store_next_deadline(w->store, &next, &err) != BS_OK) {
		bd_log_warn("cannot read the next hold deadline (retrying in %d ms): %s",
		            BD_EXPIRY_RETRY_MS, err.message);
		pause_expiry(w);
		return;
	}
	w->deadline_ns = next;
	w->deadline_known = true;
}

/* Nanoseconds until expiry has work: 0 for now, UINT64_MAX for never (no
 * hold has a deadline). Deadlines are in the store's clock. */
static uint64_t expiry_due_in(bd_writer *w)
{
	uint64_t mono = uv_hrtime();

	if (w->retry_at_ns > mono)
		return w->retry_at_ns - mono;
	if (!w->deadline_known)
		refresh_deadline(w);
	if (!w->deadline_known)
		return BD_EXPIRY_RETRY_MS * NS_PER_MS;
	if (w->deadline_ns == 0)
		return UINT64_MAX;
	int64_t now = bs_store_now(w->store);
	return w->deadline_ns > now ? (uint64_t)w->deadline_ns - (uint64_t)now : 0;
}

/* After an empty expiry batch the next deadline must have moved on; if
 * the store still calls it due, wait instead of spinning. */
static void check_progress(bd_writer *w)
{
	refresh_deadline(w);
	if (w->deadline_known && w->deadline_ns && w->deadline_ns <= bs_store_now(w->store)) {
		bd_log_warn("a hold deadline is due but nothing expired (retrying in %d ms)",
		            BD_EXPIRY_RETRY_MS);
		pause_expiry(w);
	}
}

/* Bookkeeping after an expiry attempt, alone or with a group commit. */
static void expiry_done(bd_writer *w, int rc, uint32_t n, const char *why)
{
	if (rc != BS_OK) {
		bd_log_warn("expiring due holds failed, none expired (retrying in %d ms): %s",
		            BD_EXPIRY_RETRY_MS, why);
		pause_expiry(w);
		return;
	}
	w->deadline_known = false;
	if (n == 0) {
		check_progress(w);
		return;
	}
	bd_log_debug("expired %u holds at their deadline", (unsigned)n);
	uv_mutex_lock(&w->lock);
	w->stats.expiry_batches++;
	w->stats.holds_expired += n;
	/* Under the lock: expiry runs without any call in progress, so only
	 * the lock keeps the observer from going away mid-call at shutdown. */
	if (w->expiry_observer)
		w->expiry_observer(w->expiry_observer_ctx, n);
	uv_mutex_unlock(&w->lock);
}

/* How many holds may expire along with a group commit of n mutations: as
 * many as it has (at least BD_EXPIRY_SHARE_MIN), so under load expiry takes
 * about half of the writer's work and live calls keep the other half. */
static uint32_t expiry_share(size_t n)
{
	return n < BD_EXPIRY_SHARE_MIN ? BD_EXPIRY_SHARE_MIN : (uint32_t)n;
}

/* Expires one bounded batch of due holds, as one durable transaction of
 * its own (when no mutation is there to share one): a full batch when the
 * writer is idle, only a share while live calls are coming in (the queue
 * is empty between their waves). */
static void expire_alone(bd_writer *w)
{
	uint32_t n = 0;
	bs_error err;
	bool live = uv_hrtime() - w->live_at_ns < BD_EXPIRY_LIVE_MS * NS_PER_MS;
	int rc = bs_store_expire_due(
	        w->store, live ? expiry_share(w->live_n) : BD_BATCH_MUTATIONS_MAX, &n, &err);

	if (rc != BS_OK) {
		uv_mutex_lock(&w->lock);
		w->stats.storage_failures++;
		uv_mutex_unlock(&w->lock);
	}
	expiry_done(w, rc, n, err.message);
	if (rc != BS_OK || n == 0)
		return;
	publish_figures(w);
	/* No job comes back from expiry: wake the loop so change streams hear
	 * of the new commit index. */
	uv_async_send(&w->delivered);
}

/* ---- group commit ---- */

static void take_results(bd_writer *w, bd_job *jobs)
{
	size_t i = 0;

	for (bd_job *j = jobs; j; j = j->next) {
		if (!j->mutation)
			continue;
		j->result = w->items[i].result;
		if (j->result == BS_OK) {
			j->outcome = w->items[i].outcome;
			note_deadline(w, j->outcome.expires_at_ns);
		} else {
			j->error = w->items[i].error;
		}
		i++;
	}
}

/* Applies the mutations of a take as one store batch, and when holds are
 * due expires one bounded batch of them in the same transaction (one
 * fsync for both). Returns whether expiry had its turn. */
static bool commit_mutations(bd_writer *w, bd_job *jobs)
{
	size_t n = 0;

	for (bd_job *j = jobs; j; j = j->next)
		if (j->mutation)
			w->items[n++].mutation = j->mutation;
	if (n == 0)
		return false;
	uint32_t expire_max = expiry_due_in(w) == 0 ? expiry_share(n) : 0, expired = 0;
	uint64_t t0 = uv_hrtime();
	int rc = bs_store_apply_batch_expire(w->store, w->items, n, expire_max, &expired);
	uint64_t elapsed = uv_hrtime() - t0;
	if (rc == BS_ESTORAGE)
		bd_log_error("group commit of %zu mutations failed, none applied: %s", n,
		             w->items[0].error.message);
	take_results(w, jobs);
	w->live_at_ns = uv_hrtime();
	w->live_n = n;
	if (expire_max)
		expiry_done(w, rc, expired, w->items[0].error.message);
	publish_figures(w);
	uv_mutex_lock(&w->lock);
	w->stats.batches++;
	w->stats.mutations += n;
	w->stats.commit_ns += elapsed;
	w->stats.storage_failures += rc == BS_ESTORAGE;
	uv_mutex_unlock(&w->lock);
	if (w->observer)
		w->observer(w->observer_ctx, n, elapsed);
	return expire_max > 0;
}

/* ---- the thread ---- */

/* How long to sleep with nothing queued: the idle period, or less when
 * expiry has work sooner. */
static uint64_t idle_wait_ns(bd_writer *w)
{
	const uint64_t idle = BD_IDLE_CHECKPOINT_MS * NS_PER_MS;
	const uint64_t shortest = BD_EXPIRY_WAIT_MIN_MS * NS_PER_MS;
	uint64_t due_in = expiry_due_in(w);

	if (due_in >= idle)
		return idle;
	/* Due now: do not sleep at all; due soon: not in a tight loop either. */
	return due_in == 0 ? 0 : due_in < shortest ? shortest : due_in;
}

static void writer_main(void *arg)
{
	bd_writer *w = arg;
	bool timed_out;
	uint64_t busy_at = uv_hrtime(); /* the last work, or the last checkpoint */

	for (;;) {
		uint64_t wait = idle_wait_ns(w);
		bd_job *jobs = take(w, wait, &timed_out);
		bool expired = false;
		if (jobs) {
			expired = commit_mutations(w, jobs);
			for (bd_job *j = jobs; j; j = j->next)
				if (!j->mutation)
					j->read(j, w->store);
			hand_back(w, jobs);
			busy_at = uv_hrtime();
		} else if (!timed_out) {
			break; /* stopping, queue drained */
		} else if (uv_hrtime() - busy_at >= BD_IDLE_CHECKPOINT_MS * NS_PER_MS) {
			/* Idle for the whole period, even if woken for deadlines. */
			checkpoint(w);
			busy_at = uv_hrtime();
		}
		/* One bounded batch per turn: live batches interleave. */
		if (!expired && expiry_due_in(w) == 0) {
			expire_alone(w);
			busy_at = uv_hrtime();
		}
	}
}

static void deliver(uv_async_t *handle)
{
	bd_writer *w = handle->data;

	uv_mutex_lock(&w->lock);
	bd_job *job = w->done_head;
	w->done_head = w->done_tail = NULL;
	uv_mutex_unlock(&w->lock);
	while (job) {
		bd_job *next = job->next;
		job->done(job);
		job = next;
	}
	if (w->listener) {
		uv_mutex_lock(&w->lock);
		uint64_t index = w->stats.commit_index;
		uv_mutex_unlock(&w->lock);
		if (index != w->announced) {
			w->announced = index;
			w->listener(w->listener_ctx, index);
		}
	}
}

int bd_writer_create(uv_loop_t *loop, bs_store *store, unsigned queue_max, bd_writer **out)
{
	bd_writer *w = calloc(1, sizeof(*w));

	*out = NULL;
	if (!w)
		return -ENOMEM;
	w->queue_max = queue_max;
	w->loop = loop;
	w->store = store;
	w->delivered.data = w;
	if (uv_mutex_init(&w->lock) != 0) {
		free(w);
		return -ENOMEM;
	}
	if (uv_cond_init(&w->wake) != 0 || uv_async_init(loop, &w->delivered, deliver) != 0) {
		uv_mutex_destroy(&w->lock);
		free(w);
		return -ENOMEM;
	}
	int rc = uv_thread_create(&w->thread, writer_main, w);
	if (rc != 0) {
		uv_close((uv_handle_t *)&w->delivered, NULL);
		return rc;
	}
	*out = w;
	return 0;
}

void bd_writer_set_observer(bd_writer *w, bd_batch_observer fn, void *ctx)
{
	w->observer = fn;
	w->observer_ctx = ctx;
}

void bd_writer_set_expiry_observer(bd_writer *w, bd_expiry_observer fn, void *ctx)
{
	uv_mutex_lock(&w->lock);
	w->expiry_observer = fn;
	w->expiry_observer_ctx = ctx;
	uv_mutex_unlock(&w->lock);
}

int bd_writer_submit(bd_writer *w, bd_job *job)
{
	int rc = 0;

	uv_mutex_lock(&w->lock);
	if (w->stopping) {
		rc = -ESHUTDOWN;
	} else if (w->queued >= w->queue_max) {
		rc = -EAGAIN;
	} else {
		bool was_empty = w->queue_head == NULL;
		append(&w->queue_head, &w->queue_tail, job);
		w->queued++;
		w->stats.queue_depth = w->queued;
		if (was_empty)
			uv_cond_signal(&w->wake);
	}
	uv_mutex_unlock(&w->lock);
	return rc;
}

void bd_writer_set_commit_listener(bd_writer *w, bd_commit_listener fn, void *ctx)
{
	w->listener = fn;
	w->listener_ctx = ctx;
}

unsigned bd_writer_queue_max(const bd_writer *w)
{
	return w->queue_max;
}

void bd_writer_stats_get(bd_writer *w, bd_writer_stats *out)
{
	uv_mutex_lock(&w->lock);
	*out = w->stats;
	uv_mutex_unlock(&w->lock);
}

static void free_writer(uv_handle_t *handle)
{
	bd_writer *w = handle->data;

	uv_cond_destroy(&w->wake);
	uv_mutex_destroy(&w->lock);
	free(w);
}

void bd_writer_destroy(bd_writer *w)
{
	if (!w)
		return;
	uv_mutex_lock(&w->lock);
	w->stopping = true;
	uv_cond_signal(&w->wake);
	uv_mutex_unlock(&w->lock);
	uv_thread_join(&w->thread);
	deliver(&w->delivered); /* the last replies */
	uv_close((uv_handle_t *)&w->delivered, free_writer);
}
