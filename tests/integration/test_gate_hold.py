"""Gate hold for emergency release (drivers.base.Gate.hold_open/release_hold) against the
simulators: the Modbus coil is held on with no pulse and held again after the board comes back
from a power cycle; a UHPPOTE door goes normally open and back to controlled; an OSDP output
is permanently on, then off; while held, open() and keep_shut() change nothing."""

from __future__ import annotations

import asyncio

from suishen.drivers.base import DeviceState, reconnect_backoff
from suishen.drivers.modbus_gate import ModbusGate
from suishen.drivers.sim.osdp_reader import OsdpReaderSim
from suishen.drivers.sim.turnstile import TurnstileSimulator
from suishen.drivers.sim.uhppote import UhppoteSimulator
from suishen.drivers.uhppote import (
    MODE_CONTROLLED,
    MODE_NORMALLY_OPEN,
    UhppoteGate,
    UhppoteLink,
)
from tests.integration.test_osdp import KEY, connected, make_reader
from tests.integration.test_uhppote import FAST, SERIAL, eventually


async def test_a_modbus_gate_is_held_open_across_a_power_cycle() -> None:
    """hold_open(): the coil stays on past any pulse length; open()/keep_shut() leave it on;
    the board loses power (relay off) and comes back: the driver writes it on again;
    release_hold() turns it off."""
    sim = TurnstileSimulator(delay_s=0.05, pass_probability=0.0)
    await sim.start()
    gate = ModbusGate(
        device_id="gate",
        url=sim.url,
        command_timeout_s=0.1,
        connect_timeout_s=0.5,
        backoff=reconnect_backoff(initial_s=0.02, cap_s=0.1),
    )
    try:
        await gate.start()
        await eventually(lambda: gate.state is DeviceState.CONNECTED)
        await gate.open(pulse_ms=100)  # a pulse in flight is cut short by the hold
        await gate.hold_open()
        await asyncio.sleep(0.3)
        assert sim.relay_on
        opens = sim.opens_received
        await gate.open(pulse_ms=100)
        await gate.keep_shut()
        await asyncio.sleep(0.2)
        assert sim.relay_on
        assert sim.opens_received == opens
        await sim.drop()
        sim.relay_on = False  # power off: the relay falls off
        await eventually(lambda: gate.state is not DeviceState.CONNECTED)
        await sim.restore()
        await eventually(lambda: sim.relay_on, within=3.0)
        await gate.release_hold()
        assert not sim.relay_on
        await gate.open(pulse_ms=50)
        assert sim.relay_on
        await eventually(lambda: not sim.relay_on)  # pulses again after the hold
    finally:
        await gate.aclose()
        await sim.aclose()


async def test_a_uhppote_door_is_held_normally_open() -> None:
    """hold_open(): the door's control mode becomes normally open (its delay kept);
    keep_shut() while held leaves it; release_hold(): controlled again."""
    sim = UhppoteSimulator(serial=SERIAL, port=0, passage_delay_s=0.02, seed=1)
    await sim.start()
    link = UhppoteLink(serial=SERIAL, address=sim.address, **FAST)
    gate = UhppoteGate(link, door=2)
    try:
        await gate.start()
        await eventually(lambda: link.state is DeviceState.CONNECTED)
        delay = sim.door_control[2][1]
        await gate.hold_open()
        assert sim.door_control[2] == (MODE_NORMALLY_OPEN, delay)
        await gate.keep_shut()
        await gate.open()
        assert sim.door_control[2] == (MODE_NORMALLY_OPEN, delay)
        await gate.release_hold()
        assert sim.door_control[2] == (MODE_CONTROLLED, delay)
    finally:
        await gate.aclose()
        await sim.stop()


async def test_an_osdp_output_is_held_permanently_on() -> None:
    """hold_open(): output 0 permanently on (control code 2, no timer); open() and
    keep_shut() while held send nothing; release_hold(): permanently off (code 1)."""
    sim = OsdpReaderSim.on_tcp(scbk=KEY, passage_delay_s=0.05)
    sim.start()
    reader = make_reader(sim)
    try:
        await reader.start()
        await connected(reader)
        await reader.hold_open()
        held = sim.last("output")
        assert held is not None
        assert (held.fields["output_no"], held.fields["control_code"]) == (0, 2)
        count = sim.count("output")
        await reader.open(pulse_ms=500)
        await reader.keep_shut()
        assert sim.count("output") == count
        await reader.release_hold()
        released = sim.last("output")
        assert released is not None
        assert released.fields["control_code"] == 1
    finally:
        await reader.aclose()
        await asyncio.to_thread(sim.close)
