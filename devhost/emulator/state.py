"""The emulator's state: one instance per application, shared by every route group."""

from __future__ import annotations

from aiohttp import web

from .counters import Counters
from .entra import DEFAULT_TENANT_ID, EntraService
from .identity import TokenRegistry
from .operations import OperationStore
from .recorder import Recorder, RequestRecord
from .scenarios import Scenario, ScenarioState
from .server import current_record
from .workbook import WorkbookStore


class Emulator:
    """All emulator state: managed-identity tokens, the Entra tenant, workbooks, operations, scenarios, the log."""

    def __init__(self, identity_header: str, token_lifetime: float, tenant_id: str = DEFAULT_TENANT_ID) -> None:
        self.identity_header = identity_header
        self.tokens = TokenRegistry(token_lifetime)
        self.entra = EntraService(tenant_id)
        self.strict_delegated = False
        self.workbooks = WorkbookStore()
        self.operations = OperationStore()
        self.recorder = Recorder()
        self.scenarios: dict[str, ScenarioState] = {}
        self.counters = Counters()

    def scenario(self, item_id: str) -> tuple[ScenarioState | None, Scenario]:
        state = self.scenarios.get(item_id)
        return state, (state.scenario if state is not None else Scenario())

    def state_for(self, item_id: str) -> ScenarioState:
        """The item's scenario state, made with the default scenario when it has none (for injected faults)."""
        state = self.scenarios.get(item_id)
        if state is None:
            state = self.scenarios[item_id] = ScenarioState.create(Scenario())
        return state

    def fault(self, item_id: str, name: str, action: str | None) -> None:
        """Count and log a fault that fired on the request being served."""
        self.counters.fault(item_id, name, action, current_record().seq)

    def finished(self, request: web.Request, record: RequestRecord, response: web.StreamResponse | None) -> None:
        """After each logged request (the middleware's hook): the item's request and byte counters."""
        if record.item is None:
            return
        counters = self.counters.item(record.item)
        counters.requests += 1
        counters.bytes_in += request.content_length or 0
        if response is None:
            counters.dropped += 1
        elif isinstance(response, web.Response) and isinstance(response.body, bytes):
            counters.bytes_out += len(response.body)

    def reset(self) -> None:
        self.scenarios.clear()
        self.workbooks.reset()
        self.operations.reset()
        self.recorder.reset()
        self.counters.reset()
        self.tokens.reset()
        self.entra.reset()
        self.strict_delegated = False
