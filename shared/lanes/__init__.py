"""The lane per workbook: one Excel request at a time per workbook, everyone else waiting in arrival order, and
Graph's throttling shared by every chain on the workbook."""
