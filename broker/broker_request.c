/*  broker_request - one HTTP request handed from an HTTP thread to the core
    SPDX-License-Identifier: MIT

    Each sending thread keeps its own DEALER per core endpoint (thread-local
    list, created on first use), because ZeroMQ sockets must not be shared
    between threads. Every socket is also on one global, mutex-guarded list
    so broker_request_shutdown can close them after the threads are gone;
    a generation counter tells a surviving thread that its list is stale.

    The wire is one frame holding the request's address and nothing comes
    back: the core hands the request back with broker_request_done. The
    DEALER's high-water mark is off, so a send never blocks or fails for
    being ahead of the core; what bounds the queue is that each HTTP
    connection has at most one request in flight.
*/
#include "broker_request.h"

#include <czmq.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

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

static void s_socket_free(request_socket_t *entry)
{
    zsock_destroy(&entry->socket);
    free(entry->endpoint);
    free(entry);
}

//  Returns a new DEALER entry connected to endpoint, or NULL (errno).
static request_socket_t *s_socket_new(const char *endpoint)
{
    request_socket_t *entry = calloc(1, sizeof(*entry));
    if (!entry)
        return NULL;
    entry->endpoint = strdup(endpoint);
    entry->socket = zsock_new(ZMQ_DEALER);
    if (!entry->endpoint || !entry->socket) {
        int error = !entry->socket && errno ? errno : ENOMEM;  // EMFILE stays EMFILE
        s_socket_free(entry);
        errno = error;
        return NULL;
    }
    zsock_set_linger(entry->socket, 0);
    zsock_set_sndhwm(entry->socket, 0);
    if (zsock_connect(entry->socket, "%s", endpoint) != 0) {
        int error = errno;
        s_socket_free(entry);
        errno = error;
        return NULL;
    }
    return entry;
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
    request_socket_t *entry = s_socket_new(endpoint);
    if (!entry)
        return NULL;
    pthread_mutex_lock(&s_lock);
    entry->next = s_sockets;
    s_sockets = entry;
    pthread_mutex_unlock(&s_lock);
    entry->next_local = s_local;
    s_local = entry;
    return entry;
}

static int s_fail(broker_request_t *request, int error)
{
    request->result = error == EMFILE || error == ENFILE ? BROKER_TOO_MANY_FILES : BROKER_EXITING;
    request->stats = NULL;
    errno = error;
    return -1;
}

int broker_request_send(const char *endpoint, broker_request_t *request,
                        broker_request_done_fn *done, void *arg)
{
    request->done = done;
    request->done_arg = arg;
    if (atomic_load(&s_exiting))
        return s_fail(request, ECANCELED);
    request_socket_t *entry = s_socket_for(endpoint);
    if (!entry)
        return s_fail(request, errno);
    void *handle = zsock_resolve(entry->socket);
    while (zmq_send(handle, &request, sizeof(request), ZMQ_DONTWAIT) != (int) sizeof(request))
        if (errno != EINTR)
            return s_fail(request, errno);
    return 0;
}

void broker_request_done(broker_request_t *request)
{
    request->done(request, request->done_arg);
}

void broker_request_shutdown(void)
{
    pthread_mutex_lock(&s_lock);
    while (s_sockets) {
        request_socket_t *entry = s_sockets;
        s_sockets = entry->next;
        s_socket_free(entry);
    }
    atomic_fetch_add(&s_generation, 1);
    pthread_mutex_unlock(&s_lock);
}
