/*  v2_client - a minimal raw NSQ TCP (protocol V2) client for the tests
    SPDX-License-Identifier: MIT
*/
#include "v2_client.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "broker_buffer.h"
#include "broker_tcp_snappy.h"

#define STEP 65536  // bytes per read and per zlib call

struct _v2_client_t {
    int fd;                                        // blocking socket
    gnutls_session_t session;                      // TLS, or NULL
    gnutls_certificate_credentials_t credentials;  // what TLS trusts
    bool deflating;                                // deflate on
    z_stream inflater, deflater;                   // its two directions
    bool snappy;                                   // snappy framing on
    bool snappy_read, snappy_written;              // stream identifiers seen / sent
    broker_buffer_t *packed;                       // received, not decoded
    broker_buffer_t *plain;                        // decoded, not read
    const char *priorities;                        // TLS versions offered, NULL: defaults
};

static int64_t s_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

v2_client_t *v2_client_connect(uint16_t port)
{
    v2_client_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->packed = broker_buffer_new();
    self->plain = broker_buffer_new();
    self->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!self->packed || !self->plain || self->fd < 0
        || connect(self->fd, (struct sockaddr *) &address, sizeof address) != 0)
        v2_client_destroy(&self);
    return self;
}

void v2_client_destroy(v2_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    v2_client_t *self = *self_p;
    if (self->session)
        gnutls_deinit(self->session);
    if (self->credentials)
        gnutls_certificate_free_credentials(self->credentials);
    if (self->deflating) {
        inflateEnd(&self->inflater);
        deflateEnd(&self->deflater);
    }
    if (self->fd >= 0)
        close(self->fd);
    broker_buffer_destroy(&self->packed);
    broker_buffer_destroy(&self->plain);
    free(self);
    *self_p = NULL;
}

int v2_client_fd(const v2_client_t *self)
{
    return self->fd;
}

// Runs data through z (deflate or inflate, sync flush) into out.
static void s_zlib(z_stream *z, bool compress, const void *data, size_t size, broker_buffer_t *out)
{
    z->next_in = (Bytef *) data;
    z->avail_in = (uInt) size;
    do {
        z->next_out = broker_buffer_reserve(out, STEP);
        z->avail_out = STEP;
        if (compress)
            deflate(z, Z_SYNC_FLUSH);
        else
            inflate(z, Z_SYNC_FLUSH);
        broker_buffer_commit(out, STEP - z->avail_out);
    } while (z->avail_out == 0);
}

int v2_client_send(v2_client_t *self, const void *data, size_t size)
{
    broker_buffer_t *wire = broker_buffer_new();
    if (!wire)
        return -1;
    if (self->deflating)
        s_zlib(&self->deflater, true, data, size, wire);
    else if (self->snappy)
        broker_tcp_snappy_encode(&self->snappy_written, data, size, wire);
    else
        broker_buffer_append(wire, data, size);
    const uint8_t *bytes = broker_buffer_data(wire);
    size_t left = broker_buffer_size(wire);
    int rc = 0;
    while (left > 0 && rc == 0) {
        ssize_t sent = self->session ? gnutls_record_send(self->session, bytes, left)
                                     : write(self->fd, bytes, left);
        if (sent > 0) {
            bytes += sent;
            left -= (size_t) sent;
        } else if (!(sent < 0 && errno == EINTR)) {
            rc = -1;
        }
    }
    broker_buffer_destroy(&wire);
    return rc;
}

int v2_client_command(v2_client_t *self, const char *line, const void *body, size_t size)
{
    broker_buffer_t *out = broker_buffer_new();
    if (!out)
        return -1;
    broker_buffer_append(out, line, strlen(line));
    if (body) {
        uint8_t prefix[4] = {(uint8_t) (size >> 24), (uint8_t) (size >> 16), (uint8_t) (size >> 8),
                             (uint8_t) size};
        broker_buffer_append(out, prefix, 4);
        broker_buffer_append(out, body, size);
    }
    int rc = v2_client_send(self, broker_buffer_data(out), broker_buffer_size(out));
    broker_buffer_destroy(&out);
    return rc;
}

// Decodes what packed holds into plain.
static void s_decode(v2_client_t *self)
{
    if (self->snappy) {
        broker_tcp_snappy_decode(&self->snappy_read, self->packed, self->plain, SIZE_MAX);
    } else if (self->deflating && broker_buffer_size(self->packed) > 0) {
        s_zlib(&self->inflater, false, broker_buffer_data(self->packed),
               broker_buffer_size(self->packed), self->plain);
        broker_buffer_clear(self->packed);
    }
}

// Receives more bytes within timeout_ms. Returns 0, or -1 on end or timeout.
static int s_receive(v2_client_t *self, int timeout_ms)
{
    if (!self->session || gnutls_record_check_pending(self->session) == 0) {
        struct pollfd item = {self->fd, POLLIN, 0};
        if (poll(&item, 1, timeout_ms) <= 0)
            return -1;
    }
    uint8_t data[STEP];
    ssize_t size = self->session ? gnutls_record_recv(self->session, data, sizeof data)
                                 : read(self->fd, data, sizeof data);
    if (size <= 0)
        return -1;
    broker_buffer_append(self->deflating || self->snappy ? self->packed : self->plain, data,
                         (size_t) size);
    s_decode(self);
    return 0;
}

int v2_client_frame(v2_client_t *self, int *type, char *data, size_t size, int timeout_ms)
{
    int64_t deadline = s_now_ms() + timeout_ms;
    for (;;) {
        const uint8_t *in = broker_buffer_data(self->plain);
        size_t have = broker_buffer_size(self->plain);
        if (have >= 8) {
            size_t length =
                (size_t) in[0] << 24 | (size_t) in[1] << 16 | (size_t) in[2] << 8 | in[3];
            if (length >= 4 && have >= 4 + length) {
                *type = in[7];
                size_t copy = length - 4 < size - 1 ? length - 4 : size - 1;
                memcpy(data, in + 8, copy);
                data[copy] = '\0';
                broker_buffer_consume(self->plain, 4 + length);
                return (int) (length - 4);
            }
        }
        int64_t left = deadline - s_now_ms();
        if (left <= 0 || s_receive(self, (int) left) != 0)
            return -1;
    }
}

bool v2_client_expect(v2_client_t *self, int type, const char *prefix)
{
    char data[4096];
    int got;
    if (v2_client_frame(self, &got, data, sizeof data, 5000) < 0) {
        fprintf(stderr, "v2_client: no frame within 5 s (wanted %d \"%s\")\n", type, prefix);
        return false;
    }
    if (got != type || strncmp(data, prefix, strlen(prefix)) != 0) {
        fprintf(stderr, "v2_client: frame %d \"%.200s\", wanted %d \"%s\"\n", got, data, type,
                prefix);
        return false;
    }
    return true;
}

int v2_client_message(v2_client_t *self, int *attempts, char id[17], char *body, size_t size,
                      int timeout_ms)
{
    char data[65536 + 26];
    int type;
    int length = v2_client_frame(self, &type, data, sizeof data, timeout_ms);
    if (length < 26 || type != 2)
        return -1;
    *attempts = (uint8_t) data[8] << 8 | (uint8_t) data[9];
    memcpy(id, data + 10, 16);
    id[16] = '\0';
    size_t body_length = (size_t) length - 26;
    size_t copy = body_length < size - 1 ? body_length : size - 1;
    memcpy(body, data + 26, copy);
    body[copy] = '\0';
    return (int) body_length;
}

bool v2_client_ended(v2_client_t *self, int timeout_ms)
{
    int64_t deadline = s_now_ms() + timeout_ms;
    char data[STEP];
    while (s_now_ms() < deadline) {
        struct pollfd item = {self->fd, POLLIN, 0};
        if (poll(&item, 1, 100) == 1) {
            ssize_t size = read(self->fd, data, sizeof data);
            if (size == 0 || (size < 0 && errno == ECONNRESET))
                return true;
        }
    }
    return false;
}

void v2_client_compress(v2_client_t *self, bool snappy, int level)
{
    if (snappy) {
        self->snappy = true;
    } else {
        inflateInit2(&self->inflater, -15);
        deflateInit2(&self->deflater, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
        self->deflating = true;
    }
    // What came behind the reply is compressed already.
    broker_buffer_append(self->packed, broker_buffer_data(self->plain),
                         broker_buffer_size(self->plain));
    broker_buffer_clear(self->plain);
    s_decode(self);
}

static ssize_t s_pull(gnutls_transport_ptr_t arg, void *data, size_t size)
{
    return read(((v2_client_t *) arg)->fd, data, size);
}

static ssize_t s_push(gnutls_transport_ptr_t arg, const void *data, size_t size)
{
    return write(((v2_client_t *) arg)->fd, data, size);
}

int v2_client_start_tls(v2_client_t *self, const char *ca_file)
{
    return v2_client_start_tls_as(self, ca_file, NULL, NULL);
}

int v2_client_start_tls_as(v2_client_t *self, const char *ca_file, const char *cert_file,
                           const char *key_file)
{
    if (self->session || gnutls_certificate_allocate_credentials(&self->credentials) < 0
        || gnutls_certificate_set_x509_trust_file(self->credentials, ca_file, GNUTLS_X509_FMT_PEM)
               < 1
        || (cert_file
            && gnutls_certificate_set_x509_key_file(self->credentials, cert_file, key_file,
                                                    GNUTLS_X509_FMT_PEM)
                   < 0)
        || gnutls_init(&self->session, GNUTLS_CLIENT) < 0)
        return -1;
    if ((self->priorities ? gnutls_priority_set_direct(self->session, self->priorities, NULL)
                          : gnutls_set_default_priority(self->session))
            < 0
        || gnutls_credentials_set(self->session, GNUTLS_CRD_CERTIFICATE, self->credentials) < 0)
        return -1;
    gnutls_session_set_verify_cert(self->session, "127.0.0.1", 0);
    gnutls_transport_set_ptr(self->session, self);
    gnutls_transport_set_pull_function(self->session, s_pull);
    gnutls_transport_set_push_function(self->session, s_push);
    int rc;
    do
        rc = gnutls_handshake(self->session);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (rc < 0)
        fprintf(stderr, "v2_client: TLS handshake: %s\n", gnutls_strerror(rc));
    return rc < 0 ? -1 : 0;
}

void v2_client_set_tls_priorities(v2_client_t *self, const char *priorities)
{
    self->priorities = priorities;
}
