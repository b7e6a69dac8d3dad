/*  broker_client - one consumer or producer session, whatever door it came
    through
    SPDX-License-Identifier: MIT
*/
#include "broker_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nsq_utf8.h"

struct _broker_client_t {
    const broker_client_sink_t *sink;   // how the core reaches the door
    void *door;                         // the sink's argument: the door's record of the peer
    const char *name;                   // for logs (borrowed from the door)
    void *handle;                       // the server's handle in its list of clients
    broker_client_state_t state;        // protocol state
    struct _broker_channel_t *channel;  // subscribed channel, or NULL
    uint32_t rdy;                       // credit: max messages in flight
    uint32_t in_flight;                 // messages it holds now
    int64_t msg_timeout_ms;             // in-flight timeout for its messages
    int64_t heartbeat_interval_ms;      // how often we expect to hear from it
    int64_t last_received;              // monotonic ms of its last frame
    int64_t connect_ts;                 // unix seconds of its first frame
    uint64_t message_count;             // messages delivered to it
    uint64_t finish_count;              // FINs it sent that matched
    uint64_t requeue_count;             // REQs it sent that matched
    bool gone;                          // unreachable: dropped by the next tick
    bool blocked;                       // the door cannot take messages now
    char remote_address[64];            // "IP:port" of its connection, "" if unknown
    bool tls, deflate, snappy;          // what its connection negotiated (TCP door)
    int sample_rate;                    // percent of messages it samples, 0 = all
    char client_id[65];                 // from IDENTIFY
    char hostname[256];                 // from IDENTIFY
    char user_agent[128];               // from IDENTIFY
    char *auth_secret;                  // from AUTH (never shown), NULL before
    size_t auth_secret_size;            // its bytes
    char common_name[128];              // its certificate's common name, "" if none
    char auth_identity[128];            // the identity its AUTH was granted, "" before
    char auth_identity_url[256];        // and its URL
};

broker_client_t *broker_client_new(const broker_client_sink_t *sink, void *door, const char *name,
                                   int64_t heartbeat_interval_ms, int64_t msg_timeout_ms,
                                   int64_t now)
{
    broker_client_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->sink = sink;
    self->door = door;
    self->name = name;
    self->state = BROKER_CLIENT_NEW;
    self->heartbeat_interval_ms = heartbeat_interval_ms;
    self->msg_timeout_ms = msg_timeout_ms;
    self->last_received = now;
    self->connect_ts = (int64_t) time(NULL);
    return self;
}

void broker_client_destroy(broker_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broker_client_set_auth_secret(*self_p, NULL, 0);
    free(*self_p);
    *self_p = NULL;
}

uint32_t broker_client_credit(const broker_client_t *self)
{
    if (self->state != BROKER_CLIENT_SUBSCRIBED || self->gone || self->blocked
        || self->in_flight >= self->rdy)
        return 0;
    return self->rdy - self->in_flight;
}

size_t broker_client_deliver(broker_client_t *self, broker_inflight_entry_t **entries, size_t count,
                             int64_t now)
{
    size_t sent = count ? self->sink->deliver(self->door, entries, count, now) : 0;
    self->in_flight += (uint32_t) sent;
    self->message_count += sent;
    return sent;
}

void broker_client_released(broker_client_t *self, broker_release_t how)
{
    if (self->in_flight > 0)
        self->in_flight--;
    if (how == BROKER_RELEASE_FINISHED)
        self->finish_count++;
    else if (how == BROKER_RELEASE_REQUEUED)
        self->requeue_count++;
}

void broker_client_released_all(broker_client_t *self)
{
    self->in_flight = 0;
}

void broker_client_drop(broker_client_t *self, broker_drop_reason_t reason, const char *detail,
                        int64_t now)
{
    self->sink->dropped(self->door, reason, detail, now);
}

broker_client_state_t broker_client_state(const broker_client_t *self)
{
    return self->state;
}

struct _broker_channel_t *broker_client_channel(const broker_client_t *self)
{
    return self->channel;
}

uint32_t broker_client_in_flight(const broker_client_t *self)
{
    return self->in_flight;
}

int64_t broker_client_msg_timeout(const broker_client_t *self)
{
    return self->msg_timeout_ms;
}

int64_t broker_client_heartbeat_interval(const broker_client_t *self)
{
    return self->heartbeat_interval_ms;
}

int64_t broker_client_last_received(const broker_client_t *self)
{
    return self->last_received;
}

bool broker_client_is_gone(const broker_client_t *self)
{
    return self->gone;
}

const char *broker_client_name(const broker_client_t *self)
{
    return self->name;
}

const char *broker_client_id(const broker_client_t *self)
{
    return self->client_id;
}

void *broker_client_door(const broker_client_t *self)
{
    return self->door;
}

void broker_client_stats(const broker_client_t *self, broker_stats_client_t *out)
{
    memcpy(out->client_id, self->client_id, sizeof out->client_id);
    memcpy(out->hostname, self->hostname, sizeof out->hostname);
    memcpy(out->user_agent, self->user_agent, sizeof out->user_agent);
    memcpy(out->remote_address, self->remote_address, sizeof out->remote_address);
    out->state = (int) self->state;
    out->ready_count = self->rdy;
    out->in_flight_count = self->in_flight;
    out->message_count = self->message_count;
    out->finish_count = self->finish_count;
    out->requeue_count = self->requeue_count;
    out->connect_ts = self->connect_ts;
    snprintf(out->door, sizeof out->door, "%s", self->sink->name ? self->sink->name : "");
    out->tls = self->tls;
    out->deflate = self->deflate;
    out->snappy = self->snappy;
    out->sample_rate = self->sample_rate;
    out->authed = self->auth_secret != NULL;
    memcpy(out->auth_identity, self->auth_identity, sizeof out->auth_identity);
    memcpy(out->auth_identity_url, self->auth_identity_url, sizeof out->auth_identity_url);
}

void broker_client_set_state(broker_client_t *self, broker_client_state_t state)
{
    self->state = state;
}

void broker_client_set_channel(broker_client_t *self, struct _broker_channel_t *channel)
{
    self->channel = channel;
}

void broker_client_set_rdy(broker_client_t *self, uint32_t rdy)
{
    self->rdy = rdy;
}

void broker_client_set_timeouts(broker_client_t *self, int64_t heartbeat_interval_ms,
                                int64_t msg_timeout_ms)
{
    self->heartbeat_interval_ms = heartbeat_interval_ms;
    self->msg_timeout_ms = msg_timeout_ms;
}

void broker_client_set_identity(broker_client_t *self, const char *client_id, size_t client_id_size,
                                const char *hostname, size_t hostname_size, const char *user_agent,
                                size_t user_agent_size)
{
    nsq_utf8_sanitize(self->client_id, sizeof self->client_id, client_id, client_id_size);
    nsq_utf8_sanitize(self->hostname, sizeof self->hostname, hostname, hostname_size);
    nsq_utf8_sanitize(self->user_agent, sizeof self->user_agent, user_agent, user_agent_size);
}

void *broker_client_handle(const broker_client_t *self)
{
    return self->handle;
}

void broker_client_set_handle(broker_client_t *self, void *handle)
{
    self->handle = handle;
}

void broker_client_heard(broker_client_t *self, int64_t now)
{
    self->last_received = now;
}

void broker_client_set_gone(broker_client_t *self)
{
    self->gone = true;
}

void broker_client_set_blocked(broker_client_t *self, bool blocked)
{
    self->blocked = blocked;
}

int broker_client_set_auth_secret(broker_client_t *self, const void *secret, size_t size)
{
    if (self->auth_secret)  // wiped: freed memory keeps no secret around
        memset(self->auth_secret, 0, self->auth_secret_size);
    free(self->auth_secret);
    self->auth_secret = NULL;
    self->auth_secret_size = 0;
    if (!secret)
        return 0;
    if (!(self->auth_secret = malloc(size + 1)))
        return -1;
    memcpy(self->auth_secret, secret, size);
    self->auth_secret[size] = '\0';
    self->auth_secret_size = size;
    return 0;
}

const char *broker_client_auth_secret(const broker_client_t *self, size_t *size)
{
    *size = self->auth_secret_size;
    return self->auth_secret;
}

void broker_client_set_auth_identity(broker_client_t *self, const char *identity,
                                     const char *identity_url)
{
    nsq_utf8_sanitize(self->auth_identity, sizeof self->auth_identity, identity ? identity : "",
                      identity ? strlen(identity) : 0);
    nsq_utf8_sanitize(self->auth_identity_url, sizeof self->auth_identity_url,
                      identity_url ? identity_url : "", identity_url ? strlen(identity_url) : 0);
}

void broker_client_set_tls(broker_client_t *self, bool tls, const char *common_name)
{
    self->tls = tls;
    snprintf(self->common_name, sizeof self->common_name, "%s", common_name ? common_name : "");
}

bool broker_client_tls(const broker_client_t *self)
{
    return self->tls;
}

const char *broker_client_common_name(const broker_client_t *self)
{
    return self->common_name;
}

const char *broker_client_remote_address(const broker_client_t *self)
{
    return self->remote_address;
}

void broker_client_set_remote_address(broker_client_t *self, const char *address)
{
    snprintf(self->remote_address, sizeof self->remote_address, "%s", address);
}

void broker_client_set_transport(broker_client_t *self, bool tls, bool deflate, bool snappy,
                                 int sample_rate)
{
    self->tls = tls;
    self->deflate = deflate;
    self->snappy = snappy;
    self->sample_rate = sample_rate;
}

// ---- self-test -----------------------------------------------------------

typedef struct {
    size_t accept;  // how many entries deliver takes
    int dropped;    // dropped() calls
    int reason;     // the last reason
} test_door_t;

static size_t s_test_deliver(void *door, broker_inflight_entry_t **entries, size_t count,
                             int64_t now)
{
    (void) entries;
    (void) now;
    test_door_t *test = door;
    return count < test->accept ? count : test->accept;
}

static void s_test_dropped(void *door, broker_drop_reason_t reason, const char *detail, int64_t now)
{
    (void) detail;
    (void) now;
    test_door_t *test = door;
    test->dropped++;
    test->reason = (int) reason;
}

int broker_client_test(void)
{
    static const broker_client_sink_t sink = {s_test_deliver, s_test_dropped, "test"};
    test_door_t door = {.accept = 3};
    broker_client_t *client = broker_client_new(&sink, &door, "c1", 1000, 2000, 5);
    if (!client || broker_client_credit(client) != 0 || broker_client_last_received(client) != 5)
        return -1;
    broker_client_set_state(client, BROKER_CLIENT_SUBSCRIBED);
    broker_client_set_rdy(client, 10);
    broker_inflight_entry_t *entries[5] = {NULL};
    int rc = -1;
    // The door takes three of five: only those count as in flight.
    if (broker_client_credit(client) != 10 || broker_client_deliver(client, entries, 5, 6) != 3
        || broker_client_in_flight(client) != 3 || broker_client_credit(client) != 7)
        goto done;
    broker_client_released(client, BROKER_RELEASE_FINISHED);
    broker_client_released(client, BROKER_RELEASE_REQUEUED);
    broker_stats_client_t stats;
    broker_client_stats(client, &stats);
    if (stats.in_flight_count != 1 || stats.finish_count != 1 || stats.requeue_count != 1
        || stats.message_count != 3)
        goto done;
    // Blocked or gone: no credit.
    broker_client_set_blocked(client, true);
    if (broker_client_credit(client) != 0)
        goto done;
    broker_client_set_blocked(client, false);
    broker_client_set_gone(client);
    if (broker_client_credit(client) != 0 || !broker_client_is_gone(client))
        goto done;
    // Identity strings are cleaned for /stats.
    broker_client_set_identity(client, "a\x01b", 3, "host", 4, "\xff", 1);
    broker_client_stats(client, &stats);
    if (strchr(stats.client_id, '\x01') || strcmp(stats.hostname, "host") != 0)
        goto done;
    broker_client_drop(client, BROKER_DROP_SILENT, NULL, 7);
    if (door.dropped != 1 || door.reason != BROKER_DROP_SILENT)
        goto done;
    rc = 0;
done:
    broker_client_destroy(&client);
    broker_client_destroy(&client);  // NULL is accepted
    return rc;
}
