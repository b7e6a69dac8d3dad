/*  nsq_http_client - what our libcurl clients share: URLs that may be
    https, and TLS settings (a CA to trust, a client certificate)
    SPDX-License-Identifier: MIT
*/
#include "nsq_http_client.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nsq_secret.h"

static bool s_set(const char *text)
{
    return text && *text;
}

int nsq_http_client_url(char *out, size_t size, const char *address, const char *path)
{
    bool scheme = strncmp(address, "http://", 7) == 0 || strncmp(address, "https://", 8) == 0;
    int length = snprintf(out, size, "%s%s%s", scheme ? "" : "http://", address, path);
    return length >= 0 && (size_t) length < size ? 0 : -1;
}

int nsq_http_client_tls_check(const nsq_http_client_tls_t *tls, const char *key_option, char *error,
                              size_t size)
{
    if (!tls || !s_set(tls->key_file))
        return 0;
    return nsq_secret_file_check(key_option, tls->key_file, error, size);
}

void nsq_http_client_tls_apply(CURL *curl, const nsq_http_client_tls_t *tls)
{
    if (!tls)
        return;
    if (s_set(tls->root_ca_file))
        curl_easy_setopt(curl, CURLOPT_CAINFO, tls->root_ca_file);
    if (s_set(tls->cert_file))
        curl_easy_setopt(curl, CURLOPT_SSLCERT, tls->cert_file);
    if (s_set(tls->key_file))
        curl_easy_setopt(curl, CURLOPT_SSLKEY, tls->key_file);
}

int nsq_http_client_test(void)
{
    char url[64];
    int failed = nsq_http_client_url(url, sizeof url, "h:1", "/ping") != 0
                 || strcmp(url, "http://h:1/ping") != 0;
    failed |= nsq_http_client_url(url, sizeof url, "https://h:1", "/p?q=1") != 0
              || strcmp(url, "https://h:1/p?q=1") != 0;
    failed |= nsq_http_client_url(url, sizeof url, "http://h:1", "") != 0
              || strcmp(url, "http://h:1") != 0;
    failed |= nsq_http_client_url(url, 8, "https://h:1", "/ping") != -1;
    CURL *curl = curl_easy_init();
    nsq_http_client_tls_t tls = {"/ca.pem", "", NULL};
    nsq_http_client_tls_apply(curl, &tls);
    nsq_http_client_tls_apply(curl, NULL);
    curl_easy_cleanup(curl);
    // The key must be 0600 or narrower; the certificate may be readable.
    char key[] = "/tmp/nsq_http_client_test.XXXXXX", error[256] = "";
    int fd = mkstemp(key);
    failed |= fd < 0;
    if (fd >= 0)
        close(fd);
    nsq_http_client_tls_t files = {NULL, "/etc/hostname", key};
    failed |= nsq_http_client_tls_check(&files, "tls-key", error, sizeof error) != 0;
    failed |= nsq_http_client_tls_check(NULL, "tls-key", error, sizeof error) != 0;
    failed |= chmod(key, 0644) != 0;
    failed |= nsq_http_client_tls_check(&files, "http-client-tls-key", error, sizeof error) != -1;
    failed |= !strstr(error, "--http-client-tls-key=") || !strstr(error, "wider than 0600");
    unlink(key);
    return failed ? -1 : 0;
}
