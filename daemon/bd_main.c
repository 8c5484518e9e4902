/* bd_main.c - budgetd: command line, start, run, and graceful stop.
 *
 * Threads: the libuv loop (this one: every RPC state machine), the gRPC
 * completion-queue thread (hands tags to the loop) and the writer thread
 * (the only user of the store).
 */
#include <errno.h>
#include <getopt.h>
#include <grpc/grpc.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "bd_app.h"
#include "bd_health.h"
#include "bd_log.h"
#include "bd_reflection.h"
#include "budgetd_descriptor_set.h"

#define LISTENERS_MAX              8
#define PATH_MAX_BYTES             4096
#define DEFAULT_LISTEN             "127.0.0.1:50051"
#define DEFAULT_GRACE_MS           10000
#define GRACE_MS_MAX               3600000
#define MESSAGE_RECEIVE_BYTES_MAX  (64 * 1024)       /* requests are small */
#define MESSAGE_SEND_BYTES_MAX     (8 * 1024 * 1024) /* a page of 1000 events */
#define STREAMS_PER_CONNECTION_MAX 256
#define CALLS_IN_PROGRESS_MAX      4096

#define EXIT_USAGE 2

typedef struct options {
	const char *listen[LISTENERS_MAX];
	size_t n_listen;
	char db[PATH_MAX_BYTES];
	bs_sync sync;
	char authority_id[BS_ID_LEN_MAX + 1];
	bd_log_level log_level;
	const char *log_file;
	uint64_t grace_ms;
	unsigned queue_depth;
} options;

static const char *const served_services[] = {
        "budgetd.v1.BudgetAuthority",
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
	uv_signal_t sigterm, sigint, sighup;
	options opts;
	bool stopping;
	char listening[LISTENERS_MAX * 80]; /* the bound addresses, for READY */
} daemon_state;

/* ---- command line ---- */

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: budgetd [options]\n"
	        "\n"
	        "A budget authority for AI-agent kernels, served over gRPC.\n"
	        "\n"
	        "  --listen ADDR         listen on ADDR: host:port or unix:/path (repeatable,\n"
	        "                        up to %d; default " DEFAULT_LISTEN ")\n"
	        "  --db PATH             the SQLite database (default "
	        "$STATE_DIRECTORY/budgetd.db,\n"
	        "                        or ./var/budgetd.db)\n"
	        "  --sync full|normal    full (default): every commit is fsync'd and survives\n"
	        "                        power loss; normal: survives a budgetd crash but may "
	        "lose\n"
	        "                        the last commits on power loss or an OS crash\n"
	        "  --authority-id ID     this authority's name in GetServerInfo (default\n"
	        "                        budgetd@<hostname>)\n"
	        "  --log-level LEVEL     error, warn, info (default) or debug\n"
	        "  --log-file PATH       log there instead of stderr (re-opened on SIGHUP)\n"
	        "  --shutdown-grace S    seconds calls in progress get at shutdown (default %d)\n"
	        "  --queue-depth N       requests that may wait for the writer; more are answered\n"
	        "                        RESOURCE_EXHAUSTED at once (1 to %d, default %d)\n"
	        "  --version             print the version and exit\n"
	        "  --help                print this help and exit\n"
	        "\n"
	        "Signals: SIGTERM/SIGINT stop gracefully; SIGHUP re-opens the log file.\n"
	        "Exit status: 0 after a clean stop, 1 when the start fails, 2 on bad usage.\n",
	        LISTENERS_MAX, DEFAULT_GRACE_MS / 1000, BD_QUEUE_JOBS_MAX, BD_QUEUE_JOBS_DEFAULT);
}

/* One line on stderr; returns the usage exit status. */
__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "budgetd: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see budgetd --help)\n");
	return EXIT_USAGE;
}

static int copy_arg(char *dst, size_t size, const char *src, const char *what)
{
	size_t len = strlen(src);

	if (len == 0 || len >= size)
		return usage_error("%s must be 1 to %zu bytes", what, size - 1);
	memcpy(dst, src, len + 1);
	return 0;
}

static void default_db(options *o)
{
	const char *state = getenv("STATE_DIRECTORY");
	size_t n = state ? strcspn(state, ":") : 0; /* the first of several */

	if (n > 0 && n + sizeof("/budgetd.db") <= sizeof(o->db))
		(void)snprintf(o->db, sizeof(o->db), "%.*s/budgetd.db", (int)n, state);
	else
		(void)snprintf(o->db, sizeof(o->db), "./var/budgetd.db");
}

static void default_authority(options *o)
{
	char host[HOST_NAME_MAX + 1] = "localhost";

	(void)gethostname(host, sizeof(host));
	host[sizeof(host) - 1] = '\0';
	(void)snprintf(o->authority_id, sizeof(o->authority_id), "budgetd@%.200s", host);
}

/* A decimal number in [min, max], nothing else. 0 or -1. */
static int parse_number(const char *arg, unsigned long long min, unsigned long long max,
                        unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(arg, &end, 10);

	if (errno || end == arg || *end || arg[0] < '0' || arg[0] > '9' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* 0 to run, -1 to exit 0 (help/version), or an exit status > 0. */
static int parse_options(int argc, char **argv, options *o)
{
	enum {
		OPT_LISTEN = 256,
		OPT_DB,
		OPT_SYNC,
		OPT_AUTHORITY,
		OPT_LEVEL,
		OPT_LOGFILE,
		OPT_GRACE,
		OPT_QUEUE,
		OPT_VERSION,
		OPT_HELP
	};
	static const struct option longopts[] = {
	        {"listen", required_argument, NULL, OPT_LISTEN},
	        {"db", required_argument, NULL, OPT_DB},
	        {"sync", required_argument, NULL, OPT_SYNC},
	        {"authority-id", required_argument, NULL, OPT_AUTHORITY},
	        {"log-level", required_argument, NULL, OPT_LEVEL},
	        {"log-file", required_argument, NULL, OPT_LOGFILE},
	        {"shutdown-grace", required_argument, NULL, OPT_GRACE},
	        {"queue-depth", required_argument, NULL, OPT_QUEUE},
	        {"version", no_argument, NULL, OPT_VERSION},
	        {"help", no_argument, NULL, OPT_HELP},
	        {NULL, 0, NULL, 0},
	};
	unsigned long long v;
	int c;

	memset(o, 0, sizeof(*o));
	o->queue_depth = BD_QUEUE_JOBS_DEFAULT;
	o->sync = BS_SYNC_FULL;
	o->log_level = BD_LOG_INFO;
	o->grace_ms = DEFAULT_GRACE_MS;
	default_db(o);
	default_authority(o);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_LISTEN:
			if (o->n_listen == LISTENERS_MAX)
				return usage_error("at most %d --listen addresses", LISTENERS_MAX);
			o->listen[o->n_listen++] = optarg;
			break;
		case OPT_DB:
			if (copy_arg(o->db, sizeof(o->db), optarg, "--db"))
				return EXIT_USAGE;
			break;
		case OPT_SYNC:
			if (strcmp(optarg, "full") && strcmp(optarg, "normal"))
				return usage_error("--sync must be full or normal, not `%s`",
				                   optarg);
			o->sync = strcmp(optarg, "full") ? BS_SYNC_NORMAL : BS_SYNC_FULL;
			break;
		case OPT_AUTHORITY:
			if (copy_arg(o->authority_id, sizeof(o->authority_id), optarg,
			             "--authority-id"))
				return EXIT_USAGE;
			break;
		case OPT_LEVEL:
			if (bd_log_parse_level(optarg, &o->log_level))
				return usage_error("--log-level must be error, warn, info or debug,"
				                   " not `%s`",
				                   optarg);
			break;
		case OPT_LOGFILE:
			o->log_file = optarg;
			break;
		case OPT_GRACE:
			if (parse_number(optarg, 0, GRACE_MS_MAX / 1000, &v))
				return usage_error(
				        "--shutdown-grace must be 0 to %d seconds, not `%s`",
				        GRACE_MS_MAX / 1000, optarg);
			o->grace_ms = v * 1000;
			break;
		case OPT_QUEUE:
			if (parse_number(optarg, 1, BD_QUEUE_JOBS_MAX, &v))
				return usage_error("--queue-depth must be 1 to %d, not `%s`",
				                   BD_QUEUE_JOBS_MAX, optarg);
			o->queue_depth = (unsigned)v;
			break;
		case OPT_VERSION:
			printf("budgetd " BD_VERSION "\n");
			return -1;
		case OPT_HELP:
			usage(stdout);
			return -1;
		default:
			return usage_error("unknown or incomplete option `%s`", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument `%s`", argv[optind]);
	if (o->n_listen == 0)
		o->listen[o->n_listen++] = DEFAULT_LISTEN;
	return 0;
}

/* ---- shutdown ---- */

static void on_closed(uv_handle_t *handle)
{
	(void)handle;
}

static void on_server_stopped(void *ctx)
{
	daemon_state *d = ctx;
	bs_error err;
	uint64_t index = 0;

	/* Every call has ended, so every job came back: the queue is empty. */
	bd_writer_destroy(d->app.writer);
	d->app.writer = NULL;
	(void)bs_store_commit_index(d->store, &index, &err);
	bs_store_close(d->store);
	d->store = NULL;
	bd_log_info("store closed at commit index %llu", (unsigned long long)index);
	bd_server_destroy(d->server);
	d->server = NULL;
	uv_close((uv_handle_t *)&d->sigterm, on_closed);
	uv_close((uv_handle_t *)&d->sigint, on_closed);
	uv_close((uv_handle_t *)&d->sighup, on_closed);
}

static void begin_shutdown(daemon_state *d, const char *why)
{
	if (d->stopping) {
		bd_log_info("%s: already stopping", why);
		return;
	}
	d->stopping = true;
	(void)sd_notify(0, "STOPPING=1\nSTATUS=stopping");
	bd_log_info("%s: stopping; calls in progress get %llu ms", why,
	            (unsigned long long)d->opts.grace_ms);
	bd_health_set_serving(d->health, false);
	bd_health_close_watchers(d->health);
	bd_server_shutdown(d->server, d->opts.grace_ms, on_server_stopped, d);
}

static void on_signal(uv_signal_t *handle, int signum)
{
	daemon_state *d = handle->data;

	if (signum == SIGHUP) {
		int rc = bd_log_reopen();
		if (rc)
			bd_log_error("SIGHUP: cannot re-open the log file: %s", strerror(-rc));
		else
			bd_log_info("SIGHUP: log re-opened");
		return;
	}
	begin_shutdown(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- start ---- */

static int open_store(daemon_state *d)
{
	bs_options so = {.sync = d->opts.sync};
	bs_error err;
	uint64_t index = 0;

	if (bs_store_open(d->opts.db, &so, &d->store, &err) != BS_OK) {
		bd_log_error("cannot open the store: %s", err.message);
		return -1;
	}
	(void)bs_store_commit_index(d->store, &index, &err);
	bd_log_info("store %s open (sync=%s) at commit index %llu", d->opts.db,
	            d->opts.sync == BS_SYNC_FULL ? "full" : "normal", (unsigned long long)index);
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
	    bd_health_create(served_services, 1, &d->health) ||
	    bd_reflection_create(bd_descriptor_set, bd_descriptor_set_len, served_services,
	                         n_services, &d->reflection)) {
		bd_log_error("cannot set up the gRPC server (out of memory?)");
		return -1;
	}
	if (bd_budget_register(d->server) || bd_health_register(d->health, d->server) ||
	    bd_reflection_register(d->reflection, d->server)) {
		bd_log_error("cannot register the gRPC services");
		return -1;
	}
	return 0;
}

static int add_listeners(daemon_state *d)
{
	char bound[LISTENERS_MAX][PATH_MAX_BYTES + 16];
	char line[LISTENERS_MAX * 80];
	size_t used = 0;

	for (size_t i = 0; i < d->opts.n_listen; i++) {
		const char *addr = d->opts.listen[i];
		int port = bd_server_listen(d->server, addr);
		if (port < 0) {
			bd_log_error("cannot listen on %s: the address is in use, not local, or"
			             " not permitted",
			             addr);
			return -1;
		}
		if (port == 0)
			(void)snprintf(bound[i], sizeof(bound[i]), "%s", addr);
		else
			(void)snprintf(bound[i], sizeof(bound[i]), "%.*s:%d",
			               (int)(strrchr(addr, ':') - addr), addr, port);
		used += (size_t)snprintf(line + used, sizeof(line) - used, "%s%s", i ? ", " : "",
		                         bound[i]);
		if (used >= sizeof(line))
			used = sizeof(line) - 1;
	}
	(void)snprintf(d->listening, sizeof(d->listening), "%s", line);
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
	int rc = sd_notifyf(0, "READY=1\nSTATUS=listening on %s", d->listening);
	if (rc < 0)
		bd_log_warn("sd_notify READY failed: %s", strerror(-rc));
}

static int64_t unix_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Frees what a failed start left behind. */
static void abandon(daemon_state *d)
{
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
	d->app.started_at_ns = unix_now_ns();
	if (open_store(d))
		return 1;
	grpc_init();
	int rc = 1;
	if (bd_writer_create(d->loop, d->store, d->opts.queue_depth, &d->app.writer) != 0) {
		bd_log_error("cannot start the writer thread");
	} else if (build_server(d) == 0 && add_listeners(d) == 0 && start_signals(d) == 0 &&
	           bd_server_start(d->server) == 0) {
		bd_health_set_serving(d->health, true);
		announce_ready(d);
		uv_run(d->loop, UV_RUN_DEFAULT);
		rc = 0;
	}
	if (rc)
		abandon(d);
	bd_reflection_destroy(d->reflection);
	bd_health_destroy(d->health);
	if (uv_loop_close(d->loop) != 0)
		bd_log_warn("the event loop still had open handles at exit");
	grpc_shutdown();
	if (rc == 0)
		bd_log_info("budgetd stopped");
	return rc;
}

int main(int argc, char **argv)
{
	static daemon_state d;
	int rc = parse_options(argc, argv, &d.opts);

	if (rc)
		return rc < 0 ? 0 : rc;
	bd_log_set_level(d.opts.log_level);
	if (d.opts.log_file && (rc = bd_log_open(d.opts.log_file))) {
		fprintf(stderr, "budgetd: cannot open --log-file %s: %s\n", d.opts.log_file,
		        strerror(-rc));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	bd_log_info("budgetd %s starting (pid %d)", BD_VERSION, (int)getpid());
	return run(&d);
}
