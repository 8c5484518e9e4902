/* bd_grpc.c - gRPC C core on a libuv loop; see bd_grpc.h. */
#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bd_grpc.h"
#include "bd_log.h"

#define METHODS_MAX        32
#define STATUS_MESSAGE_MAX 1024
#define UNKNOWN_ARMED      2
#define SHUTDOWN_DRAIN_MS  250 /* for the last replies before idle connections are cut */

typedef struct method_entry {
	bd_unary_method m; /* unary; m.handle NULL for streams */
	const char *name;  /* the last path element, for logs and metrics */
	void *registered;  /* grpc_server_register_method's handle */
	bd_stream_fn stream;
	void *stream_ctx;
} method_entry;

struct bd_server {
	uv_loop_t *loop;
	grpc_server *server;
	grpc_completion_queue *cq;
	bd_server_limits limits;
	void *app;
	method_entry methods[METHODS_MAX];
	unsigned n_methods;
	unsigned calls_active; /* unary calls between arrival and their end */
	bool started;
	bool shutting_down;
	bool connections_dropped;
	bd_call_observer observer;
	void *observer_ctx;
	bd_access_fn access;
	void *access_ctx;

	/* the completion-queue thread and its hand-off list */
	uv_thread_t cq_thread;
	bool cq_thread_running;
	uv_mutex_t lock;
	bd_tag *head, *tail; /* guarded by lock */
	uv_async_t wakeup;

	/* shutdown */
	bd_tag shutdown_tag;
	uv_timer_t grace;
	void (*shutdown_done)(void *ctx);
	void *shutdown_ctx;
};

struct bd_unary {
	bd_tag tag;
	bd_server *server;
	method_entry *method;
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array metadata;
	grpc_byte_buffer *payload;
	ProtobufCMessage *request;
	grpc_byte_buffer *response;
	grpc_slice status_details;
	int cancelled;
	uint64_t started_ns;
	const void *principal;
	char identity[BD_IDENTITY_MAX + 1];
	bd_arena arena;
};

/* A call to a method nobody registered: answered UNIMPLEMENTED. */
typedef struct unknown_call {
	bd_tag tag;
	bd_server *server;
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array metadata;
	grpc_slice status_details;
	int cancelled;
} unknown_call;

/* A streaming call waiting to be matched. */
typedef struct stream_request {
	bd_tag tag;
	bd_server *server;
	method_entry *method;
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array metadata;
} stream_request;

const char *bd_status_name(grpc_status_code code)
{
	static const char *const names[] = {
	        "OK",
	        "CANCELLED",
	        "UNKNOWN",
	        "INVALID_ARGUMENT",
	        "DEADLINE_EXCEEDED",
	        "NOT_FOUND",
	        "ALREADY_EXISTS",
	        "PERMISSION_DENIED",
	        "RESOURCE_EXHAUSTED",
	        "FAILED_PRECONDITION",
	        "ABORTED",
	        "OUT_OF_RANGE",
	        "UNIMPLEMENTED",
	        "INTERNAL",
	        "UNAVAILABLE",
	        "DATA_LOSS",
	        "UNAUTHENTICATED",
	};
	if ((unsigned)code < sizeof(names) / sizeof(names[0]))
		return names[code];
	return "UNKNOWN";
}

/* ---- the completion-queue thread and the hand-off ---- */

static void cq_thread_main(void *arg)
{
	bd_server *s = arg;

	for (;;) {
		grpc_event ev =
		        grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		bd_tag *t = ev.tag;
		t->ok = ev.success != 0;
		t->next = NULL;
		uv_mutex_lock(&s->lock);
		bool was_empty = s->head == NULL;
		if (was_empty)
			s->head = t;
		else
			s->tail->next = t;
		s->tail = t;
		uv_mutex_unlock(&s->lock);
		/* One wake-up per empty-to-non-empty change: the loop drains all. */
		if (was_empty)
			uv_async_send(&s->wakeup);
	}
}

static void drain(bd_server *s)
{
	uv_mutex_lock(&s->lock);
	bd_tag *t = s->head;
	s->head = s->tail = NULL;
	uv_mutex_unlock(&s->lock);
	while (t) {
		bd_tag *next = t->next;
		t->fn(t, t->ok);
		t = next;
	}
}

static void on_wakeup(uv_async_t *handle)
{
	drain(handle->data);
}

/* ---- message helpers ---- */

int bd_pack(const ProtobufCMessage *m, grpc_byte_buffer **out)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	grpc_slice slice = grpc_slice_malloc(len);

	protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(slice));
	*out = grpc_raw_byte_buffer_create(&slice, 1);
	grpc_slice_unref(slice);
	return *out ? 0 : -ENOMEM;
}

static void *arena_pb_alloc(void *data, size_t size)
{
	return bd_arena_alloc(data, size);
}

static void arena_pb_free(void *data, void *p)
{
	/* The arena frees everything when the call ends. */
	(void)data;
	(void)p;
}

/* Unknown fields anywhere in the message: a field this budgetd does not
 * know must not be ignored (an older daemon would, say, really authorize a
 * dry run), and they cost memory out of proportion to their bytes. 0 or the
 * number of the first one. */
static uint32_t first_unknown_field(const ProtobufCMessage *m, int depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	if (m->n_unknown_fields > 0)
		return m->unknown_fields[0].tag;
	if (depth > 8)
		return 0;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
			continue;
		/* A oneof member is only there when its case says so. */
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)((const char *)m + f->quantifier_offset) != f->id)
			continue;
		const ProtobufCMessage *sub =
		        *(const ProtobufCMessage *const *)((const char *)m + f->offset);
		uint32_t tag = sub ? first_unknown_field(sub, depth + 1) : 0;
		if (tag)
			return tag;
	}
	return 0;
}

ProtobufCMessage *bd_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb,
                            bd_arena *arena, char *why, size_t why_len)
{
	ProtobufCAllocator alloc = {arena_pb_alloc, arena_pb_free, arena};
	grpc_byte_buffer_reader reader;
	ProtobufCMessage *m = NULL;

	if (!grpc_byte_buffer_reader_init(&reader, bb)) {
		snprintf(why, why_len, "the request payload cannot be read (compression?)");
		return NULL;
	}
	grpc_slice slice = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	size_t len = GRPC_SLICE_LENGTH(slice);
	m = protobuf_c_message_unpack(d, &alloc, len, GRPC_SLICE_START_PTR(slice));
	uint32_t unknown = m ? first_unknown_field(m, 0) : 0;
	if (!m) {
		snprintf(why, why_len, "the request is not a valid %s message", d->name);
	} else if (unknown) {
		snprintf(why, why_len,
		         "the %s message has field number %u, which this budgetd does not know"
		         " (a newer client?)",
		         d->name, unknown);
		m = NULL;
	} else if (protobuf_c_message_get_packed_size(m) != len) {
		/* protobuf-c keeps strings as C strings: an embedded NUL would
		 * silently cut an id short. Re-encoding reveals it (and the other
		 * non-canonical encodings no protobuf library emits). */
		snprintf(why, why_len,
		         "the %s message is not canonically encoded: a string field contains a NUL"
		         " byte, or a field is repeated or encodes its default value",
		         d->name);
		m = NULL;
	}
	grpc_slice_unref(slice);
	return m;
}

/* ---- unary calls ---- */

static uint64_t now_ns(void)
{
	return uv_hrtime();
}

static void unary_free(bd_unary *c)
{
	if (c->call)
		grpc_call_unref(c->call);
	grpc_metadata_array_destroy(&c->metadata);
	if (c->payload)
		grpc_byte_buffer_destroy(c->payload);
	if (c->response)
		grpc_byte_buffer_destroy(c->response);
	grpc_slice_unref(c->status_details);
	bd_arena_reset(&c->arena);
	free(c);
}

static void on_unary_requested(bd_tag *tag, bool ok);

static void unary_arm(bd_server *s, method_entry *me)
{
	bd_unary *c = calloc(1, sizeof(*c));

	if (!c) {
		bd_log_error("out of memory arming %s", me->name);
		return;
	}
	c->tag.fn = on_unary_requested;
	c->server = s;
	c->method = me;
	c->status_details = grpc_empty_slice();
	grpc_metadata_array_init(&c->metadata);
	bd_arena_init(&c->arena);
	grpc_call_error e = grpc_server_request_registered_call(s->server, me->registered, &c->call,
	                                                        &c->deadline, &c->metadata,
	                                                        &c->payload, s->cq, s->cq, &c->tag);
	if (e != GRPC_CALL_OK) {
		bd_log_error("cannot request %s calls: grpc_call_error %d", me->name, (int)e);
		unary_free(c);
	}
}

static void on_drain_done(uv_timer_t *timer);

/* gRPC's shutdown waits for every connection to close, and an idle client
 * notices the GOAWAY only at its next poll (seconds). Once no unary call is
 * left, the last replies get a moment to reach their sockets, then the idle
 * connections are cut (streams were told to end already). */
static void drop_idle_connections(bd_server *s)
{
	if (s->connections_dropped)
		return;
	s->connections_dropped = true;
	uv_timer_stop(&s->grace);
	uv_timer_start(&s->grace, on_drain_done, SHUTDOWN_DRAIN_MS, 0);
}

static void on_unary_done(bd_tag *tag, bool ok)
{
	bd_unary *c = bd_container_of(tag, bd_unary, tag);
	bd_server *s = c->server;

	(void)ok; /* a failed send means the client went away: nothing to do */
	s->calls_active--;
	unary_free(c);
	if (s->shutting_down && s->calls_active == 0)
		drop_idle_connections(s);
}

static void unary_finish(bd_unary *c, grpc_status_code code, const char *message)
{
	grpc_op ops[4];
	size_t n = 0;

	memset(ops, 0, sizeof(ops));
	/* Observed as the reply is handed to gRPC: before the client can see it. */
	if (c->server->observer)
		c->server->observer(c->server->observer_ctx, c->method->name, code,
		                    now_ns() - c->started_ns);
	ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (c->response) {
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = c->response;
	}
	c->status_details = grpc_slice_from_copied_string(message);
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = code;
	ops[n++].data.send_status_from_server.status_details = &c->status_details;
	ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
	c->tag.fn = on_unary_done;
	grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->tag, NULL);
	if (e != GRPC_CALL_OK) {
		bd_log_error("%s: cannot send the reply: grpc_call_error %d", c->method->name,
		             (int)e);
		on_unary_done(&c->tag, false);
	}
}

void bd_unary_reply_packed(bd_unary *c, grpc_byte_buffer *response)
{
	c->response = response;
	unary_finish(c, GRPC_STATUS_OK, "");
}

void bd_unary_reply(bd_unary *c, const ProtobufCMessage *response)
{
	grpc_byte_buffer *bb;

	if (bd_pack(response, &bb) != 0) {
		bd_unary_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory packing the reply");
		return;
	}
	bd_unary_reply_packed(c, bb);
}

void bd_unary_fail(bd_unary *c, grpc_status_code code, const char *fmt, ...)
{
	char message[STATUS_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	bd_log_debug("%s: %s: %s", c->method->name, bd_status_name(code), message);
	unary_finish(c, code, message);
}

const void *bd_unary_request(const bd_unary *c)
{
	return c->request;
}

bd_arena *bd_unary_arena(bd_unary *c)
{
	return &c->arena;
}

void *bd_unary_app(const bd_unary *c)
{
	return c->server->app;
}

const char *bd_unary_identity(const bd_unary *c)
{
	return c->identity;
}

const void *bd_unary_principal(const bd_unary *c)
{
	return c->principal;
}

/* The access hook's verdict; false when the call was refused. */
static bool admitted(bd_unary *c)
{
	bd_server *s = c->server;
	char why[512];

	if (!s->access)
		return true;
	grpc_status_code code = s->access(s->access_ctx, c->call, c->method->m.access, c->identity,
	                                  sizeof(c->identity), &c->principal, why, sizeof(why));
	if (code == GRPC_STATUS_OK)
		return true;
	bd_log_warn("%s refused for `%s`: %s: %s", c->method->name, c->identity,
	            bd_status_name(code), why);
	bd_unary_fail(c, code, "%s", why);
	return false;
}

static void on_unary_requested(bd_tag *tag, bool ok)
{
	bd_unary *c = bd_container_of(tag, bd_unary, tag);
	bd_server *s = c->server;
	char why[512];

	if (!ok) { /* the server is shutting down: no call came */
		unary_free(c);
		return;
	}
	c->started_ns = now_ns();
	s->calls_active++;
	if (!s->shutting_down)
		unary_arm(s, c->method);
	if (s->calls_active > s->limits.calls_max) {
		bd_unary_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
		              "budgetd is at its limit of %u calls in progress; retry with backoff",
		              s->limits.calls_max);
		return;
	}
	if (!admitted(c))
		return;
	if (!c->payload) {
		bd_unary_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "the request message is missing");
		return;
	}
	c->request = bd_unpack(c->method->m.request, c->payload, &c->arena, why, sizeof(why));
	if (!c->request) {
		bd_unary_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "%s", why);
		return;
	}
	c->method->m.handle(c);
}

/* ---- unknown methods ---- */

static void unknown_free(unknown_call *u)
{
	if (u->call)
		grpc_call_unref(u->call);
	grpc_call_details_destroy(&u->details);
	grpc_metadata_array_destroy(&u->metadata);
	grpc_slice_unref(u->status_details);
	free(u);
}

static void on_unknown_done(bd_tag *tag, bool ok)
{
	(void)ok;
	unknown_free(bd_container_of(tag, unknown_call, tag));
}

static void on_unknown_requested(bd_tag *tag, bool ok);

static void unknown_arm(bd_server *s)
{
	unknown_call *u = calloc(1, sizeof(*u));

	if (!u)
		return;
	u->tag.fn = on_unknown_requested;
	u->server = s;
	u->status_details = grpc_empty_slice();
	grpc_call_details_init(&u->details);
	grpc_metadata_array_init(&u->metadata);
	grpc_call_error e = grpc_server_request_call(s->server, &u->call, &u->details, &u->metadata,
	                                             s->cq, s->cq, &u->tag);
	if (e != GRPC_CALL_OK) {
		bd_log_error("cannot request calls to unknown methods: grpc_call_error %d", (int)e);
		unknown_free(u);
	}
}

static void on_unknown_requested(bd_tag *tag, bool ok)
{
	unknown_call *u = bd_container_of(tag, unknown_call, tag);
	char message[512];
	grpc_op ops[3];

	if (!ok) {
		unknown_free(u);
		return;
	}
	if (!u->server->shutting_down)
		unknown_arm(u->server);
	char *method = grpc_slice_to_c_string(u->details.method);
	(void)snprintf(message, sizeof(message), "budgetd has no method %s",
	               method ? method : "(unreadable)");
	gpr_free(method);
	memset(ops, 0, sizeof(ops));
	u->status_details = grpc_slice_from_copied_string(message);
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[1].data.send_status_from_server.status = GRPC_STATUS_UNIMPLEMENTED;
	ops[1].data.send_status_from_server.status_details = &u->status_details;
	ops[2].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[2].data.recv_close_on_server.cancelled = &u->cancelled;
	u->tag.fn = on_unknown_done;
	grpc_call_error e = grpc_call_start_batch(u->call, ops, 3, &u->tag, NULL);
	if (e != GRPC_CALL_OK) {
		bd_log_error("cannot answer a call to %s: grpc_call_error %d", message, (int)e);
		unknown_free(u);
	}
}

/* ---- streaming methods ---- */

static void on_stream_requested(bd_tag *tag, bool ok);

static void stream_arm(bd_server *s, method_entry *me)
{
	stream_request *r = calloc(1, sizeof(*r));

	if (!r) {
		bd_log_error("out of memory arming %s: it takes no new calls", me->name);
		return;
	}
	r->tag.fn = on_stream_requested;
	r->server = s;
	r->method = me;
	grpc_metadata_array_init(&r->metadata);
	if (grpc_server_request_registered_call(s->server, me->registered, &r->call, &r->deadline,
	                                        &r->metadata, NULL, s->cq, s->cq,
	                                        &r->tag) != GRPC_CALL_OK) {
		grpc_metadata_array_destroy(&r->metadata);
		free(r);
	}
}

static void on_stream_requested(bd_tag *tag, bool ok)
{
	stream_request *r = bd_container_of(tag, stream_request, tag);

	if (ok) {
		if (!r->server->shutting_down)
			stream_arm(r->server, r->method);
		r->method->stream(r->method->stream_ctx, r->call); /* takes the call */
	}
	grpc_metadata_array_destroy(&r->metadata);
	free(r);
}

/* ---- the server ---- */

static const char *last_path_element(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

static method_entry *add_method(bd_server *s, const char *path, bool with_payload)
{
	if (s->started || s->n_methods == METHODS_MAX)
		return NULL;
	method_entry *me = &s->methods[s->n_methods];
	me->registered = grpc_server_register_method(
	        s->server, path, NULL,
	        with_payload ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER : GRPC_SRM_PAYLOAD_NONE,
	        0);
	if (!me->registered)
		return NULL;
	me->name = last_path_element(path);
	s->n_methods++;
	return me;
}

int bd_server_add_unary(bd_server *s, const bd_unary_method *m)
{
	method_entry *me = add_method(s, m->path, true);

	if (!me)
		return -EINVAL;
	me->m = *m;
	if (me->m.armed == 0)
		me->m.armed = 1;
	return 0;
}

int bd_server_add_stream(bd_server *s, const char *path, bd_stream_fn start, void *ctx)
{
	method_entry *me = add_method(s, path, false);

	if (!me)
		return -EINVAL;
	me->m.path = path;
	me->stream = start;
	me->stream_ctx = ctx;
	return 0;
}

void bd_server_set_observer(bd_server *s, bd_call_observer fn, void *ctx)
{
	s->observer = fn;
	s->observer_ctx = ctx;
}

void bd_server_set_access(bd_server *s, bd_access_fn fn, void *ctx)
{
	s->access = fn;
	s->access_ctx = ctx;
}

int bd_server_create(uv_loop_t *loop, const bd_server_limits *limits, void *app, bd_server **out)
{
	bd_server *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->loop = loop;
	s->limits = *limits;
	s->app = app;
	grpc_arg args[] = {
	        {GRPC_ARG_INTEGER,
	         GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
	         {.integer = limits->max_receive_bytes}},
	        {GRPC_ARG_INTEGER,
	         GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
	         {.integer = limits->max_send_bytes}},
	        {GRPC_ARG_INTEGER,
	         GRPC_ARG_MAX_CONCURRENT_STREAMS,
	         {.integer = limits->max_concurrent_streams}},
	        /* A second budgetd on the same port must fail, not share it. */
	        {GRPC_ARG_INTEGER, GRPC_ARG_ALLOW_REUSEPORT, {.integer = 0}},
	};
	grpc_channel_args channel_args = {sizeof(args) / sizeof(args[0]), args};
	s->server = grpc_server_create(&channel_args, NULL);
	s->cq = grpc_completion_queue_create_for_next(NULL);
	if (!s->server || !s->cq || uv_mutex_init(&s->lock) != 0) {
		free(s);
		return -ENOMEM;
	}
	grpc_server_register_completion_queue(s->server, s->cq, NULL);
	s->wakeup.data = s;
	if (uv_async_init(loop, &s->wakeup, on_wakeup) != 0) {
		grpc_server_destroy(s->server);
		grpc_completion_queue_destroy(s->cq);
		uv_mutex_destroy(&s->lock);
		free(s);
		return -ENOMEM;
	}
	uv_timer_init(loop, &s->grace);
	s->grace.data = s;
	*out = s;
	return 0;
}

int bd_server_listen(bd_server *s, const char *addr, grpc_server_credentials *tls)
{
	grpc_server_credentials *creds = tls ? tls : grpc_insecure_server_credentials_create();
	int port = grpc_server_add_http2_port(s->server, addr, creds);

	if (!tls)
		grpc_server_credentials_release(creds);
	if (port <= 0)
		return -1;
	/* Local clients of the service's group may connect; nobody else. */
	if (strncmp(addr, "unix:", 5) == 0 && chmod(addr + 5, 0660) != 0)
		bd_log_warn("cannot chmod 0660 %s: %s", addr + 5, strerror(errno));
	return strncmp(addr, "unix:", 5) == 0 ? 0 : port;
}

int bd_server_start(bd_server *s)
{
	grpc_server_start(s->server);
	s->started = true;
	if (uv_thread_create(&s->cq_thread, cq_thread_main, s) != 0)
		return -EAGAIN;
	s->cq_thread_running = true;
	for (unsigned i = 0; i < s->n_methods; i++) {
		method_entry *me = &s->methods[i];
		for (unsigned k = 0; k < (me->stream ? 1 : me->m.armed); k++) {
			if (me->stream)
				stream_arm(s, me);
			else
				unary_arm(s, me);
		}
	}
	for (int k = 0; k < UNKNOWN_ARMED; k++)
		unknown_arm(s);
	return 0;
}

static void on_shutdown_complete(bd_tag *tag, bool ok)
{
	bd_server *s = bd_container_of(tag, bd_server, shutdown_tag);

	(void)ok;
	uv_timer_stop(&s->grace);
	if (s->shutdown_done)
		s->shutdown_done(s->shutdown_ctx);
}

static void on_drain_done(uv_timer_t *timer)
{
	bd_server *s = timer->data;

	grpc_server_cancel_all_calls(s->server);
}

static void on_grace_expired(uv_timer_t *timer)
{
	bd_server *s = timer->data;

	bd_log_warn("shutdown grace period over: cancelling %u calls still in progress",
	            s->calls_active);
	grpc_server_cancel_all_calls(s->server);
}

void bd_server_shutdown(bd_server *s, uint64_t grace_ms, void (*done)(void *ctx), void *ctx)
{
	if (s->shutting_down)
		return;
	s->shutting_down = true;
	s->shutdown_done = done;
	s->shutdown_ctx = ctx;
	s->shutdown_tag.fn = on_shutdown_complete;
	grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
	uv_timer_start(&s->grace, on_grace_expired, grace_ms, 0);
	if (s->calls_active == 0)
		drop_idle_connections(s);
}

static void free_server(uv_handle_t *handle)
{
	bd_server *s = handle->data;

	uv_mutex_destroy(&s->lock);
	free(s);
}

/* libuv runs close callbacks newest first: close the handles in a chain so
 * the server is freed after the last of them. */
static void close_wakeup(uv_handle_t *handle)
{
	bd_server *s = handle->data;

	uv_close((uv_handle_t *)&s->wakeup, free_server);
}

void bd_server_destroy(bd_server *s)
{
	if (!s)
		return;
	grpc_server_destroy(s->server);
	grpc_completion_queue_shutdown(s->cq);
	if (s->cq_thread_running)
		uv_thread_join(&s->cq_thread);
	else
		while (grpc_completion_queue_next(s->cq, gpr_inf_past(GPR_CLOCK_REALTIME), NULL)
		               .type != GRPC_QUEUE_SHUTDOWN)
			;
	drain(s); /* the last completions free their calls */
	grpc_completion_queue_destroy(s->cq);
	uv_close((uv_handle_t *)&s->grace, close_wakeup);
}
