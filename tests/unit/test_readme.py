"""Every command in README.md is run by a test, and the README stays a page a newcomer reads in one sitting.

The README's fenced shell blocks are read command by command. Each command has one entry in
``RUN_BY``: a test in this file that runs it here (the cheap ones), or the test elsewhere that runs
it, as written or through the same config and entry function at test sizes. Independently of that,
every ``serendip`` command is parsed here into its config exactly as written, so a renamed flag fails
at once, and every ``curl`` body is validated against the API's request model.
"""

from __future__ import annotations

import importlib
import itertools
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAX_LINES = 250
SHELL_FENCES = ("bash", "sh", "shell", "console")
DEMO_TEST = "tests/e2e/test_demo.py::test_demo_quick_runs_the_loop_and_writes_the_report"
SERVING = "tests/integration/test_serving.py"
HERE = "tests/unit/test_readme.py"

RUN_BY: dict[str, str] = {
    # quick start
    "make demo": DEMO_TEST,  # `serendip demo --quick`; `make -n demo` is checked here
    "make test": f"{HERE}::test_the_quick_start_make_targets_run_serendip_demo_and_pytest",
    # commands
    "serendip --help": f"{HERE}::test_serendip_help_names_every_command_of_the_readme",
    "serendip simulate --out data/shop --users 10000 --items 5000 --days 30 --seed 0":
        "tests/unit/test_simulator_cli.py::test_simulate_writes_readable_tables_and_the_world",
    "serendip summarize --data data/shop": "tests/unit/test_data_summary.py::test_summary_counts_the_shop",
    "serendip train --data data/shop --out models/shop --workers 2 --epochs 3":
        "tests/integration/test_training.py::test_two_workers_survive_a_killed_worker_then_a_rerun_resumes",
    "serendip tune hparams --data data/shop --out runs/hp --trials 8 --search optuna --scheduler asha":
        "tests/integration/test_tuning_hparams.py::test_asha_sweep_of_four_trials_exports_a_servable_model",
    "serendip tune exploration --world data/shop/world --out runs/explore --trials 24":
        "tests/integration/test_tuning_exploration.py::"
        "test_online_sweep_picks_the_least_regret_and_its_best_explorer_and_draws_its_plots",
    "serendip serve --model models/shop --data data/shop --arms control=greedy explore=lints:scale=0.5":
        DEMO_TEST,  # the demo serves its A/B arms through serve_main, as `serendip serve --arms` does
    "serendip evaluate --log runs/serve-state/impressions --model models/shop --policy greedy linucb thompson "
    "--arm control=greedy explore=lints:scale=0.5": DEMO_TEST,  # the same command on the demo's log, its arms named
    "serendip tune exploration --log runs/serve-state/impressions --model models/shop --out runs/ope-sweep "
    "--offline.arm control=greedy explore=lints:scale=0.5": DEMO_TEST,  # likewise
    "serendip retrain --model models/shop --logs runs/serve-state/impressions --data data/shop --out models/shop-2":
        "tests/integration/test_retrain.py::test_retrain_from_a_served_log_makes_a_new_version",
    "serendip deploy --model models/shop-2":
        "tests/integration/test_redeploy.py::test_a_new_model_goes_live_without_losing_the_bandit",
    "serendip evaluate --obd ../shared/data/obd --policy logged uniform softmax:temperature=0.05":
        "tests/unit/test_ope_evaluate.py::test_serendip_evaluate_on_the_obd_random_log_returns_its_ctr_for_the_logged_policy",
    "serendip demo --quick --keep-serving": DEMO_TEST,
    # HTTP API
    "curl -s localhost:8000/healthz": DEMO_TEST,
    """curl -s localhost:8000/recommend -H 'content-type: application/json' """
    """-d '{"user_id": 7, "history": [12, 40, 3], "query": "waterproof trail shoe", "k": 5}'""":
        f"{SERVING}::test_recommend_then_feedback_shows_in_stats",
    """curl -s localhost:8000/feedback -H 'content-type: application/json' """
    """-d '{"impression_id": "IMPRESSION_ID", "item_id": 40, "event": "click"}'""":
        f"{SERVING}::test_recommend_then_feedback_shows_in_stats",
    """curl -s -X PUT localhost:8000/items -H 'content-type: application/json' """
    """-d '{"items": [{"item_id": 900001, "title": "Northpeak trail shoe", "category": "shoes", "price": 129.0}]}'""":
        f"{SERVING}::test_new_items_are_recommendable_at_once",
    "curl -s localhost:8000/experiments": f"{SERVING}::test_experiments_report_each_arm",
    # running on a cluster
    "serendip submit train --address http://127.0.0.1:8265 --storage /mnt/serendip/ray_results --wait "
    "-- --data /mnt/serendip/shop --out /mnt/serendip/models/minilm --workers 4 --gpu":
        "tests/integration/test_cluster_jobs.py::test_a_tiny_training_job_writes_its_model_and_checkpoints",
    "serendip manifests check": f"{HERE}::test_serendip_manifests_check_passes_on_the_committed_manifests",
}


def strip_comment(line: str) -> str:
    """``line`` without a shell comment: a ``#`` that starts a word outside quotes."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def shell_commands(markdown: str) -> list[str]:
    """Each command of the fenced shell blocks: continuations joined, comments dropped, spaces collapsed."""
    commands, block, pending = [], False, ""
    for line in markdown.splitlines():
        fence = line.strip()
        if fence.startswith("```"):
            block = not block and fence[3:].strip() in SHELL_FENCES
            continue
        if not block:
            continue
        text = strip_comment(line)
        pending += " " + text.rstrip().removesuffix("\\")
        if not text.rstrip().endswith("\\"):
            command = " ".join(pending.split())
            commands += [command] if command else []
            pending = ""
    return commands


def readme_commands() -> list[str]:
    return shell_commands(README.read_text(encoding="utf-8"))


def test_the_command_reader_joins_continuations_and_drops_comments():
    markdown = ("text\n```bash\n# a comment\nserendip a --x 1 \\\n    --y 'two # words'   # why\n\n"
                "curl -d '{\"k\": 5}'\n```\n```python\nprint(1)\n```\n")
    assert shell_commands(markdown) == ["serendip a --x 1 --y 'two # words'", "curl -d '{\"k\": 5}'"]


def test_the_readme_fits_one_sitting():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; keep it to {MAX_LINES} (details go to docs/)"


def test_every_readme_command_is_run_by_a_test():
    commands = readme_commands()
    assert len(commands) == len(set(commands)), "a command appears twice in README.md"
    unmapped = [c for c in commands if c not in RUN_BY]
    assert not unmapped, "README commands with no test in RUN_BY (tests/unit/test_readme.py):\n" + "\n".join(unmapped)
    stale = [c for c in RUN_BY if c not in commands]
    assert not stale, "RUN_BY names commands the README no longer has:\n" + "\n".join(stale)
    for command, target in RUN_BY.items():
        path, _, name = target.partition("::")
        source = ROOT / path
        assert source.is_file(), f"{command!r}: {path} does not exist"
        assert re.search(rf"^(async )?def {name}\(", source.read_text(encoding="utf-8"), re.M), (
            f"{command!r}: {path} has no test {name}")


SERENDIP_COMMANDS = [c for c in readme_commands() if c.startswith("serendip ") and c != "serendip --help"]


@pytest.fixture
def readme_outputs(tmp_path, monkeypatch):
    """A working folder holding what the README's commands write (each ``--out``), as after running them in order."""
    for command in readme_commands():
        words = shlex.split(command)
        for flag, value in itertools.pairwise(words):
            if flag == "--out" and not value.startswith(("/", "..")):
                (tmp_path / value).mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("command", SERENDIP_COMMANDS)
def test_every_serendip_command_parses_as_written(command, readme_outputs):
    """The flags exist and the values validate: the command's config is built exactly as the README writes it."""
    from serendip.cli import COMMANDS, resolve

    words, rest = resolve(shlex.split(command)[1:])
    config = parse(COMMANDS[words], rest, command)
    if words == ("submit",):  # what follows `--` is the cluster job's own command line
        parse(COMMANDS[(config.command,)], list(config.args), command)


def parse(registry_line: str, args: list[str], command: str):
    """``args`` parsed into the config class that a ``serendip.cli.COMMANDS`` line names (its function is not run)."""
    import tyro

    module_name, config_name, _ = registry_line.split(":")
    config_cls = getattr(importlib.import_module(module_name), config_name)
    try:
        return tyro.cli(config_cls, args=args)
    except SystemExit as exit:
        pytest.fail(f"README command {command!r}: {config_cls.__name__} refused {args} (exit {exit.code})")


def test_serendip_help_names_every_command_of_the_readme(capsys):
    from serendip.cli import COMMANDS, main, resolve

    assert main(["--help"]) == 0
    usage = capsys.readouterr().out
    for command in SERENDIP_COMMANDS:
        words, _ = resolve(shlex.split(command)[1:])
        assert words in COMMANDS and " ".join(words) in usage, command


def test_serendip_manifests_check_passes_on_the_committed_manifests(capsys):
    from serendip.cli import main

    assert main(["manifests", "check"]) == 0, capsys.readouterr()


def test_the_quick_start_make_targets_run_serendip_demo_and_pytest():
    def dry_run(target: str) -> str:
        done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert ".venv/bin/serendip demo" in dry_run("demo")
    assert ".venv/bin/python -m pytest" in dry_run("test")


ROUTE = re.compile(r'@api\.(get|post|put|delete)\("([^"]+)"')


def curl_request(command: str) -> tuple[str, str, str | None]:
    """(method, path, body) of a README curl command."""
    words = shlex.split(command)
    body = words[words.index("-d") + 1] if "-d" in words else None
    method = words[words.index("-X") + 1] if "-X" in words else "POST" if body else "GET"
    (url,) = [w for w in words if w.startswith("localhost:")]
    return method, "/" + url.partition("/")[2], body


CURL_COMMANDS = [c for c in readme_commands() if c.startswith("curl ")]


@pytest.mark.parametrize("command", CURL_COMMANDS)
def test_every_curl_command_sends_a_request_the_api_accepts(command):
    from serving.api import FeedbackRequest, ItemsRequest, RecommendRequest
    from serving.config import ServeConfig

    method, path, body = curl_request(command)
    routes = {(m.upper(), p) for m, p in ROUTE.findall((ROOT / "serving" / "ingress.py").read_text(encoding="utf-8"))}
    assert (method, path) in routes, f"{command!r}: serving/ingress.py has no {method} {path}"
    assert f"localhost:{ServeConfig.port}/" in command  # the default port of serendip serve
    models = {"/recommend": RecommendRequest, "/feedback": FeedbackRequest, "/items": ItemsRequest}
    assert (body is None) == (path not in models), command
    if body is not None:
        models[path].model_validate_json(body)


LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(markdown: str) -> set[str]:
    """GitHub's anchor of every heading: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", ["README.md", "benchmarks/README.md", "docs/limits.md", "docs/reliability.md"])
def test_every_link_reaches_a_file_and_heading(page):
    source = ROOT / page
    for target in LINK.findall(source.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://")):
            continue
        file, _, anchor = target.partition("#")
        linked = (source.parent / file).resolve() if file else source
        assert linked.exists(), f"{page}: link {target} names a missing file"
        if anchor:
            assert anchor in anchors(linked.read_text(encoding="utf-8")), f"{page}: link {target}: no such heading"


def test_every_benchmark_command_names_a_script_and_its_flags():
    pages = (ROOT / "README.md").read_text(encoding="utf-8") + (ROOT / "benchmarks" / "README.md").read_text(
        encoding="utf-8")
    found = re.findall(r"python (benchmarks/\w+\.py)([^`]*)`", pages)
    assert found
    for script, args in found:
        assert (ROOT / script).is_file(), script
        source = (ROOT / script).read_text(encoding="utf-8")
        if script == "benchmarks/bench_quality.py":  # it passes the task's flags on to quality_<task>.py
            source += "".join(p.read_text(encoding="utf-8") for p in (ROOT / "benchmarks").glob("quality_*.py"))
        for flag in re.findall(r"--[\w-]+", args):
            assert f'"{flag}"' in source, f"{script} has no flag {flag}"


def test_every_test_the_reliability_page_names_exists():
    page = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    names = set(re.findall(r"`(test_\w+)`", page))
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py"))
    assert names and not [n for n in sorted(names) if not re.search(rf"def {n}\(", sources)]
    for path in re.findall(r"`(tests/[\w/]+\.py)`", page):
        assert (ROOT / path).is_file(), path


def test_every_json_example_is_a_request_or_answer_of_the_api():
    from pydantic import ValidationError

    from serving import api

    shapes = [api.RecommendRequest, api.RecommendResponse, api.FeedbackRequest, api.FeedbackResponse,
              api.ItemsRequest, api.ItemsResponse]
    examples = re.findall(r"^```json\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
    assert examples
    for example in examples:
        fits = []
        for shape in shapes:
            try:
                fits.append(shape.model_validate_json(example))
            except ValidationError:
                pass
        assert fits, f"README example fits no request or answer of serving/api.py:\n{example}"
