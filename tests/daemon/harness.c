/* harness.c - see harness.h. */
#include <errno.h>
#include <fcntl.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define ARGS_MAX 48

extern char **environ;

const char *td_budgetd_path(void)
{
	const char *p = getenv("BUDGETD");
	return p ? p : "budgetd";
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void print_log(const td_daemon *d)
{
	char buf[4096];
	FILE *f = fopen(d->log, "r");
	size_t n;

	fprintf(stderr, "---- %s ----\n", d->log);
	if (!f)
		return;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stderr);
	fclose(f);
	fprintf(stderr, "---- end of log ----\n");
}

static int open_notify_socket(td_daemon *d)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify.sock", d->dir);
	unlink(sa.sun_path);
	d->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (d->notify_fd < 0 || bind(d->notify_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("notify socket");
		return -1;
	}
	return 0;
}

bool td_wait_notify(td_daemon *d, const char *what, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	char msg[1024];

	for (;;) {
		int left = (int)(deadline - now_ms());
		struct pollfd p = {.fd = d->notify_fd, .events = POLLIN};
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return false;
		ssize_t n = recv(d->notify_fd, msg, sizeof(msg) - 1, 0);
		if (n <= 0)
			continue;
		msg[n] = '\0';
		char *status = strstr(msg, "STATUS=");
		if (status) {
			snprintf(d->status, sizeof(d->status), "%s", status + 7);
			d->status[strcspn(d->status, "\n")] = '\0';
		}
		if (strstr(msg, what))
			return true;
	}
}

/* STATUS=listening on unix:..., 127.0.0.1:PORT */
static int learn_tcp_addr(td_daemon *d)
{
	const char *p = strstr(d->status, "127.0.0.1:");

	if (!p)
		return -1;
	snprintf(d->tcp_addr, sizeof(d->tcp_addr), "%.*s", (int)strcspn(p, ", "), p);
	return 0;
}

static int spawn(td_daemon *d, const char *const *extra)
{
	const char *argv[ARGS_MAX];
	char notify_env[300], *envp[512];
	int n = 0, e = 0;
	posix_spawn_file_actions_t fa;

	argv[n++] = td_budgetd_path();
	argv[n++] = "--db";
	argv[n++] = d->db;
	argv[n++] = "--listen";
	argv[n++] = d->unix_addr;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--log-level";
	argv[n++] = "debug";
	for (int i = 0; extra && extra[i] && n < ARGS_MAX - 1; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	snprintf(notify_env, sizeof(notify_env), "NOTIFY_SOCKET=%s/notify.sock", d->dir);
	for (char **v = environ; *v && e < 510; v++)
		if (strncmp(*v, "NOTIFY_SOCKET=", 14) && strncmp(*v, "STATE_DIRECTORY=", 16))
			envp[e++] = *v;
	envp[e++] = notify_env;
	for (int i = 0; d->env && d->env[i] && e < 510; i++)
		envp[e++] = (char *)d->env[i];
	envp[e] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, d->log, O_WRONLY | O_CREAT | O_APPEND,
	                                 0644);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	int rc = posix_spawn(&d->pid, argv[0], &fa, NULL, (char *const *)argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		fprintf(stderr, "cannot spawn %s: %s\n", argv[0], strerror(rc));
		d->pid = 0;
		return -1;
	}
	return 0;
}

int td_start(td_daemon *d, const char *const *extra)
{
	if (!d->dir[0]) {
		snprintf(d->dir, sizeof(d->dir), "/tmp/budgetd-test-XXXXXX");
		if (!mkdtemp(d->dir))
			return -1;
		snprintf(d->db, sizeof(d->db), "%s/budgetd.db", d->dir);
		snprintf(d->log, sizeof(d->log), "%s/budgetd.log", d->dir);
		snprintf(d->unix_addr, sizeof(d->unix_addr), "unix:%s/budgetd.sock", d->dir);
		d->notify_fd = -1;
	}
	if (d->notify_fd < 0 && open_notify_socket(d))
		return -1;
	if (spawn(d, extra))
		return -1;
	if (!td_wait_notify(d, "READY=1", TD_READY_TIMEOUT_MS) || learn_tcp_addr(d)) {
		fprintf(stderr, "budgetd did not become ready (status: %s)\n", d->status);
		print_log(d);
		td_kill(d);
		return -1;
	}
	return 0;
}

/* Waits (bounded) for the child to exit: its pidfd becomes readable. Its
 * notifications are drained meanwhile: sd_notify blocks on a full socket. */
static int wait_exit(td_daemon *d, int timeout_ms)
{
	int pfd = (int)syscall(SYS_pidfd_open, d->pid, 0);
	int64_t deadline = now_ms() + timeout_ms;
	char msg[1024];
	int status;

	if (pfd < 0)
		return -2;
	for (;;) {
		struct pollfd p[2] = {{.fd = pfd, .events = POLLIN},
		                      {.fd = d->notify_fd, .events = POLLIN}};
		int left = (int)(deadline - now_ms());
		if (left <= 0 || poll(p, d->notify_fd >= 0 ? 2 : 1, left) <= 0)
			break;
		if (p[1].revents & POLLIN)
			(void)!recv(d->notify_fd, msg, sizeof(msg), MSG_DONTWAIT);
		if (p[0].revents & POLLIN) {
			close(pfd);
			if (waitpid(d->pid, &status, 0) != d->pid)
				return -2;
			d->pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		}
	}
	close(pfd);
	return -2;
}

int td_stop(td_daemon *d)
{
	if (!d->pid)
		return -1;
	kill(d->pid, SIGTERM);
	int rc = wait_exit(d, TD_STOP_TIMEOUT_MS);
	if (rc == -2) {
		fprintf(stderr, "budgetd did not stop in time\n");
		print_log(d);
		td_kill(d);
		return -1;
	}
	if (rc != 0)
		print_log(d);
	return rc;
}

void td_kill(td_daemon *d)
{
	int status;

	if (!d->pid)
		return;
	kill(d->pid, SIGKILL);
	(void)waitpid(d->pid, &status, 0);
	d->pid = 0;
}

void td_cleanup(td_daemon *d)
{
	char cmd[400];

	td_kill(d);
	if (d->notify_fd >= 0)
		close(d->notify_fd);
	d->notify_fd = -1;
	if (d->dir[0] && strncmp(d->dir, "/tmp/budgetd-test-", 18) == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", d->dir);
	}
	d->dir[0] = '\0';
}

int td_run_once(const char *const *args, char *err, size_t err_len, int timeout_ms)
{
	char path[] = "/tmp/budgetd-run-XXXXXX";
	const char *argv[ARGS_MAX];
	int n = 0, fd = mkstemp(path);
	posix_spawn_file_actions_t fa;
	td_daemon d = {.notify_fd = -1};

	if (fd < 0)
		return -1;
	argv[n++] = td_budgetd_path();
	for (int i = 0; args[i] && n < ARGS_MAX - 1; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fd, STDERR_FILENO);
	posix_spawn_file_actions_adddup2(&fa, fd, STDOUT_FILENO);
	int rc = posix_spawn(&d.pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc == 0)
		rc = wait_exit(&d, timeout_ms);
	else
		rc = -1;
	if (d.pid)
		td_kill(&d);
	ssize_t got = pread(fd, err, err_len - 1, 0);
	err[got > 0 ? got : 0] = '\0';
	close(fd);
	unlink(path);
	return rc;
}

int td_raw_call(const char *target, const char *method, const void *req, size_t len,
                grpc_status_code *code, char *details, size_t details_len, int timeout_ms)
{
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	grpc_channel *ch = grpc_channel_create(target, creds, NULL);
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
	                                     gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
	grpc_slice path = grpc_slice_from_copied_string(method);
	grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, path,
	                                           NULL, deadline, NULL);
	grpc_slice body = grpc_slice_from_copied_buffer(req, len);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&body, 1);
	grpc_byte_buffer *resp = NULL;
	grpc_metadata_array md, trailing;
	grpc_slice status_details;
	grpc_op ops[6];
	int rc = -1;

	grpc_metadata_array_init(&md);
	grpc_metadata_array_init(&trailing);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &resp;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
	ops[5].data.recv_status_on_client.status = code;
	ops[5].data.recv_status_on_client.status_details = &status_details;
	if (grpc_call_start_batch(call, ops, 6, (void *)1, NULL) == GRPC_CALL_OK) {
		grpc_event ev = grpc_completion_queue_pluck(
		        cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_OP_COMPLETE) {
			char *s = grpc_slice_to_c_string(status_details);
			snprintf(details, details_len, "%s", s);
			gpr_free(s);
			grpc_slice_unref(status_details);
			rc = 0;
		}
	}
	if (resp)
		grpc_byte_buffer_destroy(resp);
	grpc_byte_buffer_destroy(bb);
	grpc_slice_unref(body);
	grpc_slice_unref(path);
	grpc_metadata_array_destroy(&md);
	grpc_metadata_array_destroy(&trailing);
	grpc_call_unref(call);
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
	               .type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
	grpc_channel_destroy(ch);
	grpc_channel_credentials_release(creds);
	return rc;
}
