/*  nsq_daemon - the shared life of a daemon's main thread: start its actor,
    announce READY, wait for SIGINT/SIGTERM, stop the actor
    SPDX-License-Identifier: MIT

    The actor (broker, lookupd) signals its pipe at once and then sends one
    message: ["READY", http_port, zmq_port(, tcp)] once it listens, or ["ERROR",
    reason] after which it has ended. Tests and scripts wait for the line
    `READY http=HOST:PORT zmq=HOST:PORT` (and ` tcp=HOST:PORT` when the
    broker listens for NSQ TCP) that nsq_daemon_run prints.

    The actor sends nothing else while it runs: anything readable on its
    pipe afterwards is czmq's signal that the actor function returned.
    After $TERM its last word, once it has saved what it holds, is
    ["STOPPED", exit_code]: nsq_daemon_run waits for it and exits with that
    code, so a supervisor sees a stop that lost data. czmq's end signal
    always follows it (zactor_destroy discards the word, so tests that
    run an actor directly need not read it).

    SIGHUP asks nsq_curve to read its allow-list again (nsq_daemon_run
    installs the handler; the default would end the process).

    API in call order: nsq_daemon_configure (main), nsq_daemon_warn_if_open
    (main), nsq_daemon_run (main);
    in the actor nsq_daemon_router, nsq_daemon_on_pipe (its loop's pipe
    reader), nsq_daemon_send_ready, nsq_daemon_send_stopped (its last
    word, after $TERM).
*/
#ifndef NSQ_DAEMON_H
#define NSQ_DAEMON_H

#include <czmq.h>
#include <stdint.h>

#include "nsq_curve.h"
#include "nsq_options.h"

// Checks config once the table has filled it (what one option cannot check
// alone) and derives what the table does not say. options is the parser,
// for what rows without a field hold. Returns 0, or -1 with a one-line
// reason in error.
typedef int(nsq_daemon_configure_fn)(nsq_options_t *options, void *config, char *error,
                                     size_t error_size);

// Parses argv against the option table (environment variables under
// env_prefix), stores the values into config (nsq_options_store: config
// holds its defaults already, say from nsq_options_store_defaults),
// applies --log-level and --log-json when the table has them, then calls
// configure. The parser is gone when this returns, so the table may not
// borrow strings (const char * fields): such a table is bad configuration.
// Returns -1 when the daemon should run, else the exit code to return at
// once: 0 after --help or --version, 1 after bad configuration (one line
// "program: reason" on stderr).
int nsq_daemon_configure(const char *program, const char *env_prefix,
                         const nsq_option_spec_t *specs, size_t spec_count, int argc, char **argv,
                         nsq_daemon_configure_fn *configure, void *config);

// Actor side: creates the ROUTER a daemon serves on, bound to "host:port"
// or "[ipv6]:port" (port 0: the kernel picks a free port at random,
// nsq_endpoint_bind), with ROUTER_MANDATORY (a
// send to a vanished peer fails with EHOSTUNREACH), linger 0, hwm as both
// high-water marks (messages queued per peer each way) and max_message_size
// as ZMQ_MAXMSGSIZE (a peer that sends a larger frame is disconnected
// before it is read; -1 = no limit). The options are set before bind:
// libzmq applies them only to connections made after they are set. With
// curve (not NULL) it is a CURVE server (nsq_curve_server_apply). Stores
// the bound port in *port. Caller owns the result; NULL (errno) if the
// address is malformed or cannot be bound.
zsock_t *nsq_daemon_router(const char *address, int hwm, int64_t max_message_size,
                           nsq_curve_server_t *curve, int *port);

// True if address ("host:port", "[ipv6]:port") is reachable from other
// hosts: not a loopback address (a name counts as reachable).
bool nsq_daemon_is_exposed(const char *address);

// Logs one warning at start if any of addresses is reachable from other
// hosts while nothing is secured (secured: CURVE, TLS required or auth).
void nsq_daemon_warn_if_open(const char *const *addresses, size_t count, bool secured);

// Actor side: a zloop reader for the actor pipe that ends the loop on
// $TERM and ignores anything else.
int nsq_daemon_on_pipe(zloop_t *loop, zsock_t *pipe, void *arg);

// Actor side: announces on pipe that it listens (["READY", http, zmq]) and
// logs it.
void nsq_daemon_send_ready(zsock_t *pipe, uint16_t http_port, uint16_t zmq_port);

// The same with a third listener, tcp ("HOST:PORT", borrowed; NULL: none):
// READY then ends in " tcp=HOST:PORT".
void nsq_daemon_send_ready_tcp(zsock_t *pipe, uint16_t http_port, uint16_t zmq_port,
                               const char *tcp);

// Actor side, as the actor function returns after $TERM: ["STOPPED",
// exit_code], 0 when everything it held was saved, 1 when some of it could
// not be (logged). Every actor nsq_daemon_run runs must send it.
void nsq_daemon_send_stopped(zsock_t *pipe, int exit_code);

// Runs actor(args) until SIGINT or SIGTERM. http_address and zmq_address are
// the configured "host:port" strings; READY names their hosts with the
// bound ports. Returns the process exit code: the actor's own after a stop
// (nsq_daemon_send_stopped: 0 if clean), 1 if the actor could not start
// (its reason is logged) or ended on its own while running (one error
// line: the process must not run on serving nothing).
int nsq_daemon_run(zactor_fn *actor, void *args, const char *http_address, const char *zmq_address);

// Self-test; returns 0 on success.
int nsq_daemon_test(void);

#endif
