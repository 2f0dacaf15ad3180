"""When Dagster rebuilds an asset by itself: only when something it is built from really changed.

A schedule or sensor tick materialises `raw_faces` (`dvc add`): same images, same md5, same data
version. Everything downstream waits for an input's *data version* to change (or its own code version,
or it being missing), so a tick on unchanged data launches nothing, and a rebuild that produces the
same bytes (a comment-only code change) stops the chain there.
"""

from __future__ import annotations

import dagster as dg

AC = dg.AutomationCondition


def rebuild_on_change() -> dg.AutomationCondition:
    changed = (
        AC.any_deps_match(AC.data_version_changed()).with_label("an input's data version changed")
        | AC.code_version_changed()
        | AC.missing().newly_true().with_label("newly missing")
    )
    return (
        changed.since_last_handled()
        & ~AC.any_deps_missing()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
        & AC.all_deps_blocking_checks_passed()
    ).with_label("rebuild when an input's data version, or the code, changed")
