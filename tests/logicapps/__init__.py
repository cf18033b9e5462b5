"""A test double of the Azure Logic Apps workflow engine, written from Logic Apps' documentation.

It runs real workflow definitions (the JSON the code view shows, or a Standard `workflow.json`) against real
HTTP endpoints: expressions, runAfter, the Http action's asynchronous pattern and retry policy, the HttpWebhook
action with a real callback endpoint on 127.0.0.1, Response, If, Scope and Compose. Each module cites the
documentation it follows. Use it as:

    from tests.logicapps import LogicAppsEngine, RunResult
    result = LogicAppsEngine(default_poll_interval=1.0, retry_scale=0.01).run(definition, parameters={...},
                                                                             trigger_body={...})
"""

from tests.logicapps.engine import LogicAppsEngine, RunHandle, UnsupportedDefinition
from tests.logicapps.expressions import ExpressionError, UnsupportedExpression
from tests.logicapps.results import ActionResult, RequestRecord, RunResult

__all__ = [
    "ActionResult",
    "ExpressionError",
    "LogicAppsEngine",
    "RequestRecord",
    "RunHandle",
    "RunResult",
    "UnsupportedDefinition",
    "UnsupportedExpression",
]
