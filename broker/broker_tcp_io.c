/*  broker_tcp_io - the NSQ TCP door's I/O thread: listener, epoll, every
    client connection, and the hand-off to and from the core
    SPDX-License-Identifier: MIT

    Connections live in a slot table owned by the I/O thread; a connection's
    id is (generation << 32 | slot), so a post for a closed connection
    whose slot was reused finds a different generation and is dropped.
    Timers: each connection says when it next needs its tick; the loop
    keeps the earliest and scans everyone only when that time comes. The
    self-test lives in broker_tcp_io_test.c.
*/
#include "broker_tcp_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "nsq_address.h"

#define EPOLL_EVENTS    256   // readiness events taken per epoll_wait
#define LISTENER_TAG    0     // epoll data of the listener
#define WAKE_TAG        1     // of the core's wake-up eventfd
#define SLOT_TAG_BASE   2     // of connection slot i: SLOT_TAG_BASE + i
#define ACCEPT_PAUSE_MS 100   // after EMFILE: wait before accepting again
#define BACKLOG         1024  // listen(2) backlog

// A post from the core, waiting for the I/O thread.
typedef struct _post_t {
    struct _post_t *next;
    uint64_t connection;     // whom for
    broker_buffer_t *bytes;  // frames, or NULL (owned)
    unsigned flags;          // BROKER_TCP_POST_*
    uint32_t done;           // commands finished
} post_t;

typedef struct {
    broker_tcp_connection_t *connection;  // NULL when free
    uint32_t generation;                  // bumped when freed
    uint32_t mask;                        // epoll events registered
} slot_t;

struct _broker_tcp_io_t {
    broker_tcp_settings_t settings;   // a copy; connections borrow it
    broker_tcp_context_t context;     // what connections are given
    const broker_tls_t *tls;          // credentials, or NULL
    int listener;                     // listening socket
    uint16_t port;                    // its port
    int epoll;                        // the I/O thread's epoll
    int wake;                         // eventfd: posts wait, or stop
    int events_fd;                    // eventfd: events wait for the core
    pthread_t thread;                 // the I/O thread
    bool started;                     // the thread runs
    atomic_bool stop;                 // the thread must end
    atomic_size_t open;               // connections open
    pthread_mutex_t lock;             // guards the two lists below
    broker_tcp_event_t *events;       // for the core, oldest first
    broker_tcp_event_t *events_tail;  // where the next event goes
    post_t *posts;                    // committed, for the I/O thread, oldest first
    post_t *posts_tail;
    post_t *staged;  // core only: not committed yet
    post_t *staged_tail;
    // I/O thread only:
    slot_t *slots;                // connection table
    size_t slot_count;            // its size
    int64_t next_tick;            // earliest time a connection needs its tick
    int64_t accept_paused_until;  // EMFILE: accepting resumes then
};

static int64_t s_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

// ---- the core's side ----------------------------------------------------

// Runs on the I/O thread: queues an event and wakes the core if the list
// was empty.
static void s_emit(void *arg, broker_tcp_event_t *event)
{
    broker_tcp_io_t *self = arg;
    event->next = NULL;
    pthread_mutex_lock(&self->lock);
    if (self->events_tail)
        self->events_tail->next = event;
    else
        self->events = event;
    self->events_tail = event;
    if (self->events == event) {
        uint64_t one = 1;
        ssize_t rc = write(self->events_fd, &one, sizeof one);
        (void) rc;  // the counter cannot overflow from single increments
    }
    pthread_mutex_unlock(&self->lock);
}

broker_tcp_event_t *broker_tcp_io_take(broker_tcp_io_t *self)
{
    uint64_t count;
    pthread_mutex_lock(&self->lock);
    broker_tcp_event_t *events = self->events;
    self->events = self->events_tail = NULL;
    ssize_t rc = read(self->events_fd, &count, sizeof count);  // reset; EAGAIN if nothing
    (void) rc;
    pthread_mutex_unlock(&self->lock);
    return events;
}

int broker_tcp_io_post(broker_tcp_io_t *self, uint64_t connection, broker_buffer_t **bytes,
                       unsigned flags, uint32_t done)
{
    post_t *post = calloc(1, sizeof *post);
    if (!post) {
        if (bytes)
            broker_buffer_destroy(bytes);
        return -1;
    }
    if (bytes) {
        post->bytes = *bytes;
        *bytes = NULL;
    }
    post->connection = connection;
    post->flags = flags;
    post->done = done;
    if (self->staged_tail)
        self->staged_tail->next = post;
    else
        self->staged = post;
    self->staged_tail = post;
    return 0;
}

void broker_tcp_io_commit(broker_tcp_io_t *self)
{
    if (!self->staged)
        return;
    pthread_mutex_lock(&self->lock);
    if (self->posts_tail)
        self->posts_tail->next = self->staged;
    else
        self->posts = self->staged;
    self->posts_tail = self->staged_tail;
    pthread_mutex_unlock(&self->lock);
    self->staged = self->staged_tail = NULL;
    uint64_t one = 1;
    ssize_t rc = write(self->wake, &one, sizeof one);
    (void) rc;
}

uint16_t broker_tcp_io_port(const broker_tcp_io_t *self)
{
    return self->port;
}

int broker_tcp_io_fd(const broker_tcp_io_t *self)
{
    return self->events_fd;
}

size_t broker_tcp_io_connections(const broker_tcp_io_t *self)
{
    return atomic_load(&self->open);
}

// ---- connections (I/O thread) ---------------------------------------------

// Registers, updates or removes the slot's socket in epoll as its interest
// says; frees the slot when the connection is finished. Then runs its
// tick to learn its next deadline.
static void s_update(broker_tcp_io_t *self, size_t index, int64_t now)
{
    slot_t *slot = &self->slots[index];
    broker_tcp_connection_t *connection = slot->connection;
    int64_t next = broker_tcp_connection_tick(connection, now);
    if (broker_tcp_connection_closed(connection)) {
        epoll_ctl(self->epoll, EPOLL_CTL_DEL, broker_tcp_connection_fd(connection), NULL);
        atomic_fetch_sub(&self->open, 1);  // before CLOSED reaches the core
        broker_tcp_connection_destroy(&slot->connection);
        slot->generation++;
        slot->mask = 0;
        return;
    }
    bool read, write;
    broker_tcp_connection_interest(connection, &read, &write);
    uint32_t mask = (read ? EPOLLIN : 0) | (write ? EPOLLOUT : 0);
    if (mask != slot->mask) {
        struct epoll_event event = {.events = mask, .data.u64 = SLOT_TAG_BASE + index};
        epoll_ctl(self->epoll, EPOLL_CTL_MOD, broker_tcp_connection_fd(connection), &event);
        slot->mask = mask;
    }
    if (next < self->next_tick)
        self->next_tick = next;
}

// Finds a free slot, growing the table. Returns its index, or -1.
static ssize_t s_free_slot(broker_tcp_io_t *self)
{
    for (size_t i = 0; i < self->slot_count; i++)
        if (!self->slots[i].connection)
            return (ssize_t) i;
    size_t count = self->slot_count ? self->slot_count * 2 : 64;
    slot_t *slots = realloc(self->slots, count * sizeof *slots);
    if (!slots)
        return -1;
    memset(slots + self->slot_count, 0, (count - self->slot_count) * sizeof *slots);
    self->slots = slots;
    ssize_t index = (ssize_t) self->slot_count;
    self->slot_count = count;
    return index;
}

// Writes "IP:port" (or "[IPv6]:port") of a peer into out.
static void s_peer_name(const struct sockaddr_storage *address, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (address->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *) address;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(out, size, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        const struct sockaddr_in *in = (const void *) address;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(out, size, "%s:%u", host, ntohs(in->sin_port));
    }
}

// Takes every pending connection.
static void s_accept(broker_tcp_io_t *self, int64_t now)
{
    while (now >= self->accept_paused_until) {
        struct sockaddr_storage address;
        socklen_t length = sizeof address;
        int fd = accept4(self->listener, (struct sockaddr *) &address, &length,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                self->accept_paused_until = now + ACCEPT_PAUSE_MS;
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;
        }
        int on = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);  // we batch ourselves
        char peer[64];
        s_peer_name(&address, peer, sizeof peer);
        ssize_t index = s_free_slot(self);
        if (index < 0) {
            close(fd);
            continue;
        }
        slot_t *slot = &self->slots[index];
        uint64_t id = (uint64_t) slot->generation << 32 | (uint64_t) index;
        slot->connection = broker_tcp_connection_new(&self->context, id, fd, peer, now);
        if (!slot->connection)
            continue;  // it closed the socket
        struct epoll_event event = {.events = EPOLLIN, .data.u64 = SLOT_TAG_BASE + (size_t) index};
        if (epoll_ctl(self->epoll, EPOLL_CTL_ADD, fd, &event) != 0) {
            broker_tcp_connection_destroy(&slot->connection);
            slot->generation++;
            continue;
        }
        slot->mask = EPOLLIN;
        atomic_fetch_add(&self->open, 1);
        s_update(self, (size_t) index, now);
    }
}

// Finds a connection by id; -1 if it is gone.
static ssize_t s_find(broker_tcp_io_t *self, uint64_t id)
{
    size_t index = (size_t) (id & 0xffffffffu);
    if (index >= self->slot_count || !self->slots[index].connection
        || self->slots[index].generation != (uint32_t) (id >> 32))
        return -1;
    return (ssize_t) index;
}

// Applies every committed post.
static void s_deliver_posts(broker_tcp_io_t *self, int64_t now)
{
    uint64_t count;
    ssize_t rc = read(self->wake, &count, sizeof count);
    (void) rc;
    pthread_mutex_lock(&self->lock);
    post_t *post = self->posts;
    self->posts = self->posts_tail = NULL;
    pthread_mutex_unlock(&self->lock);
    while (post) {
        post_t *next = post->next;
        ssize_t index = s_find(self, post->connection);
        if (index >= 0) {
            broker_tcp_connection_post(self->slots[index].connection, &post->bytes, post->flags,
                                       post->done, now);
            s_update(self, (size_t) index, now);
        }
        broker_buffer_destroy(&post->bytes);
        free(post);
        post = next;
    }
}

// Runs every connection's tick (when the earliest deadline has come).
static void s_tick_all(broker_tcp_io_t *self, int64_t now)
{
    self->next_tick = INT64_MAX;
    for (size_t i = 0; i < self->slot_count; i++)
        if (self->slots[i].connection)
            s_update(self, i, now);
    if (self->accept_paused_until > now && self->accept_paused_until < self->next_tick)
        self->next_tick = self->accept_paused_until;
}

static void *s_thread(void *arg)
{
    broker_tcp_io_t *self = arg;
    struct epoll_event events[EPOLL_EVENTS];
    self->next_tick = INT64_MAX;
    while (!atomic_load(&self->stop)) {
        int64_t now = s_now_ms();
        int64_t wait = self->next_tick == INT64_MAX ? 1000 : self->next_tick - now;
        int timeout = wait < 0 ? 0 : wait > 1000 ? 1000 : (int) wait;
        int count = epoll_wait(self->epoll, events, EPOLL_EVENTS, timeout);
        now = s_now_ms();
        for (int i = 0; i < count; i++) {
            uint64_t tag = events[i].data.u64;
            if (tag == LISTENER_TAG) {
                s_accept(self, now);
            } else if (tag == WAKE_TAG) {
                s_deliver_posts(self, now);
            } else if (tag - SLOT_TAG_BASE < self->slot_count
                       && self->slots[tag - SLOT_TAG_BASE].connection) {
                size_t index = tag - SLOT_TAG_BASE;
                broker_tcp_connection_t *connection = self->slots[index].connection;
                if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                    broker_tcp_connection_readable(connection, now);
                if (events[i].events & EPOLLOUT)
                    broker_tcp_connection_writable(connection, now);
                s_update(self, index, now);
            }
        }
        if (now >= self->next_tick || now >= self->accept_paused_until)
            s_tick_all(self, now);
        if (self->accept_paused_until && now >= self->accept_paused_until) {
            self->accept_paused_until = 0;
            s_accept(self, now);
        }
    }
    return NULL;
}

// ---- life cycle --------------------------------------------------------------

// Binds and listens on address. Returns the socket, or -1 with a reason.
static int s_listen(const char *address, uint16_t *port, char *error, size_t size)
{
    struct sockaddr_storage bind_to;
    if (nsq_address_parse(address, &bind_to) != 0) {
        snprintf(error, size, "--tcp-address=%s is not host:port", address);
        return -1;
    }
    int fd = socket(bind_to.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    socklen_t length =
        bind_to.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (fd < 0 || bind(fd, (struct sockaddr *) &bind_to, length) != 0 || listen(fd, BACKLOG) != 0
        || getsockname(fd, (struct sockaddr *) &bind_to, &length) != 0) {
        snprintf(error, size, "cannot listen on --tcp-address=%s: %s", address, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = nsq_address_port(&bind_to);
    return fd;
}

broker_tcp_io_t *broker_tcp_io_new(const char *address, const broker_tcp_settings_t *settings,
                                   const broker_tls_t *tls, char *error, size_t size)
{
    broker_tcp_io_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(error, size, "out of memory");
        return NULL;
    }
    self->settings = *settings;
    self->settings.tls_available = tls != NULL;
    self->tls = tls;
    self->context = (broker_tcp_context_t){&self->settings, tls, s_emit, self};
    self->listener = self->epoll = self->wake = self->events_fd = -1;
    pthread_mutex_init(&self->lock, NULL);
    self->listener = s_listen(address, &self->port, error, size);
    if (self->listener < 0)
        goto failed;
    self->epoll = epoll_create1(EPOLL_CLOEXEC);
    self->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    self->events_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event listener = {.events = EPOLLIN, .data.u64 = LISTENER_TAG};
    struct epoll_event wake = {.events = EPOLLIN, .data.u64 = WAKE_TAG};
    if (self->epoll < 0 || self->wake < 0 || self->events_fd < 0
        || epoll_ctl(self->epoll, EPOLL_CTL_ADD, self->listener, &listener) != 0
        || epoll_ctl(self->epoll, EPOLL_CTL_ADD, self->wake, &wake) != 0) {
        snprintf(error, size, "cannot set up the TCP door: %s", strerror(errno));
        goto failed;
    }
    if (pthread_create(&self->thread, NULL, s_thread, self) != 0) {
        snprintf(error, size, "cannot start the TCP door's thread");
        goto failed;
    }
    self->started = true;
    return self;
failed:
    broker_tcp_io_destroy(&self);
    return NULL;
}

static void s_free_posts(post_t *post)
{
    while (post) {
        post_t *next = post->next;
        broker_buffer_destroy(&post->bytes);
        free(post);
        post = next;
    }
}

void broker_tcp_io_destroy(broker_tcp_io_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broker_tcp_io_t *self = *self_p;
    if (self->started) {
        atomic_store(&self->stop, true);
        uint64_t one = 1;
        ssize_t rc = write(self->wake, &one, sizeof one);
        (void) rc;
        pthread_join(self->thread, NULL);
    }
    for (size_t i = 0; i < self->slot_count; i++)
        broker_tcp_connection_destroy(&self->slots[i].connection);
    free(self->slots);
    broker_tcp_event_t *event = self->events;
    while (event) {
        broker_tcp_event_t *next = event->next;
        broker_tcp_event_destroy(&event);
        event = next;
    }
    s_free_posts(self->posts);
    s_free_posts(self->staged);
    int fds[] = {self->listener, self->epoll, self->wake, self->events_fd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}
