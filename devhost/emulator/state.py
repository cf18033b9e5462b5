"""The emulator's state: one instance per application, shared by every route group."""

from __future__ import annotations

from .entra import DEFAULT_TENANT_ID, EntraService
from .identity import TokenRegistry
from .operations import OperationStore
from .recorder import Recorder
from .scenarios import Scenario, ScenarioState
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

    def scenario(self, item_id: str) -> tuple[ScenarioState | None, Scenario]:
        state = self.scenarios.get(item_id)
        return state, (state.scenario if state is not None else Scenario())

    def reset(self) -> None:
        self.scenarios.clear()
        self.workbooks.reset()
        self.operations.reset()
        self.recorder.reset()
        self.tokens.reset()
        self.entra.reset()
        self.strict_delegated = False
