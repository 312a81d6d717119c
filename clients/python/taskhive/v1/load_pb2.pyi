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
    __slots__ = ("name", "params", "max_failure_count", "report_progress", "report_failures", "error_400_on_threshold_exceeded", "webhook_url", "agents_n", "agents_all")
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
    AGENTS_N_FIELD_NUMBER: _ClassVar[int]
    AGENTS_ALL_FIELD_NUMBER: _ClassVar[int]
    name: str
    params: _containers.ScalarMap[str, str]
    max_failure_count: int
    report_progress: bool
    report_failures: bool
    error_400_on_threshold_exceeded: bool
    webhook_url: str
    agents_n: int
    agents_all: bool
    def __init__(self, name: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., max_failure_count: _Optional[int] = ..., report_progress: _Optional[bool] = ..., report_failures: _Optional[bool] = ..., error_400_on_threshold_exceeded: _Optional[bool] = ..., webhook_url: _Optional[str] = ..., agents_n: _Optional[int] = ..., agents_all: _Optional[bool] = ...) -> None: ...

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
    __slots__ = ("id", "name", "host", "t_start", "elapsed_usec", "params", "error_400_on_threshold_exceeded", "tasks", "run_for_sec", "run_n", "n_swarm", "threshold_exceeded", "rate_per_sec", "aborted", "abort_reason", "n_task", "n_success", "n_fail", "p50_usec", "p90_usec", "p99_usec", "p999_usec", "rps", "json", "agents")
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
    AGENTS_FIELD_NUMBER: _ClassVar[int]
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
    agents: _containers.RepeatedCompositeFieldContainer[ExecAgent]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., host: _Optional[str] = ..., t_start: _Optional[str] = ..., elapsed_usec: _Optional[int] = ..., params: _Optional[_Mapping[str, str]] = ..., error_400_on_threshold_exceeded: _Optional[bool] = ..., tasks: _Optional[_Iterable[_Union[TaskExec, _Mapping]]] = ..., run_for_sec: _Optional[int] = ..., run_n: _Optional[int] = ..., n_swarm: _Optional[int] = ..., threshold_exceeded: _Optional[bool] = ..., rate_per_sec: _Optional[float] = ..., aborted: _Optional[bool] = ..., abort_reason: _Optional[str] = ..., n_task: _Optional[int] = ..., n_success: _Optional[int] = ..., n_fail: _Optional[int] = ..., p50_usec: _Optional[int] = ..., p90_usec: _Optional[int] = ..., p99_usec: _Optional[int] = ..., p999_usec: _Optional[int] = ..., rps: _Optional[float] = ..., json: _Optional[str] = ..., agents: _Optional[_Iterable[_Union[ExecAgent, _Mapping]]] = ...) -> None: ...

class ExecAgent(_message.Message):
    __slots__ = ("id", "addr", "swarms", "n_task", "lost")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    SWARMS_FIELD_NUMBER: _ClassVar[int]
    N_TASK_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    id: str
    addr: str
    swarms: int
    n_task: int
    lost: bool
    def __init__(self, id: _Optional[str] = ..., addr: _Optional[str] = ..., swarms: _Optional[int] = ..., n_task: _Optional[int] = ..., lost: _Optional[bool] = ...) -> None: ...

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

class AgentMessage(_message.Message):
    __slots__ = ("hello", "report", "done")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    hello: AgentHello
    report: AgentReport
    done: AgentDone
    def __init__(self, hello: _Optional[_Union[AgentHello, _Mapping]] = ..., report: _Optional[_Union[AgentReport, _Mapping]] = ..., done: _Optional[_Union[AgentDone, _Mapping]] = ...) -> None: ...

class AgentHello(_message.Message):
    __slots__ = ("capacity", "name")
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    capacity: int
    name: str
    def __init__(self, capacity: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class AgentReport(_message.Message):
    __slots__ = ("exec_id", "tasks", "seconds")
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    tasks: _containers.RepeatedCompositeFieldContainer[AgentTaskPart]
    seconds: _containers.RepeatedCompositeFieldContainer[AgentSecond]
    def __init__(self, exec_id: _Optional[str] = ..., tasks: _Optional[_Iterable[_Union[AgentTaskPart, _Mapping]]] = ..., seconds: _Optional[_Iterable[_Union[AgentSecond, _Mapping]]] = ...) -> None: ...

class AgentTaskPart(_message.Message):
    __slots__ = ("task", "n_success", "n_fail", "min_usec", "max_usec", "tot_usec", "histogram", "executions")
    TASK_FIELD_NUMBER: _ClassVar[int]
    N_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    N_FAIL_FIELD_NUMBER: _ClassVar[int]
    MIN_USEC_FIELD_NUMBER: _ClassVar[int]
    MAX_USEC_FIELD_NUMBER: _ClassVar[int]
    TOT_USEC_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    task: int
    n_success: int
    n_fail: int
    min_usec: int
    max_usec: int
    tot_usec: int
    histogram: bytes
    executions: _containers.RepeatedCompositeFieldContainer[AgentExecution]
    def __init__(self, task: _Optional[int] = ..., n_success: _Optional[int] = ..., n_fail: _Optional[int] = ..., min_usec: _Optional[int] = ..., max_usec: _Optional[int] = ..., tot_usec: _Optional[int] = ..., histogram: _Optional[bytes] = ..., executions: _Optional[_Iterable[_Union[AgentExecution, _Mapping]]] = ...) -> None: ...

class AgentExecution(_message.Message):
    __slots__ = ("swarm_id", "start_usec", "elapsed_usec", "request_context", "is_success")
    SWARM_ID_FIELD_NUMBER: _ClassVar[int]
    START_USEC_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_USEC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    IS_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    swarm_id: int
    start_usec: int
    elapsed_usec: int
    request_context: str
    is_success: bool
    def __init__(self, swarm_id: _Optional[int] = ..., start_usec: _Optional[int] = ..., elapsed_usec: _Optional[int] = ..., request_context: _Optional[str] = ..., is_success: _Optional[bool] = ...) -> None: ...

class AgentSecond(_message.Message):
    __slots__ = ("second", "n_task", "n_fail", "histogram")
    SECOND_FIELD_NUMBER: _ClassVar[int]
    N_TASK_FIELD_NUMBER: _ClassVar[int]
    N_FAIL_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    second: int
    n_task: int
    n_fail: int
    histogram: bytes
    def __init__(self, second: _Optional[int] = ..., n_task: _Optional[int] = ..., n_fail: _Optional[int] = ..., histogram: _Optional[bytes] = ...) -> None: ...

class AgentDone(_message.Message):
    __slots__ = ("exec_id",)
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    def __init__(self, exec_id: _Optional[str] = ...) -> None: ...

class AgentCommand(_message.Message):
    __slots__ = ("welcome", "start", "abort")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    ABORT_FIELD_NUMBER: _ClassVar[int]
    welcome: AgentWelcome
    start: AgentStart
    abort: AgentAbort
    def __init__(self, welcome: _Optional[_Union[AgentWelcome, _Mapping]] = ..., start: _Optional[_Union[AgentStart, _Mapping]] = ..., abort: _Optional[_Union[AgentAbort, _Mapping]] = ...) -> None: ...

class AgentWelcome(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class AgentStart(_message.Message):
    __slots__ = ("exec_id", "job_json", "params", "classes", "first_swarm", "max_executions", "report_failures")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_JSON_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    FIRST_SWARM_FIELD_NUMBER: _ClassVar[int]
    MAX_EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    REPORT_FAILURES_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    job_json: str
    params: _containers.ScalarMap[str, str]
    classes: _containers.RepeatedCompositeFieldContainer[AgentHttpClass]
    first_swarm: int
    max_executions: int
    report_failures: bool
    def __init__(self, exec_id: _Optional[str] = ..., job_json: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., classes: _Optional[_Iterable[_Union[AgentHttpClass, _Mapping]]] = ..., first_swarm: _Optional[int] = ..., max_executions: _Optional[int] = ..., report_failures: _Optional[bool] = ...) -> None: ...

class AgentHttpClass(_message.Message):
    __slots__ = ("name", "method", "path", "headers", "body", "expect_status", "timeout_ms", "insecure_skip_verify")
    NAME_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    EXPECT_STATUS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    INSECURE_SKIP_VERIFY_FIELD_NUMBER: _ClassVar[int]
    name: str
    method: str
    path: str
    headers: _containers.RepeatedCompositeFieldContainer[AgentHeader]
    body: str
    expect_status: _containers.RepeatedScalarFieldContainer[int]
    timeout_ms: int
    insecure_skip_verify: bool
    def __init__(self, name: _Optional[str] = ..., method: _Optional[str] = ..., path: _Optional[str] = ..., headers: _Optional[_Iterable[_Union[AgentHeader, _Mapping]]] = ..., body: _Optional[str] = ..., expect_status: _Optional[_Iterable[int]] = ..., timeout_ms: _Optional[int] = ..., insecure_skip_verify: _Optional[bool] = ...) -> None: ...

class AgentHeader(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class AgentAbort(_message.Message):
    __slots__ = ("exec_id", "reason")
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    reason: str
    def __init__(self, exec_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
