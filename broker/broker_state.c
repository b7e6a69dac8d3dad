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

// A caller waiting for a save.
typedef struct _state_waiter_t state_waiter_t;
struct _state_waiter_t {
    state_waiter_t *next;        // the next one
    broker_state_done_fn *done;  // its callback
    void *arg;                   // its argument
};

// One save on its way to the disk.
typedef struct {
    broker_state_t *state;    // whose
    state_waiter_t *waiters;  // who hears its result
} state_save_t;

struct _broker_state_t {
    char data_path[1024];        // "" = memory only
    nsq_diskio_t *diskio;        // does the saves (borrowed); NULL: on this thread
    broker_state_list_fn *list;  // what the file should hold
    void *list_arg;              // its argument
    int lock_fd;                 // flock'd lock file, -1 if none
    uint64_t written_hash;       // of the file as last handed to the disk (or loaded)
    state_save_t *newest;        // the last save on its way, NULL if none
    bool changed;                // something listed changed since the last save
    bool unsaved;                // the last save failed: the tick retries
    uint64_t failures;           // saves failed since the last success
    int64_t logged_ms;           // monotonic ms of the last line about a failed save
    int64_t saved_ms;            // monotonic ms of the last save
};

broker_state_t *broker_state_new(const char *data_path, nsq_diskio_t *diskio,
                                 broker_state_list_fn *list, void *arg)
{
    broker_state_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    snprintf(self->data_path, sizeof self->data_path, "%s", data_path);
    self->diskio = diskio;
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

// ---- saving -------------------------------------------------------------------------

// Adds done to the callers of save. Returns 0, or -1 if out of memory.
static int s_join(state_save_t *save, broker_state_done_fn *done, void *arg)
{
    if (!done)
        return 0;
    state_waiter_t *waiter = malloc(sizeof *waiter);
    if (!waiter)
        return -1;
    *waiter = (state_waiter_t){save->waiters, done, arg};
    save->waiters = waiter;
    return 0;
}

// A save ended with error (0: success): logs, keeps a failure for the
// tick to retry, tells the callers.
static void s_saved(state_save_t *save, int error)
{
    broker_state_t *self = save->state;
    if (self->newest == save)
        self->newest = NULL;
    if (!error) {
        if (self->failures)
            nsq_info("%s/%s saved after %" PRIu64 " failed attempts", self->data_path, STATE_FILE,
                     self->failures);
        self->failures = 0;
        self->unsaved = false;
    } else {
        // One line now and then says it still fails.
        self->unsaved = true;
        int64_t now = zclock_mono();
        if (self->failures++ == 0 || now - self->logged_ms >= STATE_RETRY_LOG_MS) {
            nsq_error("cannot write %s/%s: %s (attempt %" PRIu64 "; retrying every tick)",
                      self->data_path, STATE_FILE, strerror(error), self->failures);
            self->logged_ms = now;
        }
    }
    state_waiter_t *waiter;
    while ((waiter = save->waiters)) {
        save->waiters = waiter->next;
        waiter->done(waiter->arg, error);
        free(waiter);
    }
    free(save);
}

// The disk I/O actor's completion of a save.
static void s_replaced(void *arg, int result, int error)
{
    (void) result;
    s_saved(arg, error);
}

// Hands bytes (NULL: rendering ran out of memory) to the disk as the
// state file; done joins the save.
static void s_submit(broker_state_t *self, const char *bytes, size_t size,
                     broker_state_done_fn *done, void *arg)
{
    self->saved_ms = zclock_mono();
    self->changed = false;
    state_save_t *save = calloc(1, sizeof *save);
    if (save)
        save->state = self;
    if (!save || !bytes || s_join(save, done, arg) != 0) {
        if (save)
            s_saved(save, ENOMEM);
        if (done)
            done(arg, ENOMEM);
        return;
    }
    self->written_hash = s_hash(bytes, size);
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", self->data_path, STATE_FILE);
    if (!self->diskio) {
        s_saved(save, nsq_diskio_replace_file(path, bytes, size, true) == 0 ? 0 : errno);
        return;
    }
    self->newest = save;
    if (nsq_diskio_replace(self->diskio, path, bytes, size, true, s_replaced, save) != 0)
        s_saved(save, ENOMEM);
}

void broker_state_save(broker_state_t *self, broker_state_done_fn *done, void *arg)
{
    if (!self->data_path[0]) {
        if (done)
            done(arg, 0);
        return;
    }
    size_t size = 0;
    char *bytes = s_render(self, &size);
    s_submit(self, bytes, size, done, arg);
    free(bytes);
}

void broker_state_changed(broker_state_t *self)
{
    self->changed = true;
}

void broker_state_flush(broker_state_t *self, broker_state_done_fn *done, void *arg)
{
    if (!self->data_path[0]) {
        if (done)
            done(arg, 0);
        return;
    }
    if (self->changed) {
        self->changed = false;
        size_t size = 0;
        char *bytes = s_render(self, &size);
        bool same = bytes && s_hash(bytes, size) == self->written_hash;
        if (!same)
            s_submit(self, bytes, size, done, arg);
        free(bytes);
        if (!same)
            return;
    }
    if (self->newest) {
        if (s_join(self->newest, done, arg) != 0)
            done(arg, ENOMEM);
    } else if (self->unsaved) {
        broker_state_save(self, done, arg);
    } else if (done) {
        done(arg, 0);
    }
}

void broker_state_check(broker_state_t *self, int64_t now)
{
    if (self->changed && now - self->saved_ms >= STATE_SAVE_MIN_MS)
        broker_state_flush(self, NULL, NULL);
}

void broker_state_tick(broker_state_t *self, int64_t now)
{
    if (!self->data_path[0])
        return;
    if (self->unsaved && !self->newest)
        broker_state_save(self, NULL, NULL);
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
    self->written_hash = bytes ? s_hash(bytes, rendered) : 0;
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

static void s_test_done(void *arg, int error)
{
    *(int *) arg = error;
}

// Through a disk I/O actor: a save reports only once the actor replaced
// the file, a flush joins the save on its way, a failed save reaches its
// callers and the tick retries it.
static int s_test_async(const char *dir, const char *path, test_broker_t *broker)
{
    nsq_diskio_t *diskio = nsq_diskio_new();
    broker_state_t *state = diskio ? broker_state_new(dir, diskio, s_test_list, broker) : NULL;
    int saved = -1, flushed = -1, failed = -1, rc = -1;
    if (!state)
        goto done;
    unlink(path);
    nsq_diskio_hold(diskio, true);
    broker_state_save(state, s_test_done, &saved);
    broker_state_flush(state, s_test_done, &flushed);
    bool waited =
        nsq_diskio_dispatch(diskio) == 0 && saved == -1 && flushed == -1 && access(path, F_OK) != 0;
    nsq_diskio_hold(diskio, false);
    nsq_diskio_wait(diskio, -1);
    if (!waited || saved != 0 || flushed != 0 || access(path, F_OK) != 0)
        goto done;
    nsq_diskio_fail_next(diskio, NSQ_DISKIO_REPLACE, EIO);
    broker_state_changed(state);
    broker->channel_paused = !broker->channel_paused;
    broker_state_flush(state, s_test_done, &failed);
    nsq_diskio_wait(diskio, -1);
    saved = -1;
    broker_state_flush(state, s_test_done, &saved);  // the retry
    nsq_diskio_wait(diskio, -1);
    rc = failed == EIO && saved == 0 && nsq_diskio_performed(diskio, NSQ_DISKIO_REPLACE) == 3 ? 0
                                                                                              : -1;
done:
    nsq_diskio_destroy(&diskio);
    broker_state_destroy(&state);
    return rc;
}

int broker_state_test(void)
{
    char dir[] = "/tmp/broker-state-test-XXXXXX", path[128], text[256] = "", error[256];
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/%s", dir, STATE_FILE);
    test_broker_t broker = {.channel_paused = false};
    broker_state_t *state = broker_state_new(dir, NULL, s_test_list, &broker);
    broker_state_t *second = broker_state_new(dir, NULL, s_test_list, &broker);
    int rc = -1, saved = -1;
    // One broker per data path.
    if (!state || !second || broker_state_lock(state, error, sizeof error) != 0
        || broker_state_lock(second, error, sizeof error) == 0 || !strstr(error, "in use"))
        goto done;
    // The file lists the ids and the durable names only.
    broker_state_save(state, s_test_done, &saved);
    FILE *file = saved == 0 ? fopen(path, "r") : NULL;
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
    broker_state_flush(state, NULL, NULL);
    if (access(path, F_OK) == 0)
        goto done;
    broker.channel_paused = true;
    broker_state_changed(state);
    broker_state_check(state, zclock_mono() + STATE_SAVE_MIN_MS);
    if (access(path, F_OK) != 0)
        goto done;
    rc = s_test_async(dir, path, &broker);
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
