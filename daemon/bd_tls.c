/* bd_tls.c - see bd_tls.h. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bd_tls.h"

#define PEM_BYTES_MAX (1024 * 1024) /* a certificate chain is far smaller */
#define PATH_BYTES    4096

typedef struct pem_set {
	char *cert;
	char *key;
	char *ca; /* NULL without client verification */
} pem_set;

struct bd_tls {
	char cert_file[PATH_BYTES], key_file[PATH_BYTES], ca_file[PATH_BYTES];
	bool mutual;
	uv_mutex_t lock; /* guards current and generation: gRPC calls in on its threads */
	pem_set current;
	unsigned generation;        /* bumped by each good reload */
	unsigned served_generation; /* the one gRPC has */
};

static void pem_set_free(pem_set *p)
{
	free(p->cert);
	/* Key material should not linger in freed memory. */
	if (p->key)
		OPENSSL_cleanse(p->key, strlen(p->key));
	free(p->key);
	free(p->ca);
	memset(p, 0, sizeof(*p));
}

static int read_file(const char *path, char **out, char *err, size_t len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t n = 0;

	*out = NULL;
	if (!f) {
		snprintf(err, len, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	buf = malloc(PEM_BYTES_MAX + 1);
	if (buf)
		n = fread(buf, 1, PEM_BYTES_MAX + 1, f);
	int failed = ferror(f);
	fclose(f);
	if (!buf || failed || n > PEM_BYTES_MAX) {
		snprintf(err, len, "cannot read %s: %s", path,
		         !buf     ? "out of memory"
		         : failed ? "read error"
		                  : "larger than 1 MiB");
		free(buf);
		return -1;
	}
	buf[n] = '\0';
	*out = buf;
	return 0;
}

static void openssl_reason(char *why, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, why, len);
	else
		snprintf(why, len, "no PEM data found");
	ERR_clear_error();
}

/* The first certificate of a PEM text; NULL with `why` set. */
static X509 *first_cert(const char *pem, char *why, size_t len)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;

	if (!x)
		openssl_reason(why, len);
	BIO_free(bio);
	return x;
}

static int check_set(const bd_tls *t, const pem_set *p, char *err, size_t len)
{
	char why[256];
	int rc = -1;
	X509 *cert = first_cert(p->cert, why, sizeof(why));
	EVP_PKEY *key = NULL;

	if (!cert) {
		snprintf(err, len, "%s: not a PEM certificate: %s", t->cert_file, why);
		return -1;
	}
	BIO *bio = BIO_new_mem_buf(p->key, -1);
	key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (!key) {
		openssl_reason(why, sizeof(why));
		snprintf(err, len, "%s: not a PEM private key: %s", t->key_file, why);
	} else if (X509_check_private_key(cert, key) != 1) {
		ERR_clear_error();
		snprintf(err, len, "%s does not match the certificate in %s", t->key_file,
		         t->cert_file);
	} else if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
		snprintf(err, len, "the certificate in %s has expired", t->cert_file);
	} else if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
		snprintf(err, len, "the certificate in %s is not valid yet", t->cert_file);
	} else {
		rc = 0;
	}
	EVP_PKEY_free(key);
	X509_free(cert);
	if (rc == 0 && p->ca) {
		X509 *ca = first_cert(p->ca, why, sizeof(why));
		if (!ca) {
			snprintf(err, len, "%s: not a PEM certificate: %s", t->ca_file, why);
			rc = -1;
		}
		X509_free(ca);
	}
	return rc;
}

static int load_set(const bd_tls *t, pem_set *p, char *err, size_t len)
{
	memset(p, 0, sizeof(*p));
	if (read_file(t->cert_file, &p->cert, err, len) ||
	    read_file(t->key_file, &p->key, err, len) ||
	    (t->mutual && read_file(t->ca_file, &p->ca, err, len)) || check_set(t, p, err, len)) {
		pem_set_free(p);
		return -1;
	}
	return 0;
}

/* gRPC's fetcher: called at handshakes, on gRPC's threads. */
static grpc_ssl_certificate_config_reload_status
fetch_config(void *user, grpc_ssl_server_certificate_config **config)
{
	bd_tls *t = user;
	grpc_ssl_certificate_config_reload_status status =
	        GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;

	uv_mutex_lock(&t->lock);
	if (t->generation != t->served_generation) {
		grpc_ssl_pem_key_cert_pair pair = {t->current.key, t->current.cert};
		*config = grpc_ssl_server_certificate_config_create(t->current.ca, &pair, 1);
		if (*config) {
			t->served_generation = t->generation;
			status = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
		} else {
			status = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
		}
	}
	uv_mutex_unlock(&t->lock);
	return status;
}

int bd_tls_create(const char *cert_file, const char *key_file, const char *client_ca_file,
                  bd_tls **out, char *err, size_t err_len)
{
	bd_tls *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (!t || uv_mutex_init(&t->lock) != 0) {
		free(t);
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	snprintf(t->cert_file, sizeof(t->cert_file), "%s", cert_file);
	snprintf(t->key_file, sizeof(t->key_file), "%s", key_file);
	if (client_ca_file && *client_ca_file) {
		snprintf(t->ca_file, sizeof(t->ca_file), "%s", client_ca_file);
		t->mutual = true;
	}
	if (load_set(t, &t->current, err, err_len)) {
		bd_tls_destroy(t);
		return -EINVAL;
	}
	t->generation = 1;
	*out = t;
	return 0;
}

grpc_server_credentials *bd_tls_credentials(bd_tls *t)
{
	grpc_ssl_server_credentials_options *o =
	        grpc_ssl_server_credentials_create_options_using_config_fetcher(
	                t->mutual ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
	                          : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
	                fetch_config, t);
	return o ? grpc_ssl_server_credentials_create_with_options(o) : NULL;
}

int bd_tls_reload(bd_tls *t, char *err, size_t err_len)
{
	pem_set fresh;

	if (load_set(t, &fresh, err, err_len))
		return -EINVAL;
	uv_mutex_lock(&t->lock);
	pem_set old = t->current;
	t->current = fresh;
	t->generation++;
	uv_mutex_unlock(&t->lock);
	pem_set_free(&old);
	return 0;
}

void bd_tls_destroy(bd_tls *t)
{
	if (!t)
		return;
	pem_set_free(&t->current);
	uv_mutex_destroy(&t->lock);
	free(t);
}
