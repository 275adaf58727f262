//// Service discovery across the cluster: register instances, find them by name and tags, and
//// call one healthy instance with load balancing and failover.

import beamlet.{type CallError}
import gleam/dict.{type Dict}
import gleam/dynamic.{type Dynamic}

/// Free-form key/value pairs on an instance.
pub type Metadata =
  Dict(String, String)

/// An instance's health. Calls go to `Passing` instances first, `Warning` ones only when none
/// passes, `Critical` never.
pub type Health {
  Passing
  Warning
  Critical
}

/// A registered instance, as the registry holds it.
pub type Service {
  Service(
    id: String,
    name: String,
    node: String,
    version: String,
    address: String,
    port: Int,
    tags: List(String),
    metadata: Metadata,
    health: Health,
  )
}

/// Register an instance of `name` on `node` (which owns it); metadata key "process" names the
/// registered process that answers calls (default: the service name). Returns its id.
@external(erlang, "beamlet_gleam_ffi", "registry_register")
pub fn register(
  node: String,
  name: String,
  tags: List(String),
  metadata: Metadata,
) -> Result(String, CallError)

/// Remove an instance registered on `node`.
@external(erlang, "beamlet_gleam_ffi", "registry_deregister")
pub fn deregister(node: String, id: String) -> Result(Nil, CallError)

/// Every instance of `name` in the cluster.
@external(erlang, "beamlet_gleam_ffi", "registry_find")
pub fn find(name: String) -> Result(List(Service), CallError)

/// A load-balanced call to a healthy instance of `service`, failing over on timeout or nodedown.
@external(erlang, "beamlet_gleam_ffi", "registry_call")
pub fn call(service: String, request: a, timeout: Int) -> Result(Dynamic, CallError)
