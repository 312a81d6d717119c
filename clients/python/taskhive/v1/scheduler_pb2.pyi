from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CODE_OK: _ClassVar[ErrorCode]
    ERROR_CODE_CANCELLED: _ClassVar[ErrorCode]
    ERROR_CODE_UNKNOWN: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_ARGUMENT: _ClassVar[ErrorCode]
    ERROR_CODE_DEADLINE_EXCEEDED: _ClassVar[ErrorCode]
    ERROR_CODE_NOT_FOUND: _ClassVar[ErrorCode]
    ERROR_CODE_ALREADY_EXISTS: _ClassVar[ErrorCode]
    ERROR_CODE_PERMISSION_DENIED: _ClassVar[ErrorCode]
    ERROR_CODE_RESOURCE_EXHAUSTED: _ClassVar[ErrorCode]
    ERROR_CODE_FAILED_PRECONDITION: _ClassVar[ErrorCode]
    ERROR_CODE_ABORTED: _ClassVar[ErrorCode]
    ERROR_CODE_OUT_OF_RANGE: _ClassVar[ErrorCode]
    ERROR_CODE_UNIMPLEMENTED: _ClassVar[ErrorCode]
    ERROR_CODE_INTERNAL: _ClassVar[ErrorCode]
    ERROR_CODE_UNAVAILABLE: _ClassVar[ErrorCode]
    ERROR_CODE_DATA_LOSS: _ClassVar[ErrorCode]
    ERROR_CODE_UNAUTHENTICATED: _ClassVar[ErrorCode]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_PENDING: _ClassVar[JobState]
    JOB_STATE_SCHEDULED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_DEAD: _ClassVar[JobState]
    JOB_STATE_DONE: _ClassVar[JobState]

class MissedTicks(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MISSED_TICKS_UNSPECIFIED: _ClassVar[MissedTicks]
    MISSED_TICKS_SKIP: _ClassVar[MissedTicks]
    MISSED_TICKS_ONE: _ClassVar[MissedTicks]
    MISSED_TICKS_ALL: _ClassVar[MissedTicks]
ERROR_CODE_OK: ErrorCode
ERROR_CODE_CANCELLED: ErrorCode
ERROR_CODE_UNKNOWN: ErrorCode
ERROR_CODE_INVALID_ARGUMENT: ErrorCode
ERROR_CODE_DEADLINE_EXCEEDED: ErrorCode
ERROR_CODE_NOT_FOUND: ErrorCode
ERROR_CODE_ALREADY_EXISTS: ErrorCode
ERROR_CODE_PERMISSION_DENIED: ErrorCode
ERROR_CODE_RESOURCE_EXHAUSTED: ErrorCode
ERROR_CODE_FAILED_PRECONDITION: ErrorCode
ERROR_CODE_ABORTED: ErrorCode
ERROR_CODE_OUT_OF_RANGE: ErrorCode
ERROR_CODE_UNIMPLEMENTED: ErrorCode
ERROR_CODE_INTERNAL: ErrorCode
ERROR_CODE_UNAVAILABLE: ErrorCode
ERROR_CODE_DATA_LOSS: ErrorCode
ERROR_CODE_UNAUTHENTICATED: ErrorCode
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_PENDING: JobState
JOB_STATE_SCHEDULED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_DEAD: JobState
JOB_STATE_DONE: JobState
MISSED_TICKS_UNSPECIFIED: MissedTicks
MISSED_TICKS_SKIP: MissedTicks
MISSED_TICKS_ONE: MissedTicks
MISSED_TICKS_ALL: MissedTicks

class TaskLimits(_message.Message):
    __slots__ = ("max_running", "rate", "burst", "max_running_per_key", "rate_per_key")
    MAX_RUNNING_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNNING_PER_KEY_FIELD_NUMBER: _ClassVar[int]
    RATE_PER_KEY_FIELD_NUMBER: _ClassVar[int]
    max_running: int
    rate: str
    burst: int
    max_running_per_key: int
    rate_per_key: str
    def __init__(self, max_running: _Optional[int] = ..., rate: _Optional[str] = ..., burst: _Optional[int] = ..., max_running_per_key: _Optional[int] = ..., rate_per_key: _Optional[str] = ...) -> None: ...

class SetTaskLimitsRequest(_message.Message):
    __slots__ = ("task", "limits")
    TASK_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    task: str
    limits: TaskLimits
    def __init__(self, task: _Optional[str] = ..., limits: _Optional[_Union[TaskLimits, _Mapping]] = ...) -> None: ...

class TaskLimitsResponse(_message.Message):
    __slots__ = ("task", "limits")
    TASK_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    task: str
    limits: TaskLimits
    def __init__(self, task: _Optional[str] = ..., limits: _Optional[_Union[TaskLimits, _Mapping]] = ...) -> None: ...

class RetryPolicy(_message.Message):
    __slots__ = ("max_attempts", "backoff_base_ms", "backoff_max_ms")
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_BASE_MS_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_MAX_MS_FIELD_NUMBER: _ClassVar[int]
    max_attempts: int
    backoff_base_ms: int
    backoff_max_ms: int
    def __init__(self, max_attempts: _Optional[int] = ..., backoff_base_ms: _Optional[int] = ..., backoff_max_ms: _Optional[int] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("task", "name", "args", "sched_at_ms", "timeout_ms", "priority", "retry", "key")
    TASK_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    SCHED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    task: str
    name: str
    args: bytes
    sched_at_ms: int
    timeout_ms: int
    priority: int
    retry: RetryPolicy
    key: str
    def __init__(self, task: _Optional[str] = ..., name: _Optional[str] = ..., args: _Optional[bytes] = ..., sched_at_ms: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., priority: _Optional[int] = ..., retry: _Optional[_Union[RetryPolicy, _Mapping]] = ..., key: _Optional[str] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job_id", "replaced", "running")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    replaced: bool
    running: bool
    def __init__(self, job_id: _Optional[int] = ..., replaced: _Optional[bool] = ..., running: _Optional[bool] = ...) -> None: ...

class SubmitJobsRequest(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[SubmitJobRequest]
    def __init__(self, jobs: _Optional[_Iterable[_Union[SubmitJobRequest, _Mapping]]] = ...) -> None: ...

class SubmitJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[SubmitJobResponse]
    def __init__(self, jobs: _Optional[_Iterable[_Union[SubmitJobResponse, _Mapping]]] = ...) -> None: ...

class SubmitStreamResponse(_message.Message):
    __slots__ = ("acks",)
    ACKS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[SubmitAck]
    def __init__(self, acks: _Optional[_Iterable[_Union[SubmitAck, _Mapping]]] = ...) -> None: ...

class SubmitAck(_message.Message):
    __slots__ = ("seq", "job_id", "replaced", "running", "error_code", "error", "code", "reason")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    job_id: int
    replaced: bool
    running: bool
    error_code: str
    error: str
    code: ErrorCode
    reason: str
    def __init__(self, seq: _Optional[int] = ..., job_id: _Optional[int] = ..., replaced: _Optional[bool] = ..., running: _Optional[bool] = ..., error_code: _Optional[str] = ..., error: _Optional[str] = ..., code: _Optional[_Union[ErrorCode, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class RunJobResponse(_message.Message):
    __slots__ = ("job_id", "result")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    result: bytes
    def __init__(self, job_id: _Optional[int] = ..., result: _Optional[bytes] = ...) -> None: ...

class JobRef(_message.Message):
    __slots__ = ("job_id", "task", "name")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    task: str
    name: str
    def __init__(self, job_id: _Optional[int] = ..., task: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class RemoveJobResponse(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    def __init__(self, job_id: _Optional[int] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "task", "name", "args", "sched_at_ms", "timeout_ms", "priority", "attempts", "run_count", "state", "lease_id", "retry", "last_error", "result", "finished_at_ms", "traceparent", "key")
    ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    SCHED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    RUN_COUNT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    id: int
    task: str
    name: str
    args: bytes
    sched_at_ms: int
    timeout_ms: int
    priority: int
    attempts: int
    run_count: int
    state: JobState
    lease_id: int
    retry: RetryPolicy
    last_error: str
    result: bytes
    finished_at_ms: int
    traceparent: str
    key: str
    def __init__(self, id: _Optional[int] = ..., task: _Optional[str] = ..., name: _Optional[str] = ..., args: _Optional[bytes] = ..., sched_at_ms: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., priority: _Optional[int] = ..., attempts: _Optional[int] = ..., run_count: _Optional[int] = ..., state: _Optional[_Union[JobState, str]] = ..., lease_id: _Optional[int] = ..., retry: _Optional[_Union[RetryPolicy, _Mapping]] = ..., last_error: _Optional[str] = ..., result: _Optional[bytes] = ..., finished_at_ms: _Optional[int] = ..., traceparent: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("task", "state", "name_prefix", "page_size", "page_token")
    TASK_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NAME_PREFIX_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    task: str
    state: JobState
    name_prefix: str
    page_size: int
    page_token: str
    def __init__(self, task: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., name_prefix: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DropTaskRequest(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: str
    def __init__(self, task: _Optional[str] = ...) -> None: ...

class DropTaskResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: int
    def __init__(self, removed: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: str
    def __init__(self, task: _Optional[str] = ...) -> None: ...

class TaskStatus(_message.Message):
    __slots__ = ("task", "workers", "pending", "scheduled", "running", "dead", "next_sched_at_ms", "locked", "broadcast", "paused", "limits", "waiting_on_limit")
    TASK_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    DEAD_FIELD_NUMBER: _ClassVar[int]
    NEXT_SCHED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LOCKED_FIELD_NUMBER: _ClassVar[int]
    BROADCAST_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    WAITING_ON_LIMIT_FIELD_NUMBER: _ClassVar[int]
    task: str
    workers: int
    pending: int
    scheduled: int
    running: int
    dead: int
    next_sched_at_ms: int
    locked: int
    broadcast: bool
    paused: bool
    limits: TaskLimits
    waiting_on_limit: int
    def __init__(self, task: _Optional[str] = ..., workers: _Optional[int] = ..., pending: _Optional[int] = ..., scheduled: _Optional[int] = ..., running: _Optional[int] = ..., dead: _Optional[int] = ..., next_sched_at_ms: _Optional[int] = ..., locked: _Optional[int] = ..., broadcast: _Optional[bool] = ..., paused: _Optional[bool] = ..., limits: _Optional[_Union[TaskLimits, _Mapping]] = ..., waiting_on_limit: _Optional[int] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("tasks", "totals")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskStatus]
    totals: TaskStatus
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskStatus, _Mapping]]] = ..., totals: _Optional[_Union[TaskStatus, _Mapping]] = ...) -> None: ...

class ListDeadRequest(_message.Message):
    __slots__ = ("task", "limit")
    TASK_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    task: str
    limit: int
    def __init__(self, task: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListDeadResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class DeadRef(_message.Message):
    __slots__ = ("task", "name")
    TASK_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    task: str
    name: str
    def __init__(self, task: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeadOpResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class RegisterTaskRequest(_message.Message):
    __slots__ = ("worker_id", "tasks", "capacity", "broadcast_tasks")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    BROADCAST_TASKS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    tasks: _containers.RepeatedScalarFieldContainer[str]
    capacity: int
    broadcast_tasks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, worker_id: _Optional[str] = ..., tasks: _Optional[_Iterable[str]] = ..., capacity: _Optional[int] = ..., broadcast_tasks: _Optional[_Iterable[str]] = ...) -> None: ...

class RegisterTaskResponse(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class GrabJobRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class Done(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: bytes
    def __init__(self, result: _Optional[bytes] = ...) -> None: ...

class Fail(_message.Message):
    __slots__ = ("error", "retry")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    error: str
    retry: bool
    def __init__(self, error: _Optional[str] = ..., retry: _Optional[bool] = ...) -> None: ...

class SchedLater(_message.Message):
    __slots__ = ("delay_ms", "count_step")
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    COUNT_STEP_FIELD_NUMBER: _ClassVar[int]
    delay_ms: int
    count_step: int
    def __init__(self, delay_ms: _Optional[int] = ..., count_step: _Optional[int] = ...) -> None: ...

class Outcome(_message.Message):
    __slots__ = ("done", "fail", "sched_later")
    DONE_FIELD_NUMBER: _ClassVar[int]
    FAIL_FIELD_NUMBER: _ClassVar[int]
    SCHED_LATER_FIELD_NUMBER: _ClassVar[int]
    done: Done
    fail: Fail
    sched_later: SchedLater
    def __init__(self, done: _Optional[_Union[Done, _Mapping]] = ..., fail: _Optional[_Union[Fail, _Mapping]] = ..., sched_later: _Optional[_Union[SchedLater, _Mapping]] = ...) -> None: ...

class ReportResultRequest(_message.Message):
    __slots__ = ("lease_id", "outcome")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    outcome: Outcome
    def __init__(self, lease_id: _Optional[int] = ..., outcome: _Optional[_Union[Outcome, _Mapping]] = ...) -> None: ...

class ReportResultResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("lease_ids",)
    LEASE_IDS_FIELD_NUMBER: _ClassVar[int]
    lease_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, lease_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("lost_lease_ids",)
    LOST_LEASE_IDS_FIELD_NUMBER: _ClassVar[int]
    lost_lease_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, lost_lease_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class WorkerHello(_message.Message):
    __slots__ = ("tasks", "capacity", "name", "broadcast_tasks")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    BROADCAST_TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedScalarFieldContainer[str]
    capacity: int
    name: str
    broadcast_tasks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tasks: _Optional[_Iterable[str]] = ..., capacity: _Optional[int] = ..., name: _Optional[str] = ..., broadcast_tasks: _Optional[_Iterable[str]] = ...) -> None: ...

class WorkerResult(_message.Message):
    __slots__ = ("lease_id", "outcome")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    outcome: Outcome
    def __init__(self, lease_id: _Optional[int] = ..., outcome: _Optional[_Union[Outcome, _Mapping]] = ...) -> None: ...

class WorkData(_message.Message):
    __slots__ = ("lease_id", "data")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    data: bytes
    def __init__(self, lease_id: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class SendDataResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AcquireLockRequest(_message.Message):
    __slots__ = ("lease_id", "name", "count")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    name: str
    count: int
    def __init__(self, lease_id: _Optional[int] = ..., name: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class AcquireLockResponse(_message.Message):
    __slots__ = ("lease_id", "name", "acquired")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACQUIRED_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    name: str
    acquired: bool
    def __init__(self, lease_id: _Optional[int] = ..., name: _Optional[str] = ..., acquired: _Optional[bool] = ...) -> None: ...

class ReleaseLockRequest(_message.Message):
    __slots__ = ("lease_id", "name")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    name: str
    def __init__(self, lease_id: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class ReleaseLockResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerMessage(_message.Message):
    __slots__ = ("hello", "result", "heartbeat", "data", "acquire", "release")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ACQUIRE_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    hello: WorkerHello
    result: WorkerResult
    heartbeat: HeartbeatRequest
    data: WorkData
    acquire: AcquireLockRequest
    release: ReleaseLockRequest
    def __init__(self, hello: _Optional[_Union[WorkerHello, _Mapping]] = ..., result: _Optional[_Union[WorkerResult, _Mapping]] = ..., heartbeat: _Optional[_Union[HeartbeatRequest, _Mapping]] = ..., data: _Optional[_Union[WorkData, _Mapping]] = ..., acquire: _Optional[_Union[AcquireLockRequest, _Mapping]] = ..., release: _Optional[_Union[ReleaseLockRequest, _Mapping]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class ResultAck(_message.Message):
    __slots__ = ("lease_id", "error", "reason")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    error: str
    reason: str
    def __init__(self, lease_id: _Optional[int] = ..., error: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelJob(_message.Message):
    __slots__ = ("lease_id", "job_id", "reason")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    job_id: int
    reason: str
    def __init__(self, lease_id: _Optional[int] = ..., job_id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class ServerMessage(_message.Message):
    __slots__ = ("welcome", "job", "ack", "heartbeat", "lock", "cancel")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    LOCK_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    job: Job
    ack: ResultAck
    heartbeat: HeartbeatResponse
    lock: AcquireLockResponse
    cancel: CancelJob
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., job: _Optional[_Union[Job, _Mapping]] = ..., ack: _Optional[_Union[ResultAck, _Mapping]] = ..., heartbeat: _Optional[_Union[HeartbeatResponse, _Mapping]] = ..., lock: _Optional[_Union[AcquireLockResponse, _Mapping]] = ..., cancel: _Optional[_Union[CancelJob, _Mapping]] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("data", "result", "error")
    DATA_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    result: RunJobResponse
    error: str
    def __init__(self, data: _Optional[bytes] = ..., result: _Optional[_Union[RunJobResponse, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class GetConfigRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class SetConfigRequest(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: int
    def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...

class ConfigResponse(_message.Message):
    __slots__ = ("values",)
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.ScalarMap[str, int]
    def __init__(self, values: _Optional[_Mapping[str, int]] = ...) -> None: ...

class DumpRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DumpedJob(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class LoadResponse(_message.Message):
    __slots__ = ("loaded",)
    LOADED_FIELD_NUMBER: _ClassVar[int]
    loaded: int
    def __init__(self, loaded: _Optional[int] = ...) -> None: ...

class CreateScheduleRequest(_message.Message):
    __slots__ = ("name", "cron", "tz", "task", "args", "priority", "timeout_ms", "retry", "missed")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    TZ_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    name: str
    cron: str
    tz: str
    task: str
    args: bytes
    priority: int
    timeout_ms: int
    retry: RetryPolicy
    missed: MissedTicks
    def __init__(self, name: _Optional[str] = ..., cron: _Optional[str] = ..., tz: _Optional[str] = ..., task: _Optional[str] = ..., args: _Optional[bytes] = ..., priority: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., retry: _Optional[_Union[RetryPolicy, _Mapping]] = ..., missed: _Optional[_Union[MissedTicks, str]] = ...) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("name", "cron", "tz", "task", "args", "priority", "timeout_ms", "retry", "missed", "paused", "last_tick_ms", "last_job", "last_job_id", "next_fire_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    TZ_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    LAST_TICK_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_JOB_FIELD_NUMBER: _ClassVar[int]
    LAST_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIRE_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    cron: str
    tz: str
    task: str
    args: bytes
    priority: int
    timeout_ms: int
    retry: RetryPolicy
    missed: MissedTicks
    paused: bool
    last_tick_ms: int
    last_job: str
    last_job_id: int
    next_fire_ms: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., cron: _Optional[str] = ..., tz: _Optional[str] = ..., task: _Optional[str] = ..., args: _Optional[bytes] = ..., priority: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., retry: _Optional[_Union[RetryPolicy, _Mapping]] = ..., missed: _Optional[_Union[MissedTicks, str]] = ..., paused: _Optional[bool] = ..., last_tick_ms: _Optional[int] = ..., last_job: _Optional[str] = ..., last_job_id: _Optional[int] = ..., next_fire_ms: _Optional[_Iterable[int]] = ...) -> None: ...

class ScheduleRef(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListSchedulesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSchedulesResponse(_message.Message):
    __slots__ = ("schedules",)
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    schedules: _containers.RepeatedCompositeFieldContainer[Schedule]
    def __init__(self, schedules: _Optional[_Iterable[_Union[Schedule, _Mapping]]] = ...) -> None: ...

class DeleteScheduleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TaskRef(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: str
    def __init__(self, task: _Optional[str] = ...) -> None: ...

class PauseTaskResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: TaskStatus
    def __init__(self, status: _Optional[_Union[TaskStatus, _Mapping]] = ...) -> None: ...
