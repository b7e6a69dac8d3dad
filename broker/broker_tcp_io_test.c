/*  broker_tcp_io_test - the self-test of broker_tcp_io (and its connections)
    SPDX-License-Identifier: MIT

    The test plays the core: it takes the I/O thread's events and answers
    with posts. Clients are real sockets on 127.0.0.1 speaking V2 bytes
    written here (and, for the upgrades, zlib used as Go's flate, the
    snappy framing functions, and a GnuTLS client that verifies the
    certificate). Cases: commands become events with their bodies as
    messages; answers come back in order, the IDENTIFY reply and its
    upgrades behind earlier answers; a parse error waits for earlier
    answers and closes; heartbeats and the drop after two missed ones; a
    client that does not read is blocked, then dropped, while another is
    served; deflate, and TLS with snappy, end to end; 1,000 clients that
    connect and vanish.
*/
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

#include "broker_tcp_io.h"
#include "broker_tcp_snappy.h"

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "broker_tcp_io_test: %s:%d: %s\n", __FILE__, __LINE__, #condition);    \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

static int64_t s_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

// ---- the core's part ---------------------------------------------------------

typedef struct {
    broker_tcp_io_t *io;
    broker_tcp_event_t *head;  // taken, not handed to the test yet
} core_t;

// The next event, waiting up to timeout_ms; NULL on timeout. Caller owns it.
static broker_tcp_event_t *s_event(core_t *core, int timeout_ms)
{
    int64_t deadline = s_now() + timeout_ms;
    while (!core->head) {
        broker_tcp_event_t *taken = broker_tcp_io_take(core->io);
        if (taken) {
            core->head = taken;
            break;
        }
        int64_t left = deadline - s_now();
        if (left <= 0)
            return NULL;
        struct pollfd item = {broker_tcp_io_fd(core->io), POLLIN, 0};
        poll(&item, 1, (int) left);
    }
    broker_tcp_event_t *event = core->head;
    core->head = event->next;
    event->next = NULL;
    return event;
}

// Waits for an event of kind (destroying others); returns it, or NULL.
static broker_tcp_event_t *s_expect(core_t *core, broker_tcp_event_kind_t kind, int timeout_ms)
{
    int64_t deadline = s_now() + timeout_ms;
    for (;;) {
        int64_t left = deadline - s_now();
        broker_tcp_event_t *event = s_event(core, left > 0 ? (int) left : 0);
        if (!event || event->kind == kind)
            return event;
        broker_tcp_event_destroy(&event);
    }
}

// Posts one response frame (text) with flags and done.
static void s_answer(core_t *core, uint64_t connection, const char *text, unsigned flags,
                     uint32_t done)
{
    broker_buffer_t *bytes = NULL;
    if (text) {
        bytes = broker_buffer_new();
        broker_tcp_write_response(bytes, text, strlen(text));
    }
    broker_tcp_io_post(core->io, connection, &bytes, flags, done);
    broker_tcp_io_commit(core->io);
}

// ---- a client ------------------------------------------------------------------

typedef struct {
    int fd;
    gnutls_session_t session;  // TLS, or NULL
    z_stream inflater;         // deflate on when deflating
    z_stream deflater;
    bool deflating;
    bool snappy;  // snappy framing on
    bool snappy_read, snappy_written;
    broker_buffer_t *packed;  // received, not decoded
    broker_buffer_t *plain;   // decoded, not read
} client_t;

static int s_client_connect(client_t *client, uint16_t port)
{
    memset(client, 0, sizeof *client);
    client->packed = broker_buffer_new();
    client->plain = broker_buffer_new();
    client->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return connect(client->fd, (struct sockaddr *) &address, sizeof address);
}

static void s_client_close(client_t *client)
{
    if (client->session)
        gnutls_deinit(client->session);
    if (client->deflating) {
        inflateEnd(&client->inflater);
        deflateEnd(&client->deflater);
    }
    if (client->fd > 0)
        close(client->fd);
    broker_buffer_destroy(&client->packed);
    broker_buffer_destroy(&client->plain);
    client->fd = -1;
}

// Sends bytes through the client's layers.
static int s_client_send(client_t *client, const void *data, size_t size)
{
    broker_buffer_t *wire = broker_buffer_new();
    if (client->deflating) {
        client->deflater.next_in = (Bytef *) data;
        client->deflater.avail_in = (uInt) size;
        do {
            uint8_t *room = broker_buffer_reserve(wire, 65536);
            client->deflater.next_out = room;
            client->deflater.avail_out = 65536;
            deflate(&client->deflater, Z_SYNC_FLUSH);
            broker_buffer_commit(wire, 65536 - client->deflater.avail_out);
        } while (client->deflater.avail_out == 0);
    } else if (client->snappy) {
        broker_tcp_snappy_encode(&client->snappy_written, data, size, wire);
    } else {
        broker_buffer_append(wire, data, size);
    }
    const uint8_t *bytes = broker_buffer_data(wire);
    size_t left = broker_buffer_size(wire);
    int rc = 0;
    while (left > 0 && rc == 0) {
        ssize_t sent = client->session ? gnutls_record_send(client->session, bytes, left)
                                       : write(client->fd, bytes, left);
        if (sent <= 0)
            rc = -1;
        else
            bytes += sent, left -= (size_t) sent;
    }
    broker_buffer_destroy(&wire);
    return rc;
}

// Sends a command line and, when body is not NULL, [size][body].
static int s_client_command(client_t *client, const char *line, const void *body, size_t size)
{
    broker_buffer_t *out = broker_buffer_new();
    broker_buffer_append(out, line, strlen(line));
    if (body) {
        uint8_t prefix[4] = {(uint8_t) (size >> 24), (uint8_t) (size >> 16), (uint8_t) (size >> 8),
                             (uint8_t) size};
        broker_buffer_append(out, prefix, 4);
        broker_buffer_append(out, body, size);
    }
    int rc = s_client_send(client, broker_buffer_data(out), broker_buffer_size(out));
    broker_buffer_destroy(&out);
    return rc;
}

// Decodes what packed holds into plain.
static int s_client_decode(client_t *client)
{
    if (client->snappy)
        return broker_tcp_snappy_decode(&client->snappy_read, client->packed, client->plain,
                                        SIZE_MAX);
    if (client->deflating && broker_buffer_size(client->packed) > 0) {
        client->inflater.next_in = broker_buffer_data(client->packed);
        client->inflater.avail_in = (uInt) broker_buffer_size(client->packed);
        do {
            uint8_t *room = broker_buffer_reserve(client->plain, 65536);
            client->inflater.next_out = room;
            client->inflater.avail_out = 65536;
            inflate(&client->inflater, Z_SYNC_FLUSH);
            broker_buffer_commit(client->plain, 65536 - client->inflater.avail_out);
        } while (client->inflater.avail_out == 0);
        broker_buffer_clear(client->packed);
    }
    return 0;
}

// The client turns compression on: what it received but did not read yet
// is compressed already.
static void s_client_compress(client_t *client, bool snappy)
{
    if (snappy) {
        client->snappy = true;
    } else {
        inflateInit2(&client->inflater, -15);
        deflateInit2(&client->deflater, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
        client->deflating = true;
    }
    broker_buffer_append(client->packed, broker_buffer_data(client->plain),
                         broker_buffer_size(client->plain));
    broker_buffer_clear(client->plain);
    s_client_decode(client);
}

// Receives and decodes more bytes. Returns 0, or -1 on end or timeout.
static int s_client_receive(client_t *client, int timeout_ms)
{
    if (!client->session || gnutls_record_check_pending(client->session) == 0) {
        struct pollfd item = {client->fd, POLLIN, 0};
        if (poll(&item, 1, timeout_ms) <= 0)
            return -1;
    }
    uint8_t data[65536];
    ssize_t size = client->session ? gnutls_record_recv(client->session, data, sizeof data)
                                   : read(client->fd, data, sizeof data);
    if (size <= 0)
        return -1;
    broker_buffer_t *to = client->deflating || client->snappy ? client->packed : client->plain;
    broker_buffer_append(to, data, (size_t) size);
    return s_client_decode(client);
}

// Reads one frame: its type and data (NUL-terminated, cut to size). Returns
// the data length, or -1 on end or timeout.
static int s_client_frame(client_t *client, int *type, char *data, size_t size, int timeout_ms)
{
    int64_t deadline = s_now() + timeout_ms;
    for (;;) {
        const uint8_t *in = broker_buffer_data(client->plain);
        size_t have = broker_buffer_size(client->plain);
        if (have >= 8) {
            size_t length =
                (size_t) in[0] << 24 | (size_t) in[1] << 16 | (size_t) in[2] << 8 | in[3];
            if (have >= 4 + length) {
                *type = in[7];
                size_t copy = length - 4 < size - 1 ? length - 4 : size - 1;
                memcpy(data, in + 8, copy);
                data[copy] = '\0';
                broker_buffer_consume(client->plain, 4 + length);
                return (int) (length - 4);
            }
        }
        int64_t left = deadline - s_now();
        if (left <= 0 || s_client_receive(client, (int) left) != 0)
            return -1;
    }
}

// Reads the next frame and checks it is a response (type 0) with text.
static bool s_client_expect(client_t *client, int want_type, const char *text)
{
    char data[4096];
    int type;
    if (s_client_frame(client, &type, data, sizeof data, 5000) < 0) {
        fprintf(stderr, "broker_tcp_io_test: no frame (wanted %s)\n", text);
        return false;
    }
    if (type != want_type || strncmp(data, text, strlen(text)) != 0) {
        fprintf(stderr, "broker_tcp_io_test: frame %d \"%s\", wanted %d \"%s\"\n", type, data,
                want_type, text);
        return false;
    }
    return true;
}

// True once the server has closed the client's socket (what else comes is
// discarded).
static bool s_client_ended(client_t *client, int timeout_ms)
{
    int64_t deadline = s_now() + timeout_ms;
    char data[65536];
    while (s_now() < deadline) {
        struct pollfd item = {client->fd, POLLIN, 0};
        if (poll(&item, 1, 100) == 1) {
            ssize_t size = read(client->fd, data, sizeof data);
            if (size == 0 || (size < 0 && errno == ECONNRESET))
                return true;
        }
    }
    return false;
}

// ---- cases -----------------------------------------------------------------------

// Commands become events; answers come back in order; the IDENTIFY reply
// waits behind the answer to the PUB sent before it.
static int s_commands(core_t *core, uint16_t port)
{
    int rc = -1;
    client_t client;
    broker_tcp_event_t *event = NULL;
    S_CHECK(s_client_connect(&client, port) == 0);
    event = s_expect(core, BROKER_TCP_OPENED, 5000);
    S_CHECK(event && strncmp(event->remote_address, "127.0.0.1:", 10) == 0);
    uint64_t id = event->connection;
    broker_tcp_event_destroy(&event);
    const char *json = "{\"feature_negotiation\":true,\"client_id\":\"io-test\"}";
    const uint8_t mpub[] = {0, 0, 0, 2, 0, 0, 0, 1, 'a', 0, 0, 0, 2, 'b', 'c'};
    S_CHECK(s_client_send(&client, "  V2", 4) == 0);
    S_CHECK(s_client_command(&client, "PUB t\n", "hello", 5) == 0);
    S_CHECK(s_client_command(&client, "IDENTIFY\n", json, strlen(json)) == 0);
    S_CHECK(s_client_command(&client, "NOP\nMPUB t\n", mpub, sizeof mpub) == 0);
    event = s_expect(core, BROKER_TCP_RECEIVED, 5000);
    S_CHECK(event && event->command.kind == BROKER_TCP_PUB && event->message_count == 1);
    S_CHECK(event->messages[0]->size == 5 && memcmp(event->messages[0]->body, "hello", 5) == 0);
    broker_tcp_event_destroy(&event);
    event = s_expect(core, BROKER_TCP_RECEIVED, 5000);
    S_CHECK(event && event->command.kind == BROKER_TCP_IDENTIFY);
    S_CHECK(strcmp(event->command.identify.client_id, "io-test") == 0);
    broker_tcp_event_destroy(&event);
    event = s_expect(core, BROKER_TCP_RECEIVED, 5000);  // NOP stayed with the I/O thread
    S_CHECK(event && event->command.kind == BROKER_TCP_MPUB && event->message_count == 2);
    S_CHECK(event->messages[1]->size == 2 && memcmp(event->messages[1]->body, "bc", 2) == 0);
    broker_tcp_event_destroy(&event);
    s_answer(core, id, "OK", BROKER_TCP_POST_FLUSH, 1);       // the PUB
    s_answer(core, id, NULL, BROKER_TCP_POST_IDENTIFIED, 1);  // the IDENTIFY
    s_answer(core, id, "OK", BROKER_TCP_POST_FLUSH, 1);       // the MPUB
    S_CHECK(s_client_expect(&client, 0, "OK"));
    S_CHECK(s_client_expect(&client, 0, "{\"max_rdy_count\":2500,"));
    S_CHECK(s_client_expect(&client, 0, "OK"));
    // A message frame without FLUSH still goes out (after the buffer timeout).
    broker_buffer_t *bytes = broker_buffer_new();
    broker_tcp_write_message(bytes, 1, 1, 42, "m", 1);
    broker_tcp_io_post(core->io, id, &bytes, 0, 0);
    broker_tcp_io_commit(core->io);
    S_CHECK(s_client_expect(&client, 2, ""));
    rc = 0;
done:
    broker_tcp_event_destroy(&event);
    s_client_close(&client);
    event = s_expect(core, BROKER_TCP_CLOSED, 5000);
    if (!event)
        rc = -1;
    broker_tcp_event_destroy(&event);
    return rc;
}

// A parse error waits for the answers to earlier commands, goes out last,
// and closes; a wrong magic gets E_BAD_PROTOCOL.
static int s_errors(core_t *core, uint16_t port)
{
    int rc = -1;
    client_t client;
    broker_tcp_event_t *event = NULL;
    S_CHECK(s_client_connect(&client, port) == 0);
    event = s_expect(core, BROKER_TCP_OPENED, 5000);
    S_CHECK(event);
    uint64_t id = event->connection;
    broker_tcp_event_destroy(&event);
    S_CHECK(s_client_send(&client, "  V2", 4) == 0);
    S_CHECK(s_client_command(&client, "PUB t\n", "x", 1) == 0);
    S_CHECK(s_client_send(&client, "BOGUS\n", 6) == 0);
    event = s_expect(core, BROKER_TCP_RECEIVED, 5000);
    S_CHECK(event && event->command.kind == BROKER_TCP_PUB);
    broker_tcp_event_destroy(&event);
    char data[256];
    int type;
    S_CHECK(s_client_frame(&client, &type, data, sizeof data, 200) < 0);  // nothing before the OK
    s_answer(core, id, "OK", BROKER_TCP_POST_FLUSH, 1);
    S_CHECK(s_client_expect(&client, 0, "OK"));
    S_CHECK(s_client_expect(&client, 1, "E_INVALID invalid command BOGUS"));
    S_CHECK(s_client_ended(&client, 5000));
    event = s_expect(core, BROKER_TCP_CLOSED, 5000);
    S_CHECK(event && strcmp(event->reason, "protocol error") == 0);
    broker_tcp_event_destroy(&event);
    s_client_close(&client);
    S_CHECK(s_client_connect(&client, port) == 0);
    S_CHECK(s_client_send(&client, "  V1\n", 5) == 0);
    S_CHECK(s_client_expect(&client, 1, "E_BAD_PROTOCOL"));
    S_CHECK(s_client_ended(&client, 5000));
    event = s_expect(core, BROKER_TCP_CLOSED, 5000);
    S_CHECK(event);
    rc = 0;
done:
    broker_tcp_event_destroy(&event);
    s_client_close(&client);
    return rc;
}

// Heartbeats at the negotiated interval; two missed ones drop the client.
static int s_heartbeats(core_t *core, uint16_t port)
{
    int rc = -1;
    client_t client;
    broker_tcp_event_t *event = NULL;
    S_CHECK(s_client_connect(&client, port) == 0);
    event = s_expect(core, BROKER_TCP_OPENED, 5000);
    S_CHECK(event);
    uint64_t id = event->connection;
    broker_tcp_event_destroy(&event);
    const char *json = "{\"heartbeat_interval\":1000}";
    S_CHECK(s_client_send(&client, "  V2", 4) == 0);
    S_CHECK(s_client_command(&client, "IDENTIFY\n", json, strlen(json)) == 0);
    event = s_expect(core, BROKER_TCP_RECEIVED, 5000);
    S_CHECK(event && event->command.identify.heartbeat_interval_ms == 1000);
    broker_tcp_event_destroy(&event);
    s_answer(core, id, NULL, BROKER_TCP_POST_IDENTIFIED, 1);
    S_CHECK(s_client_expect(&client, 0, "OK"));
    S_CHECK(s_client_expect(&client, 0, "_heartbeat_"));
    S_CHECK(s_client_send(&client, "NOP\n", 4) == 0);  // answered: still alive
    S_CHECK(s_client_expect(&client, 0, "_heartbeat_"));
    event = s_expect(core, BROKER_TCP_CLOSED, 10000);  // then silent
    S_CHECK(event && strcmp(event->reason, "missed heartbeats") == 0);
    S_CHECK(s_client_ended(&client, 5000));
    rc = 0;
done:
    broker_tcp_event_destroy(&event);
    s_client_close(&client);
    return rc;
}

// A client that does not read: blocked past the high mark (another client
// is served meanwhile), unblocked when it reads, dropped past the maximum.
static int s_slow_client(core_t *core, uint16_t port)
{
    int rc = -1;
    client_t slow, other;
    broker_tcp_event_t *event = NULL;
    char *body = calloc(1, 65536);
    S_CHECK(body && s_client_connect(&slow, port) == 0);
    event = s_expect(core, BROKER_TCP_OPENED, 5000);
    S_CHECK(event);
    uint64_t id = event->connection;
    broker_tcp_event_destroy(&event);
    for (int i = 0; i < 256; i++) {  // 16 MiB of messages: more than the kernel buffers
        broker_buffer_t *bytes = broker_buffer_new();
        broker_tcp_write_message(bytes, 1, 1, (uint64_t) i, body, 65536);
        broker_tcp_io_post(core->io, id, &bytes, BROKER_TCP_POST_FLUSH, 0);
    }
    broker_tcp_io_commit(core->io);
    event = s_expect(core, BROKER_TCP_BLOCKED, 5000);
    S_CHECK(event && event->connection == id);
    broker_tcp_event_destroy(&event);
    S_CHECK(s_client_connect(&other, port) == 0);
    event = s_expect(core, BROKER_TCP_OPENED, 5000);
    S_CHECK(event);
    uint64_t other_id = event->connection;
    broker_tcp_event_destroy(&event);
    S_CHECK(s_client_send(&other, "  V2NOP\nPUB t\n\0\0\0\1x", 19) == 0);
    event = s_expect(core, BROKER_TCP_RECEIVED, 5000);
    S_CHECK(event && event->connection == other_id);
    broker_tcp_event_destroy(&event);
    s_answer(core, other_id, "OK", BROKER_TCP_POST_FLUSH, 1);
    S_CHECK(s_client_expect(&other, 0, "OK"));
    char data[256];
    int type;
    for (int i = 0; i < 256; i++)
        S_CHECK(s_client_frame(&slow, &type, data, sizeof data, 5000) == 65536 + 26 && type == 2);
    event = s_expect(core, BROKER_TCP_UNBLOCKED, 5000);
    S_CHECK(event && event->connection == id);
    broker_tcp_event_destroy(&event);
    for (int i = 0; i < 1400; i++) {  // ~90 MiB: past the maximum
        broker_buffer_t *bytes = broker_buffer_new();
        broker_tcp_write_message(bytes, 1, 1, (uint64_t) i, body, 65536);
        broker_tcp_io_post(core->io, id, &bytes, BROKER_TCP_POST_FLUSH, 0);
    }
    broker_tcp_io_commit(core->io);
    event = s_expect(core, BROKER_TCP_CLOSED, 10000);
    S_CHECK(event && event->connection == id);
    S_CHECK(strstr(event->reason, "output buffer overflow"));
    rc = 0;
done:
    free(body);
    broker_tcp_event_destroy(&event);
    s_client_close(&slow);
    s_client_close(&other);
    event = s_expect(core, BROKER_TCP_CLOSED, 5000);
    broker_tcp_event_destroy(&event);
    return rc;
}

// IDENTIFY negotiates deflate: the reply in plaintext, then OK and
// everything after it deflated, both ways.
static int s_deflate(core_t *core, uint16_t port)
{
    int rc = -1;
    client_t client;
    broker_tcp_event_t *event = NULL;
    S_CHECK(s_client_connect(&client, port) == 0);
    event = s_expect(core, BROKER_TCP_OPENED, 5000);
    S_CHECK(event);
    uint64_t id = event->connection;
    broker_tcp_event_destroy(&event);
    const char *json = "{\"feature_negotiation\":true,\"deflate\":true,\"deflate_level\":1}";
    S_CHECK(s_client_send(&client, "  V2", 4) == 0);
    S_CHECK(s_client_command(&client, "IDENTIFY\n", json, strlen(json)) == 0);
    event = s_expect(core, BROKER_TCP_RECEIVED, 5000);
    S_CHECK(event && event->command.identify.deflate && event->command.identify.deflate_level == 1);
    broker_tcp_event_destroy(&event);
    s_answer(core, id, NULL, BROKER_TCP_POST_IDENTIFIED, 1);
    S_CHECK(s_client_expect(&client, 0, "{\"max_rdy_count\""));
    s_client_compress(&client, false);  // as soon as it has read the reply
    S_CHECK(s_client_expect(&client, 0, "OK"));
    S_CHECK(s_client_command(&client, "PUB t\n", "deflated", 8) == 0);
    event = s_expect(core, BROKER_TCP_RECEIVED, 5000);
    S_CHECK(event && event->command.kind == BROKER_TCP_PUB);
    S_CHECK(event->messages[0]->size == 8 && memcmp(event->messages[0]->body, "deflated", 8) == 0);
    broker_tcp_event_destroy(&event);
    s_answer(core, id, "OK", BROKER_TCP_POST_FLUSH, 1);
    S_CHECK(s_client_expect(&client, 0, "OK"));
    rc = 0;
done:
    broker_tcp_event_destroy(&event);
    s_client_close(&client);
    event = s_expect(core, BROKER_TCP_CLOSED, 5000);
    broker_tcp_event_destroy(&event);
    return rc;
}

// Pull and push for a GnuTLS client on a blocking socket.
static ssize_t s_tls_pull(gnutls_transport_ptr_t arg, void *data, size_t size)
{
    return read(((client_t *) arg)->fd, data, size);
}

static ssize_t s_tls_push(gnutls_transport_ptr_t arg, const void *data, size_t size)
{
    return write(((client_t *) arg)->fd, data, size);
}

// IDENTIFY negotiates TLS and snappy: a GnuTLS client that verifies the
// certificate for 127.0.0.1 does the handshake, reads OK under TLS, then
// OK under snappy, and publishes.
static int s_tls_snappy(core_t *core, uint16_t port, const char *ca_file)
{
    int rc = -1;
    client_t client;
    gnutls_certificate_credentials_t credentials = NULL;
    broker_tcp_event_t *event = NULL;
    S_CHECK(s_client_connect(&client, port) == 0);
    event = s_expect(core, BROKER_TCP_OPENED, 5000);
    S_CHECK(event);
    uint64_t id = event->connection;
    broker_tcp_event_destroy(&event);
    const char *json = "{\"feature_negotiation\":true,\"tls_v1\":true,\"snappy\":true}";
    S_CHECK(s_client_send(&client, "  V2", 4) == 0);
    S_CHECK(s_client_command(&client, "IDENTIFY\n", json, strlen(json)) == 0);
    event = s_expect(core, BROKER_TCP_RECEIVED, 5000);
    S_CHECK(event && event->command.identify.tls && event->command.identify.snappy);
    broker_tcp_event_destroy(&event);
    s_answer(core, id, NULL, BROKER_TCP_POST_IDENTIFIED, 1);
    S_CHECK(s_client_expect(&client, 0, "{\"max_rdy_count\""));
    S_CHECK(gnutls_certificate_allocate_credentials(&credentials) == 0);
    S_CHECK(gnutls_certificate_set_x509_trust_file(credentials, ca_file, GNUTLS_X509_FMT_PEM) == 1);
    S_CHECK(gnutls_init(&client.session, GNUTLS_CLIENT) == 0);
    S_CHECK(gnutls_set_default_priority(client.session) == 0);
    S_CHECK(gnutls_credentials_set(client.session, GNUTLS_CRD_CERTIFICATE, credentials) == 0);
    gnutls_session_set_verify_cert(client.session, "127.0.0.1", 0);
    gnutls_transport_set_ptr(client.session, &client);
    gnutls_transport_set_pull_function(client.session, s_tls_pull);
    gnutls_transport_set_push_function(client.session, s_tls_push);
    int handshake;
    do
        handshake = gnutls_handshake(client.session);
    while (handshake < 0 && !gnutls_error_is_fatal(handshake));
    S_CHECK(handshake == 0);
    S_CHECK(s_client_expect(&client, 0, "OK"));  // under TLS
    s_client_compress(&client, true);
    S_CHECK(s_client_expect(&client, 0, "OK"));  // under snappy
    S_CHECK(s_client_command(&client, "PUB t\n", "secret", 6) == 0);
    event = s_expect(core, BROKER_TCP_RECEIVED, 5000);
    S_CHECK(event && event->command.kind == BROKER_TCP_PUB);
    S_CHECK(event->messages[0]->size == 6 && memcmp(event->messages[0]->body, "secret", 6) == 0);
    broker_tcp_event_destroy(&event);
    s_answer(core, id, "OK", BROKER_TCP_POST_FLUSH, 1);
    S_CHECK(s_client_expect(&client, 0, "OK"));
    rc = 0;
done:
    broker_tcp_event_destroy(&event);
    s_client_close(&client);
    if (credentials)
        gnutls_certificate_free_credentials(credentials);
    event = s_expect(core, BROKER_TCP_CLOSED, 5000);
    broker_tcp_event_destroy(&event);
    return rc;
}

// 1,000 clients connect and vanish (half after the magic): every one is
// opened and closed, none stays.
static int s_vanishing(core_t *core, uint16_t port)
{
    int rc = -1, opened = 0, closed = 0;
    for (int i = 0; i < 1000; i++) {
        client_t client;
        if (s_client_connect(&client, port) == 0 && i % 2)
            s_client_send(&client, "  V2", 4);
        s_client_close(&client);
    }
    int64_t deadline = s_now() + 20000;
    while (closed < 1000 && s_now() < deadline) {
        broker_tcp_event_t *event = s_event(core, 1000);
        if (event && event->kind == BROKER_TCP_OPENED)
            opened++;
        if (event && event->kind == BROKER_TCP_CLOSED)
            closed++;
        broker_tcp_event_destroy(&event);
    }
    S_CHECK(opened == 1000 && closed == 1000);
    S_CHECK(broker_tcp_io_connections(core->io) == 0);
    rc = 0;
done:
    return rc;
}

int broker_tcp_io_test(void)
{
    int rc = -1;
    char dir[] = "/tmp/broker_tcp_io_test.XXXXXX", cert[80], key[80], error[256];
    broker_tls_t *tls = NULL;
    core_t core = {0};
    if (!mkdtemp(dir))
        return -1;
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    S_CHECK(broker_tls_write_test_pair(cert, key) == 0);
    tls = broker_tls_new(cert, key, error, sizeof error);
    S_CHECK(tls);
    broker_tcp_settings_t settings;
    broker_tcp_settings_defaults(&settings);
    S_CHECK(!broker_tcp_io_new("nonsense", &settings, NULL, error, sizeof error));
    core.io = broker_tcp_io_new("127.0.0.1:0", &settings, tls, error, sizeof error);
    S_CHECK(core.io && broker_tcp_io_port(core.io) > 0);
    uint16_t port = broker_tcp_io_port(core.io);
    S_CHECK(s_commands(&core, port) == 0);
    S_CHECK(s_errors(&core, port) == 0);
    S_CHECK(s_deflate(&core, port) == 0);
    S_CHECK(s_tls_snappy(&core, port, cert) == 0);
    S_CHECK(s_slow_client(&core, port) == 0);
    S_CHECK(s_heartbeats(&core, port) == 0);
    S_CHECK(s_vanishing(&core, port) == 0);
    rc = 0;
done:
    while (core.head) {
        broker_tcp_event_t *next = core.head->next;
        broker_tcp_event_destroy(&core.head);
        core.head = next;
    }
    broker_tcp_io_destroy(&core.io);
    broker_tls_destroy(&tls);
    unlink(cert);
    unlink(key);
    rmdir(dir);
    return rc;
}
