"""What the IEM plug-ins offer, written once: MultiEQ's band count and filter types, FdnReverb's sizes.

The effects in this package and the settings schema (:mod:`vocalmix.settings`, which
names filter types by word in settings files and must load without torch) both read
these; this module therefore imports only the standard library.
"""

from __future__ import annotations

import enum

__all__ = ["N_EQ_BANDS", "FDN_LINE_COUNTS", "FilterType"]

#: MultiEQ has six bands in series.
N_EQ_BANDS = 6

#: FdnReverb's network sizes (number of delay lines), smallest first.
FDN_LINE_COUNTS: tuple[int, ...] = (16, 32, 64, 128, 256)


class FilterType(enum.IntEnum):
    """MultiEQ filter types, numbered as the v1.15 plug-in's internal enum.

    Settings files name them in lower case without the underscore before a digit
    (``HIGHPASS_1`` is ``"highpass1"``, ``HIGHPASS_LR`` is ``"highpass_lr"``): see
    :attr:`setting_name`.
    """

    HIGHPASS_1 = 0
    HIGHPASS_2 = 1
    HIGHPASS_LR = 2  # 24 dB/oct: two identical HP2 sections
    LOW_SHELF = 3
    PEAK = 4
    HIGH_SHELF = 5
    LOWPASS_1 = 6
    LOWPASS_2 = 7
    LOWPASS_LR = 8  # 24 dB/oct: two identical LP2 sections

    @property
    def setting_name(self) -> str:
        """The type's name in a settings file, e.g. ``"highpass1"``, ``"low_shelf"``."""
        return self.name.lower().replace("_1", "1").replace("_2", "2")
