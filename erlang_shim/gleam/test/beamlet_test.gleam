//// Pure parts of the package (builders, decoding, names). The functions that talk to C nodes
//// are tested against real nodes by erlang_shim/test/gleam_run.sh in `make test`.

import beamlet
import beamlet/cluster
import beamlet/discovery
import beamlet/pubsub
import beamlet/registry
import beamlet/worker
import gleam/dict
import gleam/dynamic
import gleam/dynamic/decode
import gleam/erlang/atom
import gleam/option.{None, Some}
import gleeunit

pub fn main() -> Nil {
  gleeunit.main()
}

pub fn worker_options_test() {
  let options =
    worker.new("w1")
    |> worker.role(beamlet.Gateway)
    |> worker.cluster("demo")
    |> worker.start_timeout(9000)
  assert options.name == "w1"
  assert options.role == Some(beamlet.Gateway)
  assert options.cluster == Some("demo")
  assert options.binary == None
  assert options.start_timeout == 9000
}

pub fn registration_test() {
  let registration =
    registry.new("kv")
    |> registry.tags(["v2"])
    |> registry.served_by("kv_server")
    |> registry.address("10.0.0.1", 8080)
    |> registry.ttl(30_000)
  assert registration.name == "kv"
  assert registration.tags == ["v2"]
  assert dict.get(registration.metadata, "process") == Ok("kv_server")
  assert registration.port == 8080
  assert registration.ttl_ms == Some(30_000)
}

pub fn discovery_options_test() {
  let options =
    discovery.new()
    |> discovery.hosts(["h1"])
    |> discovery.pattern("^agent")
    |> discovery.interval(1000)
  assert options.hosts == ["h1"]
  assert options.local == True
  assert options.pattern == Some("^agent")
  assert options.interval == 1000
}

pub fn decode_reply_test() {
  assert beamlet.decode_reply(dynamic.int(3), decode.int) == Ok(3)
  let assert Error(beamlet.Decode([_, ..])) =
    beamlet.decode_reply(dynamic.string("x"), decode.int)
}

pub fn decode_payload_test() {
  let message =
    pubsub.Message(
      topic: "t",
      payload: dynamic.float(0.5),
      id: "id",
      priority: pubsub.Normal,
    )
  assert pubsub.decode_payload(message, decode.float) == Ok(0.5)
}

pub fn names_test() {
  assert beamlet.role_name(beamlet.Coordinator) == "coordinator"
  assert beamlet.role_name(beamlet.OtherRole("x")) == "x"
  assert cluster.state_name(cluster.Suspected) == "suspected"
  assert atom.to_string(beamlet.service_name(beamlet.service(named: "kv")))
    == "kv"
}

pub fn query_test() {
  let query =
    registry.query()
    |> registry.named("kv")
    |> registry.with_tags(["a", "b"])
    |> registry.with_any_tag(["c"])
    |> registry.with_health(registry.Passing)
    |> registry.with_metadata("zone", "eu")
  assert query.name == Some("kv")
  assert query.tags_all == ["a", "b"]
  assert query.tags_any == ["c"]
  assert query.health == Some(registry.Passing)
  assert dict.get(query.metadata, "zone") == Ok("eu")
}
