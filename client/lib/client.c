/* client.c - the channel, one unary call with retries, event ids, names.
 *
 * One gRPC channel per client (channels are thread-safe); every attempt of
 * every call gets its own pluck completion queue, so calls from several
 * threads never share anything but the channel. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "bc_internal.h"

#ifndef BC_VERSION
#define BC_VERSION "unknown"
#endif

#define BC_PEM_FILE_BYTES_MAX (1024 * 1024) /* a CA bundle, cert or key file */
#define BC_DEADLINE_MS_MAX    (INT_MAX / 2)

struct bc_client {
	grpc_channel *channel;
	int deadline_ms; /* per attempt */
	int max_attempts;
	int backoff_base_ms;
	int backoff_max_ms;
};

int bc__fail(bc_error *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;

		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return -code;
}

/* ---- names ------------------------------------------------------------- */

static const char *const status_names[] = {
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

#define NAME_OF(table, value)                                                                      \
	((value) >= 0 && (size_t)(value) < sizeof(table) / sizeof((table)[0]) ? (table)[value]     \
	                                                                      : NULL)

const char *bc_status_name(int code)
{
	const char *name = NAME_OF(status_names, code);

	return name ? name : "UNKNOWN";
}

const char *bc_guarantee_level_name(int value)
{
	static const char *const names[] = {"GUARANTEE_LEVEL_UNSPECIFIED",
	                                    "GUARANTEE_LEVEL_SINGLE_NODE_ATOMIC"};
	return NAME_OF(names, value);
}

const char *bc_budget_profile_name(int value)
{
	static const char *const names[] = {"BUDGET_PROFILE_UNSPECIFIED",
	                                    "BUDGET_PROFILE_AUTHORITATIVE_HOLD_EVENT"};
	return NAME_OF(names, value);
}

const char *bc_metering_profile_name(int value)
{
	static const char *const names[] = {
	        "METERING_PROFILE_UNSPECIFIED",
	        "METERING_PROFILE_MAX_COST_PREAUTHORIZE_THEN_RECONCILE_ACTUAL"};
	return NAME_OF(names, value);
}

const char *bc_mutation_kind_name(int value)
{
	static const char *const names[] = {
	        "MUTATION_KIND_UNSPECIFIED",        "MUTATION_KIND_INCREMENT_INVOCATION",
	        "MUTATION_KIND_AUTHORIZE_EXPOSURE", "MUTATION_KIND_REVERSE_EXPOSURE",
	        "MUTATION_KIND_RELEASE_EXPOSURE",   "MUTATION_KIND_RECONCILE_SPEND",
	        "MUTATION_KIND_EXPIRE_EXPOSURE",    "MUTATION_KIND_EXTEND_HOLD",
	};
	return NAME_OF(names, value);
}

const char *bc_hold_disposition_name(int value)
{
	static const char *const names[] = {
	        "HOLD_DISPOSITION_UNSPECIFIED", "HOLD_DISPOSITION_OPEN",
	        "HOLD_DISPOSITION_RELEASED",    "HOLD_DISPOSITION_REVERSED",
	        "HOLD_DISPOSITION_RECONCILED",  "HOLD_DISPOSITION_EXPIRED",
	};
	return NAME_OF(names, value);
}

const char *bc_expiry_policy_name(int value)
{
	static const char *const names[] = {
	        "EXPIRY_POLICY_UNSPECIFIED",
	        "EXPIRY_POLICY_CAPTURE",
	        "EXPIRY_POLICY_RELEASE",
	        "EXPIRY_POLICY_REVERSE",
	};
	return NAME_OF(names, value);
}

const char *bc_denial_reason_name(int value)
{
	static const char *const names[] = {
	        "DENIAL_REASON_UNSPECIFIED",
	        "DENIAL_REASON_MAX_INVOCATIONS",
	        "DENIAL_REASON_MAX_COST_PER_INVOCATION",
	        "DENIAL_REASON_MAX_TOTAL_COST",
	};
	return NAME_OF(names, value);
}

const char *bc_serving_status_name(int value)
{
	static const char *const names[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
	return NAME_OF(names, value);
}

/* ---- randomness -------------------------------------------------------- */

/* Fills buf with random bytes from the kernel. Returns 0 or -1 (errno). */
static int random_bytes(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	if (len == 0)
		return 0;

	/* getrandom() unavailable (ENOSYS, seccomp): the device still is. */
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int saved = n < 0 ? errno : EIO;

			close(fd);
			errno = saved;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	close(fd);
	return 0;
}

int bc_event_id_new(char out[BC_EVENT_ID_SIZE], bc_error *err)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[16];

	if (!out)
		return bc__fail(err, BC_STATUS_INVALID_ARGUMENT, "no buffer for the event id");
	if (random_bytes(raw, sizeof(raw)) != 0) {
		out[0] = '\0';
		return bc__fail(err, BC_STATUS_INTERNAL, "cannot read random bytes: %s",
		                strerror(errno));
	}
	for (size_t i = 0; i < sizeof(raw); i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 0x0f];
	}
	out[2 * sizeof(raw)] = '\0';
	return 0;
}

/* ---- client -------------------------------------------------------------- */

/* Reads a whole (small) file into a NUL-terminated heap string. */
static int read_pem(const char *what, const char *path, char **out, bc_error *err)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if (!f)
		return bc__fail(err, BC_STATUS_INVALID_ARGUMENT, "cannot open the %s file %s: %s",
		                what, path, strerror(errno));
	buf = malloc(BC_PEM_FILE_BYTES_MAX + 1);
	if (!buf) {
		rc = bc__fail(err, BC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		goto fail;
	}
	len = fread(buf, 1, BC_PEM_FILE_BYTES_MAX + 1, f);
	if (ferror(f)) {
		rc = bc__fail(err, BC_STATUS_INVALID_ARGUMENT, "cannot read the %s file %s: %s",
		              what, path, strerror(errno));
		goto fail;
	}
	if (len > BC_PEM_FILE_BYTES_MAX) {
		rc = bc__fail(err, BC_STATUS_INVALID_ARGUMENT,
		              "the %s file %s is larger than %d bytes", what, path,
		              BC_PEM_FILE_BYTES_MAX);
		goto fail;
	}
	if (len == 0) {
		rc = bc__fail(err, BC_STATUS_INVALID_ARGUMENT, "the %s file %s is empty", what,
		              path);
		goto fail;
	}
	buf[len] = '\0';
	fclose(f);
	*out = buf;
	return 0;
fail:
	free(buf);
	fclose(f);
	return rc;
}

static void free_pem(char *pem)
{
	if (pem) {
		/* Key material: do not leave it in freed memory. */
		explicit_bzero(pem, strlen(pem));
		free(pem);
	}
}

static int make_credentials(const bc_options *opts, grpc_channel_credentials **out, bc_error *err)
{
	char *ca = NULL, *cert = NULL, *key = NULL;
	grpc_ssl_pem_key_cert_pair pair;
	int rc;

	*out = NULL;
	if (!opts->tls && !opts->ca_file && !opts->cert_file && !opts->key_file) {
		*out = grpc_insecure_credentials_create();
		return 0;
	}
	if (!opts->cert_file != !opts->key_file)
		return bc__fail(err, BC_STATUS_INVALID_ARGUMENT,
		                "a TLS client certificate needs both cert_file and key_file");
	if (opts->ca_file && (rc = read_pem("CA", opts->ca_file, &ca, err)) != 0)
		goto done;
	if (opts->cert_file && (rc = read_pem("certificate", opts->cert_file, &cert, err)) != 0)
		goto done;
	if (opts->key_file && (rc = read_pem("key", opts->key_file, &key, err)) != 0)
		goto done;
	pair.private_key = key;
	pair.cert_chain = cert;
	*out = grpc_ssl_credentials_create(ca, cert ? &pair : NULL, NULL, NULL);
	rc = *out ? 0 : bc__fail(err, BC_STATUS_INVALID_ARGUMENT, "cannot create TLS credentials");
done:
	free_pem(ca);
	free_pem(cert);
	free_pem(key);
	return rc;
}

static int check_ms(const char *name, int value, int max, bc_error *err)
{
	if (value < 0 || value > max)
		return bc__fail(err, BC_STATUS_INVALID_ARGUMENT, "%s must be from 0 to %d, not %d",
		                name, max, value);
	return 0;
}

int bc_client_new(const bc_options *opts, bc_client **out, bc_error *err)
{
	grpc_channel_credentials *creds = NULL;
	bc_client *c;
	int rc;

	if (out)
		*out = NULL;
	if (!opts || !out)
		return bc__fail(err, BC_STATUS_INVALID_ARGUMENT, "no options or no result pointer");
	if (!opts->target || !opts->target[0])
		return bc__fail(err, BC_STATUS_INVALID_ARGUMENT, "no target address");
	if ((rc = check_ms("deadline_ms", opts->deadline_ms, BC_DEADLINE_MS_MAX, err)) != 0 ||
	    (rc = check_ms("max_attempts", opts->max_attempts, BC_MAX_ATTEMPTS_MAX, err)) != 0 ||
	    (rc = check_ms("backoff_base_ms", opts->backoff_base_ms, BC_DEADLINE_MS_MAX, err)) !=
	            0 ||
	    (rc = check_ms("backoff_max_ms", opts->backoff_max_ms, BC_DEADLINE_MS_MAX, err)) != 0)
		return rc;

	c = calloc(1, sizeof(*c));
	if (!c)
		return bc__fail(err, BC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	c->deadline_ms = opts->deadline_ms ? opts->deadline_ms : BC_DEADLINE_MS_DEFAULT;
	c->max_attempts = opts->max_attempts ? opts->max_attempts : BC_MAX_ATTEMPTS_DEFAULT;
	if (opts->disable_retries)
		c->max_attempts = 1;
	c->backoff_base_ms =
	        opts->backoff_base_ms ? opts->backoff_base_ms : BC_BACKOFF_BASE_MS_DEFAULT;
	c->backoff_max_ms = opts->backoff_max_ms ? opts->backoff_max_ms : BC_BACKOFF_MAX_MS_DEFAULT;
	if (c->backoff_max_ms < c->backoff_base_ms) {
		rc = bc__fail(err, BC_STATUS_INVALID_ARGUMENT,
		              "backoff_max_ms (%d) is below backoff_base_ms (%d)",
		              c->backoff_max_ms, c->backoff_base_ms);
		free(c);
		return rc;
	}

	grpc_init();
	if ((rc = make_credentials(opts, &creds, err)) != 0) {
		grpc_shutdown();
		free(c);
		return rc;
	}

	/* Reconnect at the pace of our retries: with gRPC's default (1 s, then
	 * growing to 120 s) a restarted server would not be tried again before
	 * our attempts run out, since attempts fail at once while the channel
	 * waits to reconnect. */
	char user_agent[] = "budgetd-client/" BC_VERSION;
	grpc_arg args[5];
	size_t nargs = 0;

	args[nargs].type = GRPC_ARG_INTEGER;
	args[nargs].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[nargs++].value.integer = BC_RECV_MESSAGE_BYTES_MAX;
	args[nargs].type = GRPC_ARG_STRING;
	args[nargs].key = (char *)GRPC_ARG_PRIMARY_USER_AGENT_STRING;
	args[nargs++].value.string = user_agent;
	args[nargs].type = GRPC_ARG_INTEGER;
	args[nargs].key = (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
	args[nargs++].value.integer = c->backoff_base_ms;
	args[nargs].type = GRPC_ARG_INTEGER;
	args[nargs].key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
	args[nargs++].value.integer = c->backoff_max_ms;
	if (opts->tls_server_name && opts->tls_server_name[0]) {
		args[nargs].type = GRPC_ARG_STRING;
		args[nargs].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
		args[nargs++].value.string = (char *)opts->tls_server_name;
	}
	grpc_channel_args channel_args = {nargs, args};

	/* Never NULL: a bad target gives a channel whose calls fail. */
	c->channel = grpc_channel_create(opts->target, creds, &channel_args);
	grpc_channel_credentials_release(creds);
	*out = c;
	return 0;
}

void bc_client_free(bc_client *client)
{
	if (!client)
		return;
	grpc_channel_destroy(client->channel);
	free(client);
	grpc_shutdown();
}

/* ---- one call ------------------------------------------------------------ */

/* Waits `ms` before a retry while driving the channel's connection: gRPC
 * makes progress on a connection only while some thread polls, and a call
 * made while the channel waits out its reconnect backoff fails at once.
 * So: watch the connectivity state (which polls) until the time is up, and
 * when the channel is then still down, cut its backoff short so the next
 * attempt connects afresh instead of failing on a stale state. */
static void wait_before_retry(bc_client *c, int ms)
{
	gpr_timespec until =
	        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_connectivity_state st;
	int tag = 0;

	for (;;) {
		st = grpc_channel_check_connectivity_state(c->channel, 1);
		if (gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), until) >= 0)
			break;
		grpc_channel_watch_connectivity_state(c->channel, st, until, cq, &tag);
		grpc_event ev = grpc_completion_queue_pluck(
		        cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type != GRPC_OP_COMPLETE || !ev.success)
			break; /* the deadline: no change */
	}
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	st = grpc_channel_check_connectivity_state(c->channel, 1);
	if (st != GRPC_CHANNEL_READY && st != GRPC_CHANNEL_CONNECTING)
		grpc_channel_reset_connect_backoff(c->channel);
}

/* The wait before retry number `retry` (1 = the first retry): the base
 * doubled per retry, capped, with "equal jitter" (half fixed, half random)
 * so that clients failing together do not retry together. */
static int backoff_ms(const bc_client *c, int retry)
{
	int64_t d = c->backoff_base_ms;
	uint32_t r;

	for (int i = 1; i < retry && d < c->backoff_max_ms; i++)
		d *= 2;
	if (d > c->backoff_max_ms)
		d = c->backoff_max_ms;
	if (random_bytes(&r, sizeof(r)) != 0)
		r = (uint32_t)time(NULL) * 2654435761u;
	return (int)(d / 2 + (int64_t)(r % (uint32_t)(d / 2 + 1)));
}

static bool retryable(bc__retry retry, int code)
{
	if (code == BC_STATUS_UNAVAILABLE)
		return true;
	return retry == BC__RETRY_MUTATION && code == BC_STATUS_DEADLINE_EXCEEDED;
}

static int decode(grpc_byte_buffer *buf, const ProtobufCMessageDescriptor *desc,
                  ProtobufCMessage **resp, bc_error *err)
{
	grpc_byte_buffer_reader reader;
	grpc_slice all;

	if (!grpc_byte_buffer_reader_init(&reader, buf))
		return bc__fail(err, BC_STATUS_INTERNAL, "cannot read the response of %s",
		                desc->name);
	all = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	*resp = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(all),
	                                  GRPC_SLICE_START_PTR(all));
	grpc_slice_unref(all);
	if (!*resp)
		return bc__fail(err, BC_STATUS_INTERNAL, "cannot decode the %s from the server",
		                desc->name);
	return 0;
}

/* A call's non-OK status as our error: its message, else gRPC's. */
static int status_error(grpc_status_code status, grpc_slice details, const char *error_string,
                        bc_error *err)
{
	size_t n = GRPC_SLICE_LENGTH(details);
	/* A code outside the known ones is UNKNOWN, as gRPC says. */
	int code = (int)status > 0 && (int)status <= BC_STATUS_UNAUTHENTICATED ? (int)status
	                                                                       : BC_STATUS_UNKNOWN;

	if (n > 0)
		return bc__fail(err, code, "%.*s", (int)(n < INT_MAX ? n : INT_MAX),
		                (const char *)GRPC_SLICE_START_PTR(details));
	if (error_string)
		return bc__fail(err, code, "%s", error_string);
	return bc__fail(err, code, "%s", bc_status_name((int)status));
}

/* One call and everything it owns, on a private completion queue. */
typedef struct call_io {
	grpc_completion_queue *cq;
	grpc_call *call;
	grpc_byte_buffer *send, *recv;
	grpc_metadata_array initial_md, trailing_md;
	grpc_status_code status;
	grpc_slice details;
	const char *error_string;
} call_io;

/* Creates the call to `method` (deadline_ms 0: none) with the request
 * bytes in `payload`, whose reference it takes. Release with call_end. */
static void call_begin(bc_client *c, const char *method, grpc_slice payload, int deadline_ms,
                       call_io *io)
{
	gpr_timespec deadline =
	        deadline_ms ? gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
	                                   gpr_time_from_millis(deadline_ms, GPR_TIMESPAN))
	                    : gpr_inf_future(GPR_CLOCK_MONOTONIC);

	memset(io, 0, sizeof(*io));
	io->cq = grpc_completion_queue_create_for_pluck(NULL);
	io->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, io->cq,
	                                    grpc_slice_from_static_string(method), NULL, deadline,
	                                    NULL);
	io->send = grpc_raw_byte_buffer_create(&payload, 1);
	grpc_slice_unref(payload);
	grpc_metadata_array_init(&io->initial_md);
	grpc_metadata_array_init(&io->trailing_md);
	io->status = GRPC_STATUS_UNKNOWN;
	io->details = grpc_empty_slice();
}

static void call_end(call_io *io)
{
	if (io->recv)
		grpc_byte_buffer_destroy(io->recv);
	grpc_byte_buffer_destroy(io->send);
	grpc_metadata_array_destroy(&io->initial_md);
	grpc_metadata_array_destroy(&io->trailing_md);
	grpc_slice_unref(io->details);
	gpr_free((void *)io->error_string);
	grpc_call_unref(io->call);
	grpc_completion_queue_shutdown(io->cq);
	grpc_completion_queue_destroy(io->cq);
}

/* The ops that open a call: send the request, close, read the headers. */
static void ops_send_request(grpc_op *ops, call_io *io)
{
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = io->send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &io->initial_md;
}

static void op_recv_status(grpc_op *op, call_io *io)
{
	op->op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	op->data.recv_status_on_client.trailing_metadata = &io->trailing_md;
	op->data.recv_status_on_client.status = &io->status;
	op->data.recv_status_on_client.status_details = &io->details;
	op->data.recv_status_on_client.error_string = &io->error_string;
}

/* One attempt: one call on a private completion queue, with one batch. */
static int attempt(bc_client *c, const char *method, const uint8_t *data, size_t len,
                   const ProtobufCMessageDescriptor *desc, int deadline_ms, ProtobufCMessage **resp,
                   bc_error *err)
{
	call_io io;
	grpc_op ops[6];
	int tag = 0;
	int rc;

	call_begin(c, method, grpc_slice_from_copied_buffer((const char *)data, len), deadline_ms,
	           &io);
	memset(ops, 0, sizeof(ops));
	ops_send_request(ops, &io);
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &io.recv;
	op_recv_status(&ops[5], &io);

	grpc_call_error ce = grpc_call_start_batch(io.call, ops, 6, &tag, NULL);

	if (ce != GRPC_CALL_OK) {
		rc = bc__fail(err, BC_STATUS_INTERNAL, "cannot start the call %s: %s", method,
		              grpc_call_error_to_string(ce));
		goto done;
	}
	/* The call's deadline bounds the wait: RECV_STATUS always completes. */
	grpc_event ev =
	        grpc_completion_queue_pluck(io.cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);

	if (ev.type != GRPC_OP_COMPLETE) {
		rc = bc__fail(err, BC_STATUS_INTERNAL, "the call %s did not complete", method);
		goto done;
	}
	if (io.status != GRPC_STATUS_OK) {
		rc = status_error(io.status, io.details, io.error_string, err);
		goto done;
	}
	if (!io.recv) {
		rc = bc__fail(err, BC_STATUS_INTERNAL, "the server sent no response to %s", method);
		goto done;
	}
	rc = decode(io.recv, desc, resp, err);
done:
	call_end(&io);
	return rc;
}

int bc__unary(bc_client *c, const char *method, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, bc__retry retry, int deadline_ms,
              ProtobufCMessage **resp, bc_error *err)
{
	uint8_t *data;
	size_t len;
	int rc;

	*resp = NULL;
	if (deadline_ms < 0 || deadline_ms > BC_DEADLINE_MS_MAX)
		return bc__fail(err, BC_STATUS_INVALID_ARGUMENT,
		                "the deadline must be from 0 to %d ms, not %d", BC_DEADLINE_MS_MAX,
		                deadline_ms);
	if (deadline_ms == 0)
		deadline_ms = c->deadline_ms;

	len = protobuf_c_message_get_packed_size(req);
	data = malloc(len ? len : 1);
	if (!data)
		return bc__fail(err, BC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	protobuf_c_message_pack(req, data);

	/* The same bytes every attempt: a mutation keeps its event_id. */
	for (int n = 1;; n++) {
		rc = attempt(c, method, data, len, resp_desc, deadline_ms, resp, err);
		if (rc == 0 || n >= c->max_attempts || !retryable(retry, -rc))
			break;
		wait_before_retry(c, backoff_ms(c, n));
	}
	free(data);
	return rc;
}

/* ---- one server stream ------------------------------------------------------ */

/* Waits for `tag` on the stream's own queue; the call's deadline (or its
 * cancellation) bounds every wait. */
static bool wait_for(grpc_completion_queue *cq, void *tag)
{
	grpc_event ev =
	        grpc_completion_queue_pluck(cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);

	return ev.type == GRPC_OP_COMPLETE && ev.success;
}

int bc__server_stream(bc_client *c, const char *method, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *desc, int deadline_ms, bc__message_fn fn,
                      void *ctx, bc_error *err)
{
	bool sending = false, receiving_status = false, stopped = false;
	int send_tag = 0, status_tag = 0, recv_tag = 0;
	grpc_op ops[4];
	call_io io;
	int rc = 0;

	if (deadline_ms < 0 || deadline_ms > BC_DEADLINE_MS_MAX)
		return bc__fail(err, BC_STATUS_INVALID_ARGUMENT,
		                "the deadline must be from 0 to %d ms, not %d", BC_DEADLINE_MS_MAX,
		                deadline_ms);
	grpc_slice payload = grpc_slice_malloc(protobuf_c_message_get_packed_size(req));
	protobuf_c_message_pack(req, GRPC_SLICE_START_PTR(payload));
	call_begin(c, method, payload, deadline_ms, &io);

	memset(ops, 0, sizeof(ops));
	ops_send_request(ops, &io);
	sending = grpc_call_start_batch(io.call, ops, 4, &send_tag, NULL) == GRPC_CALL_OK;
	memset(ops, 0, sizeof(ops));
	op_recv_status(&ops[0], &io);
	receiving_status = sending && grpc_call_start_batch(io.call, ops, 1, &status_tag, NULL) ==
	                                      GRPC_CALL_OK;
	if (!receiving_status) {
		rc = bc__fail(err, BC_STATUS_INTERNAL, "cannot start the call %s", method);
		(void)grpc_call_cancel(io.call, NULL);
	}
	if (sending)
		(void)wait_for(io.cq, &send_tag); /* a failure shows in the status */

	while (receiving_status) {
		ProtobufCMessage *msg = NULL;

		memset(ops, 0, sizeof(ops));
		ops[0].op = GRPC_OP_RECV_MESSAGE;
		ops[0].data.recv_message.recv_message = &io.recv;
		if (grpc_call_start_batch(io.call, ops, 1, &recv_tag, NULL) != GRPC_CALL_OK) {
			rc = bc__fail(err, BC_STATUS_INTERNAL, "cannot receive from %s", method);
			(void)grpc_call_cancel(io.call, NULL);
			break;
		}
		if (!wait_for(io.cq, &recv_tag) || !io.recv)
			break; /* the stream is over: the status says how */
		rc = decode(io.recv, desc, &msg, err);
		grpc_byte_buffer_destroy(io.recv);
		io.recv = NULL;
		if (rc == 0 && fn(ctx, msg) != 0)
			stopped = true;
		if (msg)
			protobuf_c_message_free_unpacked(msg, NULL);
		if (rc != 0 || stopped) {
			(void)grpc_call_cancel(io.call, NULL);
			break;
		}
	}
	if (receiving_status) {
		(void)wait_for(io.cq, &status_tag);
		if (rc == 0 && !stopped && io.status != GRPC_STATUS_OK)
			rc = status_error(io.status, io.details, io.error_string, err);
	}
	call_end(&io);
	return rc;
}
