import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import ToolContext, ToolRegistry
from runtime.testing import params_from_schema

INTS = {"type": "list", "items": {"type": "int", "min": 0, "max": 999}, "required": True}
SCHEMA = {"type": "object", "fields": {"values": INTS}}


async def top3(ctx, params):  # the user's tool: the three largest values, largest first
    return {"tenant": ctx.tenant_id, "top": sorted(params["values"], reverse=True)[:3]}


@pytest.mark.virtual_time  # the plugin: runs on asyncio and on trio, both on virtual time
@settings(max_examples=20, deadline=None)
@given(params=params_from_schema(SCHEMA), tenant=st.sampled_from(["a", "b"]))
async def test_top3(runtime_factory, params, tenant):
    registry = ToolRegistry()
    registry.register("USER", "top3", top3, params_schema=SCHEMA)
    async with runtime_factory(registry, seed=1) as rt:  # checks quiescence on exit
        first = await rt.execute("USER", "top3", params, ToolContext(tenant))
        assert await rt.execute("USER", "top3", params, ToolContext(tenant)) == first  # hit
    assert first["tenant"] == tenant
    assert first["top"] == sorted(params["values"], reverse=True)[:3]
