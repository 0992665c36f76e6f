import trio

from runtime import ToolContext, ToolRegistry, open_runtime

registry = ToolRegistry()


@registry.tool("CI", "get")
async def get_ci(ctx, params):
    return {"ci_id": params["ci_id"], "tenant": ctx.tenant_id}


async def main():
    async with open_runtime(registry) as rt:
        ctx = ToolContext(tenant_id="acme")
        print(await rt.execute("CI", "get", {"ci_id": 7}, ctx))
        print(await rt.execute("CI", "get", {"ci_id": 7}, ctx))  # a cache hit


trio.run(main)
