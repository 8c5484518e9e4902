/* bs_faultvfs.h - a SQLite VFS whose writes and syncs can be made to fail,
 * for tests of what the store and the daemon do under I/O errors.
 *
 * A shim over the default VFS ("unix"): every call passes through, except
 * that while a fault is armed xWrite/xTruncate fail with SQLITE_IOERR_WRITE
 * (or SQLITE_FULL for a full disk) and xSync with SQLITE_IOERR_FSYNC. Faults
 * are armed by the functions below, or, when a control file is given, by its
 * first word, re-read at every write and sync: "write", "sync", "full" or
 * nothing. Open a store on it with `bs_options.vfs = BS_FAULT_VFS_NAME`.
 * Thread-safe counters; not for production use.
 */
#ifndef BS_FAULTVFS_H
#define BS_FAULTVFS_H

#include <stdbool.h>

#define BS_FAULT_VFS_NAME "budgetd-fault"

/* Registers the VFS (not as the default). `control_file` may be NULL.
 * Idempotent. Returns a SQLite result code. */
int bs_faultvfs_register(const char *control_file);

/* Arms or disarms the faults. All start disarmed. */
void bs_faultvfs_fail_writes(bool on);
void bs_faultvfs_fail_syncs(bool on);
void bs_faultvfs_disk_full(bool on);

/* How many xWrite / xSync calls failed because of an armed fault. */
unsigned long bs_faultvfs_failed_writes(void);
unsigned long bs_faultvfs_failed_syncs(void);

/* Calls seen since registration, armed or not. */
unsigned long bs_faultvfs_writes(void);
unsigned long bs_faultvfs_syncs(void);

#endif
