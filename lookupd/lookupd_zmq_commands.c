/*  lookupd_zmq_commands - the brokers' door: each LookupCommand a broker
    sends becomes one registry operation, and its outcome a reply frame
    SPDX-License-Identifier: MIT

    Error codes and texts are the protocol's (brokers and the integration
    tests read them). A peer is one frame's sender: its identity, the
    identity in hex (the registry's key for it) and its address for logs.
*/
#include "lookupd_zmq_commands.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsq_address.h"
#include "nsq_json.h"
#include "nsq_log.h"
#include "nsq_names.h"
#include "nsq_peer.h"
#include "nsq_utf8.h"
#include "nsq_wire.h"

#define S_IDENTITY_MAX 255  // ZeroMQ identities are at most 255 bytes
#define S_HOST_MAX     254  // longest host a broker may announce (253 + a final dot)

typedef struct {
    const lookupd_zmq_commands_t *commands;  // what the command acts on
    const void *identity;                    // the broker's ROUTER identity
    size_t identity_size;                    // its length
    char key[2 * S_IDENTITY_MAX + 1];        // the identity in hex
    char peer[NSQ_PEER_ADDRESS_MAX];         // its IP:port
    uint64_t seq;                            // of the command being answered
} s_peer_t;

static void s_send(s_peer_t *peer, Nsq__LookupFrame *frame)
{
    void *socket = zsock_resolve(peer->commands->router);
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
    const lookupd_zmq_commands_t *self = peer->commands;
    char broadcast[S_HOST_MAX + 1], hostname[S_HOST_MAX + 1], version[64];
    if (!s_host_copy(broadcast, identify->broadcast_address, false)
        || !s_host_copy(hostname, identify->hostname, true)) {
        (*self->bad_commands)++;
        s_error(peer, "E_BAD_BODY",
                "broadcast_address and hostname must be host names or addresses", false);
        return;
    }
    nsq_utf8_sanitize(version, sizeof version, identify->version, strlen(identify->version));
    lookupd_producer_info_t info = {
        peer->peer,          hostname,           broadcast,          version,
        identify->http_port, identify->zmq_port, identify->tcp_port, identify->https_port};
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
    const lookupd_zmq_commands_t *self = peer->commands;
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
                          ? lookupd_registry_channels(peer->commands->registry, topic)
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
    const lookupd_zmq_commands_t *self = peer->commands;
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
        (*self->bad_commands)++;
        s_error(peer, "E_INVALID", "unknown command", false);
        break;
    }
}

void lookupd_zmq_commands_handle(const lookupd_zmq_commands_t *self, const void *identity,
                                 size_t identity_size, const char *address, const void *body,
                                 size_t size)
{
    s_peer_t peer = {.commands = self, .identity = identity, .identity_size = identity_size};
    nsq_peer_key(identity, identity_size < S_IDENTITY_MAX ? identity_size : S_IDENTITY_MAX,
                 peer.key);
    snprintf(peer.peer, sizeof peer.peer, "%s", address);
    Nsq__LookupCommand *command = body ? nsq__lookup_command__unpack(NULL, size, body) : NULL;
    if (command) {
        s_handle(&peer, command);
        nsq__lookup_command__free_unpacked(command, NULL);
        return;
    }
    (*self->bad_commands)++;
    nsq_warn("peer %s: frame is not a valid lookup command (%zu bytes)", peer.peer, size);
    s_error(&peer, "E_BAD_COMMAND", "not a valid LookupCommand frame", false);
}
