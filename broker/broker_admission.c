/*  broker_admission - publishing into existing topics from a door's own
    threads, without waiting for the core: room the core reserved up front
    SPDX-License-Identifier: MIT

    Each topic with credit has an entry in a hash by name. An entry holds
    two arrays: pending, which offers append to under the lock, and
    taking, which only the core reads: a take swaps them under the lock
    and hands taking on after unlocking, so offers go on while the core
    works. Entries with pending messages form a list.

    Waking the core: the offer that starts the list writes the eventfd,
    unless the core is sweeping. A take that handed messages on starts a
    sweep: it arms a one-shot timer S_SWEEP_NS ahead, and offers until
    then leave the eventfd alone, because the core comes back on its own.
    A take that finds nothing ends the sweep (under the lock, so the next
    offer wakes the core again). Under load the core is woken by the
    timer once per batch instead of by every offer that finds the list
    empty: on this VM an eventfd write that wakes a sleeping thread, and
    that thread's wake-up, were a fifth of the broker's CPU on /pub. An
    idle broker pays one extra wake-up after its last publish; a message
    waits at most S_SWEEP_NS longer to reach its queue, and its 200 is
    not delayed at all. The core polls one epoll set holding both.
*/
#include "broker_admission.h"

#include <czmq.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "nsq_log.h"
#include "nsq_names.h"

#define S_PENDING_FIRST 64      // first size of a pending array
#define S_SWEEP_NS      500000  // a sweep's next take comes this long after the last

typedef struct _entry_t entry_t;

struct _entry_t {
    char name[NSQ_NAME_MAX + 1];  // the topic
    uint64_t credit_count;        // messages that may still be admitted
    uint64_t credit_bytes;        // body bytes that may still be admitted
    nsq_message_t **pending;      // admitted, not taken yet (oldest first)
    size_t pending_count;         // entries used in pending
    size_t pending_capacity;      // entries pending can hold
    nsq_message_t **taking;       // core only: the batch being handed on
    size_t taking_count;          // entries used in taking
    size_t taking_capacity;       // entries taking can hold
    bool listed;                  // on the pending list
    entry_t *next_pending;        // next on the pending list
    entry_t *next_taken;          // core only: next in the batch being handed on
};

struct _broker_admission_t {
    pthread_mutex_t lock;  // guards the fields below (but granted) and the entries (but taking)
    zhashx_t *entries;     // name -> entry_t, owned
    entry_t *pending;      // entries with pending messages (newest first)
    bool closed;           // no more offers or grants
    bool sweeping;         // the core's sweep timer is armed: offers need not wake it
    int wakeup;            // eventfd: written when pending starts and no sweep is on
    int sweep;             // timerfd: the sweep's next take
    int poll_set;          // epoll set of wakeup and sweep, which the core polls
    bool granted;          // core only: some credit was ever granted
};

static void s_entry_destroy(void **item)
{
    entry_t *entry = *item;
    if (!entry)
        return;
    for (size_t i = 0; i < entry->pending_count; i++)
        nsq_message_unref(&entry->pending[i]);
    for (size_t i = 0; i < entry->taking_count; i++)
        nsq_message_unref(&entry->taking[i]);
    free(entry->pending);
    free(entry->taking);
    free(entry);
    *item = NULL;
}

static int s_poll_add(int poll_set, int fd)
{
    struct epoll_event event = {.events = EPOLLIN, .data.fd = fd};
    return epoll_ctl(poll_set, EPOLL_CTL_ADD, fd, &event);
}

broker_admission_t *broker_admission_new(void)
{
    broker_admission_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    pthread_mutexattr_t attributes;
    pthread_mutexattr_init(&attributes);
    // Held for a few instructions by the HTTP threads and the core: spin briefly first.
    pthread_mutexattr_settype(&attributes, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&self->lock, &attributes);
    pthread_mutexattr_destroy(&attributes);
    self->wakeup = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    self->sweep = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    self->poll_set = epoll_create1(EPOLL_CLOEXEC);
    self->entries = zhashx_new();
    if (self->wakeup < 0 || self->sweep < 0 || self->poll_set < 0 || !self->entries
        || s_poll_add(self->poll_set, self->wakeup) != 0
        || s_poll_add(self->poll_set, self->sweep) != 0) {
        broker_admission_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->entries, s_entry_destroy);
    return self;
}

void broker_admission_destroy(broker_admission_t **self_p)
{
    broker_admission_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    zhashx_destroy(&self->entries);
    if (self->wakeup >= 0)
        close(self->wakeup);
    if (self->sweep >= 0)
        close(self->sweep);
    if (self->poll_set >= 0)
        close(self->poll_set);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

int broker_admission_fd(broker_admission_t *self)
{
    return self->poll_set;
}

int broker_admission_grant(broker_admission_t *self, const char *topic, uint64_t count,
                           uint64_t bytes)
{
    pthread_mutex_lock(&self->lock);
    entry_t *entry = self->closed ? NULL : zhashx_lookup(self->entries, topic);
    if (!entry && !self->closed && (entry = calloc(1, sizeof *entry))) {
        snprintf(entry->name, sizeof entry->name, "%s", topic);
        if (zhashx_insert(self->entries, entry->name, entry) != 0) {
            free(entry);
            entry = NULL;
        }
    }
    if (entry) {
        entry->credit_count += count;
        entry->credit_bytes += bytes;
        self->granted = true;
    }
    pthread_mutex_unlock(&self->lock);
    return entry ? 0 : -1;
}

void broker_admission_credit(broker_admission_t *self, const char *topic, uint64_t *count,
                             uint64_t *bytes)
{
    pthread_mutex_lock(&self->lock);
    entry_t *entry = zhashx_lookup(self->entries, topic);
    *count = entry ? entry->credit_count : 0;
    *bytes = entry ? entry->credit_bytes : 0;
    pthread_mutex_unlock(&self->lock);
}

//  Makes room for count more pending messages. Lock held.
static int s_pending_reserve(entry_t *entry, size_t count)
{
    if (entry->pending_count + count <= entry->pending_capacity)
        return 0;
    size_t capacity = entry->pending_capacity ? entry->pending_capacity : S_PENDING_FIRST;
    while (capacity < entry->pending_count + count)
        capacity *= 2;
    nsq_message_t **grown = realloc(entry->pending, capacity * sizeof *grown);
    if (!grown)
        return -1;
    entry->pending = grown;
    entry->pending_capacity = capacity;
    return 0;
}

int broker_admission_offer(broker_admission_t *self, const char *topic, nsq_message_t **messages,
                           size_t count)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < count; i++)
        bytes += messages[i]->size;
    bool admitted = false, wake = false;
    pthread_mutex_lock(&self->lock);
    entry_t *entry = self->closed ? NULL : zhashx_lookup(self->entries, topic);
    if (entry && count > 0 && entry->credit_count >= count && entry->credit_bytes >= bytes
        && s_pending_reserve(entry, count) == 0) {
        memcpy(entry->pending + entry->pending_count, messages, count * sizeof *messages);
        entry->pending_count += count;
        entry->credit_count -= count;
        entry->credit_bytes -= bytes;
        if (!entry->listed) {
            entry->listed = true;
            entry->next_pending = self->pending;
            wake = !self->pending && !self->sweeping;
            self->pending = entry;
        }
        admitted = true;
    }
    pthread_mutex_unlock(&self->lock);
    if (!admitted)
        return -1;
    memset(messages, 0, count * sizeof *messages);
    uint64_t one = 1;
    while (wake && write(self->wakeup, &one, sizeof one) < 0 && errno == EINTR)
        ;
    return 0;
}

//  Swaps an entry's pending array for its empty taking array. Lock held.
static void s_swap(entry_t *entry)
{
    nsq_message_t **array = entry->taking;
    size_t capacity = entry->taking_capacity;
    entry->taking = entry->pending;
    entry->taking_count = entry->pending_count;
    entry->taking_capacity = entry->pending_capacity;
    entry->pending = array;
    entry->pending_count = 0;
    entry->pending_capacity = capacity;
    entry->listed = false;
}

//  Reads fd (an eventfd or a timerfd) so that it is no longer readable.
static void s_drain(int fd, const char *what)
{
    uint64_t count;
    if (read(fd, &count, sizeof count) < 0 && errno != EAGAIN)
        nsq_warn("admission: cannot read the %s: %s", what, strerror(errno));
}

//  The sweep timer could not be armed: offers wake the core again, and the
//  eventfd brings it back for those that relied on the timer meanwhile.
static void s_end_sweep(broker_admission_t *self)
{
    nsq_warn("admission: cannot arm the sweep timer: %s", strerror(errno));
    pthread_mutex_lock(&self->lock);
    self->sweeping = false;
    pthread_mutex_unlock(&self->lock);
    uint64_t one = 1;
    while (write(self->wakeup, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

size_t broker_admission_take(broker_admission_t *self, broker_admission_fn *fn, void *arg)
{
    if (!self->granted)
        return 0;  // nothing can be pending, nor the eventfd written (durable mode, auth)
    s_drain(self->wakeup, "eventfd");
    s_drain(self->sweep, "sweep timer");
    entry_t *taken = NULL;
    pthread_mutex_lock(&self->lock);
    for (entry_t *entry = self->pending; entry; entry = entry->next_pending) {
        s_swap(entry);
        entry->next_taken = taken;
        taken = entry;  // reversed: the oldest pending topic first
    }
    self->pending = NULL;
    self->sweeping = taken != NULL;
    pthread_mutex_unlock(&self->lock);
    // Armed after the unlock: an offer in between saw sweeping and relies
    // on this timer, which fires after it.
    struct itimerspec next = {.it_value = {.tv_sec = 0, .tv_nsec = S_SWEEP_NS}};
    if (taken && timerfd_settime(self->sweep, 0, &next, NULL) != 0)
        s_end_sweep(self);
    size_t handed = 0;
    for (entry_t *entry = taken; entry; entry = entry->next_taken) {
        handed += entry->taking_count;
        fn(arg, entry->name, entry->taking, entry->taking_count);
        entry->taking_count = 0;
    }
    return handed;
}

void broker_admission_revoke(broker_admission_t *self, const char *topic)
{
    pthread_mutex_lock(&self->lock);
    entry_t *entry = zhashx_lookup(self->entries, topic);
    if (entry && entry->listed) {
        entry_t **link = &self->pending;
        while (*link != entry)
            link = &(*link)->next_pending;
        *link = entry->next_pending;
    }
    if (entry)
        zhashx_delete(self->entries, topic);  // drops its pending messages
    pthread_mutex_unlock(&self->lock);
}

void broker_admission_close(broker_admission_t *self)
{
    pthread_mutex_lock(&self->lock);
    self->closed = true;
    pthread_mutex_unlock(&self->lock);
}
