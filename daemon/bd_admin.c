/* bd_admin.c - the budgetd.v1.BudgetAdmin service and budgetd --verify.
 *
 * A call goes through three threads: the loop decodes it and queues a
 * checkpoint job on the writer (the derived tables become current); back
 * on the loop, the file work is queued on libuv's thread pool; back on the
 * loop again, the reply is sent. Neither the loop nor the writer ever
 * waits for a file: the pool thread has read-only connections of its own,
 * and SQLite's WAL lets the writer commit while they read.
 *
 * The call's arena holds everything the call needs, so nothing is freed
 * here: the arena goes when the reply has been sent (bd_grpc.c), and no
 * reply is sent before the pool work has come back.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bd_admin.h"
#include "bd_app.h"
#include "bd_auth.h"
#include "bd_log.h"
#include "bd_status.h"
#include "bs_admin.h"
#include "budgetd/v1/budget_admin.pb-c.h"

#define SERVICE           "/budgetd.v1.BudgetAdmin/"
#define ARMED_ADMIN_CALLS 1 /* admin calls are rare */

typedef enum admin_kind {
	ADMIN_BACKUP = 0,
	ADMIN_VERIFY = 1,
	ADMIN_KINDS,
} admin_kind;

static const char *const kind_names[ADMIN_KINDS] = {"backup", "verification"};

/* The process's admin service; loop thread only, except db_path, which is
 * written once at registration and only read after. */
static struct {
	uv_loop_t *loop;
	char db_path[BS_ADMIN_PATH_LEN_MAX + 1];
	bool running[ADMIN_KINDS]; /* one of each at a time */
} admin;

/* One admin call in flight, in the call's arena. */
typedef struct admin_call {
	bd_job job;     /* the checkpoint, on the writer */
	uv_work_t work; /* the file work, on the pool */
	bd_unary *call;
	admin_kind kind;
	const char *dest; /* Backup: the request's path (owned by the call) */
	/* written by the writer thread, read on the loop after `done` */
	int checkpoint_rc;
	bs_error checkpoint_err;
	/* written by the pool thread, read on the loop after the work */
	int rc;
	bs_error err;
	bs_backup_report report; /* Verify uses report.verify only */
} admin_call;

/* ---- replies ---- */

static void reply_backup(admin_call *ac)
{
	Budgetd__V1__BackupResponse resp = BUDGETD__V1__BACKUP_RESPONSE__INIT;
	const bs_verify_report *v = &ac->report.verify;
	char *mismatches[BS_VERIFY_MISMATCHES_MAX];

	for (size_t i = 0; i < v->n_mismatches; i++)
		mismatches[i] = (char *)v->mismatches[i];
	resp.path = (char *)ac->dest;
	resp.bytes = ac->report.bytes;
	resp.commit_index = ac->report.commit_index;
	resp.verified = v->ok;
	resp.summary = (char *)v->summary;
	resp.materialized_seq = ac->report.materialized_seq;
	resp.n_mismatches = v->n_mismatches;
	resp.mismatches = mismatches;
	resp.mismatch_count = v->mismatch_count;
	if (v->ok)
		bd_log_info("backup to %s: %" PRIu64 " bytes at commit index %" PRIu64 ", verified",
		            ac->dest, ac->report.bytes, ac->report.commit_index);
	else
		bd_log_warn("backup to %s: %" PRIu64 " bytes at commit index %" PRIu64
		            ", NOT verified: %s",
		            ac->dest, ac->report.bytes, ac->report.commit_index, v->summary);
	bd_unary_reply(ac->call, &resp.base);
}

static void reply_verify(admin_call *ac)
{
	Budgetd__V1__VerifyResponse resp = BUDGETD__V1__VERIFY_RESPONSE__INIT;
	const bs_verify_report *v = &ac->report.verify;
	char *mismatches[BS_VERIFY_MISMATCHES_MAX];

	for (size_t i = 0; i < v->n_mismatches; i++)
		mismatches[i] = (char *)v->mismatches[i];
	resp.ok = v->ok;
	resp.summary = (char *)v->summary;
	resp.n_mismatches = v->n_mismatches;
	resp.mismatches = mismatches;
	resp.mismatch_count = v->mismatch_count;
	resp.events = v->events;
	resp.commit_index = v->last_event_seq;
	resp.materialized_seq = v->materialized_seq;
	resp.usage_records = v->usage_records;
	resp.holds = v->holds;
	resp.open_holds = v->open_holds;
	if (v->ok)
		bd_log_info("verify: %s", v->summary);
	else
		bd_log_warn("verify: %s; first mismatch: %s", v->summary,
		            v->n_mismatches ? v->mismatches[0] : "-");
	bd_unary_reply(ac->call, &resp.base);
}

/* ---- the pool ---- */

/* Pool thread: the file work. */
static void admin_work(uv_work_t *work)
{
	admin_call *ac = bd_container_of(work, admin_call, work);

	if (ac->kind == ADMIN_BACKUP)
		ac->rc = bs_backup_file(admin.db_path, ac->dest, &ac->report, &ac->err);
	else
		ac->rc = bs_verify_file(admin.db_path, &ac->report.verify, &ac->err);
}

/* Loop thread: the work is done (or was cancelled before it started). */
static void admin_after(uv_work_t *work, int status)
{
	admin_call *ac = bd_container_of(work, admin_call, work);

	admin.running[ac->kind] = false;
	if (status != 0) {
		bd_unary_fail(ac->call, GRPC_STATUS_UNAVAILABLE, "the %s was cancelled: %s",
		              kind_names[ac->kind], uv_strerror(status));
		return;
	}
	if (ac->rc != BS_OK) {
		bd_log_warn("%s failed: %s", kind_names[ac->kind], ac->err.message);
		bd_unary_fail(ac->call, bd_status_from_store(ac->rc), "%s", ac->err.message);
		return;
	}
	if (ac->kind == ADMIN_BACKUP)
		reply_backup(ac);
	else
		reply_verify(ac);
}

/* ---- the writer ---- */

/* Writer thread: make the derived tables current, so the snapshot the
 * pool reads is materialized (unless mutations arrive in between). */
static void checkpoint_read(bd_job *job, bs_store *store)
{
	admin_call *ac = bd_container_of(job, admin_call, job);

	ac->checkpoint_rc = bs_store_checkpoint(store, &ac->checkpoint_err);
}

/* Loop thread. */
static void checkpoint_done(bd_job *job)
{
	admin_call *ac = bd_container_of(job, admin_call, job);
	int rc;

	/* The log is the truth: the work goes on with tables that lag. */
	if (ac->checkpoint_rc != BS_OK)
		bd_log_warn("%s: the derived tables could not be brought up to date first: %s",
		            kind_names[ac->kind], ac->checkpoint_err.message);
	rc = uv_queue_work(admin.loop, &ac->work, admin_work, admin_after);
	if (rc != 0) {
		admin.running[ac->kind] = false;
		bd_unary_fail(ac->call, GRPC_STATUS_INTERNAL, "cannot start the %s: %s",
		              kind_names[ac->kind], uv_strerror(rc));
	}
}

static bool submit(bd_unary *call, bd_job *job)
{
	bd_app *app = bd_unary_app(call);
	int rc = bd_writer_submit(app->writer, job);

	if (rc == -EAGAIN)
		bd_unary_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
		              "the write queue is full (%u requests waiting); retry later",
		              bd_writer_queue_max(app->writer));
	else if (rc == -ESHUTDOWN)
		bd_unary_fail(call, GRPC_STATUS_UNAVAILABLE, "budgetd is shutting down");
	else if (rc)
		bd_unary_fail(call, GRPC_STATUS_INTERNAL, "cannot queue the request: %s",
		              strerror(-rc));
	return rc == 0;
}

/* ---- handlers ---- */

static void start(bd_unary *call, admin_kind kind, const char *dest)
{
	admin_call *ac;

	if (admin.running[kind]) {
		bd_unary_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "a %s is already running",
		              kind_names[kind]);
		return;
	}
	ac = bd_arena_alloc(bd_unary_arena(call), sizeof(*ac));
	if (!ac) {
		bd_unary_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	ac->call = call;
	ac->kind = kind;
	ac->dest = dest;
	ac->job.read = checkpoint_read;
	ac->job.done = checkpoint_done;
	if (submit(call, &ac->job))
		admin.running[kind] = true;
}

static void handle_backup(bd_unary *call)
{
	const Budgetd__V1__BackupRequest *r = bd_unary_request(call);

	start(call, ADMIN_BACKUP, r->path ? r->path : "");
}

static void handle_verify(bd_unary *call)
{
	start(call, ADMIN_VERIFY, NULL);
}

/* ---- registration ---- */

static const bd_unary_method methods[] = {
        {SERVICE "Backup", &budgetd__v1__backup_request__descriptor, handle_backup,
         ARMED_ADMIN_CALLS, BD_ACCESS_ADMIN},
        {SERVICE "Verify", &budgetd__v1__verify_request__descriptor, handle_verify,
         ARMED_ADMIN_CALLS, BD_ACCESS_ADMIN},
};

int bd_admin_register(bd_server *server, uv_loop_t *loop, const char *db_path)
{
	if (!loop || !db_path || !*db_path)
		return -1;
	if (snprintf(admin.db_path, sizeof(admin.db_path), "%s", db_path) >=
	    (int)sizeof(admin.db_path)) {
		bd_log_error("the database path is longer than %d bytes", BS_ADMIN_PATH_LEN_MAX);
		return -1;
	}
	admin.loop = loop;
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (bd_server_add_unary(server, &methods[i]) != 0)
			return -1;
	return 0;
}

/* ---- budgetd --verify ---- */

int bd_admin_verify_main(const char *db_path)
{
	static bs_verify_report r; /* 12 KiB: not on the stack */
	bs_error err = {0};
	int rc = bs_verify_file(db_path, &r, &err);

	if (rc != BS_OK) {
		fprintf(stderr, "budgetd: cannot verify %s: %s\n", db_path ? db_path : "",
		        err.message);
		return BD_VERIFY_EXIT_ERROR;
	}
	printf("%s: %s\n", db_path, r.summary);
	for (size_t i = 0; i < r.n_mismatches; i++)
		printf("mismatch: %s\n", r.mismatches[i]);
	if (r.mismatch_count > r.n_mismatches)
		printf("(%" PRIu64 " more mismatches not shown)\n",
		       r.mismatch_count - (uint64_t)r.n_mismatches);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "budgetd: cannot write the verification's output\n");
		return BD_VERIFY_EXIT_ERROR;
	}
	return r.ok ? BD_VERIFY_EXIT_CONSISTENT : BD_VERIFY_EXIT_MISMATCH;
}
