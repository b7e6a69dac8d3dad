/*  broker_tcp_stream - one NSQ TCP connection's byte stream and its upgrades:
    TLS (GnuTLS), then deflate (zlib) or snappy (framed)
    SPDX-License-Identifier: MIT

    A pure transform over buffers; the socket stays with the caller. Bytes
    read from the socket go in through broker_tcp_stream_read and come out
    as plaintext; plaintext written with broker_tcp_stream_write waits
    until broker_tcp_stream_flush turns it into the bytes to send
    (broker_tcp_stream_output: the caller sends what it can and consumes
    that much). Layers, as nsqd stacks them: the socket, TLS, then one
    compression; deflate is raw deflate (no zlib header) flushed with a
    sync flush, as Go's compress/flate; snappy is snappy's framing format
    (broker_tcp_snappy).

    TLS runs over memory: GnuTLS reads ciphertext from an internal buffer
    and writes records into the output buffer, so the handshake advances
    with each read and never blocks. Plaintext written during the
    handshake waits for its end. Decoding stops once the plaintext buffer
    holds limit bytes, so a small compressed input cannot grow into an
    unbounded allocation; broker_tcp_stream_has_input then says more is
    waiting, to be decoded after the caller has consumed some.

    An upgrade takes the bytes the caller received after the upgrade point
    (the unparsed rest of the IDENTIFY's read) and decodes them with the new
    layer. The protocol's order: send the IDENTIFY response, start TLS, wait
    for the handshake, send OK, start the compression, send OK.

    API in call order: broker_tcp_stream_new, broker_tcp_stream_start_tls /
    broker_tcp_stream_start_deflate / broker_tcp_stream_start_snappy,
    broker_tcp_stream_read, broker_tcp_stream_write, broker_tcp_stream_flush,
    broker_tcp_stream_output, broker_tcp_stream_destroy.
*/
#ifndef BROKER_TCP_STREAM_H
#define BROKER_TCP_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "broker_buffer.h"
#include "broker_tls.h"

typedef struct _broker_tcp_stream_t broker_tcp_stream_t;

// Returns a plain stream. Caller owns the result; NULL if out of memory.
broker_tcp_stream_t *broker_tcp_stream_new(void);

// Frees the stream (and its TLS session). Nulls *self_p; accepts NULL.
void broker_tcp_stream_destroy(broker_tcp_stream_t **self_p);

// Starts TLS as the server with tls's credentials, versions and client
// policy (borrowed; they must outlive the stream). behind holds bytes received after the upgrade
// point: they are moved in as ciphertext. Returns 0, or -1 (the stream is
// then unusable). Call broker_tcp_stream_read to go on.
int broker_tcp_stream_start_tls(broker_tcp_stream_t *self, const broker_tls_t *tls,
                                broker_buffer_t *behind);

// Starts deflate at level (1..9) in both directions; behind as above (the
// client's first compressed bytes). Returns 0, or -1.
int broker_tcp_stream_start_deflate(broker_tcp_stream_t *self, int level, broker_buffer_t *behind);

// Starts snappy framing in both directions; behind as above.
int broker_tcp_stream_start_snappy(broker_tcp_stream_t *self, broker_buffer_t *behind);

// Takes size bytes read from the socket (data may be NULL with size 0, to
// go on decoding what waits) and appends the plaintext they hold to plain,
// stopping once plain holds limit bytes. Handshake records may appear in
// the output. Returns 0, or -1 if the peer's bytes are corrupt, the TLS
// handshake failed, the peer ended its TLS or deflate stream, or out of
// memory.
int broker_tcp_stream_read(broker_tcp_stream_t *self, const void *data, size_t size,
                           broker_buffer_t *plain, size_t limit);

// True if read bytes wait to be decoded (the last read stopped at limit).
bool broker_tcp_stream_has_input(const broker_tcp_stream_t *self);

// True while the TLS handshake is under way.
bool broker_tcp_stream_handshaking(const broker_tcp_stream_t *self);

// The common name of the certificate the TLS client showed, into out
// (size bytes, NUL-terminated; "" if none, no TLS, or longer than out).
void broker_tcp_stream_peer_common_name(const broker_tcp_stream_t *self, char *out, size_t size);

// Which layers are on (for /stats).
bool broker_tcp_stream_is_tls(const broker_tcp_stream_t *self);
bool broker_tcp_stream_is_deflate(const broker_tcp_stream_t *self);
bool broker_tcp_stream_is_snappy(const broker_tcp_stream_t *self);

// Queues plaintext to send. Returns 0, or -1 if out of memory.
int broker_tcp_stream_write(broker_tcp_stream_t *self, const void *data, size_t size);

// Plaintext written and not flushed yet.
size_t broker_tcp_stream_unflushed(const broker_tcp_stream_t *self);

// Encodes everything written so far into the output (kept back while the
// TLS handshake runs). Returns 0, or -1 (out of memory, TLS failure).
int broker_tcp_stream_flush(broker_tcp_stream_t *self);

// The bytes to send (borrowed): send from the front, then
// broker_buffer_consume what went out.
broker_buffer_t *broker_tcp_stream_output(broker_tcp_stream_t *self);

// Self-test; returns 0 on success.
int broker_tcp_stream_test(void);

#endif
