/* bd_watch.c - see bd_watch.h.
 *
 * A watcher has up to four things outstanding: its RECV_CLOSE_ON_SERVER,
 * one receive or send (io_tag), its status (status_tag: it may overlap the
 * last send, and HTTP/2 delivers it after that message) and one read job.
 * It is freed when the last of them completes. While the job is with the
 * writer, the writer thread owns the watcher's page; the loop touches it
 * only once the job is back.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_convert.h"
#include "bd_log.h"
#include "bd_status.h"
#include "bd_watch.h"
#include "budgetd/v1/budget_authority.pb-c.h"

#define WATCH_METHOD       "/budgetd.v1.BudgetAuthority/WatchMutationEvents"
#define STATUS_MESSAGE_MAX (BS_ERROR_MESSAGE_MAX + 160)

typedef struct watcher watcher;

struct bd_watch {
	bd_app *app;
	uint64_t lag_max;  /* unsent events committed since a stream started */
	bool closing;      /* the server is going away: no new streams */
	watcher *watchers; /* doubly linked */
	unsigned n_watchers;
};

/* What one read job brings back; filled on the writer thread. */
typedef struct page {
	grpc_byte_buffer *msgs[BD_WATCH_PAGE_EVENTS]; /* packed MutationEvents, owned */
	uint64_t seqs[BD_WATCH_PAGE_EVENTS];          /* their event_seq */
	size_t n;                                     /* messages in msgs */
	size_t next;                                  /* the next one to send */
	uint64_t last_seq; /* the last event listed, sent or skipped; 0: none */
	uint64_t head;     /* the commit index when the page was read */
	int store_rc;      /* BS_OK, or the store's error (in `error`) */
	bs_error error;
	bool out_of_memory;
} page;

struct watcher {
	bd_watch *watch;
	grpc_call *call;
	bd_tag io_tag;     /* the request, then each message */
	bd_tag status_tag; /* SEND_STATUS_FROM_SERVER */
	bd_tag close_tag;  /* RECV_CLOSE_ON_SERVER */
	bd_job job;        /* the page read */
	int pending;       /* batches and jobs outstanding */
	bool io_busy;      /* io_tag in flight */
	bool reading;      /* the job is with the writer (so is `page`) */
	bool started;      /* a page came back: baseline and head are known */
	bool metadata_sent;
	bool ended; /* the call is over or ending: send nothing more */
	int cancelled;
	grpc_byte_buffer *in;  /* the request */
	grpc_byte_buffer *out; /* the message in flight */
	grpc_slice details;
	/* the request */
	char *capability; /* the filter, owned; NULL: every capability */
	size_t capability_len;
	const bd_principal *principal;
	char identity[BD_IDENTITY_MAX];
	/* the position in the log */
	uint64_t cursor;       /* the last event listed: sent or skipped */
	uint64_t sent_through; /* every event of the stream up to here is sent */
	uint64_t baseline;     /* the commit index at the start: lag counts above it */
	uint64_t head;         /* the newest commit index heard of */
	page page;
	watcher *prev, *next;
};

static void pump(watcher *w);

/* ---- lifetime ---- */

static void page_clear(page *p)
{
	for (size_t i = p->next; i < p->n; i++)
		grpc_byte_buffer_destroy(p->msgs[i]);
	p->n = p->next = 0;
}

static void unlink_watcher(watcher *w)
{
	bd_watch *m = w->watch;

	if (w->prev)
		w->prev->next = w->next;
	else if (m->watchers == w)
		m->watchers = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
}

static void watcher_release(watcher *w)
{
	if (--w->pending > 0)
		return;
	unlink_watcher(w);
	w->watch->n_watchers--;
	page_clear(&w->page);
	if (w->in)
		grpc_byte_buffer_destroy(w->in);
	if (w->out)
		grpc_byte_buffer_destroy(w->out);
	grpc_slice_unref(w->details);
	free(w->capability);
	grpc_call_unref(w->call);
	free(w);
}

static bool start_batch(watcher *w, const grpc_op *ops, size_t n, bd_tag *tag)
{
	w->pending++;
	grpc_call_error e = grpc_call_start_batch(w->call, ops, n, tag, NULL);
	if (e == GRPC_CALL_OK)
		return true;
	bd_log_error("watch: cannot start a batch: grpc_call_error %d", (int)e);
	w->pending--;
	return false;
}

static void on_status(bd_tag *tag, bool ok)
{
	(void)ok;
	watcher_release(bd_container_of(tag, watcher, status_tag));
}

/* Ends the stream with a status (after the message in flight, if any). */
static void finish(watcher *w, grpc_status_code code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void finish(watcher *w, grpc_status_code code, const char *fmt, ...)
{
	char message[STATUS_MESSAGE_MAX];
	grpc_op ops[2];
	size_t n = 0;
	va_list ap;

	if (w->ended)
		return;
	w->ended = true;
	va_start(ap, fmt);
	(void)vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (!w->reading)
		page_clear(&w->page);
	bd_log_debug("watch by `%s` ended: %s: %s", w->identity, bd_status_name(code), message);
	memset(ops, 0, sizeof(ops));
	if (!w->metadata_sent) {
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
		w->metadata_sent = true;
	}
	w->details = grpc_slice_from_copied_string(message);
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = code;
	ops[n].data.send_status_from_server.status_details = &w->details;
	n++;
	w->status_tag.fn = on_status;
	if (!start_batch(w, ops, n, &w->status_tag))
		(void)grpc_call_cancel_with_status(w->call, code, message, NULL);
}

/* ---- reading the log (writer thread) ---- */

static int skip_event(void *ctx, const bs_event *e)
{
	(void)ctx;
	(void)e;
	return 1;
}

/* A page being read: the messages are built in one arena for the page. */
typedef struct page_reader {
	watcher *w;
	bd_arena arena;
} page_reader;

static int collect_event(void *ctx, const bs_event *e)
{
	page_reader *r = ctx;
	watcher *w = r->w;
	page *p = &w->page;

	if (w->capability &&
	    (e->capability_id.len != w->capability_len ||
	     memcmp(e->capability_id.ptr, w->capability, w->capability_len) != 0)) {
		p->last_seq = e->event_seq;
		return 0;
	}
	Budgetd__V1__MutationEvent *m = bd_event_msg(&r->arena, e);
	int rc = m ? bd_pack(&m->base, &p->msgs[p->n]) : -ENOMEM;
	if (rc != 0) {
		p->out_of_memory = true;
		return 1;
	}
	p->seqs[p->n++] = e->event_seq;
	p->last_seq = e->event_seq;
	return 0;
}

static void read_page(bd_job *job, bs_store *store)
{
	watcher *w = bd_container_of(job, watcher, job);
	page *p = &w->page;
	const bs_str filter = {w->capability, w->capability_len};
	page_reader r = {.w = w};

	p->store_rc = bs_store_commit_index(store, &p->head, &p->error);
	/* The filter is the store's to validate, with its rules and messages:
	 * a filtered listing past the end of the log checks it and lists
	 * nothing. Once only: it brings the derived tables up to date. */
	if (p->store_rc == BS_OK && !w->started && w->capability)
		p->store_rc = bs_store_list_events(store, 1, filter, false, 0, p->head, skip_event,
		                                   NULL, &p->error);
	/* The pages themselves are unfiltered: the log is always current. */
	if (p->store_rc == BS_OK) {
		bd_arena_init(&r.arena);
		p->store_rc = bs_store_list_events(store, BD_WATCH_PAGE_EVENTS, (bs_str){0}, false,
		                                   0, w->cursor, collect_event, &r, &p->error);
		bd_arena_reset(&r.arena);
	}
}

/* ---- the state machine (loop thread) ---- */

static void page_done(bd_job *job)
{
	watcher *w = bd_container_of(job, watcher, job);
	page *p = &w->page;

	w->reading = false;
	if (w->ended) {
		page_clear(p);
	} else if (p->store_rc != BS_OK && !w->started) {
		finish(w, bd_status_from_store(p->store_rc), "%s", p->error.message);
	} else if (p->store_rc != BS_OK) {
		finish(w, bd_status_from_store(p->store_rc),
		       "%s; resume from commit index %" PRIu64, p->error.message, w->sent_through);
	} else if (p->out_of_memory) {
		finish(w, GRPC_STATUS_RESOURCE_EXHAUSTED,
		       "out of memory reading the log; resume from commit index %" PRIu64,
		       w->sent_through);
	} else {
		if (!w->started)
			w->baseline = p->head;
		w->started = true;
		if (p->head > w->head)
			w->head = p->head;
		if (p->last_seq > w->cursor)
			w->cursor = p->last_seq;
		pump(w);
	}
	watcher_release(w);
}

static void submit_read(watcher *w)
{
	bd_writer *writer = w->watch->app->writer;

	w->page.n = w->page.next = 0;
	w->page.last_seq = 0;
	w->page.out_of_memory = false;
	w->job.mutation = NULL;
	w->job.read = read_page;
	w->job.done = page_done;
	w->reading = true;
	w->pending++;
	int rc = bd_writer_submit(writer, &w->job);
	if (rc == 0)
		return;
	w->reading = false;
	w->pending--;
	if (rc == -EAGAIN)
		finish(w, GRPC_STATUS_RESOURCE_EXHAUSTED,
		       "the request queue is full (%u requests waiting); resume from commit index "
		       "%" PRIu64,
		       bd_writer_queue_max(writer), w->sent_through);
	else if (rc == -ESHUTDOWN)
		finish(w, GRPC_STATUS_UNAVAILABLE,
		       "budgetd is shutting down; resume from commit index %" PRIu64,
		       w->sent_through);
	else
		finish(w, GRPC_STATUS_INTERNAL, "cannot queue a read of the log: %s",
		       strerror(-rc));
}

static void on_sent(bd_tag *tag, bool ok)
{
	watcher *w = bd_container_of(tag, watcher, io_tag);

	w->io_busy = false;
	grpc_byte_buffer_destroy(w->out);
	w->out = NULL;
	if (!ok)
		w->ended = true; /* the call is gone */
	else
		pump(w);
	watcher_release(w);
}

static void send_next(watcher *w)
{
	page *p = &w->page;
	grpc_op op;

	w->out = p->msgs[p->next];
	w->sent_through = p->seqs[p->next];
	p->next++;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_MESSAGE;
	op.data.send_message.send_message = w->out;
	w->io_tag.fn = on_sent;
	w->io_busy = true;
	if (start_batch(w, &op, 1, &w->io_tag))
		return;
	w->io_busy = false;
	grpc_byte_buffer_destroy(w->out);
	w->out = NULL;
	finish(w, GRPC_STATUS_INTERNAL, "cannot send an event");
}

/* Unsent events committed since the stream started. */
static uint64_t lag_of(const watcher *w)
{
	uint64_t from = w->sent_through > w->baseline ? w->sent_through : w->baseline;

	return w->head > from ? w->head - from : 0;
}

/* Does the next thing: end, send, read, or wait (for a send, a read or a
 * commit). Never frees the watcher. */
static void pump(watcher *w)
{
	page *p = &w->page;

	if (w->ended)
		return;
	if (w->watch->closing) {
		finish(w, GRPC_STATUS_UNAVAILABLE,
		       "budgetd is shutting down; resume from commit index %" PRIu64,
		       w->sent_through);
		return;
	}
	if (w->started && lag_of(w) > w->watch->lag_max) {
		bd_log_warn("watch by `%s` ended: %" PRIu64
		            " events behind the commit index %" PRIu64 " (--watch-lag-max %" PRIu64
		            ")",
		            w->identity, lag_of(w), w->head, w->watch->lag_max);
		finish(w, GRPC_STATUS_RESOURCE_EXHAUSTED,
		       "the watcher fell too far behind (more than %" PRIu64
		       " events committed since it started are unsent); resume from commit index "
		       "%" PRIu64,
		       w->watch->lag_max, w->sent_through);
		return;
	}
	if (w->io_busy || w->reading)
		return;
	if (p->next < p->n) {
		send_next(w);
		return;
	}
	/* The whole page is out: the skipped events after its last message too. */
	if (w->cursor > w->sent_through)
		w->sent_through = w->cursor;
	if (w->started && w->cursor >= w->head)
		return; /* caught up: the next commit wakes it */
	submit_read(w);
}

/* Capability prefixes of the caller, like ListMutationEvents: a restricted
 * identity names a capability under its prefixes. An empty or malformed
 * filter is the store's to reject. */
static bool permitted(watcher *w, bool has_capability, const char *capability)
{
	if (has_capability) {
		if (!*capability || bd_auth_capability_allowed(w->principal, capability))
			return true;
		finish(w, GRPC_STATUS_PERMISSION_DENIED,
		       "identity `%s` may not use capability `%s`", w->identity, capability);
		return false;
	}
	if (!bd_auth_restricted(w->principal))
		return true;
	finish(w, GRPC_STATUS_PERMISSION_DENIED,
	       "identity `%s` may only list its own capabilities: give capability_id", w->identity);
	return false;
}

static void on_request(bd_tag *tag, bool ok)
{
	watcher *w = bd_container_of(tag, watcher, io_tag);
	char why[256];
	bd_arena arena;

	w->io_busy = false;
	if (!ok) { /* the call is gone */
		w->ended = true;
		watcher_release(w);
		return;
	}
	if (!w->in) { /* half-closed without a request */
		finish(w, GRPC_STATUS_INVALID_ARGUMENT, "no WatchMutationEventsRequest was sent");
		watcher_release(w);
		return;
	}
	bd_arena_init(&arena);
	const Budgetd__V1__WatchMutationEventsRequest *r =
	        (const Budgetd__V1__WatchMutationEventsRequest *)bd_unpack(
	                &budgetd__v1__watch_mutation_events_request__descriptor, w->in, &arena, why,
	                sizeof(why));
	bool has_capability = r && r->_capability_id_case != 0;
	if (!r) {
		finish(w, GRPC_STATUS_INVALID_ARGUMENT, "%s", why);
	} else if (permitted(w, has_capability, r->capability_id)) {
		if (has_capability) {
			w->capability_len = strlen(r->capability_id);
			w->capability = strdup(r->capability_id);
		}
		if (has_capability && !w->capability) {
			finish(w, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		} else {
			w->cursor = w->sent_through = r->after_commit_index;
			bd_log_debug("watch by `%s` from commit index %" PRIu64 "%s%s", w->identity,
			             w->cursor, has_capability ? ", capability " : "",
			             has_capability ? w->capability : "");
			pump(w);
		}
	}
	bd_arena_reset(&arena);
	watcher_release(w);
}

static void on_close(bd_tag *tag, bool ok)
{
	watcher *w = bd_container_of(tag, watcher, close_tag);

	(void)ok;
	w->ended = true; /* the client went away, or the status is out */
	watcher_release(w);
}

/* Refuses a call before it has a watcher. */
static void refuse(grpc_call *call, grpc_status_code code, const char *message)
{
	(void)grpc_call_cancel_with_status(call, code, message, NULL);
	grpc_call_unref(call);
}

static void start_watch(void *ctx, grpc_call *call)
{
	bd_watch *m = ctx;
	watcher *w = NULL;
	grpc_op ops[2];
	char why[512];

	if (m->closing) {
		refuse(call, GRPC_STATUS_UNAVAILABLE, "budgetd is shutting down");
		return;
	}
	if (m->n_watchers >= BD_WATCHERS_MAX || !(w = calloc(1, sizeof(*w)))) {
		refuse(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
		       "too many WatchMutationEvents streams are open; retry later");
		return;
	}
	w->watch = m;
	w->call = call;
	w->details = grpc_empty_slice();
	w->next = m->watchers;
	if (m->watchers)
		m->watchers->prev = w;
	m->watchers = w;
	m->n_watchers++;
	w->pending = 1; /* held until the first batches are started */
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[0].data.recv_close_on_server.cancelled = &w->cancelled;
	w->close_tag.fn = on_close;
	if (!start_batch(w, ops, 1, &w->close_tag)) {
		w->ended = true;
		(void)grpc_call_cancel_with_status(call, GRPC_STATUS_INTERNAL,
		                                   "cannot start the call", NULL);
		watcher_release(w);
		return;
	}
	bd_auth_identity(call, w->identity, sizeof(w->identity));
	grpc_status_code code = bd_auth_check(m->app->auth, w->identity, BD_ACCESS_READ,
	                                      &w->principal, why, sizeof(why));
	if (code != GRPC_STATUS_OK) {
		bd_log_warn("WatchMutationEvents refused for `%s`: %s: %s", w->identity,
		            bd_status_name(code), why);
		finish(w, code, "%s", why);
		watcher_release(w);
		return;
	}
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_RECV_MESSAGE;
	ops[1].data.recv_message.recv_message = &w->in;
	w->io_tag.fn = on_request;
	w->io_busy = true;
	w->metadata_sent = true;
	if (!start_batch(w, ops, 2, &w->io_tag)) {
		w->io_busy = false;
		w->metadata_sent = false;
		finish(w, GRPC_STATUS_INTERNAL, "cannot start the call");
	}
	watcher_release(w);
}

/* The writer's commit listener: every watcher that waits reads on. */
static void on_commit(void *ctx, uint64_t commit_index)
{
	bd_watch *m = ctx;

	for (watcher *w = m->watchers; w; w = w->next) {
		if (commit_index > w->head)
			w->head = commit_index;
		pump(w);
	}
}

/* ---- the module ---- */

int bd_watch_create(bd_app *app, uint64_t lag_max, bd_watch **out)
{
	bd_watch *m;

	*out = NULL;
	if (!app || !app->auth || lag_max < BD_WATCH_LAG_MIN || lag_max > BD_WATCH_LAG_MAX)
		return -EINVAL;
	if (!(m = calloc(1, sizeof(*m))))
		return -ENOMEM;
	m->app = app;
	m->lag_max = lag_max;
	*out = m;
	return 0;
}

int bd_watch_register(bd_watch *m, bd_server *server)
{
	int rc = bd_server_add_stream(server, WATCH_METHOD, start_watch, m);

	if (rc == 0)
		bd_writer_set_commit_listener(m->app->writer, on_commit, m);
	return rc;
}

void bd_watch_close_all(bd_watch *m)
{
	m->closing = true;
	for (watcher *w = m->watchers; w; w = w->next)
		pump(w);
}

void bd_watch_destroy(bd_watch *m)
{
	free(m);
}
