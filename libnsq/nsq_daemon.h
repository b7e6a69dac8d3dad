/*  nsq_daemon - the shared life of a daemon's main thread: start its actor,
    announce READY, wait for SIGINT/SIGTERM, stop the actor
    SPDX-License-Identifier: MIT

    The actor (broker, lookupd) signals its pipe at once and then sends one
    message: ["READY", http_port, zmq_port] once it listens, or ["ERROR",
    reason] after which it has ended. Tests and scripts wait for the line
    `READY http=HOST:PORT zmq=HOST:PORT` that nsq_daemon_run prints.
*/
#ifndef NSQ_DAEMON_H
#define NSQ_DAEMON_H

#include <czmq.h>

// Runs actor(args) until SIGINT or SIGTERM. http_address and zmq_address are
// the configured "host:port" strings; READY names their hosts with the
// bound ports. Returns the process exit code: 0 after a clean stop, 1 if
// the actor could not start (its reason is logged).
int nsq_daemon_run(zactor_fn *actor, void *args, const char *http_address, const char *zmq_address);

#endif
