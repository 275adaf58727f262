//// Use beamlet C nodes from Gleam as if they were BEAM nodes.
////
//// ```gleam
//// import beamlet
//// import beamlet/worker
//// import gleam/erlang/atom
////
//// pub fn main() {
////   let assert Ok(Nil) = beamlet.start_distribution("app", "my_cookie")
////   let assert Ok(Nil) = beamlet.start()
////   let assert Ok(node) = worker.start(worker.new("worker_1"))
////   let assert Ok(_pong) = beamlet.call(node, "beamlet", atom.create("ping"), 1000)
////   let assert Error(beamlet.NoProc) = beamlet.call(node, "nobody", Nil, 1000)
//// }
//// ```
////
//// Node names are strings such as `"worker_1@myhost"`; service names are the names processes
//// are registered under on the C node. Requests and replies are ordinary Erlang terms: a Gleam
//// `String` reaches the C side as a binary, a tuple as a tuple, a record `Foo(a)` as `{foo, A}`.
//// Replies come back as `Dynamic`; decode them with `gleam/dynamic/decode`.

import gleam/dynamic.{type Dynamic}

/// Why a call failed.
pub type CallError {
  /// The node cannot be reached, or the connection dropped during the call.
  NodeDown
  /// No reply in time.
  Timeout
  /// No process is registered under that service name on the node (or the node is a BEAM
  /// node, not a beamlet node).
  NoProc
  /// The C node refused the request (for example `badarg`).
  CallFailed(reason: String)
}

/// Start the `beamlet` OTP application (node tracking and the worker supervisor). Call it once
/// before using `beamlet/node.list`, `beamlet/node.monitor` or `beamlet/worker`.
@external(erlang, "beamlet_gleam_ffi", "start")
pub fn start() -> Result(Nil, String)

/// Make this VM a distributed node named `name@<short host>` with the given cookie, if it is not
/// one already (`gleam run` starts a VM without distribution). EPMD must be running.
@external(erlang, "beamlet_gleam_ffi", "start_distribution")
pub fn start_distribution(name: String, cookie: String) -> Result(Nil, String)

/// `gen_server:call` the process registered as `service` on the beamlet node `node`, waiting at
/// most `timeout` milliseconds. A missing service answers `Error(NoProc)` at once.
@external(erlang, "beamlet_gleam_ffi", "call")
pub fn call(
  node: String,
  service: String,
  request: request,
  timeout: Int,
) -> Result(Dynamic, CallError)

/// `gen_server:cast` a message to the process registered as `service` on `node`. Fire and forget.
@external(erlang, "beamlet_gleam_ffi", "cast")
pub fn cast(node: String, service: String, message: message) -> Nil
