/* bd_convert.h - store records to wire messages, shared by the services.
 *
 * Everything returned is allocated in the arena given, strings included
 * (the store's borrowed strings are copied), and freed with it; NULL when
 * the arena is out of memory. Any thread: the arena's owner's.
 */
#ifndef BD_CONVERT_H
#define BD_CONVERT_H

#include <stdbool.h>
#include <stdint.h>

#include "bd_arena.h"
#include "bs_store.h"
#include "budgetd/v1/budget_authority.pb-c.h"

/* Unix time in nanoseconds as a google.protobuf.Timestamp. */
Google__Protobuf__Timestamp *bd_timestamp_msg(bd_arena *a, int64_t ns);

/* A deadline: NULL (unset on the wire) for 0, which means none; sets
 * *failed when the arena is out of memory. */
Google__Protobuf__Timestamp *bd_deadline_msg(bd_arena *a, int64_t ns, bool *failed);

/* A NUL-terminated copy of `s` ("" for an absent string). */
char *bd_copy_str(bd_arena *a, bs_str s);

Budgetd__V1__Authority *bd_authority_msg(bd_arena *a, const bs_authority *src);

/* One entry of the mutation log as ListMutationEvents and
 * WatchMutationEvents send it. */
Budgetd__V1__MutationEvent *bd_event_msg(bd_arena *a, const bs_event *e);

/* A hold as GetHold and ListHolds send it. */
Budgetd__V1__Hold *bd_hold_msg(bd_arena *a, const bs_hold *h);

#endif
