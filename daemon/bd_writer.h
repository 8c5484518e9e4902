/* bd_writer.h - the writer thread: the only user of the store.
 *
 * The loop submits jobs; the writer takes everything queued (up to
 * BD_BATCH_MUTATIONS_MAX), applies all mutations of the take as one store
 * batch (one transaction, one fsync), runs the reads, and hands the jobs
 * back to the loop, where `done` runs. No reply can leave before its
 * mutation is durable, because replies are built in `done`.
 *
 * The writer also expires holds whose deadline passed: one bounded batch
 * per turn, in the same transaction as the turn's group commit when there
 * is one (bs_store_apply_batch_expire: one fsync for both). Under load a
 * turn expires as many holds as it commits live mutations (at least
 * BD_EXPIRY_SHARE_MIN), so a mass expiry takes about half of the writer and
 * live calls keep the rest; idle, it expires BD_BATCH_MUTATIONS_MAX at a
 * time. It sleeps no longer than until the next deadline.
 */
#ifndef BD_WRITER_H
#define BD_WRITER_H

#include <stdbool.h>
#include <uv.h>

#include "bs_store.h"

#define BD_BATCH_MUTATIONS_MAX 256   /* mutations per group commit */
#define BD_QUEUE_JOBS_DEFAULT  4096  /* jobs waiting for the writer */
#define BD_QUEUE_JOBS_MAX      65536 /* the most --queue-depth allows */
#define BD_IDLE_CHECKPOINT_MS  1000  /* idle time before a store checkpoint */
#define BD_EXPIRY_WAIT_MIN_MS  10    /* the shortest sleep before a deadline */
#define BD_EXPIRY_RETRY_MS     1000  /* after a failed expiry, before the next try */
#define BD_EXPIRY_SHARE_MIN    32    /* expiries a group commit may carry at least */
#define BD_EXPIRY_LIVE_MS      10    /* a group commit this recent means live load */

typedef struct bd_job bd_job;
typedef struct bd_writer bd_writer;

/* Runs on the writer thread with the store; fills the job's own fields. */
typedef void (*bd_job_read_fn)(bd_job *job, bs_store *store);
/* Runs on the loop thread when the job is done. */
typedef void (*bd_job_done_fn)(bd_job *job);

/* Owned by the submitter (usually embedded in a call) until `done` runs. */
struct bd_job {
	const bs_mutation *mutation; /* a mutation job, or NULL */
	bd_job_read_fn read;         /* a read job when mutation is NULL */
	bd_job_done_fn done;
	void *ctx;
	/* results of a mutation */
	int result;
	bs_outcome outcome;
	bs_error error;
	bd_job *next; /* queue link, owned by the writer */
};

typedef struct bd_writer_stats {
	uint64_t batches;          /* group commits */
	uint64_t mutations;        /* mutations applied in them */
	uint64_t commit_ns;        /* time spent in apply_batch */
	unsigned queue_depth;      /* jobs waiting now */
	uint64_t commit_index;     /* after the last batch */
	uint64_t open_holds;       /* after the last batch */
	uint64_t db_bytes;         /* database and WAL, after the last batch */
	uint64_t storage_failures; /* group commits and expiry batches that failed */
	uint64_t expiry_batches;   /* expiry transactions that expired holds */
	uint64_t holds_expired;    /* holds expired by their deadline */
} bd_writer_stats;

/* Called on the writer thread after each group commit (metrics). */
typedef void (*bd_batch_observer)(void *ctx, size_t mutations, uint64_t commit_ns);

/* Starts the writer thread; at most `queue_max` jobs wait for it. The store
 * is used only by that thread until bd_writer_destroy. *out is owned by the
 * caller. */
int bd_writer_create(uv_loop_t *loop, bs_store *store, unsigned queue_max, bd_writer **out);

/* The queue limit given at create. */
unsigned bd_writer_queue_max(const bd_writer *w);

void bd_writer_set_observer(bd_writer *w, bd_batch_observer fn, void *ctx);

/* Called on the writer thread after each expiry batch that expired holds,
 * with the writer's lock held (be quick; do not call the writer). Expiry
 * runs with no call in progress, so before freeing `ctx` set the observer
 * to NULL: once that returns, no call of the old one is running. */
typedef void (*bd_expiry_observer)(void *ctx, uint32_t expired);
void bd_writer_set_expiry_observer(bd_writer *w, bd_expiry_observer fn, void *ctx);

/* Called on the loop thread once the replies of a group commit are out (or
 * an expiry batch committed), with the commit index after it (change
 * streams follow the log with it). */
typedef void (*bd_commit_listener)(void *ctx, uint64_t commit_index);
void bd_writer_set_commit_listener(bd_writer *w, bd_commit_listener fn, void *ctx);

/* Queues a job. 0, -EAGAIN when the queue is full, -ESHUTDOWN when the
 * writer is stopping. */
int bd_writer_submit(bd_writer *w, bd_job *job);

void bd_writer_stats_get(bd_writer *w, bd_writer_stats *out);

/* Refuses new jobs, runs everything queued, delivers every `done`, joins
 * the thread and frees the writer (loop thread; closes its handles, so the
 * loop must run once more). The store stays open, owned by the caller. */
void bd_writer_destroy(bd_writer *w);

#endif
