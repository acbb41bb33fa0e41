"""The report a person opens: index.html beside report.md, the same report with every plot inline, read
back by a real browser (headless Chromium, Debian's ``chromium`` package)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from recsys.policies import Arm  # noqa: E402
from serendip.demo import QUICK, DemoConfig, Traffic  # noqa: E402
from serendip.report import DemoOutcome, write_report  # noqa: E402
from serendip.report_page import render  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome")

CHECK = """<script>
window.addEventListener("load", () => {
  const out = document.createElement("pre");
  out.id = "serendip-check";
  out.textContent = JSON.stringify({
    images: [...document.images].map(i => ({alt: i.alt, width: i.naturalWidth, height: i.naturalHeight,
                                            inline: i.src.startsWith("data:image/png;base64,")})),
    verdict: [...document.querySelectorAll("li")].map(li => li.textContent).find(t => t.startsWith("Verdict:")),
  });
  document.body.appendChild(out);
});
</script>"""
"""Appended to a copy of the page: after loading, the browser writes what it decoded into the DOM."""


def browser() -> str | None:
    """A Chromium on PATH, if any."""
    return next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)


def apt_install_chromium() -> str:
    """Install Debian's chromium package (as root); '' when it worked, else why not."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:  # a stale package list: refresh it once
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True, timeout=300)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    return "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["no output"])[-1]


@pytest.fixture(scope="module")
def chromium() -> str:
    """Headless Chromium: found on PATH, or installed with apt-get when this runs as root; else the test skips."""
    if found := browser():
        return found
    if shutil.which("apt-get") is None:
        pytest.skip("no Chromium on PATH and no apt-get to install Debian's chromium package")
    if os.geteuid() != 0:
        pytest.skip("no Chromium on PATH, and installing it needs root: sudo apt-get install -y chromium")
    why = apt_install_chromium()
    if not (found := browser()):
        pytest.skip(f"no Chromium on PATH: apt-get install chromium failed: {why}")
    return found


def demo_report(run: Path) -> Path:
    """write_report on a small made-up outcome (three arms, training metrics, a sweep with its plot)."""
    rng = np.random.default_rng(0)
    visits = [{"round": t, "arm": arm, "clicks": int(c), "expected": 0.9 * c, "regret": 1.0 - 0.1 * c, "new_shown": 1,
               "new_clicks": int(c > 1), "new_expected": 0.1}
              for arm in ("static", "greedy", "picked") for t in range(QUICK.rounds) for c in rng.integers(0, 3, 4)]
    sweep_plot = run / "sweep" / "plots" / "reward_vs_rate.png"
    sweep_plot.parent.mkdir(parents=True)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0.0, 0.1, 0.2], [1.0, 1.2, 1.1], marker="o")
    fig.savefig(sweep_plot)
    plt.close(fig)
    table = pd.DataFrame({"status": ["ok"] * 3, "policy": ["thompson", "static", "greedy"],
                          "arm": ["thompson", "static", "greedy"], "regret": [1.0, 2.0, 3.0]})
    swept = SimpleNamespace(pick=Arm("thompson"), pick_value=1.0, explorer=Arm("thompson"), explorer_value=1.0,
                            report=run / "sweep" / "report.md", table=table)
    trained = SimpleNamespace(metrics=[{"epoch": e, "loss": 2.0 - e, "val_ndcg10": 0.05 + 0.01 * e} for e in (0, 1)],
                              model_dir=run / "model", stopped="epochs")
    outcome = DemoOutcome(run=run, config=DemoConfig(quick=True), budget=QUICK, trained=trained, swept=swept,
                          port=8123, traffic=Traffic(visits=visits, recommend_ms=[5.0, 7.0], feedback_ms=[2.0],
                                                     injected_round=QUICK.rounds // 3),
                          experiments={"arms": []}, phases={"train": {"wall_s": 40.0, "cpu_s": 61.2}},
                          world=SimpleNamespace(item_ids=np.arange(1, 51)), picked=swept.pick)
    return write_report(outcome)[0]


def test_index_html_shows_the_verdict_and_every_plot_in_chromium(tmp_path: Path, chromium: str):
    report = demo_report(tmp_path / "run")
    markdown = report.read_text()
    plots = re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", markdown)
    assert [alt for alt, _ in plots] == ["training curves", "reward against exploration rate", "regret over time"]
    # The page alone, away from its run folder: it must carry its plots.
    page = tmp_path / "elsewhere" / "index.html"
    page.parent.mkdir()
    page.write_text(report.with_name("index.html").read_text().replace("</body>", CHECK + "\n</body>"))
    shown = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                           capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="serendip-check">(.*?)</pre>', shown.stdout, re.S)
    assert found, f"Chromium wrote no check (rc {shown.returncode}): {shown.stderr[-2000:]}"
    check = json.loads(html.unescape(found.group(1)))
    assert [(i["alt"], i["inline"]) for i in check["images"]] == [(alt, True) for alt, _ in plots]
    assert all(i["width"] >= 200 and i["height"] >= 200 for i in check["images"]), check["images"]
    verdict = re.search(r"^- \*\*Verdict\*\*: (.+)\.$", markdown, re.M).group(1)
    assert check["verdict"] == f"Verdict: {verdict.replace('`', '')}."


def test_the_page_inlines_the_images_it_finds_and_escapes_raw_html(tmp_path: Path):
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    page = render("# Run 7\n\n![a](plots/a.png) ![b](plots/missing.png)\n\n<script>alert(1)</script>\n", tmp_path)
    assert "<title>Run 7</title>" in page and "<h1>Run 7</h1>" in page
    assert 'src="data:image/png;base64,iVBORw0KGgpub3QgcmVhbGx5"' in page
    assert 'src="plots/missing.png"' in page  # not found: the link stays, the browser shows it broken
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
