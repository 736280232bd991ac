"""Facts that drift get a test: README.md and docs/ held to the code they describe.

- every relative link resolves to a file, and every ``#anchor`` to a heading of its target (GitHub's slugs);
- every ``make <target>`` written in code is a target of the Makefile;
- every repo path written in backticks exists (a generated one, under a folder .gitignore names, excepted);
- the README's configuration table lists exactly the variables ``crypto_assets/settings.py`` reads, with its defaults;
- every docs page is linked from the README, and the README stays short.

Each check returns the problems it finds; the last test plants one of each and expects every check to report it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import crypto_assets.settings as settings_module

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 160

# Repo paths with one of these endings are checked even when written without their folder (`completeness.py`).
SOURCE_SUFFIXES = {".py", ".yaml", ".yml", ".toml", ".sh", ".sql", ".md"}
# Never searched for files: environments, caches and run-time state, whatever is on this machine.
NOT_SEARCHED = {".git", ".venv", ".dagster_home", ".lake", ".pytest_cache", ".hypothesis", "__pycache__", "target"}

CODE_SPAN = re.compile(r"`([^`]+)`")  # inside one paragraph, which may wrap it over lines
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
MAKE_TARGET_LINE = re.compile(r"^([A-Za-z0-9_.][A-Za-z0-9_.-]*)\s*:(?!=)")
DOTTED_MODULE = re.compile(r"^crypto_assets(?:_tests)?(?:\.[A-Za-z_]\w*)+$")


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# ---- reading Markdown ----------------------------------------------------------------------------------------------
def split_fences(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """The (line number, line) pairs outside fenced code blocks, and those inside them (fence lines dropped)."""
    prose, code, fence = [], [], None
    for number, line in enumerate(text.splitlines(), start=1):
        marker = re.match(r"^\s{0,3}(`{3,}|~{3,})", line)
        if marker and (fence is None or marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence)):
            fence = marker.group(1) if fence is None else None
            continue
        (prose if fence is None else code).append((number, line))
    return prose, code


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text without markup, lower-case, punctuation but hyphens and underscores
    dropped, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts by its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a Markdown file: its headings' slugs (a repeated one numbered as GitHub does), HTML anchors."""
    prose, _ = split_fences(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose:
        found.update(HTML_ANCHOR.findall(line))
        heading = HEADING.match(line)
        if not heading:
            continue
        slug = github_slug(heading.group(2))
        if slug in seen:
            seen[slug] += 1
            found.add(f"{slug}-{seen[slug]}")
        else:
            seen[slug] = 0
            found.add(slug)
    return found


def paragraphs(path: Path) -> Iterator[tuple[int, str]]:
    """(first line, text) of every run of non-blank lines outside fenced code blocks; a table row is a run of its own
    (its cells' code spans never continue on the next row)."""
    prose, _ = split_fences(path.read_text(encoding="utf-8"))
    start, lines, previous = 0, [], -1
    for number, line in prose:
        ends_run = not line.strip() or number != previous + 1 or line.lstrip().startswith("|")
        if ends_run and lines:
            yield start, "\n".join(lines)
            lines = []
        if line.strip():
            if not lines:
                start = number
            lines.append(line)
            if line.lstrip().startswith("|"):
                yield start, "\n".join(lines)
                lines = []
        previous = number
    if lines:
        yield start, "\n".join(lines)


def matches(path: Path, pattern: re.Pattern[str]) -> Iterator[tuple[int, re.Match[str]]]:
    """(line, match) of ``pattern`` in every paragraph outside code blocks."""
    for start, text in paragraphs(path):
        for match in pattern.finditer(text):
            yield start + text.count("\n", 0, match.start()), match


def links(path: Path) -> Iterator[tuple[int, str]]:
    """(line, target) of every inline and reference link outside code."""
    for start, text in paragraphs(path):
        without_code = CODE_SPAN.sub(
            lambda span: "_" * len(span.group(0).split("\n")[0]) + "\n" * span.group(0).count("\n"), text
        )
        for match in LINK.finditer(without_code):
            yield start + without_code.count("\n", 0, match.start()), match.group(1)
        for offset, line in enumerate(without_code.splitlines()):
            reference = REFERENCE_LINK.match(line)
            if reference:
                yield start + offset, reference.group(1)


def code_spans(path: Path) -> Iterator[tuple[int, str]]:
    """(line, span) of every inline code span outside fenced blocks, a span wrapped over lines joined by a space."""
    for number, match in matches(path, CODE_SPAN):
        yield number, re.sub(r"\s*\n\s*", " ", match.group(1))


def code_texts(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every inline code span outside fences, and of every line inside fenced blocks."""
    yield from code_spans(path)
    yield from split_fences(path.read_text(encoding="utf-8"))[1]


# ---- the checks: each returns its problems, one line each ----------------------------------------------------------
def link_problems(path: Path) -> list[str]:
    problems = []
    for number, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        where = f"{relative(path)}:{number}: link {target!r}"
        if not destination.exists():
            problems.append(f"{where}: {file_part} does not exist")
        elif anchor:
            if destination.suffix != ".md":
                problems.append(f"{where}: an anchor into {relative(destination)}, which is not Markdown")
            elif anchor not in anchors(destination):
                problems.append(f"{where}: {relative(destination)} has no heading with anchor #{anchor}")
    return problems


def makefile_targets(makefile: Path = ROOT / "Makefile") -> set[str]:
    return {
        match.group(1)
        for line in makefile.read_text(encoding="utf-8").splitlines()
        if (match := MAKE_TARGET_LINE.match(line))
    }


def make_targets_written(path: Path) -> Iterator[tuple[int, str]]:
    """(line, target) of every `make <target>` in code: variables (NAME=value) and options around it skipped."""
    for number, text in code_texts(path):
        words = text.split()
        for index, word in enumerate(words):
            if word != "make":
                continue
            for following in words[index + 1 :]:
                if "=" in following or following.startswith("-"):
                    continue
                target = following.rstrip(";,.)'\"")
                if re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*", target):
                    yield number, target
                break


def make_target_problems(path: Path, targets: set[str]) -> list[str]:
    return [
        f"{relative(path)}:{number}: `make {target}`: the Makefile has no target {target!r}"
        for number, target in make_targets_written(path)
        if target not in targets
    ]


def ignored_folders(root: Path = ROOT) -> list[str]:
    """The folders .gitignore names (`dbt_crypto_pipeline/target/`): what is under them is made at run time."""
    gitignore = root / ".gitignore"
    lines = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.exists() else []
    return [line.strip().strip("/") for line in lines if line.strip().endswith("/") and "*" not in line]


def repo_files(root: Path = ROOT) -> list[str]:
    """Every file and folder of the repository as a relative POSIX path, environments and run-time state left out."""
    found = []
    stack = [root]
    while stack:
        folder = stack.pop()
        for entry in folder.iterdir():
            if entry.name in NOT_SEARCHED or entry.name.endswith(".egg-info"):
                continue
            found.append(entry.relative_to(root).as_posix() + ("/" if entry.is_dir() else ""))
            if entry.is_dir() and not entry.is_symlink():
                stack.append(entry)
    return found


def module_problem(dotted: str, root: Path = ROOT) -> str | None:
    """Why `crypto_assets.x.y[.name]` names nothing of the project, or None: its longest module prefix must exist and
    define the one name left, if any."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = root.joinpath(*parts[:cut])
        module = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
        if not module.exists():
            continue
        rest = parts[cut:]
        if not rest:
            return None
        if len(rest) > 1:
            return f"{relative(module)} is a module, and {'.'.join(rest)} is not one of its names"
        pattern = rf"^(?:async\s+def|def|class)\s+{rest[0]}\b|^{rest[0]}\s*[:=]"
        if re.search(pattern, module.read_text(encoding="utf-8"), re.MULTILINE):
            return None
        return f"{relative(module)} defines no {rest[0]!r}"
    return f"no module {dotted}"


def path_problems(path: Path, root: Path = ROOT) -> list[str]:
    """Every code span that looks like a repo path or a project module must name something that exists."""
    top_level = {entry.name for entry in root.iterdir()}
    files = repo_files(root)
    generated = ignored_folders(root)
    problems = []
    for number, span in code_spans(path):
        where = f"{relative(path)}:{number}: `{span}`"
        if DOTTED_MODULE.match(span):
            problem = module_problem(span, root)
            if problem:
                problems.append(f"{where}: {problem}")
            continue
        if re.search(r"[\s<>{}$~|\[\]]|://|^/|\.\.\.", span):
            continue  # a command, a pattern with placeholders, a URL or an absolute path: not a repo path
        name, _, attribute = span.partition(":")  # file.py:Name
        if attribute and not re.fullmatch(r"[A-Za-z_]\w*", attribute):
            continue
        first, *rest = name.split("/")
        if "*" in name:
            if first in top_level and not list(root.glob(name)):
                problems.append(f"{where}: matches no file")
            continue
        last = name.rstrip("/").rsplit("/", 1)[-1]
        if first in top_level and rest:
            if ("." in last or name.endswith("/")) and not (root / name).exists():
                if not any(name == folder or name.startswith(folder + "/") for folder in generated):
                    problems.append(f"{where}: no such file or folder")
        elif Path(last).suffix in SOURCE_SUFFIXES and not re.fullmatch(r"\.\w+", last):
            # a file named without (all of) its folders: some file of the repository must end with it
            if not any(file == name or file.endswith("/" + name) for file in files):
                problems.append(f"{where}: no file of the repository is {name}")
    return problems


def readme_configuration_table(readme: Path = README) -> dict[str, str]:
    """variable -> default cell of the table under the README's `## Configuration` heading."""
    rows: dict[str, str] = {}
    in_section = False
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            in_section = line.strip() == "## Configuration"
            continue
        if in_section:
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if len(cells) >= 3 and re.fullmatch(r"`[A-Z][A-Z0-9_]*`", cells[0]):
                rows[cells[0].strip("`")] = cells[1]
    return rows


def variables_read_by_settings() -> dict[str, object]:
    """variable -> default, from the source of ``Settings.from_env``: every ``get("NAME")`` call, and the default
    beside it (``get(NAME) or DEFAULT``, ``parse_int(NAME, get(NAME), DEFAULT, ...)``, ``... if get(NAME) else
    DEFAULT``) evaluated in the module with every variable unset; None when there is none."""
    tree = ast.parse(Path(settings_module.__file__).read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def name_read(node: ast.AST) -> str | None:
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "get"
            and len(node.args) == 1
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            return node.args[0].value
        return None

    def evaluate(expression: ast.expr) -> object:
        code = compile(ast.Expression(expression), settings_module.__file__, "eval")
        return eval(code, dict(vars(settings_module)), {"get": lambda name: None})  # noqa: S307 - our own source

    defaults: dict[str, object] = {}
    for node in ast.walk(tree):
        variable = name_read(node)
        if variable is None:
            continue
        defaults.setdefault(variable, None)
        parent = parents[node]
        default = None
        if isinstance(parent, ast.BoolOp) and isinstance(parent.op, ast.Or) and parent.values[0] is node:
            default = parent.values[1]
        elif isinstance(parent, ast.IfExp) and parent.test is node:
            default = parent.orelse
        elif (
            isinstance(parent, ast.Call)
            and isinstance(parent.func, ast.Name)
            and parent.func.id == "parse_int"
            and len(parent.args) > 2
            and parent.args[1] is node
        ):
            default = parent.args[2]
        if default is not None:
            defaults[variable] = evaluate(default)
    return defaults


def as_documented(value: object) -> str | None:
    """A default as the README writes it: paths from the project root as `<project root>/...`, under the default
    Dagster home as `$DAGSTER_HOME/...`, lists comma-separated."""
    if value is None:
        return None
    if isinstance(value, tuple | list):
        return ",".join(str(item) for item in value)
    text = str(value)
    home = str(settings_module.DEFAULT_DAGSTER_HOME)
    if text.startswith(home + "/"):
        return "$DAGSTER_HOME" + text[len(home) :]
    root = str(settings_module.PROJECT_ROOT)
    if text == root or text.startswith(root + "/"):
        return "<project root>" + text[len(root) :]
    return text


def configuration_problems(table: dict[str, str], read: dict[str, object]) -> list[str]:
    problems = [
        f"README configuration table: {name} is not read by settings.py" for name in sorted(set(table) - set(read))
    ]
    problems += [
        f"README configuration table: settings.py reads {name}, the table omits it"
        for name in sorted(set(read) - set(table))
    ]
    for name in sorted(set(table) & set(read)):
        cell = table[name]
        written = CODE_SPAN.search(cell)
        expected = as_documented(read[name])
        if expected is None:
            if not cell.lower().startswith("unset"):
                problems.append(
                    f"README configuration table: {name} has no default in settings.py, the table says {cell!r}"
                )
        elif written is None or written.group(1) != expected:
            problems.append(
                f"README configuration table: {name} defaults to `{expected}` in settings.py, the table says {cell!r}"
            )
    return problems


# ---- the tests -----------------------------------------------------------------------------------------------------
def test_github_slug_rule():
    assert github_slug("Deep history: Binance's daily archive") == "deep-history-binances-daily-archive"
    assert github_slug("The `minute_complete` check") == "the-minute_complete-check"
    assert github_slug("What is proven here, and what is not") == "what-is-proven-here-and-what-is-not"
    assert github_slug("Contributing: which tier a test belongs in") == "contributing-which-tier-a-test-belongs-in"
    assert github_slug("Set-up: from a fresh machine") == "set-up-from-a-fresh-machine"


def test_every_relative_link_and_anchor_resolves():
    problems = [problem for path in markdown_files() for problem in link_problems(path)]
    assert not problems, "\n".join(problems)


def test_every_make_target_written_is_a_makefile_target():
    targets = makefile_targets()
    problems = [problem for path in markdown_files() for problem in make_target_problems(path, targets)]
    assert not problems, "\n".join(problems)


def test_every_repo_path_in_backticks_exists():
    # Not in the ADRs: each records a decision as of its date, third-party files included (Dagster's execute_step.py),
    # and is not rewritten as the code moves on. Their links are checked like every page's.
    pages = [path for path in markdown_files() if not path.is_relative_to(DOCS / "adr")]
    problems = [problem for path in pages for problem in path_problems(path)]
    assert not problems, "\n".join(problems)


def test_readme_configuration_table_matches_settings():
    table, read = readme_configuration_table(), variables_read_by_settings()
    assert len(read) >= 10, f"found too few variables in settings.py to trust the scan: {sorted(read)}"
    problems = configuration_problems(table, read)
    assert not problems, "\n".join(problems)


def test_every_docs_page_is_linked_from_the_readme():
    """From the README itself, or, for a decision record, from the records' index (docs/adr/README.md), which the
    README links."""
    adr_index = DOCS / "adr" / "README.md"
    linked = {(README.parent / target.partition("#")[0]).resolve() for _, target in links(README)}
    if adr_index.resolve() in linked:
        linked |= {(adr_index.parent / target.partition("#")[0]).resolve() for _, target in links(adr_index)}
    unlinked = [relative(page) for page in sorted(DOCS.rglob("*.md")) if page.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_readme_stays_short():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; the front door stays under {MAX_README_LINES}"


def test_each_check_reports_a_planted_mistake(tmp_path):
    (tmp_path / ".gitignore").write_text("generated/\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "generated").mkdir()
    (tmp_path / "pkg" / "real.py").write_text("def there():\n    pass\n")
    (tmp_path / "Makefile").write_text("check: lint\n\tpytest\nlint:\n\truff check .\nX := 1\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n## The `minute_complete` check\n\n"
        "[fine](#the-minute_complete-check), [no anchor](#nowhere), [no file](missing.md), [web](https://example.com)\n\n"
        "`make check`, `make lint`, `make nonsense`, `make demo DEMO_HOSTILE=1`\n\n"
        "`pkg/real.py`, `pkg/gone.py`, `real.py`, `renamed.py`, `generated/made.json`, `pkg/real.py:there`\n\n"
        "```\n[not a link](nowhere.md)\n```\n"
    )
    assert [problem.replace(f"{tmp_path}/", "").split(": ", 1)[1] for problem in link_problems(page)] == [
        "link '#nowhere': page.md has no heading with anchor #nowhere",
        "link 'missing.md': missing.md does not exist",
    ]
    targets = makefile_targets(tmp_path / "Makefile")
    assert targets == {"check", "lint"}
    assert [problem.split("`: ", 1)[1] for problem in make_target_problems(page, targets)] == [
        "the Makefile has no target 'nonsense'",
        "the Makefile has no target 'demo'",
    ]
    assert [problem.split(": ", 1)[1] for problem in path_problems(page, root=tmp_path)] == [
        "`pkg/gone.py`: no such file or folder",
        "`renamed.py`: no file of the repository is renamed.py",
    ]
    assert module_problem("crypto_assets.settings.Settings") is None
    assert module_problem("crypto_assets.settings.NoSuchName") == "crypto_assets/settings.py defines no 'NoSuchName'"
    assert configuration_problems(
        {"A_URL": "`https://a`", "B_DAYS": "`30`", "C_GONE": "`1`", "D_OPTIONAL": "`x`"},
        {"A_URL": "https://a", "B_DAYS": 31, "D_OPTIONAL": None, "E_NEW": 2},
    ) == [
        "README configuration table: C_GONE is not read by settings.py",
        "README configuration table: settings.py reads E_NEW, the table omits it",
        "README configuration table: B_DAYS defaults to `31` in settings.py, the table says '`30`'",
        "README configuration table: D_OPTIONAL has no default in settings.py, the table says '`x`'",
    ]
