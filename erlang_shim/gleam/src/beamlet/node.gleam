//// Beamlet nodes this node is connected to: connect, list, inspect, monitor.

import beamlet.{type CallError, type Node, type Role}
import gleam/dict.{type Dict}
import gleam/dynamic.{type Dynamic}
import gleam/erlang/atom.{type Atom}
import gleam/erlang/process.{type Pid, type Subject}

/// Why `connect` failed.
pub type ConnectError {
  /// This VM is not a distributed node (see `beamlet.start_distribution`).
  NotAlive
  /// Connected, but the node has no `beamlet` process: a BEAM node.
  NotBeamlet
  /// The node could not be reached.
  Unreachable
  /// Connected, but the node did not answer.
  NoAnswer
}

/// A connected beamlet node, as listed by `list`.
pub type NodeInfo {
  NodeInfo(node: Node, role: Role, cluster: String, version: String)
}

/// What a node says about itself.
pub type Info {
  Info(
    node: Node,
    role: Role,
    cluster: String,
    version: String,
    uptime_ms: Int,
    processes: Int,
    os_pid: Int,
    port: Int,
    connections: List(Node),
  )
}

/// A node monitor made by `monitor`.
pub type NodeMonitor

/// Connect to the node called `name` (`"worker_1@myhost"`) and check that it is a beamlet
/// node. The node name becomes an atom here, once; use the returned `Node` from then on.
@external(erlang, "beamlet_gleam_ffi", "connect")
pub fn connect(to name: String) -> Result(Node, ConnectError)

/// The beamlet nodes connected now, sorted by name. Needs `beamlet.start()`.
@external(erlang, "beamlet_gleam_ffi", "nodes")
pub fn list() -> List(NodeInfo)

/// Ask a node for its `Info`.
@external(erlang, "beamlet_gleam_ffi", "info")
pub fn info(of node: Node) -> Result(Info, CallError)

/// A node's traffic counters (`msgs_in`, `msgs_out`, `bytes_in`, `bytes_out`, `conns_*`,
/// `handshakes_failed`, `connections`, ...).
@external(erlang, "beamlet_gleam_ffi", "stats")
pub fn stats(of node: Node) -> Result(Dict(String, Dynamic), CallError)

/// The names registered on a node.
@external(erlang, "beamlet_gleam_ffi", "registered")
pub fn registered(on node: Node) -> Result(List(Atom), CallError)

/// The process registered as `name` on a node; `Error(Nil)` if there is none (or the node
/// cannot be asked).
@external(erlang, "beamlet_gleam_ffi", "whereis")
pub fn whereis(on node: Node, named name: Atom) -> Result(Pid, Nil)

/// Send `node` into `subject` once, when the connection to it goes down (at once if it is not
/// connected). Needs `beamlet.start()`. `Error(Nil)` when `subject` is a named subject whose
/// name no process holds.
@external(erlang, "beamlet_gleam_ffi", "monitor")
pub fn monitor(
  node: Node,
  notify subject: Subject(Node),
) -> Result(NodeMonitor, Nil)

/// Remove a monitor.
@external(erlang, "beamlet_gleam_ffi", "demonitor")
pub fn demonitor(monitor: NodeMonitor) -> Nil
