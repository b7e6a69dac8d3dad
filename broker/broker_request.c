/*  broker_request - one HTTP request handed from an HTTP thread to the core
    SPDX-License-Identifier: MIT

    Each calling thread keeps its own DEALER per core endpoint (thread-local
    list, created on first use), because ZeroMQ sockets must not be shared
    between threads. Every socket is also on one global, mutex-guarded list
    so broker_request_shutdown can close them after the threads are gone;
    a generation counter tells a surviving thread that its list is stale.

    The wire is one frame holding the request's address; the core answers
    with one empty frame. Waiting happens in slices of S_SLICE_MS so that
    a call gives up soon after broker_request_set_exiting(true). A socket
    that gave up after sending is closed, so a late answer can never be
    taken for the answer to the next request.
*/
#include "broker_request.h"

#include <czmq.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define S_SLICE_MS 100

typedef struct _request_socket_t request_socket_t;
struct _request_socket_t {
    zsock_t *socket;               // DEALER connected to endpoint
    char *endpoint;                // the core's inproc ROUTER
    request_socket_t *next;        // next on the global list
    request_socket_t *next_local;  // next socket of the same thread
};

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static request_socket_t *s_sockets;  // every socket, guarded by s_lock
static atomic_uint s_generation;     // bumped by each shutdown
static atomic_bool s_exiting;        // see broker_request_set_exiting

static __thread request_socket_t *s_local;    // this thread's sockets
static __thread unsigned s_local_generation;  // s_generation when s_local was valid

void broker_request_set_exiting(bool exiting)
{
    atomic_store(&s_exiting, exiting);
}

//  Returns this thread's socket for endpoint, creating it on first use.
static request_socket_t *s_socket_for(const char *endpoint)
{
    unsigned generation = atomic_load(&s_generation);
    if (s_local_generation != generation) {
        s_local = NULL;  // shutdown freed them
        s_local_generation = generation;
    }
    for (request_socket_t *entry = s_local; entry; entry = entry->next_local)
        if (strcmp(entry->endpoint, endpoint) == 0)
            return entry;

    request_socket_t *entry = calloc(1, sizeof(*entry));
    if (!entry)
        return NULL;
    entry->endpoint = strdup(endpoint);
    entry->socket = zsock_new(ZMQ_DEALER);
    if (!entry->endpoint || !entry->socket) {
        zsock_destroy(&entry->socket);
        free(entry->endpoint);
        free(entry);
        errno = ENOMEM;
        return NULL;
    }
    zsock_set_linger(entry->socket, 0);
    zsock_set_sndtimeo(entry->socket, S_SLICE_MS);
    zsock_set_rcvtimeo(entry->socket, S_SLICE_MS);
    if (zsock_connect(entry->socket, "%s", endpoint) != 0) {
        int error = errno;
        zsock_destroy(&entry->socket);
        free(entry->endpoint);
        free(entry);
        errno = error;
        return NULL;
    }
    pthread_mutex_lock(&s_lock);
    entry->next = s_sockets;
    s_sockets = entry;
    pthread_mutex_unlock(&s_lock);
    entry->next_local = s_local;
    s_local = entry;
    return entry;
}

//  Closes one of this thread's sockets and forgets it everywhere.
static void s_socket_drop(request_socket_t *entry)
{
    pthread_mutex_lock(&s_lock);
    for (request_socket_t **link = &s_sockets; *link; link = &(*link)->next)
        if (*link == entry) {
            *link = entry->next;
            break;
        }
    pthread_mutex_unlock(&s_lock);
    for (request_socket_t **link = &s_local; *link; link = &(*link)->next_local)
        if (*link == entry) {
            *link = entry->next_local;
            break;
        }
    zsock_destroy(&entry->socket);
    free(entry->endpoint);
    free(entry);
}

//  Sends the request's address. Returns 0, or -1 if exiting or on error.
static int s_send(void *handle, broker_request_t *request)
{
    while (true) {
        if (zmq_send(handle, &request, sizeof(request), 0) == (int) sizeof(request))
            return 0;
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        if (atomic_load(&s_exiting)) {
            errno = ECANCELED;
            return -1;
        }
    }
}

//  Receives one whole message (the answer); returns 0, or -1 with errno.
static int s_receive_answer(void *handle, int flags)
{
    char buffer[8];
    if (zmq_recv(handle, buffer, sizeof(buffer), flags) < 0)
        return -1;
    int more = 0;
    size_t more_size = sizeof(more);
    while (zmq_getsockopt(handle, ZMQ_RCVMORE, &more, &more_size) == 0 && more)
        if (zmq_recv(handle, buffer, sizeof(buffer), 0) < 0)
            break;
    return 0;
}

//  Waits for the answer in slices. Returns 0, or -1 if exiting or on error.
static int s_wait(void *handle)
{
    while (true) {
        if (s_receive_answer(handle, 0) == 0)
            return 0;
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        if (atomic_load(&s_exiting)) {
            // The core may have answered just before it set the flag
            if (s_receive_answer(handle, ZMQ_DONTWAIT) == 0)
                return 0;
            errno = ECANCELED;
            return -1;
        }
    }
}

static int s_fail(broker_request_t *request, int error)
{
    request->status = 503;
    request->error_code = "EXITING";
    request->body = NULL;
    request->content_type = NULL;
    errno = error;
    return -1;
}

int broker_request_call(const char *endpoint, broker_request_t *request)
{
    if (atomic_load(&s_exiting))
        return s_fail(request, ECANCELED);
    request_socket_t *entry = s_socket_for(endpoint);
    if (!entry)
        return s_fail(request, errno);
    void *handle = zsock_resolve(entry->socket);
    if (s_send(handle, request) != 0)
        return s_fail(request, errno);
    if (s_wait(handle) != 0) {
        int error = errno;
        s_socket_drop(entry);  // an answer may still come; never read it as the next one
        return s_fail(request, error);
    }
    return 0;
}

void broker_request_shutdown(void)
{
    pthread_mutex_lock(&s_lock);
    while (s_sockets) {
        request_socket_t *entry = s_sockets;
        s_sockets = entry->next;
        zsock_destroy(&entry->socket);
        free(entry->endpoint);
        free(entry);
    }
    atomic_fetch_add(&s_generation, 1);
    pthread_mutex_unlock(&s_lock);
}
