//// A node's health sample: CPU, load, memory, filesystems, network and the node's own process,
//// read by its `beamlet_health` process every `health_interval_ms` (docs/health.md); the
//// cluster's health score and status, maintenance mode, health checks and metrics history.
//// Alerts are in `beamlet/alerts`, the event log in `beamlet/events`.
////
//// ```gleam
//// let assert Ok(sample) = health.metrics(of: node)
//// io.println(float.to_string(sample.load.load1))
//// let assert Ok(cluster) = health.cluster(of: node)
//// case cluster.status {
////   health.Active -> Nil
////   _ -> io.println("score " <> float.to_string(cluster.score))
//// }
//// let assert Ok(Nil) = health.set_maintenance(of: node, on: True, by: "me")
//// let assert Ok(history) =
////   health.history(of: node, metric: "load.load1", since_ms: now - 3_600_000)
//// ```

import beamlet.{type CallError, type Node}
import beamlet/registry.{type Health}
import gleam/dynamic.{type Dynamic}
import gleam/option.{type Option}

/// The latest sample. Pressure stall figures, disk I/O and CPU time per mode are in
/// `raw_metrics`.
pub type Metrics {
  Metrics(
    node: Node,
    time_ms: Int,
    interval_ms: Int,
    /// Busy percent of all CPUs since the previous sample.
    cpu_percent: Float,
    cpus: Int,
    load: Load,
    memory: Memory,
    disks: List(Disk),
    network: List(Interface),
    uptime_s: Float,
    process: OwnProcess,
  )
}

/// `/proc/loadavg`.
pub type Load {
  Load(load1: Float, load5: Float, load15: Float, running: Int, tasks: Int)
}

/// `/proc/meminfo`; `used_bytes` is what `free` calls used.
pub type Memory {
  Memory(
    total_bytes: Int,
    available_bytes: Int,
    used_bytes: Int,
    free_bytes: Int,
    available_percent: Float,
    swap_total_bytes: Int,
    swap_used_bytes: Int,
  )
}

/// A real filesystem (as `df` lists them).
pub type Disk {
  Disk(
    mount: String,
    device: String,
    fstype: String,
    size_bytes: Int,
    avail_bytes: Int,
    used_percent: Float,
  )
}

/// A network interface; rates since the previous sample.
pub type Interface {
  Interface(
    name: String,
    rx_bytes: Int,
    tx_bytes: Int,
    rx_bytes_per_s: Float,
    tx_bytes_per_s: Float,
  )
}

/// The beamlet node's own OS process.
pub type OwnProcess {
  OwnProcess(
    rss_bytes: Int,
    fds: Int,
    threads: Int,
    connections: Int,
    queue_bytes: Int,
  )
}

/// The node's latest sample (the first call after the node starts waits for its first one).
@external(erlang, "beamlet_gleam_ffi", "health_metrics")
pub fn metrics(of node: Node) -> Result(Metrics, CallError)

/// The whole sample as the node sends it (a map with atom keys), for your own decoders.
@external(erlang, "beamlet_gleam_ffi", "health_raw_metrics")
pub fn raw_metrics(of node: Node) -> Result(Dynamic, CallError)

/// The node's sampling interval in milliseconds.
@external(erlang, "beamlet_gleam_ffi", "health_interval")
pub fn interval(of node: Node) -> Result(Int, CallError)

/// The cluster's status (docs/health.md has the rules).
pub type ClusterStatus {
  /// Quorum, a leader where one is needed, nothing critical, score at least 0.8.
  Active
  /// A member suspected or failed, no leader, something critical, or a score below 0.8.
  Degraded
  /// Otherwise fine, but a member is in maintenance.
  Maintenance
  /// No quorum.
  Offline
}

/// A member's status from the thresholds on its metrics.
pub type NodeStatus {
  Healthy
  Warning
  Critical
  /// No recent word from the member.
  Unknown
}

/// The cluster's health as the asked node computes it (every node computes the same).
pub type ClusterHealth {
  ClusterHealth(
    /// 0.0 to 1.0: 0.4 availability + 0.3 node health + 0.3 services, capped without quorum
    /// or leader.
    score: Float,
    status: ClusterStatus,
    leader: Option(Node),
    term: Int,
    nodes: List(NodeHealth),
    recommendations: List(Recommendation),
  )
}

/// One member as the cluster's health sees it.
pub type NodeHealth {
  NodeHealth(
    node: Node,
    role: String,
    /// The membership state: "joining", "active", "suspected", "failed".
    state: String,
    status: NodeStatus,
    in_maintenance: Bool,
    /// Why it is not healthy (`/var is 93% full (warning at 90%)`).
    reasons: List(String),
  )
}

/// What to do about something, with what triggered it.
pub type Recommendation {
  Recommendation(
    severity: String,
    node: String,
    condition: String,
    action: String,
  )
}

/// A node's maintenance mode.
pub type MaintenanceMode {
  MaintenanceMode(on: Bool, by: Option(String), since_ms: Int)
}

/// The kind of a health check.
pub type CheckKind {
  Http
  Tcp
  Command
}

/// A health check of a node (config key `health_checks`).
pub type Check {
  Check(
    name: String,
    kind: CheckKind,
    /// The URL, `IP:PORT` or the command line.
    target: String,
    /// The registry entries whose health follows it (an entry id or a service name).
    service: Option(String),
    /// `None` until its first result.
    status: Option(Health),
    output: String,
    last_ms: Int,
    changed_ms: Int,
    runs: Int,
  )
}

/// One point of a metric's history: a raw sample (min = avg = max) or a rollup.
pub type Point {
  Point(time_ms: Int, min: Float, avg: Float, max: Float)
}

/// A metric's history on one node.
pub type History {
  History(
    metric: String,
    /// 0 for raw samples, 60_000 or 3_600_000 for rollups.
    resolution_ms: Int,
    points: List(Point),
  )
}

/// The cluster's health as `node` computes it.
@external(erlang, "beamlet_gleam_ffi", "health_cluster")
pub fn cluster(of node: Node) -> Result(ClusterHealth, CallError)

/// Put `node` in maintenance (`on: True`) or take it out; `by` is recorded in its audit trail.
/// A node in maintenance raises no alerts and its registry entries are not chosen by service
/// calls and lookups until maintenance ends.
@external(erlang, "beamlet_gleam_ffi", "health_set_maintenance")
pub fn set_maintenance(
  of node: Node,
  on on: Bool,
  by who: String,
) -> Result(Nil, CallError)

/// `node`'s maintenance mode.
@external(erlang, "beamlet_gleam_ffi", "health_maintenance")
pub fn maintenance(of node: Node) -> Result(MaintenanceMode, CallError)

/// `node`'s health checks.
@external(erlang, "beamlet_gleam_ffi", "health_checks")
pub fn checks(of node: Node) -> Result(List(Check), CallError)

/// A metric's history on `node` since `since_ms` (milliseconds since the epoch), oldest first.
/// `Error(Failed("no_store"))` when the node keeps no history (`health_store false`).
@external(erlang, "beamlet_gleam_ffi", "health_history")
pub fn history(
  of node: Node,
  metric metric: String,
  since_ms since: Int,
) -> Result(History, CallError)

/// The metrics `node` recorded since `since_ms`.
@external(erlang, "beamlet_gleam_ffi", "health_metric_names")
pub fn metric_names(
  of node: Node,
  since_ms since: Int,
) -> Result(List(String), CallError)

/// A metric on every active member (asked through `node`'s member list), merged by time, oldest
/// first. Members that do not answer are left out.
@external(erlang, "beamlet_gleam_ffi", "health_cluster_history")
pub fn cluster_history(
  via node: Node,
  metric metric: String,
  since_ms since: Int,
) -> Result(List(#(Node, Point)), CallError)
