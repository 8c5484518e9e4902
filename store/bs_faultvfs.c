/* bs_faultvfs.c - see bs_faultvfs.h. */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bs_faultvfs.h"

typedef struct fault_file {
	sqlite3_file base;  /* must come first: what SQLite sees */
	sqlite3_file *real; /* the underlying VFS's file, right after us */
} fault_file;

static sqlite3_vfs fault_vfs;
static sqlite3_vfs *real_vfs;
static _Atomic bool fail_writes, fail_syncs, disk_full;
static _Atomic unsigned long n_writes, n_syncs, n_failed_writes, n_failed_syncs;
static char control[4096]; /* "" without a control file */

typedef enum fault { FAULT_NONE, FAULT_WRITE, FAULT_SYNC, FAULT_FULL } fault;

/* The armed fault: the control file's first word, or the switches. */
static fault armed(void)
{
	char word[16] = "";

	if (!control[0])
		return fail_writes ? FAULT_WRITE : disk_full ? FAULT_FULL : FAULT_NONE;
	int fd = open(control, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, word, sizeof(word) - 1);
		word[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	if (strncmp(word, "write", 5) == 0)
		return FAULT_WRITE;
	if (strncmp(word, "sync", 4) == 0)
		return FAULT_SYNC;
	if (strncmp(word, "full", 4) == 0)
		return FAULT_FULL;
	return FAULT_NONE;
}

static bool sync_armed(void)
{
	return control[0] ? armed() == FAULT_SYNC : fail_syncs;
}

/* SQLITE_OK, or the error an armed write fault returns. */
static int write_fault(int io_error)
{
	switch (armed()) {
	case FAULT_WRITE:
		n_failed_writes++;
		return io_error;
	case FAULT_FULL:
		n_failed_writes++;
		return SQLITE_FULL;
	default:
		return SQLITE_OK;
	}
}

#define REAL(f) (((fault_file *)(f))->real)

static int ff_close(sqlite3_file *f)
{
	sqlite3_file *r = REAL(f);
	int rc = SQLITE_OK;

	if (r->pMethods)
		rc = r->pMethods->xClose(r);
	f->pMethods = NULL;
	return rc;
}

static int ff_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}

static int ff_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
	n_writes++;
	int rc = write_fault(SQLITE_IOERR_WRITE);
	return rc ? rc : REAL(f)->pMethods->xWrite(REAL(f), buf, amt, off);
}

static int ff_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	int rc = write_fault(SQLITE_IOERR_TRUNCATE);
	return rc ? rc : REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int ff_sync(sqlite3_file *f, int flags)
{
	n_syncs++;
	if (sync_armed()) {
		n_failed_syncs++;
		return SQLITE_IOERR_FSYNC;
	}
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int ff_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int ff_lock(sqlite3_file *f, int level)
{
	return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int ff_unlock(sqlite3_file *f, int level)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int ff_check_reserved_lock(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int ff_file_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int ff_sector_size(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int ff_device_characteristics(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int ff_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}

static int ff_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void ff_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int ff_shm_unmap(sqlite3_file *f, int delete_flag)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

static int ff_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
	/* No memory-mapped reads: every page goes through xRead. */
	(void)f;
	(void)off;
	(void)amt;
	*pp = NULL;
	return SQLITE_OK;
}

static int ff_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	(void)f;
	(void)off;
	(void)p;
	return SQLITE_OK;
}

static const sqlite3_io_methods fault_io_v1 = {
        1,
        ff_close,
        ff_read,
        ff_write,
        ff_truncate,
        ff_sync,
        ff_file_size,
        ff_lock,
        ff_unlock,
        ff_check_reserved_lock,
        ff_file_control,
        ff_sector_size,
        ff_device_characteristics,
        NULL,
        NULL,
        NULL,
        NULL,
        NULL,
        NULL,
};

static const sqlite3_io_methods fault_io_v3 = {
        3,
        ff_close,
        ff_read,
        ff_write,
        ff_truncate,
        ff_sync,
        ff_file_size,
        ff_lock,
        ff_unlock,
        ff_check_reserved_lock,
        ff_file_control,
        ff_sector_size,
        ff_device_characteristics,
        ff_shm_map,
        ff_shm_lock,
        ff_shm_barrier,
        ff_shm_unmap,
        ff_fetch,
        ff_unfetch,
};

static int fv_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
	fault_file *ff = (fault_file *)f;
	int rc;

	(void)vfs;
	ff->real = (sqlite3_file *)(ff + 1);
	memset(ff->real, 0, (size_t)real_vfs->szOsFile);
	f->pMethods = NULL;
	rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out_flags);
	if (ff->real->pMethods == NULL)
		return rc;
	f->pMethods = ff->real->pMethods->iVersion >= 3 ? &fault_io_v3 : &fault_io_v1;
	return rc;
}

static int fv_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	(void)vfs;
	return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int fv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int fv_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *fv_dl_open(sqlite3_vfs *vfs, const char *name)
{
	(void)vfs;
	return real_vfs->xDlOpen(real_vfs, name);
}

static void fv_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
	(void)vfs;
	real_vfs->xDlError(real_vfs, n, msg);
}

static void (*fv_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	(void)vfs;
	return real_vfs->xDlSym(real_vfs, h, sym);
}

static void fv_dl_close(sqlite3_vfs *vfs, void *h)
{
	(void)vfs;
	real_vfs->xDlClose(real_vfs, h);
}

static int fv_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs->xRandomness(real_vfs, n, out);
}

static int fv_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return real_vfs->xSleep(real_vfs, us);
}

static int fv_current_time(sqlite3_vfs *vfs, double *out)
{
	(void)vfs;
	return real_vfs->xCurrentTime(real_vfs, out);
}

static int fv_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, n, out) : 0;
}

static int fv_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	(void)vfs;
	return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

int bs_faultvfs_register(const char *control_file)
{
	if (control_file)
		(void)snprintf(control, sizeof(control), "%s", control_file);
	if (real_vfs != NULL)
		return SQLITE_OK;
	if (sqlite3_initialize() != SQLITE_OK)
		return SQLITE_ERROR;
	real_vfs = sqlite3_vfs_find(NULL);
	if (real_vfs == NULL)
		return SQLITE_ERROR;
	memset(&fault_vfs, 0, sizeof(fault_vfs));
	fault_vfs.iVersion = 2;
	fault_vfs.szOsFile = (int)sizeof(fault_file) + real_vfs->szOsFile;
	fault_vfs.mxPathname = real_vfs->mxPathname;
	fault_vfs.zName = BS_FAULT_VFS_NAME;
	fault_vfs.xOpen = fv_open;
	fault_vfs.xDelete = fv_delete;
	fault_vfs.xAccess = fv_access;
	fault_vfs.xFullPathname = fv_full_pathname;
	fault_vfs.xDlOpen = fv_dl_open;
	fault_vfs.xDlError = fv_dl_error;
	fault_vfs.xDlSym = fv_dl_sym;
	fault_vfs.xDlClose = fv_dl_close;
	fault_vfs.xRandomness = fv_randomness;
	fault_vfs.xSleep = fv_sleep;
	fault_vfs.xCurrentTime = fv_current_time;
	fault_vfs.xGetLastError = fv_get_last_error;
	fault_vfs.xCurrentTimeInt64 = fv_current_time_int64;
	return sqlite3_vfs_register(&fault_vfs, 0);
}

void bs_faultvfs_fail_writes(bool on)
{
	fail_writes = on;
}

void bs_faultvfs_fail_syncs(bool on)
{
	fail_syncs = on;
}

void bs_faultvfs_disk_full(bool on)
{
	disk_full = on;
}

unsigned long bs_faultvfs_failed_writes(void)
{
	return n_failed_writes;
}

unsigned long bs_faultvfs_failed_syncs(void)
{
	return n_failed_syncs;
}

unsigned long bs_faultvfs_writes(void)
{
	return n_writes;
}

unsigned long bs_faultvfs_syncs(void)
{
	return n_syncs;
}
