/*  nsq_http_server - one libmicrohttpd server for the broker, lookupd and
    worker: plain HTTP, HTTPS, or both
    SPDX-License-Identifier: MIT

    A server listens on an HTTP address, an HTTPS address, or both (as
    nsqd's --http-address and --https-address); each is a libmicrohttpd
    daemon running the caller's callbacks on its own thread (or thread
    pool), with epoll where libmicrohttpd has it, and every connection
    limited to what RLIMIT_NOFILE allows. The caller's callbacks see the
    same connections from both; nsq_http_server_is_tls tells them apart.

    TLS (GnuTLS, in libmicrohttpd) takes nsqd's settings: a PEM certificate
    (chain) and key, a minimum version (tls1.0 ... tls1.3; default tls1.2),
    and for client certificates a root CA file and a policy: "require" (a
    client must present a certificate) or "require-verify" (one that
    verifies against the root CA). A client that fails the policy gets
    403 {"message":"TLS_CLIENT_CERT_REQUIRED"} and the connection closes.
    With "required", the plain HTTP address answers every request with 403
    {"message":"TLS_REQUIRED"}, as nsqd's does; /ping included, so probe
    the HTTPS port.

    Secret files: the key file must not be readable by group or others
    (mode 0600 or narrower); otherwise the server refuses to start, with
    one line that names the file and its mode (nsq_secret_file_check).
    Neither the key nor its path's contents are ever logged.

    Errors libmicrohttpd reports while starting go into the caller's error
    text (one line); afterwards they are logged as warnings.

    API in call order: nsq_http_tls_check (configure time),
    nsq_http_tls_priorities (for other TLS doors),
    nsq_http_server_new, nsq_http_server_port, nsq_http_server_https_port,
    nsq_http_server_is_tls (in callbacks), nsq_http_server_destroy.
*/
#ifndef NSQ_HTTP_SERVER_H
#define NSQ_HTTP_SERVER_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// nsqd's TLS settings, as the daemons' option tables give them ("" or
// NULL = unset). Borrowed by nsq_http_server_new for its duration only.
typedef struct {
    const char *cert_file;           // --tls-cert: PEM certificate (chain)
    const char *key_file;            // --tls-key: PEM private key, mode 0600
    const char *root_ca_file;        // --tls-root-ca-file: CAs client certificates chain to
    const char *client_auth_policy;  // --tls-client-auth-policy: "", require, require-verify
    const char *min_version;         // --tls-min-version: tls1.0 ... tls1.3 ("" = tls1.2)
    bool required;                   // --tls-required: plain HTTP answers 403
} nsq_http_tls_t;

// The rows of nsqd's HTTPS and TLS options for a daemon's option table,
// written once here for every daemon. The config struct type must have
// the char array fields https_address, tls_cert, tls_key,
// tls_root_ca_file, tls_client_auth_policy, tls_min_version and the bool
// tls_required (NSQ_HTTP_TLS_FIELDS declares them); at is empty or the
// path of a nested struct holding them ("worker.").
// clang-format off
#define NSQ_HTTP_TLS_OPTION_ROWS(type, at)                                                         \
    {"https-address", NSQ_OPTION_STRING, NULL, 0, 0, false,                                        \
     "HOST:PORT for HTTPS, with --tls-cert and --tls-key (port 0 picks a free port)",              \
     NSQ_OPTION_FIELD(type, at https_address)},                                                    \
    {"tls-cert", NSQ_OPTION_STRING, NULL, 0, 0, false,                                             \
     "PEM certificate (chain) for HTTPS (a broker: also the NSQ TCP door's tls_v1)",               \
     NSQ_OPTION_FIELD(type, at tls_cert)},                                                         \
    {"tls-key", NSQ_OPTION_STRING, NULL, 0, 0, false,                                              \
     "PEM private key of --tls-cert (mode 0600 or narrower)",                                      \
     NSQ_OPTION_FIELD(type, at tls_key)},                                                          \
    {"tls-root-ca-file", NSQ_OPTION_STRING, NULL, 0, 0, false,                                     \
     "PEM CA certificates that client certificates must chain to",                                 \
     NSQ_OPTION_FIELD(type, at tls_root_ca_file)},                                                 \
    {"tls-client-auth-policy", NSQ_OPTION_STRING, NULL, 0, 0, false,                               \
     "client certificates: require (any) or require-verify (signed by --tls-root-ca-file)",        \
     NSQ_OPTION_FIELD(type, at tls_client_auth_policy)},                                           \
    {"tls-min-version", NSQ_OPTION_STRING, "tls1.2", 0, 0, false,                                  \
     "oldest TLS version accepted: tls1.0, tls1.1, tls1.2 or tls1.3",                              \
     NSQ_OPTION_FIELD(type, at tls_min_version)},                                                  \
    {"tls-required", NSQ_OPTION_BOOL, "false", 0, 0, false,                                        \
     "refuse plain HTTP (403 TLS_REQUIRED); a broker also refuses NSQ TCP clients before tls_v1", \
     NSQ_OPTION_FIELD(type, at tls_required)}
// clang-format on

// The fields NSQ_HTTP_TLS_OPTION_ROWS fills, for a daemon's config struct.
#define NSQ_HTTP_TLS_FIELDS                                                                        \
    char https_address[256];         /* --https-address, "" = no HTTPS */                          \
    char tls_cert[1024];             /* --tls-cert */                                              \
    char tls_key[1024];              /* --tls-key (a secret: never logged) */                      \
    char tls_root_ca_file[1024];     /* --tls-root-ca-file */                                      \
    char tls_client_auth_policy[32]; /* --tls-client-auth-policy */                                \
    char tls_min_version[16];        /* --tls-min-version */                                       \
    bool tls_required                /* --tls-required */

// An nsq_http_tls_t borrowing the fields above from config (a pointer).
#define NSQ_HTTP_TLS_OF(config)                                                                    \
    ((nsq_http_tls_t){(config)->tls_cert, (config)->tls_key, (config)->tls_root_ca_file,           \
                      (config)->tls_client_auth_policy, (config)->tls_min_version,                 \
                      (config)->tls_required})

typedef struct {
    const char *http_address;          // "host:port", "[ipv6]:port"; "" or NULL = no plain HTTP
    const char *https_address;         // the same for HTTPS; needs tls cert and key
    nsq_http_tls_t tls;                // TLS settings (see above)
    unsigned threads;                  // thread pool size per address (0 or 1: one thread)
    unsigned connection_timeout_s;     // idle connections close after this (0: 30 s)
    bool turbo;                        // MHD_USE_TURBO (the broker's hot path)
    bool suspend_resume;               // MHD_ALLOW_SUSPEND_RESUME (the broker's hand-off)
    MHD_AccessHandlerCallback access;  // called per request (see libmicrohttpd)
    void *access_arg;
    MHD_NotifyConnectionCallback notify_connection;  // optional
    void *notify_connection_arg;
    MHD_RequestCompletedCallback notify_completed;  // optional
    void *notify_completed_arg;
} nsq_http_server_config_t;

typedef struct _nsq_http_server_t nsq_http_server_t;

// Checks TLS settings without starting anything (for a daemon's
// configure step): cert and key both or neither; a policy is "require" or
// "require-verify" and has a root CA file; a known minimum version; the
// key file readable and not wider than 0600; https_address needs cert and
// key. Returns 0, or -1 with one line in error. (required without an
// https_address is allowed, as in nsqd, where it concerns the NSQ TCP
// door too: the HTTP API then refuses every request, with a warning.)
int nsq_http_tls_check(const nsq_http_tls_t *tls, const char *https_address, char *error,
                       size_t size);

// The GnuTLS priority string for --tls-min-version (tls1.0 ... tls1.3; ""
// or NULL = tls1.2): every version from it up to TLS 1.3. The one mapping
// for every TLS door (HTTPS here, the broker's NSQ TCP door). A static
// string; NULL if min_version is unknown.
const char *nsq_http_tls_priorities(const char *min_version);

// Starts the server. Caller owns the result; NULL with one line in error
// (an address that does not parse or cannot be bound, a TLS file that
// cannot be read or is wrong, a key file wider than 0600).
nsq_http_server_t *nsq_http_server_new(const nsq_http_server_config_t *config, char *error,
                                       size_t size);

// The bound ports (0 when that address is not served).
uint16_t nsq_http_server_port(const nsq_http_server_t *self);
uint16_t nsq_http_server_https_port(const nsq_http_server_t *self);

// True if connection came in over HTTPS.
bool nsq_http_server_is_tls(struct MHD_Connection *connection);

// Stops both daemons (their threads end; callbacks have returned). Nulls
// *self_p; accepts NULL.
void nsq_http_server_destroy(nsq_http_server_t **self_p);

// Self-test; returns 0 on success.
int nsq_http_server_test(void);

#endif
