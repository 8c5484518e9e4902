/* fixture.h - one running budgetd and a client per test. */
#ifndef TD_FIXTURE_H
#define TD_FIXTURE_H

#include <budgetd/client.h>
#include <criterion/criterion.h>

#include "harness.h"

extern td_daemon daemon_;
extern bc_client *client;

/* Starts budgetd (extra args may be NULL) and connects `client` to addr
 * (NULL: the TCP listener). */
void fx_start(const char *const *extra, const char *addr);
/* Stops budgetd with SIGTERM and expects a clean exit. */
void fx_stop(void);
void fx_setup(void);    /* fx_start(NULL, NULL) */
void fx_teardown(void); /* client freed, daemon stopped (exit 0), dir removed */

bc_client *fx_client(const char *addr, bool retries);

/* Shorthands that assert success. */
bc_authorize_hold_result fx_authorize(const char *cap, uint64_t grant, uint64_t units,
                                      const char *hold, const char *event, bool has_max_total,
                                      uint64_t max_total);
bc_hold_mutation_result fx_reconcile(const char *cap, uint64_t grant, const char *hold,
                                     uint64_t exposed, uint64_t realized);
/* Expects a failed call with this gRPC status and a message containing
 * `part`. */
void fx_expect_error(int rc, const bc_error *err, grpc_status_code code, const char *part);

#endif
