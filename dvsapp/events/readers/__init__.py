"""One reader per recording format, in the order detection tries them."""

from __future__ import annotations

from dvsapp.events.readers.aedat2 import Aedat2Reader
from dvsapp.events.readers.aedat4 import Aedat4Reader
from dvsapp.events.readers.aedat31 import Aedat31Reader
from dvsapp.events.readers.atis_bin import NCaltech101Reader, NMnistReader
from dvsapp.events.readers.base import EventReader
from dvsapp.events.readers.numpy_files import NpyReader, NpzReader
from dvsapp.events.readers.prophesee import DatReader, Evt2Reader, Evt3Reader

READERS: tuple[type[EventReader], ...] = (
    Aedat4Reader,
    Aedat31Reader,
    Aedat2Reader,
    Evt2Reader,
    Evt3Reader,
    DatReader,
    NpyReader,
    NpzReader,
    # headerless: tried last, and only on a .bin file whose content is plausible
    NMnistReader,
    NCaltech101Reader,
)

__all__ = [
    "READERS",
    "Aedat2Reader",
    "Aedat4Reader",
    "Aedat31Reader",
    "DatReader",
    "EventReader",
    "Evt2Reader",
    "Evt3Reader",
    "NCaltech101Reader",
    "NMnistReader",
    "NpyReader",
    "NpzReader",
]
