%% demo_ctl - what `make demo`'s erl node (the one running the beamlet shim) does for the demo
%% script: register and find services in the beamlet registry, make service calls through it,
%% subscribe to pub/sub topics and keep what arrives. Every call is a documented request to a C
%% node's registered process (docs/services.md). The script runs this node as a coprocess and
%% writes one expression per line to its stdin (serve/0); each answer is one line of readable
%% text on stdout (an atom or a string). (Not erl_call: the shim probes every node that connects, and erl_call takes the
%% probe for its answer.)
-module(demo_ctl).
-export([serve/0, connect/1, reg/2, find/2, call/3, subscribe/2, publish/3, received/0]).

%% Read "demo_ctl:f(Args)." lines from stdin, answer each with one line; logs go to stderr.
-spec serve() -> no_return().
serve() ->
    _ = logger:set_handler_config(default, config, #{type => standard_error}),
    {ok, _} = application:ensure_all_started(beamlet),
    loop().

loop() ->
    case io:get_line("") of
        eof -> halt();
        {error, _} -> halt();
        Line ->
            Answer = try eval(Line)
                     catch C:E -> text(io_lib:format("error:~p:~0p", [C, E]))
                     end,
            io:format("~s~n", [text(io_lib:format("~s", [Answer]))]),
            loop()
    end.

eval(Line) ->
    {ok, Tokens, _} = erl_scan:string(Line),
    {ok, Exprs} = erl_parse:parse_exprs(Tokens),
    {value, V, _} = erl_eval:exprs(Exprs, []),
    V.

-define(T, 5000).

-spec text(iodata()) -> string().
text(IoData) ->
    [case C of $\n -> $\s; _ -> C end || C <- lists:flatten(io_lib:format("~s", [IoData]))].

short(Node) -> hd(string:split(atom_to_list(Node), "@")).

-spec connect([node()]) -> string() | atom().
connect(Nodes) ->
    {ok, _} = application:ensure_all_started(beamlet),
    text(lists:join(" ", [io_lib:format("~s:~p", [short(N), beamlet:connect(N)]) || N <- Nodes])).

%% Register service Name on Node (owned by that node); its calls reach that node's `beamlet'
%% process (metadata process).
-spec reg(node(), binary()) -> string() | atom().
reg(Node, Name) ->
    case gen_server:call({beamlet_registry, Node},
                         {register, #{name => Name, metadata => #{<<"process">> => <<"beamlet">>}}}, ?T) of
        {ok, _Id} -> ok;
        Other -> text(io_lib:format("error:~p", [Other]))
    end.

%% The nodes that offer Name as Node's copy of the registry sees them: "cam1 cam2" or none.
-spec find(node(), binary()) -> string() | atom().
find(Node, Name) ->
    Entries = gen_server:call({beamlet_registry, Node}, {find, #{name => Name}}, ?T),
    case lists:sort([short(N) || #{node := N} <- Entries]) of
        [] -> none;
        Ns -> text(lists:join(" ", Ns))
    end.

%% A service call through Node's registry (info to the instance's beamlet process): who answered.
-spec call(node(), binary(), non_neg_integer()) -> string() | atom().
call(Node, Name, Retries) ->
    case gen_server:call({beamlet_registry, Node},
                         {call, Name, info, 2000, #{retries => Retries}}, 15000) of
        {ok, #{node := Answered}} -> text(short(Answered));
        {error, E} -> text(io_lib:format("error:~p", [E]))
    end.

%% A collector process on this node subscribed to Pattern on Node's pub/sub.
-spec subscribe(node(), binary()) -> string() | atom().
subscribe(Node, Pattern) ->
    Pid = case whereis(demo_inbox) of
              undefined ->
                  P = spawn(fun() -> inbox([]) end),
                  register(demo_inbox, P),
                  P;
              P -> P
          end,
    case gen_server:call({beamlet_pubsub, Node}, {subscribe, Pattern, Pid}, ?T) of
        {ok, _} -> ok;
        Other -> text(io_lib:format("error:~p", [Other]))
    end.

inbox(Acc) ->
    receive
        {beamlet_msg, Topic, Payload, #{publisher := From}} ->
            inbox([{Topic, Payload, From} | Acc]);
        {get, P} ->
            P ! {msgs, lists:reverse(Acc)},
            inbox(Acc)
    end.

-spec publish(node(), binary(), term()) -> string() | atom().
publish(Node, Topic, Payload) ->
    case gen_server:call({beamlet_pubsub, Node}, {publish, Topic, Payload, #{}}, ?T) of
        {ok, _} -> ok;
        Other -> text(io_lib:format("error:~p", [Other]))
    end.

%% What the collector received: "sensors.temperature=21.5 (from sensor1), ..." or none.
-spec received() -> string() | atom().
received() ->
    demo_inbox ! {get, self()},
    receive
        {msgs, []} -> none;
        {msgs, M} ->
            text(lists:join(", ", [io_lib:format("~s=~p (from ~s)", [T, P, short(F)]) || {T, P, F} <- M]))
    after ?T -> none
    end.
