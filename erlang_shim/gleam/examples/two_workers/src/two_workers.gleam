//// `gleam run` (with `epmd -daemon` running and BEAMLET_BIN pointing at the beamlet executable):
//// makes this VM a distributed node, starts two beamlet C workers under the beamlet
//// application's supervisor, calls their built-in `beamlet` service, shows the error for a
//// service that does not exist, lists the nodes and stops the workers.

import beamlet
import beamlet/node
import beamlet/worker
import gleam/erlang/atom
import gleam/int
import gleam/io
import gleam/list
import gleam/string

pub fn main() -> Nil {
  let assert Ok(Nil) = beamlet.start_distribution("gleam_example", "beamlet_example")
  let assert Ok(Nil) = beamlet.start()

  let assert Ok(a) =
    worker.new("gleam_worker_a")
    |> worker.role("agent")
    |> worker.cluster("demo")
    |> worker.start
  let assert Ok(b) =
    worker.new("gleam_worker_b")
    |> worker.role("gateway")
    |> worker.cluster("demo")
    |> worker.start
  io.println("started " <> a <> " and " <> b)

  list.each([a, b], fn(n) {
    // The built-in `beamlet` process answers `ping` with `pong`.
    case beamlet.call(n, "beamlet", atom.create("ping"), 1000) {
      Ok(reply) -> io.println(n <> " answered " <> string.inspect(reply))
      Error(error) -> io.println(n <> " failed: " <> string.inspect(error))
    }
    case node.info(n) {
      Ok(info) ->
        io.println(
          n
          <> ": role "
          <> info.role
          <> ", os pid "
          <> int.to_string(info.os_pid)
          <> ", "
          <> int.to_string(info.processes)
          <> " processes",
        )
      Error(error) -> io.println("info failed: " <> string.inspect(error))
    }
  })

  // A service nobody registered: the C node says so at once.
  let assert Error(beamlet.NoProc) = beamlet.call(a, "no_such_service", "hello", 1000)
  io.println("no_such_service -> NoProc")

  list.each(node.list(), fn(info) {
    io.println("connected: " <> info.node <> " (" <> info.role <> ", " <> info.cluster <> ")")
  })

  let assert Ok(Nil) = worker.stop(a)
  let assert Ok(Nil) = worker.stop(b)
  io.println("stopped")
}
