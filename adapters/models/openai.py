"""Any OpenAI-compatible chat-completions server (OpenAI, vLLM, Ollama…),
streamed over httpx (server-sent `data:` lines). 429, 5xx, timeouts and
connection errors are transient (with Retry-After when the server sends it);
other 4xx are not."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from domain.errors import ModelError, TransientModelError


class OpenAICompatibleModel:
    def __init__(
        self, base_url: str, api_key: str | None, model: str, timeout_s: float = 60.0
    ) -> None:
        self.name = f"openai:{model}"
        self._model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=5.0),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def stream(self, system: str, prompt: str) -> AsyncIterator[str]:
        body = {
            "model": self._model,
            "stream": True,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": prompt},
            ],
        }
        try:
            async with self._client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise _error(response)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line.removeprefix("data:").strip()
                    if data == "[DONE]":
                        return
                    delta = json.loads(data)["choices"][0].get("delta", {}).get("content")
                    if delta:
                        yield delta
        except (httpx.TimeoutException, httpx.TransportError) as error:
            raise TransientModelError(f"model server unreachable: {error!r}") from error


def _error(response: httpx.Response) -> ModelError:
    detail = f"model server answered {response.status_code}: {response.text[:200]}"
    if response.status_code == 429 or response.status_code >= 500:
        return TransientModelError(detail, _retry_after(response.headers.get("retry-after")))
    return ModelError(detail)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None
