"""The lab's own table printer. Shares a name with PyPI's tabulate, not its code."""

import six

__version__ = "0.9.0"


def lab_provenance():
    """Only the local fork has this."""
    return "vendored lab fork"


def tabulate(rows, headers=()):
    cells = [list(map(six.text_type, r)) for r in ([headers] if headers else []) + list(rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    return "\n".join(" | ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells)
