//// The cluster of C nodes, as one of its members sees it: members and their states, the
//// leader, health, and events delivered into a `Subject` so an actor can `select` on them.

import beamlet.{type CallError}
import gleam/erlang/process.{type Subject}
import gleam/option.{type Option}

/// A member's state in the cluster.
pub type MemberState {
  Joining
  Active
  Suspected
  Failed
  Leaving
  Left
}

/// One member. `kind` is "beamlet" for C nodes and "beam" for connected BEAM nodes.
pub type Member {
  Member(node: String, role: String, state: MemberState, kind: String)
}

/// Cluster name, size (members not left), leader and term, and whether a majority is reachable
/// (and, if there are coordinators, a leader exists).
pub type Status {
  Status(
    cluster: String,
    size: Int,
    leader: Option(String),
    term: Int,
    healthy: Bool,
  )
}

/// What happened in the cluster.
pub type Event {
  NodeJoined(node: String, role: String)
  NodeStateChanged(node: String, from: MemberState, to: MemberState)
  NodeLeft(node: String)
  LeaderChanged(leader: Option(String), term: Int)
}

/// The members as `node` sees them.
@external(erlang, "beamlet_gleam_ffi", "cluster_members")
pub fn members(node: String) -> Result(List(Member), CallError)

/// Size, leader, term and health as `node` sees them.
@external(erlang, "beamlet_gleam_ffi", "cluster_status")
pub fn status(node: String) -> Result(Status, CallError)

/// Deliver `node`'s cluster events into `subject` until the subject's owner exits or the
/// connection drops.
@external(erlang, "beamlet_gleam_ffi", "cluster_subscribe")
pub fn subscribe(node: String, subject: Subject(Event)) -> Result(Nil, CallError)
