"""`dvc plots show` renders offline: the project's HTML template carries vega itself, no CDN."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

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
