/* bd_health.c - grpc.health.v1.Health on the loop thread.
 *
 * A watcher has up to three batches outstanding: its RECV_CLOSE_ON_SERVER,
 * and one receive or send at a time. It is freed when the last completes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bd_auth.h"
#include "bd_health.h"
#include "bd_log.h"
#include "grpc/health/v1/health.pb-c.h"

#define HEALTH_SERVICE "/grpc.health.v1.Health/"
#define SERVICES_MAX   8
#define WATCHERS_MAX   1024

typedef Grpc__Health__V1__HealthCheckResponse__ServingStatus serving_status;

typedef struct watcher watcher;

struct bd_health {
	const char *services[SERVICES_MAX];
	size_t n_services;
	bool serving;
	watcher *watchers; /* doubly linked */
	unsigned n_watchers;
};

struct watcher {
	bd_health *health;
	grpc_call *call;
	bd_tag io_tag;    /* the receive, then each send */
	bd_tag close_tag; /* RECV_CLOSE_ON_SERVER */
	int pending;      /* batches outstanding */
	bool busy;        /* io_tag in flight */
	bool ended;       /* the call is over or ending: send nothing more */
	bool status_sent;
	bool closing; /* the server is shutting down: end after the current send */
	int cancelled;
	grpc_byte_buffer *in;
	grpc_byte_buffer *out;
	grpc_slice details;
	char service[256];
	serving_status sent; /* the last status the watcher was told */
	watcher *prev, *next;
};

static serving_status status_of(const bd_health *h, const char *service)
{
	for (size_t i = 0; i < h->n_services; i++)
		if (strcmp(h->services[i], service) == 0)
			return h->serving
			               ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
			               : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
	return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
}

/* ---- Check ---- */

static bd_health *the_health; /* Check is unary: its app pointer is bd_app */

static void handle_check(bd_unary *call)
{
	const Grpc__Health__V1__HealthCheckRequest *r = bd_unary_request(call);
	Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;

	resp.status = status_of(the_health, r->service);
	if (resp.status ==
	    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN) {
		bd_unary_fail(call, GRPC_STATUS_NOT_FOUND, "unknown service `%s`", r->service);
		return;
	}
	bd_unary_reply(call, &resp.base);
}

/* ---- Watch ---- */

static void unlink_watcher(watcher *w)
{
	bd_health *h = w->health;

	if (w->prev)
		w->prev->next = w->next;
	else if (h->watchers == w)
		h->watchers = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
}

static void watcher_release(watcher *w)
{
	if (--w->pending > 0)
		return;
	unlink_watcher(w);
	w->health->n_watchers--;
	if (w->in)
		grpc_byte_buffer_destroy(w->in);
	if (w->out)
		grpc_byte_buffer_destroy(w->out);
	grpc_slice_unref(w->details);
	grpc_call_unref(w->call);
	free(w);
}

static bool start_batch(watcher *w, const grpc_op *ops, size_t n, bd_tag *tag)
{
	w->pending++;
	grpc_call_error e = grpc_call_start_batch(w->call, ops, n, tag, NULL);
	if (e == GRPC_CALL_OK)
		return true;
	bd_log_error("health watch: cannot start a batch: grpc_call_error %d", (int)e);
	w->pending--;
	return false;
}

static void finish(watcher *w, grpc_status_code code, const char *message)
{
	grpc_op op;

	if (w->status_sent)
		return;
	w->status_sent = true;
	w->ended = true;
	memset(&op, 0, sizeof(op));
	w->details = grpc_slice_from_copied_string(message);
	op.op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	op.data.send_status_from_server.status = code;
	op.data.send_status_from_server.status_details = &w->details;
	w->busy = true;
	if (!start_batch(w, &op, 1, &w->io_tag))
		w->busy = false;
}

/* Sends the current status when it differs from what the watcher knows. */
static void send_update(watcher *w)
{
	Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	grpc_op op;

	if (w->busy || w->ended)
		return;
	resp.status = status_of(w->health, w->service);
	if (resp.status == w->sent) {
		/* Up to date: a closing watcher has heard the last news. */
		if (w->closing)
			finish(w, GRPC_STATUS_UNAVAILABLE, "budgetd is shutting down");
		return;
	}
	if (w->out) {
		grpc_byte_buffer_destroy(w->out);
		w->out = NULL;
	}
	if (bd_pack(&resp.base, &w->out) != 0) {
		finish(w, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_MESSAGE;
	op.data.send_message.send_message = w->out;
	w->sent = resp.status;
	w->busy = true;
	if (!start_batch(w, &op, 1, &w->io_tag)) {
		w->busy = false;
		w->ended = true;
	}
}

static void on_io(bd_tag *tag, bool ok)
{
	watcher *w = bd_container_of(tag, watcher, io_tag);

	w->busy = false;
	if (!ok)
		w->ended = true;
	else
		send_update(w); /* the status may have changed while sending */
	watcher_release(w);
}

static void on_close(bd_tag *tag, bool ok)
{
	watcher *w = bd_container_of(tag, watcher, close_tag);

	(void)ok;
	w->ended = true; /* the client went away or the call ended */
	watcher_release(w);
}

static void on_request(bd_tag *tag, bool ok)
{
	watcher *w = bd_container_of(tag, watcher, io_tag);
	bd_arena arena;
	char why[256];

	w->busy = false;
	w->io_tag.fn = on_io;
	if (!ok || !w->in) {
		w->ended = true;
		watcher_release(w);
		return;
	}
	bd_arena_init(&arena);
	Grpc__Health__V1__HealthCheckRequest *r = (Grpc__Health__V1__HealthCheckRequest *)bd_unpack(
	        &grpc__health__v1__health_check_request__descriptor, w->in, &arena, why,
	        sizeof(why));
	if (!r)
		finish(w, GRPC_STATUS_INVALID_ARGUMENT, why);
	else if (strlen(r->service) >= sizeof(w->service))
		finish(w, GRPC_STATUS_INVALID_ARGUMENT, "service name is too long");
	else
		memcpy(w->service, r->service, strlen(r->service) + 1);
	bd_arena_reset(&arena);
	send_update(w);
	watcher_release(w);
}

static void start_watch(void *ctx, grpc_call *call)
{
	bd_health *h = ctx;
	watcher *w = calloc(1, sizeof(*w));
	grpc_op ops[2];

	if (!w || h->n_watchers >= WATCHERS_MAX) {
		free(w);
		grpc_call_cancel_with_status(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
		                             "too many health watchers", NULL);
		grpc_call_unref(call);
		return;
	}
	w->health = h;
	w->call = call;
	w->details = grpc_empty_slice();
	w->sent = (serving_status)-1;
	w->next = h->watchers;
	if (h->watchers)
		h->watchers->prev = w;
	h->watchers = w;
	h->n_watchers++;
	w->pending = 1; /* held until both batches are started */
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[0].data.recv_close_on_server.cancelled = &w->cancelled;
	w->close_tag.fn = on_close;
	if (!start_batch(w, ops, 1, &w->close_tag))
		w->ended = true;
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_RECV_MESSAGE;
	ops[1].data.recv_message.recv_message = &w->in;
	w->io_tag.fn = on_request;
	w->busy = true;
	if (w->ended || !start_batch(w, ops, 2, &w->io_tag))
		w->busy = false;
	watcher_release(w);
}

/* ---- the module ---- */

int bd_health_create(const char *const *services, size_t n_services, bd_health **out)
{
	bd_health *h = calloc(1, sizeof(*h));

	if (!h || n_services + 1 > SERVICES_MAX) {
		free(h);
		return -EINVAL;
	}
	h->services[h->n_services++] = "";
	for (size_t i = 0; i < n_services; i++)
		h->services[h->n_services++] = services[i];
	*out = h;
	return 0;
}

int bd_health_register(bd_health *h, bd_server *server)
{
	static const bd_unary_method check = {HEALTH_SERVICE "Check",
	                                      &grpc__health__v1__health_check_request__descriptor,
	                                      handle_check, 4, BD_ACCESS_OPEN};
	int rc;

	the_health = h;
	if ((rc = bd_server_add_unary(server, &check)))
		return rc;
	return bd_server_add_stream(server, HEALTH_SERVICE "Watch", start_watch, h);
}

void bd_health_set_serving(bd_health *h, bool serving)
{
	h->serving = serving;
	for (watcher *w = h->watchers; w; w = w->next)
		send_update(w);
}

void bd_health_close_watchers(bd_health *h)
{
	for (watcher *w = h->watchers; w; w = w->next) {
		w->closing = true;
		send_update(w); /* a busy watcher ends when its send completes */
	}
}

void bd_health_destroy(bd_health *h)
{
	if (the_health == h)
		the_health = NULL;
	free(h);
}
