/*  broker - the broker actor: one thread, one zloop, driving a broker node
    (the server, its state file and disk I/O actor), its doors and the lookupd
    links
    SPDX-License-Identifier: MIT

    Life cycle: s_broker_new makes the node (the data path's lock, the
    state file restored, the disk I/O actor), binds the doors (or reports ERROR)
    and connects the lookupd links; the loop runs until $TERM (draining
    first, see s_on_pipe); s_broker_destroy answers what the doors handed
    over, stops the HTTP server, writes what is in memory to disk and frees
    everything; the actor's last word says whether that write succeeded
    (nsq_daemon_send_stopped), so a broker that may have lost messages
    exits 1.

    The parts never call each other in a circle: the doors call the
    server, the server calls the node's hooks, and the node calls the
    lookupd links, the state file and the group commit, which reach back only
    through callbacks.
*/
#include "broker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "broker_http.h"
#include "broker_http_serve.h"
#include "broker_lookup.h"
#include "broker_node.h"
#include "broker_tcp.h"
#include "broker_zmq.h"
#include "nsq_daemon.h"
#include "nsq_log.h"

// How often in-flight timeouts, deferred messages and liveness are checked.
#define BROKER_TICK_MS 100
// Messages read per loop wake-up, so other sockets and timers are not
// starved by a busy peer.
#define BROKER_DRAIN_MAX 1024
// Messages queued per client each way on the ROUTER; credit and publish
// windows bound the real queues, a full queue goes to the peer's backlog.
#define BROKER_ROUTER_HWM 200000

typedef struct {
    broker_config_t config;     // settings, read-only after start
    zsock_t *pipe;              // the actor pipe
    zloop_t *loop;              // the one reactor
    broker_node_t *node;        // the server, its state file and disk I/O actor
    zsock_t *router;            // the ZeroMQ door's ROUTER
    broker_zmq_t *zmq;          // the ZeroMQ door
    broker_http_t *http;        // the HTTP door (its own threads)
    broker_tcp_t *tcp;          // the NSQ TCP door (its I/O thread), NULL if off
    broker_lookup_t *lookup;    // links to lookupds, NULL if none configured
    nsq_curve_server_t *curve;  // CURVE on the ROUTER (ZAP handler), NULL if off
    uint16_t http_port;         // bound HTTP port
    uint16_t zmq_port;          // bound ZeroMQ port
    uint16_t tcp_port;          // bound NSQ TCP port, 0 if off
    bool draining;              // $TERM came: no new deliveries, the loop ends soon
    int64_t drain_deadline;     // monotonic ms when draining gives up
} broker_t;

// ---- socket handlers ------------------------------------------------------------

// After each batch of work: the node catches up, and what it delivered to
// NSQ TCP clients goes to their I/O thread in one wake-up.
static void s_after_batch(broker_t *self)
{
    int64_t now = zclock_mono();
    broker_node_after_batch(self->node, now);
    if (self->tcp)
        broker_tcp_flush(self->tcp, now);
}

static int s_on_router(zloop_t *loop, zsock_t *router, void *arg)
{
    (void) loop;
    (void) router;
    broker_t *self = arg;
    broker_zmq_read(self->zmq, BROKER_DRAIN_MAX);
    s_after_batch(self);
    return 0;
}

// The NSQ TCP door's eventfd: its I/O thread handed over events.
static int s_on_tcp(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    (void) item;
    broker_t *self = arg;
    broker_tcp_take(self->tcp, zclock_mono());
    s_after_batch(self);
    return 0;
}

// The HTTP door's eventfd: requests wait.
static int s_on_request(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    (void) item;
    broker_t *self = arg;
    broker_server_admit(broker_node_server(self->node));  // admitted before: first
    broker_http_take(self->http, broker_http_serve, broker_node_server(self->node));
    s_after_batch(self);
    return 0;
}

// The admission's eventfd: HTTP threads admitted publishes.
static int s_on_admitted(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    (void) item;
    broker_t *self = arg;
    broker_server_admit(broker_node_server(self->node));
    s_after_batch(self);
    return 0;
}

// ---- the quiet sockets ----------------------------------------------------------
// The actor pipe and the disk I/O actor's socket are watched through their file
// descriptors, not as ZeroMQ sockets: zmq_poll asks each ZeroMQ socket in
// its set for its events twice per wake-up (a poll and a getpid each time),
// which made these two, nearly always empty, half the system calls of a
// single publish. A socket's descriptor signals only once a read found it
// empty, so each handler reads until the socket says it is empty, and the
// tick looks at both in case a signal came before the first such read.

static bool s_readable(zsock_t *sock)
{
    return sock && (zsock_events(sock) & ZMQ_POLLIN);
}

static int s_on_pipe(zloop_t *loop, zsock_t *pipe, void *arg);

static int s_on_pipe_fd(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) item;
    broker_t *self = arg;
    while (s_readable(self->pipe))
        if (s_on_pipe(loop, self->pipe, self) != 0)
            return -1;
    return 0;
}

static int s_on_disk_fd(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    (void) item;
    broker_t *self = arg;
    broker_node_on_disk(self->node);  // drains the socket, then runs every completion
    if (self->tcp)
        broker_tcp_flush(self->tcp, zclock_mono());  // durable publishes answered
    return 0;
}

// Reads what waits on both; -1 ends the loop. Once at the start, then
// every tick.
static int s_check_quiet(zloop_t *loop, int timer_id, void *arg)
{
    (void) timer_id;
    if (s_on_pipe_fd(loop, NULL, arg) != 0)
        return -1;
    return s_on_disk_fd(loop, NULL, arg);
}

// The auth server client's answers: held requests go on.
static int s_on_auth(zloop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop;
    (void) reader;
    broker_t *self = arg;
    broker_node_on_auth(self->node, zclock_mono());
    s_after_batch(self);  // what held commands published, and the TCP door's answers
    return 0;
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    broker_t *self = arg;
    if (s_check_quiet(loop, timer_id, self) != 0)
        return -1;
    int64_t now = zclock_mono();
    broker_zmq_tick(self->zmq, now);
    if (self->tcp)
        broker_tcp_tick(self->tcp, now);
    broker_node_tick(self->node, now);
    if (self->tcp)
        broker_tcp_flush(self->tcp, now);
    return 0;
}

// ---- stopping -----------------------------------------------------------------

// While draining: ends the loop once consumers settled what they held or
// the drain timeout passed.
static int s_on_drain_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    broker_t *self = arg;
    uint64_t in_flight = broker_server_in_flight(broker_node_server(self->node));
    if (in_flight > 0 && zclock_mono() < self->drain_deadline)
        return 0;
    if (in_flight > 0)
        nsq_info("drain timeout: %llu messages still in flight go to disk",
                 (unsigned long long) in_flight);
    return -1;
}

// The actor pipe. $TERM ends the loop, or first drains: no consumer gets a
// new message (credit 0, RDY ignored), FIN/REQ/TOUCH and publishes are
// still served, and the loop ends when nothing is in flight or after
// --drain-timeout. What is still in flight then is written to disk and
// delivered again after the restart; draining first means a consumer that
// finishes quickly does not see its messages twice.
static int s_on_pipe(zloop_t *loop, zsock_t *pipe, void *arg)
{
    broker_t *self = arg;
    char *command = zstr_recv(pipe);
    bool term = command && streq(command, "$TERM");
    zstr_free(&command);
    if (!term)
        return 0;
    broker_server_t *server = broker_node_server(self->node);
    uint64_t in_flight = broker_server_in_flight(server);
    if (self->draining || in_flight == 0 || self->config.drain_timeout_ms <= 0)
        return -1;
    self->draining = true;
    self->drain_deadline = zclock_mono() + self->config.drain_timeout_ms;
    broker_server_drain(server);
    nsq_info("draining: %llu messages in flight, waiting up to %lld ms for consumers",
             (unsigned long long) in_flight, (long long) self->config.drain_timeout_ms);
    zloop_timer(loop, 10, 0, s_on_drain_tick, self);
    return 0;
}

// ---- life cycle ---------------------------------------------------------------

// The largest valid command frame, above which a peer is disconnected
// before its frame is read: a PUB whose bodies total max_body_size, with at
// most two bytes of protobuf framing per body byte (a one-byte body has a
// tag and a length byte), plus a FIN/REQ/TOUCH batch of max_rdy_count ids
// (ten bytes each at most) and room for names.
static int64_t s_max_frame(const broker_config_t *config)
{
    return 3 * config->max_body_size + 10 * config->max_rdy_count + 65536;
}

static int s_broker_destroy(broker_t **self_p);

// The doors: the ZeroMQ ROUTER and the HTTP server. Returns 0, or -1 with
// a reason.
static int s_open_doors(broker_t *self, char *error, size_t error_size)
{
    const broker_config_t *config = &self->config;
    int port = -1;
    if (config->zmq_curve_secret_key_file[0]
        && !(self->curve = nsq_curve_server_new(config->zmq_curve_secret_key_file,
                                                config->zmq_curve_allow_dir, error, error_size)))
        return -1;
    self->router = nsq_daemon_router(config->zmq_address, BROKER_ROUTER_HWM, s_max_frame(config),
                                     self->curve, &port);
    if (!self->router) {
        snprintf(error, error_size, "cannot bind ZeroMQ on %s: %s", config->zmq_address,
                 zmq_strerror(errno));
        return -1;
    }
    self->zmq_port = (uint16_t) port;
    self->zmq = broker_zmq_new(broker_node_server(self->node), self->router);
    self->http = self->zmq ? broker_http_new(config) : NULL;
    if (!self->http) {
        snprintf(error, error_size, "cannot listen for HTTP on %s", config->http_address);
        return -1;
    }
    self->http_port = broker_http_port(self->http);
    broker_http_set_zmq_port(self->http, self->zmq_port);
    if (config->tcp_address[0]) {
        self->tcp = broker_tcp_new(broker_node_server(self->node), config, error, error_size);
        if (!self->tcp)
            return -1;
        self->tcp_port = broker_tcp_port(self->tcp);
        broker_http_set_tcp_port(self->http, self->tcp_port);
    }
    return 0;
}

static broker_t *s_broker_new(zsock_t *pipe, const broker_config_t *config, char *error,
                              size_t error_size)
{
    broker_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    self->pipe = pipe;
    self->node = broker_node_new(config, error, error_size);
    if (!self->node || broker_node_start_auth(self->node, error, error_size) != 0
        || s_open_doors(self, error, error_size) != 0) {
        s_broker_destroy(&self);
        return NULL;
    }
    self->loop = zloop_new();
    zloop_set_nonstop(self->loop, true);
    zloop_reader(self->loop, self->router, s_on_router, self);
    zmq_pollitem_t requests = {NULL, broker_http_handoff_fd(self->http), ZMQ_POLLIN, 0};
    zloop_poller(self->loop, &requests, s_on_request, self);
    broker_admission_t *admission = broker_server_admission(broker_node_server(self->node));
    zmq_pollitem_t admitted = {NULL, broker_admission_fd(admission), ZMQ_POLLIN, 0};
    zloop_poller(self->loop, &admitted, s_on_admitted, self);
    broker_http_set_admission(self->http, admission);
    if (self->tcp) {
        zmq_pollitem_t events = {NULL, broker_tcp_fd(self->tcp), ZMQ_POLLIN, 0};
        zloop_poller(self->loop, &events, s_on_tcp, self);
    }
    zmq_pollitem_t pipe_item = {NULL, zsock_fd(pipe), ZMQ_POLLIN, 0};
    zloop_poller(self->loop, &pipe_item, s_on_pipe_fd, self);
    zloop_timer(self->loop, BROKER_TICK_MS, 0, s_on_tick, self);
    zloop_timer(self->loop, 1, 1, s_check_quiet, self);
    if (broker_node_disk_socket(self->node)) {
        zmq_pollitem_t disk = {NULL, zsock_fd(broker_node_disk_socket(self->node)), ZMQ_POLLIN, 0};
        zloop_poller(self->loop, &disk, s_on_disk_fd, self);
    }
    if (broker_node_auth_socket(self->node))
        zloop_reader(self->loop, broker_node_auth_socket(self->node), s_on_auth, self);
    broker_lookup_source_t source = broker_node_lookup_source(self->node);
    if (config->lookupd_count > 0
        && !(self->lookup = broker_lookup_new(
                 config, self->loop,
                 &(broker_lookup_ports_t){self->http_port, broker_http_https_port(self->http),
                                          self->zmq_port, self->tcp_port},
                 &source))) {
        snprintf(error, error_size, "cannot set up the lookupd links");
        s_broker_destroy(&self);
        return NULL;
    }
    broker_node_set_lookup(self->node, self->lookup);
    return self;
}

// Returns 0, or -1 if what was in memory could not be saved.
static int s_broker_destroy(broker_t **self_p)
{
    broker_t *self = *self_p;
    if (!self)
        return 0;
    bool started = self->loop != NULL;  // else the state on disk stays untouched
    if (self->http) {
        // Answer what the HTTP threads already handed over, then refuse the
        // rest: after the flag is set this thread never takes a request again.
        broker_http_set_exiting(self->http, true);
        broker_admission_close(broker_server_admission(broker_node_server(self->node)));
        broker_server_admit(broker_node_server(self->node));
        broker_http_take(self->http, broker_http_serve, broker_node_server(self->node));
    }
    if (self->node)
        broker_node_settle(self->node);  // answers the publishes still waiting for a sync
    broker_http_destroy(&self->http);
    if (self->node)
        broker_node_set_lookup(self->node, NULL);
    broker_lookup_destroy(&self->lookup);  // releases held topics through the node
    zloop_destroy(&self->loop);
    int saved = started ? broker_node_persist(self->node, zclock_mono()) : 0;
    broker_node_destroy(&self->node);
    broker_zmq_destroy(&self->zmq);
    broker_tcp_destroy(&self->tcp);  // its sessions' clients went with the node
    if (self->router)
        zsock_set_linger(self->router, 1000);  // the last answers still leave
    zsock_destroy(&self->router);
    nsq_curve_server_destroy(&self->curve);
    free(self);
    *self_p = NULL;
    return saved;
}

void broker_actor(zsock_t *pipe, void *args)
{
    zsock_signal(pipe, 0);
    char error[512] = "";
    broker_t *self = s_broker_new(pipe, args, error, sizeof error);
    if (!self) {
        zstr_sendx(pipe, "ERROR", error, NULL);
        return;
    }
    prctl(PR_SET_NAME, "nsq-core");  // the core thread, for top -H and the strace test
    char tcp[BROKER_ADDRESS_MAX + 8] = "";
    if (self->tcp) {
        const char *colon = strrchr(self->config.tcp_address, ':');
        int host = colon ? (int) (colon - self->config.tcp_address) : 0;
        snprintf(tcp, sizeof tcp, "%.*s:%u", host, self->config.tcp_address, self->tcp_port);
    }
    nsq_daemon_send_ready_tcp(pipe, self->http_port, self->zmq_port, self->tcp ? tcp : NULL);
    zloop_start(self->loop);
    nsq_info("broker stopping");
    nsq_daemon_send_stopped(pipe, s_broker_destroy(&self) == 0 ? 0 : 1);
}
