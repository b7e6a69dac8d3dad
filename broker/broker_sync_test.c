/*  broker_sync_test - broker_sync_test(): a durable publish whose sync
    fails is answered with an error, never an "OK"
    SPDX-License-Identifier: MIT

    A broker without its actor: a durable server, its syncer and the
    ZeroMQ door on an inproc ROUTER, wired as broker.c wires them, and a
    DEALER publishing. The failures come from config.test_sync_fault.
*/
#include <czmq.h>
#include <unistd.h>

#include "broker_server.h"
#include "broker_sync.h"
#include "broker_zmq.h"
#include "nsq_wire.h"

typedef struct {
    broker_server_t *server;  // durable, on dir
    broker_sync_t *sync;      // with the fault under test
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

// Sets up a durable broker with fault; returns 0 or -1.
static int s_test_setup(sync_test_t *test, broker_sync_fault_t fault, const char *endpoint)
{
    memset(test, 0, sizeof *test);
    snprintf(test->dir, sizeof test->dir, "/tmp/broker-sync-test-XXXXXX");
    if (!mkdtemp(test->dir))
        return -1;
    broker_config_t config;
    broker_config_for_test(&config, test->dir, 0, 0);
    config.durable = true;
    config.test_sync_fault = fault;
    broker_server_hooks_t hooks = {.arg = test, .wait_durable = s_test_wait};
    test->server = broker_server_new(&config, &hooks);
    broker_sync_source_t source = {test, s_test_each_disk, NULL};
    test->sync = broker_sync_new(&config, &source);
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
    broker_sync_destroy(&test->sync);
    if (test->server)
        broker_server_topic(test->server, BROKER_DELETE, "orders", 6, 0);  // removes its files
    broker_server_destroy(&test->server);
    broker_zmq_destroy(&test->zmq);
    zsock_destroy(&test->router);
    zsock_destroy(&test->dealer);
    rmdir(test->dir);
}

// Publishes one message with seq in durable mode and starts its sync.
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

// True if the publisher's next frame (within a second) is the error code for seq.
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
                     && s_test_publish(&test, 5) == 0 && !broker_sync_is_running(test.sync)
                     && s_test_answered_error(&test, 5)
                 ? 0
                 : -1;
    s_test_teardown(&test);
    // The fdatasync fails while the broker shuts down: the failure is
    // answered, not an "OK" from the final sync of nothing.
    if (rc == 0
        && (s_test_setup(&test, BROKER_SYNC_FAULT_FDATASYNC, "inproc://broker-sync-test-2") != 0
            || s_test_publish(&test, 6) != 0 || !broker_sync_is_running(test.sync)))
        rc = -1;
    broker_sync_destroy(&test.sync);
    if (rc == 0 && !s_test_answered_error(&test, 6))
        rc = -1;
    s_test_teardown(&test);
    return rc;
}
