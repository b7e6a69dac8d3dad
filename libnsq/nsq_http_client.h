/*  nsq_http_client - what our libcurl clients share: URLs that may be
    https, and TLS settings (a CA to trust, a client certificate)
    SPDX-License-Identifier: MIT

    Addresses are given as "host:port" (plain HTTP, as before),
    "http://host:port" or "https://host:port". Over https libcurl checks
    the server's certificate against --tls-root-ca-file (or the system's
    CAs without it) and presents --tls-cert/--tls-key when they are set
    (for servers with --tls-client-auth-policy). The key is a secret: a
    key file wider than 0600 is refused, with one line, as the servers'
    are (nsq_http_client_tls_check); certificates and CAs stay readable.

    API: NSQ_HTTP_CLIENT_TLS_OPTION_ROWS (option tables),
    nsq_http_client_tls_check (configure time), nsq_http_client_url,
    nsq_http_client_tls_apply.
*/
#ifndef NSQ_HTTP_CLIENT_H
#define NSQ_HTTP_CLIENT_H

#include <curl/curl.h>
#include <stddef.h>

// A client's TLS settings; NULL or "" = unset. Borrowed.
typedef struct {
    const char *root_ca_file;  // --tls-root-ca-file: CAs the server's certificate chains to
    const char *cert_file;     // --tls-cert: client certificate (PEM)
    const char *key_file;      // --tls-key: its key (PEM)
} nsq_http_client_tls_t;

// Option rows for a client's table: fields tls_root_ca_file, tls_cert and
// tls_key (const char * or char arrays) of type, at "" or a nested path.
// clang-format off
#define NSQ_HTTP_CLIENT_TLS_OPTION_ROWS(type, at)                                                  \
    {"tls-root-ca-file", NSQ_OPTION_STRING, NULL, 0, 0, false,                                     \
     "https: PEM CA certificates the server's certificate must chain to (default: the system's)",  \
     NSQ_OPTION_FIELD(type, at tls_root_ca_file)},                                                 \
    {"tls-cert", NSQ_OPTION_STRING, NULL, 0, 0, false,                                             \
     "https: client certificate (PEM) for servers that require one",                               \
     NSQ_OPTION_FIELD(type, at tls_cert)},                                                         \
    {"tls-key", NSQ_OPTION_STRING, NULL, 0, 0, false,                                              \
     "https: the client certificate's key (PEM, mode 0600)",                                       \
     NSQ_OPTION_FIELD(type, at tls_key)}
// clang-format on

// Writes the URL of path (with its query) at address into out: "host:port"
// and "http://..." give http://, "https://..." gives https://. Returns 0,
// or -1 if it does not fit.
int nsq_http_client_url(char *out, size_t size, const char *address, const char *path);

// Checks tls's key file (tls may be NULL; an unset key passes): a regular
// file of mode 0600 or narrower. key_option names the flag in the error
// ("tls-key" gives --tls-key=PATH: ...). Returns 0, or -1 with one line in
// error.
int nsq_http_client_tls_check(const nsq_http_client_tls_t *tls, const char *key_option, char *error,
                              size_t size);

// Sets tls on curl (nothing for unset fields; tls may be NULL).
void nsq_http_client_tls_apply(CURL *curl, const nsq_http_client_tls_t *tls);

// Self-test; returns 0 on success.
int nsq_http_client_test(void);

#endif
