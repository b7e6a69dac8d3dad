/*  broker_auth_test - the auth server client against a fake auth server
    SPDX-License-Identifier: MIT

    The fake (libmicrohttpd on 127.0.0.1, a free port) answers by secret:
    "good" a grant with ttl 1 s, "bad" 403, "junk" 200 with a body that is
    no answer, "broken" 500. Time is the test's: lookups pass `now`, so
    expiry is checked without sleeping.
*/
#include "broker_auth.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define S_GRANT                                                                                    \
    "{\"ttl\":1,\"identity\":\"good-id\",\"authorizations\":[{\"topic\":\"^a$\","                  \
    "\"channels\":[\".*\"],\"permissions\":[\"publish\"]}]}"

static enum MHD_Result s_fake_access(void *cls, struct MHD_Connection *mhd, const char *url,
                                     const char *method, const char *version, const char *upload,
                                     size_t *upload_size, void **context)
{
    (void) cls, (void) url, (void) method, (void) version, (void) upload, (void) upload_size;
    (void) context;
    const char *secret = MHD_lookup_connection_value(mhd, MHD_GET_ARGUMENT_KIND, "secret");
    const char *ip = MHD_lookup_connection_value(mhd, MHD_GET_ARGUMENT_KIND, "remote_ip");
    unsigned status = MHD_HTTP_FORBIDDEN;
    const char *body = "{\"message\":\"AUTH_FAILED\"}";
    bool good = secret && (strcmp(secret, "good") == 0 || strcmp(secret, "s p&a=c%e") == 0);
    if (good && ip && strcmp(ip, "10.0.0.1") == 0)
        status = MHD_HTTP_OK, body = S_GRANT;
    else if (secret && strcmp(secret, "junk") == 0)
        status = MHD_HTTP_OK, body = "<html>";
    else if (secret && strcmp(secret, "broken") == 0)
        status = MHD_HTTP_INTERNAL_SERVER_ERROR, body = "";
    struct MHD_Response *response =
        MHD_create_response_from_buffer(strlen(body), (void *) body, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result result = MHD_queue_response(mhd, status, response);
    MHD_destroy_response(response);
    return result;
}

typedef struct {
    int called;     // times the waiter ran
    int cancelled;  // of which cancelled
} s_waited_t;

static void s_on_answer(void *arg, bool cancelled)
{
    s_waited_t *waited = arg;
    waited->called++;
    waited->cancelled += cancelled;
}

// Reads answers until waited->called reaches target or 5 s pass.
static bool s_wait_answer(broker_auth_t *auth, s_waited_t *waited, int target, int64_t now)
{
    zpoller_t *poller = zpoller_new(broker_auth_socket(auth), NULL);
    int64_t deadline = zclock_mono() + 5000;
    while (waited->called < target && zclock_mono() < deadline)
        if (zpoller_wait(poller, 100))
            broker_auth_on_answer(auth, now);
    zpoller_destroy(&poller);
    return waited->called >= target;
}

// Looks secret up until it is answered; returns the final result.
static broker_result_t s_ask(broker_auth_t *auth, const char *secret, int64_t now,
                             const broker_auth_grant_t **grant)
{
    broker_auth_query_t query = {secret, strlen(secret), "10.0.0.1", false, ""};
    s_waited_t waited = {0, 0};
    broker_result_t result = broker_auth_lookup(auth, &query, now, grant, s_on_answer, &waited);
    if (result != BROKER_AUTH_PENDING)
        return result;
    if (!s_wait_answer(auth, &waited, 1, now) || waited.cancelled)
        return BROKER_AUTH_PENDING;
    return broker_auth_lookup(auth, &query, now, grant, NULL, NULL);
}

// A loopback port nothing listens on, held (bound, never listening) so no
// one takes it meanwhile; returns the socket, *port gets the port.
static int s_refused_port(unsigned *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t size = sizeof address;
    if (fd < 0 || bind(fd, (struct sockaddr *) &address, size) != 0
        || getsockname(fd, (struct sockaddr *) &address, &size) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(address.sin_port);
    return fd;
}

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            printf("failed: %s:%d: %s\n", __FILE__, __LINE__, #condition);                         \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

int broker_auth_test(void)
{
    printf(" * broker_auth: ");
    int rc = 1;
    unsigned refused = 0;
    int held = s_refused_port(&refused);
    broker_auth_t *auth = NULL, *down = NULL;
    struct MHD_Daemon *fake = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                                               s_fake_access, NULL, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        fake ? MHD_get_daemon_info(fake, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    S_CHECK(info && held >= 0);
    char address[64], closed[64];
    snprintf(address, sizeof address, "127.0.0.1:%u", info->port);
    snprintf(closed, sizeof closed, "127.0.0.1:%u", refused);
    const char *both[] = {closed, address};
    auth = broker_auth_new(both, 2, 2000);  // a server that is down, then the fake
    S_CHECK(auth);

    // A grant, asked once, kept for its ttl, asked again after it.
    const broker_auth_grant_t *grant = NULL;
    S_CHECK(s_ask(auth, "good", 0, &grant) == BROKER_OK && grant);
    S_CHECK(strcmp(broker_auth_grant_identity(grant), "good-id") == 0);
    S_CHECK(broker_auth_asked(auth) == 1);
    S_CHECK(s_ask(auth, "good", 999, &grant) == BROKER_OK);
    S_CHECK(broker_auth_asked(auth) == 1);  // from the cache
    S_CHECK(s_ask(auth, "good", 1000, &grant) == BROKER_OK);
    S_CHECK(broker_auth_asked(auth) == 2);  // the ttl passed: asked again

    // Every byte of a secret reaches the auth server as it is (URL-encoded).
    S_CHECK(s_ask(auth, "s p&a=c%e", 0, &grant) == BROKER_OK);

    // Refusals and failures: never a grant.
    S_CHECK(s_ask(auth, "bad", 2000, &grant) == BROKER_AUTH_FAILED && !grant);
    S_CHECK(s_ask(auth, "junk", 2000, &grant) == BROKER_AUTH_UNAVAILABLE && !grant);
    S_CHECK(s_ask(auth, "broken", 2000, &grant) == BROKER_AUTH_UNAVAILABLE && !grant);
    char long_secret[BROKER_AUTH_SECRET_MAX + 2];
    memset(long_secret, 'x', sizeof long_secret - 1);
    long_secret[sizeof long_secret - 1] = '\0';
    S_CHECK(s_ask(auth, long_secret, 2000, &grant) == BROKER_AUTH_FAILED && !grant);
    // ...kept a second, then asked again
    uint64_t asked = broker_auth_asked(auth);
    S_CHECK(s_ask(auth, "bad", 2500, &grant) == BROKER_AUTH_FAILED);
    S_CHECK(broker_auth_asked(auth) == asked);
    S_CHECK(s_ask(auth, "bad", 3000, &grant) == BROKER_AUTH_FAILED);
    S_CHECK(broker_auth_asked(auth) == asked + 1);

    // The answer depends on the query, not the secret alone.
    broker_auth_query_t other_ip = {"good", 4, "10.0.0.2", false, ""};
    s_waited_t waited = {0, 0};
    S_CHECK(broker_auth_lookup(auth, &other_ip, 3000, &grant, s_on_answer, &waited)
            == BROKER_AUTH_PENDING);
    S_CHECK(s_wait_answer(auth, &waited, 1, 3000));
    S_CHECK(broker_auth_lookup(auth, &other_ip, 3000, &grant, NULL, NULL) == BROKER_AUTH_FAILED);

    // Expired entries nobody waits for are forgotten by the tick.
    broker_auth_tick(auth, 100000);
    S_CHECK(s_ask(auth, "good", 100000, &grant) == BROKER_OK);

    // Only a server that is down: unavailable, never a grant; a waiter still
    // pending at destroy is cancelled.
    const char *only_closed[] = {closed};
    down = broker_auth_new(only_closed, 1, 2000);
    S_CHECK(down);
    S_CHECK(s_ask(down, "good", 0, &grant) == BROKER_AUTH_UNAVAILABLE && !grant);
    s_waited_t pending = {0, 0};
    broker_auth_query_t query = {"good", 4, "10.0.0.1", false, ""};
    S_CHECK(broker_auth_lookup(down, &query, 5000, &grant, s_on_answer, &pending)
            == BROKER_AUTH_PENDING);
    broker_auth_destroy(&down);
    S_CHECK(pending.called == 1 && pending.cancelled == 1);
    rc = 0;
    printf("OK\n");
done:
    broker_auth_destroy(&down);
    broker_auth_destroy(&auth);
    if (fake)
        MHD_stop_daemon(fake);
    if (held >= 0)
        close(held);
    return rc;
}
