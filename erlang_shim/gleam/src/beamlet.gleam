//// Use beamlet C nodes from Gleam as if they were BEAM nodes: call and cast the processes they
//// register, with replies decoded by the `gleam/dynamic/decode` decoder you pass.
////
//// ```gleam
//// import beamlet
//// import beamlet/worker
//// import gleam/dynamic/decode
//// import gleam/erlang/atom
////
//// pub fn main() {
////   let assert Ok(_) = beamlet.start_distribution(named: "app", cookie: "my_cookie")
////   let assert Ok(Nil) = beamlet.start()
////   let assert Ok(node) = worker.start(worker.new("worker_1"))
////   let pong = atom.create("pong")
////   let assert Ok(reply) =
////     beamlet.call(
////       on: node,
////       to: beamlet.builtin(),
////       message: atom.create("ping"),
////       expecting: atom.decoder(),
////       within: 1000,
////     )
////   assert reply == pong
//// }
//// ```
////
//// Requests and replies are ordinary Erlang terms: a Gleam `String` reaches the C side as a
//// binary, a tuple as a tuple, a record `Foo(a)` as `{foo, A}`, a variant without fields as an
//// atom.

import gleam/dynamic.{type Dynamic}
import gleam/dynamic/decode.{type DecodeError, type Decoder}
import gleam/erlang/atom.{type Atom}
import gleam/erlang/node
import gleam/erlang/process.{type Pid}

/// A node of the cluster: gleam_erlang's `Node` (an atom), so `beamlet/node` and
/// `gleam/erlang/node` can be used together without an import alias.
pub type Node =
  node.Node

/// Why a call (or another request to a node) failed.
pub type CallError {
  /// The node cannot be reached, or the connection dropped during the call.
  NodeDown
  /// No reply in time.
  Timeout
  /// No process is registered under that name on the node (or the node is a BEAM node).
  NoProc
  /// The node refused the request as malformed.
  Badarg
  /// The node has no such entry (a registry id, a subscription).
  NotFound
  /// `registry.call`: no healthy instance of the service.
  NoInstances
  /// A cluster-wide request (registry, global names) found no connected beamlet node.
  NoBeamletNode
  /// The subject is a named subject and no process is registered under its name.
  UnregisteredSubject
  /// The reply arrived but the decoder you passed did not accept it.
  Decode(errors: List(DecodeError))
  /// Any other refusal, as the node worded it (for example `no_store`: durable pub/sub needs
  /// the node's `data_dir`).
  Failed(reason: String)
}

/// A node's role in the cluster.
pub type Role {
  Coordinator
  Agent
  Gateway
  Monitor
  /// A role this package does not know (a BEAM member, a newer node).
  OtherRole(name: String)
}

/// A node's name as text (`"worker_1@myhost"`).
pub fn node_name(n: Node) -> String {
  atom.to_string(node.name(n))
}

/// A decoder for a node name in a reply or a payload (an atom).
pub fn node_decoder() -> Decoder(Node) {
  decode.new_primitive_decoder("Node", fn(data) {
    case node_from_dynamic(data) {
      Ok(n) -> Ok(n)
      Error(Nil) -> Error(node.self())
    }
  })
}

@external(erlang, "beamlet_gleam_ffi", "node_from_dynamic")
fn node_from_dynamic(data: Dynamic) -> Result(Node, Nil)

/// A role from the name the C node uses (`"agent"` -> `Agent`).
pub fn role_from_name(name: String) -> Role {
  case name {
    "coordinator" -> Coordinator
    "agent" -> Agent
    "gateway" -> Gateway
    "monitor" -> Monitor
    other -> OtherRole(other)
  }
}

/// A role as the C node spells it (`"coordinator"`, ...).
pub fn role_name(role: Role) -> String {
  case role {
    Coordinator -> "coordinator"
    Agent -> "agent"
    Gateway -> "gateway"
    Monitor -> "monitor"
    OtherRole(name) -> name
  }
}

/// A process registered on C nodes under a name, accepting `message`s. Make it once (the atom
/// is created here, not per call) and use it with `call` and `cast` on any node.
pub opaque type Service(message) {
  Service(name: Atom)
}

/// The service registered as `name` on C nodes.
pub fn service(named name: String) -> Service(message) {
  Service(name: atom.create(name))
}

/// The name a service is registered under.
pub fn service_name(service: Service(message)) -> Atom {
  service.name
}

/// The `beamlet` process every beamlet node runs. It answers `ping` with `pong`; `info`,
/// `stats` and `registered` are wrapped with typed results by `beamlet/node`.
pub fn builtin() -> Service(Atom) {
  service(named: "beamlet")
}

/// A subscription made by `cluster.subscribe`, `pubsub.subscribe` or `registry.watch`: a
/// process of this node that receives from the C node and sends into your subject. It ends by
/// itself when the subject's owner exits or the connection drops.
pub type Subscription

/// Cancel a subscription: the C node is told, then the relay process ends. Messages already
/// in the subject's mailbox stay there.
@external(erlang, "beamlet_gleam_ffi", "unsubscribe")
pub fn unsubscribe(subscription: Subscription) -> Nil

/// The process behind a subscription. Monitor it (`process.monitor`) to learn when the
/// subscription ends by itself, for example because the connection to the node dropped.
@external(erlang, "beamlet_gleam_ffi", "subscription_pid")
pub fn subscription_pid(subscription: Subscription) -> Pid

/// Start the `beamlet` OTP application (node tracking and the worker supervisor). Call it once
/// before using `beamlet/node.list`, `beamlet/node.monitor`, `beamlet/worker.start`, or the
/// cluster-wide lookups of `beamlet/registry` and `beamlet/global`.
@external(erlang, "beamlet_gleam_ffi", "start")
pub fn start() -> Result(Nil, String)

/// Make this VM a distributed node named `name@<short host>` with the given cookie, if it is not
/// one already (`gleam run` starts a VM without distribution); returns this node. EPMD must be
/// running (`epmd -daemon`).
@external(erlang, "beamlet_gleam_ffi", "start_distribution")
pub fn start_distribution(
  named name: String,
  cookie cookie: String,
) -> Result(Node, String)

/// `gen_server:call` the process registered as `service` on `node` and decode its reply with
/// `decoder`. The C node runs the call itself, so a missing service answers `Error(NoProc)` at
/// once, and `within` (milliseconds) is enforced by the C node.
pub fn call(
  on node: Node,
  to service: Service(message),
  message message: message,
  expecting decoder: Decoder(reply),
  within timeout: Int,
) -> Result(reply, CallError) {
  case raw_call(node, service.name, message, timeout) {
    Ok(reply) -> decode_reply(reply, decoder)
    Error(error) -> Error(error)
  }
}

@external(erlang, "beamlet_gleam_ffi", "call")
fn raw_call(
  node: Node,
  service: Atom,
  message: message,
  timeout: Int,
) -> Result(Dynamic, CallError)

/// Run `decoder` on a reply, a decoding failure becoming `Decode`.
@internal
pub fn decode_reply(
  reply: Dynamic,
  decoder: Decoder(a),
) -> Result(a, CallError) {
  case decode.run(reply, decoder) {
    Ok(value) -> Ok(value)
    Error(errors) -> Error(Decode(errors))
  }
}

/// `gen_server:cast` a message to the process registered as `service` on `node`. Fire and
/// forget, like `gen_server:cast`.
pub fn cast(
  on node: Node,
  to service: Service(message),
  message message: message,
) -> Nil {
  raw_cast(node, service.name, message)
}

@external(erlang, "beamlet_gleam_ffi", "cast")
fn raw_cast(node: Node, service: Atom, message: message) -> Nil
