"""The attack classes of the red-team audit, and which tests/security modules
try each: the one place that maps a test to its class. `keel audit` counts
every test by its class (tests/security/audit_plugin.py) and writes the table
in SECURITY.md; tests/unit/test_audit.py checks that every module here is in
exactly one class and that SECURITY.md lists exactly these classes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AttackClass:
    name: str
    what: str  # what an attacker tries, in one line
    modules: tuple[str, ...]  # module names under tests/security/


ATTACK_CLASSES = (
    AttackClass(
        "tenant isolation over HTTP",
        "another tenant's workspace, members, documents, tasks, dead letters, webhook through"
        " every route and method; a foreign id answers exactly like a missing one",
        (
            "test_tenant_matrix",
            "test_not_found_alike",
            "test_dead_letter_isolation",
            "test_webhook_isolation",
        ),
    ),
    AttackClass(
        "row-level security in SQL",
        "another tenant's rows as the runtime role: foreign variables, none, moved rows,"
        " search functions, worker functions, the live catalog",
        ("test_rls_sql", "test_catalog", "test_worker_batches"),
    ),
    AttackClass(
        "database roles and privileges",
        "another deployment's login roles, large objects, pg_notify, temporary tables",
        ("test_role_scope", "test_runtime_privileges"),
    ),
    AttackClass(
        "forged and odd tokens",
        "alg none or confusion, bad signatures, kid/jku/x5u/crit headers, nbf/iat ahead,"
        " huge tokens, non-UUID sub, foreign keys",
        ("test_jwt", "test_jwks", "test_token_claims", "test_token_agreement"),
    ),
    AttackClass(
        "cached fast path",
        "the fast path answering what the full path would refuse: odd tokens and"
        " spellings, removed members, other tenants, Redis down",
        ("test_fast_path_agreement",),
    ),
    AttackClass(
        "event streams and tickets",
        "another workspace's events, tickets reused or stretched, removed members"
        " streaming on, stream slots kept",
        (
            "test_event_isolation",
            "test_event_stream_attacks",
            "test_removed_member_streams",
            "test_stream_slot_release",
        ),
    ),
    AttackClass(
        "UI state",
        "another user's state by any key, cursor or workspace; odd keys, lifetimes, bodies",
        ("test_ui_state_isolation", "test_ui_state_odd_inputs"),
    ),
    AttackClass(
        "hostile input",
        "NUL, invalid UTF-8, lone surrogates, duplicate keys, deep nesting, oversized"
        " and odd numbers in every field, query parameter and header: a 4xx, never a 500",
        (
            "test_input_classes",
            "test_input_fuzz",
            "test_body_attacks",
            "test_stored_size",
            "test_stored_values",
        ),
    ),
    AttackClass(
        "mass assignment",
        "workspace_id, id, created_by, role, status, version set through every body",
        ("test_mass_assignment",),
    ),
    AttackClass(
        "races",
        "a removed member's next request, concurrent If-Match writes, cancel against"
        " finish, one Idempotency-Key across users, workspaces and at once",
        ("test_races",),
    ),
    AttackClass(
        "resource exhaustion",
        "one user filling Redis or the server: cache, tickets, UI state, dead letters,"
        " workspaces, request heads",
        (
            "test_cache_budget",
            "test_dead_letter_bound",
            "test_stream_ticket_bound",
            "test_ui_state_quota",
            "test_workspace_limit",
            "test_request_heads",
        ),
    ),
    AttackClass(
        "script injection in the console",
        "task output, workspace names and document titles carrying `<script>`; the page's CSP",
        ("test_console_injection",),
    ),
    AttackClass(
        "black box: a running stack",
        "the attacks above over a real socket, against `--url` or a server the audit starts",
        ("test_black_box",),
    ),
)


def class_of(module: str) -> str | None:
    """The attack class of a tests/security module (by its name), if it has one."""
    for attack in ATTACK_CLASSES:
        if module in attack.modules:
            return attack.name
    return None
