/*  fuzz_worker_frame - the --process protocol as the worker reads what a
    handler process writes on its stdout
    SPDX-License-Identifier: MIT

    The bytes are untrusted: any program can be the handler. Checked
    against the reader's contract, not only for crashes:

    - the reader hands out the same replies, and ends in the same state
      (more bytes needed, or garbage), whether the bytes come whole or in
      pieces of the sizes the input asks for;
    - every reply has a 16-hex-digit id, a known op, an output only on FIN
      and never longer than the limit, and a delay only on REQ;
    - once it said garbage, it stays unusable and says so again.

    Input: [u8 max_output / 16][u8 piece size, 0 = whole] then the bytes.
*/
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_support.h"
#include "worker_frame.h"

#define S_REPLIES_MAX 64

typedef struct {
    worker_frame_reply_t replies[S_REPLIES_MAX];  // bodies copied below
    uint8_t *bodies[S_REPLIES_MAX];
    size_t count;
    int last;  // 0 (needs more) or -1 (garbage)
} s_run_t;

static void s_check_reply(const worker_frame_reply_t *reply, size_t max_output)
{
    FUZZ_ASSERT(strlen(reply->id) == 16);
    for (size_t i = 0; i < 16; i++)
        FUZZ_ASSERT(isxdigit((unsigned char) reply->id[i]));
    FUZZ_ASSERT(reply->op == WORKER_FRAME_FIN || reply->op == WORKER_FRAME_REQ
                || reply->op == WORKER_FRAME_TOUCH);
    FUZZ_ASSERT(reply->size <= max_output);
    FUZZ_ASSERT(reply->size == 0 || reply->op == WORKER_FRAME_FIN);
    FUZZ_ASSERT(reply->size == 0 || reply->body != NULL);
    FUZZ_ASSERT(reply->delay_ms == -1 || (reply->op == WORKER_FRAME_REQ && reply->delay_ms >= 0));
}

// Takes every reply the reader has now; false once it said garbage.
static bool s_drain(worker_frame_reader_t *reader, s_run_t *run, size_t max_output)
{
    char error[256];
    worker_frame_reply_t reply;
    int rc;
    while ((rc = worker_frame_reader_next(reader, &reply, error, sizeof error)) == 1) {
        s_check_reply(&reply, max_output);
        if (run->count < S_REPLIES_MAX) {
            run->bodies[run->count] = reply.size ? malloc(reply.size) : NULL;
            FUZZ_ASSERT(reply.size == 0 || run->bodies[run->count]);
            if (reply.size)
                memcpy(run->bodies[run->count], reply.body, reply.size);
            run->replies[run->count++] = reply;
        }
    }
    run->last = rc;
    if (rc < 0) {
        FUZZ_ASSERT(error[0] != '\0' && memchr(error, '\0', sizeof error) != NULL);
        FUZZ_ASSERT(worker_frame_reader_next(reader, &reply, error, sizeof error) == -1);
    }
    return rc == 0;
}

// Feeds data in pieces of piece bytes (0 = all at once).
static void s_read(const uint8_t *data, size_t size, size_t piece, size_t max_output, s_run_t *run)
{
    worker_frame_reader_t *reader = worker_frame_reader_new(max_output);
    FUZZ_ASSERT(reader);
    size_t step = piece ? piece : (size ? size : 1);
    for (size_t at = 0; at < size; at += step) {
        size_t length = size - at < step ? size - at : step;
        FUZZ_ASSERT(worker_frame_reader_feed(reader, data + at, length) == 0);
        if (!s_drain(reader, run, max_output))
            break;
    }
    if (size == 0)
        s_drain(reader, run, max_output);
    worker_frame_reader_destroy(&reader);
}

static void s_free(s_run_t *run)
{
    for (size_t i = 0; i < run->count; i++)
        free(run->bodies[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup_once();
    fuzz_input_t input;
    fuzz_input_init(&input, data, size);
    size_t max_output = (size_t) fuzz_u8(&input) * 16;
    size_t piece = fuzz_u8(&input);
    size_t length;
    const uint8_t *bytes = fuzz_bytes(&input, fuzz_left(&input), &length);
    static s_run_t whole, pieces;
    memset(&whole, 0, sizeof whole);
    memset(&pieces, 0, sizeof pieces);
    s_read(bytes, length, 0, max_output, &whole);
    s_read(bytes, length, piece, max_output, &pieces);
    FUZZ_ASSERT(whole.count == pieces.count && whole.last == pieces.last);
    for (size_t i = 0; i < whole.count; i++) {
        const worker_frame_reply_t *a = &whole.replies[i], *b = &pieces.replies[i];
        FUZZ_ASSERT(strcmp(a->id, b->id) == 0 && a->op == b->op && a->delay_ms == b->delay_ms);
        FUZZ_ASSERT(a->size == b->size
                    && (a->size == 0 || memcmp(whole.bodies[i], pieces.bodies[i], a->size) == 0));
    }
    s_free(&whole);
    s_free(&pieces);
    return 0;
}
