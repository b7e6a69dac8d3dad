/*  ctl_http - nsq-ctl's HTTP requests (libcurl) and JSON answers (jansson)
    SPDX-License-Identifier: MIT

    One easy handle per request: nsq-ctl makes a handful, and a fresh
    handle keeps every request's options its own. Answers are capped at
    64 MiB.
*/
#include "ctl.h"
#include "nsq_http_client.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_BODY_MAX (64 * 1024 * 1024)

typedef struct {
    char *data;
    size_t size, capacity;
} s_buffer_t;

static size_t s_on_data(char *data, size_t size, size_t count, void *arg)
{
    s_buffer_t *buffer = arg;
    size_t bytes = size * count;
    if (buffer->size + bytes > S_BODY_MAX)
        return 0;
    if (buffer->size + bytes + 1 > buffer->capacity) {
        size_t capacity = buffer->capacity ? buffer->capacity * 2 : 8192;
        while (capacity < buffer->size + bytes + 1)
            capacity *= 2;
        char *grown = realloc(buffer->data, capacity);
        if (!grown)
            return 0;
        buffer->data = grown;
        buffer->capacity = capacity;
    }
    memcpy(buffer->data + buffer->size, data, bytes);
    buffer->size += bytes;
    buffer->data[buffer->size] = '\0';
    return bytes;
}

long ctl_http_request(const ctl_t *ctl, const char *method, const char *address, const char *path,
                      char **body, char *error, size_t error_size)
{
    char url[2048], curl_error[CURL_ERROR_SIZE] = "";
    nsq_http_client_url(url, sizeof url, address, path);
    s_buffer_t buffer = {NULL, 0, 0};
    long status = 0;
    CURL *curl = curl_easy_init();
    if (!curl) {
        snprintf(error, error_size, "out of memory");
        return 0;
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    nsq_http_client_tls_t tls = {ctl->tls_root_ca_file, ctl->tls_cert, ctl->tls_key};
    nsq_http_client_tls_apply(curl, &tls);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) ctl->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "nsq-ctl/" NSQ_VERSION);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &buffer);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_error);
    struct curl_slist *headers = NULL;
    if (ctl->auth_secret[0]) {
        char header[sizeof ctl->auth_secret + 32];
        snprintf(header, sizeof header, "Authorization: Bearer %s", ctl->auth_secret);
        headers = curl_slist_append(NULL, header);  // curl copies it
        memset(header, 0, sizeof header);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    }
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 0L);
    }
    CURLcode code = curl_easy_perform(curl);
    if (code == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    else
        snprintf(error, error_size, "%s: %s", address,
                 curl_error[0] ? curl_error : curl_easy_strerror(code));
    curl_easy_cleanup(curl);
    curl_slist_free_all(headers);
    if (body && status)
        *body = buffer.data ? buffer.data : strdup("");
    else
        free(buffer.data);
    return status;
}

int ctl_fail(int code, const char *format, ...)
{
    char line[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(line, sizeof line, format, args);
    va_end(args);
    fprintf(stderr, "nsq-ctl: %s\n", line);
    return code;
}

// The exit code for an NSQ error code in an answer.
static int s_code_for(long status, const char *message)
{
    if (status == 404 || (message && strstr(message, "NOT_FOUND")))
        return CTL_NOT_FOUND;
    if (status == 400)
        return CTL_USAGE;
    return CTL_FAILED;
}

json_t *ctl_get_json(const ctl_t *ctl, bool post, const char *address, const char *path, int *code)
{
    char error[512] = "", *body = NULL;
    long status =
        ctl_http_request(ctl, post ? "POST" : "GET", address, path, &body, error, sizeof error);
    if (status == 0) {
        *code = ctl_fail(CTL_UNREACHABLE, "cannot reach %s", error);
        return NULL;
    }
    json_t *doc = json_loads(body, 0, NULL);
    const char *message = json_string_value(json_object_get(doc, "message"));
    if (status != 200 && status != 202) {
        *code = ctl_fail(s_code_for(status, message), "%s%s answered %ld %s", address, path, status,
                         message ? message : body);
        json_decref(doc);
        doc = NULL;
    } else if (!doc) {
        *code = ctl_fail(CTL_FAILED, "%s%s answered something that is not JSON", address, path);
    }
    free(body);
    return doc;
}

static bool s_progress_pending;  // a terminal progress line waits for its end

void ctl_progress(const char *format, ...)
{
    char line[512];
    va_list args;
    va_start(args, format);
    vsnprintf(line, sizeof line, format, args);
    va_end(args);
    s_progress_pending = isatty(STDERR_FILENO);
    fprintf(stderr, s_progress_pending ? "\r\033[K%s" : "%s\n", line);
    fflush(stderr);
}

void ctl_progress_end(void)
{
    if (s_progress_pending)
        fputc('\n', stderr);
    s_progress_pending = false;
}

void ctl_escape(char *out, size_t size, const char *text)
{
    char *escaped = curl_easy_escape(NULL, text, 0);
    snprintf(out, size, "%s", escaped ? escaped : "");
    curl_free(escaped);
}
