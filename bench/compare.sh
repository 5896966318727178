# Sourced by bench/run: the comparison with beanstalkd, BullMQ and the loopback ceiling, the
# scheduled-job, commit-latency and many-jobs measurements of fabrik, and the plots. It uses
# bench/run's helpers (log, problem lists, result, json_number, select_median, jobs_for ...).
# shellcheck shell=bash

bsload=""
pingpong=""
node_dir=$root/bench/node
compare_repeats=${BENCH_COMPARE_REPEAT:-$repeats}
# beanstalkd's binlog at each fsync setting: -f 0 syncs every write, the default (-f 50) at most
# every 50 ms, and without -b there is no binlog at all.
beanstalkd_settings="fsync-always fsync-50ms no-binlog"
schedule_samples=300
schedule_delay=3
big_counts=${BENCH_BIG_JOBS-"1000000 10000000"}
big_bulk=1000
if $quick; then
    schedule_samples=50
    schedule_delay=2
    big_counts=${BENCH_BIG_JOBS-20000}
fi
compare_commands=()
compare_skipped=()
declare -A versions

# ---- other servers -----------------------------------------------------------------------

other_pid=""
other_port=""
other_dir=""

beanstalkd_args() {
    case $1 in
    fsync-always) echo "-b $other_dir/binlog -f 0" ;;
    fsync-50ms) echo "-b $other_dir/binlog" ;;
    no-binlog) echo "" ;;
    esac
}

# Starts beanstalkd with setting $1 on a free 127.0.0.1 port with a fresh directory.
start_beanstalkd() {
    local setting=$1 attempt args
    other_dir=$(mktemp -d "${TMPDIR:-/tmp}/beanstalkd-bench.XXXXXX")
    temp_dirs+=("$other_dir")
    mkdir -p "$other_dir/binlog"
    args=$(beanstalkd_args "$setting")
    for attempt in 1 2 3 4 5; do
        other_port=$("$driver" free-port)
        # shellcheck disable=SC2086 # args is a list of words
        beanstalkd -l 127.0.0.1 -p "$other_port" $args 2>>"$other_dir/server.log" &
        other_pid=$!
        other_server_pids+=("$other_pid")
        wait_port "$other_pid" "$other_port" && {
            log "beanstalkd pid $other_pid on 127.0.0.1:$other_port, $setting"
            return 0
        }
        stop_other
        log "beanstalkd did not start on port $other_port (attempt $attempt)"
    done
    die "beanstalkd did not accept connections: $(tail -3 "$other_dir/server.log")"
}

# Starts redis-server with AOF (appendfsync everysec) and no RDB snapshots in a fresh directory.
start_redis() {
    local attempt
    other_dir=$(mktemp -d "${TMPDIR:-/tmp}/redis-bench.XXXXXX")
    temp_dirs+=("$other_dir")
    for attempt in 1 2 3 4 5; do
        other_port=$("$driver" free-port)
        redis-server --bind 127.0.0.1 --port "$other_port" --dir "$other_dir" \
            --appendonly yes --appendfsync everysec --save "" --daemonize no \
            --protected-mode yes --loglevel warning >>"$other_dir/server.log" 2>&1 &
        other_pid=$!
        other_server_pids+=("$other_pid")
        wait_port "$other_pid" "$other_port" && {
            log "redis-server pid $other_pid on 127.0.0.1:$other_port (appendonly, everysec)"
            return 0
        }
        stop_other
        log "redis-server did not start on port $other_port (attempt $attempt)"
    done
    die "redis-server did not accept connections: $(tail -3 "$other_dir/server.log")"
}

# Waits up to 10 s until process $1 accepts connections on port $2.
wait_port() {
    local pid=$1 port=$2 i
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

stop_other() {
    [[ -n $other_pid ]] || return 0
    kill -TERM "$other_pid" 2>/dev/null || true
    wait "$other_pid" 2>/dev/null || true
    local kept=() pid
    for pid in "${other_server_pids[@]}"; do
        [[ $pid == "$other_pid" ]] || kept+=("$pid")
    done
    other_server_pids=("${kept[@]}")
    other_pid=""
}

# ---- driving the other systems -----------------------------------------------------------

# Prints the driver command for system $1 (beanstalkd/<setting>, bullmq) without the port.
other_driver_command() {
    local system=$1 workload=$2 conns=$3 jobs=$4 opts
    opts="-n $jobs"
    [[ $workload == latency ]] || opts+=" -c $conns"
    case $system in
    beanstalkd/*) echo "bsload $workload $opts -t bench --json" ;;
    bullmq) echo "node bench/node/bullmq-load.mjs $workload $opts -q bench --json" ;;
    esac
}

# Runs one workload against the other server that runs now and stores its output, its CPU time
# and the machine's busy time under $system/$workload/$conns/$rep.
run_other() {
    local system=$1 workload=$2 conns=$3 jobs=$4 rep=$5 key="$1/$2/$3/$5"
    local cmd cpu_before busy_before output status=0
    cmd=$(other_driver_command "$system" "$workload" "$conns" "$jobs")
    compare_commands+=("${cmd/ -n / -p \$PORT -n }")
    log "$system: $workload, $conns connections, $jobs jobs (run $rep of $compare_repeats)"
    cpu_before=$(process_cpu "$other_pid")
    busy_before=$(machine_busy)
    local words
    read -ra words <<<"$cmd"
    case $system in
    beanstalkd/*) output=$("$bsload" "${words[@]:1}" -p "$other_port") || status=$? ;;
    bullmq) output=$(cd "$root" && node "${words[@]:1}" -p "$other_port") || status=$? ;;
    esac
    result[$key.output]=$output
    result[$key.server_cpu]=$(awk -v a="$cpu_before" -v b="$(process_cpu "$other_pid")" 'BEGIN { print b - a }')
    result[$key.busy]=$(awk -v a="$busy_before" -v b="$(machine_busy)" 'BEGIN { print b - a }')
    if [[ $status -ne 0 ]]; then
        local why
        why=$(grep -o '"first_error":"[^"]*"' <<<"$output" | cut -d'"' -f4)
        problems+=("$system, $workload with $conns connections: the driver exited with status $status (${why:-no error text})")
        log "PROBLEM: $system $workload $conns: status $status ${why:-}"
    fi
}

# Runs push, work and cycle for every connection count, compare_repeats times, then latency.
run_other_suite() {
    local system=$1 rep conns workload
    for ((rep = 1; rep <= compare_repeats; rep++)); do
        for conns in $connection_counts; do
            for workload in push work cycle; do
                run_other "$system" "$workload" "$conns" "$(jobs_for "$conns")" "$rep"
            done
        done
    done
    local repeats=$compare_repeats
    for conns in $connection_counts; do
        for workload in push work cycle; do
            select_median "$system/$workload/$conns"
        done
    done
    repeats=1
    run_other "$system" latency 2 "$latency_samples" 1
    select_median "$system/latency/2"
}

run_beanstalkd_part() {
    if ! command -v beanstalkd >/dev/null; then
        compare_skipped+=("beanstalkd: not installed (apt-get install beanstalkd)")
        return
    fi
    versions[beanstalkd]=$(beanstalkd -v 2>&1 | head -1)
    local setting
    for setting in $beanstalkd_settings; do
        start_beanstalkd "$setting"
        run_other_suite "beanstalkd/$setting"
        stop_other
    done
}

run_bullmq_part() {
    if ! command -v redis-server >/dev/null || ! command -v npm >/dev/null; then
        compare_skipped+=("BullMQ: redis-server or npm is missing (apt-get install redis-server npm)")
        return
    fi
    log "installing the BullMQ driver's packages (npm ci in bench/node)"
    if ! (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
        compare_skipped+=("BullMQ: npm ci in bench/node failed")
        return
    fi
    versions[redis]=$(redis-server --version | grep -o 'v=[^ ]*' | cut -d= -f2)
    versions[bullmq]=$(node -p "require('$node_dir/node_modules/bullmq/package.json').version")
    versions[ioredis]=$(node -p "require('$node_dir/node_modules/ioredis/package.json').version")
    versions[node]=$(node --version)
    start_redis
    run_other_suite bullmq
    stop_other
}

# Runs the ping-pong ceiling with every connection count: 3 round trips per job of the cycle
# run, compare_repeats times, keeping the median.
run_ceiling_part() {
    local rep conns rounds output status key
    for ((rep = 1; rep <= compare_repeats; rep++)); do
        for conns in $connection_counts; do
            rounds=$((3 * $(jobs_for "$conns")))
            key=ceiling/roundtrip/$conns/$rep
            log "loopback ceiling: $conns connections, $rounds round trips (run $rep of $compare_repeats)"
            compare_commands+=("pingpong -c $conns -n $rounds --json")
            local busy_before=$(machine_busy)
            status=0
            output=$("$pingpong" -c "$conns" -n "$rounds" --json) || status=$?
            result[$key.output]=$output
            result[$key.server_cpu]=$(json_number server_cpu_seconds "$output")
            result[$key.busy]=$(awk -v a="$busy_before" -v b="$(machine_busy)" 'BEGIN { print b - a }')
            [[ $status -eq 0 ]] || problems+=("loopback ceiling with $conns connections: pingpong exited with status $status")
        done
    done
    local repeats=$compare_repeats
    for conns in $connection_counts; do
        select_median "ceiling/roundtrip/$conns"
    done
}

run_compare_part() {
    bsload=$build/driver/bsload
    pingpong=$build/driver/pingpong
    run_ceiling_part
    run_beanstalkd_part
    run_bullmq_part
}

# ---- fabrik: scheduled jobs and commit latency ---------------------------------------------

run_schedule() {
    local durability=$1 output status=0
    log "$durability: scheduled-job lateness, $schedule_samples jobs due ${schedule_delay} s ahead"
    commands+=("fwpload schedule -p \$PORT -n $schedule_samples --delay $schedule_delay -q $queue-schedule --json")
    output=$("$driver" schedule -p "$port" -n "$schedule_samples" --delay "$schedule_delay" \
        -q "$queue-schedule" --json) || status=$?
    result[$durability/schedule.output]=$output
    [[ $status -eq 0 ]] || problem "$durability" "schedule" "fwpload schedule exited with status $status"
}

# Prints the commit-duration histogram from the server's /metrics as "bound count" lines
# (cumulative counts, "+Inf" last), then "sum S" and "count N".
read_commit_metrics() {
    local body
    body=$(exec 3<>"/dev/tcp/127.0.0.1/$web_port" &&
        printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && cat <&3) || return 0
    awk '/^fabrik_commit_duration_seconds_bucket/ {
            match($0, /le="[^"]*"/); print substr($0, RSTART + 4, RLENGTH - 5), $2 }
         /^fabrik_commit_duration_seconds_sum/ { print "sum", $2 }
         /^fabrik_commit_duration_seconds_count/ { print "count", $2 }' <<<"${body//$'\r'/}"
}

# Stores under result[$1.commit] the commits between two /metrics snapshots ($2 before, $3
# after): "count|mean ms|p50 bound ms|p99 bound ms|share under 1 ms".
store_commit_latency() {
    local durability=$1
    [[ -n $2 && -n $3 ]] || { problem "$durability" "metrics" "/metrics had no commit histogram"; return; }
    result[$durability.commit]=$(awk '
        NR == FNR { before[$1] = $2; next }
        { after[$1] = $2; if ($1 != "sum" && $1 != "count") order[++n] = $1 }
        END {
            count = after["count"] - before["count"]
            if (count <= 0) { print ""; exit }
            mean = (after["sum"] - before["sum"]) / count * 1000
            for (i = 1; i <= n; i++) {
                b = order[i]; c = after[b] - before[b]
                if (p50 == "" && c >= 0.5 * count) p50 = b
                if (p99 == "" && c >= 0.99 * count) p99 = b
                if (b == "0.001") under = c / count
            }
            printf "%d|%.3f|%s|%s|%.0f%%\n", count, mean, bound(p50), bound(p99), 100 * under
        }
        function bound(b) { return b == "+Inf" ? "> 2500" : "<= " b * 1000 }' \
        <(printf '%s\n' "$2") <(printf '%s\n' "$3"))
}

# ---- fabrik: memory and restart time with many queued jobs -------------------------------

# Prints "VmHWM VmRSS" of process $1 in MiB.
process_memory() {
    awk '/^VmHWM/ { h = $2 } /^VmRSS/ { r = $2 } END { printf "%.0f %.0f", h / 1024, r / 1024 }' \
        "/proc/$1/status"
}

now_seconds() { date +%s.%N; }

# Starts the server on the existing directory server_dir and times how long it takes until
# the port accepts a connection and until INFO returns. Sets big_accept and big_info (seconds).
restart_timed() {
    local started deadline
    started=$(now_seconds)
    "$server_bin" -b "127.0.0.1:$port" -w "127.0.0.1:$web_port" -d "$server_dir/data" \
        -c "$server_dir/conf" -e development -l info 2>>"$server_dir/server.log" &
    server_pid=$!
    deadline=$(($(date +%s) + 600))
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        kill -0 "$server_pid" 2>/dev/null || die "the restarted server exited: $(tail -3 "$server_dir/server.log")"
        (($(date +%s) < deadline)) || die "the restarted server did not accept connections within 600 s"
        sleep 0.01
    done
    big_accept=$(awk -v a="$started" -v b="$(now_seconds)" 'BEGIN { printf "%.2f", b - a }')
    until big_after=$("$driver" info -p "$port" -q "$queue-big" 2>/dev/null); do
        (($(date +%s) < deadline)) || die "INFO did not return within 600 s of the restart"
        sleep 0.01
    done
    big_info=$(awk -v a="$started" -v b="$(now_seconds)" 'BEGIN { printf "%.2f", b - a }')
}

# Fills a fresh server (durability fsync) with $1 jobs, then measures memory, the data files,
# the shutdown and the restart.
run_big() {
    local jobs=$1 key=big/$1 output status=0 rss_empty
    start_server fsync
    rss_empty=$(process_memory "$server_pid")
    log "many jobs: pushing $jobs jobs with PUSHB ($big_bulk per command); progress follows"
    commands+=("fwpload fill -p \$PORT -n $jobs -c 2 --bulk $big_bulk -q $queue-big --timeout 7200 --json")
    output=$("$driver" fill -p "$port" -n "$jobs" -c 2 --bulk "$big_bulk" -q "$queue-big" \
        --timeout 7200 --json) || status=$?
    [[ $status -eq 0 ]] || problem fsync "fill $jobs" "fwpload fill exited with status $status"

    result[$key.fill]=$output
    result[$key.rss_empty]=$rss_empty
    result[$key.rss_filled]=$(process_memory "$server_pid")
    result[$key.files]=$(du -sb --apparent-size "$server_dir/data" | cut -f1)

    local stop_started
    stop_started=$(now_seconds)
    kill -TERM "$server_pid"
    status=0
    wait "$server_pid" || status=$?
    result[$key.shutdown]=$(awk -v a="$stop_started" -v b="$(now_seconds)" 'BEGIN { printf "%.2f", b - a }')
    [[ $status -eq 0 ]] || problem fsync "fill $jobs" "the server exited with status $status after SIGTERM"
    result[$key.files_closed]=$(du -sb --apparent-size "$server_dir/data" | cut -f1)

    log "many jobs: restarting with $jobs jobs queued"
    restart_timed
    result[$key.accept]=$big_accept
    result[$key.info]=$big_info
    result[$key.rss_restarted]=$(process_memory "$server_pid")
    local queued
    queued=$(json_number queue "$big_after")
    [[ $queued == "$jobs" ]] || problem fsync "restart with $jobs jobs" "INFO shows $queued jobs in $queue-big after the restart"
    stop_server fsync
    rm -rf "$server_dir/data"
}

run_big_part() {
    local jobs
    for jobs in $big_counts; do
        run_big "$jobs"
    done
}

# ---- tables for the page -----------------------------------------------------------------

# The systems of the comparison, as "key|label".
compare_systems() {
    echo "fsync|fabrik fsync"
    echo "os|fabrik os"
    local setting
    for setting in $beanstalkd_settings; do
        echo "beanstalkd/$setting|beanstalkd $(beanstalkd_label "$setting")"
    done
    echo "bullmq|BullMQ everysec"
}

beanstalkd_label() {
    case $1 in
    fsync-always) echo "-f 0" ;;
    fsync-50ms) echo "-f 50" ;;
    no-binlog) echo "no binlog" ;;
    esac
}

# Prints the commands per job of workload $1 (the round trips one job needs).
round_trips_per_job() {
    case $1 in
    push) echo 1 ;;
    work) echo 2 ;;
    cycle) echo 3 ;;
    esac
}

# Prints the ceiling for workload $1 with $2 connections: round trips per second divided by
# the round trips one job needs.
ceiling_jobs_per_sec() {
    local rt
    rt=$(jobs_per_sec "ceiling/roundtrip/$2")
    [[ $rt != - ]] || { echo "-"; return; }
    awk -v r="$rt" -v k="$(round_trips_per_job "$1")" 'BEGIN { printf "%.0f", r / k }'
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b <= 0) print "-"; else printf "%.2f", a / b }'
}

compare_table() {
    local header="| workload | conn. |" align="| --- | ---: |" line key label workload conns
    while IFS='|' read -r key label; do
        header+=" $label |"
        align+=" ---: |"
    done < <(compare_systems)
    echo "$header loopback ceiling |"
    echo "$align ---: |"
    for workload in push work cycle; do
        for conns in $connection_counts; do
            line="| $workload | $conns |"
            while IFS='|' read -r key label; do
                line+=" $(jobs_per_sec_range "$key/$workload/$conns") |"
            done < <(compare_systems)
            echo "$line $(ceiling_jobs_per_sec "$workload" "$conns") |"
        done
    done
}

# Prints the ratios of fabrik with durability $1 to every other system and to the ceiling.
ratio_table() {
    local durability=$1 header="| workload | conn. |" align="| --- | ---: |" line key label
    local workload conns mine
    while IFS='|' read -r key label; do
        [[ $key == fsync || $key == os ]] && continue
        header+=" ÷ $label |"
        align+=" ---: |"
    done < <(compare_systems)
    echo "$header share of the ceiling |"
    echo "$align ---: |"
    for workload in push work cycle; do
        for conns in $connection_counts; do
            mine=$(jobs_per_sec "$durability/$workload/$conns")
            line="| $workload | $conns |"
            while IFS='|' read -r key label; do
                [[ $key == fsync || $key == os ]] && continue
                line+=" $(ratio "$mine" "$(jobs_per_sec "$key/$workload/$conns")") |"
            done < <(compare_systems)
            echo "$line $(awk -v r="$(ratio "$mine" "$(ceiling_jobs_per_sec "$workload" "$conns")")" \
                'BEGIN { if (r == "-") print "-"; else printf "%.0f%%", 100 * r }') |"
        done
    done
}

compare_cpu_table() {
    local key label workload conns
    echo "| system | workload | conn. | seconds | server CPU | driver CPU | other CPU |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
    while IFS='|' read -r key label; do
        [[ $key == fsync || $key == os ]] && continue
        for workload in push work cycle; do
            for conns in $connection_counts; do
                local k=$key/$workload/$conns output seconds
                output=${result[$k.output]:-}
                [[ -n $output ]] || continue
                seconds=$(json_number seconds "$output")
                printf '| %s | %s | %s | %.2f | %s | %s | %s |\n' "$label" "$workload" "$conns" \
                    "$seconds" "$(percent_of_wall "${result[$k.server_cpu]}" "$seconds")" \
                    "$(percent_of_wall "$(json_number driver_cpu_seconds "$output")" "$seconds")" \
                    "$(percent_of_wall "$(awk -v s="$(other_cpu_share "$k")" -v w="$seconds" 'BEGIN { print s * w }')" "$seconds")"
            done
        done
    done < <(compare_systems)
}

compare_latency_table() {
    local key label output pickup
    echo "| system | samples | push to pickup ms p50 / p99 | max ms |"
    echo "| --- | ---: | ---: | ---: |"
    while IFS='|' read -r key label; do
        output=${result[$key/latency/2.output]:-}
        [[ -n $output ]] || continue
        pickup=$(json_object PICKUP "$output")
        printf '| %s | %s | %s | %s |\n' "$label" "$(json_number jobs "$output")" \
            "$(latency_pair PICKUP "$output")" \
            "$(awk -v v="$(json_number max_us "$pickup")" 'BEGIN { printf "%.2f", v / 1000 }')"
    done < <(compare_systems)
    output=${result[ceiling/roundtrip/2.output]:-}
    [[ -z $output ]] || printf '| loopback round trip, 2 connections (for scale) | %s | %s | - |\n' \
        "$(json_number jobs "$output")" "$(latency_pair ROUNDTRIP "$output")"
}

schedule_table() {
    local durability output late
    echo "| durability | jobs | lateness ms p50 / p99 | max ms | arrived early |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    for durability in $durability_modes; do
        output=${result[$durability/schedule.output]:-}
        [[ -n $output ]] || continue
        late=$(json_object LATE "$output")
        printf '| %s | %s | %s | %s | %s |\n' "$durability" "$(json_number jobs "$output")" \
            "$(latency_pair LATE "$output")" \
            "$(awk -v v="$(json_number max_us "$late")" 'BEGIN { printf "%.2f", v / 1000 }')" \
            "$(json_number early_jobs "$output")"
    done
}

commit_table() {
    local durability row
    echo "| durability | commits | mean ms | p50 ms | p99 ms | commits under 1 ms |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for durability in $durability_modes; do
        row=${result[$durability.commit]:-}
        [[ -n $row ]] || continue
        echo "| $durability | ${row//|/ | } |"
    done
}

mib() {
    awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'
}

big_table() {
    local jobs key
    echo "| queued jobs | PUSHB jobs/s | RSS empty MiB | RSS filled MiB (peak / now) | data files MiB (open / after shutdown) | bytes per job | shutdown s | restart: port accepts s | restart: INFO returns s | RSS after restart MiB (peak / now) |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for jobs in $big_counts; do
        key=big/$jobs
        [[ -n ${result[$key.fill]:-} ]] || continue
        local filled=(${result[$key.rss_filled]}) restarted=(${result[$key.rss_restarted]})
        printf '| %s | %.0f | %s | %s / %s | %s / %s | %.0f | %s | %s | %s | %s / %s |\n' \
            "$jobs" "$(json_number jobs_per_sec "${result[$key.fill]}")" \
            "${result[$key.rss_empty]%% *}" "${filled[0]}" "${filled[1]}" \
            "$(mib "${result[$key.files]}")" "$(mib "${result[$key.files_closed]}")" \
            "$(awk -v b="${result[$key.files_closed]}" -v n="$jobs" 'BEGIN { print b / n }')" \
            "${result[$key.shutdown]}" "${result[$key.accept]}" "${result[$key.info]}" \
            "${restarted[0]}" "${restarted[1]}"
    done
}

versions_table() {
    echo "| system | version |"
    echo "| --- | --- |"
    echo "| fabrik | commit \`$built_commit\` (CMake Release) |"
    [[ -z ${versions[beanstalkd]:-} ]] || echo "| beanstalkd | ${versions[beanstalkd]} (Debian package) |"
    [[ -z ${versions[redis]:-} ]] || echo "| redis-server | ${versions[redis]} (Debian package) |"
    [[ -z ${versions[bullmq]:-} ]] || echo "| BullMQ | ${versions[bullmq]} with ioredis ${versions[ioredis]} (npm, pinned in bench/node/package-lock.json) |"
    [[ -z ${versions[node]:-} ]] || echo "| Node.js | ${versions[node]} |"
    echo "| gnuplot | $(gnuplot --version 2>/dev/null || echo "not installed") |"
}

# ---- plots ---------------------------------------------------------------------------------

plot_dir() { echo "$(dirname "$out")/bench"; }

# Writes a throughput plot per workload and the latency plot as PNG files under plot_dir.
write_plots() {
    command -v gnuplot >/dev/null || { compare_skipped+=("plots: gnuplot is not installed (apt-get install gnuplot-nox)"); return; }
    local dir data workload conns key label
    dir=$(plot_dir)
    mkdir -p "$dir"
    data=$(mktemp -d)
    temp_dirs+=("$data")
    for workload in push work cycle; do
        {
            printf 'conn'
            while IFS='|' read -r key label; do printf '\t"%s"' "$label"; done < <(compare_systems)
            printf '\t"loopback ceiling"\n'
            for conns in $connection_counts; do
                printf '%s' "$conns"
                while IFS='|' read -r key label; do
                    printf '\t%s' "$(jobs_per_sec "$key/$workload/$conns" | sed 's/^-$/0/')"
                done < <(compare_systems)
                printf '\t%s\n' "$(ceiling_jobs_per_sec "$workload" "$conns" | sed 's/^-$/0/')"
            done
        } >"$data/$workload.tsv"
        gnuplot <<EOF
set terminal pngcairo size 1000,460 font "sans,10" background "white"
set output "$dir/throughput-$workload.png"
set title "$workload: jobs per second by connections (higher is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top vertical noenhanced
set ylabel "jobs/s"
set yrange [0:*]
set grid ytics
set datafile separator "\t"
set key autotitle columnheader
plot for [i=2:8] "$data/$workload.tsv" using i:xtic(1)
EOF
    done
    {
        printf 'system\tp50\tp99\n'
        while IFS='|' read -r key label; do
            local output=${result[$key/latency/2.output]:-} obj
            [[ -n $output ]] || continue
            obj=$(json_object PICKUP "$output")
            printf '"%s"\t%s\t%s\n' "$label" \
                "$(awk -v v="$(json_number p50_us "$obj")" 'BEGIN { print v / 1000 }')" \
                "$(awk -v v="$(json_number p99_us "$obj")" 'BEGIN { print v / 1000 }')"
        done < <(compare_systems)
    } >"$data/latency.tsv"
    gnuplot <<EOF
set terminal pngcairo size 1000,460 font "sans,10" background "white"
set output "$dir/latency.png"
set title "push to pickup by an idle worker (lower is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key top left noenhanced
set ylabel "ms"
set yrange [0:*]
set grid ytics
set xtics rotate by -20 noenhanced
set datafile separator "\t"
set key autotitle columnheader
plot "$data/latency.tsv" using 2:xtic(1), "" using 3
EOF
}

plots_markdown() {
    local workload
    [[ -f $(plot_dir)/latency.png ]] || { echo "No plots: gnuplot was not available."; return; }
    for workload in push work cycle; do
        echo "![$workload jobs per second by system and connections](bench/throughput-$workload.png)"
        echo
    done
    echo "![push to pickup latency by system](bench/latency.png)"
}

# ---- page sections -----------------------------------------------------------------------

compare_section() {
    cat <<EOF
## Compared with beanstalkd, BullMQ and the loopback ceiling

Measured in the same invocation, one system at a time, each on a fresh server with an empty
directory on 127.0.0.1, with the same workloads, connection counts and job counts as the fabrik
tables above. $( ((compare_repeats == 1)) && echo "Each cell is one run." || echo "Each cell is the median of $compare_repeats runs, with the lowest and highest in brackets.")
"BullMQ everysec" is BullMQ on Redis with AOF \`everysec\`, and "fabrik fsync" and "fabrik
os" are the medians from the tables above.

- **beanstalkd** (Debian package), driven by \`bench/bsload.c\`: \`push\` is \`put\`, \`work\`
  is \`reserve\` then \`delete\`. In \`cycle\` 1% of the jobs are buried instead of deleted, so
  they leave the ready queue as a FAILed job with \`retry: 0\` leaves fabrik. The
  job body is the same JSON of about 90 bytes that fwpload pushes. Three settings of its
  binlog: \`-b\` with \`-f 0\` (fsync after every write), \`-b\` with the default \`-f 50\`
  (fsync at most every 50 ms), and no binlog.
- **BullMQ** (npm) on Debian's redis-server with \`appendonly yes\`, \`appendfsync everysec\`
  and no RDB snapshots, driven by \`bench/node/bullmq-load.mjs\`. Each producer is a \`Queue\`
  with its own Redis connection and one \`add\` in flight, and the consumers are one \`Worker\`
  with \`concurrency\` set to their number. Jobs carry \`removeOnComplete\` and
  \`removeOnFail\`, and in \`cycle\` 1% of them throw in the processor with \`attempts: 1\`, so
  they fail once and leave. The driver is one Node.js process, so BullMQ's client-side work
  runs on one core; "driver CPU" below shows how close it came to that limit.
- **Loopback ceiling**: \`bench/pingpong.c\` runs a one-thread epoll server and one client
  thread per connection in one process. Each client sends a 64-byte line and waits for a
  5-byte reply, so its round trips per second are what one reply per command costs on this
  machine without any storage or parsing. The ceiling for a workload divides them by the
  round trips one job needs with fwpload: 1 for \`push\`, 2 for \`work\` (FETCH, ACK) and 3
  for \`cycle\` (PUSH, FETCH, ACK). beanstalkd needs the same number of round trips per job.
  BullMQ sends its commands over fewer connections and runs Lua scripts on the Redis side, so
  its jobs/s can pass this ceiling.
- Durability differs. fabrik's \`fsync\` and beanstalkd's \`-f 0\` sync storage before they
  reply. fabrik's \`os\`, beanstalkd's default and Redis's \`everysec\` leave the latest writes to
  the operating system for up to some milliseconds to a second. beanstalkd without a binlog
  keeps the jobs in memory only.

### Versions

$(versions_table)

### Jobs per second

$(compare_table)

### Ratios: fabrik with durability \`fsync\` divided by each system

$(ratio_table fsync)

### Ratios: fabrik with durability \`os\` divided by each system

$(ratio_table os)

### What the comparison shows

$(kept_block compare-keep "Not written yet: read the ratios above.")

### Plots

$(plots_markdown)

### CPU use of the other systems

"server CPU" is beanstalkd's or redis-server's CPU time over the run's wall time (100% is one
core), "driver CPU" is bsload's or Node's, and "other CPU" the rest of the machine's busy time.

$(compare_cpu_table)

### Latency of one job to an idle worker

As for fabrik, one consumer waits for a job: in \`reserve-with-timeout\` for beanstalkd, as an
idle \`Worker\` with concurrency 1 for BullMQ. The producer sends one job 2 ms after the consumer
started waiting, and the sample is the time from sending the job to the consumer having it.
For BullMQ the end is the moment the processor function is called, in the same process.

$(compare_latency_table)
EOF
    if [[ ${#compare_skipped[@]} -gt 0 ]]; then
        echo
        echo "Not measured in this run:"
        echo
        printf -- '- %s\n' "${compare_skipped[@]}"
    fi
}

fabrik_extra_sections() {
    cat <<EOF
## Scheduled jobs

One producer pushes $schedule_samples jobs with \`at\` set $schedule_delay s ahead and 10 ms apart, so they fall
due one at a time, and one worker waits in FETCH. Lateness is the worker's wall clock when
the job arrives minus its \`at\` (driver and server share the clock). The server arms one
libevent timer for the earliest due time plus 1 ms and moves every due job when it fires.
The lateness is therefore that 1 ms plus the timer's wake-up, the commit and the hand-off to
the waiting FETCH.

$(schedule_table)

## Commit latency

From the server's \`fabrik_commit_duration_seconds\` histogram on \`/metrics\`, read before and
after the push, work, cycle and latency runs of each durability mode: one commit per loop
iteration that wrote. The histogram has buckets (0.5, 1, 2.5, 5, 10, 25 ms ...), so p50 and
p99 are the upper bounds of the buckets that contain them.

$(commit_table)

$(big_section)
EOF
}

# The many-jobs section, between markers so that bench/run --big-only can replace it alone.
big_section() {
    local notes=""
    if $big_only; then
        notes=$'\n'"Measured by \`bench/run --big-only\` on $(date -u '+%Y-%m-%d %H:%M UTC'), with the server built"
        notes+=$'\n'"(CMake Release) from $(source_note). Only this section comes from that run."$'\n'
    fi
    cat <<EOF
<!-- bench:big:start -->
## Memory and restart time with many queued jobs
${notes}
A fresh server (durability \`fsync\`) gets the jobs with PUSHB, $big_bulk jobs per command over 2
connections, into one queue, and keeps them queued. RSS is VmHWM (peak) and VmRSS (now) from
\`/proc/<pid>/status\`; the data files are the apparent size of the data directory (SQLite
database and WAL) while the server runs and after its shutdown. Then SIGTERM stops it
("shutdown" is until the process exited), and the same binary starts again on the same
directory. "port accepts" is the time until a TCP connect succeeds, and "INFO returns" the time
until a full handshake and INFO returned the queue size.

$(big_table)
EOF
    [[ -n $big_counts ]] || printf '\nNot measured in this run (BENCH_BIG_JOBS was empty).\n'
    echo '<!-- bench:big:end -->'
}

compare_commands_section() {
    cat <<EOF
The other systems, each started fresh for its runs (\`\$DIR\` a new temporary directory,
\`\$PORT\` a free port; \`bsload\` and \`pingpong\` are in \`build-bench/driver\`):

\`\`\`sh
beanstalkd -l 127.0.0.1 -p \$PORT -b \$DIR/binlog -f 0   # fsync-always
beanstalkd -l 127.0.0.1 -p \$PORT -b \$DIR/binlog        # fsync-50ms
beanstalkd -l 127.0.0.1 -p \$PORT                       # no-binlog
redis-server --bind 127.0.0.1 --port \$PORT --dir \$DIR --appendonly yes --appendfsync everysec --save "" --daemonize no --protected-mode yes
(cd bench/node && npm ci)
$(printf '%s\n' "${compare_commands[@]}" | awk '!seen[$0]++')
\`\`\`
EOF
}
