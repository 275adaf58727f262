# memsum.sh - sourced by test/scale/run.sh and test/bench/cluster_bench.sh (docs/memory.md).
# bl_mem_per_node PID...: prints "RSS PSS USS ANON LIVE", the first four in kB per live node
# (from /proc/PID/smaps_rollup), LIVE the number of PIDs still running.
#   RSS counts every resident page a node maps, so the C library, SQLite and the beamlet binary,
#       which are in memory once for all the nodes of a host, count once per node;
#   PSS splits each shared page between the processes that map it: the sum over the nodes is
#       what they take together, so PSS per node is the fair per-node cost;
#   USS is what a node holds alone (what its exit gives back), ANON its heap, stacks and maps.
bl_mem_per_node() {
    local rss=0 pss=0 uss=0 anon=0 live=0 p
    for p in "$@"; do
        read -r r s u a < <(awk '/^Rss:/{r=$2} /^Pss:/{s=$2} /^Private_(Clean|Dirty):/{u+=$2}
            /^Anonymous:/{a=$2} END{if (r != "") print r, s, u, a}' "/proc/$p/smaps_rollup" 2>/dev/null)
        [ -n "${r:-}" ] || continue
        rss=$((rss + r)); pss=$((pss + s)); uss=$((uss + u)); anon=$((anon + a)); live=$((live + 1))
        r=
    done
    [ "$live" -gt 0 ] || { echo "0 0 0 0 0"; return; }
    echo "$((rss / live)) $((pss / live)) $((uss / live)) $((anon / live)) $live"
}
