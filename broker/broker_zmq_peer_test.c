/*  broker_zmq_peer_test - broker_zmq_peer_test(): a peer whose ZeroMQ queue
    is full keeps every frame, in order, and its channel requeues what it
    could not send
    SPDX-License-Identifier: MIT
*/
#include <czmq.h>

#include "broker_channel.h"
#include "broker_zmq_peer.h"

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "broker_zmq_peer_test: %s:%d: %s\n", __FILE__, __LINE__, #condition);  \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

// Reads one frame within timeout_ms; returns the seq of its Response, or -1.
static int64_t s_test_response(zsock_t *dealer, int timeout_ms)
{
    zpoller_t *poller = zpoller_new(dealer, NULL);
    void *ready = zpoller_wait(poller, timeout_ms);
    zpoller_destroy(&poller);
    zframe_t *frame = ready ? zframe_recv(dealer) : NULL;
    Nsq__Frame *decoded =
        frame ? nsq_wire_frame_unpack(zframe_data(frame), zframe_size(frame)) : NULL;
    zframe_destroy(&frame);
    int64_t seq = decoded && decoded->frame_case == NSQ__FRAME__FRAME_RESPONSE
                      ? (int64_t) decoded->response->seq
                      : -1;
    nsq__frame__free_unpacked(decoded, NULL);
    return seq;
}

// A ROUTER and a DEALER with identity on inproc whose queue holds about
// hwm frames.
static zsock_t *s_test_pair(const char *endpoint, int hwm, const char *identity, zsock_t **dealer)
{
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    zsock_set_router_mandatory(router, 1);
    zsock_set_sndhwm(router, hwm);  // before bind and connect, so they apply
    zsock_bind(router, "%s", endpoint);
    *dealer = zsock_new(ZMQ_DEALER);
    zsock_set_identity(*dealer, identity);
    zsock_set_rcvhwm(*dealer, hwm);
    zsock_connect(*dealer, "%s", endpoint);
    return router;
}

static size_t s_deliver(void *door, broker_inflight_entry_t **entries, size_t count, int64_t now)
{
    return broker_zmq_peer_send_messages(door, entries, count, now);
}

static const broker_client_sink_t s_sink = {s_deliver, NULL, "test"};

// A peer and its client, subscribed with credit rdy.
static broker_zmq_peer_t *s_test_peer(zsock_t *router, const char *identity,
                                      broker_zmq_blocked_t *blocked, uint32_t rdy)
{
    broker_zmq_peer_t *peer =
        broker_zmq_peer_new(zsock_resolve(router), identity, strlen(identity), blocked, NULL, 0);
    broker_client_t *client = peer ? broker_client_new(&s_sink, peer, "test", 1000, 1000, 0) : NULL;
    if (!client) {
        broker_zmq_peer_destroy(&peer);
        return NULL;
    }
    broker_zmq_peer_set_client(peer, client);
    broker_client_set_state(client, BROKER_CLIENT_SUBSCRIBED);
    broker_client_set_rdy(client, rdy);
    return peer;
}

static void s_test_peer_destroy(broker_zmq_peer_t **peer_p)
{
    if (*peer_p) {
        broker_client_t *client = broker_zmq_peer_client(*peer_p);
        broker_client_destroy(&client);
    }
    broker_zmq_peer_destroy(peer_p);
}

// The peer does not read: every answer is still accepted, in order, and
// leaves once it reads; one that never reads is dropped.
static int s_test_backlog(void)
{
    zsock_t *dealer = NULL;
    zsock_t *router = s_test_pair("inproc://broker-zmq-peer-test", 2, "C", &dealer);
    broker_counters_t counters = {0, 0};
    broker_zmq_blocked_t stats = {&counters, 0, 0, 0};
    broker_zmq_peer_t *peer = s_test_peer(router, "C", &stats, 10);
    broker_client_t *client = peer ? broker_zmq_peer_client(peer) : NULL;
    int rc = -1;
    S_CHECK(peer);
    for (uint64_t seq = 0; seq < 20; seq++)
        S_CHECK(broker_zmq_peer_send_response(peer, seq, "OK", 0) == 0);
    S_CHECK(broker_zmq_peer_is_blocked(peer) && counters.send_blocked > 0);
    S_CHECK(broker_client_credit(client) == 0);
    S_CHECK(broker_zmq_peer_send_heartbeat(peer, 0) == 0);  // nothing to add while blocked
    int64_t next = 0, deadline = zclock_mono() + 5000;
    while (next < 20 && zclock_mono() < deadline) {
        zsock_events(router);  // lets the router see what the dealer read
        broker_zmq_peer_flush(peer, 0);
        int64_t seq = s_test_response(dealer, 10);
        if (seq >= 0)
            S_CHECK(seq == next++);
    }
    S_CHECK(next == 20 && s_test_response(dealer, 50) == -1);
    S_CHECK(!broker_zmq_peer_is_blocked(peer) && broker_client_credit(client) == 10);
    // A peer that never reads is dropped once its backlog is full.
    int refused = 0;
    for (uint64_t seq = 0; seq < 10010 && !refused; seq++)
        refused = broker_zmq_peer_send_response(peer, seq, "OK", 0) != 0;
    S_CHECK(refused && broker_client_is_gone(client) && stats.dropped == 1);
    rc = 0;
done:
    s_test_peer_destroy(&peer);
    zsock_destroy(&dealer);
    zsock_destroy(&router);
    return rc;
}

// A consumer whose ZeroMQ queue is full: what cannot be sent goes back to
// the queue at once (not in flight until its timeout), the consumer gets no
// credit until the door flushes it, then every message reaches it once.
static int s_test_full_queue(void)
{
    broker_config_t config;
    broker_config_for_test(&config, "", 0, 0);  // memory only
    zsock_t *dealer = NULL;
    zsock_t *router = s_test_pair("inproc://broker-channel-full", 2, "C3", &dealer);
    broker_counters_t counters = {0, 0};
    broker_zmq_blocked_t stats = {&counters, 0, 0, 0};
    broker_channel_t *channel = broker_channel_new("orders", "full", &config);
    broker_zmq_peer_t *peer = s_test_peer(router, "C3", &stats, 100);
    broker_client_t *client = peer ? broker_zmq_peer_client(peer) : NULL;
    int rc = -1;
    S_CHECK(channel && client && broker_channel_add_client(channel, client) == 0);
    for (uint64_t i = 1; i <= 50; i++) {  // one frame each
        nsq_message_t *message = nsq_message_new("m", 1);
        message->id = i;
        broker_channel_put(channel, message, 0, 0);
        broker_channel_dispatch(channel, 0);
    }
    size_t sent = broker_client_in_flight(client);
    S_CHECK(broker_zmq_peer_is_blocked(peer) && sent > 0 && sent < 50
            && broker_inflight_size(broker_channel_in_flight(channel)) == sent
            && broker_channel_depth(channel) == 50 - sent);
    bool seen[51] = {false};
    size_t received = 0;
    int64_t deadline = zclock_mono() + 5000;
    while (received < 50 && zclock_mono() < deadline) {
        zsock_events(router);  // lets the router see what the dealer read
        if (broker_zmq_peer_flush(peer, 0))
            broker_channel_dispatch(channel, 0);
        zframe_t *frame = zsock_events(dealer) & ZMQ_POLLIN ? zframe_recv(dealer) : NULL;
        Nsq__Frame *decoded =
            frame ? nsq_wire_frame_unpack(zframe_data(frame), zframe_size(frame)) : NULL;
        zframe_destroy(&frame);
        bool messages = decoded && decoded->frame_case == NSQ__FRAME__FRAME_MESSAGES;
        for (size_t i = 0; messages && i < decoded->messages->n_messages; i++) {
            uint64_t id = decoded->messages->messages[i]->id;
            if (id < 1 || id > 50 || seen[id])
                break;  // unknown or twice: fails below
            seen[id] = true;
            received++;
            broker_channel_fin(channel, client, id);
        }
        nsq__frame__free_unpacked(decoded, NULL);
    }
    broker_stats_channel_t figures;
    S_CHECK(broker_channel_stats(channel, &figures) == 0);
    free(figures.clients);
    S_CHECK(received == 50 && figures.timeout_count == 0 && broker_client_in_flight(client) == 0);
    rc = 0;
done:
    if (channel && client)
        broker_channel_remove_client(channel, client, 0);
    broker_channel_destroy(&channel);
    s_test_peer_destroy(&peer);
    zsock_destroy(&dealer);
    zsock_destroy(&router);
    return rc;
}

int broker_zmq_peer_test(void)
{
    return s_test_backlog() || s_test_full_queue() ? -1 : 0;
}
