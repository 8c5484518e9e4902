/* bd_main.c - budgetd: start, run, and stop gracefully.
 *
 * Threads: the libuv loop (this one: every RPC state machine), the gRPC
 * completion-queue thread (hands tags to the loop) and the writer thread
 * (the only user of the store). Settings come from bd_config.
 */
#include <errno.h>
#include <grpc/grpc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "bd_admin.h"
#include "bd_app.h"
#include "bd_auth.h"
#include "bd_clock.h"
#include "bd_config.h"
#include "bd_health.h"
#include "bd_log.h"
#include "bd_notify.h"
#include "bd_reflection.h"
#include "bd_tls.h"
#include "bd_watch.h"
#include "bs_faultvfs.h"
#include "budgetd_descriptor_set.h"

#define MESSAGE_RECEIVE_BYTES_MAX  (64 * 1024)       /* requests are small */
#define MESSAGE_SEND_BYTES_MAX     (8 * 1024 * 1024) /* a page of 1000 events */
#define STREAMS_PER_CONNECTION_MAX 256
#define CALLS_IN_PROGRESS_MAX      4096
#define STATUS_INTERVAL_MS         5000 /* STATUS= lines for systemctl status */

static const char *const served_services[] = {
        "budgetd.v1.BudgetAuthority",
        "budgetd.v1.BudgetAdmin",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
};

typedef struct daemon_state {
	uv_loop_t *loop;
	bs_store *store;
	bd_app app;
	bd_server *server;
	bd_health *health;
	bd_reflection *reflection;
	bd_watch *watch;
	bd_auth *auth;
	bd_tls *tls;    /* NULL: plaintext TCP */
	bd_clock clock; /* the store's, and so the deadlines' */
	uv_signal_t sigterm, sigint, sighup;
	uv_timer_t ticker; /* watchdog pings and status lines */
	uint64_t watchdog_usec;
	uint64_t last_batches; /* the writer's progress at the last tick */
	char last_status[256]; /* the last STATUS= sent */
	bd_options opts;
	bool stopping;
	char listening[BD_LISTENERS_MAX * (BD_ADDR_LEN_MAX + 2)]; /* for READY */
} daemon_state;

/* ---- watchdog and status ---- */

/* The loop is alive if this runs; the writer is alive if it committed since
 * the last tick or has nothing to do. Only then is systemd told so. */
static void on_tick(uv_timer_t *timer)
{
	daemon_state *d = timer->data;
	bd_writer_stats st;

	bd_writer_stats_get(d->app.writer, &st);
	bool writer_alive = st.batches != d->last_batches || st.queue_depth == 0;
	d->last_batches = st.batches;
	if (d->watchdog_usec && writer_alive)
		(void)bd_notify("WATCHDOG=1");
	else if (d->watchdog_usec)
		bd_log_warn("watchdog: the writer made no progress with %u requests waiting",
		            st.queue_depth);
	/* Only changes: a notification is a blocking send to systemd. */
	char status[256];
	(void)snprintf(status, sizeof(status),
	               "STATUS=%s; commit index %llu; %u queued; %llu batches, %llu mutations;"
	               " %llu open holds, %llu expired",
	               d->stopping ? "stopping" : "serving", (unsigned long long)st.commit_index,
	               st.queue_depth, (unsigned long long)st.batches,
	               (unsigned long long)st.mutations, (unsigned long long)st.open_holds,
	               (unsigned long long)st.holds_expired);
	/* A dropped status is sent again at the next tick. */
	if (strcmp(status, d->last_status) != 0 && bd_notify(status) == 0)
		memcpy(d->last_status, status, sizeof(status));
}

static void start_ticker(daemon_state *d)
{
	uint64_t usec = 0, every_ms = STATUS_INTERVAL_MS;

	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		d->watchdog_usec = usec;
		/* Twice per interval, as sd_watchdog_enabled(3) recommends. */
		if (usec / 2000 < every_ms)
			every_ms = usec / 2000 ? usec / 2000 : 1;
		bd_log_info("systemd watchdog every %llu ms", (unsigned long long)(usec / 1000));
	}
	uv_timer_init(d->loop, &d->ticker);
	d->ticker.data = d;
	uv_timer_start(&d->ticker, on_tick, every_ms, every_ms);
}

/* ---- shutdown ---- */

static void on_closed(uv_handle_t *handle)
{
	(void)handle;
}

/* The writer expires holds on its own, so it may still observe: it lets
 * go of the metrics before they are freed. */
static void stop_metrics(daemon_state *d)
{
	if (d->app.writer)
		bd_writer_set_expiry_observer(d->app.writer, NULL, NULL);
	bd_metrics_destroy(d->app.metrics);
	d->app.metrics = NULL;
}

static void on_server_stopped(void *ctx)
{
	daemon_state *d = ctx;
	bs_error err;
	uint64_t index = 0;

	/* The metrics thread reads the writer's figures: it goes first. */
	stop_metrics(d);
	/* Every call has ended, so every job came back: the queue is empty. */
	bd_writer_destroy(d->app.writer);
	d->app.writer = NULL;
	(void)bs_store_commit_index(d->store, &index, &err);
	bs_store_close(d->store);
	d->store = NULL;
	bd_log_info("store closed at commit index %llu", (unsigned long long)index);
	bd_server_destroy(d->server);
	d->server = NULL;
	uv_close((uv_handle_t *)&d->ticker, on_closed);
	uv_close((uv_handle_t *)&d->sigterm, on_closed);
	uv_close((uv_handle_t *)&d->sigint, on_closed);
	uv_close((uv_handle_t *)&d->sighup, on_closed);
	/* Closing the libuv handles has just reset the default action (libuv
	 * does so when a signal's last handle stops): ignore them from here, so
	 * a second SIGTERM during the last steps (grpc_shutdown) cannot turn a
	 * clean stop into a kill. */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
}

static void begin_shutdown(daemon_state *d, const char *why)
{
	if (d->stopping) {
		bd_log_info("%s: already stopping", why);
		return;
	}
	d->stopping = true;
	(void)bd_notify("STOPPING=1\nSTATUS=stopping");
	bd_log_info("%s: stopping; calls in progress get %llu ms", why,
	            (unsigned long long)d->opts.grace_ms);
	bd_health_set_serving(d->health, false);
	bd_health_close_watchers(d->health);
	bd_watch_close_all(d->watch);
	bd_server_shutdown(d->server, d->opts.grace_ms, on_server_stopped, d);
}

/* New certificates apply to new connections; a bad set keeps the old one.
 * systemd (and the tests) hear RELOADING=1, then READY=1 with the outcome. */
static void reload(daemon_state *d)
{
	char err[512] = "", status[600];
	int rc = bd_log_reopen();

	(void)bd_notify("RELOADING=1");
	if (rc)
		bd_log_error("SIGHUP: cannot re-open the log file: %s", strerror(-rc));
	if (d->tls && bd_tls_reload(d->tls, err, sizeof(err)))
		bd_log_error("SIGHUP: TLS certificates not reloaded, the old ones stay: %s", err);
	else if (d->tls)
		bd_log_info("SIGHUP: TLS certificates reloaded");
	(void)snprintf(status, sizeof(status), "READY=1\nSTATUS=reloaded: %s%s",
	               !d->tls  ? "log"
	               : err[0] ? "kept the old certificates: "
	                        : "certificates",
	               err);
	(void)bd_notify(status);
}

static void on_signal(uv_signal_t *handle, int signum)
{
	daemon_state *d = handle->data;

	if (signum == SIGHUP) {
		reload(d);
		return;
	}
	begin_shutdown(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- start ---- */

/* ---- metrics ---- */

static void observe_call(void *ctx, const char *method, grpc_status_code code, uint64_t ns)
{
	bd_metrics_observe_call(ctx, method, (int)code, ns);
}

static void observe_batch(void *ctx, size_t mutations, uint64_t commit_ns)
{
	bd_metrics_observe_batch(ctx, mutations, commit_ns);
}

static void observe_expired(void *ctx, uint32_t expired)
{
	bd_metrics_observe_expired(ctx, expired);
}

/* On the metrics thread: the writer's published figures (thread-safe). */
static void read_gauges(void *ctx, bd_metrics_gauges *out)
{
	daemon_state *d = ctx;
	bd_writer_stats st;

	bd_writer_stats_get(d->app.writer, &st);
	out->queue_depth = st.queue_depth;
	out->open_holds = st.open_holds;
	out->db_bytes = st.db_bytes;
	out->commit_index = st.commit_index;
}

static int start_metrics(daemon_state *d)
{
	char err[256];

	if (!d->opts.metrics_listen[0])
		return 0;
	if (bd_metrics_create(&d->app.metrics)) {
		bd_log_error("cannot set up metrics (out of memory)");
		return -1;
	}
	if (bd_metrics_listen(d->app.metrics, d->opts.metrics_listen, read_gauges, d, err,
	                      sizeof(err))) {
		bd_log_error("%s", err);
		return -1;
	}
	bd_server_set_observer(d->server, observe_call, d->app.metrics);
	bd_writer_set_observer(d->app.writer, observe_batch, d->app.metrics);
	bd_writer_set_expiry_observer(d->app.writer, observe_expired, d->app.metrics);
	bd_log_info("metrics on http://%s/metrics (port %d)", d->opts.metrics_listen,
	            bd_metrics_port(d->app.metrics));
	return 0;
}

/* The daemon's one clock (the store's: deadlines), and its test hook. */
static int start_clock(daemon_state *d)
{
	if (bd_clock_init(&d->clock)) {
		bd_log_error("%s is too long", BD_CLOCK_FILE_ENV);
		return -1;
	}
	if (bd_clock_is_offset(&d->clock))
		bd_log_warn("the clock is moved by the offset in %s: for tests only",
		            d->clock.offset_file);
	return 0;
}

static int open_store(daemon_state *d)
{
	bs_options so = {.sync = d->opts.sync, .clock = bd_clock_now, .clock_ctx = &d->clock};
	const char *faults = getenv("BUDGETD_TEST_FAULT_FILE");

	if (faults && *faults) { /* the storage fault tests' switch */
		if (bs_faultvfs_register(faults) != 0) {
			bd_log_error("cannot register the fault-injection VFS");
			return -1;
		}
		so.vfs = BS_FAULT_VFS_NAME;
		bd_log_warn("storage fault injection is on, driven by %s: for tests only", faults);
	}
	bs_error err;
	uint64_t index = 0;

	if (bs_store_open(d->opts.db, &so, &d->store, &err) != BS_OK) {
		bd_log_error("cannot open the store: %s", err.message);
		return -1;
	}
	(void)bs_store_commit_index(d->store, &index, &err);
	bd_log_info("store %s open (sync=%s) at commit index %llu", d->opts.db,
	            d->opts.sync == BS_SYNC_FULL ? "full" : "normal", (unsigned long long)index);
	if (d->opts.hold_ttl_s)
		bd_log_info("holds without ttl_seconds expire after %u s (on_expiry %s)",
		            (unsigned)d->opts.hold_ttl_s, bs_expiry_name(d->opts.on_expiry));
	return 0;
}

static int build_server(daemon_state *d)
{
	const bd_server_limits limits = {
	        .max_receive_bytes = MESSAGE_RECEIVE_BYTES_MAX,
	        .max_send_bytes = MESSAGE_SEND_BYTES_MAX,
	        .max_concurrent_streams = STREAMS_PER_CONNECTION_MAX,
	        .calls_max = CALLS_IN_PROGRESS_MAX,
	};
	const size_t n_services = sizeof(served_services) / sizeof(served_services[0]);

	if (bd_server_create(d->loop, &limits, &d->app, &d->server) ||
	    bd_health_create(served_services, 2, &d->health) ||
	    bd_watch_create(&d->app, d->opts.watch_lag_max, &d->watch) ||
	    bd_reflection_create(bd_descriptor_set, bd_descriptor_set_len, served_services,
	                         n_services, &d->reflection)) {
		bd_log_error("cannot set up the gRPC server (out of memory?)");
		return -1;
	}
	if (bd_budget_register(d->server) || bd_admin_register(d->server, d->loop, d->opts.db) ||
	    bd_health_register(d->health, d->server) || bd_watch_register(d->watch, d->server) ||
	    bd_reflection_register(d->reflection, d->server)) {
		bd_log_error("cannot register the gRPC services");
		return -1;
	}
	return 0;
}

/* Who is calling, and may they? (loop thread) */
static grpc_status_code check_access(void *ctx, grpc_call *call, int access, char *identity,
                                     size_t identity_len, const void **principal, char *why,
                                     size_t why_len)
{
	daemon_state *d = ctx;

	bd_auth_identity(call, identity, identity_len);
	return bd_auth_check(d->auth, identity, (bd_access)access, (const bd_principal **)principal,
	                     why, why_len);
}

static bool is_loopback_listen(const char *addr)
{
	char host[BD_ADDR_LEN_MAX];
	const char *colon = strrchr(addr, ':');

	if (strncmp(addr, "ipv4:", 5) == 0 || strncmp(addr, "ipv6:", 5) == 0)
		addr += 5;
	if (!colon || colon < addr)
		return false;
	(void)snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	return strncmp(host, "127.", 4) == 0 || strcmp(host, "localhost") == 0 ||
	       strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0;
}

/* TLS credentials for a TCP listener, NULL for plaintext; -1 when refused. */
static int credentials_for(daemon_state *d, const char *addr, grpc_server_credentials **out)
{
	*out = NULL;
	if (strncmp(addr, "unix:", 5) == 0)
		return 0; /* local: file permissions guard it */
	if (d->tls) {
		*out = bd_tls_credentials(d->tls);
		if (!*out)
			bd_log_error("cannot create TLS credentials for %s", addr);
		return *out ? 0 : -1;
	}
	if (!is_loopback_listen(addr) && !d->opts.insecure) {
		bd_log_error("refusing plaintext gRPC on %s, which is not loopback: give"
		             " --tls-cert and --tls-key, or --insecure to accept the risk",
		             addr);
		return -1;
	}
	return 0;
}

static int add_listeners(daemon_state *d)
{
	size_t used = 0;

	d->listening[0] = '\0';
	for (size_t i = 0; i < d->opts.n_listen; i++) {
		const char *addr = d->opts.listen[i];
		const char *colon = strrchr(addr, ':');
		grpc_server_credentials *creds;
		if (credentials_for(d, addr, &creds))
			return -1;
		int port = bd_server_listen(d->server, addr, creds);
		if (creds)
			grpc_server_credentials_release(creds);
		if (port < 0) {
			bd_log_error("cannot listen on %s: the address is in use, not local, or"
			             " not permitted",
			             addr);
			return -1;
		}
		/* An ephemeral port (":0") is shown as the one the kernel chose. */
		int n = port == 0 ? snprintf(d->listening + used, sizeof(d->listening) - used,
		                             "%s%s", i ? ", " : "", addr)
		                  : snprintf(d->listening + used, sizeof(d->listening) - used,
		                             "%s%.*s:%d%s", i ? ", " : "", (int)(colon - addr),
		                             addr, port, creds ? " (tls)" : "");
		if (n < 0 || (size_t)n >= sizeof(d->listening) - used)
			break; /* only the status line is cut short */
		used += (size_t)n;
	}
	bd_server_set_access(d->server, check_access, d);
	return 0;
}

static int start_signals(daemon_state *d)
{
	uv_signal_t *handles[] = {&d->sigterm, &d->sigint, &d->sighup};
	const int signums[] = {SIGTERM, SIGINT, SIGHUP};

	for (int i = 0; i < 3; i++) {
		if (uv_signal_init(d->loop, handles[i]) ||
		    uv_signal_start(handles[i], on_signal, signums[i]))
			return -1;
		handles[i]->data = d;
	}
	return 0;
}

/* Only once signals are handled and the server runs: a SIGTERM right after
 * READY must find the graceful path. systemd (Type=notify) and the tests
 * learn the bound addresses here. */
static void announce_ready(daemon_state *d)
{
	bd_log_info("budgetd ready: listening on %s", d->listening);
	char metrics[64] = "";
	if (d->app.metrics)
		(void)snprintf(metrics, sizeof(metrics), "; metrics on port %d",
		               bd_metrics_port(d->app.metrics));
	char ready[sizeof(d->listening) + 128];
	(void)snprintf(ready, sizeof(ready), "READY=1\nSTATUS=listening on %s%s", d->listening,
	               metrics);
	int rc = bd_notify(ready);
	if (rc < 0)
		bd_log_warn("the READY notification was not sent: %s", strerror(-rc));
}

/* Frees what a failed start left behind. */
static void abandon(daemon_state *d)
{
	stop_metrics(d);
	if (d->app.writer)
		bd_writer_destroy(d->app.writer);
	if (d->server) {
		bd_server_shutdown(d->server, 0, NULL, NULL);
		bd_server_destroy(d->server);
	}
	bs_store_close(d->store);
	uv_run(d->loop, UV_RUN_NOWAIT);
}

static int run(daemon_state *d)
{
	d->loop = uv_default_loop();
	d->app.authority_id = d->opts.authority_id;
	if (start_clock(d))
		return 1;
	d->app.started_at_ns = bd_clock_now(&d->clock);
	d->app.auth = d->auth;
	d->app.hold_defaults = (bd_hold_defaults){d->opts.hold_ttl_s, d->opts.on_expiry};
	if (open_store(d))
		return 1;
	grpc_init();
	int rc = 1;
	if (bd_writer_create(d->loop, d->store, d->opts.queue_depth, &d->app.writer) != 0) {
		bd_log_error("cannot start the writer thread");
	} else if (build_server(d) == 0 && add_listeners(d) == 0 && start_metrics(d) == 0 &&
	           start_signals(d) == 0 && bd_server_start(d->server) == 0) {
		bd_health_set_serving(d->health, true);
		start_ticker(d);
		announce_ready(d);
		uv_run(d->loop, UV_RUN_DEFAULT);
		rc = 0;
	}
	if (rc)
		abandon(d);
	bd_reflection_destroy(d->reflection);
	bd_health_destroy(d->health);
	bd_watch_destroy(d->watch);
	if (uv_loop_close(d->loop) != 0)
		bd_log_warn("the event loop still had open handles at exit");
	grpc_shutdown();
	if (rc == 0)
		bd_log_info("budgetd stopped");
	return rc;
}

/* The permission file and the TLS files: bad ones stop the start. */
static int load_security(daemon_state *d)
{
	char err[1024];
	const bd_options *o = &d->opts;

	if (bd_auth_load(o->permissions, &d->auth, err, sizeof(err))) {
		bd_log_error("%s", err);
		return -1;
	}
	if (o->tls_cert[0] &&
	    bd_tls_create(o->tls_cert, o->tls_key, o->tls_client_ca, &d->tls, err, sizeof(err))) {
		bd_log_error("TLS: %s", err);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static daemon_state d;
	int rc = bd_options_load(argc, argv, &d.opts);

	if (rc)
		return rc < 0 ? 0 : rc;
	if (d.opts.check_config) {
		bd_options_print(&d.opts, stdout);
		return 0;
	}
	if (d.opts.verify) /* the database against its mutation log, then exit */
		return bd_admin_verify_main(d.opts.db);
	bd_log_set_level(d.opts.log_level);
	if (d.opts.log_file[0] && (rc = bd_log_open(d.opts.log_file))) {
		fprintf(stderr, "budgetd: cannot open the log file %s: %s\n", d.opts.log_file,
		        strerror(-rc));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if ((rc = bd_notify_open()))
		bd_log_warn("NOTIFY_SOCKET is unusable, systemd will not hear from budgetd: %s",
		            strerror(-rc));
	bd_log_info("budgetd %s starting (pid %d)%s%s", BD_VERSION, (int)getpid(),
	            d.opts.config[0] ? ", config " : "", d.opts.config);
	if (load_security(&d))
		return 2;
	rc = run(&d);
	bd_notify_close();
	bd_tls_destroy(d.tls);
	bd_auth_destroy(d.auth);
	return rc;
}
