/*  broker_lookup - the broker's links to its lookupds
    SPDX-License-Identifier: MIT

    Each link numbers its commands (seq). An E_NOT_IDENTIFIED answer to a
    command sent after the link's latest identify means the lookupd lost us:
    the link identifies again and re-sends every registration. Answers to
    commands sent before that identify are stale and ignored, so a lookupd
    restart costs one resync, not one per queued command.
*/
#include "broker_lookup.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nsq_curve.h"
#include "nsq_log.h"
#include "nsq_names.h"
#include "nsq_wire.h"

#define S_TICK_MS        100     // heartbeat and pending-topic check
#define S_PENDING_MAX_MS 1000    // longest a new topic waits for lookupd's channels
#define S_GOODBYE_LINGER 500     // ms a goodbye may take at shutdown
#define S_HWM            100000  // commands queued per link while lookupd is away

typedef struct {
    broker_lookup_t *owner;            // the module
    char address[BROKER_ADDRESS_MAX];  // as configured, for logs
    zsock_t *sock;                     // DEALER to lookupd's ROUTER
    uint64_t seq;                      // last command number sent
    uint64_t identify_seq;             // seq of the latest identify
    int64_t last_recv;                 // zclock_mono of the last answer, 0 if none
    bool identified;                   // the latest identify was answered OK
    size_t registered;                 // registrations the latest identify sent
} s_link_t;

typedef struct {
    char topic[NSQ_NAME_MAX + 1];  // the new topic
    size_t waiting;                // links that have not answered yet
    int64_t deadline;              // release it at the latest then
} s_pending_t;

struct _broker_lookup_t {
    broker_config_t config;         // broadcast address, lookupds, heartbeat
    broker_lookup_source_t source;  // the broker's names, channel creation, release
    zloop_t *loop;                  // the core's loop (borrowed)
    broker_lookup_ports_t ports;    // announced
    s_link_t *links;                // one per --lookupd-address
    size_t link_count;
    zhashx_t *pending;         // topic -> s_pending_t, owned
    int64_t next_heartbeat;    // zclock_mono when heartbeats are due
    int timer;                 // the tick timer
    nsq_curve_client_t curve;  // CURVE keys towards lookupds (disabled = plain)
};

// ---- sending ----------------------------------------------------------------

static void s_send(s_link_t *link, Nsq__LookupCommand *command)
{
    command->seq = ++link->seq;
    if (nsq_wire_send_lookup_command(zsock_resolve(link->sock), command, ZMQ_DONTWAIT))
        nsq_warn("lookupd %s: command dropped: %s", link->address, zmq_strerror(errno));
}

static void s_send_registration(s_link_t *link, bool registering, const char *topic,
                                const char *channel)
{
    Nsq__LookupCommand command = NSQ__LOOKUP_COMMAND__INIT;
    Nsq__Register reg = NSQ__REGISTER__INIT;
    Nsq__Unregister unreg = NSQ__UNREGISTER__INIT;
    if (registering) {
        reg.topic = nsq_wire_bytes(topic);
        reg.channel = nsq_wire_bytes(channel ? channel : "");
        command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_REG;
        command.reg = &reg;
    } else {
        unreg.topic = nsq_wire_bytes(topic);
        unreg.channel = nsq_wire_bytes(channel ? channel : "");
        command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_UNREG;
        command.unreg = &unreg;
    }
    s_send(link, &command);
}

// Registers one topic or channel (a broker_lookup_name_fn).
static void s_register_one(void *arg, const char *topic, const char *channel, bool paused)
{
    (void) paused;
    s_link_t *link = arg;
    s_send_registration(link, true, topic, channel);
    link->registered++;
}

// Identifies and registers every topic and channel the broker holds.
static void s_sync(s_link_t *link)
{
    broker_lookup_t *owner = link->owner;
    char hostname[256] = "";
    gethostname(hostname, sizeof hostname - 1);
    Nsq__LookupIdentify identify = NSQ__LOOKUP_IDENTIFY__INIT;
    identify.broadcast_address = nsq_wire_bytes(owner->config.broadcast_address);
    identify.hostname = nsq_wire_bytes(hostname);
    identify.http_port = owner->ports.http;
    identify.https_port = owner->ports.https;
    identify.zmq_port = owner->ports.zmq;
    identify.tcp_port = owner->ports.tcp;
    identify.version = NSQ_VERSION;
    Nsq__LookupCommand command = NSQ__LOOKUP_COMMAND__INIT;
    command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_IDENTIFY;
    command.identify = &identify;
    s_send(link, &command);
    link->identify_seq = link->seq;
    link->identified = false;
    link->registered = 0;
    owner->source.each(owner->source.arg, s_register_one, link);
    nsq_info("lookupd %s: identifying, %zu registrations sent", link->address, link->registered);
}

static void s_send_simple(s_link_t *link, Nsq__LookupCommand__CmdCase kind)
{
    Nsq__LookupHeartbeat heartbeat = NSQ__LOOKUP_HEARTBEAT__INIT;
    Nsq__LookupGoodbye goodbye = NSQ__LOOKUP_GOODBYE__INIT;
    Nsq__LookupCommand command = NSQ__LOOKUP_COMMAND__INIT;
    command.cmd_case = kind;
    if (kind == NSQ__LOOKUP_COMMAND__CMD_HEARTBEAT)
        command.heartbeat = &heartbeat;
    else
        command.goodbye = &goodbye;
    s_send(link, &command);
}

// True if the link answered recently enough to wait for its channel list.
static bool s_answering(const s_link_t *link, int64_t now)
{
    int64_t window = 2 * link->owner->config.lookupd_heartbeat_ms + 1000;
    return link->identified && link->last_recv && now - link->last_recv <= window;
}

// ---- pending topics -----------------------------------------------------------

static void s_pending_finish(broker_lookup_t *self, s_pending_t *pending)
{
    self->source.release(self->source.arg, pending->topic);
    zhashx_delete(self->pending, pending->topic);
}

static void s_on_channels(s_link_t *link, const Nsq__LookupChannels *answer)
{
    broker_lookup_t *self = link->owner;
    s_pending_t *pending = zhashx_lookup(self->pending, answer->topic);
    for (size_t i = 0; nsq_name_is_valid(answer->topic) && i < answer->n_channels; i++) {
        if (!nsq_name_is_valid(answer->channels[i]))
            continue;
        if (self->source.channel_known(self->source.arg, answer->topic, answer->channels[i]))
            nsq_info("topic %s: channel %s pre-created (known to lookupd %s)", answer->topic,
                     answer->channels[i], link->address);
    }
    if (pending && --pending->waiting == 0)
        s_pending_finish(self, pending);
}

// ---- reading ------------------------------------------------------------------

static void s_on_frame(s_link_t *link, const Nsq__LookupFrame *frame)
{
    link->last_recv = zclock_mono();
    if (frame->frame_case == NSQ__LOOKUP_FRAME__FRAME_RESPONSE) {
        if (frame->response->seq == link->identify_seq && !link->identified) {
            link->identified = true;
            nsq_info("lookupd %s: identified", link->address);
        }
    } else if (frame->frame_case == NSQ__LOOKUP_FRAME__FRAME_CHANNELS)
        s_on_channels(link, frame->channels);
    else if (frame->frame_case == NSQ__LOOKUP_FRAME__FRAME_ERROR) {
        const Nsq__Error *error = frame->error;
        if (streq(error->code, "E_NOT_IDENTIFIED")) {
            if (error->seq > link->identify_seq) {
                nsq_info("lookupd %s: does not know us (restarted?), registering again",
                         link->address);
                s_sync(link);
            }
        } else
            nsq_warn("lookupd %s: %s %s", link->address, error->code, error->text);
    }
}

static int s_on_link(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    broker_lookup_t *self = arg;
    s_link_t *link = NULL;
    for (size_t i = 0; i < self->link_count; i++)
        if (self->links[i].sock == sock)
            link = &self->links[i];
    for (int i = 0; link && i < 256; i++) {
        zframe_t *frame = NULL;
        if (zsock_events(sock) & ZMQ_POLLIN)
            frame = zframe_recv(sock);
        if (!frame)
            break;
        Nsq__LookupFrame *decoded =
            nsq__lookup_frame__unpack(NULL, zframe_size(frame), zframe_data(frame));
        zframe_destroy(&frame);
        if (!decoded) {
            nsq_warn("lookupd %s: frame is not a LookupFrame", link->address);
            continue;
        }
        s_on_frame(link, decoded);
        nsq__lookup_frame__free_unpacked(decoded, NULL);
    }
    return 0;
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    broker_lookup_t *self = arg;
    int64_t now = zclock_mono();
    if (now >= self->next_heartbeat) {
        self->next_heartbeat = now + self->config.lookupd_heartbeat_ms;
        for (size_t i = 0; i < self->link_count; i++)
            s_send_simple(&self->links[i], NSQ__LOOKUP_COMMAND__CMD_HEARTBEAT);
    }
    zlistx_t *due = zlistx_new();
    for (s_pending_t *pending = zhashx_first(self->pending); due && pending;
         pending = zhashx_next(self->pending))
        if (now >= pending->deadline)
            zlistx_add_end(due, pending);
    for (s_pending_t *pending = due ? zlistx_first(due) : NULL; pending; pending = zlistx_next(due))
        s_pending_finish(self, pending);
    zlistx_destroy(&due);
    return 0;
}

// ---- hooks --------------------------------------------------------------------

bool broker_lookup_topic_created(broker_lookup_t *self, const char *topic)
{
    int64_t now = zclock_mono();
    size_t answering = 0;
    for (size_t i = 0; i < self->link_count; i++) {
        s_link_t *link = &self->links[i];
        s_send_registration(link, true, topic, NULL);
        if (!s_answering(link, now))
            continue;
        Nsq__LookupChannelsQuery query = NSQ__LOOKUP_CHANNELS_QUERY__INIT;
        query.topic = nsq_wire_bytes(topic);
        Nsq__LookupCommand command = NSQ__LOOKUP_COMMAND__INIT;
        command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_CHANNELS;
        command.channels = &query;
        s_send(link, &command);
        answering++;
    }
    if (answering == 0 || zhashx_lookup(self->pending, topic))
        return false;
    s_pending_t *pending = calloc(1, sizeof *pending);
    if (!pending)
        return false;
    snprintf(pending->topic, sizeof pending->topic, "%s", topic);
    pending->waiting = answering;
    pending->deadline = now + S_PENDING_MAX_MS;
    if (zhashx_insert(self->pending, topic, pending) != 0) {
        free(pending);
        return false;
    }
    return true;
}

void broker_lookup_topic_deleted(broker_lookup_t *self, const char *topic)
{
    zhashx_delete(self->pending, topic);
    for (size_t i = 0; i < self->link_count; i++)
        s_send_registration(&self->links[i], false, topic, NULL);
}

void broker_lookup_channel_created(broker_lookup_t *self, const char *topic, const char *channel)
{
    for (size_t i = 0; i < self->link_count; i++)
        s_send_registration(&self->links[i], true, topic, channel);
}

void broker_lookup_channel_deleted(broker_lookup_t *self, const char *topic, const char *channel)
{
    for (size_t i = 0; i < self->link_count; i++)
        s_send_registration(&self->links[i], false, topic, channel);
}

// ---- life cycle ---------------------------------------------------------------

// Opens link's socket to address ("host:port" or "tcp://host:port").
// Returns 0, or -1 if the address is malformed.
static int s_link_open(s_link_t *link, const char *address)
{
    const char *hostport = strncmp(address, "tcp://", 6) == 0 ? address + 6 : address;
    const char *colon = strrchr(hostport, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == hostport || *end || port <= 0 || port > 65535) {
        nsq_error("--lookupd-address %s: expected HOST:PORT", address);
        return -1;
    }
    snprintf(link->address, sizeof link->address, "%s", hostport);
    char host[BROKER_ADDRESS_MAX];
    bool bracketed = hostport[0] == '[' && colon[-1] == ']';  // "[::1]:4160"
    snprintf(host, sizeof host, "%.*s", (int) (colon - hostport) - 2 * bracketed,
             hostport + bracketed);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *found = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &found);
    if (rc != 0)
        nsq_warn("lookupd %s: host %s does not resolve (%s); will keep trying", link->address, host,
                 gai_strerror(rc));
    else
        freeaddrinfo(found);
    link->sock = zsock_new(ZMQ_DEALER);
    if (!link->sock)
        return -1;
    zsock_set_sndhwm(link->sock, S_HWM);  // before connect: libzmq ignores it afterwards
    zsock_set_rcvhwm(link->sock, S_HWM);
    zsock_set_linger(link->sock, 0);
    zsock_set_ipv6(link->sock, link->address[0] == '[');  // "[::1]:4160"
    nsq_curve_client_apply(&link->owner->curve, link->sock);
    return zsock_connect(link->sock, "tcp://%s", link->address);
}

broker_lookup_t *broker_lookup_new(const broker_config_t *config, zloop_t *loop,
                                   const broker_lookup_ports_t *ports,
                                   const broker_lookup_source_t *source)
{
    broker_lookup_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    self->config.disk_listing = NULL;  // not ours
    self->source = *source;
    self->loop = loop;
    self->ports = *ports;
    self->pending = zhashx_new();
    self->links = calloc(config->lookupd_count ? config->lookupd_count : 1, sizeof *self->links);
    if (!self->pending || !self->links) {
        broker_lookup_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->pending, (zhashx_destructor_fn *) zstr_free);
    char error[512];
    if (config->zmq_curve_lookupd_key_file[0]
        && nsq_curve_client_load(&self->curve, config->zmq_curve_secret_key_file,
                                 config->zmq_curve_lookupd_key_file, error, sizeof error)) {
        nsq_error("lookupd links: %s", error);
        broker_lookup_destroy(&self);
        return NULL;
    }
    for (int i = 0; i < config->lookupd_count; i++) {
        s_link_t *link = &self->links[self->link_count++];
        link->owner = self;
        if (s_link_open(link, config->lookupd_addresses[i])
            || zloop_reader(loop, link->sock, s_on_link, self)) {
            broker_lookup_destroy(&self);
            return NULL;
        }
        s_sync(link);
    }
    self->next_heartbeat = zclock_mono() + config->lookupd_heartbeat_ms;
    self->timer = zloop_timer(loop, S_TICK_MS, 0, s_on_tick, self);
    return self;
}

void broker_lookup_destroy(broker_lookup_t **self_p)
{
    broker_lookup_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    for (size_t i = 0; i < self->link_count; i++) {
        s_link_t *link = &self->links[i];
        if (!link->sock)
            continue;
        zloop_reader_end(self->loop, link->sock);
        if (link->identified) {
            s_send_simple(link, NSQ__LOOKUP_COMMAND__CMD_GOODBYE);
            zsock_set_linger(link->sock, S_GOODBYE_LINGER);
        }
        zsock_destroy(&link->sock);
    }
    if (self->timer > 0)
        zloop_timer_end(self->loop, self->timer);
    // Topics still waiting for channel lists are released.
    s_pending_t *item;
    while (self->pending && (item = zhashx_first(self->pending)))
        s_pending_finish(self, item);  // deletes it
    free(self->links);
    zhashx_destroy(&self->pending);
    free(self);
    *self_p = NULL;
}
