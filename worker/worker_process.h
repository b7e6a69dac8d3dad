/*  worker_process - what the --process handler's two files share: a
    message on its way through a child process, a child, and the pool
    SPDX-License-Identifier: MIT

    Internal to worker_handler_process.c (the pool: pending messages,
    dispatch, timeouts, restarts, shutdown) and worker_process_child.c (one
    child: its pipes, writes, replies, stderr, stop and exit). Everything
    runs on the worker's zloop thread. See worker_handler_process.c for the
    design.
*/
#ifndef WORKER_PROCESS_H
#define WORKER_PROCESS_H

#include "worker_frame.h"
#include "worker_handler.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define WORKER_PROCESS_KILL_GRACE_MS 2000   // SIGTERM, then this long before SIGKILL
#define WORKER_PROCESS_READ_CHUNK    65536  // bytes per read of stdout or stderr
#define WORKER_PROCESS_ERR_LINE_MAX  2048   // a longer stderr line is logged in pieces
#define WORKER_PROCESS_HEADER_MAX    512    // a message's header line

typedef struct _worker_process_t worker_process_t;
typedef struct _worker_process_child_t worker_process_child_t;
typedef struct _worker_process_entry_t worker_process_entry_t;

// One message on its way through a process.
struct _worker_process_entry_t {
    worker_job_t *job;                       // the runtime's job (job->state points back here)
    worker_process_child_t *proc;            // where it went, NULL while pending
    char header[WORKER_PROCESS_HEADER_MAX];  // its header line
    size_t header_size;
    size_t written;                // bytes of header and body written so far
    int64_t alive_ms;              // dispatched, or last touched by the process
    bool answered;                 // the reply came before the body was written out
    worker_result_t result;        // that reply
    worker_process_entry_t *next;  // pending FIFO or the process's write queue
};

typedef enum {
    WORKER_CHILD_DOWN,      // not running; starts at restart_ms unless finishing
    WORKER_CHILD_RUNNING,   // takes messages
    WORKER_CHILD_STOPPING,  // told to go (EOF or a signal); waiting for its exit
} worker_process_child_state_t;

struct _worker_process_child_t {
    worker_process_t *owner;                     // the handler
    int index;                                   // 0 .. count-1, NSQ_PROCESS_INDEX
    worker_process_child_state_t state;          // see above
    pid_t pid;                                   // 0 when down
    int pidfd;                                   // readable at its exit, -1 if none
    int in_fd;                                   // its stdin (ours to write), -1 once closed
    int out_fd;                                  // its stdout (ours to read), -1 once closed
    int err_fd;                                  // its stderr, -1 once closed
    bool writing;                                // a writer poller waits for room in its stdin
    zhashx_t *entries;                           // id -> worker_process_entry_t awaiting a reply
    size_t held;                                 // messages it holds, answered early ones included
    worker_process_entry_t *queue;               // not yet fully written, oldest first
    worker_process_entry_t *queue_tail;          //
    worker_frame_reader_t *reader;               // its replies
    char err_line[WORKER_PROCESS_ERR_LINE_MAX];  // stderr line in progress
    size_t err_size;                             //
    int64_t started_ms;                          // zclock_mono at start
    int64_t active_ms;                           // its last reply or touch (or its start)
    int64_t eof_ms;                              // when its stdout closed, 0 if open
    int64_t term_ms;                             // when SIGTERM was sent, 0 if not
    bool killed;                                 // SIGKILL sent
    bool exited;            // reaped: its pid may belong to another process now
    int64_t restart_ms;     // WORKER_CHILD_DOWN: when to start it again
    int short_lives;        // in a row, for the restart delay
    bool ever_started;      // a start after this one is a restart
    char stop_reason[200];  // why we stopped it, "" if we did not
};

struct _worker_process_t {
    worker_handler_t base;                 // first: the runtime's view
    worker_handler_context_t context;      // loop, callbacks, limits
    char *command;                         // for /bin/sh -c
    char names[300];                       // "topic":..,"channel":.. of every header
    int count;                             // processes
    size_t window;                         // messages per process
    worker_process_child_t *procs;         // count of them
    worker_process_entry_t *pending;       // jobs waiting for room, oldest first
    worker_process_entry_t *pending_tail;  //
    uint8_t *read_buffer;                  // WORKER_PROCESS_READ_CHUNK bytes for reads of stdout
    int flush_timer;                       // dispatches what s_start queued, 0 if not armed
    int next_pick;                         // where the next search for room starts
    bool poll_exits;                       // no pidfd here: the tick looks for exits
    bool finishing;                        // finish was called: no restarts
    void (*dispatch)(worker_process_t *);  // the pool's: hand pending messages to room made
};

// ---- worker_process_child.c -------------------------------------------------

// Starts proc (/bin/sh -c command, its pipes, its pollers). Returns 0, or
// -1 (logged; the caller schedules a retry).
int worker_process_child_start(worker_process_child_t *proc);

// Writes as much of proc's write queue as its stdin takes; a writer poller
// waits for room when it is full.
void worker_process_child_write(worker_process_child_t *proc);

// Closes proc's stdin (the process reads EOF); no-op if closed.
void worker_process_child_close_stdin(worker_process_child_t *proc);

// Stops a process that misbehaves: logs why, closes its pipes, reports its
// messages RETRY, SIGTERMs its group (SIGKILL follows from the tick).
void worker_process_child_stop(worker_process_child_t *proc, nsq_failure_kind_t kind, int64_t code,
                               const char *format, ...) __attribute__((format(printf, 4, 5)));

// Reports every message proc holds: early answers as answered, the rest
// as RETRY with the failure given. Its stdin must be closed first.
void worker_process_child_release_all(worker_process_child_t *proc, nsq_failure_kind_t kind,
                                      int64_t code, const char *detail);

// Forgets every message proc holds, without a result (destroy).
void worker_process_child_drop_all(worker_process_child_t *proc);

// The delay before proc starts again: doubles per short life.
int64_t worker_process_child_restart_delay(worker_process_child_t *proc, int64_t now);

// Reaps proc if it exited (its last replies and stderr taken, its messages
// reported, the restart scheduled). Returns true if it had.
bool worker_process_child_check_exit(worker_process_child_t *proc);

// Takes proc's exit status as above, for a pid already reaped.
void worker_process_child_reap(worker_process_child_t *proc, int status);

// Frees entry and unlinks it from its job.
void worker_process_entry_free(worker_process_entry_t *entry);

// Reports entry's result to the runtime and frees it.
void worker_process_report(worker_process_t *self, worker_process_entry_t *entry,
                           worker_result_t result);

// Sets the processes gauge of /metrics.
void worker_process_count_running(worker_process_t *self);

#endif
