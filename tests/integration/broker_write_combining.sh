#!/usr/bin/env bash
# broker_write_combining.sh - a batch of messages spilling to disk costs the
# broker a few writes, not one per message: nsq-broker under strace counts
# its writes to queue files while /mpub batches of 100 go to a topic whose
# channel keeps nothing in memory (--mem-queue-size=0).
#
#   broker_write_combining.sh   (NSQ_BROKER and NSQ_BENCH name the binaries;
#                                meson sets them)
#
# 10,000 messages in 100 requests of 100 reach the channel's disk queue
# (checked through /stats: all there, none lost). Each request's messages
# gather in the queue's buffer and leave in one write (nsq_diskqueue_combine);
# the first requests' may wait together for the segment's descriptor. The
# check allows four per request. One write per message would be 10,000.
# Exit 0 passed, 1 failed, 77 skipped (no strace).
set -u
. "$(dirname "$0")/broker_trace_common.sh" broker-combining

dir=$work/data
mkdir "$dir"
strace -f -qq -y -e trace=write,pwrite64,writev,pwritev,pwritev2 -o "$work/trace" \
    "$broker_bin" --http-address=127.0.0.1:0 --zmq-address=127.0.0.1:0 --tcp-address= \
    --data-path="$dir" --mem-queue-size=0 --log-level=warn \
    >"$work/out" 2>"$work/err" &
strace_pid=$!
for _ in $(seq 300); do grep -q '^READY' "$work/out" && break; sleep 0.05; done
grep -q '^READY' "$work/out" || { echo "FAILED: no READY"; cat "$work/err"; exit 1; }
broker_pid=$(awk 'NR == 1 { print $1; exit }' "$work/trace")
http=$(sed -n 's/^READY http=\([^ ]*\).*/\1/p' "$work/out")
curl -sf -XPOST "http://$http/channel/create?topic=spill&channel=c" >/dev/null ||
    { echo "FAILED: cannot create the channel"; exit 1; }
# One message first, until it is in the file: the segment's descriptor is
# open then, so what follows is written as it comes (not all at once
# when a slow descriptor arrives, which would hide a write per message).
curl -sf -XPOST -d warm "http://$http/pub?topic=spill" >/dev/null || { echo "FAILED: /pub"; exit 1; }
segment="$dir/spill:c.diskqueue.000000.dat"
for _ in $(seq 300); do [ -s "$segment" ] && break; sleep 0.05; done
[ -s "$segment" ] || { echo "FAILED: nothing reached $segment"; exit 1; }
before=$(grep -cF "$dir/spill:c" "$work/trace")
"$bench_bin" --mode=http-mpub --http-address="$http" --topic=spill --count=10000 --size=100 \
    --batch=100 --connections=1 >"$work/bench" 2>&1 || { echo "FAILED: /mpub"; cat "$work/bench"; exit 1; }
stats=$(curl -sf "http://$http/stats?format=json&topic=spill&channel=c")
echo "$stats" | grep -q '"depth":10001' || { echo "FAILED: the channel does not hold 10001: $stats"; exit 1; }
writes=$(($(grep -cF "$dir/spill:c" "$work/trace") - before))
echo "10000 messages in 100 /mpub requests: $writes writes to the channel's queue files"
[ "$writes" -ge 2 ] || { echo "FAILED: the trace saw no writes to the queue's files"; exit 1; }
[ "$writes" -le 400 ] || { echo "FAILED: more than 4 writes per request of 100 messages"; exit 1; }
echo "passed"
