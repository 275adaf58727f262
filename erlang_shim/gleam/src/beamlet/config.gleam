//// The cluster configuration (docs/configuration.md, "Cluster configuration"): a versioned
//// document of cluster-wide settings, changed through the leader among the coordinators and
//// held by every member.
////
//// ```gleam
//// let assert Ok(write) =
////   config.set(on: node, key: "log_level", value: "debug", by: "deploy script")
//// case write.state {
////   config.Committed -> Nil
////   // held by the leader only so far: ask later what it became
////   _ -> {
////     let assert Ok(status) =
////       config.status(of: node, version: write.version, term: write.term)
////     io.debug(status.state)
////   }
//// }
//// let subject = process.new_subject()
//// let assert Ok(subscription) = config.watch(on: node, into: subject)
//// let assert Ok(change) = process.receive(subject, 60_000)
//// ```

import beamlet.{type CallError, type Node, type Subscription}
import gleam/erlang/process.{type Subject}
import gleam/option.{type Option}

/// Whether a node runs a cluster-wide value: live keys at once, the others at its next start.
pub type Applied {
  Running
  RestartNeeded
}

/// One key set cluster-wide.
pub type Setting {
  Setting(key: String, value: String, live: Bool, applied: Applied)
}

/// The document as one node holds it.
pub type Document {
  Document(term: Int, version: Int, leader: Option(Node), settings: List(Setting))
}

/// What a write is: `Committed` (a majority of the coordinators hold it), `Pending` (the leader
/// holds it, a majority did not within 5 s), `Unchanged` (the value was set already). `status`
/// also answers `Lost` (a new leader rolled it back) and `Unknown` (not seen by that node).
pub type State {
  Committed
  Pending
  Unchanged
  Lost
  Unknown
}

/// The answer to a `set` or an `unset`: the version and term to ask `status` about.
pub type Write {
  Write(
    version: Int,
    term: Int,
    key: String,
    value: Option(String),
    live: Bool,
    state: State,
    holders: Int,
    needed: Int,
  )
}

/// One change, as `history` lists it and `watch` delivers it.
pub type Change {
  Change(
    version: Int,
    term: Int,
    key: String,
    old: Option(String),
    new: Option(String),
    who: String,
    at_ms: Int,
  )
}

/// What became of a write, as one node sees it.
pub type Status {
  Status(
    version: Int,
    state: State,
    holders: Int,
    needed: Int,
    current_version: Int,
  )
}

/// The cluster configuration as `node` holds it.
@external(erlang, "beamlet_gleam_ffi", "config_document")
pub fn document(of node: Node) -> Result(Document, CallError)

/// The cluster-wide value of `key`; `None` when it is not set cluster-wide.
@external(erlang, "beamlet_gleam_ffi", "config_get")
pub fn get(of node: Node, key key: String) -> Result(Option(String), CallError)

/// Set `key` cluster-wide as `who` (any member forwards to the leader). A value the
/// configuration file's rules refuse is `Error(Failed(message))` naming the key; nothing
/// changes then.
@external(erlang, "beamlet_gleam_ffi", "config_set")
pub fn set(
  on node: Node,
  key key: String,
  value value: String,
  by who: String,
) -> Result(Write, CallError)

/// Remove `key` from the cluster configuration: every member goes back to its own value.
@external(erlang, "beamlet_gleam_ffi", "config_unset")
pub fn unset(on node: Node, key key: String, by who: String) -> Result(Write, CallError)

/// The changes, newest first; `Some(key)`: only that key's.
@external(erlang, "beamlet_gleam_ffi", "config_history")
pub fn history(
  of node: Node,
  key key: Option(String),
) -> Result(List(Change), CallError)

/// What became of the write of `version` made in `term` (a `Write`'s fields).
@external(erlang, "beamlet_gleam_ffi", "config_status")
pub fn status(
  of node: Node,
  version version: Int,
  term term: Int,
) -> Result(Status, CallError)

/// Deliver every change `node` applies into `subject`, until `beamlet.unsubscribe`. A node
/// takes 256 watchers at most (`Error(Failed(message))` beyond).
@external(erlang, "beamlet_gleam_ffi", "config_watch")
pub fn watch(
  on node: Node,
  into subject: Subject(Change),
) -> Result(Subscription, CallError)
