//// A node's health sample: CPU, load, memory, filesystems, network and the node's own process,
//// read by its `beamlet_health` process every `health_interval_ms` (docs/health.md).
////
//// ```gleam
//// let assert Ok(sample) = health.metrics(of: node)
//// io.println(float.to_string(sample.load.load1))
//// ```

import beamlet.{type CallError, type Node}
import gleam/dynamic.{type Dynamic}

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
