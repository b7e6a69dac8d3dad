/*  broker_tcp_stream - one NSQ TCP connection's byte stream and its upgrades:
    TLS (GnuTLS), then deflate (zlib) or snappy (framed)
    SPDX-License-Identifier: MIT

    Buffers between the layers, inbound: ciphertext (tls_in) -> compressed
    bytes (packed_in) -> the caller's plaintext; outbound: plaintext
    (pending) -> compressed bytes (packed_out, only under TLS) -> output.
    A layer that is off passes its bytes straight to the next buffer.
    The self-test lives in broker_tcp_stream_test.c.
*/
#include "broker_tcp_stream.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "broker_tcp_snappy.h"

#define ZLIB_STEP 16384  // output room added per deflate/inflate call

struct _broker_tcp_stream_t {
    broker_buffer_t *tls_in;      // ciphertext not decrypted yet
    broker_buffer_t *packed_in;   // compressed bytes not decoded yet
    broker_buffer_t *pending;     // plaintext written, not flushed
    broker_buffer_t *packed_out;  // compressed bytes for TLS to encrypt
    broker_buffer_t *output;      // bytes for the socket
    gnutls_session_t session;     // TLS session, or NULL
    bool handshaking;             // TLS handshake not finished
    bool deflate;                 // deflate on (inflater and deflater set up)
    z_stream inflater;            // decodes the client's deflate stream
    z_stream deflater;            // encodes ours
    bool snappy;                  // snappy framing on
    bool snappy_read;             // the client's stream identifier was read
    bool snappy_written;          // ours was written
    bool failed;                  // a layer failed: nothing more goes through
};

broker_tcp_stream_t *broker_tcp_stream_new(void)
{
    broker_tcp_stream_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->tls_in = broker_buffer_new();
    self->packed_in = broker_buffer_new();
    self->pending = broker_buffer_new();
    self->packed_out = broker_buffer_new();
    self->output = broker_buffer_new();
    if (!self->tls_in || !self->packed_in || !self->pending || !self->packed_out || !self->output)
        broker_tcp_stream_destroy(&self);
    return self;
}

void broker_tcp_stream_destroy(broker_tcp_stream_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broker_tcp_stream_t *self = *self_p;
    if (self->session)
        gnutls_deinit(self->session);
    if (self->deflate) {
        inflateEnd(&self->inflater);
        deflateEnd(&self->deflater);
    }
    broker_buffer_destroy(&self->tls_in);
    broker_buffer_destroy(&self->packed_in);
    broker_buffer_destroy(&self->pending);
    broker_buffer_destroy(&self->packed_out);
    broker_buffer_destroy(&self->output);
    free(self);
    *self_p = NULL;
}

// Moves behind's bytes to the end of to.
static int s_move(broker_buffer_t *behind, broker_buffer_t *to)
{
    if (!behind)
        return 0;
    int rc = broker_buffer_append(to, broker_buffer_data(behind), broker_buffer_size(behind));
    broker_buffer_clear(behind);
    return rc;
}

// ---- TLS over memory -------------------------------------------------------

static ssize_t s_tls_pull(gnutls_transport_ptr_t arg, void *data, size_t size)
{
    broker_tcp_stream_t *self = arg;
    size_t have = broker_buffer_size(self->tls_in);
    if (have == 0) {
        gnutls_transport_set_errno(self->session, EAGAIN);
        return -1;
    }
    size_t take = have < size ? have : size;
    memcpy(data, broker_buffer_data(self->tls_in), take);
    broker_buffer_consume(self->tls_in, take);
    return (ssize_t) take;
}

static ssize_t s_tls_push(gnutls_transport_ptr_t arg, const void *data, size_t size)
{
    broker_tcp_stream_t *self = arg;
    if (broker_buffer_append(self->output, data, size)) {
        gnutls_transport_set_errno(self->session, ENOMEM);
        return -1;
    }
    return (ssize_t) size;
}

// Never waits: says whether ciphertext is there.
static int s_tls_pull_timeout(gnutls_transport_ptr_t arg, unsigned int ms)
{
    (void) ms;
    broker_tcp_stream_t *self = arg;
    return broker_buffer_size(self->tls_in) > 0 ? 1 : 0;
}

int broker_tcp_stream_start_tls(broker_tcp_stream_t *self, const broker_tls_t *tls,
                                broker_buffer_t *behind)
{
    if (self->session || self->deflate || self->snappy || self->failed)
        return -1;  // TLS comes first, once
    if (gnutls_init(&self->session, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0) {
        self->session = NULL;
        return -1;
    }
    if (gnutls_priority_set(self->session, broker_tls_priorities(tls)) < 0
        || gnutls_credentials_set(self->session, GNUTLS_CRD_CERTIFICATE,
                                  broker_tls_credentials(tls))
               < 0) {
        self->failed = true;
        return -1;
    }
    broker_tls_client_policy_t policy = broker_tls_client_policy(tls);
    if (policy != BROKER_TLS_CLIENT_NONE)
        gnutls_certificate_server_set_request(self->session, GNUTLS_CERT_REQUIRE);
    if (policy == BROKER_TLS_CLIENT_REQUIRE_VERIFY)
        gnutls_session_set_verify_cert(self->session, NULL, 0);  // the handshake fails if not
    gnutls_transport_set_ptr(self->session, self);
    gnutls_transport_set_pull_function(self->session, s_tls_pull);
    gnutls_transport_set_push_function(self->session, s_tls_push);
    gnutls_transport_set_pull_timeout_function(self->session, s_tls_pull_timeout);
    self->handshaking = true;
    return s_move(behind, self->tls_in);
}

// Decrypts what tls_in holds into to (stops at limit). Returns 0, or -1.
static int s_tls_read(broker_tcp_stream_t *self, broker_buffer_t *to, size_t limit)
{
    if (self->handshaking) {
        int rc = gnutls_handshake(self->session);
        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
            return 0;
        if (rc < 0)
            return -1;
        self->handshaking = false;
    }
    while (broker_buffer_size(to) < limit) {
        uint8_t *room = broker_buffer_reserve(to, 16384);
        if (!room)
            return -1;
        ssize_t got = gnutls_record_recv(self->session, room, 16384);
        if (got == GNUTLS_E_AGAIN || got == GNUTLS_E_INTERRUPTED)
            return 0;
        if (got <= 0)
            return -1;  // the peer ended TLS, or a record was bad
        broker_buffer_commit(to, (size_t) got);
    }
    return 0;
}

// Encrypts from's bytes into the output.
static int s_tls_write(broker_tcp_stream_t *self, broker_buffer_t *from)
{
    while (broker_buffer_size(from) > 0) {
        ssize_t sent =
            gnutls_record_send(self->session, broker_buffer_data(from), broker_buffer_size(from));
        if (sent <= 0)
            return -1;  // the push never blocks: anything else is a failure
        broker_buffer_consume(from, (size_t) sent);
    }
    return 0;
}

// ---- deflate ---------------------------------------------------------------

int broker_tcp_stream_start_deflate(broker_tcp_stream_t *self, int level, broker_buffer_t *behind)
{
    if (self->deflate || self->snappy || self->failed)
        return -1;
    memset(&self->inflater, 0, sizeof self->inflater);
    memset(&self->deflater, 0, sizeof self->deflater);
    // Raw deflate (-15), as Go's compress/flate reads and writes it.
    if (inflateInit2(&self->inflater, -15) != Z_OK)
        return -1;
    if (deflateInit2(&self->deflater, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        inflateEnd(&self->inflater);
        return -1;
    }
    self->deflate = true;
    return s_move(behind, self->packed_in);
}

// Inflates packed_in into plain until it is used up or plain holds limit.
static int s_inflate(broker_tcp_stream_t *self, broker_buffer_t *plain, size_t limit)
{
    while (broker_buffer_size(self->packed_in) > 0 && broker_buffer_size(plain) < limit) {
        uint8_t *room = broker_buffer_reserve(plain, ZLIB_STEP);
        if (!room)
            return -1;
        size_t in_size = broker_buffer_size(self->packed_in);
        self->inflater.next_in = broker_buffer_data(self->packed_in);
        self->inflater.avail_in = in_size > UINT32_MAX ? UINT32_MAX : (uInt) in_size;
        self->inflater.next_out = room;
        self->inflater.avail_out = ZLIB_STEP;
        int rc = inflate(&self->inflater, Z_SYNC_FLUSH);
        size_t used = in_size - self->inflater.avail_in;
        size_t made = ZLIB_STEP - self->inflater.avail_out;
        broker_buffer_consume(self->packed_in, used);
        broker_buffer_commit(plain, made);
        if (rc == Z_BUF_ERROR || (rc == Z_OK && used == 0 && made == 0))
            break;  // needs more input
        if (rc != Z_OK)
            return -1;  // corrupt, or the client ended its deflate stream
    }
    return 0;
}

// Deflates pending into to with a sync flush (the client can decode all of it).
static int s_deflate(broker_tcp_stream_t *self, broker_buffer_t *to)
{
    size_t in_size = broker_buffer_size(self->pending);
    self->deflater.next_in = broker_buffer_data(self->pending);
    self->deflater.avail_in = (uInt) in_size;  // pending stays far below 4 GiB
    do {
        uint8_t *room = broker_buffer_reserve(to, ZLIB_STEP);
        if (!room)
            return -1;
        self->deflater.next_out = room;
        self->deflater.avail_out = ZLIB_STEP;
        if (deflate(&self->deflater, Z_SYNC_FLUSH) == Z_STREAM_ERROR)
            return -1;
        broker_buffer_commit(to, ZLIB_STEP - self->deflater.avail_out);
    } while (self->deflater.avail_out == 0);
    broker_buffer_clear(self->pending);
    return 0;
}

// ---- snappy ----------------------------------------------------------------

int broker_tcp_stream_start_snappy(broker_tcp_stream_t *self, broker_buffer_t *behind)
{
    if (self->deflate || self->snappy || self->failed)
        return -1;
    self->snappy = true;
    return s_move(behind, self->packed_in);
}

// ---- the pipeline ----------------------------------------------------------

int broker_tcp_stream_read(broker_tcp_stream_t *self, const void *data, size_t size,
                           broker_buffer_t *plain, size_t limit)
{
    if (self->failed)
        return -1;
    bool packed = self->deflate || self->snappy;
    broker_buffer_t *decrypted = packed ? self->packed_in : plain;
    int rc = 0;
    if (self->session) {
        rc = broker_buffer_append(self->tls_in, data, size);
        if (rc == 0)
            rc = s_tls_read(self, decrypted, limit);
    } else {
        rc = broker_buffer_append(decrypted, data, size);
    }
    if (rc == 0 && self->deflate)
        rc = s_inflate(self, plain, limit);
    if (rc == 0 && self->snappy)
        rc = broker_tcp_snappy_decode(&self->snappy_read, self->packed_in, plain, limit);
    if (rc != 0)
        self->failed = true;
    return rc;
}

bool broker_tcp_stream_has_input(const broker_tcp_stream_t *self)
{
    if (self->failed)
        return false;
    return broker_buffer_size(self->packed_in) > 0
           || (self->session && !self->handshaking
               && (broker_buffer_size(self->tls_in) > 0
                   || gnutls_record_check_pending(self->session) > 0));
}

bool broker_tcp_stream_handshaking(const broker_tcp_stream_t *self)
{
    return self->handshaking;
}

void broker_tcp_stream_peer_common_name(const broker_tcp_stream_t *self, char *out, size_t size)
{
    out[0] = '\0';
    unsigned count = 0;
    const gnutls_datum_t *certificates = self->session && !self->handshaking
                                             ? gnutls_certificate_get_peers(self->session, &count)
                                             : NULL;
    gnutls_x509_crt_t certificate;
    if (!certificates || count == 0 || gnutls_x509_crt_init(&certificate) < 0)
        return;
    size_t length = size;
    if (gnutls_x509_crt_import(certificate, &certificates[0], GNUTLS_X509_FMT_DER) < 0
        || gnutls_x509_crt_get_dn_by_oid(certificate, GNUTLS_OID_X520_COMMON_NAME, 0, 0, out,
                                         &length)
               < 0)
        out[0] = '\0';  // none, or longer than out: told as none
    gnutls_x509_crt_deinit(certificate);
}

bool broker_tcp_stream_is_tls(const broker_tcp_stream_t *self)
{
    return self->session != NULL;
}

bool broker_tcp_stream_is_deflate(const broker_tcp_stream_t *self)
{
    return self->deflate;
}

bool broker_tcp_stream_is_snappy(const broker_tcp_stream_t *self)
{
    return self->snappy;
}

int broker_tcp_stream_write(broker_tcp_stream_t *self, const void *data, size_t size)
{
    return broker_buffer_append(self->pending, data, size);
}

size_t broker_tcp_stream_unflushed(const broker_tcp_stream_t *self)
{
    return broker_buffer_size(self->pending);
}

int broker_tcp_stream_flush(broker_tcp_stream_t *self)
{
    if (self->failed)
        return -1;
    if (broker_buffer_size(self->pending) == 0 || self->handshaking)
        return 0;
    broker_buffer_t *packed = self->session ? self->packed_out : self->output;
    int rc = 0;
    if (self->deflate) {
        rc = s_deflate(self, packed);
    } else if (self->snappy) {
        rc = broker_tcp_snappy_encode(&self->snappy_written, broker_buffer_data(self->pending),
                                      broker_buffer_size(self->pending), packed);
        broker_buffer_clear(self->pending);
    } else {
        packed = self->pending;
    }
    if (rc == 0 && self->session) {
        rc = s_tls_write(self, packed);
    } else if (rc == 0 && packed == self->pending) {
        // Plain: hand the bytes over, swapping buffers when the output is empty.
        if (broker_buffer_size(self->output) == 0) {
            self->pending = self->output;
            self->output = packed;
        } else {
            rc = broker_buffer_append(self->output, broker_buffer_data(packed),
                                      broker_buffer_size(packed));
            broker_buffer_clear(self->pending);
        }
    }
    if (rc != 0)
        self->failed = true;
    return rc;
}

broker_buffer_t *broker_tcp_stream_output(broker_tcp_stream_t *self)
{
    return self->output;
}
