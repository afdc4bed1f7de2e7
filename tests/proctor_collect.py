"""pytest plugin (loaded with `-p proctor_collect`): the repository root is the `proctor` package
(its `__init__.py` sits at the root), so pytest would collect the root as a Python package and
import that `__init__.py` under the checkout folder's name — a second copy of proctor named
`main`, or an ImportError when the folder name is not an identifier (`proctor-main`).
Collect the root as a plain directory instead; tests import `proctor` from the install."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if path == parent.config.rootpath and (path / '__init__.py').is_file():
        return pytest.Dir.from_parent(parent, path=path)
    return None
