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
////
//// Every task's transitions, from the leader's feed (docs/tasks.md, "Watching every task"):
////
//// ```gleam
//// // read it page by page: each answer says where the next one starts
//// let assert Ok(page) =
////   task.changes(on: node, after: task.from_now(), kind: Some("echo"), state: None,
////     limit: 100, within: 20_000)
//// let assert Ok(more) =
////   task.changes(on: node, after: page.next, kind: Some("echo"), state: None, limit: 100,
////     within: 20_000)
////
//// // or have every change delivered
//// let subject = process.new_subject()
//// let assert Ok(subscription) =
////   task.watch(on: node, kind: None, state: Some(task.Failed), into: subject)
//// let assert Ok(change) = process.receive(subject, 60_000)
//// ```

import beamlet.{type CallError, type Node, type Subscription}
import gleam/dynamic.{type Dynamic}
import gleam/erlang/process.{type Pid, type Subject}
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

/// One transition of a task, as the leader's feed of every task records it. `seq` numbers the
/// leader's changes; `error` is the reason of a failure when it has a name (`queue_timeout`,
/// `timeout`, `agent_lost`, ...).
pub type Change {
  Change(
    seq: Int,
    id: String,
    kind: String,
    state: State,
    attempt: Int,
    agent: Option(Node),
    time_ms: Int,
    error: Option(String),
  )
}

/// Where a read of the feed starts: `from_now()`, or the `next` of the page before. A cursor of
/// an earlier leader starts at the oldest change the current leader holds.
pub opaque type Cursor {
  FromNow
  After(term: Int, seq: Int)
}

/// One answer of the feed: the changes after the cursor (oldest first), how many changes the
/// feed no longer held (`missed`, 0 when none was skipped), and where to read on.
pub type Page {
  Page(changes: List(Change), missed: Int, next: Cursor)
}

/// Only changes made after this read.
pub fn from_now() -> Cursor {
  FromNow
}

/// The changes after `cursor` of tasks of type `kind` in state `state` (`None`: any), at most
/// `limit` (1 to 1000): as soon as there is one, else an empty page after `ms` milliseconds
/// (0 to 60 000; 0 answers at once). `Error(Failed("too_many_watchers"))` when the leader has
/// too many readers waiting.
@external(erlang, "beamlet_gleam_ffi", "task_changes")
pub fn changes(
  on node: Node,
  after cursor: Cursor,
  kind kind: Option(String),
  state state: Option(State),
  limit limit: Int,
  within ms: Int,
) -> Result(Page, CallError)

/// Deliver every change of tasks of type `kind` in state `state` (`None`: any) made from now
/// on into `subject`, in order and once each, until `beamlet.unsubscribe`, the subject's owner
/// exits or the connection to `node` drops. It reads on across a change of leader (changes the
/// new leader does not hold are lost, as for `changes`).
@external(erlang, "beamlet_gleam_ffi", "task_watch")
pub fn watch(
  on node: Node,
  kind kind: Option(String),
  state state: Option(State),
  into subject: Subject(Change),
) -> Result(Subscription, CallError)
