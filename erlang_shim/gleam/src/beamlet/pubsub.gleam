//// Publish/subscribe across the cluster's C nodes, with messages delivered into a `Subject` so
//// an actor can `select` on them.
////
//// ```gleam
//// let inbox = process.new_subject()
//// let assert Ok(subscription) =
////   pubsub.subscribe(on: node, to: "metrics.#", qos: pubsub.AtMostOnce, into: inbox)
//// let assert Ok(_id) =
////   pubsub.publish(on: node, topic: "metrics.cpu", payload: 0.5, priority: pubsub.Normal)
//// let assert Ok(message) = process.receive(inbox, within: 5000)
//// let assert Ok(cpu) = pubsub.decode_payload(message, decode.float)
//// pubsub.unsubscribe(subscription)
//// ```

import beamlet.{type CallError, type Node, type Subscription}
import gleam/dynamic.{type Dynamic}
import gleam/dynamic/decode.{type DecodeError, type Decoder}
import gleam/erlang/process.{type Subject}
import gleam/option.{type Option, None}

/// A message's priority in each subscriber's queue.
pub type Priority {
  High
  Normal
  Low
}

/// Delivery guarantee of a subscription. A durable subscription (at least once, exactly once)
/// has a name, unique per node: the publishers keep its messages under that name while the
/// subscriber is away, and a new subscription with the same name takes them over. Durable
/// subscriptions need the node's `data_dir`.
pub type Qos {
  AtMostOnce
  AtLeastOnce(name: String)
  ExactlyOnce(name: String)
}

/// A delivered message. `id` is unique per publish.
pub type Message {
  Message(topic: String, payload: Dynamic, id: String, priority: Priority)
}

/// How to publish: priority, an optional time to live, and whether durable subscriptions get
/// it from the outbox (kept until they acknowledge, across restarts).
pub type Publish {
  Publish(priority: Priority, ttl_ms: Option(Int), durable: Bool)
}

/// Deliver messages whose topic matches `pattern` (`*` one level, `#` the rest) into `subject`
/// until `unsubscribe`, the subject's owner exits, or the connection drops. At-least-once
/// deliveries are acknowledged once they are in the subject owner's mailbox. A named subject
/// must be registered (`Error(UnregisteredSubject)` otherwise).
@external(erlang, "beamlet_gleam_ffi", "pubsub_subscribe")
pub fn subscribe(
  on node: Node,
  to pattern: String,
  qos qos: Qos,
  into subject: Subject(Message),
) -> Result(Subscription, CallError)

/// Stop a subscription (`beamlet.unsubscribe`).
pub fn unsubscribe(subscription: Subscription) -> Nil {
  beamlet.unsubscribe(subscription)
}

/// Publish `payload` on `topic` through `node` with a priority; returns the message id.
pub fn publish(
  on node: Node,
  topic topic: String,
  payload payload: a,
  priority priority: Priority,
) -> Result(String, CallError) {
  publish_with(
    on: node,
    topic: topic,
    payload: payload,
    options: Publish(priority: priority, ttl_ms: None, durable: False),
  )
}

/// Publish with every option.
@external(erlang, "beamlet_gleam_ffi", "pubsub_publish")
pub fn publish_with(
  on node: Node,
  topic topic: String,
  payload payload: a,
  options options: Publish,
) -> Result(String, CallError)

/// Decode a message's payload.
pub fn decode_payload(
  message: Message,
  decoder: Decoder(a),
) -> Result(a, List(DecodeError)) {
  decode.run(message.payload, decoder)
}
