/* bs_sql.h - the store's SQL: schema, statements, row codecs. No rules.
 *
 * Functions return BS_OK or BS_ESTORAGE (with the SQLite error in `err`).
 * Rows reach visitors with strings borrowed from SQLite, valid only during
 * the call. */
#ifndef BS_SQL_H
#define BS_SQL_H

#include "bs_internal.h"

typedef struct bs_db bs_db;

/* Opens, locks (file databases), migrates and prepares. *out is owned by
 * the caller, released with bs_db_close. */
int bs_db_open(const char *path, const bs_options *opts, bs_db **out, bs_error *err);
void bs_db_close(bs_db *db);

int bs_db_begin(bs_db *db, bs_error *err);
int bs_db_commit(bs_db *db, bs_error *err);
void bs_db_rollback(bs_db *db); /* no-op outside a transaction */

/* The log. `store_id` false: the event id is generated, stored as NULL. */
int bs_db_append_event(bs_db *db, const bs_event *ev, bool store_id, bs_error *err);
int bs_db_event_by_seq(bs_db *db, uint64_t seq, bs_event_cb cb, void *ctx, bool *found,
                       bs_error *err);
/* Every event with event_seq > after_seq, in order. */
int bs_db_scan_events(bs_db *db, uint64_t after_seq, bs_event_cb cb, void *ctx, bs_error *err);
int bs_db_max_seq(bs_db *db, uint64_t *out, bs_error *err);
/* Open holds in the holds table (materialized state). */
int bs_db_count_open_holds(bs_db *db, uint64_t *out, bs_error *err);
/* Bytes of the database file and its WAL (0 for :memory:). */
int bs_db_file_bytes(bs_db *db, uint64_t *out, bs_error *err);

/* The materialized (derived) state. */
int bs_db_indexed_event_seq(bs_db *db, bs_str event_id, uint64_t *seq, bool *found, bs_error *err);
int bs_db_get_usage(bs_db *db, bs_str cap, uint32_t grant, bs_usage_cb cb, void *ctx, bool *found,
                    bs_error *err);
int bs_db_put_usage(bs_db *db, const bs_usage *u, bs_error *err);
int bs_db_get_hold(bs_db *db, bs_str hold_id, bs_hold_cb cb, void *ctx, bool *found, bs_error *err);
int bs_db_put_hold(bs_db *db, const bs_hold *h, bs_error *err);
/* Indexes the log's events after `after_seq` (event ids, capabilities). */
int bs_db_index_events(bs_db *db, uint64_t after_seq, bs_error *err);
int bs_db_get_materialized_seq(bs_db *db, uint64_t *out, bs_error *err);
int bs_db_set_materialized_seq(bs_db *db, uint64_t seq, bs_error *err);

/* Every open hold with a deadline in the holds table. A non-zero return
 * of `cb` (out of memory) stops the scan, which then fails. */
typedef int (*bs_deadline_cb)(void *ctx, bs_str hold_id, int64_t expires_at_ns);
int bs_db_scan_deadlines(bs_db *db, bs_deadline_cb cb, void *ctx, bs_error *err);

/* Reads over the materialized state (`limit` already validated). */
int bs_db_list_holds(bs_db *db, const bs_hold_query *q, bs_hold_cb cb, void *ctx, bs_error *err);
int bs_db_list_usages(bs_db *db, uint32_t limit, bs_str cap, bs_usage_cb cb, void *ctx,
                      bs_error *err);
int bs_db_list_events(bs_db *db, uint32_t limit, bs_str cap, bool has_grant, uint32_t grant,
                      uint64_t after_seq, bs_event_cb cb, void *ctx, bs_error *err);

/* A passive WAL checkpoint: copies what it can without waiting. */
int bs_db_checkpoint(bs_db *db, bs_error *err);

#endif
