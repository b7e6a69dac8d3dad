/*  broker_tcp_connection - one NSQ TCP client as the I/O thread sees it:
    socket, stream, parser, output buffering, heartbeats and liveness
    SPDX-License-Identifier: MIT

    Runs on the I/O thread only (broker_tcp_io owns every connection). It
    reads what the socket has, decodes it (broker_tcp_stream), parses
    commands (broker_tcp_codec) and hands each one to the core as an event
    (broker_tcp_event_t): bodies become refcounted messages, so the core
    never copies them; valid FINs in a row go as one event (one command
    each). NOP stays here. The core answers with posts: frame
    bytes, how many of the connection's commands it has finished, and flags
    (flush now, IDENTIFY accepted, close).

    Order: everything the client sees comes in the order of its commands.
    The IDENTIFY reply is written when the core's post for it arrives
    (behind the answers to earlier commands), then the upgrades run (TLS
    handshake, OK, compression, OK) before the parser reads on. A fatal
    parse error waits until the core has answered every earlier command,
    then goes out as the last frame.

    Output as nsqd buffers it: message frames wait until output_buffer_size
    bytes are pending or output_buffer_timeout has passed; everything else
    (and messages when the core says the client can take no more) goes at
    once. Bounds: past BROKER_TCP_OUTPUT_HIGH bytes unsent the core is told
    the client is blocked (no deliveries) until it drains below
    BROKER_TCP_OUTPUT_LOW; past BROKER_TCP_OUTPUT_MAX, or when a write makes
    no progress for a heartbeat interval, the client is dropped. Reading
    stops while the client has BROKER_TCP_OUTSTANDING_MAX commands at the
    core or is blocked, so a client that never reads cannot grow our
    buffers either.

    Liveness as nsqd's: a heartbeat response every heartbeat interval, and
    a client silent for two intervals is dropped; a TLS handshake gets 5 s.

    API: broker_tcp_connection_new, broker_tcp_connection_readable,
    broker_tcp_connection_writable, broker_tcp_connection_post,
    broker_tcp_connection_tick, broker_tcp_connection_interest,
    broker_tcp_connection_closed, broker_tcp_connection_destroy;
    broker_tcp_event_destroy.
*/
#ifndef BROKER_TCP_CONNECTION_H
#define BROKER_TCP_CONNECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker_buffer.h"
#include "broker_tcp_codec.h"
#include "broker_tls.h"
#include "nsq_message.h"

#define BROKER_TCP_OUTPUT_HIGH     (4u << 20)   // unsent bytes that block deliveries
#define BROKER_TCP_OUTPUT_LOW      (1u << 20)   // unblocked again below this
#define BROKER_TCP_OUTPUT_MAX      (64u << 20)  // unsent bytes that drop the client
#define BROKER_TCP_OUTSTANDING_MAX 256          // commands at the core before reading pauses
#define BROKER_TCP_HANDSHAKE_MS    5000         // TLS handshake limit, as nsqd's
#define BROKER_TCP_CLOSE_LINGER_MS 2000         // how long a last error frame may take to leave

// Post flags (broker_tcp_connection_post, broker_tcp_io_post).
#define BROKER_TCP_POST_FLUSH      1u  // send the bytes now (not only messages, or not ready)
#define BROKER_TCP_POST_IDENTIFIED 2u  // the core accepted the IDENTIFY: reply and upgrade
#define BROKER_TCP_POST_CLOSE      4u  // the bytes end with a fatal error: close after them

typedef enum {
    BROKER_TCP_OPENED,     // a client connected (remote_address)
    BROKER_TCP_SECURED,    // its TLS handshake is done (common_name: its certificate's, or "")
    BROKER_TCP_RECEIVED,   // a command (command; messages or secret moved out of its body)
    BROKER_TCP_BLOCKED,    // its output is full: deliver nothing until UNBLOCKED
    BROKER_TCP_UNBLOCKED,  // it drained
    BROKER_TCP_CLOSED,     // it is gone (reason); its in-flight messages go back
} broker_tcp_event_kind_t;

// What the I/O thread hands the core, one per event.
typedef struct _broker_tcp_event_t {
    struct _broker_tcp_event_t *next;  // the list the core takes
    broker_tcp_event_kind_t kind;
    uint64_t connection;           // which client
    char remote_address[64];       // OPENED: "IP:port"
    char common_name[65];          // SECURED: the client certificate's common name, or ""
    broker_tcp_command_t command;  // RECEIVED: the command (body NULL; see below)
    nsq_message_t **messages;      // PUB, DPUB, MPUB: the bodies as messages (owned)
    size_t message_count;          // how many
    uint64_t *fin_ids;             // FIN: the ids of consecutive valid FINs (owned; the
    size_t fin_count;              // first is command.id), one command each; 0 otherwise
    char *secret;                  // AUTH: the body, NUL-terminated (owned)
    size_t secret_size;            // AUTH: its length (it may hold NULs)
    const char *reason;            // CLOSED: why (static text)
} broker_tcp_event_t;

// Frees an event and what it still owns. Nulls *self_p; accepts NULL.
void broker_tcp_event_destroy(broker_tcp_event_t **self_p);

// What the I/O thread gives each connection (borrowed, outlives them all).
typedef struct {
    const broker_tcp_settings_t *settings;  // limits and offers
    const broker_tls_t *tls;                // credentials, or NULL (no TLS offered)
    // Hands an event to the core (ownership moves).
    void (*emit)(void *arg, broker_tcp_event_t *event);
    void *arg;  // emit's argument
} broker_tcp_context_t;

typedef struct _broker_tcp_connection_t broker_tcp_connection_t;

// Takes the connected, non-blocking socket fd and emits OPENED. Caller owns
// the result; NULL if out of memory (fd is then closed).
broker_tcp_connection_t *broker_tcp_connection_new(const broker_tcp_context_t *context, uint64_t id,
                                                   int fd, const char *remote_address, int64_t now);

// Closes the socket, emits CLOSED with the reason it closed for (or
// "shutdown") and frees the connection. Nulls *self_p; accepts NULL.
void broker_tcp_connection_destroy(broker_tcp_connection_t **self_p);

// The socket is readable: reads, decodes, parses, emits commands.
void broker_tcp_connection_readable(broker_tcp_connection_t *self, int64_t now);

// The socket is writable: sends what is pending.
void broker_tcp_connection_writable(broker_tcp_connection_t *self, int64_t now);

// A post from the core: bytes (whole frames; may be NULL), done (commands
// it finished), flags. Takes ownership of *bytes and nulls it.
void broker_tcp_connection_post(broker_tcp_connection_t *self, broker_buffer_t **bytes,
                                unsigned flags, uint32_t done, int64_t now);

// Timers: heartbeats, liveness, timed flushes, handshake and linger
// limits. Returns the next time (monotonic ms) it must run.
int64_t broker_tcp_connection_tick(broker_tcp_connection_t *self, int64_t now);

// What to wait for on the socket: *read and *write.
void broker_tcp_connection_interest(const broker_tcp_connection_t *self, bool *read, bool *write);

// The socket. Borrowed.
int broker_tcp_connection_fd(const broker_tcp_connection_t *self);

// Non-NULL once the connection is finished (then destroy it): the reason.
const char *broker_tcp_connection_closed(const broker_tcp_connection_t *self);

#endif
