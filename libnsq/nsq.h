/*  nsq.h - the libnsq client API: consume and publish over ZeroMQ
    SPDX-License-Identifier: MIT

    The one installed header. A consumer subscribes to (topic, channel) on
    one or more brokers, announces a credit (max in flight) spread across its
    connections, and hands each message to a handler, which later settles it
    with nsq_consumer_fin / nsq_consumer_req (it may keep it across loop
    iterations: asynchronous handlers are fine). A producer publishes to one
    broker and waits for the broker's acknowledgement.

    Threading: a consumer or producer belongs to the thread that created it.
    The consumer runs on its own czmq zloop (nsq_consumer_loop) so callers
    can add their own readers and timers to it.

    Consumer, in call order:
        nsq_consumer_new, nsq_consumer_set_*, nsq_consumer_connect and/or
        nsq_consumer_connect_lookupd (repeat),
        nsq_consumer_run (or nsq_consumer_poll), in the handler
        nsq_msg_* accessors then nsq_consumer_fin / _req / _touch,
        nsq_consumer_close (graceful), nsq_consumer_destroy.
    Producer: nsq_producer_new, nsq_producer_publish / _mpublish /
        _dpublish, nsq_producer_destroy.
*/
#ifndef NSQ_H
#define NSQ_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Returns the library version, e.g. "0.1.0". Static string.
const char *nsq_library_version(void);

// ---- messages ---------------------------------------------------------

typedef struct _nsq_msg_t nsq_msg_t;

// 16 hex characters plus NUL. Borrowed; valid until the message is settled.
const char *nsq_msg_id(const nsq_msg_t *msg);
// Body bytes and their length. Borrowed; valid until the message is settled.
// A NUL byte follows the body (not counted in the size), so text bodies can
// be used as strings.
const void *nsq_msg_body(const nsq_msg_t *msg);
size_t nsq_msg_size(const nsq_msg_t *msg);
// Delivery attempts, 1 on the first delivery.
uint32_t nsq_msg_attempts(const nsq_msg_t *msg);
// Nanoseconds since the epoch when the broker first accepted the message.
int64_t nsq_msg_timestamp(const nsq_msg_t *msg);
// The broker endpoint it came from ("tcp://host:port"). Borrowed.
const char *nsq_msg_broker(const nsq_msg_t *msg);
// The message timeout of the connection it came from, in milliseconds, as
// that broker's IDENTIFY answer gave it (60000, NSQ's default, if it did
// not say): the broker requeues the message this long after delivery or
// after the last TOUCH. A handler that may run longer TOUCHes it at a
// fraction of this (nsq-worker: every half).
uint32_t nsq_msg_timeout_ms(const nsq_msg_t *msg);

// ---- consumer ---------------------------------------------------------

typedef struct _nsq_consumer_t nsq_consumer_t;

// Called once per delivered message. The consumer owns msg until the
// handler (now or later, from the consumer's thread) settles it with
// nsq_consumer_fin or nsq_consumer_req.
typedef void(nsq_handler_fn)(nsq_consumer_t *consumer, nsq_msg_t *msg, void *arg);

// Creates a consumer of (topic, channel). Returns NULL if a name is invalid
// (errno EINVAL) or on allocation failure. Caller owns the result.
nsq_consumer_t *nsq_consumer_new(const char *topic, const char *channel);

// Destroys the consumer without the graceful close: pending settlements are
// sent, each broker is told the connection goes away (it requeues the
// unsettled messages at once), sockets are closed and unsettled messages
// are freed. Nulls *self_p; accepts NULL. Not from the handler.
void nsq_consumer_destroy(nsq_consumer_t **self_p);

// Sets the handler; required before nsq_consumer_run.
void nsq_consumer_set_handler(nsq_consumer_t *self, nsq_handler_fn *handler, void *arg);

// Total credit across all connections (default 1; 0 pauses delivery). May be
// changed at any time; the consumer re-announces RDY on every connection
// whose share changed. Each connection gets max_in_flight / connections
// (capped by the broker's max_rdy_count); with fewer credits than
// connections, RDY 1 rotates among them every few seconds.
void nsq_consumer_set_max_in_flight(nsq_consumer_t *self, uint32_t max_in_flight);

// Heartbeat interval asked of the broker (default 0 = broker default). A
// broker silent for two intervals is treated as gone and reconnected.
void nsq_consumer_set_heartbeat_interval(nsq_consumer_t *self, uint32_t milliseconds);

// Per-message timeout asked of the broker (default 0 = broker --msg-timeout).
// A broker whose --max-msg-timeout is lower gets asked for its maximum
// instead (clamped, with a warning; it costs that connection one more
// handshake). Each message tells the timeout it got: nsq_msg_timeout_ms.
void nsq_consumer_set_msg_timeout(nsq_consumer_t *self, uint32_t milliseconds);

// Client id announced in IDENTIFY (default: hostname). Copied.
void nsq_consumer_set_client_id(nsq_consumer_t *self, const char *client_id);

// TLS for lookupds given as "https://host:port": the PEM CA file their
// certificates chain to (NULL = the system's CAs) and a client certificate
// and key for lookupds that require one (NULL = none). Copied. Returns 0,
// or -1 (errno EINVAL, the reason logged, nothing changed) if key_file is
// not a regular file of mode 0600 or narrower.
int nsq_consumer_set_lookupd_tls(nsq_consumer_t *self, const char *root_ca_file,
                                 const char *cert_file, const char *key_file);

// CURVE encryption and authentication towards brokers: key_file is this
// client's czmq certificate with its secret key (nsq-keygen's NAME_secret,
// mode 0600 or narrower), server_key_file the brokers' public certificate.
// Both NULL turns CURVE off. Applies to connections opened afterwards:
// call it before connecting. Returns 0, or -1 (errno EINVAL, the reason
// logged) if a file cannot be read, is wider than 0600, or one is missing.
int nsq_consumer_set_curve(nsq_consumer_t *self, const char *key_file, const char *server_key_file);

// The secret a broker with --auth-http-address asks its auth server about
// (NSQ's AUTH), sent in each connection's IDENTIFY. Copied; NULL or ""
// forgets it. Set it before connecting. A refusal shows in the log
// (E_AUTH_FAILED, E_UNAUTHORIZED on SUB) and the connection retries.
void nsq_consumer_set_auth_secret(nsq_consumer_t *self, const char *secret);

// Connects to a broker's ZeroMQ endpoint, "host:port" or "tcp://host:port",
// then IDENTIFY, SUB and RDY. Returns 0, or -1 if the address is malformed
// or already connected. Connection failures are retried by ZeroMQ.
int nsq_consumer_connect(nsq_consumer_t *self, const char *address);

// Finds brokers through a lookupd's HTTP API ("host:port",
// "http://host:port" or "https://host:port", see
// nsq_consumer_set_lookupd_tls; repeat for several lookupds): every poll
// interval the consumer asks each lookupd which brokers hold its topic (in a background
// thread; the loop never waits for HTTP), connects to those it is not
// connected to and drops the ones no lookupd lists any more. While no
// lookupd answers it keeps the brokers it has. Returns 0, or -1 (errno
// EINVAL) if the address is malformed; an address that does not resolve or
// answer is logged and retried every interval.
int nsq_consumer_connect_lookupd(nsq_consumer_t *self, const char *http_address);

// Lookupd poll interval (default 60 s); each round comes up to a fifth of
// it early, at random, so that consumers do not poll in step.
void nsq_consumer_set_lookupd_poll_interval(nsq_consumer_t *self, uint32_t milliseconds);

// Drops the connection to a broker. Its unsettled messages stay valid until
// the handler settles them; settling them then returns -1 (the broker
// requeues them). Returns 0, or -1 if not connected to it.
int nsq_consumer_disconnect(nsq_consumer_t *self, const char *address);

// Number of live broker connections.
size_t nsq_consumer_connection_count(nsq_consumer_t *self);

// Connections whose broker has answered IDENTIFY on the current socket and
// that are not waiting to reconnect: the ones messages can come from now.
size_t nsq_consumer_connected_count(nsq_consumer_t *self);

// True once some lookupd has answered this consumer's /lookup query, also
// with "topic not found" (nobody has published to the topic yet): discovery
// works, and brokers are connected as soon as the topic appears. False
// without lookupds.
bool nsq_consumer_lookupd_answered(nsq_consumer_t *self);

// Settles msg as done. Frees msg. Returns 0, or -1 if the connection it came
// from is gone or was reset since (the broker will requeue it anyway).
// FINs are batched per connection and sent at the end of the current loop
// event (or at the start of the next loop run when settled outside it).
int nsq_consumer_fin(nsq_consumer_t *self, nsq_msg_t *msg);

// Asks the broker to redeliver msg after delay_ms. Frees msg. Returns as
// nsq_consumer_fin.
int nsq_consumer_req(nsq_consumer_t *self, nsq_msg_t *msg, uint32_t delay_ms);

// Resets msg's timeout on the broker. msg stays owned by the consumer.
// Returns 0, or -1 if its connection is gone.
int nsq_consumer_touch(nsq_consumer_t *self, nsq_msg_t *msg);

// Messages handed to the handler and not yet settled (including those
// whose connection is gone).
size_t nsq_consumer_in_flight(nsq_consumer_t *self);

// The consumer's loop, to add readers or timers. Borrowed. A reader or timer
// of yours that returns -1 makes nsq_consumer_run or _poll return.
zloop_t *nsq_consumer_loop(nsq_consumer_t *self);

// Runs the loop until nsq_consumer_stop or SIGINT/SIGTERM (zsys_interrupted).
// Returns 0.
int nsq_consumer_run(nsq_consumer_t *self);

// Runs the loop for up to timeout_ms (< 0: no limit), handling what arrives;
// returns early once at least one message was handed to the handler, or on
// SIGINT/SIGTERM. Returns 0.
int nsq_consumer_poll(nsq_consumer_t *self, int timeout_ms);

// Makes nsq_consumer_run return after the current event. Safe to call from
// the handler.
void nsq_consumer_stop(nsq_consumer_t *self);

// Graceful close: RDY 0 and CLS on every connection, then runs the loop
// until every handed-out message is settled and every broker has answered
// CLS (so none is still on its way), or timeout_ms passes (signals do not
// cut it short). Messages that arrive meanwhile are handed to the handler as
// usual. Dropped connections are not reconnected any more. Returns 0 if all
// handed-out messages were settled, -1 otherwise. Not from the handler.
int nsq_consumer_close(nsq_consumer_t *self, int timeout_ms);

// Counters since creation.
uint64_t nsq_consumer_received(nsq_consumer_t *self);
uint64_t nsq_consumer_finished(nsq_consumer_t *self);
uint64_t nsq_consumer_requeued(nsq_consumer_t *self);

// ---- producer ---------------------------------------------------------

typedef struct _nsq_producer_t nsq_producer_t;

// Creates a producer connected to a broker's ZeroMQ endpoint ("host:port" or
// "tcp://host:port"). NULL on a malformed address. Caller owns the result.
nsq_producer_t *nsq_producer_new(const char *address);

// Closes the socket; publishes still queued in it get up to the timeout to
// leave. Nulls *self_p; accepts NULL.
void nsq_producer_destroy(nsq_producer_t **self_p);

// How long a publish waits for the broker's answer (default 5000 ms).
void nsq_producer_set_timeout(nsq_producer_t *self, int timeout_ms);

// The secret a broker with --auth-http-address asks its auth server about
// (NSQ's AUTH), sent before the next publish on each connection. Copied;
// NULL or "" forgets it. A refusal fails that publish with E_AUTH_FAILED,
// E_UNAUTHORIZED (not allowed on this topic) or E_AUTH_UNAVAILABLE.
void nsq_producer_set_auth_secret(nsq_producer_t *self, const char *secret);

// Publishes one message and waits for the acknowledgement. Returns 0, or -1
// with the reason in nsq_producer_error (a broker code such as
// "E_BAD_TOPIC", or "E_TIMEOUT"). Outstanding asynchronous publishes are
// waited for too, and their failure also makes it return -1. After a
// timeout the socket is replaced, so nothing queued is delivered later.
int nsq_producer_publish(nsq_producer_t *self, const char *topic, const void *body, size_t size);

// Publishes one message that becomes visible after defer_ms.
int nsq_producer_dpublish(nsq_producer_t *self, const char *topic, const void *body, size_t size,
                          uint32_t defer_ms);

// Publishes count messages atomically (all or none).
int nsq_producer_mpublish(nsq_producer_t *self, const char *topic, const void *const *bodies,
                          const size_t *sizes, size_t count);

// Pipelined publishing for throughput: sends without waiting; at most
// window publishes (1..65536) stay unacknowledged (older answers are
// collected first). A failure is reported once, by the call that sees it.
// nsq_producer_flush waits for every outstanding answer. Both return 0, or
// -1 if any outstanding publish failed or timed out.
int nsq_producer_publish_async(nsq_producer_t *self, const char *topic, const void *body,
                               size_t size, size_t window);
// The same for count messages in one atomic PUB (an MPUB); window counts
// PUBs, not messages. The bodies are copied before it returns.
int nsq_producer_mpublish_async(nsq_producer_t *self, const char *topic, const void *const *bodies,
                                const size_t *sizes, size_t count, size_t window);
int nsq_producer_flush(nsq_producer_t *self);

// CURVE towards the broker, as nsq_consumer_set_curve. The socket is
// replaced (call it before publishing: nothing outstanding is waited for).
// Returns 0, or -1 (errno EINVAL, the reason logged).
int nsq_producer_set_curve(nsq_producer_t *self, const char *key_file, const char *server_key_file);

// The last error code, or "" if none. Borrowed.
const char *nsq_producer_error(nsq_producer_t *self);

#ifdef __cplusplus
}
#endif

#endif
