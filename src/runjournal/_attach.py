"""``attach()``: one more writer of an existing run, appending to its own metrics file.

Each file of a run has one writer (``docs/format.md``). The run's main writer,
the process that started it, owns ``run.jsonl``, ``params.jsonl``,
``metrics.jsonl`` and ``system.jsonl``; an attached writer named ``rank1``
appends only to ``metrics.rank1.jsonl`` and, when it samples system metrics
(a rank of ``start(per_rank=True)``, or ``attach(..., system_metrics=...)``),
to ``system.rank1.jsonl``. It never writes a start, end, heartbeat or error
event: run-level records belong to the main writer.

Every attach leaves a write-once claim, ``attach.<writer>.<n>.json``, created
with a hard link (atomic and exclusive, NFS included). A second writer of the
same name is refused while the process of the latest claim lives on this host.
"""

from __future__ import annotations

import os
import re
import threading
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runjournal import _env, _lifecycle, _process
from runjournal._writer import RunWriter, signals_wait
from runjournal.errors import (
    InvalidArgumentError,
    RunError,
    RunjournalWarning,
    RunNotFoundError,
    WriterInUseError,
)
from runjournal.format import JSONL_SUFFIX, METRICS_PREFIX, RUN_EVENTS, RUNS_DIR, Event, read_lines
from runjournal.run import Run
from runjournal.store import find_store, open_store, write_once
from runjournal.typing import Params, PathLike
from runjournal.values import check_run_id

if TYPE_CHECKING:
    from runjournal.capture.data import DataRecord

__all__ = ["AttachedRun", "attach", "attach_rank", "check_writer", "default_writer"]

WRITER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""A writer name: 1 to 64 letters, digits, ``_`` and ``-``, starting with a letter or digit."""
_RESERVED = frozenset({"main"})
_CLAIM = re.compile(r"attach\.(?P<writer>[A-Za-z0-9_-]+)\.(?P<n>\d+)\.json")
_RANK_VARIABLES = (_env.RANK, _env.SLURM_PROCID, _env.OMPI_COMM_WORLD_RANK)
_released: set[tuple[Path, str]] = set()
_released_lock = threading.Lock()
_RUN_LEVEL = "params, tags, notes, data and artifacts belong to the run's main writer"


def check_writer(writer: object) -> str:
    """Return ``writer`` if it can name a writer's files, else raise.

    Raises:
        InvalidArgumentError: not 1-64 letters, digits, ``_`` or ``-``, or ``main``.

    Example:
        >>> check_writer("rank3")
        'rank3'
    """
    if (
        not isinstance(writer, str)
        or not WRITER_PATTERN.fullmatch(writer)
        or writer.lower() in _RESERVED
    ):
        raise InvalidArgumentError(
            f"writer={writer!r} is not valid: use 1-64 letters, digits, '_' or '-', starting"
            " with a letter or digit ('main' names the run's main writer)",
            argument="writer",
            value=writer,
        )
    return writer


def default_writer() -> str:
    """The default writer name: ``rank<N>`` under a launcher, else ``<host>-<pid>``.

    The rank is read from ``RANK``, ``SLURM_PROCID`` or ``OMPI_COMM_WORLD_RANK``.

    Example:
        >>> import os
        >>> os.environ["RANK"] = "3"
        >>> default_writer()
        'rank3'
        >>> del os.environ["RANK"]
    """
    for name in _RANK_VARIABLES:
        rank = _env.text(name)
        if rank is not None and rank.isdigit():
            return f"rank{int(rank)}"
    host = re.sub(r"[^A-Za-z0-9_-]+", "-", _process.hostname().split(".")[0]).strip("-_")
    return f"{host[:40] or 'host'}-{os.getpid()}"


def metrics_file(writer: str) -> str:
    """The metrics file of a writer: ``metrics.<writer>.jsonl``."""
    return f"{METRICS_PREFIX}{writer}{JSONL_SUFFIX}"


def system_file(writer: str) -> str:
    """The system samples file of a writer: ``system.<writer>.jsonl``.

    Example:
        >>> system_file("rank2")
        'system.rank2.jsonl'
    """
    return f"system.{writer}{JSONL_SUFFIX}"


def attach(
    run_id: str,
    *,
    store: PathLike | None = None,
    writer: str | None = None,
    strict: bool | None = None,
    flush_interval: float | None = None,
    system_metrics: bool | float = False,
) -> Run:
    """Write metrics into an existing run from another process (a rank, a worker).

    The attached writer appends only to ``metrics.<writer>.jsonl`` in the run's
    directory (and ``system.<writer>.jsonl`` with ``system_metrics``). It
    writes no start or end event: the run's status stays that of its main
    writer. Readers merge every writer's file and label each row with its
    ``writer`` (``load_metrics(..., writer=...)`` selects some).

    Args:
        run_id: The id of a started run in the store.
        store: The store directory (default: as for :func:`runjournal.start`).
        writer: The writer name (1-64 letters, digits, ``_``, ``-``); default
            ``rank<N>`` under a launcher that sets a rank, else ``<host>-<pid>``.
        strict: Raise on any logging problem (default ``RUNJOURNAL_STRICT``).
        flush_interval: Seconds between background writes (default 1).
        system_metrics: Sample this process and its machine into
            ``system.<writer>.jsonl`` (``docs/system-metrics.md``): True
            (every 10 s), the interval in seconds, or False (default: the
            run's main writer samples already; ``RUNJOURNAL_SYSTEM_METRICS``
            is not read here).

    Returns:
        An :class:`AttachedRun` (a disabled run under ``RUNJOURNAL_MODE=disabled``)
        whose ``log``, ``flush`` and ``end`` work as for a started run;
        ``log_params``, ``tag``, ``note`` and ``log_data`` write nothing and
        warn (raise :class:`RunError` when strict).

    Raises:
        InvalidArgumentError: a bad ``run_id``, ``writer``, ``flush_interval``
            or ``system_metrics``.
        RunNotFoundError: the run does not exist or has not started.
        WriterInUseError: a live process on this host holds the writer name.

    Example:
        >>> import runjournal
        >>> from runjournal._attach import attach
        >>> with runjournal.start() as run:
        ...     with attach(run.id, writer="worker1") as extra:
        ...         extra.log({"loss": 0.5}, step=1)
        ...     run.log({"loss": 0.7}, step=1)
        >>> frame = runjournal.load_metrics(runs=[run.id])
        >>> sorted(frame["writer"].fillna("main"))
        ['main', 'worker1']
    """
    from runjournal._start import _Settings  # the same checks and defaults as start()

    try:
        check_run_id(run_id)
    except ValueError as error:
        raise InvalidArgumentError(str(error), argument="run_id", value=run_id) from None
    name = check_writer(writer if writer is not None else default_writer())
    settings = _Settings.check(
        experiment=None,
        name=None,
        run_id=run_id,
        resume=False,
        mode="online",
        strict=strict,
        flush_interval=flush_interval,
        heartbeat_interval=None,
        durability="buffered",
    )
    sampling = _sampling(system_metrics)
    if _env.text(_env.MODE) == "disabled":
        run = settings.new_run(None, run_id, segment=0)
        _lifecycle.register(run)
        return run
    run_dir = open_store(find_store(store)) / RUNS_DIR / run_id
    return _attach_to(
        run_dir, name, settings.strict, settings.flush_interval, quiet=False, sampling=sampling
    )


def _sampling(system_metrics: object) -> float | None:
    """The sampler's interval of ``attach(system_metrics=...)``; None when off."""
    from runjournal._sampler import DEFAULT_INTERVAL
    from runjournal._start import _seconds

    if system_metrics is False or system_metrics is None:
        return None
    if system_metrics is True:
        return DEFAULT_INTERVAL
    return _seconds("system_metrics", system_metrics, "", DEFAULT_INTERVAL)


def attach_rank(
    run_dir: Path,
    writer: str,
    strict: bool,
    flush_interval: float,
    *,
    system_interval: float | None = None,
) -> AttachedRun:
    """The writer of a rank of ``start(per_rank=True)``: run-level calls pass silently.

    ``system_interval`` is the rank's sampling interval (``start(system_metrics=...)``);
    None samples nothing.
    """
    return _attach_to(run_dir, writer, strict, flush_interval, quiet=True, sampling=system_interval)


def _attach_to(
    run_dir: Path,
    writer: str,
    strict: bool,
    flush_interval: float,
    *,
    quiet: bool,
    sampling: float | None,
) -> AttachedRun:
    started = _start_event(run_dir)
    _claim(run_dir, writer)
    from runjournal._start import _last_step

    run = AttachedRun(
        run_dir,
        writer,
        started,
        next_step=_last_step(run_dir / metrics_file(writer)) + 1,
        strict=strict,
        flush_interval=flush_interval,
        quiet=quiet,
    )
    _lifecycle.register(run)
    run._start_sampler(sampling)
    return run


def _start_event(run_dir: Path) -> dict[str, Any]:
    """The latest start or resume event of the run (its name, experiment, segment)."""
    found: dict[str, Any] | None = None
    for event in read_lines(run_dir / RUN_EVENTS).records:
        if event.get("event") in (Event.START, Event.RESUME):
            found = event
    if found is None:
        raise RunNotFoundError(
            f"cannot attach to run {run_dir.name!r}: no started run of that id in"
            f" {run_dir.parent.parent} (start it first)",
            ref=run_dir.name,
        )
    return found


def _claim(run_dir: Path, writer: str) -> int:
    """Write the next claim ``attach.<writer>.<n>.json``; refuse a name a live process holds."""
    me = _process.current()
    while True:
        latest, holder = _latest_claim(run_dir, writer)
        if holder is not None and _holds(run_dir, writer, holder):
            raise WriterInUseError(
                f"writer {writer!r} of run {run_dir.name} is in use by pid {holder.pid} on"
                f" {holder.host}, which is alive; two writers never share"
                f" {metrics_file(writer)}: give this one another writer= name",
                ref=run_dir.name,
                writer=writer,
            )
        record = {
            "writer": writer,
            "time": time.time(),
            "host": me.host,
            "pid": me.pid,
            "pid_start": me.start_time,
        }
        import orjson

        try:
            write_once(run_dir / f"attach.{writer}.{latest + 1}.json", orjson.dumps(record))
        except FileExistsError:
            continue  # another process claimed it at the same moment: look again
        with _released_lock:
            _released.discard((run_dir, writer))
        return latest + 1


def _latest_claim(run_dir: Path, writer: str) -> tuple[int, _process.ProcessIdentity | None]:
    import orjson

    numbers = [
        int(match["n"])
        for entry in run_dir.iterdir()
        if (match := _CLAIM.fullmatch(entry.name)) and match["writer"] == writer
    ]
    if not numbers:
        return -1, None
    latest = max(numbers)
    try:
        record = orjson.loads((run_dir / f"attach.{writer}.{latest}.json").read_bytes())
        holder = _process.ProcessIdentity(
            str(record["host"]), int(record["pid"]), record.get("pid_start")
        )
    except (OSError, ValueError, KeyError, TypeError):
        return latest, None  # a damaged claim holds nothing
    return latest, holder


def _holds(run_dir: Path, writer: str, holder: _process.ProcessIdentity) -> bool:
    """Whether the process of a claim still holds the name (unknown on another host: no)."""
    if holder.pid == os.getpid() and holder.host == _process.hostname():
        with _released_lock:
            return (run_dir, writer) not in _released
    return _process.is_alive(holder) is True


class AttachedRun(Run):
    """An extra writer of a run, from :func:`runjournal.attach`: only its metrics file.

    Example:
        >>> import runjournal
        >>> from runjournal._attach import attach
        >>> main = runjournal.start()
        >>> extra = attach(main.id, writer="eval")
        >>> extra.log({"acc": 0.9})
        >>> extra.end()
        >>> main.end()
        >>> (main.dir / "metrics.eval.jsonl").exists()
        True
    """

    def __init__(
        self,
        run_dir: Path,
        writer: str,
        started: Mapping[str, Any],
        *,
        next_step: int,
        strict: bool,
        flush_interval: float,
        quiet: bool,
    ) -> None:
        name, experiment, seg = started.get("name"), started.get("experiment"), started.get("seg")
        super().__init__(
            run_id=run_dir.name,
            name=name if isinstance(name, str) else run_dir.name,
            experiment=experiment if isinstance(experiment, str) else None,
            run_dir=None,  # no RunWriter of the run's own files
            segment=seg if isinstance(seg, int) else 0,
            next_step=next_step,
            params={},
            strict=strict,
            flush_interval=flush_interval,
            heartbeat_interval=60.0,
            fsync=False,
        )
        self._dir = run_dir
        self._writer_name = writer
        self._quiet = quiet  # a rank of start(per_rank=True): run-level calls pass silently
        self._writer = RunWriter(
            run_dir,
            (metrics_file(writer), system_file(writer)),  # each created on its first line
            flush_interval=flush_interval,
            on_problem=self._on_write_problem,
            on_tick=lambda: None,  # no heartbeat: the main writer's tell if the run lives
        )
        self._buffer = self._writer.metric_buffer
        self._refusing = False
        self._writer.start()

    @property
    def writer(self) -> str:
        """The writer name; this process appends to ``metrics.<writer>.jsonl`` only."""
        return self._writer_name

    def __repr__(self) -> str:
        state = "ended" if self._ended else "live"
        return f"<AttachedRun {self._id} writer={self._writer_name!r} {state}>"

    def log_params(self, params: Params | Any) -> None:
        """Write nothing: params belong to the run's main writer (warns; strict raises)."""
        self._run_level("log_params")

    def tag(self, tags: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Write nothing: tags belong to the run's main writer (warns; strict raises)."""
        self._run_level("tag")

    def note(self, text: str) -> None:
        """Write nothing: notes belong to the run's main writer (warns; strict raises)."""
        self._run_level("note")

    def log_data(
        self,
        name: str,
        source: PathLike | Any,
        *,
        role: str = "input",
        mode: str = "full",
        algo: str = "sha256",
    ) -> DataRecord | None:
        """Write nothing: data records belong to the run's main writer (warns; strict raises)."""
        self._run_level("log_data")
        return None

    def _write_now(self, file: str, line: bytes) -> None:
        self._run_level(f"a record for {file}")  # any run-level verb added to Run later

    def _run_level(self, verb: str) -> None:
        if self._quiet or self._refusing:
            return
        message = f"run {self._id}: {verb} ignored by writer {self._writer_name!r}: {_RUN_LEVEL}"
        if self._strict:
            raise RunError(message, ref=self._id)
        if verb not in self._refusals:
            self._refusals.add(verb)
            warnings.warn(message, RunjournalWarning, stacklevel=3)

    def _queue_error(self, cause: str, key: str, message: str, count: int) -> None:
        """No error events: ``run.jsonl`` is the main writer's. The warning said it."""

    def _tick(self) -> None:
        """No heartbeats and no error events (see ``_queue_error``)."""

    def _system_file(self) -> str:
        """``system.<writer>.jsonl``: each writer samples into its own file."""
        return system_file(self._writer_name)

    def _sampler_failed(self, message: str) -> None:
        """No error event (``run.jsonl`` is the main writer's): a warning."""
        warnings.warn(
            f"run {self._id}: writer {self._writer_name!r} samples no system metrics: {message}",
            RunjournalWarning,
            stacklevel=4,
        )

    def _end(self, status: str, exc: BaseException | None) -> None:
        """Flush and close the writer's files; an attached writer records no end."""
        writer = self._mark_ended()
        if writer is None:
            return
        with signals_wait():  # a SIGINT while the sampler stops waits for the files
            if self._sampler is not None:
                self._sampler.stop()  # before the last flush: its last sample is written
            self._collect_dropped()
            writer.close()
        with _released_lock:
            _released.add((self._dir, self._writer_name))  # type: ignore[arg-type]
