/*  nsq_diskqueue - the disk queue itself: construction, the hand-off of
    the recovery in async mode, destroy and delete, empty
    SPDX-License-Identifier: MIT

    The class's parts are listed in nsq_diskqueue_internal.h. This file
    builds a queue and ends it.

    Synchronous mode recovers in the constructor. Async mode builds a
    private twin of the queue (synchronous, same directory and name) and
    hands it to the actor, which runs the same recovery over it; the queue
    itself is usable at once (puts wait in the pending buffer, gets answer
    NSQ_DISKQUEUE_WAIT). When the recovery completes, the twin's positions,
    segment list and counts move into the queue on the owner's thread and
    the twin is freed: the two never share memory while both threads run.

    Ending in async mode: destroy and delete mark the queue and forget the
    caller's pointer; the final work (write out pending records, then the
    last data sync, metadata and closes; or, for delete, closes and
    unlinks) goes to the actor, and the queue's memory is freed when its
    last completion has run. A queue never frees itself inside one of its
    own callbacks (dq_enter / dq_leave).
*/
#include "nsq_diskqueue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsq_diskqueue_internal.h"
#include "nsq_log.h"

// ---- CRC32C --------------------------------------------------------------

// CRC32C (Castagnoli, reflected polynomial 0x82F63B78) of each byte value,
// generated once: a constant table needs no initialisation, so threads can
// share it without a race.
static const uint32_t s_crc_table[256] = {
    0x00000000u, 0xF26B8303u, 0xE13B70F7u, 0x1350F3F4u, 0xC79A971Fu, 0x35F1141Cu, 0x26A1E7E8u,
    0xD4CA64EBu, 0x8AD958CFu, 0x78B2DBCCu, 0x6BE22838u, 0x9989AB3Bu, 0x4D43CFD0u, 0xBF284CD3u,
    0xAC78BF27u, 0x5E133C24u, 0x105EC76Fu, 0xE235446Cu, 0xF165B798u, 0x030E349Bu, 0xD7C45070u,
    0x25AFD373u, 0x36FF2087u, 0xC494A384u, 0x9A879FA0u, 0x68EC1CA3u, 0x7BBCEF57u, 0x89D76C54u,
    0x5D1D08BFu, 0xAF768BBCu, 0xBC267848u, 0x4E4DFB4Bu, 0x20BD8EDEu, 0xD2D60DDDu, 0xC186FE29u,
    0x33ED7D2Au, 0xE72719C1u, 0x154C9AC2u, 0x061C6936u, 0xF477EA35u, 0xAA64D611u, 0x580F5512u,
    0x4B5FA6E6u, 0xB93425E5u, 0x6DFE410Eu, 0x9F95C20Du, 0x8CC531F9u, 0x7EAEB2FAu, 0x30E349B1u,
    0xC288CAB2u, 0xD1D83946u, 0x23B3BA45u, 0xF779DEAEu, 0x05125DADu, 0x1642AE59u, 0xE4292D5Au,
    0xBA3A117Eu, 0x4851927Du, 0x5B016189u, 0xA96AE28Au, 0x7DA08661u, 0x8FCB0562u, 0x9C9BF696u,
    0x6EF07595u, 0x417B1DBCu, 0xB3109EBFu, 0xA0406D4Bu, 0x522BEE48u, 0x86E18AA3u, 0x748A09A0u,
    0x67DAFA54u, 0x95B17957u, 0xCBA24573u, 0x39C9C670u, 0x2A993584u, 0xD8F2B687u, 0x0C38D26Cu,
    0xFE53516Fu, 0xED03A29Bu, 0x1F682198u, 0x5125DAD3u, 0xA34E59D0u, 0xB01EAA24u, 0x42752927u,
    0x96BF4DCCu, 0x64D4CECFu, 0x77843D3Bu, 0x85EFBE38u, 0xDBFC821Cu, 0x2997011Fu, 0x3AC7F2EBu,
    0xC8AC71E8u, 0x1C661503u, 0xEE0D9600u, 0xFD5D65F4u, 0x0F36E6F7u, 0x61C69362u, 0x93AD1061u,
    0x80FDE395u, 0x72966096u, 0xA65C047Du, 0x5437877Eu, 0x4767748Au, 0xB50CF789u, 0xEB1FCBADu,
    0x197448AEu, 0x0A24BB5Au, 0xF84F3859u, 0x2C855CB2u, 0xDEEEDFB1u, 0xCDBE2C45u, 0x3FD5AF46u,
    0x7198540Du, 0x83F3D70Eu, 0x90A324FAu, 0x62C8A7F9u, 0xB602C312u, 0x44694011u, 0x5739B3E5u,
    0xA55230E6u, 0xFB410CC2u, 0x092A8FC1u, 0x1A7A7C35u, 0xE811FF36u, 0x3CDB9BDDu, 0xCEB018DEu,
    0xDDE0EB2Au, 0x2F8B6829u, 0x82F63B78u, 0x709DB87Bu, 0x63CD4B8Fu, 0x91A6C88Cu, 0x456CAC67u,
    0xB7072F64u, 0xA457DC90u, 0x563C5F93u, 0x082F63B7u, 0xFA44E0B4u, 0xE9141340u, 0x1B7F9043u,
    0xCFB5F4A8u, 0x3DDE77ABu, 0x2E8E845Fu, 0xDCE5075Cu, 0x92A8FC17u, 0x60C37F14u, 0x73938CE0u,
    0x81F80FE3u, 0x55326B08u, 0xA759E80Bu, 0xB4091BFFu, 0x466298FCu, 0x1871A4D8u, 0xEA1A27DBu,
    0xF94AD42Fu, 0x0B21572Cu, 0xDFEB33C7u, 0x2D80B0C4u, 0x3ED04330u, 0xCCBBC033u, 0xA24BB5A6u,
    0x502036A5u, 0x4370C551u, 0xB11B4652u, 0x65D122B9u, 0x97BAA1BAu, 0x84EA524Eu, 0x7681D14Du,
    0x2892ED69u, 0xDAF96E6Au, 0xC9A99D9Eu, 0x3BC21E9Du, 0xEF087A76u, 0x1D63F975u, 0x0E330A81u,
    0xFC588982u, 0xB21572C9u, 0x407EF1CAu, 0x532E023Eu, 0xA145813Du, 0x758FE5D6u, 0x87E466D5u,
    0x94B49521u, 0x66DF1622u, 0x38CC2A06u, 0xCAA7A905u, 0xD9F75AF1u, 0x2B9CD9F2u, 0xFF56BD19u,
    0x0D3D3E1Au, 0x1E6DCDEEu, 0xEC064EEDu, 0xC38D26C4u, 0x31E6A5C7u, 0x22B65633u, 0xD0DDD530u,
    0x0417B1DBu, 0xF67C32D8u, 0xE52CC12Cu, 0x1747422Fu, 0x49547E0Bu, 0xBB3FFD08u, 0xA86F0EFCu,
    0x5A048DFFu, 0x8ECEE914u, 0x7CA56A17u, 0x6FF599E3u, 0x9D9E1AE0u, 0xD3D3E1ABu, 0x21B862A8u,
    0x32E8915Cu, 0xC083125Fu, 0x144976B4u, 0xE622F5B7u, 0xF5720643u, 0x07198540u, 0x590AB964u,
    0xAB613A67u, 0xB831C993u, 0x4A5A4A90u, 0x9E902E7Bu, 0x6CFBAD78u, 0x7FAB5E8Cu, 0x8DC0DD8Fu,
    0xE330A81Au, 0x115B2B19u, 0x020BD8EDu, 0xF0605BEEu, 0x24AA3F05u, 0xD6C1BC06u, 0xC5914FF2u,
    0x37FACCF1u, 0x69E9F0D5u, 0x9B8273D6u, 0x88D28022u, 0x7AB90321u, 0xAE7367CAu, 0x5C18E4C9u,
    0x4F48173Du, 0xBD23943Eu, 0xF36E6F75u, 0x0105EC76u, 0x12551F82u, 0xE03E9C81u, 0x34F4F86Au,
    0xC69F7B69u, 0xD5CF889Du, 0x27A40B9Eu, 0x79B737BAu, 0x8BDCB4B9u, 0x988C474Du, 0x6AE7C44Eu,
    0xBE2DA0A5u, 0x4C4623A6u, 0x5F16D052u, 0xAD7D5351u,
};

uint32_t nsq_crc32c(uint32_t crc, const void *data, size_t size)
{
    const uint8_t *bytes = data;
    crc = ~crc;
    for (size_t i = 0; i < size; i++)
        crc = s_crc_table[(crc ^ bytes[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

// ---- construction ----------------------------------------------------------------

// Async mode: what the actor needs to recover a twin of the queue.
typedef struct {
    nsq_diskqueue_t *twin;        // synchronous copy the recovery works on
    int64_t *numbers;             // the listing's segment numbers, or NULL
    size_t count;                 // how many
    dq_listed_verdict_t verdict;  // whether they are the queue's
} dq_recovery_t;

static void s_free(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    if (!async)
        dq_release(self);
    if (async) {
        free(async->pending);
        while (async->ranges) {
            dq_range_t *next = async->ranges->next;
            free(async->ranges);
            async->ranges = next;
        }
        free(async);
    }
    free(self->segments);
    free(self->dir);
    free(self->name);
    free(self);
}

static nsq_diskqueue_t *s_alloc(const nsq_diskqueue_config_t *config)
{
    nsq_diskqueue_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->dir = strdup(config->dir);
    self->name = strdup(config->name);
    self->max_bytes_per_file = config->max_bytes_per_file;
    self->max_msg_size = config->max_msg_size;
    self->sync_every = config->sync_every;
    self->write_fd = -1;
    self->read_fd = -1;
    self->read_end = -1;
    self->keep = NSQ_DISKQUEUE_KEEP_NONE;
    if (!self->dir || !self->name) {
        s_free(self);
        return NULL;
    }
    return self;
}

static void s_recovery_free(dq_recovery_t *job)
{
    if (job->twin)
        s_free(job->twin);
    free(job->numbers);
    free(job);
}

static int s_empty(nsq_diskqueue_t *self);

// On the actor thread: recovers the twin.
static int s_recover(void *job_arg)
{
    dq_recovery_t *job = job_arg;
    return dq_recover(job->twin, job->numbers, job->count, job->verdict);
}

void dq_recovered(nsq_diskqueue_t *self, void *job_arg, int error)
{
    dq_recovery_t *job = job_arg;
    nsq_diskqueue_t *twin = job->twin;
    dq_async_t *async = self->async;
    if (error) {
        nsq_error("diskqueue %s: cannot open in %s: %s", self->name, self->dir, strerror(error));
        async->state = DQ_FAILED;
        async->open_error = error;
        dq_fail_waiters(self, 0, error);
        dq_drop_pending(self, true);
    } else {
        self->read_file = twin->read_file;
        self->read_pos = twin->read_pos;
        self->write_file = twin->write_file;
        self->write_pos = twin->write_pos;
        self->depth += twin->depth;  // the pending records are counted already
        free(self->segments);
        self->segments = twin->segments;
        self->segment_count = twin->segment_count;
        self->segment_capacity = twin->segment_capacity;
        twin->segments = NULL;
        self->first_ordinal = twin->first_ordinal;
        self->corrupt_count += twin->corrupt_count;
        self->last_sync_ms = dq_now_ms();
        async->state = DQ_READY;
        if (self->keeping)
            dq_delete_done(self);
        if (async->empty_wanted && async->ending != DQ_DELETING && s_empty(self) != 0)
            nsq_error("diskqueue %s: cannot empty: %s", self->name, strerror(errno));
        async->empty_wanted = false;
        if (async->ending != DQ_DELETING)
            dq_flush_pending(self);  // asks for the write descriptor
        dq_resolve(self);
    }
    s_recovery_free(job);
    dq_reader_wake(self);
}

// Async mode: a queue that recovers on the actor thread.
static nsq_diskqueue_t *s_open_async(const nsq_diskqueue_config_t *config)
{
    nsq_diskqueue_t *self = s_alloc(config);
    dq_recovery_t *job = calloc(1, sizeof *job);
    dq_async_t *async = calloc(1, sizeof *async);
    if (self)
        self->async = async;
    if (!self || !job || !async || !(job->twin = s_alloc(config))
        || dq_listing_take(config->listing, config->name, &job->numbers, &job->count, &job->verdict)
               != 0) {
        if (job)
            s_recovery_free(job);
        if (self)
            s_free(self);
        else
            free(async);
        return NULL;
    }
    size_t record_max = NSQ_DISKQUEUE_HEADER_SIZE + (size_t) config->max_msg_size;
    async->diskio = config->diskio;
    async->wake = config->wake;
    async->wake_arg = config->wake_arg;
    async->state = DQ_RECOVERING;
    async->pending_max = config->pending_max ? config->pending_max : DQ_PENDING_MAX;
    if (async->pending_max < record_max)
        async->pending_max = record_max;
    async->write_opening = async->next_opening = async->read_opening = -1;
    async->next_fd = -1;
    async->ranges_tail = &async->ranges;
    async->waiters_tail = &async->waiters;
    if (dq_request_recover(self, s_recover, job) != 0) {
        s_recovery_free(job);
        s_free(self);
        return NULL;
    }
    return self;
}

nsq_diskqueue_t *nsq_diskqueue_open(const nsq_diskqueue_config_t *config)
{
    if (config->diskio)
        return s_open_async(config);
    nsq_diskqueue_t *self = s_alloc(config);
    if (!self)
        return NULL;
    int64_t *numbers = NULL;
    size_t count = 0;
    dq_listed_verdict_t verdict;
    if (dq_listing_take(config->listing, self->name, &numbers, &count, &verdict) != 0
        || dq_recover(self, numbers, count, verdict) != 0) {
        int saved = errno;
        nsq_error("diskqueue %s: cannot open in %s: %s", self->name, self->dir, strerror(saved));
        self->meta_dirty = false;
        self->dir_unsynced = false;
        self->unsynced_writes = 0;
        nsq_diskqueue_destroy(&self);
        errno = saved;
    }
    free(numbers);
    return self;
}

nsq_diskqueue_t *nsq_diskqueue_new_listed(const char *dir, const char *name,
                                          int64_t max_bytes_per_file, uint32_t max_msg_size,
                                          int64_t sync_every, nsq_diskqueue_listing_t *listing)
{
    nsq_diskqueue_config_t config = {
        .dir = dir,
        .name = name,
        .max_bytes_per_file = max_bytes_per_file,
        .max_msg_size = max_msg_size,
        .sync_every = sync_every,
        .listing = listing,
    };
    return nsq_diskqueue_open(&config);
}

nsq_diskqueue_t *nsq_diskqueue_new(const char *dir, const char *name, int64_t max_bytes_per_file,
                                   uint32_t max_msg_size, int64_t sync_every)
{
    return nsq_diskqueue_new_listed(dir, name, max_bytes_per_file, max_msg_size, sync_every, NULL);
}

// ---- ending ----------------------------------------------------------------------

// Async delete: closes the descriptors and removes every file.
static void s_remove_files(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    dq_close_reader(self);
    if (self->write_fd >= 0)
        dq_close(self, self->write_fd);
    self->write_fd = -1;
    if (async->next_fd >= 0 || async->next_opening >= 0)
        dq_unlink_segment(self, self->write_file + 1);
    if (async->next_fd >= 0)
        dq_close(self, async->next_fd);
    async->next_fd = -1;
    if (async->state != DQ_READY)
        nsq_warn("diskqueue %s: never opened, its segments stay in %s", self->name, self->dir);
    for (size_t i = 0; async->state == DQ_READY && i < self->segment_count; i++)
        dq_unlink_segment(self, self->segments[i]);
    dq_unlink_meta(self);
}

// Hands the final work of an ended async queue to the actor once it can,
// and frees the queue when nothing is outstanding. Returns true if freed.
static bool s_finish(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    if (async->state == DQ_RECOVERING)
        return false;  // its completion comes back here
    async->busy++;
    if (!async->ending_started && async->ending == DQ_CLOSING && async->state == DQ_READY) {
        dq_flush_pending(self);  // may wait for the write descriptor
        if (async->pending_count > 0 && self->write_fd < 0 && async->write_opening < 0)
            dq_drop_pending(self, true);  // it could not even be asked for
        if (async->pending_count == 0) {
            async->ending_started = true;
            dq_sync(self, true);
        }
    } else if (!async->ending_started) {
        async->ending_started = true;
        int error = async->ending == DQ_DELETING ? ECANCELED : async->open_error;
        dq_fail_waiters(self, 0, error);
        dq_drop_pending(self, async->ending != DQ_DELETING);
        if (async->ending == DQ_DELETING)
            s_remove_files(self);
    }
    async->busy--;
    if (!async->ending_started || async->outstanding > 0)
        return false;
    async->busy++;
    dq_fail_waiters(self, 0, ECANCELED);  // none normally: the final sync answered them
    s_free(self);
    return true;
}

void dq_enter(nsq_diskqueue_t *self)
{
    self->async->busy++;
}

bool dq_leave(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    if (--async->busy > 0 || async->ending == DQ_LIVE)
        return false;
    return s_finish(self);
}

// Async mode: ends the queue the way ending says.
static void s_end(nsq_diskqueue_t *self, dq_ending_t ending)
{
    self->async->ending = ending;
    self->async->wake = NULL;
    dq_enter(self);
    dq_leave(self);
}

void nsq_diskqueue_destroy(nsq_diskqueue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_diskqueue_t *self = *self_p;
    *self_p = NULL;
    if (self->async) {
        s_end(self, DQ_CLOSING);
        return;
    }
    if (nsq_diskqueue_dirty(self) && nsq_diskqueue_sync(self) != 0)
        nsq_error("diskqueue %s: final sync failed: %s", self->name, strerror(errno));
    s_free(self);
}

void nsq_diskqueue_delete(nsq_diskqueue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_diskqueue_t *self = *self_p;
    *self_p = NULL;
    if (self->async) {
        s_end(self, DQ_DELETING);
        return;
    }
    for (size_t i = 0; i < self->segment_count; i++)
        dq_unlink_segment(self, self->segments[i]);
    dq_unlink_meta(self);
    s_free(self);
}

// ---- empty and the async accessors -------------------------------------------------

// Drops every record: a new segment, every older one deleted.
static int s_empty(nsq_diskqueue_t *self)
{
    self->keep = NSQ_DISKQUEUE_KEEP_NONE;
    self->keep_count = 0;
    dq_close_reader(self);
    if (self->async)
        dq_drop_pending(self, false);
    if (dq_roll(self) != 0)
        return -1;
    self->read_file = self->write_file;
    self->read_pos = 0;
    self->depth = 0;
    self->meta_dirty = true;
    dq_delete_done(self);
    return dq_sync(self, true);
}

int nsq_diskqueue_empty(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    if (!async)
        return s_empty(self);
    if (async->state == DQ_FAILED)
        return errno = async->open_error, -1;
    if (async->state == DQ_RECOVERING) {
        dq_drop_pending(self, false);  // the recovered files follow when they are known
        self->depth = 0;
        async->empty_wanted = true;
        return 0;
    }
    dq_enter(self);
    int rc = s_empty(self);
    int saved = errno;
    dq_leave(self);
    errno = saved;
    return rc;
}

int nsq_diskqueue_error(const nsq_diskqueue_t *self)
{
    return self->async && self->async->state == DQ_FAILED ? self->async->open_error : 0;
}

bool nsq_diskqueue_ready(const nsq_diskqueue_t *self)
{
    return !self->async || self->async->state == DQ_READY;
}

uint64_t nsq_diskqueue_sync_failures(const nsq_diskqueue_t *self)
{
    return self->async ? self->async->sync_failures : 0;
}
