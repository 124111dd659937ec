"""Plan a collaboration goal into subtasks with roles and dependencies.

The LLM plans through structured output (:class:`~.models.GoalPlan`, prompt ``prompts/planner.md``).
Its plan is checked (ids, dependencies, cycles, skills the team holds, shared resources); when
the call fails, times out, returns garbage or an unusable plan, :func:`deterministic_plan` is used
and the plan record says which (``source`` and ``fallback``).

The deterministic plan gives each success criterion its own subtask, requiring the team skills
that best match the criterion's words (through a small vocabulary of related words, below; a
criterion matching nothing goes to the next team member in turn, with its strongest skill), then,
when there are several, an integration subtask that depends on all of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage

from stellar_graph._scoring_python import agent_skill_levels
from stellar_graph.collaboration._llm import LLMOutcome, call_structured
from stellar_graph.collaboration.models import GoalPlan, PlanStep
from stellar_graph.prompts import load_prompt

__all__ = ["RELATED_WORDS", "check_plan", "deterministic_plan", "llm_plan", "plan_goal"]

RELATED_WORDS: dict[str, tuple[str, ...]] = {
    "approval": ("decision", "ethics", "stakeholder"),
    "stakeholder": ("decision", "ethics", "coordination"),
    "feasibility": ("engineering", "design", "prototyping", "system"),
    "implementation": ("engineering", "system", "design", "prototyping"),
    "prototype": ("prototyping", "engineering", "invention"),
    "risk": ("risk", "red", "review", "security"),
    "safety": ("risk", "security", "review"),
    "review": ("critical", "review", "red"),
    "proof": ("mathematics", "algorithm"),
    "forecast": ("statistics", "data", "analysis"),
    "accuracy": ("statistics", "data", "analysis", "mathematics"),
    "performance": ("optimization", "algorithm", "engineering"),
    "literature": ("knowledge", "synthesis", "research"),
    "survey": ("research", "knowledge", "synthesis"),
    "framework": ("ethics", "philosophy", "knowledge", "synthesis"),
    "guidelines": ("ethics", "philosophy", "decision"),
}
"""Words of a success criterion -> skill words they point to (the deterministic planner's hints)."""

_INTEGRATION_SKILLS = ("knowledge_synthesis", "research_coordination", "decision_making")
_WORD = re.compile(r"[a-z0-9]+")
MAX_LLM_SUBTASKS = 20


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower().replace("_", " ")))


def _stem(word: str) -> str:
    # Crude but predictable: "prototype" and "prototyping" meet at "protot".
    return word[:6]


def _team_skills(team: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Skill -> best level in the team."""
    levels: dict[str, float] = {}
    for agent in team:
        for skill, level in agent_skill_levels(agent).items():
            levels[skill] = max(level, levels.get(skill, 0.0))
    return levels


def _match(criterion: str, skills: Sequence[str], hints: Sequence[str]) -> list[str]:
    """The team skills that best match the criterion (all ties for the best, at most two).

    A skill scores 2 per word it shares with the criterion, 1 per word it shares with the
    criterion's related words (:data:`RELATED_WORDS`), 1 if the goal names it; words compare by
    their first six letters.
    """
    words = _words(criterion)
    stems = {_stem(w) for w in words}
    related = stems | {_stem(r) for word in words for r in RELATED_WORDS.get(word, ())}
    scored = []
    for order, skill in enumerate(skills):
        skill_stems = {_stem(w) for w in _words(skill)}
        hits = 2 * len(skill_stems & stems) + len(skill_stems & related) + (skill in hints)
        if hits:
            scored.append((-hits, order, skill))
    scored.sort()
    return [s for h, _, s in scored if h == scored[0][0]][:2]


def deterministic_plan(
    goal: Mapping[str, Any], team: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Plan without a model: one subtask per success criterion, plus an integration step.

    Args:
        goal: a ``CollaborationGoal`` JSON dict.
        team: the team's agent records.

    Returns:
        ``{"subtasks": [...], "rationale": str}``; each subtask has ``id``, ``description``,
        ``role``, ``required_skills``, ``depends_on``, ``success_criteria``,
        ``shared_resources`` and ``estimated_minutes``.
    """
    levels = _team_skills(team)
    skills = sorted(levels, key=lambda s: (-levels[s], s))
    hints = [s for s in goal.get("required_skills") or [] if s in levels]
    firsts = [agent_skill_levels(a) for a in team]
    subtasks: list[dict[str, Any]] = []
    for i, criterion in enumerate(goal["success_criteria"], start=1):
        matched = _match(criterion, skills, hints)
        if not matched:
            # No word in common: spread the criteria over the team, each member's strongest skill.
            own = firsts[(i - 1) % len(firsts)]
            matched = (
                [max(own, key=lambda s: own[s])] if own else skills[:1]
            )  # first listed on ties
        subtasks.append(
            _step(f"s{i}", goal, f"deliver '{criterion}'", matched[0], matched, [criterion])
        )
    if len(subtasks) > 1:
        integrate = [s for s in _INTEGRATION_SKILLS if s in levels][:2] or skills[:1]
        deps = [s["id"] for s in subtasks]
        subtasks.append(
            _step(
                f"s{len(subtasks) + 1}",
                goal,
                "integrate the team's results into one deliverable",
                "integrator",
                integrate,
                [],
                deps,
            )
        )
    rationale = (
        f"Deterministic plan: one subtask per success criterion ({len(goal['success_criteria'])}), "
        f"skills matched to the criterion's words"
        + (", then an integration step that depends on all of them." if len(subtasks) > 1 else ".")
    )
    return {"subtasks": subtasks, "rationale": rationale}


def _step(
    sid: str,
    goal: Mapping[str, Any],
    what: str,
    role: str,
    skills: list[str],
    criteria: list[str],
    deps: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "id": sid,
        "description": f"{goal['description']}: {what}. Objective: {goal['objective']}",
        "role": role.replace("_", " "),
        "required_skills": skills,
        "depends_on": deps or [],
        "success_criteria": criteria,
        "shared_resources": [],
        "estimated_minutes": 60.0,
    }


def check_plan(
    plan: GoalPlan, goal: Mapping[str, Any], team: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, Any] | None, str | None]:
    """Normalise an LLM plan and check that the team can carry it out.

    Goal criteria no subtask names are attached to the last subtask (noted in ``adjustments``);
    criteria that are not the goal's are dropped from the subtasks (also noted).

    Returns:
        ``(plan dict, None)`` or ``(None, why it is unusable)``.
    """
    steps = plan.subtasks
    ids = [s.id.strip() for s in steps]
    allowed = min(int(goal.get("max_subtasks", 8)), MAX_LLM_SUBTASKS)
    if not steps:
        return None, "the plan has no subtasks"
    if len(steps) > allowed:
        return None, f"the plan has {len(steps)} subtasks; the goal allows {allowed}"
    if len(set(ids)) != len(ids) or not all(re.fullmatch(r"[A-Za-z0-9_.\-]{1,40}", i) for i in ids):
        return None, f"subtask ids must be unique short words, got {ids!r}"
    levels = _team_skills(team)
    pool = goal.get("shared_resources") or {}
    subtasks: list[dict[str, Any]] = []
    adjustments: list[str] = []
    for sid, step in zip(ids, steps, strict=True):
        problem = _step_problem(
            sid, step.depends_on, ids, step.required_skills, levels, step.shared_resources, pool
        )
        if problem:
            return None, problem
        subtasks.append(_normalised(sid, step, goal, levels, adjustments))
    cycle = _cycle({s["id"]: s["depends_on"] for s in subtasks})
    if cycle:
        return None, f"the dependencies form a cycle: {' -> '.join(cycle)}"
    covered = {c for s in subtasks for c in s["success_criteria"]}
    missing = [c for c in goal["success_criteria"] if c not in covered]
    if missing:
        subtasks[-1]["success_criteria"] += missing
        adjustments.append(f"{subtasks[-1]['id']}: given uncovered criteria {missing}")
    return {
        "subtasks": subtasks,
        "rationale": plan.rationale.strip(),
        "adjustments": adjustments,
    }, None


def _normalised(
    sid: str,
    step: PlanStep,
    goal: Mapping[str, Any],
    levels: Mapping[str, float],
    adjustments: list[str],
) -> dict[str, Any]:
    by_key = {c.lower(): c for c in goal["success_criteria"]}
    criteria = [
        by_key[c.strip().lower()] for c in step.success_criteria if c.strip().lower() in by_key
    ]
    if len(criteria) != len(step.success_criteria):
        adjustments.append(f"{sid}: dropped criteria that are not the goal's")
    return {
        "id": sid,
        "description": step.description.strip() or goal["description"],
        "role": step.role.strip() or "contributor",
        "required_skills": [s for s in _norm(step.required_skills) if s in levels],
        "depends_on": list(dict.fromkeys(d.strip() for d in step.depends_on)),
        "success_criteria": list(dict.fromkeys(criteria)),
        "shared_resources": list(dict.fromkeys(step.shared_resources)),
        "estimated_minutes": min(max(float(step.estimated_minutes), 1.0), 60.0 * 24 * 30),
    }


def _norm(skills: Sequence[str]) -> list[str]:
    return list(
        dict.fromkeys(
            s.strip().lower().replace(" ", "_").replace("-", "_") for s in skills if s.strip()
        )
    )


def _step_problem(
    sid: str,
    deps: Sequence[str],
    ids: Sequence[str],
    skills: Sequence[str],
    levels: Mapping[str, float],
    resources: Sequence[str],
    pool: Mapping[str, float],
) -> str | None:
    unknown = [d for d in deps if d.strip() not in ids]
    if unknown or sid in [d.strip() for d in deps]:
        return f"subtask {sid!r} depends on unknown or itself: {list(deps)!r}"
    held = [s for s in _norm(skills) if s in levels]
    if not held:
        return f"subtask {sid!r} needs skills {list(skills)!r}, which nobody on the team holds"
    foreign = [r for r in resources if r not in pool]
    if foreign:
        return f"subtask {sid!r} uses shared resources {foreign!r} the goal does not provide"
    return None


def _cycle(graph: Mapping[str, Sequence[str]]) -> list[str]:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        state[node] = 2
        path.pop()
        return []

    for node in graph:
        if node not in state and (found := visit(node)):
            return found
    return []


def planner_prompt(goal: Mapping[str, Any], team: Sequence[Mapping[str, Any]]) -> str:
    """The planner's prompt for a goal and a team."""
    members = "\n".join(
        f"- {a['agent_id']} ({a.get('agent_type', 'agent')}): "
        + ", ".join(sorted(agent_skill_levels(a)))
        for a in team
    )
    pool = goal.get("shared_resources") or {}
    return load_prompt("planner").render(
        goal_id=goal["id"],
        description=goal["description"],
        objective=goal["objective"],
        priority=goal.get("priority", "medium"),
        success_criteria="\n".join(f"- {c}" for c in goal["success_criteria"]),
        team=members,
        shared_resources=", ".join(f"{k} ({v:g} units)" for k, v in pool.items()) or "none",
        max_subtasks=goal.get("max_subtasks", 8),
    )


async def llm_plan(
    model: BaseChatModel,
    goal: Mapping[str, Any],
    team: Sequence[Mapping[str, Any]],
    *,
    time_limit: float,
) -> tuple[dict[str, Any] | None, LLMOutcome[GoalPlan]]:
    """Ask the model for a plan; ``(None, outcome)`` when it is unusable (outcome says why)."""
    outcome = await call_structured(
        model, GoalPlan, [HumanMessage(planner_prompt(goal, team))], time_limit=time_limit
    )
    if outcome.parsed is None:
        return None, outcome
    plan, problem = check_plan(outcome.parsed, goal, team)
    if plan is None:
        return None, outcome.failed("invalid_content", problem or "unusable plan")
    return plan, outcome


async def plan_goal(
    model: BaseChatModel | None,
    goal: Mapping[str, Any],
    team: Sequence[Mapping[str, Any]],
    *,
    time_limit: float,
) -> tuple[dict[str, Any], dict[str, int]]:
    """Plan with the model when there is one, else (or on any failure) deterministically.

    Returns:
        ``(plan record, token usage)``; the record carries ``source`` (``llm`` or
        ``deterministic``), ``fallback`` (None, ``simulated``, ``timeout``, ``invalid_json``,
        ``wrong_schema``, ``invalid_content`` or ``provider_error``) and ``error``.
    """
    if model is None:
        return {
            **deterministic_plan(goal, team),
            "source": "deterministic",
            "fallback": "simulated",
            "error": None,
        }, {}
    plan, outcome = await llm_plan(model, goal, team, time_limit=time_limit)
    if plan is None:
        plan = deterministic_plan(goal, team)
    return {**plan, **outcome.record()}, outcome.usage
