//// Supervised beamlet worker nodes: `beamlet node ...` OS processes started, watched and
//// restarted by the `beamlet` application. Needs `beamlet.start()`.
////
//// ```gleam
//// let assert Ok(node) =
////   worker.new("worker_1")
////   |> worker.role("agent")
////   |> worker.cluster("demo")
////   |> worker.start
//// ```
////
//// A worker whose OS process crashes (non-zero exit, signal) is started again; one that exits
//// with status 0 is not. Stopping the application stops every worker (SIGTERM).

import gleam/option.{type Option, None, Some}

/// How to start a worker. Build it with `new` and the setters below.
pub type Options {
  Options(
    name: String,
    cookie: Option(String),
    role: Option(String),
    cluster: Option(String),
    join: List(String),
    extra_args: List(String),
    binary: Option(String),
    start_timeout: Int,
  )
}

/// Why `start` failed.
pub type StartError {
  /// A worker with this name runs already.
  AlreadyStarted
  /// The beamlet executable was not found at this path.
  BinaryNotFound(path: String)
  /// The node did not answer within the start timeout.
  StartTimeout
  /// Anything else (for example the process exited at once); the reason as text.
  StartFailed(reason: String)
}

/// Options for a worker called `name` (a short node name; the host of this node is added).
/// Defaults: this node's cookie, role agent, cluster "default", a 5 s start timeout, the
/// executable from `BEAMLET_BIN` or the application's `priv/beamlet`.
pub fn new(name: String) -> Options {
  Options(
    name: name,
    cookie: None,
    role: None,
    cluster: None,
    join: [],
    extra_args: [],
    binary: None,
    start_timeout: 5000,
  )
}

pub fn cookie(options: Options, cookie: String) -> Options {
  Options(..options, cookie: Some(cookie))
}

/// `coordinator`, `agent`, `gateway` or `monitor`.
pub fn role(options: Options, role: String) -> Options {
  Options(..options, role: Some(role))
}

pub fn cluster(options: Options, cluster: String) -> Options {
  Options(..options, cluster: Some(cluster))
}

/// Nodes the worker connects to when it starts.
pub fn join(options: Options, seeds: List(String)) -> Options {
  Options(..options, join: seeds)
}

/// More `beamlet node` flags, e.g. `["--log-level", "debug"]`.
pub fn extra_args(options: Options, args: List(String)) -> Options {
  Options(..options, extra_args: args)
}

/// Path of the beamlet executable.
pub fn binary(options: Options, path: String) -> Options {
  Options(..options, binary: Some(path))
}

/// Milliseconds to wait for the node to answer.
pub fn start_timeout(options: Options, ms: Int) -> Options {
  Options(..options, start_timeout: ms)
}

/// Start the worker and wait until it answers; returns its node name.
@external(erlang, "beamlet_gleam_ffi", "start_worker")
pub fn start(options: Options) -> Result(String, StartError)

/// Stop a worker (SIGTERM, wait for it to exit). `Error(Nil)` if there is no such worker.
@external(erlang, "beamlet_gleam_ffi", "stop_worker")
pub fn stop(node: String) -> Result(Nil, Nil)

/// The node names of the running workers.
@external(erlang, "beamlet_gleam_ffi", "which_workers")
pub fn running() -> List(String)
