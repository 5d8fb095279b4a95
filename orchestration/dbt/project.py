"""The dbt project as Dagster sees it. The manifest must exist before the code location loads:
``make manifest`` (or ``dbt parse``) prepares it; ``dagster dev`` re-prepares it itself."""

from dagster_dbt import DbtProject

from pitwall.paths import DBT_PROJECT_DIR

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()
