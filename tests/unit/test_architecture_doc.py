"""docs/ARCHITECTURE.md stays true to the tree: it names every module under app/ (and no module
that is gone), the README's module table is the same table, and no code cites a design
document outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
TABLE = re.compile(r"<!-- modules:start -->\n(.*?)<!-- modules:end -->", re.DOTALL)


def module_table(text: str) -> str:
    found = TABLE.search(text)
    assert found is not None, "the module table's markers (<!-- modules:start/end -->) are gone"
    return found.group(1)


def documented_modules() -> list[str]:
    return re.findall(r"^\| `(app/[^`]+\.py)` \|", module_table(ARCHITECTURE.read_text()), re.M)


def test_every_module_under_app_is_documented_once() -> None:
    modules = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "app").rglob("*.py"))
    documented = documented_modules()
    assert len(documented) == len(set(documented)), "a module is listed twice"
    assert sorted(documented) == modules


def test_every_documented_module_says_what_its_job_is() -> None:
    rows = re.findall(r"^\| `app/[^`]+` \| (.*) \|$", module_table(ARCHITECTURE.read_text()), re.M)
    assert rows
    assert all(len(job.split()) >= 3 for job in rows)


def test_the_readme_module_table_is_the_architecture_one() -> None:
    """Edit the table in docs/ARCHITECTURE.md, then copy it (markers included) to README.md."""
    readme = module_table((ROOT / "README.md").read_text())
    assert readme == module_table(ARCHITECTURE.read_text())


def test_no_code_cites_a_design_document_outside_the_repository() -> None:
    cited = re.compile(r"DESIGN(\.md)?\s*§|DESIGN\.md|\breference/[\w-]+\.md")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("app", "devstack", "tests", "build")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.suffix in {".py", ".sh", ".ps1", ".md", ".iss", ".spec"}
        and "node_modules" not in path.parts
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if cited.search(line) and path != Path(__file__)
    ]
    assert offenders == []
