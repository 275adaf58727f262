%% beamlet_gleam_layout_tests - the Gleam package checked in the module layout of a Gleam build
%% (built by gleam_layout.erl into $BL_GLEAM_LAYOUT/ebin, the only beamlet code on this VM's path):
%% the module `beamlet' is the stand-in for `beamlet.gleam' (not the shim's beamlet.erl), xref finds
%% no call to an undefined function, and every `@external' in the .gleam sources names a module,
%% function and arity that exist here.
-module(beamlet_gleam_layout_tests).
-include_lib("eunit/include/eunit.hrl").

-export([ebin/0, gleam_dir/0, externals/0]).

ebin() ->
    case os:getenv("BL_GLEAM_LAYOUT") of
        D when is_list(D), D =/= "" -> filename:join(D, "ebin");
        _ -> error(no_layout)
    end.

gleam_dir() ->
    filename:join([os:getenv("BL_ROOT"), "erlang_shim", "gleam"]).

%% [{GleamModule, Fun, Arity, ExtModule, ExtFun}] for every @external function.
externals() ->
    [{M, F, A, EM, EF} || {M, Fns} <- gleam_layout:gleam_modules(gleam_dir()),
                          {F, A, _, {EM, EF}} <- Fns].

%% The module `beamlet' on the path is the stand-in built from beamlet.gleam, with exactly the
%% exports Gleam compiles beamlet.gleam to; the shim's beamlet.erl is not in the package.
beamlet_is_the_gleam_module_test() ->
    ?assertEqual(filename:join(ebin(), "beamlet.beam"), code:which(beamlet)),
    ?assertNot(filelib:is_file(filename:join([gleam_dir(), "src", "beamlet.erl"]))),
    {beamlet, Fns} = lists:keyfind(beamlet, 1, gleam_layout:gleam_modules(gleam_dir())),
    Pub = lists:sort([{F, A} || {F, A, true, _} <- Fns]),
    ?assert(length(Pub) >= 3),
    ?assertEqual(Pub, lists:sort(beamlet:module_info(exports) --
                                     [{module_info, 0}, {module_info, 1}])).

%% xref over the layout: no call from any module of the package reaches an undefined function
%% (a call to a function the Gleam build does not have is an `undef' crash at run time).
no_undefined_calls_test() ->
    {ok, X} = xref:start([{xref_mode, functions}]),
    try
        ok = xref:set_default(X, [{warnings, false}, {verbose, false}]),
        ok = xref:set_library_path(X, [D || D <- code:get_path(), lists:prefix(code:lib_dir(), D)]),
        {ok, Mods} = xref:add_directory(X, ebin()),
        ?assert(lists:member(beamlet, Mods)),
        ?assert(lists:member(beamlet_gleam_ffi, Mods)),
        {ok, Undef} = xref:analyze(X, undefined_function_calls),
        ?assertEqual([], Undef)
    after
        xref:stop(X)
    end.

%% Every @external(erlang, M, F) of the .gleam sources names a module of the layout (or of OTP)
%% that exports F with the arity of the Gleam function.
externals_exist_test() ->
    Ext = externals(),
    ?assert(length(Ext) >= 20),
    [begin
         Where = code:which(EM),
         InLayout = is_list(Where) andalso (filename:dirname(Where) =:= ebin() orelse
                                            lists:prefix(code:lib_dir(), Where)),
         ?assertEqual({M, F, EM, EF, A, true},
                      {M, F, EM, EF, A, InLayout andalso
                                        erlang:function_exported(EM, EF, A)})
     end || {M, F, A, EM, EF} <- Ext, code:ensure_loaded(EM) =/= x].

%% Every exported function of the FFI module is used by some @external (no dead FFI).
ffi_exports_used_test() ->
    Used = lists:usort([{EF, A} || {_, _, A, beamlet_gleam_ffi, EF} <- externals()]),
    Exports = beamlet_gleam_ffi:module_info(exports) -- [{module_info, 0}, {module_info, 1}],
    ?assertEqual([], Exports -- Used).

%% The parser itself: a fixture with comments, labels, nested types and a trailing comma.
parser_test() ->
    F = filename:join(os:getenv("BL_GLEAM_LAYOUT"), "parser_fixture.gleam"),
    ok = file:write_file(F, <<"//// pub fn in_doc(a, b) {}\n"
                              "/// doc\n"
                              "@external(erlang, \"m\", \"f\")\n"
                              "pub fn one(on node: Node, f: fn(a, b) -> c, d: Dict(String, Int)) -> Nil\n\n"
                              "@external(erlang, \"m\", \"g\")\n"
                              "@deprecated(\"x\")\n"
                              "fn two(\n  a: Int,\n  b: #(Int, Int),\n) -> Nil\n\n"
                              "pub fn three() {\n  fn(x, y) { x }\n}\n">>),
    ?assertEqual([{one, 3, true, {m, f}}, {two, 2, false, {m, g}}, {three, 0, true, none}],
                 gleam_layout:gleam_functions(F)).

%% docs/gleam.md: every ```gleam and ```toml block is a run of lines of a file of the example app
%% (compared line by line without indentation and blank lines), so the guide shows code that CI
%% builds and runs (gleam build / gleam run of examples/hello_cluster).
guide_snippets_test() ->
    {ok, Md} = file:read_file(filename:join([os:getenv("BL_ROOT"), "docs", "gleam.md"])),
    {match, Blocks} = re:run(Md, "```(?:gleam|toml)\n(.*?)```", [global, dotall, {capture, [1], binary}]),
    ?assert(length(Blocks) >= 8),
    Files = filelib:wildcard(filename:join(gleam_dir(), "examples/*/gleam.toml")) ++
        filelib:wildcard(filename:join(gleam_dir(), "examples/*/src/*.gleam")),
    ?assert(length(Files) >= 2),
    Sources = [{F, norm(element(2, file:read_file(F)))} || F <- Files],
    [?assertEqual({B, found}, {B, case [F || {F, S} <- Sources, sublist(norm(B), S)] of
                                      [] -> missing;
                                      _ -> found
                                  end})
     || [B] <- Blocks].

norm(Bin) ->
    [T || L <- binary:split(Bin, <<"\n">>, [global]), T <- [string:trim(L)], T =/= <<>>].

sublist([], _) -> true;
sublist(_, []) -> false;
sublist(Sub, [_ | Rest] = L) ->
    lists:prefix(Sub, L) orelse sublist(Sub, Rest).

%% gleam/src links to the shared modules (make gleam-sync): every one is there and identical.
gleam_copies_in_sync_test() ->
    Root = os:getenv("BL_ROOT"),
    Srcs = [F || F <- filelib:wildcard(filename:join([Root, "erlang_shim", "src", "*.erl"])),
                 filename:basename(F) =/= "beamlet.erl"],
    ?assert(length(Srcs) >= 7),
    [?assertEqual({F, same}, {F, same(F, filename:join([gleam_dir(), "src", filename:basename(F)]))})
     || F <- Srcs].

same(A, B) ->
    case {file:read_file(A), file:read_file(B)} of
        {{ok, X}, {ok, X}} -> same;
        _ -> different
    end.
