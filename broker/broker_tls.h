/*  broker_tls - the broker's TLS certificate and key (--tls-cert, --tls-key),
    loaded once into GnuTLS credentials
    SPDX-License-Identifier: MIT

    nsqd names its options --tls-cert and --tls-key (PEM files); without
    them it offers no TLS and answers tls_v1:false to IDENTIFY. The same
    credentials serve every TLS session the broker starts (GnuTLS shares
    them read-only between sessions of one thread).

    A client certificate is asked for as nsqd's --tls-client-auth-policy
    says: require (any certificate, not verified, as Go's
    RequireAnyClientCert) or require-verify (verified against
    --tls-root-ca-file); without a policy none is asked for.

    The TLS versions accepted follow --tls-min-version (tls1.0 ... tls1.3,
    default tls1.2) through the GnuTLS priority string the HTTPS door
    takes for it (nsq_http_tls_priorities), so both doors accept the same
    versions; it is compiled once and shared by every session like the
    credentials.

    API: broker_tls_new, broker_tls_set_client_policy,
    broker_tls_set_min_version, broker_tls_credentials,
    broker_tls_client_policy, broker_tls_priorities, broker_tls_destroy;
    broker_tls_write_test_pair for tests.
*/
#ifndef BROKER_TLS_H
#define BROKER_TLS_H

#include <stddef.h>

typedef struct _broker_tls_t broker_tls_t;

// What a TLS client must show (--tls-client-auth-policy).
typedef enum {
    BROKER_TLS_CLIENT_NONE,            // nothing asked
    BROKER_TLS_CLIENT_REQUIRE,         // a certificate, not verified
    BROKER_TLS_CLIENT_REQUIRE_VERIFY,  // a certificate verified against the root CAs
} broker_tls_client_policy_t;

// Loads the PEM certificate (chain) and private key. Caller owns the
// result; NULL with a one-line reason in error (size bytes) if a file is
// missing, unreadable, not PEM, or the key does not match the certificate.
broker_tls_t *broker_tls_new(const char *cert_file, const char *key_file, char *error, size_t size);

// Sets the client certificate policy: policy "" (none), "require" or
// "require-verify"; root_ca_file (PEM, "" for none; needed by
// require-verify) is trusted for verifying client certificates. Call
// before the credentials serve a session. Returns 0, or -1 with a one-line
// reason in error.
int broker_tls_set_client_policy(broker_tls_t *self, const char *policy, const char *root_ca_file,
                                 char *error, size_t size);

// Sets the oldest TLS version sessions accept: min_version "tls1.0" ...
// "tls1.3" ("" or NULL: tls1.2, the default broker_tls_new sets). Call
// before the credentials serve a session. Returns 0, or -1 with a one-line
// reason in error (an unknown version; the previous setting stays).
int broker_tls_set_min_version(broker_tls_t *self, const char *min_version, char *error,
                               size_t size);

// The compiled priorities, for gnutls_priority_set (a gnutls_priority_t
// as void *, borrowed; never NULL once broker_tls_new succeeded).
void *broker_tls_priorities(const broker_tls_t *self);

// The policy set (BROKER_TLS_CLIENT_NONE by default).
broker_tls_client_policy_t broker_tls_client_policy(const broker_tls_t *self);

// Frees the credentials. Nulls *self_p; accepts NULL. Every session that
// uses them must be gone.
void broker_tls_destroy(broker_tls_t **self_p);

// The gnutls_certificate_credentials_t (borrowed; as void * so that
// callers need not include GnuTLS).
void *broker_tls_credentials(const broker_tls_t *self);

// Tests: writes a fresh self-signed ECDSA certificate for 127.0.0.1 (valid
// for a day) and its key as PEM files. Returns 0, or -1.
int broker_tls_write_test_pair(const char *cert_file, const char *key_file);

// Self-test; returns 0 on success.
int broker_tls_test(void);

#endif
