/*  lookupd - the lookup service actor
    SPDX-License-Identifier: MIT

    Life cycle: s_new binds the ROUTER, the inproc request socket and the
    HTTP server (or reports ERROR); the loop runs until $TERM; s_destroy
    stops the HTTP thread, then frees the registry. Broker commands are
    answered one frame each; HTTP requests are routed in s_route.
*/
#include "lookupd.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lookupd_console.h"
#include "lookupd_http.h"
#include "lookupd_registry.h"
#include "nsq_address.h"
#include "nsq_daemon.h"
#include "nsq_json.h"
#include "nsq_log.h"
#include "nsq_names.h"
#include "nsq_peer.h"
#include "nsq_utf8.h"
#include "nsq_wire.h"

#define S_IDENTITY_MAX 255      // ZeroMQ identities are at most 255 bytes
#define S_HOST_MAX     254      // longest host a broker may announce (253 + a final dot)
#define S_DRAIN_MAX    256      // frames read per wake-up
#define S_EXPIRE_MAX   1000     // longest time between expiry scans
#define S_ROUTER_HWM   100000   // frames queued per broker: a re-registration burst fits
#define S_FRAME_MAX    1048576  // a lookup command is names and ports: far below this

struct _lookupd_core_t {
    lookupd_config_t config;       // settings
    zsock_t *pipe;                 // the actor pipe
    zsock_t *router;               // brokers
    zsock_t *requests;             // inproc ROUTER the HTTP thread calls
    zloop_t *loop;                 // the one reactor
    lookupd_http_t *http;          // HTTP server
    lookupd_registry_t *registry;  // producers and registrations
    lookupd_console_t *console;    // the web console's API
    char requests_endpoint[64];    // inproc endpoint of requests
    char hostname[256];            // ours, for /info
    uint16_t http_port, zmq_port;  // bound ports
    uint64_t bad_commands;         // frames that were not valid commands
};
typedef lookupd_core_t s_lookupd_t;  // the actor's name for it

// ---- broker commands --------------------------------------------------------

typedef struct {
    s_lookupd_t *lookupd;              // owner
    const void *identity;              // the broker's ROUTER identity
    size_t identity_size;              // its length
    char key[2 * S_IDENTITY_MAX + 1];  // the identity in hex
    char peer[NSQ_PEER_ADDRESS_MAX];   // its IP:port
    uint64_t seq;                      // of the command being answered
} s_peer_t;

static void s_send(s_peer_t *peer, Nsq__LookupFrame *frame)
{
    void *socket = zsock_resolve(peer->lookupd->router);
    if (nsq_wire_send_lookup_frame(socket, peer->identity, peer->identity_size, frame,
                                   ZMQ_DONTWAIT)) {
        // A broker that went away is normal; a full queue means it stopped reading.
        if (errno == EHOSTUNREACH)
            nsq_debug("broker %s (%s): reply dropped: it is gone", peer->key, peer->peer);
        else
            nsq_warn("broker %s (%s): reply dropped: %s", peer->key, peer->peer,
                     zmq_strerror(errno));
    }
}

static void s_reply(s_peer_t *peer, const char *text)
{
    Nsq__Response response = NSQ__RESPONSE__INIT;
    response.seq = peer->seq;
    response.text = (char *) text;
    Nsq__LookupFrame frame = NSQ__LOOKUP_FRAME__INIT;
    frame.frame_case = NSQ__LOOKUP_FRAME__FRAME_RESPONSE;
    frame.response = &response;
    s_send(peer, &frame);
}

static void s_error(s_peer_t *peer, const char *code, const char *text, bool fatal)
{
    nsq_debug("broker %s (%s): %s %s", peer->key, peer->peer, code, text);
    Nsq__Error error = NSQ__ERROR__INIT;
    error.seq = peer->seq;
    error.code = (char *) code;
    error.text = (char *) text;
    error.fatal = fatal;
    Nsq__LookupFrame frame = NSQ__LOOKUP_FRAME__INIT;
    frame.frame_case = NSQ__LOOKUP_FRAME__FRAME_ERROR;
    frame.error = &error;
    s_send(peer, &frame);
}

// Copies a host a broker announced into out (S_HOST_MAX + 1 bytes) if it is
// a valid host name or address (nsq_address_host_is_valid), or empty when
// optional; returns false otherwise. What consumers dial and what /nodes
// shows must never be bytes a JSON parser or a resolver chokes on.
static bool s_host_copy(char *out, ProtobufCBinaryData host, bool optional)
{
    out[0] = '\0';
    if (host.len == 0)
        return optional;
    if (host.len > S_HOST_MAX || !nsq_address_host_is_valid(host.data, host.len))
        return false;
    memcpy(out, host.data, host.len);
    out[host.len] = '\0';
    return true;
}

static void s_identify(s_peer_t *peer, const Nsq__LookupIdentify *identify)
{
    s_lookupd_t *self = peer->lookupd;
    char broadcast[S_HOST_MAX + 1], hostname[S_HOST_MAX + 1], version[64];
    if (!s_host_copy(broadcast, identify->broadcast_address, false)
        || !s_host_copy(hostname, identify->hostname, true)) {
        self->bad_commands++;
        s_error(peer, "E_BAD_BODY",
                "broadcast_address and hostname must be host names or addresses", false);
        return;
    }
    nsq_utf8_sanitize(version, sizeof version, identify->version, strlen(identify->version));
    lookupd_producer_info_t info = {
        peer->peer,          hostname,           broadcast,         version,
        identify->http_port, identify->zmq_port, identify->tcp_port};
    if (lookupd_registry_identify(self->registry, peer->key, &info, zclock_mono())) {
        s_error(peer, "E_BAD_BODY", "broadcast_address, http_port and zmq_port are required",
                false);
        return;
    }
    nsq_info("broker %s:%u identified (%s, zmq port %u, from %s)", broadcast, identify->http_port,
             hostname, identify->zmq_port, peer->peer);
    char reply[512], escaped[256];
    nsq_json_escape(escaped, sizeof escaped, self->hostname);
    snprintf(reply, sizeof reply,
             "{\"tcp_port\":%u,\"http_port\":%u,\"version\":\"%s\",\"hostname\":\"%s\"}",
             self->zmq_port, self->http_port, NSQ_VERSION, escaped);
    s_reply(peer, reply);
}

static void s_registration(s_peer_t *peer, const Nsq__LookupCommand *command)
{
    s_lookupd_t *self = peer->lookupd;
    bool registering = command->cmd_case == NSQ__LOOKUP_COMMAND__CMD_REG;
    ProtobufCBinaryData topic_bytes = registering ? command->reg->topic : command->unreg->topic;
    ProtobufCBinaryData channel_bytes =
        registering ? command->reg->channel : command->unreg->channel;
    // Names are bytes: every byte is checked, a NUL included (nsq.proto)
    char topic[NSQ_NAME_MAX + 1], channel[NSQ_NAME_MAX + 1] = "";
    if (nsq_name_copy(topic, topic_bytes.data, topic_bytes.len)) {
        s_error(peer, "E_BAD_TOPIC", "invalid topic name", false);
        return;
    }
    if (channel_bytes.len && nsq_name_copy(channel, channel_bytes.data, channel_bytes.len)) {
        s_error(peer, "E_BAD_CHANNEL", "invalid channel name", false);
        return;
    }
    int rc = registering ? lookupd_registry_register(self->registry, peer->key, topic, channel)
                         : lookupd_registry_unregister(self->registry, peer->key, topic, channel);
    if (rc) {
        s_error(peer, "E_INVALID", "registration failed", false);
        return;
    }
    nsq_info("broker %s: %s %s%s%s", peer->peer, registering ? "registered" : "unregistered", topic,
             channel[0] ? "/" : "", channel);
    s_reply(peer, "OK");
}

static void s_channels(s_peer_t *peer, const Nsq__LookupChannelsQuery *query)
{
    char topic[NSQ_NAME_MAX + 1];
    zlistx_t *names = nsq_name_copy(topic, query->topic.data, query->topic.len) == 0
                          ? lookupd_registry_channels(peer->lookupd->registry, topic)
                          : NULL;
    if (!names) {
        s_error(peer, "E_BAD_TOPIC", "invalid topic name", false);
        return;
    }
    size_t count = zlistx_size(names);
    char **channels = calloc(count + 1, sizeof *channels);
    size_t index = 0;
    for (char *name = zlistx_first(names); channels && name; name = zlistx_next(names))
        channels[index++] = name;
    Nsq__LookupChannels reply = NSQ__LOOKUP_CHANNELS__INIT;
    reply.seq = peer->seq;
    reply.topic = topic;
    reply.n_channels = channels ? count : 0;
    reply.channels = channels;
    Nsq__LookupFrame frame = NSQ__LOOKUP_FRAME__INIT;
    frame.frame_case = NSQ__LOOKUP_FRAME__FRAME_CHANNELS;
    frame.channels = &reply;
    s_send(peer, &frame);
    free(channels);
    zlistx_destroy(&names);
}

static void s_handle(s_peer_t *peer, const Nsq__LookupCommand *command)
{
    s_lookupd_t *self = peer->lookupd;
    peer->seq = command->seq;
    if (command->cmd_case == NSQ__LOOKUP_COMMAND__CMD_IDENTIFY) {
        s_identify(peer, command->identify);
        return;
    }
    if (command->cmd_case == NSQ__LOOKUP_COMMAND__CMD_CHANNELS) {
        s_channels(peer, command->channels);
        return;
    }
    if (!lookupd_registry_known(self->registry, peer->key)) {
        // We restarted, or expired it: the broker identifies again and
        // re-registers everything when it sees this.
        s_error(peer, "E_NOT_IDENTIFIED", "identify first", true);
        return;
    }
    lookupd_registry_touch(self->registry, peer->key, zclock_mono());
    switch (command->cmd_case) {
    case NSQ__LOOKUP_COMMAND__CMD_REG:
    case NSQ__LOOKUP_COMMAND__CMD_UNREG:
        s_registration(peer, command);
        break;
    case NSQ__LOOKUP_COMMAND__CMD_HEARTBEAT:
        s_reply(peer, "OK");
        break;
    case NSQ__LOOKUP_COMMAND__CMD_GOODBYE:
        nsq_info("broker %s: said goodbye", peer->peer);
        lookupd_registry_remove_producer(self->registry, peer->key);
        s_reply(peer, "OK");
        break;
    default:
        self->bad_commands++;
        s_error(peer, "E_INVALID", "unknown command", false);
        break;
    }
}

void lookupd_core_handle_frame(lookupd_core_t *self, const void *identity, size_t identity_size,
                               const char *address, const void *body, size_t size)
{
    s_peer_t peer = {.lookupd = self, .identity = identity, .identity_size = identity_size};
    nsq_peer_key(identity, identity_size < S_IDENTITY_MAX ? identity_size : S_IDENTITY_MAX,
                 peer.key);
    snprintf(peer.peer, sizeof peer.peer, "%s", address);
    Nsq__LookupCommand *command = body ? nsq__lookup_command__unpack(NULL, size, body) : NULL;
    if (command) {
        s_handle(&peer, command);
        nsq__lookup_command__free_unpacked(command, NULL);
        return;
    }
    self->bad_commands++;
    nsq_warn("peer %s: frame is not a valid lookup command (%zu bytes)", peer.peer, size);
    s_error(&peer, "E_BAD_COMMAND", "not a valid LookupCommand frame", false);
}

// Reads one [identity][command]; returns -1 when nothing is waiting.
static int s_read_command(s_lookupd_t *self, void *socket)
{
    zmq_msg_t identity, body;
    zmq_msg_init(&identity);
    zmq_msg_init(&body);
    int extra = nsq_peer_recv(socket, &identity, &body);  // single-frame commands only
    if (extra < 0) {
        zmq_msg_close(&identity);
        zmq_msg_close(&body);
        return -1;
    }
    char address[NSQ_PEER_ADDRESS_MAX];
    nsq_peer_address(&body, address, sizeof address);
    lookupd_core_handle_frame(self, zmq_msg_data(&identity), zmq_msg_size(&identity), address,
                              extra ? NULL : zmq_msg_data(&body), zmq_msg_size(&body));
    zmq_msg_close(&identity);
    zmq_msg_close(&body);
    return 0;
}

static int s_on_router(zloop_t *loop, zsock_t *router, void *arg)
{
    (void) loop;
    s_lookupd_t *self = arg;
    for (int i = 0; i < S_DRAIN_MAX; i++)
        if (s_read_command(self, zsock_resolve(router)))
            break;
    return 0;
}

// ---- HTTP requests ------------------------------------------------------------

typedef struct {
    int status;        // HTTP status
    const char *type;  // content type
    char *body;        // owned
} s_answer_t;

static void s_answer_error(s_answer_t *answer, int status, const char *code)
{
    answer->status = status;
    answer->type = "application/json";
    answer->body = zsys_sprintf("{\"message\":\"%s\"}", code);
}

static void s_answer_json(s_answer_t *answer, char *body)
{
    if (!body) {
        s_answer_error(answer, 500, "INTERNAL_ERROR");
        return;
    }
    answer->status = 200;
    answer->type = "application/json";
    answer->body = body;
}

// GET /info; the broadcast address is the operator's, escaped all the same.
// "console" tells how the console polls and what its history holds.
static void s_answer_info(s_lookupd_t *self, s_answer_t *answer)
{
    char broadcast[sizeof self->config.broadcast_address * 6];
    nsq_json_escape(broadcast, sizeof broadcast, self->config.broadcast_address);
    json_t *console = lookupd_console_info_json(self->console);
    char *console_text = console ? json_dumps(console, JSON_COMPACT) : NULL;
    json_decref(console);
    s_answer_json(answer, console_text ? zsys_sprintf("{\"version\":\"%s\",\"broadcast_address\":"
                                                      "\"%s\",\"http_port\":%u,\"zmq_port\":%u,"
                                                      "\"console\":%s}",
                                                      NSQ_VERSION, broadcast, self->http_port,
                                                      self->zmq_port, console_text)
                                       : NULL);
    free(console_text);
}

// A query argument as the HTTP thread sent it: its decoded bytes, which may
// hold a NUL, so names are checked with their size.
typedef struct {
    char *text;   // NUL-terminated copy (owned)
    size_t size;  // bytes received, the NUL excluded
} s_arg_t;

typedef struct {
    s_arg_t topic, channel, node, id;  // query arguments
    s_arg_t remote, user_agent;        // who asks
} s_args_t;

// Checks the topic (and channel when wanted) arguments; fills an error
// answer and returns false when one is missing or invalid.
static bool s_names_ok(s_answer_t *answer, const s_args_t *args, bool want_channel)
{
    if (args->topic.size == 0)
        return s_answer_error(answer, 400, "MISSING_ARG_TOPIC"), false;
    if (!nsq_name_is_valid_n(args->topic.text, args->topic.size))
        return s_answer_error(answer, 400, "INVALID_ARG_TOPIC"), false;
    if (want_channel && args->channel.size == 0)
        return s_answer_error(answer, 400, "MISSING_ARG_CHANNEL"), false;
    if (want_channel && !nsq_name_is_valid_n(args->channel.text, args->channel.size))
        return s_answer_error(answer, 400, "INVALID_ARG_CHANNEL"), false;
    return true;
}

// Read-only endpoints (GET).
static void s_route_get(s_lookupd_t *self, const char *path, const s_args_t *args,
                        s_answer_t *answer)
{
    int64_t now = zclock_mono();
    const char *topic = args->topic.text;
    if (streq(path, "/ping")) {
        answer->status = 200;
        answer->type = "text/plain; charset=utf-8";
        answer->body = strdup("OK");
    } else if (streq(path, "/info"))
        s_answer_info(self, answer);
    else if (streq(path, "/topics"))
        s_answer_json(answer, lookupd_registry_topics_json(self->registry));
    else if (streq(path, "/nodes"))
        s_answer_json(answer, lookupd_registry_nodes_json(self->registry, now));
    else if (!s_names_ok(answer, args, false))
        return;
    else if (streq(path, "/channels"))
        s_answer_json(answer, lookupd_registry_channels_json(self->registry, topic));
    else if (!lookupd_registry_has_topic(self->registry, topic))
        s_answer_error(answer, 404, "TOPIC_NOT_FOUND");
    else
        s_answer_json(answer, lookupd_registry_lookup_json(self->registry, topic, now));
}

// POST /topic/tombstone; returns false with the error answer filled.
static bool s_tombstone(s_lookupd_t *self, const s_args_t *args, s_answer_t *answer)
{
    if (args->node.size == 0)
        return s_answer_error(answer, 400, "MISSING_ARG_NODE"), false;
    // A node with a NUL in it names no producer (and must not match the
    // shorter one before the NUL).
    if (strlen(args->node.text) != args->node.size
        || lookupd_registry_tombstone(self->registry, args->topic.text, args->node.text,
                                      zclock_mono()))
        return s_answer_error(answer, 404, "PRODUCER_NOT_FOUND"), false;
    nsq_info("topic %s: producer %s tombstoned", args->topic.text, args->node.text);
    return true;
}

// Administrative endpoints (POST).
static void s_route_post(s_lookupd_t *self, const char *path, const s_args_t *args,
                         s_answer_t *answer)
{
    bool channel_op = strncmp(path, "/channel/", 9) == 0;
    if (!s_names_ok(answer, args, channel_op))
        return;
    const char *topic = args->topic.text, *channel = args->channel.text;
    int rc = 0;
    if (streq(path, "/topic/create") || streq(path, "/channel/create"))
        rc = lookupd_registry_create(self->registry, topic, channel_op ? channel : NULL);
    else if (streq(path, "/topic/delete"))
        lookupd_registry_delete(self->registry, topic, NULL);  // absent is fine, as NSQ
    else if (streq(path, "/channel/delete")
             && lookupd_registry_delete(self->registry, topic, channel)) {
        s_answer_error(answer, 404, "CHANNEL_NOT_FOUND");
        return;
    } else if (streq(path, "/topic/tombstone") && !s_tombstone(self, args, answer))
        return;
    if (rc) {
        s_answer_error(answer, 500, "INTERNAL_ERROR");
        return;
    }
    answer->status = 200;
    answer->type = "text/plain; charset=utf-8";
    answer->body = strdup("");
}

static bool s_path_in(const char *path, const char *const *paths)
{
    for (size_t i = 0; paths[i]; i++)
        if (streq(path, paths[i]))
            return true;
    return false;
}

// Hands a console API request to the console.
static void s_route_console(s_lookupd_t *self, const char *method, const char *path,
                            const s_args_t *args, s_answer_t *answer)
{
    lookupd_console_request_t request = {method,
                                         path,
                                         args->topic.text,
                                         args->channel.text,
                                         args->node.text,
                                         args->id.text,
                                         args->topic.size,
                                         args->channel.size,
                                         args->node.size,
                                         args->remote.text,
                                         args->user_agent.text};
    lookupd_console_answer_t reply = {0, NULL, NULL};
    lookupd_console_handle(self->console, &request, &reply);
    if (!reply.body) {
        s_answer_error(answer, 500, "INTERNAL_ERROR");
        return;
    }
    answer->status = reply.status;
    answer->type = reply.type;
    answer->body = reply.body;
}

// Routes one request; 405 for a known path with the wrong method.
static void s_route(s_lookupd_t *self, const char *method, const char *path, const s_args_t *args,
                    s_answer_t *answer)
{
    static const char *const reads[] = {"/ping",   "/info",     "/topics", "/nodes",
                                        "/lookup", "/channels", NULL};
    static const char *const writes[] = {"/topic/create",   "/topic/delete",    "/channel/create",
                                         "/channel/delete", "/topic/tombstone", NULL};
    bool get = streq(method, "GET") || streq(method, "HEAD");
    if (s_path_in(path, reads))
        get ? s_route_get(self, path, args, answer)
            : s_answer_error(answer, 405, "METHOD_NOT_ALLOWED");
    else if (s_path_in(path, writes))
        streq(method, "POST") ? s_route_post(self, path, args, answer)
                              : s_answer_error(answer, 405, "METHOD_NOT_ALLOWED");
    else if (lookupd_console_owns(path))
        s_route_console(self, method, path, args, answer);
    else
        s_answer_error(answer, 404, "NOT_FOUND");
}

// Pops the next frame of request as an argument; false if there is none.
static bool s_pop_arg(zmsg_t *request, s_arg_t *arg)
{
    zframe_t *frame = request ? zmsg_pop(request) : NULL;
    arg->size = frame ? zframe_size(frame) : 0;
    arg->text = frame ? zframe_strdup(frame) : NULL;
    zframe_destroy(&frame);
    return arg->text != NULL;
}

static int s_on_request(zloop_t *loop, zsock_t *requests, void *arg)
{
    (void) loop;
    s_lookupd_t *self = arg;
    zmsg_t *request = zmsg_recv(requests);
    zframe_t *identity = request ? zmsg_pop(request) : NULL;
    zframe_t *empty = request ? zmsg_pop(request) : NULL;
    char *method = request ? zmsg_popstr(request) : NULL;
    char *path = request ? zmsg_popstr(request) : NULL;
    s_args_t args;  // every argument popped, so that each can be freed below
    bool topic = s_pop_arg(request, &args.topic);
    bool channel = s_pop_arg(request, &args.channel);
    bool node = s_pop_arg(request, &args.node);
    bool id = s_pop_arg(request, &args.id);
    bool remote = s_pop_arg(request, &args.remote);
    bool complete =
        s_pop_arg(request, &args.user_agent) && topic && channel && node && id && remote;
    s_answer_t answer = {0, NULL, NULL};
    if (method && path && complete)
        s_route(self, method, path, &args, &answer);
    else
        s_answer_error(&answer, 400, "BAD_REQUEST");
    char status[8];
    snprintf(status, sizeof status, "%d", answer.status);
    zmsg_t *reply = zmsg_new();
    if (identity && empty) {
        zmsg_append(reply, &identity);
        zmsg_append(reply, &empty);
        zmsg_addstr(reply, status);
        zmsg_addstr(reply, answer.type);
        zmsg_addstr(reply, answer.body ? answer.body : "");
        zmsg_send(&reply, requests);
    }
    zmsg_destroy(&reply);
    zframe_destroy(&identity);
    zframe_destroy(&empty);
    zstr_free(&method);
    zstr_free(&path);
    zstr_free(&args.topic.text);
    zstr_free(&args.channel.text);
    zstr_free(&args.node.text);
    zstr_free(&args.id.text);
    zstr_free(&args.remote.text);
    zstr_free(&args.user_agent.text);
    free(answer.body);
    zmsg_destroy(&request);
    return 0;
}

// ---- timers, pipe, life cycle --------------------------------------------------

static int s_on_expire(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_lookupd_t *self = arg;
    size_t dropped = lookupd_registry_expire(self->registry, zclock_mono());
    if (dropped)
        nsq_info("%zu inactive broker(s) dropped", dropped);
    return 0;
}

// ---- the console's view of the registry -------------------------------------------

static char *s_console_nodes(void *arg)
{
    s_lookupd_t *self = arg;
    return lookupd_registry_nodes_json(self->registry, zclock_mono());
}

static int s_console_registry(void *arg, const char *action, const char *topic, const char *channel,
                              const char *node, char *code, size_t size)
{
    s_lookupd_t *self = arg;
    int rc = 0;
    if (streq(action, "create"))
        rc = lookupd_registry_create(self->registry, topic, channel);
    else if (streq(action, "delete"))
        rc = lookupd_registry_delete(self->registry, topic, channel);
    else if (streq(action, "tombstone")) {
        rc = lookupd_registry_tombstone(self->registry, topic, node, zclock_mono());
        if (rc == 0)
            nsq_info("topic %s: producer %s tombstoned", topic, node);
    }
    if (rc)
        snprintf(code, size, "%s",
                 streq(action, "tombstone") ? "PRODUCER_NOT_FOUND"
                 : streq(action, "create")  ? "INTERNAL_ERROR"
                 : channel[0]               ? "CHANNEL_NOT_FOUND"
                                            : "TOPIC_NOT_FOUND");
    return rc;
}

static int s_console_new(s_lookupd_t *self)
{
    const char *peers[LOOKUPD_PEERS_MAX];
    for (size_t i = 0; i < self->config.peer_count && i < LOOKUPD_PEERS_MAX; i++)
        peers[i] = self->config.peers[i];
    lookupd_console_config_t config = {self->config.stats_interval_ms,
                                       self->config.history_window_ms,
                                       self->config.history_max_bytes,
                                       NULL,
                                       self->config.peer_count,
                                       s_console_nodes,
                                       s_console_registry,
                                       self,
                                       NULL};
    config.peers = peers;  // copied by the console: the strings live in self->config
    config.auth_secret = self->config.auth_secret;
    self->console = lookupd_console_new(&config);
    return self->console ? 0 : -1;
}

lookupd_core_t *lookupd_core_new(const lookupd_config_t *config, zsock_t *router)
{
    lookupd_core_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    self->router = router;
    if (gethostname(self->hostname, sizeof self->hostname - 1))
        snprintf(self->hostname, sizeof self->hostname, "localhost");
    self->registry =
        lookupd_registry_new(config->inactive_producer_timeout_ms, config->tombstone_lifetime_ms);
    if (!self->registry)
        lookupd_core_destroy(&self);
    return self;
}

lookupd_registry_t *lookupd_core_registry(lookupd_core_t *self)
{
    return self->registry;
}

void lookupd_core_destroy(lookupd_core_t **self_p)
{
    lookupd_core_t *self = *self_p;
    if (!self)
        return;
    lookupd_registry_destroy(&self->registry);
    free(self);
    *self_p = NULL;
}

static void s_destroy(s_lookupd_t **self_p)
{
    s_lookupd_t *self = *self_p;
    if (!self)
        return;
    lookupd_http_destroy(&self->http);
    lookupd_console_destroy(&self->console);
    zloop_destroy(&self->loop);
    zsock_destroy(&self->requests);
    zsock_destroy(&self->router);
    lookupd_core_destroy(self_p);
}

static s_lookupd_t *s_new(zsock_t *pipe, const lookupd_config_t *config, char *error, size_t size)
{
    s_lookupd_t *self = lookupd_core_new(config, NULL);
    if (!self)
        return NULL;
    self->pipe = pipe;
    int port = -1;
    self->router = nsq_daemon_router(config->zmq_address, S_ROUTER_HWM, S_FRAME_MAX, &port);
    if (!self->router) {
        snprintf(error, size, "cannot bind ZeroMQ on %s: %s", config->zmq_address,
                 zmq_strerror(errno));
        s_destroy(&self);
        return NULL;
    }
    self->zmq_port = (uint16_t) port;
    snprintf(self->requests_endpoint, sizeof self->requests_endpoint,
             "inproc://lookupd-requests-%p", (void *) self);
    self->requests = zsock_new_router(self->requests_endpoint);
    self->http =
        self->requests ? lookupd_http_new(config->http_address, self->requests_endpoint) : NULL;
    if (!self->http) {
        snprintf(error, size, "cannot listen for HTTP on %s", config->http_address);
        s_destroy(&self);
        return NULL;
    }
    self->http_port = lookupd_http_port(self->http);
    if (s_console_new(self)) {
        snprintf(error, size, "cannot start the console: %s", strerror(errno));
        s_destroy(&self);
        return NULL;
    }
    int64_t scan = config->inactive_producer_timeout_ms / 4;
    scan = scan < 10 ? 10 : scan > S_EXPIRE_MAX ? S_EXPIRE_MAX : scan;
    self->loop = zloop_new();
    zloop_set_nonstop(self->loop, true);
    zloop_reader(self->loop, self->router, s_on_router, self);
    zloop_reader(self->loop, self->requests, s_on_request, self);
    zloop_reader(self->loop, pipe, nsq_daemon_on_pipe, NULL);
    zloop_timer(self->loop, (size_t) scan, 0, s_on_expire, self);
    json_t *info =
        json_pack("{s:s, s:s, s:i, s:i, s:s}", "version", NSQ_VERSION, "broadcast_address",
                  config->broadcast_address, "http_port", (int) self->http_port, "zmq_port",
                  (int) self->zmq_port, "hostname", self->hostname);
    int started = lookupd_console_start(self->console, self->loop, info);
    json_decref(info);
    if (started) {
        snprintf(error, size, "cannot start the console's timer");
        s_destroy(&self);
        return NULL;
    }
    return self;
}

void lookupd_actor(zsock_t *pipe, void *args)
{
    zsock_signal(pipe, 0);
    char error[512] = "";
    s_lookupd_t *self = s_new(pipe, args, error, sizeof error);
    if (!self) {
        zstr_sendx(pipe, "ERROR", error, NULL);
        return;
    }
    nsq_daemon_send_ready(pipe, self->http_port, self->zmq_port);
    zloop_start(self->loop);
    nsq_info("lookupd stopping: %zu brokers known",
             lookupd_registry_producer_count(self->registry));
    s_destroy(&self);
}

// ---- self-test ------------------------------------------------------------------

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "lookupd_test: %s:%d: %s\n", __FILE__, __LINE__, #cond);               \
            goto failed;                                                                           \
        }                                                                                          \
    } while (0)

// Sends command on dealer and returns the answer (caller frees), or NULL.
static Nsq__LookupFrame *s_test_call(zsock_t *dealer, Nsq__LookupCommand *command)
{
    if (command && nsq_wire_send_lookup_command(zsock_resolve(dealer), command, 0))
        return NULL;
    zframe_t *frame = zframe_recv(dealer);
    Nsq__LookupFrame *answer =
        frame ? nsq__lookup_frame__unpack(NULL, zframe_size(frame), zframe_data(frame)) : NULL;
    zframe_destroy(&frame);
    return answer;
}

static bool s_test_answer(Nsq__LookupFrame *answer, const char *error_code)
{
    bool ok = answer
              && (error_code ? answer->frame_case == NSQ__LOOKUP_FRAME__FRAME_ERROR
                                   && streq(answer->error->code, error_code)
                             : answer->frame_case != NSQ__LOOKUP_FRAME__FRAME_ERROR);
    if (answer)
        nsq__lookup_frame__free_unpacked(answer, NULL);
    return ok;
}

int lookupd_test(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);  // here, as main does: not on the actor's thread
    lookupd_config_t config;
    lookupd_config_defaults(&config);
    snprintf(config.http_address, sizeof config.http_address, "127.0.0.1:0");
    snprintf(config.zmq_address, sizeof config.zmq_address, "127.0.0.1:0");
    zactor_t *actor = zactor_new(lookupd_actor, &config);
    zsock_t *dealer = NULL;
    char *status = NULL, *http_port = NULL, *zmq_port = NULL;
    S_CHECK(actor);
    zstr_recvx(actor, &status, &http_port, &zmq_port, NULL);
    S_CHECK(status && streq(status, "READY") && zmq_port);
    dealer = zsock_new_dealer(NULL);
    zsock_set_rcvtimeo(dealer, 2000);
    S_CHECK(zsock_connect(dealer, "tcp://127.0.0.1:%s", zmq_port) == 0);

    // Garbage gets an error frame and lookupd keeps serving.
    S_CHECK(zstr_send(dealer, "garbage\xff\xff") == 0);
    S_CHECK(s_test_answer(s_test_call(dealer, NULL), "E_BAD_COMMAND"));
    Nsq__LookupHeartbeat heartbeat = NSQ__LOOKUP_HEARTBEAT__INIT;
    Nsq__LookupCommand command = NSQ__LOOKUP_COMMAND__INIT;
    command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_HEARTBEAT;
    command.heartbeat = &heartbeat;
    S_CHECK(s_test_answer(s_test_call(dealer, &command), "E_NOT_IDENTIFIED"));

    // Identify without an address is refused; with one, registration works.
    Nsq__LookupIdentify identify = NSQ__LOOKUP_IDENTIFY__INIT;
    identify.http_port = 4151;
    identify.zmq_port = 4152;
    command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_IDENTIFY;
    command.identify = &identify;
    S_CHECK(s_test_answer(s_test_call(dealer, &command), "E_BAD_BODY"));
    // Hosts that are no host (a NUL inside, bytes a JSON parser rejects)
    identify.broadcast_address = (ProtobufCBinaryData){10, (uint8_t *) "10.1.2.3\0x"};
    S_CHECK(s_test_answer(s_test_call(dealer, &command), "E_BAD_BODY"));
    identify.broadcast_address = nsq_wire_bytes("10.1.2.3");
    identify.hostname = nsq_wire_bytes("host\xff");
    S_CHECK(s_test_answer(s_test_call(dealer, &command), "E_BAD_BODY"));
    identify.hostname = nsq_wire_bytes("broker-1");
    S_CHECK(s_test_answer(s_test_call(dealer, &command), NULL));
    Nsq__Register reg = NSQ__REGISTER__INIT;
    reg.topic = nsq_wire_bytes("bad topic");
    command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_REG;
    command.reg = &reg;
    S_CHECK(s_test_answer(s_test_call(dealer, &command), "E_BAD_TOPIC"));
    reg.topic = (ProtobufCBinaryData){6, (uint8_t *) "lk\0zzz"};
    S_CHECK(s_test_answer(s_test_call(dealer, &command), "E_BAD_TOPIC"));
    reg.topic = nsq_wire_bytes("orders");
    reg.channel = (ProtobufCBinaryData){3, (uint8_t *) "c\0!"};
    S_CHECK(s_test_answer(s_test_call(dealer, &command), "E_BAD_CHANNEL"));
    reg.channel = nsq_wire_bytes("billing");
    S_CHECK(s_test_answer(s_test_call(dealer, &command), NULL));
    Nsq__LookupChannelsQuery query = NSQ__LOOKUP_CHANNELS_QUERY__INIT;
    query.topic = (ProtobufCBinaryData){8, (uint8_t *) "orders\0x"};
    command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_CHANNELS;
    command.channels = &query;
    S_CHECK(s_test_answer(s_test_call(dealer, &command), "E_BAD_TOPIC"));
    query.topic = nsq_wire_bytes("orders");
    Nsq__LookupFrame *answer = s_test_call(dealer, &command);
    bool listed = answer && answer->frame_case == NSQ__LOOKUP_FRAME__FRAME_CHANNELS
                  && answer->channels->n_channels == 1
                  && streq(answer->channels->channels[0], "billing");
    if (answer)
        nsq__lookup_frame__free_unpacked(answer, NULL);
    S_CHECK(listed);
    command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_HEARTBEAT;
    S_CHECK(s_test_answer(s_test_call(dealer, &command), NULL));

    zsock_destroy(&dealer);
    zstr_free(&status);
    zstr_free(&http_port);
    zstr_free(&zmq_port);
    zactor_destroy(&actor);
    curl_global_cleanup();
    return 0;
failed:
    zsock_destroy(&dealer);
    zstr_free(&status);
    zstr_free(&http_port);
    zstr_free(&zmq_port);
    zactor_destroy(&actor);
    curl_global_cleanup();
    return -1;
}
