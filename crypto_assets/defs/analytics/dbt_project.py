"""Where the dbt project is, and its manifest prepared whenever it is missing or older than the project's files.

`DbtProject.prepare_if_dev()` only parses under `dagster dev`; tests, CI and `dagster-webserver`/daemon deployments
load the definitions without it. `ensure_manifest` runs `dbt parse` (about 4 s here) into a temporary target folder
and moves the manifest into place atomically, so two processes loading the definitions at once never read half a
file. It is skipped (a directory walk of a few milliseconds) while the manifest is newer than every project file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dagster_dbt import DbtProject

from crypto_assets.settings import DBT_PROJECT_DIR

PROJECT_FILES = ("dbt_project.yml", "profiles.yml")
PROJECT_FOLDERS = ("models", "macros", "tests")


RUN_FOLDERS_KEPT = 10  # dagster-dbt gives every invocation its own target/<op>-<ids> folder (about 3 MB)


class ManifestError(RuntimeError):
    """`dbt parse` failed: the message carries dbt's own output."""


def dbt_executable() -> str:
    """The dbt of this interpreter's environment (a venv's bin/ need not be on PATH), else `dbt` from PATH."""
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.exists() else "dbt"


def dbt_project(project_dir: Path = DBT_PROJECT_DIR) -> DbtProject:
    return DbtProject(project_dir=project_dir, profiles_dir=project_dir)


def newest_source_mtime(project_dir: Path) -> float:
    """The newest modification time among the project's own files (what `dbt parse` reads)."""
    times = [(project_dir / name).stat().st_mtime for name in PROJECT_FILES if (project_dir / name).exists()]
    for folder in PROJECT_FOLDERS:
        for root, _dirs, files in os.walk(project_dir / folder):
            times.extend(os.stat(os.path.join(root, f)).st_mtime for f in files)
    return max(times, default=0.0)


def manifest_is_current(project: DbtProject) -> bool:
    manifest = project.manifest_path
    return manifest.exists() and manifest.stat().st_mtime >= newest_source_mtime(Path(project.project_dir))


def ensure_manifest(project: DbtProject) -> Path:
    """Return the manifest path, running `dbt parse` first when the manifest is missing or stale."""
    if manifest_is_current(project):
        return project.manifest_path
    project_dir = Path(project.project_dir)
    target = project.manifest_path.parent
    target.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="parse-", dir=target))
    try:
        command = [
            dbt_executable(),
            "parse",
            "--quiet",
            "--no-partial-parse",
            "--project-dir",
            str(project_dir),
            "--profiles-dir",
            str(project.profiles_dir),
            "--target-path",
            str(scratch),
        ]
        done = subprocess.run(command, cwd=project_dir, capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not (scratch / "manifest.json").exists():
            raise ManifestError(
                f"dbt parse of {project_dir} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}".strip()
            )
        os.replace(scratch / "manifest.json", project.manifest_path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return project.manifest_path


def prune_run_folders(target_dir: Path, keep: int = RUN_FOLDERS_KEPT, prefix: str = "dbt_") -> list[Path]:
    """Delete all but the ``keep`` newest per-invocation folders (``<prefix>*``) under ``target_dir``: hourly runs
    would otherwise add some 70 MB a day. Returns the folders removed."""
    folders = sorted(
        (p for p in target_dir.glob(f"{prefix}*") if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for folder in folders[keep:]:
        shutil.rmtree(folder, ignore_errors=True)
    return folders[keep:]
