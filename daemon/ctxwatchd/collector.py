"""Keeping Python's cyclic garbage collector from stopping answers.

Now and then the collector walks every object it tracks (a full
collection), every thread stopped. A tree holds about two such objects per
file listed, so at 100,000 files a full collection took 15 to 55 ms, several
times per cold index, and a query for another context that came then
waited: most of its slow answers. Tree entries refer to nothing that refers
back to them, so reference counting frees them and the collector has
nothing to find among them. Hence:

- every FREEZE_EVERY new objects made to last (tree entries, folder
  nodes), everything alive is frozen (gc.freeze: later collections skip it);
- what is closed (a watched root, a view) may leave reference cycles (a
  tree and its views refer to each other): closing thaws everything, so
  that the collector frees them, and the next freeze collects first.
"""

from __future__ import annotations

import gc

FREEZE_EVERY = 5_000  # new lasting objects between two freezes (a freeze costs nothing)


class _Freezer:
    """When to freeze (one for the process: the collector is the process's).
    Threads may race on its fields: an approximate count does, and a thaw
    missed by one freeze is made up by the next."""

    def __init__(self) -> None:
        self.new = 0  # new lasting objects since the last freeze
        self.thawed = False  # something was closed since the last freeze

    def made(self, count: int) -> None:
        """Count new objects made to last; freeze everything alive every FREEZE_EVERY."""
        self.new += count
        if self.new >= FREEZE_EVERY:
            self.new = 0
            if self.thawed:
                self.thawed = False
                gc.collect()  # what was closed, before it would be frozen for good
            gc.freeze()

    def something_closed(self) -> None:
        """What a closed root or view leaves may be cyclic garbage: thaw it all."""
        self.thawed = True
        gc.unfreeze()


_freezer = _Freezer()
made = _freezer.made
something_closed = _freezer.something_closed
