/*  broker_tcp_test - the self-test of the NSQ TCP door (broker_tcp,
    broker_tcp_session, broker_tcp_commands) inside a broker actor
    SPDX-License-Identifier: MIT

    What the integration tests cannot reach from outside: the durable path
    against the syncer's result. A broker actor runs in this process with
    --durable and a data path; the raw V2 client pipelines a PUB and a
    negotiating IDENTIFY, whose reply the core produces at once while the
    PUB waits for its group commit: the PUB's OK must still come first.
    With every fdatasync failing (config.test_sync_fault) the PUB is
    answered E_PUB_FAILED once the sync has failed, and nothing follows it.
*/
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker.h"
#include "broker_config.h"
#include "broker_tcp.h"
#include "integration/v2_client.h"

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "broker_tcp_test: %s:%d: %s\n", __FILE__, __LINE__, #condition);       \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

#define S_IDENTIFY "{\"feature_negotiation\":true}"

// Starts a durable broker actor on data_path whose first fdatasync fails
// with datasync_errno (0: none fails); its NSQ TCP port goes to *port.
// NULL if it did not get ready.
static zactor_t *s_start(const char *data_path, int datasync_errno, uint16_t *port)
{
    static broker_config_t config;  // the actor copies it
    broker_config_for_test(&config, data_path, 0, 0);
    strcpy(config.http_address, "127.0.0.1:0");
    strcpy(config.zmq_address, "127.0.0.1:0");
    config.durable = true;
    config.test_datasync_errno = datasync_errno;
    zactor_t *broker = zactor_new(broker_actor, &config);
    char *status = NULL, *http = NULL, *zmq = NULL, *tcp = NULL;
    zstr_recvx(broker, &status, &http, &zmq, &tcp, NULL);
    const char *colon = tcp ? strrchr(tcp, ':') : NULL;
    if (status && streq(status, "READY") && colon)
        *port = (uint16_t) atoi(colon + 1);
    else
        zactor_destroy(&broker);
    zstr_free(&status);
    zstr_free(&http);
    zstr_free(&zmq);
    zstr_free(&tcp);
    return broker;
}

// Sends "  V2", a PUB and a negotiating IDENTIFY in one write.
static int s_pipeline(v2_client_t *client)
{
    char bytes[128];
    int length = snprintf(bytes, sizeof bytes, "  V2PUB durable\n%c%c%c%cx", 0, 0, 0, 1);
    int rc = v2_client_send(client, bytes, (size_t) length);
    return rc ? rc : v2_client_command(client, "IDENTIFY\n", S_IDENTIFY, strlen(S_IDENTIFY));
}

// The sync succeeds: OK (the PUB), then the IDENTIFY's JSON.
static int s_in_order(const char *data_path)
{
    int rc = -1;
    uint16_t port = 0;
    zactor_t *broker = s_start(data_path, 0, &port);
    v2_client_t *client = broker ? v2_client_connect(port) : NULL;
    S_CHECK(client && s_pipeline(client) == 0);
    S_CHECK(v2_client_expect(client, 0, "OK"));
    S_CHECK(v2_client_expect(client, 0, "{\"max_rdy_count\""));
    rc = 0;
done:
    v2_client_destroy(&client);
    zactor_destroy(&broker);
    return rc;
}

// The group commit's fdatasync fails: E_PUB_FAILED (only the sync's result
// can say so), then the connection closes without the IDENTIFY's reply.
static int s_sync_failed(const char *data_path)
{
    int rc = -1;
    uint16_t port = 0;
    zactor_t *broker = s_start(data_path, EIO, &port);
    v2_client_t *client = broker ? v2_client_connect(port) : NULL;
    S_CHECK(client);
    S_CHECK(s_pipeline(client) == 0);
    S_CHECK(v2_client_expect(client, 1, "E_PUB_FAILED PUB failed disk sync failed"));
    char data[256];
    int type;
    S_CHECK(v2_client_frame(client, &type, data, sizeof data, 5000) < 0);  // nothing after it
    S_CHECK(v2_client_ended(client, 5000));
    rc = 0;
done:
    v2_client_destroy(&client);
    zactor_destroy(&broker);
    return rc;
}

int broker_tcp_test(void)
{
    char first[] = "/tmp/broker_tcp_test_XXXXXX", second[] = "/tmp/broker_tcp_test_XXXXXX";
    int rc = -1;
    if (!mkdtemp(first) || !mkdtemp(second))
        return -1;
    S_CHECK(s_in_order(first) == 0);
    S_CHECK(s_sync_failed(second) == 0);
    rc = 0;
done:
    for (int i = 0; i < 2; i++) {
        char command[128];
        snprintf(command, sizeof command, "rm -rf %s", i ? second : first);
        if (system(command) != 0)
            fprintf(stderr, "broker_tcp_test: cannot remove %s\n", i ? second : first);
    }
    return rc;
}
