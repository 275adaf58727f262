# bl_spawn_elixir.exs - Elixir as a client of C nodes (run by bl_spawn_tests with the node names):
# :rpc.call, :rpc.block_call, :erpc.call/multicall/cast, funs (&:erlang.node/0 runs, an anonymous fn
# is undef as on a node without its module), Node.spawn, Process.monitor, GenServer.call to a
# missing name. Prints "ELIXIR ALL OK" when every check held; raises (non-zero exit) otherwise.
defmodule BlSpawnElixir do
  # receives live in their own functions (OTP 25's compiler trips over a monitor ref received
  # in the same function that made it, in scripts compiled by Elixir 1.14)
  def await_down(ref), do: receive(do: ({:DOWN, ^ref, :process, _, why} -> why), after: (5000 -> :none))
  def await(msg), do: receive(do: (^msg -> :got), after: (5000 -> :none))
  # a fn of this module (which only this node has)
  def local_fun, do: fn -> :ok end
end

[w, b] = Enum.map(System.argv(), &String.to_atom/1)
true = Node.connect(w)
true = Node.connect(b)

check = fn name, got, want ->
  if got == want do
    IO.puts("elixir ok: #{name}")
  else
    raise "elixir #{name}: got #{inspect(got)}, want #{inspect(want)}"
  end
end

check.("rpc.call", :rpc.call(w, :tw, :add, [40, 2]), 42)
check.("rpc.call node", :rpc.call(b, :erlang, :node, []), b)

check.("rpc.call undef", match?({:badrpc, {:EXIT, {:undef, [{:tw, :nope, [], []}]}}},
       :rpc.call(w, :tw, :nope, [])), true)

check.("erpc.call", :erpc.call(w, :tw, :echo, [%{"k" => [1, 2]}]), %{"k" => [1, 2]})

undef =
  try do
    :erpc.call(w, :tw, :nope, [1])
  catch
    :error, {:exception, :undef, [{:tw, :nope, [1], []}]} -> :undef_raised
  end

check.("erpc.call undef", undef, :undef_raised)

timeout =
  try do
    :erpc.call(w, :tw, :later, [3000, :x], 200)
  catch
    :error, {:erpc, :timeout} -> :timed_out
  end

check.("erpc.call timeout", timeout, :timed_out)
check.("erpc.call &:erlang.node/0", :erpc.call(w, &:erlang.node/0), w)
check.("rpc.call &:erlang.apply/2", :rpc.call(b, :erlang, :apply, [&:erlang.node/0, []]), b)

fun = BlSpawnElixir.local_fun()

fn_undef =
  try do
    :erpc.call(w, fun)
  catch
    :error, {:exception, :undef, [{^fun, [], []}, {:erlang, :apply, 2, []}]} -> :undef_raised
  end

check.("erpc.call fn undef", fn_undef, :undef_raised)

check.("rpc.call fn undef", :rpc.call(w, :erlang, :apply, [fun, []]),
       {:badrpc, {:EXIT, {:undef, [{fun, [], []}, {:erlang, :apply, 2, []}]}}})

check.("rpc.block_call", :rpc.block_call(w, :tw, :add, [40, 2]), 42)
check.("rpc.block_call undef", :rpc.block_call(b, :nope, :f, [1]),
       {:badrpc, {:EXIT, {:undef, [{:nope, :f, [1], []}]}}})

{_, fref} = Node.spawn_monitor(w, fun)
check.("Node.spawn_monitor fn", BlSpawnElixir.await_down(fref), {:undef, [{fun, [], []}]})
{_, eref} = Node.spawn_monitor(w, &:erlang.node/0)
check.("Node.spawn_monitor &:erlang.node/0", BlSpawnElixir.await_down(eref), :normal)
check.("erpc.multicall", :erpc.multicall([w, b], :erlang, :node, []), [{:ok, w}, {:ok, b}])

:ok = :erpc.cast(w, :tw, :notify, [self(), :from_cast])
check.("erpc.cast", BlSpawnElixir.await(:from_cast), :got)

pid = Node.spawn(w, :tw, :wait, [])
ref = Process.monitor(pid)
Process.exit(pid, :stop_it)
check.("monitor pid", BlSpawnElixir.await_down(ref), :stop_it)

ref2 = Process.monitor({:no_such_name, w})
check.("monitor name", BlSpawnElixir.await_down(ref2), :noproc)

{t, res} =
  :timer.tc(fn ->
    try do
      GenServer.call({:no_such_name, b}, :hi, 10000)
    catch
      :exit, {:noproc, _} -> :noproc
    end
  end)

check.("GenServer.call missing", res, :noproc)
check.("GenServer.call missing fast", t < 1_000_000, true)
check.("GenServer.call beamlet", GenServer.call({:beamlet, b}, :ping), :pong)
IO.puts("ELIXIR ALL OK")
