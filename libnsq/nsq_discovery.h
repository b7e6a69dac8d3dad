/*  nsq_discovery - finds the brokers that hold a topic by polling lookupds
    SPDX-License-Identifier: MIT

    A background thread (czmq actor) asks every lookupd's HTTP API
    (/lookup?topic=T, libcurl, short timeouts) every poll interval, minus up
    to a fifth of it at random so that many consumers do not poll in step,
    and reports the union of the brokers listed ("host:zmq_port") over the
    actor pipe. A round in which no lookupd answered is not reported, so a
    consumer keeps its brokers while every lookupd is down; a 404 answer
    (topic unknown) counts as an answer with no broker. The owner reads
    results on its own loop: curl never blocks it.

    The owner either reads each result whole (nsq_discovery_recv) or lets
    nsq_discovery_apply tell it what changed: which brokers are new, which
    were found before and are listed by no lookupd any more.

    API in call order: nsq_discovery_new, nsq_discovery_add,
    nsq_discovery_set_interval, nsq_discovery_sock (read with
    nsq_discovery_recv or nsq_discovery_apply), nsq_discovery_destroy.
*/
#ifndef NSQ_DISCOVERY_H
#define NSQ_DISCOVERY_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NSQ_DISCOVERY_INTERVAL_DEFAULT_MS 60000  // go-nsq's lookupd_poll_interval

typedef struct _nsq_discovery_t nsq_discovery_t;

// Starts the poller for topic (no lookupd yet). Caller owns the result;
// NULL if out of memory.
nsq_discovery_t *nsq_discovery_new(const char *topic);

// Stops the thread (an HTTP request in progress is cut short) and nulls
// *self_p; accepts NULL.
void nsq_discovery_destroy(nsq_discovery_t **self_p);

// Adds a lookupd HTTP address, "host:port", "http://host:port" or
// "https://host:port" (nsq_discovery_set_tls), and polls
// at once (an address added twice is polled once). Returns 0, or -1 (errno
// EINVAL) if the address is malformed.
int nsq_discovery_add(nsq_discovery_t *self, const char *address);

// TLS for https:// lookupds (nsq_http_client.h): the CA file to trust and
// a client certificate and key ("" or NULL = unset). Copied.
void nsq_discovery_set_tls(nsq_discovery_t *self, const char *root_ca_file, const char *cert_file,
                           const char *key_file);

// Sets the poll interval (at least 10 ms) from the next round on.
void nsq_discovery_set_interval(nsq_discovery_t *self, uint32_t milliseconds);

// The socket that becomes readable when a result is ready. Borrowed.
zsock_t *nsq_discovery_sock(nsq_discovery_t *self);

// Reads one result: the brokers' ZeroMQ addresses, "host:port" strings the
// list owns. Caller destroys the list; NULL if nothing valid was waiting.
zlistx_t *nsq_discovery_recv(nsq_discovery_t *self);

// What a result changed, for nsq_discovery_apply. Brokers are "host:port",
// borrowed for the call.
typedef struct {
    // A broker listed that was not taken before. Returns 0 once it is taken
    // (say connected), -1 to have it offered again with the next result.
    int (*found)(void *arg, const char *broker);
    // A broker taken before that no lookupd lists any more.
    void (*lost)(void *arg, const char *broker);
} nsq_discovery_events_t;

// Reads one result as nsq_discovery_recv does and tells events what it
// changed since the brokers taken before (events NULL: drops the result and
// changes nothing). Returns true if a result was read (some lookupd
// answered, maybe listing no broker), false if nothing valid was waiting.
bool nsq_discovery_apply(nsq_discovery_t *self, const nsq_discovery_events_t *events, void *arg);

// Adds the "broadcast_address:zmq_port" of every producer in a /lookup
// JSON body to brokers (duplicates skipped). Producers without a zmq_port
// (a plain nsqlookupd's) are skipped. Returns how many were listed.
size_t nsq_discovery_parse(const char *json, zlistx_t *brokers);

// Self-test; returns 0 on success.
int nsq_discovery_test(void);

#endif
