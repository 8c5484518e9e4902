/* bd_writer.c - see bd_writer.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bd_log.h"
#include "bd_writer.h"

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
	/* writer thread only */
	bs_batch_item items[BD_BATCH_MUTATIONS_MAX];
	bd_batch_observer observer;
	void *observer_ctx;
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
 * the last of them (in order). Waits when the queue is empty; NULL when
 * stopping with nothing left. */
static bd_job *take(bd_writer *w, bool *idle_timeout)
{
	bd_job *taken = NULL, *tail = NULL;
	unsigned mutations = 0;

	*idle_timeout = false;
	uv_mutex_lock(&w->lock);
	while (!w->queue_head && !w->stopping) {
		if (uv_cond_timedwait(&w->wake, &w->lock,
		                      (uint64_t)BD_IDLE_CHECKPOINT_MS * 1000000) == UV_ETIMEDOUT &&
		    !w->queue_head) {
			*idle_timeout = true;
			break;
		}
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

/* Applies the mutations of a take as one store batch. */
static void commit_mutations(bd_writer *w, bd_job *jobs)
{
	size_t n = 0;

	for (bd_job *j = jobs; j; j = j->next)
		if (j->mutation)
			w->items[n++].mutation = j->mutation;
	if (n == 0)
		return;
	uint64_t t0 = uv_hrtime();
	int rc = bs_store_apply_batch(w->store, w->items, n);
	uint64_t elapsed = uv_hrtime() - t0;
	if (rc == BS_ESTORAGE)
		bd_log_error("group commit of %zu mutations failed, none applied: %s", n,
		             w->items[0].error.message);
	size_t i = 0;
	for (bd_job *j = jobs; j; j = j->next) {
		if (!j->mutation)
			continue;
		j->result = w->items[i].result;
		if (j->result == BS_OK)
			j->outcome = w->items[i].outcome;
		else
			j->error = w->items[i].error;
		i++;
	}
	bs_stats figures = {0};
	bs_error err;
	(void)bs_store_stats(w->store, &figures, &err); /* best effort: metrics only */
	uv_mutex_lock(&w->lock);
	w->stats.batches++;
	w->stats.mutations += n;
	w->stats.commit_ns += elapsed;
	w->stats.commit_index = figures.commit_index;
	w->stats.open_holds = figures.open_holds;
	w->stats.db_bytes = figures.db_bytes;
	w->stats.storage_failures += rc == BS_ESTORAGE;
	uv_mutex_unlock(&w->lock);
	if (w->observer)
		w->observer(w->observer_ctx, n, elapsed);
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

static void writer_main(void *arg)
{
	bd_writer *w = arg;
	bool idle;

	for (;;) {
		bd_job *jobs = take(w, &idle);
		if (!jobs) {
			if (!idle)
				break; /* stopping, queue drained */
			checkpoint(w);
			continue;
		}
		commit_mutations(w, jobs);
		for (bd_job *j = jobs; j; j = j->next)
			if (!j->mutation)
				j->read(j, w->store);
		hand_back(w, jobs);
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
