/*  broker_admission_test - broker_admission_test(): credit, offers, takes,
    revokes and closing, the sweep that spares wake-ups, and two threads
    offering while the core takes
    SPDX-License-Identifier: MIT
*/
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_admission.h"
#include "nsq_names.h"

// What the fake core was handed.
typedef struct {
    char topic[NSQ_NAME_MAX + 1];  // of the last call
    size_t calls;                  // calls to s_test_take
    size_t count;                  // messages handed on
    uint32_t last_size;            // body size of the last message
    bool in_order;                 // every topic's sizes grew, call after call
    uint32_t sizes[2];             // the last size seen per thread tag (body[0])
} test_core_t;

static void s_test_take(void *arg, const char *topic, nsq_message_t **messages, size_t count)
{
    test_core_t *core = arg;
    core->calls++;
    snprintf(core->topic, sizeof core->topic, "%s", topic);
    for (size_t i = 0; i < count; i++) {
        uint8_t tag = messages[i]->body[0] & 1;
        if (messages[i]->size <= core->sizes[tag])
            core->in_order = false;
        core->sizes[tag] = messages[i]->size;
        core->last_size = messages[i]->size;
        nsq_message_unref(&messages[i]);
    }
    core->count += count;
}

static bool s_test_readable(int fd)
{
    struct pollfd item = {fd, POLLIN, 0};
    return poll(&item, 1, 0) == 1;
}

// Offers one message of size bytes (all tag) to topic; returns the offer's result.
static int s_test_offer(broker_admission_t *self, const char *topic, size_t size, uint8_t tag)
{
    nsq_message_t *message = nsq_message_new_uninit(size);
    memset(message->body, tag, size);
    int rc = broker_admission_offer(self, topic, &message, 1);
    nsq_message_unref(&message);  // NULL when admitted
    return rc;
}

static int s_test_credit(void)
{
    broker_admission_t *self = broker_admission_new();
    test_core_t core = {.in_order = true};
    if (!self || s_test_offer(self, "t", 1, 0) == 0)  // no credit yet
        return -1;
    uint64_t count, bytes;
    broker_admission_grant(self, "t", 2, 10);
    broker_admission_credit(self, "t", &count, &bytes);
    if (count != 2 || bytes != 10)
        return -1;
    if (s_test_readable(broker_admission_fd(self)) || s_test_offer(self, "u", 1, 0) == 0)
        return -1;                            // another topic has none
    if (s_test_offer(self, "t", 11, 0) == 0)  // more bytes than granted
        return -1;
    if (s_test_offer(self, "t", 6, 0) || !s_test_readable(broker_admission_fd(self)))
        return -1;
    if (s_test_offer(self, "t", 5, 0) == 0 || s_test_offer(self, "t", 4, 0))
        return -1;  // 4 bytes left, then no messages left
    broker_admission_credit(self, "t", &count, &bytes);
    if (s_test_offer(self, "t", 1, 0) == 0 || count != 0 || bytes != 0)
        return -1;
    if (broker_admission_take(self, s_test_take, &core) != 2 || core.calls != 1
        || strcmp(core.topic, "t") != 0 || core.last_size != 4)
        return -1;
    // A batch is all or nothing.
    broker_admission_grant(self, "t", 2, 100);
    nsq_message_t *batch[3] = {nsq_message_new("a", 1), nsq_message_new("b", 1),
                               nsq_message_new("c", 1)};
    if (broker_admission_offer(self, "t", batch, 3) == 0 || !batch[2]
        || broker_admission_offer(self, "t", batch, 2) || batch[0] || batch[1])
        return -1;
    nsq_message_unref(&batch[2]);
    // Revoked: its pending messages go, no credit is left.
    broker_admission_grant(self, "u", 5, 100);
    s_test_offer(self, "u", 3, 0);
    broker_admission_revoke(self, "t");
    broker_admission_credit(self, "t", &count, &bytes);
    if (s_test_offer(self, "t", 1, 0) == 0 || count != 0 || bytes != 0)
        return -1;
    core.count = 0;
    if (broker_admission_take(self, s_test_take, &core) != 1 || strcmp(core.topic, "u") != 0)
        return -1;
    // Closed: nothing more, but what came before is still taken.
    s_test_offer(self, "u", 2, 0);
    broker_admission_close(self);
    if (s_test_offer(self, "u", 2, 0) == 0 || broker_admission_grant(self, "v", 1, 1) == 0)
        return -1;
    if (broker_admission_take(self, s_test_take, &core) != 1)
        return -1;
    s_test_offer(self, "u", 2, 0);
    broker_admission_destroy(&self);  // frees what is pending (ASan checks)
    broker_admission_destroy(&self);
    return self ? -1 : 0;
}

// True if fd turns readable within two seconds.
static bool s_test_turns_readable(int fd)
{
    struct pollfd item = {fd, POLLIN, 0};
    return poll(&item, 1, 2000) == 1;
}

// The sweep: after a take that handed messages on, offers leave the
// eventfd alone and the sweep timer brings the core back; a take that
// finds nothing ends the sweep, and the next offer wakes the core at once.
static int s_test_sweep(void)
{
    broker_admission_t *self = broker_admission_new();
    test_core_t core = {.in_order = true};
    int fd = self ? broker_admission_fd(self) : -1;
    if (!self || broker_admission_grant(self, "t", 10, 100) != 0)
        return -1;
    if (s_test_offer(self, "t", 1, 0) || !s_test_readable(fd)
        || broker_admission_take(self, s_test_take, &core) != 1)
        return -1;  // idle core: woken at once
    if (s_test_offer(self, "t", 2, 0) || !s_test_turns_readable(fd)
        || broker_admission_take(self, s_test_take, &core) != 1)
        return -1;  // sweeping: the timer came, the message with it
    if (!s_test_turns_readable(fd) || broker_admission_take(self, s_test_take, &core) != 0)
        return -1;  // the sweep's last look finds nothing and ends it
    if (s_test_readable(fd))
        return -1;  // no timer is left armed once idle
    if (s_test_offer(self, "t", 3, 0) || !s_test_readable(fd)
        || broker_admission_take(self, s_test_take, &core) != 1)
        return -1;  // idle again: woken at once
    broker_admission_destroy(&self);
    return core.count == 3 && core.in_order ? 0 : -1;
}

// Two threads offer growing sizes, one tag each, while the test takes.
typedef struct {
    broker_admission_t *admission;
    uint8_t tag;
    size_t admitted;
} test_thread_t;

#define S_TEST_OFFERS 5000

static void *s_test_offerer(void *arg)
{
    test_thread_t *thread = arg;
    for (size_t size = 3; size < 3 + S_TEST_OFFERS; size++)
        if (s_test_offer(thread->admission, "t", size, thread->tag) == 0)
            thread->admitted++;
    return NULL;
}

static int s_test_threads(void)
{
    broker_admission_t *self = broker_admission_new();
    test_core_t core = {.in_order = true};
    broker_admission_grant(self, "t", 1000, UINT64_MAX / 2);
    test_thread_t threads[2] = {{self, 0, 0}, {self, 1, 0}};
    pthread_t ids[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&ids[i], NULL, s_test_offerer, &threads[i]);
    for (int round = 0; round < 500; round++) {
        broker_admission_take(self, s_test_take, &core);
        broker_admission_grant(self, "t", 20, 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(ids[i], NULL);
    broker_admission_take(self, s_test_take, &core);
    size_t admitted = threads[0].admitted + threads[1].admitted;
    broker_admission_destroy(&self);
    return core.count == admitted && admitted >= 1000 && core.in_order ? 0 : -1;
}

int broker_admission_test(void)
{
    return s_test_credit() || s_test_sweep() || s_test_threads() ? -1 : 0;
}
