//// Publish/subscribe across the cluster's C nodes, with messages delivered into a `Subject` so
//// an actor can `select` on them.

import beamlet.{type CallError}
import gleam/dynamic.{type Dynamic}
import gleam/erlang/process.{type Subject}

/// A message's priority in each subscriber's queue.
pub type Priority {
  High
  Normal
  Low
}

/// Delivery guarantee of a subscription. A durable subscription (at least once, exactly once)
/// has a name, unique per node: the publishers keep its messages under that name while the
/// subscriber is away, and a new subscription with the same name takes them over.
pub type Qos {
  AtMostOnce
  AtLeastOnce(name: String)
  ExactlyOnce(name: String)
}

/// A delivered message. `id` is unique per publish.
pub type Message {
  Message(topic: String, payload: Dynamic, id: String, priority: Priority)
}

/// Deliver messages whose topic matches `pattern` (`*` one level, `#` the rest) into `subject`
/// until its owner exits. Durable deliveries are acknowledged once handed to the subject.
/// Returns the subscription id on `node`.
@external(erlang, "beamlet_gleam_ffi", "pubsub_subscribe")
pub fn subscribe(
  node: String,
  pattern: String,
  qos: Qos,
  subject: Subject(Message),
) -> Result(Int, CallError)

/// Publish `payload` on `topic` through `node`; returns the message id.
@external(erlang, "beamlet_gleam_ffi", "pubsub_publish")
pub fn publish(
  node: String,
  topic: String,
  payload: a,
  priority: Priority,
) -> Result(String, CallError)
