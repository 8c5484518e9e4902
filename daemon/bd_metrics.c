/* bd_metrics.c - counters and histograms in relaxed atomics, rendered as
 * Prometheus text format by a libmicrohttpd thread.
 *
 * A histogram keeps one (non-cumulative) count per bucket plus the sum; a
 * scrape accumulates the buckets and reports the +Inf total as _count, so
 * _count always equals the +Inf bucket even while observers run. _sum is
 * read separately and may lag by the observations in flight.
 *
 * Method names are kept in a table of fixed slots. A slot's name is written
 * once, under `lock`, before `n_methods` is raised with release order;
 * readers load `n_methods` with acquire order and only look at slots below
 * it, so they never see a half-written name.
 */
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bd_app.h"
#include "bd_grpc.h"
#include "bd_log.h"
#include "bd_metrics.h"
#include "bs_store.h"

#define CODES_MAX         (GRPC_STATUS_UNAUTHENTICATED + 1) /* gRPC status codes 0..16 */
#define HIST_BOUNDS_MAX   16                                /* finite buckets of a histogram */
#define DECISIONS_MAX     5     /* allowed, denied by each reason, denied unknown */
#define DECISION_UNKNOWN  4     /* a denial with no known reason */
#define HOST_LEN_MAX      256   /* the host part of host:port */
#define LISTEN_BACKLOG    64    /* pending HTTP connections */
#define RENDER_BYTES_INIT 16384 /* first guess at a scrape's size */
#define METRICS_PATH      "/metrics"

typedef struct bucket_bound {
	uint64_t le;      /* inclusive upper bound, in the observed unit */
	const char *text; /* the le label */
} bucket_bound;

typedef struct hist_spec {
	const bucket_bound *bounds;
	size_t n_bounds;
	bool ns_as_seconds; /* observed in ns, exposed in seconds */
} hist_spec;

/* 100 us .. 10 s, observed in nanoseconds. */
static const bucket_bound duration_bounds[] = {
        {100000ull, "0.0001"},  {250000ull, "0.00025"}, {500000ull, "0.0005"},
        {1000000ull, "0.001"},  {2500000ull, "0.0025"}, {5000000ull, "0.005"},
        {10000000ull, "0.01"},  {25000000ull, "0.025"}, {50000000ull, "0.05"},
        {100000000ull, "0.1"},  {250000000ull, "0.25"}, {500000000ull, "0.5"},
        {1000000000ull, "1"},   {2500000000ull, "2.5"}, {5000000000ull, "5"},
        {10000000000ull, "10"},
};

/* Mutations per group commit: 1 .. BD_BATCH_MUTATIONS_MAX. */
static const bucket_bound batch_bounds[] = {
        {1, "1"},   {2, "2"},   {4, "4"},     {8, "8"},     {16, "16"},
        {32, "32"}, {64, "64"}, {128, "128"}, {256, "256"},
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const hist_spec duration_spec = {duration_bounds, N_OF(duration_bounds), true};
static const hist_spec batch_spec = {batch_bounds, N_OF(batch_bounds), false};

_Static_assert(N_OF(duration_bounds) <= HIST_BOUNDS_MAX, "duration buckets");
_Static_assert(N_OF(batch_bounds) <= HIST_BOUNDS_MAX, "batch buckets");
_Static_assert(BS_DENIAL_NONE == 0 && BS_DENIAL_MAX_TOTAL_COST == DECISION_UNKNOWN - 1,
               "decision slots follow bs_denial");

typedef struct histogram {
	_Atomic uint64_t counts[HIST_BOUNDS_MAX + 1]; /* per bucket, the last is +Inf */
	_Atomic uint64_t sum;                         /* in the observed unit */
} histogram;

typedef struct method_stats {
	char name[BD_METRICS_METHOD_LEN_MAX + 1]; /* written once, before publication */
	_Atomic uint64_t codes[CODES_MAX];        /* finished calls by status code */
	histogram latency;                        /* ns */
} method_stats;

struct bd_metrics {
	pthread_mutex_t lock; /* serializes first sights of method names */
	_Atomic size_t n_methods;
	method_stats methods[BD_METRICS_METHODS_MAX];
	method_stats other; /* beyond the table, or names too long */
	_Atomic uint64_t decisions[DECISIONS_MAX];
	histogram batch_size;      /* mutations */
	histogram commit_duration; /* ns */
	_Atomic uint64_t holds_expired;
	/* set by bd_metrics_listen before the HTTP thread starts */
	struct MHD_Daemon *httpd;
	bd_metrics_gauge_fn gauges;
	void *gauges_ctx;
	int port;
};

int bd_metrics_create(bd_metrics **out)
{
	bd_metrics *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (!m)
		return -ENOMEM;
	int rc = pthread_mutex_init(&m->lock, NULL);
	if (rc != 0) {
		free(m);
		return -rc;
	}
	snprintf(m->other.name, sizeof(m->other.name), "other");
	*out = m;
	return 0;
}

void bd_metrics_destroy(bd_metrics *m)
{
	if (!m)
		return;
	if (m->httpd)
		MHD_stop_daemon(m->httpd); /* joins the thread, closes the socket */
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* ---- observers ---- */

static void hist_observe(histogram *h, const hist_spec *spec, uint64_t v)
{
	size_t i = 0;

	while (i < spec->n_bounds && v > spec->bounds[i].le)
		i++;
	atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

/* The slot counting `name`: found, newly claimed, or "other". */
static method_stats *method_slot(bd_metrics *m, const char *name)
{
	size_t n = atomic_load_explicit(&m->n_methods, memory_order_acquire);

	for (size_t i = 0; i < n; i++)
		if (strcmp(m->methods[i].name, name) == 0)
			return &m->methods[i];
	size_t len = strnlen(name, BD_METRICS_METHOD_LEN_MAX + 1);
	if (len > BD_METRICS_METHOD_LEN_MAX || n == BD_METRICS_METHODS_MAX)
		return &m->other; /* the table never shrinks: no lock for overflow */

	method_stats *slot = &m->other;
	pthread_mutex_lock(&m->lock);
	size_t now = atomic_load_explicit(&m->n_methods, memory_order_relaxed);
	for (size_t i = n; i < now; i++) /* claimed by another thread meanwhile? */
		if (strcmp(m->methods[i].name, name) == 0) {
			slot = &m->methods[i];
			goto out;
		}
	if (now < BD_METRICS_METHODS_MAX) {
		slot = &m->methods[now];
		memcpy(slot->name, name, len + 1);
		atomic_store_explicit(&m->n_methods, now + 1, memory_order_release);
	}
out:
	pthread_mutex_unlock(&m->lock);
	return slot;
}

void bd_metrics_observe_call(bd_metrics *m, const char *method, int grpc_code, uint64_t latency_ns)
{
	method_stats *s = method_slot(m, method ? method : "");
	unsigned code = (unsigned)grpc_code < CODES_MAX ? (unsigned)grpc_code : GRPC_STATUS_UNKNOWN;

	atomic_fetch_add_explicit(&s->codes[code], 1, memory_order_relaxed);
	hist_observe(&s->latency, &duration_spec, latency_ns);
}

void bd_metrics_observe_batch(bd_metrics *m, size_t mutations, uint64_t commit_ns)
{
	hist_observe(&m->batch_size, &batch_spec, mutations);
	hist_observe(&m->commit_duration, &duration_spec, commit_ns);
}

void bd_metrics_observe_expired(bd_metrics *m, uint32_t expired)
{
	atomic_fetch_add_explicit(&m->holds_expired, expired, memory_order_relaxed);
}

void bd_metrics_observe_decision(bd_metrics *m, bool allowed, int denial_reason)
{
	size_t slot = 0;

	if (!allowed)
		slot = denial_reason > BS_DENIAL_NONE && denial_reason <= BS_DENIAL_MAX_TOTAL_COST
		               ? (size_t)denial_reason
		               : DECISION_UNKNOWN;
	atomic_fetch_add_explicit(&m->decisions[slot], 1, memory_order_relaxed);
}

/* ---- rendering ---- */

typedef struct out_buf {
	char *p;
	size_t len, cap; /* p[len] is always NUL */
	int err;         /* the first failure: -ENOMEM or -E2BIG */
} out_buf;

/* Room for `more` bytes and the NUL. */
static bool reserve(out_buf *b, size_t more)
{
	if (b->err)
		return false;
	if (more >= BD_METRICS_BODY_BYTES_MAX - b->len) {
		b->err = -E2BIG;
		return false;
	}
	size_t need = b->len + more + 1;
	if (need <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : RENDER_BYTES_INIT;
	while (cap < need)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->err = -ENOMEM;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

__attribute__((format(printf, 2, 3))) static void put(out_buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* A label value, escaped as the text format wants: \\, \" and \n. */
static void put_label_value(out_buf *b, const char *s)
{
	for (; *s; s++) {
		const char *esc = *s == '\\'   ? "\\\\"
		                  : *s == '"'  ? "\\\""
		                  : *s == '\n' ? "\\n"
		                               : NULL;
		size_t n = esc ? 2 : 1;
		if (!reserve(b, n))
			return;
		memcpy(b->p + b->len, esc ? esc : s, n);
		b->len += n;
		b->p[b->len] = '\0';
	}
}

static void put_family(out_buf *b, const char *name, const char *type, const char *help)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A sample's name and labels: `family``suffix`, then in braces the escaped
 * `label="value"` when label is set and `extra` (already escaped, such as
 * le="0.1") when set; no braces when neither is. */
static void put_name(out_buf *b, const char *family, const char *suffix, const char *label,
                     const char *value, const char *extra)
{
	put(b, "%s%s", family, suffix);
	if (!label && !extra)
		return;
	put(b, "{");
	if (label) {
		put(b, "%s=\"", label);
		put_label_value(b, value);
		put(b, "\"%s", extra ? "," : "");
	}
	if (extra)
		put(b, "%s", extra);
	put(b, "}");
}

/* One series of a histogram: cumulative buckets, _sum, and _count (the +Inf
 * bucket). `label` may be NULL (then `value` is ""). */
static void put_histogram(out_buf *b, const char *family, const char *label, const char *value,
                          const histogram *h, const hist_spec *spec)
{
	uint64_t cumulative = 0;
	char le[32];

	for (size_t i = 0; i <= spec->n_bounds; i++) {
		cumulative += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
		snprintf(le, sizeof(le), "le=\"%s\"",
		         i < spec->n_bounds ? spec->bounds[i].text : "+Inf");
		put_name(b, family, "_bucket", label, value, le);
		put(b, " %" PRIu64 "\n", cumulative);
	}
	uint64_t sum = atomic_load_explicit(&h->sum, memory_order_relaxed);
	put_name(b, family, "_sum", label, value, NULL);
	if (spec->ns_as_seconds) /* exact: no floating point */
		put(b, " %" PRIu64 ".%09" PRIu64 "\n", sum / 1000000000u, sum % 1000000000u);
	else
		put(b, " %" PRIu64 "\n", sum);
	put_name(b, family, "_count", label, value, NULL);
	put(b, " %" PRIu64 "\n", cumulative);
}

static uint64_t method_calls(const method_stats *s)
{
	uint64_t n = 0;

	for (size_t c = 0; c < CODES_MAX; c++)
		n += atomic_load_explicit(&s->codes[c], memory_order_relaxed);
	return n;
}

static void render_rpcs(out_buf *b, bd_metrics *m)
{
	size_t n = atomic_load_explicit(&m->n_methods, memory_order_acquire);
	bool other = method_calls(&m->other) > 0;

	put_family(b, "budgetd_rpc_requests_total", "counter",
	           "Finished RPCs by method and gRPC status code.");
	for (size_t i = 0; i <= n; i++) {
		const method_stats *s = i < n ? &m->methods[i] : &m->other;
		if (i == n && !other)
			break;
		for (size_t c = 0; c < CODES_MAX; c++) {
			uint64_t v = atomic_load_explicit(&s->codes[c], memory_order_relaxed);
			if (v == 0)
				continue;
			char code[48];
			snprintf(code, sizeof(code), "code=\"%s\"",
			         bd_status_name((grpc_status_code)c));
			put_name(b, "budgetd_rpc_requests_total", "", "method", s->name, code);
			put(b, " %" PRIu64 "\n", v);
		}
	}
	put_family(b, "budgetd_rpc_duration_seconds", "histogram",
	           "Time from a call's arrival until its status was sent, by method.");
	for (size_t i = 0; i <= n; i++) {
		const method_stats *s = i < n ? &m->methods[i] : &m->other;
		if (i == n && !other)
			break;
		put_histogram(b, "budgetd_rpc_duration_seconds", "method", s->name, &s->latency,
		              &duration_spec);
	}
}

static void render_decisions(out_buf *b, bd_metrics *m)
{
	put_family(b, "budgetd_authorize_decisions_total", "counter",
	           "Authorize decisions: allowed, or denied by reason.");
	for (size_t i = 0; i < DECISIONS_MAX; i++) {
		uint64_t v = atomic_load_explicit(&m->decisions[i], memory_order_relaxed);
		if (i == DECISION_UNKNOWN && v == 0)
			continue;
		put(b,
		    "budgetd_authorize_decisions_total{decision=\"%s\",reason=\"%s\"} %" PRIu64
		    "\n",
		    i == 0 ? "allowed" : "denied",
		    i == DECISION_UNKNOWN ? "unknown" : bs_denial_name((bs_denial)i), v);
	}
}

static void render_gauge(out_buf *b, const char *name, const char *help, uint64_t v)
{
	put_family(b, name, "gauge", help);
	put(b, "%s %" PRIu64 "\n", name, v);
}

int bd_metrics_render(bd_metrics *m, char **out, size_t *out_len)
{
	out_buf b = {0};

	*out = NULL;
	*out_len = 0;
	render_rpcs(&b, m);
	render_decisions(&b, m);
	put_family(&b, "budgetd_commit_batch_size", "histogram",
	           "Mutations committed per group commit (one transaction, one fsync).");
	put_histogram(&b, "budgetd_commit_batch_size", NULL, "", &m->batch_size, &batch_spec);
	put_family(&b, "budgetd_commit_duration_seconds", "histogram",
	           "Time spent applying and committing one group commit.");
	put_histogram(&b, "budgetd_commit_duration_seconds", NULL, "", &m->commit_duration,
	              &duration_spec);
	put_family(&b, "budgetd_holds_expired_total", "counter",
	           "Holds settled by their deadline (their on_expiry policy).");
	put(&b, "budgetd_holds_expired_total %" PRIu64 "\n",
	    atomic_load_explicit(&m->holds_expired, memory_order_relaxed));
	if (m->gauges) {
		bd_metrics_gauges g = {0};
		m->gauges(m->gauges_ctx, &g);
		render_gauge(&b, "budgetd_queue_depth", "Jobs waiting for the writer thread.",
		             g.queue_depth);
		render_gauge(&b, "budgetd_open_holds",
		             "Holds still open: not settled and not expired.", g.open_holds);
		render_gauge(&b, "budgetd_db_size_bytes", "The database and its WAL on disk.",
		             g.db_bytes);
		render_gauge(&b, "budgetd_commit_index", "The store's last sequence value.",
		             g.commit_index);
	}
	put_family(&b, "budgetd_build_info", "gauge", "Always 1; the version is a label.");
	put_name(&b, "budgetd_build_info", "", "version", BD_VERSION, NULL);
	put(&b, " 1\n");
	if (b.err) {
		free(b.p);
		return b.err;
	}
	*out = b.p;
	*out_len = b.len;
	return 0;
}

/* ---- HTTP ---- */

static enum MHD_Result reply_static(struct MHD_Connection *conn, unsigned status, const char *body)
{
	struct MHD_Response *r =
	        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);

	if (!r)
		return MHD_NO;
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handle_request(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls)
{
	bd_metrics *m = cls;

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)req_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_static(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	if (strcmp(url, METRICS_PATH) != 0)
		return reply_static(conn, MHD_HTTP_NOT_FOUND, "not found: try " METRICS_PATH "\n");

	char *body;
	size_t len;
	int rc = bd_metrics_render(m, &body, &len);
	if (rc < 0) {
		bd_log_warn("%s: cannot render metrics: %s", __func__, strerror(-rc));
		return reply_static(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                    "cannot render metrics\n");
	}
	struct MHD_Response *r =
	        MHD_create_response_from_buffer_with_free_callback(len, body, free);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, BD_METRICS_CONTENT_TYPE);
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[256];

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	bd_log_warn("metrics: libmicrohttpd: %s", line);
}

/* Splits "host:port" / "[v6]:port" into host and port. 0 or -EINVAL. */
static int split_host_port(const char *hp, char *host, size_t host_len, char *port, size_t port_len)
{
	const char *colon = strrchr(hp, ':');
	const char *h = hp;
	size_t hl;

	if (!colon)
		return -EINVAL;
	hl = (size_t)(colon - hp);
	if (hp[0] == '[') {
		if (hl < 2 || hp[hl - 1] != ']')
			return -EINVAL;
		h = hp + 1;
		hl -= 2;
	}
	const char *p = colon + 1;
	size_t pl = strlen(p);
	if (hl == 0 || hl >= host_len || pl == 0 || pl >= port_len || pl > 5 ||
	    strspn(p, "0123456789") != pl || strtoul(p, NULL, 10) > 65535)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	memcpy(port, p, pl + 1);
	return 0;
}

/* A listening TCP socket on host:port. The fd, or -errno with err set. */
static int bind_listener(const char *host_port, int *port_out, char *err, size_t err_len)
{
	char host[HOST_LEN_MAX], port[8];
	struct addrinfo hints = {0}, *res = NULL;
	int fd = -1, e = EADDRNOTAVAIL;

	if (split_host_port(host_port, host, sizeof(host), port, sizeof(port)) < 0) {
		snprintf(err, err_len,
		         "metrics: bad listen address `%s`: expected host:port, e.g. "
		         "127.0.0.1:9464 or [::1]:9464",
		         host_port);
		return -EINVAL;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int g = getaddrinfo(host, port, &hints, &res);
	if (g != 0) {
		snprintf(err, err_len, "metrics: bad listen address `%s`: %s", host_port,
		         gai_strerror(g));
		return -EINVAL;
	}
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		            ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		int one = 1;
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, LISTEN_BACKLOG) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, err_len, "metrics: cannot listen on %s: %s", host_port, strerror(e));
		return -e;
	}

	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		e = errno;
		close(fd);
		snprintf(err, err_len, "metrics: cannot listen on %s: %s", host_port, strerror(e));
		return -e;
	}
	*port_out = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
	                                     : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

int bd_metrics_listen(bd_metrics *m, const char *host_port, bd_metrics_gauge_fn gauges, void *ctx,
                      char *err, size_t err_len)
{
	int port = 0;

	if (err_len)
		err[0] = '\0';
	if (m->httpd) {
		snprintf(err, err_len, "metrics: already listening on port %d", m->port);
		return -EALREADY;
	}
	int fd = bind_listener(host_port, &port, err, err_len);
	if (fd < 0)
		return fd;
	m->gauges = gauges;
	m->gauges_ctx = ctx;

	/* The HTTP thread inherits a full signal mask: signals stay with the
	 * loop. From here on the socket belongs to libmicrohttpd, which closes
	 * it when it fails to start (poll mode) or when it stops. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	m->httpd = MHD_start_daemon(
	        MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, handle_request, m,
	        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, m, MHD_OPTION_LISTEN_SOCKET, fd,
	        MHD_OPTION_CONNECTION_LIMIT, (unsigned)BD_METRICS_CONNECTIONS_MAX,
	        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)BD_METRICS_TIMEOUT_S, MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!m->httpd) {
		m->gauges = NULL;
		m->gauges_ctx = NULL;
		snprintf(err, err_len,
		         "metrics: cannot start the HTTP server on %s (libmicrohttpd logged why)",
		         host_port);
		return -EIO;
	}
	m->port = port;
	bd_log_info("metrics: serving GET %s on %s (port %d)", METRICS_PATH, host_port, port);
	return 0;
}

int bd_metrics_port(const bd_metrics *m)
{
	return m->httpd ? m->port : 0;
}
