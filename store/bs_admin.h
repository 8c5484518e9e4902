/* bs_admin.h - ledger verification and online backup of a budgetd database.
 *
 * Both work on a database FILE with connections of their own, opened
 * read-only on the source: they never touch a bs_store handle, take no
 * writer lock and can run on any thread while budgetd serves from the same
 * file (WAL readers do not block the writer, and the writer does not block
 * them). Each call reads one snapshot: everything it reports is as of one
 * commit.
 *
 * Conventions as in bs_store.h: functions return BS_OK or a negative bs_err
 * code, with the message in `err` (when not NULL). Reports are fixed-size
 * structs owned by the caller. A report is filled (zeroed first) whenever
 * the function returns BS_OK; mismatches are not errors: they are in the
 * report, and report->ok tells whether there were any.
 */
#ifndef BS_ADMIN_H
#define BS_ADMIN_H

#include "bs_store.h"

#define BS_VERIFY_MISMATCHES_MAX   20       /* descriptions a report keeps */
#define BS_VERIFY_MISMATCH_LEN_MAX 512      /* bytes of one description, with NUL */
#define BS_VERIFY_SUMMARY_LEN_MAX  1024     /* bytes of the summary, with NUL */
#define BS_VERIFY_GRANTS_MAX       50000000 /* usage records the fold keeps */
#define BS_VERIFY_HOLDS_MAX        50000000 /* holds the fold keeps */
#define BS_ADMIN_PATH_LEN_MAX      4000     /* bytes of a path given to this API */
#define BS_BACKUP_FILE_MODE        0640     /* a new backup file's permissions */
#define BS_BACKUP_TMP_SUFFIX       ".tmp"   /* the copy is written there first */
#define BS_BACKUP_STEP_PAGES       1024     /* pages copied per backup step */

/* What bs_verify_file found. */
typedef struct bs_verify_report {
	bool ok;                     /* no mismatch at all */
	uint64_t events;             /* rows in the mutation log */
	uint64_t last_event_seq;     /* the highest event_seq (0: empty log) */
	uint64_t materialized_seq;   /* the derived tables' claim (store_meta) */
	uint64_t usage_records;      /* usage records the whole log folds to */
	uint64_t holds;              /* holds the whole log folds to */
	uint64_t open_holds;         /* of those, still open */
	uint64_t derived_usage_rows; /* rows in the usage table */
	uint64_t derived_holds;      /* rows in the holds table */
	uint64_t mismatch_count;     /* every mismatch found (may exceed the kept) */
	size_t n_mismatches;         /* descriptions kept: the first ones found */
	char mismatches[BS_VERIFY_MISMATCHES_MAX][BS_VERIFY_MISMATCH_LEN_MAX];
	char summary[BS_VERIFY_SUMMARY_LEN_MAX]; /* for a person: the counts, the verdict */
} bs_verify_report;

/* Replays the mutation log of the database at `path` from zero and checks
 * it against itself and against the derived tables:
 * - the log: event_seq runs 1..max without a gap; every event is
 *   well-formed (known kind, `allowed` only on authorize and increment, a
 *   denial reason exactly on denials, no usage_seq on a denial, usage_seq =
 *   event_seq otherwise, no field that does not belong to its kind, client
 *   event ids unique and not of the generated form, expiries recorded by
 *   budgetd itself: no stored event_id, caller "budgetd", no authority);
 * - the fold: each recorded decision is the one the limits give, every
 *   applied event's *_after values equal the fold's, a denial's equal the
 *   current fold, every hold moves only along its lifecycle (RULES.md, with
 *   the hold and usage checks a settlement or an extend must pass), every
 *   deadline (expires_at) is the one its authorize or extend sets, and every
 *   expiry comes at or after its hold's deadline, applies the hold's
 *   policy and takes exactly what that policy takes;
 * - the derived tables equal the fold of the events up to materialized_seq:
 *   every usage row and hold field by field, no row missing or extra, and
 *   event_index / events_by_capability list exactly those events.
 * Schema versions 3 (no deadlines) and later are read. The file is opened
 * read-only (it must exist); nothing is written. Memory grows with the
 * number of usage records and holds; more than BS_VERIFY_GRANTS_MAX /
 * BS_VERIFY_HOLDS_MAX is refused (BS_EPRECONDITION).
 * Errors: BS_EINVAL (bad path), BS_ESTORAGE (cannot open or read, not a
 * budgetd database), BS_EPRECONDITION (too large), BS_EINTERNAL (memory). */
int bs_verify_file(const char *path, bs_verify_report *out, bs_error *err);

/* What bs_backup_file made. */
typedef struct bs_backup_report {
	uint64_t bytes;            /* size of the backup file */
	uint64_t commit_index;     /* its last event_seq */
	uint64_t materialized_seq; /* its derived tables' claim */
	bs_verify_report verify;   /* bs_verify_file of the backup; verify.ok */
} bs_backup_report;

/* Copies the database at `src_path` to `dest_path` as one consistent
 * snapshot, with SQLite's online backup API from a read-only connection
 * (one read transaction: the copy is exactly the source as of one commit,
 * and a writer on the source is never blocked). The copy is written to
 * dest_path + BS_BACKUP_TMP_SUFFIX (created exclusively, mode
 * BS_BACKUP_FILE_MODE), switched to rollback-journal mode so that it is one
 * self-contained file (budgetd switches it back to WAL when it opens it),
 * fsync'd, renamed to dest_path without replacing anything and the
 * directory fsync'd. Then the copy is verified (bs_verify_file). A backup
 * whose verification finds mismatches is kept (the copy is faithful: the
 * source has them too) and reported with verify.ok = false; so is one that
 * could not be verified here (too large, out of memory: verify.summary
 * says why, verify.mismatch_count is 0).
 * Errors: BS_EINVAL (dest_path not absolute, too long, its directory
 * missing or not writable), BS_ECONFLICT (dest_path, or its temporary file,
 * exists), BS_ESTORAGE (cannot read the source, I/O failure writing the
 * copy, or the copy cannot be read back; nothing is left behind). */
int bs_backup_file(const char *src_path, const char *dest_path, bs_backup_report *out,
                   bs_error *err);

#endif
