import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import ToolContext, ToolRegistry
from runtime.testing import open_test_runtime, params_from_schema, virtual_time_backend_options

INTS = {"type": "list", "items": {"type": "int", "min": 0, "max": 999}, "required": True}
SCHEMA = {"type": "object", "fields": {"values": INTS}}


async def top3(ctx, params):  # the user's tool: the three largest values, largest first
    return {"tenant": ctx.tenant_id, "top": sorted(params["values"], reverse=True)[:3]}


@settings(max_examples=20, deadline=None)
@given(params=params_from_schema(SCHEMA), tenant=st.sampled_from(["a", "b"]), trio=st.booleans())
def test_top3(params, tenant, trio):
    async def main():
        registry = ToolRegistry()
        registry.register("USER", "top3", top3, params_schema=SCHEMA)
        async with open_test_runtime(registry, seed=1) as rt:  # checks quiescence on exit
            first = await rt.execute("USER", "top3", params, ToolContext(tenant))
            assert await rt.execute("USER", "top3", params, ToolContext(tenant)) == first  # hit
        assert first["tenant"] == tenant
        assert first["top"] == sorted(params["values"], reverse=True)[:3]

    backend = "trio" if trio else "asyncio"
    anyio.run(main, backend=backend, backend_options=virtual_time_backend_options(backend))
