/*  nsq-broker - holds topics and channels; HTTP publishes, ZeroMQ consumers
    SPDX-License-Identifier: MIT

    A thin shell: options (flags and NSQ_BROKER_* environment, declared in
    broker_config.c, where each fills its field of broker_config_t), logging,
    start the broker actor, print the READY line, wait for SIGTERM/SIGINT,
    stop the actor, exit 0. Bad configuration or a failed start exits 1
    with one line on stderr.
*/
#include <curl/curl.h>
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "broker_config.h"
#include "nsq_daemon.h"
#include "nsq_log.h"
#include "nsq_options.h"

// Creates the data path and its missing parents (mode 0700, as mkdir -p
// would) and checks that it is a writable directory. Returns 0, or -1
// with a reason in error.
static int s_data_path_ready(const char *path, char *error, size_t size)
{
    char partial[sizeof((broker_config_t *) 0)->data_path];
    snprintf(partial, sizeof partial, "%s", path);
    for (char *next = partial + 1; path[0]; next++) {
        if (*next != '/' && *next != '\0')
            continue;
        char kept = *next;
        *next = '\0';
        if (mkdir(partial, 0700) != 0 && errno != EEXIST)
            return snprintf(error, size, "cannot create --data-path %.400s: %s", partial,
                            strerror(errno)),
                   -1;
        *next = kept;
        if (kept == '\0')
            break;
    }
    struct stat status;
    if (stat(path, &status) != 0 || !S_ISDIR(status.st_mode) || access(path, W_OK) != 0)
        return snprintf(error, size, "--data-path %.400s is not a writable directory", path), -1;
    return 0;
}

// Checks what the table cannot (fields that bound each other, the lookupd
// addresses, the data path) and derives the rest. Returns 0, or -1 with a
// reason.
static int s_configure(nsq_options_t *options, void *config_p, char *error, size_t size)
{
    (void) options;
    broker_config_t *config = config_p;
    broker_config_default_broadcast(config);
    config->durable = config->durable || config->sync_every == 1;
    for (int i = 0; i < config->lookupd_count; i++) {
        const char *address = config->lookupd_addresses[i];
        const char *colon = strrchr(address, ':');
        if (!colon || colon == address || !colon[1]
            || strspn(colon + 1, "0123456789") != strlen(colon + 1))
            return snprintf(error, size, "--lookupd-address %.300s is not HOST:PORT", address), -1;
    }
    if (config->msg_timeout_ms > config->max_msg_timeout_ms)
        return snprintf(error, size, "--msg-timeout is above --max-msg-timeout"), -1;
    if (config->max_msg_size > config->max_body_size)
        return snprintf(error, size, "--max-msg-size is above --max-body-size"), -1;
    if (!config->tls_cert[0] != !config->tls_key[0])
        return snprintf(error, size, "--tls-cert and --tls-key go together"), -1;
    if (config->tls_required && !config->tls_cert[0])
        return snprintf(error, size, "--tls-required needs --tls-cert and --tls-key"), -1;
    if (config->min_output_buffer_timeout_ms > config->output_buffer_timeout_ms
        || config->output_buffer_timeout_ms > config->max_output_buffer_timeout_ms)
        return snprintf(error, size,
                        "--output-buffer-timeout must lie between --min-output-buffer-timeout and "
                        "--max-output-buffer-timeout"),
               -1;
    if (config->mem_queue_bytes > 0 && config->mem_queue_bytes < config->max_msg_size)
        return snprintf(error, size,
                        "--mem-queue-bytes is below --max-msg-size (0 keeps nothing in memory)"),
               -1;
    nsq_http_tls_t tls = NSQ_HTTP_TLS_OF(config);
    if (nsq_http_tls_check(&tls, config->https_address, error, size) != 0
        || nsq_curve_server_check(config->zmq_curve_secret_key_file, config->zmq_curve_allow_dir,
                                  error, size)
               != 0)
        return -1;
    if (config->zmq_curve_lookupd_key_file[0] && !config->zmq_curve_secret_key_file[0])
        return snprintf(error, size,
                        "--zmq-curve-lookupd-key-file needs --zmq-curve-secret-key-file (the "
                        "broker's key pair)"),
               -1;
    return s_data_path_ready(config->data_path, error, size);
}

int main(int argc, char **argv)
{
    broker_config_t config;
    broker_config_defaults(&config);
    int exit_code =
        nsq_daemon_configure("nsq-broker", "NSQ_BROKER", broker_config_options,
                             broker_config_option_count, argc, argv, s_configure, &config);
    if (exit_code >= 0)
        return exit_code;
    const char *listening[] = {config.http_address, config.https_address, config.zmq_address};
    nsq_daemon_warn_if_open(listening, 3,
                            config.zmq_curve_secret_key_file[0] || config.tls_required
                                || config.auth_http_count > 0);
    // libcurl (the auth server client) is set up here, before any thread:
    // its TLS library keeps per-thread state for the thread that
    // initialises it, which must outlive the others.
    curl_global_init(CURL_GLOBAL_DEFAULT);
    exit_code = nsq_daemon_run(broker_actor, &config, config.http_address, config.zmq_address);
    curl_global_cleanup();
    return exit_code;
}
