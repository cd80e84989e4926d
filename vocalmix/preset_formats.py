"""Byte-level formats of JUCE plug-in state: the APVTS XML, the "VC2!" blob and ``.vstpreset``.

This module knows nothing about vocalmix settings; :mod:`vocalmix.plugins` maps
settings onto plug-in parameters and uses these functions to write and read the
files. Everything here follows ``shared/notes/iem-plugins.md`` section 3 and
the JUCE code it cites:

* ``getStateInformation`` of the IEM plug-ins is ``parameters.copyState()`` plus
  an ``OSCConfig`` child, written by ``copyXmlToBinary``: the bytes ``VC2!``, a
  uint32 little-endian length, the XML on one line with its ``<?xml?>`` header,
  and a NUL that the length does not count.
* A fresh APVTS holds its ``PARAM`` children in the order of its adapter table,
  a ``std::map`` keyed by parameter ID, i.e. sorted by ID; each value is the
  parameter's float converted to double and printed by JUCE's
  ``serialiseDouble``. :func:`juce_double_text` reproduces that printing so a
  state written here is byte-identical to what the plug-in itself saves after
  loading it.
* A ``.vstpreset`` is the Steinberg preset container: header ``VST3``, int32
  version 1, the 32-character class ID, an int64 offset of the chunk list, the
  chunk data, then ``List``, an int32 count and per chunk a 4-byte ID, an int64
  offset and an int64 size. The component state (chunk ``Comp``) is the blob.
"""

from __future__ import annotations

import math
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from .errors import InputError

STATE_MAGIC = b"VC2!"  # JUCE's magicXmlNumber 0x21324356, little-endian
XML_HEADER = '<?xml version="1.0" encoding="UTF-8"?>'

VSTPRESET_MAGIC = b"VST3"
VSTPRESET_VERSION = 1
CLASS_ID_LENGTH = 32
VSTPRESET_HEADER_SIZE = 4 + 4 + CLASS_ID_LENGTH + 8  # where the first chunk starts
COMPONENT_CHUNK = b"Comp"
CONTROLLER_CHUNK = b"Cont"
CHUNK_LIST = b"List"

# JUCE's VST3 component class ID: two fixed words, then manufacturer and plug-in code.
JUCE_VST3_CLASS_PREFIX = "ABCDEF019182FAEB"


# -- JUCE number printing ---------------------------------------------------------------
def juce_double_text(value: float) -> str:
    """``value`` printed as JUCE's ``var`` prints a double (``serialiseDouble`` in juce_String.cpp).

    Whole numbers get one decimal ("20.0"); others get a fixed number of decimals
    that depends on the magnitude, then trailing zeros are cut; very small or very
    large magnitudes (including 0) go through scientific notation first.
    """
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"cannot store non-finite value {value!r}")
    magnitude = abs(value)
    if magnitude >= 1.0e6 or magnitude <= 1.0e-5:
        return _reduce_float_text(f"{value:.15e}")
    if float(int(value)) == value:
        # JUCE's fast path for String (double, 1): rounds the magnitude, then adds the sign.
        return ("-" if value < 0 else "") + f"{magnitude:.1f}"
    return _reduce_float_text(f"{value:.{_decimal_places(magnitude)}f}")


def _decimal_places(magnitude: float) -> int:
    # The table in serialiseDouble: about 16-17 significant digits at every magnitude.
    if magnitude < 1.0:
        if magnitude >= 1.0e-3:
            if magnitude >= 1.0e-1:
                return 16
            return 17 if magnitude >= 1.0e-2 else 18
        return 19 if magnitude >= 1.0e-4 else 20
    if magnitude < 1.0e3:
        if magnitude < 1.0e1:
            return 15
        return 14 if magnitude < 1.0e2 else 13
    if magnitude < 1.0e4:
        return 12
    return 11 if magnitude < 1.0e5 else 10


def _reduce_float_text(text: str) -> str:
    """Cut trailing zeros of the mantissa (keeping one after the point) and a zero exponent.

    Same result as JUCE's ``reduceLengthOfFloatString`` for the strings printf makes.
    """
    mantissa, e, exponent = text.partition("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0")
        if mantissa.endswith("."):
            mantissa += "0"
    if not e:
        return mantissa
    sign = "-" if exponent.startswith("-") else ""
    digits = exponent.lstrip("+-").lstrip("0")
    return mantissa if not digits else f"{mantissa}e{sign}{digits}"


# -- APVTS XML ----------------------------------------------------------------------------
def _escape_attribute(text: str) -> str:
    # JUCE escapes these in attribute values; everything vocalmix writes is plain ASCII anyway.
    return (
        text.replace("&", "&amp;")
        .replace('"', "&quot;")
        .replace(">", "&gt;")
        .replace("<", "&lt;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
    )


def state_xml(root_tag: str, params: list[tuple[str, str]], osc_config: list[tuple[str, str]]) -> str:
    """The one-line XML document a JUCE plug-in's ``copyXmlToBinary`` writes.

    ``params`` are ``(id, value text)`` pairs in the order they should appear;
    ``osc_config`` the attributes of the ``OSCConfig`` child in order.
    """
    parts = [XML_HEADER, " <", root_tag, ">"]
    for param_id, value in params:
        parts.append(f'<PARAM id="{_escape_attribute(param_id)}" value="{_escape_attribute(value)}"/>')
    attributes = "".join(f' {name}="{_escape_attribute(value)}"' for name, value in osc_config)
    parts.append(f"<OSCConfig{attributes}/>")
    parts.append(f"</{root_tag}>")
    return "".join(parts)


@dataclass
class ParsedState:
    """A plug-in state read back: the root tag and every ``PARAM`` as ``id -> value text``."""

    root_tag: str
    params: dict[str, str]


def parse_state_xml(text: str, source: str) -> ParsedState:
    """Parse APVTS XML; raise :class:`InputError` naming ``source`` if it is not one."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise InputError(f"{source}: not well-formed XML ({exc})") from None
    params: dict[str, str] = {}
    for child in root:
        if child.tag != "PARAM":
            continue  # OSCConfig and anything a newer version adds
        param_id = child.get("id")
        value = child.get("value")
        if param_id is None or value is None:
            raise InputError(f"{source}: a PARAM element lacks its 'id' or 'value' attribute")
        if param_id in params:
            raise InputError(f"{source}: parameter '{param_id}' appears twice")
        params[param_id] = value
    return ParsedState(root.tag, params)


# -- the VC2! blob ------------------------------------------------------------------------
def pack_state(xml_text: str) -> bytes:
    """``copyXmlToBinary``: magic, uint32 LE byte length of the XML, the XML, NUL."""
    data = xml_text.encode("utf-8")
    return STATE_MAGIC + struct.pack("<I", len(data)) + data + b"\0"


def unpack_state(blob: bytes, source: str) -> str:
    """The XML text inside a state blob. Bytes after it (JUCE's private-data trailer) are ignored."""
    if len(blob) < 8 or blob[:4] != STATE_MAGIC:
        raise InputError(f"{source}: not a JUCE plug-in state (it does not start with 'VC2!')")
    (length,) = struct.unpack_from("<I", blob, 4)
    if length == 0:
        raise InputError(f"{source}: the plug-in state is empty")
    if 8 + length > len(blob):
        raise InputError(
            f"{source}: truncated plug-in state ({length} bytes of XML announced, {len(blob) - 8} present)"
        )
    try:
        return blob[8 : 8 + length].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{source}: plug-in state is not UTF-8 text ({exc.reason} at byte {8 + exc.start})") from None


# -- .vstpreset ---------------------------------------------------------------------------
def juce_vst3_class_id(manufacturer_code: str, plugin_code: str) -> str:
    """The 32-hex-digit VST3 component class ID JUCE derives from the two four-letter codes."""
    codes = (manufacturer_code + plugin_code).encode("ascii")
    if len(codes) != 8:
        raise ValueError("manufacturer and plug-in codes must be four characters each")
    return JUCE_VST3_CLASS_PREFIX + codes.hex().upper()


def pack_vstpreset(class_id: str, component_state: bytes) -> bytes:
    """A ``.vstpreset`` holding one ``Comp`` chunk; hosts hand it to the plug-in's ``setState``."""
    if len(class_id) != CLASS_ID_LENGTH:
        raise ValueError(f"class ID must have {CLASS_ID_LENGTH} characters")
    list_offset = VSTPRESET_HEADER_SIZE + len(component_state)
    header = VSTPRESET_MAGIC + struct.pack("<i", VSTPRESET_VERSION) + class_id.encode("ascii")
    header += struct.pack("<q", list_offset)
    chunk_list = CHUNK_LIST + struct.pack("<i", 1)
    chunk_list += COMPONENT_CHUNK + struct.pack("<qq", VSTPRESET_HEADER_SIZE, len(component_state))
    return header + component_state + chunk_list


@dataclass
class VstPreset:
    """What a ``.vstpreset`` holds: class ID and chunks by ID (``b"Comp"``, ``b"Cont"``, ...)."""

    class_id: str
    version: int
    chunks: dict[bytes, bytes]


def unpack_vstpreset(data: bytes, source: str) -> VstPreset:
    """Read the header and chunk list; raise :class:`InputError` naming ``source`` on any inconsistency."""
    if len(data) < VSTPRESET_HEADER_SIZE or data[:4] != VSTPRESET_MAGIC:
        raise InputError(f"{source}: not a .vstpreset (it does not start with 'VST3')")
    (version,) = struct.unpack_from("<i", data, 4)
    if version < 1:
        raise InputError(f"{source}: unsupported .vstpreset version {version}")
    try:
        class_id = data[8 : 8 + CLASS_ID_LENGTH].decode("ascii")
    except UnicodeDecodeError:
        raise InputError(f"{source}: .vstpreset class ID is not ASCII text") from None
    (list_offset,) = struct.unpack_from("<q", data, 8 + CLASS_ID_LENGTH)
    if not VSTPRESET_HEADER_SIZE <= list_offset <= len(data) - 8:
        raise InputError(
            f"{source}: .vstpreset chunk list offset {list_offset} is outside the file ({len(data)} bytes)"
        )
    if data[list_offset : list_offset + 4] != CHUNK_LIST:
        raise InputError(f"{source}: no 'List' chunk list at offset {list_offset}")
    (count,) = struct.unpack_from("<i", data, list_offset + 4)
    entries_start = list_offset + 8
    entry_size = 4 + 8 + 8
    if count < 0 or entries_start + count * entry_size > len(data):
        raise InputError(f"{source}: .vstpreset chunk list announces {count} entries but the file ends first")
    chunks: dict[bytes, bytes] = {}
    for i in range(count):
        at = entries_start + i * entry_size
        chunk_id = data[at : at + 4]
        offset, size = struct.unpack_from("<qq", data, at + 4)
        if offset < VSTPRESET_HEADER_SIZE or size < 0 or offset + size > list_offset:
            raise InputError(
                f"{source}: .vstpreset chunk {chunk_id!r} (offset {offset}, size {size}) lies outside the data area"
            )
        chunks[chunk_id] = data[offset : offset + size]
    return VstPreset(class_id, version, chunks)
