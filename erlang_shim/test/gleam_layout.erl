%% gleam_layout - lay the Gleam package's modules out as `gleam build' does, without a Gleam
%% compiler, so the FFI can be checked and tested in the module layout of a real Gleam build.
%%
%% In a Gleam build the OTP application `beamlet' holds: the `.erl' files of the package's `src/'
%% (the shim modules linked there and `beamlet_gleam_ffi.erl'), and one Erlang module per `.gleam'
%% file (`src/beamlet/node.gleam' -> `beamlet@node'). In particular the module `beamlet' is the one
%% compiled from `beamlet.gleam', not the Erlang shim's `beamlet.erl'. build/2 writes:
%%   Dir/ebin/*.beam   the package's .erl files compiled as the shim compiles them;
%%   Dir/ebin/M.beam   for each .gleam file a stand-in module M exporting exactly the `pub fn's of
%%                     that file with their arities; a function with `@external(erlang, Mod, Fun)'
%%                     calls Mod:Fun with its arguments (what Gleam generates for it), any other
%%                     function raises `{gleam_stand_in, M, F}' (its Gleam body is not compiled);
%%   Dir/ebin/beamlet.app  the application resource file (mod beamlet_app, like gleam.toml says).
%% gleam_functions/1 is the parser behind it (also used by beamlet_gleam_layout_tests).
-module(gleam_layout).

-export([build/2, gleam_modules/1, gleam_functions/1, gleam_module_name/2, erl_sources/1]).

%% {Module, [{Name, Arity, Pub, External}]} for every .gleam file under GleamDir/src, External
%% `{Mod, Fun}' or `none'.
gleam_modules(GleamDir) ->
    Src = filename:join(GleamDir, "src"),
    Files = lists:sort(filelib:wildcard("**/*.gleam", Src)),
    [{gleam_module_name(Src, F), gleam_functions(filename:join(Src, F))} || F <- Files].

%% `beamlet/node.gleam' -> 'beamlet@node'.
gleam_module_name(_Src, Rel) ->
    list_to_atom(lists:flatten(lists:join("@", filename:split(filename:rootname(Rel))))).

%% The package's Erlang sources (links resolved), as a Gleam build compiles them.
erl_sources(GleamDir) ->
    lists:sort(filelib:wildcard(filename:join([GleamDir, "src", "*.erl"]))).

%% Top-level functions of a .gleam file: `fn name(' or `pub fn name(' at the start of a line
%% (gleam format puts top-level definitions in column 0), with the attribute lines right above it.
gleam_functions(File) ->
    {ok, Bin} = file:read_file(File),
    Lines = [strip_comment(L) || L <- binary:split(Bin, <<"\n">>, [global])],
    Text = iolist_to_binary(lists:join(<<"\n">>, Lines)),
    {match, Ms} = case re:run(Text, "^(pub +)?fn +([a-z_][a-z0-9_]*)\\(",
                              [multiline, global, {capture, all, index}]) of
                      nomatch -> {match, []};
                      M -> M
                  end,
    [{binary_to_atom(binary:part(Text, N)), arity(Text, S + L), P =/= {-1, 0},
      external(attributes(Text, S))}
     || [{S, L}, P, N] <- Ms].

%% Comment lines (`//', `///', `////') carry no code; doc comments hold example code.
strip_comment(Line) ->
    case string:trim(Line, leading) of
        <<"//", _/binary>> -> <<>>;
        _ -> Line
    end.

%% The attribute lines (starting with `@') directly above position Pos, nearest last.
attributes(Text, Pos) ->
    Before = binary:part(Text, 0, Pos),
    Lines = lists:reverse(binary:split(Before, <<"\n">>, [global])),
    %% the first element is the (empty) start of the fn line itself
    take_attrs(tl(Lines), []).

take_attrs([L | Rest], Acc) ->
    case string:trim(L) of
        <<"@", _/binary>> = A -> take_attrs(Rest, [A | Acc]);
        <<>> when Acc =:= [] -> take_attrs(Rest, Acc);
        _ -> Acc
    end;
take_attrs([], Acc) -> Acc.

external(Attrs) ->
    Re = "^@external\\(\\s*erlang\\s*,\\s*\"([^\"]+)\"\\s*,\\s*\"([^\"]+)\"\\s*\\)",
    case [{binary_to_atom(M), binary_to_atom(F)}
          || A <- Attrs, {match, [M, F]} <- [re:run(A, Re, [{capture, all_but_first, binary}])]] of
        [E] -> E;
        [] -> none
    end.

%% Parameters of a function whose list starts at Pos (just after its `('): commas at parenthesis
%% depth 0 up to the matching `)' (types like Dict(String, String) and fn(a, b) -> c nest).
arity(Bin, Pos) -> arity(Bin, Pos, 0, 0, false, false).

arity(Bin, Pos, Depth, Commas, Seen, LastComma) ->
    case binary:at(Bin, Pos) of
        $( -> arity(Bin, Pos + 1, Depth + 1, Commas, true, false);
        $) when Depth > 0 -> arity(Bin, Pos + 1, Depth - 1, Commas, true, false);
        $) when not Seen -> 0;
        $) when LastComma -> Commas;          % a trailing comma (gleam format writes one)
        $) -> Commas + 1;
        $, when Depth =:= 0 -> arity(Bin, Pos + 1, Depth, Commas + 1, Seen, true);
        C when C =:= $\s; C =:= $\n; C =:= $\t; C =:= $\r ->
            arity(Bin, Pos + 1, Depth, Commas, Seen, LastComma);
        _ -> arity(Bin, Pos + 1, Depth, Commas, true, false)
    end.

%% Build the layout in Dir (see the module doc). Returns ok or {error, What}.
build(GleamDir, Dir) ->
    Ebin = filename:join(Dir, "ebin"),
    StandIns = filename:join(Dir, "stand_in_src"),
    ok = filelib:ensure_dir(filename:join(Ebin, "x")),
    ok = filelib:ensure_dir(filename:join(StandIns, "x")),
    Opts = [{outdir, Ebin}, debug_info, warn_missing_spec, warnings_as_errors, report, return_errors],
    Erl = [C || {C, _} <- [{compile:file(F, Opts), F} || F <- erl_sources(GleamDir)], element(1, C) =/= ok],
    Mods = gleam_modules(GleamDir),
    Gleam = [begin
                 F = filename:join(StandIns, atom_to_list(M) ++ ".erl"),
                 ok = file:write_file(F, stand_in(M, Fns)),
                 compile:file(F, [{outdir, Ebin}, debug_info, report, return_errors,
                                  nowarn_unused_function, nowarn_unused_vars])
             end || {M, Fns} <- Mods],
    ErlMods = [list_to_atom(filename:basename(F, ".erl")) || F <- erl_sources(GleamDir)],
    All = lists:usort(ErlMods ++ [M || {M, _} <- Mods]),
    App = {application, beamlet,
           [{description, "beamlet (Gleam package layout)"}, {vsn, "0.1.0"},
            {modules, All}, {registered, []}, {applications, [kernel, stdlib]},
            {mod, {beamlet_app, []}}]},
    ok = file:write_file(filename:join(Ebin, "beamlet.app"), io_lib:format("~p.~n", [App])),
    case {Erl, [G || G <- Gleam, element(1, G) =/= ok]} of
        {[], []} -> ok;
        Bad -> {error, Bad}
    end.

stand_in(M, Fns) ->
    Pub = [io_lib:format("~p/~b", [F, A]) || {F, A, true, _} <- Fns],
    Header = io_lib:format("%% stand-in for the module gleam compiles from ~s (see gleam_layout.erl)~n"
                           "-module(~p).~n-export([~s]).~n",
                           [M, M, lists:join(", ", Pub)]),
    Bodies = [fn_body(M, F, A, E) || {F, A, _, E} <- Fns],
    [Header | Bodies].

fn_body(M, F, A, E) ->
    Args = lists:join(", ", ["A" ++ integer_to_list(I) || I <- lists:seq(1, A)]),
    case E of
        {Mod, Fun} -> io_lib:format("~p(~s) -> ~p:~p(~s).~n", [F, Args, Mod, Fun, Args]);
        none -> io_lib:format("~p(~s) -> erlang:error({gleam_stand_in, ~p, ~p}).~n",
                              [F, Args, M, F])
    end.
