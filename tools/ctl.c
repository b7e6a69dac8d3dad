/*  nsq-ctl - see and steer the cluster from scripts and terminals
    SPDX-License-Identifier: MIT

    `nsq-ctl [OPTIONS] COMMAND [ARGUMENTS]`: options are nsq_options (flags
    or NSQ_CTL_* variables, anywhere on the line); the other words are the
    command and its arguments. This file parses, checks the arguments'
    count and the target (lookupd, or one broker), and hands over to the
    command's file (ctl.h). Exit codes: see s_usage.
*/
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "nsq_curve.h"
#include "nsq_http_client.h"
#include "nsq_log.h"
#include "nsq_options.h"

#define S_ARGS_MAX 64

// Each option fills its field of ctl_t (log-level is applied here).
static const nsq_option_spec_t s_options[] = {
    {"lookupd-http-address", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "lookupd HTTP host:port: the whole cluster, through lookupd's console API",
     NSQ_OPTION_FIELD(ctl_t, lookupd)},
    {"broker-http-address", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "instead, one broker's HTTP host:port (topics, stats, watch, actions)",
     NSQ_OPTION_FIELD(ctl_t, broker_http)},
    {"broker-address", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "that broker's ZeroMQ host:port (tail, replay)", NSQ_OPTION_FIELD(ctl_t, broker_zmq)},
    {"json", NSQ_OPTION_BOOL, "false", 0, 0, false,
     "topics, stats, watch: JSON instead of a table; actions: the finished job",
     NSQ_OPTION_FIELD(ctl_t, json)},
    {"timeout", NSQ_OPTION_DURATION, "10s", 100, 3600000, false,
     "longest HTTP request; an action making no progress this long is given up",
     NSQ_OPTION_FIELD(ctl_t, timeout_ms)},
    {"interval", NSQ_OPTION_DURATION, "2s", 100, 3600000, false, "watch: time between refreshes",
     NSQ_OPTION_FIELD(ctl_t, interval_ms)},
    {"count", NSQ_OPTION_INT, "0", 0, 1000000000, false,
     "watch: refreshes, tail: messages, then exit (0 = until interrupted)",
     NSQ_OPTION_FIELD(ctl_t, count)},
    {"auth-secret", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "secret for a broker with --auth-http-address (Authorization: Bearer; tail: AUTH); "
     "actions need admin. Prefer NSQ_CTL_AUTH_SECRET: the flag's value is blanked from the "
     "command line",
     NSQ_OPTION_FIELD(ctl_t, auth_secret)},
    {"log-level", NSQ_OPTION_STRING, "warn", 0, 0, false, "debug, info, warn or error",
     NSQ_OPTION_NO_FIELD},
    NSQ_HTTP_CLIENT_TLS_OPTION_ROWS(ctl_t, ),
    NSQ_CURVE_CLIENT_OPTION_ROWS(ctl_t, ),
};

#define S_OPTION_COUNT (sizeof s_options / sizeof *s_options)

static void s_usage(nsq_options_t *options, FILE *out)
{
    fputs("Usage: nsq-ctl [OPTIONS] COMMAND [ARGUMENTS]\n"
          "\n"
          "Commands:\n"
          "  topics                        the topics, one per line\n"
          "  stats [TOPIC [CHANNEL]]       depth, memory and disk, in flight, deferred, requeued,\n"
          "                                timed out, clients, messages/s per topic and channel\n"
          "  pause|unpause|empty|delete TOPIC [CHANNEL]\n"
          "                                on every broker that holds it, one line per broker\n"
          "  tombstone TOPIC BROKER        hide BROKER (host:http_port) from lookups of TOPIC\n"
          "  replay TOPIC.dead             publish every dead letter back to its topic\n"
          "  tail TOPIC                    print new messages (an ephemeral channel)\n"
          "  watch                         the stats table again every --interval\n"
          "\n"
          "Give --lookupd-http-address (the cluster) or --broker-http-address and/or\n"
          "--broker-address (one broker). A progress line goes to stderr while an action\n"
          "runs longer than a second.\n"
          "\n"
          "Exit codes: 0 done; 1 failed (on at least one broker, each named); 2 bad command\n"
          "line; 3 unknown topic, channel or broker; 4 lookupd or the broker did not answer.\n"
          "\n",
          out);
    nsq_options_print_options(options, out);
}

typedef struct {
    const char *name;  // command
    int min, max;      // arguments
    char needs;        // 'h' HTTP (lookupd or broker HTTP), 'z' ZeroMQ or lookupd, 'l' lookupd
} s_command_t;

static const s_command_t s_commands[] = {
    {"topics", 0, 0, 'h'},  {"stats", 0, 2, 'h'}, {"watch", 0, 0, 'h'},  {"pause", 1, 2, 'h'},
    {"unpause", 1, 2, 'h'}, {"empty", 1, 2, 'h'}, {"delete", 1, 2, 'h'}, {"tombstone", 2, 2, 'l'},
    {"replay", 1, 1, 'z'},  {"tail", 1, 1, 'z'},
};

static const nsq_option_spec_t *s_spec(const char *arg)
{
    while (*arg == '-')
        arg++;
    size_t length = strcspn(arg, "=");
    for (size_t i = 0; i < S_OPTION_COUNT; i++)
        if (strlen(s_options[i].name) == length && strncmp(s_options[i].name, arg, length) == 0)
            return &s_options[i];
    return NULL;
}

// Splits argv into flags (with program name first, for nsq_options) and
// words. Returns -1 if there are too many.
static int s_split(int argc, char **argv, char **flags, int *flag_count, char **words,
                   int *word_count)
{
    bool words_only = false;
    *flag_count = 1;
    *word_count = 0;
    flags[0] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (*flag_count >= S_ARGS_MAX - 1 || *word_count >= S_ARGS_MAX)
            return -1;
        if (!words_only && strcmp(arg, "--") == 0)
            words_only = true;
        else if (!words_only && arg[0] == '-' && arg[1]) {
            flags[(*flag_count)++] = argv[i];
            const nsq_option_spec_t *spec = s_spec(arg);
            if (spec && spec->type != NSQ_OPTION_BOOL && !strchr(arg, '=') && i + 1 < argc)
                flags[(*flag_count)++] = argv[++i];
        } else
            words[(*word_count)++] = argv[i];
    }
    return 0;
}

static bool s_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-help") || !strcmp(argv[i], "-h"))
            return true;
    return false;
}

// Fills ctl from options and checks that command has what it talks to.
static int s_target(nsq_options_t *options, const s_command_t *command, ctl_t *ctl)
{
    *ctl = (ctl_t){0};  // options not given leave their fields alone
    nsq_options_store(options, ctl);
    if (ctl->lookupd && (ctl->broker_http || ctl->broker_zmq))
        return ctl_fail(CTL_USAGE, "give --lookupd-http-address or a broker's address, not both");
    if (command->needs == 'l' && !ctl->lookupd)
        return ctl_fail(CTL_USAGE, "%s needs --lookupd-http-address", command->name);
    if (command->needs == 'h' && !ctl->lookupd && !ctl->broker_http)
        return ctl_fail(CTL_USAGE, "%s needs --lookupd-http-address or --broker-http-address",
                        command->name);
    if (command->needs == 'z' && !ctl->lookupd && !ctl->broker_zmq)
        return ctl_fail(CTL_USAGE, "%s needs --lookupd-http-address or --broker-address",
                        command->name);
    char error[512];
    nsq_http_client_tls_t tls = {ctl->tls_root_ca_file, ctl->tls_cert, ctl->tls_key};
    if (nsq_http_client_tls_check(&tls, "tls-key", error, sizeof error)
        || nsq_curve_client_check(ctl->zmq_curve_key_file, ctl->zmq_curve_server_key_file, error,
                                  sizeof error))
        return ctl_fail(CTL_USAGE, "%s", error);
    return CTL_OK;
}

static int s_run(const ctl_t *ctl, const char *command, char **args, int count)
{
    const char *first = count > 0 ? args[0] : NULL, *second = count > 1 ? args[1] : NULL;
    if (!strcmp(command, "topics"))
        return ctl_topics(ctl);
    if (!strcmp(command, "stats"))
        return ctl_stats(ctl, first, second);
    if (!strcmp(command, "watch"))
        return ctl_watch(ctl);
    if (!strcmp(command, "tombstone"))
        return ctl_tombstone(ctl, first, second);
    if (!strcmp(command, "replay"))
        return ctl_replay(ctl, first);
    if (!strcmp(command, "tail"))
        return ctl_tail(ctl, first);
    return ctl_action(ctl, command, first, second);
}

int main(int argc, char **argv)
{
    nsq_log_set_program("nsq-ctl");
    nsq_options_t *options = nsq_options_new("nsq-ctl", "NSQ_CTL", s_options, S_OPTION_COUNT);
    char *flags[S_ARGS_MAX], *words[S_ARGS_MAX], error[512];
    int flag_count, word_count, code = CTL_USAGE;
    if (!options)
        return ctl_fail(CTL_FAILED, "out of memory");
    if (s_wants_help(argc, argv)) {
        s_usage(options, stdout);
        nsq_options_destroy(&options);
        return CTL_OK;
    }
    int parsed = s_split(argc, argv, flags, &flag_count, words, &word_count) == 0
                     ? nsq_options_parse(options, flag_count, flags, error, sizeof error)
                     : (snprintf(error, sizeof error, "too many arguments"), -1);
    const s_command_t *command = NULL;
    for (size_t i = 0; word_count && i < sizeof s_commands / sizeof *s_commands; i++)
        if (!strcmp(words[0], s_commands[i].name))
            command = &s_commands[i];
    nsq_log_level_t level;
    if (parsed == 1)
        code = CTL_OK;  // --version
    else if (parsed < 0)
        ctl_fail(CTL_USAGE, "%s (see --help)", error);
    else if (nsq_log_level_parse(nsq_options_string(options, "log-level"), &level))
        ctl_fail(CTL_USAGE, "--log-level must be debug, info, warn or error");
    else if (!command)
        ctl_fail(CTL_USAGE,
                 word_count ? "unknown command '%s' (see --help)" : "no command%s (see --help)",
                 word_count ? words[0] : "");
    else if (word_count - 1 < command->min || word_count - 1 > command->max)
        ctl_fail(CTL_USAGE, "%s takes %d to %d arguments (see --help)", command->name, command->min,
                 command->max);
    else {
        ctl_t ctl;
        nsq_log_set_level(level);
        code = s_target(options, command, &ctl);
        nsq_options_hide(argc, argv, "auth-secret");  // ctl has its copy
        if (code == CTL_OK) {
            curl_global_init(CURL_GLOBAL_DEFAULT);
            code = s_run(&ctl, command->name, words + 1, word_count - 1);
            curl_global_cleanup();
        }
    }
    nsq_options_destroy(&options);
    return code;
}
