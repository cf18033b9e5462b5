"""An operation's life: the record, starting it (write-ahead), reading and changing it, the poll step that
follows Graph's operation, and the retention purge."""
