/*  nsq_connection_test - the connection's self-test
    SPDX-License-Identifier: MIT

    One connection on a zloop of its own against a fake broker
    (nsq_fake_broker), without a consumer: the handshake and what the
    IdentifyReply sets, an answer without one (an older broker), RDY only
    when it changes, FIN and REQ batches, TOUCH, heartbeats, CLS, a fatal
    error, and the goodbye on destroy.
*/
#include "nsq_arena.h"
#include "nsq_connection.h"
#include "nsq_endpoint.h"
#include "nsq_fake_broker.h"
#include "nsq_log.h"

#include <string.h>

typedef struct {
    zloop_t *loop;                         // the connection's
    nsq_arena_t *arena;                    // frames are unpacked here
    nsq_connection_t *conn;                // under test
    int events[NSQ_CONNECTION_RESET + 1];  // how often handle said each
} s_state_t;

// The owner's reader: every frame waiting goes to nsq_connection_handle.
static int s_reader(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    s_state_t *state = arg;
    if (state->conn && nsq_connection_read_monitor(state->conn, sock))
        return 0;
    Nsq__Frame *frame = NULL;
    while (state->conn && nsq_connection_sock(state->conn) == sock
           && nsq_connection_recv(state->conn, nsq_arena_allocator(state->arena), &frame) == 0) {
        if (frame)
            state->events[nsq_connection_handle(state->conn, frame)]++;
        nsq_arena_reset(state->arena);
    }
    return 0;
}

static int s_stop(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    (void) arg;
    return -1;
}

// Runs the connection's checks and its loop for timeout_ms.
static void s_poll(void *arg, int timeout_ms)
{
    s_state_t *state = arg;
    if (state->conn)
        nsq_connection_check(state->conn, zclock_mono(), true);
    zloop_timer(state->loop, (size_t) timeout_ms, 1, s_stop, NULL);
    zloop_start(state->loop);
}

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            nsq_error("nsq_connection_test: %s:%d: %s", __FILE__, __LINE__, #condition);           \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

// The next command, which must be of kind cmd_case; NULL otherwise.
static Nsq__Command *s_expect(nsq_fake_broker_t *fake, s_state_t *state, int cmd_case)
{
    return nsq_fake_broker_expect(fake, s_poll, state, cmd_case);
}

// Expects a FIN, REQ or TOUCH of count ids from first on, REQs after delay_ms.
static bool s_expect_ids(nsq_fake_broker_t *fake, s_state_t *state, int cmd_case, size_t count,
                         uint64_t first, uint32_t delay_ms)
{
    Nsq__Command *command = s_expect(fake, state, cmd_case);
    size_t n = 0;
    uint64_t *ids = NULL;
    if (command && cmd_case == NSQ__COMMAND__CMD_FIN)
        n = command->fin->n_ids, ids = command->fin->ids;
    else if (command && cmd_case == NSQ__COMMAND__CMD_REQ)
        n = command->req->n_ids, ids = command->req->ids;
    else if (command)
        n = command->touch->n_ids, ids = command->touch->ids;
    bool ok = command && n == count;
    for (size_t i = 0; ok && i < n; i++)
        ok = ids[i] == first + i;
    if (ok && cmd_case == NSQ__COMMAND__CMD_REQ)
        ok = command->req->delay_ms == delay_ms;
    nsq__command__free_unpacked(command, NULL);
    return ok;
}

// IDENTIFY and SUB arrive together; returns IDENTIFY's seq (0 if they did not).
static uint64_t s_expect_hello(nsq_fake_broker_t *fake, s_state_t *state,
                               const nsq_connection_settings_t *settings)
{
    Nsq__Command *identify = s_expect(fake, state, NSQ__COMMAND__CMD_IDENTIFY);
    Nsq__Command *sub = s_expect(fake, state, NSQ__COMMAND__CMD_SUB);
    bool ok = identify && sub && streq(identify->identify->client_id, settings->client_id)
              && streq(identify->identify->hostname, settings->hostname)
              && identify->identify->heartbeat_interval_ms == settings->heartbeat_ms
              && identify->identify->msg_timeout_ms == settings->msg_timeout_ms
              && nsq_wire_bytes_equal(sub->sub->topic, settings->topic)
              && nsq_wire_bytes_equal(sub->sub->channel, settings->channel);
    uint64_t seq = ok ? identify->seq : 0;
    if (ok)
        nsq_fake_broker_respond(fake, sub->seq, "OK");
    nsq__command__free_unpacked(identify, NULL);
    nsq__command__free_unpacked(sub, NULL);
    return seq;
}

// Polls until handle has said event count times (or 3 s pass).
static bool s_wait_event(s_state_t *state, nsq_connection_event_t event, int count)
{
    int64_t deadline = zclock_mono() + 3000;
    while (state->events[event] < count && zclock_mono() < deadline)
        s_poll(state, 10);
    return state->events[event] >= count;
}

// Settles, RDY, heartbeats and CLS on an identified connection.
static int s_test_identified(nsq_fake_broker_t *fake, s_state_t *state)
{
    int rc = -1;
    nsq_connection_t *conn = state->conn;
    Nsq__Command *command = NULL;
    // RDY only when it changes.
    nsq_connection_rdy(conn, 7);
    nsq_connection_rdy(conn, 7);
    nsq_connection_rdy(conn, 8);
    command = s_expect(fake, state, NSQ__COMMAND__CMD_RDY);
    S_CHECK(command && command->rdy->count == 7);
    nsq__command__free_unpacked(command, NULL);
    command = s_expect(fake, state, NSQ__COMMAND__CMD_RDY);
    S_CHECK(command && command->rdy->count == 8);
    // A full FIN batch leaves by itself, in one frame.
    for (uint64_t id = 1; id <= 64; id++)
        nsq_connection_fin(conn, id);
    S_CHECK(s_expect_ids(fake, state, NSQ__COMMAND__CMD_FIN, 64, 1, 0));
    // A REQ with another delay sends what is queued first.
    nsq_connection_fin(conn, 65);
    nsq_connection_req(conn, 66, 10);
    nsq_connection_req(conn, 67, 10);
    nsq_connection_req(conn, 68, 20);
    nsq_connection_flush(conn);
    S_CHECK(s_expect_ids(fake, state, NSQ__COMMAND__CMD_FIN, 1, 65, 0));
    S_CHECK(s_expect_ids(fake, state, NSQ__COMMAND__CMD_REQ, 2, 66, 10));
    S_CHECK(s_expect_ids(fake, state, NSQ__COMMAND__CMD_REQ, 1, 68, 20));
    nsq_connection_touch(conn, 69);
    S_CHECK(s_expect_ids(fake, state, NSQ__COMMAND__CMD_TOUCH, 1, 69, 0));
    // A broker heartbeat is answered.
    nsq_fake_broker_heartbeat(fake);
    nsq__command__free_unpacked(command, NULL);
    command = s_expect(fake, state, NSQ__COMMAND__CMD_HEARTBEAT);
    S_CHECK(command);
    // CLS, answered: the broker sends nothing more.
    nsq_connection_cls(conn);
    nsq__command__free_unpacked(command, NULL);
    command = s_expect(fake, state, NSQ__COMMAND__CMD_CLS);
    S_CHECK(command && !command->cls->disconnect && !nsq_connection_close_waited(conn));
    nsq_fake_broker_respond(fake, command->seq, "CLOSE_WAIT");
    S_CHECK(s_wait_event(state, NSQ_CONNECTION_CLOSE_WAIT, 1) && nsq_connection_close_waited(conn));
    rc = 0;
done:
    nsq__command__free_unpacked(command, NULL);
    return rc;
}

// The IdentifyReply sets the connection's limits; then the rest.
static int s_test_handshake(nsq_fake_broker_t *fake, s_state_t *state,
                            const nsq_connection_settings_t *settings)
{
    int rc = -1;
    uint64_t seq = 0;
    S_CHECK(nsq_connection_open(state->conn) == 0 && !nsq_connection_is_ready(state->conn));
    S_CHECK((seq = s_expect_hello(fake, state, settings)) != 0);
    Nsq__IdentifyReply reply = NSQ__IDENTIFY_REPLY__INIT;
    reply.max_rdy_count = 100;
    reply.msg_timeout_ms = 30000;
    reply.max_msg_timeout_ms = 600000;
    reply.heartbeat_interval_ms = 60000;
    nsq_fake_broker_identified(fake, seq, &reply);
    S_CHECK(s_wait_event(state, NSQ_CONNECTION_IDENTIFIED, 1));
    S_CHECK(nsq_connection_is_ready(state->conn) && nsq_connection_max_rdy(state->conn) == 100
            && nsq_connection_msg_timeout(state->conn) == 30000);
    rc = s_test_identified(fake, state);
done:
    return rc;
}

// A fatal error drops the socket: a new generation, not ready.
static int s_test_fatal(nsq_fake_broker_t *fake, s_state_t *state)
{
    int rc = -1;
    uint64_t generation = nsq_connection_generation(state->conn);
    nsq_fake_broker_error(fake, 0, "E_INVALID", true);
    S_CHECK(s_wait_event(state, NSQ_CONNECTION_RESET, 1));
    S_CHECK(nsq_connection_generation(state->conn) == generation + 1);
    S_CHECK(!nsq_connection_is_ready(state->conn) && !nsq_connection_sock(state->conn));
    rc = 0;
done:
    return rc;
}

// An answer without IdentifyReply (a broker older than it) keeps the
// defaults: max_rdy_count 2500, the msg_timeout asked for. Destroying an
// identified connection says goodbye (CLS with disconnect).
static int s_test_old_broker(nsq_fake_broker_t *fake, s_state_t *state,
                             nsq_connection_settings_t *settings)
{
    int rc = -1;
    uint64_t seq = 0;
    Nsq__Command *command = NULL;
    settings->msg_timeout_ms = 5000;
    S_CHECK(nsq_connection_open(state->conn) == 0);
    S_CHECK((seq = s_expect_hello(fake, state, settings)) != 0);
    nsq_fake_broker_respond(fake, seq, "{\"max_rdy_count\":7}");
    S_CHECK(s_wait_event(state, NSQ_CONNECTION_IDENTIFIED, 2));
    S_CHECK(nsq_connection_max_rdy(state->conn) == 2500
            && nsq_connection_msg_timeout(state->conn) == 5000);
    nsq_connection_fin(state->conn, 70);
    nsq_connection_destroy(&state->conn);
    S_CHECK(s_expect_ids(fake, state, NSQ__COMMAND__CMD_FIN, 1, 70, 0));
    command = s_expect(fake, state, NSQ__COMMAND__CMD_CLS);
    S_CHECK(command && command->cls->disconnect);
    rc = 0;
done:
    nsq__command__free_unpacked(command, NULL);
    return rc;
}

static void s_poll_nothing(void *arg, int timeout_ms)
{
    (void) arg;
    zclock_sleep(timeout_ms);
}

int nsq_connection_test(void)
{
    int rc = -1;
    char endpoint[NSQ_ENDPOINT_MAX];
    nsq_fake_broker_t *fake = nsq_fake_broker_new();
    s_state_t state = {.loop = zloop_new(), .arena = nsq_arena_new()};
    nsq_connection_settings_t settings = {.topic = "orders",
                                          .channel = "billing",
                                          .client_id = "test-client",
                                          .hostname = "test-host",
                                          .heartbeat_ms = 60000};
    S_CHECK(fake && state.loop && state.arena);
    S_CHECK(nsq_endpoint_parse(fake->endpoint, endpoint, sizeof endpoint) == 0);
    state.conn = nsq_connection_new(endpoint, &settings, state.loop, s_reader, &state);
    S_CHECK(state.conn && streq(nsq_connection_endpoint(state.conn), endpoint));
    S_CHECK(s_test_handshake(fake, &state, &settings) == 0);
    S_CHECK(s_test_fatal(fake, &state) == 0);
    S_CHECK(s_test_old_broker(fake, &state, &settings) == 0);
    // Destroyed: nothing more arrives.
    S_CHECK(!nsq_fake_broker_next(fake, s_poll_nothing, NULL, 200, true));
    rc = 0;
done:
    nsq_connection_destroy(&state.conn);
    nsq_arena_destroy(&state.arena);
    zloop_destroy(&state.loop);
    nsq_fake_broker_destroy(&fake);
    return rc;
}
