"""A clock the test moves by hand, for the bandit state's reward windows and snapshot timers."""


class Clock:
    """``clock()`` returns ``now``, which starts at a fixed Unix time and moves only when a test sets it."""

    def __init__(self):
        self.now = 1_700_000_000.0

    def __call__(self):
        return self.now
