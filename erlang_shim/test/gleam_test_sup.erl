%% gleam_test_sup - a supervisor callback module that, like gleam_otp's static_supervisor, takes
%% its flags and child specs as the start argument (beamlet_gleam_ffi_tests runs the Gleam child
%% specs' start functions under it).
-module(gleam_test_sup).
-behaviour(supervisor).
-export([init/1]).

init(FlagsAndChildren) -> {ok, FlagsAndChildren}.
