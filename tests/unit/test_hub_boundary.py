"""The hub reaches the portal only over its internal API: no module under
``aitestbed.hub`` imports ``aitestbed.portal``, neither in its source (every import
statement, also inside functions) nor when imported and set up."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import aitestbed.hub

HUB_DIR = Path(aitestbed.hub.__file__).parent
FORBIDDEN = "aitestbed.portal"


def _absolute(module: str | None, level: int, package: str) -> str:
    """The absolute name of ``from <level dots><module> import ...`` inside ``package``."""
    if level == 0:
        return module or ""
    parts = package.split(".")
    base = parts[: len(parts) - level + 1]
    return ".".join([*base, module] if module else base)


def portal_imports(source: str, package: str = "aitestbed.hub") -> list[str]:
    """Every portal module that ``source`` imports (statements, import_module, __import__)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if called in ("import_module", "__import__") and isinstance(first, ast.Constant):
                names = [str(first.value)]
        hit = next((n for n in names if n == FORBIDDEN or n.startswith(FORBIDDEN + ".")), None)
        if hit:
            found.append((node.lineno, hit))
    return [f"line {line}: {name}" for line, name in sorted(found)]


def test_the_checker_finds_every_kind_of_portal_import():
    planted = (
        "import os\n"
        "def f():\n"
        "    from aitestbed.portal.directory import apply_sso_grants\n"
        "from ..portal import db\n"
        "import aitestbed.portal.models as m\n"
        "importlib.import_module('aitestbed.portal.service')\n"
        "from aitestbed.portals_elsewhere import x\n"  # another name: not the portal
        "cmd = ['-m', 'aitestbed.portal', 'serve']\n"  # running it is not importing it
    )
    assert portal_imports(planted) == [
        "line 3: aitestbed.portal.directory",
        "line 4: aitestbed.portal",
        "line 5: aitestbed.portal.models",
        "line 6: aitestbed.portal.service",
    ]


def test_no_hub_module_imports_the_portal_in_its_source():
    modules = sorted(HUB_DIR.rglob("*.py"))
    assert len(modules) >= 10  # the hub package was found
    offenders = {
        str(path.relative_to(HUB_DIR)): hits
        for path in modules
        if (hits := portal_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_importing_and_setting_up_the_hub_loads_no_portal_module(tmp_path):
    code = (
        "import importlib, pkgutil, sys, dataclasses\n"
        "import aitestbed.hub\n"
        "for m in pkgutil.walk_packages(aitestbed.hub.__path__, 'aitestbed.hub.'):\n"
        "    importlib.import_module(m.name)\n"
        "from traitlets.config import Config\n"
        "from aitestbed.hub.setup import setup_portal\n"
        "from aitestbed.settings import load_settings\n"
        f"s = load_settings({str(HUB_DIR.parents[2] / 'hub_config' / 'settings.yaml')!r})\n"
        "site = dataclasses.replace(s.site, state_dir=__import__('pathlib').Path("
        f"{str(tmp_path)!r}))\n"
        "setup_portal(Config(), dataclasses.replace(s, site=site))\n"
        "print(len([m for m in sys.modules if m.startswith('aitestbed.hub.')]))\n"
        "print(sorted(m for m in sys.modules if m.startswith('aitestbed.portal')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    count, loaded = result.stdout.strip().splitlines()
    assert int(count) >= 10  # every hub module was imported
    assert loaded == "[]"


def test_the_launcher_prepares_the_database_with_the_portals_own_command(tmp_path, monkeypatch):
    import yaml
    from aitestbed.hub.demo import prepare_portal_database
    from sqlalchemy import create_engine, inspect

    doc = yaml.safe_load((HUB_DIR.parents[2] / "hub_config" / "settings.yaml").read_text())
    doc["site"]["state_dir"] = str(tmp_path / "state")
    monkeypatch.delenv("AITESTBED_DATABASE_URL", raising=False)  # the SQLite file below
    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump(doc))
    assert prepare_portal_database(settings) == 0
    engine = create_engine(f"sqlite:///{tmp_path / 'state' / 'portal.sqlite'}")
    try:
        assert {"projects", "memberships", "session_records"} <= set(
            inspect(engine).get_table_names()
        )
    finally:
        engine.dispose()
    (tmp_path / "broken.yaml").write_text("site: [not, a, mapping]\n")
    assert prepare_portal_database(tmp_path / "broken.yaml") == 2  # the settings error code
