"""A fire-alarm panel's dry contacts as Modbus discrete inputs: a pymodbus server on loopback TCP.

Register map (unit ``unit``, default 1)::

    di  0..inputs-1   the alarm inputs (False: normal, True: alarm), set with ``set_input``

In-process (tests, demo)::

    panel = AlarmPanelSimulator(port=0)
    await panel.start()
    panel.url                  # "tcp://127.0.0.1:PORT" (for [emergency] alarm.url)
    panel.set_input(0, True)   # the fire alarm goes off
    panel.reads                # discrete-input reads answered so far
    await panel.drop(); await panel.restore()   # cable pull, and back
    await panel.aclose()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from suishen.drivers.modbus_adapter import ModbusServerLink


class AlarmPanelSimulator:
    """A simulated alarm panel (see the module docstring)."""

    def __init__(
        self, *, unit: int = 1, inputs: int = 8, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.unit = unit
        self.host = host
        self.port = port
        self.stalled = False
        self.response_delay_s = 0.0
        self.inputs = [False] * inputs
        self.reads = 0
        self.running = False
        self._link = ModbusServerLink(self, bits=max(16, inputs), registers=16)

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def set_input(self, address: int, value: bool) -> None:
        """Set (True) or clear (False) one alarm input."""
        self.inputs[address] = value

    async def start(self) -> None:
        await self.restore()

    async def restore(self) -> None:
        if not self.running:
            self.port = await self._link.start_tcp(self.host, self.port)
            self.running = True

    async def drop(self) -> None:
        """Cable pull: close every connection and stop answering."""
        if self.running:
            self.running = False
            await self._link.stop_tcp()

    async def aclose(self) -> None:
        await self.drop()
        await self._link.aclose()

    async def __aenter__(self) -> AlarmPanelSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ DeviceModel

    def coils_written(self, address: int, values: Sequence[bool], received_mono: float) -> None:
        del address, values, received_mono  # a panel has no outputs

    def registers_written(self, address: int, values: Sequence[int], received_mono: float) -> None:
        del address, values, received_mono

    def coil_values(self) -> Mapping[int, bool]:
        return {}

    def discrete_input_values(self) -> Mapping[int, bool]:
        self.reads += 1
        return dict(enumerate(self.inputs))

    def input_register_values(self) -> Mapping[int, int]:
        return {}
