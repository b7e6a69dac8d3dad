/*  nsq_log - leveled logging to stderr, one line per event, plain or JSON
    SPDX-License-Identifier: MIT

    Level, format and stream are atomics, so nsq_log_enabled costs one load
    on the hot path. The program name sits behind a mutex because it is a
    string; nsq_log copies it out before formatting. Each event is built in
    a line_t on the caller's stack and leaves in one write(2): POSIX keeps
    writes up to PIPE_BUF (4096, our line limit) to a pipe whole, and O_APPEND
    files and terminals in practice too.
*/
#include "nsq_log.h"
#include "nsq_utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define PROGRAM_MAX     64  // program name buffer, NUL included
#define DEFAULT_PROGRAM "nsq"
#define TRUNCATED_MARK  "..."
#define SUFFIX_RESERVE  8  // room kept for "..." plus the line's closing bytes

static atomic_int s_level = NSQ_LOG_INFO;
static atomic_bool s_json = false;
static atomic_int s_fd = -1;  // -1 means STDERR_FILENO
static pthread_mutex_t s_program_lock = PTHREAD_MUTEX_INITIALIZER;
static char s_program[PROGRAM_MAX] = DEFAULT_PROGRAM;

static const char *s_level_upper[] = {"DEBUG", "INFO", "WARN", "ERROR"};
static const char *s_level_lower[] = {"debug", "info", "warn", "error"};

// One line under construction; everything is all-or-nothing per escape unit
// so a truncated line never ends in half an escape sequence.
typedef struct {
    char data[NSQ_LOG_LINE_MAX];  // the line
    size_t size;                  // bytes used
    size_t limit;                 // bytes usable before the closing suffix
    bool truncated;               // something did not fit
} line_t;

void nsq_log_set_level(nsq_log_level_t level)
{
    if (level < NSQ_LOG_DEBUG)
        level = NSQ_LOG_DEBUG;
    if (level > NSQ_LOG_ERROR)
        level = NSQ_LOG_ERROR;
    atomic_store(&s_level, (int) level);
}

int nsq_log_level_parse(const char *text, nsq_log_level_t *level)
{
    if (!text)
        return -1;
    for (int index = NSQ_LOG_DEBUG; index <= NSQ_LOG_ERROR; index++) {
        if (strcasecmp(text, s_level_lower[index]) == 0) {
            *level = (nsq_log_level_t) index;
            return 0;
        }
    }
    if (strcasecmp(text, "warning") == 0) {
        *level = NSQ_LOG_WARN;
        return 0;
    }
    return -1;
}

void nsq_log_set_json(bool json)
{
    atomic_store(&s_json, json);
}

void nsq_log_set_program(const char *name)
{
    pthread_mutex_lock(&s_program_lock);
    snprintf(s_program, sizeof(s_program), "%s", name ? name : DEFAULT_PROGRAM);
    pthread_mutex_unlock(&s_program_lock);
}

void nsq_log_set_stream_fd(int fd)
{
    atomic_store(&s_fd, fd < 0 ? -1 : fd);
}

bool nsq_log_enabled(nsq_log_level_t level)
{
    return (int) level >= atomic_load(&s_level);
}

static void s_put(line_t *line, const char *text, size_t size)
{
    if (line->truncated || line->size + size > line->limit) {
        line->truncated = true;
        return;
    }
    memcpy(line->data + line->size, text, size);
    line->size += size;
}

// Drops a UTF-8 sequence left incomplete at the end of the line by truncation.
static void s_trim_partial_utf8(line_t *line, size_t start)
{
    size_t lead = line->size;
    while (lead > start && ((unsigned char) line->data[lead - 1] & 0xC0) == 0x80
           && line->size - lead < 3)
        lead--;
    if (lead == start)
        return;
    unsigned char byte = (unsigned char) line->data[lead - 1];
    size_t expected = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1;
    if (byte >= 0xC0 && line->size - (lead - 1) < expected)
        line->size = lead - 1;
}

// Appends text with control characters (and, for JSON, quotes and
// backslashes) escaped. Bytes that are not valid UTF-8 (a peer's client id
// may hold anything) become U+FFFD in JSON and \xNN in plain text, so
// every line is valid UTF-8 and every JSON line parses.
static void s_put_escaped(line_t *line, const char *text, bool json)
{
    size_t start = line->size;
    for (const char *cursor = text; *cursor && !line->truncated; cursor++) {
        unsigned char byte = (unsigned char) *cursor;
        char unit[8];
        uint32_t code_point;
        size_t length = byte < 0x80 ? 1 : nsq_utf8_decode(cursor, strnlen(cursor, 4), &code_point);
        if (length == 0 && json)
            s_put(line, NSQ_UTF8_REPLACEMENT, NSQ_UTF8_REPLACEMENT_SIZE);
        else if (length == 0) {
            snprintf(unit, sizeof(unit), "\\x%02x", byte);
            s_put(line, unit, strlen(unit));
        } else if (length > 1) {
            s_put(line, cursor, length);
            cursor += length - 1;
        } else if (byte == '\n')
            s_put(line, "\\n", 2);
        else if (byte == '\r')
            s_put(line, "\\r", 2);
        else if (byte == '\t')
            s_put(line, json ? "\\t" : "\t", json ? 2 : 1);
        else if (json && (byte == '"' || byte == '\\')) {
            unit[0] = '\\';
            unit[1] = (char) byte;
            s_put(line, unit, 2);
        } else if (byte < 0x20 || byte == 0x7F) {
            snprintf(unit, sizeof(unit), json ? "\\u%04x" : "\\x%02x", byte);
            s_put(line, unit, strlen(unit));
        } else
            s_put(line, (const char *) &byte, 1);
    }
    if (line->truncated)
        s_trim_partial_utf8(line, start);
}

static void s_timestamp(char *out, size_t size)
{
    struct timespec now;
    struct tm fields;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &fields);
    size_t used = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &fields);
    snprintf(out + used, size - used, ".%03ldZ", now.tv_nsec / 1000000);
}

static void s_build(line_t *line, nsq_log_level_t level, const char *program, const char *message,
                    bool message_truncated)
{
    char timestamp[40];
    s_timestamp(timestamp, sizeof(timestamp));
    bool json = atomic_load(&s_json);
    line->size = 0;
    line->limit = sizeof(line->data) - SUFFIX_RESERVE;
    line->truncated = false;
    if (json) {
        char head[128];
        int size = snprintf(head, sizeof(head), "{\"ts\":\"%s\",\"level\":\"%s\",\"program\":\"",
                            timestamp, s_level_lower[level]);
        s_put(line, head, (size_t) size);
        s_put_escaped(line, program, true);
        s_put(line, "\",\"msg\":\"", 9);
    } else {
        char head[128];
        int size = snprintf(head, sizeof(head), "%s %s ", timestamp, s_level_upper[level]);
        s_put(line, head, (size_t) size);
        s_put_escaped(line, program, false);
        s_put(line, ": ", 2);
    }
    s_put_escaped(line, message, json);
    // The suffix goes into the reserved room, so it always fits.
    line->limit = sizeof(line->data);
    bool truncated = line->truncated || message_truncated;
    line->truncated = false;
    if (truncated)
        s_put(line, TRUNCATED_MARK, strlen(TRUNCATED_MARK));
    s_put(line, json ? "\"}\n" : "\n", json ? 3 : 1);
}

static void s_write(const char *data, size_t size)
{
    int fd = atomic_load(&s_fd);
    if (fd < 0)
        fd = STDERR_FILENO;
    while (size > 0) {
        ssize_t written = write(fd, data, size);
        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0)
            return;  // nowhere left to report it
        data += written;
        size -= (size_t) written;
    }
}

void nsq_log(nsq_log_level_t level, const char *format, ...)
{
    if (!nsq_log_enabled(level))
        return;
    if (level > NSQ_LOG_ERROR)
        level = NSQ_LOG_ERROR;
    int saved_errno = errno;

    char message[NSQ_LOG_LINE_MAX];
    va_list args;
    va_start(args, format);
    int length = vsnprintf(message, sizeof(message), format, args);
    va_end(args);
    if (length < 0)
        snprintf(message, sizeof(message), "(bad log format: %s)", format);

    char program[PROGRAM_MAX];
    pthread_mutex_lock(&s_program_lock);
    memcpy(program, s_program, sizeof(program));
    pthread_mutex_unlock(&s_program_lock);

    line_t line;
    s_build(&line, level, program, message, length >= (int) sizeof(message));
    s_write(line.data, line.size);
    errno = saved_errno;
}

//  --------------------------------------------------------------------------
//  Self-test

#define TEST_THREADS          4
#define TEST_LINES_PER_THREAD 100

// Reads whatever the pipe holds (the read end is non-blocking). Returns the
// byte count; out is NUL-terminated.
static size_t s_drain(int fd, char *out, size_t size)
{
    size_t used = 0;
    while (used + 1 < size) {
        ssize_t got = read(fd, out + used, size - 1 - used);
        if (got <= 0)
            break;
        used += (size_t) got;
    }
    out[used] = '\0';
    return used;
}

// True if text starts with a timestamp like 2026-11-27T20:54:46.123Z.
static bool s_is_timestamp(const char *text)
{
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t index = 0; shape[index]; index++) {
        char expected = shape[index];
        if (expected == 'd' ? (text[index] < '0' || text[index] > '9') : text[index] != expected)
            return false;
    }
    return true;
}

// True if line is "<timestamp><rest>" exactly.
static bool s_plain_line_is(const char *line, const char *rest)
{
    return s_is_timestamp(line) && strcmp(line + 24, rest) == 0;
}

static void *s_test_thread(void *argument)
{
    int thread = (int) (intptr_t) argument;
    for (int index = 0; index < TEST_LINES_PER_THREAD; index++)
        nsq_info("thread %d line %d", thread, index);
    return NULL;
}

// Checks that every line written by the threads arrived whole and in order.
static int s_test_threads(int read_fd)
{
    pthread_t threads[TEST_THREADS];
    for (int index = 0; index < TEST_THREADS; index++)
        if (pthread_create(&threads[index], NULL, s_test_thread, (void *) (intptr_t) index))
            return -1;
    for (int index = 0; index < TEST_THREADS; index++)
        pthread_join(threads[index], NULL);

    static char output[65536];
    s_drain(read_fd, output, sizeof(output));
    int next[TEST_THREADS] = {0};
    int lines = 0;
    char *save = NULL;
    for (char *line = strtok_r(output, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int thread = -1, index = -1, consumed = 0;
        if (!s_is_timestamp(line)
            || sscanf(line + 24, " INFO nsq-test: thread %d line %d%n", &thread, &index, &consumed)
                   != 2
            || line[24 + consumed] != '\0' || thread < 0 || thread >= TEST_THREADS
            || index != next[thread])
            return -1;
        next[thread]++;
        lines++;
    }
    return lines == TEST_THREADS * TEST_LINES_PER_THREAD ? 0 : -1;
}

static int s_test_parse(void)
{
    nsq_log_level_t level = NSQ_LOG_ERROR;
    if (nsq_log_level_parse("debug", &level) || level != NSQ_LOG_DEBUG)
        return -1;
    if (nsq_log_level_parse("INFO", &level) || level != NSQ_LOG_INFO)
        return -1;
    if (nsq_log_level_parse("Warning", &level) || level != NSQ_LOG_WARN)
        return -1;
    if (nsq_log_level_parse("error", &level) || level != NSQ_LOG_ERROR)
        return -1;
    if (nsq_log_level_parse("warn", &level) || level != NSQ_LOG_WARN)
        return -1;
    const char *bad[] = {"", "verbose", "info ", "err", "debug2"};
    for (size_t index = 0; index < sizeof(bad) / sizeof(bad[0]); index++)
        if (nsq_log_level_parse(bad[index], &level) == 0 || level != NSQ_LOG_WARN)
            return -1;
    return nsq_log_level_parse(NULL, &level) == 0 ? -1 : 0;
}

static int s_test_plain(int read_fd)
{
    static char output[NSQ_LOG_LINE_MAX * 2];
    nsq_log_set_level(NSQ_LOG_INFO);
    int calls = 0;
    nsq_debug("hidden %d", ++calls);
    if (calls != 0 || s_drain(read_fd, output, sizeof(output)) != 0)
        return -1;
    errno = ENOENT;
    nsq_info("hello %d", 42);
    if (errno != ENOENT)
        return -1;
    s_drain(read_fd, output, sizeof(output));
    if (!s_plain_line_is(output, " INFO nsq-test: hello 42\n"))
        return -1;
    nsq_warn("two\nlines\tand \x01 bell");
    s_drain(read_fd, output, sizeof(output));
    if (!s_plain_line_is(output, " WARN nsq-test: two\\nlines\tand \\x01 bell\n"))
        return -1;

    nsq_log_set_level(NSQ_LOG_WARN);
    if (nsq_log_enabled(NSQ_LOG_INFO) || !nsq_log_enabled(NSQ_LOG_WARN)
        || !nsq_log_enabled(NSQ_LOG_ERROR))
        return -1;
    nsq_info("filtered");
    nsq_error("kept");
    s_drain(read_fd, output, sizeof(output));
    if (!s_plain_line_is(output, " ERROR nsq-test: kept\n"))
        return -1;
    nsq_log_set_level(NSQ_LOG_DEBUG);
    nsq_debug("debug on");
    s_drain(read_fd, output, sizeof(output));
    return s_plain_line_is(output, " DEBUG nsq-test: debug on\n") ? 0 : -1;
}

// A long message of two-byte characters is cut at a character boundary,
// marked with "...", and the line stays within NSQ_LOG_LINE_MAX. Tried
// behind an ASCII prefix of 0 and 1 bytes, so one of them hits the cut
// in the middle of a character.
static int s_test_truncation(int read_fd)
{
    static char message[NSQ_LOG_LINE_MAX * 2];
    static char output[NSQ_LOG_LINE_MAX * 2];
    for (size_t index = 0; index + 2 < sizeof(message); index += 2)
        memcpy(message + index, "\xc3\xa9", 2);
    message[sizeof(message) - 2] = '\0';

    for (int shift = 0; shift < 4; shift++) {
        bool json = shift >= 2;
        const char *prefix = shift % 2 ? "x" : "";
        const char *marker = json ? "\"msg\":\"" : "nsq-test: ";
        const char *ending = json ? "...\"}\n" : "...\n";
        nsq_log_set_json(json);
        nsq_info("%s%s", prefix, message);
        size_t size = s_drain(read_fd, output, sizeof(output));
        const char *body = strstr(output, marker);
        size_t ending_size = strlen(ending);
        if (size > NSQ_LOG_LINE_MAX || !body || size < ending_size
            || strcmp(output + size - ending_size, ending) != 0)
            return -1;
        body += strlen(marker) + strlen(prefix);
        if ((size_t) (output + size - ending_size - body) % 2 != 0)
            return -1;
    }
    return 0;
}

static int s_test_json(int read_fd)
{
    static char output[NSQ_LOG_LINE_MAX * 2];
    nsq_log_set_json(true);
    nsq_error("say \"hi\" \\ \x01\tend");
    s_drain(read_fd, output, sizeof(output));
    const char *expected = "\",\"level\":\"error\",\"program\":\"nsq-test\","
                           "\"msg\":\"say \\\"hi\\\" \\\\ \\u0001\\tend\"}\n";
    if (strncmp(output, "{\"ts\":\"", 7) != 0 || !s_is_timestamp(output + 7)
        || strcmp(output + 31, expected) != 0)
        return -1;
    nsq_log_set_program("quote\"me");
    nsq_info("x");
    s_drain(read_fd, output, sizeof(output));
    if (!strstr(output, "\"program\":\"quote\\\"me\",\"msg\":\"x\"}\n"))
        return -1;
    // A peer's bytes that are not UTF-8 must not break the JSON line
    nsq_info("client \xff\xc3\xa9\xed\xa0\x80!");
    s_drain(read_fd, output, sizeof(output));
    if (!strstr(output,
                "\"msg\":\"client " NSQ_UTF8_REPLACEMENT
                "\xc3\xa9" NSQ_UTF8_REPLACEMENT NSQ_UTF8_REPLACEMENT NSQ_UTF8_REPLACEMENT "!\"}\n"))
        return -1;
    nsq_log_set_json(false);
    nsq_info("client \xff\xc3\xa9!");
    s_drain(read_fd, output, sizeof(output));
    if (!strstr(output, "client \\xff\xc3\xa9!\n"))
        return -1;
    nsq_log_set_program(NULL);
    nsq_info("default name");
    s_drain(read_fd, output, sizeof(output));
    return s_plain_line_is(output, " INFO nsq: default name\n") ? 0 : -1;
}

// A write that fails (a read-only descriptor) leaves the caller's errno alone.
static int s_test_failed_write(void)
{
    int read_only = open("/dev/null", O_RDONLY);
    if (read_only < 0)
        return -1;
    nsq_log_set_stream_fd(read_only);
    errno = ENOENT;
    nsq_error("goes nowhere");
    int rc = errno == ENOENT ? 0 : -1;
    close(read_only);
    return rc;
}

int nsq_log_test(void)
{
    int saved_level = atomic_load(&s_level);
    bool saved_json = atomic_load(&s_json);
    int saved_fd = atomic_load(&s_fd);
    char saved_program[PROGRAM_MAX];
    memcpy(saved_program, s_program, sizeof(saved_program));

    int fds[2];
    if (pipe(fds) || fcntl(fds[0], F_SETFL, O_NONBLOCK))
        return -1;
    nsq_log_set_stream_fd(fds[1]);
    nsq_log_set_program("nsq-test");
    nsq_log_set_json(false);

    int rc = s_test_parse();
    if (rc == 0)
        rc = s_test_plain(fds[0]);
    if (rc == 0)
        rc = s_test_json(fds[0]);
    nsq_log_set_program("nsq-test");
    if (rc == 0)
        rc = s_test_truncation(fds[0]);
    nsq_log_set_json(false);
    nsq_log_set_level(NSQ_LOG_INFO);
    if (rc == 0)
        rc = s_test_threads(fds[0]);
    if (rc == 0)
        rc = s_test_failed_write();

    nsq_log_set_stream_fd(saved_fd);
    nsq_log_set_level((nsq_log_level_t) saved_level);
    nsq_log_set_json(saved_json);
    nsq_log_set_program(saved_program);
    close(fds[0]);
    close(fds[1]);
    return rc;
}
