/*  v2_client - a minimal raw NSQ TCP (protocol V2) client for the tests
    SPDX-License-Identifier: MIT

    Bytes in, frames out, nothing hidden: a test writes the exact command
    bytes it wants (magic, lines, size-prefixed bodies, malformed ones too)
    and reads frames one at a time. Upgrades as a client does them after
    the IDENTIFY reply: deflate (zlib, raw, sync flush, as Go's flate),
    snappy (the framing of broker_tcp_snappy) and TLS (a GnuTLS client
    that verifies the server's certificate for 127.0.0.1 against a CA
    file). Blocking socket; every read has a timeout.

    Used by the I/O thread's self-test (tests/broker_tcp_io_test.c) and by
    the integration tests of the broker's TCP door.

    API: v2_client_connect, v2_client_send, v2_client_command,
    v2_client_frame, v2_client_expect, v2_client_message, v2_client_ended,
    v2_client_compress, v2_client_start_tls, v2_client_start_tls_as,
    v2_client_fd, v2_client_set_tls_priorities,
    v2_client_destroy.
*/
#ifndef V2_CLIENT_H
#define V2_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _v2_client_t v2_client_t;

// Connects to 127.0.0.1:port (the magic is not sent: tests send it, or a
// wrong one). Caller destroys; NULL if the connection fails.
v2_client_t *v2_client_connect(uint16_t port);

// Closes and frees. Nulls *self_p; accepts NULL.
void v2_client_destroy(v2_client_t **self_p);

// The socket.
int v2_client_fd(const v2_client_t *self);

// Sends bytes through the client's layers. Returns 0, or -1.
int v2_client_send(v2_client_t *self, const void *data, size_t size);

// Sends line (with its \n) and, when body is not NULL, [int32 BE size][body].
int v2_client_command(v2_client_t *self, const char *line, const void *body, size_t size);

// Reads one frame within timeout_ms: *type, the data NUL-terminated in data
// (cut to size). Returns the data's full length, or -1 on end or timeout.
int v2_client_frame(v2_client_t *self, int *type, char *data, size_t size, int timeout_ms);

// Reads the next frame (within 5 s) and checks its type and that its data
// starts with prefix; prints what came instead. Returns true if so.
bool v2_client_expect(v2_client_t *self, int type, const char *prefix);

// Reads the next frame (within timeout_ms), which must be a message:
// fills its attempts, its id (16 characters + NUL) and its body (NUL-
// terminated, cut to size). Returns the body's full length, or -1.
int v2_client_message(v2_client_t *self, int *attempts, char id[17], char *body, size_t size,
                      int timeout_ms);

// True once the server has closed the connection within timeout_ms
// (frames that still come are dropped).
bool v2_client_ended(v2_client_t *self, int timeout_ms);

// Turns compression on (after reading the IDENTIFY reply that negotiated
// it): snappy, or deflate at level. Bytes already received and not read
// are decoded as compressed.
void v2_client_compress(v2_client_t *self, bool snappy, int level);

// Runs the TLS handshake (after the IDENTIFY reply that negotiated it),
// trusting ca_file and checking the name 127.0.0.1. Returns 0, or -1.
int v2_client_start_tls(v2_client_t *self, const char *ca_file);

// The same, showing the client certificate cert_file (PEM, with its key
// key_file) when the server asks for one (NULL: none).
int v2_client_start_tls_as(v2_client_t *self, const char *ca_file, const char *cert_file,
                           const char *key_file);

// The TLS versions (and ciphers) the next handshake offers: a GnuTLS
// priority string (borrowed, must outlive the handshake), e.g.
// "NORMAL:-VERS-ALL:+VERS-TLS1.2"; NULL: GnuTLS's defaults (the default).
void v2_client_set_tls_priorities(v2_client_t *self, const char *priorities);

#endif
