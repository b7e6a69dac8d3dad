/*  broker_tcp_session - one NSQ TCP connection as the core sees it: its
    server client and the answers waiting to go to the I/O thread, in the
    order of its commands
    SPDX-License-Identifier: MIT

    Runs on the core thread (broker_tcp.c owns every session). What the
    client is to see is kept as a list of segments, each one post to the
    I/O thread (bytes, commands finished, flags): answers and message
    frames go into the last one. Two things end a segment:
    - an accepted IDENTIFY (its reply and the stream upgrades follow the
      bytes of its post, so what comes after needs a post of its own);
    - a durable publish waiting for its sync: it gets a segment of its own
      that holds back every segment behind it until the sync is settled
      (broker_tcp_session_settle), so answers leave in command order while
      publishes pipelined behind it share a group commit.
    broker_tcp_session_post hands over the segments from the front up to
    the first one still waiting; after one that closes the connection (a
    fatal answer, a failed sync) it drops the rest, as nsqd answers
    nothing after a fatal error.

    A fatal answer (nsqd closes the connection after it) marks the session
    closing: later commands are counted as finished and not carried out,
    and the client gets no more messages.

    A command waiting for the auth server (AUTH, or a SUB or publish whose
    grant is past its ttl) is held here with every command the client
    sends after it, in order, not carried out, until the door hands them
    over again (broker_tcp_session_take_held). The hold is bounded in
    bytes (BROKER_TCP_HELD_MAX, past the first command); the I/O thread's
    BROKER_TCP_OUTSTANDING_MAX bounds it in commands (it stops reading a
    client with that many unanswered).

    API in call order: broker_tcp_session_new, broker_tcp_session_set_client,
    broker_tcp_session_respond / _error / _finished / _deliver / _close,
    broker_tcp_session_wait + broker_tcp_session_settle,
    broker_tcp_session_hold + broker_tcp_session_take_held,
    broker_tcp_session_take_sampled, broker_tcp_session_post,
    broker_tcp_session_destroy.
*/
#ifndef BROKER_TCP_SESSION_H
#define BROKER_TCP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker_client.h"
#include "broker_inflight.h"
#include "broker_result.h"
#include "broker_tcp_codec.h"
#include "broker_tcp_io.h"

#define BROKER_TCP_HELD_MAX (16u << 20)  // bytes a client may have waiting for the auth server

typedef struct _broker_tcp_session_t broker_tcp_session_t;

// A durable publish's place in its session's answers.
typedef struct _broker_tcp_wait_t broker_tcp_wait_t;

// Returns a session for the I/O thread's connection id; door is what
// broker_tcp_session_door gives back; number (the door's count of
// connections, unique while it runs) and remote_address ("IP:port",
// copied) make its name. Caller owns the result; NULL if out of memory.
broker_tcp_session_t *broker_tcp_session_new(uint64_t connection, void *door, uint64_t number,
                                             const char *remote_address);

// Frees the session and what waits in it (not its client; held events too). A durable
// publish still waiting is orphaned: broker_tcp_session_settle frees it
// when its sync ends. Nulls *self_p; accepts NULL.
void broker_tcp_session_destroy(broker_tcp_session_t **self_p);

// The I/O thread's id of its connection.
uint64_t broker_tcp_session_connection(const broker_tcp_session_t *self);

// The door given to broker_tcp_session_new.
void *broker_tcp_session_door(const broker_tcp_session_t *self);

// A name for logs, "tcp-N@IP:port": N the door's count of connections
// (unique, unlike the connection id's slot, which the next connection
// reuses), then the client's address, which nsqd names its clients by.
// Borrowed, valid while the session lives.
const char *broker_tcp_session_name(const broker_tcp_session_t *self);

// Its server client (borrowed), NULL before it is set or after the server
// dropped it.
broker_client_t *broker_tcp_session_client(const broker_tcp_session_t *self);
void broker_tcp_session_set_client(broker_tcp_session_t *self, broker_client_t *client);

// True once a fatal answer went out or the server dropped the client.
bool broker_tcp_session_closing(const broker_tcp_session_t *self);

// Percent of messages the client samples (IDENTIFY sample_rate, 0 = all).
void broker_tcp_session_set_sample_rate(broker_tcp_session_t *self, int sample_rate);

// Queues a response frame (text) and finishes one command. Returns 0, or
// -1 if out of memory (the session is then closing).
int broker_tcp_session_respond(broker_tcp_session_t *self, const char *text);

// Queues an error frame ("E_CODE description") and finishes one command;
// a fatal one (broker_tcp_error_is_fatal) closes the connection after it
// and stops deliveries. Returns 0 or -1 as above.
int broker_tcp_session_error(broker_tcp_session_t *self, const char *text);

// Finishes one command with no answer; flags (BROKER_TCP_POST_IDENTIFIED
// for an accepted IDENTIFY, which ends the segment) go with it.
void broker_tcp_session_finished(broker_tcp_session_t *self, unsigned flags);

// The server drops the client: the connection closes after what is queued;
// the client is forgotten (NULL).
void broker_tcp_session_close(broker_tcp_session_t *self);

// Queues the entries as message frames, skipping those the sample rate
// leaves out (kept for broker_tcp_session_take_sampled). Returns count:
// every entry is taken; -1 never (out of memory closes the session and
// still takes them, since the connection is going).
size_t broker_tcp_session_deliver(broker_tcp_session_t *self, broker_inflight_entry_t **entries,
                                  size_t count);

// Moves the ids of sampled-out messages into *ids (caller frees) and
// their number into *count (0: *ids NULL). The door finishes them.
void broker_tcp_session_take_sampled(broker_tcp_session_t *self, uint64_t **ids, size_t *count);

// A durable publish (kind: PUB, MPUB or DPUB) of this session waits for its
// sync: returns its place (the argument for broker_server_wait_durable's
// callback), or NULL if out of memory (then answer at once).
broker_tcp_wait_t *broker_tcp_session_wait(broker_tcp_session_t *self, broker_tcp_kind_t kind);

// The sync of a waiting publish ended: queues its answer (OK, or a fatal
// E_PUB_FAILED / E_MPUB_FAILED / E_DPUB_FAILED) and frees the wait.
// Returns its session (to be posted), or NULL if the session is gone.
broker_tcp_session_t *broker_tcp_session_settle(broker_tcp_wait_t *wait, broker_result_t result);

// True while commands wait for the auth server (what comes now must wait
// behind them).
bool broker_tcp_session_holding(const broker_tcp_session_t *self);

// Holds a RECEIVED event behind the ones held (ownership moves; *event_p
// is nulled). Returns 0, or -1 if the hold would pass BROKER_TCP_HELD_MAX
// (*event_p is left to the caller: the client is to be closed).
int broker_tcp_session_hold(broker_tcp_session_t *self, broker_tcp_event_t **event_p);

// Takes the held events, oldest first, linked by ->next (NULL if none);
// caller destroys each. The session holds nothing after.
broker_tcp_event_t *broker_tcp_session_take_held(broker_tcp_session_t *self);

// Stages the segments from the front that are not waiting (broker_tcp_io_post).
// Returns 0, or -1 if a post could not be staged (out of memory).
int broker_tcp_session_post(broker_tcp_session_t *self, broker_tcp_io_t *io);

// The door's mark for "listed for the next flush": returns true if it was
// not set (and sets it); broker_tcp_session_post clears it.
bool broker_tcp_session_list(broker_tcp_session_t *self);

#endif
