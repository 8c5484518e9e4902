/* bs_checkpointer.c - see bs_checkpointer.h.
 *
 * PASSIVE checkpoints never block the writer. Under a write load that never
 * pauses they may not catch up with the end of the WAL, so the writer keeps
 * a hard limit of its own (bs_sql.c) past which it checkpoints itself.
 */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bs_checkpointer.h"

#define IDLE_CHECKPOINT_S 1 /* checkpoint at least this often when poked never */

struct bs_checkpointer {
	sqlite3 *db;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool poked;    /* guarded by lock */
	bool stopping; /* guarded by lock */
};

static void *checkpointer_main(void *arg)
{
	bs_checkpointer *c = arg;

	pthread_mutex_lock(&c->lock);
	while (!c->stopping) {
		if (!c->poked) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += IDLE_CHECKPOINT_S;
			(void)pthread_cond_timedwait(&c->wake, &c->lock, &until);
		}
		c->poked = false;
		pthread_mutex_unlock(&c->lock);
		/* BUSY just means the writer or a reader holds frames: retry later. */
		(void)sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int bs_checkpointer_start(const char *path, const char *vfs, bs_checkpointer **out, bs_error *err)
{
	bs_checkpointer *c = calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if (!c)
		return bs_errorf(err, BS_EINTERNAL, "out of memory");
	rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, vfs);
	if (rc != SQLITE_OK) {
		rc = bs_errorf(err, BS_ESTORAGE, "cannot open the checkpoint connection to %s: %s",
		               path, c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		sqlite3_close(c->db);
		free(c);
		return rc;
	}
	/* Its own checkpoints only: never the automatic ones on close. */
	(void)sqlite3_db_config(c->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	rc = pthread_create(&c->thread, NULL, checkpointer_main, c);
	if (rc != 0) {
		pthread_cond_destroy(&c->wake);
		pthread_mutex_destroy(&c->lock);
		sqlite3_close(c->db);
		free(c);
		return bs_errorf(err, BS_EINTERNAL, "cannot start the checkpoint thread: %s",
		                 strerror(rc));
	}
	*out = c;
	return BS_OK;
}

void bs_checkpointer_poke(bs_checkpointer *c)
{
	pthread_mutex_lock(&c->lock);
	if (!c->poked) {
		c->poked = true;
		pthread_cond_signal(&c->wake);
	}
	pthread_mutex_unlock(&c->lock);
}

void bs_checkpointer_stop(bs_checkpointer *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	sqlite3_close(c->db);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
