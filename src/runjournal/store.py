"""Finding, creating and opening stores; run ids, names and run directories.

A store is found the way git finds ``.git``: an explicit path, else
``RUNJOURNAL_STORE``, else the nearest ``.runjournal`` directory in the working
directory or one of its ancestors, else ``./.runjournal`` (created on the
first run).

Example:
    >>> from runjournal.store import find_store, init_store
    >>> root = init_store(find_store("experiments/.runjournal"))
    >>> sorted(p.name for p in root.iterdir())
    ['runjournal.json', 'runs']
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import time
from pathlib import Path
from typing import Any

import orjson

from runjournal import _env
from runjournal._permissions import apply_file_mode, make_dir, store_umask
from runjournal._version import __version__
from runjournal.errors import (
    NotAStoreError,
    RunExistsError,
    StoreError,
    StoreWriteError,
    UnsupportedFormatError,
)
from runjournal.format import (
    FORMAT_VERSION,
    RUNS_DIR,
    STORE_DIRNAME,
    STORE_MARKER,
    TEMP_PREFIX,
    read_file,
)
from runjournal.typing import PathLike

__all__ = [
    "LIBRARY",
    "create_run_dir",
    "find_store",
    "init_store",
    "new_run_id",
    "new_run_name",
    "open_store",
    "write_once",
]

LIBRARY = f"runjournal {__version__}"
"""How runs and stores name the library that wrote them."""

_ID_ATTEMPTS = 20


def find_store(path: PathLike | None = None) -> Path:
    """The store directory to use: ``path``, ``RUNJOURNAL_STORE``, an ancestor's, or ``./``.

    Nothing is created or checked; see :func:`init_store` and :func:`open_store`.

    Example:
        >>> find_store("/data/store").as_posix()
        '/data/store'
    """
    if path is not None:
        return Path(path).expanduser().absolute()
    if env_path := _env.text(_env.STORE):
        return Path(env_path).expanduser().absolute()
    cwd = Path.cwd()
    for directory in (cwd, *cwd.parents):
        candidate = directory / STORE_DIRNAME
        if candidate.is_dir():
            return candidate
    return cwd / STORE_DIRNAME


def init_store(root: Path) -> Path:
    """Create the store at ``root`` if needed and return it; safe under concurrency.

    Raises:
        NotAStoreError: ``root`` exists, is not empty and is not a store.
        UnsupportedFormatError: the store was written by a newer runjournal.
        StoreWriteError: the directory cannot be created or written.
    """
    store_umask()  # a RUNJOURNAL_UMASK that is not a umask fails here, before any run
    marker = root / STORE_MARKER
    if not marker.exists():
        try:
            make_dir(root, parents=True, exist_ok=True)
        except OSError as error:
            raise StoreWriteError(f"cannot create store {root}: {error}", path=root) from error
        if not marker.exists():
            _refuse_foreign_directory(root)
            content = {
                "format": FORMAT_VERSION,
                "created": dt.datetime.now(dt.UTC).isoformat(),
                "created_by": LIBRARY,
            }
            write_once(marker, orjson.dumps(content) + b"\n", exist_ok=True)
    _check_marker(root)
    try:
        make_dir(root / RUNS_DIR, exist_ok=True)
    except OSError as error:
        raise StoreWriteError(f"cannot create {root / RUNS_DIR}: {error}", path=root) from error
    return root


def open_store(root: Path) -> Path:
    """Check that ``root`` is a store this runjournal can read, and return it.

    Raises:
        StoreError: there is no store at ``root``.
        NotAStoreError: ``root`` is a directory but not a store.
        UnsupportedFormatError: the store was written by a newer runjournal.
    """
    if not root.is_dir():
        raise StoreError(
            f"no runjournal store at {root}: start a run to create one, or point"
            f" {_env.STORE} or store= at an existing store",
            path=root,
        )
    if not (root / STORE_MARKER).exists():
        raise NotAStoreError(
            f"{root} is not a runjournal store (it has no {STORE_MARKER})", path=root
        )
    _check_marker(root)
    return root


def _refuse_foreign_directory(root: Path) -> None:
    foreign = [p.name for p in root.iterdir() if not p.name.startswith(TEMP_PREFIX)]
    if foreign and not (root / STORE_MARKER).exists():  # else another process just made it
        raise NotAStoreError(
            f"{root} is not empty and is not a runjournal store (no {STORE_MARKER});"
            " refusing to write into it: choose an empty or new directory",
            path=root,
        )


def _check_marker(root: Path) -> dict[str, Any]:
    marker = root / STORE_MARKER
    for attempt in range(3):
        try:
            content = orjson.loads(read_file(marker))
            break
        except (orjson.JSONDecodeError, OSError) as error:
            if attempt == 2:
                raise StoreError(f"cannot read {marker}: {error}", path=root) from error
            time.sleep(0.05)  # a concurrent creator may be writing it without link()
    found = content.get("format") if isinstance(content, dict) else None
    if not isinstance(found, int):
        raise StoreError(f"{marker} has no integer 'format' field", path=root)
    if found > FORMAT_VERSION:
        raise UnsupportedFormatError(
            f"store {root} has format {found}, but this runjournal ({__version__}) reads"
            f" formats up to {FORMAT_VERSION}: upgrade runjournal",
            path=root,
            found=found,
            supported=FORMAT_VERSION,
        )
    return content  # type: ignore[no-any-return]


def write_once(path: Path, data: bytes, *, exist_ok: bool = False) -> bool:
    """Write a file once, atomically: to a temporary name, then link it into place.

    A reader never sees a half-written file under the final name, and a crash
    leaves at most a ``.tmp-`` file behind. Where the file system cannot
    hard-link, the complete temporary file is renamed into place instead: two
    processes writing the same file at the same instant then both succeed and
    the later rename wins. Only the store marker has several writers, and they
    all write an equivalent one.

    Returns:
        True if this call wrote the file; False if it existed and ``exist_ok``.

    Raises:
        FileExistsError: the file exists and ``exist_ok`` is false.
        StoreWriteError: the file system refused the write.
    """
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    try:
        temp.write_bytes(data)
        apply_file_mode(temp)
        try:
            os.link(temp, path)
        except FileExistsError:
            if not exist_ok:
                raise
            return False
        except OSError:
            return _rename_into_place(temp, path, exist_ok=exist_ok)
        return True
    except FileExistsError:
        raise
    except OSError as error:
        raise StoreWriteError(f"cannot write {path}: {error}", path=path.parent) from error
    finally:
        temp.unlink(missing_ok=True)


def _rename_into_place(temp: Path, path: Path, *, exist_ok: bool) -> bool:
    """The fallback of :func:`write_once` for file systems without hard links.

    Renaming is atomic where linking is not available, so the final name never
    holds a partial file, even when the process dies mid-write.
    """
    if path.exists():
        if not exist_ok:
            raise FileExistsError(errno.EEXIST, "file exists", str(path))
        return False
    temp.replace(path)
    return True


def new_run_id(now: float | None = None) -> str:
    """A fresh run id: the UTC time to the second, then 32 random bits in hex.

    Example:
        >>> new_run_id(0.0)[:16]
        '19700101-000000-'
    """
    stamp = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC)
    return f"{stamp:%Y%m%d-%H%M%S}-{os.urandom(4).hex()}"


def create_run_dir(root: Path, run_id: str | None = None) -> tuple[str, Path]:
    """Create a run directory with one ``mkdir``; draw a new id on a collision.

    Args:
        root: An initialised store.
        run_id: The id the user asked for; generated when None.

    Raises:
        RunExistsError: ``run_id`` was given and exists already.
        StoreWriteError: the directory cannot be created.
    """
    runs = root / RUNS_DIR
    for _ in range(_ID_ATTEMPTS):
        candidate = run_id or new_run_id()
        path = runs / candidate
        try:
            make_dir(path)
        except FileExistsError:
            if run_id is not None:
                raise RunExistsError(
                    f"run {run_id!r} exists already in {root}: pass resume=True to append"
                    " to it, or choose another run_id",
                    ref=run_id,
                ) from None
            continue
        except OSError as error:
            raise StoreWriteError(f"cannot create {path}: {error}", path=root) from error
        return candidate, path
    raise StoreWriteError(f"could not find a free run id in {runs}", path=root)


_ADJECTIVES = (
    "amber azure bold brave brisk calm clever cosmic crisp dapper eager fancy fierce "
    "gentle golden happy hidden jolly keen lively lucky mellow misty noble polar "
    "proud quiet rapid rustic silent snowy solar steady sunny swift tidy vivid wise"
).split()
_NOUNS = (
    "badger beacon breeze canyon cedar comet coral crane delta ember falcon fjord "
    "forest glacier harbor heron island lagoon lynx maple meadow nebula orbit otter "
    "pine prairie quartz raven reef river sparrow summit tundra valley willow zephyr"
).split()


def new_run_name() -> str:
    """A readable run name such as ``brisk-heron-7``; not guaranteed unique.

    Example:
        >>> len(new_run_name().split("-"))
        3
    """
    draw = int.from_bytes(os.urandom(4), "big")
    adjective = _ADJECTIVES[draw % len(_ADJECTIVES)]
    noun = _NOUNS[draw // len(_ADJECTIVES) % len(_NOUNS)]
    return f"{adjective}-{noun}-{draw % 97}"
