/* bd_config.h - budgetd's settings: defaults, the config file, the flags.
 *
 * Precedence: a flag beats the file, the file beats the default. Every
 * setting can be given both ways (`--queue-depth 64`, `[server]
 * queue_depth = 64`), through the same parser, so both reject the same
 * values with the same message. The file is INI (parsed with inih); an
 * unknown section or key, or a bad value, fails with "FILE:LINE: ...".
 */
#ifndef BD_CONFIG_H
#define BD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bd_log.h"
#include "bs_store.h"

#define BD_LISTENERS_MAX 8
#define BD_ADDR_LEN_MAX  512
#define BD_PATH_LEN_MAX  4096
#ifndef BD_SYSCONFDIR
#define BD_SYSCONFDIR "/etc"
#endif
#define BD_DEFAULT_CONFIG   BD_SYSCONFDIR "/budgetd/budgetd.conf"
#define BD_DEFAULT_LISTEN   "127.0.0.1:50051"
#define BD_DEFAULT_GRACE_MS 10000
#define BD_GRACE_S_MAX      3600

typedef struct bd_options {
	char listen[BD_LISTENERS_MAX][BD_ADDR_LEN_MAX];
	size_t n_listen;
	char db[BD_PATH_LEN_MAX];
	bs_sync sync;
	char authority_id[BS_ID_LEN_MAX + 1];
	bd_log_level log_level;
	char log_file[BD_PATH_LEN_MAX]; /* "" for stderr */
	uint64_t grace_ms;
	unsigned queue_depth;
	uint64_t watch_lag_max; /* WatchMutationEvents: unsent events before a stream ends */
	char metrics_listen[BD_ADDR_LEN_MAX]; /* "" when off */
	char tls_cert[BD_PATH_LEN_MAX];       /* "" for plaintext TCP */
	char tls_key[BD_PATH_LEN_MAX];
	char tls_client_ca[BD_PATH_LEN_MAX]; /* "" without client certificates */
	bool insecure;                       /* plaintext on non-loopback TCP */
	char permissions[BD_PATH_LEN_MAX];   /* "" for the default policy */
	uint32_t hold_ttl_s;                 /* default hold deadline; 0: none */
	bs_expiry on_expiry;                 /* default policy at a deadline */
	/* what to do */
	char config[BD_PATH_LEN_MAX]; /* the file that was read, or "" */
	bool check_config;            /* validate, print, exit */
	bool verify;                  /* verify --db and exit */
} bd_options;

/* Fills `o` from the defaults, the config file (--config PATH, else
 * BD_DEFAULT_CONFIG when it exists) and the flags. Prints what is wrong on
 * stderr. Returns 0 to run, -1 to exit 0 at once (--help, --version), or an
 * exit status (2: bad usage or configuration). */
int bd_options_load(int argc, char **argv, bd_options *o);

/* Writes the effective settings in config-file form to `out`. */
void bd_options_print(const bd_options *o, FILE *out);

#endif
