/*  broker_sync_test - broker_sync_test(): a durable publish is answered
    only after its fdatasync, and with an error, never an "OK", when that
    fdatasync fails
    SPDX-License-Identifier: MIT

    A broker without its actor: a durable server whose queues run over a
    disk I/O actor, the group commit, and the ZeroMQ door on an inproc
    ROUTER, wired as broker_node.c and broker.c wire them, and a DEALER
    publishing. The actor's hold shows that no answer leaves before the
    sync ran; its fault injection (nsq_diskio_fail_next) makes the sync
    fail.
*/
#include <czmq.h>
#include <unistd.h>

#include "broker_server.h"
#include "broker_sync.h"
#include "broker_zmq.h"
#include "nsq_diskio.h"
#include "nsq_wire.h"

typedef struct {
    nsq_diskio_t *diskio;     // the queues' actor
    broker_server_t *server;  // durable, on dir
    broker_sync_t *sync;      // the group commit
    zsock_t *router;          // the door's socket
    broker_zmq_t *zmq;        // its door
    zsock_t *dealer;          // the publisher
    char dir[64];             // the data path
} sync_test_t;

static int s_test_wait(void *arg, broker_durable_fn *fn, void *fn_arg)
{
    sync_test_t *test = arg;
    return broker_sync_wait(test->sync, fn, fn_arg);
}

static void s_test_each_disk(void *arg, broker_sync_disk_fn *fn, void *fn_arg)
{
    sync_test_t *test = arg;
    broker_server_each_disk(test->server, fn, fn_arg);
}

// Sets up a durable broker; returns 0 or -1.
static int s_test_setup(sync_test_t *test, const char *endpoint)
{
    memset(test, 0, sizeof *test);
    snprintf(test->dir, sizeof test->dir, "/tmp/broker-sync-test-XXXXXX");
    if (!mkdtemp(test->dir) || !(test->diskio = nsq_diskio_new()))
        return -1;
    broker_config_t config;
    broker_config_for_test(&config, test->dir, 0, 0);
    config.durable = true;
    config.diskio = test->diskio;
    broker_server_hooks_t hooks = {.arg = test, .wait_durable = s_test_wait};
    test->server = broker_server_new(&config, &hooks);
    broker_sync_source_t source = {test, s_test_each_disk, NULL};
    test->sync = broker_sync_new(&source);
    test->router = zsock_new(ZMQ_ROUTER);
    if (!test->router)
        return -1;
    zsock_set_router_mandatory(test->router, 1);
    zsock_bind(test->router, "%s", endpoint);
    test->zmq = test->server ? broker_zmq_new(test->server, test->router) : NULL;
    test->dealer = zsock_new(ZMQ_DEALER);
    zsock_set_identity(test->dealer, "S1");
    zsock_connect(test->dealer, "%s", endpoint);
    return test->server && test->sync && test->zmq && test->dealer ? 0 : -1;
}

static void s_test_teardown(sync_test_t *test)
{
    if (test->diskio) {
        nsq_diskio_hold(test->diskio, false);
        nsq_diskio_wait(test->diskio, 5000);
    }
    broker_sync_destroy(&test->sync);
    if (test->server)
        broker_server_topic(test->server, BROKER_DELETE, "orders", 6, 0);  // removes its files
    broker_server_destroy(&test->server);
    nsq_diskio_destroy(&test->diskio);
    broker_zmq_destroy(&test->zmq);
    zsock_destroy(&test->router);
    zsock_destroy(&test->dealer);
    rmdir(test->dir);
}

// Publishes one message with seq in durable mode and starts its group
// commit.
static int s_test_publish(sync_test_t *test, uint64_t seq)
{
    ProtobufCBinaryData body = {7, (uint8_t *) "durable"};
    Nsq__Pub pub = NSQ__PUB__INIT;
    pub.topic = nsq_wire_bytes("orders");
    pub.n_bodies = 1;
    pub.bodies = &body;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_PUB;
    command.pub = &pub;
    command.seq = seq;
    if (nsq_wire_send_command(zsock_resolve(test->dealer), &command, 0) != 0)
        return -1;
    zpoller_t *poller = zpoller_new(test->router, NULL);
    bool ready = zpoller_wait(poller, 1000) == test->router;
    zpoller_destroy(&poller);
    if (!ready || broker_zmq_read(test->zmq, 1) != 1)
        return -1;
    broker_sync_kick(test->sync);
    return 0;
}

// The publisher's next frame within timeout_ms (NULL if none). Caller
// frees it.
static Nsq__Frame *s_test_answer(sync_test_t *test, int timeout_ms)
{
    zpoller_t *poller = zpoller_new(test->dealer, NULL);
    bool ready = zpoller_wait(poller, timeout_ms) != NULL;
    zpoller_destroy(&poller);
    zframe_t *frame = ready ? zframe_recv(test->dealer) : NULL;
    Nsq__Frame *decoded =
        frame ? nsq_wire_frame_unpack(zframe_data(frame), zframe_size(frame)) : NULL;
    zframe_destroy(&frame);
    return decoded;
}

// Runs the actor's completions, then expects the answer to seq: an OK,
// or E_PUB_FAILED if failed.
static bool s_test_answered(sync_test_t *test, uint64_t seq, bool failed)
{
    nsq_diskio_wait(test->diskio, 5000);
    Nsq__Frame *frame = s_test_answer(test, 1000);
    bool right =
        frame
        && (failed
                ? frame->frame_case == NSQ__FRAME__FRAME_ERROR && frame->error->seq == seq
                      && streq(frame->error->code, "E_PUB_FAILED")
                : frame->frame_case == NSQ__FRAME__FRAME_RESPONSE && frame->response->seq == seq);
    nsq__frame__free_unpacked(frame, NULL);
    return right;
}

int broker_sync_test(void)
{
    sync_test_t test;
    int rc = s_test_setup(&test, "inproc://broker-sync-test-1");
    // The answer waits for the fdatasync: none while the actor is held.
    if (rc == 0 && s_test_publish(&test, 4) == 0 && s_test_answered(&test, 4, false)) {
        nsq_diskio_hold(test.diskio, true);
        Nsq__Frame *early = s_test_publish(&test, 5) == 0 ? s_test_answer(&test, 100) : NULL;
        rc = early || !broker_sync_is_running(test.sync) ? -1 : 0;
        nsq__frame__free_unpacked(early, NULL);
        nsq_diskio_hold(test.diskio, false);
        if (rc == 0 && !s_test_answered(&test, 5, false))
            rc = -1;
    } else {
        rc = -1;
    }
    // The fdatasync fails: the publish hears the failure, and the next
    // one, synced again, an OK.
    if (rc == 0) {
        nsq_diskio_fail_next(test.diskio, NSQ_DISKIO_DATASYNC, EIO);
        if (s_test_publish(&test, 6) != 0 || !s_test_answered(&test, 6, true)
            || s_test_publish(&test, 7) != 0 || !s_test_answered(&test, 7, false))
            rc = -1;
    }
    s_test_teardown(&test);
    return rc;
}
