/*  bench_raw - nsq-bench's raw libzmq ceilings (see bench_raw.h)
    SPDX-License-Identifier: MIT

    The child binds on 127.0.0.1:* and writes its endpoint into a pipe;
    the parent connects and drives the run. Push-pull: the child times
    from its first message to its last and writes the seconds back.
    Ping-pong: the child echoes until count messages came, the parent
    times each round trip.
*/
#include "bench_raw.h"

#include "bench_report.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define S_ENDPOINT_MAX 64

// Child: binds a socket of type on loopback and writes its endpoint to fd.
// Returns the socket, or NULL.
static void *s_bind(void *context, int type, int fd)
{
    void *socket = zmq_socket(context, type);
    char endpoint[S_ENDPOINT_MAX] = "";
    size_t length = sizeof endpoint;
    if (!socket || zmq_bind(socket, "tcp://127.0.0.1:*")
        || zmq_getsockopt(socket, ZMQ_LAST_ENDPOINT, endpoint, &length))
        return NULL;
    if (write(fd, endpoint, sizeof endpoint) != (ssize_t) sizeof endpoint)
        return NULL;
    return socket;
}

// Child of push-pull: receives count messages, writes the seconds from
// first to last to fd.
static int s_puller(int fd, int64_t count, size_t size)
{
    void *context = zmq_ctx_new();
    void *pull = s_bind(context, ZMQ_PULL, fd);
    char *buffer = malloc(size);
    int64_t first = 0;
    int rc = pull && buffer ? 0 : 1;
    for (int64_t i = 0; rc == 0 && i < count; i++) {
        if (zmq_recv(pull, buffer, size, 0) < 0)
            rc = 1;
        if (i == 0)
            first = bench_now_ns();
    }
    double seconds = (double) (bench_now_ns() - first) / 1e9;
    if (rc == 0 && write(fd, &seconds, sizeof seconds) != (ssize_t) sizeof seconds)
        rc = 1;
    free(buffer);
    zmq_close(pull);
    zmq_ctx_term(context);
    return rc;
}

// Child of ping-pong: echoes count messages, identity and all.
static int s_echoer(int fd, int64_t count, size_t size)
{
    void *context = zmq_ctx_new();
    void *router = s_bind(context, ZMQ_ROUTER, fd);
    char *buffer = malloc(size);
    int rc = router && buffer ? 0 : 1;
    for (int64_t i = 0; rc == 0 && i < count; i++) {
        char identity[256];
        int identity_size = zmq_recv(router, identity, sizeof identity, 0);
        int body_size = identity_size > 0 ? zmq_recv(router, buffer, size, 0) : -1;
        if (body_size < 0 || zmq_send(router, identity, (size_t) identity_size, ZMQ_SNDMORE) < 0
            || zmq_send(router, buffer, (size_t) body_size, 0) < 0)
            rc = 1;
    }
    int linger = 1000;
    zmq_setsockopt(router, ZMQ_LINGER, &linger, sizeof linger);
    free(buffer);
    zmq_close(router);
    zmq_ctx_term(context);
    return rc;
}

// Parent of push-pull: count messages of size to endpoint.
static int s_pusher(void *context, const char *endpoint, int64_t count, size_t size)
{
    void *push = zmq_socket(context, ZMQ_PUSH);
    int linger = -1;
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
    char *buffer = malloc(size);
    int rc = buffer && zmq_connect(push, endpoint) == 0 ? 0 : 1;
    if (buffer)
        memset(buffer, 'r', size);
    for (int64_t i = 0; rc == 0 && i < count; i++)
        if (zmq_send(push, buffer, size, 0) < 0)
            rc = 1;
    free(buffer);
    zmq_close(push);
    return rc;
}

// Parent of ping-pong: count round trips to endpoint, each timed.
static int s_pinger(void *context, const char *endpoint, int64_t count, size_t size,
                    bench_raw_result_t *result)
{
    void *dealer = zmq_socket(context, ZMQ_DEALER);
    char *buffer = malloc(size);
    result->latencies = calloc((size_t) count, sizeof(int64_t));
    int rc = buffer && result->latencies && zmq_connect(dealer, endpoint) == 0 ? 0 : 1;
    if (buffer)
        memset(buffer, 'p', size);
    int64_t start = bench_now_ns();
    for (int64_t i = 0; rc == 0 && i < count; i++) {
        int64_t sent = bench_now_ns();
        if (zmq_send(dealer, buffer, size, 0) < 0 || zmq_recv(dealer, buffer, size, 0) < 0)
            rc = 1;
        result->latencies[i] = bench_now_ns() - sent;
    }
    result->seconds = (double) (bench_now_ns() - start) / 1e9;
    result->count = rc == 0 ? count : 0;
    free(buffer);
    zmq_close(dealer);
    return rc;
}

// Forks the child (echo: ping-pong, else push-pull) and runs the parent.
static int s_run(bool echo, int64_t count, size_t size, bench_raw_result_t *result)
{
    *result = (bench_raw_result_t){0};
    int fds[2];
    if (pipe(fds))
        return 1;
    pid_t child = fork();
    if (child == 0) {
        close(fds[0]);
        _exit(echo ? s_echoer(fds[1], count, size) : s_puller(fds[1], count, size));
    }
    close(fds[1]);
    char endpoint[S_ENDPOINT_MAX];
    int rc = 1;
    if (child > 0 && read(fds[0], endpoint, sizeof endpoint) == (ssize_t) sizeof endpoint) {
        void *context = zmq_ctx_new();
        if (echo)
            rc = s_pinger(context, endpoint, count, size, result);
        else if ((rc = s_pusher(context, endpoint, count, size)) == 0) {
            result->count = count;
            rc = read(fds[0], &result->seconds, sizeof result->seconds)
                         == (ssize_t) sizeof result->seconds
                     ? 0
                     : 1;
        }
        zmq_ctx_term(context);
    }
    close(fds[0]);
    int status = 1;
    if (child > 0)
        waitpid(child, &status, 0);
    return rc == 0 && status == 0 && result->seconds > 0 ? 0 : 1;
}

int bench_raw_push_pull(int64_t count, size_t size, bench_raw_result_t *result)
{
    return s_run(false, count, size, result);
}

int bench_raw_ping_pong(int64_t count, size_t size, bench_raw_result_t *result)
{
    return s_run(true, count, size, result);
}
