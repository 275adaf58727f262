#!/usr/bin/env bash
# mapsum.sh PID - where one process's memory is, mapping by mapping (docs/memory.md, "An idle
# node"): RSS, PSS and anonymous kB per file (its text, data and relocated parts summed), the brk
# heap, the main stack and the other anonymous mappings (blocks mapped on their own, thread
# stacks), from /proc/PID/smaps, largest RSS first, then the totals and the thread count.
set -u
pid=${1:?usage: mapsum.sh PID}
[ -r "/proc/$pid/smaps" ] || { echo "mapsum.sh: no process $pid" >&2; exit 2; }
awk '
/^[0-9a-f]+-[0-9a-f]+ / {
    name = $6 == "" ? "[anonymous]" : $6
    sub(/.*\//, "", name)
    cur = name
    next
}
/^Size:/ { size[cur] += $2 }
/^Rss:/ { rss[cur] += $2; trss += $2 }
/^Pss:/ { pss[cur] += $2; tpss += $2 }
/^Anonymous:/ { anon[cur] += $2; tanon += $2 }
END {
    printf "%-32s %9s %7s %7s %7s\n", "mapping", "size kB", "RSS", "PSS", "anon"
    n = 0
    for (k in rss) if (rss[k] > 0) keys[++n] = k
    for (i = 1; i <= n; i++)          # largest RSS first (insertion sort: a few dozen lines)
        for (j = i; j > 1 && rss[keys[j]] > rss[keys[j - 1]]; j--) {
            t = keys[j]; keys[j] = keys[j - 1]; keys[j - 1] = t
        }
    for (i = 1; i <= n; i++)
        printf "%-32s %9d %7d %7d %7d\n", keys[i], size[keys[i]], rss[keys[i]], pss[keys[i]], anon[keys[i]]
    printf "%-32s %9s %7d %7d %7d\n", "total", "", trss, tpss, tanon
}' "/proc/$pid/smaps"
echo "threads: $(awk '/^Threads:/ {print $2}' "/proc/$pid/status")"
