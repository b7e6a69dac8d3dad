/*  bench_tcp - nsq-bench's NSQ TCP (protocol V2) modes: publishing in MPUB
    batches and consuming, with a minimal V2 client of their own
    SPDX-License-Identifier: MIT
*/
#include "bench_tcp.h"

#include "bench_report.h"
#include "nsq_address.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_SIZE    65536  // bytes per read
#define IDLE_MS      10000  // a consumer gives up when none of its messages came this long
#define ANSWER_MS    10000  // how long a command's answer may take
#define FRAME_MAX    (64u << 20)
#define MESSAGE_HEAD 26  // timestamp, attempts, id

// ---- a V2 connection ---------------------------------------------------------

typedef struct {
    int fd;           // blocking socket
    uint8_t *in;      // bytes read
    size_t in_start;  // first not parsed
    size_t in_end;    // one past the last read
    size_t in_size;   // allocated
} s_conn_t;

static int s_write_all(int fd, const void *data, size_t size)
{
    const uint8_t *bytes = data;
    while (size > 0) {
        ssize_t sent = write(fd, bytes, size);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent <= 0)
            return -1;
        bytes += sent;
        size -= (size_t) sent;
    }
    return 0;
}

// Connects and sends the magic. Returns 0, or -1 (with a line on stderr).
static int s_connect(s_conn_t *conn, const char *address)
{
    memset(conn, 0, sizeof *conn);
    struct sockaddr_storage peer;
    conn->fd = -1;
    if (nsq_address_parse(address, &peer) != 0) {
        fprintf(stderr, "nsq-bench: --tcp-address=%s is not host:port\n", address);
        return -1;
    }
    conn->fd = socket(peer.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t length =
        peer.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int on = 1;
    conn->in_size = 2 * READ_SIZE;
    conn->in = malloc(conn->in_size);
    if (conn->fd < 0 || !conn->in || connect(conn->fd, (struct sockaddr *) &peer, length) != 0
        || setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) != 0
        || s_write_all(conn->fd, "  V2", 4) != 0) {
        fprintf(stderr, "nsq-bench: cannot connect to %s: %s\n", address, strerror(errno));
        return -1;
    }
    return 0;
}

static void s_disconnect(s_conn_t *conn)
{
    if (conn->fd >= 0)
        close(conn->fd);
    free(conn->in);
    conn->fd = -1;
    conn->in = NULL;
}

static uint32_t s_get_u32(const uint8_t *in)
{
    return (uint32_t) in[0] << 24 | (uint32_t) in[1] << 16 | (uint32_t) in[2] << 8 | in[3];
}

// The next whole frame already read: *type, *data (borrowed until the next
// read) and *size. Returns 1, 0 if none is whole, -1 if the frame is absurd.
static int s_frame(s_conn_t *conn, uint32_t *type, const uint8_t **data, size_t *size)
{
    size_t have = conn->in_end - conn->in_start;
    if (have < 8)
        return 0;
    uint32_t length = s_get_u32(conn->in + conn->in_start);
    if (length < 4 || length > FRAME_MAX)
        return -1;
    if (have < 4 + (size_t) length)
        return 0;
    *type = s_get_u32(conn->in + conn->in_start + 4);
    *data = conn->in + conn->in_start + 8;
    *size = length - 4;
    conn->in_start += 4 + (size_t) length;
    return 1;
}

// Reads more, waiting up to timeout_ms. Returns 0, or -1 on end, error or
// timeout.
static int s_read(s_conn_t *conn, int timeout_ms)
{
    size_t have = conn->in_end - conn->in_start;
    if (conn->in_start > 0) {
        memmove(conn->in, conn->in + conn->in_start, have);
        conn->in_start = 0;
        conn->in_end = have;
    }
    size_t wanted = have >= 4 ? 4 + (size_t) s_get_u32(conn->in) : 0;
    if (conn->in_size - conn->in_end < READ_SIZE || wanted > conn->in_size) {
        size_t size =
            conn->in_size * 2 > wanted + READ_SIZE ? conn->in_size * 2 : wanted + READ_SIZE;
        uint8_t *in = realloc(conn->in, size);
        if (!in)
            return -1;
        conn->in = in;
        conn->in_size = size;
    }
    struct pollfd item = {conn->fd, POLLIN, 0};
    if (poll(&item, 1, timeout_ms) != 1)
        return -1;
    ssize_t got = read(conn->fd, conn->in + conn->in_end, conn->in_size - conn->in_end);
    if (got <= 0)
        return -1;
    conn->in_end += (size_t) got;
    return 0;
}

// Waits for the answer to a command: a response other than a heartbeat
// (answered with NOP). Returns 0 if it starts with expect, else -1.
static int s_answer(s_conn_t *conn, const char *expect, const char *what)
{
    int64_t deadline = bench_now_ns() + (int64_t) ANSWER_MS * 1000000;
    for (;;) {
        uint32_t type;
        const uint8_t *data;
        size_t size;
        int rc = s_frame(conn, &type, &data, &size);
        if (rc == 1 && type == 0 && size == 11 && memcmp(data, "_heartbeat_", 11) == 0) {
            if (s_write_all(conn->fd, "NOP\n", 4))
                return -1;
            continue;
        }
        if (rc == 1 && type == 2)
            continue;  // a message still on its way (after CLS): it goes back when we close
        if (rc == 1) {
            if (type == 0 && size >= strlen(expect) && memcmp(data, expect, strlen(expect)) == 0)
                return 0;
            fprintf(stderr, "nsq-bench: %s answered %.*s\n", what, (int) (size < 200 ? size : 200),
                    (const char *) data);
            return -1;
        }
        int64_t left = (deadline - bench_now_ns()) / 1000000;
        if (rc < 0 || left <= 0 || s_read(conn, (int) left) != 0) {
            fprintf(stderr, "nsq-bench: no answer to %s\n", what);
            return -1;
        }
    }
}

// ---- publishing ----------------------------------------------------------------

typedef struct {
    const bench_tcp_config_t *config;
    int64_t count;         // messages this thread publishes
    int64_t acknowledged;  // of them, answered OK
} s_publisher_t;

// "MPUB topic\n" and the body of count messages of size bytes.
static uint8_t *s_mpub(const bench_tcp_config_t *config, size_t count, size_t *length)
{
    size_t line = strlen(config->topic) + 6;
    size_t body = 4 + count * (4 + config->size);
    *length = line + 4 + body;
    uint8_t *out = malloc(*length);
    if (!out)
        return NULL;
    snprintf((char *) out, line + 1, "MPUB %s\n", config->topic);
    uint32_t word = htonl((uint32_t) body);
    memcpy(out + line, &word, 4);
    word = htonl((uint32_t) count);
    memcpy(out + line + 4, &word, 4);
    uint8_t *at = out + line + 8;
    for (size_t i = 0; i < count; i++) {
        word = htonl((uint32_t) config->size);
        memcpy(at, &word, 4);
        memset(at + 4, 'm', config->size);
        memcpy(at + 4, &config->run_id, sizeof config->run_id < config->size ? 8 : config->size);
        at += 4 + config->size;
    }
    return out;
}

static void *s_publisher_run(void *arg)
{
    s_publisher_t *self = arg;
    const bench_tcp_config_t *config = self->config;
    size_t batch = config->batch;
    size_t window = config->window / batch > 0 ? config->window / batch : 1;
    size_t length, last_length = 0, last = (size_t) (self->count % (int64_t) batch);
    uint8_t *full = s_mpub(config, batch, &length);
    uint8_t *partial = last ? s_mpub(config, last, &last_length) : NULL;
    size_t *sizes = calloc(window, sizeof *sizes);  // messages per unanswered MPUB, a ring
    s_conn_t conn;
    if (s_connect(&conn, config->tcp_address) || !full || (last && !partial) || !sizes)
        goto done;
    int64_t sent = 0;
    size_t head = 0, unanswered = 0;
    while (self->acknowledged < self->count) {
        while (unanswered < window && sent < self->count) {
            size_t messages = self->count - sent >= (int64_t) batch ? batch : last;
            if (s_write_all(conn.fd, messages == batch ? full : partial,
                            messages == batch ? length : last_length))
                goto done;
            sizes[(head + unanswered++) % window] = messages;
            sent += (int64_t) messages;
        }
        if (s_answer(&conn, "OK", "MPUB"))
            goto done;
        self->acknowledged += (int64_t) sizes[head];
        head = (head + 1) % window;
        unanswered--;
    }
done:
    s_disconnect(&conn);
    free(full);
    free(partial);
    free(sizes);
    return NULL;
}

int bench_tcp_publish(const bench_tcp_config_t *config, bench_tcp_result_t *result)
{
    size_t threads = config->connections;
    s_publisher_t *publishers = calloc(threads, sizeof *publishers);
    pthread_t *ids = calloc(threads, sizeof *ids);
    if (!publishers || !ids) {
        free(publishers);
        free(ids);
        return 1;
    }
    int64_t start = bench_now_ns();
    for (size_t i = 0; i < threads; i++) {
        publishers[i].config = config;
        publishers[i].count = config->count / (int64_t) threads
                              + ((int64_t) i < config->count % (int64_t) threads ? 1 : 0);
        pthread_create(&ids[i], NULL, s_publisher_run, &publishers[i]);
    }
    memset(result, 0, sizeof *result);
    for (size_t i = 0; i < threads; i++) {
        pthread_join(ids[i], NULL);
        result->count += publishers[i].acknowledged;
    }
    result->seconds = (double) (bench_now_ns() - start) / 1e9;
    result->errors = config->count - result->count;
    free(publishers);
    free(ids);
    return result->errors ? 1 : 0;
}

// ---- consuming -----------------------------------------------------------------

struct _bench_tcp_consumer_t {
    const bench_tcp_config_t *config;  // borrowed
    s_conn_t conn;                     // subscribed
};

bench_tcp_consumer_t *bench_tcp_subscribe(const bench_tcp_config_t *config)
{
    bench_tcp_consumer_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = config;
    char identify[256], sub[160];
    int json =
        snprintf(identify + 13, sizeof identify - 13,
                 "{\"client_id\":\"nsq-bench\",\"user_agent\":\"nsq-bench/%s\"}", NSQ_VERSION);
    memcpy(identify, "IDENTIFY\n", 9);
    uint32_t size = htonl((uint32_t) json);
    memcpy(identify + 9, &size, 4);
    int sub_length = snprintf(sub, sizeof sub, "SUB %s %s\n", config->topic, config->channel);
    if (s_connect(&self->conn, config->tcp_address)
        || s_write_all(self->conn.fd, identify, 13 + (size_t) json)
        || s_answer(&self->conn, "OK", "IDENTIFY")
        || s_write_all(self->conn.fd, sub, (size_t) sub_length)
        || s_answer(&self->conn, "OK", "SUB")) {
        bench_tcp_consumer_destroy(&self);
        return NULL;
    }
    return self;
}

// Takes every whole frame read: counts this run's messages, queues a FIN
// for each message in fins. Returns 0, or -1 on an error frame.
static int s_consume_frames(bench_tcp_consumer_t *self, char *fins, size_t *fins_length,
                            bench_tcp_result_t *result, int64_t *first_ns, int64_t *last_ns)
{
    uint32_t type;
    const uint8_t *data;
    size_t size;
    int rc;
    while ((rc = s_frame(&self->conn, &type, &data, &size)) == 1) {
        if (type == 1) {
            fprintf(stderr, "nsq-bench: error %.*s\n", (int) (size < 200 ? size : 200),
                    (const char *) data);
            result->errors++;
            return -1;
        }
        if (type == 0) {
            if (size == 11 && memcmp(data, "_heartbeat_", 11) == 0) {
                memcpy(fins + *fins_length, "NOP\n", 4);
                *fins_length += 4;
            }
            continue;
        }
        if (size < MESSAGE_HEAD)
            return -1;
        uint64_t run_id = 0;
        if (size >= MESSAGE_HEAD + 8)
            memcpy(&run_id, data + MESSAGE_HEAD, 8);
        if (run_id == self->config->run_id) {
            int64_t now = bench_now_ns();
            if (result->count++ == 0)
                *first_ns = now;
            *last_ns = now;
        } else {
            result->foreign++;
        }
        memcpy(fins + *fins_length, "FIN ", 4);
        memcpy(fins + *fins_length + 4, data + 10, 16);
        fins[*fins_length + 20] = '\n';
        *fins_length += 21;
    }
    return rc;
}

int bench_tcp_consume(bench_tcp_consumer_t *self, int64_t target, bench_tcp_result_t *result)
{
    memset(result, 0, sizeof *result);
    char rdy[32];
    int length = snprintf(rdy, sizeof rdy, "RDY %u\n", self->config->max_in_flight);
    if (s_write_all(self->conn.fd, rdy, (size_t) length))
        return 1;
    // A FIN (21 bytes) per message a read can hold (each at least 34 bytes).
    char *fins = malloc(self->conn.in_size / 2 + 4 * READ_SIZE);
    int64_t first_ns = 0, last_ns = 0, idle_since = bench_now_ns();
    while (fins && result->count < target) {
        size_t fins_length = 0;
        int64_t before = result->count;
        if (s_consume_frames(self, fins, &fins_length, result, &first_ns, &last_ns) < 0)
            break;
        if (fins_length && s_write_all(self->conn.fd, fins, fins_length))
            break;
        if (result->count > before)
            idle_since = bench_now_ns();
        if (result->count >= target)
            break;
        if (bench_now_ns() - idle_since > (int64_t) IDLE_MS * 1000000) {
            fprintf(stderr, "nsq-bench: none of this run's messages came for %d s; stopping\n",
                    IDLE_MS / 1000);
            break;
        }
        s_read(&self->conn, 1000);
        char *grown = realloc(fins, self->conn.in_size / 2 + 4 * READ_SIZE);
        if (!grown)
            break;
        fins = grown;
    }
    free(fins);
    result->seconds = (double) (last_ns - first_ns) / 1e9;
    return result->count >= target ? 0 : 1;
}

void bench_tcp_consumer_destroy(bench_tcp_consumer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bench_tcp_consumer_t *self = *self_p;
    if (self->conn.fd >= 0 && self->conn.in && s_write_all(self->conn.fd, "CLS\n", 4) == 0)
        s_answer(&self->conn, "CLOSE_WAIT", "CLS");
    s_disconnect(&self->conn);
    free(self);
    *self_p = NULL;
}
