/*  nsq_http_client - what our libcurl clients share: URLs that may be
    https, and TLS settings (a CA to trust, a client certificate)
    SPDX-License-Identifier: MIT
*/
#include "nsq_http_client.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

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
    return failed ? -1 : 0;
}
