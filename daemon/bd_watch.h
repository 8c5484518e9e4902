/* bd_watch.h - WatchMutationEvents: the mutation log as a stream.
 *
 * Pull model. Each watcher has a cursor in the log: the last event_seq it
 * has dealt with (sent, or skipped by its capability filter). While the log
 * goes further, it reads the next page after the cursor through the writer
 * (a read job listing the log unfiltered, which is always current, and
 * packing the events that pass the filter), sends them one message at a
 * time, moves the cursor to the page's last event and reads again. Once it
 * has caught up it waits for the writer's next commit notification. What
 * is sent follows from the cursor alone, so there is no gap and no
 * duplicate between the backlog and the new events.
 *
 * Bounds: at most BD_WATCHERS_MAX streams, each holding at most one page
 * and one read job. A watcher whose unsent events committed since its
 * stream started number more than the lag limit is ended with
 * RESOURCE_EXHAUSTED (the client resumes from the commit index the message
 * names); the backlog it asked for does not count.
 *
 * Loop thread only (the read jobs' `read` runs on the writer thread).
 */
#ifndef BD_WATCH_H
#define BD_WATCH_H

#include <stdint.h>

#include "bd_app.h"
#include "bd_grpc.h"

#define BD_WATCHERS_MAX          256    /* streams open at once */
#define BD_WATCH_PAGE_EVENTS     256    /* log events one read job lists */
#define BD_WATCH_LAG_MAX_DEFAULT 100000 /* unsent events before a watcher is ended */
/* The lag limit's range (--watch-lag-max). At least a few group commits and
 * pages, so that a watcher keeping up is never ended for one large batch. */
#define BD_WATCH_LAG_MIN 1000
#define BD_WATCH_LAG_MAX 1000000000

typedef struct bd_watch bd_watch;

/* `app` (its writer and auth set) must outlive the module. `lag_max` is in
 * events, BD_WATCH_LAG_MIN to BD_WATCH_LAG_MAX. *out is owned by the
 * caller (bd_watch_destroy). 0, -EINVAL or -ENOMEM. */
int bd_watch_create(bd_app *app, uint64_t lag_max, bd_watch **out);

/* Adds WatchMutationEvents to the server (before bd_server_start) and
 * becomes the writer's commit listener. */
int bd_watch_register(bd_watch *w, bd_server *server);

/* The server is going away: ends every stream with UNAVAILABLE (after the
 * message in flight, if any) and refuses new ones. */
void bd_watch_close_all(bd_watch *w);

/* After the server is destroyed (every stream has ended). NULL is allowed. */
void bd_watch_destroy(bd_watch *w);

#endif
