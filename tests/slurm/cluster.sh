#!/usr/bin/env bash
# cluster.sh - a throw-away single-host Slurm cluster for the Slurm backend's tests: munged,
# slurmctld and four `slurmd -N nX` (8 fake GPUs each) on loopback, all under $SLURM_CI_DIR.
# Derived from ../shared/slurm/slurm-ci.sh (tried on Debian 12; its README has the gotchas);
# this version picks free ports, takes the landlord partition's GraceTime from the
# environment and can stop and start slurmctld alone (the outage test).
#
#   cluster.sh start          # munged + slurmctld + slurmd n1..n4, waits for IDLE
#   cluster.sh stop [--purge] # cancel jobs, stop every daemon by its pid file
#   cluster.sh ctld-stop      # slurmctld only (jobs and slurmds keep running)
#   cluster.sh ctld-start     # slurmctld again, from its saved state
#   cluster.sh restart | status | env
#
# Needs root (slurmd must setuid to job owners) and the Debian 12 packages
#   slurmctld slurmd slurm-client munge                       (always)
#   slurmdbd mariadb-server-core mariadb-client-core           (SLURM_CI_DBD=1)
#   slurmrestd [slurm-wlm-jwt-plugin for jwt]                  (SLURM_CI_RESTD=...)
# Everything goes under $SLURM_CI_DIR (default /tmp/slurm-ci); nothing under
# /etc, /run or /var is used, the system munged/mariadb are not touched.
#
# Environment:
#   SLURM_CI_DIR      run directory (default /tmp/slurm-ci); it is wiped on start
#   SLURM_CI_GPUDEV   chardev (default) | file: how the fake GPU files are made.
#                     chardev = mknod copies of /dev/null (c 1 3); jobs then get
#                     CUDA_VISIBLE_DEVICES / SLURM_JOB_GPUS. file = plain files;
#                     scheduling still works but slurmd logs "not a valid
#                     character or block device" and those variables are unset.
#   SLURM_CI_DBD=1    also start mariadbd (127.0.0.1:3307) + slurmdbd (6819)
#   SLURM_CI_RESTD    local: slurmrestd on unix:$DIR/rest/slurmrestd.sock
#                     jwt:   slurmrestd on 127.0.0.1:6820, JWT auth
#   SLURM_CI_RESTD_USER  user slurmrestd runs as (default nobody). With
#                     rest_auth/local only root and this user may connect.
#   SLURM_CI_TIMEOUT  seconds to wait for the nodes to become idle (default 180: a loaded CI
#                     machine; a slurmd that died on the way is started again meanwhile)
#   SLURM_CI_GRACE    GraceTime of the landlord partition in seconds (default 20)
#   SLURM_CI_PORT     first of 7 consecutive loopback ports (slurmctld, slurmd n1..n4,
#                     slurmdbd, mariadbd); default: a free run picked at start
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${SLURM_CI_DIR:-/tmp/slurm-ci}
GPUDEV=${SLURM_CI_GPUDEV:-chardev}
DBD=${SLURM_CI_DBD:-0}
RESTD=${SLURM_CI_RESTD:-}
RESTD_USER=${SLURM_CI_RESTD_USER:-nobody}
TIMEOUT=${SLURM_CI_TIMEOUT:-180}
NODES=(n1 n2 n3 n4)
GPUS_PER_NODE=8
GRACE=${SLURM_CI_GRACE:-20}
RESTD_TCP=127.0.0.1:6820
export SLURM_CONF=$DIR/etc/slurm.conf
[[ $DIR == /*/* ]] || { echo "SLURM_CI_DIR must be an absolute path below a top-level dir" >&2; exit 2; }

log() { printf '[slurm-ci %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# running = exists and is not a zombie (daemons get reparented to PID 1, which
# may reap them late, and kill -0 succeeds on zombies)
running() {
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}
pid_alive() { [[ -s $1 ]] && running "$(cat "$1")"; }

# stop_pidfiles <file>...: SIGTERM each live pid, wait up to 10 s, then SIGKILL
stop_pidfiles() {
    local f pid i left pids=()
    for f in "$@"; do
        [[ -s $f ]] || continue
        pid=$(cat "$f")
        if running "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            log "SIGTERM -> $(basename "$f" .pid) ($pid)"
        fi
    done
    for ((i = 0; i < 50; i++)); do
        left=0
        for pid in ${pids[@]+"${pids[@]}"}; do running "$pid" && left=1; done
        ((left)) || break
        sleep 0.2
    done
    for pid in ${pids[@]+"${pids[@]}"}; do
        if running "$pid"; then
            log "$pid ignored SIGTERM, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    rm -f "$@"
}

# wait_for <seconds> <description> <command...>
wait_for() {
    local secs=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || start_fail "$what not ready after ${secs}s"
        sleep 0.2
    done
}

dump_logs() {
    local f
    for f in "$DIR"/munge/munged.log "$DIR"/mysql/error.log "$DIR"/log/*.log; do
        [[ -f $f ]] || continue
        echo "===== $f (tail) =====" >&2
        tail -n 25 "$f" >&2
    done
}

# dump logs, take down whatever did start, exit 1
start_fail() {
    dump_logs
    cmd_stop >/dev/null 2>&1 || true
    die "$*"
}

# render <template> <dest>: fix paths, enable the optional #DBD / #JWT lines
render() {
    local sedargs=(-e "s#/tmp/slurm-ci#$DIR#g" -e "s/GraceTime=20/GraceTime=$GRACE/"
        -e "s/^SlurmctldPort=6817/SlurmctldPort=$PORT/" -e "s/Port=17001/Port=$((PORT + 1))/"
        -e "s/Port=17002/Port=$((PORT + 2))/" -e "s/Port=17003/Port=$((PORT + 3))/"
        -e "s/Port=17004/Port=$((PORT + 4))/" -e "s/Port=6819/Port=$((PORT + 5))/"
        -e "s/StoragePort=3307/StoragePort=$((PORT + 6))/")
    if [[ $DBD == 1 ]]; then
        sedargs+=(-e '/^AccountingStorageType=accounting_storage\/none/d' -e 's/^#DBD //')
    fi
    [[ $RESTD == jwt ]] && sedargs+=(-e 's/^#JWT //')
    sed "${sedargs[@]}" "$1" >"$2"
}

start_mysql() {
    local M=$DIR/mysql sql
    mkdir -p "$M"
    mariadb-install-db --no-defaults --datadir="$M/data" --user=root \
        --auth-root-authentication-method=normal --skip-test-db >"$M/install.log" 2>&1 ||
        start_fail "mariadb-install-db failed (see $M/install.log)"
    mariadbd --no-defaults --datadir="$M/data" --socket="$M/mysqld.sock" \
        --port=$((PORT + 6)) --bind-address=127.0.0.1 --skip-name-resolve \
        --user=root --pid-file="$M/mysqld.pid" --log-error="$M/error.log" \
        --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 \
        </dev/null >/dev/null 2>&1 &
    wait_for 30 mariadbd mariadb --no-defaults -S "$M/mysqld.sock" -u root -e 'select 1'
    sql="CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm-ci';"
    sql+="GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
    mariadb --no-defaults -S "$M/mysqld.sock" -u root -e "$sql" ||
        start_fail "could not create the slurm database user"
    log "mariadbd up (pid $(cat "$M/mysqld.pid"))"
}

start_restd() {
    local listen
    if [[ $RESTD == jwt ]]; then
        listen=$RESTD_TCP
        export SLURM_JWT=daemon # makes slurmrestd itself use auth/jwt
    else
        mkdir -p "$DIR/rest"
        chmod 777 "$DIR/rest"
        listen=unix:$DIR/rest/slurmrestd.sock
    fi
    # slurmrestd refuses to run as root or SlurmUser: start as root, -u drops.
    # -s: only the slurmctld API unless slurmdbd runs (the db plugin is fatal
    # without slurmdbd).
    local specs=openapi/v0.0.38
    [[ $DBD == 1 ]] && specs+=,openapi/dbv0.0.38
    slurmrestd -a "rest_auth/$RESTD" -s "$specs" -u "$RESTD_USER" "$listen" \
        </dev/null >"$DIR/log/slurmrestd.log" 2>&1 &
    echo $! >"$DIR/run/slurmrestd.pid"
    unset SLURM_JWT
    if [[ $RESTD == jwt ]]; then
        # any HTTP answer (401 without a token) means it is listening
        wait_for 20 slurmrestd curl -s -o /dev/null "http://$RESTD_TCP/openapi"
        log "slurmrestd on http://$RESTD_TCP (token: scontrol token username=$RESTD_USER)"
    else
        wait_for 20 slurmrestd curl -sf -o /dev/null --unix-socket "$DIR/rest/slurmrestd.sock" http://x/openapi
        log "slurmrestd on unix:$DIR/rest/slurmrestd.sock (as $RESTD_USER)"
    fi
}

# The first of 7 consecutive free loopback ports.
free_ports() {
    local base p ok
    for _ in $(seq 200); do
        base=$((20000 + RANDOM % 40000))
        ok=1
        for ((p = base; p < base + 7; p++)); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then ok=0; break; fi
        done
        ((ok)) && { echo "$base"; return; }
    done
    die "no 7 free consecutive ports"
}

nodes_idle() {
    # IDLE, possibly with the PLANNED flag ("plnd") that backfill leaves behind
    local states
    states=$(sinfo -h -N -p internal -o '%N %t' 2>/dev/null | sort -u) || return 1
    [[ $(wc -l <<<"$states") -eq ${#NODES[@]} ]] && ! grep -Evq ' (idle|plnd)$' <<<"$states"
}

# A slurmd whose process is gone (it exited while registering on a loaded machine) is started
# again (looked at every 10 s: a slurmd just started may not have written its pid file yet),
# with the end of its log.
restart_dead_slurmds() {
    local n
    ((SECONDS >= NEXT_RESPAWN)) || return 0
    NEXT_RESPAWN=$((SECONDS + 10))
    for n in "${NODES[@]}"; do
        pid_alive "$DIR/run/slurmd-$n.pid" && continue
        log "slurmd $n is not running; starting it again. Its log ends:"
        tail -n 5 "$DIR/log/slurmd-$n.log" >&2 2>/dev/null || true
        slurmd -N "$n" || log "slurmd $n failed to start again"
    done
}

cmd_start() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    local b bins=(munged mungekey slurmctld slurmd sinfo scontrol)
    [[ $DBD == 1 ]] && bins+=(slurmdbd sacctmgr mariadbd mariadb-install-db mariadb)
    [[ -n $RESTD ]] && bins+=(slurmrestd curl)
    for b in "${bins[@]}"; do
        command -v "$b" >/dev/null || die "$b not found; see README.md for the packages"
    done
    case $RESTD in '' | local | jwt) ;; *) die "SLURM_CI_RESTD must be local or jwt" ;; esac
    if pid_alive "$DIR/run/slurmctld.pid" || pid_alive "$DIR/munge/munged.pid"; then
        die "a cluster is already running in $DIR (run: $0 stop)"
    fi

    local t0=$SECONDS n i
    rm -rf "$DIR"
    mkdir -p "$DIR"/{etc,munge,state,run,log}
    chmod 755 "$DIR" "$DIR/munge" # munged wants o+x on every dir above its socket

    PORT=${SLURM_CI_PORT:-$(free_ports)}
    echo "$PORT" >"$DIR/etc/port"
    render "$HERE/slurm.conf.in" "$DIR/etc/slurm.conf"
    render "$HERE/gres.conf.in" "$DIR/etc/gres.conf"
    : >"$DIR/etc/plugstack.conf" # keep /etc/slurm/plugstack.conf out of it
    if [[ $DBD == 1 ]]; then
        render "$HERE/slurmdbd.conf.in" "$DIR/etc/slurmdbd.conf"
        chmod 600 "$DIR/etc/slurmdbd.conf" # slurmdbd refuses a readable one
    fi
    if [[ $RESTD == jwt ]]; then
        dd if=/dev/urandom of="$DIR/etc/jwt_hs256.key" bs=32 count=1 status=none
        chmod 600 "$DIR/etc/jwt_hs256.key"
    fi

    for n in "${NODES[@]}"; do
        mkdir -p "$DIR/spool/$n" "$DIR/fakegpu/$n"
        for ((i = 0; i < GPUS_PER_NODE; i++)); do
            if [[ $GPUDEV == chardev ]]; then
                mknod -m 666 "$DIR/fakegpu/$n/nvidia$i" c 1 3 2>/dev/null ||
                    { log "mknod failed, falling back to plain files"; GPUDEV="file"; }
            fi
            [[ -e $DIR/fakegpu/$n/nvidia$i ]] || : >"$DIR/fakegpu/$n/nvidia$i"
        done
    done

    # private munge daemon with its own key and socket
    mungekey --create --keyfile="$DIR/munge/munge.key" >/dev/null
    chmod 600 "$DIR/munge/munge.key"
    munged --key-file="$DIR/munge/munge.key" \
        --socket="$DIR/munge/munge.socket" \
        --pid-file="$DIR/munge/munged.pid" \
        --log-file="$DIR/munge/munged.log" \
        --seed-file="$DIR/munge/munged.seed" || start_fail "munged failed to start"
    munge --socket="$DIR/munge/munge.socket" -n |
        unmunge --socket="$DIR/munge/munge.socket" >/dev/null ||
        start_fail "munge round trip failed"
    log "munged up (pid $(cat "$DIR/munge/munged.pid"))"

    if [[ $DBD == 1 ]]; then
        start_mysql
        slurmdbd || start_fail "slurmdbd failed to start"
        wait_for 30 slurmdbd sacctmgr -n list cluster
        sacctmgr -i add cluster ci >/dev/null || start_fail "sacctmgr add cluster failed"
        log "slurmdbd up (pid $(cat "$DIR/run/slurmdbd.pid"))"
    fi

    # -c: clean start, no jobs/reservations from earlier runs
    slurmctld -c || start_fail "slurmctld failed to start"
    # slurmd registers once at start: on a loaded machine a daemonised slurmctld may not listen
    # yet, and a node would stay UNKNOWN until the controller's next ping round.
    wait_for 60 slurmctld bash -c 'scontrol ping 2>/dev/null | grep -q " is UP"'
    for n in "${NODES[@]}"; do
        slurmd -N "$n" || start_fail "slurmd $n failed to start"
    done
    NEXT_RESPAWN=$((SECONDS + 10))

    local deadline=$((SECONDS + TIMEOUT))
    until nodes_idle; do
        if ((SECONDS > deadline)); then
            sinfo -N >&2 || true
            sinfo -R >&2 || true
            start_fail "nodes not idle after ${TIMEOUT}s"
        fi
        # a node that registered but was left DOWN/DRAIN can be put back by hand
        if sinfo -h -N -p internal -o '%t' 2>/dev/null | grep -Eq '^(down|drain|drng)'; then
            scontrol update nodename="$(IFS=,; echo "${NODES[*]}")" state=resume 2>/dev/null || true
        fi
        restart_dead_slurmds
        sleep 0.2
    done
    log "slurm up (ctld pid $(cat "$DIR/run/slurmctld.pid"), nodes idle)"

    [[ -n $RESTD ]] && start_restd
    log "cluster up in $((SECONDS - t0))s (fake GPUs: $GPUDEV, dbd: $DBD, restd: ${RESTD:-none})"
    sinfo >&2
    echo "export SLURM_CONF=$SLURM_CONF"
}

cmd_stop() {
    local i
    if pid_alive "$DIR/run/slurmctld.pid"; then
        # cancel jobs first so that no slurmstepd outlives its slurmd
        squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
        for ((i = 0; i < 60; i++)); do
            [[ -z $(squeue -h -o %i -t PD,R,CG,S 2>/dev/null) ]] && break
            sleep 0.5
        done
    fi
    stop_pidfiles "$DIR/run/slurmrestd.pid" "$DIR"/run/slurmd-*.pid
    stop_pidfiles "$DIR/run/slurmctld.pid"
    stop_pidfiles "$DIR/run/slurmdbd.pid"
    stop_pidfiles "$DIR/mysql/mysqld.pid"
    stop_pidfiles "$DIR/munge/munged.pid"
    if [[ ${1:-} == --purge ]]; then
        rm -rf "$DIR"
        log "removed $DIR"
    fi
}

cmd_ctld_stop() { stop_pidfiles "$DIR/run/slurmctld.pid"; }
cmd_ctld_start() {
    slurmctld || die "slurmctld failed to start"
    local deadline=$((SECONDS + TIMEOUT))
    until scontrol ping 2>/dev/null | grep -q UP; do
        ((SECONDS < deadline)) || die "slurmctld not up after ${TIMEOUT}s"
        sleep 0.2
    done
    log "slurmctld up again (pid $(cat "$DIR/run/slurmctld.pid"))"
}

case ${1:-} in
start) cmd_start ;;
ctld-stop) cmd_ctld_stop ;;
ctld-start) cmd_ctld_start ;;
stop) shift; cmd_stop "$@" ;;
restart) cmd_stop; cmd_start ;;
status) sinfo; squeue ;;
env) echo "export SLURM_CONF=$SLURM_CONF" ;;
*)
    echo "usage: $0 {start|stop [--purge]|restart|status|env}" >&2
    exit 2
    ;;
esac
