//// Find beamlet nodes registered in EPMD (the local one and remote hosts) and connect to them,
//// polling every `interval` milliseconds. Run it on its own (`start`, linked to the caller) or
//// under a gleam_otp supervisor (`supervised`).
////
//// ```gleam
//// let assert Ok(found) =
////   discovery.new()
////   |> discovery.pattern("^agent")
////   |> discovery.start
//// let nodes = discovery.refresh(found)
//// ```

import beamlet.{type Node}
import gleam/erlang/process.{type Pid}
import gleam/option.{type Option, None, Some}
import gleam/otp/actor
import gleam/otp/supervision.{type ChildSpecification}

/// Where to look. Build it with `new` and the setters below.
pub type Options {
  Options(hosts: List(String), local: Bool, pattern: Option(String), interval: Int)
}

/// A running discovery process.
pub opaque type Discovery {
  Discovery(pid: Pid)
}

/// The local EPMD only, any name, every 5 s.
pub fn new() -> Options {
  Options(hosts: [], local: True, pattern: None, interval: 5000)
}

/// Remote hosts whose EPMD is polled too (node names found there are `name@host` with the host
/// exactly as given).
pub fn hosts(options: Options, hosts: List(String)) -> Options {
  Options(..options, hosts: hosts)
}

/// Whether to poll the local EPMD (default True).
pub fn local(options: Options, local: Bool) -> Options {
  Options(..options, local: local)
}

/// A regular expression the name part of a node must match.
pub fn pattern(options: Options, pattern: String) -> Options {
  Options(..options, pattern: Some(pattern))
}

/// Milliseconds between polls.
pub fn interval(options: Options, ms: Int) -> Options {
  Options(..options, interval: ms)
}

/// Start discovering, linked to the caller. `Error` with the reason, for example a pattern
/// that is not a valid regular expression.
pub fn start(options: Options) -> Result(Discovery, String) {
  case start_link(options) {
    Ok(pid) -> Ok(Discovery(pid: pid))
    Error(reason) -> Error(reason)
  }
}

/// A child specification for a gleam_otp supervisor: the child's data is the `Discovery`.
pub fn supervised(options: Options) -> ChildSpecification(Discovery) {
  supervision.worker(run: fn() {
    case start_link(options) {
      Ok(pid) -> Ok(actor.Started(pid: pid, data: Discovery(pid: pid)))
      Error(reason) -> Error(actor.InitFailed(reason))
    }
  })
}

@external(erlang, "beamlet_gleam_ffi", "discovery_start")
fn start_link(options: Options) -> Result(Pid, String)

/// The discovery process (to monitor it, say).
pub fn pid(discovery: Discovery) -> Pid {
  discovery.pid
}

/// The beamlet nodes found so far, sorted.
pub fn found(discovery: Discovery) -> List(Node) {
  ffi_found(discovery.pid)
}

@external(erlang, "beamlet_gleam_ffi", "discovery_found")
fn ffi_found(pid: Pid) -> List(Node)

/// Poll now (or wait for the poll in flight) and return the nodes found.
pub fn refresh(discovery: Discovery) -> List(Node) {
  ffi_refresh(discovery.pid)
}

@external(erlang, "beamlet_gleam_ffi", "discovery_refresh")
fn ffi_refresh(pid: Pid) -> List(Node)

/// Stop a discovery process started by `start`.
pub fn stop(discovery: Discovery) -> Nil {
  ffi_stop(discovery.pid)
}

@external(erlang, "beamlet_gleam_ffi", "discovery_stop")
fn ffi_stop(pid: Pid) -> Nil
