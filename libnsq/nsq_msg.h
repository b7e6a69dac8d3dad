/*  nsq_msg - the messages a consumer hands out, and its list of those not settled
    SPDX-License-Identifier: MIT

    The public accessors (nsq_msg_id, _body, ...) are declared in nsq.h;
    this internal header gives the consumer the rest. A message is one
    allocation (header and body, plus a NUL) and remembers where it came
    from: its connection and that connection's generation (the socket it
    was read from). The consumer settles it there only while both still
    hold, so a message from a dropped or reset connection settles to -1.

    API: nsq_msg_new, nsq_msg_new_detached, nsq_msg_origin, nsq_msg_wire_id,
    and the list: nsq_msg_list_add, _remove, _orphan, _clear.
*/
#ifndef NSQ_MSG_H
#define NSQ_MSG_H

#include "nsq.h"
#include "nsq_wire.h"

#include <stddef.h>
#include <stdint.h>

typedef struct _nsq_connection_t nsq_connection_t;

// A copy of wire, delivered on generation of connection from broker (an
// endpoint string that must outlive the message) with a msg_timeout of
// timeout_ms. NULL if out of memory. Caller owns the result (free()).
nsq_msg_t *nsq_msg_new(const Nsq__Message *wire, nsq_connection_t *connection, uint64_t generation,
                       const char *broker, uint32_t timeout_ms);

// A message that belongs to no consumer, for code that takes a message
// without a broker (a handler's self-test feeds one to the handler): a
// copy of body, id 1, attempts 1, timeout 60 s, broker "tcp://127.0.0.1:1".
// Never pass it to a consumer (settling it there returns -1). NULL if out
// of memory. Caller owns the result: free() it.
nsq_msg_t *nsq_msg_new_detached(const void *body, size_t size);

// The connection msg can be settled on, and *generation the socket it came
// from; NULL once that connection is gone.
nsq_connection_t *nsq_msg_origin(const nsq_msg_t *msg, uint64_t *generation);

// The id as the wire carries it.
uint64_t nsq_msg_wire_id(const nsq_msg_t *msg);

// Handed-out messages, newest first. Zero-initialise; the list owns them.
typedef struct {
    nsq_msg_t *head;  // newest
    size_t count;     // how many
} nsq_msg_list_t;

// Adds msg (the list takes it).
void nsq_msg_list_add(nsq_msg_list_t *list, nsq_msg_t *msg);

// Takes msg out of the list; the caller owns it again.
void nsq_msg_list_remove(nsq_msg_list_t *list, nsq_msg_t *msg);

// Forgets connection in every message that came from it (it is going
// away): settling them returns -1 from now on.
void nsq_msg_list_orphan(nsq_msg_list_t *list, const nsq_connection_t *connection);

// Frees every message.
void nsq_msg_list_clear(nsq_msg_list_t *list);

// Self-test; returns 0 on success.
int nsq_msg_test(void);

#endif
