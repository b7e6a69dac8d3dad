/*  nsq_diskqueue_listing - the disk queue's file names, directory
    listings, and the list of segments a queue holds
    SPDX-License-Identifier: MIT

    A listing reads a directory once and keeps every queue's segment
    numbers, sorted by queue name then number, so that opening thousands of
    queues at start-up costs one scan; a queue takes its entries, and a
    second open of the same name reads the directory itself (its files may
    have changed since).

    Segments: the queue keeps the ascending list of its segment numbers
    whose files exist (the write segment last, listed even before its file
    is created), and moves from one entry to the next; nothing loops over
    the numbers between two entries. A position token is (the segment's
    ordinal in that list since open) << 40 | offset, so tokens order
    records whatever the segment numbers are.
*/
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nsq_diskqueue_internal.h"

// One segment file of a listing.
typedef struct {
    char *name;      // its queue's name
    int64_t number;  // its segment number
    bool taken;      // handed to a queue already
} dq_listed_t;

struct _nsq_diskqueue_listing_t {
    dq_listed_t *entries;  // sorted by name, then number
    size_t count;          // entries used
};

int64_t dq_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

void dq_segment_path(const nsq_diskqueue_t *self, int64_t number, char *path)
{
    snprintf(path, DQ_PATH_MAX, "%s/%s.diskqueue.%06" PRId64 ".dat", self->dir, self->name, number);
}

void dq_meta_path(const nsq_diskqueue_t *self, char *path, const char *suffix)
{
    snprintf(path, DQ_PATH_MAX, "%s/%s.diskqueue.meta.dat%s", self->dir, self->name, suffix);
}

// ---- listings ------------------------------------------------------------------

// Splits "NAME.diskqueue.NUMBER.dat" into the length of NAME and NUMBER.
// Returns false for any other file name.
static bool s_parse_segment_name(const char *file, size_t *name_length, int64_t *number)
{
    static const char infix[] = ".diskqueue.";
    const size_t infix_length = sizeof infix - 1;
    size_t length = strlen(file);
    if (length < 4 || strcmp(file + length - 4, ".dat") != 0)
        return false;
    size_t end = length - 4, start = end;
    while (start > 0 && file[start - 1] >= '0' && file[start - 1] <= '9')
        start--;
    if (start == end || end - start > 18 || start < infix_length + 1
        || strncmp(file + start - infix_length, infix, infix_length) != 0)
        return false;
    int64_t value = 0;
    for (size_t i = start; i < end; i++)
        value = value * 10 + (file[i] - '0');
    *name_length = start - infix_length;
    *number = value;
    return true;
}

static int s_listed_compare(const void *a, const void *b)
{
    const dq_listed_t *left = a, *right = b;
    int order = strcmp(left->name, right->name);
    if (order)
        return order;
    return left->number < right->number ? -1 : left->number > right->number;
}

// Adds one entry. Returns 0, or -1 (ENOMEM).
static int s_listing_add(nsq_diskqueue_listing_t *self, size_t *capacity, const char *file,
                         size_t name_length, int64_t number)
{
    if (self->count == *capacity) {
        size_t grown = *capacity ? 2 * *capacity : 64;
        dq_listed_t *entries = realloc(self->entries, grown * sizeof *entries);
        if (!entries)
            return -1;
        self->entries = entries;
        *capacity = grown;
    }
    char *name = strndup(file, name_length);
    if (!name)
        return -1;
    self->entries[self->count++] = (dq_listed_t){name, number, false};
    return 0;
}

nsq_diskqueue_listing_t *dq_listing_new(const char *dir, const char *only)
{
    nsq_diskqueue_listing_t *self = calloc(1, sizeof *self);
    DIR *handle = self ? opendir(dir) : NULL;
    if (!handle) {
        nsq_diskqueue_listing_destroy(&self);
        return NULL;
    }
    size_t capacity = 0, only_length = only ? strlen(only) : 0;
    struct dirent *entry;
    int error = 0;
    while (!error && (entry = readdir(handle))) {
        size_t name_length;
        int64_t number;
        if (!s_parse_segment_name(entry->d_name, &name_length, &number))
            continue;
        if (only && (name_length != only_length || strncmp(entry->d_name, only, only_length)))
            continue;
        if (s_listing_add(self, &capacity, entry->d_name, name_length, number) != 0)
            error = ENOMEM;
    }
    closedir(handle);
    if (error) {
        nsq_diskqueue_listing_destroy(&self);
        errno = error;
        return NULL;
    }
    if (self->count > 1)  // entries is NULL when the directory holds none
        qsort(self->entries, self->count, sizeof *self->entries, s_listed_compare);
    return self;
}

nsq_diskqueue_listing_t *nsq_diskqueue_listing_new(const char *dir)
{
    return dq_listing_new(dir, NULL);
}

void nsq_diskqueue_listing_destroy(nsq_diskqueue_listing_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_diskqueue_listing_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++)
        free(self->entries[i].name);
    free(self->entries);
    free(self);
    *self_p = NULL;
}

size_t dq_listing_count(const nsq_diskqueue_listing_t *self)
{
    return self->count;
}

// Finds the entries of the queue called name: sets *first, returns how
// many (0 if none).
static size_t s_listing_find(const nsq_diskqueue_listing_t *self, const char *name, size_t *first)
{
    size_t low = 0, high = self->count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (strcmp(self->entries[middle].name, name) < 0)
            low = middle + 1;
        else
            high = middle;
    }
    size_t end = low;
    while (end < self->count && strcmp(self->entries[end].name, name) == 0)
        end++;
    *first = low;
    return end - low;
}

// Takes the segment numbers listing holds for name (memory only, no file
// system call): *numbers (caller frees; NULL when none) and *count, and
// *verdict on whether they are the queue's segments. Returns 0, or -1
// (ENOMEM).
int dq_listing_take(nsq_diskqueue_listing_t *listing, const char *name, int64_t **numbers,
                    size_t *count, dq_listed_verdict_t *verdict)
{
    size_t first = 0, found = listing ? s_listing_find(listing, name, &first) : 0;
    *numbers = NULL;
    *count = 0;
    if (!listing || (found > 0 && listing->entries[first].taken)) {
        *verdict = DQ_UNLISTED;
        return 0;
    }
    *verdict = found ? DQ_LISTED : DQ_LISTED_UNLESS;
    if (!found)
        return 0;
    if (!(*numbers = malloc(found * sizeof **numbers)))
        return -1;
    for (size_t i = 0; i < found; i++) {
        (*numbers)[i] = listing->entries[first + i].number;
        listing->entries[first + i].taken = true;
    }
    *count = found;
    return 0;
}

// ---- the segment list ------------------------------------------------------------

// Index of segment number in the list, or segment_count if it is absent.
size_t dq_segment_index(const nsq_diskqueue_t *self, int64_t number)
{
    size_t low = 0, high = self->segment_count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (self->segments[middle] < number)
            low = middle + 1;
        else
            high = middle;
    }
    return low < self->segment_count && self->segments[low] == number ? low : self->segment_count;
}

// Appends number (above every listed one). Returns 0, or -1 (ENOMEM).
int dq_segment_append(nsq_diskqueue_t *self, int64_t number)
{
    if (self->segment_count == self->segment_capacity) {
        size_t capacity = self->segment_capacity ? 2 * self->segment_capacity : 4;
        int64_t *segments = realloc(self->segments, capacity * sizeof *segments);
        if (!segments)
            return -1;
        self->segments = segments;
        self->segment_capacity = capacity;
    }
    self->segments[self->segment_count++] = number;
    return 0;
}

// The position token of offset pos in listed segment file.
uint64_t dq_position(const nsq_diskqueue_t *self, int64_t file, int64_t pos)
{
    uint64_t ordinal = self->first_ordinal + dq_segment_index(self, file);
    return ordinal << DQ_POSITION_BITS | (uint64_t) pos;
}

// Splits a position token into its segment number and offset. Returns
// false if its segment is no longer listed.
bool dq_position_split(const nsq_diskqueue_t *self, uint64_t position, int64_t *file, int64_t *pos)
{
    uint64_t ordinal = position >> DQ_POSITION_BITS;
    if (ordinal < self->first_ordinal || ordinal - self->first_ordinal >= self->segment_count)
        return false;
    *file = self->segments[ordinal - self->first_ordinal];
    *pos = (int64_t) (position & (uint64_t) DQ_OFFSET_MAX);
    return true;
}
