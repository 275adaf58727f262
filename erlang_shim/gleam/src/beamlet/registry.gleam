//// Service discovery across the cluster: register instances, find them by name, watch changes,
//// and call one healthy instance with load balancing and failover.
////
//// ```gleam
//// let assert Ok(id) =
////   registry.register(
////     on: node,
////     instance: registry.new("kv") |> registry.tags(["v2"]) |> registry.served_by("kv"),
////   )
//// let assert Ok(instances) = registry.find(named: "kv")
//// let assert Ok(reply) =
////   registry.call(
////     service: "kv",
////     message: #(atom.create("get"), "key"),
////     expecting: decode.string,
////     within: 1000,
////   )
//// ```

import beamlet.{type CallError, type Node, type Subscription}
import gleam/dict.{type Dict}
import gleam/dynamic.{type Dynamic}
import gleam/dynamic/decode.{type Decoder}
import gleam/erlang/process.{type Subject}
import gleam/option.{type Option, None, Some}

/// An instance's health. Calls go to `Passing` instances first, `Warning` ones only when none
/// passes, `Critical` never.
pub type Health {
  Passing
  Warning
  Critical
}

/// A registered instance, as the registry holds it. `node` owns it (TTL, health, removal when
/// the node fails).
pub type Instance {
  Instance(
    id: String,
    name: String,
    node: Node,
    version: String,
    address: String,
    port: Int,
    tags: List(String),
    metadata: Dict(String, String),
    health: Health,
  )
}

/// An instance to register. Build it with `new` and the setters below.
pub type Registration {
  Registration(
    name: String,
    version: String,
    address: String,
    port: Int,
    tags: List(String),
    metadata: Dict(String, String),
    ttl_ms: Option(Int),
  )
}

/// A change seen by `watch`.
pub type Event {
  Added(instance: Instance)
  Removed(instance: Instance)
  HealthChanged(instance: Instance)
}

/// An instance of the service `name` with no version, address, port, tags or metadata, and no
/// TTL.
pub fn new(name: String) -> Registration {
  Registration(
    name: name,
    version: "",
    address: "",
    port: 0,
    tags: [],
    metadata: dict.new(),
    ttl_ms: None,
  )
}

pub fn version(registration: Registration, version: String) -> Registration {
  Registration(..registration, version: version)
}

pub fn address(
  registration: Registration,
  address: String,
  port: Int,
) -> Registration {
  Registration(..registration, address: address, port: port)
}

pub fn tags(registration: Registration, tags: List(String)) -> Registration {
  Registration(..registration, tags: tags)
}

pub fn metadata(
  registration: Registration,
  metadata: Dict(String, String),
) -> Registration {
  Registration(..registration, metadata: metadata)
}

/// The registered process that answers `call`s for this instance on its node (metadata key
/// `process`; default: the service name).
pub fn served_by(registration: Registration, name: String) -> Registration {
  Registration(
    ..registration,
    metadata: dict.insert(registration.metadata, "process", name),
  )
}

/// The instance goes away unless renewed within `ms` milliseconds.
pub fn ttl(registration: Registration, ms: Int) -> Registration {
  Registration(..registration, ttl_ms: Some(ms))
}

/// A search of the registry: every condition set must hold. Build it with `query` and the
/// setters below.
pub type Query {
  Query(
    name: Option(String),
    tags_all: List(String),
    tags_any: List(String),
    health: Option(Health),
    metadata: Dict(String, String),
  )
}

/// A query matching every instance.
pub fn query() -> Query {
  Query(
    name: None,
    tags_all: [],
    tags_any: [],
    health: None,
    metadata: dict.new(),
  )
}

/// Instances of the service `name`.
pub fn named(query: Query, name: String) -> Query {
  Query(..query, name: Some(name))
}

/// Instances with every one of `tags`.
pub fn with_tags(query: Query, tags: List(String)) -> Query {
  Query(..query, tags_all: tags)
}

/// Instances with at least one of `tags`.
pub fn with_any_tag(query: Query, tags: List(String)) -> Query {
  Query(..query, tags_any: tags)
}

/// Instances in this health state.
pub fn with_health(query: Query, health: Health) -> Query {
  Query(..query, health: Some(health))
}

/// Instances whose metadata has `key` set to `value`.
pub fn with_metadata(query: Query, key: String, value: String) -> Query {
  Query(..query, metadata: dict.insert(query.metadata, key, value))
}

/// The instances matching `query` in the cluster, asked of any connected beamlet node.
@external(erlang, "beamlet_gleam_ffi", "registry_search")
pub fn search(matching query: Query) -> Result(List(Instance), CallError)

/// The instances matching `query` as `node` sees them.
@external(erlang, "beamlet_gleam_ffi", "registry_search_on")
pub fn search_on(
  node node: Node,
  matching query: Query,
) -> Result(List(Instance), CallError)

/// Register an instance on `node` (which owns it); returns its id.
@external(erlang, "beamlet_gleam_ffi", "registry_register")
pub fn register(
  on node: Node,
  instance registration: Registration,
) -> Result(String, CallError)

/// Remove an instance registered on `node`.
@external(erlang, "beamlet_gleam_ffi", "registry_deregister")
pub fn deregister(on node: Node, id id: String) -> Result(Nil, CallError)

/// Every instance of `name` in the cluster, asked of any connected beamlet node (needs
/// `beamlet.start()`).
@external(erlang, "beamlet_gleam_ffi", "registry_find")
pub fn find(named name: String) -> Result(List(Instance), CallError)

/// Every instance of `name` as `node` sees it (every node holds the whole set).
@external(erlang, "beamlet_gleam_ffi", "registry_find_on")
pub fn find_on(node node: Node, named name: String) -> Result(List(Instance), CallError)

/// A load-balanced call to a healthy instance of `service`, failing over to another one on
/// timeout or node down, through any connected beamlet node; the reply decoded with `decoder`.
pub fn call(
  service name: String,
  message message: message,
  expecting decoder: Decoder(reply),
  within timeout: Int,
) -> Result(reply, CallError) {
  case raw_call(name, message, timeout) {
    Ok(reply) -> beamlet.decode_reply(reply, decoder)
    Error(error) -> Error(error)
  }
}

@external(erlang, "beamlet_gleam_ffi", "registry_call")
fn raw_call(
  service: String,
  message: message,
  timeout: Int,
) -> Result(Dynamic, CallError)

/// Deliver `node`'s registry changes into `subject` until `unsubscribe`, the subject's owner
/// exits, or the connection drops.
@external(erlang, "beamlet_gleam_ffi", "registry_watch")
pub fn watch(
  on node: Node,
  into subject: Subject(Event),
) -> Result(Subscription, CallError)

/// Stop a watch (`beamlet.unsubscribe`).
pub fn unsubscribe(subscription: Subscription) -> Nil {
  beamlet.unsubscribe(subscription)
}
