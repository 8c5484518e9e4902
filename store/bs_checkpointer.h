/* bs_checkpointer.h - copies the WAL back into the database on a thread of
 * its own, so the writer never stalls on a checkpoint's page writes and
 * database fsync. Internal to the store. */
#ifndef BS_CHECKPOINTER_H
#define BS_CHECKPOINTER_H

#include "bs_internal.h"

typedef struct bs_checkpointer bs_checkpointer;

/* Opens a second connection to the database at `path` and starts the
 * thread. *out is owned by the caller (bs_checkpointer_stop). */
int bs_checkpointer_start(const char *path, const char *vfs, bs_checkpointer **out, bs_error *err);

/* Asks for a checkpoint soon. Cheap; any thread. */
void bs_checkpointer_poke(bs_checkpointer *c);

/* Stops the thread, closes its connection and frees it. NULL is allowed. */
void bs_checkpointer_stop(bs_checkpointer *c);

#endif
