"""A griffe extension for the manual's Python API page (mkdocs.yml loads it).

What it does: archspec's docstrings cross-reference in Sphinx's way, ``:class:`Graph```,
``:func:`load_spec```, ``:mod:`archspec._optimize```, which Markdown would show with the
role in front; this turns each into inline code, ``Graph``, as the rest of the docstring
writes names.

What it deliberately does not do: link the names (most point at private modules the manual
does not render) or change the docstrings in the source.
"""

from __future__ import annotations

import re

from griffe import Extension

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`~?([^`]+)`")


class SphinxRoles(Extension):
    def on_instance(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(r"``\1``", obj.docstring.value)
