"""``start()``, resuming, and the module-level verbs that act on the active run."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from runjournal import _env, _lifecycle, _process, _ranks
from runjournal.errors import (
    InvalidArgumentError,
    InvalidNameError,
    NoActiveRunError,
    RunInProgressError,
    RunjournalWarning,
    RunNotFoundError,
    UnsupportedFormatError,
)
from runjournal.format import (
    FORMAT_VERSION,
    METRICS,
    PARAMS,
    RUN_EVENTS,
    RUNS_DIR,
    Event,
    Status,
    parse_lines,
    read_lines,
)
from runjournal.run import Run, coerce_tags
from runjournal.store import (
    LIBRARY,
    create_run_dir,
    find_store,
    init_store,
    new_run_id,
    new_run_name,
    open_store,
)
from runjournal.typing import Metrics, Params, PathLike
from runjournal.values import check_run_id, coerce_params, merge_params

if TYPE_CHECKING:
    from runjournal.alerts import Alert
    from runjournal.capture._options import CaptureOptions
    from runjournal.capture.data import DataRecord
    from runjournal.capture.git import GitCapture

__all__ = ["active_run", "end", "log", "log_data", "log_params", "note", "start", "tag"]

Mode = Literal["online", "disabled"]
Durability = Literal["buffered", "fsync"]
_MODES = ("online", "disabled")
_DURABILITIES = ("buffered", "fsync")
_DEFAULT_FLUSH_INTERVAL = 1.0
_DEFAULT_HEARTBEAT_INTERVAL = 60.0
_TAIL_BYTES = 1 << 16


def start(
    experiment: str | None = None,
    *,
    name: str | None = None,
    params: Params | Any | None = None,
    tags: Mapping[str, Any] | None = None,
    store: PathLike | None = None,
    run_id: str | None = None,
    resume: bool | Literal["allow"] = False,
    mode: Mode | None = None,
    strict: bool | None = None,
    flush_interval: float | None = None,
    heartbeat_interval: float | None = None,
    durability: Durability = "buffered",
    capture: bool | Mapping[str, Any] | CaptureOptions | None = None,
    require_clean_git: bool = False,
    system_metrics: bool | float | None = None,
    per_rank: bool = False,
    capture_output: bool | Literal["fd"] = False,
    alerts: Sequence[Alert] | None = None,
    on_nan: Literal["log", "raise"] = "log",
) -> Run:
    """Start a run (or resume one) and make it the active run.

    Params, tags and the start event are on disk when this returns. The
    arguments are checked here and raise; after this returns, logging never
    raises into the training loop unless the run is strict.

    Args:
        experiment: The experiment the run belongs to (default ``RUNJOURNAL_EXPERIMENT``).
        name: A human-readable name; generated (``brisk-heron-7``) when omitted.
        params: Params to record at once, as for :meth:`Run.log_params`.
        tags: Tags to set at once, as for :meth:`Run.tag`.
        store: The store directory; see :func:`runjournal.store.find_store`.
        run_id: The run id (default ``RUNJOURNAL_RUN_ID``, else generated).
        resume: ``True`` appends to the existing run ``run_id`` as a new segment;
            ``"allow"`` does so when it exists and creates it otherwise.
        mode: ``"online"`` or ``"disabled"`` (default ``RUNJOURNAL_MODE``);
            a disabled run accepts every call and writes nothing.
        strict: Raise on any logging problem instead of warning (default
            ``RUNJOURNAL_STRICT``).
        flush_interval: Seconds between background writes (default 1).
        heartbeat_interval: Seconds between heartbeat events (default 60).
        durability: ``"fsync"`` makes every flush durable against power loss.
        capture: What to record of the environment and the code (``docs/capture.md``):
            True (every part), False (none), or a mapping of options such as
            ``{"git": False, "env_allow": ["MYLAB_"], "timeout": 2.0}``
            (default ``RUNJOURNAL_CAPTURE``, else True). Capture never fails
            the run: a part that fails is recorded, with a warning.
        require_clean_git: Refuse to start when tracked files differ from the
            git ``HEAD`` (or there is no git state to check).
        system_metrics: Sample CPU, memory, disk, network and GPU figures into
            ``system.jsonl`` (``docs/system-metrics.md``): True (every 10 s),
            False, or the interval in seconds (default
            ``RUNJOURNAL_SYSTEM_METRICS``, else True).
        capture_output: Tee stdout and stderr to the run's ``output.log``
            while they still reach the terminal: True (what Python prints),
            ``"fd"`` (file descriptors 1 and 2: also C code and child
            processes), or False (default). Restored at ``end()``.
        alerts: :class:`runjournal.alerts.Alert` rules to watch from the
            first step, as with :meth:`Run.watch` (``docs/alerts.md``).
        on_nan: ``"raise"`` makes ``log`` raise
            :class:`~runjournal.errors.NonFiniteMetricError` when any value
            logged is NaN or infinite (after logging it), whatever the
            strictness; ``"log"`` (default) logs it as any value.
        per_rank: In a distributed job (torchrun, ``mpirun``, ``srun`` with
            several tasks; ``docs/distributed.md``) the job is one run, which
            rank 0 starts. The other ranks get a run that writes nothing, or,
            with ``per_rank=True``, one that appends their metrics to
            ``metrics.rank<N>.jsonl`` of that run and, as ``system_metrics``
            says, their system samples to ``system.rank<N>.jsonl``.

    Raises:
        InvalidArgumentError: an argument is not valid.
        InvalidNameError, InvalidValueError: a param or tag cannot be logged.
        StoreError: the store cannot be found, created or written.
        RunExistsError: ``run_id`` exists and ``resume`` was not asked for.
        RunNotFoundError: ``resume=True`` and the run does not exist.
        RunInProgressError: the run to resume is still running on this host.
        GitStateError: ``require_clean_git`` and the working tree is dirty;
            raised before anything is written.

    Example:
        >>> import runjournal
        >>> with runjournal.start("mnist", params={"lr": 0.01}, tags={"model": "mlp"}) as run:
        ...     for step in range(3):
        ...         run.log({"loss": 1 / (step + 1)})
        >>> run.experiment
        'mnist'
    """
    settings = _Settings.check(
        experiment=experiment,
        name=name,
        run_id=run_id,
        resume=resume,
        mode=mode,
        strict=strict,
        flush_interval=flush_interval,
        heartbeat_interval=heartbeat_interval,
        durability=durability,
    )
    options = _capture_options(capture, require_clean_git)
    sampling = _system_interval(system_metrics)
    _check_choice("capture_output", capture_output, (False, True, "fd"))
    console = {False: None, True: "python", "fd": "fd"}[capture_output]
    _check_choice("on_nan", on_nan, ("log", "raise"))
    watching = _alerts(alerts)
    settings = settings._replace(secret_words=_secret_words(options))
    coerced_params = coerce_params(params) if params is not None else {}
    coerced_tags = coerce_tags(_check_mapping("tags", tags)) if tags is not None else {}
    _check_choice("per_rank", per_rank, (False, True))
    if settings.mode == "online" and (ranks := _ranks.detect()) is not None:
        settings = _job_settings(settings, ranks)
        if ranks.rank != 0:
            return _join_as_rank(settings, ranks, store, per_rank=per_rank, system=sampling)
    if settings.mode == "disabled":
        return _register(settings.new_run(None, settings.run_id or new_run_id(), segment=0))
    git = _check_clean_git(options) if require_clean_git else None
    root = init_store(find_store(store))
    if settings.run_id is not None and (root / RUNS_DIR / settings.run_id).is_dir():
        if not settings.resume:
            create_run_dir(root, settings.run_id)  # raises RunExistsError with the advice
        resumed = _resume(settings, root, coerced_params, coerced_tags)
        resumed._add_alerts(watching, on_nan)
        return _sampled(_capture(resumed, options, git), sampling, console)
    if settings.resume is True:
        raise RunNotFoundError(
            f"cannot resume run {settings.run_id!r}: it does not exist in {root}"
            " (use resume='allow' to create it when missing)",
            ref=settings.run_id,
        )
    run_id, run_dir = create_run_dir(root, settings.run_id)
    run = settings.new_run(run_dir, run_id, segment=0)
    run._start_events({"event": Event.START, **_identity_fields(run)}, coerced_tags, coerced_params)
    run._add_alerts(watching, on_nan)
    return _sampled(_capture(_register(run), options, git), sampling, console)


def _alerts(alerts: object) -> list[Alert]:
    from runjournal.alerts import as_alerts

    return as_alerts(alerts)


def _system_interval(value: object) -> float | None:
    """The sampler's interval in seconds from ``system_metrics``; None when off."""
    from runjournal._sampler import DEFAULT_INTERVAL

    source = "system_metrics"
    if value is None:
        text = _env.text(_env.SYSTEM_METRICS)
        if text is None:
            return DEFAULT_INTERVAL
        lowered = text.lower()
        if lowered in _env.BOOLEAN_WORDS:
            value = lowered in ("1", "true", "yes", "on")
        else:
            value, source = text, _env.SYSTEM_METRICS
    if value is True:
        return DEFAULT_INTERVAL
    if value is False:
        return None
    return _seconds(source, value, "", DEFAULT_INTERVAL)


def _sampled(run: Run, interval: float | None, console: str | None) -> Run:
    """Start the run's background parts: the system sampler and the console capture."""
    run._start_sampler(interval)
    run._start_console(console)
    return run


def _job_settings(settings: _Settings, ranks: _ranks.Ranks) -> _Settings:
    """Every rank's settings name the job's run; a derived id resumes the job's own run."""
    if settings.run_id is not None:
        return settings
    resume = settings.resume or "allow"  # a restarted or requeued job continues its run
    return settings._replace(run_id=_ranks.job_run_id(ranks), resume=resume)


def _join_as_rank(
    settings: _Settings,
    ranks: _ranks.Ranks,
    store: PathLike | None,
    *,
    per_rank: bool,
    system: float | None,
) -> Run:
    """A rank above 0: a run that writes nothing, or (``per_rank``) an attached writer.

    With ``per_rank`` the rank samples system metrics into ``system.<writer>.jsonl``
    every ``system`` seconds (None: not at all), as ``start(system_metrics=...)`` says.
    """
    assert settings.run_id is not None
    if not per_rank:
        return _register(settings.new_run(None, settings.run_id, segment=0))
    from runjournal._attach import attach_rank

    root = find_store(store)
    _ranks.wait_for_run(root / RUNS_DIR / settings.run_id, _ranks.rank_timeout())
    run_dir = open_store(root) / RUNS_DIR / settings.run_id
    return attach_rank(
        run_dir, ranks.writer, settings.strict, settings.flush_interval, system_interval=system
    )


class _Settings(NamedTuple):
    """The checked arguments of :func:`start`, with environment defaults applied."""

    experiment: str | None
    name: str | None
    run_id: str | None
    resume: bool | str
    mode: str
    strict: bool
    flush_interval: float
    heartbeat_interval: float
    fsync: bool
    secret_words: frozenset[str] = frozenset()

    @classmethod
    def check(
        cls,
        *,
        experiment: object,
        name: object,
        run_id: object,
        resume: object,
        mode: object,
        strict: object,
        flush_interval: object,
        heartbeat_interval: object,
        durability: object,
    ) -> _Settings:
        mode = mode if mode is not None else (_env.text(_env.MODE) or "online")
        _check_choice("mode", mode, _MODES)
        _check_choice("durability", durability, _DURABILITIES)
        _check_choice("resume", resume, (False, True, "allow"))
        run_id = run_id if run_id is not None else _env.text(_env.RUN_ID)
        if run_id is not None:
            try:
                check_run_id(run_id)
            except InvalidNameError as error:
                raise InvalidArgumentError(str(error), argument="run_id", value=run_id) from None
        if resume and run_id is None:
            raise InvalidArgumentError(
                f"resume={resume!r} needs the run_id of the run to resume",
                argument="resume",
                value=resume,
            )
        return cls(
            experiment=_optional_text("experiment", experiment, _env.text(_env.EXPERIMENT)),
            name=_optional_text("name", name, None),
            run_id=run_id,  # type: ignore[arg-type]
            resume=resume,  # type: ignore[arg-type]
            mode=mode,  # type: ignore[arg-type]
            strict=bool(strict) if strict is not None else _env.flag(_env.STRICT),
            flush_interval=_seconds(
                "flush_interval", flush_interval, _env.FLUSH_INTERVAL, _DEFAULT_FLUSH_INTERVAL
            ),
            heartbeat_interval=_seconds(
                "heartbeat_interval",
                heartbeat_interval,
                _env.HEARTBEAT_INTERVAL,
                _DEFAULT_HEARTBEAT_INTERVAL,
            ),
            fsync=durability == "fsync",
        )

    def new_run(
        self,
        run_dir: Path | None,
        run_id: str,
        *,
        segment: int,
        name: str | None = None,
        experiment: str | None = None,
        next_step: int = 0,
        params: dict[str, Any] | None = None,
    ) -> Run:
        return Run(
            run_id=run_id,
            name=name or self.name or new_run_name(),
            experiment=experiment if experiment is not None else self.experiment,
            run_dir=run_dir,
            segment=segment,
            next_step=next_step,
            params=params if params is not None else {},
            strict=self.strict,
            flush_interval=self.flush_interval,
            heartbeat_interval=self.heartbeat_interval,
            fsync=self.fsync,
            secret_words=self.secret_words,
        )


def _capture_options(capture: object, require_clean_git: object) -> CaptureOptions | None:
    """Check ``capture`` and ``require_clean_git``; the capture options, None when off."""
    from runjournal.capture._options import resolve_capture

    _check_choice("require_clean_git", require_clean_git, (False, True))
    return resolve_capture(capture)


def _secret_words(options: CaptureOptions | None) -> frozenset[str]:
    """The user's extra secret words, for params and tags even when capture is off."""
    from runjournal.capture._options import CaptureOptions
    from runjournal.capture._redact import normalize_words

    return normalize_words((options or CaptureOptions()).all_secret_words())


def _check_clean_git(options: CaptureOptions | None) -> GitCapture:
    """For ``require_clean_git``: raises GitStateError before anything is written."""
    from runjournal.capture._options import CaptureOptions
    from runjournal.capture._record import check_clean_git

    return check_clean_git(options or CaptureOptions())


def _capture(run: Run, options: CaptureOptions | None, git: GitCapture | None) -> Run:
    """Capture the environment and git state into the run's directory; never raises.

    A part that failed becomes an ``error`` event (cause ``capture_error``) and
    one warning, which points at the caller of ``start()``.
    """
    if options is not None and run.dir is not None:
        from runjournal.capture._record import capture_run

        run._record_capture_errors(capture_run(run.dir, run.segment, options, git=git))
    return run


def _check_choice(argument: str, value: object, choices: tuple[object, ...]) -> None:
    if not any(
        value is choice or (type(value) is type(choice) and value == choice) for choice in choices
    ):
        raise InvalidArgumentError(
            f"{argument}={value!r} is not valid; use one of {', '.join(map(repr, choices))}",
            argument=argument,
            value=value,
        )


def _optional_text(argument: str, value: object, default: str | None) -> str | None:
    if value is None:
        return default
    if not isinstance(value, str) or not value.strip() or not _is_utf8(value):
        raise InvalidArgumentError(
            f"{argument}={value!r} is not valid; give a non-empty string (that UTF-8 can"
            " hold: no lone surrogates) or None",
            argument=argument,
            value=value,
        )
    return value


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _seconds(argument: str, value: object, variable: str, default: float) -> float:
    source = argument
    if value is None and (text := _env.text(variable)) is not None:
        value, source = text, variable
    if value is None:
        return default
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidArgumentError(
            f"{source}={value!r} is not valid; give a positive number of seconds",
            argument=argument,
            value=value,
        )
    return seconds


def _check_mapping(argument: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            f"{argument} must be a mapping of names to values, not a {type(value).__name__}",
            argument=argument,
            value=value,
        )
    return value


def _identity_fields(run: Run) -> dict[str, Any]:
    me = _process.current()
    return {
        "format": FORMAT_VERSION,
        "run_id": run.id,
        "name": run.name,
        "experiment": run.experiment,
        "host": me.host,
        "pid": me.pid,
        "pid_start": me.start_time,
        "job_id": _env.scheduler_job_id(),
        "library": LIBRARY,
    }


def _register(run: Run) -> Run:
    _lifecycle.register(run)
    return run


class _Existing:
    """What a resume needs to know of a run on disk."""

    def __init__(self) -> None:
        self.segment = -1
        self.name: str | None = None
        self.experiment: str | None = None
        self.ended = True
        self.process: _process.ProcessIdentity | None = None
        self.params: dict[str, Any] = {}
        self.next_step = 0


def _resume(settings: _Settings, root: Path, params: dict[str, Any], tags: dict[str, Any]) -> Run:
    run_id = settings.run_id
    assert run_id is not None
    run_dir = root / RUNS_DIR / run_id
    existing = _inspect(run_dir)
    if not existing.ended and existing.process and _process.is_alive(existing.process):
        raise RunInProgressError(
            f"run {run_id!r} is still running (pid {existing.process.pid} on"
            f" {existing.process.host}); end it before resuming it",
            ref=run_id,
        )
    _warn_if_renamed(run_id, "name", settings.name, existing.name)
    _warn_if_renamed(run_id, "experiment", settings.experiment, existing.experiment)
    kind = Event.RESUME if existing.segment >= 0 else Event.START
    run = settings.new_run(
        run_dir,
        run_id,
        segment=existing.segment + 1,
        name=existing.name,
        experiment=existing.experiment,
        next_step=existing.next_step,
        params=existing.params,
    )
    run._start_events({"event": kind, **_identity_fields(run)}, tags, params)
    return _register(run)


def _warn_if_renamed(run_id: str, argument: str, given: str | None, kept: str | None) -> None:
    if given is not None and kept is not None and given != kept:
        warnings.warn(
            f"run {run_id!r} keeps its {argument} {kept!r}; {argument}={given!r} is ignored"
            " when resuming",
            RunjournalWarning,
            stacklevel=4,
        )


def _inspect(run_dir: Path) -> _Existing:
    existing = _Existing()
    for event in read_lines(run_dir / RUN_EVENTS).records:
        kind = event.get("event")
        if kind in (Event.START, Event.RESUME):
            _check_format(run_dir, event.get("format"))
            existing.name = existing.name or _text(event.get("name"))
            existing.experiment = existing.experiment or _text(event.get("experiment"))
            existing.ended = False
            existing.process = _process.ProcessIdentity(
                str(event.get("host")), int(event.get("pid") or 0), event.get("pid_start")
            )
        elif kind == Event.END:
            existing.ended = True
        seg = event.get("seg")
        if isinstance(seg, int):
            existing.segment = max(existing.segment, seg)
    for record in read_lines(run_dir / PARAMS).records:
        if isinstance(record.get("params"), dict):
            merge_params(existing.params, record["params"])
    existing.next_step = _last_step(run_dir / METRICS) + 1
    return existing


def _check_format(run_dir: Path, found: object) -> None:
    if isinstance(found, int) and found > FORMAT_VERSION:
        raise UnsupportedFormatError(
            f"run {run_dir.name} has format {found}; this runjournal writes format"
            f" {FORMAT_VERSION} and cannot resume it: upgrade runjournal",
            path=run_dir,
            found=found,
            supported=FORMAT_VERSION,
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _last_step(metrics_file: Path) -> int:
    """The step of the last complete line of a metrics file (-1 if none), from its tail."""
    try:
        with metrics_file.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - _TAIL_BYTES))
            tail = file.read()
    except FileNotFoundError:
        return -1
    if size > _TAIL_BYTES:
        tail = tail[tail.find(b"\n") + 1 :]  # the first line of the tail may be cut
    for record in reversed(parse_lines(tail, metrics_file.name).records):
        if isinstance(record.get("step"), int):
            return int(record["step"])
    return -1


# -- the module-level verbs ---------------------------------------------------------


def active_run() -> Run | None:
    """The most recently started run of this process that has not ended, if any.

    Example:
        >>> import runjournal
        >>> runjournal.active_run() is None
        True
        >>> with runjournal.start() as run:
        ...     runjournal.active_run() is run
        True
    """
    return _lifecycle.active_run()


def _active(verb: str) -> Run:
    run = _lifecycle.active_run()
    if run is None:
        raise NoActiveRunError(
            f"runjournal.{verb}() needs an active run: call runjournal.start() first"
        )
    return run


def log(metrics: Metrics, step: int | None = None) -> None:
    """:meth:`Run.log` on the active run.

    Example:
        >>> import runjournal
        >>> with runjournal.start():
        ...     runjournal.log({"loss": 0.5})
    """
    _active("log").log(metrics, step)


def log_params(params: Params | Any) -> None:
    """:meth:`Run.log_params` on the active run.

    Example:
        >>> import runjournal
        >>> with runjournal.start():
        ...     runjournal.log_params({"lr": 0.01})
    """
    _active("log_params").log_params(params)


def tag(tags: Mapping[str, Any] | None = None, /, **more: Any) -> None:
    """:meth:`Run.tag` on the active run.

    Example:
        >>> import runjournal
        >>> with runjournal.start():
        ...     runjournal.tag(stage="pretrain")
    """
    _active("tag").tag(tags, **more)


def note(text: str) -> None:
    """:meth:`Run.note` on the active run.

    Example:
        >>> import runjournal
        >>> with runjournal.start():
        ...     runjournal.note("first try with warm-up")
    """
    _active("note").note(text)


def log_data(
    name: str,
    source: PathLike | Any,
    *,
    role: str = "input",
    mode: str = "full",
    algo: str = "sha256",
) -> DataRecord | None:
    r""":meth:`Run.log_data` on the active run.

    Example:
        >>> import pathlib, runjournal
        >>> _ = pathlib.Path("vocab.txt").write_text("a\nb\n")
        >>> with runjournal.start():
        ...     print(runjournal.log_data("vocab", "vocab.txt").hash[:16])
        911169ddaaf146af
    """
    return _active("log_data").log_data(name, source, role=role, mode=mode, algo=algo)


def end(status: str = Status.COMPLETED) -> None:
    """:meth:`Run.end` on the active run.

    Example:
        >>> import runjournal
        >>> _ = runjournal.start()
        >>> runjournal.end()
        >>> runjournal.active_run() is None
        True
    """
    _active("end").end(status)
