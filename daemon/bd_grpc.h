/* bd_grpc.h - gRPC C core on a libuv loop.
 *
 * One thread blocks on the server's completion queue and hands completed
 * tags to the loop (uv_async_send, the whole list drained per wake-up).
 * Every tag callback, RPC state machine, decode and reply runs on the loop
 * thread. Unary methods get a small framework (bd_unary); streaming methods
 * get their grpc_call and drive it with bd_tag callbacks themselves.
 */
#ifndef BD_GRPC_H
#define BD_GRPC_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <uv.h>

#include "bd_arena.h"

/* Embed in any struct whose address is used as a completion-queue tag.
 * `fn` runs on the loop thread with the operation's success flag. */
typedef struct bd_tag bd_tag;
typedef void (*bd_tag_fn)(bd_tag *tag, bool ok);
struct bd_tag {
	bd_tag_fn fn;
	bd_tag *next; /* hand-off list, owned by the bridge */
	bool ok;
};

#define bd_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

typedef struct bd_server bd_server;
typedef struct bd_unary bd_unary;

typedef void (*bd_unary_fn)(bd_unary *call);
/* A new streaming call; the callee owns `call` (and must unref it). */
typedef void (*bd_stream_fn)(void *ctx, grpc_call *call);
/* Observes every finished unary call (metrics, logs). */
typedef void (*bd_call_observer)(void *ctx, const char *method, grpc_status_code code,
                                 uint64_t latency_ns);

typedef struct bd_unary_method {
	const char *path; /* "/budgetd.v1.BudgetAuthority/AuthorizeHold" */
	const ProtobufCMessageDescriptor *request;
	bd_unary_fn handle;
	unsigned armed; /* calls requested ahead of time (>= 1) */
	int access;     /* what the method needs, for the access hook (bd_access) */
} bd_unary_method;

#define BD_IDENTITY_MAX 256 /* bytes of a caller identity */

/* Decides whether a call may run before its request is decoded: fills the
 * caller's identity and an opaque principal, and returns GRPC_STATUS_OK or
 * the status (with `why`) to refuse it with. Loop thread. */
typedef grpc_status_code (*bd_access_fn)(void *ctx, grpc_call *call, int access, char *identity,
                                         size_t identity_len, const void **principal, char *why,
                                         size_t why_len);

typedef struct bd_server_limits {
	int max_receive_bytes;      /* largest request message */
	int max_send_bytes;         /* largest response message */
	int max_concurrent_streams; /* per HTTP/2 connection */
	unsigned calls_max;         /* unary calls in progress at once */
} bd_server_limits;

/* Creates a server whose callbacks run on `loop`. `app` is handed to unary
 * handlers (bd_unary_app). *out is owned by the caller (bd_server_destroy). */
int bd_server_create(uv_loop_t *loop, const bd_server_limits *limits, void *app, bd_server **out);

/* Adds a listener before start: "host:port" or "unix:/path", with TLS
 * credentials (NULL: plaintext; the server takes a reference). Returns the
 * bound port (0 for unix sockets) or a negative value. */
int bd_server_listen(bd_server *s, const char *addr, grpc_server_credentials *creds);

int bd_server_add_unary(bd_server *s, const bd_unary_method *m);
int bd_server_add_stream(bd_server *s, const char *path, bd_stream_fn start, void *ctx);
void bd_server_set_observer(bd_server *s, bd_call_observer fn, void *ctx);
void bd_server_set_access(bd_server *s, bd_access_fn fn, void *ctx);

int bd_server_start(bd_server *s);

/* Stops accepting calls; calls in progress finish. After `grace_ms` the
 * remaining ones are cancelled. `done` runs on the loop once every call
 * has ended. */
void bd_server_shutdown(bd_server *s, uint64_t grace_ms, void (*done)(void *ctx), void *ctx);

/* After shutdown completed: frees everything and joins the queue thread. */
void bd_server_destroy(bd_server *s);

/* ---- unary calls (loop thread only, except where noted) ---- */

const void *bd_unary_request(const bd_unary *c); /* owned by the call */
bd_arena *bd_unary_arena(bd_unary *c);           /* freed when the call ends */
void *bd_unary_app(const bd_unary *c);
const char *bd_unary_identity(const bd_unary *c);  /* "" without an access hook */
const void *bd_unary_principal(const bd_unary *c); /* from the access hook */

/* Each call ends with exactly one of these. */
void bd_unary_reply(bd_unary *c, const ProtobufCMessage *response);
void bd_unary_reply_packed(bd_unary *c, grpc_byte_buffer *response); /* takes ownership */
void bd_unary_fail(bd_unary *c, grpc_status_code code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* ---- message helpers (any thread) ---- */

/* Packs `m` into a new byte buffer owned by the caller. 0 or -ENOMEM. */
int bd_pack(const ProtobufCMessage *m, grpc_byte_buffer **out);

/* Unpacks `bb` into a message allocated in `arena`. On failure returns NULL
 * and writes the reason to why. */
ProtobufCMessage *bd_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb,
                            bd_arena *arena, char *why, size_t why_len);

const char *bd_status_name(grpc_status_code code);

#endif
