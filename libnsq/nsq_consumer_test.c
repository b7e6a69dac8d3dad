/*  nsq_consumer_test - the consumer's self-test
    SPDX-License-Identifier: MIT

    Drives a consumer against fake brokers (nsq_fake_broker) in the test's
    own thread: one broker, then two sharing the credit, settling inside
    and outside the handler, a fatal error, nsq_consumer_run and _stop,
    the graceful close, liveness, and the msg_timeout clamp. The credit
    split itself is tested by nsq_credit_test, the connection's batching
    and handshake by nsq_connection_test.
*/
#include "nsq.h"
#include "nsq_endpoint.h"
#include "nsq_fake_broker.h"
#include "nsq_log.h"
#include "nsq_message.h"
#include "nsq_selftest.h"

#include <stdio.h>
#include <string.h>

static void s_poll(void *consumer, int timeout_ms)
{
    nsq_consumer_poll(consumer, timeout_ms);
}

// Returns the next command if it is of kind cmd_case, else NULL. Caller frees.
static Nsq__Command *s_fake_expect(nsq_fake_broker_t *fake, nsq_consumer_t *consumer, int cmd_case)
{
    return nsq_fake_broker_expect(fake, s_poll, consumer, cmd_case);
}

// Answers IDENTIFY and SUB; returns the RDY count then announced, or -1.
static int64_t s_fake_handshake(nsq_fake_broker_t *fake, nsq_consumer_t *consumer, int heartbeat_ms)
{
    Nsq__Command *identify = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_IDENTIFY);
    if (!identify || strncmp(identify->identify->user_agent, "libnsq/", 7)
        || !*identify->identify->hostname) {
        nsq__command__free_unpacked(identify, NULL);
        return -1;
    }
    Nsq__IdentifyReply reply = NSQ__IDENTIFY_REPLY__INIT;
    reply.max_rdy_count = 2500;
    reply.heartbeat_interval_ms = (uint32_t) heartbeat_ms;
    nsq_fake_broker_identified(fake, identify->seq, &reply);
    nsq__command__free_unpacked(identify, NULL);
    Nsq__Command *sub = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_SUB);
    if (!sub || !nsq_wire_bytes_equal(sub->sub->topic, "orders")
        || !nsq_wire_bytes_equal(sub->sub->channel, "billing")) {
        nsq__command__free_unpacked(sub, NULL);
        return -1;
    }
    nsq_fake_broker_respond(fake, sub->seq, "OK");
    nsq__command__free_unpacked(sub, NULL);
    Nsq__Command *rdy = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_RDY);
    int64_t count = rdy ? (int64_t) rdy->rdy->count : -1;
    nsq__command__free_unpacked(rdy, NULL);
    return count;
}

// The next RDY count, or -1.
static int64_t s_fake_rdy(nsq_fake_broker_t *fake, nsq_consumer_t *consumer)
{
    Nsq__Command *rdy = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_RDY);
    int64_t count = rdy ? (int64_t) rdy->rdy->count : -1;
    nsq__command__free_unpacked(rdy, NULL);
    return count;
}

typedef struct {
    bool keep;            // keep messages instead of FINning them
    nsq_msg_t *kept[16];  // messages kept for later
    size_t kept_count;
    size_t seen;     // messages handed to the handler
    bool bodies_ok;  // every body read "message <id>"
    bool stop;       // call nsq_consumer_stop from the handler
} s_test_state_t;

static void s_test_handler(nsq_consumer_t *consumer, nsq_msg_t *msg, void *arg)
{
    s_test_state_t *state = arg;
    uint64_t id = 0;
    char expected[32];
    nsq_message_id_parse(nsq_msg_id(msg), &id);
    snprintf(expected, sizeof expected, "message %llu", (unsigned long long) id);
    if (nsq_msg_size(msg) != strlen(expected) || strcmp(nsq_msg_body(msg), expected)
        || nsq_msg_attempts(msg) != 1 || nsq_msg_timestamp(msg) < 1000
        || strncmp(nsq_msg_broker(msg), "tcp://127.0.0.1:", 16) || nsq_msg_timeout_ms(msg) == 0)
        state->bodies_ok = false;
    state->seen++;
    if (state->keep && state->kept_count < 16)
        state->kept[state->kept_count++] = msg;
    else
        nsq_consumer_fin(consumer, msg);
    if (state->stop)
        nsq_consumer_stop(consumer);
}

// Expects a FIN (or REQ) frame holding exactly count ids, the first first_id.
static int s_expect_settle(nsq_fake_broker_t *fake, nsq_consumer_t *consumer, int cmd_case,
                           size_t count, uint64_t first_id)
{
    Nsq__Command *command = s_fake_expect(fake, consumer, cmd_case);
    if (!command)
        return -1;
    size_t n = cmd_case == NSQ__COMMAND__CMD_FIN   ? command->fin->n_ids
               : cmd_case == NSQ__COMMAND__CMD_REQ ? command->req->n_ids
                                                   : command->touch->n_ids;
    uint64_t *ids = cmd_case == NSQ__COMMAND__CMD_FIN   ? command->fin->ids
                    : cmd_case == NSQ__COMMAND__CMD_REQ ? command->req->ids
                                                        : command->touch->ids;
    int rc = n == count && ids[0] == first_id ? 0 : -1;
    if (rc)
        nsq_error("fake broker: %zu ids (first %llu), expected %zu (first %llu)", n,
                  (unsigned long long) (n ? ids[0] : 0), count, (unsigned long long) first_id);
    nsq__command__free_unpacked(command, NULL);
    return rc;
}

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            nsq_error("nsq_consumer_test: %s:%d: %s", __FILE__, __LINE__, #condition);             \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

static int s_test_names_and_endpoints(void)
{
    char endpoint[NSQ_ENDPOINT_MAX];
    S_CHECK(nsq_endpoint_parse("localhost:4152", endpoint, sizeof endpoint) == 0);
    S_CHECK(streq(endpoint, "tcp://localhost:4152"));
    S_CHECK(nsq_endpoint_parse("tcp://10.0.0.1:1", endpoint, sizeof endpoint) == 0);
    S_CHECK(streq(endpoint, "tcp://10.0.0.1:1"));
    const char *bad[] = {"",         "host",    ":4152",   "host:",  "host:0", "host:65536",
                         "host:12x", "ho st:1", "host:-1", "tcp://", NULL};
    for (int i = 0; bad[i]; i++)
        S_CHECK(nsq_endpoint_parse(bad[i], endpoint, sizeof endpoint) == -1);
    S_CHECK(nsq_consumer_new("bad topic", "billing") == NULL);
    S_CHECK(nsq_consumer_new("orders", "") == NULL);
    nsq_consumer_t *consumer = nsq_consumer_new("orders", "billing#ephemeral");
    S_CHECK(consumer);
    S_CHECK(nsq_consumer_connect(consumer, "nonsense") == -1);
    S_CHECK(nsq_consumer_disconnect(consumer, "127.0.0.1:9") == -1);
    S_CHECK(nsq_consumer_connection_count(consumer) == 0);
    S_CHECK(strlen(nsq_library_version()) > 0);
    nsq_consumer_destroy(&consumer);
    nsq_consumer_destroy(&consumer);
    S_CHECK(consumer == NULL);
    return 0;
}

// Polls until the handler has seen count messages (or 3 s pass).
static void s_poll_until_seen(nsq_consumer_t *consumer, s_test_state_t *state, size_t count)
{
    int64_t deadline = zclock_mono() + 3000;
    while (state->seen < count && zclock_mono() < deadline)
        nsq_consumer_poll(consumer, 50);
}

// One broker: RDY = max_in_flight, a batch of 5 is FINned in one frame.
static int s_test_single(nsq_consumer_t *consumer, nsq_fake_broker_t *fake, s_test_state_t *state)
{
    S_CHECK(nsq_consumer_connect(consumer, fake->endpoint) == 0);
    S_CHECK(nsq_consumer_connect(consumer, fake->endpoint) == -1);
    S_CHECK(nsq_consumer_connection_count(consumer) == 1);
    S_CHECK(nsq_consumer_connected_count(consumer) == 0);  // IDENTIFY not answered yet
    S_CHECK(s_fake_handshake(fake, consumer, 60000) == 10);
    S_CHECK(nsq_consumer_connected_count(consumer) == 1);
    nsq_fake_broker_deliver(fake, 1, 5);
    S_CHECK(s_expect_settle(fake, consumer, NSQ__COMMAND__CMD_FIN, 5, 1) == 0);
    S_CHECK(state->seen == 5 && state->bodies_ok);
    S_CHECK(nsq_consumer_received(consumer) == 5 && nsq_consumer_finished(consumer) == 5);
    S_CHECK(nsq_consumer_in_flight(consumer) == 0);
    nsq_fake_broker_heartbeat(fake);
    Nsq__Command *answer = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_HEARTBEAT);
    S_CHECK(answer);
    nsq__command__free_unpacked(answer, NULL);
    return 0;
}

// Two brokers share the credit; scarce credit goes to one at a time.
static int s_test_credit(nsq_consumer_t *consumer, nsq_fake_broker_t *first,
                         nsq_fake_broker_t *second)
{
    S_CHECK(nsq_consumer_connect(consumer, second->endpoint) == 0);
    S_CHECK(s_fake_rdy(first, consumer) == 5);
    S_CHECK(s_fake_handshake(second, consumer, 60000) == 5);
    nsq_consumer_set_max_in_flight(consumer, 1);
    S_CHECK(s_fake_rdy(first, consumer) == 1);
    S_CHECK(s_fake_rdy(second, consumer) == 0);
    nsq_consumer_set_max_in_flight(consumer, 10);
    S_CHECK(s_fake_rdy(first, consumer) == 5);
    S_CHECK(s_fake_rdy(second, consumer) == 5);
    return 0;
}

// Messages settled outside the handler, REQ batches, TOUCH.
static int s_test_async_settle(nsq_consumer_t *consumer, nsq_fake_broker_t *fake,
                               s_test_state_t *state)
{
    state->keep = true;
    state->seen = state->kept_count = 0;
    nsq_fake_broker_deliver(fake, 100, 5);
    s_poll_until_seen(consumer, state, 5);
    S_CHECK(state->kept_count == 5 && nsq_consumer_in_flight(consumer) == 5);
    S_CHECK(streq(nsq_msg_id(state->kept[0]), "0000000000000064"));
    S_CHECK(nsq_consumer_fin(consumer, state->kept[0]) == 0);
    S_CHECK(nsq_consumer_fin(consumer, state->kept[1]) == 0);
    S_CHECK(s_expect_settle(fake, consumer, NSQ__COMMAND__CMD_FIN, 2, 100) == 0);
    S_CHECK(nsq_consumer_req(consumer, state->kept[2], 250) == 0);
    S_CHECK(nsq_consumer_req(consumer, state->kept[3], 250) == 0);
    Nsq__Command *req = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_REQ);
    S_CHECK(req && req->req->n_ids == 2 && req->req->ids[1] == 103 && req->req->delay_ms == 250);
    nsq__command__free_unpacked(req, NULL);
    S_CHECK(nsq_consumer_touch(consumer, state->kept[4]) == 0);
    S_CHECK(s_expect_settle(fake, consumer, NSQ__COMMAND__CMD_TOUCH, 1, 104) == 0);
    S_CHECK(nsq_consumer_fin(consumer, state->kept[4]) == 0);
    S_CHECK(s_expect_settle(fake, consumer, NSQ__COMMAND__CMD_FIN, 1, 104) == 0);
    S_CHECK(nsq_consumer_requeued(consumer) == 2 && nsq_consumer_in_flight(consumer) == 0);
    state->kept_count = 0;
    return 0;
}

// A fatal error drops the connection: its messages become orphans, and the
// consumer comes back with a new socket after the backoff.
static int s_test_fatal(nsq_consumer_t *consumer, nsq_fake_broker_t *fake, s_test_state_t *state)
{
    state->seen = 0;
    nsq_fake_broker_deliver(fake, 200, 1);
    s_poll_until_seen(consumer, state, 1);
    S_CHECK(state->kept_count == 1);
    zframe_t *old_peer = zframe_dup(fake->peer);
    nsq_fake_broker_error(fake, 0, "E_INVALID", true);
    int64_t deadline = zclock_mono() + 500;
    while (zclock_mono() < deadline)
        nsq_consumer_poll(consumer, 50);
    S_CHECK(nsq_consumer_in_flight(consumer) == 1);
    S_CHECK(nsq_consumer_fin(consumer, state->kept[0]) == -1);
    S_CHECK(nsq_consumer_in_flight(consumer) == 0);
    state->kept_count = 0;
    S_CHECK(s_fake_handshake(fake, consumer, 60000) == 5);
    bool new_identity = !zframe_eq(old_peer, fake->peer);
    zframe_destroy(&old_peer);
    S_CHECK(new_identity);
    return 0;
}

// Graceful close: RDY 0 and CLS, then waits for the kept message.
static int s_test_close(nsq_consumer_t *consumer, nsq_fake_broker_t *fake, s_test_state_t *state)
{
    state->keep = true;
    state->seen = 0;
    nsq_fake_broker_deliver(fake, 300, 1);
    s_poll_until_seen(consumer, state, 1);
    S_CHECK(state->kept_count == 1);
    S_CHECK(nsq_consumer_close(consumer, 100) == -1);
    S_CHECK(s_fake_rdy(fake, consumer) == 0);
    Nsq__Command *cls = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_CLS);
    S_CHECK(cls);
    nsq_fake_broker_respond(fake, cls->seq, "CLOSE_WAIT");
    nsq__command__free_unpacked(cls, NULL);
    S_CHECK(nsq_consumer_fin(consumer, state->kept[0]) == 0);
    state->kept_count = 0;
    int64_t start = zclock_mono();
    S_CHECK(nsq_consumer_close(consumer, 2000) == 0);
    S_CHECK(zclock_mono() - start < 1500);  // returned on CLOSE_WAIT, not the timeout
    S_CHECK(s_expect_settle(fake, consumer, NSQ__COMMAND__CMD_FIN, 1, 300) == 0);
    return 0;
}

static int s_test_timer_fail(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    *(bool *) arg = true;
    return -1;
}

// nsq_consumer_run returns when the handler calls nsq_consumer_stop.
static int s_test_run(nsq_consumer_t *consumer, nsq_fake_broker_t *fake, s_test_state_t *state)
{
    state->keep = false;
    state->stop = true;
    state->seen = 0;
    bool timed_out = false;
    int timer = zloop_timer(nsq_consumer_loop(consumer), 3000, 1, s_test_timer_fail, &timed_out);
    nsq_fake_broker_deliver(fake, 400, 2);
    nsq_consumer_run(consumer);
    zloop_timer_end(nsq_consumer_loop(consumer), timer);
    state->stop = false;
    S_CHECK(!timed_out && state->seen == 2);
    S_CHECK(s_expect_settle(fake, consumer, NSQ__COMMAND__CMD_FIN, 2, 400) == 0);
    return 0;
}

// A silent broker is given up on after two intervals plus a second; the
// consumer sends its own heartbeats meanwhile.
static int s_test_liveness(void)
{
    nsq_fake_broker_t *fake = nsq_fake_broker_new();
    nsq_consumer_t *consumer = nsq_consumer_new("orders", "billing");
    S_CHECK(consumer && nsq_consumer_connect(consumer, fake->endpoint) == 0);
    S_CHECK(s_fake_handshake(fake, consumer, 200) == 1);
    Nsq__Command *heartbeat = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_HEARTBEAT);
    S_CHECK(heartbeat);
    nsq__command__free_unpacked(heartbeat, NULL);
    int64_t start = zclock_mono();
    S_CHECK(s_fake_handshake(fake, consumer, 60000) == 1);
    S_CHECK(zclock_mono() - start >= 1000);
    nsq_consumer_destroy(&consumer);
    nsq_fake_broker_destroy(&fake);
    return 0;
}

// Expects IDENTIFY asking for msg_timeout asked, then the SUB sent with it.
// Returns the IDENTIFY's seq, or 0.
static uint64_t s_fake_identify_sub(nsq_fake_broker_t *fake, nsq_consumer_t *consumer,
                                    uint32_t asked)
{
    Nsq__Command *identify = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_IDENTIFY);
    uint64_t seq = identify && identify->identify->msg_timeout_ms == asked ? identify->seq : 0;
    if (identify && !seq)
        nsq_error("fake broker: msg_timeout %u asked, expected %u",
                  identify->identify->msg_timeout_ms, asked);
    nsq__command__free_unpacked(identify, NULL);
    Nsq__Command *sub = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_SUB);
    nsq__command__free_unpacked(sub, NULL);
    return sub ? seq : 0;
}

// A msg_timeout above the broker's maximum is clamped: the broker refuses
// it, the consumer asks for the default (and learns the maximum), then for
// the maximum. Each message carries its connection's msg_timeout.
static int s_test_msg_timeout(void)
{
    nsq_fake_broker_t *fake = nsq_fake_broker_new();
    s_test_state_t state = {.bodies_ok = true, .keep = true};
    nsq_consumer_t *consumer = nsq_consumer_new("orders", "billing");
    S_CHECK(consumer);
    nsq_consumer_set_handler(consumer, s_test_handler, &state);
    nsq_consumer_set_msg_timeout(consumer, 5000);
    S_CHECK(nsq_consumer_connect(consumer, fake->endpoint) == 0);
    uint64_t seq = s_fake_identify_sub(fake, consumer, 5000);
    S_CHECK(seq);
    nsq_fake_broker_error(fake, seq, "E_BAD_BODY", false);
    seq = s_fake_identify_sub(fake, consumer, 0);
    S_CHECK(seq);
    Nsq__IdentifyReply reply = NSQ__IDENTIFY_REPLY__INIT;
    reply.max_rdy_count = 2500;
    reply.msg_timeout_ms = 1000;
    reply.max_msg_timeout_ms = 2000;
    nsq_fake_broker_identified(fake, seq, &reply);
    seq = s_fake_identify_sub(fake, consumer, 2000);
    S_CHECK(seq);
    reply = (Nsq__IdentifyReply) NSQ__IDENTIFY_REPLY__INIT;
    reply.msg_timeout_ms = 2000;
    reply.max_msg_timeout_ms = 2000;
    nsq_fake_broker_identified(fake, seq, &reply);
    S_CHECK(s_fake_rdy(fake, consumer) == 1);
    S_CHECK(nsq_consumer_connected_count(consumer) == 1);
    nsq_fake_broker_deliver(fake, 1, 1);
    s_poll_until_seen(consumer, &state, 1);
    S_CHECK(state.kept_count == 1 && state.bodies_ok);
    S_CHECK(nsq_msg_timeout_ms(state.kept[0]) == 2000);
    nsq_consumer_destroy(&consumer);
    nsq_fake_broker_destroy(&fake);
    return 0;
}

static int s_test_scenario(void)
{
    nsq_fake_broker_t *first = nsq_fake_broker_new();
    nsq_fake_broker_t *second = nsq_fake_broker_new();
    s_test_state_t state = {.bodies_ok = true};
    nsq_consumer_t *consumer = nsq_consumer_new("orders", "billing");
    S_CHECK(consumer);
    nsq_consumer_set_handler(consumer, s_test_handler, &state);
    nsq_consumer_set_max_in_flight(consumer, 10);
    nsq_consumer_set_client_id(consumer, "test-client");
    int rc = s_test_single(consumer, first, &state);
    if (rc == 0)
        rc = s_test_credit(consumer, first, second);
    if (rc == 0)
        rc = s_test_async_settle(consumer, first, &state);
    if (rc == 0)
        rc = s_test_fatal(consumer, second, &state);
    if (rc == 0 && nsq_consumer_disconnect(consumer, second->endpoint) == 0)
        rc = s_fake_rdy(first, consumer) == 10 ? 0 : -1;
    if (rc == 0)
        rc = s_test_run(consumer, first, &state);
    if (rc == 0)
        rc = s_test_close(consumer, first, &state);
    nsq_consumer_destroy(&consumer);
    nsq_fake_broker_destroy(&first);
    nsq_fake_broker_destroy(&second);
    return rc;
}

int nsq_consumer_test(void)
{
    if (s_test_names_and_endpoints() || s_test_scenario() || s_test_liveness()
        || s_test_msg_timeout())
        return -1;
    return 0;
}
