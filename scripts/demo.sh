#!/usr/bin/env bash
# The multi-host demo: five hosts as network namespaces on a bridge, one
# gossip-kv node in each, talking QUIC with mutual TLS.
#
#   sudo scripts/demo.sh            narrated demo: replicate, partition and
#                                   heal (the later write wins), stop a node
#                                   (it leaves), restart it empty and watch it
#                                   catch up
#   sudo scripts/demo.sh --measure  measurements: write visibility on every
#                                   host (median of 20 writes) and time to
#                                   identical hosts over 20 heals
#
# Host 1 founds the cluster; every other host names one earlier host, by
# address only, as its seed, and learns the rest through gossip.
#
# Needs root and iproute2 (ip netns). Every address lives in a private /24
# (DEMO_SUBNET, default 10.213.77) that exists only inside the namespaces
# made here: the hosts' links meet on a bridge inside a namespace of its own,
# so the root namespace gets no interface and no route, and no packet leaves
# the machine. A second network (DEMO_MGMT_SUBNET, default 10.213.78), never
# cut, carries the clients that time a heal, so that their own connections
# never wait on the partition. Everything is torn down on exit, failure or Ctrl-C included.
#
# Environment: SIM_CLI (binary, default $CARGO_TARGET_DIR or target, then
# release/sim-cli, built if missing), DEMO_SUBNET, DEMO_PREFIX (namespace name prefix, default gkvdemo),
# DEMO_KEEP=1 (keep the working directory with logs and certificates); with --measure,
# MEASURE_ROUNDS (heals, default 20) and MEASURE_CUTS (cut lengths in s, used in turn).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

MEASURE=0
for arg in "$@"; do
    case "$arg" in
        --measure) MEASURE=1 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "demo.sh: unknown argument $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

SUBNET=${DEMO_SUBNET:-10.213.77}
MGMT=${DEMO_MGMT_SUBNET:-10.213.78}
PREFIX=${DEMO_PREFIX:-gkvdemo}
HUB=${PREFIX}-hub
PORT=7000
HOSTS=(1 2 3 4 5)
INTERVAL_MS=100

bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
say() {
    echo
    bold "==> $*"
}
note() { echo "    $*"; }
die() {
    echo "demo.sh: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || die "needs root for network namespaces: sudo $0 $*"
command -v ip >/dev/null || die "needs iproute2 (apt-get install iproute2)"

SIM_CLI=${SIM_CLI:-${CARGO_TARGET_DIR:-$ROOT/target}/release/sim-cli}
if [ ! -x "$SIM_CLI" ]; then
    say "Building the release binary (cargo build --release -p sim-cli)"
    cargo build --release -p sim-cli
fi
[ -x "$SIM_CLI" ] || die "no binary at $SIM_CLI"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gossip-kv-demo.XXXXXX")
CERTS=$WORK/certs
declare -A PIDS=()

ns() { echo "${PREFIX}-h$1"; }
addr() { echo "$SUBNET.1$1:$PORT"; }
# Host $1's address on the management network, which is never cut: clients
# that time a heal reach every node through it from the first instant.
maddr() { echo "$MGMT.1$1:$PORT"; }

teardown() {
    local status=$?
    trap - EXIT INT TERM
    for h in "${!PIDS[@]}"; do
        kill -TERM "${PIDS[$h]}" 2>/dev/null || true
    done
    # A node's graceful shutdown is bounded (1 s of drain, 2 s for the
    # transport); give them 10 s together before forcing.
    for _ in $(seq 100); do
        local running=0
        for h in "${!PIDS[@]}"; do
            kill -0 "${PIDS[$h]}" 2>/dev/null && running=1
        done
        [ "$running" = 0 ] && break
        sleep 0.1
    done
    for h in "${!PIDS[@]}"; do
        kill -KILL "${PIDS[$h]}" 2>/dev/null || true
    done
    for h in "${HOSTS[@]}"; do
        ip netns del "$(ns "$h")" 2>/dev/null || true
    done
    ip netns del "$HUB" 2>/dev/null || true
    if [ "${DEMO_KEEP:-0}" = 1 ]; then
        echo "logs and certificates kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    if [ "$status" != 0 ]; then
        echo "demo.sh: failed (status $status); everything was torn down" >&2
    fi
    exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# Runs sim-cli inside host $1's namespace.
on() {
    local h=$1
    shift
    ip netns exec "$(ns "$h")" "$SIM_CLI" "$@"
}

# A client command on host $1 against its own node.
client() {
    local h=$1 cmd=$2
    shift 2
    on "$h" "$cmd" "$@" --node "$(addr "$h")" --certs "$CERTS"
}

# Prints what host $1 reads for key $2 (value, or "(absent)").
read_on() {
    local out
    if out=$(client "$1" get "$2" 2>&1); then
        printf '%s' "$out" | head -n 1
    else
        echo "(absent)"
    fi
}

show_reads() {
    local key=$1
    shift
    for h in "$@"; do
        note "host $h ($(addr "$h")) reads $key = $(read_on "$h" "$key")"
    done
}

# Waits until every host in the list holds the same map; prints the time.
converged() {
    local from=$1
    shift
    local nodes=()
    for h in "$@"; do nodes+=(--node "$(maddr "$h")"); done
    on "$from" converged "${nodes[@]}" --certs "$CERTS" --timeout-ms "${CONVERGE_TIMEOUT_MS:-15000}" |
        sed 's/^/    /'
}

# Starts host $1's node the way an operator would: host 1 founds the
# cluster, every other host names one earlier host (by address only) as its
# seed and learns the rest through gossip.
start_node() {
    local h=$1 peers=()
    if [ "$h" != 1 ]; then
        peers+=(--peer "$(addr $(((h - 2) / 2 + 1)))")
    fi
    ip netns exec "$(ns "$h")" "$SIM_CLI" node --id "$h" --listen "0.0.0.0:$PORT" --advertise "$(addr "$h")" \
        "${peers[@]}" --certs "$CERTS" --interval-ms "$INTERVAL_MS" \
        2>>"$WORK/node-$h.log" &
    PIDS[$h]=$!
}

stop_node() {
    local h=$1 pid=${PIDS[$1]}
    kill -TERM "$pid"
    local status=0
    wait "$pid" || status=$?
    unset "PIDS[$h]"
    note "node $h exited with status $status after SIGTERM"
}

# Waits until each node answers and has joined (heard from a member), so it
# takes writes.
wait_serving() {
    for h in "$@"; do
        for _ in $(seq 100); do
            client "$h" status --json 2>/dev/null | grep -q '"joined": true' && continue 2
            sleep 0.1
        done
        die "node $h did not start and join; its log: $(tail -n 5 "$WORK/node-$h.log")"
    done
}

# Moves host $1's link to bridge $2 (br0: the cluster, br1: the cut-off side).
attach() { ip -n "$HUB" link set "h$1" master "$2"; }

say "Five hosts: network namespaces $(ns 1) .. $(ns 5) on a bridge in namespace $HUB"
ip netns add "$HUB"
ip -n "$HUB" link set lo up
for br in br0 br1 br2; do
    ip -n "$HUB" link add "$br" type bridge
    ip -n "$HUB" link set "$br" up
done
for h in "${HOSTS[@]}"; do
    ip netns add "$(ns "$h")"
    ip -n "$(ns "$h")" link set lo up
    ip -n "$HUB" link add "h$h" type veth peer name eth0 netns "$(ns "$h")"
    ip -n "$(ns "$h")" addr add "$SUBNET.1$h/24" dev eth0
    ip -n "$(ns "$h")" link set eth0 up
    ip -n "$HUB" link set "h$h" master br0
    ip -n "$HUB" link set "h$h" up
    ip -n "$HUB" link add "m$h" type veth peer name eth1 netns "$(ns "$h")"
    ip -n "$(ns "$h")" addr add "$MGMT.1$h/24" dev eth1
    ip -n "$(ns "$h")" link set eth1 up
    ip -n "$HUB" link set "m$h" master br2
    ip -n "$HUB" link set "m$h" up
    note "host $h: namespace $(ns "$h"), address $SUBNET.1$h (management $MGMT.1$h), node $h on UDP port $PORT"
done

say "Certificates: a cluster CA, one certificate per node naming its address, a client certificate"
cert_args=()
for h in "${HOSTS[@]}"; do cert_args+=(--node "$h=$SUBNET.1$h,$MGMT.1$h"); done
"$SIM_CLI" certs --out "$CERTS" "${cert_args[@]}" | sed 's/^/    /'

say "Starting a node in each namespace (gossip every $INTERVAL_MS ms)"
for h in "${HOSTS[@]}"; do start_node "$h"; done
wait_serving "${HOSTS[@]}"
note "all five nodes answer; logs in $WORK/node-*.log"

if [ "$MEASURE" = 1 ]; then
    say "Measure: 20 writes, each on the next host in turn, timed until every host reads it"
    nodes=()
    for h in "${HOSTS[@]}"; do nodes+=(--node "$(addr "$h")"); done
    on 1 bench spread "${nodes[@]}" --certs "$CERTS" --writes 20 | sed 's/^/    /'

    ROUNDS=${MEASURE_ROUNDS:-20}
    say "Measure: $ROUNDS heals. Each time hosts 4 and 5 are cut off and node 3 is paused (SIGSTOP) while"
    note "writes go on on both sides, for 0.5 to 12 s (around and beyond the exchange timeout, down"
    note "detection and the probe interval); then everything heals at once and host 1 times how long"
    note "until all five hold the same map."
    read -r -a cuts <<<"${MEASURE_CUTS:-0.5 1 2 3 5 8 12 1.5 4 6}"
    heals=()
    for round in $(seq "$ROUNDS"); do
        cut=${cuts[$(((round - 1) % ${#cuts[@]}))]}
        attach 4 br1
        attach 5 br1
        kill -STOP "${PIDS[3]}"
        (
            i=0
            while :; do
                i=$((i + 1))
                client 1 put "r$round-majority-$i" "a$i" >/dev/null 2>&1 || true
                client 5 put "r$round-minority-$i" "b$i" >/dev/null 2>&1 || true
                client 2 put "r$round-conflict" "majority-$i" >/dev/null 2>&1 || true
                client 4 put "r$round-conflict" "minority-$i" >/dev/null 2>&1 || true
            done
        ) &
        writer=$!
        sleep "$cut"
        kill "$writer" 2>/dev/null || true
        wait "$writer" 2>/dev/null || true
        attach 4 br0
        attach 5 br0
        kill -CONT "${PIDS[3]}"
        ms=$(converged 1 "${HOSTS[@]}" | sed -n 's/^ *converged: .* after \([0-9]*\) ms$/\1/p' | head -n 1)
        [ -n "$ms" ] || die "round $round: the hosts did not converge within ${CONVERGE_TIMEOUT_MS:-15000} ms"
        note "heal $round (cut $cut s): identical after $ms ms"
        heals+=("$ms")
    done
    printf '%s\n' "${heals[@]}" | sort -g | awk '
        function rank(p, n,   r) { r = int(p * n); if (r < p * n) r++; return r < 1 ? 1 : r }
        { v[NR] = $1; sum += $1 }
        END {
            n = NR
            # Nearest rank: the smallest value at or above that share of the heals.
            i50 = rank(0.50, n); i90 = rank(0.90, n); i99 = rank(0.99, n)
            printf "    heal to identical over %d heals: min %.0f ms, p50 %.0f ms, p90 %.0f ms, p99 %.0f ms, max %.0f ms, mean %.0f ms\n", n, v[1], v[i50], v[i90], v[i99], v[n], sum / n
        }'
    say "Done"
    exit 0
fi

say "1. Write on host 1, read on every host"
client 1 put greeting hello | sed 's/^/    /'
converged 1 "${HOSTS[@]}" | head -n 1
show_reads greeting "${HOSTS[@]}"

say "2. Partition: hosts 4 and 5 move to a bridge of their own; they still reach each other, not 1-3"
attach 4 br1
attach 5 br1
note "host 1 -> host 4: $(client 1 status >/dev/null && on 1 get greeting --node "$(addr 4)" --certs "$CERTS" --timeout-ms 1000 2>&1 | head -n 1 || true)"
note "conflicting writes to one key, one on each side; the later one must win"
client 1 put colour blue | sed 's/^/    majority side, host 1: /'
sleep 0.2
client 5 put colour green | sed 's/^/    minority side, host 5: /'
sleep 1
note "while cut off, each side reads its own write:"
show_reads colour "${HOSTS[@]}"

say "3. Heal: hosts 4 and 5 back on the cluster's bridge"
attach 4 br0
attach 5 br0
converged 1 "${HOSTS[@]}"
note "every host now reads the later write (green, written on host 5):"
show_reads colour "${HOSTS[@]}"

say "4. Stop node 3 (SIGTERM), write elsewhere, restart it empty"
before=$(client 3 status --json | sed -n 's/^  "incarnation": \([0-9]*\),$/\1/p')
stop_node 3
note "node 3 said it was leaving; host 1 lists it as left, not down:"
client 1 members | awk 'NR == 1 || $1 == 3' | sed 's/^/    /'
client 1 put while-3-was-down yes | sed 's/^/    host 1: /'
client 2 delete greeting | sed 's/^/    host 2: /'
start_node 3
wait_serving 3
after=$(client 3 status --json | sed -n 's/^  "incarnation": \([0-9]*\),$/\1/p')
note "node 3 restarted with no state, incarnation $before -> $after (seconds since 2020 at its start)"
converged 1 "${HOSTS[@]}"
note "node 3 caught up:"
show_reads while-3-was-down 3
show_reads greeting 3
show_reads colour 3

say "Node 3's view of the cluster"
client 3 status | sed 's/^/    /'

say "Done; tearing down"
