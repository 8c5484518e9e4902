/* cli.h - budgetctl internals: global state, argument parsing, output. */
#ifndef BC_CLI_H
#define BC_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "budgetd/client.h"

#define CLI_NAME "budgetctl"

/* Exit codes. A gRPC error exits with EXIT_GRPC_BASE + its status code. */
#define EXIT_OK        0 /* done; authorized; allowed; serving */
#define EXIT_DENIED    1 /* denied by a limit; not serving */
#define EXIT_USAGE     2 /* bad command line */
#define EXIT_GRPC_BASE 3 /* 3 alone: a local failure (out of memory, output) */

#define CLI_ADDR_DEFAULT     "127.0.0.1:50051"
#define CLI_ADDR_ENV         "BUDGETD_ADDR"
#define CLI_TIMEOUT_S_MAX    86400            /* --timeout */
#define CLI_LIST_LIMIT_MAX   1000             /* --limit: the server's page size limit */
#define CLI_PAGE_TOKEN_MAX   4096             /* --page-token: bytes */
#define CLI_TIME_SECONDS_MIN (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define CLI_TIME_SECONDS_MAX 253402300799LL   /* 9999-12-31T23:59:59Z */

/* Options shared by every command (accepted before or after COMMAND). */
typedef struct cli {
	const char *command; /* the subcommand being run, for messages */
	const char *addr;
	int timeout_ms; /* 0: the library default */
	bool json;
	bool no_retry;
	const char *tls_ca;
	const char *tls_cert;
	const char *tls_key;
	const char *tls_server_name;
	bool tls;
} cli;

/* Long-option ids of the common options (above any ASCII short option). */
enum {
	OPT_ADDR = 1000,
	OPT_TIMEOUT,
	OPT_JSON,
	OPT_NO_RETRY,
	OPT_TLS,
	OPT_TLS_CA,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_SERVER_NAME,
	OPT_HELP,
	OPT_VERSION,
	OPT_FIRST_COMMAND_OPTION, /* commands number their own options from here */
};

/* The common options as `struct option` entries, to splice into tables. */
/* clang-format off */
#define CLI_COMMON_OPTIONS                                                      \
	{"addr", required_argument, NULL, OPT_ADDR},                            \
	{"timeout", required_argument, NULL, OPT_TIMEOUT},                      \
	{"json", no_argument, NULL, OPT_JSON},                                  \
	{"no-retry", no_argument, NULL, OPT_NO_RETRY},                          \
	{"tls", no_argument, NULL, OPT_TLS},                                    \
	{"tls-ca", required_argument, NULL, OPT_TLS_CA},                        \
	{"tls-cert", required_argument, NULL, OPT_TLS_CERT},                    \
	{"tls-key", required_argument, NULL, OPT_TLS_KEY},                      \
	{"tls-server-name", required_argument, NULL, OPT_TLS_SERVER_NAME},      \
	{"help", no_argument, NULL, OPT_HELP}
/* clang-format on */

/* ---- args.c ---------------------------------------------------------------- */

/* Prints "budgetctl[: command]: <message>" and a hint to --help on stderr;
 * returns EXIT_USAGE. */
int cli_usage_error(const cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict unsigned decimal: digits only (no sign, space or base prefix), at
 * most `max`. On error prints a usage error naming `option`. */
int cli_parse_u64(const cli *c, const char *option, const char *s, uint64_t max, uint64_t *out);

/* --timeout: seconds, a positive decimal with up to 3 fractional digits. */
int cli_parse_timeout(const cli *c, const char *s, int *ms);

/* A point in time: Unix seconds (digits only), or RFC 3339 with a
 * fraction of up to 9 digits and "Z" or an offset
 * ("2026-01-02T03:04:05.5+01:00"), from year 1 to 9999. On error prints a
 * usage error naming `option`. */
int cli_parse_time(const cli *c, const char *option, const char *s, bc_timestamp *out);

/* Handles one common option `id` (OPT_*). Returns 0 when handled, -1 when
 * `id` is not a common option, or an exit code (usage error, or EXIT_OK
 * after --help printed `help`). */
int cli_common_option(cli *c, int id, const char *arg, const char *help);

/* getopt_long over a command's argv (argv[0] is the command name) with
 * error reporting: returns the option id, -1 at the end, or -2 after
 * printing a usage error. */
int cli_getopt(const cli *c, int argc, char **argv, const struct option *opts);

/* Creates the client from the common options. On error prints the line
 * and returns the exit code; 0 on success. */
int cli_connect(const cli *c, bc_client **out);

/* Prints "budgetctl: <what>: <STATUS>: <message>" on stderr and returns
 * EXIT_GRPC_BASE + code. */
int cli_grpc_error(const cli *c, const char *what, const bc_error *err);

/* ---- output.c -------------------------------------------------------------- */

/* An aligned text table (also used for "key: value" blocks). */
typedef struct table table;

table *table_new(size_t ncols, const char *const *headers); /* headers NULL: kv block */
void table_right_align(table *t, size_t col);
void table_add(table *t, ...);                            /* exactly ncols `const char *` cells */
void table_add_cells(table *t, const char *const *cells); /* ncols cells */
/* Adds a row of two cells where the second is printf-formatted. */
void table_kv(table *t, const char *key, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void table_print(table *t, FILE *f); /* prints and frees */
void table_free(table *t);           /* frees without printing; NULL is allowed */

/* Formats for human output; the buffers belong to the caller. */
#define CLI_NUM_SIZE  24
#define CLI_TIME_SIZE 40
const char *fmt_u64(char buf[CLI_NUM_SIZE], uint64_t v);
const char *fmt_time(char buf[CLI_TIME_SIZE], bool has, const bc_timestamp *t); /* RFC 3339 */
/* "max_total_cost" from "DENIAL_REASON_MAX_TOTAL_COST" (prefix stripped,
 * lower case); "unknown(N)" for an unknown value. Returns a static or
 * thread-unsafe buffer: use before the next call. */
const char *enum_short(const char *full, const char *prefix, int value);

/* JSON in protobuf's mapping: lowerCamelCase names, 64-bit integers as
 * strings, enums by name, timestamps as RFC 3339 strings. */
json_t *json_object_or_die(void);                     /* exits when out of memory */
void json_set(json_t *o, const char *key, json_t *v); /* exits when out of memory */
json_t *json_str(const char *s);                      /* "" for NULL */
json_t *json_u64(uint64_t v);
json_t *json_enum(const char *name, int value);
json_t *json_time(const bc_timestamp *t);
json_t *json_authority(const bc_authority_info *a);
json_t *json_metadata(const bc_commit_metadata *m);
json_t *json_usage(const bc_usage_record *u);
json_t *json_event(const bc_mutation_event *e);
json_t *json_hold(const bc_hold *h);
/* Prints `root` indented on stdout and releases it. Returns 0 or
 * EXIT_GRPC_BASE when it cannot be written. */
int json_print(json_t *root);

/* ---- commands.c ------------------------------------------------------------ */

typedef struct command {
	const char *name;
	const char *summary;
	const char *help; /* the full --help text */
	int (*run)(cli *c, int argc, char **argv);
} command;

extern const command cli_commands[];
extern const size_t cli_command_count;

#endif
