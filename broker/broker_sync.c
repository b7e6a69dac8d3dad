/*  broker_sync - fdatasync of the disk queues off the core thread, and
    durable mode: a publish is acknowledged only after its data is on disk,
    concurrent publishes sharing one fsync
    SPDX-License-Identifier: MIT

    The syncer thread does every data fsync the sync policy asks for, so the
    core never waits for the disk while it writes: after each batch of work
    the core "kicks", and if the syncer is idle and some queue has
    --sync-every unsynced records (or, in durable mode, a publish waits for
    its acknowledgement), it hands the syncer a duplicate descriptor of
    every queue written since the last hand-over. The queues' metadata (and
    a data sync with it) follows --sync-timeout from the core's tick: a
    small write every couple of seconds per queue.

    In durable mode every message of a disk-backed topic or channel is
    written to its disk queue (memory holds only what is read back for
    delivery), and the acknowledgement of a publish (the HTTP answer or the
    ZeroMQ OK) waits in a list. The kick after the batch hands the written
    queues to the syncer; meanwhile the core keeps serving, and publishes
    arriving during the sync wait for the next one (group commit). When the
    syncer reports back over its pipe, every acknowledgement the sync
    covered is sent (or a 503 / E_PUB_FAILED if it failed).

    Only the data is synced per commit; the queues' metadata follows the
    --sync-timeout timer, and opening a queue finds records written after
    its metadata (nsq_diskqueue.h), so nothing acknowledged is lost.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker_core.h"
#include "nsq_log.h"

typedef struct {
    broker_request_t *request;                     // HTTP publish, or NULL
    char client_key[2 * BROKER_IDENTITY_MAX + 1];  // ZeroMQ publisher
    uint64_t seq;                                  // its command's seq
} durable_ack_t;

// The syncer thread: "SYNC" + an array of descriptors in, errno out.
static void s_syncer(zsock_t *pipe, void *args)
{
    (void) args;
    zsock_signal(pipe, 0);
    while (true) {
        zmsg_t *message = zmsg_recv(pipe);
        char *command = message ? zmsg_popstr(message) : NULL;
        if (!command || streq(command, "$TERM")) {
            zstr_free(&command);
            zmsg_destroy(&message);
            break;
        }
        zframe_t *frame = zmsg_pop(message);
        int error = 0;
        size_t count = frame ? zframe_size(frame) / sizeof(int) : 0;
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, zframe_data(frame) + i * sizeof fd, sizeof fd);
            if (fdatasync(fd) != 0 && !error)
                error = errno;
            close(fd);
        }
        zframe_destroy(&frame);
        zstr_free(&command);
        zmsg_destroy(&message);
        zsock_send(pipe, "i", error);
    }
}

static void s_ack(broker_core_t *self, durable_ack_t *ack, int error, int64_t now)
{
    if (ack->request) {
        if (error) {
            free(ack->request->body);
            ack->request->body = NULL;
            ack->request->status = 503;
            ack->request->error_code = "DISK_SYNC_FAILED";
        }
        broker_request_done(ack->request);
    } else {
        broker_client_t *client = zhashx_lookup(self->clients, ack->client_key);
        if (client && error)
            broker_client_send_error(client, ack->seq, "E_PUB_FAILED", "disk sync failed", false,
                                     now);
        else if (client)
            broker_client_send_response(client, ack->seq, "OK", now);
    }
    free(ack);
}

static void s_ack_all(broker_core_t *self, zlistx_t *list, int error)
{
    if (error)
        nsq_error("durable sync failed: %s; %zu publishes answered with an error", strerror(error),
                  zlistx_size(list));
    int64_t now = zclock_mono();
    durable_ack_t *ack;
    while ((ack = zlistx_detach(list, NULL)))
        s_ack(self, ack, error, now);
}

// True if some queue holds sync_every records not yet handed over.
static bool s_sync_due(broker_core_t *self)
{
    uint64_t every = (uint64_t) self->config.sync_every;
    for (broker_topic_t *topic = zhashx_first(self->topics); topic;
         topic = zhashx_next(self->topics)) {
        for (size_t i = 0; i <= topic->channel_count; i++) {
            nsq_diskqueue_t *disk = i == 0 ? topic->disk : topic->channels[i - 1]->disk;
            if (disk && nsq_diskqueue_untaken_puts(disk) >= every)
                return true;
        }
    }
    return false;
}

// Collects a descriptor of every queue written since the last collection.
// Returns how many (0 if none); *error gets a dup failure.
static size_t s_collect(broker_core_t *self, int **fds, int *error)
{
    size_t count = 0, capacity = 0;
    *fds = NULL;
    *error = 0;
    for (broker_topic_t *topic = zhashx_first(self->topics); topic;
         topic = zhashx_next(self->topics)) {
        for (size_t i = 0; i <= topic->channel_count; i++) {
            nsq_diskqueue_t *disk = i == 0 ? topic->disk : topic->channels[i - 1]->disk;
            int fd, rc = disk ? nsq_diskqueue_take_sync_fd(disk, &fd) : 0;
            if (rc < 0)
                *error = errno;
            if (rc != 1)
                continue;
            if (count == capacity) {
                capacity = capacity ? 2 * capacity : 8;
                int *grown = realloc(*fds, capacity * sizeof *grown);
                if (!grown) {
                    close(fd);
                    *error = ENOMEM;
                    continue;
                }
                *fds = grown;
            }
            (*fds)[count++] = fd;
        }
    }
    return count;
}

int broker_sync_start(broker_core_t *self)
{
    if (!self->config.data_path[0])
        return 0;
    self->ack_waiting = zlistx_new();
    self->ack_syncing = zlistx_new();
    self->syncer = zactor_new(s_syncer, NULL);
    if (!self->ack_waiting || !self->ack_syncing || !self->syncer)
        return -1;
    return 0;
}

void broker_sync_kick(broker_core_t *self)
{
    if (!self->syncer || self->sync_running)
        return;
    bool due = self->config.durable ? zlistx_size(self->ack_waiting) > 0 : s_sync_due(self);
    if (!due)
        return;
    int *fds, error;
    size_t count = s_collect(self, &fds, &error);
    zlistx_t *swap = self->ack_syncing;
    self->ack_syncing = self->ack_waiting;
    self->ack_waiting = swap;
    if (count == 0 || error) {
        for (size_t i = 0; i < count; i++)
            close(fds[i]);
        free(fds);
        s_ack_all(self, self->ack_syncing, error);
        return;
    }
    zsock_send(self->syncer, "sb", "SYNC", fds, count * sizeof *fds);
    free(fds);
    self->sync_running = true;
}

int broker_sync_on_synced(zloop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop;
    broker_core_t *self = arg;
    int error = 0;
    if (zsock_recv(reader, "i", &error) != 0)
        return 0;
    self->sync_running = false;
    s_ack_all(self, self->ack_syncing, error);
    broker_sync_kick(self);
    return 0;
}

static void s_wait(broker_core_t *self, durable_ack_t *ack)
{
    if (!ack || !zlistx_add_end(self->ack_waiting, ack)) {
        nsq_error("durable: out of memory, acknowledging without waiting for the sync");
        if (ack)
            s_ack(self, ack, 0, zclock_mono());
    }
}

void broker_sync_wait_request(broker_core_t *self, broker_request_t *request)
{
    durable_ack_t *ack = calloc(1, sizeof *ack);
    if (ack)
        ack->request = request;
    else
        broker_request_done(request);
    s_wait(self, ack);
}

void broker_sync_wait_client(broker_core_t *self, broker_client_t *client, uint64_t seq)
{
    durable_ack_t *ack = calloc(1, sizeof *ack);
    if (ack) {
        snprintf(ack->client_key, sizeof ack->client_key, "%s", client->key);
        ack->seq = seq;
    } else {
        broker_client_send_response(client, seq, "OK", zclock_mono());
    }
    s_wait(self, ack);
}

void broker_sync_stop(broker_core_t *self)
{
    if (!self->syncer)
        return;
    zactor_destroy(&self->syncer);  // lets a running sync finish
    int *fds, error;
    size_t count = s_collect(self, &fds, &error);
    for (size_t i = 0; i < count; i++) {
        if (fdatasync(fds[i]) != 0 && !error)
            error = errno;
        close(fds[i]);
    }
    free(fds);
    s_ack_all(self, self->ack_syncing, error);
    s_ack_all(self, self->ack_waiting, error);
    zlistx_destroy(&self->ack_syncing);
    zlistx_destroy(&self->ack_waiting);
    self->sync_running = false;
}
