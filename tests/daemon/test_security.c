/* test_security.c - TLS, mutual TLS, identities, roles, capability prefixes
 * and certificate reload, against the real budgetd with a throwaway PKI
 * made by make_certs.sh (the openssl CLI). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

static char pki[64];
static char perms[128];
static char args_buf[6][320];

static const char *path_in(int slot, const char *name)
{
	snprintf(args_buf[slot], sizeof(args_buf[slot]), "%s/%s", pki, name);
	return args_buf[slot];
}

static void make_pki(void)
{
	char cmd[512];

	snprintf(pki, sizeof(pki), "/tmp/budgetd-pki-XXXXXX");
	cr_assert_not_null(mkdtemp(pki));
	snprintf(cmd, sizeof(cmd), "%s %s >/dev/null", getenv("MAKE_CERTS"), pki);
	cr_assert_eq(system(cmd), 0, "make_certs.sh failed");
	snprintf(perms, sizeof(perms), "%s/permissions.conf", pki);
	FILE *f = fopen(perms, "w");
	cr_assert_not_null(f);
	fputs("[spiffe://test/kernel-a]\nrole = kernel\n"
	      "[reader.test]\nrole = reader\n"
	      "[admin.test]\nrole = admin\n"
	      "[limited.test]\nrole = kernel\ncapability_prefix = team-a/\n"
	      "[unix]\nrole = kernel\n",
	      f);
	cr_assert_eq(fclose(f), 0);
}

/* budgetd with mutual TLS on its TCP listener and the permission file. */
static void setup_mtls(void)
{
	memset(&daemon_, 0, sizeof(daemon_));
	client = NULL;
	make_pki();
	const char *args[] = {"--tls-cert",
	                      path_in(0, "server.pem"),
	                      "--tls-key",
	                      path_in(1, "server.key"),
	                      "--tls-client-ca",
	                      path_in(2, "ca.pem"),
	                      "--permissions",
	                      perms,
	                      NULL};
	fx_start(args, NULL);
}

static void teardown_pki(void)
{
	char cmd[128];

	fx_teardown();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pki);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(mtls, .init = setup_mtls, .fini = teardown_pki, .timeout = 120);

/* A TLS client presenting `name`.pem (NULL: no certificate). */
static bc_client *tls_client(const char *name, const char *server_name)
{
	char ca[300], cert[300], key[300];
	bc_options o = {.target = daemon_.tcp_addr, .deadline_ms = 10000, .disable_retries = true};
	bc_client *c = NULL;
	bc_error err;

	snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
	o.ca_file = ca;
	o.tls_server_name = server_name;
	if (name) {
		snprintf(cert, sizeof(cert), "%s/%s.pem", pki, name);
		snprintf(key, sizeof(key), "%s/%s.key", pki, name);
		o.cert_file = cert;
		o.key_file = key;
	}
	cr_assert_eq(bc_client_new(&o, &c, &err), 0, "%s", err.message);
	return c;
}

static int authorize(bc_client *c, const char *cap, const char *hold, bc_error *err)
{
	bc_authorize_hold_request req = {
	        .capability_id = cap, .requested_exposure_units = 1, .hold_id = hold};
	bc_authorize_hold_result r;
	int rc = bc_authorize_hold(c, &req, 0, &r, err);

	if (rc == 0)
		bc_authorize_hold_result_free(&r);
	return rc;
}

Test(mtls, a_client_certificate_names_the_caller_in_the_log)
{
	bc_client *c = tls_client("kernel-a", NULL);
	bc_error err;

	cr_assert_eq(authorize(c, "cap", "h1", &err), 0, "%s", err.message);
	bc_list_mutation_events_request req = {0};
	bc_event_list events;
	cr_assert_eq(bc_list_mutation_events(c, &req, 0, &events, &err), 0, "%s", err.message);
	cr_assert_eq(events.count, 1);
	cr_assert_str_eq(events.events[0].caller, "spiffe://test/kernel-a");
	bc_event_list_free(&events);
	bc_client_free(c);
}

Test(mtls, no_certificate_another_ca_or_an_expired_one_cannot_connect)
{
	const char *const refused[] = {NULL, "rogue", "expired"};
	bc_serving_status st;
	bc_error err;

	for (size_t i = 0; i < 3; i++) {
		bc_client *c = tls_client(refused[i], NULL);
		int rc = bc_health_check(c, "", 0, &st, &err);
		cr_assert_neq(rc, 0, "%s connected", refused[i] ? refused[i] : "no certificate");
		cr_assert_eq(err.code, GRPC_STATUS_UNAVAILABLE, "%s: %d %s",
		             refused[i] ? refused[i] : "none", err.code, err.message);
		bc_client_free(c);
	}
	bc_client *ok = tls_client("kernel-a", NULL);
	cr_assert_eq(bc_health_check(ok, "", 0, &st, &err), 0, "%s", err.message);
	bc_client_free(ok);
}

Test(mtls, roles_are_enforced_per_rpc)
{
	bc_client *reader = tls_client("reader", NULL), *kernel = tls_client("kernel-a", NULL);
	bc_client *admin = tls_client("admin", NULL), *stranger = tls_client("stranger", NULL);
	bc_usage_result u;
	bc_error err;

	cr_assert_eq(authorize(kernel, "cap", "h1", &err), 0, "%s", err.message);
	fx_expect_error(authorize(reader, "cap", "h2", &err), &err, GRPC_STATUS_PERMISSION_DENIED,
	                "identity `reader.test` (role reader) may not mutate");
	cr_assert_eq(bc_get_usage(reader, "cap", 0, 0, &u, &err), 0, "%s", err.message);
	cr_assert_eq(u.usage.invocation_count, 1);
	bc_usage_result_free(&u);
	fx_expect_error(bc_get_usage(stranger, "cap", 0, 0, &u, &err), &err,
	                GRPC_STATUS_UNAUTHENTICATED, "identity `stranger.test` is not known");

	bc_verify_result v;
	fx_expect_error(bc_verify(kernel, 0, &v, &err), &err, GRPC_STATUS_PERMISSION_DENIED,
	                "may not administer");
	cr_assert_eq(bc_verify(admin, 0, &v, &err), 0, "%s", err.message);
	cr_assert(v.ok);
	bc_verify_result_free(&v);

	bc_serving_status st;
	cr_assert_eq(bc_health_check(stranger, "", 0, &st, &err), 0, "health is open to all");
	bc_client_free(reader);
	bc_client_free(kernel);
	bc_client_free(admin);
	bc_client_free(stranger);
}

Test(mtls, a_capability_prefix_limits_what_an_identity_sees_and_changes)
{
	bc_client *limited = tls_client("limited", NULL), *kernel = tls_client("kernel-a", NULL);
	bc_error err;

	cr_assert_eq(authorize(limited, "team-a/search", "mine", &err), 0, "%s", err.message);
	cr_assert_eq(authorize(kernel, "team-b/search", "theirs", &err), 0, "%s", err.message);
	fx_expect_error(authorize(limited, "team-b/search", "h3", &err), &err,
	                GRPC_STATUS_PERMISSION_DENIED,
	                "identity `limited.test` may not use capability `team-b/search`");
	bc_hold h;
	fx_expect_error(bc_get_hold(limited, "theirs", 0, &h, &err), &err,
	                GRPC_STATUS_PERMISSION_DENIED, "may not see holds of capability");
	cr_assert_eq(bc_get_hold(limited, "mine", 0, &h, &err), 0, "%s", err.message);
	bc_hold_free(&h);
	bc_list_usages_request all = {0}, own = {.capability_id = "team-a/search"};
	bc_usage_list list;
	fx_expect_error(bc_list_usages(limited, &all, 0, &list, &err), &err,
	                GRPC_STATUS_PERMISSION_DENIED, "give capability_id");
	cr_assert_eq(bc_list_usages(limited, &own, 0, &list, &err), 0, "%s", err.message);
	cr_assert_eq(list.count, 1);
	bc_usage_list_free(&list);
	bc_client_free(limited);
	bc_client_free(kernel);
}

Test(mtls, the_unix_socket_stays_plaintext_and_is_known_as_unix)
{
	bc_client *local = fx_client(daemon_.unix_addr, false);
	bc_error err;

	cr_assert_eq(authorize(local, "cap", "local", &err), 0, "%s", err.message);
	bc_list_mutation_events_request req = {0};
	bc_event_list events;
	cr_assert_eq(bc_list_mutation_events(local, &req, 0, &events, &err), 0, "%s", err.message);
	cr_assert_str_eq(events.events[events.count - 1].caller, "unix");
	bc_event_list_free(&events);
	bc_client_free(local);
}

static void copy_file(const char *from, const char *to)
{
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "cp '%s/%s' '%s/%s'", pki, from, pki, to);
	cr_assert_eq(system(cmd), 0);
}

static void sighup_and_wait(const char *status_part)
{
	cr_assert_eq(kill(daemon_.pid, SIGHUP), 0);
	cr_assert(td_wait_notify(&daemon_, "READY=1", 10000), "no READY=1 after SIGHUP");
	cr_assert(strstr(daemon_.status, status_part), "status `%s` lacks `%s`", daemon_.status,
	          status_part);
}

Test(mtls, sighup_reloads_good_certificates_and_keeps_the_old_on_bad_ones)
{
	bc_serving_status st;
	bc_error err;

	/* The second certificate only names reloaded.test. */
	bc_client *c = tls_client("kernel-a", "reloaded.test");
	cr_assert_neq(bc_health_check(c, "", 0, &st, &err), 0, "the old cert matched");
	bc_client_free(c);
	copy_file("server2.pem", "server.pem");
	copy_file("server2.key", "server.key");
	sighup_and_wait("reloaded: certificates");
	c = tls_client("kernel-a", "reloaded.test");
	cr_assert_eq(bc_health_check(c, "", 0, &st, &err), 0, "after reload: %s", err.message);
	bc_client_free(c);

	/* A broken certificate is refused; the reloaded one stays in use. */
	copy_file("ca.key", "server.pem");
	sighup_and_wait("kept the old certificates");
	c = tls_client("kernel-a", "reloaded.test");
	cr_assert_eq(bc_health_check(c, "", 0, &st, &err), 0, "after a bad reload: %s",
	             err.message);
	bc_client_free(c);
}

/* ---- refusals at start ---- */

Test(start, plaintext_on_a_non_loopback_address_needs_insecure)
{
	char out[4096], db[64];
	char dir[] = "/tmp/budgetd-insecure-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	snprintf(db, sizeof(db), "%s/b.db", dir);
	const char *argv[] = {"--db", db, "--listen", "0.0.0.0:0", NULL};
	cr_assert_eq(td_run_once(argv, out, sizeof(out), 30000), 1, "%s", out);
	cr_assert(strstr(out, "refusing plaintext gRPC on 0.0.0.0:0"), "%s", out);
}

Test(start, a_bad_permission_file_stops_the_start_with_file_and_line)
{
	char out[4096], file[] = "/tmp/budgetd-perm-XXXXXX";
	int fd = mkstemp(file);
	const char text[] = "[someone]\nrole = owner\n";

	cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	const char *argv[] = {"--permissions", file, "--listen", "127.0.0.1:0", NULL};
	cr_assert_eq(td_run_once(argv, out, sizeof(out), 30000), 2, "%s", out);
	cr_assert(strstr(out, ":2: [someone] role: must be reader, kernel or admin, not `owner`"),
	          "%s", out);
	unlink(file);
}

Test(start, a_key_that_does_not_match_the_certificate_stops_the_start)
{
	char out[4096];

	make_pki();
	const char *argv[] = {"--tls-cert", path_in(0, "server.pem"),
	                      "--tls-key",  path_in(1, "admin.key"),
	                      "--listen",   "127.0.0.1:0",
	                      NULL};
	cr_assert_eq(td_run_once(argv, out, sizeof(out), 30000), 2, "%s", out);
	cr_assert(strstr(out, "does not match the certificate"), "%s", out);
}
