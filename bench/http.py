"""Keel's HTTP requests beside raw asyncpg doing the same work, in one invocation.

    .venv/bin/python -m bench.http [--seconds 10] [--connections 32] [--json FILE]

Each row of Keel's is followed at once by its reference (bench/reference.py:
a bare Litestar handler over a raw asyncpg pool, the same transaction
shape), so that their ratio is taken on the same machine, data and load:

- foundation_get_uncached: GET foundation/{id} with KEEL_CACHE=false;
- foundation_list: GET foundation?kind=brand&limit=50 (a keyset page of 50);
- foundation_patch: PATCH foundation/{id} with If-Match (the version bump and
  the revision row); wrk's Lua script keeps each document's ETag, over 256
  documents, so that no request is refused;
- task_create: POST tasks (the row, its own outbox, 202).

Then the cached read (KEEL_CACHE=true) and the physical ceilings: a bare
handler's constant and one Redis GET of 2 KB. The --json FILE holds
{"rows": {name: {"rps", "p50_ms", "p99_ms"}}}. Services, servers and wrk are
as in bench.cache: one uvicorn process per server, wrk on one thread in a
process of its own; every row is warmed up 2 s before it is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx

from adapters.postgres.database import async_url
from bench.cache import CONTENT, SECRET, Result, _server, _wrk, keel_env
from entrypoints.devstack.services import test_services
from entrypoints.http.auth import issue_token

DOCUMENTS = 256
# One ETag per document, kept from each answer; the documents in turn, each
# skipped while a request for it is unanswered (its ETag would be stale).
PATCH_LUA = """
local docs, versions, pending, i = {}, {}, {}, 0
function init(args)
  for line in io.lines(args[1]) do
    local id, version = line:match("(%S+) (%d+)")
    docs[#docs + 1] = id
    versions[id] = version
  end
  prefix = args[2]
end
function request()
  repeat i = i % #docs + 1 until not pending[docs[i]]
  local id = docs[i]
  pending[id] = true
  local headers = {}
  for key, value in pairs(wrk.headers) do headers[key] = value end
  headers["If-Match"] = '"' .. versions[id] .. '"'
  headers["Content-Type"] = "application/json"
  return wrk.format("PATCH", prefix .. id, headers, '{"title":"v"}')
end
function response(status, headers, body)
  local id = body:match('"id":"([%x-]+)"')
  local etag = headers["etag"] or headers["ETag"]
  if id and etag then
    versions[id] = etag:match("%d+")
    pending[id] = nil
  end
end
"""
# Task creation is rate-limited per user: the members take turns.
TASK_LUA = """
local tokens, i = {}, 0
function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  path = args[2]
end
function request()
  i = i % #tokens + 1
  local headers = {}
  headers["Authorization"] = "Bearer " .. tokens[i]
  headers["Content-Type"] = "application/json"
  return wrk.format("POST", path, headers, '{"kind":"generate","input":{"prompt":"launch note"}}')
end
"""
MEMBERS = 128


async def _versions(runtime_url: str, user: str, workspace: str) -> list[tuple[str, int]]:
    conn = await asyncpg.connect(async_url(runtime_url).replace("+asyncpg", ""))
    try:
        async with conn.transaction():
            await conn.execute(
                "select set_config('role', 'keel_app', true),"
                " set_config('app.user_id', $1, true), set_config('app.workspace_id', $2, true)",
                user,
                workspace,
            )
            rows = await conn.fetch(
                "select id, version from foundation_documents where workspace_id = $1 order by id",
                workspace,
            )
    finally:
        await conn.close()
    return [(str(row["id"]), row["version"]) for row in rows]


def _members(client: httpx.Client, workspace: str) -> list[str]:
    """Tokens of MEMBERS new members of `workspace`, added by its owner (`client`)."""
    tokens = []
    for _ in range(MEMBERS):
        member = uuid.uuid4()
        token = issue_token(SECRET, "authenticated", member)
        client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).raise_for_status()
        client.post(
            f"/v1/workspaces/{workspace}/members", json={"user_id": str(member), "role": "member"}
        ).raise_for_status()
        tokens.append(token)
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench.http loads the server with wrk: install it (apt-get install wrk)")
    scratch = Path(tempfile.mkdtemp(prefix="keel-bench-http-"))
    rows: dict[str, Result] = {}

    def measure(
        name: str,
        url: str,
        headers: dict[str, str],
        script: list[str] | None = None,
        before: Callable[[], None] | None = None,
    ) -> None:
        rows[name] = _wrk(
            name,
            url,
            headers,
            args.seconds,
            args.connections,
            warmup_s=2,
            script=script,
            before=before,
        )
        print(f"{name}: {rows[name].requests_per_s:,.0f} req/s", flush=True)

    with test_services() as services, keel_env(services) as env:
        runtime, user = env["KEEL_DATABASE_URL"], uuid.uuid4()
        auth = {"Authorization": f"Bearer {issue_token(SECRET, 'authenticated', user)}"}
        app = "entrypoints.http.asgi:app"
        # The task rate limit at its highest: one user makes every request here.
        uncached = {**env, "KEEL_CACHE": "false", "KEEL_TASK_RATE_PER_MINUTE": "100000"}
        with _server(app, uncached) as base:
            workspace = httpx.post(
                f"{base}/v1/workspaces", json={"name": "bench"}, headers=auth
            ).json()["id"]
            prefix = f"/v1/workspaces/{workspace}/foundation/"
            with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
                ids = [
                    client.post(
                        prefix.rstrip("/"),
                        json={"kind": "brand", "title": "Voice", "content": CONTENT},
                    ).json()["id"]
                    for _ in range(DOCUMENTS)
                ]
                tokens = _members(client, workspace)
            document = ids[0]
            reference_env = {
                "BENCH_REDIS_URL": services.redis_url,
                "BENCH_DATABASE_URL": runtime,
                "BENCH_USER": str(user),
                "BENCH_WORKSPACE": workspace,
                "BENCH_DOCUMENT": document,
            }
            versions_file = scratch / "versions.txt"
            patch_lua = scratch / "patch.lua"
            patch_lua.write_text(PATCH_LUA)
            (scratch / "tokens.txt").write_text("".join(f"{t}\n" for t in tokens))
            (scratch / "task.lua").write_text(TASK_LUA)
            task_script = [str(scratch / "task.lua"), str(scratch / "tokens.txt")]

            def write_versions() -> None:
                time.sleep(1)  # the last run's answers still in flight
                found = asyncio.run(_versions(runtime, str(user), workspace))
                versions_file.write_text("".join(f"{i} {v}\n" for i, v in found))

            with _server("bench.reference:app", reference_env) as ref:
                pairs = (
                    ("foundation_get_uncached", f"{base}{prefix}{document}", "/asyncpg-rls"),
                    (
                        "foundation_list",
                        f"{base}{prefix.rstrip('/')}?kind=brand&limit=50",
                        "/asyncpg-list?kind=brand",
                    ),
                )
                for name, url, ref_path in pairs:
                    measure(name, url, auth)
                    measure(f"{name}_ref", f"{ref}{ref_path}", {})
                measure(
                    "task_create", base, {}, [*task_script, f"/v1/workspaces/{workspace}/tasks"]
                )
                measure("task_create_ref", ref, {}, [*task_script, "/asyncpg-task"])
                measure(
                    "foundation_patch",
                    base,
                    auth,
                    script=[str(patch_lua), str(versions_file), prefix],
                    before=write_versions,
                )
                measure(
                    "foundation_patch_ref",
                    ref,
                    {},
                    script=[str(patch_lua), str(versions_file), "/asyncpg-patch/"],
                    before=write_versions,
                )
                measure("ceiling_constant", f"{ref}/constant", {})
                measure("ceiling_redis_get", f"{ref}/redis-get", {})
        with _server(app, env) as base:
            measure("foundation_get_cached", f"{base}{prefix}{document}", auth)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n{args.connections} connections, {args.seconds} s each, services: {services.origin}\n")
    print("| row | req/s | p50 ms | p99 ms | of its reference |\n|---|---:|---:|---:|---:|")
    for name, result in rows.items():
        reference = rows.get(f"{name}_ref")
        share = f"{result.requests_per_s / reference.requests_per_s:.0%}" if reference else ""
        print(
            f"| {name} | {result.requests_per_s:,.0f} | {result.p50_ms:.2f} |"
            f" {result.p99_ms:.2f} | {share} |"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": {
                        name: {"rps": r.requests_per_s, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms}
                        for name, r in rows.items()
                    }
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
