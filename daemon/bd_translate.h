/* bd_translate.h - wire requests to store mutations, in one place.
 *
 * Handlers, and the fuzz target that stands in for them, turn a decoded
 * mutation request into the bs_mutation the store validates. Nothing is
 * validated here: the store's rules and messages are the only ones.
 */
#ifndef BD_TRANSLATE_H
#define BD_TRANSLATE_H

#include <protobuf-c/protobuf-c.h>

#include "bs_store.h"
#include "budgetd/v1/budget_authority.pb-c.h"

/* Fills *m from `req`, one of the six mutation requests (authorize,
 * release, reverse, reconcile, capture, increment). Strings are borrowed
 * from `req`, which must outlive *m. *authority (may be NULL) receives the
 * request's Authority message for echoing. 0, or -EINVAL for another
 * message type. */
int bd_translate_mutation(const ProtobufCMessage *req, bs_mutation *m,
                          const Budgetd__V1__Authority **authority);

/* Proto3 cannot tell an empty required string from an absent one; the
 * store's "is required" message is the more helpful one. */
bs_str bd_required_str(const char *s);

/* An optional string: present when its oneof case is set. */
bs_str bd_optional_str(int present_case, const char *s);

#endif
