"""Sphinx roles for the names a page mentions: ``{param}`conf_threshold```, ``{topic}`detections```,
``{diag}`bad frames```. Each renders as code and warns (an error under ``sphinx-build -W``) when the name is not
one the code defines (``reference.NAMES``), so a page cannot name a parameter, topic or key that does not exist."""

from __future__ import annotations

from docutils import nodes
from reference import NAMES


def _role(kind: str):
    def role(name, rawtext, text, lineno, inliner, options=None, content=None):
        messages = [] if text in NAMES[kind] else [inliner.reporter.warning(
            f"{kind} '{text}' does not exist in the code (known: {', '.join(sorted(NAMES[kind]))})", line=lineno)]
        return [nodes.literal(rawtext, text)], messages
    return role


def setup(app):
    for kind in NAMES:
        app.add_role(kind, _role(kind))
    return {"parallel_read_safe": True}
