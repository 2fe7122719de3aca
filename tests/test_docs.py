"""The documentation site: every page mkdocs.yml names exists, every public module has an API
reference page, and the site builds with no warning (`mkdocs build --strict`, as CI does)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import insider_webpush

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"
# Documented elsewhere: the command in the CLI guide (docs/cli.md), `python -m` is the command.
NOT_IN_THE_REFERENCE = {"cli", "__main__"}


def nav_pages() -> list[str]:
    """The pages the nav of mkdocs.yml names, relative to docs/."""
    lines = MKDOCS_YML.read_text(encoding="utf-8").splitlines()
    start = lines.index("nav:") + 1
    end = next(i for i in range(start, len(lines)) if lines[i] and not lines[i][0].isspace())
    return [m.group(1) for line in lines[start:end] if (m := re.search(r"([\w/.-]+\.md)$", line))]


def public_modules() -> list[str]:
    """The package's public modules and subpackages: every name not starting with '_'."""
    package = Path(insider_webpush.__file__).parent
    names = [p.stem for p in package.glob("*.py")]
    names += [p.name for p in package.iterdir() if (p / "__init__.py").exists()]
    return sorted(n for n in names if not n.startswith("_") and n not in NOT_IN_THE_REFERENCE)


def test_every_page_in_the_nav_exists() -> None:
    pages = nav_pages()
    assert "index.md" in pages
    assert "reference/index.md" in pages
    missing = [page for page in pages if not (DOCS / page).is_file()]
    assert not missing, f"mkdocs.yml names pages that do not exist: {missing}"


def test_every_page_is_in_the_nav() -> None:
    pages = set(nav_pages())
    orphans = [
        str(p.relative_to(DOCS))
        for p in DOCS.rglob("*.md")
        if str(p.relative_to(DOCS)) not in pages
    ]
    assert not orphans, f"pages missing from mkdocs.yml's nav: {orphans}"


def test_every_public_module_has_a_reference_page() -> None:
    pages = set(nav_pages())
    assert "reference/insider_webpush.md" in pages
    assert "::: insider_webpush" in (DOCS / "reference/insider_webpush.md").read_text()
    for module in public_modules():
        page = f"reference/{module}.md"
        assert page in pages, f"insider_webpush.{module} has no reference page in mkdocs.yml"
        text = (DOCS / page).read_text(encoding="utf-8")
        assert re.search(rf"^::: insider_webpush\.{module}$", text, re.M), page


def test_the_top_package_page_names_every_public_name() -> None:
    text = (DOCS / "reference/insider_webpush.md").read_text(encoding="utf-8")
    missing = [name for name in insider_webpush.__all__ if f"`{name}`" not in text]
    assert not missing, f"docs/reference/insider_webpush.md does not list {missing}"


def test_the_readme_links_to_every_guide() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    guides = [page for page in nav_pages() if "/" not in page and page != "index.md"]
    missing = [page for page in guides if f"(docs/{page})" not in readme]
    assert not missing, f"README.md does not link to {missing}"
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).is_file(), f"README.md links to {link}, which does not exist"


@pytest.mark.slow  # CI builds the site in a stage of its own too; Python 3.11 only (.ci/run)
def test_the_site_builds_with_no_warning(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, (
        f"mkdocs build --strict failed (pip install -e '.[docs]'?):\n{done.stderr}"
    )
    assert (tmp_path / "reference/client/index.html").is_file()
