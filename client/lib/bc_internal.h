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

#endif
