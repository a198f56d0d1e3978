"""`dvc plots show` renders offline: the project's HTML template carries vega itself, no CDN, and the
bundled CJK font; the project's vega-lite templates give each revision its own colour."""

from __future__ import annotations

import base64
import configparser
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from dvc_render import render_html
from dvc_render.vega import VegaRenderer

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / ".dvc" / "plots_offline.html"
NETWORK_LOAD = re.compile(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*[\"']?(https?:)?//", re.I)


def test_dvc_config_points_plots_at_the_offline_template() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    assert (ROOT / ".dvc" / config["plots"]["html_template"]) == TEMPLATE
    assert TEMPLATE.is_file()


def test_template_inlines_vega_and_leaves_out_the_cdn_scripts() -> None:
    html = TEMPLATE.read_text(encoding="utf-8")
    assert "{plot_divs}" in html and "{scripts}" not in html  # DVC puts its CDN tags at {scripts}
    for name in ("vega", "vega-lite", "vega-embed"):
        assert f"/* {name} */" in html
    assert not NETWORK_LOAD.search(html)


def test_rendered_page_loads_nothing_from_the_network(tmp_path: Path) -> None:
    points = [{"step": i, "loss": 1 / (i + 1), "rev": "workspace", "filename": "loss.tsv"} for i in range(5)]
    renderer = VegaRenderer(points, "loss.tsv", template="linear", x="step", y="loss")
    out = render_html([renderer], tmp_path / "index.html", html_template=TEMPLATE)
    page = Path(out).read_text(encoding="utf-8")
    assert "vegaEmbed('#loss_tsv'" in page
    assert "cdn.jsdelivr" not in page and not NETWORK_LOAD.search(page)


FONT = ROOT / "src" / "embedforge" / "evaluate" / "fonts" / "NotoSansCJKsc-GB2312.otf"
TEMPLATES = ROOT / "src" / "embedforge" / "evaluate" / "templates"
RENDER_JS = Path(__file__).parent / "vega_render.js"
HEX = re.compile(r'(?:fill|stroke)="(#[0-9a-fA-F]{6})"')


def test_template_inlines_the_bundled_cjk_font_and_every_chart_uses_it() -> None:
    html = TEMPLATE.read_text(encoding="utf-8")
    data = re.search(r"src: url\(data:font/otf;base64,([A-Za-z0-9+/=]+)\)", html)
    assert data and base64.b64decode(data[1]) == FONT.read_bytes()  # the bundled file, byte for byte
    family = re.search(r'font-family: "([^"]+)";', html)
    assert family and f"'{family[1]}'" in re.search(r'var font = "([^"]*)";', html)[1]  # type: ignore[index]
    # the wrapper comes after vega-embed and replaces the vegaEmbed that DVC's chart divs call
    assert html.index("/* vega-embed */") < html.index("window.vegaEmbed = function")


def test_the_project_s_dvc_plots_use_templates_that_exist() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    plots = [p for stage in stages.values() for p in stage.get("plots", [])]
    templates = {name: spec.get("template") for p in plots for name, spec in p.items()}
    assert "plots/spearman.csv" in templates and "plots/spearman_by_layer.csv" not in templates
    assert templates["dvclive/plots/metrics"].endswith("training.json")
    for name, template in templates.items():
        if template and template.endswith(".json"):
            assert (ROOT / template).is_file(), name


def _svgs(specs: list[dict], tmp_path: Path) -> list[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the vega rendering check needs it")
    (tmp_path / "specs.json").write_text(json.dumps(specs), encoding="utf-8")
    out = subprocess.run(
        [node, str(RENDER_JS), str(TEMPLATE), str(tmp_path / "specs.json")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)


CASES = {  # template: (x, y, one data point without rev)
    "spearman.json": ("spearman", "matrix", {"matrix": "好评_base", "source": "base", "benchmark": "ws240"}),
    "training.json": ("step", "loss", {}),
    "learning_curve.json": (
        "train_rows",
        "macro_f1",
        {"matrix": "好评", "series": "mean", "low": 0.5, "high": 0.7},
    ),
    "by_layer.json": ("layer", "spearman", {"series": "decontext / base", "benchmark": "ws240"}),
}


@pytest.mark.parametrize("template", sorted(CASES))
def test_revisions_get_their_own_colours_and_text_the_bundled_font(template: str, tmp_path: Path) -> None:
    x, y, row = CASES[template]
    specs = []
    for revs in (["workspace"], ["HEAD", "workspace"]):
        points = [
            {**row, x: i + 1, y: 0.5 + 0.1 * i + 0.01 * j, "rev": r}
            for j, r in enumerate(revs)
            for i in range(3)
        ]
        renderer = VegaRenderer(points, "plot.csv", template=str(TEMPLATES / template), x=x, y=y)
        specs.append(renderer.get_filled_template())
    one, two = _svgs(specs, tmp_path)
    assert len(set(HEX.findall(one))) == 1 and len(set(HEX.findall(two))) == 2, template
    fonts = set(re.findall(r'font-family="([^"]*)"', two))
    assert fonts and all("Embedforge Noto Sans CJK SC" in f for f in fonts)
