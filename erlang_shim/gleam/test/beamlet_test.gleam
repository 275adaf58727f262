import beamlet/worker
import gleam/option.{None, Some}
import gleeunit

pub fn main() -> Nil {
  gleeunit.main()
}

pub fn options_builder_test() {
  let options =
    worker.new("w1")
    |> worker.role("gateway")
    |> worker.join(["a@host"])
    |> worker.start_timeout(9000)
  assert options.name == "w1"
  assert options.role == Some("gateway")
  assert options.cluster == None
  assert options.join == ["a@host"]
  assert options.start_timeout == 9000
}
