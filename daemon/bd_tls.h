/* bd_tls.h - TLS and mutual TLS for the TCP listeners, reloadable.
 *
 * The certificate, key and (for mutual TLS) client CA are read and checked
 * with OpenSSL before gRPC sees them: a file that does not parse, a key
 * that does not match the certificate or an expired certificate is refused
 * with the reason. gRPC asks for the current set at each handshake (a
 * certificate config fetcher), so a reload takes effect for new
 * connections without dropping the listener; a bad reload keeps the old set.
 */
#ifndef BD_TLS_H
#define BD_TLS_H

#include <grpc/grpc_security.h>
#include <stddef.h>

typedef struct bd_tls bd_tls;

/* Reads and checks the files. client_ca NULL: no client certificates
 * (plain TLS); otherwise every client must present one signed by it. *out
 * is owned by the caller (bd_tls_destroy, after the server is destroyed). */
int bd_tls_create(const char *cert_file, const char *key_file, const char *client_ca_file,
                  bd_tls **out, char *err, size_t err_len);

/* New server credentials backed by this set (owned by the caller). */
grpc_server_credentials *bd_tls_credentials(bd_tls *t);

/* Re-reads the same files. On failure the old set stays in use and err
 * says why. Any thread. */
int bd_tls_reload(bd_tls *t, char *err, size_t err_len);

void bd_tls_destroy(bd_tls *t);

#endif
