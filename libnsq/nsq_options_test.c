/*  nsq_options_test - the options table's self-test
    SPDX-License-Identifier: MIT

    Parses a test table (NSQ_OPTTEST_* variables) with flags, environment
    and defaults, checks the errors, --help, bad tables, two tables in one
    process, and storing into a struct: lengths and list sizes checked,
    borrowed strings, integers of other widths, the defaults alone.
*/
#include "nsq_options.h"

#include "nsq_log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEST_PREFIX "NSQ_OPTTEST"

// What s_test_specs fills.
typedef struct {
    char http_address[16];
    int64_t mem_queue_size;
    size_t max_bytes_per_file;
    uint32_t msg_timeout_ms;
    char lookupds[3][8];
    int lookupd_count;
    bool verbose;
    int64_t offset;
} s_test_config_t;

static const nsq_option_spec_t s_test_specs[] = {
    {"http-address", NSQ_OPTION_STRING, "0.0.0.0:4151", 0, 0, false, "address for HTTP",
     NSQ_OPTION_FIELD(s_test_config_t, http_address)},
    {"mem-queue-size", NSQ_OPTION_INT, "10000", 0, 1000000, false, "messages kept in memory",
     NSQ_OPTION_FIELD(s_test_config_t, mem_queue_size)},
    {"max-bytes-per-file", NSQ_OPTION_SIZE, "100m", 1024, INT64_C(1) << 40, false, "segment",
     NSQ_OPTION_FIELD(s_test_config_t, max_bytes_per_file)},
    {"msg-timeout", NSQ_OPTION_DURATION, "60s", 1000, 900000, false, "in-flight timeout",
     NSQ_OPTION_FIELD(s_test_config_t, msg_timeout_ms)},
    {"lookupd-address", NSQ_OPTION_STRING, NULL, 0, 0, true, "lookupd ZeroMQ address",
     NSQ_OPTION_LIST(s_test_config_t, lookupds, lookupd_count)},
    {"verbose", NSQ_OPTION_BOOL, "false", 0, 0, false, "log more",
     NSQ_OPTION_FIELD(s_test_config_t, verbose)},
    {"offset", NSQ_OPTION_INT, NULL, 0, 0, false, "any integer",
     NSQ_OPTION_FIELD(s_test_config_t, offset)},
};
#define TEST_SPEC_COUNT (sizeof(s_test_specs) / sizeof(s_test_specs[0]))

// Parses the NULL-terminated flags that follow error_size.
static int s_run(nsq_options_t *options, char *error, size_t error_size, ...)
{
    char *argv[32] = {"nsq-test"};
    int argc = 1;
    va_list args;
    va_start(args, error_size);
    for (char *arg = va_arg(args, char *); arg && argc < 31; arg = va_arg(args, char *))
        argv[argc++] = arg;
    va_end(args);
    return nsq_options_parse(options, argc, argv, error, error_size);
}

// True if parsing the two flags fails with a one-line error containing expected.
static bool s_fails_with(nsq_options_t *options, const char *expected, char *first, char *second)
{
    char error[256] = "";
    int rc = s_run(options, error, sizeof(error), first, second, NULL);
    return rc == -1 && strstr(error, expected) && !strchr(error, '\n');
}

static void s_unset_test_env(void)
{
    const char *names[] = {"HTTP_ADDRESS", "MEM_QUEUE_SIZE",  "MAX_BYTES_PER_FILE",
                           "MSG_TIMEOUT",  "LOOKUPD_ADDRESS", "VERBOSE",
                           "OFFSET"};
    for (size_t index = 0; index < sizeof(names) / sizeof(names[0]); index++) {
        char name[64];
        snprintf(name, sizeof(name), "%s_%s", TEST_PREFIX, names[index]);
        unsetenv(name);
    }
}

static int s_test_defaults(nsq_options_t *options)
{
    char error[256];
    if (s_run(options, error, sizeof(error), NULL) != 0)
        return -1;
    if (strcmp(nsq_options_string(options, "http-address"), "0.0.0.0:4151")
        || nsq_options_int(options, "mem-queue-size") != 10000
        || nsq_options_int(options, "max-bytes-per-file") != 100 * 1024 * 1024
        || nsq_options_int(options, "msg-timeout") != 60000
        || nsq_options_count(options, "lookupd-address") != 0
        || nsq_options_string(options, "lookupd-address")
        || nsq_options_string_at(options, "lookupd-address", 0)
        || nsq_options_bool(options, "verbose") || nsq_options_string(options, "offset")
        || nsq_options_int(options, "offset") != 0)
        return -1;
    for (size_t index = 0; index < TEST_SPEC_COUNT; index++)
        if (nsq_options_is_set(options, s_test_specs[index].name))
            return -1;
    return 0;
}

static int s_test_flags(nsq_options_t *options)
{
    char error[256];
    if (s_run(options, error, sizeof(error), "--http-address=127.0.0.1:0", "--mem-queue-size", "5",
              "--max-bytes-per-file=2k", "-msg-timeout=1m30s", "--lookupd-address=a:1",
              "--lookupd-address", "b:2", "--verbose", "--offset", "-7", "--", NULL))
        return -1;
    if (strcmp(nsq_options_string(options, "http-address"), "127.0.0.1:0")
        || nsq_options_int(options, "mem-queue-size") != 5
        || nsq_options_int(options, "max-bytes-per-file") != 2048
        || nsq_options_int(options, "msg-timeout") != 90000
        || nsq_options_count(options, "lookupd-address") != 2
        || strcmp(nsq_options_string_at(options, "lookupd-address", 1), "b:2")
        || strcmp(nsq_options_string(options, "lookupd-address"), "a:1")
        || nsq_options_string_at(options, "lookupd-address", 2)
        || !nsq_options_bool(options, "verbose") || nsq_options_int(options, "offset") != -7
        || !nsq_options_is_set(options, "offset") || !nsq_options_is_set(options, "verbose"))
        return -1;
    const struct {
        char *flag;     // given
        int64_t bytes;  // expected
    } sizes[] = {{"1K", 1024}, {"3m", 3 << 20}, {"1G", 1 << 30}, {"4096", 4096}};
    for (size_t index = 0; index < sizeof(sizes) / sizeof(sizes[0]); index++)
        if (s_run(options, error, sizeof(error), "--max-bytes-per-file", sizes[index].flag, NULL)
            || nsq_options_int(options, "max-bytes-per-file") != sizes[index].bytes)
            return -1;
    if (s_run(options, error, sizeof(error), "--verbose=false", NULL)
        || nsq_options_bool(options, "verbose") || !nsq_options_is_set(options, "verbose"))
        return -1;
    if (s_run(options, error, sizeof(error), "--verbose=TRUE", NULL)
        || !nsq_options_bool(options, "verbose"))
        return -1;
    return s_test_defaults(options);  // a new parse starts over
}

static int s_test_errors(nsq_options_t *options)
{
    if (!s_fails_with(options, "unknown flag --nope", "--nope=1", NULL)
        || !s_fails_with(options, "flag --mem-queue-size needs a value", "--mem-queue-size", NULL)
        || !s_fails_with(options, "needs a value", "--mem-queue-size", "--verbose")
        || !s_fails_with(options, "'abc' for --mem-queue-size: not an integer",
                         "--mem-queue-size=abc", NULL)
        || !s_fails_with(options, "not an integer", "--mem-queue-size=99999999999999999999", NULL)
        || !s_fails_with(options, "for --mem-queue-size: must be in 0..1000000",
                         "--mem-queue-size=1000001", NULL)
        || !s_fails_with(options, "must be in 0..1000000", "--mem-queue-size", "-1")
        || !s_fails_with(options, "--msg-timeout: must be in 1s..15m", "--msg-timeout=16m", NULL)
        || !s_fails_with(options, "not a duration", "--msg-timeout=soon", NULL)
        || !s_fails_with(options, "not a duration", "--msg-timeout=-5s", NULL)
        || !s_fails_with(options, "not a size", "--max-bytes-per-file=1x", NULL)
        || !s_fails_with(options, "not a size", "--max-bytes-per-file=-1k", NULL)
        || !s_fails_with(options, "must be in 1024..", "--max-bytes-per-file=1023", NULL)
        || !s_fails_with(options, "not true or false", "--verbose=maybe", NULL)
        || !s_fails_with(options, "--http-address given twice", "--http-address=a",
                         "--http-address=b")
        || !s_fails_with(options, "unexpected argument 'stray'", "stray", NULL)
        || !s_fails_with(options, "unexpected argument 'x'", "--", "x"))
        return -1;
    return 0;
}

static int s_test_env(nsq_options_t *options)
{
    char error[256];
    setenv(TEST_PREFIX "_MEM_QUEUE_SIZE", "100", 1);
    setenv(TEST_PREFIX "_LOOKUPD_ADDRESS", "x:1, y:2,,", 1);
    setenv(TEST_PREFIX "_VERBOSE", "true", 1);
    setenv(TEST_PREFIX "_HTTP_ADDRESS", "", 1);  // empty counts as unset
    if (s_run(options, error, sizeof(error), NULL)
        || nsq_options_int(options, "mem-queue-size") != 100
        || !nsq_options_is_set(options, "mem-queue-size")
        || nsq_options_count(options, "lookupd-address") != 2
        || strcmp(nsq_options_string_at(options, "lookupd-address", 0), "x:1")
        || strcmp(nsq_options_string_at(options, "lookupd-address", 1), "y:2")
        || !nsq_options_bool(options, "verbose") || nsq_options_is_set(options, "http-address")
        || strcmp(nsq_options_string(options, "http-address"), "0.0.0.0:4151"))
        return -1;
    // The command line wins, and replaces a repeatable list as a whole.
    if (s_run(options, error, sizeof(error), "--mem-queue-size=7", "--lookupd-address=z:3", NULL)
        || nsq_options_int(options, "mem-queue-size") != 7
        || nsq_options_count(options, "lookupd-address") != 1
        || strcmp(nsq_options_string(options, "lookupd-address"), "z:3"))
        return -1;
    setenv(TEST_PREFIX "_MSG_TIMEOUT", "soon", 1);
    if (!s_fails_with(options, "for " TEST_PREFIX "_MSG_TIMEOUT (--msg-timeout): not a duration",
                      NULL, NULL))
        return -1;
    setenv(TEST_PREFIX "_MSG_TIMEOUT", "1h", 1);
    if (!s_fails_with(options, "must be in 1s..15m", NULL, NULL))
        return -1;
    s_unset_test_env();
    return s_test_defaults(options);
}

// Runs parse with stdout sent to /dev/null; returns its result.
static int s_run_quietly(nsq_options_t *options, char *first, char *second)
{
    char error[256];
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    FILE *null = fopen("/dev/null", "w");
    if (saved < 0 || !null)
        return -2;
    dup2(fileno(null), STDOUT_FILENO);
    int rc = s_run(options, error, sizeof(error), first, second, NULL);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    fclose(null);
    return rc;
}

static int s_test_help(nsq_options_t *options)
{
    if (s_run_quietly(options, "--help", NULL) != 1
        || s_run_quietly(options, "--version", NULL) != 1
        || s_run_quietly(options, "--nope", "-h") != 1)
        return -1;
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (!out)
        return -1;
    nsq_options_print_help(options, out);
    fclose(out);
    const char *expected[] = {"Usage: nsq-test [OPTIONS]",
                              "--mem-queue-size=INT  (env NSQ_OPTTEST_MEM_QUEUE_SIZE)",
                              "messages kept in memory [default: 10000] [range: 0..1000000]",
                              "--msg-timeout=DURATION",
                              "[default: 60s] [range: 1s..15m]",
                              "--max-bytes-per-file=SIZE",
                              "--verbose[=true|false]",
                              "--lookupd-address=STRING",
                              "[repeatable",
                              "--help",
                              "--version"};
    int rc = 0;
    for (size_t index = 0; index < sizeof(expected) / sizeof(expected[0]); index++)
        if (!strstr(text, expected[index]))
            rc = -1;
    free(text);
    return rc;
}

// Fields of every kind, for the table checks and the borrowed strings.
typedef struct {
    char chars[4];
    int64_t count;
    double ratio;
    char *writable;
    uint32_t narrow;
    size_t positive;
    int small;
    const char *text;
    const char **list;
    size_t list_count;
} s_test_fields_t;

// Parsed values land in their fields; what has no value is left alone;
// strings too long for their field and lists too long are refused.
static int s_test_store(nsq_options_t *options)
{
    char error[256];
    s_test_config_t config = {.offset = 99, .lookupd_count = 7};
    if (s_run(options, error, sizeof(error), "--http-address=127.0.0.1:0", "--lookupd-address=a:1",
              "--lookupd-address", "b:2", "--verbose", "--msg-timeout=2s", NULL))
        return -1;
    nsq_options_store(options, &config);
    if (strcmp(config.http_address, "127.0.0.1:0") || config.mem_queue_size != 10000
        || config.max_bytes_per_file != 100 * 1024 * 1024 || config.msg_timeout_ms != 2000
        || config.lookupd_count != 2 || strcmp(config.lookupds[0], "a:1")
        || strcmp(config.lookupds[1], "b:2") || !config.verbose || config.offset != 99)
        return -1;
    if (s_run(options, error, sizeof(error), "--http-address=0123456789abcde", NULL)
        || !s_fails_with(options, "for --http-address: longer than 15 bytes",
                         "--http-address=0123456789abcdef", NULL)
        || s_run(options, error, sizeof(error), "--lookupd-address=a", "--lookupd-address=b",
                 "--lookupd-address=c", "--lookupd-address=d", NULL)
               != -1
        || strcmp(error, "--lookupd-address: at most 3 values") != 0
        || !s_fails_with(options, "longer than 7 bytes", "--lookupd-address=12345678", NULL))
        return -1;
    setenv(TEST_PREFIX "_LOOKUPD_ADDRESS", "a,b,c,d", 1);
    int rc =
        s_fails_with(options, "LOOKUPD_ADDRESS (--lookupd-address): at most 3 values", NULL, NULL)
            ? 0
            : -1;
    s_unset_test_env();
    // The defaults alone, as a config built by hand gets them.
    s_test_config_t defaults = {.offset = 5};
    if (rc || nsq_options_store_defaults(s_test_specs, TEST_SPEC_COUNT, &defaults)
        || strcmp(defaults.http_address, "0.0.0.0:4151") || defaults.mem_queue_size != 10000
        || defaults.msg_timeout_ms != 60000 || defaults.lookupd_count != 0 || defaults.verbose
        || defaults.offset != 5)
        return -1;
    return 0;
}

// Borrowed strings and lists point into the parser (or, for the defaults
// alone, into the table); integers of other sizes are written whole.
static int s_test_borrowed(void)
{
    const nsq_option_spec_t specs[] = {
        {"text", NSQ_OPTION_STRING, "none", 0, 0, false, "",
         NSQ_OPTION_FIELD(s_test_fields_t, text)},
        {"list", NSQ_OPTION_STRING, NULL, 0, 0, true, "",
         NSQ_OPTION_LIST(s_test_fields_t, list, list_count)},
        {"small", NSQ_OPTION_INT, "-3", -10, 10, false, "",
         NSQ_OPTION_FIELD(s_test_fields_t, small)},
        {"narrow", NSQ_OPTION_DURATION, "1s", 0, 3600000, false, "",
         NSQ_OPTION_FIELD(s_test_fields_t, narrow)},
    };
    s_test_fields_t fields = {.narrow = 0xffffffffu};
    if (nsq_options_store_defaults(specs, 4, &fields) || fields.text != specs[0].default_value
        || fields.list || fields.small != -3 || fields.narrow != 1000)
        return -1;
    nsq_options_t *options = nsq_options_new("borrowed", NULL, specs, 4);
    char error[256];
    int rc = options ? 0 : -1;
    if (rc == 0
        && s_run(options, error, sizeof(error), "--text=abc", "--list=x", "--list=yz",
                 "--narrow=1h", NULL))
        rc = -1;
    if (rc == 0) {
        nsq_options_store(options, &fields);
        if (strcmp(fields.text, "abc") || fields.list_count != 2 || strcmp(fields.list[0], "x")
            || strcmp(fields.list[1], "yz") || fields.narrow != 3600000 || fields.small != -3)
            rc = -1;
    }
    nsq_options_destroy(&options);
    // A borrowed list with a default cannot outlive a parser.
    const nsq_option_spec_t listed[] = {
        {"list", NSQ_OPTION_STRING, "a,b", 0, 0, true, "",
         NSQ_OPTION_LIST(s_test_fields_t, list, list_count)},
    };
    if (nsq_options_store_defaults(listed, 1, &fields) != -1)
        rc = -1;
    return rc;
}

// Bad tables are refused; a second table parses independently of the first.
static int s_test_tables(nsq_options_t *first)
{
#define OK_SPEC                                                                                    \
    {                                                                                              \
        "ok", NSQ_OPTION_INT, NULL, 0, 0, false, "", NSQ_OPTION_NO_FIELD                           \
    }
#define NO_FIELD      NSQ_OPTION_NO_FIELD
#define FIELD(member) NSQ_OPTION_FIELD(s_test_fields_t, member)
    const nsq_option_spec_t bad[][2] = {
        {{"ok", NSQ_OPTION_STRING, NULL, 0, 0, false, "", NO_FIELD}, OK_SPEC},
        {{"help", NSQ_OPTION_BOOL, NULL, 0, 0, false, "", NO_FIELD}, OK_SPEC},
        {{"count", NSQ_OPTION_INT, "ten", 0, 0, false, "", NO_FIELD}, OK_SPEC},
        {{"count", NSQ_OPTION_INT, "11", 0, 10, false, "", NO_FIELD}, OK_SPEC},
        {{"count", NSQ_OPTION_INT, NULL, 5, 1, false, "", NO_FIELD}, OK_SPEC},
        {{"flag", NSQ_OPTION_BOOL, NULL, 0, 0, true, "", NO_FIELD}, OK_SPEC},
        {{NULL, NSQ_OPTION_INT, NULL, 0, 0, false, "", NO_FIELD}, OK_SPEC},
        {{"Upper", NSQ_OPTION_INT, NULL, 0, 0, false, "", NO_FIELD}, OK_SPEC},
        {{"a b", NSQ_OPTION_INT, NULL, 0, 0, false, "", NO_FIELD}, OK_SPEC},
        // Fields that do not suit the row.
        {{"count", NSQ_OPTION_INT, NULL, 0, 9, false, "", FIELD(chars)}, OK_SPEC},
        {{"name", NSQ_OPTION_STRING, NULL, 0, 0, false, "", FIELD(count)}, OK_SPEC},
        {{"name", NSQ_OPTION_STRING, "too long", 0, 0, false, "", FIELD(chars)}, OK_SPEC},
        {{"ratio", NSQ_OPTION_INT, NULL, 0, 9, false, "", FIELD(ratio)}, OK_SPEC},
        {{"name", NSQ_OPTION_STRING, NULL, 0, 0, false, "", FIELD(writable)}, OK_SPEC},
        {{"count", NSQ_OPTION_INT, NULL, 0, 0, false, "", FIELD(narrow)}, OK_SPEC},
        {{"count", NSQ_OPTION_INT, NULL, -1, 9, false, "", FIELD(positive)}, OK_SPEC},
        {{"count", NSQ_OPTION_INT, NULL, 0, INT64_C(1) << 32, false, "", FIELD(narrow)}, OK_SPEC},
        {{"flag", NSQ_OPTION_BOOL, NULL, 0, 0, false, "", FIELD(count)}, OK_SPEC},
        {{"name", NSQ_OPTION_STRING, NULL, 0, 0, true, "", FIELD(text)}, OK_SPEC},
        {{"name", NSQ_OPTION_STRING, NULL, 0, 0, false, "",
          NSQ_OPTION_LIST(s_test_fields_t, list, list_count)},
         OK_SPEC},
    };
#undef FIELD
#undef NO_FIELD
#undef OK_SPEC
    int null_fd = open("/dev/null", O_WRONLY);
    nsq_log_set_stream_fd(null_fd);  // new logs why it refuses a table
    int refused = 0;
    for (size_t index = 0; index < sizeof(bad) / sizeof(bad[0]); index++) {
        nsq_options_t *options = nsq_options_new("bad", NULL, bad[index], 2);
        refused += options == NULL;
        nsq_options_destroy(&options);
    }
    nsq_log_set_stream_fd(-1);
    if (null_fd >= 0)
        close(null_fd);
    if (refused != (int) (sizeof(bad) / sizeof(bad[0])))
        return -1;

    const nsq_option_spec_t specs[] = {
        {"topic", NSQ_OPTION_STRING, NULL, 0, 0, false, "topic", NSQ_OPTION_NO_FIELD},
        {"mem-queue-size", NSQ_OPTION_INT, "1", 0, 0, false, "same name, other table",
         NSQ_OPTION_NO_FIELD},
    };
    nsq_options_t *second = nsq_options_new("second", NULL, specs, 2);
    char error[256];
    int rc = second ? 0 : -1;
    setenv(TEST_PREFIX "_MEM_QUEUE_SIZE", "100", 1);  // read by first only
    if (rc == 0
        && (s_run(second, error, sizeof(error), "--topic=t", NULL)
            || s_run(first, error, sizeof(error), "--mem-queue-size=3", NULL)
            || strcmp(nsq_options_string(second, "topic"), "t")
            || nsq_options_int(second, "mem-queue-size") != 1
            || nsq_options_int(first, "mem-queue-size") != 3))
        rc = -1;
    if (rc == 0 && s_fails_with(second, "unknown flag --verbose", "--verbose", NULL) == false)
        rc = -1;
    s_unset_test_env();
    nsq_options_destroy(&second);
    return rc;
}

int nsq_options_test(void)
{
    s_unset_test_env();
    nsq_options_t *options =
        nsq_options_new("nsq-test", TEST_PREFIX, s_test_specs, TEST_SPEC_COUNT);
    if (!options)
        return -1;
    int rc = s_test_defaults(options);
    if (rc == 0)
        rc = s_test_flags(options);
    if (rc == 0)
        rc = s_test_errors(options);
    if (rc == 0)
        rc = s_test_env(options);
    if (rc == 0)
        rc = s_test_help(options);
    if (rc == 0)
        rc = s_test_tables(options);
    if (rc == 0)
        rc = s_test_store(options) || s_test_borrowed() ? -1 : 0;
    s_unset_test_env();
    nsq_options_destroy(&options);
    nsq_options_destroy(&options);  // NULL is accepted
    nsq_options_destroy(NULL);
    return rc;
}
