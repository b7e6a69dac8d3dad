/*  nsq_daemon - the shared life of a daemon's main thread
    SPDX-License-Identifier: MIT
*/
#include "nsq_daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nsq_address.h"
#include "nsq_endpoint.h"
#include "nsq_log.h"

static bool s_has_option(const nsq_option_spec_t *specs, size_t count, const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (streq(specs[i].name, name))
            return true;
    return false;
}

// Applies --log-level and --log-json. Returns 0, or -1 with a reason.
static int s_configure_log(nsq_options_t *options, const nsq_option_spec_t *specs, size_t count,
                           char *error, size_t size)
{
    if (s_has_option(specs, count, "log-level")) {
        nsq_log_level_t level;
        if (nsq_log_level_parse(nsq_options_string(options, "log-level"), &level))
            return snprintf(error, size, "--log-level must be debug, info, warn or error"), -1;
        nsq_log_set_level(level);
    }
    if (s_has_option(specs, count, "log-json"))
        nsq_log_set_json(nsq_options_bool(options, "log-json"));
    return 0;
}

// True if a row borrows its string from the parser.
static bool s_borrows(const nsq_option_spec_t *specs, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (specs[i].field.kind == NSQ_OPTION_FIELD_TEXT
            || specs[i].field.kind == NSQ_OPTION_FIELD_TEXT_LIST)
            return true;
    return false;
}

int nsq_daemon_configure(const char *program, const char *env_prefix,
                         const nsq_option_spec_t *specs, size_t spec_count, int argc, char **argv,
                         nsq_daemon_configure_fn *configure, void *config)
{
    nsq_log_set_program(program);
    bool borrows = s_borrows(specs, spec_count);
    nsq_options_t *options =
        borrows ? NULL : nsq_options_new(program, env_prefix, specs, spec_count);
    char error[512];
    snprintf(error, sizeof error, "%s", borrows ? "bad option table" : "out of memory");
    int parsed = options ? nsq_options_parse(options, argc, argv, error, sizeof error) : -1;
    if (parsed == 0)
        nsq_options_store(options, config);
    if (parsed == 0
        && (s_configure_log(options, specs, spec_count, error, sizeof error)
            || configure(options, config, error, sizeof error)))
        parsed = -1;
    nsq_options_destroy(&options);
    if (parsed < 0)
        fprintf(stderr, "%s: %s\n", program, error);
    return parsed == 0 ? -1 : parsed < 0 ? 1 : 0;
}

zsock_t *nsq_daemon_router(const char *address, int hwm, int64_t max_message_size,
                           nsq_curve_server_t *curve, int *port)
{
    const char *colon = strrchr(address, ':');
    if (!colon || colon == address) {
        errno = EINVAL;
        return NULL;
    }
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    if (!router)
        return NULL;
    zsock_set_router_mandatory(router, 1);
    zsock_set_linger(router, 0);
    // "[::1]:port", "[::]:port": libzmq binds IPv6 only with this, set
    // before the bind. Not for names: "localhost" must stay 127.0.0.1.
    if (address[0] == '[')
        zsock_set_ipv6(router, 1);
    zsock_set_sndhwm(router, hwm);
    zsock_set_rcvhwm(router, hwm);
    zmq_setsockopt(zsock_resolve(router), ZMQ_MAXMSGSIZE, &max_message_size,
                   sizeof max_message_size);
    if (curve && nsq_curve_server_apply(curve, router) != 0) {
        zsock_destroy(&router);
        return NULL;
    }
    *port = nsq_endpoint_bind(router, address, (size_t) (colon - address), colon + 1);
    if (*port < 0) {
        int saved = errno;
        zsock_destroy(&router);
        errno = saved;
    }
    return router;
}

int nsq_daemon_on_pipe(zloop_t *loop, zsock_t *pipe, void *arg)
{
    (void) loop;
    (void) arg;
    char *command = zstr_recv(pipe);
    int rc = command && streq(command, "$TERM") ? -1 : 0;
    zstr_free(&command);
    return rc;
}

void nsq_daemon_send_ready(zsock_t *pipe, uint16_t http_port, uint16_t zmq_port)
{
    nsq_daemon_send_ready_tcp(pipe, http_port, zmq_port, NULL);
}

void nsq_daemon_send_ready_tcp(zsock_t *pipe, uint16_t http_port, uint16_t zmq_port,
                               const char *tcp)
{
    char http[8], zmq[8];
    snprintf(http, sizeof http, "%u", http_port);
    snprintf(zmq, sizeof zmq, "%u", zmq_port);
    zstr_sendx(pipe, "READY", http, zmq, tcp, NULL);
    if (tcp)
        nsq_info("listening: http port %s, zmq port %s, tcp %s", http, zmq, tcp);
    else
        nsq_info("listening: http port %s, zmq port %s", http, zmq);
}

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
    char *status = NULL, *first = NULL, *second = NULL, *third = NULL;
    zstr_recvx(actor, &status, &first, &second, &third, NULL);
    if (!status || !streq(status, "READY")) {
        nsq_error("cannot start: %s", first ? first : "unknown error");
        zactor_destroy(&actor);
    } else {
        printf("READY http=%.*s:%s zmq=%.*s:%s%s%s\n", s_host_length(http_address), http_address,
               first, s_host_length(zmq_address), zmq_address, second ? second : "0",
               third ? " tcp=" : "", third ? third : "");
        fflush(stdout);
    }
    zstr_free(&status);
    zstr_free(&first);
    zstr_free(&second);
    zstr_free(&third);
    return actor;
}

// Waits for SIGINT or SIGTERM, or for the actor to end on its own. Returns
// true if the actor ended.
static bool s_actor_ended(zactor_t *actor)
{
    zpoller_t *poller = zpoller_new(actor, NULL);
    if (!poller)
        return false;
    // czmq turns SIGINT/SIGTERM into zsys_interrupted; the actor's loop is
    // nonstop, so this thread decides when to stop. The actor sends nothing
    // after READY: a readable pipe is the signal czmq sends when it ends.
    bool ended = false;
    while (!zsys_interrupted && !ended)
        ended = zpoller_wait(poller, 100) != NULL;
    zpoller_destroy(&poller);
    return ended;
}

void nsq_daemon_send_stopped(zsock_t *pipe, int exit_code)
{
    zstr_sendf(pipe, "STOPPED %d", exit_code);
}

// Asks the running actor to end and waits for its last word, which comes
// before czmq's end signal; zactor_destroy then collects that signal.
// Returns the actor's exit code (1 if its word is not understood).
static int s_stop(zactor_t **actor_p)
{
    int exit_code = 1;
    if (zstr_send(*actor_p, "$TERM") == 0) {
        char *word = zstr_recv(*actor_p);
        if (!word || sscanf(word, "STOPPED %d", &exit_code) != 1) {
            nsq_error("the service thread ended without saying how it stopped");
            // What came may have been czmq's end signal: do not wait forever for it.
            zsock_set_rcvtimeo(zactor_sock(*actor_p), 1000);
        }
        zstr_free(&word);
    }
    zactor_destroy(actor_p);
    return exit_code;
}

// SIGHUP: read the CURVE allow-list again (async-signal-safe: an atomic add).
static void s_on_hangup(int signal_number)
{
    (void) signal_number;
    nsq_curve_reload_request();
}

bool nsq_daemon_is_exposed(const char *address)
{
    struct sockaddr_storage parsed;
    if (nsq_address_parse(address, &parsed) != 0)
        return true;  // a name: it may resolve to anything
    if (parsed.ss_family == AF_INET6)
        return !IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *) &parsed)->sin6_addr);
    uint32_t host = ntohl(((struct sockaddr_in *) &parsed)->sin_addr.s_addr);
    return (host >> 24) != 127;
}

void nsq_daemon_warn_if_open(const char *const *addresses, size_t count, bool secured)
{
    char listing[1024] = "";
    size_t used = 0;
    for (size_t index = 0; index < count && !secured; index++)
        if (addresses[index] && *addresses[index] && nsq_daemon_is_exposed(addresses[index])
            && used < sizeof listing)
            used += (size_t) snprintf(listing + used, sizeof listing - used, "%s%s",
                                      used ? ", " : "", addresses[index]);
    if (used)
        nsq_warn("listening on %s with no authentication and no encryption: anyone who reaches "
                 "these ports can publish, consume and delete (README: Security)",
                 listing);
}

int nsq_daemon_run(zactor_fn *actor_fn, void *args, const char *http_address,
                   const char *zmq_address)
{
    struct sigaction hangup = {.sa_handler = s_on_hangup};
    sigemptyset(&hangup.sa_mask);
    hangup.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &hangup, NULL);
    zsys_init();
    zsys_set_logstream(NULL);
    zactor_t *actor = s_start(actor_fn, args, http_address, zmq_address);
    if (!actor)
        return 1;
    if (s_actor_ended(actor)) {
        nsq_error("the service thread stopped unexpectedly; exiting");
        zactor_destroy(&actor);  // collects the end signal still queued
        return 1;
    }
    nsq_info("signal received, shutting down");
    int exit_code = s_stop(&actor);
    if (exit_code == 0)
        nsq_info("stopped");
    else
        nsq_error("stopped, but not everything could be saved: exit code %d", exit_code);
    return exit_code;
}

// ---- self-test ---------------------------------------------------------------

// An actor that reports READY and then ends, as one that failed would.
static void s_test_short_lived(zsock_t *pipe, void *args)
{
    (void) args;
    zsock_signal(pipe, 0);
    nsq_daemon_send_ready(pipe, 1, 2);
}

// An actor that runs until $TERM and then says *args as its exit code,
// or nothing if args is NULL.
static void s_test_stopping(zsock_t *pipe, void *args)
{
    zsock_signal(pipe, 0);
    nsq_daemon_send_ready(pipe, 1, 2);
    char *command = zstr_recv(pipe);
    zstr_free(&command);
    if (args)
        nsq_daemon_send_stopped(pipe, *(int *) args);
}

// Runs s_test_stopping as if SIGTERM came at once; true if the run
// returned expected (within the alarm: no wait for a signal already taken).
static bool s_test_stop(int *says, int expected)
{
    alarm(20);
    zsys_interrupted = 1;
    int rc = nsq_daemon_run(s_test_stopping, says, "127.0.0.1:1", "127.0.0.1:2");
    zsys_interrupted = 0;
    alarm(0);
    if (rc != expected)
        fprintf(stderr, "nsq_daemon_test: an actor that said %d gave exit code %d\n",
                says ? *says : -1, rc);
    return rc == expected;
}

int nsq_daemon_test(void)
{
    alarm(20);  // a daemon that does not notice ends the test here, not at meson's timeout
    int64_t start = zclock_mono();
    int rc = nsq_daemon_run(s_test_short_lived, NULL, "127.0.0.1:1", "127.0.0.1:2");
    alarm(0);
    if (rc != 1 || zsys_interrupted || zclock_mono() - start > 5000) {
        fprintf(stderr, "nsq_daemon_test: an actor that ended gave exit code %d\n", rc);
        return -1;
    }
    // The run stops the actor and returns its word; one that says nothing: 1.
    int lossy = 3;
    return s_test_stop(&lossy, 3) && s_test_stop(NULL, 1) ? 0 : -1;
}
