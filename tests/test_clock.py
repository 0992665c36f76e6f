import anyio
import pytest

from runtime._loop import loop_clock

pytestmark = pytest.mark.anyio


@pytest.mark.virtual_time
async def test_virtual_time_makes_long_sleeps_instant_and_exact() -> None:
    start = anyio.current_time()
    with anyio.fail_after(3600):
        await anyio.sleep(1000)
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(anyio.sleep, 5)
    assert anyio.current_time() - start == pytest.approx(1005.0)


@pytest.mark.virtual_time
async def test_virtual_time_fires_timeouts_at_their_deadline() -> None:
    start = anyio.current_time()
    with anyio.move_on_after(2.5) as scope:
        await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert anyio.current_time() - start == pytest.approx(2.5)


@pytest.mark.virtual_time
async def test_the_bound_loop_clock_is_the_clock_anyio_reads_virtual_or_not() -> None:
    clock = loop_clock()
    await anyio.sleep(1000)
    assert clock() == anyio.current_time()


async def test_the_bound_loop_clock_reads_the_real_clock_outside_virtual_time() -> None:
    clock = loop_clock()
    before = anyio.current_time()
    assert before <= clock() <= anyio.current_time()
