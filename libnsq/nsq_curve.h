/*  nsq_curve - CURVE security on our ZeroMQ links: key files, the client
    side, and the server side (a ZAP handler with an allow-list)
    SPDX-License-Identifier: MIT

    Keys live in czmq's certificate format (zcert_save: a public file NAME
    with "curve / public-key" and a secret file NAME_secret that adds
    "curve / secret-key", both Z85). nsq-keygen writes them. A secret file
    must be mode 0600 or narrower (nsq_secret_file_check).

    Client (consumer, producer, worker, tools, a broker towards lookupd):
    its own key pair (a _secret file) and the server's public key (the
    server's public file, or its secret file: only the public key is
    read). nsq_curve_client_apply sets them on a socket before connect.

    Server (broker, lookupd): its key pair; nsq_curve_server_apply makes a
    socket a CURVE server before bind. ZAP (RFC 27) is answered by one
    handler per process (libzmq asks one per context) shared by every
    server object, each with a ZAP domain and allow-list of its own
    (nsq_curve_zap.h): two brokers, or a broker and a lookupd, in one
    process each admit their own clients:
      - without an allow directory any client that speaks CURVE with the
        server's public key is accepted;
      - with one (--zmq-curve-allow-dir: public certificate files), only
        the keys found there; the directory is read at start and again
        after SIGHUP (nsq_curve_reload_request, called from the signal
        handler; the actor notices within a quarter second and logs the
        new count).
    Refusals are logged, one line each: a key not on the list (with the
    client's address and public key, which is not a secret), and a
    handshake that failed before ZAP was asked (a plain client, a client
    that has the wrong server key), seen on the socket's monitor.
    Secret keys are never logged.

    API in call order: nsq_curve_client_check (nsq_curve_public_check),
    nsq_curve_client_load, nsq_curve_client_apply;
    nsq_curve_server_new, nsq_curve_server_apply, nsq_curve_reload_request,
    nsq_curve_server_destroy; nsq_curve_keys_write (nsq-keygen, tests).
*/
#ifndef NSQ_CURVE_H
#define NSQ_CURVE_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

#define NSQ_CURVE_KEY_TEXT 41  // a Z85 key and its NUL

// Option rows for a daemon's table, written once here. A server's config
// struct has char array fields zmq_curve_secret_key_file and
// zmq_curve_allow_dir; a client's zmq_curve_key_file and
// zmq_curve_server_key_file (char arrays or const char *); at is empty or
// the path of a nested struct holding them ("worker.").
// clang-format off
#define NSQ_CURVE_SERVER_OPTION_ROWS(type, at)                                                     \
    {"zmq-curve-secret-key-file", NSQ_OPTION_STRING, NULL, 0, 0, false,                            \
     "CURVE: this server's czmq certificate with its secret key (nsq-keygen; mode 0600); "         \
     "ZeroMQ clients must then use CURVE", NSQ_OPTION_FIELD(type, at zmq_curve_secret_key_file)},  \
    {"zmq-curve-allow-dir", NSQ_OPTION_STRING, NULL, 0, 0, false,                                  \
     "CURVE: directory of the public certificates of allowed clients (read again on SIGHUP); "     \
     "unset = any client with a key", NSQ_OPTION_FIELD(type, at zmq_curve_allow_dir)}
#define NSQ_CURVE_CLIENT_OPTION_ROWS(type, at)                                                     \
    {"zmq-curve-key-file", NSQ_OPTION_STRING, NULL, 0, 0, false,                                   \
     "CURVE: this client's czmq certificate with its secret key (nsq-keygen; mode 0600)",          \
     NSQ_OPTION_FIELD(type, at zmq_curve_key_file)},                                               \
    {"zmq-curve-server-key-file", NSQ_OPTION_STRING, NULL, 0, 0, false,                            \
     "CURVE: the broker's public certificate (with --zmq-curve-key-file)",                         \
     NSQ_OPTION_FIELD(type, at zmq_curve_server_key_file)}
// clang-format on

// A client's keys, loaded once. enabled is false when no key file was
// given: apply then does nothing.
typedef struct {
    bool enabled;                         // CURVE configured
    char public_key[NSQ_CURVE_KEY_TEXT];  // ours
    char secret_key[NSQ_CURVE_KEY_TEXT];  // ours (a secret: never logged)
    char server_key[NSQ_CURVE_KEY_TEXT];  // the server's public key
} nsq_curve_client_t;

// Loads key_file (our _secret certificate, mode 0600) and server_key_file
// (the server's public certificate). Both NULL or "" leave self disabled;
// one without the other is an error (the message names the flags
// --zmq-curve-key-file and --zmq-curve-server-key-file). Returns 0, or -1
// with one line in error.
int nsq_curve_client_load(nsq_curve_client_t *self, const char *key_file,
                          const char *server_key_file, char *error, size_t size);

// Checks a client's key files as nsq_curve_client_load does, keeping
// nothing (a tool's configure step: refuse a bad key with one line before
// starting). Returns 0, or -1 with one line in error.
int nsq_curve_client_check(const char *key_file, const char *server_key_file, char *error,
                           size_t size);

// Checks that path (the value of --option) is a certificate with a public
// key: a server's, for a client that gets its own key pair elsewhere (a
// lookupd's --zmq-curve-broker-key-file). Returns 0, or -1 with one line
// in error.
int nsq_curve_public_check(const char *option, const char *path, char *error, size_t size);

// Makes socket a CURVE client of the server (call before connect).
// Nothing happens when self is NULL or disabled.
void nsq_curve_client_apply(const nsq_curve_client_t *self, zsock_t *socket);

typedef struct _nsq_curve_server_t nsq_curve_server_t;

// Checks a server's settings without starting anything (a daemon's
// configure step): an allow directory needs a secret key file, which must
// be mode 0600 or narrower. Returns 0, or -1 with one line in error.
int nsq_curve_server_check(const char *secret_key_file, const char *allow_dir, char *error,
                           size_t size);

// Loads the server's key pair from secret_key_file (a _secret certificate,
// mode 0600) and joins the ZAP handler with its own domain; allow_dir (NULL or "" = any
// client) holds the allowed clients' public certificates. Caller owns the
// result; NULL with one line in error (a file that cannot be read, a
// secret file wider than 0600, an allow directory that cannot be read,
// or a ZAP handler that cannot start: one not ours bound already).
nsq_curve_server_t *nsq_curve_server_new(const char *secret_key_file, const char *allow_dir,
                                         char *error, size_t size);

// Makes socket a CURVE server with our keys, and watches its handshakes
// (failures are logged). Call before bind, on the thread that owns
// socket. Returns 0, or -1 if the monitor cannot be started.
int nsq_curve_server_apply(nsq_curve_server_t *self, zsock_t *socket);

// Leaves the ZAP handler (clients connecting afterwards are refused until
// the socket closes; the handler stops with its last server). Nulls *self_p; accepts NULL. Destroy
// it after the sockets it was applied to.
void nsq_curve_server_destroy(nsq_curve_server_t **self_p);

// Asks every server object to read its allow directory again. Safe to
// call from a signal handler.
void nsq_curve_reload_request(void);

// Writes a fresh key pair as czmq certificates: path (public) and
// path_secret (mode 0600). Returns 0, or -1 with one line in error.
int nsq_curve_keys_write(const char *path, char *error, size_t size);

// Self-test; returns 0 on success.
int nsq_curve_test(void);

#endif
