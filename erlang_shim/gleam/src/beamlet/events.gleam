//// A node's event log and audit trail (docs/health.md, "Events"): membership, leader,
//// check, alert and admin events, kept on disk across restarts.
////
//// ```gleam
//// let query =
////   events.query()
////   |> events.since(now - 3_600_000)
////   |> events.at_least(events.Warn)
////   |> events.limit(50)
//// let assert Ok(recent) = events.list(on: node, matching: query)
//// let assert Ok(everywhere) = events.list_cluster(via: node, matching: query)
//// ```

import beamlet.{type CallError, type Node}
import gleam/option.{type Option, None, Some}

pub type Severity {
  Info
  Warn
  Critical
}

/// One event, newest first in the lists below.
pub type Event {
  Event(
    id: Int,
    time_ms: Int,
    /// The node the event is about.
    node: String,
    /// "member", "leader", "check", "alert", "admin", "node", ...
    kind: String,
    severity: Severity,
    /// Who did it, for admin actions.
    who: Option(String),
    /// A JSON object, as text.
    body: String,
    /// The node whose log it came from.
    logged_by: Node,
  )
}

/// Which events to list. Build it with `query` and the setters below.
pub opaque type Query {
  Query(
    since_ms: Option(Int),
    until_ms: Option(Int),
    kind: Option(String),
    node: Option(String),
    severity: Option(Severity),
    limit: Option(Int),
  )
}

/// Every event (the node answers its newest 100 unless `limit` says otherwise).
pub fn query() -> Query {
  Query(
    since_ms: None,
    until_ms: None,
    kind: None,
    node: None,
    severity: None,
    limit: None,
  )
}

/// Events at or after `ms` (milliseconds since the epoch).
pub fn since(query: Query, ms: Int) -> Query {
  Query(..query, since_ms: Some(ms))
}

/// Events before `ms`.
pub fn until(query: Query, ms: Int) -> Query {
  Query(..query, until_ms: Some(ms))
}

/// Events of one kind ("member", "alert", "admin", ...).
pub fn of_kind(query: Query, kind: String) -> Query {
  Query(..query, kind: Some(kind))
}

/// Events about one node.
pub fn about(query: Query, node: String) -> Query {
  Query(..query, node: Some(node))
}

/// Events of this severity or worse (`Warn`: warn and critical).
pub fn at_least(query: Query, severity: Severity) -> Query {
  Query(..query, severity: Some(severity))
}

/// At most `n` events (1 to 100_000).
pub fn limit(query: Query, n: Int) -> Query {
  Query(..query, limit: Some(n))
}

/// `node`'s events matching `query`, newest first.
@external(erlang, "beamlet_gleam_ffi", "events_list")
pub fn list(on node: Node, matching query: Query) -> Result(List(Event), CallError)

/// Every active member's events matching `query` (asked through `node`'s member list), merged
/// newest first; `limit` applies to the merged list. Members that do not answer are left out.
@external(erlang, "beamlet_gleam_ffi", "events_list_cluster")
pub fn list_cluster(
  via node: Node,
  matching query: Query,
) -> Result(List(Event), CallError)
