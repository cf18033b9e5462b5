"""Azure Storage plumbing shared by every concept: the two queues and their messages, result blobs, and the
poison queues' count, replay and purge."""
