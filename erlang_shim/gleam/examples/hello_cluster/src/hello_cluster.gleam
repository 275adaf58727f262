//// `gleam run` (with `epmd -daemon` running and BEAMLET_BIN pointing at the beamlet
//// executable): makes this VM a distributed node, starts two beamlet C workers under a
//// gleam_otp supervisor, calls them, looks at the cluster they form, watches its events,
//// registers and calls a service through the registry, and stops everything with the
//// supervisor. docs/gleam.md walks through this file.

import beamlet.{type Node}
import beamlet/cluster
import beamlet/health
import beamlet/node
import beamlet/pubsub
import beamlet/registry
import beamlet/worker
import gleam/dynamic/decode
import gleam/erlang/atom
import gleam/erlang/process
import gleam/float
import gleam/int
import gleam/io
import gleam/list
import gleam/option.{None, Some}
import gleam/otp/actor
import gleam/otp/static_supervisor.{type Supervisor}
import gleam/string

pub fn main() -> Nil {
  let assert Ok(me) =
    beamlet.start_distribution(named: "hello", cookie: "hello_cookie")
  let assert Ok(Nil) = beamlet.start()
  io.println("this node: " <> beamlet.node_name(me))

  let #(supervisor, a, b) = start_workers()
  call_workers(a, b)
  show_cluster(a)
  show_health(a)
  watch_events(a)
  use_registry(a)
  stop_all(supervisor, a)
}

/// Two C workers in the cluster "hello" under a one-for-one supervisor: `hello_b` joins
/// `hello_a`. The supervisor restarts a worker whose OS process dies.
pub fn start_workers() -> #(actor.Started(Supervisor), Node, Node) {
  let worker_a =
    worker.new("hello_a")
    |> worker.role(beamlet.Coordinator)
    |> worker.cluster("hello")
  let a = worker.node(worker_a)
  let worker_b =
    worker.new("hello_b")
    |> worker.role(beamlet.Agent)
    |> worker.cluster("hello")
    |> worker.join([a])
  let b = worker.node(worker_b)

  let assert Ok(supervisor) =
    static_supervisor.new(static_supervisor.OneForOne)
    |> static_supervisor.add(worker.supervised(worker_a))
    |> static_supervisor.add(worker.supervised(worker_b))
    |> static_supervisor.start
  io.println("started " <> show(a) <> " and " <> show(b) <> " under a supervisor")
  #(supervisor, a, b)
}

/// Calls: the reply is decoded by the decoder you pass, errors are `CallError`s.
pub fn call_workers(a: Node, b: Node) -> Nil {
  list.each([a, b], fn(n) {
    // The built-in `beamlet` process answers the atom `ping` with the atom `pong`.
    case
      beamlet.call(
        on: n,
        to: beamlet.builtin(),
        message: atom.create("ping"),
        expecting: atom.decoder(),
        within: 1000,
      )
    {
      Ok(reply) -> io.println(show(n) <> " answered " <> atom.to_string(reply))
      Error(error) -> io.println(show(n) <> " failed: " <> string.inspect(error))
    }
    let assert Ok(info) = node.info(of: n)
    io.println(
      show(n)
      <> ": role "
      <> beamlet.role_name(info.role)
      <> ", os pid "
      <> int.to_string(info.os_pid)
      <> ", up "
      <> int.to_string(info.uptime_ms)
      <> " ms",
    )
  })

  // A list reply, decoded as a list of atoms.
  let assert Ok(names) =
    beamlet.call(
      on: a,
      to: beamlet.builtin(),
      message: atom.create("registered"),
      expecting: decode.list(atom.decoder()),
      within: 1000,
    )
  io.println(
    "registered on "
    <> show(a)
    <> ": "
    <> string.join(list.map(names, atom.to_string), ", "),
  )

  // A service nobody registered: the C node says so at once.
  let nobody = beamlet.service(named: "no_such_service")
  let assert Error(beamlet.NoProc) =
    beamlet.call(
      on: a,
      to: nobody,
      message: "hello",
      expecting: decode.string,
      within: 1000,
    )
  io.println("no_such_service -> NoProc")

  // A reply the decoder does not accept.
  let assert Error(beamlet.Decode(_)) =
    beamlet.call(
      on: a,
      to: beamlet.builtin(),
      message: atom.create("ping"),
      expecting: decode.int,
      within: 1000,
    )
  io.println("pong decoded as an Int -> Decode error")
}

/// The cluster as a member sees it: members, their state, the leader.
pub fn show_cluster(a: Node) -> Nil {
  let assert Ok(members) = cluster.members(of: a)
  list.each(members, fn(member) {
    let kind = case member.kind {
      cluster.BeamletNode -> "C node"
      cluster.BeamNode -> "BEAM node"
    }
    io.println(
      "member "
      <> show(member.node)
      <> " ("
      <> kind
      <> ", "
      <> beamlet.role_name(member.role)
      <> "): "
      <> cluster.state_name(member.state),
    )
  })
  let assert Ok(status) = cluster.status(of: a)
  let leader = case status.leader {
    Some(leader) -> show(leader)
    None -> "none yet"
  }
  io.println(
    "cluster "
    <> status.cluster
    <> ": "
    <> int.to_string(status.size)
    <> " members, leader "
    <> leader,
  )
}

/// The machine a worker runs on, as its health sampler last saw it.
pub fn show_health(a: Node) -> Nil {
  let assert Ok(sample) = health.metrics(of: a)
  io.println(
    show(a)
    <> ": load "
    <> float.to_string(sample.load.load1)
    <> ", "
    <> float.to_string(sample.memory.available_percent)
    <> "% memory available, "
    <> int.to_string(sample.cpus)
    <> " CPUs, node RSS "
    <> int.to_string(sample.process.rss_bytes / 1024)
    <> " KiB",
  )
  list.each(sample.disks, fn(disk) {
    io.println(
      "  " <> disk.mount <> ": " <> float.to_string(disk.used_percent) <> "% used",
    )
  })
}

/// Cluster events into a Subject, and the same events as pub/sub messages on the topic
/// `cluster.events`: a third worker (under the application's own supervisor) joins and leaves
/// while we watch.
pub fn watch_events(a: Node) -> Nil {
  let events = process.new_subject()
  let assert Ok(subscription) = cluster.subscribe(to: a, into: events)
  let inbox = process.new_subject()
  let assert Ok(topic) =
    pubsub.subscribe(
      on: a,
      to: "cluster.events",
      qos: pubsub.AtMostOnce,
      into: inbox,
    )

  let assert Ok(c) =
    worker.new("hello_c")
    |> worker.cluster("hello")
    |> worker.join([a])
    |> worker.start
  print_events(events, 2000)
  let assert Ok(Nil) = worker.stop(c)
  print_events(events, 2000)
  print_messages(inbox)

  cluster.unsubscribe(subscription)
  pubsub.unsubscribe(topic)
}

fn print_events(events: process.Subject(cluster.Event), within: Int) -> Nil {
  case process.receive(events, within: within) {
    Ok(event) -> {
      io.println("event: " <> describe(event))
      print_events(events, within)
    }
    Error(Nil) -> Nil
  }
}

fn print_messages(inbox: process.Subject(pubsub.Message)) -> Nil {
  case process.receive(inbox, within: 0) {
    Ok(message) -> {
      case pubsub.decode_payload(message, cluster.event_decoder()) {
        Ok(event) -> io.println(message.topic <> ": " <> describe(event))
        Error(_) -> io.println(message.topic <> ": " <> string.inspect(message))
      }
      print_messages(inbox)
    }
    Error(Nil) -> Nil
  }
}

fn describe(event: cluster.Event) -> String {
  case event {
    cluster.NodeJoined(node:, role:) ->
      show(node) <> " joined as " <> beamlet.role_name(role)
    cluster.NodeStateChanged(node:, from:, to:) ->
      show(node)
      <> " "
      <> cluster.state_name(from)
      <> " -> "
      <> cluster.state_name(to)
    cluster.NodeLeft(node:) -> show(node) <> " left"
    cluster.LeaderChanged(leader: Some(leader), term:) ->
      "leader " <> show(leader) <> " (term " <> int.to_string(term) <> ")"
    cluster.LeaderChanged(leader: None, term:) ->
      "no leader (term " <> int.to_string(term) <> ")"
  }
}

/// The registry: `hello_a` offers its built-in process as the service "greeter"; anyone in the
/// cluster finds it and calls it, load-balanced over the healthy instances.
pub fn use_registry(a: Node) -> Nil {
  let assert Ok(id) =
    registry.register(
      on: a,
      instance: registry.new("greeter")
        |> registry.tags(["demo"])
        |> registry.served_by("beamlet"),
    )
  let instances = find_greeters(20)
  list.each(instances, fn(instance) {
    io.println(
      "greeter instance " <> instance.id <> " on " <> show(instance.node),
    )
  })
  let assert Ok(reply) =
    registry.call(
      service: "greeter",
      message: atom.create("ping"),
      expecting: atom.decoder(),
      within: 1000,
    )
  io.println("greeter answered " <> atom.to_string(reply))
  let assert Ok(Nil) = registry.deregister(on: a, id: id)
  Nil
}

// Registrations reach the other nodes within milliseconds: ask again until they do.
fn find_greeters(tries: Int) -> List(registry.Instance) {
  case registry.find(named: "greeter") {
    Ok([_, ..] as instances) -> instances
    _ if tries > 0 -> {
      process.sleep(100)
      find_greeters(tries - 1)
    }
    _ -> []
  }
}

/// Stopping the supervisor stops its C workers (SIGTERM, then their OS processes exit).
pub fn stop_all(supervisor: actor.Started(Supervisor), a: Node) -> Nil {
  let monitor = process.monitor(supervisor.pid)
  process.unlink(supervisor.pid)
  process.send_abnormal_exit(supervisor.pid, atom.create("shutdown"))
  let assert Ok(_down) =
    process.new_selector()
    |> process.select_specific_monitor(monitor, fn(down) { down })
    |> process.selector_receive(within: 30_000)
  case node.info(of: a) {
    Error(beamlet.NodeDown) -> io.println(show(a) <> " stopped with the supervisor")
    _ -> io.println(show(a) <> " still answers")
  }
}

fn show(n: Node) -> String {
  beamlet.node_name(n)
}
