"""What every test package shares: the one client of the emulator's admin API and token helpers.

The fixtures (one Azurite, one emulator, one webhook receiver and the bridges, all session-scoped) are in
tests/conftest.py; processes are started with devhost.services.start_process (through its start_* helpers).
"""
