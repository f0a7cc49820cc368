"""Issue 17, class 9: the content limit is in the unit Postgres stores.

The schema checks `octet_length(content::text)`: the text Postgres prints for
JSONB, with a space after every `,` and `:` and numbers written in full. A
property test: for any value within Keel's JSON, what `inspect` measures is
exactly what Postgres stores.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.json_values import MAX_SAFE_INTEGER, inspect
from tests.security.test_input_fuzz import FUZZ

keel_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12
)
keel_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.floats(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER, allow_nan=False),
    keel_text,
)
keel_values = st.recursive(
    keel_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keel_text, children, max_size=4)
    ),
    max_leaves=30,
)


@FUZZ
@given(value=keel_values)
async def test_the_measured_size_is_the_size_postgres_stores(
    owner_engine: AsyncEngine, value: Any
) -> None:
    found = inspect(value)
    assert found.problems == []
    async with owner_engine.connect() as conn:
        stored = await conn.scalar(
            sa.text("select octet_length(cast(:v as jsonb)::text)"), {"v": json.dumps(value)}
        )
    assert found.stored_bytes == stored
