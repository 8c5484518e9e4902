/* fault_vfs.h - a SQLite VFS for tests that can make writes and syncs fail.
 *
 * The VFS is a shim over the default VFS ("unix"): every call is passed
 * through, except that xWrite and xSync return SQLITE_IOERR_WRITE /
 * SQLITE_IOERR_FSYNC while the corresponding fault is armed. Open a store on
 * it with `bs_options.vfs = FAULT_VFS_NAME` after fault_vfs_register().
 */
#ifndef TEST_STORE_FAULT_VFS_H
#define TEST_STORE_FAULT_VFS_H

#include <stdbool.h>

#define FAULT_VFS_NAME "bs-test-fault"

/* Registers the VFS (not as the default). Idempotent. Returns a SQLite
 * result code. */
int fault_vfs_register(void);

/* Arms or disarms the faults. Both start disarmed. */
void fault_vfs_fail_writes(bool on);
void fault_vfs_fail_syncs(bool on);

/* How many xWrite / xSync calls failed because of an armed fault. */
unsigned long fault_vfs_failed_writes(void);
unsigned long fault_vfs_failed_syncs(void);

/* Calls seen since registration, armed or not. */
unsigned long fault_vfs_writes(void);
unsigned long fault_vfs_syncs(void);

#endif
