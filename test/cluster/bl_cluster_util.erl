%% bl_cluster_util - the few node-control helpers the cluster suite needs beyond bl_test_util:
%% restarting a node under the same name, a node with another cookie, and log checks.
-module(bl_cluster_util).
-export([restart_node/2, start_beamlet_cookie/3, log_contains/2]).

-spec restart_node(node(), [string()]) -> node().
restart_node(Node, Args) ->
    Log = bl_test_util:log_file(Node),
    ok = gen_server:call(bl_test_nodes, {open, Node, os:getenv("BEAMLET_BIN"), Args, Log}),
    ok = bl_test_util:wait_up(Node, 15000),
    Node.

%% A node with another cookie cannot be pinged from the runner: wait for its "ready" log line.
-spec start_beamlet_cookie(string(), string(), [string()]) -> node().
start_beamlet_cookie(Tag, Cookie, Extra) ->
    Alias = bl_test_util:unique(Tag),
    Node = list_to_atom(Alias ++ "@" ++ bl_test_util:host()),
    Log = filename:absname(filename:join(bl_test_util:log_dir(), Alias ++ ".log")),
    ok = filelib:ensure_dir(Log),
    Args = ["node", "--sname", Alias, "--cookie", Cookie,
            "--net-ticktime", integer_to_list(bl_test_util:ticktime()) | Extra],
    ok = gen_server:call(bl_test_nodes, {open, Node, os:getenv("BEAMLET_BIN"), Args, Log}),
    true = bl_test_util:log_contains(Node, "ready:", 15000),
    Node.

-spec log_contains(node(), string()) -> boolean().
log_contains(Node, Sub) ->
    binary:match(bl_test_util:log_text(Node), list_to_binary(Sub)) =/= nomatch.
