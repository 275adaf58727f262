//// Cluster-wide names: C processes' names, and BEAM names through OTP `global` in mixed
//// clusters.

import gleam/erlang/process.{type Pid}
import gleam/option.{type Option}

/// The process registered under `name` in the cluster, if any.
@external(erlang, "beamlet_gleam_ffi", "global_whereis")
pub fn whereis(name: String) -> Option(Pid)
