%% bl_record.erl - sends the messages recorded into test/unit/data/beam_frames.bin (see README.md).
%%
%% Runs on node A; node B (started by record_dist.sh) registers `sink`. A sends every message
%% below to {sink, B} and writes what it sent, each as term_to_binary(Msg, [{minor_version, 2}])
%% with a 4-byte length, to the file named by BL_RECORD_EXPECTED, in the order B received them.
-module(bl_record).
-export([main/0, sink/0]).

sink() ->
    register(sink, self()),
    sink_loop([]).

sink_loop(Acc) ->
    receive
        {report, From} -> From ! {received, lists:reverse(Acc)}, sink_loop(Acc);
        M -> sink_loop([M | Acc])
    end.

atoms(Prefix, From, N) ->
    [list_to_atom(Prefix ++ integer_to_list(I)) || I <- lists:seq(From, From + N - 1)].

main() ->
    [B] = [list_to_atom(os:getenv("BL_RECORD_PEER"))],
    pong = net_adm:ping(B),
    timer:sleep(500),
    To = {sink, B},
    Long = list_to_atom(lists:duplicate(255, $q)),
    LongUtf8 = list_to_atom(lists:duplicate(255, 16#E4)),
    Small = {hello, world, [a, b, c], <<"bin">>, 42, self()},
    Msgs =
        [Small, Small,
         {many, atoms("m_", 1, 300)}]
        ++ [{batch, atoms("atom_number_", I, 100)} || I <- lists:seq(1, 3000, 100)]
        ++ [{batch, atoms("atom_number_", 1, 100)},
            {long, Long, LongUtf8, Long},
            {long, LongUtf8},
            Small],
    [To ! M || M <- Msgs],
    %% two large messages from two processes at once (fragments), with small ones between
    Big = fun(K) -> {big, K, binary:copy(<<K, 1, 2, 3, 4, 5, 6, 7>>, 9000)} end,
    Self = self(),
    Ps = [spawn(fun() -> To ! Big(K), Self ! {sent, K} end) || K <- [1, 2]],
    [To ! {small, I} || I <- lists:seq(1, 5)],
    [receive {sent, K} -> ok end || K <- [1, 2]],
    _ = Ps,
    To ! last,
    timer:sleep(300),
    To ! {report, self()},
    Got = receive {received, G} -> G after 10000 -> error(no_report) end,
    io:format("recorded ~p messages~n", [length(Got)]),
    Bin = << <<(byte_size(E)):32, E/binary>> ||
             M <- Got, E <- [term_to_binary(M, [{minor_version, 2}])] >>,
    ok = file:write_file(os:getenv("BL_RECORD_EXPECTED"), Bin),
    halt(0).
