/* helpers.h - shared helpers for the store's criterion tests.
 *
 * The helpers only use the public API of bs_store.h. Every helper that
 * checks something fails the running test with the caller's file and line.
 */
#ifndef TEST_STORE_HELPERS_H
#define TEST_STORE_HELPERS_H

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bs_store.h"

#define U64MAX UINT64_MAX
#define U32MAX UINT32_MAX

/* The injected clock: every store the helpers open reads this value. Tests
 * move it explicitly; nothing depends on real time. */
extern int64_t th_now;
int64_t th_clock(void *ctx);
bs_options th_options(void);

/* Opening stores; both fail the test when the open fails. */
bs_store *th_open_memory(void);
bs_store *th_open_path(const char *path);

/* Temporary directories under /tmp (mkdtemp) and their removal. */
char *th_mkdtemp(void);
void th_rmtree(const char *path);
void th_path(char *buf, size_t size, const char *dir, const char *name);

/* Mutation builders. `hold` may be NULL (no hold). */
bs_mutation th_authorize(const char *cap, uint64_t grant, uint64_t units, const char *hold);
bs_mutation th_release(const char *cap, uint64_t grant, uint64_t units, const char *hold);
bs_mutation th_reverse(const char *cap, uint64_t grant, uint64_t units, const char *hold);
bs_mutation th_reconcile(const char *cap, uint64_t grant, uint64_t exposed, uint64_t realized,
                         const char *hold);
bs_mutation th_increment(const char *cap, uint64_t grant);
void th_set_event(bs_mutation *m, const char *event_id);
void th_set_authority(bs_mutation *m, const char *authority_id, const char *lease_id,
                      uint64_t epoch);
void th_set_max_invocations(bs_mutation *m, uint64_t v);
void th_set_max_cost(bs_mutation *m, uint64_t v);
void th_set_max_total(bs_mutation *m, uint64_t v);

/* Owned copies of what the visitors hand out. The bs_str fields of the
 * embedded structs are cleared; use the char arrays instead. */
typedef struct th_usage {
	char cap[BS_ID_LEN_MAX + 1];
	bs_usage u;
} th_usage;

typedef struct th_hold {
	char id[BS_ID_LEN_MAX + 1];
	char cap[BS_ID_LEN_MAX + 1];
	char authority_id[BS_ID_LEN_MAX + 1];
	char lease_id[BS_ID_LEN_MAX + 1];
	bs_hold h;
} th_hold;

typedef struct th_event {
	char event_id[BS_ID_LEN_MAX + 1];
	bool has_hold;
	char hold_id[BS_ID_LEN_MAX + 1];
	char cap[BS_ID_LEN_MAX + 1];
	char authority_id[BS_ID_LEN_MAX + 1];
	char lease_id[BS_ID_LEN_MAX + 1];
	char caller[BS_ID_LEN_MAX + 1];
	bs_event e;
} th_event;

void th_copy_str(char *dst, bs_str s);
void th_copy_usage(th_usage *dst, const bs_usage *u);
void th_copy_hold(th_hold *dst, const bs_hold *h);
void th_copy_event(th_event *dst, const bs_event *e);

/* Queries; all fail the test on an error. */
bool th_get_usage(bs_store *s, const char *cap, uint32_t grant, th_usage *out);
bool th_get_hold(bs_store *s, const char *hold, th_hold *out);
uint64_t th_commit_index(bs_store *s);
/* Every event, in event_seq order (pages through list_events). Free *out. */
size_t th_events(bs_store *s, th_event **out);
/* One list_events call; returns the number of events, copies up to `max`. */
size_t th_list_events(bs_store *s, uint32_t limit, const char *cap, bool has_grant, uint64_t grant,
                      uint64_t after_seq, th_event *out, size_t max);
/* One list_usages call (cap may be NULL); copies up to `max` rows. */
size_t th_list_usages(bs_store *s, uint32_t limit, const char *cap, th_usage *out, size_t max);

/* Everything observable about a store, to check that an error changed
 * nothing. Holds are not listable; the snapshot keeps the hold named by a
 * mutation. */
typedef struct th_snapshot {
	uint64_t commit_index;
	size_t n_events;
	th_event *events;
	size_t n_usages;
	th_usage *usages;
	bool hold_found;
	th_hold hold;
} th_snapshot;

void th_snapshot_take(bs_store *s, const char *hold, th_snapshot *snap);
void th_snapshot_expect_same(const char *file, int line, const th_snapshot *a,
                             const th_snapshot *b);
void th_snapshot_free(th_snapshot *snap);

/* Applying. */
bs_outcome th_apply_ok(const char *file, int line, bs_store *s, const bs_mutation *m);
void th_apply_err(const char *file, int line, bs_store *s, const bs_mutation *m, int code,
                  const char *message);
void th_expect_usage(const char *file, int line, bs_store *s, const char *cap, uint32_t grant,
                     uint32_t count, uint64_t exposed, uint64_t realized);
void th_expect_no_usage(const char *file, int line, bs_store *s, const char *cap, uint32_t grant);
void th_expect_hold(const char *file, int line, bs_store *s, const char *hold,
                    bs_disposition disposition, uint64_t authorized, uint64_t remaining);
void th_expect_same_outcome(const char *file, int line, const bs_outcome *a, const bs_outcome *b);

#define apply_ok(s, m)             th_apply_ok(__FILE__, __LINE__, (s), (m))
#define apply_err(s, m, code, msg) th_apply_err(__FILE__, __LINE__, (s), (m), (code), (msg))
#define expect_usage(s, cap, grant, count, exposed, realized)                                      \
	th_expect_usage(__FILE__, __LINE__, (s), (cap), (grant), (count), (exposed), (realized))
#define expect_no_usage(s, cap, grant) th_expect_no_usage(__FILE__, __LINE__, (s), (cap), (grant))
#define expect_hold(s, hold, disp, authorized, remaining)                                          \
	th_expect_hold(__FILE__, __LINE__, (s), (hold), (disp), (authorized), (remaining))
#define expect_same_outcome(a, b) th_expect_same_outcome(__FILE__, __LINE__, (a), (b))

/* Per-test fixture: a fresh in-memory store in `store`, the clock reset. */
extern bs_store *store;
void th_setup_memory(void);
void th_teardown_memory(void);

/* Per-test fixture: a fresh temporary directory in `tmpdir`. */
extern char *tmpdir;
void th_setup_tmpdir(void);
void th_teardown_tmpdir(void);

#endif
