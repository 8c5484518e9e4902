/* bd_admin.h - the budgetd.v1.BudgetAdmin service (Backup, Verify) and
 * `budgetd --verify`.
 *
 * The file work (bs_backup_file, bs_verify_file) runs on libuv's thread
 * pool with read-only connections of its own, never on the loop or the
 * writer thread; the writer only brings the derived tables up to date
 * first (one bs_store_checkpoint job). At most one backup and one
 * verification run at a time.
 */
#ifndef BD_ADMIN_H
#define BD_ADMIN_H

#include <uv.h>

#include "bd_grpc.h"

/* Exit statuses of budgetd --verify. */
#define BD_VERIFY_EXIT_CONSISTENT 0 /* no mismatch */
#define BD_VERIFY_EXIT_MISMATCH   1 /* the ledger has mismatches (printed) */
#define BD_VERIFY_EXIT_ERROR      3 /* it could not be verified (unreadable, not a budgetd db) */

/* Registers Backup and Verify on `server` (before bd_server_start; loop
 * thread). They work on the database file at `db_path` (copied; budgetd's
 * --db) and queue their file work on `loop`'s thread pool. The service's
 * state is the process's: register it on one server only. The handlers
 * find the writer through the server's bd_app. 0, or -1 (a bad path or a
 * registration failure). */
int bd_admin_register(bd_server *server, uv_loop_t *loop, const char *db_path);

/* budgetd --verify --db PATH: verifies the database at `db_path` read-only
 * (a budgetd may be serving from it meanwhile), prints "PATH: <summary>"
 * and one "mismatch: ..." line per mismatch kept on stdout, or the reason
 * it could not verify on stderr. Returns a BD_VERIFY_EXIT_* status. */
int bd_admin_verify_main(const char *db_path);

#endif
