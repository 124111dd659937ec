"""The workload of ``bench_vs_peers``: tasks, their skill owner, and one canned answer per task.

Every system under test gets the same agents (the reference team's prompts and default
profiles), the same task messages and the same answers; only the orchestration differs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from stellar_graph import REFERENCE_TEAM, AgentSpec
from stellar_graph.agents.render import render_system_prompt, render_task_message

__all__ = [
    "CRITERION",
    "TASK_ID_RE",
    "BenchTask",
    "Workload",
    "make_workload",
    "supervisor_prompt",
]

CRITERION = "answers the question"
TASK_ID_RE = re.compile(r"Task (bench-\d+) \(priority")
"""Finds the task id in the task message (``prompts/task.md``) inside any request body."""

# Skills held by exactly one reference agent, so "the skill-matching agent" is unambiguous
# (``ethics`` is held by both Atlas and Lilith, hence absent).
_SKILLS: dict[str, tuple[str, ...]] = {
    "atlas": ("knowledge_synthesis", "research_coordination", "philosophy", "decision_making"),
    "edison": ("engineering", "prototyping", "system_design", "hardware", "invention"),
    "lilith": ("critical_review", "red_teaming", "risk_analysis", "security"),
    "pythagoras": (
        "mathematics",
        "statistics",
        "optimization",
        "algorithm_design",
        "data_analysis",
    ),
}
_SUBJECTS = (
    "the city's flood-warning network",
    "a hospital's night-shift roster",
    "the open-source sensor firmware",
    "a regional rail timetable",
    "the lab's sample-tracking database",
    "a wind farm's maintenance plan",
    "the library's digitisation project",
    "a school district's bus routes",
    "the satellite ground-station upgrade",
    "a food bank's distribution schedule",
)
_VERBS = {
    "atlas": "Synthesise what is known about",
    "edison": "Design a prototype that improves",
    "lilith": "Red-team the current plan for",
    "pythagoras": "Build a quantitative model of",
}
# Sentences of a plausible agent answer; each task's answer is a fixed selection of them.
_ANSWER_SENTENCES = (
    "The main constraint is capacity at peak load, which the current design does not measure.",
    "Three options were compared on cost, risk and time to deliver; the second one wins.",
    "It needs two changes: a shared schedule and a weekly review of the exceptions.",
    "The evidence is strong for the first claim and weak for the second, which needs data.",
    "Expected benefit is a 12 to 18 percent reduction in delays within one quarter.",
    "The largest risk is a single point of failure in the dispatch step; add a fallback.",
    "Start with a two-week pilot on one site and compare against last year's baseline.",
    "Each step has an owner, a deadline and a test that would show it is not working.",
)


@dataclass(frozen=True)
class BenchTask:
    """One task of the workload.

    Attributes:
        task: the task dict submitted to stellar_graph (a valid ``Task``).
        owner: name of the only agent type holding the required skill (``"pythagoras"``).
        answer: the canned answer text every system's owner agent returns.
        message: the task message every system sends its agent (``prompts/task.md``).
    """

    task: dict[str, Any]
    owner: str
    answer: str
    message: str

    @property
    def id(self) -> str:
        """The task id."""
        return str(self.task["id"])


@dataclass(frozen=True)
class Workload:
    """Tasks, the agent team and lookups the mock LLM needs to answer."""

    tasks: tuple[BenchTask, ...]
    team: tuple[AgentSpec, ...] = REFERENCE_TEAM
    by_id: dict[str, BenchTask] = field(default_factory=dict)

    def profile(self, spec: AgentSpec) -> dict[str, Any]:
        """The one registered instance of an agent type (its default profile)."""
        return spec.default_profile(f"{spec.name}-001")

    def system_prompt(self, spec: AgentSpec) -> str:
        """The agent's system prompt, identical in every system."""
        return render_system_prompt(spec, self.profile(spec))

    def owner_of_skill(self, skill: str) -> str:
        """The agent type holding ``skill`` (deterministic routing for the plain graph)."""
        for name, skills in _SKILLS.items():
            if skill in skills:
                return name
        raise KeyError(f"no agent holds skill {skill!r}")


def make_workload(n_tasks: int, answer_sentences: int = 4) -> Workload:
    """Build ``n_tasks`` tasks, round-robin over the four agent types.

    Args:
        n_tasks: number of tasks (a multiple of 4 keeps the agents evenly loaded).
        answer_sentences: sentences per canned answer (4 is about 75 tokens).

    Returns:
        The workload; the same arguments always give the same tasks and answers.

    Raises:
        ValueError: ``n_tasks`` < 1 or ``answer_sentences`` outside 1..8.
    """
    if n_tasks < 1:
        raise ValueError(f"n_tasks must be >= 1, got {n_tasks!r}. Fix: pass --tasks 40.")
    if not 1 <= answer_sentences <= len(_ANSWER_SENTENCES):
        raise ValueError(
            f"answer_sentences must be in 1..{len(_ANSWER_SENTENCES)}, got {answer_sentences!r}."
        )
    names = [spec.name for spec in REFERENCE_TEAM]
    tasks = []
    for i in range(n_tasks):
        owner = names[i % len(names)]
        skills = _SKILLS[owner]
        skill = skills[(i // len(names)) % len(skills)]
        subject = _SUBJECTS[(i // len(names)) % len(_SUBJECTS)]
        task = {
            "id": f"bench-{i:03d}",
            "description": f"{_VERBS[owner]} {subject} (focus: {skill.replace('_', ' ')}).",
            "priority": "medium",
            "required_skills": [skill],
            "success_criteria": [CRITERION],
        }
        picks = [
            _ANSWER_SENTENCES[(i + k) % len(_ANSWER_SENTENCES)] for k in range(answer_sentences)
        ]
        answer = f"Result for {task['id']}: " + " ".join(picks)
        tasks.append(BenchTask(task, owner, answer, render_task_message(task)))
    return Workload(tuple(tasks), REFERENCE_TEAM, {t.id: t for t in tasks})


def supervisor_prompt(team: tuple[AgentSpec, ...] = REFERENCE_TEAM) -> str:
    """A short supervisor prompt in the style of langgraph-supervisor's README examples."""
    lines = [f"- {spec.name}: {spec.description}" for spec in team]
    return (
        "You are a team supervisor managing these agents:\n"
        + "\n".join(lines)
        + "\nHand each task to the one agent whose skills match it. When that agent has "
        "answered, reply to the user with its answer."
    )
