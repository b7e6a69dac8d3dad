/*  fuzz_support - what the fuzz targets share
    SPDX-License-Identifier: MIT
*/
#include "fuzz_support.h"

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nsq_log.h"

void fuzz_assert(bool ok, const char *what, const char *file, int line)
{
    if (ok)
        return;
    fprintf(stderr, "FUZZ_ASSERT failed: %s (%s:%d)\n", what, file, line);
    abort();
}

void fuzz_input_init(fuzz_input_t *self, const uint8_t *data, size_t size)
{
    self->data = data;
    self->size = size;
}

uint8_t fuzz_u8(fuzz_input_t *self)
{
    if (self->size == 0)
        return 0;
    self->size--;
    return *self->data++;
}

uint16_t fuzz_u16(fuzz_input_t *self)
{
    uint16_t low = fuzz_u8(self);
    return (uint16_t) (low | fuzz_u8(self) << 8);
}

const uint8_t *fuzz_bytes(fuzz_input_t *self, size_t want, size_t *got)
{
    *got = want < self->size ? want : self->size;
    const uint8_t *bytes = self->data;
    self->data += *got;
    self->size -= *got;
    return bytes;
}

size_t fuzz_left(const fuzz_input_t *self)
{
    return self->size;
}

void fuzz_string(fuzz_input_t *self, char *out, size_t size)
{
    size_t got;
    const uint8_t *bytes = fuzz_bytes(self, fuzz_u8(self), &got);
    if (got > size - 1)
        got = size - 1;
    memcpy(out, bytes, got);
    out[got] = '\0';
}

void fuzz_setup_once(void)
{
    static bool done = false;
    if (done)
        return;
    done = true;
    zsys_handler_set(NULL);  // SIGINT stays libFuzzer's (it prints its totals)
    if (getenv("FUZZ_LOG"))
        return;
    nsq_log_set_level(NSQ_LOG_ERROR);
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0)
        nsq_log_set_stream_fd(null);  // kept open for the life of the process
}

static char s_scratch[PATH_MAX];

static void s_remove_scratch(void)
{
    if (!s_scratch[0])
        return;
    fuzz_clean_dir(s_scratch);
    rmdir(s_scratch);
}

const char *fuzz_scratch_dir(void)
{
    if (s_scratch[0])
        return s_scratch;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(s_scratch, sizeof s_scratch, "%s/nsq-fuzz-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(s_scratch)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(s_remove_scratch);
    return s_scratch;
}

void fuzz_clean_dir(const char *dir)
{
    DIR *handle = opendir(dir);
    if (!handle)
        return;
    int fd = dirfd(handle);
    struct dirent *entry;
    while ((entry = readdir(handle)))
        if (entry->d_name[0] != '.' || (entry->d_name[1] && strcmp(entry->d_name, "..") != 0))
            unlinkat(fd, entry->d_name, 0);
    closedir(handle);
}

void fuzz_write_file(const char *dir, const char *name, const void *data, size_t size)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    FUZZ_ASSERT(fd >= 0);
    FUZZ_ASSERT(size == 0 || write(fd, data, size) == (ssize_t) size);
    close(fd);
}

static zsock_t *s_router;

static void s_router_destroy(void)
{
    zsock_destroy(&s_router);
}

zsock_t *fuzz_router(void)
{
    if (!s_router) {
        s_router = zsock_new_router(NULL);  // never bound
        FUZZ_ASSERT(s_router != NULL);
        atexit(s_router_destroy);
    }
    return s_router;
}

static void s_line_free(void **item)
{
    free(*item);
    *item = NULL;
}

zlistx_t *fuzz_lines_new(void)
{
    zlistx_t *lines = zlistx_new();
    FUZZ_ASSERT(lines != NULL);
    zlistx_set_destructor(lines, s_line_free);
    return lines;
}

static int s_compare_lines(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

// The lines of list in order, in an array the caller frees (not
// zlistx_sort: czmq 4.2.1's can leave a list unsorted).
static char **s_sorted(zlistx_t *list)
{
    char **lines = calloc(zlistx_size(list) + 1, sizeof *lines);
    FUZZ_ASSERT(lines != NULL);
    size_t count = 0;
    for (char *line = zlistx_first(list); line; line = zlistx_next(list))
        lines[count++] = line;
    qsort(lines, count, sizeof *lines, s_compare_lines);
    return lines;
}

// True if x and y (sorted, NULL-ended) hold the same lines.
static bool s_same(char **x, char **y)
{
    size_t i = 0;
    while (x[i] && y[i] && strcmp(x[i], y[i]) == 0)
        i++;
    return !x[i] && !y[i];
}

bool fuzz_lines_same(zlistx_t *x, zlistx_t *y)
{
    char **a = s_sorted(x), **b = s_sorted(y);
    bool same = s_same(a, b);
    free(a);
    free(b);
    return same;
}

void fuzz_lines_expect_same(zlistx_t *before, zlistx_t *after, const char *what)
{
    char **x = s_sorted(before), **y = s_sorted(after);
    size_t i;
    bool same = s_same(x, y);
    if (!same) {
        fprintf(stderr, "before %s:\n", what);
        for (i = 0; x[i]; i++)
            fprintf(stderr, "  %s\n", x[i]);
        fprintf(stderr, "after %s:\n", what);
        for (i = 0; y[i]; i++)
            fprintf(stderr, "  %s\n", y[i]);
    }
    free(x);
    free(y);
    FUZZ_ASSERT(same);
}

json_t *fuzz_expect_json(const char *text, const char *what)
{
    json_error_t error;
    json_t *parsed = json_loads(text, 0, &error);
    if (!parsed)
        fprintf(stderr, "%s is not valid JSON (%s): %s\n", what, error.text, text);
    FUZZ_ASSERT(parsed != NULL);
    return parsed;
}

void fuzz_expect_sorted(json_t *array, const char *what)
{
    FUZZ_ASSERT(json_is_array(array));
    const char *previous = NULL;
    size_t index;
    json_t *item;
    json_array_foreach(array, index, item)
    {
        const char *text = json_string_value(item);
        FUZZ_ASSERT(text != NULL);
        if (previous && strcmp(previous, text) >= 0)
            fprintf(stderr, "%s: \"%s\" before \"%s\"\n", what, previous, text);
        FUZZ_ASSERT(!previous || strcmp(previous, text) < 0);
        previous = text;
    }
}
