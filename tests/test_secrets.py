"""Secrets never leave in any form: not in checkpoints, the Store, reports or error texts (issue 14)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import respx

from stellar_graph import PYTHAGORAS, StellarOrchestra
from stellar_graph.integrations._redact import REDACTED, redact_secrets
from stellar_graph.testing import make_test_chat_openai

SECRET = 'sk-Live/Key+With"Odd=Chars-0123456789'


def _forms(secret: str) -> list[str]:
    raw = secret.encode()
    return [
        secret,
        secret.upper(),
        json.dumps(secret)[1:-1],
        quote(secret, safe=""),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ]


@pytest.mark.parametrize("form", _forms(SECRET))
def test_every_echoed_form_of_a_secret_is_redacted(form: str) -> None:
    text = f'{{"error": "bad key {form} sent", "auth": "Bearer {form}"}}'
    redacted = redact_secrets(text, [SECRET])
    assert form not in redacted and redacted.count(REDACTED) == 2, redacted


def test_short_or_missing_secrets_leave_text_alone() -> None:
    assert redact_secrets("a b c", [None, "", "abc"]) == "a b c"


@respx.mock(base_url="http://llm.mock/v1")
async def test_an_endpoint_echoing_the_api_key_leaves_no_trace_on_disk(
    respx_mock: respx.MockRouter, tmp_path: Path
) -> None:
    """A 401 whose body echoes the key: the task fails, and no form of the key is in the SQLite
    files or the state (it was in `checkpoints.sqlite`, the JSON report and stdout)."""
    body = {"error": {"message": f"Incorrect API key provided: {SECRET} ({json.dumps(SECRET)})", "code": "invalid_api_key"}}
    respx_mock.post("/chat/completions").mock(return_value=httpx.Response(401, json=body))
    model = make_test_chat_openai(api_key=SECRET)
    config = {"persistence": {"data_dir": str(tmp_path)}, "emergency_protocols": {"recovery_strategies": ["retry"]}}
    async with StellarOrchestra(config, model=model, thread_id="secret") as orchestra:
        await orchestra.register_agent(PYTHAGORAS.default_profile("pythagoras-001"))
        await orchestra.orchestrate_task({"id": "t1", "description": "Compute", "required_skills": ["statistics"]})
        await orchestra.wait_idle()
        record = orchestra.state()["tasks"]["t1"]
        assert record["status"] == "failed" and "401" in record["error"] and REDACTED in record["error"]
        state_text = json.dumps(orchestra.state(), default=str)
    blobs = [p.read_bytes() for p in tmp_path.iterdir() if p.is_file()]  # noqa: ASYNC240 (after the run)
    for form in _forms(SECRET):
        assert form not in state_text, form
        assert not any(form.encode() in blob for blob in blobs), form
