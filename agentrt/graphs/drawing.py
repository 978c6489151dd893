"""A graph's picture drawn on this machine, for notebooks and docs.

LangGraph's ``draw_mermaid_png()`` sends the graph to a web service (mermaid.ink) by
default, and its local alternative loads Mermaid from a CDN into a browser it downloads:
neither works offline. Here the picture is drawn by Graphviz's ``dot`` (Debian's
``graphviz``; the ``graphviz`` Python package runs it), from the nodes and edges LangGraph
reports: an SVG a notebook shows inline, or a PNG. The Mermaid text LangGraph writes
itself is kept too: JupyterLab 4.1 and Notebook 7.1 draw it without any of this.
"""

from __future__ import annotations

import shutil
from typing import Any

from agentrt.errors import ConfigError

__all__ = ["GraphPicture"]

_NOT_DRAWN = (
    "drawing the graph needs Graphviz: its dot program (apt-get install graphviz, brew "
    "install graphviz) and the graphviz Python package (pip install 'agentrt[draw]'); "
    "without them, GraphPicture.mermaid is the graph as Mermaid text"
)


class GraphPicture:
    """A LangGraph graph (``graph.get_graph()``) as Mermaid text, Graphviz source, SVG or
    PNG, all made on this machine; in a notebook it shows as its SVG (its Mermaid text
    where Graphviz is missing)."""

    def __init__(self, graph: Any) -> None:
        self._graph = graph

    @property
    def mermaid(self) -> str:
        """The graph as Mermaid text (LangGraph's own drawing of it)."""
        text: str = self._graph.draw_mermaid()
        return text

    @property
    def dot(self) -> str:
        """The graph as Graphviz source: nodes as boxes, START and END as ovals, the routes
        a node chooses between dashed."""
        return str(self._digraph().source)

    def svg(self) -> str:
        """The picture as SVG text."""
        drawn: bytes = self._digraph().pipe(format="svg")
        return drawn.decode("utf-8")

    def png(self) -> bytes:
        """The picture as PNG bytes."""
        drawn: bytes = self._digraph().pipe(format="png")
        return drawn

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        if _drawable():
            return {"image/svg+xml": self.svg(), "text/plain": self.mermaid}
        return {"text/vnd.mermaid": self.mermaid, "text/plain": self.mermaid}

    def _digraph(self) -> Any:
        if not _drawable():
            raise ConfigError(_NOT_DRAWN)
        import graphviz

        start, end = self._graph.first_node(), self._graph.last_node()
        picture = graphviz.Digraph(
            name=str(getattr(self._graph, "name", None) or "graph"),
            graph_attr={"rankdir": "TB", "fontname": "Helvetica"},
            node_attr={"shape": "box", "style": "rounded", "fontname": "Helvetica"},
            edge_attr={"fontname": "Helvetica", "fontsize": "10"},
        )
        for node in self._graph.nodes.values():
            if node in (start, end):
                label = "START" if node is start else "END"
                picture.node(node.id, label, shape="oval", style="filled", fillcolor="#eeeeee")
            else:
                picture.node(node.id, str(node.name))
        for edge in self._graph.edges:
            picture.edge(
                edge.source,
                edge.target,
                label=str(edge.data) if edge.data is not None else None,
                style="dashed" if edge.conditional else "solid",
            )
        return picture


def _drawable() -> bool:
    """Graphviz is here: its dot program and the Python package that runs it."""
    if shutil.which("dot") is None:
        return False
    try:
        import graphviz  # noqa: F401
    except ImportError:
        return False
    return True
