/*  lookupd_registry_test - the registry's self-test: identify, register,
    tombstones, ephemeral names, expiry, delete, and the JSON answers in order
    SPDX-License-Identifier: MIT
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lookupd_registry.h"

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "lookupd_registry_test: %s:%d: %s\n", __FILE__, __LINE__, #cond);      \
            goto failed;                                                                           \
        }                                                                                          \
    } while (0)

static bool s_contains(const char *text, const char *part)
{
    return text && strstr(text, part) != NULL;
}

// Many topics and channels, registered out of order, are listed in order by
// /topics, /channels and /nodes.
static int s_test_sorted(void)
{
    lookupd_registry_t *self = lookupd_registry_new(1000, 500);
    lookupd_producer_info_t info = {"127.0.0.1", "host-a", "10.0.0.1", "0.1.0", 4151, 4152, 0, 0};
    char *json = NULL, *expected = NULL;
    zlistx_t *channels = NULL;
    S_CHECK(self && lookupd_registry_identify(self, "aa", &info, 0) == 0);
    S_CHECK(lookupd_registry_create(self, "orders", NULL) == 0);
    for (int i = 199; i >= 0; i--) {
        char name[16];
        snprintf(name, sizeof name, "t%03d", i);
        S_CHECK(lookupd_registry_register(self, "aa", name, NULL) == 0);
        S_CHECK(lookupd_registry_create(self, "orders", name) == 0);
    }
    channels = lookupd_registry_channels(self, "orders");
    S_CHECK(channels && zlistx_size(channels) == 200);
    const char *previous = "";
    for (const char *name = zlistx_first(channels); name; name = zlistx_next(channels)) {
        S_CHECK(strcmp(previous, name) < 0);
        previous = name;
    }
    expected = strdup("[\"t000\"");
    for (int i = 1; i < 200 && expected; i++) {
        char *longer = zsys_sprintf("%s,\"t%03d\"", expected, i);
        free(expected);
        expected = longer;
    }
    S_CHECK(expected);
    json = lookupd_registry_topics_json(self);
    S_CHECK(s_contains(json, "{\"topics\":[\"orders\",") && s_contains(json, expected + 1));
    zstr_free(&json);
    json = lookupd_registry_channels_json(self, "orders");
    S_CHECK(s_contains(json, expected));
    zstr_free(&json);
    json = lookupd_registry_nodes_json(self, 0);
    S_CHECK(s_contains(json, expected));
    zstr_free(&json);
    free(expected);
    zlistx_destroy(&channels);
    lookupd_registry_destroy(&self);
    return 0;
failed:
    zstr_free(&json);
    free(expected);
    zlistx_destroy(&channels);
    lookupd_registry_destroy(&self);
    return -1;
}

int lookupd_registry_test(void)
{
    if (s_test_sorted() != 0)
        return -1;
    lookupd_registry_t *self = lookupd_registry_new(1000, 500);
    char *json = NULL;
    zlistx_t *channels = NULL;
    S_CHECK(self);
    lookupd_producer_info_t info = {"127.0.0.1", "host-a", "10.0.0.1", "0.1.0", 4151, 4152, 0, 0};
    lookupd_producer_info_t missing = info;
    missing.broadcast_address = "";
    S_CHECK(lookupd_registry_identify(self, "aa", &missing, 0) == -1 && errno == EINVAL);
    missing = info;
    missing.zmq_port = 0;
    S_CHECK(lookupd_registry_identify(self, "aa", &missing, 0) == -1);
    missing = info;
    missing.https_port = 70000;
    S_CHECK(lookupd_registry_identify(self, "aa", &missing, 0) == -1);
    S_CHECK(!lookupd_registry_known(self, "aa"));
    S_CHECK(lookupd_registry_register(self, "aa", "orders", NULL) == -1 && errno == ENOENT);

    S_CHECK(lookupd_registry_identify(self, "aa", &info, 0) == 0);
    info.broadcast_address = "10.0.0.2";
    info.hostname = "host-\"b\"";
    info.https_port = 4153;
    S_CHECK(lookupd_registry_identify(self, "bb", &info, 0) == 0);
    S_CHECK(lookupd_registry_register(self, "aa", "orders", "billing") == 0);
    S_CHECK(lookupd_registry_register(self, "bb", "orders", NULL) == 0);
    S_CHECK(lookupd_registry_register(self, "bb", "bad name", NULL) == -1 && errno == EINVAL);
    S_CHECK(lookupd_registry_register(self, "bb", "orders", "x:y") == -1);
    S_CHECK(lookupd_registry_has_topic(self, "orders"));
    json = lookupd_registry_lookup_json(self, "orders", 10);
    S_CHECK(s_contains(json, "\"channels\":[\"billing\"]"));
    S_CHECK(s_contains(json, "\"broadcast_address\":\"10.0.0.1\""));
    S_CHECK(s_contains(json, "\"broadcast_address\":\"10.0.0.2\""));
    S_CHECK(s_contains(json, "\"hostname\":\"host-\\\"b\\\"\""));
    S_CHECK(s_contains(json, "\"tcp_port\":0,\"http_port\":4151,\"zmq_port\":4152"));
    S_CHECK(s_contains(json, "\"zmq_port\":4152,\"https_port\":0,"));
    S_CHECK(s_contains(json, "\"zmq_port\":4152,\"https_port\":4153,"));
    zstr_free(&json);
    S_CHECK(lookupd_registry_lookup_json(self, "nothing", 10) == NULL);

    // Tombstone hides one producer from /lookup until it expires.
    S_CHECK(lookupd_registry_tombstone(self, "orders", "10.0.0.9:4151", 10) == -1);
    S_CHECK(lookupd_registry_tombstone(self, "orders", "10.0.0.2:4151", 10) == 0);
    json = lookupd_registry_lookup_json(self, "orders", 20);
    S_CHECK(!s_contains(json, "10.0.0.2") && s_contains(json, "10.0.0.1"));
    zstr_free(&json);
    json = lookupd_registry_nodes_json(self, 20);
    S_CHECK(s_contains(json, "\"tombstones\":[true],\"topics\":[\"orders\"]"));
    zstr_free(&json);
    lookupd_registry_touch(self, "aa", 400);
    lookupd_registry_touch(self, "bb", 400);
    S_CHECK(lookupd_registry_expire(self, 600) == 0);
    json = lookupd_registry_lookup_json(self, "orders", 600);
    S_CHECK(s_contains(json, "10.0.0.2"));
    zstr_free(&json);

    // Channels, unregister, ephemeral registrations.
    S_CHECK(lookupd_registry_create(self, "orders", "audit") == 0);
    channels = lookupd_registry_channels(self, "orders");
    S_CHECK(channels && zlistx_size(channels) == 2);
    S_CHECK(streq(zlistx_first(channels), "audit") && streq(zlistx_next(channels), "billing"));
    zlistx_destroy(&channels);
    S_CHECK(lookupd_registry_register(self, "aa", "orders", "tmp#ephemeral") == 0);
    S_CHECK(lookupd_registry_unregister(self, "aa", "orders", "tmp#ephemeral") == 0);
    json = lookupd_registry_channels_json(self, "orders");
    S_CHECK(s_contains(json, "{\"channels\":[\"audit\",\"billing\"]}"));
    zstr_free(&json);
    S_CHECK(lookupd_registry_unregister(self, "aa", "orders", NULL) == 0);
    json = lookupd_registry_lookup_json(self, "orders", 600);
    S_CHECK(!s_contains(json, "10.0.0.1") && s_contains(json, "10.0.0.2"));
    zstr_free(&json);

    // A silent producer expires with its registrations; topics stay.
    lookupd_registry_touch(self, "aa", 1500);
    S_CHECK(lookupd_registry_expire(self, 1500) == 1);
    S_CHECK(!lookupd_registry_known(self, "bb") && lookupd_registry_known(self, "aa"));
    json = lookupd_registry_lookup_json(self, "orders", 1500);
    S_CHECK(s_contains(json, "\"producers\":[]"));
    zstr_free(&json);
    json = lookupd_registry_topics_json(self);
    S_CHECK(s_contains(json, "{\"topics\":[\"orders\"]}"));
    zstr_free(&json);

    // Deleting a topic removes its channels; removing a producer is idempotent.
    S_CHECK(lookupd_registry_delete(self, "orders", "nothing") == -1);
    S_CHECK(lookupd_registry_delete(self, "orders", NULL) == 0);
    S_CHECK(!lookupd_registry_has_topic(self, "orders"));
    json = lookupd_registry_channels_json(self, "orders");
    S_CHECK(s_contains(json, "{\"channels\":[]}"));
    zstr_free(&json);
    lookupd_registry_remove_producer(self, "aa");
    lookupd_registry_remove_producer(self, "aa");
    S_CHECK(lookupd_registry_producer_count(self) == 0);
    lookupd_registry_destroy(&self);
    lookupd_registry_destroy(&self);
    return 0;
failed:
    zstr_free(&json);
    zlistx_destroy(&channels);
    lookupd_registry_destroy(&self);
    return -1;
}
