//// Tasks on a beamlet cluster (docs/tasks.md): submit work to the dispatcher the leader among
//// the coordinators runs, follow it, cancel it, and handle a task type in Gleam.
////
//// ```gleam
//// let assert Ok(id) =
////   task.submit(
////     on: node,
////     task: task.new(of: "echo") |> task.payload(#("hello", 1)) |> task.retries(2),
////   )
//// let assert Ok(done) = task.wait(on: node, id: id, within: 5000)
//// let assert task.Succeeded = done.state
////
//// let assert Ok(_pid) =
////   task.handle(on: agent, kind: "double", with: fn(job) {
////     case decode.run(job.payload, decode.int) {
////       Ok(n) -> Ok(n * 2)
////       Error(_) -> Error("not a number")
////     }
////   })
//// ```
////
//// A submit is answered once a majority of the coordinators hold the task; execution is at
//// least once, the result of a task id is recorded once.

import beamlet.{type CallError, type Node}
import gleam/dynamic.{type Dynamic}
import gleam/erlang/process.{type Pid}
import gleam/option.{type Option, None, Some}

/// Where a task is. The last four are final.
pub type State {
  Queued
  Assigned
  Running
  Succeeded
  Failed
  Cancelled
  TimedOut
}

/// The order queued tasks are placed in (then oldest first).
pub type Priority {
  High
  Normal
  Low
}

/// A task to submit: build it with `new` and the setters below.
pub opaque type Submission {
  Submission(
    kind: String,
    payload: Option(Dynamic),
    capabilities: List(String),
    priority: Priority,
    timeout_ms: Option(Int),
    retries: Int,
    idempotency_key: Option(String),
    trace_id: Option(String),
    queue_timeout_ms: Option(Int),
  )
}

/// A task as the leader holds it.
pub type Task {
  Task(
    id: String,
    kind: String,
    state: State,
    attempt: Int,
    agent: Option(Node),
    trace_id: String,
    result: Option(Dynamic),
    error: Option(Dynamic),
    submitted_ms: Int,
    updated_ms: Int,
  )
}

/// One attempt of a task, as a handler gets it.
pub type Job {
  Job(id: String, attempt: Int, payload: Dynamic, trace_id: String)
}

/// A task of type `kind` with no payload, no required capability, normal priority, the node's
/// default timeout (60 s) and no retry.
pub fn new(of kind: String) -> Submission {
  Submission(
    kind: kind,
    payload: None,
    capabilities: [],
    priority: Normal,
    timeout_ms: None,
    retries: 0,
    idempotency_key: None,
    trace_id: None,
    queue_timeout_ms: None,
  )
}

/// Any value: it reaches the handler as it is.
pub fn payload(submission: Submission, payload: a) -> Submission {
  Submission(..submission, payload: Some(to_dynamic(payload)))
}

/// Only agents with this capability (their `capabilities` config) may run it; call it again
/// for more.
pub fn require(submission: Submission, capability: String) -> Submission {
  Submission(
    ..submission,
    capabilities: [capability, ..submission.capabilities],
  )
}

pub fn priority(submission: Submission, priority: Priority) -> Submission {
  Submission(..submission, priority: priority)
}

/// Each attempt is stopped after `ms` milliseconds.
pub fn timeout(submission: Submission, ms: Int) -> Submission {
  Submission(..submission, timeout_ms: Some(ms))
}

/// Fail the task with the reason `queue_timeout` if no agent took it within `ms` milliseconds
/// (0: it may wait forever); the leader's `task_queue_timeout_ms` otherwise.
pub fn queue_timeout(submission: Submission, ms: Int) -> Submission {
  Submission(..submission, queue_timeout_ms: Some(ms))
}

/// Attempts after the first one that may fail.
pub fn retries(submission: Submission, times: Int) -> Submission {
  Submission(..submission, retries: times)
}

/// A second submit with the same key answers the first task's id.
pub fn idempotency_key(submission: Submission, key: String) -> Submission {
  Submission(..submission, idempotency_key: Some(key))
}

/// A W3C trace-context trace id (32 lowercase hex digits); made at submit otherwise.
pub fn trace_id(submission: Submission, id: String) -> Submission {
  Submission(..submission, trace_id: Some(id))
}

@external(erlang, "beamlet_gleam_ffi", "identity")
fn to_dynamic(value: a) -> Dynamic

/// Submit through `node` (any member); tried again while the leadership moves. The task's id.
@external(erlang, "beamlet_gleam_ffi", "task_submit")
pub fn submit(on node: Node, task submission: Submission) -> Result(String, CallError)

@external(erlang, "beamlet_gleam_ffi", "task_get")
pub fn get(on node: Node, id id: String) -> Result(Task, CallError)

/// The task once it ended, or `Error(Timeout)` after `ms` milliseconds.
@external(erlang, "beamlet_gleam_ffi", "task_wait")
pub fn wait(on node: Node, id id: String, within ms: Int) -> Result(Task, CallError)

/// Cancel a task that has not ended (`Error(Failed("already_final"))` otherwise).
@external(erlang, "beamlet_gleam_ffi", "task_cancel")
pub fn cancel(on node: Node, id id: String) -> Result(Task, CallError)

/// Handle tasks of type `kind` on `node` (usually an agent): a process linked to the caller
/// runs `handler` in a fresh process per attempt; `Ok(value)` is the result, `Error(reason)`
/// fails the attempt (retried while it has retries left). A cancel or timeout kills it.
@external(erlang, "beamlet_gleam_ffi", "task_handle")
pub fn handle(
  on node: Node,
  kind kind: String,
  with handler: fn(Job) -> Result(a, b),
) -> Result(Pid, CallError)
