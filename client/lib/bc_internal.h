/* bc_internal.h - shared between the files of libbudgetd-client; not
 * installed. Internal non-static names start with bc__. */
#ifndef BC_INTERNAL_H
#define BC_INTERNAL_H

#include <protobuf-c/protobuf-c.h>

#include "budgetd/client.h"

/* Which failures of an attempt are retried. */
typedef enum bc__retry {
	BC__RETRY_READ,     /* UNAVAILABLE: nothing can have been read twice */
	BC__RETRY_MUTATION, /* UNAVAILABLE and DEADLINE_EXCEEDED: the request
	                     * carries an event_id, so a repeat is a replay */
} bc__retry;

/* Fills `err` (when not NULL) with `code` and a formatted message; returns
 * -code. */
int bc__fail(bc_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Makes one unary call of `method` ("/package.Service/Method") with `req`,
 * retried per the client's options and `retry`. On success *resp is the
 * decoded response, owned by the caller (protobuf_c_message_free_unpacked).
 * Returns 0 or -status. */
int bc__unary(bc_client *client, const char *method, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, bc__retry retry, int deadline_ms,
              ProtobufCMessage **resp, bc_error *err);

/* Receives one message of a server stream, decoded and borrowed for the
 * call; returns 0 to go on, anything else to stop. */
typedef int (*bc__message_fn)(void *ctx, const ProtobufCMessage *msg);

/* Makes one server-streaming call of `method` with `req` (one attempt, no
 * retry) and hands each message to `fn`. Returns 0 when `fn` stopped the
 * stream (the call is cancelled) or the server ended it with OK, else
 * -status. `deadline_ms` 0: none. */
int bc__server_stream(bc_client *client, const char *method, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *msg_desc, int deadline_ms,
                      bc__message_fn fn, void *ctx, bc_error *err);

#endif
