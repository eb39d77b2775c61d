"""The errors moakg reports to its user as one clear line (everything else is a bug and shows a traceback).

Raise :class:`UserError` (or a subclass) for a problem with the user's input, configuration or
environment: a bad file, an unknown option value, a graph without the data a command needs, Neo4j not
reachable. The command line prints such an error as ``error: <message>``; any other exception is an
unexpected failure whose traceback is kept (see :mod:`moakg.cli`).
"""

from __future__ import annotations


class UserError(ValueError):
    """A problem the user can fix; the message names the file, record, option or value and what was expected.

    It subclasses ``ValueError`` so that code validating arguments (``raise UserError(...)`` where a
    ``ValueError`` used to be raised) keeps working with callers that catch ``ValueError``.
    """
