//// The cluster of C nodes, as one of its members sees it: members and their states, the
//// leader, health, and events delivered into a `Subject` so an actor can `select` on them.
////
//// ```gleam
//// let events = process.new_subject()
//// let assert Ok(subscription) = cluster.subscribe(to: node, into: events)
//// case process.receive(events, within: 5000) {
////   Ok(cluster.NodeStateChanged(node: n, to: cluster.Failed, ..)) -> todo
////   _ -> todo
//// }
//// cluster.unsubscribe(subscription)
//// ```

import beamlet.{type CallError, type Node, type Role, type Subscription}
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

/// A state as text (`"active"`, ...).
pub fn state_name(state: MemberState) -> String {
  case state {
    Joining -> "joining"
    Active -> "active"
    Suspected -> "suspected"
    Failed -> "failed"
    Leaving -> "leaving"
    Left -> "left"
  }
}

/// What kind of node a member is.
pub type Kind {
  /// A C node.
  BeamletNode
  /// A BEAM node connected to the cluster.
  BeamNode
}

/// One member.
pub type Member {
  Member(node: Node, role: Role, state: MemberState, kind: Kind)
}

/// Cluster name, size (members not left), leader and term, and whether a majority is reachable
/// (and, if there are coordinators, a leader exists).
pub type Status {
  Status(
    cluster: String,
    size: Int,
    leader: Option(Node),
    term: Int,
    healthy: Bool,
  )
}

/// The elected leader (if any) and the election term.
pub type Leader {
  Leader(node: Option(Node), term: Int)
}

/// What happened in the cluster. The node also publishes these on the pub/sub topic
/// `cluster.events`.
pub type Event {
  NodeJoined(node: Node, role: Role)
  NodeStateChanged(node: Node, from: MemberState, to: MemberState)
  NodeLeft(node: Node)
  LeaderChanged(leader: Option(Node), term: Int)
}

/// The members as `node` sees them.
@external(erlang, "beamlet_gleam_ffi", "cluster_members")
pub fn members(of node: Node) -> Result(List(Member), CallError)

/// Size, leader, term and health as `node` sees them.
@external(erlang, "beamlet_gleam_ffi", "cluster_status")
pub fn status(of node: Node) -> Result(Status, CallError)

/// The leader and term as `node` sees them.
@external(erlang, "beamlet_gleam_ffi", "cluster_leader")
pub fn leader(of node: Node) -> Result(Leader, CallError)

/// Deliver `node`'s cluster events into `subject` until `unsubscribe`, the subject's owner
/// exits, or the connection drops. A named subject must be registered
/// (`Error(UnregisteredSubject)` otherwise); events then go to whoever holds the name.
@external(erlang, "beamlet_gleam_ffi", "cluster_subscribe")
pub fn subscribe(
  to node: Node,
  into subject: Subject(Event),
) -> Result(Subscription, CallError)

/// Stop a subscription (`beamlet.unsubscribe`).
pub fn unsubscribe(subscription: Subscription) -> Nil {
  beamlet.unsubscribe(subscription)
}
