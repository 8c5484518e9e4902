/* test_faults.c - storage faults under the real budgetd: a failed fsync, a
 * failed write, a full disk (injected through store/bs_faultvfs.c, switched
 * by a control file), a real full filesystem (a small tmpfs, when this test
 * may mount one), and a corrupt or truncated database at start.
 *
 * Under every fault the affected batch answers UNAVAILABLE and nothing of it
 * is visible, reads keep working, the daemon stays up, and once the fault
 * clears the same event_id applies fresh. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"

static char control[96];
static char env_var[128];

static void setup_faults(void)
{
	static const char *env[2];

	memset(&daemon_, 0, sizeof(daemon_));
	client = NULL;
	/* The control file sits next to the harness's temp dir. */
	snprintf(control, sizeof(control), "/tmp/budgetd-faults-%d", (int)getpid());
	unlink(control);
	snprintf(env_var, sizeof(env_var), "BUDGETD_TEST_FAULT_FILE=%s", control);
	env[0] = env_var;
	env[1] = NULL;
	daemon_.env = env;
	fx_start(NULL, NULL);
}

static void teardown_faults(void)
{
	unlink(control);
	fx_teardown();
}

TestSuite(faults, .init = setup_faults, .fini = teardown_faults, .timeout = 180);

static void arm(const char *fault)
{
	int fd = open(control, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, fault, strlen(fault)), (ssize_t)strlen(fault));
	close(fd);
}

static void disarm(void)
{
	cr_assert(unlink(control) == 0 || errno == ENOENT);
}

static void expect_usage(const char *cap, bool found, uint32_t count, uint64_t exposed)
{
	bc_usage_result u;
	bc_error err;

	cr_assert_eq(bc_get_usage(client, cap, 0, 0, &u, &err), 0, "reads must keep working: %s",
	             err.message);
	cr_assert_eq(u.found, found);
	if (found) {
		cr_assert_eq(u.usage.invocation_count, count);
		cr_assert_eq(u.usage.total_cost_exposed, exposed);
	}
	bc_usage_result_free(&u);
}

static void fault_then_recover(const char *fault, const char *message_part)
{
	bc_authorize_hold_result ok = fx_authorize("f", 0, 10, "before", NULL, false, 0);
	bc_authorize_hold_result_free(&ok);

	arm(fault);
	bc_authorize_hold_request req = {.capability_id = "f",
	                                 .requested_exposure_units = 7,
	                                 .hold_id = "during",
	                                 .event_id = "during-1"};
	bc_authorize_hold_result r;
	bc_error err;
	int rc = bc_authorize_hold(client, &req, 0, &r, &err);
	fx_expect_error(rc, &err, GRPC_STATUS_UNAVAILABLE, "nothing of this batch was applied");
	cr_assert(strstr(err.message, message_part), "%s", err.message);
	expect_usage("f", true, 1, 10); /* nothing of the failed batch */
	bc_hold h;
	fx_expect_error(bc_get_hold(client, "during", 0, &h, &err), &err, GRPC_STATUS_NOT_FOUND,
	                "not found");
	bc_serving_status st;
	cr_assert_eq(bc_health_check(client, "", 0, &st, &err), 0, "%s", err.message);
	cr_assert_eq(st, BC_SERVING_STATUS_SERVING);

	disarm();
	cr_assert_eq(bc_authorize_hold(client, &req, 0, &r, &err), 0, "after the fault: %s",
	             err.message);
	cr_assert_not(r.metadata.replayed, "the failed attempt left a trace");
	bc_authorize_hold_result_free(&r);
	expect_usage("f", true, 2, 17);
}

Test(faults, a_failed_fsync_applies_nothing_and_the_retry_applies_fresh)
{
	fault_then_recover("sync", "I/O error");
}

Test(faults, a_failed_write_applies_nothing_and_the_retry_applies_fresh)
{
	fault_then_recover("write", "I/O error");
}

Test(faults, a_full_disk_applies_nothing_and_the_retry_applies_fresh)
{
	fault_then_recover("full", "full");
}

Test(faults, after_faults_the_ledger_verifies)
{
	char out[4096];

	fault_then_recover("sync", "I/O error");
	fx_stop();
	const char *argv[] = {"--verify", "--db", daemon_.db, NULL};
	cr_assert_eq(td_run_once(argv, out, sizeof(out), 60000), 0, "%s", out);
}

/* ---- a database that cannot be opened ---- */

static void copy(const char *from, const char *to, off_t keep)
{
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
	cr_assert_eq(system(cmd), 0);
	if (keep >= 0)
		cr_assert_eq(truncate(to, keep), 0);
}

static void expect_refused_untouched(const char *db, const char *part)
{
	char out[4096], before[700], cmd[800];
	const char *argv[] = {"--db", db, "--listen", "127.0.0.1:0", NULL};

	snprintf(before, sizeof(before), "%s.orig", db);
	copy(db, before, -1);
	cr_assert_eq(td_run_once(argv, out, sizeof(out), 30000), 1, "%s", out);
	cr_assert(strstr(out, part), "output lacks `%s`: %s", part, out);
	snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", db, before);
	cr_assert_eq(system(cmd), 0, "budgetd changed %s", db);
}

Test(faults, a_truncated_or_corrupt_database_fails_to_start_and_is_left_alone)
{
	char truncated[400], garbage[400];

	for (int i = 0; i < 50; i++) {
		bc_authorize_hold_result a = fx_authorize("c", 0, 1, NULL, NULL, false, 0);
		bc_authorize_hold_result_free(&a);
	}
	fx_stop(); /* a clean stop checkpoints everything into the file */
	snprintf(truncated, sizeof(truncated), "%s/truncated.db", daemon_.dir);
	copy(daemon_.db, truncated, 5000);
	expect_refused_untouched(truncated, "corrupt");

	snprintf(garbage, sizeof(garbage), "%s/garbage.db", daemon_.dir);
	int fd = open(garbage, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "this is not a database, it is a shopping list\n", 47), 47);
	close(fd);
	expect_refused_untouched(garbage, "not a budgetd database");
}

/* ---- a real full filesystem ---- */

Test(faults, a_real_full_filesystem_answers_unavailable_and_recovers)
{
	char mnt[128], filler[200], cmd[300];
	bc_error err;

	fx_stop();
	snprintf(mnt, sizeof(mnt), "%s/small", daemon_.dir);
	cr_assert_eq(mkdir(mnt, 0700), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=3m") != 0)
		cr_skip_test("cannot mount a small tmpfs here (%s): not root or no mount rights",
		             strerror(errno));
	snprintf(daemon_.db, sizeof(daemon_.db), "%s/budgetd.db", mnt);
	daemon_.env = NULL;
	fx_start(NULL, NULL);
	/* Fill what is left but a little, then write until the disk is full. */
	snprintf(filler, sizeof(filler), "%s/filler", mnt);
	snprintf(cmd, sizeof(cmd), "dd if=/dev/zero of='%s' bs=64k 2>/dev/null", filler);
	(void)!system(cmd); /* stops at ENOSPC, by design */
	int refused = 0;
	for (int i = 0; i < 2000 && !refused; i++) {
		char hold[256];
		snprintf(hold, sizeof(hold), "hold-%d-%0200d", i, i);
		bc_authorize_hold_request req = {
		        .capability_id = "full", .requested_exposure_units = 1, .hold_id = hold};
		bc_authorize_hold_result r;
		if (bc_authorize_hold(client, &req, 0, &r, &err) == 0) {
			bc_authorize_hold_result_free(&r);
			continue;
		}
		cr_assert_eq(err.code, GRPC_STATUS_UNAVAILABLE, "%s", err.message);
		refused = i + 1;
	}
	cr_assert_gt(refused, 0, "the filesystem never filled up");
	bc_usage_result u;
	cr_assert_eq(bc_get_usage(client, "full", 0, 0, &u, &err), 0, "reads: %s", err.message);
	cr_assert_eq(u.usage.invocation_count, (uint32_t)(refused - 1));
	bc_usage_result_free(&u);
	cr_assert_eq(unlink(filler), 0);
	bc_authorize_hold_result a = fx_authorize("full", 0, 1, "after", NULL, false, 0);
	cr_assert_eq(a.invocation_count_after, (uint32_t)refused);
	bc_authorize_hold_result_free(&a);
	fx_stop();
	cr_assert_eq(umount(mnt), 0, "%s", strerror(errno));
}
