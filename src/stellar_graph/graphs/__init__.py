"""The orchestra's two graphs: the control graph (``create_orchestra``) and the task graph
(``create_task_graph``), one run per task attempt with the agent subgraphs inside."""

from stellar_graph.graphs.task import TaskRunOutput, TaskRunState, create_task_graph

__all__ = ["TaskRunOutput", "TaskRunState", "create_task_graph"]
