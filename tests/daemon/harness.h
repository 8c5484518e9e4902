/* harness.h - start and stop a real budgetd for integration tests.
 *
 * The daemon runs as a child process on a temporary directory: its
 * database, a unix socket and an ephemeral TCP port on 127.0.0.1. Readiness
 * is learnt the way systemd learns it: the daemon sends READY=1 (with the
 * bound addresses in STATUS=) to a NOTIFY_SOCKET the harness listens on.
 */
#ifndef TD_HARNESS_H
#define TD_HARNESS_H

#include <grpc/grpc.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define TD_READY_TIMEOUT_MS 30000
#define TD_STOP_TIMEOUT_MS  60000

typedef struct td_daemon {
	pid_t pid;
	char dir[64];           /* temp dir, kept across restarts */
	char db[320];           /* dir/budgetd.db */
	char log[320];          /* dir/budgetd.log: the daemon's stderr */
	char unix_addr[320];    /* unix:dir/budgetd.sock */
	char tcp_addr[64];      /* 127.0.0.1:PORT, learnt from READY */
	int notify_fd;          /* datagram socket the daemon notifies */
	char status[512];       /* the last STATUS= it sent */
	const char *const *env; /* extra environment for the daemon, or NULL */
} td_daemon;

/* Creates the temp dir (first start only) and starts budgetd with its
 * database and listeners there, plus `extra` arguments (NULL-terminated,
 * may be NULL). Waits for READY=1. 0 or -1 (the log is printed). */
int td_start(td_daemon *d, const char *const *extra);

/* SIGTERM, then waits for the exit. Returns the exit status, or -1 when it
 * did not exit normally (signal, timeout). */
int td_stop(td_daemon *d);

/* SIGKILL and reap: a crash. */
void td_kill(td_daemon *d);

/* Stops a running daemon (if any) and removes the temp dir. */
void td_cleanup(td_daemon *d);

/* Waits for a notification containing `what` (e.g. "STOPPING=1"). */
bool td_wait_notify(td_daemon *d, const char *what, int timeout_ms);

/* Runs budgetd with `argv` (NULL-terminated, argv[0] excluded) to its end,
 * capturing stderr into `err`. Returns the exit status or -1. */
int td_run_once(const char *const *argv, char *err, size_t err_len, int timeout_ms);

/* A unary call with raw bytes, for inputs a typed client cannot send.
 * Returns 0 when the call completed (whatever its status). */
int td_raw_call(const char *target, const char *method, const void *req, size_t len,
                grpc_status_code *code, char *details, size_t details_len, int timeout_ms);

const char *td_budgetd_path(void);

#endif
