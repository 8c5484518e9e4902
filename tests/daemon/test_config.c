/* test_config.c - the config file, its precedence, and every rejection.
 *
 * budgetd --check-config prints the effective settings, so precedence is
 * checked on the real binary without starting a server. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include <criterion/criterion.h>

static char dir[] = "/tmp/budgetd-config-XXXXXX";
static char conf[128];

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	snprintf(conf, sizeof(conf), "%s/budgetd.conf", dir);
}

static void teardown(void)
{
	unlink(conf);
	rmdir(dir);
}

TestSuite(config, .init = setup, .fini = teardown, .timeout = 60);

static void write_conf(const char *text)
{
	FILE *f = fopen(conf, "w");
	cr_assert_not_null(f);
	cr_assert_geq(fputs(text, f), 0);
	cr_assert_eq(fclose(f), 0);
}

/* Runs budgetd with --config and `args`; returns its exit status and
 * leaves its output in out. */
static int run(const char *const *args, char *out, size_t len)
{
	const char *argv[16] = {"--config", conf};
	int n = 2;

	for (int i = 0; args && args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return td_run_once(argv, out, len, 30000);
}

static void expect(const char *out, const char *part)
{
	cr_assert(strstr(out, part), "output lacks `%s`:\n%s", part, out);
}

Test(config, the_file_overrides_defaults_and_flags_override_the_file)
{
	char out[8192];

	write_conf("[server]\n"
	           "listen = 127.0.0.1:7001\n"
	           "listen = unix:/tmp/x.sock\n"
	           "queue_depth = 64\n"
	           "authority_id = from-file\n"
	           "[store]\n"
	           "db = /tmp/file.db\n"
	           "sync = normal\n"
	           "[log]\n"
	           "level = debug\n");
	cr_assert_eq(run((const char *const[]){"--check-config", "--queue-depth", "7", NULL}, out,
	                 sizeof(out)),
	             0, "%s", out);
	expect(out, "listen = 127.0.0.1:7001\nlisten = unix:/tmp/x.sock\n");
	expect(out, "queue_depth = 7\n");
	expect(out, "authority_id = from-file\n");
	expect(out, "db = /tmp/file.db\nsync = normal\n");
	expect(out, "level = debug\n");
	expect(out, "shutdown_grace = 10\n"); /* the default */
}

Test(config, listen_flags_replace_the_files_list)
{
	char out[8192];

	write_conf("[server]\nlisten = 127.0.0.1:7001\nlisten = 127.0.0.1:7002\n");
	cr_assert_eq(
	        run((const char *const[]){"--check-config", "--listen", "unix:/tmp/y.sock", NULL},
	            out, sizeof(out)),
	        0, "%s", out);
	expect(out, "[server]\nlisten = unix:/tmp/y.sock\nauthority_id");
}

typedef struct bad_case {
	const char *text;
	const char *message;
} bad_case;

Test(config, every_bad_line_fails_with_file_and_line)
{
	static const bad_case cases[] = {
	        {"[server]\nqueue_depth = 0\n",
	         ":2: [server] queue_depth: must be 1 to 65536, not `0`"},
	        {"[server]\nqueue_depth = 12x\n", ":2: [server] queue_depth: must be 1 to"},
	        {"[server]\nshutdown_grace = -1\n",
	         ":2: [server] shutdown_grace: must be 0 to 3600 seconds, not `-1`"},
	        {"[server]\nshutdown_grace = 3601\n", ":2: [server] shutdown_grace: must be 0 to"},
	        {"[server]\nauthority_id =\n", ":2: [server] authority_id: must be 1 to 256 bytes"},
	        {"[server]\n\n\nlisten =\n", ":4: [server] listen: must be 1 to"},
	        {"[store]\nsync = sometimes\n",
	         ":2: [store] sync: must be full or normal, not `sometimes`"},
	        {"[store]\ndb =\n", ":2: [store] db: must be 1 to"},
	        {"[log]\nlevel = loud\n", ":2: [log] level: must be error, warn, info or debug"},
	        {"[metrics]\nlisten = nowhere\n",
	         ":2: [metrics] listen: must be host:port (or empty for off), not `nowhere`"},
	        {"[server]\nlisten = a:1\nlisten = a:2\nlisten = a:3\nlisten = a:4\nlisten = a:5\n"
	         "listen = a:6\nlisten = a:7\nlisten = a:8\nlisten = a:9\n",
	         ":10: [server] listen: at most 8 listen addresses"},
	        {"[server]\nqueue = 5\n", ":2: unknown key `queue` in section [server]"},
	        {"[servr]\nlisten = a:1\n", ":2: unknown section [servr]"},
	        {"listen = a:1\n", ":1: unknown section []"},
	        {"[server]\nthis is not a setting\n", ":2: not a `key = value` line"},
	        {"[hold]\nttl = 2592001\n",
	         ":2: [hold] ttl: must be 0 (off) to 2592000 seconds, not `2592001`"},
	        {"[hold]\nttl = 1h\n", ":2: [hold] ttl: must be 0 (off) to 2592000 seconds"},
	        {"[hold]\n\non_expiry = refund\n",
	         ":3: [hold] on_expiry: must be capture, release or reverse, not `refund`"},
	        {"[hold]\non_expiry =\n", ":2: [hold] on_expiry: must be capture, release or"},
	};
	char out[8192];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_conf(cases[i].text);
		int rc = run((const char *const[]){"--check-config", NULL}, out, sizeof(out));
		cr_assert_eq(rc, 2, "case %zu: exit %d:\n%s", i, rc, out);
		char want[512];
		snprintf(want, sizeof(want), "budgetd: %s%s", conf, cases[i].message);
		expect(out, want);
		cr_assert_eq(strchr(out, '\n'), out + strlen(out) - 1, "one line: %s", out);
	}
}

Test(config, a_flag_overrides_a_bad_value_in_the_file_only_when_given)
{
	char out[8192];

	write_conf("[store]\nsync = full\n[server]\nqueue_depth = 9\n");
	cr_assert_eq(run((const char *const[]){"--check-config", "--sync", "normal", NULL}, out,
	                 sizeof(out)),
	             0, "%s", out);
	expect(out, "sync = normal");
	expect(out, "queue_depth = 9");
}

Test(config, a_missing_explicit_config_file_is_an_error)
{
	char out[4096];
	const char *const argv[] = {"--config", "/nonexistent/budgetd.conf", "--check-config",
	                            NULL};

	cr_assert_eq(td_run_once(argv, out, sizeof(out), 30000), 2, "%s", out);
	expect(out, "cannot read the config file /nonexistent/budgetd.conf");
}

Test(config, bad_flags_name_the_flag)
{
	char out[4096];

	write_conf("");
	cr_assert_eq(run((const char *const[]){"--queue-depth", "0", NULL}, out, sizeof(out)), 2);
	expect(out, "budgetd: --queue-depth: must be 1 to 65536, not `0`");
	cr_assert_eq(run((const char *const[]){"--metrics-listen", "x", NULL}, out, sizeof(out)),
	             2);
	expect(out, "budgetd: --metrics-listen: must be host:port");
	cr_assert_eq(run((const char *const[]){"--shutdown-grace", "+5", NULL}, out, sizeof(out)),
	             2);
	expect(out, "budgetd: --shutdown-grace: must be 0 to 3600 seconds, not `+5`");
}

Test(config, hold_defaults_come_from_the_file_and_the_flags)
{
	char out[8192];

	write_conf("");
	cr_assert_eq(run((const char *const[]){"--check-config", NULL}, out, sizeof(out)), 0, "%s",
	             out);
	expect(out, "[hold]\nttl = 0\non_expiry = capture\n"); /* the defaults */
	write_conf("[hold]\nttl = 300\non_expiry = reverse\n");
	cr_assert_eq(run((const char *const[]){"--check-config", NULL}, out, sizeof(out)), 0, "%s",
	             out);
	expect(out, "[hold]\nttl = 300\non_expiry = reverse\n");
	cr_assert_eq(run((const char *const[]){"--check-config", "--hold-ttl", "2592000",
	                                       "--on-expiry", "release", NULL},
	                 out, sizeof(out)),
	             0, "%s", out);
	expect(out, "[hold]\nttl = 2592000\non_expiry = release\n");
	cr_assert_eq(run((const char *const[]){"--hold-ttl", "-1", NULL}, out, sizeof(out)), 2);
	expect(out, "budgetd: --hold-ttl: must be 0 (off) to 2592000 seconds, not `-1`");
	cr_assert_eq(run((const char *const[]){"--on-expiry", "CAPTURE", NULL}, out, sizeof(out)),
	             2);
	expect(out, "budgetd: --on-expiry: must be capture, release or reverse, not `CAPTURE`");
}

/* The example config shipped for systemd lists every section and key. */
Test(config, the_example_config_is_valid)
{
	char out[8192];
	const char *path = getenv("EXAMPLE_CONFIG");
	const char *const argv[] = {"--config", path, "--check-config", NULL};

	cr_assert_not_null(path, "EXAMPLE_CONFIG names systemd/budgetd.conf");
	cr_assert_eq(td_run_once(argv, out, sizeof(out), 30000), 0, "%s", out);
	expect(out, "[hold]\nttl = 0\non_expiry = capture\n");
}
