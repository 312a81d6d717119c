from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoadTask(_message.Message):
    __slots__ = ("task_class", "weight", "sleep_min_msec", "sleep_max_msec", "threshold_avg_usec", "threshold_max_usec", "host")
    TASK_CLASS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    SLEEP_MIN_MSEC_FIELD_NUMBER: _ClassVar[int]
    SLEEP_MAX_MSEC_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_AVG_USEC_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_MAX_USEC_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    task_class: str
    weight: int
    sleep_min_msec: int
    sleep_max_msec: int
    threshold_avg_usec: int
    threshold_max_usec: int
    host: str
    def __init__(self, task_class: _Optional[str] = ..., weight: _Optional[int] = ..., sleep_min_msec: _Optional[int] = ..., sleep_max_msec: _Optional[int] = ..., threshold_avg_usec: _Optional[int] = ..., threshold_max_usec: _Optional[int] = ..., host: _Optional[str] = ...) -> None: ...

class LoadJob(_message.Message):
    __slots__ = ("name", "host", "tasks", "run_for_sec", "run_n", "n_swarm", "rate_per_sec", "json", "stages")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    RUN_FOR_SEC_FIELD_NUMBER: _ClassVar[int]
    RUN_N_FIELD_NUMBER: _ClassVar[int]
    N_SWARM_FIELD_NUMBER: _ClassVar[int]
    RATE_PER_SEC_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    name: str
    host: str
    tasks: _containers.RepeatedCompositeFieldContainer[LoadTask]
    run_for_sec: int
    run_n: int
    n_swarm: int
    rate_per_sec: float
    json: str
    stages: _containers.RepeatedCompositeFieldContainer[LoadStage]
    def __init__(self, name: _Optional[str] = ..., host: _Optional[str] = ..., tasks: _Optional[_Iterable[_Union[LoadTask, _Mapping]]] = ..., run_for_sec: _Optional[int] = ..., run_n: _Optional[int] = ..., n_swarm: _Optional[int] = ..., rate_per_sec: _Optional[float] = ..., json: _Optional[str] = ..., stages: _Optional[_Iterable[_Union[LoadStage, _Mapping]]] = ...) -> None: ...

class LoadStage(_message.Message):
    __slots__ = ("duration_sec", "target")
    DURATION_SEC_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    duration_sec: int
    target: int
    def __init__(self, duration_sec: _Optional[int] = ..., target: _Optional[int] = ...) -> None: ...

class SaveLoadJobRequest(_message.Message):
    __slots__ = ("job_json", "job")
    JOB_JSON_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    job_json: str
    job: LoadJob
    def __init__(self, job_json: _Optional[str] = ..., job: _Optional[_Union[LoadJob, _Mapping]] = ...) -> None: ...

class ListLoadJobsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListLoadJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[LoadJob]
    def __init__(self, jobs: _Optional[_Iterable[_Union[LoadJob, _Mapping]]] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tasks: _Optional[_Iterable[str]] = ...) -> None: ...

class GetLoadStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExecSummary(_message.Message):
    __slots__ = ("id", "name", "t_start", "elapsed_usec", "n_task", "n_fail", "threshold_exceeded", "aborted")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    T_START_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_USEC_FIELD_NUMBER: _ClassVar[int]
    N_TASK_FIELD_NUMBER: _ClassVar[int]
    N_FAIL_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_EXCEEDED_FIELD_NUMBER: _ClassVar[int]
    ABORTED_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    t_start: str
    elapsed_usec: int
    n_task: int
    n_fail: int
    threshold_exceeded: bool
    aborted: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., t_start: _Optional[str] = ..., elapsed_usec: _Optional[int] = ..., n_task: _Optional[int] = ..., n_fail: _Optional[int] = ..., threshold_exceeded: _Optional[bool] = ..., aborted: _Optional[bool] = ...) -> None: ...

class LoadStatus(_message.Message):
    __slots__ = ("running", "exec_id", "name", "t_start", "elapsed_usec", "n_task", "n_success", "n_fail", "last_exec", "json")
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    T_START_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_USEC_FIELD_NUMBER: _ClassVar[int]
    N_TASK_FIELD_NUMBER: _ClassVar[int]
    N_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    N_FAIL_FIELD_NUMBER: _ClassVar[int]
    LAST_EXEC_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    running: bool
    exec_id: str
    name: str
    t_start: str
    elapsed_usec: int
    n_task: int
    n_success: int
    n_fail: int
    last_exec: ExecSummary
    json: str
    def __init__(self, running: _Optional[bool] = ..., exec_id: _Optional[str] = ..., name: _Optional[str] = ..., t_start: _Optional[str] = ..., elapsed_usec: _Optional[int] = ..., n_task: _Optional[int] = ..., n_success: _Optional[int] = ..., n_fail: _Optional[int] = ..., last_exec: _Optional[_Union[ExecSummary, _Mapping]] = ..., json: _Optional[str] = ...) -> None: ...

class ExecRequest(_message.Message):
    __slots__ = ("name", "params", "max_failure_count", "report_progress", "report_failures", "error_400_on_threshold_exceeded", "webhook_url")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    MAX_FAILURE_COUNT_FIELD_NUMBER: _ClassVar[int]
    REPORT_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    REPORT_FAILURES_FIELD_NUMBER: _ClassVar[int]
    ERROR_400_ON_THRESHOLD_EXCEEDED_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    name: str
    params: _containers.ScalarMap[str, str]
    max_failure_count: int
    report_progress: bool
    report_failures: bool
    error_400_on_threshold_exceeded: bool
    webhook_url: str
    def __init__(self, name: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., max_failure_count: _Optional[int] = ..., report_progress: _Optional[bool] = ..., report_failures: _Optional[bool] = ..., error_400_on_threshold_exceeded: _Optional[bool] = ..., webhook_url: _Optional[str] = ...) -> None: ...

class ExecProgress(_message.Message):
    __slots__ = ("exec_id", "name", "elapsed_usec", "n_task", "n_success", "n_fail", "rps", "p50_usec", "p99_usec", "planned_n", "run_for_sec")
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_USEC_FIELD_NUMBER: _ClassVar[int]
    N_TASK_FIELD_NUMBER: _ClassVar[int]
    N_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    N_FAIL_FIELD_NUMBER: _ClassVar[int]
    RPS_FIELD_NUMBER: _ClassVar[int]
    P50_USEC_FIELD_NUMBER: _ClassVar[int]
    P99_USEC_FIELD_NUMBER: _ClassVar[int]
    PLANNED_N_FIELD_NUMBER: _ClassVar[int]
    RUN_FOR_SEC_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    name: str
    elapsed_usec: int
    n_task: int
    n_success: int
    n_fail: int
    rps: float
    p50_usec: int
    p99_usec: int
    planned_n: int
    run_for_sec: int
    def __init__(self, exec_id: _Optional[str] = ..., name: _Optional[str] = ..., elapsed_usec: _Optional[int] = ..., n_task: _Optional[int] = ..., n_success: _Optional[int] = ..., n_fail: _Optional[int] = ..., rps: _Optional[float] = ..., p50_usec: _Optional[int] = ..., p99_usec: _Optional[int] = ..., planned_n: _Optional[int] = ..., run_for_sec: _Optional[int] = ...) -> None: ...

class ExecEnqueued(_message.Message):
    __slots__ = ("exec_id",)
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    def __init__(self, exec_id: _Optional[str] = ...) -> None: ...

class ExecEvent(_message.Message):
    __slots__ = ("progress", "enqueued", "finished")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ENQUEUED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    progress: ExecProgress
    enqueued: ExecEnqueued
    finished: JobExec
    def __init__(self, progress: _Optional[_Union[ExecProgress, _Mapping]] = ..., enqueued: _Optional[_Union[ExecEnqueued, _Mapping]] = ..., finished: _Optional[_Union[JobExec, _Mapping]] = ...) -> None: ...

class TaskExec(_message.Message):
    __slots__ = ("task_class", "host", "weight", "sleep_min_msec", "sleep_max_msec", "threshold_avg_usec", "threshold_max_usec", "n_task", "n_success", "n_fail", "min_usec", "max_usec", "avg_usec", "tot_usec", "threshold_avg_exceeded", "threshold_max_exceeded", "p50_usec", "p90_usec", "p99_usec", "p999_usec", "rps", "n_executions_dropped")
    TASK_CLASS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    SLEEP_MIN_MSEC_FIELD_NUMBER: _ClassVar[int]
    SLEEP_MAX_MSEC_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_AVG_USEC_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_MAX_USEC_FIELD_NUMBER: _ClassVar[int]
    N_TASK_FIELD_NUMBER: _ClassVar[int]
    N_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    N_FAIL_FIELD_NUMBER: _ClassVar[int]
    MIN_USEC_FIELD_NUMBER: _ClassVar[int]
    MAX_USEC_FIELD_NUMBER: _ClassVar[int]
    AVG_USEC_FIELD_NUMBER: _ClassVar[int]
    TOT_USEC_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_AVG_EXCEEDED_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_MAX_EXCEEDED_FIELD_NUMBER: _ClassVar[int]
    P50_USEC_FIELD_NUMBER: _ClassVar[int]
    P90_USEC_FIELD_NUMBER: _ClassVar[int]
    P99_USEC_FIELD_NUMBER: _ClassVar[int]
    P999_USEC_FIELD_NUMBER: _ClassVar[int]
    RPS_FIELD_NUMBER: _ClassVar[int]
    N_EXECUTIONS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    task_class: str
    host: str
    weight: int
    sleep_min_msec: int
    sleep_max_msec: int
    threshold_avg_usec: int
    threshold_max_usec: int
    n_task: int
    n_success: int
    n_fail: int
    min_usec: int
    max_usec: int
    avg_usec: int
    tot_usec: int
    threshold_avg_exceeded: bool
    threshold_max_exceeded: bool
    p50_usec: int
    p90_usec: int
    p99_usec: int
    p999_usec: int
    rps: float
    n_executions_dropped: int
    def __init__(self, task_class: _Optional[str] = ..., host: _Optional[str] = ..., weight: _Optional[int] = ..., sleep_min_msec: _Optional[int] = ..., sleep_max_msec: _Optional[int] = ..., threshold_avg_usec: _Optional[int] = ..., threshold_max_usec: _Optional[int] = ..., n_task: _Optional[int] = ..., n_success: _Optional[int] = ..., n_fail: _Optional[int] = ..., min_usec: _Optional[int] = ..., max_usec: _Optional[int] = ..., avg_usec: _Optional[int] = ..., tot_usec: _Optional[int] = ..., threshold_avg_exceeded: _Optional[bool] = ..., threshold_max_exceeded: _Optional[bool] = ..., p50_usec: _Optional[int] = ..., p90_usec: _Optional[int] = ..., p99_usec: _Optional[int] = ..., p999_usec: _Optional[int] = ..., rps: _Optional[float] = ..., n_executions_dropped: _Optional[int] = ...) -> None: ...

class JobExec(_message.Message):
    __slots__ = ("id", "name", "host", "t_start", "elapsed_usec", "params", "error_400_on_threshold_exceeded", "tasks", "run_for_sec", "run_n", "n_swarm", "threshold_exceeded", "rate_per_sec", "aborted", "abort_reason", "n_task", "n_success", "n_fail", "p50_usec", "p90_usec", "p99_usec", "p999_usec", "rps", "json")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    T_START_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_USEC_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    ERROR_400_ON_THRESHOLD_EXCEEDED_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    RUN_FOR_SEC_FIELD_NUMBER: _ClassVar[int]
    RUN_N_FIELD_NUMBER: _ClassVar[int]
    N_SWARM_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_EXCEEDED_FIELD_NUMBER: _ClassVar[int]
    RATE_PER_SEC_FIELD_NUMBER: _ClassVar[int]
    ABORTED_FIELD_NUMBER: _ClassVar[int]
    ABORT_REASON_FIELD_NUMBER: _ClassVar[int]
    N_TASK_FIELD_NUMBER: _ClassVar[int]
    N_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    N_FAIL_FIELD_NUMBER: _ClassVar[int]
    P50_USEC_FIELD_NUMBER: _ClassVar[int]
    P90_USEC_FIELD_NUMBER: _ClassVar[int]
    P99_USEC_FIELD_NUMBER: _ClassVar[int]
    P999_USEC_FIELD_NUMBER: _ClassVar[int]
    RPS_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    host: str
    t_start: str
    elapsed_usec: int
    params: _containers.ScalarMap[str, str]
    error_400_on_threshold_exceeded: bool
    tasks: _containers.RepeatedCompositeFieldContainer[TaskExec]
    run_for_sec: int
    run_n: int
    n_swarm: int
    threshold_exceeded: bool
    rate_per_sec: float
    aborted: bool
    abort_reason: str
    n_task: int
    n_success: int
    n_fail: int
    p50_usec: int
    p90_usec: int
    p99_usec: int
    p999_usec: int
    rps: float
    json: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., host: _Optional[str] = ..., t_start: _Optional[str] = ..., elapsed_usec: _Optional[int] = ..., params: _Optional[_Mapping[str, str]] = ..., error_400_on_threshold_exceeded: _Optional[bool] = ..., tasks: _Optional[_Iterable[_Union[TaskExec, _Mapping]]] = ..., run_for_sec: _Optional[int] = ..., run_n: _Optional[int] = ..., n_swarm: _Optional[int] = ..., threshold_exceeded: _Optional[bool] = ..., rate_per_sec: _Optional[float] = ..., aborted: _Optional[bool] = ..., abort_reason: _Optional[str] = ..., n_task: _Optional[int] = ..., n_success: _Optional[int] = ..., n_fail: _Optional[int] = ..., p50_usec: _Optional[int] = ..., p90_usec: _Optional[int] = ..., p99_usec: _Optional[int] = ..., p999_usec: _Optional[int] = ..., rps: _Optional[float] = ..., json: _Optional[str] = ...) -> None: ...

class ListExecsRequest(_message.Message):
    __slots__ = ("name", "limit")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    limit: int
    def __init__(self, name: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListExecsResponse(_message.Message):
    __slots__ = ("execs",)
    EXECS_FIELD_NUMBER: _ClassVar[int]
    execs: _containers.RepeatedCompositeFieldContainer[ExecSummary]
    def __init__(self, execs: _Optional[_Iterable[_Union[ExecSummary, _Mapping]]] = ...) -> None: ...

class GetExecRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...
