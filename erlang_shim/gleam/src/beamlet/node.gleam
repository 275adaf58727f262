//// Beamlet nodes this node is connected to: connect, list, inspect, monitor.

import beamlet.{type CallError}
import gleam/dict.{type Dict}
import gleam/dynamic.{type Dynamic}
import gleam/erlang/process.{type Subject}

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
  NodeInfo(node: String, role: String, cluster: String, version: String)
}

/// What a node says about itself.
pub type Info {
  Info(
    node: String,
    role: String,
    cluster: String,
    version: String,
    uptime_ms: Int,
    processes: Int,
    os_pid: Int,
    port: Int,
    connections: List(String),
  )
}

/// A node monitor made by `monitor`.
pub type Monitor

/// Connect to `node` and check that it is a beamlet node.
@external(erlang, "beamlet_gleam_ffi", "connect")
pub fn connect(node: String) -> Result(Nil, ConnectError)

/// The beamlet nodes connected now, sorted by name. Needs `beamlet.start()`.
@external(erlang, "beamlet_gleam_ffi", "nodes")
pub fn list() -> List(NodeInfo)

/// Ask a node for its `Info`.
@external(erlang, "beamlet_gleam_ffi", "info")
pub fn info(node: String) -> Result(Info, CallError)

/// A node's traffic counters (`msgs_in`, `msgs_out`, `bytes_in`, `bytes_out`, `conns_*`,
/// `handshakes_failed`, `connections`).
@external(erlang, "beamlet_gleam_ffi", "stats")
pub fn stats(node: String) -> Result(Dict(String, Dynamic), CallError)

/// Send the node's name to `subject` once, when the connection to `node` goes down (at once if
/// it is not connected). Needs `beamlet.start()`. `Error(Nil)` when `subject` is a named subject
/// whose name no process holds.
@external(erlang, "beamlet_gleam_ffi", "monitor")
pub fn monitor(node: String, subject: Subject(String)) -> Result(Monitor, Nil)

/// Remove a monitor.
@external(erlang, "beamlet_gleam_ffi", "demonitor")
pub fn demonitor(monitor: Monitor) -> Nil
