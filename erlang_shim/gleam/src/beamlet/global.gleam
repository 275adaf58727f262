//// Cluster-wide names: C processes' global names, and BEAM names through OTP `global` in mixed
//// clusters, resolved by a beamlet node.

import beamlet.{type Node}
import gleam/erlang/atom.{type Atom}
import gleam/erlang/process.{type Pid}

/// The process registered under `name` in the cluster, asked of any connected beamlet node
/// (needs `beamlet.start()`); `Error(Nil)` if nobody holds it.
@external(erlang, "beamlet_gleam_ffi", "global_whereis")
pub fn whereis(named name: Atom) -> Result(Pid, Nil)

/// The process registered under `name` in the cluster, as `node` resolves it.
@external(erlang, "beamlet_gleam_ffi", "global_whereis_on")
pub fn whereis_on(node node: Node, named name: Atom) -> Result(Pid, Nil)
