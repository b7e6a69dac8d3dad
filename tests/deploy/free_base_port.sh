#!/usr/bin/env bash
# free_base_port.sh - sourced by the deploy tests: free_base_port prints a
# --base-port for deploy/cluster.sh whose every port (the offsets it
# assigns to two brokers, lookupds and workers) is unused, below the
# ephemeral range (32768-) so that no test's port 0 takes one meanwhile.
# Fails after 50 tries.

port_free() { ! ss -Htan exclude time-wait "sport = :$1" 2>/dev/null | grep -q .; }

free_base_port() {
    local base offset ok
    for _ in $(seq 50); do
        base=$((10000 + (RANDOM % 220) * 100))
        ok=1
        for offset in 0 1 2 10 11 21 100 101 102 110 111 121; do
            port_free $((base + offset)) || ok=0
        done
        [ "$ok" = 0 ] || { echo "$base"; return 0; }
    done
    return 1
}
