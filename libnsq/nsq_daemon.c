/*  nsq_daemon - the shared life of a daemon's main thread
    SPDX-License-Identifier: MIT
*/
#include "nsq_daemon.h"

#include <stdio.h>
#include <string.h>

#include "nsq_log.h"

// Length of the host part of "host:port" (all of it without a colon).
static int s_host_length(const char *address)
{
    const char *colon = strrchr(address, ':');
    return (int) (colon ? (size_t) (colon - address) : strlen(address));
}

// Starts the actor and prints READY. Returns the actor, or NULL.
static zactor_t *s_start(zactor_fn *actor_fn, void *args, const char *http_address,
                         const char *zmq_address)
{
    zactor_t *actor = zactor_new(actor_fn, args);
    if (!actor)
        return NULL;
    char *status = NULL, *first = NULL, *second = NULL;
    zstr_recvx(actor, &status, &first, &second, NULL);
    if (!status || !streq(status, "READY")) {
        nsq_error("cannot start: %s", first ? first : "unknown error");
        zactor_destroy(&actor);
    } else {
        printf("READY http=%.*s:%s zmq=%.*s:%s\n", s_host_length(http_address), http_address, first,
               s_host_length(zmq_address), zmq_address, second ? second : "0");
        fflush(stdout);
    }
    zstr_free(&status);
    zstr_free(&first);
    zstr_free(&second);
    return actor;
}

int nsq_daemon_run(zactor_fn *actor_fn, void *args, const char *http_address,
                   const char *zmq_address)
{
    zsys_init();
    zsys_set_logstream(NULL);
    zactor_t *actor = s_start(actor_fn, args, http_address, zmq_address);
    if (!actor)
        return 1;
    // czmq turns SIGINT/SIGTERM into zsys_interrupted; the actor's loop is
    // nonstop, so this thread decides when to stop.
    while (!zsys_interrupted)
        zclock_sleep(100);
    nsq_info("signal received, shutting down");
    zactor_destroy(&actor);
    nsq_info("stopped");
    return 0;
}
