"""The seed document's examples, in Python (snake_case, async), run as written."""

from __future__ import annotations

from datetime import datetime

from stellar_graph import OrchestraConfig, StellarOrchestra

MEMORY = {"persistence": {"backend": "memory"}}


async def test_register_atlas_001(fixed_clock) -> None:
    orchestra = StellarOrchestra(MEMORY, clock=fixed_clock)
    await orchestra.start_orchestration()
    # Agent registration
    await orchestra.register_agent({
        "agent_id": "atlas-001",
        "agent_type": "AtlasAgent",
        "capabilities": ["knowledge_synthesis", "research_coordination"],
        "specializations": ["ethics", "philosophy", "decision_making"],
    })
    agent = orchestra.get_agent("atlas-001")
    assert agent["agent_type"] == "AtlasAgent" and agent["agent_node"] == "atlas"
    assert agent["specializations"] == ["ethics", "philosophy", "decision_making"]
    assert agent["prompt_tokens"] > 50  # its rendered system prompt, counted offline with tiktoken
    await orchestra.stop_orchestration()


async def test_allocate_research_quantum_computing_past_deadline(fixed_clock) -> None:
    async with StellarOrchestra(MEMORY, clock=fixed_clock) as orchestra:
        await orchestra.register_agent({
            "agent_id": "atlas-001", "agent_type": "AtlasAgent",
            "capabilities": ["knowledge_synthesis", "research_coordination"],
            "specializations": ["ethics", "philosophy", "decision_making"],
        })
        await orchestra.register_agent({
            "agent_id": "pythagoras-001", "agent_type": "PythagorasAgent",
            "capabilities": ["mathematics", "algorithm_design"], "specializations": ["quantum_physics"],
        })
        task_allocator = orchestra.task_allocator
        # Task allocation example
        allocation = await task_allocator.allocate_task({
            "id": "research-quantum-computing",
            "description": "Research quantum computing applications",
            "priority": "high",
            "deadline": datetime(2024, 12, 31),
            "required_skills": ["quantum_physics", "algorithm_design"],
            "estimated_duration_minutes": 480,
        })
        # The 2024 deadline has passed: the task is still allocated (dropping accepted work would
        # surprise a user more), flagged overdue, and the deadline factor gives no agent an edge.
        assert allocation.status == "allocated"
        assert allocation.agent_id == "pythagoras-001"
        assert allocation.overdue is True
        assert allocation.breakdown["deadline"] == 0.0
        assert "deadline" in allocation.explanation
        # Atlas has neither skill: infeasible, and the dry run says why.
        ranking = task_allocator.score_agents({
            "id": "probe", "description": "probe", "required_skills": ["quantum_physics", "algorithm_design"],
        })
        assert "missing skill(s): quantum_physics, algorithm_design" in ranking["infeasible"]["atlas-001"]
        result = await orchestra.monitor_task_execution(allocation.allocation_id)
        assert result["status"] in {"completed", "failed"} and result["simulated"] is True


async def test_refuse_instead_of_flag_when_configured(fixed_clock) -> None:
    config = {**MEMORY, "task_allocation": {"past_deadline": "refuse"}}
    async with StellarOrchestra(config, clock=fixed_clock) as orchestra:
        await orchestra.register_agent({"agent_id": "pythagoras-001", "agent_type": "PythagorasAgent",
                                        "capabilities": ["algorithm_design"]})
        allocation = await orchestra.orchestrate_task({
            "id": "late", "description": "x", "deadline": datetime(2024, 12, 31),
            "required_skills": ["algorithm_design"],
        })
        assert allocation.status == "refused" and "deadline has passed" in allocation.explanation


def test_basic_configuration() -> None:
    orchestra_config = {
        "task_allocation": {
            "strategy": "optimal",
            "rebalancing_frequency_minutes": 60,
            "failure_recovery_timeout_minutes": 30,
        },
        "collaboration": {
            "max_concurrent_collaborations": 10,
            "conflict_resolution_timeout_minutes": 15,
            "negotiation_rounds_limit": 5,
        },
        "optimization": {"learning_rate": 0.01, "adaptation_threshold": 0.1, "optimization_frequency_minutes": 120},
        "messaging": {"priority_queue_size": 1000, "broadcast_batch_size": 50, "consensus_timeout_minutes": 10},
    }
    orchestra = StellarOrchestra(orchestra_config)
    assert orchestra.config.task_allocation.strategy == "optimal"
    assert orchestra.config.messaging.broadcast_batch_size == 50
    assert orchestra.config.orchestration_mode == "adaptive"  # untouched keys keep their defaults


def test_advanced_configuration() -> None:
    advanced_config = {
        "orchestration_mode": "adaptive",  # 'static', 'dynamic', 'adaptive'
        "emergency_protocols": {
            "auto_escalation": True,
            "notification_channels": ["email", "slack", "webhook"],
            "recovery_strategies": ["retry", "reassign", "fallback"],
        },
        "learning_parameters": {
            "experience_replay_buffer_size": 10000,
            "learning_decay_factor": 0.95,
            "exploration_rate": 0.1,
        },
    }
    config = OrchestraConfig.from_dict(advanced_config)
    assert config.emergency_protocols.notification_channels == ["email", "slack", "webhook"]
    assert config.learning_parameters.experience_replay_buffer_size == 10000
    assert StellarOrchestra(config).config is config


async def test_performance_metrics(fixed_clock) -> None:
    async with StellarOrchestra(MEMORY, clock=fixed_clock) as orchestra:
        await orchestra.register_agent({"agent_id": "edison-001", "agent_type": "EdisonAgent",
                                        "capabilities": ["engineering"], "capacity": 2})
        task1, task2, task3 = (
            {"id": f"build-{i}", "description": f"Build part {i}", "required_skills": ["engineering"]}
            for i in range(3)
        )
        # Parallel task distribution
        tasks = await orchestra.orchestrate_multiple_tasks([task1, task2, task3])
        assert [a.status for a in tasks] == ["allocated", "allocated", "queued"]  # capacity 2
        await orchestra.wait_idle()
        metrics = orchestra.get_performance_metrics()
        summary = {
            "allocation_efficiency": metrics["task_allocation"]["efficiency"],
            "collaboration_success": metrics["collaboration"]["success_rate"],
            "system_throughput": metrics["performance"]["throughput_per_minute"],
            "learning_progress": metrics["adaptation"]["learning_score"],
        }
        finished = metrics["tasks"]["completed"] + metrics["tasks"]["failed"]
        assert finished == 3 and metrics["task_allocation"]["allocations"] == 3
        assert summary["allocation_efficiency"] == metrics["tasks"]["completed"] / 3
        # The queued task ran on its slot right after the task ahead of it.
        build = orchestra.state()["tasks"]
        assert build["build-2"]["started_at"] >= min(build[t]["finished_at"] for t in ("build-0", "build-1"))


async def test_workload_imbalance_event_reaches_handlers(fixed_clock) -> None:
    seen: list[dict] = []
    async with StellarOrchestra(MEMORY, clock=fixed_clock) as orchestra:
        orchestra.on("workload_imbalance", seen.append)
        await orchestra.register_agent({"agent_id": "atlas-001", "agent_type": "AtlasAgent", "capabilities": ["ethics"]})
        await orchestra.register_agent({"agent_id": "edison-001", "agent_type": "EdisonAgent", "capabilities": ["engineering"]})
        await orchestra.orchestrate_multiple_tasks(
            [{"id": f"e{i}", "description": "x", "required_skills": ["ethics"]} for i in range(5)]
        )
        await orchestra.wait_idle()
    assert len(seen) == 1 and seen[0]["busiest_agent"] == "atlas-001" and seen[0]["ratio"] == 2.0
