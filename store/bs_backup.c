/* bs_backup.c - a consistent online copy of a budgetd database
 * (bs_admin.h).
 *
 * The source is read through a read-only connection that holds one read
 * transaction for the whole copy: WAL readers never block the writer, and
 * the copy is the database exactly as of that transaction's snapshot. (The
 * backup API restarts a copy when the source changes under it; inside one
 * read transaction it cannot change, so the copy goes in steps and never
 * restarts.) The copy is written to PATH.tmp and becomes PATH only once it
 * is complete and on disk, so PATH either does not exist or is a whole
 * backup.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bs_admin.h"
#include "bs_internal.h"

#define BACKUP_BUSY_TIMEOUT_MS 5000
#define BACKUP_BUSY_SLEEP_MS   10  /* wait when a step finds the source locked */
#define BACKUP_BUSY_RETRIES    500 /* steps in a row that may find it locked */
#define BACKUP_PATH_SIZE       (BS_ADMIN_PATH_LEN_MAX + 16)

/* Files SQLite may leave next to a database it wrote. */
static const char *const sidecars[] = {"", "-journal", "-wal", "-shm"};

static void remove_copy(const char *tmp)
{
	char p[BACKUP_PATH_SIZE];

	for (size_t i = 0; i < sizeof(sidecars) / sizeof(sidecars[0]); i++)
		if (snprintf(p, sizeof(p), "%s%s", tmp, sidecars[i]) < (int)sizeof(p))
			(void)unlink(p);
}

/* ---- paths ---- */

static int check_dest(const char *dest, char *tmp, size_t tmp_size, bs_error *err)
{
	size_t len = dest ? strlen(dest) : 0;
	struct stat st;

	if (len == 0)
		return bs_errorf(err, BS_EINVAL, "a backup path is required");
	if (dest[0] != '/')
		return bs_errorf(err, BS_EINVAL,
		                 "the backup path `%s` is not absolute (it is a path on the"
		                 " server's filesystem)",
		                 dest);
	if (len > BS_ADMIN_PATH_LEN_MAX)
		return bs_errorf(err, BS_EINVAL, "the backup path is longer than %d bytes",
		                 BS_ADMIN_PATH_LEN_MAX);
	if (dest[len - 1] == '/')
		return bs_errorf(err, BS_EINVAL,
		                 "the backup path `%s` names a directory; name the"
		                 " file to create",
		                 dest);
	if (snprintf(tmp, tmp_size, "%s%s", dest, BS_BACKUP_TMP_SUFFIX) >= (int)tmp_size)
		return bs_errorf(err, BS_EINVAL, "the backup path is too long");
	/* A clear answer up front; the final rename still never replaces. */
	if (lstat(dest, &st) == 0)
		return bs_errorf(err, BS_ECONFLICT,
		                 "%s already exists; a backup never replaces a file", dest);
	if (errno != ENOENT && errno != ENOTDIR)
		return bs_errorf(err, BS_EINVAL, "cannot use the backup path %s: %s", dest,
		                 strerror(errno));
	return BS_OK;
}

/* Creates the empty temporary file (exclusively, with the backup mode). */
static int create_tmp(const char *dest, const char *tmp, bs_error *err)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	              BS_BACKUP_FILE_MODE);

	if (fd < 0) {
		int e = errno;
		if (e == EEXIST)
			return bs_errorf(err, BS_ECONFLICT,
			                 "%s exists: a backup to %s is being written, or an"
			                 " interrupted one left it behind (remove it)",
			                 tmp, dest);
		if (e == ENOENT || e == ENOTDIR)
			return bs_errorf(
			        err, BS_EINVAL,
			        "cannot create the backup %s: its directory does not exist", dest);
		if (e == EACCES || e == EPERM || e == EROFS || e == ENAMETOOLONG || e == ELOOP)
			return bs_errorf(err, BS_EINVAL, "cannot create the backup %s: %s", dest,
			                 strerror(e));
		return bs_errorf(err, BS_ESTORAGE, "cannot create the backup %s: %s", dest,
		                 strerror(e));
	}
	/* The umask may have taken bits away; the mode is part of the contract. */
	int rc = fchmod(fd, BS_BACKUP_FILE_MODE) == 0
	                 ? BS_OK
	                 : bs_errorf(err, BS_ESTORAGE, "cannot set the mode of %s: %s", tmp,
	                             strerror(errno));
	if (close(fd) != 0 && rc == BS_OK)
		rc = bs_errorf(err, BS_ESTORAGE, "cannot close %s: %s", tmp, strerror(errno));
	return rc;
}

/* ---- the copy ---- */

static int sql_error(sqlite3 *db, bs_error *err, const char *what, const char *path)
{
	return bs_errorf(err, BS_ESTORAGE, "%s %s: %s", what, path,
	                 db ? sqlite3_errmsg(db) : "out of memory");
}

static int exec(sqlite3 *db, const char *sql, const char *what, const char *path, bs_error *err)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK
	               ? BS_OK
	               : sql_error(db, err, what, path);
}

/* Opens the source read-only and starts the read transaction the whole
 * copy is made in. */
static int open_source(const char *path, sqlite3 **db, bs_error *err)
{
	int rc = sqlite3_open_v2(
	        path, db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE, NULL);

	if (rc != SQLITE_OK)
		return sql_error(*db, err, "cannot open the database", path);
	if (sqlite3_busy_timeout(*db, BACKUP_BUSY_TIMEOUT_MS) != SQLITE_OK)
		return sql_error(*db, err, "cannot configure the connection to", path);
	if ((rc = exec(*db, "BEGIN", "cannot start reading", path, err)))
		return rc;
	/* A deferred BEGIN takes its snapshot at the first read. */
	return exec(*db, "SELECT count(*) FROM sqlite_master", "cannot read", path, err);
}

static int copy_pages(sqlite3 *src, sqlite3 *dst, const char *src_path, const char *tmp,
                      bs_error *err)
{
	sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
	int step = SQLITE_OK, busy = 0;

	if (!b)
		return sql_error(dst, err, "cannot start the backup into", tmp);
	while (step == SQLITE_OK || step == SQLITE_BUSY || step == SQLITE_LOCKED) {
		step = sqlite3_backup_step(b, BS_BACKUP_STEP_PAGES);
		if (step != SQLITE_BUSY && step != SQLITE_LOCKED) {
			busy = 0;
			continue;
		}
		if (++busy > BACKUP_BUSY_RETRIES)
			break;
		(void)sqlite3_sleep(BACKUP_BUSY_SLEEP_MS);
	}
	int finish = sqlite3_backup_finish(b);
	if (step != SQLITE_DONE)
		return bs_errorf(err, BS_ESTORAGE, "copying %s to %s failed: %s", src_path, tmp,
		                 sqlite3_errstr(step));
	if (finish != SQLITE_OK)
		return sql_error(dst, err, "cannot finish the backup into", tmp);
	return BS_OK;
}

/* Copies src_path into the (existing, empty) file tmp. */
static int copy_database(const char *src_path, const char *tmp, bs_error *err)
{
	sqlite3 *src = NULL, *dst = NULL;
	int rc = open_source(src_path, &src, err);

	if (rc == BS_OK &&
	    sqlite3_open_v2(tmp, &dst,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
	                    NULL) != SQLITE_OK)
		rc = sql_error(dst, err, "cannot open the backup", tmp);
	if (rc == BS_OK)
		rc = copy_pages(src, dst, src_path, tmp, err);
	/* The copy says WAL like its source; as a backup it is one file. */
	if (rc == BS_OK)
		rc = exec(dst, "PRAGMA journal_mode = DELETE",
		          "cannot switch to rollback-journal mode:", tmp, err);
	if (src)
		(void)sqlite3_exec(src, "COMMIT", NULL, NULL, NULL);
	if (dst && sqlite3_close(dst) != SQLITE_OK) {
		if (rc == BS_OK)
			rc = sql_error(dst, err, "cannot close the backup", tmp);
		(void)sqlite3_close_v2(dst);
	}
	if (src && sqlite3_close(src) != SQLITE_OK)
		(void)sqlite3_close_v2(src);
	return rc;
}

/* ---- making it durable ---- */

static int fsync_path(const char *path, bool directory, bs_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
	int rc = BS_OK;

	if (fd < 0)
		return bs_errorf(err, BS_ESTORAGE, "cannot open %s to sync it: %s", path,
		                 strerror(errno));
	/* Some filesystems cannot sync a directory (EINVAL): nothing to do there. */
	if (fsync(fd) != 0 && !(directory && errno == EINVAL))
		rc = bs_errorf(err, BS_ESTORAGE, "cannot sync %s: %s", path, strerror(errno));
	if (close(fd) != 0 && rc == BS_OK)
		rc = bs_errorf(err, BS_ESTORAGE, "cannot close %s: %s", path, strerror(errno));
	return rc;
}

static int fsync_parent(const char *path, bs_error *err)
{
	char dir[BACKUP_PATH_SIZE];

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return bs_errorf(err, BS_EINVAL, "the backup path is too long");
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0'; /* the root directory */
	else if (slash)
		*slash = '\0';
	return fsync_path(dir, true, err);
}

/* Renames tmp to dest unless dest exists (atomically). */
static int publish(const char *tmp, const char *dest, bs_error *err)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_NOREPLACE) == 0)
		return BS_OK;
	/* A filesystem without RENAME_NOREPLACE: link() also never replaces. */
	if ((errno == EINVAL || errno == ENOSYS) && link(tmp, dest) == 0) {
		if (unlink(tmp) != 0)
			return bs_errorf(err, BS_ESTORAGE, "cannot remove %s: %s", tmp,
			                 strerror(errno));
		return BS_OK;
	}
	if (errno == EEXIST)
		return bs_errorf(err, BS_ECONFLICT,
		                 "%s was created while the backup was being written; a backup"
		                 " never replaces a file",
		                 dest);
	return bs_errorf(err, BS_ESTORAGE, "cannot rename %s to %s: %s", tmp, dest,
	                 strerror(errno));
}

int bs_backup_file(const char *src_path, const char *dest_path, bs_backup_report *out,
                   bs_error *err)
{
	char tmp[BACKUP_PATH_SIZE];
	struct stat st;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!src_path || !*src_path)
		return bs_errorf(err, BS_EINVAL, "the database path is required");
	if ((rc = check_dest(dest_path, tmp, sizeof(tmp), err)) ||
	    (rc = create_tmp(dest_path, tmp, err)))
		return rc;
	if ((rc = copy_database(src_path, tmp, err)) || (rc = fsync_path(tmp, false, err)) ||
	    (rc = publish(tmp, dest_path, err))) {
		remove_copy(tmp);
		return rc;
	}
	/* The file is in place; a failing directory sync still means it may
	 * not survive a power loss, which the caller must learn. */
	if ((rc = fsync_parent(dest_path, err)))
		return rc;
	if (stat(dest_path, &st) != 0)
		return bs_errorf(err, BS_ESTORAGE, "cannot stat the backup %s: %s", dest_path,
		                 strerror(errno));
	out->bytes = (uint64_t)st.st_size;
	bs_error verr = {0};
	if ((rc = bs_verify_file(dest_path, &out->verify, &verr)) == BS_ESTORAGE) {
		/* A copy that cannot even be read back is no backup. */
		(void)unlink(dest_path);
		return bs_errorf(err, rc, "the backup %s was removed: it cannot be read back: %s",
		                 dest_path, verr.message);
	}
	if (rc != BS_OK) {
		/* Too large to verify here, or out of memory: the copy stands. */
		(void)snprintf(out->verify.summary, sizeof(out->verify.summary), "NOT VERIFIED: %s",
		               verr.message);
		return BS_OK;
	}
	out->commit_index = out->verify.last_event_seq;
	out->materialized_seq = out->verify.materialized_seq;
	return BS_OK;
}
