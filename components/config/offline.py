"""``offline.bundle``: the bundle must hold everything the stack fetches, and the program then
takes its manifests and charts from it.

The bundle's contents come from :mod:`components.bundle` (imported when needed: it reads this
package's models).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from components.config.schema import LabConfig

FILL_COMMAND = "./lab bundle fill"
SHOWN = 5  # missing entries named in a problem; the rest are counted


def bundle_dir(cfg: LabConfig) -> Optional[Path]:
    if cfg.offline.bundle is None:
        return None
    return Path(os.path.expanduser(cfg.offline.bundle)).absolute()


def fill_hint(cfg: LabConfig) -> str:
    stack = "" if cfg.stack == "lab" else f"K8S_LAB_STACK={cfg.stack} "
    return f"fill it with `{stack}{FILL_COMMAND}`"


def check_offline_bundle(cfg: LabConfig, add) -> None:
    """One problem when the bundle is missing or lacks anything this stack needs, naming what."""
    root = bundle_dir(cfg)
    if root is None:
        return
    from components.bundle.plan import missing_from_bundle
    from components.bundle.store import INDEX

    if not (root / INDEX).is_file():
        add("offline.bundle", f"{root} holds no bundle (no {INDEX}); {fill_hint(cfg)}")
        return
    try:
        missing = missing_from_bundle(cfg, root)
    except ValueError as err:
        add("offline.bundle", f"{root}: {err}")
        return
    if missing:
        named = ", ".join(missing[:SHOWN]) + (f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else "")
        add("offline.bundle", f"the bundle in {root} lacks {len(missing)} of this stack's files and images ({named}); {fill_hint(cfg)}")


def with_bundle_sources(cfg: LabConfig) -> LabConfig:
    """The config with every manifest and chart the user did not give taken from the bundle."""
    root = bundle_dir(cfg)
    if root is None:
        return cfg
    from components.bundle.contents import bundle_contents

    update: dict[str, dict] = {}
    for source in bundle_contents(cfg).sources:
        if source.path is None or source.key == "kubernetes.cni":
            continue
        section, _, rest = source.key.partition(".")
        path = str(root / source.path)
        if section == "app_options":
            app, _, field = rest.partition(".")
            options = update.setdefault("app_options", {})
            options[app] = {**options.get(app, {}), field: path}
        else:
            update.setdefault(section, {})[rest] = path
    if not update:
        return cfg
    changes = {}
    for section, fields in update.items():
        model = getattr(cfg, section)
        if section == "app_options":
            apps = {}
            for app, app_fields in fields.items():
                attribute = app.replace("-", "_")
                apps[attribute] = getattr(model, attribute).model_copy(update=app_fields)
            changes[section] = model.model_copy(update=apps)
        else:
            changes[section] = model.model_copy(update=fields)
    return cfg.model_copy(update=changes)
