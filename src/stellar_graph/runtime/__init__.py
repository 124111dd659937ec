"""Where the orchestra's runs execute: the control loop and the task-run runners."""

from stellar_graph.runtime.context import OrchestraContext
from stellar_graph.runtime.control import OrchestraRuntime
from stellar_graph.runtime.runners import LocalRunner, ServerRunner, TaskRunner

__all__ = ["LocalRunner", "OrchestraContext", "OrchestraRuntime", "ServerRunner", "TaskRunner"]
