/* bd_metrics.h - Prometheus metrics on a separate HTTP listener.
 *
 * Observers on any thread add to counters and histograms with relaxed
 * atomics; a libmicrohttpd thread renders them as Prometheus text format
 * 0.0.4 at each GET /metrics. Everything is bounded: at most
 * BD_METRICS_METHODS_MAX method names (later ones count as method="other"),
 * names of at most BD_METRICS_METHOD_LEN_MAX bytes, a scrape body of at most
 * BD_METRICS_BODY_BYTES_MAX bytes. After a method's first sight (one copy of
 * its name under a mutex) observing allocates nothing and takes no lock.
 *
 * Families, all prefixed budgetd_:
 *   rpc_requests_total{method,code}           counter (code: "OK", "NOT_FOUND", ...)
 *   rpc_duration_seconds{method}              histogram, 100 us .. 10 s
 *   authorize_decisions_total{decision,reason} counter
 *   commit_batch_size                         histogram, 1, 2, 4, .. 256 mutations
 *   commit_duration_seconds                   histogram, 100 us .. 10 s
 *   holds_expired_total                       counter
 *   queue_depth, open_holds, db_size_bytes, commit_index   gauges (callback)
 *   build_info{version}                       gauge, always 1
 */
#ifndef BD_METRICS_H
#define BD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BD_METRICS_METHODS_MAX     64         /* distinct method labels, then "other" */
#define BD_METRICS_METHOD_LEN_MAX  128        /* longer method names count as "other" */
#define BD_METRICS_BODY_BYTES_MAX  (2u << 20) /* one rendered scrape */
#define BD_METRICS_CONNECTIONS_MAX 16         /* HTTP connections at once */
#define BD_METRICS_TIMEOUT_S       10         /* an idle HTTP connection is closed */
#define BD_METRICS_CONTENT_TYPE    "text/plain; version=0.0.4; charset=utf-8"

typedef struct bd_metrics bd_metrics;

/* Figures the module cannot read itself (the store belongs to the writer
 * thread). Zeroed before each call of the gauge callback. */
typedef struct bd_metrics_gauges {
	uint64_t queue_depth;  /* jobs waiting for the writer */
	uint64_t open_holds;   /* holds still open: not settled, not expired */
	uint64_t db_bytes;     /* the database and its WAL on disk */
	uint64_t commit_index; /* the store's last sequence value */
} bd_metrics_gauges;

/* Called on the HTTP thread at each scrape; must be thread-safe and quick
 * (read published figures, do not wait for the writer). */
typedef void (*bd_metrics_gauge_fn)(void *ctx, bd_metrics_gauges *out);

/* Creates an empty registry, not listening. *out is owned by the caller
 * (bd_metrics_destroy). 0 or -ENOMEM. */
int bd_metrics_create(bd_metrics **out);

/* Stops the HTTP listener (joins its thread; no gauge callback runs after
 * this returns), then frees everything. No observer may run concurrently
 * with or after this. NULL is allowed. */
void bd_metrics_destroy(bd_metrics *m);

/* ---- observers: any thread, lock-free after a method's first sight ---- */

/* One finished RPC. `method` is copied on first sight (the caller keeps
 * ownership); `grpc_code` is a grpc_status_code (out of range counts as
 * UNKNOWN). Fits bd_call_observer's arguments. */
void bd_metrics_observe_call(bd_metrics *m, const char *method, int grpc_code, uint64_t latency_ns);

/* One group commit: mutations in the batch and time spent committing it.
 * Fits bd_batch_observer's arguments. */
void bd_metrics_observe_batch(bd_metrics *m, size_t mutations, uint64_t commit_ns);

/* `expired` holds were settled by their deadline (one expiry batch). Fits
 * bd_expiry_observer's arguments. */
void bd_metrics_observe_expired(bd_metrics *m, uint32_t expired);

/* One authorize decision. `denial_reason` is a bs_denial value, named in
 * the reason label by bs_denial_name ("max_total_cost"); it is ignored when
 * allowed (reason="none"), and a denial without a known reason counts as
 * reason="unknown". */
void bd_metrics_observe_decision(bd_metrics *m, bool allowed, int denial_reason);

/* ---- the HTTP listener ---- */

/* Serves GET (and HEAD) /metrics on `host_port`: "127.0.0.1:9464",
 * "[::1]:9464", "0.0.0.0:9464", "localhost:9464"; port 0 binds an ephemeral
 * port (bd_metrics_port tells which). Other paths answer 404, other methods
 * 405. The module binds the socket itself, then libmicrohttpd serves it on
 * its own thread. `gauges` (may be NULL: the four gauges are then left out)
 * and `ctx` must stay valid until bd_metrics_destroy.
 *
 * Call once, from the thread that owns `m`. 0, or -errno with a message in
 * err: -EINVAL (bad address), -EADDRINUSE (port busy), -EALREADY (already
 * listening), -EIO (libmicrohttpd would not start; it logs why). */
int bd_metrics_listen(bd_metrics *m, const char *host_port, bd_metrics_gauge_fn gauges, void *ctx,
                      char *err, size_t err_len);

/* The bound TCP port, or 0 when not listening. */
int bd_metrics_port(const bd_metrics *m);

/* Renders the current figures (what GET /metrics answers) into a new
 * NUL-terminated buffer owned by the caller (free). Calls the gauge
 * callback when one is set. Any thread, but not concurrently with
 * bd_metrics_listen. 0, -ENOMEM or -E2BIG (beyond BD_METRICS_BODY_BYTES_MAX). */
int bd_metrics_render(bd_metrics *m, char **out, size_t *out_len);

#endif
