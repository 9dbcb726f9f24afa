"""Wheel build hook: package the template's release history (see sessionforge/history.py).

The wheel gets ``sessionforge/_history.bundle``: a git bundle holding the template files of
every commit of this repository's main line that changed the template since 0.1.0, each
tagged with the name projects record (``v0.2.0``, ``v0.2.0-3-g1a2b3c4``), the last one being
the template packaged. `sessionforge update` merges from it. The sdist carries the bundle
too, for the wheel built from it. Built without git, or from a shallow clone, there is no
history, the build says so, and `sessionforge update` refuses to run.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def _load_history(root: Path) -> ModuleType:
    # Loaded by path: the package itself (and its dependencies) is not installed here.
    path = root / "generator" / "sessionforge" / "history.py"
    spec = importlib.util.spec_from_file_location("_sessionforge_history", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class TemplateHistoryHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if self.target_name not in ("wheel", "sdist") or version == "editable":
            return  # an editable install renders from the checkout itself
        root = Path(self.root)
        history = _load_history(root)
        prebuilt = root / "generator" / "sessionforge" / history.BUNDLE_NAME
        # The sdist carries the bundle (it has no .git to read tags from): a wheel built
        # from it packages that bundle.
        target = {
            "wheel": f"sessionforge/{history.BUNDLE_NAME}",
            "sdist": f"generator/sessionforge/{history.BUNDLE_NAME}",
        }[self.target_name]
        if not (root / ".git").exists() and prebuilt.is_file():
            build_data["force_include"][str(prebuilt)] = target
            return
        self._tmp = tempfile.TemporaryDirectory(prefix="sessionforge-build-")
        bundle = Path(self._tmp.name) / history.BUNDLE_NAME
        try:
            tags = history.build_history(
                bundle, template=root, version=self.metadata.version, repo=root
            )
        except history.HistoryError as exc:
            self.app.display_warning(
                f"no template history in this {self.target_name} ({exc}): "
                "`sessionforge update` will not work for projects it generates"
            )
            return
        shown = tags if len(tags) <= 6 else [*tags[:2], "...", *tags[-3:]]
        self.app.display_info(f"template history ({len(tags)} versions): {', '.join(shown)}")
        build_data["force_include"][str(bundle)] = target

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
