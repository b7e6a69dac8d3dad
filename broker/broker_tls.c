/*  broker_tls - the broker's TLS certificate and key (--tls-cert, --tls-key),
    loaded once into GnuTLS credentials
    SPDX-License-Identifier: MIT
*/
#include "broker_tls.h"

#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nsq_http_server.h"

struct _broker_tls_t {
    gnutls_certificate_credentials_t credentials;  // certificate, key, trusted root CAs
    broker_tls_client_policy_t client_policy;      // what a client must show
    gnutls_priority_t priorities;                  // versions and ciphers offered
};

broker_tls_t *broker_tls_new(const char *cert_file, const char *key_file, char *error, size_t size)
{
    broker_tls_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(error, size, "out of memory");
        return NULL;
    }
    int rc = gnutls_certificate_allocate_credentials(&self->credentials);
    if (rc == GNUTLS_E_SUCCESS)
        rc = gnutls_certificate_set_x509_key_file(self->credentials, cert_file, key_file,
                                                  GNUTLS_X509_FMT_PEM);
    if (rc < 0) {
        snprintf(error, size, "cannot load --tls-cert=%s --tls-key=%s: %s", cert_file, key_file,
                 gnutls_strerror(rc));
        broker_tls_destroy(&self);
        return NULL;
    }
    if (broker_tls_set_min_version(self, NULL, error, size) != 0)
        broker_tls_destroy(&self);
    return self;
}

int broker_tls_set_min_version(broker_tls_t *self, const char *min_version, char *error,
                               size_t size)
{
    const char *priorities = nsq_http_tls_priorities(min_version);
    gnutls_priority_t compiled;
    int rc =
        priorities ? gnutls_priority_init(&compiled, priorities, NULL) : GNUTLS_E_INVALID_REQUEST;
    if (rc < 0) {
        snprintf(error, size, "--tls-min-version=%s: %s", min_version ? min_version : "",
                 priorities ? gnutls_strerror(rc) : "unknown version");
        return -1;
    }
    if (self->priorities)
        gnutls_priority_deinit(self->priorities);
    self->priorities = compiled;
    return 0;
}

void *broker_tls_priorities(const broker_tls_t *self)
{
    return self->priorities;
}

int broker_tls_set_client_policy(broker_tls_t *self, const char *policy, const char *root_ca_file,
                                 char *error, size_t size)
{
    broker_tls_client_policy_t client_policy;
    if (!policy || !*policy)
        client_policy = BROKER_TLS_CLIENT_NONE;
    else if (strcmp(policy, "require") == 0)
        client_policy = BROKER_TLS_CLIENT_REQUIRE;
    else if (strcmp(policy, "require-verify") == 0)
        client_policy = BROKER_TLS_CLIENT_REQUIRE_VERIFY;
    else {
        snprintf(error, size, "--tls-client-auth-policy=%s: want require or require-verify",
                 policy);
        return -1;
    }
    if (client_policy == BROKER_TLS_CLIENT_REQUIRE_VERIFY && !(root_ca_file && *root_ca_file)) {
        snprintf(error, size, "--tls-client-auth-policy=require-verify needs --tls-root-ca-file");
        return -1;
    }
    if (client_policy != BROKER_TLS_CLIENT_NONE && root_ca_file && *root_ca_file) {
        int rc = gnutls_certificate_set_x509_trust_file(self->credentials, root_ca_file,
                                                        GNUTLS_X509_FMT_PEM);
        if (rc < 1) {
            snprintf(error, size, "cannot load --tls-root-ca-file=%s: %s", root_ca_file,
                     rc < 0 ? gnutls_strerror(rc) : "no certificate in it");
            return -1;
        }
    }
    self->client_policy = client_policy;
    return 0;
}

broker_tls_client_policy_t broker_tls_client_policy(const broker_tls_t *self)
{
    return self->client_policy;
}

void broker_tls_destroy(broker_tls_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    if ((*self_p)->credentials)
        gnutls_certificate_free_credentials((*self_p)->credentials);
    if ((*self_p)->priorities)
        gnutls_priority_deinit((*self_p)->priorities);
    free(*self_p);
    *self_p = NULL;
}

void *broker_tls_credentials(const broker_tls_t *self)
{
    return self->credentials;
}

// Writes a PEM export of a certificate or key to path.
static int s_write_pem(const char *path,
                       int (*export)(void *, gnutls_x509_crt_fmt_t, void *, size_t *), void *object)
{
    char pem[8192];
    size_t size = sizeof pem;
    if (export(object, GNUTLS_X509_FMT_PEM, pem, &size) < 0)
        return -1;
    // 0600: a private key with wider permissions is refused (nsq_secret).
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int rc = write(fd, pem, size) == (ssize_t) size ? 0 : -1;
    return close(fd) == 0 ? rc : -1;
}

static int s_export_crt(void *crt, gnutls_x509_crt_fmt_t format, void *out, size_t *size)
{
    return gnutls_x509_crt_export(crt, format, out, size);
}

static int s_export_key(void *key, gnutls_x509_crt_fmt_t format, void *out, size_t *size)
{
    return gnutls_x509_privkey_export(key, format, out, size);
}

int broker_tls_write_test_pair(const char *cert_file, const char *key_file)
{
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    const unsigned char address[4] = {127, 0, 0, 1};
    time_t now = time(NULL);
    unsigned char serial[8];
    for (size_t i = 0; i < sizeof serial; i++)
        serial[i] = (unsigned char) ((uint64_t) now >> (8 * i) ^ (unsigned) getpid());
    serial[0] &= 0x7f;  // positive
    int rc = -1;
    if (gnutls_x509_privkey_init(&key) < 0
        || gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                        GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)
               < 0
        || gnutls_x509_crt_init(&crt) < 0 || gnutls_x509_crt_set_version(crt, 3) < 0
        || gnutls_x509_crt_set_serial(crt, serial, sizeof serial) < 0
        || gnutls_x509_crt_set_activation_time(crt, now - 3600) < 0
        || gnutls_x509_crt_set_expiration_time(crt, now + 86400) < 0
        || gnutls_x509_crt_set_dn(crt, "CN=127.0.0.1", NULL) < 0
        || gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, address, 4,
                                                GNUTLS_FSAN_SET)
               < 0
        || gnutls_x509_crt_set_key(crt, key) < 0
        || gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0) < 0
        || s_write_pem(cert_file, s_export_crt, crt) < 0
        || s_write_pem(key_file, s_export_key, key) < 0)
        goto done;
    rc = 0;
done:
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    return rc;
}

// ---- self-test -----------------------------------------------------------

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "broker_tls_test: %s:%d: %s\n", __FILE__, __LINE__, #condition);       \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

int broker_tls_test(void)
{
    int rc = -1;
    char dir[] = "/tmp/broker_tls_test.XXXXXX", cert[64], key[64], other[64], error[512];
    broker_tls_t *tls = NULL;
    S_CHECK(mkdtemp(dir));
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(other, sizeof other, "%s/other.pem", dir);
    S_CHECK(broker_tls_write_test_pair(cert, key) == 0);
    tls = broker_tls_new(cert, key, error, sizeof error);
    S_CHECK(tls && broker_tls_credentials(tls) && broker_tls_priorities(tls));
    // --tls-min-version: the HTTPS door's values, nothing else.
    S_CHECK(broker_tls_set_min_version(tls, "tls1.3", error, sizeof error) == 0);
    S_CHECK(broker_tls_set_min_version(tls, "ssl3.0", error, sizeof error) == -1);
    S_CHECK(strstr(error, "--tls-min-version=ssl3.0") && broker_tls_priorities(tls));
    broker_tls_destroy(&tls);
    // A missing file and a key that is not the certificate's are refused
    // with a reason naming the files.
    tls = broker_tls_new(cert, "/nonexistent/key.pem", error, sizeof error);
    S_CHECK(!tls && strstr(error, "--tls-key=/nonexistent/key.pem"));
    S_CHECK(broker_tls_write_test_pair(other, other) == 0);
    tls = broker_tls_new(cert, other, error, sizeof error);
    S_CHECK(!tls && strstr(error, "cannot load"));
    rc = 0;
done:
    broker_tls_destroy(&tls);
    unlink(cert);
    unlink(key);
    unlink(other);
    rmdir(dir);
    return rc;
}
