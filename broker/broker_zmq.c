/*  broker_zmq - the ZeroMQ door: consumers and producers on one ROUTER
    socket, one protobuf Command per frame up, one Frame per frame down
    SPDX-License-Identifier: MIT

    Peers live in a hash by hex identity. A peer and its server client come
    and go together: the door closes the client when a command says so
    (CLS with disconnect, a consumer command before IDENTIFY), and the
    server tells the door through the sink when it drops one.

    A durable PUB is answered when the server reports its sync: the waiter
    remembers the peer's key and the command's seq, so a peer that left
    meanwhile is simply not answered.

    Commands are unpacked into an arena taken back after each one: a PUB
    of 200 bodies is otherwise 200 mallocs and frees, a seventh of the
    door's time (the server copies what it keeps).

    A command held for the auth server (BROKER_ZMQ_HOLD) is copied to the
    peer's held list, and so is everything the peer sends after it, so its
    commands keep their order; when the answer is in (s_on_auth, by the
    peer's key) the list is handed over again, from the start. A peer that
    leaves drops its list.
*/
#include "broker_zmq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker_zmq_commands.h"
#include "broker_zmq_peer.h"
#include "nsq_arena.h"
#include "nsq_log.h"
#include "nsq_peer.h"
#include "nsq_wire.h"

// Frames a peer may have waiting for the auth server; past it the peer is
// dropped (a client pipelining without bound).
#define S_HELD_MAX 10000

struct _broker_zmq_t {
    broker_server_t *server;       // the core (borrowed)
    zsock_t *router;               // consumers and producers (borrowed)
    zhashx_t *peers;               // hex identity -> broker_zmq_peer_t, owned
    zhashx_t *held;                // hex identity -> zlistx_t of zframe_t: commands waiting
                                   // for the auth server, oldest first, owned
    broker_zmq_blocked_t blocked;  // frames that met a full queue
    nsq_arena_t *arena;            // where the command being handled is unpacked
};

// A durable PUB waiting for its sync.
typedef struct {
    broker_zmq_t *door;             // whose peer sent it
    char key[BROKER_ZMQ_KEY_SIZE];  // the peer's key
    uint64_t seq;                   // the command's seq
} durable_wait_t;

static void s_peer_destructor(void **item)
{
    broker_zmq_peer_destroy((broker_zmq_peer_t **) item);
}

static void s_frame_destructor(void **item)
{
    zframe_destroy((zframe_t **) item);
}

// Drops the peer's held commands, if any (the hash has no destructor: a
// list is taken out of it whole by s_on_auth).
static void s_held_drop(broker_zmq_t *self, const char *key)
{
    zlistx_t *held = zhashx_lookup(self->held, key);
    if (!held)
        return;
    zhashx_delete(self->held, key);
    zlistx_destroy(&held);
}

broker_zmq_t *broker_zmq_new(broker_server_t *server, zsock_t *router)
{
    broker_zmq_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->peers = zhashx_new();
    self->arena = nsq_arena_new();
    self->held = zhashx_new();
    if (!self->peers || !self->arena || !self->held) {
        broker_zmq_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->peers, s_peer_destructor);
    self->server = server;
    self->blocked.counters = broker_server_counters(server);
    self->router = router;
    return self;
}

void broker_zmq_destroy(broker_zmq_t **self_p)
{
    broker_zmq_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    for (zlistx_t *held = self->held ? zhashx_first(self->held) : NULL; held;
         held = zhashx_next(self->held))
        zlistx_destroy(&held);
    zhashx_destroy(&self->held);
    zhashx_destroy(&self->peers);
    nsq_arena_destroy(&self->arena);
    free(self);
    *self_p = NULL;
}

broker_client_t *broker_zmq_client(broker_zmq_t *self, const void *identity, size_t size)
{
    char key[BROKER_ZMQ_KEY_SIZE];
    if (size == 0 || size > BROKER_IDENTITY_MAX)
        return NULL;
    nsq_peer_key(identity, size, key);
    broker_zmq_peer_t *peer = zhashx_lookup(self->peers, key);
    return peer ? broker_zmq_peer_client(peer) : NULL;
}

// ---- the clients' sink --------------------------------------------------------

static size_t s_deliver(void *door, broker_inflight_entry_t **entries, size_t count, int64_t now)
{
    return broker_zmq_peer_send_messages(door, entries, count, now);
}

// The server drops the peer's client: a peer whose channel was deleted
// hears why (fatal: it must subscribe again), then the peer is forgotten.
static void s_dropped(void *door, broker_drop_reason_t reason, const char *detail, int64_t now)
{
    broker_zmq_peer_t *peer = door;
    broker_zmq_t *self = broker_zmq_peer_owner(peer);
    if (reason == BROKER_DROP_CHANNEL_DELETED)
        broker_zmq_peer_send_error(peer, 0, "E_CHANNEL_DELETED", detail, true, now);
    s_held_drop(self, broker_zmq_peer_key(peer));
    zhashx_delete(self->peers, broker_zmq_peer_key(peer));  // the destructor frees it
}

static const broker_client_sink_t s_sink = {s_deliver, s_dropped, "zmq"};

// ---- reading ----------------------------------------------------------------------

// The peer with this identity; a new one (with its server client) when
// unknown, addressed from address or else from the Peer-Address of msg
// (looked up only then: it costs a search per message). NULL if the
// identity is unusable or out of memory.
static broker_zmq_peer_t *s_peer_for(broker_zmq_t *self, const void *identity, size_t size,
                                     const char *address, zmq_msg_t *msg, int64_t now)
{
    char key[BROKER_ZMQ_KEY_SIZE];
    if (size == 0 || size > BROKER_IDENTITY_MAX)
        return NULL;
    nsq_peer_key(identity, size, key);
    broker_zmq_peer_t *peer = zhashx_lookup(self->peers, key);
    if (peer)
        return peer;
    peer =
        broker_zmq_peer_new(zsock_resolve(self->router), identity, size, &self->blocked, self, now);
    broker_client_t *client =
        peer ? broker_server_client_new(self->server, &s_sink, peer, broker_zmq_peer_key(peer), now)
             : NULL;
    if (!client || zhashx_insert(self->peers, key, peer) != 0) {
        broker_server_client_close(self->server, &client, now);
        broker_zmq_peer_destroy(&peer);
        return NULL;
    }
    broker_zmq_peer_set_client(peer, client);
    char found[64] = "";
    if (!address && msg)
        address = nsq_peer_address(msg, found, sizeof found);
    if (address)
        broker_client_set_remote_address(client, address);
    return peer;
}

// Closes the peer's client and forgets the peer.
static void s_close(broker_zmq_t *self, broker_zmq_peer_t *peer, int64_t now)
{
    broker_client_t *client = broker_zmq_peer_client(peer);
    broker_server_client_close(self->server, &client, now);
    s_held_drop(self, broker_zmq_peer_key(peer));
    zhashx_delete(self->peers, broker_zmq_peer_key(peer));
}

static void s_on_durable(void *arg, broker_result_t result)
{
    durable_wait_t *wait = arg;
    broker_zmq_peer_t *peer = zhashx_lookup(wait->door->peers, wait->key);
    if (peer)
        broker_zmq_commands_answer_durable(peer, wait->seq, result, zclock_mono());
    free(wait);
}

// Keeps a durable PUB's answer until its sync is done.
static void s_wait_durable(broker_zmq_t *self, broker_zmq_peer_t *peer, uint64_t seq, int64_t now)
{
    durable_wait_t *wait = malloc(sizeof *wait);
    if (!wait) {
        nsq_error("durable: out of memory, a publish is answered with an error");
        broker_zmq_commands_answer_durable(peer, seq, BROKER_SYNC_FAILED, now);
        return;
    }
    wait->door = self;
    snprintf(wait->key, sizeof wait->key, "%s", broker_zmq_peer_key(peer));
    wait->seq = seq;
    broker_server_wait_durable(self->server, s_on_durable, wait);
}

// Keeps a copy of a frame behind the peer's held commands (a new list when
// none is held). Returns 0, or -1 (the peer must go: too many, or out of
// memory).
static int s_hold(broker_zmq_t *self, broker_zmq_peer_t *peer, const void *body, size_t size)
{
    const char *key = broker_zmq_peer_key(peer);
    zlistx_t *held = zhashx_lookup(self->held, key);
    if (!held && (held = zlistx_new())) {
        zlistx_set_destructor(held, s_frame_destructor);
        if (zhashx_insert(self->held, key, held) != 0)
            zlistx_destroy(&held);
    }
    zframe_t *frame = held && zlistx_size(held) < S_HELD_MAX ? zframe_new(body, size) : NULL;
    if (!frame || !zlistx_add_end(held, frame)) {
        zframe_destroy(&frame);
        return -1;
    }
    return 0;
}

static void s_frame(broker_zmq_t *self, broker_zmq_peer_t *peer, const void *body, size_t size,
                    int64_t now);

// The auth server answered for a peer's held command: its held frames are
// handled again, in order, until one is held anew (the rest then stays
// behind it).
static void s_on_auth(void *arg, bool cancelled)
{
    broker_zmq_auth_wait_t *wait = arg;
    broker_zmq_t *self = wait->door;
    zlistx_t *held = cancelled ? NULL : zhashx_lookup(self->held, wait->key);
    if (held) {
        zhashx_delete(self->held, wait->key);  // the list is ours now
        int64_t now = zclock_mono();
        for (zframe_t *frame = zlistx_first(held); frame; frame = zlistx_next(held)) {
            broker_zmq_peer_t *peer = zhashx_lookup(self->peers, wait->key);
            if (!peer)
                break;  // it left (or was closed by one of its commands)
            s_frame(self, peer, zframe_data(frame), zframe_size(frame), now);
        }
        zlistx_destroy(&held);
    }
    free(wait);
}

// Handles one frame from peer (see broker_zmq_frame), or holds it behind
// the peer's held commands.
static void s_frame(broker_zmq_t *self, broker_zmq_peer_t *peer, const void *body, size_t size,
                    int64_t now)
{
    broker_client_heard(broker_zmq_peer_client(peer), now);
    if (body && zhashx_lookup(self->held, broker_zmq_peer_key(peer))) {
        if (s_hold(self, peer, body, size) != 0) {
            nsq_warn("client %s: too many commands wait for the auth server; dropped",
                     broker_zmq_peer_key(peer));
            broker_zmq_peer_send_error(peer, 0, "E_AUTH_UNAVAILABLE",
                                       "too many commands wait for the auth server", true, now);
            s_close(self, peer, now);
        }
        return;
    }
    Nsq__Command *command =
        body ? nsq__command__unpack(nsq_arena_allocator(self->arena), size, body) : NULL;
    if (!command) {
        broker_server_counters(self->server)->bad_commands++;
        nsq_warn("client %s: frame is not a valid command (%zu bytes)", broker_zmq_peer_key(peer),
                 size);
        broker_zmq_peer_send_error(peer, 0, "E_BAD_COMMAND", "not a valid Command frame", false,
                                   now);
        nsq_arena_reset(self->arena);  // a failed unpack may leave some behind
        return;
    }
    broker_zmq_outcome_t outcome =
        broker_zmq_commands_handle(self->server, peer, command, now, s_on_auth);
    if (outcome == BROKER_ZMQ_HOLD && s_hold(self, peer, body, size) != 0) {
        broker_zmq_peer_send_error(peer, command->seq, "E_AUTH_UNAVAILABLE",
                                   "out of memory while the auth server is asked", true, now);
        outcome = BROKER_ZMQ_CLOSE;
    }
    if (outcome == BROKER_ZMQ_CLOSE)
        s_close(self, peer, now);
    else if (outcome == BROKER_ZMQ_DURABLE)
        s_wait_durable(self, peer, command->seq, now);
    nsq_arena_reset(self->arena);  // the command and everything in it
}

void broker_zmq_frame(broker_zmq_t *self, const void *identity, size_t identity_size,
                      const void *body, size_t size, const char *address, int64_t now)
{
    broker_zmq_peer_t *peer = s_peer_for(self, identity, identity_size, address, NULL, now);
    if (peer)
        s_frame(self, peer, body, size, now);
}

// Reads one [identity][command] message; returns -1 when nothing is waiting.
static int s_read_one(broker_zmq_t *self, void *socket)
{
    zmq_msg_t identity, body;
    zmq_msg_init(&identity);
    zmq_msg_init(&body);
    int extra_frames = nsq_peer_recv(socket, &identity, &body);
    if (extra_frames >= 0) {
        int64_t now = zclock_mono();
        broker_zmq_peer_t *peer =
            s_peer_for(self, zmq_msg_data(&identity), zmq_msg_size(&identity), NULL, &body, now);
        if (peer)
            s_frame(self, peer, extra_frames ? NULL : zmq_msg_data(&body), zmq_msg_size(&body),
                    now);
    }
    zmq_msg_close(&identity);
    zmq_msg_close(&body);
    return extra_frames < 0 ? -1 : 0;
}

int broker_zmq_read(broker_zmq_t *self, int max)
{
    void *socket = zsock_resolve(self->router);
    int count = 0;
    while (count < max && s_read_one(self, socket) == 0)
        count++;
    return count;
}

// ---- periodic work ------------------------------------------------------------------

void broker_zmq_tick(broker_zmq_t *self, int64_t now)
{
    for (broker_zmq_peer_t *peer = zhashx_first(self->peers); peer;
         peer = zhashx_next(self->peers)) {
        broker_client_t *client = broker_zmq_peer_client(peer);
        // A peer whose queue was full gets what waits for it, then credit.
        if (broker_zmq_peer_flush(peer, now))
            broker_server_client_ready_again(self->server, client, now);
        if (broker_client_state(client) != BROKER_CLIENT_NEW
            && now - broker_zmq_peer_last_sent(peer) >= broker_client_heartbeat_interval(client))
            broker_zmq_peer_send_heartbeat(peer, now);
    }
}
