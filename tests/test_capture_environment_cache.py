"""The fast ways to the same environment: packages without importlib.metadata, hardware
without psutil, the user without getpass, parts read once run without a thread."""

from __future__ import annotations

import getpass
import importlib.machinery
import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from runjournal.capture import CaptureOptions, _hardware, _packages
from runjournal.capture.environment import environment_parts, host


@pytest.fixture
def fresh_caches() -> Iterator[None]:
    _hardware.clear_caches()
    _packages.clear_cache()
    yield
    _hardware.clear_caches()
    _packages.clear_cache()


def importlib_answer(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, str], list[str]]:
    """installed() the general way: every distribution from importlib.metadata."""
    with monkeypatch.context() as patch:
        patch.setattr(_packages, "_listed", lambda paths: None)
        _packages.clear_cache()
        answer = _packages.installed()
    _packages.clear_cache()
    return answer


def dist_info(site: Path, folder: str, metadata: bytes | None) -> None:
    (site / folder).mkdir(parents=True)
    if metadata is not None:
        (site / folder / "METADATA").write_bytes(metadata)


def test_the_listing_is_importlib_metadatas_in_its_order(fresh_caches: None) -> None:
    """The same distributions, in the same order, as importlib.metadata.distributions()."""
    fast = [str(getattr(d, "_path", "")) for d in _packages.distributions()]
    slow = [str(getattr(d, "_path", "")) for d in importlib.metadata.distributions()]
    assert fast == slow and fast


def test_duplicates_odd_entries_and_broken_metadata_as_importlib_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_caches: None
) -> None:
    """First of two on sys.path, same name twice in one directory, an egg-info file, the
    missing and the undecodable METADATA, a missing sys.path entry, '' (the cwd)."""
    first, second = tmp_path / "first", tmp_path / "second"
    dist_info(first, "dupe-1.0.dist-info", b"Name: dupe\nVersion: 1.0\n\n")
    dist_info(second, "dupe-2.0.dist-info", b"Name: dupe\nVersion: 2.0\n\n")
    dist_info(second, "Zeta_Pkg-0.1.dist-info", b"Name: twin\nVersion: 0.1\n\n")
    dist_info(second, "alpha-0.2.dist-info", b"Name: Twin\nVersion: 0.2\n\n")
    dist_info(second, "twin-0.3.dist-info", b"Name: twin\nVersion: 0.3\n\n")
    dist_info(second, "broken-0.1.dist-info", None)
    dist_info(second, "garbled-0.2.dist-info", b"Name: \xff\xfe\n")
    dist_info(
        second, "crlf-1.0.dist-info", b"Metadata-Version: 2.1\r\nName: crlf\r\nVersion: 1.0\r\n"
    )
    (second / "oldstyle-3.0-py3.11.egg-info").write_text(
        "Metadata-Version: 1.0\nName: oldstyle\nVersion: 3.0\n"
    )
    (second / "only_pkg_info-1.0.egg-info").mkdir()
    (second / "only_pkg_info-1.0.egg-info" / "PKG-INFO").write_text(
        "Name: only-pkg-info\nVersion: 1.0\n"
    )
    cwd = tmp_path / "cwd"
    dist_info(cwd, "here-9.dist-info", b"Name: here\nVersion: 9\n\n")
    monkeypatch.chdir(cwd)
    for entry in (str(second), str(tmp_path / "missing"), str(first), ""):
        monkeypatch.syspath_prepend(entry)
    fast = _packages.installed()
    assert fast == importlib_answer(monkeypatch)
    packages, notes = fast
    assert packages["dupe"] == "1.0" and packages["oldstyle"] == "3.0" and packages["here"] == "9"
    assert packages["crlf"] == "1.0" and packages["only-pkg-info"] == "1.0"
    assert any("broken-0.1" in note for note in notes)
    assert any("garbled-0.2" in note and "UnicodeDecodeError" in note for note in notes)


def test_a_zip_or_another_finder_is_left_to_importlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_caches: None
) -> None:
    """A zip on sys.path, or a finder that lists distributions of its own: importlib answers."""
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("zipped-1.0.dist-info/METADATA", "Name: zipped\nVersion: 1.0\n\n")
    monkeypatch.syspath_prepend(str(archive))
    assert _packages._listed(sys.path) is None
    assert _packages.installed()[0]["zipped"] == "1.0"
    monkeypatch.undo()
    _packages.clear_cache()

    class Finder:
        @staticmethod
        def find_spec(*args: Any) -> None:
            return None

        @staticmethod
        def find_distributions(context: Any = None) -> list[Any]:
            site = tmp_path / "virtual"
            dist_info(site, "virtual-4.2.dist-info", b"Name: virtual\nVersion: 4.2\n\n")
            return [importlib.metadata.PathDistribution(site / "virtual-4.2.dist-info")]

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder()])
    assert not _packages._standard_finders_only()
    assert _packages.installed()[0]["virtual"] == "4.2"
    assert importlib.machinery.PathFinder in sys.meta_path


def test_hardware_without_psutil_is_what_psutil_says(fresh_caches: None) -> None:
    """Physical cores and total memory read from /sys and /proc equal psutil's."""
    assert _hardware.physical_cores() == psutil.cpu_count(logical=False)
    assert _hardware.memory() == {"total_bytes": psutil.virtual_memory().total}


def test_physical_cores_from_sys_then_from_cpuinfo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Distinct sibling lists in /sys; without them, cpu cores per physical id (psutil's way)."""
    sys_cpu = tmp_path / "cpu"
    for index, siblings in enumerate(["0,4", "1,5", "0,4", "1,5", "2", "3"]):
        topology = sys_cpu / f"cpu{index}" / "topology"
        topology.mkdir(parents=True)
        (topology / "thread_siblings_list").write_text(siblings + "\n")
    monkeypatch.setattr(_hardware, "_SYS_CPU", sys_cpu)
    assert _hardware._linux_physical_cores() == 4
    cpuinfo = tmp_path / "cpuinfo"
    block = "processor\t: {n}\nphysical id\t: {p}\ncpu cores\t: 8\n\n"
    cpuinfo.write_text("".join(block.format(n=n, p=n // 16) for n in range(32)))
    monkeypatch.setattr(_hardware, "_SYS_CPU", tmp_path / "absent")
    monkeypatch.setattr(_hardware, "_CPUINFO", str(cpuinfo))
    assert _hardware._linux_physical_cores() == 16


@pytest.mark.parametrize("variables", [{"USER": "ada"}, {"LOGNAME": "bob", "USER": "x"}, {}])
def test_the_user_is_what_getpass_says(
    variables: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """From LOGNAME, USER, LNAME, USERNAME in that order, else the account of the uid."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    try:
        expected: str | None = getpass.getuser()
    except (KeyError, OSError):
        expected = None
    assert host()["user"] == expected


def test_parts_read_once_run_inline_afterwards(fresh_caches: None) -> None:
    """Before the first read the slow parts get threads; after it, none does."""
    options = CaptureOptions(git=False)
    threaded, _ = environment_parts(options)
    assert sorted(threaded) == ["cpu", "gpus", "memory", "packages"]
    for part in threaded.values():
        part()
    threaded, inline = environment_parts(options)
    assert threaded == {} and {"cpu", "gpus", "memory", "packages"} <= set(inline)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")
def test_a_first_start_in_a_clean_repository_loads_no_heavy_module(tmp_path: Path) -> None:
    """No importlib.metadata, psutil (without the sampler), hashlib, getpass at the first start."""
    repo = tmp_path / "proj"
    repo.mkdir()
    for command in (["init", "-q"], ["add", "-A"]):
        subprocess.run(["git", *command], cwd=repo, check=True)
    (repo / "train.py").write_text(
        "import sys, runjournal\n"
        "runjournal.start(store=sys.argv[1], system_metrics=False).end()\n"
        "heavy = ('importlib.metadata', 'psutil', 'hashlib', 'getpass')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    ident = ["-c", "user.name=Ada", "-c", "user.email=a@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", *ident, "commit", "-qm", "one"], cwd=repo, check=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, str(repo / "train.py"), str(tmp_path / "store")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr
