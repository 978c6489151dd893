"""rt.draw(): the run graph's picture made on this machine (Graphviz), never by a web
service; its Mermaid text where Graphviz is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrt.errors import ConfigError
from agentrt.examples.refund_desk import build_runtime

NODES = ("plan", "policy", "approval", "tool", "verify", "commit", "finish")


def test_the_run_graph_is_drawn_here_as_svg_and_png(tmp_path: Path) -> None:
    with build_runtime(tmp_path / "agentrt.db") as rt:
        picture = rt.draw()
        svg = picture.svg()
        assert svg.lstrip().startswith("<?xml")
        assert svg.rstrip().endswith("</svg>")
        for node in (*NODES, "START", "END"):
            assert f">{node}</text>" in svg
        # The routes a node chooses between are dashed; START's one edge is not.
        assert 'stroke-dasharray="5,2"' in svg
        assert "policy -> approval [style=dashed]" in picture.dot
        assert "__start__ -> plan [style=solid]" in picture.dot
        assert picture.png().startswith(b"\x89PNG\r\n\x1a\n")
        bundle = picture._repr_mimebundle_()
        assert bundle["image/svg+xml"] == svg
        assert bundle["text/plain"] == picture.mermaid


def test_an_apps_own_graph_is_drawn_too(tmp_path: Path) -> None:
    from agentrt.examples.refund_desk import OPERATOR

    with build_runtime(tmp_path / "agentrt.db") as rt:
        served = rt.draw(rt.served_graph(principal=OPERATOR))
        assert ">open</text>" in served.svg()
        assert "__start__ -> open" in served.dot


def test_without_graphviz_the_picture_is_its_mermaid_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot program here
    with build_runtime(tmp_path / "agentrt.db") as rt:
        picture = rt.draw()
        bundle = picture._repr_mimebundle_()
        assert "image/svg+xml" not in bundle
        assert bundle["text/vnd.mermaid"] == picture.mermaid
        assert "plan -.-> policy;" in picture.mermaid
        with pytest.raises(ConfigError, match=r"apt-get install graphviz.*agentrt\[draw\]"):
            picture.svg()
