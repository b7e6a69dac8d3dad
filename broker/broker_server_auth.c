/*  broker_server_auth - the core's authorization: AUTH, and the check
    every door makes before a publish, a subscribe, stats or an
    administrative operation
    SPDX-License-Identifier: MIT

    The server keeps no answer itself: the auth client (broker_auth.c)
    caches them per query, and a session carries only its secret
    (broker_client_auth_secret), so an answer past its ttl is asked again
    on the next check, whichever door asks.
*/
#include "broker_server.h"

#include <stdio.h>
#include <string.h>

#include "nsq_names.h"

bool broker_server_auth_required(const broker_server_t *self)
{
    return broker_server_auth_client(self) != NULL;
}

// The IP of "IP:port" or "[IPv6]:port" into out ("" if unknown).
static void s_remote_ip(const char *address, char *out, size_t size)
{
    const char *colon = strrchr(address, ':');
    size_t length = colon ? (size_t) (colon - address) : strlen(address);
    if (length >= 2 && address[0] == '[' && address[length - 1] == ']')
        address++, length -= 2;
    snprintf(out, size, "%.*s", (int) length, address);
}

// The query a session's secret makes.
static broker_auth_query_t s_client_query(const broker_client_t *client, const void *secret,
                                          size_t size, char *ip, size_t ip_size)
{
    s_remote_ip(broker_client_remote_address(client), ip, ip_size);
    broker_auth_query_t query = {secret, size, ip, broker_client_tls(client),
                                 broker_client_common_name(client)};
    return query;
}

broker_result_t broker_server_auth(broker_server_t *self, broker_client_t *client,
                                   const void *secret, size_t size, int64_t now,
                                   broker_auth_reply_t *reply, broker_auth_wait_fn *fn, void *arg)
{
    broker_auth_t *auth = broker_server_auth_client(self);
    size_t held;
    if (!auth)
        return BROKER_AUTH_DISABLED;
    if (broker_client_auth_secret(client, &held))
        return BROKER_INVALID;
    char ip[64];
    broker_auth_query_t query = s_client_query(client, secret, size, ip, sizeof ip);
    const broker_auth_grant_t *grant;
    broker_result_t result = broker_auth_lookup(auth, &query, now, &grant, fn, arg);
    if (result != BROKER_OK)
        return result;
    if (broker_auth_grant_count(grant) == 0)
        return BROKER_UNAUTHORIZED;  // as nsqd: "no authorizations found"
    if (broker_client_set_auth_secret(client, secret, size) != 0)
        return BROKER_AUTH_UNAVAILABLE;
    reply->identity = broker_auth_grant_identity(grant);
    reply->identity_url = broker_auth_grant_identity_url(grant);
    broker_client_set_auth_identity(client, reply->identity, reply->identity_url);
    reply->permission_count = broker_auth_grant_count(grant);
    return BROKER_OK;
}

broker_result_t broker_server_authorize_query(broker_server_t *self,
                                              const broker_auth_query_t *query,
                                              broker_permit_t permit, const char *topic,
                                              const char *channel, int64_t now,
                                              broker_auth_wait_fn *fn, void *arg)
{
    broker_auth_t *auth = broker_server_auth_client(self);
    if (!auth)
        return BROKER_OK;
    if (!query->secret)
        return BROKER_AUTH_FAILED;
    const broker_auth_grant_t *grant;
    broker_result_t result = broker_auth_lookup(auth, query, now, &grant, fn, arg);
    if (result != BROKER_OK)
        return result;
    return broker_auth_grant_allows(grant, permit, topic, channel) ? BROKER_OK
                                                                   : BROKER_UNAUTHORIZED;
}

broker_result_t broker_server_authorize(broker_server_t *self, broker_client_t *client,
                                        broker_permit_t permit, const void *topic,
                                        size_t topic_size, const void *channel, size_t channel_size,
                                        int64_t now, broker_auth_wait_fn *fn, void *arg)
{
    if (!broker_server_auth_client(self))
        return BROKER_OK;
    char topic_name[NSQ_NAME_MAX + 1] = "", channel_name[NSQ_NAME_MAX + 1] = "";
    if (permit != BROKER_PERMIT_IDENTITY && nsq_name_copy(topic_name, topic, topic_size) != 0)
        return BROKER_BAD_TOPIC;
    if (channel_size && nsq_name_copy(channel_name, channel, channel_size) != 0)
        return BROKER_BAD_CHANNEL;
    size_t size;
    const char *secret = broker_client_auth_secret(client, &size);
    if (!secret)
        return BROKER_AUTH_FIRST;
    char ip[64];
    broker_auth_query_t query = s_client_query(client, secret, size, ip, sizeof ip);
    return broker_server_authorize_query(self, &query, permit, topic_name, channel_name, now, fn,
                                         arg);
}
