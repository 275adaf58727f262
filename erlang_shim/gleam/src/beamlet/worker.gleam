//// Beamlet worker nodes: `beamlet node ...` OS processes started, watched and stopped from
//// Gleam, either under a gleam_otp supervisor of yours (`supervised`) or under the `beamlet`
//// application's own supervisor (`start`, needs `beamlet.start()`).
////
//// ```gleam
//// let worker_a =
////   worker.new("worker_a")
////   |> worker.role(beamlet.Agent)
////   |> worker.cluster("demo")
//// let assert Ok(_supervisor) =
////   static_supervisor.new(static_supervisor.OneForOne)
////   |> static_supervisor.add(worker.supervised(worker_a))
////   |> static_supervisor.start
//// ```
////
//// The worker's OS process is stopped (SIGTERM, then SIGKILL after 5 s) when its Erlang
//// process stops, and it exits by itself when this VM dies (its stdin closes). An OS process
//// that crashes (non-zero exit, signal) makes the Erlang process exit abnormally, so the
//// supervisor starts a fresh one; one that exits with status 0 exits `normal` (restarted only
//// by a `Permanent` child: use `supervision.restart(_, supervision.Transient)` to leave it).

import beamlet.{type Node, type Role}
import gleam/erlang/process.{type Pid}
import gleam/option.{type Option, None, Some}
import gleam/otp/actor
import gleam/otp/supervision.{type ChildSpecification}

/// How to start a worker. Build it with `new` and the setters below.
pub type Options {
  Options(
    name: String,
    cookie: Option(String),
    role: Option(Role),
    cluster: Option(String),
    join: List(Node),
    extra_args: List(String),
    binary: Option(String),
    start_timeout: Int,
  )
}

/// Why `start` failed.
pub type StartError {
  /// A worker with this name runs already (or a node with this name answers).
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

pub fn role(options: Options, role: Role) -> Options {
  Options(..options, role: Some(role))
}

pub fn cluster(options: Options, cluster: String) -> Options {
  Options(..options, cluster: Some(cluster))
}

/// Nodes the worker connects to when it starts.
pub fn join(options: Options, seeds: List(Node)) -> Options {
  Options(..options, join: seeds)
}

/// More `beamlet node` flags, e.g. `["--log-level", "debug"]` or `["--data-dir", dir]`.
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

/// The node a worker with these options runs as (`name@<host of this node>`), known before it
/// starts: use it to call a worker a supervisor started.
@external(erlang, "beamlet_gleam_ffi", "worker_node")
pub fn node(options: Options) -> Node

/// A child specification for a gleam_otp supervisor (`static_supervisor.add`): the supervisor
/// starts the worker, waits until its node answers (the child's data is its `Node`), restarts
/// it when it crashes and stops it with the supervisor. Shutdown time 10 s.
pub fn supervised(options: Options) -> ChildSpecification(Node) {
  supervision.worker(run: fn() {
    case start_link(options) {
      Ok(#(pid, node)) -> Ok(actor.Started(pid: pid, data: node))
      Error(error) -> Error(actor.InitFailed(describe(error)))
    }
  })
  |> supervision.timeout(ms: 10_000)
}

@external(erlang, "beamlet_gleam_ffi", "start_link_worker")
fn start_link(options: Options) -> Result(#(Pid, Node), StartError)

/// A start error as text.
pub fn describe(error: StartError) -> String {
  case error {
    AlreadyStarted -> "already started"
    BinaryNotFound(path) -> "beamlet executable not found: " <> path
    StartTimeout -> "the node did not answer in time"
    StartFailed(reason) -> "failed to start: " <> reason
  }
}

/// Start the worker under the `beamlet` application's supervisor and wait until it answers;
/// returns its node.
@external(erlang, "beamlet_gleam_ffi", "start_worker")
pub fn start(options: Options) -> Result(Node, StartError)

/// Stop a worker started by `start` (SIGTERM, wait for it to exit). `Error(Nil)` if there is no
/// such worker.
@external(erlang, "beamlet_gleam_ffi", "stop_worker")
pub fn stop(node: Node) -> Result(Nil, Nil)

/// The nodes of the workers started by `start` that run now.
@external(erlang, "beamlet_gleam_ffi", "which_workers")
pub fn running() -> List(Node)

/// The OS pid of a worker started by `start`.
@external(erlang, "beamlet_gleam_ffi", "worker_os_pid")
pub fn os_pid(of node: Node) -> Result(Int, Nil)
