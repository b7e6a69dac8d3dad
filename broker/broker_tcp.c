/*  broker_tcp - the NSQ TCP door
    SPDX-License-Identifier: MIT

    Sessions live in a hash by connection id (16 hex digits). A session
    with something queued is listed once in `dirty` (by id, so a session
    that closed meanwhile is simply not found) until the next flush.
*/
#include "broker_tcp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_tcp_commands.h"
#include "broker_tcp_io.h"
#include "broker_tcp_session.h"
#include "broker_tls.h"
#include "nsq_log.h"
#include <czmq.h>

#define KEY_SIZE    17  // connection id in hex and a NUL
#define DIRTY_START 64  // first size of the dirty list

struct _broker_tcp_t {
    broker_server_t *server;  // the core (borrowed)
    broker_tls_t *tls;        // --tls-cert/--tls-key, or NULL
    broker_tcp_io_t *io;      // the I/O thread
    zhashx_t *sessions;       // key -> broker_tcp_session_t, owned
    uint64_t opened;          // connections opened so far (numbers the sessions' names)
    uint64_t *dirty;          // connections with something to post
    size_t dirty_count;       // used
    size_t dirty_size;        // allocated
};

static void s_key(uint64_t connection, char key[KEY_SIZE])
{
    snprintf(key, KEY_SIZE, "%016llx", (unsigned long long) connection);
}

static broker_tcp_session_t *s_find(broker_tcp_t *self, uint64_t connection)
{
    char key[KEY_SIZE];
    s_key(connection, key);
    return zhashx_lookup(self->sessions, key);
}

// Lists the session for the next flush, once.
static void s_dirty(broker_tcp_t *self, broker_tcp_session_t *session)
{
    uint64_t connection = broker_tcp_session_connection(session);
    if (!broker_tcp_session_list(session))
        return;
    if (self->dirty_count == self->dirty_size) {
        size_t size = self->dirty_size ? 2 * self->dirty_size : DIRTY_START;
        uint64_t *grown = realloc(self->dirty, size * sizeof *grown);
        if (!grown) {
            nsq_error("tcp: out of memory listing a client's answers; closing it");
            broker_tcp_session_close(session);
            broker_tcp_io_post(self->io, connection, NULL, BROKER_TCP_POST_CLOSE, 0);
            return;
        }
        self->dirty = grown;
        self->dirty_size = size;
    }
    self->dirty[self->dirty_count++] = connection;
}

// ---- the clients' sink --------------------------------------------------------

static size_t s_deliver(void *door, broker_inflight_entry_t **entries, size_t count, int64_t now)
{
    (void) now;
    broker_tcp_session_t *session = door;
    s_dirty(broker_tcp_session_door(session), session);
    return broker_tcp_session_deliver(session, entries, count);
}

// The server drops the client (its channel was deleted, or it was gone):
// as nsqd, the connection is closed.
static void s_dropped(void *door, broker_drop_reason_t reason, const char *detail, int64_t now)
{
    (void) now;
    broker_tcp_session_t *session = door;
    nsq_info("client %s: dropped (%s%s%s)", broker_tcp_session_name(session),
             reason == BROKER_DROP_CHANNEL_DELETED ? "channel deleted" : "gone", detail ? " " : "",
             detail ? detail : "");
    broker_tcp_session_close(session);
    s_dirty(broker_tcp_session_door(session), session);
}

static const broker_client_sink_t s_sink = {s_deliver, s_dropped, "tcp"};

// ---- events -------------------------------------------------------------------

static void s_session_destructor(void **item)
{
    broker_tcp_session_destroy((broker_tcp_session_t **) item);
}

static void s_opened(broker_tcp_t *self, const broker_tcp_event_t *event, int64_t now)
{
    char key[KEY_SIZE];
    s_key(event->connection, key);
    broker_tcp_session_t *session =
        broker_tcp_session_new(event->connection, self, ++self->opened, event->remote_address);
    broker_client_t *client = session
                                  ? broker_server_client_new(self->server, &s_sink, session,
                                                             broker_tcp_session_name(session), now)
                                  : NULL;
    if (!client || zhashx_insert(self->sessions, key, session) != 0) {
        nsq_error("tcp: out of memory opening a client for %s; closing it", event->remote_address);
        broker_server_client_close(self->server, &client, now);
        broker_tcp_session_destroy(&session);
        broker_tcp_io_post(self->io, event->connection, NULL, BROKER_TCP_POST_CLOSE, 0);
        return;
    }
    broker_tcp_session_set_client(session, client);
    broker_client_set_remote_address(client, event->remote_address);
    nsq_debug("client %s: connected", broker_tcp_session_name(session));
}

static void s_closed(broker_tcp_t *self, broker_tcp_session_t *session, const char *reason,
                     int64_t now)
{
    broker_client_t *client = broker_tcp_session_client(session);
    nsq_debug("client %s (%s): disconnected: %s", broker_tcp_session_name(session),
              client ? broker_client_id(client) : "", reason ? reason : "");
    broker_server_client_close(self->server, &client, now);
    char key[KEY_SIZE];
    s_key(broker_tcp_session_connection(session), key);
    zhashx_delete(self->sessions, key);  // orphans a durable publish still waiting
}

static void s_on_durable(void *arg, broker_result_t result)
{
    broker_tcp_session_t *session = broker_tcp_session_settle(arg, result);
    if (session)
        s_dirty(broker_tcp_session_door(session), session);
}

static void s_received(broker_tcp_t *self, broker_tcp_session_t *session,
                       broker_tcp_event_t **event_p, int64_t now);

// The auth server answered for a session's held command: its held events
// are handled again, in order, until one is held anew (the rest then
// stays behind it). A session that closed meanwhile is not found.
static void s_on_auth(void *arg, bool cancelled)
{
    broker_tcp_auth_wait_t *wait = arg;
    broker_tcp_t *self = wait->door;
    broker_tcp_session_t *session = cancelled ? NULL : s_find(self, wait->connection);
    free(wait);
    if (!session)
        return;
    broker_tcp_event_t *event = broker_tcp_session_take_held(session);
    int64_t now = zclock_mono();
    while (event) {
        broker_tcp_event_t *next = event->next;
        s_received(self, session, &event, now);
        broker_tcp_event_destroy(&event);
        event = next;
    }
    s_dirty(self, session);
}

// Holds *event_p (taken) behind the session's held commands; past the
// bound the client is closed with a fatal error and what was held is
// dropped unanswered.
static void s_hold(broker_tcp_t *self, broker_tcp_session_t *session, broker_tcp_event_t **event_p)
{
    (void) self;
    if (broker_tcp_session_hold(session, event_p) == 0)
        return;
    nsq_warn("client %s: too many commands wait for the auth server; closing it",
             broker_tcp_session_name(session));
    broker_tcp_event_t *event = broker_tcp_session_take_held(session);
    while (event) {
        broker_tcp_event_t *next = event->next;
        broker_tcp_event_destroy(&event);
        broker_tcp_session_finished(session, 0);
        event = next;
    }
    broker_tcp_session_error(session, "E_AUTH_FAILED AUTH failed: too many commands wait for "
                                      "the auth server");
}

// A command: carried out, or held while the auth server is asked (then
// *event_p is taken).
static void s_received(broker_tcp_t *self, broker_tcp_session_t *session,
                       broker_tcp_event_t **event_p, int64_t now)
{
    broker_tcp_wait_t *wait = NULL;
    if (broker_tcp_session_holding(session)) {
        s_hold(self, session, event_p);
        s_dirty(self, session);
        return;
    }
    broker_tcp_outcome_t outcome =
        broker_tcp_commands_handle(self->server, session, *event_p, &wait, s_on_auth, now);
    if (outcome == BROKER_TCP_DURABLE)
        broker_server_wait_durable(self->server, s_on_durable, wait);
    else if (outcome == BROKER_TCP_HELD)
        s_hold(self, session, event_p);
    s_dirty(self, session);
}

// One event from the I/O thread (*event_p is taken if it is held).
static void s_event(broker_tcp_t *self, broker_tcp_event_t **event_p, int64_t now)
{
    broker_tcp_event_t *event = *event_p;
    if (event->kind == BROKER_TCP_OPENED) {
        s_opened(self, event, now);
        return;
    }
    broker_tcp_session_t *session = s_find(self, event->connection);
    if (!session)
        return;  // it could not be opened
    broker_client_t *client = broker_tcp_session_client(session);
    switch (event->kind) {
    case BROKER_TCP_RECEIVED:
        s_received(self, session, event_p, now);
        break;
    case BROKER_TCP_SECURED:  // the auth server hears tls=true and the common name
        if (client)
            broker_client_set_tls(client, true, event->common_name);
        break;
    case BROKER_TCP_BLOCKED:
        if (client)
            broker_client_set_blocked(client, true);
        break;
    case BROKER_TCP_UNBLOCKED:
        if (client) {
            broker_client_set_blocked(client, false);
            broker_server_client_ready_again(self->server, client, now);
        }
        break;
    case BROKER_TCP_CLOSED:
        s_closed(self, session, event->reason, now);
        break;
    default:
        break;
    }
}

void broker_tcp_take(broker_tcp_t *self, int64_t now)
{
    broker_tcp_event_t *event = broker_tcp_io_take(self->io);
    while (event) {
        broker_tcp_event_t *next = event->next;
        s_event(self, &event, now);
        broker_tcp_event_destroy(&event);
        event = next;
    }
}

// ---- periodic work and posting --------------------------------------------------

void broker_tcp_tick(broker_tcp_t *self, int64_t now)
{
    for (broker_tcp_session_t *session = zhashx_first(self->sessions); session;
         session = zhashx_next(self->sessions)) {
        broker_client_t *client = broker_tcp_session_client(session);
        if (client)
            broker_client_heard(client, now);
    }
}

// Finishes the messages the session's sample rate left out.
static void s_finish_sampled(broker_tcp_t *self, broker_tcp_session_t *session, int64_t now)
{
    uint64_t *ids;
    size_t count, failed;
    broker_tcp_session_take_sampled(session, &ids, &count);
    broker_client_t *client = broker_tcp_session_client(session);
    if (count && client)
        broker_server_finish(self->server, client, ids, count, &failed, now);
    free(ids);
}

void broker_tcp_flush(broker_tcp_t *self, int64_t now)
{
    // Finishing sampled-out messages may deliver more (and list more).
    for (size_t i = 0; i < self->dirty_count; i++) {
        broker_tcp_session_t *session = s_find(self, self->dirty[i]);
        if (session)
            s_finish_sampled(self, session, now);
    }
    for (size_t i = 0; i < self->dirty_count; i++) {
        broker_tcp_session_t *session = s_find(self, self->dirty[i]);
        if (session && broker_tcp_session_post(session, self->io) != 0) {
            nsq_error("client %s: out of memory posting its answers; closing it",
                      broker_tcp_session_name(session));
            broker_tcp_io_post(self->io, self->dirty[i], NULL, BROKER_TCP_POST_CLOSE, 0);
        }
    }
    self->dirty_count = 0;
    broker_tcp_io_commit(self->io);
}

// ---- life cycle -------------------------------------------------------------------

// The I/O thread's settings from the broker's options.
static void s_settings(const broker_config_t *config, broker_tcp_settings_t *settings)
{
    broker_tcp_settings_defaults(settings);
    settings->max_msg_size = config->max_msg_size;
    settings->max_body_size = config->max_body_size;
    settings->max_rdy_count = config->max_rdy_count;
    settings->max_req_timeout_ms = config->max_req_timeout_ms;
    settings->msg_timeout_ms = config->msg_timeout_ms;
    settings->max_msg_timeout_ms = config->max_msg_timeout_ms;
    settings->heartbeat_interval_ms = config->heartbeat_interval_ms;
    settings->max_heartbeat_interval_ms = config->max_heartbeat_interval_ms;
    settings->max_output_buffer_size = config->max_output_buffer_size;
    if (settings->output_buffer_size > settings->max_output_buffer_size)
        settings->output_buffer_size = settings->max_output_buffer_size;
    settings->output_buffer_timeout_ms = config->output_buffer_timeout_ms;
    settings->min_output_buffer_timeout_ms = config->min_output_buffer_timeout_ms;
    settings->max_output_buffer_timeout_ms = config->max_output_buffer_timeout_ms;
    settings->max_deflate_level = (int) config->max_deflate_level;
    settings->deflate_enabled = config->deflate;
    settings->snappy_enabled = config->snappy;
    settings->tls_required = config->tls_required;
    settings->auth_required = config->auth_http_count > 0;  // IDENTIFY's auth_required
    settings->version = NSQ_VERSION;
}

// The credentials, client policy and versions of the --tls-* options;
// NULL with a one-line reason in error.
static broker_tls_t *s_tls_new(const broker_config_t *config, char *error, size_t size)
{
    broker_tls_t *tls = broker_tls_new(config->tls_cert, config->tls_key, error, size);
    if (tls
        && (broker_tls_set_client_policy(tls, config->tls_client_auth_policy,
                                         config->tls_root_ca_file, error, size)
                != 0
            || broker_tls_set_min_version(tls, config->tls_min_version, error, size) != 0))
        broker_tls_destroy(&tls);
    return tls;
}

broker_tcp_t *broker_tcp_new(broker_server_t *server, const broker_config_t *config, char *error,
                             size_t size)
{
    broker_tcp_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(error, size, "out of memory");
        return NULL;
    }
    self->server = server;
    self->sessions = zhashx_new();
    if (!self->sessions) {
        snprintf(error, size, "out of memory");
        broker_tcp_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->sessions, s_session_destructor);
    if (config->tls_cert[0]) {
        self->tls = s_tls_new(config, error, size);
        if (!self->tls) {
            broker_tcp_destroy(&self);
            return NULL;
        }
    }
    broker_tcp_settings_t settings;
    s_settings(config, &settings);
    self->io = broker_tcp_io_new(config->tcp_address, &settings, self->tls, error, size);
    if (!self->io) {
        broker_tcp_destroy(&self);
        return NULL;
    }
    return self;
}

void broker_tcp_destroy(broker_tcp_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broker_tcp_t *self = *self_p;
    broker_tcp_io_destroy(&self->io);  // before the credentials it borrows
    zhashx_destroy(&self->sessions);
    broker_tls_destroy(&self->tls);
    free(self->dirty);
    free(self);
    *self_p = NULL;
}

uint16_t broker_tcp_port(const broker_tcp_t *self)
{
    return broker_tcp_io_port(self->io);
}

int broker_tcp_fd(const broker_tcp_t *self)
{
    return broker_tcp_io_fd(self->io);
}
