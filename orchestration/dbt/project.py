"""The dbt project as Dagster sees it. The manifest must exist before the code location loads:
``make manifest`` (or ``dbt parse``) prepares it; under Dagster's development CLIs (``dagster dev``, and every
``dg`` command, ``dg launch`` included) it is re-prepared here when a project file is newer than it."""

from pathlib import Path

from dagster_dbt import DbtProject

from pitwall.paths import DBT_PROJECT_DIR

# What dbt parses: dbt_project.yml's *-paths folders and the files beside it.
PARSED_FOLDERS = ("models", "macros", "tests", "seeds", "analyses", "snapshots")
PARSED_FILES = ("dbt_project.yml", "profiles.yml", "selectors.yml", "packages.yml", "dependencies.yml")


def newest_project_change(project_dir: Path) -> float:
    """The newest modification time among the files dbt parses (0 when there are none)."""
    files = [project_dir / name for name in PARSED_FILES if (project_dir / name).exists()]
    for folder in PARSED_FOLDERS:
        files.extend(path for path in (project_dir / folder).rglob("*") if path.is_file())
    return max((path.stat().st_mtime for path in files), default=0.0)


def manifest_is_stale(project: DbtProject) -> bool:
    """No manifest yet, or a file dbt parses changed after it was written."""
    manifest = Path(project.manifest_path)
    return not manifest.exists() or newest_project_change(Path(project.project_dir)) > manifest.stat().st_mtime


dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# dagster-dbt's prepare_if_dev() runs `dbt parse` whenever a dev CLI loads the code (~16 s a time, on each
# `dg launch` of `make demo` right after `make manifest`): parse only when the manifest is behind the files.
if dbt_project.preparer.using_dagster_dev() and manifest_is_stale(dbt_project):
    dbt_project.preparer.prepare(dbt_project)
