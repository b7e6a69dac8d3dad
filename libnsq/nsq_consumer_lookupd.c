/*  nsq_consumer_lookupd - the consumer's lookupd discovery
    SPDX-License-Identifier: MIT

    nsq_consumer_connect_lookupd starts the poller (nsq_discovery, its own
    thread) on first use, with the TLS settings and poll interval given
    before (kept here until then, and passed on when given after), and
    reads its results on the consumer's zloop: a broker listed for the
    first time is connected as by nsq_consumer_connect (one connected by
    hand already is left alone), a broker found this way that no lookupd
    lists any more is dropped. While closing, results change nothing.
    nsq_consumer_lookupd_answered says whether any lookupd answered a
    query yet (also "topic not found"), for readiness probes.
*/
#include "nsq_consumer_internal.h"
#include "nsq_http_client.h"
#include "nsq_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

// A broker a lookupd lists for the first time: connect to it.
static int s_on_found(void *arg, const char *broker)
{
    nsq_consumer_t *self = arg;
    if (nsq_consumer_connect(self, broker) != 0)
        return -1;  // malformed, or connected by hand already
    nsq_info("consumer %s/%s: broker %s found through lookupd", self->topic, self->channel, broker);
    return 0;
}

// A broker found through lookupds that none lists any more: drop it.
static void s_on_lost(void *arg, const char *broker)
{
    nsq_consumer_t *self = arg;
    nsq_info("consumer %s/%s: broker %s no longer listed by any lookupd, dropping it", self->topic,
             self->channel, broker);
    nsq_consumer_disconnect(self, broker);
}

static int s_on_discovery(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    (void) sock;
    static const nsq_discovery_events_t events = {.found = s_on_found, .lost = s_on_lost};
    nsq_consumer_t *self = arg;
    // Only answered rounds are reported; while closing, nothing changes
    self->lookupd_answered |=
        nsq_discovery_apply(self->discovery, self->closing ? NULL : &events, self);
    return 0;
}

int nsq_consumer_connect_lookupd(nsq_consumer_t *self, const char *http_address)
{
    if (!self->discovery) {
        self->discovery = nsq_discovery_new(self->topic);
        if (self->discovery)
            nsq_discovery_set_tls(self->discovery, self->lookupd_tls[0], self->lookupd_tls[1],
                                  self->lookupd_tls[2]);
        if (!self->discovery) {
            errno = ENOMEM;
            return -1;
        }
        if (self->lookupd_poll_ms)
            nsq_discovery_set_interval(self->discovery, self->lookupd_poll_ms);
        zloop_reader(self->loop, nsq_discovery_sock(self->discovery), s_on_discovery, self);
    }
    return nsq_discovery_add(self->discovery, http_address);
}

void nsq_consumer_set_lookupd_poll_interval(nsq_consumer_t *self, uint32_t milliseconds)
{
    self->lookupd_poll_ms = milliseconds;
    if (self->discovery)
        nsq_discovery_set_interval(self->discovery, milliseconds);
}

bool nsq_consumer_lookupd_answered(nsq_consumer_t *self)
{
    return self->lookupd_answered;
}

int nsq_consumer_set_lookupd_tls(nsq_consumer_t *self, const char *root_ca_file,
                                 const char *cert_file, const char *key_file)
{
    char error[512];
    nsq_http_client_tls_t tls = {root_ca_file, cert_file, key_file};
    if (nsq_http_client_tls_check(&tls, "tls-key", error, sizeof error)) {
        nsq_error("consumer: %s", error);
        errno = EINVAL;
        return -1;
    }
    const char *given[3] = {root_ca_file, cert_file, key_file};
    for (int index = 0; index < 3; index++) {
        free(self->lookupd_tls[index]);
        self->lookupd_tls[index] = given[index] ? strdup(given[index]) : NULL;
    }
    if (self->discovery)
        nsq_discovery_set_tls(self->discovery, root_ca_file, cert_file, key_file);
    return 0;
}

void consumer_lookupd_destroy(nsq_consumer_t *self)
{
    if (self->discovery)
        zloop_reader_end(self->loop, nsq_discovery_sock(self->discovery));
    nsq_discovery_destroy(&self->discovery);
    for (int index = 0; index < 3; index++)
        free(self->lookupd_tls[index]);
}
