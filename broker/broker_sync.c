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

    No publish is acknowledged unless its sync succeeded, and none waits
    for ever: a sync that cannot be handed to the syncer is answered with
    an error at once, and at shutdown the running sync's own answer is
    awaited (destroying the actor would discard it) before the rest is
    synced here. The tests inject both failures through
    config.test_sync_fault.
*/
#include <errno.h>
#include <stdint.h>
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

// fdatasync, or the failure a test asked for (after a pause long enough
// for a shutdown to find the sync still running).
static int s_fdatasync(int fd, broker_sync_fault_t fault)
{
    if (fault != BROKER_SYNC_FAULT_FDATASYNC)
        return fdatasync(fd);
    zclock_sleep(100);
    errno = EIO;
    return -1;
}

// The syncer thread: "SYNC" + an array of descriptors in, errno out. args
// is the test fault (broker_sync_fault_t), cast to a pointer.
static void s_syncer(zsock_t *pipe, void *args)
{
    broker_sync_fault_t fault = (broker_sync_fault_t) (intptr_t) args;
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
            if (s_fdatasync(fd, fault) != 0 && !error)
                error = errno;
            close(fd);
        }
        zframe_destroy(&frame);
        zstr_free(&command);
        zmsg_destroy(&message);
        if (zsock_send(pipe, "i", error) != 0)
            break;  // the core is gone
    }
}

// Answers one publish: OK, or the failure when error is set.
static void s_answer(broker_core_t *self, const durable_ack_t *ack, int error, int64_t now)
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
}

static void s_ack(broker_core_t *self, durable_ack_t *ack, int error, int64_t now)
{
    s_answer(self, ack, error, now);
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
    self->syncer = zactor_new(s_syncer, (void *) (intptr_t) self->config.test_sync_fault);
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
    if (self->config.durable)
        broker_state_flush(self);  // an acknowledged topic must be listed
    int *fds, error;
    size_t count = s_collect(self, &fds, &error);
    zlistx_t *swap = self->ack_syncing;
    self->ack_syncing = self->ack_waiting;
    self->ack_waiting = swap;
    if (count > 0 && !error) {
        if (self->config.test_sync_fault != BROKER_SYNC_FAULT_HANDOFF
            && zsock_send(self->syncer, "sb", "SYNC", fds, count * sizeof *fds) == 0) {
            free(fds);
            self->sync_running = true;
            return;
        }
        // Nobody will sync these or answer: answer now, never "OK".
        error = errno && self->config.test_sync_fault != BROKER_SYNC_FAULT_HANDOFF ? errno : EIO;
        nsq_error("durable: cannot hand a sync to the syncer thread: %s", strerror(error));
    }
    for (size_t i = 0; i < count; i++)
        close(fds[i]);
    free(fds);
    s_ack_all(self, self->ack_syncing, error);
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

// Keeps ack (a copy of *pending) until the next sync covers it; without
// memory for that it is answered with an error, never an unsynced OK.
static void s_wait(broker_core_t *self, const durable_ack_t *pending)
{
    durable_ack_t *ack = malloc(sizeof *ack);
    if (ack)
        *ack = *pending;
    if (ack && zlistx_add_end(self->ack_waiting, ack))
        return;
    nsq_error("durable: out of memory, a publish is answered with an error");
    free(ack);
    s_answer(self, pending, ENOMEM, zclock_mono());
}

void broker_sync_wait_request(broker_core_t *self, broker_request_t *request)
{
    durable_ack_t pending = {.request = request};
    s_wait(self, &pending);
}

void broker_sync_wait_client(broker_core_t *self, broker_client_t *client, uint64_t seq)
{
    durable_ack_t pending = {.seq = seq};
    snprintf(pending.client_key, sizeof pending.client_key, "%s", client->key);
    s_wait(self, &pending);
}

void broker_sync_stop(broker_core_t *self)
{
    if (!self->syncer)
        return;
    // The running sync's answer decides for the publishes it covers.
    int running_error = 0;
    if (self->sync_running && zsock_recv(zactor_sock(self->syncer), "i", &running_error) != 0)
        running_error = EIO;  // its answer is lost: do not claim success
    zactor_destroy(&self->syncer);
    int *fds, error;
    size_t count = s_collect(self, &fds, &error);
    for (size_t i = 0; i < count; i++) {
        if (fdatasync(fds[i]) != 0 && !error)
            error = errno;
        close(fds[i]);
    }
    free(fds);
    s_ack_all(self, self->ack_syncing, running_error);
    s_ack_all(self, self->ack_waiting, error);
    zlistx_destroy(&self->ack_syncing);
    zlistx_destroy(&self->ack_waiting);
    self->sync_running = false;
}

// ---- self-test ---------------------------------------------------------------

// A core in durable mode with a disk-backed topic and one ZeroMQ client,
// just enough for broker_sync.
typedef struct {
    broker_core_t core;     // what broker_sync works on
    zsock_t *router;        // the client's ROUTER side
    zsock_t *dealer;        // the client
    broker_topic_t *topic;  // "orders" (in core.topics)
    char dir[64];           // its data path
} sync_test_t;

static void s_test_topic_destructor(void **item)
{
    broker_topic_t *topic = *item;
    topic->deleted = true;  // removes its files
    broker_topic_destroy((broker_topic_t **) item);
}

static void s_test_client_destructor(void **item)
{
    broker_client_destroy((broker_client_t **) item);
}

// Sets up a core with fault; returns 0 or -1.
static int s_test_setup(sync_test_t *test, broker_sync_fault_t fault, const char *endpoint)
{
    memset(test, 0, sizeof *test);
    snprintf(test->dir, sizeof test->dir, "/tmp/broker-sync-test-XXXXXX");
    if (!mkdtemp(test->dir))
        return -1;
    broker_config_defaults(&test->core.config);
    snprintf(test->core.config.data_path, sizeof test->core.config.data_path, "%s", test->dir);
    test->core.config.durable = true;
    test->core.config.test_sync_fault = fault;
    test->core.topics = zhashx_new();
    zhashx_set_destructor(test->core.topics, s_test_topic_destructor);
    test->core.clients = zhashx_new();
    zhashx_set_destructor(test->core.clients, s_test_client_destructor);
    test->router = zsock_new_router(endpoint);
    test->dealer = zsock_new(ZMQ_DEALER);
    zsock_set_identity(test->dealer, "S1");
    zsock_connect(test->dealer, "%s", endpoint);
    broker_client_t *client = broker_client_new(zsock_resolve(test->router), "S1", 2, 0);
    test->topic = broker_topic_new("orders", &test->core.config);
    if (!client || !test->topic || broker_sync_start(&test->core) != 0)
        return -1;
    zhashx_insert(test->core.clients, client->key, client);
    zhashx_insert(test->core.topics, "orders", test->topic);
    return 0;
}

static void s_test_teardown(sync_test_t *test)
{
    broker_sync_stop(&test->core);
    zhashx_destroy(&test->core.topics);
    zhashx_destroy(&test->core.clients);
    zsock_destroy(&test->dealer);
    zsock_destroy(&test->router);
    char state[96];
    snprintf(state, sizeof state, "%s/nsq-broker.dat", test->dir);
    unlink(state);  // written by the ids the publishes reserved
    rmdir(test->dir);
}

// Publishes one message in durable mode and starts its sync.
static int s_test_publish(sync_test_t *test, uint64_t seq)
{
    nsq_message_t *message = nsq_message_new("durable", 7);
    broker_core_t *core = &test->core;
    broker_core_stamp(core, &message, 1);
    int rc = broker_topic_publish(test->topic, &message, 1, 0, zclock_mono());
    nsq_message_unref(&message);
    if (rc != 0)
        return -1;
    broker_sync_wait_client(core, zhashx_first(core->clients), seq);
    broker_sync_kick(core);
    return 0;
}

// True if the client's next frame (within a second) is the error code for seq.
static bool s_test_answered_error(sync_test_t *test, uint64_t seq)
{
    zpoller_t *poller = zpoller_new(test->dealer, NULL);
    bool ready = zpoller_wait(poller, 1000) != NULL;
    zpoller_destroy(&poller);
    zframe_t *frame = ready ? zframe_recv(test->dealer) : NULL;
    Nsq__Frame *decoded =
        frame ? nsq_wire_frame_unpack(zframe_data(frame), zframe_size(frame)) : NULL;
    bool error = decoded && decoded->frame_case == NSQ__FRAME__FRAME_ERROR
                 && decoded->error->seq == seq && streq(decoded->error->code, "E_PUB_FAILED");
    nsq__frame__free_unpacked(decoded, NULL);
    zframe_destroy(&frame);
    return error;
}

int broker_sync_test(void)
{
    // The hand-over to the syncer fails: the publish is answered at once.
    sync_test_t test;
    int rc = s_test_setup(&test, BROKER_SYNC_FAULT_HANDOFF, "inproc://broker-sync-test-1") == 0
                     && s_test_publish(&test, 5) == 0 && !test.core.sync_running
                     && s_test_answered_error(&test, 5)
                 ? 0
                 : -1;
    s_test_teardown(&test);
    // The fdatasync fails while the broker shuts down: the failure is
    // answered, not an "OK" from the final sync of nothing.
    if (rc == 0
        && (s_test_setup(&test, BROKER_SYNC_FAULT_FDATASYNC, "inproc://broker-sync-test-2") != 0
            || s_test_publish(&test, 6) != 0 || !test.core.sync_running))
        rc = -1;
    broker_sync_stop(&test.core);
    if (rc == 0 && !s_test_answered_error(&test, 6))
        rc = -1;
    s_test_teardown(&test);
    return rc;
}
