//// The cluster's alerts (docs/health.md, "Alerts"): decided once per cluster by its leader
//// from the rules (built-in ones and `alert_rules`), the same on every member.
////
//// ```gleam
//// let assert Ok(firing) = alerts.list(on: node)
//// let assert Ok(Nil) = alerts.acknowledge(on: node, id: 3, by: "me")
//// let subject = process.new_subject()
//// let assert Ok(subscription) = alerts.subscribe(on: node, into: subject)
//// let assert Ok(alert) = process.receive(subject, 60_000)
//// ```

import beamlet.{type CallError, type Node, type Subscription}
import gleam/erlang/process.{type Subject}
import gleam/option.{type Option}

pub type Severity {
  Warning
  Critical
}

/// `Pending` while the rule's for-duration runs, then `Firing`, then `Resolved` (kept an hour).
pub type State {
  Pending
  Firing
  Resolved
}

/// Who acknowledged an alert, and when.
pub type Ack {
  Ack(by: String, at_ms: Int)
}

/// One alert: one per rule, node and instance (a mount, a member, a check).
pub type Alert {
  Alert(
    id: Int,
    rule: String,
    node: String,
    instance: String,
    severity: Severity,
    state: State,
    value: Float,
    threshold: Float,
    summary: String,
    since_ms: Int,
    fired_ms: Int,
    resolved_ms: Int,
    acked: Option(Ack),
  )
}

/// Every alert of the cluster: pending, firing, and those resolved in the last hour.
@external(erlang, "beamlet_gleam_ffi", "alerts_list")
pub fn list(on node: Node) -> Result(List(Alert), CallError)

/// Acknowledge alert `id` (on any member); the first acknowledgement counts.
/// `Error(NotFound)` when there is no such alert.
@external(erlang, "beamlet_gleam_ffi", "alerts_acknowledge")
pub fn acknowledge(
  on node: Node,
  id id: Int,
  by who: String,
) -> Result(Nil, CallError)

/// Deliver every change of an alert (firing, acknowledged, resolved) into `subject`, from the
/// pub/sub topic `cluster.alerts` of `node`, until `beamlet.unsubscribe`.
@external(erlang, "beamlet_gleam_ffi", "alerts_subscribe")
pub fn subscribe(
  on node: Node,
  into subject: Subject(Alert),
) -> Result(Subscription, CallError)
