/*  bench_http - nsq-bench's HTTP modes: http-pub and http-mpub
    SPDX-License-Identifier: MIT

    --connections libcurl easy handles (each one keep-alive connection,
    a "slot") run on one curl multi handle. Each slot carries one request
    at a time: POST /pub with one body of --size bytes, or POST
    /mpub?binary=true with --batch of them (the last one shorter); when a
    request finishes its slot is given the next, until --count messages
    were sent. A message counts as failed when its request did not end in
    200. The run is timed from the first request to the last answer.
*/
#include "bench_http.h"

#include "bench_report.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <czmq.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t s_discard(char *data, size_t size, size_t count, void *arg)
{
    (void) data;
    (void) arg;
    return size * count;
}

// Builds an /mpub?binary=true body of count messages of size bytes.
static char *s_mpub_body(size_t count, size_t size, size_t *length)
{
    *length = 4 + count * (4 + size);
    char *body = malloc(*length);
    if (!body)
        return NULL;
    uint32_t header = htonl((uint32_t) count);
    memcpy(body, &header, 4);
    char *at = body + 4;
    for (size_t i = 0; i < count; i++) {
        uint32_t message_size = htonl((uint32_t) size);
        memcpy(at, &message_size, 4);
        memset(at + 4, 'm', size);
        at += 4 + size;
    }
    return body;
}

typedef struct {
    CURL *easy;  // one keep-alive connection
    char *body;  // request body
    size_t length;
    int64_t messages;  // messages in this request
} s_http_slot_t;

// Points slot at its next request: messages messages (1 for /pub).
static int s_http_prepare(s_http_slot_t *slot, const bench_config_t *config, const char *url,
                          int64_t messages, bool mpub)
{
    if (slot->messages != messages || !slot->body) {
        free(slot->body);
        slot->body = mpub ? s_mpub_body((size_t) messages, config->size, &slot->length)
                          : malloc(config->size);
        if (!slot->body)
            return -1;
        if (!mpub) {
            slot->length = config->size;
            memset(slot->body, 'p', config->size);
        }
        slot->messages = messages;
    }
    curl_easy_setopt(slot->easy, CURLOPT_URL, url);
    curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDS, slot->body);
    curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) slot->length);
    curl_easy_setopt(slot->easy, CURLOPT_WRITEFUNCTION, s_discard);
    curl_easy_setopt(slot->easy, CURLOPT_PRIVATE, slot);
    return 0;
}

typedef struct {
    const bench_config_t *config;
    CURLM *multi;
    char url[512];
    bool mpub;
    int64_t issued;     // messages put in requests so far
    int64_t completed;  // messages whose request finished
    int64_t errors;     // failed messages
    struct curl_slist *headers;
} s_http_run_t;

// Starts slot's next request if messages remain. Returns 1 if started.
static int s_http_issue(s_http_run_t *run, s_http_slot_t *slot)
{
    int64_t left = run->config->count - run->issued;
    if (left <= 0)
        return 0;
    int64_t messages = run->mpub ? (left < run->config->batch ? left : run->config->batch) : 1;
    if (s_http_prepare(slot, run->config, run->url, messages, run->mpub))
        return 0;
    curl_easy_setopt(slot->easy, CURLOPT_HTTPHEADER, run->headers);
    run->issued += messages;
    curl_multi_add_handle(run->multi, slot->easy);
    return 1;
}

// Collects finished requests and reuses their handles.
static void s_http_collect(s_http_run_t *run)
{
    int queued;
    CURLMsg *info;
    while ((info = curl_multi_info_read(run->multi, &queued))) {
        if (info->msg != CURLMSG_DONE)
            continue;
        s_http_slot_t *slot = NULL;
        long status = 0;
        curl_easy_getinfo(info->easy_handle, CURLINFO_PRIVATE, (char **) &slot);
        curl_easy_getinfo(info->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        if (info->data.result != CURLE_OK || status != 200)
            run->errors += slot->messages;
        run->completed += slot->messages;
        curl_multi_remove_handle(run->multi, slot->easy);
        s_http_issue(run, slot);
    }
}

int bench_http_run(const bench_config_t *config, bool mpub)
{
    s_http_run_t run = {.config = config, .mpub = mpub};
    snprintf(run.url, sizeof run.url, "http://%s/%s?topic=%s%s", config->http_address,
             mpub ? "mpub" : "pub", config->topic, mpub ? "&binary=true" : "");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    run.multi = curl_multi_init();
    run.headers = curl_slist_append(NULL, "Expect:");
    if (config->auth_secret[0]) {
        char header[sizeof config->auth_secret + 32];
        snprintf(header, sizeof header, "Authorization: Bearer %s", config->auth_secret);
        run.headers = curl_slist_append(run.headers, header);
    }
    size_t slots_count = (size_t) config->connections;
    s_http_slot_t *slots = calloc(slots_count, sizeof *slots);
    int64_t start = bench_now_ns();
    for (size_t i = 0; i < slots_count; i++) {
        slots[i].easy = curl_easy_init();
        s_http_issue(&run, &slots[i]);
    }
    while (run.completed < run.issued && !zsys_interrupted) {
        int running = 0;
        curl_multi_perform(run.multi, &running);
        s_http_collect(&run);
        if (run.completed < run.issued)
            curl_multi_poll(run.multi, NULL, 0, 100, NULL);
    }
    double seconds = (double) (bench_now_ns() - start) / 1e9;
    bench_report(config->mode, config->size, run.completed - run.errors, seconds, NULL, 0,
                 run.errors, 0);
    for (size_t i = 0; i < slots_count; i++) {
        curl_multi_remove_handle(run.multi, slots[i].easy);
        curl_easy_cleanup(slots[i].easy);
        free(slots[i].body);
    }
    free(slots);
    curl_slist_free_all(run.headers);
    curl_multi_cleanup(run.multi);
    curl_global_cleanup();
    return run.errors ? 1 : 0;
}
