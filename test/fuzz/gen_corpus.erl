%% gen_corpus.erl - writes the seed corpora of the fuzz targets from real BEAM encodings.
%% Run from the repository root:
%%   erl -noshell -eval 'c:c("test/fuzz/gen_corpus.erl", [{outdir, "/tmp"}]), gen_corpus:main(), halt().'
%% corpus/term/: term_to_binary of assorted terms (version byte included; fuzz_term skips it).
%% corpus/frame/: byte streams of distribution frames: 4-byte length, 'p', control, message.
%% corpus/pg/: lists of OTP pg protocol messages from a remote scope (fuzz_pg delivers each).
-module(gen_corpus).
-export([main/0]).

main() ->
    Pid = self(),
    Ref = make_ref(),
    Port = hd(erlang:ports()),
    Y = erlang:unique_integer(), % not a constant: the closure keeps a free variable
    Closure = fun(X) -> X + Y end,
    Terms = [atom, '', 'h\x{e9}llo', 'ünïcødé', 0, 255, 256, -1, 1 bsl 40, -(1 bsl 200), 1 bsl 3000,
             1.5, -0.0, <<>>, <<1,2,3>>, <<1:3>>, <<255, 7:5>>, "hello", [], [1, [2 | x]],
             {a, {b, {c}}}, {}, list_to_tuple(lists:seq(1, 300)), #{}, #{a => 1, {b} => [c]},
             Pid, Ref, Port, fun lists:reverse/1, Closure,
             {Pid, Ref, [Port | <<"tail">>], #{Pid => Ref}}],
    T = "test/fuzz/corpus/term/",
    lists:foreach(fun({N, Term}) -> w(T, "t~3..0b", [N], term_to_binary(Term)) end,
                  lists:zip(lists:seq(1, length(Terms)), Terms)),
    w(T, "float_minor0", [], term_to_binary(3.14159, [{minor_version, 0}])),
    w(T, "atoms_minor1", [], term_to_binary({abc, 'x y'}, [{minor_version, 1}])),
    w(T, "nested_deep", [], term_to_binary(lists:foldl(fun(_, A) -> [A] end, [], lists:seq(1, 200)))),
    %% a bignum too large for ei_s_print_term's 2000-byte buffer (see fuzz_common.h)
    w(T, "big_8000_bits", [], term_to_binary(1 bsl 8000)),

    F = "test/fuzz/corpus/frame/",
    Msg = {'$gen_call', {Pid, Ref}, {echo, <<"payload">>, [1, 2.5, "str"]}},
    Frames =
        [{send, [{2, '', Pid}], Msg},
         {reg_send, [{6, Pid, '', net_kernel}], {'$gen_call', {Pid, Ref}, {is_auth, node()}}},
         {link, [{1, Pid, Pid}], none},
         {exit, [{3, Pid, Pid, {shutdown, "bye"}}], none},
         {unlink_id, [{35, 12345, Pid, Pid}], none},
         {unlink_id_ack, [{36, 1 bsl 40, Pid, Pid}], none},
         {exit2, [{8, Pid, Pid, kill}], none},
         {monitor_pid, [{19, Pid, Pid, Ref}], none},
         {monitor_name, [{19, Pid, rex, Ref}], none},
         {demonitor, [{20, Pid, Pid, Ref}], none},
         {monitor_exit_pid, [{21, Pid, Pid, Ref, normal}], none},
         {monitor_exit_name, [{21, rex, Pid, Ref, noproc}], none},
         {send_tt, [{12, '', Pid, {1, 2, 3, Pid, 4}}], hello},
         {reg_send_tt, [{16, Pid, '', rex, {0, 0, 0, Pid, 0}}], {call, erlang, node, [], Pid}},
         {send_sender, [{22, Pid, Pid}], {data, lists:seq(1, 50)}},
         {node_link, [{5}], none},
         {group_leader, [{7, Pid, Pid}], none},
         {payload_exit, [{24, Pid, Pid}], {shutdown, "bye"}},
         {payload_exit_tt, [{25, Pid, Pid, {0, 0, 0, Pid, 0}}], killed},
         {payload_exit2, [{26, Pid, Pid}], kill},
         {payload_exit2_tt, [{27, Pid, Pid, {0, 0, 0, Pid, 0}}], normal},
         {payload_monitor_exit, [{28, Pid, Pid, Ref}], {Ref, return, [1, 2, 3]}},
         {payload_monitor_exit_name, [{28, rex, Pid, Ref}], noproc},
         {spawn_request_erpc, [{29, Ref, Pid, Pid, {erpc, execute_call, 4},
                                [{reply, error_only}, monitor]}],
          [Ref, erlang, node, []]},
         {spawn_request_plain, [{29, Ref, Pid, Pid, {io, format, 2}, [link]}], ["~p~n", [x]]},
         {spawn_request_str, [{29, Ref, Pid, Pid, {m, f, 3}, []}], [1, 2, 3]},
         {spawn_request_tt, [{30, Ref, Pid, Pid, {erpc, execute_cast, 3}, [],
                              {0, 0, 0, Pid, 0}}],
          [erlang, node, []]},
         {spawn_reply_ok, [{31, Ref, Pid, 3, Pid}], none},
         {spawn_reply_error, [{31, Ref, Pid, 0, badopt}], none},
         {spawn_reply_tt, [{32, Ref, Pid, 2, Pid, {0, 0, 0, Pid, 0}}], none},
         {alias_send, [{33, Pid, Ref}], {[alias | Ref], {ok, reply}}},
         {alias_send_tt, [{34, Pid, Ref, {0, 0, 0, Pid, 0}}], {[alias | Ref], pong}},
         {unknown_op, [{99, x}], none}],
    lists:foreach(fun({Name, [Ctl], M}) -> w(F, "~s", [Name], frame(Ctl, M)) end, Frames),
    %% several frames with ticks between them, as they arrive on a socket
    Stream = [<<0:32>>, frame({2, '', Pid}, ping), <<0:32>>, frame({6, Pid, '', rex}, {a, b}),
              frame({1, Pid, Pid}, none), frame({3, Pid, Pid, normal}, none)],
    w(F, "stream", [], iolist_to_binary(Stream)),
    pg_corpus("test/fuzz/corpus/pg/"),
    ok.

%% kernel/src/pg.erl's messages as a remote scope (a pid of peer@host) sends them to ours
pg_corpus(D) ->
    ok = filelib:ensure_dir(D),
    P = rpid('peer@host', 1), Q = rpid('peer@host', 2), R = rpid('other@host', 3),
    Disc = {discover, P},
    Sync = {'$gen_cast', {sync, P, [{g, [Q, Q]}, {{group, 1}, [P]}, {<<"bin">>, []}]}},
    Msgs = [{one_discover, [Disc]},
            {sync_join_leave, [Disc, Sync, {join, P, g, R}, {join, P, #{k => [1, 2]}, [Q, R]},
                               {leave, P, Q, [g, nosuch]}, {leave, P, [Q, R], [#{k => [1, 2]}]}]},
            {sync_first, [Sync, {join, P, g, Q}]},
            {sync_again, [Disc, Sync, {'$gen_cast', {sync, P, [{g, [R]}]}}, {discover, R}]},
            {bad_shapes, [Disc, {join, P, g, notapid}, {leave, P, [Q | x], [g]},
                          {'$gen_cast', {sync, P, [{g}]}}, {'$gen_cast', {sync, P, improper}},
                          {join, P}, {sync, P, []}, {'$gen_cast', nonsense}]},
            {calls, [{'$gen_call', {P, make_ref()}, {join, g, [Q]}},
                     {'$gen_call', {P, make_ref()}, which_groups},
                     {'$gen_call', {P, make_ref()}, {get_members, g}}]},
            {deep_group, [Disc, {join, P, lists:foldl(fun(_, A) -> [A] end, [], lists:seq(1, 300)), Q}]}],
    lists:foreach(fun({Name, L}) -> w(D, "~s", [Name], term_to_binary(L)) end, Msgs).

%% a pid of another node, as NEW_PID_EXT
rpid(Node, Id) ->
    binary_to_term(<<131, 88, 119, (byte_size(atom_to_binary(Node))),
                     (atom_to_binary(Node))/binary, Id:32, 0:32, 1:32>>).

frame(Ctl, none) -> frame(Ctl, <<>>, false);
frame(Ctl, Msg) -> frame(Ctl, term_to_binary(Msg), true).
frame(Ctl, MsgBin, _) ->
    Payload = <<$p, (term_to_binary(Ctl))/binary, MsgBin/binary>>,
    <<(byte_size(Payload)):32, Payload/binary>>.

w(Dir, Fmt, Args, Bin) ->
    ok = file:write_file(Dir ++ lists:flatten(io_lib:format(Fmt, Args)), Bin).
