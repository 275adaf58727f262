#!/bin/sh
# run.sh - the cluster suite (EUnit, real beamlet nodes + this erl runner on loopback), then the
# network-namespace partition test. Reuses test/integration's node registry (bl_test_util).
# Appends "cluster P F" (and partition's own line) to $BL_RESULTS.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/test/lib/suite.sh"
suite_init cluster blc
suite_erlc test/cluster/*.erl
suite_erl 'bl_cluster_tests, bl_election_tests, bl_cconf_tests' -kernel net_ticktime 4
rc=$?
prc=0
if [ -x test/cluster/partition_netns.sh ]; then test/cluster/partition_netns.sh; prc=$?; fi
[ "$rc" -eq 0 ] && [ "$prc" -eq 0 ]
