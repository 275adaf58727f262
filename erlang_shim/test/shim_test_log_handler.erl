%% shim_test_log_handler - a logger handler that stores events carrying beamlet_node metadata
%% (the worker's forwarded output lines) in the shim_log_capture ETS table.
-module(shim_test_log_handler).
-export([log/2]).

log(#{level := Level, msg := Msg, meta := #{beamlet_node := Node}}, _Config) ->
    Text = case Msg of
               {Fmt, Args} when is_list(Fmt) -> iolist_to_binary(io_lib:format(Fmt, Args));
               {string, S} -> iolist_to_binary(S);
               _ -> <<>>
           end,
    catch ets:insert(shim_log_capture, {Node, Level, Text}),
    ok;
log(_, _) ->
    ok.
