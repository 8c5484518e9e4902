/* test_bad_input.c - a table of bad inputs over the wire, each with the
 * status and the message a person would act on.
 *
 * Requests are built with the generated protobuf-c code (or raw bytes, for
 * encodings no library emits) and sent with a raw gRPC call, so nothing in
 * a client library cleans them up first. The daemon runs with a permission
 * file: the unix socket is a kernel limited to capabilities "ok/...", the
 * loopback TCP listener a reader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "budgetd/v1/budget_authority.pb-c.h"
#include "fixture.h"

#define SVC "/budgetd.v1.BudgetAuthority/"

static char perms[] = "/tmp/budgetd-badinput-XXXXXX";

static void setup_bad_input(void)
{
	static const char text[] = "[unix]\nrole = kernel\ncapability_prefix = ok/\n"
	                           "[loopback]\nrole = reader\n";
	static const char *args[] = {"--permissions", perms, NULL};
	int fd = mkstemp(perms);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	memset(&daemon_, 0, sizeof(daemon_));
	client = NULL;
	fx_start(args, NULL);
	bc_client_free(client); /* the unix socket's identity is the kernel here */
	client = fx_client(daemon_.unix_addr, false);
	unlink(perms);
}

TestSuite(bad_input, .init = setup_bad_input, .fini = fx_teardown, .timeout = 120);

/* ---- request builders ---- */

typedef struct authorize_spec {
	const char *cap;
	uint64_t grant;
	uint64_t units;
	const char *hold; /* NULL: none */
	const char *event;
	const char *authority_id;
	const char *lease_id;
	int ttl;       /* ttl_seconds; AUTHORIZE: 0 leaves it unset, TTL_ZERO sends 0 */
	int on_expiry; /* AUTHORIZE: an ExpiryPolicy value, out of range included */
} authorize_spec;

#define TTL_ZERO (-1)

static size_t pack(const ProtobufCMessage *m, unsigned char *buf, size_t size)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	cr_assert_leq(n, size);
	return protobuf_c_message_pack(m, buf);
}

static size_t authorize_bytes(const authorize_spec *s, unsigned char *buf, size_t size)
{
	Budgetd__V1__AuthorizeHoldRequest r = BUDGETD__V1__AUTHORIZE_HOLD_REQUEST__INIT;
	Budgetd__V1__Authority a = BUDGETD__V1__AUTHORITY__INIT;

	r.capability_id = (char *)s->cap;
	r.grant_index = s->grant;
	r.requested_exposure_units = s->units;
	if (s->hold) {
		r._hold_id_case = BUDGETD__V1__AUTHORIZE_HOLD_REQUEST___HOLD_ID_HOLD_ID;
		r.hold_id = (char *)s->hold;
	}
	if (s->event) {
		r._event_id_case = BUDGETD__V1__AUTHORIZE_HOLD_REQUEST___EVENT_ID_EVENT_ID;
		r.event_id = (char *)s->event;
	}
	if (s->authority_id || s->lease_id) {
		a.authority_id = (char *)(s->authority_id ? s->authority_id : "");
		a.lease_id = (char *)(s->lease_id ? s->lease_id : "");
		r.authority = &a;
	}
	if (s->ttl) {
		r._ttl_seconds_case = BUDGETD__V1__AUTHORIZE_HOLD_REQUEST___TTL_SECONDS_TTL_SECONDS;
		r.ttl_seconds = s->ttl == TTL_ZERO ? 0 : (uint32_t)s->ttl;
	}
	r.on_expiry = (Budgetd__V1__ExpiryPolicy)s->on_expiry;
	return pack(&r.base, buf, size);
}

static size_t extend_bytes(const authorize_spec *s, unsigned char *buf, size_t size)
{
	Budgetd__V1__ExtendHoldRequest r = BUDGETD__V1__EXTEND_HOLD_REQUEST__INIT;

	r.capability_id = (char *)s->cap;
	r.grant_index = s->grant;
	r.hold_id = (char *)(s->hold ? s->hold : "");
	r.ttl_seconds = s->ttl > 0 ? (uint32_t)s->ttl : 0;
	return pack(&r.base, buf, size);
}

typedef struct holds_spec {
	const char *token; /* page_token, or NULL */
	int disposition;   /* -1: unset */
	bool has_older;    /* older_than */
	int32_t older_nanos;
} holds_spec;

static size_t list_holds_bytes(uint32_t limit, const char *cap, const holds_spec *h,
                               unsigned char *buf, size_t size)
{
	Budgetd__V1__ListHoldsRequest r = BUDGETD__V1__LIST_HOLDS_REQUEST__INIT;
	Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

	r.limit = limit;
	if (cap) {
		r._capability_id_case =
		        BUDGETD__V1__LIST_HOLDS_REQUEST___CAPABILITY_ID_CAPABILITY_ID;
		r.capability_id = (char *)cap;
	}
	if (h->disposition >= 0) {
		r._disposition_case = BUDGETD__V1__LIST_HOLDS_REQUEST___DISPOSITION_DISPOSITION;
		r.disposition = (Budgetd__V1__HoldDisposition)h->disposition;
	}
	if (h->has_older) {
		t.seconds = 1;
		t.nanos = h->older_nanos;
		r.older_than = &t;
	}
	if (h->token)
		r.page_token = (char *)h->token;
	return pack(&r.base, buf, size);
}

static size_t reconcile_bytes(const char *cap, const char *hold, uint64_t exposed,
                              uint64_t realized, unsigned char *buf, size_t size)
{
	Budgetd__V1__ReconcileHoldRequest r = BUDGETD__V1__RECONCILE_HOLD_REQUEST__INIT;

	r.capability_id = (char *)cap;
	r.exposed_cost_units = exposed;
	r.realized_spend_units = realized;
	if (hold) {
		r._hold_id_case = BUDGETD__V1__RECONCILE_HOLD_REQUEST___HOLD_ID_HOLD_ID;
		r.hold_id = (char *)hold;
	}
	return pack(&r.base, buf, size);
}

static size_t get_hold_bytes(const char *hold, unsigned char *buf, size_t size)
{
	Budgetd__V1__GetHoldRequest r = BUDGETD__V1__GET_HOLD_REQUEST__INIT;
	r.hold_id = (char *)hold;
	return pack(&r.base, buf, size);
}

static size_t list_events_bytes(uint32_t limit, const char *cap, uint64_t grant, bool has_grant,
                                unsigned char *buf, size_t size)
{
	Budgetd__V1__ListMutationEventsRequest r = BUDGETD__V1__LIST_MUTATION_EVENTS_REQUEST__INIT;
	r.limit = limit;
	if (cap) {
		r._capability_id_case =
		        BUDGETD__V1__LIST_MUTATION_EVENTS_REQUEST___CAPABILITY_ID_CAPABILITY_ID;
		r.capability_id = (char *)cap;
	}
	if (has_grant) {
		r._grant_index_case =
		        BUDGETD__V1__LIST_MUTATION_EVENTS_REQUEST___GRANT_INDEX_GRANT_INDEX;
		r.grant_index = grant;
	}
	return pack(&r.base, buf, size);
}

/* ---- the table ---- */

enum via { UNIX, TCP };
enum kind { AUTHORIZE, RECONCILE, GET_HOLD, LIST_EVENTS, EXTEND, LIST_HOLDS, RAW };

typedef struct bad_input {
	const char *what;
	enum via via;
	enum kind kind;
	authorize_spec a;   /* AUTHORIZE; also cap/hold for RECONCILE, GET_HOLD */
	uint64_t exposed;   /* RECONCILE */
	uint64_t realized;  /* RECONCILE */
	uint32_t limit;     /* LIST_EVENTS, LIST_HOLDS */
	bool has_grant;     /* LIST_EVENTS */
	holds_spec holds;   /* LIST_HOLDS (with a.cap) */
	const char *method; /* RAW */
	const char *raw;    /* RAW bytes */
	size_t raw_len;
	grpc_status_code code;
	const char *message; /* a part of the status message */
} bad_input;

#define LONG257                                                                                    \
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
	"xxx"                                                                                      \
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
	"xxx"                                                                                      \
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
#define RAW_BYTES(s) .raw = (s), .raw_len = sizeof(s) - 1

static const bad_input table[] = {
        /* empty and missing */
        {"empty capability",
         UNIX,
         AUTHORIZE,
         {.cap = ""},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "capability_id is required"},
        {"empty hold_id",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .hold = ""},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "hold_id must not be empty"},
        {"empty event_id",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .event = ""},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "event_id must not be empty"},
        {"authority without lease",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .authority_id = "a"},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "authority.lease_id is required"},
        {"authority without id",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .lease_id = "l"},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "authority.authority_id is required"},
        {"empty hold in GetHold",
         UNIX,
         GET_HOLD,
         {.hold = ""},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "hold_id is required"},
        {"empty request message", UNIX, RAW, .method = SVC "AuthorizeHold", RAW_BYTES(""),
         .code = GRPC_STATUS_INVALID_ARGUMENT, .message = "capability_id is required"},
        /* too long */
        {"capability of 257 bytes",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/" LONG257},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "capability_id is longer than 256 bytes"},
        {"hold of 257 bytes",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .hold = LONG257},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "hold_id is longer than 256 bytes"},
        {"event of 257 bytes",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .event = LONG257},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "event_id is longer than 256 bytes"},
        {"authority id of 257 bytes",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .authority_id = LONG257, .lease_id = "l"},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "authority.authority_id is longer than 256 bytes"},
        {"lease id of 257 bytes",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .authority_id = "a", .lease_id = LONG257},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "authority.lease_id is longer than 256 bytes"},
        {"GetHold id of 257 bytes",
         UNIX,
         GET_HOLD,
         {.hold = LONG257},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "hold_id is longer than 256 bytes"},
        {"message over 64 KiB", UNIX, RAW, .method = SVC "AuthorizeHold", .raw = NULL,
         .raw_len = 70000, .code = GRPC_STATUS_RESOURCE_EXHAUSTED, .message = "larger than max"},
        /* invalid UTF-8 */
        {"lone continuation byte",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/\x80"},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "capability_id is not valid UTF-8"},
        {"overlong slash",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/\xc0\xaf"},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "capability_id is not valid UTF-8"},
        {"surrogate",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .hold = "\xed\xa0\x80"},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "hold_id is not valid UTF-8"},
        {"truncated sequence",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .event = "e\xe2\x82"},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "event_id is not valid UTF-8"},
        {"beyond U+10FFFF",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/\xf4\x90\x80\x80"},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "capability_id is not valid UTF-8"},
        {"invalid UTF-8 in the lease",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .authority_id = "a", .lease_id = "\xff"},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "authority.lease_id is not valid UTF-8"},
        /* control characters */
        {"newline",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/a\nb"},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "capability_id contains a control character"},
        {"escape",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .hold = "\x1b[31m"},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "hold_id contains a control character"},
        {"DEL",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .event = "e\x7f"},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "event_id contains a control character"},
        {"C1 control U+0085",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/\xc2\x85"},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "capability_id contains a control character"},
        {"NUL byte inside a string", UNIX, RAW, .method = SVC "AuthorizeHold",
         RAW_BYTES("\x0a\x05ok/\x00x"), .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "a string field contains a NUL byte"},
        /* numbers */
        {"grant beyond u32",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .grant = 1ull << 32},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "grant_index 4294967296 is larger than"},
        {"grant at u64 max",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .grant = UINT64_MAX},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "is larger than 4294967295"},
        {"list grant beyond u32",
         UNIX,
         LIST_EVENTS,
         {.cap = "ok/c", .grant = 1ull << 40},
         .has_grant = true,
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "grant_index"},
        {"page of 1001",
         UNIX,
         LIST_EVENTS,
         {.cap = "ok/c"},
         .limit = 1001,
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "limit 1001 is larger than 1000"},
        {"page of u32 max",
         UNIX,
         LIST_EVENTS,
         {.cap = "ok/c"},
         .limit = UINT32_MAX,
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "limit 4294967295 is larger than 1000"},
        {"realized above exposed",
         UNIX,
         RECONCILE,
         {.cap = "ok/c", .hold = "h"},
         .exposed = 1,
         .realized = 2,
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "cannot realize spend larger than exposed cost"},
        {"varint of 11 bytes", UNIX, RAW, .method = SVC "AuthorizeHold",
         RAW_BYTES("\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
         .code = GRPC_STATUS_INVALID_ARGUMENT, .message = "not a valid"},
        {"overlong varint (non-canonical)", UNIX, RAW, .method = SVC "AuthorizeHold",
         RAW_BYTES("\x0a\x04ok/c\x10\x81\x00"), .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "not canonically encoded"},
        /* wire shapes: enum-like and type errors */
        {"wrong wire type for a string", UNIX, RAW, .method = SVC "AuthorizeHold",
         RAW_BYTES("\x08\x05"), .code = GRPC_STATUS_INVALID_ARGUMENT, .message = "not a valid"},
        {"truncated length", UNIX, RAW, .method = SVC "AuthorizeHold", RAW_BYTES("\x0a\x10ok"),
         .code = GRPC_STATUS_INVALID_ARGUMENT, .message = "not a valid"},
        {"repeated field number (non-canonical)", UNIX, RAW, .method = SVC "AuthorizeHold",
         RAW_BYTES("\x0a\x04ok/c\x0a\x04ok/d"), .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "not canonically encoded"},
        {"explicit default value (non-canonical)", UNIX, RAW, .method = SVC "AuthorizeHold",
         RAW_BYTES("\x0a\x04ok/c\x10\x00"), .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "not canonically encoded"},
        {"unknown field", UNIX, RAW, .method = SVC "AuthorizeHold",
         RAW_BYTES("\x0a\x04ok/c\x98\x06\x01"), .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "has field number 99, which this budgetd does not know"},
        {"unknown field inside the authority", UNIX, RAW, .method = SVC "AuthorizeHold",
         RAW_BYTES("\x0a\x04ok/c\x4a\x03\xa0\x01\x01"), .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "field number 20"},
        {"unknown method", UNIX, RAW, .method = SVC "AuthorizeEverything", RAW_BYTES(""),
         .code = GRPC_STATUS_UNIMPLEMENTED, .message = "budgetd has no method"},
        /* state: unknown hold, wrong grant, closed hold */
        {"unknown hold",
         UNIX,
         RECONCILE,
         {.cap = "ok/c", .hold = "nope"},
         .exposed = 1,
         .code = GRPC_STATUS_FAILED_PRECONDITION,
         .message = "missing budget hold `nope`"},
        {"hold used with another grant",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .grant = 7, .hold = "seed"},
         .code = GRPC_STATUS_ALREADY_EXISTS,
         .message = "budget hold `seed` already exists"},
        {"settle on the wrong capability",
         UNIX,
         RECONCILE,
         {.cap = "ok/other", .hold = "seed"},
         .exposed = 5,
         .code = GRPC_STATUS_FAILED_PRECONDITION,
         .message = "does not match capability/grant"},
        {"GetHold of an unknown hold",
         UNIX,
         GET_HOLD,
         {.hold = "nope"},
         .code = GRPC_STATUS_NOT_FOUND,
         .message = "budget hold `nope` not found"},
        {"reserved event prefix",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .event = "budgetd-auto-1"},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "reserved prefix"},
        /* identities and prefixes */
        {"foreign capability prefix",
         UNIX,
         AUTHORIZE,
         {.cap = "theirs/c"},
         .code = GRPC_STATUS_PERMISSION_DENIED,
         .message = "identity `unix` may not use capability `theirs/c`"},
        {"listing without the prefix",
         UNIX,
         LIST_EVENTS,
         {.cap = NULL},
         .code = GRPC_STATUS_PERMISSION_DENIED,
         .message = "give capability_id"},
        {"listing a foreign prefix",
         UNIX,
         LIST_EVENTS,
         {.cap = "theirs/"},
         .code = GRPC_STATUS_PERMISSION_DENIED,
         .message = "may not use capability `theirs/`"},
        {"a reader mutating",
         TCP,
         AUTHORIZE,
         {.cap = "ok/c"},
         .code = GRPC_STATUS_PERMISSION_DENIED,
         .message = "identity `loopback` (role reader) may not mutate"},
        {"a reader settling",
         TCP,
         RECONCILE,
         {.cap = "ok/c", .hold = "seed"},
         .exposed = 5,
         .code = GRPC_STATUS_PERMISSION_DENIED,
         .message = "may not mutate"},
        {"a reader calling an admin RPC", TCP, RAW, .method = "/budgetd.v1.BudgetAdmin/Verify",
         RAW_BYTES(""), .code = GRPC_STATUS_PERMISSION_DENIED, .message = "may not administer"},
        /* hold deadlines (AuthorizeHold ttl_seconds/on_expiry, ExtendHold) */
        {"ttl_seconds above 30 days",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .hold = "t1", .ttl = 2592001},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "ttl_seconds 2592001 is larger than 2592000"},
        {"ttl_seconds without a hold",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .ttl = 60},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "ttl_seconds needs a hold_id"},
        {"on_expiry without ttl_seconds",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .hold = "t2", .on_expiry = 2},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "on_expiry needs ttl_seconds"},
        {"on_expiry with ttl_seconds 0",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .hold = "t3", .ttl = TTL_ZERO, .on_expiry = 1},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "on_expiry needs ttl_seconds"},
        {"unknown on_expiry value",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .hold = "t4", .ttl = 60, .on_expiry = 7},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "on_expiry 7 is not an expiry policy"},
        {"negative on_expiry value",
         UNIX,
         AUTHORIZE,
         {.cap = "ok/c", .hold = "t5", .ttl = 60, .on_expiry = -1},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "is not an expiry policy"},
        {"extend with ttl_seconds 0",
         UNIX,
         EXTEND,
         {.cap = "ok/c", .hold = "seed", .ttl = 0},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "ttl_seconds must be at least 1"},
        {"extend beyond 30 days",
         UNIX,
         EXTEND,
         {.cap = "ok/c", .hold = "seed", .ttl = 2592001},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "ttl_seconds 2592001 is larger than 2592000"},
        {"extend without a hold",
         UNIX,
         EXTEND,
         {.cap = "ok/c", .ttl = 60},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "hold_id is required"},
        {"extend of an unknown hold",
         UNIX,
         EXTEND,
         {.cap = "ok/c", .hold = "nope", .ttl = 60},
         .code = GRPC_STATUS_FAILED_PRECONDITION,
         .message = "missing budget hold `nope`"},
        {"extend on the wrong grant",
         UNIX,
         EXTEND,
         {.cap = "ok/c", .grant = 3, .hold = "seed", .ttl = 60},
         .code = GRPC_STATUS_FAILED_PRECONDITION,
         .message = "does not match capability/grant"},
        {"extend of a foreign capability",
         UNIX,
         EXTEND,
         {.cap = "theirs/c", .hold = "seed", .ttl = 60},
         .code = GRPC_STATUS_PERMISSION_DENIED,
         .message = "may not use capability `theirs/c`"},
        {"a reader extending",
         TCP,
         EXTEND,
         {.cap = "ok/c", .hold = "seed", .ttl = 60},
         .code = GRPC_STATUS_PERMISSION_DENIED,
         .message = "may not mutate"},
        {"unknown field after the deadline fields", UNIX, RAW, .method = SVC "AuthorizeHold",
         RAW_BYTES("\x0a\x04ok/c\x68\x01"), .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "has field number 13, which this budgetd does not know"},
        /* ListHolds */
        {"holds page of 1001",
         UNIX,
         LIST_HOLDS,
         {.cap = "ok/c"},
         .limit = 1001,
         .holds = {.disposition = -1},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "limit 1001 is larger than 1000"},
        {"page token of another shape",
         UNIX,
         LIST_HOLDS,
         {.cap = "ok/c"},
         .holds = {.token = "garbage", .disposition = -1},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "page_token is not one this server made"},
        {"page token with a padded number",
         UNIX,
         LIST_HOLDS,
         {.cap = "ok/c"},
         .holds = {.token = "1.007.6869", .disposition = -1},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "page_token is not one this server made"},
        {"page token with odd hex",
         UNIX,
         LIST_HOLDS,
         {.cap = "ok/c"},
         .holds = {.token = "1.7.686", .disposition = -1},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "page_token is not one this server made"},
        {"page token with upper-case hex",
         UNIX,
         LIST_HOLDS,
         {.cap = "ok/c"},
         .holds = {.token = "1.7.6A", .disposition = -1},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "page_token is not one this server made"},
        {"page token without a hold",
         UNIX,
         LIST_HOLDS,
         {.cap = "ok/c"},
         .holds = {.token = "1.7.", .disposition = -1},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "page_token is not one this server made"},
        {"page token with a time beyond int64",
         UNIX,
         LIST_HOLDS,
         {.cap = "ok/c"},
         .holds = {.token = "1.9223372036854775808.68", .disposition = -1},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "page_token is not one this server made"},
        {"page token naming an invalid hold id",
         UNIX,
         LIST_HOLDS,
         {.cap = "ok/c"},
         .holds = {.token = "1.7.0a", .disposition = -1},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "hold_id contains a control character"},
        {"older_than with negative nanos",
         UNIX,
         LIST_HOLDS,
         {.cap = "ok/c"},
         .holds = {.disposition = -1, .has_older = true, .older_nanos = -1},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "older_than.nanos -1 is not 0 to 999999999"},
        {"unknown hold disposition",
         UNIX,
         LIST_HOLDS,
         {.cap = "ok/c"},
         .holds = {.disposition = 9},
         .code = GRPC_STATUS_INVALID_ARGUMENT,
         .message = "disposition 9 is not a hold disposition"},
        {"listing holds without the prefix",
         UNIX,
         LIST_HOLDS,
         {.cap = NULL},
         .holds = {.disposition = -1},
         .code = GRPC_STATUS_PERMISSION_DENIED,
         .message = "give capability_id"},
        {"listing holds of a foreign prefix",
         UNIX,
         LIST_HOLDS,
         {.cap = "theirs/"},
         .holds = {.disposition = -1},
         .code = GRPC_STATUS_PERMISSION_DENIED,
         .message = "may not use capability `theirs/`"},
};

static size_t build(const bad_input *b, unsigned char *buf, size_t size)
{
	switch (b->kind) {
	case AUTHORIZE:
		return authorize_bytes(&b->a, buf, size);
	case RECONCILE:
		return reconcile_bytes(b->a.cap, b->a.hold, b->exposed, b->realized, buf, size);
	case GET_HOLD:
		return get_hold_bytes(b->a.hold, buf, size);
	case LIST_EVENTS:
		return list_events_bytes(b->limit, b->a.cap, b->a.grant, b->has_grant, buf, size);
	case EXTEND:
		return extend_bytes(&b->a, buf, size);
	case LIST_HOLDS:
		return list_holds_bytes(b->limit, b->a.cap, &b->holds, buf, size);
	case RAW:
		if (!b->raw) { /* an oversized message: one long capability */
			memset(buf, 'x', b->raw_len);
			buf[0] = 0x0a;
			buf[1] = 0xe8; /* length 69992 as a varint: 0xe8 0xa2 0x04 */
			buf[2] = 0xa2;
			buf[3] = 0x04;
			return b->raw_len;
		}
		memcpy(buf, b->raw, b->raw_len);
		return b->raw_len;
	}
	return 0;
}

static const char *method_of(const bad_input *b)
{
	switch (b->kind) {
	case AUTHORIZE:
		return SVC "AuthorizeHold";
	case RECONCILE:
		return SVC "ReconcileHold";
	case GET_HOLD:
		return SVC "GetHold";
	case LIST_EVENTS:
		return SVC "ListMutationEvents";
	case EXTEND:
		return SVC "ExtendHold";
	case LIST_HOLDS:
		return SVC "ListHolds";
	default:
		return b->method;
	}
}

Test(bad_input, each_bad_input_gets_its_status_and_a_message_naming_the_problem)
{
	static unsigned char buf[80000];
	size_t n = sizeof(table) / sizeof(table[0]);
	char details[1024];
	grpc_status_code code;

	cr_assert_geq(n, 40, "the table has %zu rows", n);
	/* A hold the state rows refer to. */
	bc_authorize_hold_result seed = fx_authorize("ok/c", 0, 5, "seed", NULL, false, 0);
	bc_authorize_hold_result_free(&seed);
	bc_server_info before;
	bc_error err;
	cr_assert_eq(bc_get_server_info(client, 0, &before, &err), 0, "%s", err.message);

	grpc_init();
	for (size_t i = 0; i < n; i++) {
		const bad_input *b = &table[i];
		size_t len = build(b, buf, sizeof(buf));
		const char *target = b->via == UNIX ? daemon_.unix_addr : daemon_.tcp_addr;
		cr_assert_eq(td_raw_call(target, method_of(b), buf, len, &code, details,
		                         sizeof(details), 10000),
		             0, "%s: the call did not complete", b->what);
		cr_assert_eq(code, b->code, "%s: status %d (%s), expected %d", b->what, code,
		             details, b->code);
		cr_assert(strstr(details, b->message), "%s: message `%s` lacks `%s`", b->what,
		          details, b->message);
	}
	grpc_shutdown_blocking(); /* LSan runs at exit: finish the cleanup first */

	bc_server_info after;
	cr_assert_eq(bc_get_server_info(client, 0, &after, &err), 0, "%s", err.message);
	cr_assert_eq(after.commit_index, before.commit_index, "a bad input changed the store");
	bc_server_info_free(&before);
	bc_server_info_free(&after);
}
