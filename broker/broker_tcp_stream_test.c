/*  broker_tcp_stream_test - the self-test of broker_tcp_stream
    SPDX-License-Identifier: MIT

    Each layer against an independent peer: deflate against zlib used the
    way Go's compress/flate works (raw, sync flush), snappy against the
    framing functions, TLS against a GnuTLS client session that verifies
    the certificate for 127.0.0.1; then TLS with snappy on top, as a client
    negotiates both; the TLS versions accepted follow --tls-min-version.
    Also: the limit on decoded bytes (a deflate bomb comes out in bounded
    pieces), plaintext held back during the handshake, and corrupt input
    failing the stream.
*/
#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "broker_tcp_snappy.h"
#include "broker_tcp_stream.h"

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "broker_tcp_stream_test: %s:%d: %s\n", __FILE__, __LINE__,             \
                    #condition);                                                                   \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

// Moves the server's output to the peer's input.
static void s_drain(broker_tcp_stream_t *stream, broker_buffer_t *to)
{
    broker_buffer_t *output = broker_tcp_stream_output(stream);
    broker_buffer_append(to, broker_buffer_data(output), broker_buffer_size(output));
    broker_buffer_consume(output, broker_buffer_size(output));
}

static bool s_equals(broker_buffer_t *buffer, const char *text)
{
    return broker_buffer_size(buffer) == strlen(text)
           && memcmp(broker_buffer_data(buffer), text, strlen(text)) == 0;
}

// Runs data through a raw deflate stream with a sync flush, into out.
static void s_zlib(z_stream *z, bool compress, const void *data, size_t size, broker_buffer_t *out)
{
    z->next_in = (Bytef *) data;
    z->avail_in = (uInt) size;
    do {
        uint8_t *room = broker_buffer_reserve(out, 65536);
        z->next_out = room;
        z->avail_out = 65536;
        if (compress)
            deflate(z, Z_SYNC_FLUSH);
        else
            inflate(z, Z_SYNC_FLUSH);
        broker_buffer_commit(out, 65536 - z->avail_out);
    } while (z->avail_out == 0);
}

static int s_plain(void)
{
    int rc = -1;
    broker_tcp_stream_t *stream = broker_tcp_stream_new();
    broker_buffer_t *plain = broker_buffer_new();
    S_CHECK(broker_tcp_stream_write(stream, "abc", 3) == 0);
    S_CHECK(broker_tcp_stream_unflushed(stream) == 3);
    S_CHECK(broker_buffer_size(broker_tcp_stream_output(stream)) == 0);  // not before a flush
    S_CHECK(broker_tcp_stream_flush(stream) == 0 && broker_tcp_stream_write(stream, "d", 1) == 0);
    S_CHECK(broker_tcp_stream_flush(stream) == 0);
    S_CHECK(s_equals(broker_tcp_stream_output(stream), "abcd"));
    S_CHECK(broker_tcp_stream_read(stream, "xyz", 3, plain, 100) == 0 && s_equals(plain, "xyz"));
    S_CHECK(!broker_tcp_stream_is_tls(stream) && !broker_tcp_stream_is_deflate(stream));
    rc = 0;
done:
    broker_tcp_stream_destroy(&stream);
    broker_buffer_destroy(&plain);
    return rc;
}

static int s_deflate(void)
{
    int rc = -1;
    broker_tcp_stream_t *stream = broker_tcp_stream_new();
    broker_buffer_t *plain = broker_buffer_new(), *wire = broker_buffer_new();
    broker_buffer_t *behind = broker_buffer_new(), *got = broker_buffer_new();
    z_stream client_out = {0}, client_in = {0};
    deflateInit2(&client_out, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    inflateInit2(&client_in, -15);
    // The client's first compressed bytes arrive with the IDENTIFY's read.
    s_zlib(&client_out, true, "NOP\nRDY 1\n", 10, wire);
    size_t half = broker_buffer_size(wire) / 2;
    broker_buffer_append(behind, broker_buffer_data(wire), half);
    S_CHECK(broker_tcp_stream_start_deflate(stream, 6, behind) == 0);
    S_CHECK(broker_buffer_size(behind) == 0 && broker_tcp_stream_is_deflate(stream));
    S_CHECK(broker_tcp_stream_read(stream, broker_buffer_data(wire) + half,
                                   broker_buffer_size(wire) - half, plain, 1 << 20)
            == 0);
    S_CHECK(s_equals(plain, "NOP\nRDY 1\n"));
    // Our frames, decoded by the client after each flush.
    S_CHECK(broker_tcp_stream_write(stream, "frame one;", 10) == 0);
    S_CHECK(broker_tcp_stream_flush(stream) == 0);
    broker_buffer_t *output = broker_tcp_stream_output(stream);
    s_zlib(&client_in, false, broker_buffer_data(output), broker_buffer_size(output), got);
    broker_buffer_consume(output, broker_buffer_size(output));
    S_CHECK(s_equals(got, "frame one;"));
    // A bomb: 8 MiB of one byte, a few KiB compressed, comes out in pieces
    // no bigger than the limit plus one step.
    size_t bomb = 8 << 20;
    uint8_t *zeros = calloc(1, bomb);
    broker_buffer_clear(wire);
    broker_buffer_clear(plain);
    s_zlib(&client_out, true, zeros, bomb, wire);
    free(zeros);
    S_CHECK(broker_buffer_size(wire) < 65536);
    size_t total = 0;
    S_CHECK(broker_tcp_stream_read(stream, broker_buffer_data(wire), broker_buffer_size(wire),
                                   plain, 65536)
            == 0);
    while (broker_buffer_size(plain) > 0) {
        S_CHECK(broker_buffer_size(plain) <= 65536 + 16384);
        total += broker_buffer_size(plain);
        broker_buffer_clear(plain);
        S_CHECK(broker_tcp_stream_read(stream, NULL, 0, plain, 65536) == 0);
    }
    S_CHECK(total == bomb && !broker_tcp_stream_has_input(stream));
    // Garbage fails the stream, for good.
    S_CHECK(broker_tcp_stream_read(stream, "\xff\xff\xff\xff\xff\xff", 6, plain, 100) == -1);
    S_CHECK(broker_tcp_stream_read(stream, NULL, 0, plain, 100) == -1);
    rc = 0;
done:
    deflateEnd(&client_out);
    inflateEnd(&client_in);
    broker_tcp_stream_destroy(&stream);
    broker_buffer_destroy(&plain);
    broker_buffer_destroy(&wire);
    broker_buffer_destroy(&behind);
    broker_buffer_destroy(&got);
    return rc;
}

static int s_snappy(void)
{
    int rc = -1;
    broker_tcp_stream_t *stream = broker_tcp_stream_new();
    broker_buffer_t *plain = broker_buffer_new(), *wire = broker_buffer_new();
    broker_buffer_t *got = broker_buffer_new();
    bool client_wrote = false, client_read = false;
    S_CHECK(broker_tcp_stream_start_snappy(stream, NULL) == 0);
    S_CHECK(broker_tcp_stream_start_deflate(stream, 6, NULL) == -1);  // one compression only
    S_CHECK(broker_tcp_snappy_encode(&client_wrote, "SUB t c\n", 8, wire) == 0);
    S_CHECK(broker_tcp_stream_read(stream, broker_buffer_data(wire), broker_buffer_size(wire),
                                   plain, 1 << 20)
            == 0);
    S_CHECK(s_equals(plain, "SUB t c\n"));
    S_CHECK(broker_tcp_stream_write(stream, "OK", 2) == 0 && broker_tcp_stream_flush(stream) == 0);
    S_CHECK(broker_tcp_snappy_decode(&client_read, broker_tcp_stream_output(stream), got, 1 << 20)
            == 0);
    S_CHECK(s_equals(got, "OK") && client_read);
    rc = 0;
done:
    broker_tcp_stream_destroy(&stream);
    broker_buffer_destroy(&plain);
    broker_buffer_destroy(&wire);
    broker_buffer_destroy(&got);
    return rc;
}

// ---- a GnuTLS client over memory -------------------------------------------

typedef struct {
    gnutls_session_t session;
    gnutls_certificate_credentials_t credentials;
    broker_buffer_t *in;   // from the server
    broker_buffer_t *out;  // to the server
} client_t;

static ssize_t s_client_pull(gnutls_transport_ptr_t arg, void *data, size_t size)
{
    client_t *client = arg;
    size_t have = broker_buffer_size(client->in);
    if (have == 0) {
        gnutls_transport_set_errno(client->session, EAGAIN);
        return -1;
    }
    size_t take = have < size ? have : size;
    memcpy(data, broker_buffer_data(client->in), take);
    broker_buffer_consume(client->in, take);
    return (ssize_t) take;
}

static ssize_t s_client_push(gnutls_transport_ptr_t arg, const void *data, size_t size)
{
    client_t *client = arg;
    broker_buffer_append(client->out, data, size);
    return (ssize_t) size;
}

static int s_client_pull_timeout(gnutls_transport_ptr_t arg, unsigned int ms)
{
    (void) ms;
    return broker_buffer_size(((client_t *) arg)->in) > 0;
}

// A client that trusts only ca_file and checks the name 127.0.0.1; it
// offers the versions of the GnuTLS priority string priorities (NULL:
// GnuTLS's defaults).
static int s_client_new(client_t *client, const char *ca_file, const char *priorities)
{
    memset(client, 0, sizeof *client);
    client->in = broker_buffer_new();
    client->out = broker_buffer_new();
    if (gnutls_certificate_allocate_credentials(&client->credentials) < 0
        || gnutls_certificate_set_x509_trust_file(client->credentials, ca_file, GNUTLS_X509_FMT_PEM)
               != 1
        || gnutls_init(&client->session, GNUTLS_CLIENT | GNUTLS_NONBLOCK) < 0
        || (priorities ? gnutls_priority_set_direct(client->session, priorities, NULL)
                       : gnutls_set_default_priority(client->session))
               < 0
        || gnutls_credentials_set(client->session, GNUTLS_CRD_CERTIFICATE, client->credentials) < 0)
        return -1;
    gnutls_session_set_verify_cert(client->session, "127.0.0.1", 0);
    gnutls_transport_set_ptr(client->session, client);
    gnutls_transport_set_pull_function(client->session, s_client_pull);
    gnutls_transport_set_push_function(client->session, s_client_push);
    gnutls_transport_set_pull_timeout_function(client->session, s_client_pull_timeout);
    return 0;
}

static void s_client_destroy(client_t *client)
{
    if (client->session)
        gnutls_deinit(client->session);
    if (client->credentials)
        gnutls_certificate_free_credentials(client->credentials);
    broker_buffer_destroy(&client->in);
    broker_buffer_destroy(&client->out);
}

// Runs the handshake between client and server. Returns 0, or -1.
static int s_handshake(client_t *client, broker_tcp_stream_t *stream, broker_buffer_t *plain)
{
    for (int round = 0; round < 20; round++) {
        int rc = gnutls_handshake(client->session);
        if (rc < 0 && rc != GNUTLS_E_AGAIN)
            return -1;
        if (broker_tcp_stream_read(stream, broker_buffer_data(client->out),
                                   broker_buffer_size(client->out), plain, 1 << 20))
            return -1;
        broker_buffer_clear(client->out);
        s_drain(stream, client->in);
        if (rc == 0 && !broker_tcp_stream_handshaking(stream))
            return 0;
    }
    return -1;
}

// Reads what the client can decrypt into got.
static void s_client_read(client_t *client, broker_buffer_t *got)
{
    uint8_t data[4096];
    ssize_t size;
    while ((size = gnutls_record_recv(client->session, data, sizeof data)) > 0)
        broker_buffer_append(got, data, (size_t) size);
}

static int s_tls(const broker_tls_t *tls, const char *ca_file)
{
    int rc = -1;
    client_t client;
    broker_tcp_stream_t *stream = broker_tcp_stream_new();
    broker_buffer_t *plain = broker_buffer_new(), *got = broker_buffer_new();
    broker_buffer_t *wire = broker_buffer_new();
    bool client_wrote = false, client_read = false;
    S_CHECK(s_client_new(&client, ca_file, NULL) == 0);
    S_CHECK(broker_tcp_stream_start_tls(stream, tls, NULL) == 0);
    S_CHECK(broker_tcp_stream_handshaking(stream) && broker_tcp_stream_is_tls(stream));
    // The OK written now waits for the end of the handshake.
    S_CHECK(broker_tcp_stream_write(stream, "OK", 2) == 0 && broker_tcp_stream_flush(stream) == 0);
    S_CHECK(broker_tcp_stream_unflushed(stream) == 2);
    S_CHECK(s_handshake(&client, stream, plain) == 0);
    S_CHECK(broker_buffer_size(plain) == 0);
    S_CHECK(broker_tcp_stream_flush(stream) == 0);
    s_drain(stream, client.in);
    s_client_read(&client, got);
    S_CHECK(s_equals(got, "OK"));
    // Snappy on top of TLS, both ways.
    S_CHECK(broker_tcp_stream_start_snappy(stream, NULL) == 0);
    S_CHECK(broker_tcp_snappy_encode(&client_wrote, "PUB t\n", 6, wire) == 0);
    S_CHECK(gnutls_record_send(client.session, broker_buffer_data(wire), broker_buffer_size(wire))
            == (ssize_t) broker_buffer_size(wire));
    S_CHECK(broker_tcp_stream_read(stream, broker_buffer_data(client.out),
                                   broker_buffer_size(client.out), plain, 1 << 20)
            == 0);
    broker_buffer_clear(client.out);
    S_CHECK(s_equals(plain, "PUB t\n"));
    S_CHECK(broker_tcp_stream_write(stream, "frame", 5) == 0
            && broker_tcp_stream_flush(stream) == 0);
    s_drain(stream, client.in);
    broker_buffer_clear(got);
    s_client_read(&client, got);
    broker_buffer_clear(wire);
    S_CHECK(broker_tcp_snappy_decode(&client_read, got, wire, 1 << 20) == 0);
    S_CHECK(s_equals(wire, "frame"));
    rc = 0;
done:
    s_client_destroy(&client);
    broker_tcp_stream_destroy(&stream);
    broker_buffer_destroy(&plain);
    broker_buffer_destroy(&got);
    broker_buffer_destroy(&wire);
    return rc;
}

// A client that does not trust our certificate, and bytes that are no
// ClientHello: both end in a failed stream, never a hang.
static int s_tls_failures(const broker_tls_t *tls, const char *untrusted_ca)
{
    int rc = -1;
    client_t client;
    broker_tcp_stream_t *stream = broker_tcp_stream_new();
    broker_buffer_t *plain = broker_buffer_new();
    S_CHECK(s_client_new(&client, untrusted_ca, NULL) == 0);
    S_CHECK(broker_tcp_stream_start_tls(stream, tls, NULL) == 0);
    S_CHECK(s_handshake(&client, stream, plain) == -1);
    broker_tcp_stream_destroy(&stream);
    stream = broker_tcp_stream_new();
    S_CHECK(broker_tcp_stream_start_tls(stream, tls, NULL) == 0);
    const char junk[] = "IDENTIFY\nthis is not TLS at all, not even close to a record";
    S_CHECK(broker_tcp_stream_read(stream, junk, sizeof junk, plain, 1 << 20) == -1);
    rc = 0;
done:
    s_client_destroy(&client);
    broker_tcp_stream_destroy(&stream);
    broker_buffer_destroy(&plain);
    return rc;
}

// Whether a client offering only the versions in priorities completes a
// handshake with tls, agreeing on version.
static bool s_tls_version_agreed(const broker_tls_t *tls, const char *ca_file,
                                 const char *priorities, gnutls_protocol_t version)
{
    client_t client;
    broker_tcp_stream_t *stream = broker_tcp_stream_new();
    broker_buffer_t *plain = broker_buffer_new();
    bool agreed = s_client_new(&client, ca_file, priorities) == 0
                  && broker_tcp_stream_start_tls(stream, tls, NULL) == 0
                  && s_handshake(&client, stream, plain) == 0
                  && gnutls_protocol_get_version(client.session) == version;
    s_client_destroy(&client);
    broker_tcp_stream_destroy(&stream);
    broker_buffer_destroy(&plain);
    return agreed;
}

// --tls-min-version (broker_tls_set_min_version) bounds the versions the
// stream accepts: TLS 1.2 by default, only TLS 1.3 with tls1.3.
static int s_tls_min_version(broker_tls_t *tls, const char *ca_file)
{
    const char *only_12 = "NORMAL:-VERS-ALL:+VERS-TLS1.2";
    const char *only_13 = "NORMAL:-VERS-ALL:+VERS-TLS1.3";
    const char *only_11 = "NORMAL:-VERS-ALL:+VERS-TLS1.1";
    int rc = -1;
    char error[256];
    S_CHECK(s_tls_version_agreed(tls, ca_file, only_12, GNUTLS_TLS1_2));
    S_CHECK(s_tls_version_agreed(tls, ca_file, only_13, GNUTLS_TLS1_3));
    S_CHECK(!s_tls_version_agreed(tls, ca_file, only_11, GNUTLS_TLS1_1));
    S_CHECK(broker_tls_set_min_version(tls, "tls1.3", error, sizeof error) == 0);
    S_CHECK(!s_tls_version_agreed(tls, ca_file, only_12, GNUTLS_TLS1_2));
    S_CHECK(s_tls_version_agreed(tls, ca_file, only_13, GNUTLS_TLS1_3));
    S_CHECK(s_tls_version_agreed(tls, ca_file, NULL, GNUTLS_TLS1_3));
    rc = 0;
done:
    broker_tls_set_min_version(tls, NULL, error, sizeof error);
    return rc;
}

int broker_tcp_stream_test(void)
{
    int rc = s_plain() || s_deflate() || s_snappy() ? -1 : 0;
    char dir[] = "/tmp/broker_tcp_stream_test.XXXXXX", cert[80], key[80], other[80], other_key[80];
    if (!mkdtemp(dir))
        return -1;
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(other, sizeof other, "%s/other.pem", dir);
    snprintf(other_key, sizeof other_key, "%s/other_key.pem", dir);
    char error[256];
    broker_tls_t *tls = NULL;
    if (broker_tls_write_test_pair(cert, key) || broker_tls_write_test_pair(other, other_key)
        || !(tls = broker_tls_new(cert, key, error, sizeof error)))
        rc = -1;
    else if (s_tls(tls, cert) || s_tls_failures(tls, other) || s_tls_min_version(tls, cert))
        rc = -1;
    broker_tls_destroy(&tls);
    unlink(cert);
    unlink(key);
    unlink(other);
    unlink(other_key);
    rmdir(dir);
    return rc;
}
