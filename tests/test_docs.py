"""The repository documents itself: every ``docs/...`` citation resolves, the README's module map covers the tree."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _texts():
    yield REPO / "README.md"
    for folder in ("descnet", "tests", "tools", "benchmarks", "docs"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix in (".py", ".sh", ".md") and path.is_file():
                yield path


def test_every_docs_citation_names_a_file():
    cited = {}
    for path in _texts():
        for name in re.findall(r"\bdocs/([\w.-]+\.md)", path.read_text()):
            cited.setdefault(name, path.relative_to(REPO))
    assert {"csa.md", "protocols.md", "architecture.md", "file-layouts.md"} <= set(cited)
    missing = {f"docs/{name}": str(where) for name, where in cited.items() if not (REPO / "docs" / name).is_file()}
    assert not missing, f"cited but absent: {missing}"


def test_readme_module_map_covers_the_package():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Module map", 1)[1].split("\n## ", 1)[0]
    assert "| layer | modules | holds |" in section
    for path in sorted((REPO / "descnet").rglob("*.py")):
        if path.name == "__init__.py":
            continue
        rel = path.relative_to(REPO / "descnet")
        if len(rel.parts) == 1:  # a top-level module: named with its .py
            assert path.name in section, f"README module map lacks descnet/{rel}"
        else:  # a package's module: named by its stem in the row of its package
            row = next((line for line in section.splitlines() if f"`descnet/{rel.parts[0]}/`" in line), "")
            assert f"`{path.stem}`" in row, f"README module map lacks descnet/{rel}"


def test_readme_module_map_names_only_modules_that_exist():
    """The reverse of the check above: every module a row of the map names is in the tree."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Module map", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = line.split("|")
        if len(cells) < 4 or not cells[2].strip().startswith("`descnet/"):
            continue
        modules = cells[2]
        package = re.match(r"\s*`descnet/(\w+)/`", modules)
        if package:  # `descnet/features/`: `options`, `keypoints`, ... (a name may carry a note in brackets)
            listed = re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", modules.split(":", 1)[1]))
            for stem in listed:
                assert (REPO / "descnet" / package.group(1) / f"{stem}.py").is_file(), \
                    f"the module map names descnet/{package.group(1)}/{stem}.py, which does not exist"
        else:  # `descnet/io.py`, `parallel.py`, ...
            for name in re.findall(r"`(?:descnet/)?(\w+\.py)`", modules):
                assert (REPO / "descnet" / name).is_file(), f"the module map names descnet/{name}, which does not exist"
