/*  broker_state - the broker's state file and data-path lock: what a
    restart restores (topics, channels, paused flags, the id reservation)
    SPDX-License-Identifier: MIT
*/
#include "broker_state.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "nsq_log.h"
#include "nsq_names.h"

#define STATE_FILE   "nsq-broker.dat"
#define LOCK_FILE    "nsq-broker.lock"
#define STATE_HEADER "nsq-broker-state 1"
// Least time between two log lines about failed saves.
#define STATE_RETRY_LOG_MS 10000
// Least time between two saves for changes (the tick catches up): each
// save writes the whole list, and 10,000 topics created one by one would
// otherwise write it 10,000 times.
#define STATE_SAVE_MIN_MS 100

struct _broker_state_t {
    char data_path[1024];        // "" = memory only
    broker_state_list_fn *list;  // what the file should hold
    void *list_arg;              // its argument
    int lock_fd;                 // flock'd lock file, -1 if none
    uint64_t saved_hash;         // of the file as last written (or loaded)
    bool changed;                // something listed changed since the last save
    bool unsaved;                // the last save failed: the tick retries
    uint64_t failures;           // saves failed since the last success
    int64_t logged_ms;           // monotonic ms of the last line about a failed save
    int64_t saved_ms;            // monotonic ms of the last save
};

broker_state_t *broker_state_new(const char *data_path, broker_state_list_fn *list, void *arg)
{
    broker_state_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    snprintf(self->data_path, sizeof self->data_path, "%s", data_path);
    self->list = list;
    self->list_arg = arg;
    self->lock_fd = -1;
    return self;
}

void broker_state_destroy(broker_state_t **self_p)
{
    broker_state_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    if (self->lock_fd >= 0)
        close(self->lock_fd);  // releases the flock
    free(self);
    *self_p = NULL;
}

int broker_state_lock(broker_state_t *self, char *error, size_t size)
{
    if (!self->data_path[0])
        return 0;
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", self->data_path, LOCK_FILE);
    self->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (self->lock_fd < 0) {
        snprintf(error, size, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(self->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(error, size, "--data-path %s is in use by another broker (%s is locked)",
                 self->data_path, path);
        close(self->lock_fd);
        self->lock_fd = -1;
        return -1;
    }
    return 0;
}

// ---- rendering --------------------------------------------------------------------

// Writes one entry as its line (ephemeral names are never listed).
static int s_render_line(void *arg, const broker_state_entry_t *entry)
{
    FILE *file = arg;
    if (entry->kind == BROKER_STATE_IDS)
        fprintf(file, "ids %" PRIu64 "\n", entry->ids);
    else if (nsq_name_is_ephemeral(entry->topic))
        return 0;
    else if (entry->kind == BROKER_STATE_TOPIC)
        fprintf(file, "topic %s %d\n", entry->topic, entry->paused);
    else if (!nsq_name_is_ephemeral(entry->channel))
        fprintf(file, "channel %s %s %d\n", entry->topic, entry->channel, entry->paused);
    return 0;
}

// The file as it should be now. Caller frees it; NULL if out of memory.
static char *s_render(broker_state_t *self, size_t *size)
{
    char *bytes = NULL;
    FILE *file = open_memstream(&bytes, size);
    if (!file)
        return NULL;
    fprintf(file, "%s\n", STATE_HEADER);
    self->list(self->list_arg, s_render_line, file);
    bool failed = ferror(file);
    if (fclose(file) != 0 || failed) {  // the buffer is only valid after fclose
        free(bytes);
        return NULL;
    }
    return bytes;
}

static uint64_t s_hash(const char *bytes, size_t size)
{
    uint64_t hash = 14695981039346656037ULL;
    for (size_t i = 0; i < size; i++)
        hash = (hash ^ (uint8_t) bytes[i]) * 1099511628211ULL;
    return hash;
}

// Replaces the file at path with bytes. Returns 0, or -1 with errno.
static int s_write_file(const char *data_path, const char *path, const char *bytes, size_t size)
{
    char temp[1210];
    snprintf(temp, sizeof temp, "%s.tmp", path);
    FILE *file = fopen(temp, "we");
    if (!file)
        return -1;
    if (fwrite(bytes, 1, size, file) != size || fflush(file) != 0 || fdatasync(fileno(file)) != 0) {
        int saved = errno;
        fclose(file);
        errno = saved;
        return -1;
    }
    fclose(file);
    if (rename(temp, path) != 0)
        return -1;
    int dir = open(data_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        fsync(dir);
        close(dir);
    }
    return 0;
}

// ---- saving -------------------------------------------------------------------------

// Writes bytes as the state file; logs and keeps a failure for the tick.
static int s_save_bytes(broker_state_t *self, const char *bytes, size_t size)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", self->data_path, STATE_FILE);
    if (bytes && s_write_file(self->data_path, path, bytes, size) == 0) {
        if (self->failures)
            nsq_info("%s saved after %" PRIu64 " failed attempts", path, self->failures);
        self->failures = 0;
        self->unsaved = false;
        self->saved_hash = s_hash(bytes, size);
        return 0;
    }
    if (!bytes)
        errno = ENOMEM;
    // Kept for the tick to retry; one line now and then says it still fails.
    self->unsaved = true;
    int64_t now = zclock_mono();
    if (self->failures++ == 0 || now - self->logged_ms >= STATE_RETRY_LOG_MS) {
        nsq_error("cannot write %s: %s (attempt %" PRIu64 "; retrying every tick)", path,
                  strerror(errno), self->failures);
        self->logged_ms = now;
    }
    return -1;
}

int broker_state_save(broker_state_t *self)
{
    if (!self->data_path[0])
        return 0;
    self->saved_ms = zclock_mono();
    self->changed = false;
    size_t size = 0;
    char *bytes = s_render(self, &size);
    int rc = s_save_bytes(self, bytes, size);
    free(bytes);
    return rc;
}

void broker_state_changed(broker_state_t *self)
{
    self->changed = true;
}

void broker_state_flush(broker_state_t *self)
{
    if (!self->changed || !self->data_path[0])
        return;
    self->changed = false;
    size_t size = 0;
    char *bytes = s_render(self, &size);
    if (!bytes || s_hash(bytes, size) != self->saved_hash) {
        self->saved_ms = zclock_mono();
        s_save_bytes(self, bytes, size);
    }
    free(bytes);
}

void broker_state_check(broker_state_t *self, int64_t now)
{
    if (self->changed && now - self->saved_ms >= STATE_SAVE_MIN_MS)
        broker_state_flush(self);
}

void broker_state_tick(broker_state_t *self, int64_t now)
{
    if (!self->data_path[0])
        return;
    if (self->unsaved)
        broker_state_save(self);
    broker_state_check(self, now);
}

// ---- loading ------------------------------------------------------------------------

// Parses one line of the state file and hands it to restore. Returns 0,
// or -1 if it is bad or cannot be restored.
static int s_load_line(const char *line, broker_state_entry_fn *restore, void *arg)
{
    char kind[16], first[80], second[80];
    int paused = 0;
    broker_state_entry_t entry = {.kind = BROKER_STATE_IDS};
    if (sscanf(line, "ids %" SCNu64, &entry.ids) == 1)
        return restore(arg, &entry);
    if (sscanf(line, "topic %79s %d", first, &paused) == 2 && nsq_name_is_valid(first)) {
        entry = (broker_state_entry_t){BROKER_STATE_TOPIC, 0, first, NULL, paused != 0};
        return restore(arg, &entry);
    }
    if (sscanf(line, "%15s %79s %79s %d", kind, first, second, &paused) == 4
        && strcmp(kind, "channel") == 0 && nsq_name_is_valid(second)) {
        entry = (broker_state_entry_t){BROKER_STATE_CHANNEL, 0, first, second, paused != 0};
        return restore(arg, &entry);
    }
    return -1;
}

int broker_state_load(broker_state_t *self, broker_state_entry_fn *restore, void *arg, char *error,
                      size_t size)
{
    if (!self->data_path[0])
        return 0;
    char path[1200], line[256];
    snprintf(path, sizeof path, "%s/%s", self->data_path, STATE_FILE);
    FILE *file = fopen(path, "re");
    if (!file && errno == ENOENT)
        return 0;
    if (!file || !fgets(line, sizeof line, file) || strncmp(line, STATE_HEADER, 18) != 0) {
        snprintf(error, size, "cannot read %s: %s", path,
                 file ? "not a broker state file" : strerror(errno));
        if (file)
            fclose(file);
        return -1;
    }
    size_t topics = 0, channels = 0;
    while (fgets(line, sizeof line, file)) {
        if (s_load_line(line, restore, arg) != 0)
            nsq_error("%s: cannot restore \"%.*s\"", path, (int) strcspn(line, "\n"), line);
        else if (line[0] == 't')
            topics++;
        else if (line[0] == 'c')
            channels++;
    }
    fclose(file);
    size_t rendered = 0;
    char *bytes = s_render(self, &rendered);  // what was restored counts as saved
    self->saved_hash = bytes ? s_hash(bytes, rendered) : 0;
    self->changed = false;
    free(bytes);
    nsq_info("restored %zu topics and %zu channels from %s", topics, channels, path);
    return 0;
}

// ---- self-test ---------------------------------------------------------------------

typedef struct {
    bool channel_paused;  // what the fake broker lists for t/c
    int restored;         // entries handed to s_test_restore
    char seen[256];       // what they were
} test_broker_t;

static void s_test_list(void *arg, broker_state_entry_fn *emit, void *emit_arg)
{
    test_broker_t *broker = arg;
    broker_state_entry_t entries[] = {
        {BROKER_STATE_IDS, 42, NULL, NULL, false},
        {BROKER_STATE_TOPIC, 0, "t", NULL, true},
        {BROKER_STATE_CHANNEL, 0, "t", "c", broker->channel_paused},
        {BROKER_STATE_CHANNEL, 0, "t", "x#ephemeral", false},
        {BROKER_STATE_TOPIC, 0, "e#ephemeral", NULL, false},
        {BROKER_STATE_CHANNEL, 0, "e#ephemeral", "c", false},
    };
    for (size_t i = 0; i < sizeof entries / sizeof *entries; i++)
        emit(emit_arg, &entries[i]);
}

static int s_test_restore(void *arg, const broker_state_entry_t *entry)
{
    test_broker_t *broker = arg;
    size_t used = strlen(broker->seen);
    snprintf(broker->seen + used, sizeof broker->seen - used, "%d:%" PRIu64 ":%s:%s:%d;",
             (int) entry->kind, entry->ids, entry->topic ? entry->topic : "",
             entry->channel ? entry->channel : "", entry->paused);
    broker->restored++;
    return 0;
}

int broker_state_test(void)
{
    char dir[] = "/tmp/broker-state-test-XXXXXX", path[128], text[256] = "", error[256];
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/%s", dir, STATE_FILE);
    test_broker_t broker = {.channel_paused = false};
    broker_state_t *state = broker_state_new(dir, s_test_list, &broker);
    broker_state_t *second = broker_state_new(dir, s_test_list, &broker);
    int rc = -1;
    // One broker per data path.
    if (!state || !second || broker_state_lock(state, error, sizeof error) != 0
        || broker_state_lock(second, error, sizeof error) == 0 || !strstr(error, "in use"))
        goto done;
    // The file lists the ids and the durable names only.
    FILE *file = broker_state_save(state) == 0 ? fopen(path, "r") : NULL;
    size_t size = file ? fread(text, 1, sizeof text - 1, file) : 0;
    if (file)
        fclose(file);
    text[size] = '\0';
    if (strcmp(text, STATE_HEADER "\nids 42\ntopic t 1\nchannel t c 0\n") != 0)
        goto done;
    if (broker_state_load(second, s_test_restore, &broker, error, sizeof error) != 0
        || broker.restored != 3 || strcmp(broker.seen, "0:42:::0;1:0:t::1;2:0:t:c:0;") != 0)
        goto done;
    // A change that renders the same file writes nothing; a real one does.
    unlink(path);
    broker_state_changed(state);
    broker_state_flush(state);
    if (access(path, F_OK) == 0)
        goto done;
    broker.channel_paused = true;
    broker_state_changed(state);
    broker_state_check(state, zclock_mono() + STATE_SAVE_MIN_MS);
    if (access(path, F_OK) != 0)
        goto done;
    rc = 0;
done:
    broker_state_destroy(&second);
    broker_state_destroy(&state);
    broker_state_destroy(&state);  // NULL is accepted
    unlink(path);
    char lock[128];
    snprintf(lock, sizeof lock, "%s/%s", dir, LOCK_FILE);
    unlink(lock);
    if (rmdir(dir) != 0)
        rc = -1;
    return rc;
}
