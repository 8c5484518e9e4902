/* bd_translate.h - wire requests to store requests, in one place.
 *
 * Handlers, and the fuzz target that stands in for them, turn a decoded
 * mutation request into the bs_mutation the store validates, and a
 * ListHolds request into its bs_hold_query. Nothing the store can decide is
 * validated here: the store's rules and messages are the only ones. What
 * only the daemon knows (its page tokens, the range of a wire Timestamp) is
 * checked here.
 */
#ifndef BD_TRANSLATE_H
#define BD_TRANSLATE_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#include "bs_store.h"
#include "budgetd/v1/budget_authority.pb-c.h"

/* The longest page token: "1.<created_at_ns>.<hex of hold_id>". */
#define BD_PAGE_TOKEN_LEN_MAX (2 + 20 + 1 + 2 * BS_ID_LEN_MAX)

/* What an AuthorizeHold leaves to the server (--hold-ttl, --on-expiry). */
typedef struct bd_hold_defaults {
	uint32_t ttl_seconds; /* for a hold whose request has no ttl_seconds; 0: none */
	bs_expiry on_expiry;  /* for a deadline whose request names no policy */
} bd_hold_defaults;

/* Fills *m from `req`, one of the seven mutation requests (authorize,
 * release, reverse, reconcile, capture, increment, extend). `defaults`
 * (NULL: no TTL, capture) fill what an authorize leaves unset. Strings are
 * borrowed from `req`, which must outlive *m. *authority (may be NULL)
 * receives the request's Authority message for echoing. 0, or -EINVAL for
 * another message type. */
int bd_translate_mutation(const ProtobufCMessage *req, const bd_hold_defaults *defaults,
                          bs_mutation *m, const Budgetd__V1__Authority **authority);

/* Fills *q from a ListHolds request. The page token's hold id is decoded
 * into `id_buf` (BS_ID_LEN_MAX bytes), which *q borrows, as it borrows
 * `r`. 0, or -EINVAL with the reason (for the caller: INVALID_ARGUMENT) in
 * `why`. */
int bd_translate_hold_query(const Budgetd__V1__ListHoldsRequest *r, bs_hold_query *q, char *id_buf,
                            char *why, size_t why_len);

/* Writes the page token of the position after `h` into `out`
 * (BD_PAGE_TOKEN_LEN_MAX + 1 bytes); bd_translate_hold_query reads it. */
void bd_page_token(const bs_hold *h, char *out);

/* Proto3 cannot tell an empty required string from an absent one; the
 * store's "is required" message is the more helpful one. */
bs_str bd_required_str(const char *s);

/* An optional string: present when its oneof case is set. */
bs_str bd_optional_str(int present_case, const char *s);

#endif
