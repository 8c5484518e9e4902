/* bd_config.c - see bd_config.h. */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bd_app.h"
#include "bd_config.h"
#include "bd_watch.h"
#include "bd_writer.h"

#define WHY_MAX   256
#define FLAGS_MAX 64 /* settings given on one command line */

typedef int (*setter_fn)(bd_options *o, const char *value, char *why, size_t why_len);

typedef struct setting {
	const char *section; /* in the file */
	const char *key;
	const char *flag; /* --flag */
	setter_fn set;
	bool boolean; /* a flag without a value means "true" */
} setting;

/* ---- the setters: one parser per setting, shared by file and flags ---- */

static int fail(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -1;
}

static int copy_value(char *dst, size_t size, const char *value, bool empty_ok, char *why,
                      size_t len)
{
	size_t n = strlen(value);

	if ((n == 0 && !empty_ok) || n >= size)
		return fail(why, len, "must be %s1 to %zu bytes", empty_ok ? "empty or " : "",
		            size - 1);
	memcpy(dst, value, n + 1);
	return 0;
}

/* A decimal number in [min, max], nothing else. */
static int parse_number(const char *value, unsigned long long min, unsigned long long max,
                        unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(value, &end, 10);

	if (errno || end == value || *end || value[0] < '0' || value[0] > '9' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int set_listen(bd_options *o, const char *value, char *why, size_t len)
{
	if (o->n_listen == BD_LISTENERS_MAX)
		return fail(why, len, "at most %d listen addresses", BD_LISTENERS_MAX);
	if (copy_value(o->listen[o->n_listen], BD_ADDR_LEN_MAX, value, false, why, len))
		return -1;
	o->n_listen++;
	return 0;
}

static int set_authority(bd_options *o, const char *value, char *why, size_t len)
{
	return copy_value(o->authority_id, sizeof(o->authority_id), value, false, why, len);
}

static int set_grace(bd_options *o, const char *value, char *why, size_t len)
{
	unsigned long long s;

	if (parse_number(value, 0, BD_GRACE_S_MAX, &s))
		return fail(why, len, "must be 0 to %d seconds, not `%s`", BD_GRACE_S_MAX, value);
	o->grace_ms = s * 1000;
	return 0;
}

static int set_queue(bd_options *o, const char *value, char *why, size_t len)
{
	unsigned long long n;

	if (parse_number(value, 1, BD_QUEUE_JOBS_MAX, &n))
		return fail(why, len, "must be 1 to %d, not `%s`", BD_QUEUE_JOBS_MAX, value);
	o->queue_depth = (unsigned)n;
	return 0;
}

static int set_watch_lag(bd_options *o, const char *value, char *why, size_t len)
{
	unsigned long long n;

	if (parse_number(value, BD_WATCH_LAG_MIN, BD_WATCH_LAG_MAX, &n))
		return fail(why, len, "must be %d to %d events, not `%s`", BD_WATCH_LAG_MIN,
		            BD_WATCH_LAG_MAX, value);
	o->watch_lag_max = n;
	return 0;
}

static int set_db(bd_options *o, const char *value, char *why, size_t len)
{
	return copy_value(o->db, sizeof(o->db), value, false, why, len);
}

static int set_sync(bd_options *o, const char *value, char *why, size_t len)
{
	if (strcmp(value, "full") == 0)
		o->sync = BS_SYNC_FULL;
	else if (strcmp(value, "normal") == 0)
		o->sync = BS_SYNC_NORMAL;
	else
		return fail(why, len, "must be full or normal, not `%s`", value);
	return 0;
}

static int set_level(bd_options *o, const char *value, char *why, size_t len)
{
	if (bd_log_parse_level(value, &o->log_level))
		return fail(why, len, "must be error, warn, info or debug, not `%s`", value);
	return 0;
}

static int set_log_file(bd_options *o, const char *value, char *why, size_t len)
{
	return copy_value(o->log_file, sizeof(o->log_file), value, true, why, len);
}

static int set_metrics(bd_options *o, const char *value, char *why, size_t len)
{
	if (*value && !strrchr(value, ':'))
		return fail(why, len, "must be host:port (or empty for off), not `%s`", value);
	return copy_value(o->metrics_listen, sizeof(o->metrics_listen), value, true, why, len);
}

static int set_path(char *dst, size_t size, const char *value, char *why, size_t len)
{
	return copy_value(dst, size, value, true, why, len);
}

static int set_tls_cert(bd_options *o, const char *value, char *why, size_t len)
{
	return set_path(o->tls_cert, sizeof(o->tls_cert), value, why, len);
}

static int set_tls_key(bd_options *o, const char *value, char *why, size_t len)
{
	return set_path(o->tls_key, sizeof(o->tls_key), value, why, len);
}

static int set_tls_client_ca(bd_options *o, const char *value, char *why, size_t len)
{
	return set_path(o->tls_client_ca, sizeof(o->tls_client_ca), value, why, len);
}

static int set_permissions(bd_options *o, const char *value, char *why, size_t len)
{
	return set_path(o->permissions, sizeof(o->permissions), value, why, len);
}

static int set_insecure(bd_options *o, const char *value, char *why, size_t len)
{
	if (strcmp(value, "true") == 0)
		o->insecure = true;
	else if (strcmp(value, "false") == 0)
		o->insecure = false;
	else
		return fail(why, len, "must be true or false, not `%s`", value);
	return 0;
}

static int set_hold_ttl(bd_options *o, const char *value, char *why, size_t len)
{
	unsigned long long s;

	if (parse_number(value, 0, BS_TTL_SECONDS_MAX, &s))
		return fail(why, len, "must be 0 (off) to %d seconds, not `%s`", BS_TTL_SECONDS_MAX,
		            value);
	o->hold_ttl_s = (uint32_t)s;
	return 0;
}

static int set_on_expiry(bd_options *o, const char *value, char *why, size_t len)
{
	static const bs_expiry policies[] = {BS_EXPIRY_CAPTURE, BS_EXPIRY_RELEASE,
	                                     BS_EXPIRY_REVERSE};

	for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
		if (strcmp(value, bs_expiry_name(policies[i])) == 0) {
			o->on_expiry = policies[i];
			return 0;
		}
	}
	return fail(why, len, "must be capture, release or reverse, not `%s`", value);
}

static const setting settings[] = {
        {"server", "listen", "listen", set_listen},
        {"server", "authority_id", "authority-id", set_authority},
        {"server", "shutdown_grace", "shutdown-grace", set_grace},
        {"server", "queue_depth", "queue-depth", set_queue},
        {"server", "watch_lag_max", "watch-lag-max", set_watch_lag},
        {"store", "db", "db", set_db},
        {"store", "sync", "sync", set_sync},
        {"log", "level", "log-level", set_level},
        {"log", "file", "log-file", set_log_file},
        {"metrics", "listen", "metrics-listen", set_metrics},
        {"server", "insecure", "insecure", set_insecure, true},
        {"tls", "cert", "tls-cert", set_tls_cert},
        {"tls", "key", "tls-key", set_tls_key},
        {"tls", "client_ca", "tls-client-ca", set_tls_client_ca},
        {"auth", "permissions", "permissions", set_permissions},
        {"hold", "ttl", "hold-ttl", set_hold_ttl},
        {"hold", "on_expiry", "on-expiry", set_on_expiry},
};
#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))
#define LISTEN     0 /* settings[LISTEN] repeats: the flags replace the file's list */

/* ---- defaults ---- */

static void set_defaults(bd_options *o)
{
	const char *state = getenv("STATE_DIRECTORY");
	size_t n = state ? strcspn(state, ":") : 0; /* the first of several */
	char host[HOST_NAME_MAX + 1] = "localhost";

	memset(o, 0, sizeof(*o));
	o->sync = BS_SYNC_FULL;
	o->log_level = BD_LOG_INFO;
	o->grace_ms = BD_DEFAULT_GRACE_MS;
	o->queue_depth = BD_QUEUE_JOBS_DEFAULT;
	o->watch_lag_max = BD_WATCH_LAG_MAX_DEFAULT;
	o->on_expiry = BS_EXPIRY_CAPTURE;
	if (n > 0 && n + sizeof("/budgetd.db") <= sizeof(o->db))
		(void)snprintf(o->db, sizeof(o->db), "%.*s/budgetd.db", (int)n, state);
	else
		(void)snprintf(o->db, sizeof(o->db), "./var/budgetd.db");
	(void)gethostname(host, sizeof(host));
	host[sizeof(host) - 1] = '\0';
	(void)snprintf(o->authority_id, sizeof(o->authority_id), "budgetd@%.200s", host);
}

/* ---- the config file ---- */

typedef struct file_ctx {
	bd_options *o;
	const bool *by_flag; /* settings the command line gives: skipped here */
	char why[WHY_MAX + 64];
	bool failed;
} file_ctx;

static int on_ini_pair(void *user, const char *section, const char *key, const char *value)
{
	file_ctx *f = user;
	char why[WHY_MAX];
	bool section_known = false;

	if (f->failed) /* report the first error only; inih goes on to the end */
		return 1;
	for (size_t i = 0; i < N_SETTINGS; i++) {
		if (strcmp(settings[i].section, section) != 0)
			continue;
		section_known = true;
		if (strcmp(settings[i].key, key) != 0)
			continue;
		if (f->by_flag[i] || settings[i].set(f->o, value, why, sizeof(why)) == 0)
			return 1;
		(void)snprintf(f->why, sizeof(f->why), "[%s] %s: %s", section, key, why);
		f->failed = true;
		return 0;
	}
	if (section_known)
		(void)snprintf(f->why, sizeof(f->why), "unknown key `%s` in section [%s]", key,
		               section);
	else
		(void)snprintf(f->why, sizeof(f->why), "unknown section [%s]", section);
	f->failed = true;
	return 0;
}

/* 0, or 2 after printing why the file cannot be used. */
static int load_file(bd_options *o, const char *path, bool explicit, const bool *by_flag)
{
	file_ctx f = {.o = o, .by_flag = by_flag};

	if (!explicit && access(path, F_OK) != 0)
		return 0; /* no default file: defaults and flags only */
	int line = ini_parse(path, on_ini_pair, &f);
	if (line < 0) {
		fprintf(stderr, "budgetd: cannot read the config file %s: %s\n", path,
		        strerror(errno ? errno : EIO));
		return 2;
	}
	if (line > 0) {
		fprintf(stderr, "budgetd: %s:%d: %s\n", path, line,
		        f.failed ? f.why : "not a `key = value` line or a [section]");
		return 2;
	}
	(void)snprintf(o->config, sizeof(o->config), "%s", path);
	return 0;
}

/* ---- the command line ---- */

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: budgetd [options]\n"
	        "\n"
	        "A budget authority for AI-agent kernels, served over gRPC.\n"
	        "\n"
	        "  --config PATH          read settings from PATH; flags override the file\n"
	        "                         (default %s, when it exists)\n"
	        "  --check-config         validate the settings, print them, and exit\n"
	        "  --listen ADDR          listen on ADDR: host:port or unix:/path (repeatable,\n"
	        "                         up to %d; default %s)\n"
	        "  --db PATH              the SQLite database (default "
	        "$STATE_DIRECTORY/budgetd.db,\n"
	        "                         or ./var/budgetd.db)\n"
	        "  --sync full|normal     full (default): every commit is fsync'd and survives\n"
	        "                         power loss; normal: survives a budgetd crash but may\n"
	        "                         lose the last commits on power loss or an OS crash\n"
	        "  --authority-id ID      this authority's name in GetServerInfo (default\n"
	        "                         budgetd@<hostname>)\n"
	        "  --log-level LEVEL      error, warn, info (default) or debug\n"
	        "  --log-file PATH        log there instead of stderr (re-opened on SIGHUP)\n"
	        "  --shutdown-grace S     seconds calls in progress get at shutdown (default %d)\n"
	        "  --queue-depth N        requests that may wait for the writer; more are\n"
	        "                         answered RESOURCE_EXHAUSTED at once (1 to %d,\n"
	        "                         default %d)\n"
	        "  --watch-lag-max N      end a WatchMutationEvents stream with\n"
	        "                         RESOURCE_EXHAUSTED when more than N events committed\n"
	        "                         since it started are unsent (%d to %d, default %d)\n"
	        "  --metrics-listen ADDR  serve Prometheus metrics on http://ADDR/metrics\n"
	        "                         (host:port; off by default)\n"
	        "  --tls-cert PATH        serve TLS on the TCP listeners with this certificate\n"
	        "  --tls-key PATH         ... and this private key (PEM; re-read on SIGHUP)\n"
	        "  --tls-client-ca PATH   require client certificates signed by this CA\n"
	        "                         (mutual TLS; callers are known by their certificate)\n"
	        "  --insecure             allow plaintext TCP on addresses other than loopback\n"
	        "  --permissions PATH     identities and their roles (INI; default: unix and\n"
	        "                         loopback callers are kernels, nobody else)\n"
	        "  --hold-ttl S           settle a hold S seconds after it opened when the\n"
	        "                         AuthorizeHold gave no ttl_seconds (0: never, the\n"
	        "                         default; at most %d)\n"
	        "  --on-expiry POLICY     how a hold is settled at its deadline when the\n"
	        "                         request names no policy: capture (default: the\n"
	        "                         remaining exposure becomes spend), release or reverse\n"
	        "  --verify               check the database (--db) against its mutation log,\n"
	        "                         print a summary and exit (0 consistent, 1 not,\n"
	        "                         3 when the file cannot be verified)\n"
	        "  --version              print the version and exit\n"
	        "  --help                 print this help and exit\n"
	        "\n"
	        "Config file sections and keys: [server] listen (repeatable), authority_id,\n"
	        "shutdown_grace, queue_depth, watch_lag_max, insecure; [store] db, sync;\n"
	        "[log] level, file; [metrics] listen; [tls] cert, key, client_ca;\n"
	        "[auth] permissions; [hold] ttl, on_expiry.\n"
	        "\n"
	        "Signals: SIGTERM/SIGINT stop gracefully; SIGHUP re-opens the log file.\n"
	        "Exit status: 0 after a clean stop, 1 when the start fails, 2 on bad usage or\n"
	        "a bad configuration.\n",
	        BD_DEFAULT_CONFIG, BD_LISTENERS_MAX, BD_DEFAULT_LISTEN, BD_DEFAULT_GRACE_MS / 1000,
	        BD_QUEUE_JOBS_MAX, BD_QUEUE_JOBS_DEFAULT, BD_WATCH_LAG_MIN, BD_WATCH_LAG_MAX,
	        BD_WATCH_LAG_MAX_DEFAULT, BS_TTL_SECONDS_MAX);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "budgetd: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see budgetd --help)\n");
	return 2;
}

enum { OPT_CONFIG = 1000, OPT_CHECK, OPT_VERIFY, OPT_VERSION, OPT_HELP };

typedef struct flag_value {
	size_t setting;
	const char *value;
} flag_value;

typedef struct command_line {
	flag_value flags[FLAGS_MAX];
	size_t n_flags;
	bool by_flag[N_SETTINGS];
	const char *config;
} command_line;

static void build_longopts(struct option *longopts)
{
	static const struct option specials[] = {
	        {"config", required_argument, NULL, OPT_CONFIG},
	        {"check-config", no_argument, NULL, OPT_CHECK},
	        {"verify", no_argument, NULL, OPT_VERIFY},
	        {"version", no_argument, NULL, OPT_VERSION},
	        {"help", no_argument, NULL, OPT_HELP},
	};
	size_t n = 0;

	for (size_t i = 0; i < N_SETTINGS; i++)
		longopts[n++] = (struct option){
		        settings[i].flag, settings[i].boolean ? no_argument : required_argument,
		        NULL, (int)i};
	for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++)
		longopts[n++] = specials[i];
	longopts[n] = (struct option){NULL, 0, NULL, 0};
}

/* Reads the command line without applying it yet: the file comes first. */
static int read_command_line(int argc, char **argv, bd_options *o, command_line *cl)
{
	struct option longopts[N_SETTINGS + 6];
	int c;

	build_longopts(longopts);
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c >= 0 && (size_t)c < N_SETTINGS) {
			if (cl->n_flags == FLAGS_MAX)
				return usage_error("too many options (at most %d)", FLAGS_MAX);
			cl->flags[cl->n_flags++] =
			        (flag_value){(size_t)c, settings[c].boolean ? "true" : optarg};
			cl->by_flag[c] = true;
			continue;
		}
		switch (c) {
		case OPT_CONFIG:
			cl->config = optarg;
			break;
		case OPT_CHECK:
			o->check_config = true;
			break;
		case OPT_VERIFY:
			o->verify = true;
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
	return 0;
}

static int apply_flags(bd_options *o, const command_line *cl)
{
	char why[WHY_MAX];
	bool listen_cleared = false;

	for (size_t i = 0; i < cl->n_flags; i++) {
		const setting *s = &settings[cl->flags[i].setting];
		if (cl->flags[i].setting == LISTEN && !listen_cleared) {
			o->n_listen = 0; /* the flags' list replaces the file's */
			listen_cleared = true;
		}
		if (s->set(o, cl->flags[i].value, why, sizeof(why)))
			return usage_error("--%s: %s", s->flag, why);
	}
	return 0;
}

int bd_options_load(int argc, char **argv, bd_options *o)
{
	command_line cl = {0};
	int rc;

	set_defaults(o);
	if ((rc = read_command_line(argc, argv, o, &cl)))
		return rc;
	if ((rc = load_file(o, cl.config ? cl.config : BD_DEFAULT_CONFIG, cl.config != NULL,
	                    cl.by_flag)))
		return rc;
	if ((rc = apply_flags(o, &cl)))
		return rc;
	if (o->n_listen == 0)
		(void)snprintf(o->listen[o->n_listen++], BD_ADDR_LEN_MAX, "%s", BD_DEFAULT_LISTEN);
	if (!o->tls_cert[0] != !o->tls_key[0])
		return usage_error("the TLS certificate and key go together (--tls-cert and"
		                   " --tls-key)");
	if (o->tls_client_ca[0] && !o->tls_cert[0])
		return usage_error("--tls-client-ca needs --tls-cert and --tls-key");
	return 0;
}

void bd_options_print(const bd_options *o, FILE *out)
{
	fprintf(out, "# budgetd %s: effective settings (from %s, then flags)\n", BD_VERSION,
	        o->config[0] ? o->config : "defaults");
	fprintf(out, "[server]\n");
	for (size_t i = 0; i < o->n_listen; i++)
		fprintf(out, "listen = %s\n", o->listen[i]);
	fprintf(out, "authority_id = %s\n", o->authority_id);
	fprintf(out, "shutdown_grace = %llu\n", (unsigned long long)(o->grace_ms / 1000));
	fprintf(out, "queue_depth = %u\n", o->queue_depth);
	fprintf(out, "watch_lag_max = %llu\n", (unsigned long long)o->watch_lag_max);
	fprintf(out, "insecure = %s\n", o->insecure ? "true" : "false");
	fprintf(out, "[store]\ndb = %s\nsync = %s\n", o->db,
	        o->sync == BS_SYNC_FULL ? "full" : "normal");
	fprintf(out, "[log]\nlevel = %s\nfile = %s\n",
	        (const char *[]){"error", "warn", "info", "debug"}[o->log_level], o->log_file);
	fprintf(out, "[metrics]\nlisten = %s\n", o->metrics_listen);
	fprintf(out, "[tls]\ncert = %s\nkey = %s\nclient_ca = %s\n", o->tls_cert, o->tls_key,
	        o->tls_client_ca);
	fprintf(out, "[auth]\npermissions = %s\n", o->permissions);
	fprintf(out, "[hold]\nttl = %u\non_expiry = %s\n", (unsigned)o->hold_ttl_s,
	        bs_expiry_name(o->on_expiry));
}
