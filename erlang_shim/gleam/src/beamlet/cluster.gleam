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
import gleam/dynamic/decode.{type Decoder}
import gleam/erlang/atom
import gleam/erlang/process.{type Subject}
import gleam/option.{type Option, None, Some}

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

/// Decodes the payload of a pub/sub message on the topic `cluster.events` (a map the node
/// publishes for each event `subscribe` delivers), for `pubsub.decode_payload`.
pub fn event_decoder() -> Decoder(Event) {
  use kind <- decode.field(atom.create("event"), atom.decoder())
  case atom.to_string(kind) {
    "node_joined" -> {
      use n <- decode.field(atom.create("node"), beamlet.node_decoder())
      use role <- decode.field(atom.create("role"), decode.string)
      decode.success(NodeJoined(node: n, role: beamlet.role_from_name(role)))
    }
    "node_state_changed" -> {
      use n <- decode.field(atom.create("node"), beamlet.node_decoder())
      use from <- decode.field(atom.create("from"), state_decoder())
      use to <- decode.field(atom.create("to"), state_decoder())
      decode.success(NodeStateChanged(node: n, from: from, to: to))
    }
    "node_left" -> {
      use n <- decode.field(atom.create("node"), beamlet.node_decoder())
      decode.success(NodeLeft(node: n))
    }
    "leader_changed" -> {
      use has_leader <- decode.field(atom.create("has_leader"), decode.bool)
      use n <- decode.field(atom.create("node"), beamlet.node_decoder())
      use term <- decode.field(atom.create("term"), decode.int)
      let leader = case has_leader {
        True -> Some(n)
        False -> None
      }
      decode.success(LeaderChanged(leader: leader, term: term))
    }
    _ -> decode.failure(LeaderChanged(leader: None, term: 0), "cluster event")
  }
}

fn state_decoder() -> Decoder(MemberState) {
  use name <- decode.then(atom.decoder())
  case atom.to_string(name) {
    "joining" -> decode.success(Joining)
    "active" -> decode.success(Active)
    "suspected" -> decode.success(Suspected)
    "failed" -> decode.success(Failed)
    "leaving" -> decode.success(Leaving)
    "left" -> decode.success(Left)
    _ -> decode.failure(Failed, "member state")
  }
}
