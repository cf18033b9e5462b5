"""What a worker is made of: the settings read once from the environment and the clients made once per worker
process."""
