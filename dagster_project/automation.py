"""When Dagster rebuilds an asset by itself: only when something it is built from really changed.

A schedule or sensor tick materialises `raw_faces` (`dvc add`): same images, same md5, same data
version. Everything downstream waits for an input's *data version* to change (or its own code version,
or it never having been built), so a tick on unchanged data launches nothing, and a rebuild that
produces the same bytes (a comment-only code change) stops the chain there. On a fresh instance,
materialising `raw_faces` is the one button that builds everything.
"""

from __future__ import annotations

import dagster as dg

from dagster_project.project import code_version

AC = dg.AutomationCondition


def rebuild_on_change() -> dg.AutomationCondition:
    changed = (
        AC.any_deps_match(AC.data_version_changed()).with_label("an input's data version changed")
        | AC.code_version_changed()
        | AC.missing().newly_true().with_label("newly missing")
    )
    # Dagster's "newly missing" only sees partitions that go missing after the sensor's first look; a
    # partition that was already missing then (a fresh instance: the baseline reports, which depend on
    # no corpus) would never be built. A failed one waits for a person (or its retry policy), not a loop.
    never_built = (AC.missing() & ~AC.execution_failed() & ~AC.newly_requested()).with_label("never built")
    return (
        (changed.since_last_handled() | never_built)
        & ~AC.any_deps_missing()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
        & AC.all_deps_blocking_checks_passed()
    ).with_label("rebuild when an input's data version, or the code, changed")


def stage_asset(stage: str, *, group: str, kinds: set[str], pool: str = "dvc", **kwargs) -> dg.AssetsDefinition:
    """`@dg.asset` for an asset that materialises by reproducing DVC stage(s) running `stage`'s code:
    what all of them share (owner, the DVC lock's pool, a code version from the stage's code
    dependencies, rebuilt only on a change) is said once here."""
    return dg.asset(group_name=group, kinds={*kinds, "dvc"}, owners=["team:paco-fr"], pool=pool,
                    code_version=code_version(stage), automation_condition=rebuild_on_change(), **kwargs)
