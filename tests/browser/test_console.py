"""The developer console in a real headless Chromium, against a live server and worker.

Selenium is synchronous, so every browser step runs in a thread while the
server and the worker keep running in the test's event loop. Nothing here
downloads a browser or a driver: Debian's chromium and chromium-driver are
used, and the tests are skipped when they are missing.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from entrypoints.http.app import create_app, drain_event_streams
from entrypoints.settings import Settings
from tests.conftest import People, Person
from tests.integration.test_tasks import _worker_settings, running_worker
from tests.live import serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FINAL = {"succeeded", "failed", "cancelled", "error"}
SNAPSHOT = """
const text = (id) => document.getElementById(id).textContent;
return {
  status: text("status"), error: text("error"), task: text("task"), output: text("output"),
  events: [...document.querySelectorAll("#log li[data-id]")]
    .map((item) => [item.dataset.id, item.dataset.type]),
  notes: [...document.querySelectorAll("#log li.note")].map((item) => item.textContent),
};
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.skip(
            f"browser tests need Debian's chromium and chromium-driver ({', '.join(missing)} "
            "missing): apt-get install chromium chromium-driver"
        )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    # An explicit driver path: Selenium Manager (which downloads) never runs.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@dataclass(frozen=True)
class Snapshot:
    status: str
    error: str
    task: str
    output: str
    events: list[tuple[str, str]]  # (id, type) as the log shows them
    notes: list[str]  # the page's own lines: drops and reconnects

    @property
    def types(self) -> list[str]:
        return [kind for _, kind in self.events]


class Console:
    """Drives the page (blocking: call it through asyncio.to_thread)."""

    def __init__(self, driver: WebDriver, base: str) -> None:
        self._driver, self._base = driver, base

    def start(self, person: Person, workspace: uuid.UUID, prompt: str) -> None:
        driver = self._driver
        driver.get(f"{self._base}/console")
        token = person.headers["Authorization"].removeprefix("Bearer ")
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.ID, "load").click()
        option = f'#workspace option[value="{workspace}"]'
        self._wait(lambda: bool(driver.find_elements(By.CSS_SELECTOR, option)), 10)
        Select(driver.find_element(By.ID, "workspace")).select_by_value(str(workspace))
        driver.find_element(By.ID, "prompt").send_keys(prompt)
        driver.find_element(By.ID, "start").click()

    def snapshot(self) -> Snapshot:
        found: dict[str, Any] = self._driver.execute_script(SNAPSHOT)
        return Snapshot(
            found["status"],
            found["error"],
            found["task"],
            found["output"],
            [(str(event_id), str(kind)) for event_id, kind in found["events"]],
            list(found["notes"]),
        )

    def wait_for_tokens(self, count: int, timeout_s: float = 10) -> Snapshot:
        self._wait(lambda: self.snapshot().types.count("task.token") >= count, timeout_s)
        return self.snapshot()

    def wait_until_final(self, timeout_s: float = 20) -> Snapshot:
        self._wait(lambda: self.snapshot().status in FINAL, timeout_s)
        return self.snapshot()

    def _wait(self, condition: Callable[[], bool], timeout_s: float) -> None:
        try:
            WebDriverWait(self._driver, timeout_s, poll_frequency=0.05).until(lambda _: condition())
        except TimeoutException:
            pytest.fail(f"the console did not get there in {timeout_s} s: {self.snapshot()}")


async def _stored_result(base: str, person: Person, workspace: uuid.UUID, task_id: str) -> str:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        response = await http.get(
            f"/v1/workspaces/{workspace}/tasks/{task_id}", headers=person.headers
        )
    assert response.status_code == 200, response.text
    task = response.json()
    assert task["status"] == "succeeded", task
    return str(task["result"]["text"])


def _assert_clean_log(seen: Snapshot) -> None:
    ids = [event_id for event_id, _ in seen.events]
    assert len(ids) == len(set(ids)), f"an event was shown twice: {ids}"
    assert seen.types[:2] == ["task.queued", "task.started"], seen.types
    assert seen.types[-1] == "task.succeeded", seen.types
    assert "task.token" in seen.types
    assert set(seen.types[2:-1]) <= {"task.progress", "task.token"}, seen.types


async def test_the_console_runs_a_task_and_streams_its_output(
    settings: Settings, people: People, browser: WebDriver
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner, "Console")
    worker = _worker_settings(settings, sim_token_delay_ms=20)
    async with running_worker(worker), serving(worker) as base:
        page = Console(browser, base)
        await asyncio.to_thread(page.start, owner, workspace, f"console note {uuid.uuid4()}")
        seen = await asyncio.to_thread(page.wait_until_final)
        assert seen.status == "succeeded", seen
        result = await _stored_result(base, owner, workspace, seen.task)
    assert seen.output == result
    _assert_clean_log(seen)
    assert seen.notes == [], "the stream should not have dropped"
    logged = [entry["message"] for entry in browser.get_log("browser")]
    assert not [line for line in logged if "Content Security Policy" in line], logged


async def test_the_console_reconnects_after_the_server_drops_the_stream(
    settings: Settings, people: People, browser: WebDriver
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner, "Console")
    worker = _worker_settings(settings, sim_token_delay_ms=150)  # 24 tokens: about 3.6 s
    first = create_app(worker)
    async with running_worker(worker):
        async with serving(worker, first) as base:
            page = Console(browser, base)
            await asyncio.to_thread(page.start, owner, workspace, f"slow note {uuid.uuid4()}")
            before = await asyncio.to_thread(page.wait_for_tokens, 3)
            drain_event_streams(first)
        # The first server is gone; the worker goes on writing the task's events.
        async with serving(worker, port=urlsplit(base).port or 0) as again:
            assert again == base
            seen = await asyncio.to_thread(page.wait_until_final)
            assert seen.status == "succeeded", seen
            result = await _stored_result(base, owner, workspace, seen.task)
    assert "task.succeeded" not in before.types
    assert seen.notes, "the page never saw the stream drop"
    assert seen.types.count("task.token") > before.types.count("task.token")
    assert "stream.reset" not in seen.types
    assert seen.output == result
    _assert_clean_log(seen)
