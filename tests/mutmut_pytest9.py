"""A pytest plugin loaded only by mutmut (pyproject's [tool.mutmut] pytest_add_cli_args).

mutmut 3.7 reads `item._nodeid`, which pytest 9 no longer has (`item.nodeid` is the public
name). mutmut 3.8 reads `nodeid` but needs click>=8.4.2, which faust-streaming refuses, so the
dev extra pins mutmut 3.7 and this gives it the old name. See docs/testing.md.
"""

from __future__ import annotations

from _pytest.nodes import Node

if not hasattr(Node, "_nodeid"):
    Node._nodeid = property(lambda self: self.nodeid)  # type: ignore[attr-defined]
