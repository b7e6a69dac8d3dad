/*  lookupd - the lookup service actor: sockets, timers, life cycle
    SPDX-License-Identifier: MIT

    Life cycle: s_new binds the ROUTER, the inproc request socket and the
    HTTP server, starts the console (or reports ERROR); the loop runs until
    $TERM; s_destroy stops the HTTP thread and the console, then frees the
    registry. The ROUTER reader hands each broker frame to the commands
    (lookupd_zmq_commands.h), the request reader each HTTP request to the
    routes (lookupd_http_routes.h); both get a context built from this
    actor's fields. The console reaches the registry through the two
    callbacks below.
*/
#include "lookupd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lookupd_console.h"
#include "lookupd_http.h"
#include "lookupd_http_routes.h"
#include "lookupd_registry.h"
#include "lookupd_zmq_commands.h"
#include "nsq_daemon.h"
#include "nsq_log.h"
#include "nsq_peer.h"

#define S_DRAIN_MAX  256      // frames read per wake-up
#define S_EXPIRE_MAX 1000     // longest time between expiry scans
#define S_ROUTER_HWM 100000   // frames queued per broker: a re-registration burst fits
#define S_FRAME_MAX  1048576  // a lookup command is names and ports: far below this

struct _lookupd_core_t {
    lookupd_config_t config;       // settings
    zsock_t *pipe;                 // the actor pipe
    zsock_t *router;               // brokers
    nsq_curve_server_t *curve;     // CURVE on the router (ZAP handler), NULL if off
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

void lookupd_core_handle_frame(lookupd_core_t *self, const void *identity, size_t identity_size,
                               const char *address, const void *body, size_t size)
{
    lookupd_zmq_commands_t commands = {self->registry,  self->router,   self->hostname,
                                       self->http_port, self->zmq_port, &self->bad_commands};
    lookupd_zmq_commands_handle(&commands, identity, identity_size, address, body, size);
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

static int s_on_request(zloop_t *loop, zsock_t *requests, void *arg)
{
    (void) loop;
    s_lookupd_t *self = arg;
    lookupd_http_routes_t routes = {self->registry, self->console, self->config.broadcast_address,
                                    self->http_port, self->zmq_port};
    zmsg_t *request = zmsg_recv(requests);
    zmsg_t *reply = request ? lookupd_http_routes_answer(&routes, &request) : NULL;
    if (reply)
        zmsg_send(&reply, requests);
    zmsg_destroy(&reply);
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
                                       NULL,
                                       {NULL, NULL, NULL},
                                       NULL,
                                       NULL};
    config.peers = peers;  // copied by the console: the strings live in self->config
    config.auth_secret = self->config.auth_secret;
    if (self->config.zmq_curve_broker_key_file[0]) {  // our key pair, as a broker's to lookupds
        config.curve_key_file = self->config.zmq_curve_secret_key_file;
        config.curve_server_key_file = self->config.zmq_curve_broker_key_file;
    }
    config.tls = (nsq_http_client_tls_t){self->config.http_client_tls_root_ca_file,
                                         self->config.http_client_tls_cert,
                                         self->config.http_client_tls_key};
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
    nsq_curve_server_destroy(&self->curve);
    lookupd_core_destroy(self_p);
}

static s_lookupd_t *s_new(zsock_t *pipe, const lookupd_config_t *config, char *error, size_t size)
{
    s_lookupd_t *self = lookupd_core_new(config, NULL);
    if (!self)
        return NULL;
    self->pipe = pipe;
    int port = -1;
    if (config->zmq_curve_secret_key_file[0]
        && !(self->curve = nsq_curve_server_new(config->zmq_curve_secret_key_file,
                                                config->zmq_curve_allow_dir, error, size))) {
        s_destroy(&self);
        return NULL;
    }
    self->router =
        nsq_daemon_router(config->zmq_address, S_ROUTER_HWM, S_FRAME_MAX, self->curve, &port);
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
    if (!self->requests)
        snprintf(error, size, "cannot bind %s", self->requests_endpoint);
    self->http =
        self->requests ? lookupd_http_new(config, self->requests_endpoint, error, size) : NULL;
    if (!self->http) {
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
    nsq_daemon_send_stopped(pipe, 0);  // lookupd keeps nothing that could be lost
}
