/*  it_security_util - what the it_security* cases share: keys, certificates,
    clients and a recording relay
    SPDX-License-Identifier: MIT

    The security tests (it_security, it_security_tls) make keys with
    nsq-keygen and certificates with openssl in the case's directory, talk
    to the daemons through CURVE producers and HTTPS requests, and put a
    relay between client and server that records every byte crossing it,
    to show what travels in clear. Each helper fails the case (IT_ASSERT)
    when it cannot do its job.
*/
#ifndef IT_SECURITY_UTIL_H
#define IT_SECURITY_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "harness.h"

#define SEC_TOPIC   "secrets"
#define SEC_CHANNEL "reader"
#define SEC_BODY    "BODY-THAT-MUST-NOT-LEAK-7f3a9c"

// it_tmp_dir()/name, in a static ring of buffers.
const char *sec_path(const char *name);

// Runs command with sh in the case's directory, its output appended to
// tools.log there; fails the case unless it exits 0.
void sec_run(const char *command);

// nsq-keygen NAME in the case's directory.
void sec_keygen(const char *name);

// A CA, a server certificate for 127.0.0.1 signed by it, a client
// certificate signed by it, and a self-signed client certificate (a
// stranger). Keys mode 0600.
void sec_certificates(void);

// The contents of a file (NUL-terminated); caller frees.
char *sec_slurp(const char *path);

// The Z85 secret key in a czmq secret certificate; caller frees.
char *sec_secret_key(const char *path);

// Publishes body to SEC_TOPIC at "host:port" with CURVE keys (NULL = plain).
// Returns the producer's result (0 or -1 after a 1.5 s timeout).
int sec_publish(const char *address, const char *key, const char *server_key, const char *body);

// method url (body may be NULL) with libcurl, as `curl --cacert ca [--cert
// cert --key key]` would. Returns the status, or -1 if no answer came (TLS
// refused, connection closed); reply gets the body (1 KiB).
long sec_request(const char *method, const char *url, const char *body, const char *cert,
                 char *reply);

// The HTTPS port a daemon logged ("http: HTTPS on port N").
int sec_https_port(it_broker_t *daemon);

// A relay that records what crosses it.
typedef struct {
    int listener;          // accepting on 127.0.0.1:port
    int port;              //
    int target;            // 127.0.0.1 port relayed to
    pthread_mutex_t lock;  // guards the capture
    char *captured;        // every byte both ways
    size_t size;           //
} sec_relay_t;

// A relay from a fresh loopback port to target; lives until the case ends.
sec_relay_t *sec_relay_new(int target);

// Whether text crossed the relay so far, either way (notes how much did).
bool sec_relay_saw(sec_relay_t *relay, const char *text);

// The port of "host:port".
int sec_port(const char *address);

// nsq-worker --stdout finding SEC_TOPIC's brokers through lookupd_http
// ("host:port" or "https://host:port"), plus extra (NULL-terminated).
it_child_t *sec_worker_via_lookupd(const char *lookupd_http, const char *const *extra);

// Reads the worker's first line of output: SEC_BODY, within 15 s.
void sec_expect_body(it_child_t *worker);

#endif
