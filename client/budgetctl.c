/* budgetctl - talk to budgetd from the command line.
 *
 *   budgetctl [--addr ADDR] [--timeout S] [--json] COMMAND [ARGS]
 *
 * The commands live in cli/commands.c; this file parses the options that
 * come before COMMAND and dispatches. See budgetctl(1). */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include <grpc/support/log.h>

#include "cli/cli.h"

#ifndef BC_VERSION
#define BC_VERSION "unknown"
#endif

static void print_help(FILE *f)
{
	fprintf(f, "usage: budgetctl [options] COMMAND [ARGS]\n"
	           "       budgetctl COMMAND --help\n"
	           "\n"
	           "Talk to budgetd, the budget authority, over gRPC.\n"
	           "\n"
	           "Commands:\n");
	for (size_t i = 0; i < cli_command_count; i++)
		fprintf(f, "  %-10s %s\n", cli_commands[i].name, cli_commands[i].summary);
	fprintf(f,
	        "\n"
	        "Options (also accepted after COMMAND):\n"
	        "  -a, --addr ADDR      the server: host:port or unix:/path (default: $%s, or\n"
	        "                       %s)\n"
	        "  -t, --timeout S      deadline of each attempt in seconds, e.g. 2 or 0.5\n"
	        "                       (default: 5)\n"
	        "  -j, --json           print the response as JSON, in protobuf's JSON mapping\n"
	        "                       (lowerCamelCase names, 64-bit integers as strings)\n"
	        "      --no-retry       one attempt only; by default a call failing with\n"
	        "                       UNAVAILABLE (and a mutation failing with\n"
	        "                       DEADLINE_EXCEEDED) is tried up to 5 times, with the\n"
	        "                       same event_id, so it is applied at most once\n"
	        "      --tls            use TLS (with the system's CA roots unless --tls-ca)\n"
	        "      --tls-ca FILE    PEM roots to verify the server with (implies --tls)\n"
	        "      --tls-cert FILE  PEM client certificate chain (with --tls-key)\n"
	        "      --tls-key FILE   PEM client private key (with --tls-cert)\n"
	        "      --tls-server-name NAME\n"
	        "                       the name to verify in the server's certificate\n"
	        "  -h, --help           this help; 'budgetctl COMMAND --help' for a command's\n"
	        "  -V, --version        the version of budgetctl\n"
	        "\n"
	        "Exit status:\n"
	        "  0       done (authorized, allowed, serving)\n"
	        "  1       denied by a limit (authorize, increment), not serving (health),\n"
	        "          or mismatches in the ledger (verify, backup)\n"
	        "  2       bad command line\n"
	        "  3       a local failure (out of memory, cannot write the output)\n"
	        "  3+CODE  the call failed with gRPC status CODE:\n",
	        CLI_ADDR_ENV, CLI_ADDR_DEFAULT);
	/* 3 columns of 6 rows, from the status names themselves. */
	for (int row = 0; row < 6; row++) {
		fputs("         ", f);
		for (int col = 0; col < 3; col++) {
			int code = 1 + col * 6 + row;

			bool more = col < 2 && code + 6 <= BC_STATUS_UNAUTHENTICATED;

			if (code <= BC_STATUS_UNAUTHENTICATED)
				fprintf(f, " %2d %-*s", EXIT_GRPC_BASE + code, more ? 19 : 0,
				        bc_status_name(code));
		}
		fputc('\n', f);
	}
	fprintf(f, "\n"
	           "Errors are one line on stderr: budgetctl: WHAT: STATUS: MESSAGE\n");
}

static const command *find_command(const char *name)
{
	for (size_t i = 0; i < cli_command_count; i++)
		if (strcmp(cli_commands[i].name, name) == 0)
			return &cli_commands[i];
	return NULL;
}

/* True when argv asks for help before any "--". */
static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return false;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	}
	return false;
}

static int run(int argc, char **argv)
{
	static const struct option opts[] = {
	        CLI_COMMON_OPTIONS,
	        {"version", no_argument, NULL, OPT_VERSION},
	        {NULL, 0, NULL, 0},
	};
	cli c = {0};
	const command *cmd;
	const char *env = getenv(CLI_ADDR_ENV);
	int id, rc;

	c.addr = env && env[0] ? env : CLI_ADDR_DEFAULT;
	opterr = 0;
	/* '+': stop at COMMAND; the command parses the rest. */
	while ((id = getopt_long(argc, argv, "+:a:t:jhV", opts, NULL)) != -1) {
		switch (id) {
		case 'a':
			id = OPT_ADDR;
			break;
		case 't':
			id = OPT_TIMEOUT;
			break;
		case 'j':
			id = OPT_JSON;
			break;
		case 'h':
			id = OPT_HELP;
			break;
		case 'V':
			id = OPT_VERSION;
			break;
		case ':':
			return cli_usage_error(&c, "option '%s' needs a value", argv[optind - 1]);
		case '?':
			if (optopt && optopt < OPT_ADDR)
				return cli_usage_error(&c, "unknown option '-%c'", optopt);
			return cli_usage_error(&c, "unknown option '%s'", argv[optind - 1]);
		default:
			break;
		}
		if (id == OPT_HELP) {
			print_help(stdout);
			return EXIT_OK;
		}
		if (id == OPT_VERSION) {
			printf("budgetctl %s\n", BC_VERSION);
			return EXIT_OK;
		}
		if ((rc = cli_common_option(&c, id, optarg, "")) != 0)
			return rc;
	}
	if (optind >= argc)
		return cli_usage_error(&c, "missing command");
	argc -= optind;
	argv += optind;

	if (strcmp(argv[0], "help") == 0) {
		if (argc < 2) {
			print_help(stdout);
			return EXIT_OK;
		}
		cmd = find_command(argv[1]);
		if (!cmd)
			return cli_usage_error(&c, "unknown command '%s'", argv[1]);
		fputs(cmd->help, stdout);
		return EXIT_OK;
	}
	cmd = find_command(argv[0]);
	if (!cmd)
		return cli_usage_error(&c, "unknown command '%s'", argv[0]);
	c.command = cmd->name;
	if (wants_help(argc, argv)) {
		fputs(cmd->help, stdout);
		return EXIT_OK;
	}
	return cmd->run(&c, argc, argv);
}

/* gRPC logs some failures (a failed TLS handshake) itself; budgetctl
 * reports each failure as one line of its own. */
static void quiet_log(gpr_log_func_args *args)
{
	(void)args;
}

int main(int argc, char **argv)
{
	int rc;

	if (!getenv("GRPC_VERBOSITY") && !getenv("GRPC_TRACE"))
		gpr_set_log_function(quiet_log);
	rc = run(argc, argv);

	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "%s: cannot write the output\n", CLI_NAME);
		if (rc == EXIT_OK || rc == EXIT_DENIED)
			rc = EXIT_GRPC_BASE;
	}
	return rc;
}
