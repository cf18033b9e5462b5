"""The clock: when the next poll happens (cold and learned plans) and how long kinds of work took before (the
duration history it learns from)."""
