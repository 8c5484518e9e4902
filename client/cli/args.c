/* args.c - budgetctl: strict argument parsing, common options, errors. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_usage_error(const cli *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", CLI_NAME);
	if (c && c->command)
		fprintf(stderr, "%s: ", c->command);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (c && c->command)
		fprintf(stderr, " (see '%s %s --help')\n", CLI_NAME, c->command);
	else
		fprintf(stderr, " (see '%s --help')\n", CLI_NAME);
	return EXIT_USAGE;
}

int cli_parse_u64(const cli *c, const char *option, const char *s, uint64_t max, uint64_t *out)
{
	char *end = NULL;
	unsigned long long v;

	/* strtoull alone accepts " 1", "+1", "-1" (as a huge value) and "0x1". */
	if (!s || s[0] < '0' || s[0] > '9')
		goto bad;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			goto bad;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE || *end != '\0' || v > max)
		goto bad;
	*out = (uint64_t)v;
	return 0;
bad:
	return cli_usage_error(c, "%s: expected an integer from 0 to %" PRIu64 ", got '%s'", option,
	                       max, s ? s : "");
}

int cli_parse_timeout(const cli *c, const char *s, int *ms)
{
	uint64_t whole = 0, frac = 0;
	int frac_digits = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		goto bad;
	for (; *p >= '0' && *p <= '9'; p++) {
		whole = whole * 10 + (uint64_t)(*p - '0');
		if (whole > CLI_TIMEOUT_S_MAX)
			goto bad;
	}
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			goto bad;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (++frac_digits > 3)
				goto bad;
			frac = frac * 10 + (uint64_t)(*p - '0');
		}
		for (int i = frac_digits; i < 3; i++)
			frac *= 10;
	}
	if (*p != '\0')
		goto bad;
	uint64_t total = whole * 1000 + frac;

	if (total == 0 || total > (uint64_t)CLI_TIMEOUT_S_MAX * 1000)
		goto bad;
	*ms = (int)total;
	return 0;
bad:
	return cli_usage_error(c,
	                       "--timeout: expected seconds above 0 and at most %d, with at most "
	                       "3 decimals (e.g. 2 or 0.5), got '%s'",
	                       CLI_TIMEOUT_S_MAX, s);
}

/* Reads exactly `n` decimal digits at *p into *v and moves *p past them. */
static bool digits(const char **p, int n, int64_t *v)
{
	*v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (**p < '0' || **p > '9')
			return false;
		*v = *v * 10 + (**p - '0');
	}
	return true;
}

/* Reads the character `ch` at *p (either case for letters). */
static bool expect_char(const char **p, char ch)
{
	if (**p != ch && !(ch >= 'A' && ch <= 'Z' && **p == ch - 'A' + 'a'))
		return false;
	(*p)++;
	return true;
}

static int days_in_month(int64_t y, int64_t m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

/* The fraction after the seconds: "" or "." and 1 to 9 digits. */
static bool fraction(const char **p, int32_t *nanos)
{
	int n = 0;

	*nanos = 0;
	if (**p != '.')
		return true;
	for ((*p)++; **p >= '0' && **p <= '9'; (*p)++, n++) {
		if (n == 9)
			return false;
		*nanos = *nanos * 10 + (**p - '0');
	}
	for (int i = n; i < 9; i++)
		*nanos *= 10;
	return n > 0;
}

/* "Z", or "+hh:mm" / "-hh:mm": the offset east of UTC in seconds. */
static bool utc_offset(const char **p, int64_t *offset)
{
	int64_t h, m;
	int sign;

	if (expect_char(p, 'Z')) {
		*offset = 0;
		return true;
	}
	if (**p != '+' && **p != '-')
		return false;
	sign = **p == '-' ? -1 : 1;
	(*p)++;
	if (!digits(p, 2, &h) || !expect_char(p, ':') || !digits(p, 2, &m) || h > 23 || m > 59)
		return false;
	*offset = sign * (h * 3600 + m * 60);
	return true;
}

static bool rfc3339(const char *s, bc_timestamp *out)
{
	int64_t y, mo, d, h, mi, se, offset;
	const char *p = s;
	int32_t nanos;

	if (!digits(&p, 4, &y) || !expect_char(&p, '-') || !digits(&p, 2, &mo) ||
	    !expect_char(&p, '-') || !digits(&p, 2, &d) || !expect_char(&p, 'T') ||
	    !digits(&p, 2, &h) || !expect_char(&p, ':') || !digits(&p, 2, &mi) ||
	    !expect_char(&p, ':') || !digits(&p, 2, &se) || !fraction(&p, &nanos) ||
	    !utc_offset(&p, &offset) || *p != '\0')
		return false;
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
	    se > 59)
		return false;
	out->seconds = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset;
	out->nanos = nanos;
	return out->seconds >= CLI_TIME_SECONDS_MIN && out->seconds <= CLI_TIME_SECONDS_MAX;
}

int cli_parse_time(const cli *c, const char *option, const char *s, bc_timestamp *out)
{
	size_t n = strspn(s, "0123456789");

	if (n > 0 && s[n] == '\0') {
		/* Unix seconds: at most 12 digits, so no overflow. */
		if (n <= 12 && strtoll(s, NULL, 10) <= CLI_TIME_SECONDS_MAX) {
			out->seconds = strtoll(s, NULL, 10);
			out->nanos = 0;
			return 0;
		}
	} else if (rfc3339(s, out)) {
		return 0;
	}
	return cli_usage_error(c,
	                       "%s: expected an RFC 3339 time from year 1 to 9999 (e.g. "
	                       "2026-01-02T03:04:05Z) or Unix seconds, got '%s'",
	                       option, s);
}

int cli_common_option(cli *c, int id, const char *arg, const char *help)
{
	switch (id) {
	case OPT_ADDR:
		if (!arg[0])
			return cli_usage_error(c, "--addr: empty address");
		c->addr = arg;
		return 0;
	case OPT_TIMEOUT:
		return cli_parse_timeout(c, arg, &c->timeout_ms);
	case OPT_JSON:
		c->json = true;
		return 0;
	case OPT_NO_RETRY:
		c->no_retry = true;
		return 0;
	case OPT_TLS:
		c->tls = true;
		return 0;
	case OPT_TLS_CA:
		c->tls_ca = arg;
		return 0;
	case OPT_TLS_CERT:
		c->tls_cert = arg;
		return 0;
	case OPT_TLS_KEY:
		c->tls_key = arg;
		return 0;
	case OPT_TLS_SERVER_NAME:
		c->tls_server_name = arg;
		return 0;
	case OPT_HELP:
		fputs(help, stdout);
		return EXIT_OK;
	default:
		return -1;
	}
}

int cli_getopt(const cli *c, int argc, char **argv, const struct option *opts)
{
	/* The long options, and the short forms of the common ones. GNU
	 * style: positional arguments may come anywhere. A leading ':'
	 * reports a missing argument as ':'. */
	int id = getopt_long(argc, argv, ":a:t:jh", opts, NULL);

	switch (id) {
	case 'a':
		return OPT_ADDR;
	case 't':
		return OPT_TIMEOUT;
	case 'j':
		return OPT_JSON;
	case 'h':
		return OPT_HELP;
	default:
		break;
	}
	if (id == '?') {
		if (optopt && optopt < OPT_ADDR)
			cli_usage_error(c, "unknown option '-%c'", optopt);
		else
			cli_usage_error(c, "unknown option '%s'", argv[optind - 1]);
		return -2;
	}
	if (id == ':') {
		cli_usage_error(c, "option '%s' needs a value", argv[optind - 1]);
		return -2;
	}
	return id;
}

int cli_connect(const cli *c, bc_client **out)
{
	bc_options o = {
	        .target = c->addr,
	        .deadline_ms = c->timeout_ms,
	        .disable_retries = c->no_retry,
	        .tls = c->tls,
	        .ca_file = c->tls_ca,
	        .cert_file = c->tls_cert,
	        .key_file = c->tls_key,
	        .tls_server_name = c->tls_server_name,
	};
	bc_error err;

	if (!c->tls_cert != !c->tls_key)
		return cli_usage_error(c, "--tls-cert and --tls-key go together");
	if (bc_client_new(&o, out, &err) != 0) {
		if (err.code == BC_STATUS_INVALID_ARGUMENT) {
			fprintf(stderr, "%s: %s\n", CLI_NAME, err.message);
			return EXIT_USAGE;
		}
		return cli_grpc_error(c, "cannot create the client", &err);
	}
	return 0;
}

int cli_grpc_error(const cli *c, const char *what, const bc_error *err)
{
	int code = err->code > 0 && err->code <= BC_STATUS_UNAUTHENTICATED ? err->code
	                                                                   : BC_STATUS_UNKNOWN;

	(void)c;
	fprintf(stderr, "%s: %s: %s: %s\n", CLI_NAME, what, bc_status_name(code), err->message);
	return EXIT_GRPC_BASE + code;
}
